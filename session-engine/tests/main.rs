//! The session engine's integration tests: the HTTP drivers against local
//! servers that speak their peers' documented protocols, leases on the real JetStream.

mod cloud;
mod lease;
mod support;
mod waha;
