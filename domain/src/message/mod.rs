//! Message aggregate (`TYPE` = `"message"`): one message to one recipient
//! of a campaign, its sending attempts and its receipts. One aggregate per
//! recipient keeps every aggregate small and lets senders work in parallel
//! without contending: no aggregate is written by every send.
//!
//! ```text
//! queued ──▶ sending ──▶ sent ──▶ delivered ──▶ read
//!   │          │  │
//!   │          │  └──▶ unknown   (the engine died mid-send and the peer
//!   │          │                  cannot tell: never re-sent)
//!   │          └──▶ failed ──(retryable, next attempt)──▶ sending
//!   └──▶ cancelled ◀──(retryable)── failed
//! ```
//!
//! Rules and decisions:
//! - the status never moves backwards along queued < sending < sent <
//!   delivered < read; `failed`, `cancelled` and `unknown` are final, except
//!   that a *retryable* failure may be retried (a new, higher attempt) or
//!   cancelled. The engine marks its last attempt `retryable: false`, so a
//!   failure it will not retry is final;
//! - at most one [`MessageEvent::MessageSent`] per message, carrying the
//!   message's cost ([`Points::PER_MESSAGE`](crate::types::Points::PER_MESSAGE)):
//!   the wallet settles a campaign from these, never from an event per
//!   message on the wallet;
//! - receipts: `read` implies `delivered` (a read on a sent message records
//!   both, at the same instant); a receipt older in the order than the
//!   status (a late `delivered` after `read`) or a repeated one records
//!   nothing. A receipt on a `sending` message proves it was sent (the
//!   receipt beat the driver's answer): the send is recorded, with its cost,
//!   then the receipt; the driver's late `RecordSent` then records nothing.
//!   A receipt on a `queued` message is refused: no sender has it. Receipts
//!   on `failed`, `cancelled` or `unknown` messages record nothing: those
//!   are final and the campaign may already be settled on them, so charging
//!   a send now would break "points captured = 2 × messages sent";
//! - `CancelMessage` cancels a queued message (or a retryable failure, so
//!   it is not retried); on a message already handed to a sender or final
//!   it records nothing (a campaign's cancellation fans out to all of its
//!   messages and must not fail on those that went out);
//! - a message queued in a recipient batch ([`crate::recipient_batch`])
//!   has no history until first asked something: `FromBatch` records its
//!   `MessageQueued` (as the batch queued it) and the command's events in
//!   one commit, so every message's history still starts with
//!   `MessageQueued`, and a sender and a cancellation racing for a new
//!   message meet on its first commit like on any other;
//! - `MarkUnknown` only changes a `sending` message; on any other status
//!   the outcome is known (or the message was never handed out) and nothing
//!   is recorded. An `unknown` message refuses `StartSending`;
//! - each attempt may carry the driver's id of the message, chosen before
//!   it goes out (`StartSending`'s `provider_message_id`), so that an
//!   attempt whose outcome was lost can be looked up at the peer by that
//!   id. `Reconcile` records what the peer said, on a `sending` message
//!   only (on any other status nothing): it went out → sent, with its cost
//!   (once, as any send) and the receipts the peer knows of; it never left
//!   → failed for good (never re-sent: the recipient may not get it twice
//!   should the peer have been wrong); the peer cannot tell → unknown.
//!   An `unknown` message is never reconciled later: its campaign may be
//!   settled on it already (see receipts above).

mod aggregate;
mod commands;
mod error;
mod events;

pub use aggregate::{Message, MessageStatus, NEVER_LEFT};
pub use commands::{LookedUp, MessageCommand, QueuedMessage, Receipt};
pub use error::MessageError;
pub use events::MessageEvent;
