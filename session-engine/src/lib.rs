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
//!
//! The send loop, the native driver and engine leases come with the
//! session-engine issue (#6).

pub mod cloud;
pub mod driver;
mod http;
pub mod simulator;
pub mod waha;
pub mod webhook;
