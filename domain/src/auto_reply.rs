//! Auto-reply thread aggregate (`TYPE` = `"auto_reply_thread"`): what the
//! auto-responder decided for the inbound messages of one contact on one
//! session, answer or silence, and why.
//!
//! Rules and decisions:
//! - each inbound message is decided once: answered (its rule's reply was
//!   queued: [`AutoReplyEvent::AutoReplyAnswered`]) or left unanswered with
//!   the reason ([`AutoReplyEvent::AutoReplySilent`]); deciding it again
//!   records nothing, so a redelivered inbound message is never answered
//!   twice;
//! - a rule answers one contact at most once per its cooldown
//!   ([`AutoReplyError::Cooldown`]);
//! - whatever the rules, a contact gets at most [`LOOP_LIMIT`] answers in
//!   [`LOOP_WINDOW_SECONDS`]: two auto-responders answering each other
//!   stop there ([`AutoReplyError::LoopGuard`]);
//! - an answer whose message could not be queued after all (no points, the
//!   plan expired, ...) is withdrawn with that reason: it does not count
//!   towards the cooldown nor the loop guard.
//!
//! The aggregate's id is [`thread_id`]`(session, contact)`; it lives in the
//! messages stream, beside the inbound messages it answers.
//!
//! A rule's own rate (at most so many answers an hour, whoever asks) is
//! counted by [`AutoReplyRuleHour`] (`TYPE` = `"auto_reply_rule_hour"`),
//! one per rule and hour ([`rule_hour_id`]): an answer it refuses is
//! withdrawn from its thread as `rate_limited`. A withdrawn answer still
//! counts there: the rate is of answers tried.

use std::collections::VecDeque;

use chrono::{DateTime, TimeDelta, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::types::{InboundId, MessageId, SessionId};

/// At most this many answers to one contact ...
pub const LOOP_LIMIT: usize = 3;
/// ... within this many seconds.
pub const LOOP_WINDOW_SECONDS: i64 = 600;
/// How many decided inbound messages a thread remembers (to decide each
/// once when delivered again).
const REMEMBERED: usize = 200;

const NAMESPACE: Uuid = Uuid::from_u128(0x6f1d_2c1e_8a4b_4f7d_9c3e_5b2a_7d41_a0c3);

/// The thread of `contact` (the sender as the driver named it) on
/// `session_id`.
pub fn thread_id(session_id: SessionId, contact: &str) -> Uuid {
    let mut name = Vec::with_capacity(16 + contact.len());
    name.extend_from_slice(session_id.as_uuid().as_bytes());
    name.extend_from_slice(contact.as_bytes());
    Uuid::new_v5(&NAMESPACE, &name)
}

/// The id of the answer to `inbound_id`: one inbound message, one answer.
pub fn answer_id(inbound_id: InboundId) -> MessageId {
    MessageId::from_uuid(Uuid::new_v5(&NAMESPACE, inbound_id.as_uuid().as_bytes()))
}

/// Why an inbound message got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Silence {
    /// No enabled rule matched it.
    NoMatch,
    /// Outside the active hours (or sending paused).
    OutsideHours,
    /// The matching rule answered this contact within its cooldown.
    Cooldown,
    /// The contact got the most answers a loop allows.
    LoopGuard,
    /// The rule answered its most messages this hour.
    RateLimited,
    /// Sent from the session's own number.
    OwnMessage,
    /// Sent in a group.
    Group,
    /// A status broadcast.
    StatusBroadcast,
    /// The sender's number is hidden (`@lid`): there is no one to answer.
    NoNumber,
    /// Received too long ago (a history sync, a long outage).
    Stale,
    /// The wallet has not the points of a message.
    NoPoints,
    /// The plan has expired.
    PlanExpired,
    /// The platform operator suspended the tenant.
    TenantSuspended,
    /// The session sent its daily limit today.
    DailyLimitReached,
    /// The session cannot send now.
    SessionNotReady,
    /// The answer could not be queued (the log was away).
    Failed,
}

impl Silence {
    /// As the API and the audit name it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NoMatch => "no_match",
            Self::OutsideHours => "outside_hours",
            Self::Cooldown => "cooldown",
            Self::LoopGuard => "loop_guard",
            Self::RateLimited => "rate_limited",
            Self::OwnMessage => "own_message",
            Self::Group => "group",
            Self::StatusBroadcast => "status_broadcast",
            Self::NoNumber => "no_number",
            Self::Stale => "stale",
            Self::NoPoints => "no_points",
            Self::PlanExpired => "plan_expired",
            Self::TenantSuspended => "tenant_suspended",
            Self::DailyLimitReached => "daily_limit_reached",
            Self::SessionNotReady => "session_not_ready",
            Self::Failed => "failed",
        }
    }
}

/// A command to a thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AutoReplyCommand {
    /// Answers `inbound_id` with `rule_id`'s reply, unless the cooldown or
    /// the loop guard says no.
    Answer {
        /// The message answered.
        inbound_id: InboundId,
        /// The rule that matched.
        rule_id: Uuid,
        /// The rule's cooldown, in seconds.
        cooldown_seconds: u32,
        /// The answer's message.
        message_id: MessageId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Leaves `inbound_id` unanswered, saying why.
    Silence {
        /// The message.
        inbound_id: InboundId,
        /// The rule that matched, if one did.
        rule_id: Option<Uuid>,
        /// Why.
        reason: Silence,
        /// When.
        at: DateTime<Utc>,
    },
    /// Withdraws the answer to `inbound_id`: its message could not be
    /// queued.
    Withdraw {
        /// The message.
        inbound_id: InboundId,
        /// The rule that answered.
        rule_id: Uuid,
        /// Why.
        reason: Silence,
        /// When.
        at: DateTime<Utc>,
    },
}

/// What happened to a thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum AutoReplyEvent {
    /// An inbound message is answered.
    AutoReplyAnswered {
        /// The message answered.
        inbound_id: InboundId,
        /// The rule.
        rule_id: Uuid,
        /// The answer's message.
        message_id: MessageId,
        /// When.
        at: DateTime<Utc>,
    },
    /// An inbound message is left unanswered.
    AutoReplySilent {
        /// The message.
        inbound_id: InboundId,
        /// The rule that matched, if one did.
        rule_id: Option<Uuid>,
        /// Why.
        reason: Silence,
        /// When.
        at: DateTime<Utc>,
    },
    /// An answer was withdrawn: its message could not be queued.
    AutoReplyWithdrawn {
        /// The message.
        inbound_id: InboundId,
        /// The rule that answered.
        rule_id: Uuid,
        /// Why.
        reason: Silence,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for AutoReplyEvent {
    fn event_type(&self) -> String {
        match self {
            Self::AutoReplyAnswered { .. } => "AutoReplyAnswered",
            Self::AutoReplySilent { .. } => "AutoReplySilent",
            Self::AutoReplyWithdrawn { .. } => "AutoReplyWithdrawn",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// Why a thread refused to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AutoReplyError {
    /// The rule answered this contact within its cooldown.
    #[error("the rule answered this contact within its cooldown (until {until})")]
    Cooldown {
        /// When it may answer again.
        until: DateTime<Utc>,
    },
    /// The contact got the most answers a loop allows.
    #[error("{LOOP_LIMIT} answers in {LOOP_WINDOW_SECONDS} s to this contact already")]
    LoopGuard,
}

impl AutoReplyError {
    /// The reason an inbound message goes unanswered.
    pub const fn silence(&self) -> Silence {
        match self {
            Self::Cooldown { .. } => Silence::Cooldown,
            Self::LoopGuard => Silence::LoopGuard,
        }
    }
}

/// An answer standing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Answered {
    inbound_id: InboundId,
    rule_id: Uuid,
    at: DateTime<Utc>,
}

/// One contact's auto-replies on one session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AutoReplyThread {
    /// The answers standing, oldest first (the newest ones that count for
    /// cooldowns and the loop guard).
    answers: Vec<Answered>,
    /// The inbound messages decided, oldest first.
    decided: VecDeque<InboundId>,
}

impl AutoReplyThread {
    /// Whether `inbound_id` was decided already.
    pub fn has_decided(&self, inbound_id: InboundId) -> bool {
        self.decided.contains(&inbound_id)
    }

    fn decide(&self, command: AutoReplyCommand) -> Result<Vec<AutoReplyEvent>, AutoReplyError> {
        match command {
            AutoReplyCommand::Answer {
                inbound_id,
                rule_id,
                cooldown_seconds,
                message_id,
                at,
            } => {
                if self.has_decided(inbound_id) {
                    return Ok(vec![]);
                }
                let cooldown = TimeDelta::seconds(i64::from(cooldown_seconds));
                if let Some(last) = self.answers.iter().rev().find(|a| a.rule_id == rule_id)
                    && at < last.at + cooldown
                {
                    return Err(AutoReplyError::Cooldown {
                        until: last.at + cooldown,
                    });
                }
                let window = TimeDelta::seconds(LOOP_WINDOW_SECONDS);
                let recent = self.answers.iter().filter(|a| at < a.at + window).count();
                if recent >= LOOP_LIMIT {
                    return Err(AutoReplyError::LoopGuard);
                }
                Ok(vec![AutoReplyEvent::AutoReplyAnswered {
                    inbound_id,
                    rule_id,
                    message_id,
                    at,
                }])
            }
            AutoReplyCommand::Silence {
                inbound_id,
                rule_id,
                reason,
                at,
            } => {
                if self.has_decided(inbound_id) {
                    return Ok(vec![]);
                }
                Ok(vec![AutoReplyEvent::AutoReplySilent {
                    inbound_id,
                    rule_id,
                    reason,
                    at,
                }])
            }
            AutoReplyCommand::Withdraw {
                inbound_id,
                rule_id,
                reason,
                at,
            } => {
                if !self.answers.iter().any(|a| a.inbound_id == inbound_id) {
                    return Ok(vec![]);
                }
                Ok(vec![AutoReplyEvent::AutoReplyWithdrawn {
                    inbound_id,
                    rule_id,
                    reason,
                    at,
                }])
            }
        }
    }

    fn remember(&mut self, inbound_id: InboundId) {
        self.decided.push_back(inbound_id);
        while self.decided.len() > REMEMBERED {
            self.decided.pop_front();
        }
    }
}

impl Aggregate for AutoReplyThread {
    const TYPE: &'static str = "auto_reply_thread";
    type Command = AutoReplyCommand;
    type Event = AutoReplyEvent;
    type Error = AutoReplyError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            AutoReplyEvent::AutoReplyAnswered {
                inbound_id,
                rule_id,
                at,
                ..
            } => {
                self.remember(inbound_id);
                self.answers.push(Answered {
                    inbound_id,
                    rule_id,
                    at,
                });
                // Older than the longest cooldown and the loop window, an
                // answer no longer counts: at most a week's are kept.
                let horizon = at - TimeDelta::days(7);
                self.answers.retain(|a| a.at >= horizon);
            }
            AutoReplyEvent::AutoReplySilent { inbound_id, .. } => self.remember(inbound_id),
            AutoReplyEvent::AutoReplyWithdrawn { inbound_id, .. } => {
                self.answers.retain(|a| a.inbound_id != inbound_id);
            }
        }
    }
}

/// The counter of `rule_id`'s answers in the hour holding `at`.
pub fn rule_hour_id(rule_id: Uuid, at: DateTime<Utc>) -> Uuid {
    let hour = at.timestamp().div_euclid(3600);
    let mut name = Vec::with_capacity(24);
    name.extend_from_slice(rule_id.as_bytes());
    name.extend_from_slice(&hour.to_be_bytes());
    Uuid::new_v5(&NAMESPACE, &name)
}

/// A command to a rule's hourly counter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RuleHourCommand {
    /// Counts the answer to `inbound_id`, unless the rule answered `limit`
    /// messages this hour already.
    Count {
        /// The message answered.
        inbound_id: InboundId,
        /// The rule's most answers an hour.
        limit: u32,
        /// When.
        at: DateTime<Utc>,
    },
}

/// What happened to a rule's hourly counter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum RuleHourEvent {
    /// An answer was counted.
    AutoReplyCounted {
        /// The message answered.
        inbound_id: InboundId,
        /// Answers this hour, this one included.
        count_after: u32,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for RuleHourEvent {
    fn event_type(&self) -> String {
        match self {
            Self::AutoReplyCounted { .. } => "AutoReplyCounted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// Why a rule's counter refused an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleHourError {
    /// The rule answered its most messages this hour.
    #[error("the rule answered {limit} messages this hour already")]
    RateLimited {
        /// Its most answers an hour.
        limit: u32,
    },
}

/// One rule's answers in one hour.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AutoReplyRuleHour {
    counted: Vec<InboundId>,
}

impl AutoReplyRuleHour {
    /// Answers counted.
    pub fn count(&self) -> usize {
        self.counted.len()
    }
}

impl Aggregate for AutoReplyRuleHour {
    const TYPE: &'static str = "auto_reply_rule_hour";
    type Command = RuleHourCommand;
    type Event = RuleHourEvent;
    type Error = RuleHourError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let RuleHourCommand::Count {
            inbound_id,
            limit,
            at,
        } = command;
        if self.counted.contains(&inbound_id) {
            return Ok(());
        }
        if self.counted.len() >= limit as usize {
            return Err(RuleHourError::RateLimited { limit });
        }
        let count_after = u32::try_from(self.counted.len() + 1).unwrap_or(u32::MAX);
        sink.write(
            RuleHourEvent::AutoReplyCounted {
                inbound_id,
                count_after,
                at,
            },
            self,
        )
        .await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        let RuleHourEvent::AutoReplyCounted { inbound_id, .. } = event;
        self.counted.push(inbound_id);
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use cqrs_es::test::TestFramework;

    use super::*;

    type Given = TestFramework<AutoReplyThread>;

    fn at(minute: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 2, 0, 0).unwrap() + TimeDelta::minutes(minute)
    }

    fn inbound(n: u128) -> InboundId {
        InboundId::from_uuid(Uuid::from_u128(n))
    }

    fn rule(n: u128) -> Uuid {
        Uuid::from_u128(1000 + n)
    }

    fn answer(n: u128, rule_n: u128, minute: i64) -> AutoReplyCommand {
        AutoReplyCommand::Answer {
            inbound_id: inbound(n),
            rule_id: rule(rule_n),
            cooldown_seconds: 3600,
            message_id: answer_id(inbound(n)),
            at: at(minute),
        }
    }

    fn answered(n: u128, rule_n: u128, minute: i64) -> AutoReplyEvent {
        AutoReplyEvent::AutoReplyAnswered {
            inbound_id: inbound(n),
            rule_id: rule(rule_n),
            message_id: answer_id(inbound(n)),
            at: at(minute),
        }
    }

    #[test]
    fn a_rule_answers_a_contact_once_per_cooldown() {
        Given::with(())
            .given(vec![answered(1, 1, 0)])
            .when(answer(2, 1, 59))
            .then_expect_error(AutoReplyError::Cooldown { until: at(60) });
        Given::with(())
            .given(vec![answered(1, 1, 0)])
            .when(answer(2, 1, 60))
            .then_expect_events(vec![answered(2, 1, 60)]);
        // Another rule has a cooldown of its own.
        Given::with(())
            .given(vec![answered(1, 1, 0)])
            .when(answer(2, 2, 1))
            .then_expect_events(vec![answered(2, 2, 1)]);
    }

    #[test]
    fn an_inbound_message_is_decided_once() {
        Given::with(())
            .given(vec![answered(1, 1, 0)])
            .when(answer(1, 1, 0))
            .then_expect_events(vec![]);
        Given::with(())
            .given(vec![answered(1, 1, 0)])
            .when(AutoReplyCommand::Silence {
                inbound_id: inbound(1),
                rule_id: None,
                reason: Silence::NoMatch,
                at: at(1),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_loop_of_answers_stops() {
        let given = vec![answered(1, 1, 0), answered(2, 2, 1), answered(3, 3, 2)];
        Given::with(())
            .given(given.clone())
            .when(answer(4, 4, 3))
            .then_expect_error(AutoReplyError::LoopGuard);
        Given::with(())
            .given(given)
            .when(answer(4, 4, 10))
            .then_expect_events(vec![answered(4, 4, 10)]);
    }

    #[test]
    fn a_withdrawn_answer_does_not_count() {
        Given::with(())
            .given(vec![
                answered(1, 1, 0),
                AutoReplyEvent::AutoReplyWithdrawn {
                    inbound_id: inbound(1),
                    rule_id: rule(1),
                    reason: Silence::NoPoints,
                    at: at(0),
                },
            ])
            .when(answer(2, 1, 5))
            .then_expect_events(vec![answered(2, 1, 5)]);
    }

    #[test]
    fn a_rule_answers_at_most_its_limit_an_hour() {
        let counted = |n: u128, count_after: u32| RuleHourEvent::AutoReplyCounted {
            inbound_id: inbound(n),
            count_after,
            at: at(0),
        };
        let count = |n: u128| RuleHourCommand::Count {
            inbound_id: inbound(n),
            limit: 2,
            at: at(1),
        };
        TestFramework::<AutoReplyRuleHour>::with(())
            .given(vec![counted(1, 1), counted(2, 2)])
            .when(count(3))
            .then_expect_error(RuleHourError::RateLimited { limit: 2 });
        TestFramework::<AutoReplyRuleHour>::with(())
            .given(vec![counted(1, 1), counted(2, 2)])
            .when(count(2))
            .then_expect_events(vec![]);
        TestFramework::<AutoReplyRuleHour>::with(())
            .given(vec![counted(1, 1)])
            .when(count(2))
            .then_expect_events(vec![RuleHourEvent::AutoReplyCounted {
                inbound_id: inbound(2),
                count_after: 2,
                at: at(1),
            }]);
        // Another hour, another counter.
        assert_ne!(rule_hour_id(rule(1), at(0)), rule_hour_id(rule(1), at(60)));
        assert_eq!(rule_hour_id(rule(1), at(0)), rule_hour_id(rule(1), at(59)));
    }
}
