//! The session engine's integration tests: the HTTP drivers against local
//! servers that speak their peers' documented protocols.

mod cloud;
mod support;
mod waha;
