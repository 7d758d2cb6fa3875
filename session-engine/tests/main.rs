//! The session engine's integration tests: the HTTP drivers against local
//! servers that speak their peers' documented protocols, credentials in the
//! real PostgreSQL, leases on the real JetStream.

mod cloud;
mod credentials;
mod lease;
mod support;
mod waha;
