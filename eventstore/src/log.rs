//! The event log on JetStream: its streams, appending a commit under
//! optimistic concurrency, loading one aggregate, and replaying everything.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{
    Config as StreamConfig, DirectGetErrorKind, DiscardPolicy, StorageType,
};
use async_nats::jetstream::{self, ErrorCode, kv};
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use tracing::{debug, instrument, warn};

use crate::envelope::{Commit, RecordedEvent};
use crate::error::EventStoreError;
use crate::naming::{AggregateKey, Prefix, Replicas};

/// Header naming the event types of a commit, comma separated, so that
/// subscribers can filter without decoding the payload.
pub const EVENT_TYPES_HEADER: &str = "Wablast-Event-Types";

/// Header naming the stream sequence of the aggregate's commit before this
/// one (`0`: the first), which the append expected to follow. It links an
/// aggregate's commits backwards, so a short history is read with a direct
/// get per commit instead of a consumer.
pub const PREVIOUS_HEADER: &str = "Wablast-Previous";

/// Commits read back one direct get at a time at most; a longer history is
/// read through a consumer.
const LINKED_READ_MAX: usize = 16;

/// How many times an append whose acknowledgement was lost is re-sent. The
/// re-send carries the same `Nats-Msg-Id`, so it cannot be committed twice.
const PUBLISH_ATTEMPTS: usize = 3;

/// One stream of the log and the aggregate types whose subjects it holds.
#[derive(Clone, Debug)]
pub struct StreamSpec {
    /// The stream's name without the prefix (`events`, `messages`).
    pub name: String,
    /// The aggregate types whose subjects it holds.
    pub aggregate_types: Vec<String>,
    /// How long commits are kept; `None` keeps them forever.
    pub max_age: Option<Duration>,
}

impl StreamSpec {
    /// A stream whose commits are kept forever.
    pub fn kept_forever(name: &str, aggregate_types: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            aggregate_types: aggregate_types.iter().map(|t| (*t).to_owned()).collect(),
            max_age: None,
        }
    }

    /// A stream whose commits expire after `max_age` (message content is
    /// personal data, kept 14 days by default).
    pub fn with_retention(name: &str, aggregate_types: &[&str], max_age: Duration) -> Self {
        Self {
            max_age: Some(max_age),
            ..Self::kept_forever(name, aggregate_types)
        }
    }
}

/// How the log is laid out on the server.
#[derive(Clone, Debug)]
pub struct EventLogConfig {
    /// The installation's prefix (`WABLAST_NATS_PREFIX`).
    pub prefix: Prefix,
    /// The streams; each aggregate type belongs to exactly one.
    pub streams: Vec<StreamSpec>,
    /// How long the server remembers a `Nats-Msg-Id` to drop a repeated
    /// publish (JetStream's default is two minutes).
    pub duplicate_window: Duration,
}

impl EventLogConfig {
    /// A configuration with JetStream's default duplicate window.
    pub fn new(prefix: Prefix, streams: Vec<StreamSpec>) -> Self {
        Self {
            prefix,
            streams,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

/// The event log: a handle to the JetStream streams that hold every commit.
/// Cheap to clone.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

struct Inner {
    jetstream: jetstream::Context,
    prefix: Prefix,
    /// Streams by their full name.
    streams: HashMap<String, jetstream::stream::Stream>,
    /// Full stream name by aggregate type.
    stream_of_type: HashMap<String, String>,
    dead_letters: String,
    /// Aggregate snapshots: `<type>.<tenant>.<id>` → the folded state at a
    /// known position (see [`crate::command`]).
    snapshots: kv::Store,
}

/// An aggregate's history as loaded: its commits in order, and the stream
/// sequence of the last one (0 when the aggregate is new), which the next
/// append must name as expected.
#[derive(Debug, Default)]
pub struct History {
    /// The commits, oldest first, each with its stream sequence.
    pub commits: Vec<(u64, Commit)>,
    /// Stream sequence of the last commit on the aggregate's subject.
    pub last_stream_sequence: u64,
}

impl History {
    /// Aggregate sequence of the last event (0 when the aggregate is new).
    pub fn last_sequence(&self) -> u64 {
        self.commits.last().map_or(0, |(_, c)| c.last_sequence())
    }

    /// Every event with its envelope, oldest first.
    pub fn into_events(self) -> impl Iterator<Item = RecordedEvent> {
        self.commits
            .into_iter()
            .flat_map(|(seq, commit)| commit.into_recorded(seq))
    }
}

impl EventLog {
    /// Opens the log, creating or updating its streams (idempotent: safe at
    /// every start-up, and an aggregate type added to a spec is added to the
    /// stream's subjects). Also creates the dead-letter stream.
    pub async fn open(
        client: async_nats::Client,
        config: EventLogConfig,
    ) -> Result<Self, EventStoreError> {
        let js = jetstream::new(client);
        let prefix = config.prefix;
        let mut streams = HashMap::new();
        let mut stream_of_type = HashMap::new();
        for spec in &config.streams {
            let name = prefix.stream_name(&spec.name);
            for aggregate_type in &spec.aggregate_types {
                crate::naming::check_token("aggregate type", aggregate_type)?;
                if let Some(other) = stream_of_type.insert(aggregate_type.clone(), name.clone()) {
                    return Err(EventStoreError::InvalidName {
                        what: "aggregate type listed in two streams",
                        value: format!("{aggregate_type} ({other}, {name})"),
                    });
                }
            }
            let subjects = spec
                .aggregate_types
                .iter()
                .map(|t| prefix.aggregate_type_subjects(t))
                .collect();
            let stream = ensure_stream(
                &js,
                StreamConfig {
                    name: name.clone(),
                    description: Some(format!(
                        "wablast events: {}",
                        spec.aggregate_types.join(", ")
                    )),
                    subjects,
                    max_age: spec.max_age.unwrap_or_default(),
                    duplicate_window: config.duplicate_window,
                    ..log_stream_config(prefix.replicas())
                },
            )
            .await?;
            streams.insert(name, stream);
        }
        let dead_letters = prefix.stream_name("dlq");
        let dlq = ensure_stream(
            &js,
            StreamConfig {
                name: dead_letters.clone(),
                description: Some("wablast dead letters: messages consumers gave up on".into()),
                subjects: vec![prefix.dead_letter_subjects()],
                ..log_stream_config(prefix.replicas())
            },
        )
        .await?;
        streams.insert(dead_letters.clone(), dlq);
        let snapshots = ensure_key_value(
            &js,
            &prefix.stream_name("snapshots"),
            "wablast aggregate snapshots (a cache: rebuilt from the log)",
            prefix.replicas(),
        )
        .await?;
        Ok(Self {
            inner: Arc::new(Inner {
                jetstream: js,
                prefix,
                streams,
                stream_of_type,
                dead_letters,
                snapshots,
            }),
        })
    }

    /// The installation's prefix.
    pub fn prefix(&self) -> &Prefix {
        &self.inner.prefix
    }

    /// The JetStream context the log uses.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.inner.jetstream
    }

    /// Full name of the stream holding an aggregate type.
    pub fn stream_name_of(&self, aggregate_type: &str) -> Result<&str, EventStoreError> {
        self.inner
            .stream_of_type
            .get(aggregate_type)
            .map(String::as_str)
            .ok_or_else(|| EventStoreError::UnknownAggregateType(aggregate_type.to_owned()))
    }

    /// Full name of the dead-letter stream.
    pub fn dead_letter_stream_name(&self) -> &str {
        &self.inner.dead_letters
    }

    /// Full names of every stream of the log, dead letters included.
    pub fn stream_names(&self) -> impl Iterator<Item = &str> {
        self.inner.streams.keys().map(String::as_str)
    }

    /// A stream of the log by its full name.
    pub fn stream(&self, name: &str) -> Result<&jetstream::stream::Stream, EventStoreError> {
        self.inner
            .streams
            .get(name)
            .ok_or_else(|| EventStoreError::UnknownStream(name.to_owned()))
    }

    fn stream_of(
        &self,
        aggregate_type: &str,
    ) -> Result<&jetstream::stream::Stream, EventStoreError> {
        self.stream(self.stream_name_of(aggregate_type)?)
    }

    /// Appends one commit to an aggregate's subject.
    ///
    /// `expected_last` is the stream sequence of the last commit the writer
    /// saw on the subject (0 for a new aggregate). If another commit landed
    /// since, the append is refused as a [`EventStoreError::Conflict`].
    ///
    /// The `Nats-Msg-Id` is derived from the command id, so re-sending the
    /// same commit (after a lost acknowledgement, or by a second process
    /// running the same command on the same state) is committed once. A
    /// command id that comes back with a *different* decision is a conflict,
    /// never a silent success.
    ///
    /// # Returns
    /// The stream sequence the commit was written at.
    #[instrument(skip_all, fields(subject = tracing::field::Empty, expected_last), err(level = "debug"))]
    pub async fn append(
        &self,
        expected_last: u64,
        commit: &Commit,
    ) -> Result<u64, EventStoreError> {
        self.publish_commit(expected_last, commit, true).await
    }

    /// Appends an aggregate's first commit, for bulk creation: like
    /// [`append`](Self::append) at 0, without a `Nats-Msg-Id`. The expected
    /// last subject sequence of 0 already refuses a second first commit, so
    /// a re-sent publish (after a lost acknowledgement) is a
    /// [`EventStoreError::Conflict`] instead of a deduplicated success: the
    /// caller takes the aggregate as existing, which it does. The server
    /// then keeps no deduplication entry for it (per publish: a header
    /// built, parsed and stored, and an entry in the window's map).
    ///
    /// # Returns
    /// The stream sequence the commit was written at.
    #[instrument(skip_all, fields(subject = tracing::field::Empty), err(level = "debug"))]
    pub async fn append_first(&self, commit: &Commit) -> Result<u64, EventStoreError> {
        self.publish_commit(0, commit, false).await
    }

    /// Publishes `commit` after `expected_last`, with a `Nats-Msg-Id` if
    /// `deduplicated`.
    async fn publish_commit(
        &self,
        expected_last: u64,
        commit: &Commit,
        deduplicated: bool,
    ) -> Result<u64, EventStoreError> {
        let key = AggregateKey::new(&commit.tenant, &commit.aggregate_id)?;
        let subject = self
            .inner
            .prefix
            .aggregate_subject(&commit.aggregate_type, &key);
        tracing::Span::current().record("subject", subject.as_str());
        commit.check(&subject)?;
        let stream = self.stream_of(&commit.aggregate_type)?;
        let payload = serde_json::to_vec(commit).map_err(|source| EventStoreError::Malformed {
            sequence: 0,
            source,
        })?;
        let event_types = commit
            .events
            .iter()
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let mut message = PublishMessage::build().payload(payload.into());
        if deduplicated {
            message = message.message_id(format!("{}@{subject}", commit.command_id));
        }
        let message = message
            .expected_last_subject_sequence(expected_last)
            .header(EVENT_TYPES_HEADER, event_types.as_str())
            .header(PREVIOUS_HEADER, expected_last.to_string().as_str());

        let mut attempt = 0;
        let ack = loop {
            attempt += 1;
            let sent = self
                .inner
                .jetstream
                .send_publish(subject.clone(), message.clone())
                .await;
            let result = match sent {
                Ok(ack) => ack.await,
                Err(err) => Err(err),
            };
            match result {
                Ok(ack) => break ack,
                Err(err) if is_wrong_last_sequence(&err) => {
                    // nats-server 2.10+ checks the expected sequence before
                    // the deduplication window: a re-sent commit that did
                    // land (a lost acknowledgement, or a second process
                    // running the same command on the same state) comes back
                    // as a lost race. It is the same decision when the
                    // commit right after `expected_last` is this one.
                    if deduplicated
                        && let Some(sequence) = self
                            .landed_after(stream, &subject, expected_last, commit)
                            .await?
                    {
                        debug!(%subject, sequence, "append already committed by a retry");
                        return Ok(sequence);
                    }
                    debug!(%subject, expected_last, "append lost the race");
                    return Err(EventStoreError::Conflict { subject });
                }
                Err(err)
                    if matches!(
                        err.kind(),
                        PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe
                    ) && attempt < PUBLISH_ATTEMPTS =>
                {
                    warn!(%subject, attempt, error = %err, "append not acknowledged, re-sending");
                }
                Err(err) => return Err(EventStoreError::nats(err)),
            }
        };

        if ack.duplicate {
            // The server had a commit with this command id already. It is a
            // retry of this very decision, or a reused command id.
            let stored = stream
                .direct_get(ack.sequence)
                .await
                .map_err(EventStoreError::nats)?;
            let stored: Commit = serde_json::from_slice(&stored.payload).map_err(|source| {
                EventStoreError::Malformed {
                    sequence: ack.sequence,
                    source,
                }
            })?;
            if !stored.same_decision(commit) {
                warn!(%subject, command_id = %commit.command_id, "command id reused for a different commit");
                return Err(EventStoreError::Conflict { subject });
            }
            debug!(%subject, sequence = ack.sequence, "append deduplicated");
        }
        Ok(ack.sequence)
    }

    /// Where `commit` stands on `subject` if it is the commit right after
    /// `expected_last` (the same decision: same command id, same events).
    async fn landed_after(
        &self,
        stream: &jetstream::stream::Stream,
        subject: &str,
        expected_last: u64,
        commit: &Commit,
    ) -> Result<Option<u64>, EventStoreError> {
        let next = match stream
            .direct_get_next_for_subject(subject, Some(expected_last + 1))
            .await
        {
            Ok(message) => message,
            Err(err) if err.kind() == DirectGetErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(EventStoreError::nats(err)),
        };
        let stored = decode(next.sequence, &next.payload)?;
        if stored.command_id != commit.command_id {
            return Ok(None);
        }
        if !stored.same_decision(commit) {
            warn!(%subject, command_id = %commit.command_id, "command id reused for a different commit");
            return Ok(None);
        }
        Ok(Some(next.sequence))
    }

    /// Asks JetStream for the state of every stream of the log: proves the
    /// server answers and the streams exist.
    pub async fn ping(&self) -> Result<(), EventStoreError> {
        for stream in self.inner.streams.values() {
            stream.get_info().await.map_err(EventStoreError::nats)?;
        }
        Ok(())
    }

    /// The last commit on an aggregate's subject, if any.
    pub async fn last_commit(
        &self,
        aggregate_type: &str,
        key: &AggregateKey,
    ) -> Result<Option<(u64, Commit)>, EventStoreError> {
        Ok(self
            .tip(aggregate_type, key)
            .await?
            .map(|tip| (tip.stream_sequence, tip.commit)))
    }

    /// The last commit on an aggregate's subject, if any, with the link to
    /// the commit before it.
    pub async fn tip(
        &self,
        aggregate_type: &str,
        key: &AggregateKey,
    ) -> Result<Option<Tip>, EventStoreError> {
        let stream = self.stream_of(aggregate_type)?;
        let subject = self.inner.prefix.aggregate_subject(aggregate_type, key);
        match stream.direct_get_last_for_subject(subject).await {
            Ok(message) => Ok(Some(Tip {
                stream_sequence: message.sequence,
                commit: decode(message.sequence, &message.payload)?,
                previous: previous_of(&message.headers),
            })),
            Err(err) if err.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(err) => Err(EventStoreError::nats(err)),
        }
    }

    /// The commit at `stream_sequence`, if it is one of the aggregate's (one
    /// direct get by sequence, which does not search the stream by
    /// subject).
    pub async fn commit_at(
        &self,
        aggregate_type: &str,
        key: &AggregateKey,
        stream_sequence: u64,
    ) -> Result<Option<Commit>, EventStoreError> {
        let stream = self.stream_of(aggregate_type)?;
        let subject = self.inner.prefix.aggregate_subject(aggregate_type, key);
        match stream.direct_get(stream_sequence).await {
            Ok(message) if message.subject.as_str() == subject => {
                Ok(Some(decode(stream_sequence, &message.payload)?))
            }
            Ok(_) => Ok(None),
            Err(err) if err.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(err) => Err(EventStoreError::nats(err)),
        }
    }

    /// The commits of an aggregate after stream sequence `after` up to and
    /// including `tip`, oldest first: read backwards from the tip, one
    /// direct get per commit, while the commits name the one before them
    /// (and the history is short); else through a consumer, as
    /// [`EventLog::commits_after`] reads.
    pub async fn commits_until(
        &self,
        aggregate_type: &str,
        key: &AggregateKey,
        after: u64,
        tip: Tip,
    ) -> Result<Vec<(u64, Commit)>, EventStoreError> {
        let until = tip.stream_sequence;
        if until <= after {
            return Ok(Vec::new());
        }
        let stream = self.stream_of(aggregate_type)?;
        let subject = self.inner.prefix.aggregate_subject(aggregate_type, key);
        let mut previous = tip.previous;
        let mut commits = vec![(until, tip.commit)];
        while let Some(before) = previous {
            if before == after {
                commits.reverse();
                return Ok(commits);
            }
            if before < after || commits.len() >= LINKED_READ_MAX {
                break;
            }
            let message = stream
                .direct_get(before)
                .await
                .map_err(EventStoreError::nats)?;
            if message.subject.as_str() != subject {
                warn!(%subject, sequence = before, "a commit's link points elsewhere; reading the history through a consumer");
                break;
            }
            previous = previous_of(&message.headers);
            commits.push((before, decode(before, &message.payload)?));
        }
        self.commits_after(aggregate_type, key, after, until).await
    }

    /// Loads an aggregate's whole history.
    ///
    /// A new aggregate costs one direct get; an aggregate of one commit,
    /// the same; a longer history is read through a short-lived ordered
    /// consumer filtered to the aggregate's subject, up to the last commit
    /// seen by that first get.
    #[instrument(skip(self), err(level = "debug"))]
    pub async fn load(
        &self,
        aggregate_type: &str,
        key: &AggregateKey,
    ) -> Result<History, EventStoreError> {
        let Some(tip) = self.tip(aggregate_type, key).await? else {
            return Ok(History::default());
        };
        let last_seq = tip.stream_sequence;
        if tip.commit.first_sequence() == 1 {
            return Ok(History {
                commits: vec![(last_seq, tip.commit)],
                last_stream_sequence: last_seq,
            });
        }
        let commits = self.commits_until(aggregate_type, key, 0, tip).await?;
        Ok(History {
            commits,
            last_stream_sequence: last_seq,
        })
    }

    /// The commits of an aggregate after stream sequence `after`, up to and
    /// including `until` (the last commit the caller saw), oldest first.
    pub async fn commits_after(
        &self,
        aggregate_type: &str,
        key: &AggregateKey,
        after: u64,
        until: u64,
    ) -> Result<Vec<(u64, Commit)>, EventStoreError> {
        if after >= until {
            return Ok(Vec::new());
        }
        let subject = self.inner.prefix.aggregate_subject(aggregate_type, key);
        self.read_commits(aggregate_type, Some(subject), after + 1, until)
            .await?
            .try_collect()
            .await
    }

    /// The keys of the aggregates of a type with this id, whichever tenant
    /// they belong to (for operators' tools, where the tenant is not known;
    /// ids are UUIDs, so normally one).
    pub async fn find_aggregate(
        &self,
        aggregate_type: &str,
        id: &str,
    ) -> Result<Vec<AggregateKey>, EventStoreError> {
        crate::naming::check_token("aggregate id", id)?;
        let filter = format!("{}.ev.*.{aggregate_type}.{id}", self.inner.prefix);
        let subjects: Vec<(String, usize)> = self
            .stream_of(aggregate_type)?
            .info_with_subjects(filter)
            .await
            .map_err(EventStoreError::nats)?
            .try_collect()
            .await
            .map_err(EventStoreError::nats)?;
        let mut keys = subjects
            .into_iter()
            .filter_map(|(subject, _)| {
                let tenant = subject.split('.').nth(2)?;
                AggregateKey::new(tenant, id).ok()
            })
            .collect::<Vec<_>>();
        keys.sort_by(|a, b| a.tenant().cmp(b.tenant()));
        Ok(keys)
    }

    /// The stored snapshot of an aggregate, if any.
    pub async fn snapshot(
        &self,
        aggregate_type: &str,
        key: &AggregateKey,
    ) -> Result<Option<Bytes>, EventStoreError> {
        self.inner
            .snapshots
            .get(snapshot_key(aggregate_type, key))
            .await
            .map_err(EventStoreError::nats)
    }

    /// Stores an aggregate's snapshot, replacing the previous one.
    pub async fn save_snapshot(
        &self,
        aggregate_type: &str,
        key: &AggregateKey,
        snapshot: Bytes,
    ) -> Result<(), EventStoreError> {
        self.inner
            .snapshots
            .put(snapshot_key(aggregate_type, key), snapshot)
            .await
            .map(|_| ())
            .map_err(EventStoreError::nats)
    }

    /// Every event of one aggregate, oldest first, as a stream.
    pub async fn stream_aggregate(
        &self,
        aggregate_type: &str,
        key: &AggregateKey,
    ) -> Result<BoxStream<'static, Result<RecordedEvent, EventStoreError>>, EventStoreError> {
        let Some((last_seq, _)) = self.last_commit(aggregate_type, key).await? else {
            return Ok(futures::stream::empty().boxed());
        };
        let subject = self.inner.prefix.aggregate_subject(aggregate_type, key);
        let commits = self
            .read_commits(aggregate_type, Some(subject), 1, last_seq)
            .await?;
        Ok(flatten(commits))
    }

    /// Every event of one stream from stream sequence `from` (inclusive) up
    /// to the stream's last commit when the call is made, in log order.
    /// `filter` narrows it to matching subjects (one aggregate type, one
    /// tenant's aggregates of a type); it must lie within one of the stream's
    /// subjects (see [`Prefix::tenant_aggregate_subjects`]).
    pub async fn replay(
        &self,
        stream_name: &str,
        filter: Option<String>,
        from: u64,
    ) -> Result<BoxStream<'static, Result<RecordedEvent, EventStoreError>>, EventStoreError> {
        let mut stream = self.stream(stream_name)?.clone();
        let last = stream
            .info()
            .await
            .map_err(EventStoreError::nats)?
            .state
            .last_sequence;
        if last < from.max(1) {
            return Ok(futures::stream::empty().boxed());
        }
        let commits = self
            .read_commits_in(&stream, filter, from.max(1), last)
            .await?;
        Ok(flatten(commits))
    }

    async fn read_commits(
        &self,
        aggregate_type: &str,
        filter: Option<String>,
        from: u64,
        until: u64,
    ) -> Result<BoxStream<'static, Result<(u64, Commit), EventStoreError>>, EventStoreError> {
        let stream = self.stream_of(aggregate_type)?.clone();
        self.read_commits_in(&stream, filter, from, until).await
    }

    /// Reads commits `from..=until` (stream sequences) matching `filter`
    /// through an ephemeral ordered consumer, which ends once `until` (or
    /// the last matching commit before it) has been read.
    async fn read_commits_in(
        &self,
        stream: &jetstream::stream::Stream,
        filter: Option<String>,
        from: u64,
        until: u64,
    ) -> Result<BoxStream<'static, Result<(u64, Commit), EventStoreError>>, EventStoreError> {
        // A plain ephemeral consumer (not async-nats' ordered one) tells us on
        // creation how many messages it will deliver, so the read knows when
        // it is done even when `until` does not match the filter.
        let consumer = stream
            .create_consumer(range_reader(from, filter.unwrap_or_default()))
            .await
            .map_err(EventStoreError::nats)?;
        let pending = consumer.cached_info().num_pending;
        let name = consumer.cached_info().name.clone();
        if pending == 0 {
            delete_consumer_later(stream.clone(), name);
            return Ok(futures::stream::empty().boxed());
        }
        let messages = consumer
            .stream()
            .max_messages_per_batch(1_000)
            .messages()
            .await
            .map_err(EventStoreError::nats)?;
        let state = ReadState {
            messages,
            left: pending,
            until,
            cleanup: Some((stream.clone(), name)),
        };
        Ok(futures::stream::try_unfold(state, |mut state| async move {
            if state.left == 0 {
                state.finish();
                return Ok(None);
            }
            let message = match state.messages.next().await {
                Some(Ok(message)) => message,
                Some(Err(err)) => return Err(EventStoreError::nats(err)),
                None => {
                    return Err(EventStoreError::Nats(
                        "event log consumer closed before the end".into(),
                    ));
                }
            };
            let sequence = message
                .info()
                .map_err(EventStoreError::Nats)?
                .stream_sequence;
            state.left -= 1;
            if sequence >= state.until {
                state.left = 0;
            }
            if sequence > state.until {
                state.finish();
                return Ok(None);
            }
            let commit = decode(sequence, &message.payload)?;
            Ok(Some(((sequence, commit), state)))
        })
        .boxed())
    }
}

struct ReadState {
    messages: pull::Stream,
    left: u64,
    until: u64,
    cleanup: Option<(jetstream::stream::Stream, String)>,
}

impl ReadState {
    fn finish(&mut self) {
        if let Some((stream, name)) = self.cleanup.take() {
            delete_consumer_later(stream, name);
        }
    }
}

impl Drop for ReadState {
    fn drop(&mut self) {
        self.finish();
    }
}

/// An ephemeral consumer that reads a stream once from `from`, delivering
/// the subjects of `filter` (empty: all): no acknowledgements, kept in
/// memory, removed by the server after 10 s without a reader (sooner, by
/// whoever is done with it).
pub fn range_reader(from: u64, filter: String) -> pull::Config {
    pull::Config {
        deliver_policy: DeliverPolicy::ByStartSequence {
            start_sequence: from,
        },
        ack_policy: AckPolicy::None,
        filter_subject: filter,
        memory_storage: true,
        inactive_threshold: Duration::from_secs(10),
        num_replicas: 1,
        ..Default::default()
    }
}

/// Ephemeral consumers would be removed by the server after their
/// inactivity threshold; deleting them as soon as a read is done keeps a
/// busy server from carrying thousands of idle ones.
fn delete_consumer_later(stream: jetstream::stream::Stream, name: String) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            if let Err(err) = stream.delete_consumer(&name).await {
                debug!(consumer = %name, error = %err, "ephemeral consumer not deleted");
            }
        });
    }
}

fn flatten(
    commits: BoxStream<'static, Result<(u64, Commit), EventStoreError>>,
) -> BoxStream<'static, Result<RecordedEvent, EventStoreError>> {
    commits
        .map_ok(|(seq, commit)| futures::stream::iter(commit.into_recorded(seq).map(Ok)))
        .try_flatten()
        .boxed()
}

fn snapshot_key(aggregate_type: &str, key: &AggregateKey) -> String {
    format!("{aggregate_type}.{}.{}", key.tenant(), key.id())
}

/// An aggregate's last commit, as [`EventLog::tip`] reads it.
#[derive(Debug)]
pub struct Tip {
    /// The commit's stream sequence.
    pub stream_sequence: u64,
    /// The commit.
    pub commit: Commit,
    /// The stream sequence of the aggregate's commit before it (`0`: none),
    /// when the commit says (see [`PREVIOUS_HEADER`]).
    pub previous: Option<u64>,
}

/// The link a commit's headers hold to the commit before it.
fn previous_of(headers: &async_nats::HeaderMap) -> Option<u64> {
    headers.get(PREVIOUS_HEADER)?.as_str().parse().ok()
}

fn decode(sequence: u64, payload: &[u8]) -> Result<Commit, EventStoreError> {
    serde_json::from_slice(payload)
        .map_err(|source| EventStoreError::Malformed { sequence, source })
}

/// What every stream of the log shares: on disk, in `replicas` copies,
/// nothing deleted or purged by hand (retention, where set, is by age
/// only).
fn log_stream_config(replicas: Replicas) -> StreamConfig {
    StreamConfig {
        storage: StorageType::File,
        num_replicas: replicas.count(),
        allow_direct: true,
        deny_delete: true,
        deny_purge: true,
        discard: DiscardPolicy::Old,
        ..Default::default()
    }
}

/// How many times [`ensure_stream`] asks when NATS does not answer.
const ENSURE_TRIES: u32 = 5;
/// How long [`ensure_stream`] waits for its first answer (then twice,
/// three times as long, ...).
const ENSURE_TIMEOUT: Duration = Duration::from_secs(2);

/// Creates the stream, or updates it to `config`: an installation that
/// went from one replica to three (`WABLAST_NATS_REPLICAS`) has its
/// streams raised at its next start-up (NATS copies them to the new
/// replicas while they stay in use).
///
/// A creation NATS did not answer is asked again (up to
/// [`ENSURE_TRIES`] times): a NATS cluster answers none of several
/// creations of the same new stream made at once (nats-io/nats-server
/// #3677), which is what the processes of a new installation do when they
/// start together (two engines creating their buckets). The stream exists
/// by then, and the next ask is an update, answered at once.
pub async fn ensure_stream(
    js: &jetstream::Context,
    config: StreamConfig,
) -> Result<jetstream::stream::Stream, EventStoreError> {
    let name = config.name.clone();
    // An ask that went unanswered is asked again soon (a creation answered
    // at all is answered in milliseconds), each time waiting longer (a
    // busy cluster may be slow to answer).
    let mut asking = js.clone();
    let mut tries = 0;
    loop {
        tries += 1;
        asking.set_timeout(ENSURE_TIMEOUT * tries);
        match asking.create_or_update_stream(config.clone()).await {
            Ok(_) => break,
            Err(err)
                if err.kind() == jetstream::context::CreateStreamErrorKind::TimedOut
                    && tries < ENSURE_TRIES =>
            {
                warn!(stream = %name, tries, "NATS did not answer the stream's creation; asking again");
                tokio::time::sleep(Duration::from_millis(50) * tries).await;
            }
            Err(err) => return Err(EventStoreError::nats(err)),
        }
    }
    js.get_stream(&name).await.map_err(EventStoreError::nats)
}

/// Creates (or updates) a JetStream key-value bucket with history 1 and
/// returns it.
///
/// The bucket's stream is created here with the layout the KV protocol
/// defines (`KV_<bucket>`, subjects `$KV.<bucket>.>`, roll-ups allowed,
/// direct gets) and then opened as a bucket, so its file storage,
/// `replicas` ([`Prefix::replicas`] of the installation) and age limit are
/// said in one place.
pub async fn ensure_key_value(
    js: &jetstream::Context,
    bucket: &str,
    description: &str,
    replicas: Replicas,
) -> Result<kv::Store, EventStoreError> {
    ensure_bucket(js, bucket, description, None, replicas).await
}

/// Like [`ensure_key_value`], for a bucket whose entries disappear once
/// they were not written for `max_age` (leases, heartbeats: an entry lives
/// as long as its owner keeps rewriting it). Every entry of such a bucket
/// lives equally long: the age limit is the bucket's.
pub async fn ensure_expiring_key_value(
    js: &jetstream::Context,
    bucket: &str,
    description: &str,
    max_age: Duration,
    replicas: Replicas,
) -> Result<kv::Store, EventStoreError> {
    ensure_bucket(js, bucket, description, Some(max_age), replicas).await
}

async fn ensure_bucket(
    js: &jetstream::Context,
    bucket: &str,
    description: &str,
    max_age: Option<Duration>,
    replicas: Replicas,
) -> Result<kv::Store, EventStoreError> {
    let mut config = StreamConfig {
        name: format!("KV_{bucket}"),
        description: Some(description.to_owned()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        storage: StorageType::File,
        num_replicas: replicas.count(),
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: DiscardPolicy::New,
        ..Default::default()
    };
    if let Some(max_age) = max_age {
        config.max_age = max_age;
        // The server refuses a duplicate window longer than the age limit.
        config.duplicate_window = max_age.min(Duration::from_secs(120));
    }
    ensure_stream(js, config).await?;
    js.get_key_value(bucket)
        .await
        .map_err(EventStoreError::nats)
}

/// A lost race shows as `WrongLastSequence`; in clustered set-ups the
/// server may answer with the newer constant-text code, which async-nats
/// files under `Other`, so the code is checked too.
fn is_wrong_last_sequence(err: &async_nats::jetstream::context::PublishError) -> bool {
    if err.kind() == PublishErrorKind::WrongLastSequence {
        return true;
    }
    std::error::Error::source(err)
        .and_then(|source| source.downcast_ref::<async_nats::jetstream::Error>())
        .is_some_and(|e| {
            matches!(
                e.error_code(),
                ErrorCode::STREAM_WRONG_LAST_SEQUENCE
                    | ErrorCode::STREAM_WRONG_LAST_SEQUENCE_CONSTANT
            )
        })
}
