//! What happened to a message. Every event names its campaign, so the
//! read side and the process managers (counts, completion, settlement) need
//! no lookup.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::types::Chat;
use crate::types::{CampaignId, MessageContent, MessageId, Points, SessionId};

/// An event of the message aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum MessageEvent {
    /// The message was queued for its recipient.
    MessageQueued {
        /// The message's id.
        message_id: MessageId,
        /// Its campaign.
        campaign_id: CampaignId,
        /// The sender it is meant for.
        session_id: SessionId,
        /// The recipient: a person or a group (recorded as `phone` before
        /// groups could be sent to).
        #[serde(alias = "phone")]
        to: Chat,
        /// The recipient's name, if known.
        name: Option<String>,
        /// The recipient's values for the template's variables.
        variables: BTreeMap<String, String>,
        /// What it says, when written for its recipient alone (a single
        /// send); absent for a campaign's message, rendered from its
        /// template.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<MessageContent>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A sender took the message.
    MessageSendingStarted {
        /// Its campaign.
        campaign_id: CampaignId,
        /// The sender.
        session_id: SessionId,
        /// The attempt number, from 1.
        attempt: u32,
        /// The text the attempt sends, rendered from the template (absent
        /// from events recorded before it was kept, and when the template
        /// could not be rendered).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// The driver's id of the message, chosen before it went out
        /// (absent when the driver cannot choose one, and from events
        /// recorded before ids were chosen).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_message_id: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The message was sent, and cost its points. At most once per message.
    MessageSent {
        /// Its campaign.
        campaign_id: CampaignId,
        /// The sender.
        session_id: SessionId,
        /// The attempt that sent it.
        attempt: u32,
        /// WhatsApp's id of the message (`None` when a receipt proved the
        /// send before the driver answered).
        provider_message_id: Option<String>,
        /// What it cost (2 points).
        cost: Points,
        /// The recipient (absent from events recorded before it was
        /// kept): what the engagement guard counts per contact.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<Chat>,
        /// When.
        at: DateTime<Utc>,
    },
    /// An attempt failed.
    MessageFailed {
        /// Its campaign.
        campaign_id: CampaignId,
        /// The sender.
        session_id: SessionId,
        /// The attempt that failed (how many were made).
        attempt: u32,
        /// Why.
        reason: String,
        /// Whether another attempt may follow.
        retryable: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// The recipient's phone received it.
    MessageDelivered {
        /// Its campaign.
        campaign_id: CampaignId,
        /// When.
        at: DateTime<Utc>,
    },
    /// The recipient read it.
    MessageRead {
        /// Its campaign.
        campaign_id: CampaignId,
        /// When.
        at: DateTime<Utc>,
    },
    /// The message will not be sent.
    MessageCancelled {
        /// Its campaign.
        campaign_id: CampaignId,
        /// When.
        at: DateTime<Utc>,
    },
    /// The engine died while sending it: it may or may not have gone out,
    /// and it is never re-sent silently.
    MessageMarkedUnknown {
        /// Its campaign.
        campaign_id: CampaignId,
        /// The sender that was sending it.
        session_id: SessionId,
        /// The attempt whose outcome is unknown.
        attempt: u32,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for MessageEvent {
    fn event_type(&self) -> String {
        match self {
            Self::MessageQueued { .. } => "MessageQueued",
            Self::MessageSendingStarted { .. } => "MessageSendingStarted",
            Self::MessageSent { .. } => "MessageSent",
            Self::MessageFailed { .. } => "MessageFailed",
            Self::MessageDelivered { .. } => "MessageDelivered",
            Self::MessageRead { .. } => "MessageRead",
            Self::MessageCancelled { .. } => "MessageCancelled",
            Self::MessageMarkedUnknown { .. } => "MessageMarkedUnknown",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
