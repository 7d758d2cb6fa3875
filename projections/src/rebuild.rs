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

use futures::StreamExt;
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use tokio::sync::mpsc;
use tracing::{info, warn};
use wablast_eventstore::{EventLog, EventStoreError, RecordedEvent, range_reader};

use crate::runner::{
    Deliveries, Gap, apply_batch, apply_in, decode_commit, each_to_the_end, one_type_filter,
};
use crate::{LogStream, Projection, ProjectionError, StreamName, by_name, checkpoint};

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
///
/// Each stream is read once for all of them: one reader decodes every
/// commit once and hands each projection the events it folds, and each
/// projection folds into its own tables on its own connection, with its own
/// checkpoint. Once every stream is read, each projection gets its
/// remaining indexes and is swapped in.
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
    let started = Instant::now();
    each_to_the_end(projections.iter().map(|projection| {
        info!(projection = projection.name(), "rebuilding from sequence 0");
        // An insert-only projection never looks its rows up, so even its
        // keys can wait: an index built once over the loaded rows is
        // cheaper than one kept up to date row by row. A duplicate still
        // fails, when the key is added, before the swap.
        let keys_now = !projection.insert_only();
        async move {
            prepare(
                pool,
                &schema_of(projection.as_ref()),
                projection.tables(),
                keys_now,
            )
            .await
        }
    }))
    .await?;
    // The streams side by side, each read once for every projection of it.
    let passes = LogStream::ALL.into_iter().filter_map(|stream| {
        let readers: Vec<_> = projections
            .iter()
            .filter(|projection| projection.streams().contains(&stream))
            .cloned()
            .collect();
        (!readers.is_empty()).then(|| fold_stream(pool, log, stream, readers, started, progress))
    });
    let mut folded = vec![0_u64; projections.len()];
    for stream in each_to_the_end(passes).await? {
        for (name, events) in stream {
            if let Some(i) = projections.iter().position(|p| p.name() == name) {
                folded[i] += events;
            }
        }
    }
    let rebuilt = each_to_the_end(
        projections
            .iter()
            .zip(folded)
            .map(|(projection, events)| finish(pool, log, projection.as_ref(), events, started)),
    )
    .await?;
    Ok(RebuildReport {
        projections: rebuilt,
    })
}

/// The schema a projection is rebuilt in.
fn schema_of(projection: &dyn Projection) -> String {
    format!("rebuild_{}", projection.name())
}

/// Reads a stream for these projections in passes, until what is left
/// fits in the swap's transaction.
///
/// # Returns
/// Events folded, per projection.
async fn fold_stream(
    pool: &PgPool,
    log: &EventLog,
    stream: LogStream,
    projections: Vec<Arc<dyn Projection>>,
    started: Instant,
    progress: OnProgress<'_>,
) -> Result<Vec<(&'static str, u64)>, ProjectionError> {
    let mut events = vec![0; projections.len()];
    loop {
        let (folded, left) = fold_pass(pool, log, stream, &projections, started, progress).await?;
        for (total, n) in events.iter_mut().zip(folded) {
            *total += n;
        }
        if left < BATCH_EVENTS as u64 {
            return Ok(projections.iter().map(|p| p.name()).zip(events).collect());
        }
    }
}

/// The rest of a projection's rebuild once its streams are read: the keys
/// it waited for, its other indexes, the swap.
async fn finish(
    pool: &PgPool,
    log: &EventLog,
    projection: &dyn Projection,
    mut events: u64,
    started: Instant,
) -> Result<Rebuilt, ProjectionError> {
    let name = projection.name();
    let schema = schema_of(projection);
    if projection.insert_only() {
        add_keys(pool, &schema, projection.tables()).await?;
    }
    create_secondary_indexes(pool, &schema, projection.tables()).await?;
    events += swap(pool, log, &schema, projection).await?;
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

/// A batch for one projection: whole commits, and the stream sequence its
/// checkpoint moves to.
type Batch = (Vec<RecordedEvent>, u64);

/// One pass over a stream, from where the projections' rebuilds stand to
/// the stream's end as of now: one reader, and a folder per projection,
/// side by side.
///
/// # Returns
/// Events folded per projection (in order), and commits written meanwhile
/// (what the next pass has).
async fn fold_pass(
    pool: &PgPool,
    log: &EventLog,
    stream: LogStream,
    projections: &[Arc<dyn Projection>],
    started: Instant,
    progress: OnProgress<'_>,
) -> Result<(Vec<u64>, u64), ProjectionError> {
    let mut from = u64::MAX;
    for projection in projections {
        let mut tx = pool.begin().await?;
        in_schema(&mut tx, &schema_of(projection.as_ref())).await?;
        from = from.min(checkpoint::read(&mut *tx, projection.name(), stream).await?);
    }
    let target = last_sequence(log, stream).await?;
    if target <= from {
        return Ok((vec![0; projections.len()], 0));
    }
    let (senders, receivers): (Vec<_>, Vec<_>) = projections
        .iter()
        .map(|_| mpsc::channel::<Batch>(4))
        .unzip();
    let reader = tokio::spawn(read_batches(
        log.clone(),
        projections.to_vec(),
        stream,
        from + 1,
        target,
        senders,
    ));
    let folders = projections
        .iter()
        .zip(receivers)
        .map(|(projection, batches)| {
            fold_batches(
                pool,
                projection.as_ref(),
                stream,
                batches,
                target,
                started,
                progress,
            )
        });
    // A folder that fails stops taking batches, and the reader stops when
    // batches have nowhere to go, which ends the other folders; a reader
    // that fails ends the folders.
    let folded = each_to_the_end(folders).await;
    reader
        .await
        .map_err(|err| ProjectionError::Stopped(err.to_string()))??;
    let folded = folded?;
    let now = last_sequence(log, stream).await?;
    Ok((folded, now.saturating_sub(target)))
}

/// Folds one projection's batches as they come, each in a transaction of
/// its own that also moves its checkpoint.
///
/// # Returns
/// Events folded.
async fn fold_batches(
    pool: &PgPool,
    projection: &dyn Projection,
    stream: LogStream,
    mut batches: mpsc::Receiver<Batch>,
    target: u64,
    started: Instant,
    progress: OnProgress<'_>,
) -> Result<u64, ProjectionError> {
    let schema = schema_of(projection);
    let mut events = 0;
    let mut last_report = Instant::now();
    while let Some((batch, last)) = batches.recv().await {
        events += apply_batch(pool, Some(&schema), projection, stream, &batch, last)
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
    Ok(events)
}

/// Reads commits `from..=until` of the stream once for every projection,
/// handing each its events in batches of whole commits; every projection's
/// last batch ends at `until`, even when the last commits are not its own.
///
/// It reads the stream's messages itself (an ephemeral consumer, no acks,
/// large pulls) rather than through [`EventLog::replay`], so as to decode
/// them exactly as the live runner does ([`decode_commit`]).
///
/// Without acks, a message lost on the way would never come back: the
/// consumer sequences are checked ([`Deliveries`]), and at a gap the
/// batches being gathered are dropped and read again from their start by
/// a new consumer.
async fn read_batches(
    log: EventLog,
    projections: Vec<Arc<dyn Projection>>,
    stream: LogStream,
    from: u64,
    until: u64,
    senders: Vec<mpsc::Sender<Batch>>,
) -> Result<(), ProjectionError> {
    let mut from = from;
    loop {
        match read_from(&log, &projections, stream, &mut from, until, &senders).await? {
            Read::Done => return Ok(()),
            Read::Gap(gap) => {
                warn!(stream = stream.name(), %gap, from,
                    "rebuild lost a message on the way; reading again");
            }
        }
    }
}

/// How one consumer's reading ended.
enum Read {
    /// Up to `until`, or a folder went away.
    Done,
    /// A message lost on the way: read again from `from`.
    Gap(Gap),
}

/// [`read_batches`] with one consumer, from `from`, which moves past every
/// set of batches handed on.
async fn read_from(
    log: &EventLog,
    projections: &[Arc<dyn Projection>],
    stream: LogStream,
    from: &mut u64,
    until: u64,
    senders: &[mpsc::Sender<Batch>],
) -> Result<Read, ProjectionError> {
    let filter = one_type_filter(log, projections).unwrap_or_default();
    let js_stream = log.stream(&stream.full_name(log.prefix()))?;
    let consumer = js_stream
        .create_consumer(range_reader(*from, filter))
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
        let folders: Vec<&dyn Projection> = projections.iter().map(AsRef::as_ref).collect();
        let mut deliveries = Deliveries::after(0);
        let mut batches: Vec<Vec<RecordedEvent>> = vec![Vec::new(); projections.len()];
        // Events gathered since the last batches went, and the sequence of
        // the last commit read.
        let (mut gathered, mut read_up_to) = (0, 0);
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
            if gathered >= BATCH_EVENTS {
                for (batch, sender) in batches.iter_mut().zip(senders) {
                    if batch.is_empty() {
                        continue;
                    }
                    let full = std::mem::take(batch);
                    if sender.send((full, read_up_to)).await.is_err() {
                        return Ok(Read::Done);
                    }
                }
                gathered = 0;
                *from = read_up_to + 1;
            }
            gathered += decode_commit(&folders, &upcasters, sequence, &message, &mut batches)?;
            read_up_to = sequence;
            if sequence == until {
                break;
            }
        }
        for (batch, sender) in batches.into_iter().zip(senders) {
            let _ = sender.send((batch, until)).await;
        }
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
