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
//!   why.

mod aggregate;
mod commands;
mod error;
mod events;

pub use aggregate::{Campaign, CampaignStatus, RemovedSender};
pub use commands::CampaignCommand;
pub use error::CampaignError;
pub use events::{CampaignEvent, PauseReason, SenderUnavailableReason, StartRefusal};
