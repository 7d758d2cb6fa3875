//! The application layer: every process that spans aggregates or time,
//! between the read side and the edges (`domain ← eventstore ← projections
//! ← workflows ← {api, session-engine}`). An HTTP handler or the send loop
//! calls one workflow or one command; what happens between aggregates is
//! answered here.
//!
//! # Layout
//!
//! - [`commands`]: the command handlers, one per aggregate type.
//! - [`layout`]: the event log's streams, as the domain lays them out.
//! - [`campaign_start`]: a campaign started on a reservation of its points,
//!   the reservation given back when the start is refused.
//! - [`cancellation`]: a campaign cancelled, settled at once when nothing
//!   was ever sent.
//! - [`direct_sends`]: single sends (the gateway's one message to one
//!   recipient), admitted to their session's direct campaign of the day on
//!   points reserved in blocks, and queued like a campaign's.
//! - [`fanout`]: a started campaign's recipients queued in batches, with
//!   their send commands spread over its senders.
//! - [`settlement`]: campaign completion and settlement.
//! - [`webhooks`]: webhook deliveries, signed, in order, retried.
//! - [`list_checks`]: a contact list's numbers checked on WhatsApp in the
//!   background, at the asking session's pace.
//! - [`plan_lifecycle`]: the warnings before a plan ends, its renewal
//!   reminder, the low-balance warning and the plan's expiry, on the clock.
//! - [`restricted_sends`]: a restricted sender's new-contact sends moved
//!   to another sender of their campaign with room, or left waiting.
//! - [`leadership`]: the advisory lock of processes that run once in a
//!   fleet.
//! - [`sends`]: the send queue (a JetStream work queue, a subject per
//!   session) between the fan-out and the send loops.
//! - [`changes`]: which aggregates changed lately, so the send loops keep
//!   what they read until it does.
//! - [`clock`]: the time sending decides by (a manual one for tests).
//! - [`control`]: the API ⇄ engine contract: the QR bucket, and the
//!   request/reply subjects and types of pairing codes, simulator controls
//!   and forwarded driver webhooks.
//! - [`fleet`]: the session engines' heartbeats (who is alive).
//! - [`payments`]: checkout through Midtrans, its notifications, the
//!   wallet credited (or debited after a refund) once per order, and the
//!   re-check of orders left waiting.
//! - [`credentials`]: driver credentials (WAHA, Cloud API) as parsed from a
//!   session's `driver_config`, stored sealed with AES-256-GCM.

pub mod auto_replies;
pub mod campaign_start;
pub mod cancellation;
pub mod capacity;
pub mod changes;
pub mod clock;
pub mod commands;
pub mod control;
pub mod credentials;
pub mod direct_sends;
pub mod fanout;
pub mod fleet;
pub mod layout;
pub mod leadership;
pub mod limits;
pub mod list_checks;
pub mod payments;
pub mod plan_lifecycle;
pub mod restricted_sends;
pub mod scheduled_starts;
pub mod sender_removal;
pub mod sends;
pub mod settlement;
pub mod webhooks;
