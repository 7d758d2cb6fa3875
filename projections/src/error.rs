//! What can stop a projection.

use wablast_eventstore::EventStoreError;

use wablast_eventstore::RecordedEvent;

/// Why a projection could not apply a batch.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// PostgreSQL refused or could not be reached: retried.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The event log could not be read: retried.
    #[error("event log: {0}")]
    Log(#[from] EventStoreError),
    /// An event the projection cannot fold (undecodable, a version it does
    /// not know, facts that contradict the rows): the projection stops at
    /// it, loudly, and skips nothing.
    #[error(
        "{projection} cannot fold {event_type} v{event_version} of {aggregate} (stream sequence {stream_sequence}): {reason}"
    )]
    Event {
        /// The projection.
        projection: &'static str,
        /// `<type> <tenant>.<id>#<sequence>`: whose event it is.
        aggregate: String,
        /// Where its commit is in its stream.
        stream_sequence: u64,
        /// Its type.
        event_type: String,
        /// Its version.
        event_version: String,
        /// Why.
        reason: String,
    },
    /// Asked for a projection that does not exist.
    #[error("no projection named {0:?} (known: {known})", known = crate::NAMES.join(", "))]
    UnknownProjection(String),
    /// A task running a projection ended unexpectedly.
    #[error("projection stopped: {0}")]
    Stopped(String),
}

impl ProjectionError {
    /// Whether trying the same batch again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            // Connections, pools, serialization failures, a server shutting
            // down or out of resources: yes. Refused data, broken SQL: no.
            Self::Database(sqlx::Error::Database(err)) => err.code().is_some_and(|code| {
                ["08", "40", "53", "55", "57", "58"]
                    .iter()
                    .any(|class| code.starts_with(class))
            }),
            Self::Database(err) => matches!(
                err,
                sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::Protocol(_)
                    | sqlx::Error::WorkerCrashed
            ),
            Self::Log(err) => matches!(err, EventStoreError::Nats(_)),
            Self::Event { .. } | Self::UnknownProjection(_) | Self::Stopped(_) => false,
        }
    }
}

impl ProjectionError {
    /// An event the projection cannot fold.
    pub fn event(projection: &'static str, event: &RecordedEvent, reason: impl ToString) -> Self {
        Self::Event {
            projection,
            aggregate: format!(
                "{} {}.{}#{}",
                event.aggregate_type, event.tenant, event.aggregate_id, event.sequence
            ),
            stream_sequence: event.stream_sequence,
            event_type: event.event_type.clone(),
            event_version: event.event_version.clone(),
            reason: reason.to_string(),
        }
    }
}
