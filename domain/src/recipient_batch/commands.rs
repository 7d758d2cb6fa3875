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
    /// Admits one message of a single send to the `index`-th batch of a
    /// direct campaign (issued by the direct sends, once the wallet
    /// reserved the batch's points: `first + capacity` messages of the
    /// campaign in all). The first admission fixes the batch's `first`
    /// and `capacity`; later ones are held to those. A message admitted
    /// already is answered with success and no event.
    AdmitRecipient {
        /// The direct campaign.
        campaign_id: CampaignId,
        /// The batch's place in the campaign, from 0.
        index: u32,
        /// The campaign's message number (from 0) of the batch's first
        /// message: the previous batch's `first + capacity` (0 for the
        /// first batch).
        first: u64,
        /// How many messages the batch may hold: 1 to
        /// [`BATCH_SIZE`](super::BATCH_SIZE).
        capacity: u32,
        /// The recipient and what the message says.
        recipient: BatchRecipient,
        /// When.
        at: DateTime<Utc>,
    },
}
