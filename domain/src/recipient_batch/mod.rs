//! Recipient batch aggregate (`TYPE` = `"recipient_batch"`): up to
//! [`BATCH_SIZE`] of a campaign's recipients, queued together when the
//! campaign starts. A campaign of 100,000 recipients is queued in 200
//! commits instead of 100,000; each recipient's message aggregate gets its
//! history (starting with `MessageQueued`, as the batch says) at the first
//! command it receives: its first send, or its cancellation
//! ([`MessageCommand::FromBatch`](crate::message::MessageCommand::FromBatch)).
//! The batches live in the messages stream, before any message they
//! queue, so the read side makes each recipient's row from its batch and
//! finds it there when the message's own events come.
//!
//! Rules and decisions:
//! - the aggregate's id is [`batch_id`]`(campaign_id, index)`, not a
//!   random one, so a fan-out run again after a crash finds the batches
//!   the earlier run queued, and queues each recipient once;
//! - a batch is queued once and never changes: queuing it again is
//!   refused ([`RecipientBatchError::AlreadyQueued`]);
//! - a batch holds between 1 and [`BATCH_SIZE`] recipients, each with a
//!   distinct message id.

mod aggregate;
mod commands;
mod error;
mod events;

use uuid::Uuid;

pub use aggregate::RecipientBatch;
pub use commands::RecipientBatchCommand;
pub use error::RecipientBatchError;
pub use events::{BatchRecipient, RecipientBatchEvent};

use crate::types::{CampaignId, RecipientBatchId};

/// The most recipients one batch holds: a commit of a few hundred
/// kilobytes at most, well under the log's message size limit.
pub const BATCH_SIZE: usize = 500;

/// The id of a campaign's `index`-th batch (from 0): the same every time
/// the campaign is fanned out.
pub fn batch_id(campaign_id: CampaignId, index: u32) -> RecipientBatchId {
    let mut name = Vec::with_capacity(5 + 4);
    name.extend_from_slice(b"batch");
    name.extend_from_slice(&index.to_be_bytes());
    RecipientBatchId::from_uuid(Uuid::new_v5(campaign_id.as_uuid(), &name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_ids_are_the_same_for_the_same_place_in_the_same_campaign() {
        let campaign = CampaignId::from_uuid(Uuid::from_u128(7));
        assert_eq!(batch_id(campaign, 0), batch_id(campaign, 0));
        assert_ne!(batch_id(campaign, 0), batch_id(campaign, 1));
        let other = CampaignId::from_uuid(Uuid::from_u128(8));
        assert_ne!(batch_id(campaign, 0), batch_id(other, 0));
    }
}
