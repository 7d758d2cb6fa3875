//! The cqrs-es `PersistedEventRepository` on the JetStream log, so the
//! framework's own machinery (`PersistedEventStore`, `CqrsFramework`,
//! `QueryReplay`, upcasters) works on our log as on any other backend.
//!
//! wablast's own command side is [`crate::CommandHandler`], which carries
//! the subject's stream sequence from load to commit and reports where a
//! command was written. This repository gets only the events to persist, so
//! it learns the expected stream sequence at commit time: it reads the last
//! commit on the subject, checks that it ends right before the new events,
//! and appends expecting that commit. A writer that slipped in before that
//! read fails the check; one that slips in after it fails the server's
//! `Nats-Expected-Last-Subject-Sequence` check. Either way it is a conflict.

use std::collections::HashMap;

use cqrs_es::Aggregate;
use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;

use crate::envelope::{CommandMetadata, Commit, RecordedEvent};
use crate::error::EventStoreError;
use crate::log::EventLog;
use crate::naming::AggregateKey;

/// cqrs-es event repository on the JetStream event log. Aggregate ids are
/// `<tenant>.<id>` (see [`AggregateKey`]).
///
/// Snapshots are not stored here: cqrs-es 0.5.0's snapshot store applies
/// events twice, so only `PersistedEventStore::new_event_store` is to be
/// used with it, and `persist` refuses a snapshot update loudly.
#[derive(Clone)]
pub struct JetStreamEventRepository {
    log: EventLog,
}

impl JetStreamEventRepository {
    /// A repository on `log`.
    pub fn new(log: EventLog) -> Self {
        Self { log }
    }

    async fn events(
        &self,
        aggregate_type: &str,
        framework_id: &str,
    ) -> Result<Vec<SerializedEvent>, EventStoreError> {
        let key = AggregateKey::from_framework_id(framework_id)?;
        let history = self.log.load(aggregate_type, &key).await?;
        Ok(history.into_events().map(|e| e.to_serialized()).collect())
    }

    fn feed(events: BoxStream<'static, Result<RecordedEvent, EventStoreError>>) -> ReplayStream {
        let (mut feed, stream) = ReplayStream::new(256);
        tokio::spawn(async move {
            let mut events = events;
            while let Some(event) = events.next().await {
                let item = event
                    .map(|e| e.to_serialized())
                    .map_err(PersistenceError::from);
                if feed.push(item).await.is_err() {
                    break; // the reader went away
                }
            }
        });
        stream
    }
}

impl PersistedEventRepository for JetStreamEventRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        Ok(self.events(A::TYPE, aggregate_id).await?)
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let mut events = self.events(A::TYPE, aggregate_id).await?;
        events.retain(|e| e.sequence > last_sequence);
        Ok(events)
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        _aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        Ok(None)
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        if snapshot_update.is_some() {
            return Err(PersistenceError::UnknownError(
                "the JetStream event repository does not store snapshots; use PersistedEventStore::new_event_store".into(),
            ));
        }
        let Some(first) = events.first() else {
            return Ok(());
        };
        let key = AggregateKey::from_framework_id(&first.aggregate_id)?;
        let metadata: HashMap<String, String> = serde_json::from_value(first.metadata.clone())?;
        let metadata = CommandMetadata::from_map(&metadata)?;
        let mut commit = Commit::new(A::TYPE, &key, &metadata);
        for event in events {
            commit.push(
                event.sequence as u64,
                event.event_type.clone(),
                event.event_version.clone(),
                event.payload.clone(),
            );
        }
        let expected_last = if commit.first_sequence() <= 1 {
            0
        } else {
            match self.log.last_commit(A::TYPE, &key).await? {
                Some((seq, last)) if last.last_sequence() + 1 == commit.first_sequence() => seq,
                _ => {
                    return Err(PersistenceError::OptimisticLockError);
                }
            }
        };
        self.log.append(expected_last, &commit).await?;
        Ok(())
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        let key = AggregateKey::from_framework_id(aggregate_id)?;
        Ok(Self::feed(self.log.stream_aggregate(A::TYPE, &key).await?))
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        let stream = self.log.stream_name_of(A::TYPE)?.to_owned();
        let filter = self.log.prefix().aggregate_type_subjects(A::TYPE);
        Ok(Self::feed(self.log.replay(&stream, Some(filter), 1).await?))
    }
}
