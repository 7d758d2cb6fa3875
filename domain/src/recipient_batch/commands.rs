//! What can be asked of a recipient batch.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::events::BatchRecipient;
use crate::types::CampaignId;

/// A command to the recipient batch aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RecipientBatchCommand {
    /// Queues the batch (issued by the campaign's fan-out).
    QueueRecipients {
        /// Their campaign.
        campaign_id: CampaignId,
        /// The batch's place in the campaign, from 0.
        index: u32,
        /// The recipients, in the contact list's order.
        recipients: Vec<BatchRecipient>,
        /// When.
        at: DateTime<Utc>,
    },
}
