//! The session engine: WhatsApp drivers (simulator, native, WAHA, Cloud
//! API) and the per-session send loop that consumes send commands.
//!
//! - [`driver`]: the [`driver::Driver`] trait and what drivers report.
//! - [`simulator`]: the in-process WhatsApp network, the default driver.
//! - [`lease`]: engines' heartbeats and session leases in JetStream KV.
//!
//! The send loop, the other drivers and engine leases come with the
//! session-engine issue (#6).

pub mod driver;
pub mod lease;
pub mod simulator;
