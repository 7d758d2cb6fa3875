//! The session engine: WhatsApp drivers (simulator, native, WAHA, Cloud
//! API) and the per-session send loop that consumes send commands.
//!
//! # Layout
//!
//! - [`driver`]: the [`driver::Driver`] trait and what drivers report.
//! - [`simulator`]: the in-process WhatsApp network, the default driver.
//! - [`lease`]: engines' heartbeats and session leases in JetStream KV.
//! - [`credentials`]: driver credentials (WAHA, Cloud API) as parsed from a
//!   session's `driver_config`, stored sealed with AES-256-GCM, read back by
//!   the engine ([`credentials::load`]).
//! - [`control`]: the API ⇄ engine contract: the QR bucket, and the
//!   request/reply subjects and types of pairing codes and simulator
//!   controls.
//!
//! The send loop and the campaign fan-out come with the session-engine
//! issue (#6).

pub mod control;
pub mod credentials;
pub mod driver;
pub mod lease;
pub mod simulator;
