//! What can be asked of, or reported to, a message.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::events::MessageEvent;
use crate::types::phone::Phone;
use crate::types::{CampaignId, Chat, MessageContent, MessageId, Points, SessionId};

/// A message as the fan-out queued it in a recipient batch
/// ([`crate::recipient_batch`]), before the message has a history of its
/// own: what its `MessageQueued` says once recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedMessage {
    /// The message's id.
    pub message_id: MessageId,
    /// Its campaign.
    pub campaign_id: CampaignId,
    /// The sender it is meant for.
    pub session_id: SessionId,
    /// The recipient: a person or a group.
    pub to: Chat,
    /// The recipient's name, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The recipient's values for the template's variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// What it says, when it was written for its recipient alone (a single
    /// send); `None`: its campaign's template, rendered at send time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<MessageContent>,
    /// When its batch was queued (or it was admitted to it).
    pub at: DateTime<Utc>,
}

impl QueuedMessage {
    /// The message's first event.
    pub fn into_event(self) -> MessageEvent {
        MessageEvent::MessageQueued {
            message_id: self.message_id,
            campaign_id: self.campaign_id,
            session_id: self.session_id,
            to: self.to,
            name: self.name,
            variables: self.variables,
            content: self.content,
            at: self.at,
        }
    }
}

/// A delivery receipt reported by WhatsApp through the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Receipt {
    /// The recipient's phone received it (two grey ticks).
    Delivered,
    /// The recipient opened it (blue ticks; best effort).
    Read,
}

/// What the driver's peer says became of a message, asked by its id
/// after the answer to its send was lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LookedUp {
    /// The peer has it: it went out.
    WentOut {
        /// How far it got since, if the peer says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        receipt: Option<Receipt>,
    },
    /// The peer has no message of that id: it never left.
    NeverLeft,
    /// The peer cannot say (it has no lookup, or did not answer).
    CannotTell,
}

/// A command to the message aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MessageCommand {
    /// Queues the message for one recipient of a campaign (issued by the
    /// campaign's fan-out).
    QueueMessage {
        /// The message's id.
        message_id: MessageId,
        /// Its campaign.
        campaign_id: CampaignId,
        /// The sender it is meant for (the rotation may send it from
        /// another one: see [`MessageCommand::StartSending`]).
        session_id: SessionId,
        /// The recipient.
        phone: Phone,
        /// The recipient's name, if known.
        name: Option<String>,
        /// The recipient's values for the template's variables.
        variables: BTreeMap<String, String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// `command` to a message queued in a recipient batch: when the
    /// message has no history yet, its `MessageQueued` (from `queued`) is
    /// recorded first, in the same commit as what `command` decides on the
    /// queued message; otherwise `command` alone, as if sent directly.
    FromBatch {
        /// The message as its batch queued it.
        queued: Box<QueuedMessage>,
        /// What is asked of it (`StartSending`, `CancelMessage`).
        command: Box<MessageCommand>,
    },
    /// A sender takes the message: queued → sending, or a retryable failure
    /// → sending again. `attempt` must be greater than every earlier one
    /// (the first is 1). Refused when the outcome of an earlier attempt is
    /// unknown.
    StartSending {
        /// The sender.
        session_id: SessionId,
        /// The attempt number, from 1.
        attempt: u32,
        /// The text this attempt sends, as rendered from the campaign's
        /// template (`None`: it could not be rendered, and the attempt
        /// fails).
        #[serde(default)]
        text: Option<String>,
        /// The driver's id of the message, chosen before it goes out
        /// ([`crate::message`]: what a lookup after a crash asks the peer
        /// about); `None` when the driver cannot choose one.
        #[serde(default)]
        provider_message_id: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The driver says the message was sent: sending → sent. Reported again
    /// (or after a receipt got there first): nothing is recorded.
    RecordSent {
        /// The attempt this outcome belongs to (as given to `StartSending`):
        /// an outcome of an earlier attempt, redelivered late, is ignored.
        attempt: u32,
        /// WhatsApp's id of the message, when the driver has one.
        provider_message_id: Option<String>,
        /// What it costs: must be [`Points::PER_MESSAGE`].
        cost: Points,
        /// When.
        at: DateTime<Utc>,
    },
    /// The driver says the attempt failed: sending → failed.
    RecordFailed {
        /// The attempt this outcome belongs to (as given to `StartSending`):
        /// an outcome of an earlier attempt, redelivered late, is ignored.
        attempt: u32,
        /// Why, in the driver's words.
        reason: String,
        /// Whether the engine will try again (false on its last attempt).
        retryable: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// A delivery or read receipt (see the module docs for late, repeated
    /// and early receipts).
    RecordReceipt {
        /// Which.
        receipt: Receipt,
        /// When.
        at: DateTime<Utc>,
    },
    /// Cancels a queued message (or a retryable failure); on any other
    /// status nothing is recorded.
    CancelMessage {
        /// When.
        at: DateTime<Utc>,
    },
    /// What the driver's peer says became of an attempt whose outcome was
    /// never recorded (its engine died mid-send, or the answer was lost):
    /// sending → sent (with the receipts the peer knows of), failed for
    /// good, or unknown. On any other status nothing is recorded.
    Reconcile {
        /// The attempt this outcome belongs to (as given to `StartSending`):
        /// an earlier attempt's is ignored.
        attempt: u32,
        /// What the peer said.
        outcome: LookedUp,
        /// When.
        at: DateTime<Utc>,
    },
    /// The engine that was sending the message died mid-send: sending →
    /// unknown. On any other status nothing is recorded.
    MarkUnknown {
        /// The attempt this outcome belongs to (as given to `StartSending`):
        /// an outcome of an earlier attempt, redelivered late, is ignored.
        attempt: u32,
        /// When.
        at: DateTime<Utc>,
    },
}
