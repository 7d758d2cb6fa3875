//! The session engine: WhatsApp drivers (simulator, native, WAHA, Cloud
//! API) and the per-session send loop that consumes send commands.
//!
//! Empty until the session-engine issue (#6) lands.
