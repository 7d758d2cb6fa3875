//! What happened to a recipient batch.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::message::QueuedMessage;
use crate::types::Chat;
use crate::types::{CampaignId, MessageContent, MessageId, SessionId};

/// One recipient of a batch: the message it gets, as its `MessageQueued`
/// will say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchRecipient {
    /// The message's id.
    pub message_id: MessageId,
    /// The sender it is meant for.
    pub session_id: SessionId,
    /// The recipient: a person or a group (recorded as `phone` before
    /// groups could be sent to).
    #[serde(alias = "phone")]
    pub to: Chat,
    /// The recipient's name, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The recipient's values for the template's variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// What the message says, when written for this recipient alone (a
    /// single send); `None`: the campaign's template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<MessageContent>,
}

impl BatchRecipient {
    /// The recipient's message as a batch of `campaign_id` queued at `at`
    /// holds it.
    pub fn into_queued(self, campaign_id: CampaignId, at: DateTime<Utc>) -> QueuedMessage {
        QueuedMessage {
            message_id: self.message_id,
            campaign_id,
            session_id: self.session_id,
            to: self.to,
            name: self.name,
            variables: self.variables,
            content: self.content,
            at,
        }
    }
}

/// An event of the recipient batch aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum RecipientBatchEvent {
    /// The batch's recipients were queued, one message each.
    RecipientsQueued {
        /// Their campaign.
        campaign_id: CampaignId,
        /// The batch's place in the campaign, from 0.
        index: u32,
        /// The recipients, in the contact list's order.
        recipients: Vec<BatchRecipient>,
        /// When.
        at: DateTime<Utc>,
    },
    /// One message of a single send was admitted to the batch, within the
    /// points its direct campaign reserved for the batch.
    RecipientAdmitted {
        /// The direct campaign.
        campaign_id: CampaignId,
        /// The batch's place in the campaign, from 0.
        index: u32,
        /// The campaign's message number (from 0) of the batch's first
        /// message.
        first: u64,
        /// How many messages the batch holds at most (what was reserved
        /// for it).
        capacity: u32,
        /// The recipient and what the message says.
        recipient: BatchRecipient,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for RecipientBatchEvent {
    fn event_type(&self) -> String {
        match self {
            Self::RecipientsQueued { .. } => "RecipientsQueued",
            Self::RecipientAdmitted { .. } => "RecipientAdmitted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
