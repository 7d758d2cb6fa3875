//! What is stored: one [`Commit`] per command, holding that command's ordered
//! events and the envelope they share; and what readers get back, one
//! [`RecordedEvent`] per event with its whole envelope.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

use crate::error::EventStoreError;
use crate::naming::AggregateKey;

/// Who issued a command.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Actor {
    /// A user logged in with a password (JWT).
    User(Uuid),
    /// An integration calling with a tenant's API key.
    ApiKey(Uuid),
    /// A session engine process, by its engine id.
    Engine(String),
    /// wablast itself: process managers, schedulers, migrations.
    System,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => write!(f, "user:{id}"),
            Self::ApiKey(id) => write!(f, "api_key:{id}"),
            Self::Engine(id) => write!(f, "engine:{id}"),
            Self::System => f.write_str("system"),
        }
    }
}

impl FromStr for Actor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("unknown actor {s:?}");
        match s.split_once(':') {
            None if s == "system" => Ok(Self::System),
            Some(("user", id)) => Ok(Self::User(id.parse().map_err(|_| bad())?)),
            Some(("api_key", id)) => Ok(Self::ApiKey(id.parse().map_err(|_| bad())?)),
            Some(("engine", id)) if !id.is_empty() => Ok(Self::Engine(id.to_owned())),
            _ => Err(bad()),
        }
    }
}

impl Serialize for Actor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The part of an event's envelope that comes with the command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandMetadata {
    /// Identifies the command. A command retried with the same id is
    /// committed at most once (the log deduplicates on it).
    pub command_id: Uuid,
    /// The id shared by everything that one original request set off.
    pub correlation_id: Uuid,
    /// The event (or request) that caused this command, if any.
    pub causation_id: Option<Uuid>,
    /// Who asked.
    pub actor: Actor,
}

const COMMAND_ID: &str = "command_id";
const CORRELATION_ID: &str = "correlation_id";
const CAUSATION_ID: &str = "causation_id";
const ACTOR: &str = "actor";

impl CommandMetadata {
    /// Metadata for a new command that starts its own correlation.
    pub fn new(actor: Actor) -> Self {
        let command_id = Uuid::now_v7();
        Self {
            command_id,
            correlation_id: command_id,
            causation_id: None,
            actor,
        }
    }

    /// Metadata for a command a process manager issues in reaction to an
    /// event. The command id is derived from the event and `purpose`, so a
    /// redelivered event issues the same command id and the log commits it
    /// once.
    pub fn caused_by(event: &RecordedEvent, purpose: &str, actor: Actor) -> Self {
        Self {
            command_id: Uuid::new_v5(&event.event_id, purpose.as_bytes()),
            correlation_id: event.correlation_id,
            causation_id: Some(event.event_id),
            actor,
        }
    }

    /// The metadata as the string map cqrs-es carries with each event.
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut map = HashMap::from([
            (COMMAND_ID.to_owned(), self.command_id.to_string()),
            (CORRELATION_ID.to_owned(), self.correlation_id.to_string()),
            (ACTOR.to_owned(), self.actor.to_string()),
        ]);
        if let Some(causation) = self.causation_id {
            map.insert(CAUSATION_ID.to_owned(), causation.to_string());
        }
        map
    }

    /// Reads metadata back from a cqrs-es metadata map. A missing command id
    /// gets a fresh one (the command then cannot be deduplicated), a missing
    /// correlation id is the command id and a missing actor is `system`;
    /// values that are present must parse.
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, EventStoreError> {
        let uuid = |key: &'static str| -> Result<Option<Uuid>, EventStoreError> {
            map.get(key)
                .map(|v| {
                    v.parse().map_err(|_| EventStoreError::InvalidName {
                        what: key,
                        value: v.clone(),
                    })
                })
                .transpose()
        };
        let command_id = uuid(COMMAND_ID)?.unwrap_or_else(Uuid::now_v7);
        let actor = match map.get(ACTOR) {
            Some(v) => v.parse().map_err(|_| EventStoreError::InvalidName {
                what: ACTOR,
                value: v.clone(),
            })?,
            None => Actor::System,
        };
        Ok(Self {
            command_id,
            correlation_id: uuid(CORRELATION_ID)?.unwrap_or(command_id),
            causation_id: uuid(CAUSATION_ID)?,
            actor,
        })
    }
}

/// One command's events as stored: the payload of one JetStream message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Commit {
    /// Tenant token of the aggregate.
    pub tenant: String,
    /// The aggregate's type (`Aggregate::TYPE`).
    pub aggregate_type: String,
    /// The aggregate's id token (without the tenant).
    pub aggregate_id: String,
    /// See [`CommandMetadata::command_id`].
    pub command_id: Uuid,
    /// See [`CommandMetadata::correlation_id`].
    pub correlation_id: Uuid,
    /// See [`CommandMetadata::causation_id`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// See [`CommandMetadata::actor`].
    pub actor: Actor,
    /// When the command was committed (UTC).
    pub occurred_at: DateTime<Utc>,
    /// The command's events, in order, with consecutive aggregate sequences.
    pub events: Vec<CommittedEvent>,
}

/// One event inside a [`Commit`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommittedEvent {
    /// Unique id of this event (UUID v7).
    pub event_id: Uuid,
    /// Position of the event in its aggregate's history, from 1.
    pub sequence: u64,
    /// The event's type (`DomainEvent::event_type`), frozen once written.
    pub event_type: String,
    /// The event's version (`DomainEvent::event_version`); older versions
    /// are upcast when read, never rewritten.
    pub event_version: String,
    /// The event itself.
    pub payload: Value,
}

impl Commit {
    /// Starts a commit for one aggregate with the command's metadata.
    pub fn new(aggregate_type: &str, key: &AggregateKey, metadata: &CommandMetadata) -> Self {
        Self {
            tenant: key.tenant().to_owned(),
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: key.id().to_owned(),
            command_id: metadata.command_id,
            correlation_id: metadata.correlation_id,
            causation_id: metadata.causation_id,
            actor: metadata.actor.clone(),
            occurred_at: Utc::now(),
            events: Vec::new(),
        }
    }

    /// Adds the next event; its sequence must follow the previous one.
    pub fn push(
        &mut self,
        sequence: u64,
        event_type: String,
        event_version: String,
        payload: Value,
    ) {
        self.events.push(CommittedEvent {
            event_id: Uuid::now_v7(),
            sequence,
            event_type,
            event_version,
            payload,
        });
    }

    /// Aggregate sequence of the first event (0 for an empty commit).
    pub fn first_sequence(&self) -> u64 {
        self.events.first().map_or(0, |e| e.sequence)
    }

    /// Aggregate sequence of the last event (0 for an empty commit).
    pub fn last_sequence(&self) -> u64 {
        self.events.last().map_or(0, |e| e.sequence)
    }

    /// Whether two commits record the same decision: same aggregate, command,
    /// and the same events at the same sequences. Envelope details chosen at
    /// commit time (event ids, occurred-at) are not compared.
    pub fn same_decision(&self, other: &Commit) -> bool {
        self.tenant == other.tenant
            && self.aggregate_type == other.aggregate_type
            && self.aggregate_id == other.aggregate_id
            && self.command_id == other.command_id
            && self.events.len() == other.events.len()
            && self.events.iter().zip(&other.events).all(|(a, b)| {
                a.sequence == b.sequence
                    && a.event_type == b.event_type
                    && a.event_version == b.event_version
                    && a.payload == b.payload
            })
    }

    /// Checks the commit is well formed: at least one event, consecutive
    /// sequences from 1 upwards.
    pub(crate) fn check(&self, subject: &str) -> Result<(), EventStoreError> {
        let invalid = |reason: String| EventStoreError::InvalidCommit {
            subject: subject.to_owned(),
            reason,
        };
        let Some(first) = self.events.first() else {
            return Err(invalid("a commit holds at least one event".into()));
        };
        if first.sequence == 0 {
            return Err(invalid("aggregate sequences start at 1".into()));
        }
        for (i, event) in self.events.iter().enumerate() {
            if event.sequence != first.sequence + i as u64 {
                return Err(invalid(format!(
                    "event {i} has sequence {}, expected {}",
                    event.sequence,
                    first.sequence + i as u64
                )));
            }
        }
        Ok(())
    }

    /// The commit's events with their full envelopes, `stream_sequence`
    /// being where the commit is in the stream.
    pub fn into_recorded(self, stream_sequence: u64) -> impl Iterator<Item = RecordedEvent> {
        let Commit {
            tenant,
            aggregate_type,
            aggregate_id,
            command_id,
            correlation_id,
            causation_id,
            actor,
            occurred_at,
            events,
        } = self;
        events.into_iter().map(move |e| RecordedEvent {
            stream_sequence,
            event_id: e.event_id,
            event_type: e.event_type,
            event_version: e.event_version,
            aggregate_type: aggregate_type.clone(),
            tenant: tenant.clone(),
            aggregate_id: aggregate_id.clone(),
            sequence: e.sequence,
            occurred_at,
            command_id,
            correlation_id,
            causation_id,
            actor: actor.clone(),
            payload: e.payload,
        })
    }
}

/// A [`Commit`] read without its events' payloads, for readers that need
/// only the envelope (an index of events): the payloads are skipped by the
/// parser, never built.
#[derive(Clone, Debug, Deserialize)]
pub struct CommitHeader {
    tenant: String,
    aggregate_type: String,
    aggregate_id: String,
    command_id: Uuid,
    correlation_id: Uuid,
    #[serde(default)]
    causation_id: Option<Uuid>,
    actor: Actor,
    occurred_at: DateTime<Utc>,
    events: Vec<EventHeader>,
}

#[derive(Clone, Debug, Deserialize)]
struct EventHeader {
    event_id: Uuid,
    sequence: u64,
    event_type: String,
    event_version: String,
}

impl CommitHeader {
    /// The commit's events with their envelopes and a `null` payload.
    pub fn into_recorded(self, stream_sequence: u64) -> impl Iterator<Item = RecordedEvent> {
        let events = self
            .events
            .into_iter()
            .map(|e| CommittedEvent {
                event_id: e.event_id,
                sequence: e.sequence,
                event_type: e.event_type,
                event_version: e.event_version,
                payload: Value::Null,
            })
            .collect();
        Commit {
            tenant: self.tenant,
            aggregate_type: self.aggregate_type,
            aggregate_id: self.aggregate_id,
            command_id: self.command_id,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            actor: self.actor,
            occurred_at: self.occurred_at,
            events,
        }
        .into_recorded(stream_sequence)
    }
}

/// One event as read back, with its whole envelope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Stream sequence of the commit that holds the event: its position in
    /// the log. Events of one commit share it.
    pub stream_sequence: u64,
    /// Unique id of the event.
    pub event_id: Uuid,
    /// The event's type.
    pub event_type: String,
    /// The event's version (after upcasting, the current one).
    pub event_version: String,
    /// The aggregate's type.
    pub aggregate_type: String,
    /// Tenant token of the aggregate.
    pub tenant: String,
    /// Aggregate id token.
    pub aggregate_id: String,
    /// Position of the event in its aggregate's history, from 1.
    pub sequence: u64,
    /// When the command that produced it was committed.
    pub occurred_at: DateTime<Utc>,
    /// The command that produced it.
    pub command_id: Uuid,
    /// The correlation it belongs to.
    pub correlation_id: Uuid,
    /// What caused the command.
    pub causation_id: Option<Uuid>,
    /// Who issued the command.
    pub actor: Actor,
    /// The event itself.
    pub payload: Value,
}

impl RecordedEvent {
    /// A copy of the envelope, with a `null` payload: for readers that
    /// need only the envelope, without copying the payload.
    pub fn without_payload(&self) -> Self {
        Self {
            stream_sequence: self.stream_sequence,
            event_id: self.event_id,
            event_type: self.event_type.clone(),
            event_version: self.event_version.clone(),
            aggregate_type: self.aggregate_type.clone(),
            tenant: self.tenant.clone(),
            aggregate_id: self.aggregate_id.clone(),
            sequence: self.sequence,
            occurred_at: self.occurred_at,
            command_id: self.command_id,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            actor: self.actor.clone(),
            payload: Value::Null,
        }
    }

    /// The aggregate this event belongs to.
    pub fn key(&self) -> Result<AggregateKey, EventStoreError> {
        AggregateKey::new(&self.tenant, &self.aggregate_id)
    }

    /// The envelope as the string map cqrs-es carries with each event.
    pub fn metadata_map(&self) -> HashMap<String, String> {
        let mut map = CommandMetadata {
            command_id: self.command_id,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            actor: self.actor.clone(),
        }
        .to_map();
        map.insert("event_id".into(), self.event_id.to_string());
        map.insert("tenant".into(), self.tenant.clone());
        map.insert("occurred_at".into(), self.occurred_at.to_rfc3339());
        map.insert("stream_sequence".into(), self.stream_sequence.to_string());
        map
    }

    /// The event in cqrs-es's serialized form.
    pub fn to_serialized(&self) -> SerializedEvent {
        SerializedEvent {
            aggregate_id: format!("{}.{}", self.tenant, self.aggregate_id),
            sequence: self.sequence as usize,
            aggregate_type: self.aggregate_type.clone(),
            event_type: self.event_type.clone(),
            event_version: self.event_version.clone(),
            payload: self.payload.clone(),
            metadata: serde_json::to_value(self.metadata_map()).unwrap_or(Value::Null),
        }
    }

    /// Brings an event written in an older version up to the current one,
    /// with cqrs-es upcasters (applied in order, each to what the previous
    /// one produced).
    pub fn upcast(mut self, upcasters: &[Box<dyn EventUpcaster>]) -> Self {
        for upcaster in upcasters {
            if upcaster.can_upcast(&self.event_type, &self.event_version) {
                let upcast = upcaster.upcast(SerializedEvent {
                    aggregate_id: String::new(),
                    sequence: self.sequence as usize,
                    aggregate_type: std::mem::take(&mut self.aggregate_type),
                    event_type: std::mem::take(&mut self.event_type),
                    event_version: std::mem::take(&mut self.event_version),
                    payload: std::mem::take(&mut self.payload),
                    metadata: Value::Null,
                });
                self.aggregate_type = upcast.aggregate_type;
                self.event_type = upcast.event_type;
                self.event_version = upcast.event_version;
                self.payload = upcast.payload;
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::persist::SemanticVersionEventUpcaster;
    use serde_json::json;

    use super::*;

    fn commit() -> Commit {
        let key = AggregateKey::new("t1", "a1").unwrap();
        let mut commit = Commit::new("counter", &key, &CommandMetadata::new(Actor::System));
        commit.push(1, "Added".into(), "1.0".into(), json!({"n": 1}));
        commit.push(2, "Added".into(), "1.0".into(), json!({"n": 2}));
        commit
    }

    #[test]
    fn a_header_reads_the_envelope_and_leaves_the_payloads() {
        let commit = commit();
        let json = serde_json::to_vec(&commit).unwrap();
        let header: CommitHeader = serde_json::from_slice(&json).unwrap();
        let full: Vec<_> = commit.into_recorded(7).collect();
        let light: Vec<_> = header.into_recorded(7).collect();
        assert_eq!(full.len(), light.len());
        for (f, l) in full.into_iter().zip(light) {
            assert_eq!(l.payload, Value::Null);
            assert_eq!(
                RecordedEvent {
                    payload: Value::Null,
                    ..f
                },
                l
            );
        }
    }

    #[test]
    fn actors_round_trip_through_their_string_form() {
        for actor in [
            Actor::User(Uuid::now_v7()),
            Actor::ApiKey(Uuid::now_v7()),
            Actor::Engine("engine-1".into()),
            Actor::System,
        ] {
            assert_eq!(actor.to_string().parse::<Actor>().unwrap(), actor);
        }
        assert!("robot:1".parse::<Actor>().is_err());
        assert!("user:not-a-uuid".parse::<Actor>().is_err());
    }

    #[test]
    fn metadata_round_trips_through_the_framework_map() {
        let mut meta = CommandMetadata::new(Actor::User(Uuid::now_v7()));
        meta.causation_id = Some(Uuid::now_v7());
        assert_eq!(CommandMetadata::from_map(&meta.to_map()).unwrap(), meta);
    }

    #[test]
    fn malformed_metadata_is_refused_not_replaced() {
        let map = HashMap::from([(COMMAND_ID.to_owned(), "nope".to_owned())]);
        assert!(CommandMetadata::from_map(&map).is_err());
    }

    #[test]
    fn every_recorded_event_carries_the_commit_envelope() {
        let commit = commit();
        let events: Vec<_> = commit.clone().into_recorded(42).collect();
        assert_eq!(events.len(), 2);
        for (event, committed) in events.iter().zip(&commit.events) {
            assert_eq!(event.stream_sequence, 42);
            assert_eq!(event.command_id, commit.command_id);
            assert_eq!(event.tenant, "t1");
            assert_eq!(event.sequence, committed.sequence);
            assert_eq!(event.event_id, committed.event_id);
        }
    }

    #[test]
    fn a_commit_must_continue_its_own_sequence() {
        let mut commit = commit();
        assert!(commit.check("s").is_ok());
        commit.events[1].sequence = 5;
        assert!(commit.check("s").is_err());
        commit.events.clear();
        assert!(commit.check("s").is_err());
    }

    #[test]
    fn same_decision_ignores_commit_time_details_only() {
        let a = commit();
        let mut b = a.clone();
        b.occurred_at = Utc::now() + chrono::Duration::seconds(5);
        b.events[0].event_id = Uuid::now_v7();
        assert!(a.same_decision(&b));
        b.events[1].payload = json!({"n": 3});
        assert!(!a.same_decision(&b));
    }

    #[test]
    fn old_event_versions_are_upcast_on_read() {
        fn rename(mut payload: Value) -> Value {
            let n = payload["n"].take();
            json!({ "amount": n })
        }
        let upcasters: Vec<Box<dyn EventUpcaster>> = vec![Box::new(
            SemanticVersionEventUpcaster::new("Added", "2.0", Box::new(rename)),
        )];
        let event = commit().into_recorded(1).next().unwrap().upcast(&upcasters);
        assert_eq!(event.event_version, "2.0.0");
        assert_eq!(event.payload, json!({"amount": 1}));
    }
}
