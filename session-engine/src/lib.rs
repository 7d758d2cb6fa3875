//! The session engine: WhatsApp drivers (simulator, native, WAHA, Cloud
//! API) and the per-session send loop that consumes send commands.
//!
//! # Layout
//!
//! - [`driver`]: the [`driver::Driver`] trait and what drivers report.
//! - [`simulator`]: the in-process WhatsApp network, the default driver.
//! - [`waha`]: a session on a WAHA server, over its HTTP API and webhooks.
//! - [`cloud`]: a number on the official WhatsApp Business Cloud API.
//! - [`native`]: WhatsApp Web multi-device in-process (experimental): its
//!   key store and driver (not run by the engine yet).
//! - [`webhook`]: why a webhook from WAHA or the Cloud API was refused.
//! - [`lease`]: engines' heartbeats and session leases in JetStream KV.
//! - [`engine`]: the session lifecycle: which engine runs which session,
//!   its driver connected (simulator, WAHA, Cloud API), driver statuses
//!   reported as events, QR codes published, requests and webhooks
//!   answered.
//!
//! - [`sender`]: the per-session send loop.
//! - [`receipts`]: delivery and read receipts onto their messages.
//!
//! What spans aggregates (fan-out, settlement, the send queue, the command
//! handlers, the API ⇄ engine contract) is in `wablast_workflows`.

pub mod cloud;
pub mod driver;
pub mod engine;
mod http;
pub mod lease;
pub mod native;
pub mod number_checks;
pub(crate) mod receipts;
pub mod sender;
pub mod simulator;
pub mod waha;
pub mod webhook;
