//! The command side: load an aggregate, let it decide, commit its events as
//! one message, and retry with fresh state when another writer got there
//! first.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::EventUpcaster;
use cqrs_es::{Aggregate, AggregateError, DomainEvent, EventEnvelope};
use tracing::{debug, instrument};

use crate::envelope::{CommandMetadata, Commit, RecordedEvent};
use crate::error::EventStoreError;
use crate::log::EventLog;
use crate::naming::AggregateKey;

/// How often a command is tried when it keeps losing races.
pub const DEFAULT_ATTEMPTS: u32 = 4;

/// An aggregate folded from the log, with where it was read up to.
#[derive(Debug)]
pub struct Loaded<A> {
    /// The aggregate's state.
    pub aggregate: A,
    /// Aggregate sequence of its last event (0 when new).
    pub sequence: u64,
    /// Stream sequence of its last commit (0 when new).
    pub stream_sequence: u64,
}

/// What a command committed.
#[derive(Debug)]
pub struct Committed<A: Aggregate> {
    /// Stream sequence the commit was written at; for a command that decided
    /// nothing (no events), the sequence of the state it was decided on.
    /// A read model that has projected this far reflects the command.
    pub stream_sequence: u64,
    /// The events, as cqrs-es envelopes.
    pub events: Vec<EventEnvelope<A>>,
}

/// Runs commands against aggregates of type `A` stored in the event log.
///
/// Each command is one commit: one JetStream message holding its ordered
/// events. When the commit loses the race for the aggregate's next
/// sequence, the command is decided again on fresh state, up to a bounded
/// number of attempts, then reported as [`AggregateError::AggregateConflict`].
pub struct CommandHandler<A: Aggregate> {
    log: EventLog,
    services: Arc<A::Services>,
    upcasters: Arc<Vec<Box<dyn EventUpcaster>>>,
    attempts: u32,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate> Clone for CommandHandler<A> {
    fn clone(&self) -> Self {
        Self {
            log: self.log.clone(),
            services: self.services.clone(),
            upcasters: self.upcasters.clone(),
            attempts: self.attempts,
            _aggregate: PhantomData,
        }
    }
}

impl<A: Aggregate> CommandHandler<A> {
    /// A handler for `A` with its services.
    pub fn new(log: EventLog, services: A::Services) -> Self {
        Self {
            log,
            services: Arc::new(services),
            upcasters: Arc::new(Vec::new()),
            attempts: DEFAULT_ATTEMPTS,
            _aggregate: PhantomData,
        }
    }

    /// Upcasters applied to stored events older than the current version.
    pub fn with_upcasters(mut self, upcasters: Vec<Box<dyn EventUpcaster>>) -> Self {
        self.upcasters = Arc::new(upcasters);
        self
    }

    /// How many times a command is decided before a conflict is reported
    /// (at least 1).
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// The log this handler writes to.
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// Folds an aggregate from its history.
    pub async fn load(&self, key: &AggregateKey) -> Result<Loaded<A>, AggregateError<A::Error>> {
        let history = self.log.load(A::TYPE, key).await?;
        let stream_sequence = history.last_stream_sequence;
        let mut aggregate = A::default();
        let mut sequence = 0;
        for event in history.into_events() {
            sequence = event.sequence;
            aggregate.apply(self.decode(event)?);
        }
        Ok(Loaded {
            aggregate,
            sequence,
            stream_sequence,
        })
    }

    /// Decodes one stored event into `A::Event`, upcasting it first.
    pub fn decode(&self, event: RecordedEvent) -> Result<A::Event, AggregateError<A::Error>> {
        let event = event.upcast(&self.upcasters);
        let sequence = event.stream_sequence;
        serde_json::from_value(event.payload).map_err(|source| {
            AggregateError::DeserializationError(Box::new(EventStoreError::Malformed {
                sequence,
                source,
            }))
        })
    }

    /// Runs one command: load, decide, commit; again on a lost race.
    ///
    /// The command id in `metadata` identifies the command across attempts
    /// and across callers: the log commits it at most once.
    #[instrument(skip_all, fields(aggregate_type = A::TYPE, key = %key, command_id = %metadata.command_id), err(level = "debug"))]
    pub async fn execute(
        &self,
        key: &AggregateKey,
        command: A::Command,
        metadata: &CommandMetadata,
    ) -> Result<Committed<A>, AggregateError<A::Error>>
    where
        A::Command: Clone,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_execute(key, command.clone(), metadata).await {
                Err(AggregateError::AggregateConflict) if attempt < self.attempts => {
                    debug!(attempt, "conflict, deciding again on fresh state");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                result => return result,
            }
        }
    }

    async fn try_execute(
        &self,
        key: &AggregateKey,
        command: A::Command,
        metadata: &CommandMetadata,
    ) -> Result<Committed<A>, AggregateError<A::Error>> {
        let Loaded {
            mut aggregate,
            sequence,
            stream_sequence,
        } = self.load(key).await?;
        let sink = EventSink::default();
        aggregate
            .handle(command, &self.services, &sink)
            .await
            .map_err(AggregateError::UserError)?;
        let events = sink.collect().await;
        if events.is_empty() {
            return Ok(Committed {
                stream_sequence,
                events: Vec::new(),
            });
        }
        let mut commit = Commit::new(A::TYPE, key, metadata);
        for (i, event) in events.iter().enumerate() {
            commit.push(
                sequence + 1 + i as u64,
                event.event_type(),
                event.event_version(),
                serde_json::to_value(event)?,
            );
        }
        let written_at = self.log.append(stream_sequence, &commit).await?;
        let framework_id = key.to_framework_id();
        let envelopes = commit
            .into_recorded(written_at)
            .zip(events)
            .map(|(recorded, payload)| EventEnvelope {
                aggregate_id: framework_id.clone(),
                sequence: recorded.sequence as usize,
                metadata: recorded.metadata_map(),
                payload,
            })
            .collect();
        Ok(Committed {
            stream_sequence: written_at,
            events: envelopes,
        })
    }
}

/// A short pause before deciding again, growing with the attempt and
/// spread randomly so that writers who collided do not collide again in
/// step.
fn backoff(attempt: u32) -> Duration {
    let spread = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * 4; // 0..1020 µs
    Duration::from_micros(500 * u64::from(attempt) + spread)
}
