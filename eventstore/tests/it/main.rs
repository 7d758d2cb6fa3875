//! Integration tests of the event log against a real NATS JetStream server.

mod common;
mod consumer;
mod log;
