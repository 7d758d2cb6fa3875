//! The session engine's integration tests: the HTTP drivers against local
//! servers that speak their peers' documented protocols and against
//! validating mocks generated from the peers' own API descriptions
//! ([`prism`]), leases and the endings of sessions on the real JetStream
//! and PostgreSQL.

mod cloud;
mod endings;
mod lease;
mod native_driver;
mod native_fake_server;
mod native_store;
mod prism;
mod support;
mod waha;
