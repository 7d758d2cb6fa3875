//! Errors of the event log, and how they become cqrs-es errors.

use cqrs_es::AggregateError;
use cqrs_es::persist::PersistenceError;

/// What can go wrong talking to the event log.
#[derive(Debug, thiserror::Error)]
pub enum EventStoreError {
    /// Another commit won the race for this aggregate's next sequence, or a
    /// command id was reused for a different commit. Retry with fresh state.
    #[error("optimistic concurrency conflict on {subject}")]
    Conflict {
        /// The aggregate's subject.
        subject: String,
    },
    /// A name (prefix, tenant, aggregate id) that is not one subject token.
    #[error("invalid {what}: {value:?}")]
    InvalidName {
        /// Which name.
        what: &'static str,
        /// The value refused.
        value: String,
    },
    /// No stream of this event log holds this aggregate type.
    #[error("no stream is configured for aggregate type {0:?}")]
    UnknownAggregateType(String),
    /// No stream of this event log has this name.
    #[error("no stream {0:?} in this event log")]
    UnknownStream(String),
    /// A stored commit could not be decoded, or an event not encoded.
    #[error("malformed commit at stream sequence {sequence}: {source}")]
    Malformed {
        /// Stream sequence of the commit (0 when encoding).
        sequence: u64,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A commit whose events do not continue the aggregate's sequence.
    #[error("commit on {subject} does not continue the aggregate: {reason}")]
    InvalidCommit {
        /// The aggregate's subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// The NATS server could not be reached or answered with an error.
    #[error("nats: {0}")]
    Nats(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl EventStoreError {
    /// A NATS failure of any kind.
    pub fn nats(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Nats(Box::new(err))
    }

    /// What an entry at `sequence` (a stream sequence, a KV revision) that
    /// does not decode is: for `map_err`.
    pub fn malformed_at(sequence: u64) -> impl Fn(serde_json::Error) -> Self {
        move |source| Self::Malformed { sequence, source }
    }

    /// Whether a retry with fresh state may succeed.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }
}

impl From<EventStoreError> for PersistenceError {
    fn from(err: EventStoreError) -> Self {
        match err {
            EventStoreError::Conflict { .. } => Self::OptimisticLockError,
            EventStoreError::Nats(_) => Self::ConnectionError(Box::new(err)),
            EventStoreError::Malformed { .. } => Self::DeserializationError(Box::new(err)),
            EventStoreError::InvalidName { .. }
            | EventStoreError::UnknownAggregateType(_)
            | EventStoreError::UnknownStream(_)
            | EventStoreError::InvalidCommit { .. } => Self::UnknownError(Box::new(err)),
        }
    }
}

impl<T: std::error::Error> From<EventStoreError> for AggregateError<T> {
    fn from(err: EventStoreError) -> Self {
        PersistenceError::from(err).into()
    }
}
