//! The session engine's integration tests: the HTTP drivers against local
//! servers that speak their peers' documented protocols and against
//! validating mocks generated from the peers' own API descriptions
//! ([`prism`]), leases on the real JetStream.

mod cloud;
mod lease;
mod prism;
mod support;
mod waha;
