//! The command side: load an aggregate, let it decide, commit its events as
//! one message, and retry with fresh state when another writer got there
//! first.
//!
//! # Snapshots
//!
//! Folding a long history on every command would make loading grow with the
//! aggregate's age. So the handler keeps snapshots
//! of folded state, each tagged with the aggregate sequence and the stream
//! sequence it was folded up to:
//!
//! - in memory, for the aggregates this process touched recently (bounded);
//! - in a JetStream KV bucket, written every [`SnapshotPolicy::every`] events,
//!   for other processes and restarts.
//!
//! A snapshot is only ever a starting point. Every load first reads the last
//! commit on the aggregate's subject (one direct get): when the snapshot is
//! at that commit it is used as is; when the last commit directly follows
//! the snapshot, that commit is applied; otherwise the commits after the
//! snapshot are read (backwards, a direct get each, following the link
//! every commit keeps to the one before it; see [`EventLog::tip`]). KV is
//! only asked when the aggregate is long enough to have a stored
//! snapshot. So a stale or missing snapshot costs time, never
//! correctness, and the append still names the subject's real last sequence.
//! Snapshots carry [`SnapshotPolicy::version`]: bump it when the aggregate's
//! state changes shape, and older snapshots are ignored.

use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::EventUpcaster;
use cqrs_es::{Aggregate, AggregateError, DomainEvent, EventEnvelope};
use serde::{Deserialize, Serialize};
use tracing::{debug, instrument, warn};

use crate::envelope::{CommandMetadata, Commit, RecordedEvent};
use crate::error::EventStoreError;
use crate::log::EventLog;
use crate::naming::AggregateKey;

/// How often a command is tried when it keeps losing races.
pub const DEFAULT_ATTEMPTS: u32 = 4;

/// An aggregate folded from the log, with where it was read up to.
#[derive(Clone, Debug)]
pub struct Loaded<A> {
    /// The aggregate's state.
    pub aggregate: A,
    /// Aggregate sequence of its last event (0 when new).
    pub sequence: u64,
    /// Stream sequence of its last commit (0 when new).
    pub stream_sequence: u64,
}

impl<A: Default> Loaded<A> {
    /// An aggregate with no history: its default state, before any commit.
    fn new() -> Self {
        Self {
            aggregate: A::default(),
            sequence: 0,
            stream_sequence: 0,
        }
    }
}

/// How the handler keeps snapshots.
#[derive(Clone, Copy, Debug)]
pub struct SnapshotPolicy {
    /// Version of the aggregate's state shape; snapshots of another version
    /// are ignored.
    pub version: u32,
    /// A KV snapshot is written each time the aggregate's sequence crosses a
    /// multiple of this (0: never).
    pub every: u64,
    /// How many aggregates' snapshots are kept in memory (0: none).
    pub cache_capacity: usize,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        Self {
            version: 1,
            every: 50,
            cache_capacity: 10_000,
        }
    }
}

/// A snapshot as stored (KV).
#[derive(Serialize, Deserialize)]
struct Snapshot<S> {
    version: u32,
    sequence: u64,
    stream_sequence: u64,
    state: S,
}

/// The in-memory snapshots: states as folded (a clone is far cheaper than
/// a round trip through JSON), bounded, the oldest insertion evicted
/// first.
struct SnapshotCache<A> {
    entries: HashMap<AggregateKey, Loaded<A>>,
    order: VecDeque<AggregateKey>,
}

impl<A> Default for SnapshotCache<A> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<A: Clone> SnapshotCache<A> {
    fn get(&self, key: &AggregateKey) -> Option<Loaded<A>> {
        self.entries.get(key).cloned()
    }

    fn put(&mut self, key: &AggregateKey, loaded: Loaded<A>, capacity: usize) {
        if capacity == 0 {
            return;
        }
        if self.entries.insert(key.clone(), loaded).is_none() {
            self.order.push_back(key.clone());
            while self.entries.len() > capacity {
                match self.order.pop_front() {
                    Some(oldest) => {
                        self.entries.remove(&oldest);
                    }
                    None => break,
                }
            }
        }
    }
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

/// What [`CommandHandler::execute_each_on`] decided and committed.
#[derive(Debug)]
pub struct Decided<A: Aggregate> {
    /// The one commit of the accepted commands' events.
    pub committed: Committed<A>,
    /// How many of the commands, from the first, were accepted.
    pub accepted: usize,
    /// Why the command after them was refused (the ones after it were not
    /// decided); `None`: all were accepted.
    pub refusal: Option<A::Error>,
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
    snapshots: SnapshotPolicy,
    cache: Arc<Mutex<SnapshotCache<A>>>,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate> Clone for CommandHandler<A> {
    fn clone(&self) -> Self {
        Self {
            log: self.log.clone(),
            services: self.services.clone(),
            upcasters: self.upcasters.clone(),
            attempts: self.attempts,
            snapshots: self.snapshots,
            cache: self.cache.clone(),
            _aggregate: PhantomData,
        }
    }
}

impl<A: Aggregate + Clone> CommandHandler<A> {
    /// A handler for `A` with its services.
    pub fn new(log: EventLog, services: A::Services) -> Self {
        Self {
            log,
            services: Arc::new(services),
            upcasters: Arc::new(Vec::new()),
            attempts: DEFAULT_ATTEMPTS,
            snapshots: SnapshotPolicy::default(),
            cache: Arc::default(),
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

    /// How snapshots are kept (see the module docs).
    pub fn with_snapshots(mut self, policy: SnapshotPolicy) -> Self {
        self.snapshots = policy;
        self
    }

    /// The log this handler writes to.
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// Folds an aggregate from its history, starting from a snapshot where
    /// one is at hand.
    pub async fn load(&self, key: &AggregateKey) -> Result<Loaded<A>, AggregateError<A::Error>> {
        let Some(tip) = self.log.tip(A::TYPE, key).await? else {
            return Ok(Loaded::new());
        };
        let last_stream_sequence = tip.stream_sequence;
        // A stored snapshot exists only past the first multiple of `every`.
        let stored = tip.commit.last_sequence() >= self.snapshots.every;
        let mut loaded = self
            .snapshot(key, last_stream_sequence, stored)
            .await
            .unwrap_or_else(Loaded::new);
        if loaded.stream_sequence == last_stream_sequence {
            return Ok(loaded);
        }
        let commits = if tip.commit.first_sequence() == loaded.sequence + 1 {
            vec![(last_stream_sequence, tip.commit)]
        } else {
            self.log
                .commits_until(A::TYPE, key, loaded.stream_sequence, tip)
                .await?
        };
        if commits
            .first()
            .is_some_and(|(_, c)| c.first_sequence() != loaded.sequence + 1)
        {
            // The snapshot does not line up with the log: fold from the start.
            warn!(%key, aggregate_type = A::TYPE, "snapshot does not line up with the log; ignoring it");
            self.cache
                .lock()
                .expect("snapshot cache")
                .entries
                .remove(key);
            let commits = self
                .log
                .commits_after(A::TYPE, key, 0, last_stream_sequence)
                .await?;
            loaded = Loaded::new();
            self.fold(&mut loaded, commits)?;
        } else {
            self.fold(&mut loaded, commits)?;
        }
        self.remember(key, &loaded, false, true);
        Ok(loaded)
    }

    /// The aggregate's last event, read from its last commit alone (one
    /// get, no fold): for an aggregate whose events carry what a reader
    /// wants to know (a counter's running total, say). `None`: no event.
    pub async fn last_event(
        &self,
        key: &AggregateKey,
    ) -> Result<Option<A::Event>, AggregateError<A::Error>> {
        let Some(tip) = self.log.tip(A::TYPE, key).await? else {
            return Ok(None);
        };
        tip.commit
            .into_recorded(tip.stream_sequence)
            .last()
            .map(|event| self.decode(event))
            .transpose()
    }

    /// The aggregate as its first commit, at `stream_sequence`, left it,
    /// for a caller told where that commit is and that it is likely still
    /// the last (a send command carries where its message was queued). The
    /// read is by sequence, not a search for the aggregate's last commit; a
    /// state that turns out stale costs a conflict on the next append, which
    /// [`CommandHandler::execute_on`] decides again on a fresh load. When
    /// the commit is not the aggregate's first, it is loaded as usual.
    pub async fn load_created_at(
        &self,
        key: &AggregateKey,
        stream_sequence: u64,
    ) -> Result<Loaded<A>, AggregateError<A::Error>> {
        match self.log.commit_at(A::TYPE, key, stream_sequence).await? {
            Some(commit) if commit.first_sequence() == 1 => {
                let mut loaded = Loaded::new();
                self.fold(&mut loaded, vec![(stream_sequence, commit)])?;
                Ok(loaded)
            }
            _ => self.load(key).await,
        }
    }

    fn fold(
        &self,
        loaded: &mut Loaded<A>,
        commits: Vec<(u64, Commit)>,
    ) -> Result<(), AggregateError<A::Error>> {
        for (stream_sequence, commit) in commits {
            for event in commit.into_recorded(stream_sequence) {
                loaded.sequence = event.sequence;
                loaded.aggregate.apply(self.decode(event)?);
            }
            loaded.stream_sequence = stream_sequence;
        }
        Ok(())
    }

    /// The newest usable snapshot at or before `until`: from memory, else
    /// from KV when one may be `stored`.
    async fn snapshot(&self, key: &AggregateKey, until: u64, stored: bool) -> Option<Loaded<A>> {
        let cached = self.cache.lock().expect("snapshot cache").get(key);
        if let Some(cached) = cached.filter(|c| c.stream_sequence <= until) {
            return Some(cached);
        }
        if !stored || self.snapshots.every == 0 {
            return None;
        }
        let stored = match self.log.snapshot(A::TYPE, key).await {
            Ok(stored) => stored?,
            Err(err) => {
                debug!(%key, error = %err, "snapshot not read");
                return None;
            }
        };
        // A state of another shape does not read: folded from the log.
        match serde_json::from_slice::<Snapshot<A>>(&stored) {
            Ok(snapshot)
                if snapshot.version == self.snapshots.version
                    && snapshot.stream_sequence <= until =>
            {
                Some(Loaded {
                    aggregate: snapshot.state,
                    sequence: snapshot.sequence,
                    stream_sequence: snapshot.stream_sequence,
                })
            }
            Ok(_) => None,
            Err(err) => {
                debug!(%key, aggregate_type = A::TYPE, error = %err, "snapshot unreadable; folding from the log");
                None
            }
        }
    }

    /// Keeps the state in memory, and in KV when `crossed` says the
    /// aggregate passed a multiple of [`SnapshotPolicy::every`].
    fn remember(&self, key: &AggregateKey, loaded: &Loaded<A>, crossed: bool, cache: bool) {
        let want_kv = crossed && self.snapshots.every > 0;
        let want_cache = cache && self.snapshots.cache_capacity > 0;
        if !want_cache && !want_kv {
            return;
        }
        if want_kv {
            let snapshot = Snapshot {
                version: self.snapshots.version,
                sequence: loaded.sequence,
                stream_sequence: loaded.stream_sequence,
                state: &loaded.aggregate,
            };
            match serde_json::to_vec(&snapshot) {
                Ok(bytes) => {
                    let (log, key) = (self.log.clone(), key.clone());
                    // Off the command's path: a snapshot is an
                    // optimisation, and a lost one only means a longer
                    // fold later.
                    tokio::spawn(async move {
                        if let Err(err) = log.save_snapshot(A::TYPE, &key, bytes.into()).await {
                            debug!(%key, error = %err, "snapshot not saved");
                        }
                    });
                }
                Err(err) => {
                    warn!(%key, aggregate_type = A::TYPE, error = %err, "state not serializable; no snapshot");
                }
            }
        }
        if want_cache {
            self.cache.lock().expect("snapshot cache").put(
                key,
                loaded.clone(),
                self.snapshots.cache_capacity,
            );
        }
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

    /// `known` if it is still the aggregate's latest state (one direct get
    /// of the last commit tells), else the aggregate loaded afresh. For a
    /// process that reads the same aggregates over and over (the send loop
    /// and its campaign, session, schedule and wallet), so that an unchanged
    /// aggregate costs no copy and no decoding.
    pub async fn reload(
        &self,
        key: &AggregateKey,
        known: Option<Loaded<A>>,
    ) -> Result<Loaded<A>, AggregateError<A::Error>> {
        if let Some(known) = known {
            let last = self.log.last_commit(A::TYPE, key).await?;
            if last.map_or(0, |(sequence, _)| sequence) == known.stream_sequence {
                return Ok(known);
            }
        }
        self.load(key).await
    }

    /// Runs a command on the state in `known`, which the caller kept from its
    /// own last command on this aggregate (as its usual only writer: a send
    /// loop and its session's day counter), and puts the state after it
    /// back there. Nothing is loaded while `known` is current, and the
    /// state is neither copied nor decoded, so a command costs the same on
    /// an aggregate of ten thousand events as on one of ten. When another
    /// writer got there first, the command is decided again on a fresh
    /// load, as [`CommandHandler::execute`] does. After a refusal or a
    /// failure `known` is empty: the next command loads.
    pub async fn execute_on(
        &self,
        key: &AggregateKey,
        known: &mut Option<Loaded<A>>,
        command: A::Command,
        metadata: &CommandMetadata,
    ) -> Result<Committed<A>, AggregateError<A::Error>>
    where
        A::Command: Clone,
    {
        // One command: its refusal is an `Err` already.
        self.execute_each_on(key, known, vec![command], metadata)
            .await
            .map(|decided| decided.committed)
    }

    /// Runs `commands` on one aggregate, as [`CommandHandler::execute_on`]
    /// runs one: each decided on the state the ones before it left, up to
    /// the first one refused, and what the accepted ones decided committed
    /// as **one** commit (one append, one ack) under `metadata`. For a
    /// writer with several requests ready at once (a send loop's slots for
    /// the messages it holds). A refusal of the first command is an
    /// `Err(UserError)` as from `execute_on`; a later one is reported in
    /// [`Decided::refusal`] next to what was committed. An aggregate must
    /// refuse before it writes an event: one that refuses after is an
    /// error, and nothing is committed.
    pub async fn execute_each_on(
        &self,
        key: &AggregateKey,
        known: &mut Option<Loaded<A>>,
        commands: Vec<A::Command>,
        metadata: &CommandMetadata,
    ) -> Result<Decided<A>, AggregateError<A::Error>>
    where
        A::Command: Clone,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let loaded = match known.take() {
                Some(state) => state,
                None => self.load(key).await?,
            };
            match self
                .decide_each(
                    key,
                    loaded,
                    commands.clone(),
                    metadata,
                    Writing::KEPT_BY_CALLER,
                )
                .await
            {
                Ok((decided, after)) => {
                    *known = Some(after);
                    return Ok(decided);
                }
                Err(AggregateError::AggregateConflict) if attempt < self.attempts => {
                    debug!(attempt, "conflict, deciding again on fresh state");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Runs a command that creates an aggregate, without reading the log:
    /// it is decided on the aggregate's default state and committed only if
    /// the aggregate has no commit yet. For creations in bulk (a campaign's
    /// messages), where reading first would double the round trips; the
    /// state is not kept in memory either (one commit loads in one get).
    ///
    /// # Returns
    /// The stream sequence the aggregate's first commit was written at
    /// (0 if the command decided nothing), or `None` when the aggregate
    /// exists already (a creation repeated by a process that resumed, say,
    /// or this one, re-sent after its acknowledgement was lost): nothing
    /// was written. The bulk of a creation is spared: no event envelopes
    /// are built, and the log keeps no deduplication entry
    /// ([`EventLog::append_first`]).
    pub async fn create(
        &self,
        key: &AggregateKey,
        command: A::Command,
        metadata: &CommandMetadata,
    ) -> Result<Option<u64>, AggregateError<A::Error>> {
        match self
            .decide(key, Loaded::new(), command, metadata, Writing::CREATION)
            .await
        {
            Err(AggregateError::AggregateConflict) => Ok(None),
            result => result.map(|(committed, _)| Some(committed.stream_sequence)),
        }
    }

    async fn try_execute(
        &self,
        key: &AggregateKey,
        command: A::Command,
        metadata: &CommandMetadata,
    ) -> Result<Committed<A>, AggregateError<A::Error>> {
        let loaded = self.load(key).await?;
        self.decide(key, loaded, command, metadata, Writing::CACHED)
            .await
            .map(|(committed, _)| committed)
    }

    /// Lets the loaded aggregate decide, and commits what it decided right
    /// after the state it was loaded at.
    ///
    /// # Returns
    /// What was committed, and the state after it.
    async fn decide(
        &self,
        key: &AggregateKey,
        loaded: Loaded<A>,
        command: A::Command,
        metadata: &CommandMetadata,
        writing: Writing,
    ) -> Result<(Committed<A>, Loaded<A>), AggregateError<A::Error>> {
        let (decided, after) = self
            .decide_each(key, loaded, vec![command], metadata, writing)
            .await?;
        // One command: a refusal is an `Err` already.
        Ok((decided.committed, after))
    }

    /// Lets the loaded aggregate decide `commands` one after the other,
    /// each on the state the ones before it left, up to the first it
    /// refuses; commits what the accepted ones decided as one commit.
    async fn decide_each(
        &self,
        key: &AggregateKey,
        loaded: Loaded<A>,
        commands: Vec<A::Command>,
        metadata: &CommandMetadata,
        writing: Writing,
    ) -> Result<(Decided<A>, Loaded<A>), AggregateError<A::Error>> {
        let Loaded {
            mut aggregate,
            sequence,
            stream_sequence,
        } = loaded;
        let mut events = Vec::new();
        let mut accepted = 0;
        let mut refusal = None;
        for command in commands {
            let sink = EventSink::default();
            let handled = aggregate.handle(command, &self.services, &sink).await;
            let written = sink.collect().await;
            match handled {
                Ok(()) => {
                    events.extend(written);
                    accepted += 1;
                }
                // The state already holds what it wrote: it cannot be
                // committed without them, nor kept with them.
                Err(_) if !written.is_empty() => {
                    return Err(AggregateError::UnexpectedError(
                        format!("a {} refused a command after deciding events", A::TYPE).into(),
                    ));
                }
                Err(err) if accepted == 0 => return Err(AggregateError::UserError(err)),
                Err(err) => {
                    refusal = Some(err);
                    break;
                }
            }
        }
        let (committed, after) = self
            .commit(
                key,
                aggregate,
                sequence,
                stream_sequence,
                events,
                metadata,
                writing,
            )
            .await?;
        Ok((
            Decided {
                committed,
                accepted,
                refusal,
            },
            after,
        ))
    }

    /// Appends `events`, decided on the state at `sequence` (written at
    /// `stream_sequence`), right after it; `aggregate` already holds them.
    #[allow(clippy::too_many_arguments)]
    async fn commit(
        &self,
        key: &AggregateKey,
        aggregate: A,
        sequence: u64,
        stream_sequence: u64,
        events: Vec<A::Event>,
        metadata: &CommandMetadata,
        writing: Writing,
    ) -> Result<(Committed<A>, Loaded<A>), AggregateError<A::Error>> {
        if events.is_empty() {
            let unchanged = Loaded {
                aggregate,
                sequence,
                stream_sequence,
            };
            return Ok((
                Committed {
                    stream_sequence,
                    events: Vec::new(),
                },
                unchanged,
            ));
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
        let written_at = if writing.creation {
            self.log.append_first(&commit).await?
        } else {
            self.log.append(stream_sequence, &commit).await?
        };
        let after = Loaded {
            aggregate,
            sequence: commit.last_sequence(),
            stream_sequence: written_at,
        };
        let every = self.snapshots.every.max(1);
        self.remember(
            key,
            &after,
            sequence / every != after.sequence / every,
            writing.cache,
        );
        if writing.creation {
            return Ok((
                Committed {
                    stream_sequence: written_at,
                    events: Vec::new(),
                },
                after,
            ));
        }
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
        Ok((
            Committed {
                stream_sequence: written_at,
                events: envelopes,
            },
            after,
        ))
    }
}

/// How a decision is committed.
#[derive(Clone, Copy, Debug)]
struct Writing {
    /// The state after it goes into the in-memory snapshots (a caller that
    /// keeps it itself spares the copy).
    cache: bool,
    /// An aggregate's first commit, whose caller wants only where it was
    /// written: appended with [`EventLog::append_first`], and no event
    /// envelopes built.
    creation: bool,
}

impl Writing {
    /// A command run by `execute`.
    const CACHED: Self = Self {
        cache: true,
        creation: false,
    };
    /// Commands whose caller keeps the state it is handed back.
    const KEPT_BY_CALLER: Self = Self {
        cache: false,
        creation: false,
    };
    /// A creation in bulk ([`CommandHandler::create`]).
    const CREATION: Self = Self {
        cache: false,
        creation: true,
    };
}

/// A short pause before deciding again, growing with the attempt and
/// spread randomly so that writers who collided do not collide again in
/// step.
fn backoff(attempt: u32) -> Duration {
    let spread = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * 4; // 0..1020 µs
    Duration::from_micros(500 * u64::from(attempt) + spread)
}
