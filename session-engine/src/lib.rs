//! The session engine: WhatsApp drivers (simulator, native, WAHA, Cloud
//! API) and the per-session send loop that consumes send commands.
//!
//! # Layout
//!
//! - [`driver`]: the [`driver::Driver`] trait and what drivers report.
//! - [`simulator`]: the in-process WhatsApp network, the default driver.
//! - [`waha`]: a session on a WAHA server, over its HTTP API and webhooks.
//! - [`cloud`]: a number on the official WhatsApp Business Cloud API.
//! - [`webhook`]: why a webhook from WAHA or the Cloud API was refused.
//! - [`lease`]: engines' heartbeats and session leases in JetStream KV.
//! - [`credentials`]: driver credentials (WAHA, Cloud API) as parsed from a
//!   session's `driver_config`, stored sealed with AES-256-GCM, read back by
//!   the engine ([`credentials::load`]).
//! - [`engine`]: the session lifecycle: which engine runs which session,
//!   its driver connected (simulator, WAHA, Cloud API), driver statuses
//!   reported as events, QR codes published, requests and webhooks
//!   answered.
//! - [`control`]: the API ⇄ engine contract: the QR bucket, and the
//!   request/reply subjects and types of pairing codes, simulator controls
//!   and forwarded driver webhooks.
//!
//! - [`fanout`]: a started campaign's recipients queued as messages and
//!   send commands, spread over its senders.
//! - [`sends`]: the send queue (a JetStream work queue, a subject per
//!   session).
//! - [`sender`]: the per-session send loop.
//! - [`changes`]: which aggregates changed lately, so the send loops keep
//!   what they read until it does.
//! - [`receipts`]: delivery and read receipts onto their messages.
//! - [`settlement`]: campaign completion and settlement.
//! - [`clock`]: the time sending decides by (a manual one for tests).
//! - [`aggregates`]: the command handlers all of these use.

pub mod aggregates;
pub mod changes;
pub mod clock;
pub mod cloud;
pub mod control;
pub mod credentials;
pub mod driver;
pub mod engine;
pub mod fanout;
mod http;
pub mod lease;
pub mod receipts;
pub mod sender;
pub mod sends;
pub mod settlement;
pub mod simulator;
pub mod waha;
pub mod webhook;

use wablast_eventstore::{EventLog, EventStoreError};
use wablast_projections::LogStream;
use wablast_projections::wait::Position;

/// Where the stream holding `aggregate_type` ends now: a projection at
/// this position has applied every commit of that type made so far.
pub(crate) async fn end_of_stream(
    log: &EventLog,
    aggregate_type: &str,
) -> Result<Position, EventStoreError> {
    let name = log.stream_name_of(aggregate_type)?;
    let stream = LogStream::ALL
        .into_iter()
        .find(|s| s.full_name(log.prefix()) == name)
        .ok_or_else(|| EventStoreError::UnknownStream(name.to_owned()))?;
    let mut handle = log.stream(name)?.clone();
    let info = handle.info().await.map_err(EventStoreError::nats)?;
    Ok(Position {
        stream,
        sequence: info.state.last_sequence,
    })
}
