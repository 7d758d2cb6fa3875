//! Webhook subscription aggregate (`TYPE` = `"webhook"`): whether a
//! subscription receives its events, and why not.
//!
//! The subscription's URL, types and secret are settings kept by the API;
//! what the log records is what the system did to it on its own, so that
//! `wablast audit webhook <id>` and the event stream say it:
//! - a subscription whose receiver failed for too long is turned off
//!   ([`WebhookEvent::WebhookDisabled`], with its [`DisableReason`]);
//! - the tenant turns it on again ([`WebhookEvent::WebhookEnabled`]).
//!
//! Both are idempotent: disabling a disabled one, or enabling an active
//! one, records nothing.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

/// Why a subscription was turned off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DisableReason {
    /// Its receiver failed every delivery for the configured time (3 days
    /// by default).
    ReceiverFailing,
    /// Its secret no longer opens with the installation's key
    /// (`WABLAST_SECRET_KEY` changed): nothing could be signed.
    SecretUnreadable,
}

impl DisableReason {
    /// Its name, as stored and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ReceiverFailing => "receiver_failing",
            Self::SecretUnreadable => "secret_unreadable",
        }
    }
}

/// What may be done to a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WebhookCommand {
    /// Stop delivering to it.
    Disable {
        /// Why.
        reason: DisableReason,
        /// Since when its receiver fails, if that is why.
        failing_since: Option<DateTime<Utc>>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Deliver to it again.
    Enable {
        /// When.
        at: DateTime<Utc>,
    },
}

/// What happened to a subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum WebhookEvent {
    /// It was turned off: nothing is queued for it any more.
    WebhookDisabled {
        /// Why.
        reason: DisableReason,
        /// Since when its receiver failed, if that is why.
        failing_since: Option<DateTime<Utc>>,
        /// When.
        at: DateTime<Utc>,
    },
    /// It was turned on again.
    WebhookEnabled {
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for WebhookEvent {
    fn event_type(&self) -> String {
        match self {
            Self::WebhookDisabled { .. } => "WebhookDisabled",
            Self::WebhookEnabled { .. } => "WebhookEnabled",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// Nothing a subscription is told can be refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {}

/// A subscription's state: whether it is off.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebhookSubscription {
    disabled: Option<DisableReason>,
}

impl WebhookSubscription {
    /// Why it is off; `None` while it receives.
    pub fn disabled(&self) -> Option<DisableReason> {
        self.disabled
    }
}

impl Aggregate for WebhookSubscription {
    const TYPE: &'static str = "webhook";
    type Command = WebhookCommand;
    type Event = WebhookEvent;
    type Error = WebhookError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            WebhookCommand::Disable {
                reason,
                failing_since,
                at,
            } if self.disabled.is_none() => WebhookEvent::WebhookDisabled {
                reason,
                failing_since,
                at,
            },
            WebhookCommand::Enable { at } if self.disabled.is_some() => {
                WebhookEvent::WebhookEnabled { at }
            }
            _ => return Ok(()),
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.disabled = match event {
            WebhookEvent::WebhookDisabled { reason, .. } => Some(reason),
            WebhookEvent::WebhookEnabled { .. } => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use cqrs_es::test::TestFramework;

    use super::*;

    type Given = TestFramework<WebhookSubscription>;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 2, 0, 0).unwrap()
    }

    fn disabled() -> WebhookEvent {
        WebhookEvent::WebhookDisabled {
            reason: DisableReason::ReceiverFailing,
            failing_since: Some(at()),
            at: at(),
        }
    }

    #[test]
    fn a_failing_receiver_turns_it_off_once() {
        Given::with(())
            .given_no_previous_events()
            .when(WebhookCommand::Disable {
                reason: DisableReason::ReceiverFailing,
                failing_since: Some(at()),
                at: at(),
            })
            .then_expect_events(vec![disabled()]);
        Given::with(())
            .given(vec![disabled()])
            .when(WebhookCommand::Disable {
                reason: DisableReason::SecretUnreadable,
                failing_since: None,
                at: at(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn enabling_turns_on_only_what_is_off() {
        Given::with(())
            .given(vec![disabled()])
            .when(WebhookCommand::Enable { at: at() })
            .then_expect_events(vec![WebhookEvent::WebhookEnabled { at: at() }]);
        Given::with(())
            .given_no_previous_events()
            .when(WebhookCommand::Enable { at: at() })
            .then_expect_events(vec![]);
    }
}
