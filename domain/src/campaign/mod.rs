//! Campaign aggregate (`TYPE` = `"campaign"`): one broadcast and its
//! lifecycle.
//!
//! ```text
//! draft ──schedule──▶ scheduled ──start──▶ running ⇄ paused ──▶ completed
//!   └──────────────start─────────────────────▲          │
//!   draft | scheduled | running | paused ──cancel──▶ cancelled
//! ```
//!
//! Invariants:
//! - created once, with a valid name, at least one sender and no duplicate,
//!   and a template whose variables are all known (the list's columns plus
//!   `name` and `phone`);
//! - the recipient count and the points reserved are fixed by the start
//!   (`points_reserved = recipients × 2`, `0 < recipients <= plan cap`) and
//!   never change afterwards;
//! - the campaign takes no event per message: per-message facts (sent,
//!   cost, receipts) live on the [`message`](crate::message) aggregate and
//!   the read side. Completion and settlement are issued by process
//!   managers ([`CampaignCommand::CompleteCampaign`] once every message is
//!   final; the wallet reacts to [`CampaignEvent::CampaignCompleted`] and
//!   [`CampaignEvent::CampaignCancelled`]);
//! - the n-th auto-pause after consecutive failures holds the campaign for
//!   30 s, 60 s, then 120 s (and 120 s thereafter): a resume earlier than
//!   [`Campaign::resume_at`] is refused with the instant to retry at;
//! - a sender that is banned, logged out or deleted leaves the rotation for
//!   good; a running or paused campaign with no sender left pauses and says
//!   why;
//! - its start leaves out the contacts the tenant sent
//!   `skip_unanswered_after` messages or more who never replied (the
//!   engagement guard, default 3, 0 off), counted on `CampaignStarted`;
//! - when a sender's last 10 outcomes are 30% or more failed or blocked,
//!   it slows itself down (its pause 4× longer, at least 2 to 6 s), and
//!   takes its own pace again under 10%.
//!
//! # Direct campaigns
//!
//! Single sends (one message to one recipient, through the gateway) are
//! held by a *direct* campaign: one per session and local day
//! ([`direct_campaign_id`]), opened running by the first single send of
//! the day ([`CampaignCommand::OpenDirect`]), with that session as its only
//! sender. It has no template and no list: its messages say what their
//! sender wrote. Its points are reserved in blocks as messages come (the
//! wallet's `ExtendReservation`, one recipient batch per block), so it has
//! no recipient count until it completes, once its day is over and its
//! every message is final; the wallet then settles it like any campaign.
//! Every rule of sending (slots, daily limit, active hours, plan,
//! auto-pause, settlement) is the same as a broadcast's.

mod aggregate;
mod commands;
mod error;
mod events;

use chrono::NaiveDate;
use uuid::Uuid;

pub use aggregate::{Campaign, CampaignKind, CampaignStatus, RemovedSender, SlowDown};
pub use commands::CampaignCommand;
pub use error::CampaignError;
pub use events::{
    CampaignEvent, PauseReason, SenderUnavailableReason, SlowDownReason, StartRefusal,
};

use crate::types::{CampaignId, SessionId};

/// The id of the direct campaign of `session_id`'s single sends on the
/// local day `day`: the same in every process.
pub fn direct_campaign_id(session_id: SessionId, day: NaiveDate) -> CampaignId {
    let name = format!("direct/{day}");
    CampaignId::from_uuid(Uuid::new_v5(session_id.as_uuid(), name.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direct_campaign_is_one_per_session_and_day() {
        let session = SessionId::from_uuid(Uuid::from_u128(1));
        let day: NaiveDate = "2025-03-01".parse().unwrap();
        assert_eq!(
            direct_campaign_id(session, day),
            direct_campaign_id(session, day)
        );
        assert_ne!(
            direct_campaign_id(session, day),
            direct_campaign_id(session, day.succ_opt().unwrap())
        );
        let other = SessionId::from_uuid(Uuid::from_u128(2));
        assert_ne!(
            direct_campaign_id(session, day),
            direct_campaign_id(other, day)
        );
    }
}
