//! Where each projection has read each stream up to
//! (`projection_checkpoint`). A checkpoint only moves inside the transaction
//! that writes the rows it accounts for.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

use crate::LogStream;

/// Channel of the `NOTIFY` sent when a checkpoint moves (payload
/// `<projection>:<stream>:<sequence>`).
pub const NOTIFY_CHANNEL: &str = "wablast_projection_checkpoint";

/// One projection's position on one stream.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Checkpoint {
    /// The projection.
    pub projection: String,
    /// Logical stream name.
    pub stream: String,
    /// Stream sequence of the last commit applied (0: none).
    pub stream_sequence: i64,
    /// When it last moved.
    pub updated_at: DateTime<Utc>,
}

/// Creates a projection's checkpoint on a stream at 0 if it has none.
pub async fn ensure(
    db: impl PgExecutor<'_>,
    projection: &str,
    stream: LogStream,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into projection_checkpoint (projection, stream) values ($1, $2) \
         on conflict do nothing",
    )
    .bind(projection)
    .bind(stream.name())
    .execute(db)
    .await
    .map(|_| ())
}

/// Locks a projection's checkpoint on a stream for the rest of the
/// transaction (creating it at 0 the first time) and reads it. Whoever
/// writes the projection's rows takes this lock first, so two writers (a
/// live runner and a rebuild's swap, or two processes) take turns.
pub async fn lock(
    conn: &mut PgConnection,
    projection: &str,
    stream: LogStream,
) -> Result<u64, sqlx::Error> {
    ensure(&mut *conn, projection, stream).await?;
    let sequence: i64 = sqlx::query_scalar(
        "select stream_sequence from projection_checkpoint \
         where projection = $1 and stream = $2 for update",
    )
    .bind(projection)
    .bind(stream.name())
    .fetch_one(&mut *conn)
    .await?;
    Ok(sequence as u64)
}

/// Moves a locked checkpoint to `sequence` and tells listeners.
pub async fn advance(
    conn: &mut PgConnection,
    projection: &str,
    stream: LogStream,
    sequence: u64,
) -> Result<(), sqlx::Error> {
    advance_all(conn, &[projection], stream, sequence).await
}

/// Locks the checkpoints of several projections on a stream, in one
/// statement (in the order of their names, as every writer of several
/// does), and reads them, in the order asked. Every one must exist
/// ([`ensure`]): a missing one is `RowNotFound`.
pub async fn lock_all(
    conn: &mut PgConnection,
    projections: &[&str],
    stream: LogStream,
) -> Result<Vec<u64>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "select projection, stream_sequence from projection_checkpoint \
         where stream = $1 and projection = any($2) order by projection for update",
    )
    .bind(stream.name())
    .bind(projections)
    .fetch_all(&mut *conn)
    .await?;
    projections
        .iter()
        .map(|name| {
            rows.iter()
                .find(|(projection, _)| projection == name)
                .map(|&(_, sequence)| sequence as u64)
                .ok_or(sqlx::Error::RowNotFound)
        })
        .collect()
}

/// Moves the locked checkpoints of several projections on a stream to
/// `sequence` and tells listeners, in one statement.
pub async fn advance_all(
    conn: &mut PgConnection,
    projections: &[&str],
    stream: LogStream,
    sequence: u64,
) -> Result<(), sqlx::Error> {
    if projections.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "with moved as ( \
             update projection_checkpoint set stream_sequence = $3 \
             where stream = $2 and projection = any($1) \
             returning projection) \
         select pg_notify($4, projection || ':' || $2 || ':' || $3::text) from moved",
    )
    .bind(projections)
    .bind(stream.name())
    .bind(sequence as i64)
    .bind(NOTIFY_CHANNEL)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A projection's checkpoint on a stream, without locking (0 if none).
pub async fn read(
    db: impl PgExecutor<'_>,
    projection: &str,
    stream: LogStream,
) -> Result<u64, sqlx::Error> {
    let sequence: Option<i64> = sqlx::query_scalar(
        "select stream_sequence from projection_checkpoint where projection = $1 and stream = $2",
    )
    .bind(projection)
    .bind(stream.name())
    .fetch_optional(db)
    .await?;
    Ok(sequence.unwrap_or(0) as u64)
}

/// Every checkpoint.
pub async fn all(db: impl PgExecutor<'_>) -> Result<Vec<Checkpoint>, sqlx::Error> {
    sqlx::query_as(
        "select projection, stream, stream_sequence, updated_at from projection_checkpoint \
         order by projection, stream",
    )
    .fetch_all(db)
    .await
}
