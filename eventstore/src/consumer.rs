//! Durable consumers for projections and process managers.
//!
//! A [`Worker`] handles one delivery at a time. The runner acknowledges a
//! message only after the worker returned `Ok`, that is after the worker's
//! own work is committed. A message that is dropped without an answer (the
//! task was cancelled, the worker panicked) is NAKed, so it comes back at
//! once rather than after the ack wait. Failures are classed:
//!
//! - [`WorkError::Retryable`]: the message is NAKed with a growing delay and
//!   comes back; after `max_deliveries` it is moved to the dead-letter
//!   subject (`<prefix>.dlq.<consumer>`) and the consumer moves on, so one
//!   poison message never blocks everything behind it.
//! - [`WorkError::Fatal`]: the worker cannot go on at all (a newer event
//!   version it does not know, say). The message is NAKed and the consumer
//!   stops with an error, loudly; nothing is skipped.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::backoff::Backoff;
use crate::envelope::{Commit, RecordedEvent};
use crate::error::EventStoreError;
use crate::log::EventLog;

/// Boxed error a worker reports.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a worker could not handle a delivery.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    /// May succeed later (a database that is down, a lock): retried with
    /// back-off, dead-lettered after too many deliveries.
    #[error("retryable: {0}")]
    Retryable(#[source] BoxError),
    /// The worker cannot go on; the consumer stops and says why.
    #[error("fatal: {0}")]
    Fatal(#[source] BoxError),
}

impl WorkError {
    /// A retryable failure from any error.
    pub fn retryable(err: impl Into<BoxError>) -> Self {
        Self::Retryable(err.into())
    }

    /// A fatal failure from any error.
    pub fn fatal(err: impl Into<BoxError>) -> Self {
        Self::Fatal(err.into())
    }
}

/// Why a consumer stopped other than by shutdown.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// The worker reported a fatal error on the message at this sequence.
    #[error("consumer {consumer} stopped at stream sequence {stream_sequence}: {source}")]
    Fatal {
        /// The consumer's name.
        consumer: String,
        /// The message it stopped at.
        stream_sequence: u64,
        /// The worker's error.
        #[source]
        source: BoxError,
    },
    /// The event log could not be reached.
    #[error(transparent)]
    Log(#[from] EventStoreError),
}

/// One message as the worker sees it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The subject it was published on.
    pub subject: String,
    /// Its position in the stream.
    pub stream_sequence: u64,
    /// How many times it has been delivered, this time included.
    pub delivered: u64,
    /// Its headers.
    pub headers: Option<HeaderMap>,
    /// Its body.
    pub payload: Bytes,
}

impl Delivery {
    /// The body as an event-log commit.
    pub fn commit(&self) -> Result<Commit, EventStoreError> {
        serde_json::from_slice(&self.payload).map_err(|source| EventStoreError::Malformed {
            sequence: self.stream_sequence,
            source,
        })
    }

    /// The body as the events of an event-log commit.
    pub fn events(&self) -> Result<Vec<RecordedEvent>, EventStoreError> {
        Ok(self.commit()?.into_recorded(self.stream_sequence).collect())
    }
}

/// Something that handles deliveries of a durable consumer.
pub trait Worker: Send + Sync {
    /// Handles one delivery. Return `Ok` only once the work is committed:
    /// the message is acknowledged right after.
    fn handle(&self, delivery: &Delivery) -> impl Future<Output = Result<(), WorkError>> + Send;
}

/// A durable consumer's settings.
#[derive(Clone, Debug)]
pub struct ConsumerSpec {
    /// Durable name, unique per stream (a token: letters, digits, `_`, `-`).
    pub name: String,
    /// Full name of the stream it reads.
    pub stream: String,
    /// Subjects it reads; empty for all of the stream.
    pub filter_subject: String,
    /// Where a consumer created for the first time starts.
    pub deliver_policy: DeliverPolicy,
    /// After this many failed deliveries a message is dead-lettered.
    pub max_deliveries: u64,
    /// How long the server waits for an answer before redelivering (covers a
    /// process that died without NAKing).
    pub ack_wait: Duration,
    /// Back-off of a NAKed message, by its failed deliveries.
    pub retry: Backoff,
    /// Messages pulled per request.
    pub batch: usize,
    /// How many messages may be out unanswered at once. A NAKed message is
    /// redelivered after those already out, so a worker that needs strict
    /// log order even across failures and restarts (a fold) sets 1.
    pub max_ack_pending: i64,
}

impl ConsumerSpec {
    /// A consumer of a whole stream from its beginning, with defaults: five
    /// deliveries, 30 s ack wait, back-off from 1 s up to 60 s.
    pub fn new(name: &str, stream: &str) -> Self {
        Self {
            name: name.to_owned(),
            stream: stream.to_owned(),
            filter_subject: String::new(),
            deliver_policy: DeliverPolicy::All,
            max_deliveries: 5,
            ack_wait: Duration::from_secs(30),
            retry: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
            batch: 100,
            max_ack_pending: 1_000,
        }
    }
}

/// Headers a dead letter carries besides the original message's own.
pub mod dead_letter_headers {
    /// Subject the message was published on.
    pub const SUBJECT: &str = "Wablast-Dlq-Subject";
    /// Stream it came from.
    pub const STREAM: &str = "Wablast-Dlq-Stream";
    /// Its sequence in that stream.
    pub const STREAM_SEQUENCE: &str = "Wablast-Dlq-Stream-Sequence";
    /// The consumer that gave up on it.
    pub const CONSUMER: &str = "Wablast-Dlq-Consumer";
    /// How often it was delivered.
    pub const DELIVERIES: &str = "Wablast-Dlq-Deliveries";
    /// The last error.
    pub const ERROR: &str = "Wablast-Dlq-Error";
}

/// A message that is NAKed if it is dropped before it was answered.
struct ScopedMessage {
    message: Option<async_nats::jetstream::Message>,
}

impl ScopedMessage {
    async fn answer(mut self, kind: AckKind) -> Result<(), EventStoreError> {
        let message = self.message.take().expect("answered once");
        // Acks and terms are double-acked: the server confirms, so a lost
        // ack cannot make a committed message come back unnoticed.
        match kind {
            AckKind::Nak(_) => message.ack_with(kind).await,
            _ => message.double_ack_with(kind).await,
        }
        .map_err(EventStoreError::Nats)
    }
}

impl Drop for ScopedMessage {
    fn drop(&mut self) {
        if let Some(message) = self.message.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                if let Err(err) = message.ack_with(AckKind::Nak(None)).await {
                    warn!(error = %err, "could not NAK a dropped message; it returns after the ack wait");
                }
            });
        }
    }
}

/// Runs a durable consumer until `shutdown` is cancelled (`Ok`), or the
/// worker reports a fatal error (`Err`). Creates the consumer if it does not
/// exist yet; an existing one resumes where it was acknowledged up to.
pub async fn run_consumer<W: Worker>(
    log: &EventLog,
    spec: &ConsumerSpec,
    worker: &W,
    shutdown: CancellationToken,
) -> Result<(), ConsumerError> {
    crate::naming::check_token("consumer name", &spec.name)?;
    let stream = log.stream(&spec.stream)?;
    let consumer = stream
        .get_or_create_consumer(
            &spec.name,
            pull::Config {
                durable_name: Some(spec.name.clone()),
                deliver_policy: spec.deliver_policy,
                ack_policy: AckPolicy::Explicit,
                ack_wait: spec.ack_wait,
                // Unbounded on the server: the runner counts deliveries and
                // dead-letters itself, so nothing is dropped silently.
                max_deliver: -1,
                filter_subject: spec.filter_subject.clone(),
                max_ack_pending: spec.max_ack_pending.max(1),
                ..Default::default()
            },
        )
        .await
        .map_err(EventStoreError::nats)?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(spec.batch.min(spec.max_ack_pending.max(1) as usize))
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(EventStoreError::nats)?;
    info!(consumer = %spec.name, stream = %spec.stream, "consumer running");

    loop {
        let next = tokio::select! {
            biased;
            () = shutdown.cancelled() => {
                release_buffered(&mut messages);
                return Ok(());
            }
            next = messages.next() => next,
        };
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(err)) => {
                // Missed heartbeats and the like: the pull stream recovers.
                warn!(consumer = %spec.name, error = %err, "consumer stream error");
                continue;
            }
            None => return Err(EventStoreError::Nats("consumer stream ended".into()).into()),
        };
        let info = message.info().map_err(EventStoreError::Nats)?;
        let delivery = Delivery {
            subject: message.subject.to_string(),
            stream_sequence: info.stream_sequence,
            delivered: info.delivered.max(1) as u64,
            headers: message.headers.clone(),
            payload: message.payload.clone(),
        };
        let message = ScopedMessage {
            message: Some(message),
        };

        if delivery.delivered > spec.max_deliveries {
            // Delivered too often without an answer: it crashed its workers.
            let reason = format!("no answer after {} deliveries", delivery.delivered - 1);
            dead_letter(log, spec, &delivery, message, &reason).await?;
            continue;
        }

        let outcome = AssertUnwindSafe(worker.handle(&delivery))
            .catch_unwind()
            .await;
        let outcome = outcome.unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "worker panicked".to_owned());
            Err(WorkError::retryable(format!("panic: {what}")))
        });
        match outcome {
            Ok(()) => message.answer(AckKind::Ack).await?,
            Err(WorkError::Retryable(err)) if delivery.delivered >= spec.max_deliveries => {
                dead_letter(log, spec, &delivery, message, &err.to_string()).await?;
            }
            Err(WorkError::Retryable(err)) => {
                let delay = spec.retry.after(delivery.delivered);
                warn!(
                    consumer = %spec.name,
                    stream_sequence = delivery.stream_sequence,
                    delivered = delivery.delivered,
                    retry_in = ?delay,
                    error = %err,
                    "delivery failed, will retry"
                );
                message.answer(AckKind::Nak(Some(delay))).await?;
            }
            Err(WorkError::Fatal(source)) => {
                error!(
                    consumer = %spec.name,
                    stream_sequence = delivery.stream_sequence,
                    error = %source,
                    "fatal error, consumer stops"
                );
                message.answer(AckKind::Nak(None)).await?;
                release_buffered(&mut messages);
                return Err(ConsumerError::Fatal {
                    consumer: spec.name.clone(),
                    stream_sequence: delivery.stream_sequence,
                    source,
                });
            }
        }
    }
}

/// NAKs what the pull stream has already received but the worker has not
/// seen, so that another instance gets it at once rather than after the ack
/// wait. (A message still on its way when the stream is dropped comes back
/// after the ack wait: late, never lost.)
fn release_buffered(messages: &mut pull::Stream) {
    while let Some(Some(Ok(message))) = messages.next().now_or_never() {
        drop(ScopedMessage {
            message: Some(message),
        });
    }
}

/// Moves a message to the consumer's dead-letter subject, then terminates
/// it on the consumer. Should the dead letter not be stored, the message is
/// NAKed instead and comes back: it is never lost.
async fn dead_letter(
    log: &EventLog,
    spec: &ConsumerSpec,
    delivery: &Delivery,
    message: ScopedMessage,
    reason: &str,
) -> Result<(), EventStoreError> {
    use dead_letter_headers as h;
    // The original's own headers, but none of its `Nats-*` publish
    // directives: its expected subject sequence would be checked against the
    // dead-letter subject, and its message id would be taken as a duplicate.
    let mut headers = HeaderMap::new();
    for (name, values) in delivery.headers.iter().flat_map(HeaderMap::iter) {
        let name_str: &str = name.as_ref();
        if !name_str.to_ascii_lowercase().starts_with("nats-") {
            for value in values {
                headers.append(name.clone(), value.clone());
            }
        }
    }
    // Dead-lettering the same delivery twice (the term was lost) stores it once.
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        format!("{}:{}", spec.name, delivery.stream_sequence).as_str(),
    );
    headers.insert(h::SUBJECT, delivery.subject.as_str());
    headers.insert(h::STREAM, spec.stream.as_str());
    headers.insert(
        h::STREAM_SEQUENCE,
        delivery.stream_sequence.to_string().as_str(),
    );
    headers.insert(h::CONSUMER, spec.name.as_str());
    headers.insert(h::DELIVERIES, delivery.delivered.to_string().as_str());
    headers.insert(h::ERROR, reason.replace(['\r', '\n'], " ").as_str());
    let subject = log.prefix().dead_letter_subject(&spec.name);
    let published = match log
        .jetstream()
        .send_publish(
            subject,
            PublishMessage::build()
                .payload(delivery.payload.clone())
                .headers(headers),
        )
        .await
    {
        Ok(ack) => ack.await.map(|_| ()),
        Err(err) => Err(err),
    };
    match published {
        Ok(()) => {
            error!(
                consumer = %spec.name,
                stream_sequence = delivery.stream_sequence,
                deliveries = delivery.delivered,
                reason,
                "message dead-lettered"
            );
            message.answer(AckKind::Term).await
        }
        Err(err) => {
            warn!(error = %err, "dead letter not stored; message will be retried");
            message.answer(AckKind::Nak(Some(spec.retry.first))).await
        }
    }
}
