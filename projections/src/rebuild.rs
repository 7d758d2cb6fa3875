//! Rebuilding a projection from stream sequence 0.
//!
//! The projection is folded into fresh tables in a schema of its own
//! (`rebuild_<name>`, same columns, constraints and indexes as the live
//! tables) while the live tables keep serving and the live runner keeps
//! folding. Once the rebuild has caught up, one transaction locks the live
//! checkpoints (the live runner waits), folds the last few commits, drops
//! the live tables, moves the rebuilt ones in under the same names, and sets
//! the checkpoints to where the rebuild got. Readers see the old tables or
//! the new ones, never a mix; the live runner carries on from the new
//! checkpoint.
//!
//! A changed projection is shipped this way: deploy, then
//! `wablast replay --projection <name>`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use futures::StreamExt;
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use tokio::sync::mpsc;
use tracing::{info, warn};
use wablast_eventstore::{EventLog, EventStoreError, RecordedEvent};

use crate::runner::{Deliveries, Gap, apply_batch, apply_in, decode_commit};
use crate::{LogStream, Projection, ProjectionError, by_name, checkpoint};

/// Events folded per transaction during a rebuild (whole commits: a batch
/// may go a commit beyond).
const BATCH_EVENTS: usize = 5_000;

/// Messages asked of the server at a time while reading a stream: small,
/// since every reader shares one NATS connection and the server drops
/// messages to a connection that falls 64 MiB behind.
const READ_BATCH: usize = 1_000;

/// How long a reader waits for a message its consumer still has to
/// deliver before it takes it as lost and reads again.
const SILENCE: Duration = Duration::from_secs(10);

/// Where a rebuild is, for a progress bar.
#[derive(Clone, Debug)]
pub struct Progress {
    /// The projection.
    pub projection: &'static str,
    /// The stream being read.
    pub stream: LogStream,
    /// Events folded so far on this stream.
    pub events: u64,
    /// Stream sequence reached.
    pub position: u64,
    /// The stream's last sequence when this pass started.
    pub target: u64,
    /// Time since this projection's rebuild started.
    pub elapsed: Duration,
}

/// One projection rebuilt.
#[derive(Clone, Debug)]
pub struct Rebuilt {
    /// The projection.
    pub projection: &'static str,
    /// Events folded.
    pub events: u64,
    /// How long it took, swap included.
    pub elapsed: Duration,
}

/// What a rebuild did.
#[derive(Clone, Debug, Default)]
pub struct RebuildReport {
    /// Each projection, in order.
    pub projections: Vec<Rebuilt>,
}

impl RebuildReport {
    /// Events folded in all.
    pub fn events(&self) -> u64 {
        self.projections.iter().map(|p| p.events).sum()
    }
}

/// A callback told of progress now and then.
pub type OnProgress<'a> = Option<&'a (dyn Fn(&Progress) + Send + Sync)>;

/// Rebuilds these projections, side by side (see the module docs).
pub async fn rebuild(
    pool: &PgPool,
    log: &EventLog,
    names: &[&str],
    progress: OnProgress<'_>,
) -> Result<RebuildReport, ProjectionError> {
    let projections = names
        .iter()
        .map(|name| {
            by_name(name).ok_or_else(|| ProjectionError::UnknownProjection((*name).to_owned()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Side by side: each has its own tables, and one waiting on PostgreSQL
    // leaves the CPU to another.
    let rebuilt = futures::future::try_join_all(
        projections
            .into_iter()
            .map(|projection| rebuild_one(pool, log, projection, progress)),
    )
    .await?;
    Ok(RebuildReport {
        projections: rebuilt,
    })
}

async fn rebuild_one(
    pool: &PgPool,
    log: &EventLog,
    projection: Arc<dyn Projection>,
    progress: OnProgress<'_>,
) -> Result<Rebuilt, ProjectionError> {
    let started = Instant::now();
    let name = projection.name();
    let schema = format!("rebuild_{name}");
    info!(projection = name, "rebuilding from sequence 0");
    // An insert-only projection never looks its rows up, so even its keys
    // can wait: an index built once over the loaded rows is cheaper than
    // one kept up to date row by row. A duplicate still fails, when the key
    // is added, before the swap.
    let keys_later = projection.insert_only();
    prepare(pool, &schema, projection.tables(), !keys_later).await?;
    // The streams side by side: each has its own checkpoint.
    let passes = projection.streams().iter().map(|&stream| {
        let (schema, projection) = (&schema, projection.clone());
        async move {
            let mut events = 0;
            // Passes until what is left fits in the swap's transaction.
            loop {
                let (folded, left) = fold_pass(
                    pool,
                    log,
                    schema,
                    projection.clone(),
                    stream,
                    started,
                    progress,
                )
                .await?;
                events += folded;
                if left < BATCH_EVENTS as u64 {
                    return Ok::<u64, ProjectionError>(events);
                }
            }
        }
    });
    let mut events: u64 = futures::future::try_join_all(passes)
        .await?
        .into_iter()
        .sum();
    if keys_later {
        add_keys(pool, &schema, projection.tables()).await?;
    }
    create_secondary_indexes(pool, &schema, projection.tables()).await?;
    events += swap(pool, log, &schema, projection.as_ref()).await?;
    let elapsed = started.elapsed();
    info!(
        projection = name,
        events,
        ?elapsed,
        "rebuilt and swapped in"
    );
    Ok(Rebuilt {
        projection: name,
        events,
        elapsed,
    })
}

/// Fresh tables shaped like the live ones (with their primary keys and
/// unique constraints if `keys`, other indexes after the bulk of the fold),
/// and a checkpoint table.
async fn prepare(
    pool: &PgPool,
    schema: &str,
    tables: &[&str],
    keys: bool,
) -> Result<(), ProjectionError> {
    let mut conn = pool.acquire().await?;
    let ddl = [
        format!("drop schema if exists {schema} cascade"),
        format!("create schema {schema}"),
        format!(
            "create table {schema}.projection_checkpoint (like public.projection_checkpoint including all)"
        ),
    ];
    for statement in ddl {
        sqlx::query(AssertSqlSafe(statement))
            .execute(&mut *conn)
            .await?;
    }
    for table in tables {
        sqlx::query(AssertSqlSafe(format!(
            "create table {schema}.{table} (like public.{table} including all excluding indexes)"
        )))
        .execute(&mut *conn)
        .await?;
    }
    drop(conn);
    if keys {
        add_keys(pool, schema, tables).await?;
    }
    Ok(())
}

/// The live tables' primary keys and unique constraints, same names, on
/// the rebuilt tables.
async fn add_keys(pool: &PgPool, schema: &str, tables: &[&str]) -> Result<(), ProjectionError> {
    let mut conn = pool.acquire().await?;
    for table in tables {
        let keys: Vec<(String, String)> = sqlx::query_as(
            "select c.conname::text, pg_get_constraintdef(c.oid) from pg_constraint c \
             where c.conrelid = ('public.' || $1)::regclass and c.contype in ('p', 'u') order by c.conname",
        )
        .bind(table)
        .fetch_all(&mut *conn)
        .await?;
        for (constraint, definition) in keys {
            sqlx::query(AssertSqlSafe(format!(
                "alter table {schema}.{table} add constraint {constraint} {definition}"
            )))
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

/// The live tables' other indexes, same names, on the rebuilt tables.
async fn create_secondary_indexes(
    pool: &PgPool,
    schema: &str,
    tables: &[&str],
) -> Result<(), ProjectionError> {
    let mut conn = pool.acquire().await?;
    for table in tables {
        let definitions: Vec<String> = sqlx::query_scalar(
            "select i.indexdef from pg_indexes i \
             where i.schemaname = 'public' and i.tablename = $1 \
               and not exists (select 1 from pg_constraint c \
                   where c.conindid = (quote_ident(i.schemaname) || '.' || quote_ident(i.indexname))::regclass) \
             order by i.indexname",
        )
        .bind(table)
        .fetch_all(&mut *conn)
        .await?;
        for definition in definitions {
            let statement = definition.replacen(" ON public.", &format!(" ON {schema}."), 1);
            sqlx::query(AssertSqlSafe(statement))
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// One pass over a stream from the rebuild's checkpoint to the stream's
/// end as of now, read and folded concurrently.
///
/// # Returns
/// Events folded, and commits written meanwhile (what the next pass has).
async fn fold_pass(
    pool: &PgPool,
    log: &EventLog,
    schema: &str,
    projection: Arc<dyn Projection>,
    stream: LogStream,
    started: Instant,
    progress: OnProgress<'_>,
) -> Result<(u64, u64), ProjectionError> {
    let from = {
        let mut tx = pool.begin().await?;
        in_schema(&mut tx, schema).await?;
        checkpoint::read(&mut *tx, projection.name(), stream).await?
    };
    let target = last_sequence(log, stream).await?;
    if target <= from {
        return Ok((0, 0));
    }
    let (sender, mut batches) =
        mpsc::channel::<Result<(Vec<RecordedEvent>, u64), ProjectionError>>(4);
    let reader = tokio::spawn(read_batches(
        log.clone(),
        projection.clone(),
        stream,
        from + 1,
        target,
        sender,
    ));
    let mut events = 0;
    let mut last_report = Instant::now();
    while let Some(batch) = batches.recv().await {
        let (batch, last) = batch?;
        events += apply_batch(
            pool,
            Some(schema),
            projection.as_ref(),
            stream,
            &batch,
            last,
        )
        .await?
        .applied;
        if let Some(progress) = progress
            && (last_report.elapsed() >= Duration::from_millis(200) || last >= target)
        {
            last_report = Instant::now();
            progress(&Progress {
                projection: projection.name(),
                stream,
                events,
                position: last,
                target,
                elapsed: started.elapsed(),
            });
        }
    }
    reader
        .await
        .map_err(|err| ProjectionError::Stopped(err.to_string()))?;
    let now = last_sequence(log, stream).await?;
    Ok((events, now.saturating_sub(target)))
}

/// Reads commits `from..=until` of the stream in batches of whole commits;
/// the last batch ends at `until` even when the last commits are not the
/// projection's.
///
/// It reads the stream's messages itself (an ephemeral consumer, no acks,
/// large pulls) rather than through [`EventLog::replay`], so as to decode
/// them exactly as the live runner does: the aggregate type told by the
/// subject, only the envelopes parsed for a projection that reads no
/// payloads.
///
/// Without acks, a message lost on the way would never come back: the
/// consumer sequences are checked ([`Deliveries`]), and at a gap the batch
/// being gathered is dropped and read again from its start by a new
/// consumer.
async fn read_batches(
    log: EventLog,
    projection: Arc<dyn Projection>,
    stream: LogStream,
    from: u64,
    until: u64,
    sender: mpsc::Sender<Result<(Vec<RecordedEvent>, u64), ProjectionError>>,
) {
    let mut from = from;
    let result = loop {
        match read_from(&log, &projection, stream, &mut from, until, &sender).await {
            Ok(Read::Done) => break Ok(()),
            Ok(Read::Gap(gap)) => {
                warn!(projection = projection.name(), stream = stream.name(), %gap, from,
                    "rebuild lost a message on the way; reading again");
            }
            Err(err) => break Err(err),
        }
    };
    if let Err(err) = result {
        let _ = sender.send(Err(err)).await;
    }
}

/// How one consumer's reading ended.
enum Read {
    /// Up to `until`, or the receiver went away.
    Done,
    /// A message lost on the way: read again from `from`.
    Gap(Gap),
}

/// [`read_batches`] with one consumer, from `from`, which moves past every
/// batch handed on.
async fn read_from(
    log: &EventLog,
    projection: &Arc<dyn Projection>,
    stream: LogStream,
    from: &mut u64,
    until: u64,
    sender: &mpsc::Sender<Result<(Vec<RecordedEvent>, u64), ProjectionError>>,
) -> Result<Read, ProjectionError> {
    let filter = match projection.aggregate_types() {
        Some([only]) => log.prefix().aggregate_type_subjects(only),
        _ => String::new(),
    };
    let js_stream = log.stream(&stream.full_name(log.prefix()))?;
    let consumer = js_stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: *from,
            },
            ack_policy: AckPolicy::None,
            filter_subject: filter,
            memory_storage: true,
            inactive_threshold: Duration::from_secs(10),
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .map_err(EventStoreError::nats)?;
    let mut left = consumer.cached_info().num_pending;
    let name = consumer.cached_info().name.clone();
    let read = async {
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(READ_BATCH)
            .messages()
            .await
            .map_err(EventStoreError::nats)?;
        let upcasters = wablast_domain::upcasters();
        let mut deliveries = Deliveries::after(0);
        let mut batch: Vec<RecordedEvent> = Vec::with_capacity(BATCH_EVENTS);
        while left > 0 {
            let next = tokio::time::timeout(SILENCE, messages.next()).await;
            let Ok(next) = next else {
                return Ok(Read::Gap(deliveries.silent()));
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(err)) => return Err(EventStoreError::nats(err).into()),
                None => {
                    return Err(EventStoreError::Nats(
                        "event log consumer closed before the end".into(),
                    )
                    .into());
                }
            };
            left -= 1;
            let info = message.info().map_err(EventStoreError::Nats)?;
            if let Err(gap) = deliveries.check(info.consumer_sequence, info.delivered) {
                return Ok(Read::Gap(gap));
            }
            let sequence = info.stream_sequence;
            if sequence > until {
                break;
            }
            // Cut only between commits.
            if batch.len() >= BATCH_EVENTS {
                let last = batch.last().map_or(0, |e| e.stream_sequence);
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_EVENTS));
                if sender.send(Ok((full, last))).await.is_err() {
                    return Ok(Read::Done);
                }
                *from = last + 1;
            }
            decode_commit(
                projection.as_ref(),
                &upcasters,
                sequence,
                &message,
                &mut batch,
            )?;
            if sequence == until {
                break;
            }
        }
        let _ = sender.send(Ok((batch, until))).await;
        Ok::<Read, ProjectionError>(Read::Done)
    }
    .await;
    // Gone now rather than after its inactivity threshold.
    let _ = js_stream.delete_consumer(&name).await;
    read
}

/// Locks the live checkpoints, folds what the rebuild has not seen yet,
/// and swaps the tables, all in one transaction.
///
/// # Returns
/// Events folded in the swap.
async fn swap(
    pool: &PgPool,
    log: &EventLog,
    schema: &str,
    projection: &dyn Projection,
) -> Result<u64, ProjectionError> {
    let name = projection.name();
    let mut tx = pool.begin().await?;
    for &stream in projection.streams() {
        // The live runner blocks here until we are done.
        checkpoint::lock(&mut tx, name, stream).await?;
    }
    let mut events = 0;
    let mut rebuilt = Vec::new();
    in_schema(&mut tx, schema).await?;
    for &stream in projection.streams() {
        let from = checkpoint::read(&mut *tx, name, stream).await?;
        let target = last_sequence(log, stream).await?;
        let mut rest = Vec::new();
        let upcasters = wablast_domain::upcasters();
        if target > from {
            let mut replay = log
                .replay(&stream.full_name(log.prefix()), None, from + 1)
                .await?;
            while let Some(event) = replay.next().await {
                let event = event?;
                if event.stream_sequence > target {
                    break;
                }
                if projection.folds(&event.aggregate_type) {
                    rest.push(upcast(projection, event, &upcasters));
                }
            }
        }
        let applied = apply_in(&mut tx, projection, stream, &rest, target.max(from)).await?;
        events += applied.applied;
        rebuilt.push((stream, applied.checkpoint));
    }
    reset_path(&mut tx).await?;
    for table in projection.tables() {
        sqlx::query(AssertSqlSafe(format!("drop table public.{table}")))
            .execute(&mut *tx)
            .await?;
        sqlx::query(AssertSqlSafe(format!(
            "alter table {schema}.{table} set schema public"
        )))
        .execute(&mut *tx)
        .await?;
    }
    for (stream, sequence) in rebuilt {
        checkpoint::advance(&mut tx, name, stream, sequence).await?;
    }
    sqlx::query(AssertSqlSafe(format!("drop schema {schema} cascade")))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(events)
}

/// Points the rest of the transaction at the rebuild's tables.
async fn in_schema(conn: &mut PgConnection, schema: &str) -> Result<(), sqlx::Error> {
    sqlx::query(AssertSqlSafe(format!(
        "set local search_path to {schema}, public"
    )))
    .execute(conn)
    .await
    .map(|_| ())
}

async fn reset_path(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("set local search_path to default")
        .execute(conn)
        .await
        .map(|_| ())
}

async fn last_sequence(log: &EventLog, stream: LogStream) -> Result<u64, ProjectionError> {
    let info = log
        .stream(&stream.full_name(log.prefix()))?
        .get_info()
        .await
        .map_err(EventStoreError::nats)?;
    Ok(info.state.last_sequence)
}

/// The event as the live runner gives it to the projection: upcast for
/// projections that read payloads, as written for the others (an index of
/// what is stored).
fn upcast(
    projection: &dyn Projection,
    event: RecordedEvent,
    upcasters: &[Box<dyn cqrs_es::persist::EventUpcaster>],
) -> RecordedEvent {
    if projection.needs_payloads() {
        event.upcast(upcasters)
    } else {
        event
    }
}
