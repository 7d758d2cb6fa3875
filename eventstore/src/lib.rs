//! The event log of wablast on NATS JetStream.
//!
//! Every change to a session, campaign, wallet or message is an event in
//! this log. Each command's events are committed together as **one**
//! JetStream message on the aggregate's own subject,
//! `<prefix>.ev.<tenant>.<aggregate_type>.<aggregate_id>`, published with
//! `Nats-Expected-Last-Subject-Sequence` (a lost race is a conflict, never a
//! lost write) and a `Nats-Msg-Id` derived from the command id (a retried
//! publish is committed once). Creations in bulk
//! ([`CommandHandler::create`]) go without the id: for a first commit the
//! expected sequence 0 already refuses a second one.
//!
//! # Layout
//!
//! - [`naming`]: the prefix, stream names, subjects and [`AggregateKey`]
//!   (`<tenant>.<id>`, the id the cqrs-es framework sees).
//! - [`envelope`]: [`Commit`] (what is stored) and [`RecordedEvent`] (what is
//!   read: an event with its whole envelope), [`CommandMetadata`], [`Actor`].
//! - [`log`]: [`EventLog`]: streams created idempotently, append, load one
//!   aggregate, replay a stream from a sequence.
//! - [`command`]: [`CommandHandler`]: load, decide, commit, retried with
//!   fresh state on conflict.
//! - [`consumer`]: durable consumers with ack-after-commit, NAK on drop,
//!   retryable or fatal errors and a dead-letter subject.

#![deny(missing_docs)]

mod backoff;
pub mod command;
pub mod consumer;
mod envelope;
mod error;
pub mod log;
mod naming;
pub mod report;

pub use backoff::Backoff;
pub use command::{CommandHandler, Committed, Decided, Loaded};
pub use consumer::{ConsumerSpec, Delivery, WorkError, Worker, run_consumer};
pub use envelope::{Actor, CommandMetadata, Commit, CommitHeader, CommittedEvent, RecordedEvent};
pub use error::EventStoreError;
pub use log::{
    EventLog, EventLogConfig, History, StreamSpec, Tip, ensure_expiring_key_value,
    ensure_key_value, ensure_stream, range_reader,
};
pub use naming::{AggregateKey, PLATFORM_TENANT, Prefix, Replicas};
