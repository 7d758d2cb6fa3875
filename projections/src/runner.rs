//! The projections of one stream.
//!
//! A runner first becomes the only writer of its projections on that
//! stream (a PostgreSQL advisory lock per projection, held on a connection
//! of its own; another process running the same projections waits as a
//! standby). It reads the stream once for all of them, through a durable
//! pull consumer with `AckPolicy::All`, in batches of whole commits: every
//! commit is delivered and decoded once, and each projection is handed the
//! events it folds. For each batch, and each projection: lock the
//! checkpoint, drop commits at or below it, fold the rest, move the
//! checkpoint to the batch's last commit. A small batch (live traffic) is
//! folded by all of them in one transaction; a large one (a backlog) by
//! each in its own, side by side. Once all have committed, it acknowledges
//! the batch's last message (which acknowledges all before it). The
//! consumer stands at the lowest of the checkpoints; a projection further
//! on skips what it has.
//!
//! Reading is a task of its own, a couple of batches ahead: the next
//! batches are fetched and decoded while PostgreSQL folds this one. Batches
//! are still folded one at a time, in order, and each is acknowledged only
//! once its transactions have committed.
//!
//! A runner of a single projection of one aggregate type (`wablast
//! projector` runs them all; a test or a tool may run one) catches up
//! through a consumer that delivers only that type (most of a stream is
//! other types, and every delivery costs the server and the runner). Its
//! stream sequences skip the others, so the end of the backlog is asked of
//! the server: once the consumer has delivered everything and the runner
//! has read all of it, the checkpoint moves to the stream's last sequence
//! as of before the question. From there it reads everything again, so
//! that its checkpoint keeps following the stream's end (read-your-writes,
//! lag).
//!
//! - A crash after the commit and before the ack: the batch comes back and
//!   every commit in it is at or below the checkpoint, so none is applied
//!   again.
//! - A database that is down or a lost race: the same batch is tried again
//!   with back-off; nothing is acknowledged meanwhile.
//! - A message lost between the server and the runner (a connection the
//!   server dropped messages to): a gap in the consumer sequences
//!   (`Deliveries`). The batch is neither folded nor acknowledged; the
//!   runner starts again from the checkpoint.
//! - An event the projection cannot fold: the runner stops with an error
//!   naming it (never skips it).
//! - A durable consumer that does not stand at the checkpoint (the tables
//!   were recreated or restored from a backup, or the previous writer died
//!   with messages out): it is recreated at the checkpoint.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use cqrs_es::persist::EventUpcaster;
use futures::{FutureExt, StreamExt};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection, PgPool};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use wablast_eventstore::{Backoff, Commit, CommitHeader, EventLog, EventStoreError, RecordedEvent};

use crate::{LogStream, Projection, ProjectionError, StreamName, Upcasters, checkpoint};

/// How runners read and retry.
#[derive(Clone, Debug)]
pub struct RunnerOptions {
    /// Most commits folded in one transaction.
    pub batch_size: usize,
    /// Durable consumers, one per stream, are named
    /// `<consumer_prefix>_<projection>[-<projection>...]`.
    pub consumer_prefix: String,
    /// Pauses before trying a failed batch again.
    pub retry: Backoff,
    /// How often a standby checks whether the writer went away.
    pub standby_poll: Duration,
    /// While a backlog is being read, how long a batch waits for its next
    /// commit before it is folded as it is.
    pub batch_wait: Duration,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            // Large, for a backlog: the later commits of an aggregate in the
            // same batch cost no extra row write (a message's statuses).
            // Live traffic makes small batches anyway.
            batch_size: 20_000,
            consumer_prefix: "projection".to_owned(),
            retry: Backoff::new(Duration::from_millis(100), Duration::from_secs(10)),
            standby_poll: Duration::from_secs(2),
            batch_wait: Duration::from_millis(50),
        }
    }
}

/// Runs the projections of one stream.
pub(crate) struct Runner {
    pool: PgPool,
    log: EventLog,
    /// Every one reads `stream`.
    projections: Vec<Arc<dyn Projection>>,
    stream: LogStream,
    options: RunnerOptions,
    upcasters: Upcasters,
}

/// Whether the runner stops at a position or goes on forever.
#[derive(Clone, Copy)]
enum Until {
    Stopped,
    Reached(u64),
}

impl Runner {
    pub(crate) fn new(
        pool: PgPool,
        log: EventLog,
        projections: Vec<Arc<dyn Projection>>,
        stream: LogStream,
        options: RunnerOptions,
        upcasters: Upcasters,
    ) -> Self {
        debug_assert!(projections.iter().all(|p| p.streams().contains(&stream)));
        Self {
            pool,
            log,
            projections,
            stream,
            options,
            upcasters,
        }
    }

    /// Folds new commits until `shutdown`. Connection losses restart it;
    /// only an event it cannot fold ends it with an error.
    pub(crate) async fn run(&self, shutdown: CancellationToken) -> Result<u64, ProjectionError> {
        self.run_until(shutdown, Until::Stopped).await
    }

    /// Folds until every checkpoint reaches the stream's last sequence as
    /// of the call (by this runner or by another process's).
    pub(crate) async fn catch_up(
        &self,
        shutdown: CancellationToken,
    ) -> Result<u64, ProjectionError> {
        let target = self.last_sequence().await?;
        self.run_until(shutdown, Until::Reached(target)).await
    }

    async fn run_until(
        &self,
        shutdown: CancellationToken,
        until: Until,
    ) -> Result<u64, ProjectionError> {
        let mut applied = 0;
        let mut failures = 0;
        loop {
            match self.lead(&shutdown, until, &mut applied).await {
                Ok(()) => return Ok(applied),
                Err(err) if err.is_retryable() => {
                    warn!(projections = ?self.names(), stream = self.stream.name(), error = %wablast_eventstore::report::Chain(&err),
                        "projection interrupted; starting again");
                    failures += 1;
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(applied),
                        () = tokio::time::sleep(self.options.retry.after(failures)) => {}
                    }
                }
                Err(err) => return Err(err),
            }
        }
    }

    async fn last_sequence(&self) -> Result<u64, ProjectionError> {
        let stream = self.log.stream(&self.stream.full_name(self.log.prefix()))?;
        let info = stream.get_info().await.map_err(EventStoreError::nats)?;
        Ok(info.state.last_sequence)
    }

    fn reached(until: Until, checkpoint: u64) -> bool {
        matches!(until, Until::Reached(target) if checkpoint >= target)
    }

    /// The projections' names, in the runner's order.
    fn names(&self) -> Vec<&'static str> {
        self.projections.iter().map(|p| p.name()).collect()
    }

    /// The lowest of the projections' checkpoints: where reading starts.
    async fn checkpoint(&self) -> Result<u64, ProjectionError> {
        let mut lowest = u64::MAX;
        for projection in &self.projections {
            lowest =
                lowest.min(checkpoint::read(&self.pool, projection.name(), self.stream).await?);
        }
        Ok(lowest)
    }

    /// Becomes the writer, then folds until done or interrupted.
    async fn lead(
        &self,
        shutdown: &CancellationToken,
        until: Until,
        applied: &mut u64,
    ) -> Result<(), ProjectionError> {
        let lock_keys: Vec<String> = self
            .projections
            .iter()
            .map(|p| format!("wablast projection {} {}", p.name(), self.stream.name()))
            .collect();
        let mut leadership = PgConnection::connect_with(&self.pool.connect_options()).await?;
        loop {
            let mut checkpoint = self.checkpoint().await?;
            if Self::reached(until, checkpoint) {
                return Ok(());
            }
            // Every projection's lock, or none: another process writing
            // one of them is the writer of the others too, for now.
            let got: bool = sqlx::query_scalar(
                "select bool_and(pg_try_advisory_lock(hashtext(key))) from unnest($1::text[]) key",
            )
            .bind(&lock_keys)
            .fetch_one(&mut leadership)
            .await?;
            if got {
                for projection in &self.projections {
                    checkpoint::ensure(&self.pool, projection.name(), self.stream).await?;
                }
                self.remove_former_consumers().await;
                checkpoint = self.checkpoint().await?;
                info!(
                    projections = ?self.names(),
                    stream = self.stream.name(),
                    checkpoint,
                    "projecting"
                );
                // A projection of one aggregate type catches up through a
                // consumer that delivers only its type (the others are most
                // of the log, and every delivery costs both sides), then
                // goes on with one that delivers everything, so that its
                // checkpoint follows the stream's end commit by commit.
                let mut filter = self.filter();
                let result = loop {
                    match self
                        .fold(
                            &mut leadership,
                            checkpoint,
                            filter.as_deref(),
                            shutdown,
                            until,
                            applied,
                        )
                        .await
                    {
                        Ok(Some(reached)) if filter.is_some() && !Self::reached(until, reached) => {
                            checkpoint = reached;
                            filter = None;
                        }
                        Ok(_) => break Ok(()),
                        Err(err) => break Err(err),
                    }
                };
                // Closing the connection releases the lock whatever happened.
                let _ = leadership.close().await;
                return result;
            }
            // Not all: none.
            sqlx::query("select pg_advisory_unlock_all()")
                .execute(&mut leadership)
                .await?;
            debug!(
                projections = ?self.names(),
                "another process writes these projections; standing by"
            );
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(self.options.standby_poll) => {}
            }
        }
    }

    fn filter(&self) -> Option<String> {
        one_type_filter(&self.log, &self.projections)
    }

    /// `<consumer_prefix>_<projection>[-<projection>...]`.
    fn durable(&self) -> String {
        format!(
            "{}_{}",
            self.options.consumer_prefix,
            self.names().join("-")
        )
    }

    /// Removes the consumers these projections had on this stream when
    /// each read it through its own (`<consumer_prefix>_<projection>`),
    /// which nothing reads any more. The writer's job: it holds their
    /// locks. Best effort; most starts find none.
    async fn remove_former_consumers(&self) {
        if self.projections.len() < 2 {
            return;
        }
        let Ok(stream) = self.log.stream(&self.stream.full_name(self.log.prefix())) else {
            return;
        };
        for projection in &self.projections {
            let former = format!("{}_{}", self.options.consumer_prefix, projection.name());
            if stream.delete_consumer(&former).await.is_ok() {
                info!(consumer = %former, stream = self.stream.name(),
                    "removed a consumer of the one-per-projection layout");
            }
        }
    }

    /// The durable consumer at the checkpoint, delivering the subjects of
    /// `filter` (none: all), and the consumer sequence it delivered last.
    async fn consumer(
        &self,
        checkpoint: u64,
        filter: Option<&str>,
    ) -> Result<(pull::Stream, u64), ProjectionError> {
        let stream = self.log.stream(&self.stream.full_name(self.log.prefix()))?;
        let durable = self.durable();
        let filter = filter.unwrap_or_default();
        // The checkpoint is the truth. A consumer that does not stand at it
        // (ahead: the tables were recreated or restored; messages out
        // unanswered: the previous writer died, and they would only come
        // back after the ack wait; a filter moved it past its last
        // message) is recreated there, as is one with another filter.
        if let Ok(info) = stream.consumer_info(&durable).await
            && (info.ack_floor.stream_sequence != checkpoint
                || info.num_ack_pending > 0
                || info.config.filter_subject != filter)
        {
            debug!(projections = ?self.names(), consumer = %durable,
                acked = info.ack_floor.stream_sequence, pending = info.num_ack_pending, checkpoint,
                "consumer not at the checkpoint; recreating it there");
            stream
                .delete_consumer(&durable)
                .await
                .map_err(EventStoreError::nats)?;
        }
        let mut consumer: async_nats::jetstream::consumer::PullConsumer = stream
            .get_or_create_consumer(
                &durable,
                pull::Config {
                    durable_name: Some(durable.clone()),
                    deliver_policy: if checkpoint == 0 {
                        DeliverPolicy::All
                    } else {
                        DeliverPolicy::ByStartSequence {
                            start_sequence: checkpoint + 1,
                        }
                    },
                    ack_policy: AckPolicy::All,
                    ack_wait: Duration::from_secs(60),
                    max_deliver: -1,
                    max_ack_pending: 100_000,
                    filter_subject: filter.to_owned(),
                    ..Default::default()
                },
            )
            .await
            .map_err(EventStoreError::nats)?;
        // Fresh from the server: what it delivered up to now, so that the
        // first message read must come right after it.
        let delivered = consumer
            .info()
            .await
            .map_err(EventStoreError::nats)?
            .delivered
            .consumer_sequence;
        let messages = consumer
            .stream()
            .max_messages_per_batch(self.options.batch_size.min(MAX_PULL))
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(EventStoreError::nats)?;
        Ok((messages, delivered))
    }

    /// Folds batches from the checkpoint on, until done or interrupted.
    ///
    /// # Returns
    /// With a `filter`, the checkpoint at the stream's end once everything
    /// it delivers is folded (`None` otherwise).
    async fn fold(
        &self,
        leadership: &mut PgConnection,
        mut checkpoint: u64,
        filter: Option<&str>,
        shutdown: &CancellationToken,
        until: Until,
        applied: &mut u64,
    ) -> Result<Option<u64>, ProjectionError> {
        let (messages, delivered) = self.consumer(checkpoint, filter).await?;
        let filtered = match filter {
            Some(_) => Some(Filtered {
                stream: self
                    .log
                    .stream(&self.stream.full_name(self.log.prefix()))?
                    .clone(),
                durable: self.durable(),
                check_now: false,
                in_flight: None,
            }),
            None => None,
        };
        // Reading and decoding the next batches goes on while this one is
        // folded: the reader keeps one CPU busy while PostgreSQL works.
        let (sender, mut batches) = mpsc::channel(READ_AHEAD);
        let mut reader = JoinSet::new();
        reader.spawn(read_batches(
            Reader {
                projections: self.projections.clone(),
                upcasters: self.upcasters.clone(),
                batch_size: self.options.batch_size,
                batch_wait: self.options.batch_wait,
                checkpoint,
                deliveries: Deliveries::after(delivered),
                filtered,
            },
            messages,
            sender,
        ));
        // Acknowledgements are confirmed by the server on the connection
        // every runner shares, behind the messages it delivers: waiting for
        // one would hold the next batch back, so they are sent on their own.
        let mut acks = JoinSet::new();
        loop {
            while acks.try_join_next().is_some() {}
            if Self::reached(until, checkpoint) {
                break;
            }
            let batch = tokio::select! {
                () = shutdown.cancelled() => break,
                batch = batches.recv() => batch,
            };
            let batch = match batch {
                Some(Ok(batch)) => batch,
                Some(Err(err)) => return Err(err),
                None => {
                    return Err(EventStoreError::Nats("projection reader stopped".into()).into());
                }
            };

            // Whoever lost the lock's connection is no longer the writer.
            sqlx::query("select 1").execute(&mut *leadership).await?;

            let started = Instant::now();
            if batch.last > checkpoint {
                let outcomes = match self.apply_together(&batch).await {
                    Some(outcomes) => outcomes,
                    // Each projection in its own transaction, side by side.
                    None => {
                        each_to_the_end(self.projections.iter().zip(&batch.events).map(
                            |(projection, events)| {
                                self.apply(
                                    projection.as_ref(),
                                    events,
                                    batch.last,
                                    checkpoint,
                                    shutdown,
                                )
                            },
                        ))
                        .await?
                    }
                };
                let mut reached = u64::MAX;
                for outcome in outcomes {
                    // Stopped while waiting to try again.
                    let Some(outcome) = outcome else {
                        return Ok(None);
                    };
                    reached = reached.min(outcome.checkpoint);
                    *applied += outcome.applied;
                }
                checkpoint = reached;
            }
            if let Some(last_message) = batch.last_message {
                let stream = self.stream.name();
                acks.spawn(async move {
                    if let Err(err) = last_message.double_ack().await {
                        // Committed already: the batch may come back and is skipped.
                        warn!(stream, error = %err, "batch applied but not acknowledged");
                    }
                });
            }
            debug!(projections = ?self.names(), stream = self.stream.name(), commits = batch.commits,
                events = batch.events.iter().map(Vec::len).sum::<usize>(),
                elapsed = ?started.elapsed(), "batch projected");
            if batch.caught_up {
                while acks.join_next().await.is_some() {}
                return Ok(Some(checkpoint));
            }
        }
        // The last acknowledgements confirmed (or failed) before leaving, so
        // that the consumer stands at the checkpoint for whoever comes next.
        while acks.join_next().await.is_some() {}
        Ok(None)
    }

    /// A small batch (live traffic) folded by every projection in one
    /// transaction: one commit, where a transaction each would cost a
    /// commit (a WAL flush) each, most of them only to move a checkpoint.
    /// `None`: the batch is large (each projection folds in its own
    /// transaction, side by side, on its own connection), or the
    /// transaction failed, and each projection tries on its own (with
    /// back-off, or stopping at an event it cannot fold).
    async fn apply_together(&self, batch: &Batch) -> Option<Vec<Option<Applied>>> {
        let events: usize = batch.events.iter().map(Vec::len).sum();
        if self.projections.len() < 2 || events > TOGETHER_AT_MOST {
            return None;
        }
        let together = async {
            let mut tx = self.pool.begin().await?;
            let checkpoints = checkpoint::lock_all(&mut tx, &self.names(), self.stream).await?;
            let mut outcomes = Vec::with_capacity(self.projections.len());
            let mut moved = Vec::with_capacity(self.projections.len());
            for ((projection, events), checkpoint) in
                self.projections.iter().zip(&batch.events).zip(checkpoints)
            {
                let outcome = fold_above(
                    &mut tx,
                    projection.as_ref(),
                    self.stream,
                    events,
                    batch.last,
                    checkpoint,
                )
                .await?;
                if outcome.checkpoint > checkpoint {
                    moved.push(projection.name());
                }
                outcomes.push(Some(outcome));
            }
            checkpoint::advance_all(&mut tx, &moved, self.stream, batch.last).await?;
            tx.commit().await?;
            Ok::<_, ProjectionError>(outcomes)
        };
        match together.await {
            Ok(outcomes) => Some(outcomes),
            Err(err) => {
                debug!(projections = ?self.names(), error = %wablast_eventstore::report::Chain(&err),
                    "batch not applied together; each projection on its own");
                None
            }
        }
    }

    /// Folds one projection's part of a batch, trying again with back-off
    /// while the database cannot; `None`: stopped meanwhile.
    async fn apply(
        &self,
        projection: &dyn Projection,
        events: &[RecordedEvent],
        last: u64,
        checkpoint: u64,
        shutdown: &CancellationToken,
    ) -> Result<Option<Applied>, ProjectionError> {
        let mut failures = 0;
        loop {
            match apply_batch(&self.pool, None, projection, self.stream, events, last).await {
                Ok(outcome) => return Ok(Some(outcome)),
                Err(err) if err.is_retryable() => {
                    warn!(projection = projection.name(), error = %wablast_eventstore::report::Chain(&err), "batch not applied; trying again");
                    failures += 1;
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(None),
                        () = tokio::time::sleep(self.options.retry.after(failures)) => {}
                    }
                }
                Err(err) => {
                    self.apply_before(projection, &err, events, checkpoint)
                        .await;
                    return Err(err);
                }
            }
        }
    }

    /// A batch failed on an event the projection cannot fold: applies the
    /// commits before it, so the checkpoint stops right in front of it (and
    /// the lag points at it). Best effort: the error is reported anyway.
    async fn apply_before(
        &self,
        projection: &dyn Projection,
        err: &ProjectionError,
        events: &[RecordedEvent],
        checkpoint: u64,
    ) {
        let ProjectionError::Event {
            stream_sequence, ..
        } = err
        else {
            return;
        };
        let before = stream_sequence.saturating_sub(1);
        if before <= checkpoint {
            return;
        }
        let good = &events[..events.partition_point(|e| e.stream_sequence <= before)];
        if let Err(again) =
            apply_batch(&self.pool, None, projection, self.stream, good, before).await
        {
            warn!(projection = projection.name(), error = %again, "commits before the failing one not applied");
        }
    }
}

/// The subjects of the one aggregate type of the one projection, if that
/// is what `projections` is: a reader for it needs only those delivered.
pub(crate) fn one_type_filter(
    log: &EventLog,
    projections: &[Arc<dyn Projection>],
) -> Option<String> {
    match projections {
        [only] => match only.aggregate_types() {
            Some([only]) => Some(log.prefix().aggregate_type_subjects(only)),
            _ => None,
        },
        _ => None,
    }
}

/// How long messages a consumer delivered may take to arrive before they
/// are taken as lost.
const LOST_AFTER: Duration = Duration::from_secs(2);

/// Most messages asked of the server at a time: every runner of a process
/// shares one NATS connection, and the server drops messages to a
/// connection that falls 64 MiB behind (a "slow consumer"; seen with pulls
/// of 20,000). A message lost that way is caught (a gap in the consumer
/// sequences) and read again, but costs a restart.
const MAX_PULL: usize = 5_000;

/// Most events in a batch that every projection folds in one transaction
/// ([`Runner::apply_together`]).
const TOGETHER_AT_MOST: usize = 2_000;

/// Batches read ahead of the one being folded.
const READ_AHEAD: usize = 2;

/// A batch of whole commits read and decoded, to be folded in one
/// transaction.
struct Batch {
    /// Each projection's events in it (in the runner's order), above the
    /// checkpoint the reader started from.
    events: Vec<Vec<RecordedEvent>>,
    /// Stream sequence of its last commit.
    last: u64,
    /// Commits (messages) in it.
    commits: usize,
    /// Its last message: acknowledging it acknowledges the batch
    /// (`AckPolicy::All`). None: no message, only the checkpoint moves.
    last_message: Option<async_nats::jetstream::Message>,
    /// A filtered consumer delivered everything up to `last`, the stream's
    /// end: the reader stops after it.
    caught_up: bool,
}

/// What the reader of a runner needs.
struct Reader {
    projections: Vec<Arc<dyn Projection>>,
    upcasters: Upcasters,
    batch_size: usize,
    batch_wait: Duration,
    checkpoint: u64,
    deliveries: Deliveries,
    filtered: Option<Filtered>,
}

/// A consumer with a filter: the stream sequences it delivers skip the
/// other subjects, so reaching the stream's end is asked of the server.
struct Filtered {
    stream: async_nats::jetstream::stream::Stream,
    durable: String,
    /// The last message read had nothing behind it: ask before waiting.
    check_now: bool,
    /// What the reader had read when the consumer last said it had
    /// delivered more, and since when.
    in_flight: Option<(u64, Instant)>,
}

/// Reads the consumer's messages into batches of whole commits, decodes
/// them and hands them on, in order, until the receiver goes away. A
/// message that was lost on the way (a gap in the consumer sequences) ends
/// it with an error before the batch that would have skipped it.
async fn read_batches(
    mut reader: Reader,
    mut messages: pull::Stream,
    batches: mpsc::Sender<Result<Batch, ProjectionError>>,
) {
    loop {
        let batch = match reader.next_batch(&mut messages).await {
            Ok(Some(batch)) => Ok(batch),
            Ok(None) => continue,
            Err(err) => Err(err),
        };
        let done = batch.as_ref().map_or(true, |b| b.caught_up);
        if batches.send(batch).await.is_err() || done {
            return;
        }
    }
}

impl Reader {
    /// The next batch; `None` after a hiccup of the consumer.
    async fn next_batch(
        &mut self,
        messages: &mut pull::Stream,
    ) -> Result<Option<Batch>, ProjectionError> {
        let next = match &mut self.filtered {
            None => messages.next().await,
            Some(filtered) => {
                if std::mem::take(&mut filtered.check_now)
                    && let Some(end) = self.caught_up().await?
                {
                    return Ok(Some(end));
                }
                match tokio::time::timeout(self.batch_wait, messages.next()).await {
                    Ok(next) => next,
                    // Nothing came: maybe nothing more is there.
                    Err(_) => return self.caught_up().await,
                }
            }
        };
        let first = match next {
            Some(Ok(message)) => message,
            Some(Err(err)) => {
                debug!(error = %wablast_eventstore::report::Chain(&err), "consumer hiccup");
                return Ok(None);
            }
            None => {
                return Err(EventStoreError::Nats("projection consumer closed".into()).into());
            }
        };
        // A batch takes what has arrived and, while the consumer says more
        // is waiting (a backlog: start-up, a burst), what arrives next, up
        // to the batch size: a few large transactions instead of many small
        // ones. Live traffic is not held back.
        let mut last = 0;
        let mut events = vec![Vec::new(); self.projections.len()];
        let folders: Vec<&dyn Projection> = self.projections.iter().map(AsRef::as_ref).collect();
        let mut commits = 0;
        let mut message = first;
        let last_message = loop {
            // The reply subject parsed once per message.
            let (sequence, backlog) = {
                let info = message.info().map_err(EventStoreError::Nats)?;
                self.deliveries
                    .check(info.consumer_sequence, info.delivered)
                    .map_err(|gap| {
                        EventStoreError::Nats(
                            format!(
                                "{gap} (stream sequence {}): batch dropped, read again from the checkpoint",
                                info.stream_sequence
                            )
                            .into(),
                        )
                    })?;
                (info.stream_sequence, info.pending > 0)
            };
            commits += 1;
            last = last.max(sequence);
            if let Some(filtered) = &mut self.filtered {
                filtered.check_now = !backlog;
            }
            if sequence > self.checkpoint {
                decode_commit(&folders, &self.upcasters, sequence, &message, &mut events)?;
            }
            if commits >= self.batch_size {
                break message;
            }
            let more = match messages.next().now_or_never() {
                Some(more) => more,
                None if backlog => {
                    match tokio::time::timeout(self.batch_wait, messages.next()).await {
                        Ok(more) => more,
                        Err(_) => break message,
                    }
                }
                None => break message,
            };
            match more {
                Some(Ok(more)) => message = more,
                _ => break message,
            }
        };
        Ok(Some(Batch {
            events,
            last,
            commits,
            last_message: Some(last_message),
            caught_up: false,
        }))
    }

    /// With a filter: if the consumer has delivered everything it has and
    /// the reader has read all of it, a batch that moves the checkpoint to
    /// the stream's end as it was before the consumer said so (every
    /// matching commit up to there is in the batches handed on before).
    async fn caught_up(&mut self) -> Result<Option<Batch>, ProjectionError> {
        let Some(filtered) = &mut self.filtered else {
            return Ok(None);
        };
        let end = filtered
            .stream
            .get_info()
            .await
            .map_err(EventStoreError::nats)?
            .state
            .last_sequence;
        let info = filtered
            .stream
            .consumer_info(&filtered.durable)
            .await
            .map_err(EventStoreError::nats)?;
        let delivered = info.delivered.consumer_sequence;
        let read = self.deliveries.next - 1;
        if delivered > read {
            // Still on the way; still so a while later, with nothing read
            // meanwhile: lost on the way.
            let since = match filtered.in_flight {
                Some((before, since)) if before == read => since,
                _ => Instant::now(),
            };
            if since.elapsed() >= LOST_AFTER {
                return Err(EventStoreError::Nats(
                    format!(
                        "{}: read again from the checkpoint",
                        self.deliveries.silent()
                    )
                    .into(),
                )
                .into());
            }
            filtered.in_flight = Some((read, since));
            return Ok(None);
        }
        filtered.in_flight = None;
        if info.num_pending > 0 {
            return Ok(None);
        }
        Ok(Some(Batch {
            events: vec![Vec::new(); self.projections.len()],
            last: end,
            commits: 0,
            last_message: None,
            caught_up: true,
        }))
    }
}

/// The consumer sequences of a durable consumer's deliveries, checked one
/// by one: each message must be delivered for the first time, right after
/// the one before. A message the connection lost (the server drops
/// messages to a slow consumer) shows as a gap; acknowledging a later one
/// (`AckPolicy::All`) would acknowledge the lost one too, and it would
/// never be folded. Stream sequences cannot tell: they skip what the
/// stream deleted (retention) and, for a consumer with a filter, what it
/// does not match.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deliveries {
    next: u64,
}

/// A delivery out of line (see [`Deliveries`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Gap {
    /// Consumer sequences skipped: messages lost on the way.
    #[error("consumer sequence {got} where {expected} was due: messages lost on the way")]
    Missing {
        /// The consumer sequence due.
        expected: u64,
        /// The one received.
        got: u64,
    },
    /// Nothing more came though the consumer had more to deliver: the
    /// last messages may have been lost on the way.
    #[error("consumer sequence {expected} never came")]
    Silent {
        /// The consumer sequence due.
        expected: u64,
    },
    /// A message delivered again (its acknowledgement was late or lost):
    /// what the consumer delivered since is no longer in order.
    #[error("consumer sequence {got} delivered {delivered} times")]
    Redelivered {
        /// Its consumer sequence.
        got: u64,
        /// How many times it was delivered.
        delivered: i64,
    },
}

impl Deliveries {
    /// Deliveries after the consumer sequence `delivered` (0: a new
    /// consumer).
    pub(crate) fn after(delivered: u64) -> Self {
        Self {
            next: delivered + 1,
        }
    }

    /// The gap if nothing more comes.
    pub(crate) fn silent(&self) -> Gap {
        Gap::Silent {
            expected: self.next,
        }
    }

    /// Checks the next delivery.
    pub(crate) fn check(&mut self, consumer_sequence: u64, delivered: i64) -> Result<(), Gap> {
        if delivered != 1 {
            return Err(Gap::Redelivered {
                got: consumer_sequence,
                delivered,
            });
        }
        if consumer_sequence != self.next {
            return Err(Gap::Missing {
                expected: self.next,
                got: consumer_sequence,
            });
        }
        self.next += 1;
        Ok(())
    }
}

/// Adds a commit's events to the batch of each projection that folds its
/// aggregate type (told by the subject, without parsing the payload; each
/// commit is parsed once for all of them): upcast for projections that read
/// payloads, as written and with a `null` payload for the others (whose
/// payloads are not even parsed when no projection reads them).
///
/// # Returns
/// The commit's events, or 0 if no projection folds them.
pub(crate) fn decode_commit(
    projections: &[&dyn Projection],
    upcasters: &[Box<dyn EventUpcaster>],
    sequence: u64,
    message: &async_nats::Message,
    batches: &mut [Vec<RecordedEvent>],
) -> Result<usize, EventStoreError> {
    // `<prefix>.ev.<tenant>.<aggregate_type>.<id>`
    let Some(aggregate_type) = message.subject.split('.').nth(3) else {
        return Ok(0);
    };
    let folding = |payloads: bool| {
        projections
            .iter()
            .enumerate()
            .filter(move |(_, p)| p.needs_payloads() == payloads && p.folds(aggregate_type))
            .map(|(i, _)| i)
    };
    let with_payloads: Vec<usize> = folding(true).collect();
    let mut envelopes = folding(false).peekable();
    if with_payloads.is_empty() && envelopes.peek().is_none() {
        return Ok(0);
    }
    let malformed = |source| EventStoreError::Malformed { sequence, source };
    let events: Vec<RecordedEvent> = if with_payloads.is_empty() {
        let commit: CommitHeader = serde_json::from_slice(&message.payload).map_err(malformed)?;
        commit.into_recorded(sequence).collect()
    } else {
        let commit: Commit = serde_json::from_slice(&message.payload).map_err(malformed)?;
        commit.into_recorded(sequence).collect()
    };
    let n = events.len();
    for i in envelopes {
        batches[i].extend(events.iter().map(RecordedEvent::without_payload));
    }
    if let Some((&last, others)) = with_payloads.split_last() {
        let events: Vec<RecordedEvent> = events.into_iter().map(|e| e.upcast(upcasters)).collect();
        for &i in others {
            batches[i].extend_from_slice(&events);
        }
        batches[last].extend(events);
    }
    Ok(n)
}

/// Runs every future to its end, then gives the first error if any. A
/// fold dropped half-way (as `try_join_all` drops the others at an error)
/// could leave its connection in the middle of a `COPY`, which sqlx would
/// return to the pool out of step with the server.
pub(crate) async fn each_to_the_end<T, E>(
    futures: impl IntoIterator<Item = impl Future<Output = Result<T, E>>>,
) -> Result<Vec<T>, E> {
    futures::future::join_all(futures)
        .await
        .into_iter()
        .collect()
}

/// What one batch did.
pub(crate) struct Applied {
    /// The checkpoint after it.
    pub(crate) checkpoint: u64,
    /// Events folded (those above the checkpoint).
    pub(crate) applied: u64,
}

/// Folds `events` (whole commits, log order, up to stream sequence `last`)
/// and moves the checkpoint to `last`, in one transaction. Events at or
/// below the checkpoint found under the lock are left out. `schema` points
/// the fold at a rebuild's tables and checkpoints instead of the live ones.
pub(crate) async fn apply_batch(
    pool: &PgPool,
    schema: Option<&str>,
    projection: &dyn Projection,
    stream: LogStream,
    events: &[RecordedEvent],
    last: u64,
) -> Result<Applied, ProjectionError> {
    let mut tx = pool.begin().await?;
    if let Some(schema) = schema {
        sqlx::query(AssertSqlSafe(format!(
            "set local search_path to {schema}, public"
        )))
        .execute(&mut *tx)
        .await?;
    }
    let applied = apply_in(&mut tx, projection, stream, events, last).await?;
    tx.commit().await?;
    Ok(applied)
}

/// [`apply_batch`] inside the caller's transaction, on the tables
/// `search_path` finds.
pub(crate) async fn apply_in(
    conn: &mut PgConnection,
    projection: &dyn Projection,
    stream: LogStream,
    events: &[RecordedEvent],
    last: u64,
) -> Result<Applied, ProjectionError> {
    let checkpoint = checkpoint::lock(conn, projection.name(), stream).await?;
    let applied = fold_above(conn, projection, stream, events, last, checkpoint).await?;
    if applied.checkpoint > checkpoint {
        checkpoint::advance(conn, projection.name(), stream, last).await?;
    }
    Ok(applied)
}

/// Folds the events above `checkpoint` (locked by the caller) of a batch
/// that goes up to `last`; the caller moves the checkpoint.
async fn fold_above(
    conn: &mut PgConnection,
    projection: &dyn Projection,
    stream: LogStream,
    events: &[RecordedEvent],
    last: u64,
    checkpoint: u64,
) -> Result<Applied, ProjectionError> {
    if last <= checkpoint {
        return Ok(Applied {
            checkpoint,
            applied: 0,
        });
    }
    let fresh = &events[events.partition_point(|e| e.stream_sequence <= checkpoint)..];
    if !fresh.is_empty() {
        projection.apply(conn, stream, fresh).await?;
    }
    Ok(Applied {
        checkpoint: last,
        applied: fresh.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::{Deliveries, Gap};

    #[test]
    fn deliveries_in_line_pass_from_where_the_consumer_stood() {
        let mut deliveries = Deliveries::after(0);
        for sequence in 1..=3 {
            assert_eq!(deliveries.check(sequence, 1), Ok(()));
        }
        let mut deliveries = Deliveries::after(41);
        assert_eq!(deliveries.check(42, 1), Ok(()));
        assert_eq!(deliveries.check(43, 1), Ok(()));
    }

    #[test]
    fn a_message_lost_on_the_way_is_a_gap() {
        let mut deliveries = Deliveries::after(10);
        assert_eq!(deliveries.check(11, 1), Ok(()));
        assert_eq!(
            deliveries.check(13, 1),
            Err(Gap::Missing {
                expected: 12,
                got: 13
            })
        );
        // The first message read is already past a lost one.
        assert_eq!(
            Deliveries::after(10).check(12, 1),
            Err(Gap::Missing {
                expected: 11,
                got: 12
            })
        );
    }

    #[test]
    fn a_redelivery_or_a_step_back_is_out_of_line() {
        let mut deliveries = Deliveries::after(0);
        assert_eq!(deliveries.check(1, 1), Ok(()));
        assert_eq!(
            deliveries.check(2, 2),
            Err(Gap::Redelivered {
                got: 2,
                delivered: 2
            })
        );
        assert_eq!(
            deliveries.check(1, 1),
            Err(Gap::Missing {
                expected: 2,
                got: 1
            })
        );
    }
}
