//! The session engine: WhatsApp drivers (simulator, native, WAHA, Cloud
//! API) and the per-session send loop that consumes send commands.
//!
//! The engine itself lands with the session-engine issue (#6). What the API
//! already shares with it:
//!
//! # Layout
//!
//! - [`credentials`]: driver credentials (WAHA, Cloud API) as parsed from a
//!   session's `driver_config`, stored sealed with AES-256-GCM, read back by
//!   the engine ([`credentials::load`]).
//! - [`control`]: the API ⇄ engine contract: the QR bucket, and the
//!   request/reply subjects and types of pairing codes and simulator
//!   controls.

pub mod control;
pub mod credentials;
