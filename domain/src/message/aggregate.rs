//! The message aggregate: decisions in `handle`, assignments in `apply`.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::commands::{LookedUp, MessageCommand, QueuedMessage, Receipt};
use super::error::MessageError;
use super::events::MessageEvent;
use crate::types::phone::Phone;
use crate::types::{CampaignId, Chat, MessageContent, MessageId, Points, SessionId};

/// The reason of a failure recorded because the peer, asked after the
/// answer to a send was lost, has no message of its id.
pub const NEVER_LEFT: &str = "it never left: WhatsApp has no message of its id (not sent again)";

/// Where a message is (the API's message `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Waiting for a sender.
    Queued,
    /// A sender has it.
    Sending,
    /// WhatsApp accepted it.
    Sent,
    /// The recipient's phone received it.
    Delivered,
    /// The recipient read it.
    Read,
    /// The last attempt failed (retryable or for good).
    Failed,
    /// It will not be sent.
    Cancelled,
    /// Its send was cut off (the engine died, the answer was lost) and
    /// WhatsApp cannot tell whether it went out. Never re-sent.
    Unknown,
}

impl MessageStatus {
    /// The status as the API spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One message to one recipient: its attempts, its outcome, its receipts
/// and its cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    id: Option<MessageId>,
    status: Option<MessageStatus>,
    campaign_id: CampaignId,
    session_id: SessionId,
    to: Option<Chat>,
    name: Option<String>,
    variables: BTreeMap<String, String>,
    content: Option<MessageContent>,
    attempt: u32,
    retryable: bool,
    failure_reason: Option<String>,
    provider_message_id: Option<String>,
    cost: Points,
    queued_at: Option<DateTime<Utc>>,
    sent_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    read_at: Option<DateTime<Utc>>,
}

impl Message {
    /// The message's id; `None` until queued.
    pub fn id(&self) -> Option<MessageId> {
        self.id
    }

    /// The message as its recipient batch queued it, before it has a
    /// history of its own: the state its first commit starts from.
    pub fn queued_in_batch(queued: &QueuedMessage) -> Self {
        let mut message = Self::default();
        message.apply(queued.clone().into_event());
        message
    }

    /// Its status; `None` until queued.
    pub fn status(&self) -> Option<MessageStatus> {
        self.status
    }

    /// Its campaign.
    pub fn campaign_id(&self) -> CampaignId {
        self.campaign_id
    }

    /// The sender it is meant for, or the one that took the last attempt.
    pub fn session_id(&self) -> SessionId {
        self.session_id
    }

    /// The recipient.
    pub fn to(&self) -> Option<&Chat> {
        self.to.as_ref()
    }

    /// The recipient's number; `None` for a group.
    pub fn phone(&self) -> Option<&Phone> {
        self.to.as_ref().and_then(Chat::phone)
    }

    /// The recipient's name, if known.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The recipient's values for the template's variables.
    pub fn variables(&self) -> &BTreeMap<String, String> {
        &self.variables
    }

    /// What it says when written for its recipient alone (a single send);
    /// `None` for a campaign's message, rendered from its template.
    pub fn content(&self) -> Option<&MessageContent> {
        self.content.as_ref()
    }

    /// How many attempts were made (0 before the first).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether a failed message may be retried.
    pub fn is_retryable(&self) -> bool {
        self.status == Some(MessageStatus::Failed) && self.retryable
    }

    /// Why the last attempt failed.
    pub fn failure_reason(&self) -> Option<&str> {
        self.failure_reason.as_deref()
    }

    /// WhatsApp's id of the message: chosen before its last attempt went
    /// out (when the driver can choose one), or as the driver gave it once
    /// sent.
    pub fn provider_message_id(&self) -> Option<&str> {
        self.provider_message_id.as_deref()
    }

    /// What it cost: 2 points once sent, zero otherwise.
    pub fn cost(&self) -> Points {
        self.cost
    }

    /// When it was queued.
    pub fn queued_at(&self) -> Option<DateTime<Utc>> {
        self.queued_at
    }

    /// When it was sent.
    pub fn sent_at(&self) -> Option<DateTime<Utc>> {
        self.sent_at
    }

    /// When it was delivered.
    pub fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.delivered_at
    }

    /// When it was read.
    pub fn read_at(&self) -> Option<DateTime<Utc>> {
        self.read_at
    }

    /// Whether nothing more will happen to it that changes its campaign's
    /// counts: sent (or beyond), failed for good, cancelled or unknown. A
    /// queued, sending or retryable-failed message is not final.
    pub fn is_final(&self) -> bool {
        match self.status {
            Some(MessageStatus::Queued | MessageStatus::Sending) | None => false,
            Some(MessageStatus::Failed) => !self.retryable,
            Some(_) => true,
        }
    }

    /// A receipt's events on a sent or delivered message: a read implies
    /// the delivery, recorded at the same instant when it was missing.
    fn receipt_events(
        &self,
        receipt: Receipt,
        at: DateTime<Utc>,
        already_delivered: bool,
    ) -> Vec<MessageEvent> {
        let campaign_id = self.campaign_id;
        let mut events = vec![];
        if !already_delivered {
            events.push(MessageEvent::MessageDelivered { campaign_id, at });
        }
        if receipt == Receipt::Read {
            events.push(MessageEvent::MessageRead { campaign_id, at });
        }
        events
    }

    /// Decides what a command means in the current state: the events to
    /// record (possibly none), or a refusal.
    fn decide(&self, command: MessageCommand) -> Result<Vec<MessageEvent>, MessageError> {
        use MessageStatus as S;
        if let MessageCommand::FromBatch { queued, command } = command {
            if self.status.is_some() {
                return self.decide(*command);
            }
            let first = queued.into_event();
            let mut queued = self.clone();
            queued.apply(first.clone());
            let mut events = vec![first];
            events.extend(queued.decide(*command)?);
            return Ok(events);
        }
        if let MessageCommand::QueueMessage {
            message_id,
            campaign_id,
            session_id,
            phone,
            name,
            variables,
            at,
        } = command
        {
            if self.status.is_some() {
                return Err(MessageError::AlreadyQueued);
            }
            return Ok(vec![MessageEvent::MessageQueued {
                message_id,
                campaign_id,
                session_id,
                to: Chat::Person(phone),
                name,
                variables,
                content: None,
                at,
            }]);
        }
        let status = self.status.ok_or(MessageError::NotFound)?;
        let campaign_id = self.campaign_id;
        match command {
            MessageCommand::QueueMessage { .. } => Err(MessageError::AlreadyQueued),
            MessageCommand::FromBatch { .. } => unreachable!("decided above"),

            MessageCommand::StartSending {
                session_id,
                attempt,
                text,
                provider_message_id,
                at,
            } => match status {
                S::Failed if !self.retryable => Err(MessageError::FailedForGood),
                S::Queued | S::Failed => {
                    if attempt <= self.attempt {
                        return Err(MessageError::StaleAttempt {
                            attempt,
                            last: self.attempt,
                        });
                    }
                    Ok(vec![MessageEvent::MessageSendingStarted {
                        campaign_id,
                        session_id,
                        attempt,
                        text,
                        provider_message_id,
                        at,
                    }])
                }
                S::Unknown => Err(MessageError::OutcomeUnknown),
                status => Err(MessageError::InvalidState {
                    action: "start sending",
                    status,
                }),
            },

            MessageCommand::RecordSent {
                attempt,
                provider_message_id,
                cost,
                at,
            } => {
                if attempt < self.attempt {
                    return Ok(vec![]); // an earlier attempt's late outcome
                }
                if attempt > self.attempt && status == S::Sending {
                    return Err(MessageError::InvalidState {
                        action: "record the outcome of an attempt not started",
                        status,
                    });
                }
                if cost != Points::PER_MESSAGE {
                    return Err(MessageError::WrongCost {
                        expected: Points::PER_MESSAGE,
                        got: cost,
                    });
                }
                match status {
                    S::Sending => Ok(vec![MessageEvent::MessageSent {
                        campaign_id,
                        session_id: self.session_id,
                        attempt: self.attempt,
                        provider_message_id,
                        cost,
                        to: self.to.clone(),
                        at,
                    }]),
                    // Reported again, or a receipt proved the send first.
                    S::Sent | S::Delivered | S::Read => Ok(vec![]),
                    status => Err(MessageError::InvalidState {
                        action: "record as sent",
                        status,
                    }),
                }
            }

            MessageCommand::RecordFailed { attempt, .. }
            | MessageCommand::MarkUnknown { attempt, .. }
            | MessageCommand::Reconcile { attempt, .. }
                if attempt < self.attempt =>
            {
                Ok(vec![]) // an earlier attempt's late outcome
            }
            MessageCommand::RecordFailed { attempt, .. }
            | MessageCommand::MarkUnknown { attempt, .. }
            | MessageCommand::Reconcile { attempt, .. }
                if attempt > self.attempt && status == S::Sending =>
            {
                Err(MessageError::InvalidState {
                    action: "record the outcome of an attempt not started",
                    status,
                })
            }
            MessageCommand::RecordFailed {
                reason,
                retryable,
                at,
                ..
            } => match status {
                S::Sending => Ok(vec![MessageEvent::MessageFailed {
                    campaign_id,
                    session_id: self.session_id,
                    attempt: self.attempt,
                    reason,
                    retryable,
                    at,
                }]),
                status => Err(MessageError::InvalidState {
                    action: "record a failure of",
                    status,
                }),
            },

            MessageCommand::RecordReceipt { receipt, at } => match status {
                S::Queued => Err(MessageError::InvalidState {
                    action: "record a receipt for",
                    status,
                }),
                // The receipt beat the driver's answer: it proves the send.
                S::Sending => {
                    let mut events = vec![MessageEvent::MessageSent {
                        campaign_id,
                        session_id: self.session_id,
                        attempt: self.attempt,
                        provider_message_id: self.provider_message_id.clone(),
                        cost: Points::PER_MESSAGE,
                        to: self.to.clone(),
                        at,
                    }];
                    events.extend(self.receipt_events(receipt, at, false));
                    Ok(events)
                }
                S::Sent => Ok(self.receipt_events(receipt, at, false)),
                S::Delivered => Ok(self.receipt_events(receipt, at, true)),
                // Late or repeated; or on a final message that may be
                // settled already (see the module docs).
                S::Read | S::Failed | S::Cancelled | S::Unknown => Ok(vec![]),
            },

            MessageCommand::CancelMessage { at } => match status {
                S::Queued => Ok(vec![MessageEvent::MessageCancelled { campaign_id, at }]),
                S::Failed if self.retryable => {
                    Ok(vec![MessageEvent::MessageCancelled { campaign_id, at }])
                }
                _ => Ok(vec![]),
            },

            MessageCommand::MarkUnknown { at, .. } => match status {
                S::Sending => Ok(vec![MessageEvent::MessageMarkedUnknown {
                    campaign_id,
                    session_id: self.session_id,
                    attempt: self.attempt,
                    at,
                }]),
                _ => Ok(vec![]),
            },

            // Only a `sending` message is reconciled: on any other status
            // its outcome is recorded already (and an `unknown` one may be
            // settled on: see the module docs).
            MessageCommand::Reconcile { .. } if status != S::Sending => Ok(vec![]),
            MessageCommand::Reconcile { outcome, at, .. } => Ok(match outcome {
                LookedUp::WentOut { receipt } => {
                    let mut events = vec![MessageEvent::MessageSent {
                        campaign_id,
                        session_id: self.session_id,
                        to: self.to.clone(),
                        attempt: self.attempt,
                        provider_message_id: self.provider_message_id.clone(),
                        cost: Points::PER_MESSAGE,
                        at,
                    }];
                    if let Some(receipt) = receipt {
                        events.extend(self.receipt_events(receipt, at, false));
                    }
                    events
                }
                LookedUp::NeverLeft => vec![MessageEvent::MessageFailed {
                    campaign_id,
                    session_id: self.session_id,
                    attempt: self.attempt,
                    reason: NEVER_LEFT.to_owned(),
                    retryable: false,
                    at,
                }],
                LookedUp::CannotTell => vec![MessageEvent::MessageMarkedUnknown {
                    campaign_id,
                    session_id: self.session_id,
                    attempt: self.attempt,
                    at,
                }],
            }),
        }
    }
}

impl Aggregate for Message {
    const TYPE: &'static str = "message";
    type Command = MessageCommand;
    type Event = MessageEvent;
    type Error = MessageError;
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
            MessageEvent::MessageQueued {
                message_id,
                campaign_id,
                session_id,
                to,
                name,
                variables,
                content,
                at,
            } => {
                self.id = Some(message_id);
                self.content = content;
                self.status = Some(MessageStatus::Queued);
                self.campaign_id = campaign_id;
                self.session_id = session_id;
                self.to = Some(to);
                self.name = name;
                self.variables = variables;
                self.queued_at = Some(at);
            }
            MessageEvent::MessageSendingStarted {
                session_id,
                attempt,
                provider_message_id,
                ..
            } => {
                self.status = Some(MessageStatus::Sending);
                self.session_id = session_id;
                self.attempt = attempt;
                self.retryable = false;
                self.provider_message_id = provider_message_id;
            }
            MessageEvent::MessageSent {
                provider_message_id,
                cost,
                at,
                ..
            } => {
                self.status = Some(MessageStatus::Sent);
                if provider_message_id.is_some() {
                    self.provider_message_id = provider_message_id;
                }
                self.cost = cost;
                self.sent_at = Some(at);
                self.failure_reason = None;
            }
            MessageEvent::MessageFailed {
                reason, retryable, ..
            } => {
                self.status = Some(MessageStatus::Failed);
                self.failure_reason = Some(reason);
                self.retryable = retryable;
            }
            MessageEvent::MessageDelivered { at, .. } => {
                self.status = Some(MessageStatus::Delivered);
                self.delivered_at = Some(at);
            }
            MessageEvent::MessageRead { at, .. } => {
                self.status = Some(MessageStatus::Read);
                self.read_at = Some(at);
            }
            MessageEvent::MessageCancelled { .. } => {
                self.status = Some(MessageStatus::Cancelled);
                self.retryable = false;
            }
            MessageEvent::MessageMarkedUnknown { .. } => {
                self.status = Some(MessageStatus::Unknown);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone};
    use cqrs_es::DomainEvent;
    use cqrs_es::test::TestFramework;
    use proptest::prelude::*;
    use uuid::Uuid;

    use super::*;
    use crate::types::phone::Region;

    type Given = TestFramework<Message>;

    fn t(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, 2, 0, 0).unwrap() + TimeDelta::seconds(seconds)
    }

    fn message_id() -> MessageId {
        MessageId::from_uuid(Uuid::from_u128(1))
    }

    fn campaign() -> CampaignId {
        CampaignId::from_uuid(Uuid::from_u128(2))
    }

    fn session(n: u128) -> SessionId {
        SessionId::from_uuid(Uuid::from_u128(10 + n))
    }

    fn phone() -> Phone {
        Phone::parse("0812 3456 7890", Region::ID).unwrap()
    }

    fn variables() -> BTreeMap<String, String> {
        BTreeMap::from([("order".to_owned(), "INV-7".to_owned())])
    }

    fn queue() -> MessageCommand {
        MessageCommand::QueueMessage {
            message_id: message_id(),
            campaign_id: campaign(),
            session_id: session(1),
            phone: phone(),
            name: Some("Budi".to_owned()),
            variables: variables(),
            at: t(0),
        }
    }

    fn queued() -> MessageEvent {
        in_batch().into_event()
    }

    fn start_sending(attempt: u32, at: i64) -> MessageCommand {
        MessageCommand::StartSending {
            session_id: session(1),
            attempt,
            text: None,
            provider_message_id: None,
            at: t(at),
        }
    }

    fn sending(attempt: u32, at: i64) -> MessageEvent {
        MessageEvent::MessageSendingStarted {
            campaign_id: campaign(),
            session_id: session(1),
            attempt,
            text: None,
            provider_message_id: None,
            at: t(at),
        }
    }

    fn record_sent() -> MessageCommand {
        MessageCommand::RecordSent {
            attempt: 1,
            provider_message_id: Some("wamid.1".to_owned()),
            cost: Points::PER_MESSAGE,
            at: t(2),
        }
    }

    fn sent() -> MessageEvent {
        MessageEvent::MessageSent {
            campaign_id: campaign(),
            session_id: session(1),
            attempt: 1,
            provider_message_id: Some("wamid.1".to_owned()),
            cost: Points::PER_MESSAGE,
            to: Some(phone().into()),
            at: t(2),
        }
    }

    fn failed(attempt: u32, retryable: bool) -> MessageEvent {
        MessageEvent::MessageFailed {
            campaign_id: campaign(),
            session_id: session(1),
            attempt,
            reason: "timeout".to_owned(),
            retryable,
            at: t(2),
        }
    }

    fn receipt(receipt: Receipt, at: i64) -> MessageCommand {
        MessageCommand::RecordReceipt { receipt, at: t(at) }
    }

    fn delivered(at: i64) -> MessageEvent {
        MessageEvent::MessageDelivered {
            campaign_id: campaign(),
            at: t(at),
        }
    }

    fn read(at: i64) -> MessageEvent {
        MessageEvent::MessageRead {
            campaign_id: campaign(),
            at: t(at),
        }
    }

    fn cancelled(at: i64) -> MessageEvent {
        MessageEvent::MessageCancelled {
            campaign_id: campaign(),
            at: t(at),
        }
    }

    fn unknown() -> MessageEvent {
        MessageEvent::MessageMarkedUnknown {
            campaign_id: campaign(),
            session_id: session(1),
            attempt: 1,
            at: t(3),
        }
    }

    fn fold(events: Vec<MessageEvent>) -> Message {
        let mut message = Message::default();
        for event in events {
            message.apply(event);
        }
        message
    }

    // --- queue ------------------------------------------------------------

    #[test]
    fn queues_a_message_for_its_recipient() {
        Given::with(())
            .given_no_previous_events()
            .when(queue())
            .then_expect_events(vec![queued()]);
        let message = fold(vec![queued()]);
        assert_eq!(message.id(), Some(message_id()));
        assert_eq!(message.status(), Some(MessageStatus::Queued));
        assert_eq!(message.campaign_id(), campaign());
        assert_eq!(message.session_id(), session(1));
        assert_eq!(message.phone().map(Phone::as_str), Some("+6281234567890"));
        assert_eq!(message.name(), Some("Budi"));
        assert_eq!(message.variables(), &variables());
        assert_eq!(message.queued_at(), Some(t(0)));
        assert_eq!(message.attempt(), 0);
        assert_eq!(message.cost(), Points::ZERO);
        assert!(!message.is_final());
    }

    #[test]
    fn refuses_to_queue_a_message_twice() {
        Given::with(())
            .given(vec![queued()])
            .when(queue())
            .then_expect_error(MessageError::AlreadyQueued);
    }

    fn in_batch() -> QueuedMessage {
        QueuedMessage {
            message_id: message_id(),
            campaign_id: campaign(),
            session_id: session(1),
            to: phone().into(),
            name: Some("Budi".to_owned()),
            variables: variables(),
            content: None,
            at: t(0),
        }
    }

    fn from_batch(command: MessageCommand) -> MessageCommand {
        MessageCommand::FromBatch {
            queued: Box::new(in_batch()),
            command: Box::new(command),
        }
    }

    #[test]
    fn a_message_queued_in_a_batch_starts_its_history_at_its_first_command() {
        Given::with(())
            .given_no_previous_events()
            .when(from_batch(start_sending(1, 1)))
            .then_expect_events(vec![queued(), sending(1, 1)]);
        Given::with(())
            .given_no_previous_events()
            .when(from_batch(MessageCommand::CancelMessage { at: t(1) }))
            .then_expect_events(vec![queued(), cancelled(1)]);
        assert_eq!(
            Message::queued_in_batch(&in_batch()),
            fold(vec![queued()]),
            "the state a sender reads before the first commit is the one after it"
        );
    }

    #[test]
    fn a_batch_command_to_a_message_with_a_history_is_its_command_alone() {
        Given::with(())
            .given(vec![queued()])
            .when(from_batch(start_sending(1, 1)))
            .then_expect_events(vec![sending(1, 1)]);
        // Cancelled first (its first commit): a sender coming second is
        // refused as on any cancelled message.
        Given::with(())
            .given(vec![queued(), cancelled(1)])
            .when(from_batch(start_sending(1, 2)))
            .then_expect_error(MessageError::InvalidState {
                action: "start sending",
                status: MessageStatus::Cancelled,
            });
        Given::with(())
            .given(vec![queued(), sending(1, 1)])
            .when(from_batch(MessageCommand::CancelMessage { at: t(2) }))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_batch_command_refused_on_the_queued_message_records_nothing() {
        Given::with(())
            .given_no_previous_events()
            .when(from_batch(record_sent()))
            .then_expect_error(MessageError::InvalidState {
                action: "record as sent",
                status: MessageStatus::Queued,
            });
    }

    #[test]
    fn refuses_any_command_to_a_message_that_does_not_exist() {
        for command in [
            start_sending(1, 1),
            record_sent(),
            receipt(Receipt::Delivered, 3),
            MessageCommand::CancelMessage { at: t(1) },
            MessageCommand::MarkUnknown {
                attempt: 1,
                at: t(1),
            },
        ] {
            Given::with(())
                .given_no_previous_events()
                .when(command)
                .then_expect_error(MessageError::NotFound);
        }
    }

    // --- start sending ----------------------------------------------------

    #[test]
    fn a_sender_takes_a_queued_message_as_its_first_attempt() {
        Given::with(())
            .given(vec![queued()])
            .when(MessageCommand::StartSending {
                session_id: session(2),
                attempt: 1,
                text: Some("Halo Budi".to_owned()),
                provider_message_id: None,
                at: t(1),
            })
            .then_expect_events(vec![MessageEvent::MessageSendingStarted {
                campaign_id: campaign(),
                session_id: session(2),
                attempt: 1,
                text: Some("Halo Budi".to_owned()),
                provider_message_id: None,
                at: t(1),
            }]);
        let message = fold(vec![queued(), sending(1, 1)]);
        assert_eq!(message.status(), Some(MessageStatus::Sending));
        assert_eq!(message.attempt(), 1);
    }

    #[test]
    fn an_attempt_recorded_before_texts_were_kept_still_reads_and_the_text_round_trips() {
        let old = serde_json::json!({"MessageSendingStarted": {
            "campaign_id": campaign(), "session_id": session(1), "attempt": 1, "at": t(1)}});
        assert_eq!(
            serde_json::from_value::<MessageEvent>(old.clone()).unwrap(),
            sending(1, 1)
        );
        // Without a text, an attempt is written as before.
        assert_eq!(serde_json::to_value(sending(1, 1)).unwrap(), old);
        let with_text = MessageEvent::MessageSendingStarted {
            campaign_id: campaign(),
            session_id: session(1),
            attempt: 1,
            text: Some("Hai Budi".to_owned()),
            provider_message_id: None,
            at: t(1),
        };
        let json = serde_json::to_value(&with_text).unwrap();
        assert_eq!(json["MessageSendingStarted"]["text"], "Hai Budi");
        assert_eq!(
            serde_json::from_value::<MessageEvent>(json).unwrap(),
            with_text
        );
    }

    #[test]
    fn refuses_a_first_attempt_numbered_zero() {
        Given::with(())
            .given(vec![queued()])
            .when(start_sending(0, 1))
            .then_expect_error(MessageError::StaleAttempt {
                attempt: 0,
                last: 0,
            });
    }

    #[test]
    fn retries_a_retryable_failure_with_a_higher_attempt() {
        Given::with(())
            .given(vec![queued(), sending(1, 1), failed(1, true)])
            .when(MessageCommand::StartSending {
                session_id: session(2),
                attempt: 2,
                text: None,
                provider_message_id: None,
                at: t(40),
            })
            .then_expect_events(vec![MessageEvent::MessageSendingStarted {
                campaign_id: campaign(),
                session_id: session(2),
                attempt: 2,
                text: None,
                provider_message_id: None,
                at: t(40),
            }]);
    }

    #[test]
    fn refuses_a_retry_that_does_not_increase_the_attempt() {
        Given::with(())
            .given(vec![queued(), sending(1, 1), failed(1, true)])
            .when(start_sending(1, 40))
            .then_expect_error(MessageError::StaleAttempt {
                attempt: 1,
                last: 1,
            });
    }

    #[test]
    fn refuses_to_retry_a_failure_that_is_not_retryable() {
        Given::with(())
            .given(vec![queued(), sending(1, 1), failed(1, false)])
            .when(start_sending(2, 40))
            .then_expect_error(MessageError::FailedForGood);
    }

    #[test]
    fn refuses_to_send_again_a_message_whose_outcome_is_unknown() {
        Given::with(())
            .given(vec![queued(), sending(1, 1), unknown()])
            .when(start_sending(2, 40))
            .then_expect_error(MessageError::OutcomeUnknown);
    }

    #[test]
    fn refuses_to_start_sending_a_message_that_is_sending_sent_or_cancelled() {
        for (history, status) in [
            (vec![queued(), sending(1, 1)], MessageStatus::Sending),
            (vec![queued(), sending(1, 1), sent()], MessageStatus::Sent),
            (
                vec![queued(), sending(1, 1), sent(), delivered(3), read(4)],
                MessageStatus::Read,
            ),
            (vec![queued(), cancelled(1)], MessageStatus::Cancelled),
        ] {
            Given::with(())
                .given(history)
                .when(start_sending(2, 40))
                .then_expect_error(MessageError::InvalidState {
                    action: "start sending",
                    status,
                });
        }
    }

    // --- sent -------------------------------------------------------------

    #[test]
    fn records_the_send_with_its_cost() {
        Given::with(())
            .given(vec![queued(), sending(1, 1)])
            .when(record_sent())
            .then_expect_events(vec![sent()]);
        let message = fold(vec![queued(), sending(1, 1), sent()]);
        assert_eq!(message.status(), Some(MessageStatus::Sent));
        assert_eq!(message.cost(), Points::PER_MESSAGE);
        assert_eq!(message.sent_at(), Some(t(2)));
        assert_eq!(message.provider_message_id(), Some("wamid.1"));
        assert!(message.is_final());
    }

    #[test]
    fn refuses_a_cost_other_than_the_price_of_one_message() {
        Given::with(())
            .given(vec![queued(), sending(1, 1)])
            .when(MessageCommand::RecordSent {
                attempt: 1,
                provider_message_id: None,
                cost: Points::new(3),
                at: t(2),
            })
            .then_expect_error(MessageError::WrongCost {
                expected: Points::PER_MESSAGE,
                got: Points::new(3),
            });
    }

    #[test]
    fn a_repeated_sent_report_records_nothing() {
        for history in [
            vec![queued(), sending(1, 1), sent()],
            vec![queued(), sending(1, 1), sent(), delivered(3)],
            vec![queued(), sending(1, 1), sent(), delivered(3), read(4)],
        ] {
            Given::with(())
                .given(history)
                .when(record_sent())
                .then_expect_events(vec![]);
        }
    }

    #[test]
    fn refuses_to_record_as_sent_a_message_no_sender_is_sending() {
        for (history, status) in [
            (vec![queued()], MessageStatus::Queued),
            (
                vec![queued(), sending(1, 1), failed(1, true)],
                MessageStatus::Failed,
            ),
            (
                vec![queued(), sending(1, 1), unknown()],
                MessageStatus::Unknown,
            ),
            (vec![queued(), cancelled(1)], MessageStatus::Cancelled),
        ] {
            Given::with(())
                .given(history)
                .when(record_sent())
                .then_expect_error(MessageError::InvalidState {
                    action: "record as sent",
                    status,
                });
        }
    }

    // --- failed -----------------------------------------------------------

    #[test]
    fn records_a_failure_with_its_attempt_count() {
        Given::with(())
            .given(vec![
                queued(),
                sending(1, 1),
                failed(1, true),
                sending(2, 40),
            ])
            .when(MessageCommand::RecordFailed {
                attempt: 2,
                reason: "timeout".to_owned(),
                retryable: false,
                at: t(2),
            })
            .then_expect_events(vec![failed(2, false)]);
        let message = fold(vec![queued(), sending(1, 1), failed(1, true)]);
        assert_eq!(message.status(), Some(MessageStatus::Failed));
        assert_eq!(message.failure_reason(), Some("timeout"));
        assert!(message.is_retryable());
        assert!(!message.is_final());
        let message = fold(vec![queued(), sending(1, 1), failed(1, false)]);
        assert!(!message.is_retryable());
        assert!(message.is_final());
    }

    #[test]
    fn a_late_outcome_of_an_earlier_attempt_changes_nothing() {
        // Attempt 1 failed, attempt 2 is under way; attempt 1's failure is
        // delivered again.
        let history = vec![queued(), sending(1, 1), failed(1, true), sending(2, 40)];
        for late in [
            MessageCommand::RecordFailed {
                attempt: 1,
                reason: "timeout".to_owned(),
                retryable: true,
                at: t(3),
            },
            MessageCommand::MarkUnknown {
                attempt: 1,
                at: t(3),
            },
            MessageCommand::RecordSent {
                attempt: 1,
                provider_message_id: None,
                cost: Points::PER_MESSAGE,
                at: t(3),
            },
        ] {
            Given::with(())
                .given(history.clone())
                .when(late)
                .then_expect_events(vec![]);
        }
    }

    #[test]
    fn refuses_an_outcome_of_an_attempt_not_started() {
        Given::with(())
            .given(vec![queued(), sending(1, 1)])
            .when(MessageCommand::RecordFailed {
                attempt: 2,
                reason: "timeout".to_owned(),
                retryable: true,
                at: t(3),
            })
            .then_expect_error(MessageError::InvalidState {
                action: "record the outcome of an attempt not started",
                status: MessageStatus::Sending,
            });
    }

    #[test]
    fn refuses_a_failure_of_a_message_that_is_not_sending() {
        for (history, status) in [
            (vec![queued()], MessageStatus::Queued),
            (vec![queued(), sending(1, 1), sent()], MessageStatus::Sent),
            (
                vec![queued(), sending(1, 1), failed(1, true)],
                MessageStatus::Failed,
            ),
        ] {
            Given::with(())
                .given(history)
                .when(MessageCommand::RecordFailed {
                    attempt: 1,
                    reason: "timeout".to_owned(),
                    retryable: true,
                    at: t(5),
                })
                .then_expect_error(MessageError::InvalidState {
                    action: "record a failure of",
                    status,
                });
        }
    }

    // --- receipts ---------------------------------------------------------

    #[test]
    fn records_the_delivery_of_a_sent_message() {
        Given::with(())
            .given(vec![queued(), sending(1, 1), sent()])
            .when(receipt(Receipt::Delivered, 3))
            .then_expect_events(vec![delivered(3)]);
        let message = fold(vec![queued(), sending(1, 1), sent(), delivered(3)]);
        assert_eq!(message.status(), Some(MessageStatus::Delivered));
        assert_eq!(message.delivered_at(), Some(t(3)));
    }

    #[test]
    fn a_read_before_delivered_records_both_at_the_same_instant() {
        Given::with(())
            .given(vec![queued(), sending(1, 1), sent()])
            .when(receipt(Receipt::Read, 4))
            .then_expect_events(vec![delivered(4), read(4)]);
        let message = fold(vec![queued(), sending(1, 1), sent(), delivered(4), read(4)]);
        assert_eq!(message.status(), Some(MessageStatus::Read));
        assert_eq!(message.delivered_at(), Some(t(4)));
        assert_eq!(message.read_at(), Some(t(4)));
    }

    #[test]
    fn records_the_read_of_a_delivered_message() {
        Given::with(())
            .given(vec![queued(), sending(1, 1), sent(), delivered(3)])
            .when(receipt(Receipt::Read, 9))
            .then_expect_events(vec![read(9)]);
    }

    #[test]
    fn a_late_delivered_after_read_records_nothing() {
        Given::with(())
            .given(vec![queued(), sending(1, 1), sent(), delivered(4), read(4)])
            .when(receipt(Receipt::Delivered, 5))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_repeated_receipt_records_nothing() {
        Given::with(())
            .given(vec![queued(), sending(1, 1), sent(), delivered(3)])
            .when(receipt(Receipt::Delivered, 5))
            .then_expect_events(vec![]);
        Given::with(())
            .given(vec![queued(), sending(1, 1), sent(), delivered(3), read(4)])
            .when(receipt(Receipt::Read, 5))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_receipt_on_a_sending_message_proves_the_send_and_records_it_with_its_cost() {
        let sent_by_receipt = MessageEvent::MessageSent {
            campaign_id: campaign(),
            session_id: session(1),
            attempt: 1,
            provider_message_id: None,
            cost: Points::PER_MESSAGE,
            to: Some(phone().into()),
            at: t(3),
        };
        Given::with(())
            .given(vec![queued(), sending(1, 1)])
            .when(receipt(Receipt::Delivered, 3))
            .then_expect_events(vec![sent_by_receipt.clone(), delivered(3)]);
        Given::with(())
            .given(vec![queued(), sending(1, 1)])
            .when(receipt(Receipt::Read, 3))
            .then_expect_events(vec![sent_by_receipt.clone(), delivered(3), read(3)]);
        // The driver's answer arrives after: nothing more, no second charge.
        Given::with(())
            .given(vec![queued(), sending(1, 1), sent_by_receipt, delivered(3)])
            .when(record_sent())
            .then_expect_events(vec![]);
    }

    #[test]
    fn refuses_a_receipt_for_a_message_no_sender_has_taken() {
        Given::with(())
            .given(vec![queued()])
            .when(receipt(Receipt::Delivered, 3))
            .then_expect_error(MessageError::InvalidState {
                action: "record a receipt for",
                status: MessageStatus::Queued,
            });
    }

    #[test]
    fn receipts_on_failed_cancelled_or_unknown_messages_record_nothing() {
        for history in [
            vec![queued(), sending(1, 1), failed(1, true)],
            vec![queued(), sending(1, 1), failed(1, false)],
            vec![queued(), cancelled(1)],
            vec![queued(), sending(1, 1), unknown()],
        ] {
            for kind in [Receipt::Delivered, Receipt::Read] {
                Given::with(())
                    .given(history.clone())
                    .when(receipt(kind, 9))
                    .then_expect_events(vec![]);
            }
        }
    }

    // --- cancel -----------------------------------------------------------

    #[test]
    fn cancels_a_queued_message() {
        Given::with(())
            .given(vec![queued()])
            .when(MessageCommand::CancelMessage { at: t(1) })
            .then_expect_events(vec![cancelled(1)]);
        let message = fold(vec![queued(), cancelled(1)]);
        assert_eq!(message.status(), Some(MessageStatus::Cancelled));
        assert!(message.is_final());
    }

    #[test]
    fn cancels_a_retryable_failure_so_that_it_is_not_retried() {
        Given::with(())
            .given(vec![queued(), sending(1, 1), failed(1, true)])
            .when(MessageCommand::CancelMessage { at: t(9) })
            .then_expect_events(vec![cancelled(9)]);
        Given::with(())
            .given(vec![queued(), sending(1, 1), failed(1, true), cancelled(9)])
            .when(start_sending(2, 10))
            .then_expect_error(MessageError::InvalidState {
                action: "start sending",
                status: MessageStatus::Cancelled,
            });
    }

    #[test]
    fn cancelling_a_message_handed_to_a_sender_or_final_records_nothing() {
        for history in [
            vec![queued(), sending(1, 1)],
            vec![queued(), sending(1, 1), sent()],
            vec![queued(), sending(1, 1), sent(), delivered(3)],
            vec![queued(), sending(1, 1), sent(), delivered(3), read(4)],
            vec![queued(), sending(1, 1), failed(1, false)],
            vec![queued(), sending(1, 1), unknown()],
            vec![queued(), cancelled(1)],
        ] {
            Given::with(())
                .given(history)
                .when(MessageCommand::CancelMessage { at: t(9) })
                .then_expect_events(vec![]);
        }
    }

    // --- unknown ----------------------------------------------------------

    #[test]
    fn marks_a_message_unknown_when_the_engine_died_mid_send() {
        Given::with(())
            .given(vec![queued(), sending(1, 1)])
            .when(MessageCommand::MarkUnknown {
                attempt: 1,
                at: t(3),
            })
            .then_expect_events(vec![unknown()]);
        let message = fold(vec![queued(), sending(1, 1), unknown()]);
        assert_eq!(message.status(), Some(MessageStatus::Unknown));
        assert_eq!(message.cost(), Points::ZERO);
        assert!(message.is_final());
    }

    #[test]
    fn marking_unknown_a_message_that_is_not_sending_records_nothing() {
        for history in [
            vec![queued()],
            vec![queued(), sending(1, 1), sent()],
            vec![queued(), sending(1, 1), failed(1, true)],
            vec![queued(), sending(1, 1), unknown()],
            vec![queued(), cancelled(1)],
        ] {
            Given::with(())
                .given(history)
                .when(MessageCommand::MarkUnknown {
                    attempt: 1,
                    at: t(9),
                })
                .then_expect_events(vec![]);
        }
    }

    // --- reconcile ---------------------------------------------------------

    fn sending_as(attempt: u32, id: &str) -> MessageEvent {
        MessageEvent::MessageSendingStarted {
            campaign_id: campaign(),
            session_id: session(1),
            attempt,
            text: None,
            provider_message_id: Some(id.to_owned()),
            at: t(1),
        }
    }

    fn reconcile(attempt: u32, outcome: LookedUp) -> MessageCommand {
        MessageCommand::Reconcile {
            attempt,
            outcome,
            at: t(9),
        }
    }

    #[test]
    fn an_attempt_records_the_provider_id_chosen_before_it_went_out() {
        Given::with(())
            .given(vec![queued()])
            .when(MessageCommand::StartSending {
                session_id: session(1),
                attempt: 1,
                text: None,
                provider_message_id: Some("sim-1".to_owned()),
                at: t(1),
            })
            .then_expect_events(vec![sending_as(1, "sim-1")]);
        let message = fold(vec![queued(), sending_as(1, "sim-1")]);
        assert_eq!(message.provider_message_id(), Some("sim-1"));
        // A command written before ids were chosen still reads.
        let old = serde_json::json!({"StartSending": {
            "session_id": session(1), "attempt": 1, "at": t(1)}});
        assert_eq!(
            serde_json::from_value::<MessageCommand>(old).unwrap(),
            start_sending(1, 1)
        );
    }

    #[test]
    fn a_send_the_peer_has_is_reconciled_as_sent_with_its_cost_under_the_chosen_id() {
        let sent_as = MessageEvent::MessageSent {
            campaign_id: campaign(),
            session_id: session(1),
            to: Some(phone().into()),
            attempt: 1,
            provider_message_id: Some("sim-1".to_owned()),
            cost: Points::PER_MESSAGE,
            at: t(9),
        };
        Given::with(())
            .given(vec![queued(), sending_as(1, "sim-1")])
            .when(reconcile(1, LookedUp::WentOut { receipt: None }))
            .then_expect_events(vec![sent_as.clone()]);
        // With what the peer knows of it since: a read says delivered too.
        Given::with(())
            .given(vec![queued(), sending_as(1, "sim-1")])
            .when(reconcile(
                1,
                LookedUp::WentOut {
                    receipt: Some(Receipt::Read),
                },
            ))
            .then_expect_events(vec![sent_as.clone(), delivered(9), read(9)]);
        let message = fold(vec![queued(), sending_as(1, "sim-1"), sent_as]);
        assert_eq!(message.status(), Some(MessageStatus::Sent));
        assert_eq!(message.cost(), Points::PER_MESSAGE);
        assert_eq!(message.provider_message_id(), Some("sim-1"));
    }

    #[test]
    fn a_send_that_never_left_fails_for_good_and_is_not_sent_again() {
        let never_left = MessageEvent::MessageFailed {
            campaign_id: campaign(),
            session_id: session(1),
            attempt: 1,
            reason: NEVER_LEFT.to_owned(),
            retryable: false,
            at: t(9),
        };
        Given::with(())
            .given(vec![queued(), sending_as(1, "sim-1")])
            .when(reconcile(1, LookedUp::NeverLeft))
            .then_expect_events(vec![never_left.clone()]);
        Given::with(())
            .given(vec![queued(), sending_as(1, "sim-1"), never_left.clone()])
            .when(start_sending(2, 10))
            .then_expect_error(MessageError::FailedForGood);
        assert!(fold(vec![queued(), sending_as(1, "sim-1"), never_left]).is_final());
    }

    #[test]
    fn a_send_the_peer_cannot_tell_about_stays_unknown() {
        Given::with(())
            .given(vec![queued(), sending(1, 1)])
            .when(reconcile(1, LookedUp::CannotTell))
            .then_expect_events(vec![MessageEvent::MessageMarkedUnknown {
                campaign_id: campaign(),
                session_id: session(1),
                attempt: 1,
                at: t(9),
            }]);
    }

    #[test]
    fn reconciling_a_message_that_is_not_sending_records_nothing() {
        // Unknown included: its campaign may be settled on it already, so a
        // send found later is not charged.
        for history in [
            vec![queued()],
            vec![queued(), sending(1, 1), sent()],
            vec![queued(), sending(1, 1), failed(1, true)],
            vec![queued(), sending(1, 1), unknown()],
            vec![queued(), cancelled(1)],
        ] {
            for outcome in [
                LookedUp::WentOut { receipt: None },
                LookedUp::NeverLeft,
                LookedUp::CannotTell,
            ] {
                Given::with(())
                    .given(history.clone())
                    .when(reconcile(1, outcome))
                    .then_expect_events(vec![]);
            }
        }
    }

    #[test]
    fn a_reconciliation_of_another_attempt_records_nothing_or_is_refused() {
        Given::with(())
            .given(vec![
                queued(),
                sending(1, 1),
                failed(1, true),
                sending_as(2, "sim-2"),
            ])
            .when(reconcile(1, LookedUp::NeverLeft))
            .then_expect_events(vec![]);
        Given::with(())
            .given(vec![queued(), sending(1, 1)])
            .when(reconcile(2, LookedUp::NeverLeft))
            .then_expect_error(MessageError::InvalidState {
                action: "record the outcome of an attempt not started",
                status: MessageStatus::Sending,
            });
    }

    // --- names and shapes -------------------------------------------------

    #[test]
    fn every_refusal_has_its_api_code() {
        let cases = [
            (MessageError::AlreadyQueued, "conflict"),
            (
                MessageError::StaleAttempt {
                    attempt: 1,
                    last: 1,
                },
                "conflict",
            ),
            (MessageError::NotFound, "not_found"),
            (
                MessageError::InvalidState {
                    action: "start sending",
                    status: MessageStatus::Sent,
                },
                "invalid_state",
            ),
            (MessageError::FailedForGood, "invalid_state"),
            (MessageError::OutcomeUnknown, "invalid_state"),
            (
                MessageError::WrongCost {
                    expected: Points::PER_MESSAGE,
                    got: Points::ZERO,
                },
                "validation_failed",
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code, "{error:?}");
        }
        assert_eq!(
            MessageError::InvalidState {
                action: "start sending",
                status: MessageStatus::Sent,
            }
            .to_string(),
            "cannot start sending a sent message"
        );
    }

    #[test]
    fn events_are_named_after_their_variant_and_serialized_externally_tagged() {
        assert_eq!(Message::TYPE, "message");
        for event in [
            queued(),
            sending(1, 1),
            sent(),
            failed(1, true),
            delivered(3),
            read(4),
            cancelled(1),
            unknown(),
        ] {
            let json = serde_json::to_value(&event).unwrap();
            let tag = json.as_object().unwrap().keys().next().unwrap().clone();
            assert_eq!(tag, event.event_type());
            assert_eq!(event.event_version(), "1.0");
            assert_eq!(serde_json::from_value::<MessageEvent>(json).unwrap(), event);
        }
        let mut json = serde_json::to_value(queued()).unwrap();
        assert_eq!(json["MessageQueued"]["to"], "+6281234567890");
        // Recorded before groups could be sent to: `phone`.
        let to = json["MessageQueued"]
            .as_object_mut()
            .unwrap()
            .remove("to")
            .unwrap();
        json["MessageQueued"]["phone"] = to;
        assert_eq!(
            serde_json::from_value::<MessageEvent>(json).unwrap(),
            queued()
        );
        for status in [
            MessageStatus::Queued,
            MessageStatus::Sending,
            MessageStatus::Sent,
            MessageStatus::Delivered,
            MessageStatus::Read,
            MessageStatus::Failed,
            MessageStatus::Cancelled,
            MessageStatus::Unknown,
        ] {
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        assert_eq!(serde_json::to_value(Receipt::Read).unwrap(), "read");
    }

    #[test]
    fn the_aggregate_state_round_trips_through_json_for_snapshots() {
        let message = fold(vec![queued(), sending(1, 1), sent(), delivered(3)]);
        let json = serde_json::to_string(&message).unwrap();
        assert_eq!(serde_json::from_str::<Message>(&json).unwrap(), message);
    }

    // --- invariants over generated histories ------------------------------

    /// The position in queued < sending < sent < delivered < read; `None`
    /// for the final statuses off that line.
    fn rank(status: MessageStatus) -> Option<u8> {
        match status {
            MessageStatus::Queued => Some(0),
            MessageStatus::Sending => Some(1),
            MessageStatus::Sent => Some(2),
            MessageStatus::Delivered => Some(3),
            MessageStatus::Read => Some(4),
            MessageStatus::Failed | MessageStatus::Cancelled | MessageStatus::Unknown => None,
        }
    }

    fn any_command() -> impl Strategy<Value = MessageCommand> {
        let at = 0i64..1_000;
        prop_oneof![
            1 => Just(queue()),
            4 => (0u128..3, 0u32..5, at.clone()).prop_map(|(n, attempt, a)| {
                MessageCommand::StartSending {
                    session_id: session(n),
                    attempt,
                    text: None,
                    provider_message_id: (attempt % 2 == 0).then(|| format!("sim-{attempt}")),
                    at: t(a),
                }
            }),
            3 => (prop::bool::weighted(0.9), 1u32..4, at.clone()).prop_map(|(right_cost, attempt, a)| {
                MessageCommand::RecordSent { attempt,
                    provider_message_id: Some("wamid".to_owned()),
                    cost: if right_cost { Points::PER_MESSAGE } else { Points::new(1) },
                    at: t(a),
                }
            }),
            3 => (any::<bool>(), 1u32..4, at.clone()).prop_map(|(retryable, attempt, a)| {
                MessageCommand::RecordFailed { attempt,
                    reason: "boom".to_owned(),
                    retryable,
                    at: t(a),
                }
            }),
            4 => (prop_oneof![Just(Receipt::Delivered), Just(Receipt::Read)], at.clone())
                .prop_map(|(kind, a)| MessageCommand::RecordReceipt { receipt: kind, at: t(a) }),
            1 => at.clone().prop_map(|a| MessageCommand::CancelMessage { at: t(a) }),
            1 => (1u32..4, at.clone()).prop_map(|(attempt, a)| MessageCommand::MarkUnknown { attempt, at: t(a) }),
            2 => (1u32..4, prop_oneof![
                Just(LookedUp::WentOut { receipt: None }),
                Just(LookedUp::WentOut { receipt: Some(Receipt::Delivered) }),
                Just(LookedUp::WentOut { receipt: Some(Receipt::Read) }),
                Just(LookedUp::NeverLeft),
                Just(LookedUp::CannotTell),
            ], at).prop_map(|(attempt, outcome, a)| MessageCommand::Reconcile { attempt, outcome, at: t(a) }),
        ]
    }

    proptest! {
        #[test]
        fn statuses_never_regress_and_a_message_is_sent_at_most_once(
            commands in prop::collection::vec(any_command(), 0..40)
        ) {
            let mut history = vec![queued()];
            for command in commands {
                let result = Given::with(())
                    .given(history.clone())
                    .when(command)
                    .inspect_result();
                let Ok(events) = result else { continue };
                for event in events {
                    let prior = fold(history.clone());
                    history.push(event.clone());
                    let after = fold(history.clone());
                    let (Some(from), Some(to)) = (prior.status(), after.status()) else {
                        return Err(TestCaseError::fail("a queued message lost its status"));
                    };
                    match (rank(from), rank(to)) {
                        // Along the line: forwards only.
                        (Some(a), Some(b)) => prop_assert!(b > a, "{from} -> {to}"),
                        // Off the line: from queued or sending only.
                        (Some(_), None) => prop_assert!(
                            matches!(
                                (from, to),
                                (MessageStatus::Queued, MessageStatus::Cancelled)
                                    | (MessageStatus::Sending, MessageStatus::Failed)
                                    | (MessageStatus::Sending, MessageStatus::Unknown)
                            ),
                            "{from} -> {to}"
                        ),
                        // Back from a final status: only a retryable
                        // failure, retried or cancelled.
                        (None, _) => prop_assert!(
                            prior.is_retryable()
                                && matches!(to, MessageStatus::Sending | MessageStatus::Cancelled),
                            "{from} -> {to} (retryable: {})", prior.is_retryable()
                        ),
                    }
                    if let MessageEvent::MessageSendingStarted { attempt, .. } = event {
                        prop_assert!(attempt > prior.attempt());
                    }
                    if let MessageEvent::MessageSent { cost, .. } = event {
                        prop_assert_eq!(cost, Points::PER_MESSAGE);
                    }
                    if after.read_at().is_some() {
                        prop_assert!(after.delivered_at().is_some());
                    }
                }
                let sends = history
                    .iter()
                    .filter(|e| matches!(e, MessageEvent::MessageSent { .. }))
                    .count();
                prop_assert!(sends <= 1, "{sends} MessageSent in {history:?}");
                let message = fold(history.clone());
                prop_assert_eq!(
                    message.cost(),
                    if sends == 1 { Points::PER_MESSAGE } else { Points::ZERO }
                );
            }
        }
    }
}
