//! Webhook subscriptions and their deliveries (migrations 0006 and 0029),
//! as the outbox projection, the deliverer and the API read and write
//! them.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use wablast_domain::types::TenantId;

use super::{Cursor, Page, Paged, hex16, parse_hex16};
use crate::LogStream;

/// The `NOTIFY` channel the outbox wakes the deliverer on.
pub const CHANNEL: &str = "wablast_webhooks";

/// Where a delivery is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not taken by the receiver yet: waiting for its turn or its next try.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: the receiver refused it for good (a 4xx that is not worth
    /// repeating) or kept failing for the whole retry window. A dead
    /// letter: `POST /webhooks/{id}/replay` sends it again.
    Failed,
}

impl DeliveryStatus {
    /// Its name in the table and the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// A live subscription, as the outbox matches events against it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Subscription {
    /// Its id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// The event types it wants (`*`: all).
    pub events: Vec<String>,
    /// It wants commits of the `events` stream after this sequence.
    pub from_events: i64,
    /// It wants commits of the `messages` stream after this sequence.
    pub from_messages: i64,
}

impl Subscription {
    /// The live (neither deleted nor disabled) subscriptions of these
    /// tenants.
    pub async fn live(conn: &mut PgConnection, tenants: &[Uuid]) -> Result<Vec<Self>, sqlx::Error> {
        sqlx::query_as(
            "select id, tenant_id, events, from_events, from_messages from webhooks
             where tenant_id = any($1) and deleted_at is null and disabled_at is null",
        )
        .bind(tenants)
        .fetch_all(conn)
        .await
    }

    /// Whether it wants an event of `tenant` of this type, in a commit at
    /// `sequence` of `stream`.
    pub fn wants(&self, tenant: Uuid, stream: LogStream, sequence: u64, event_type: &str) -> bool {
        let from = match stream {
            LogStream::Events => self.from_events,
            LogStream::Messages => self.from_messages,
        };
        self.tenant_id == tenant
            && i64::try_from(sequence).is_ok_and(|s| s > from)
            && self.events.iter().any(|e| e == "*" || e == event_type)
    }
}

/// A subscription as the deliverer POSTs to it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Target {
    /// Its id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// Where to POST.
    pub url: String,
    /// Its secret's nonce (AES-256-GCM).
    pub secret_nonce: Vec<u8>,
    /// Its secret, sealed.
    pub secret_ciphertext: Vec<u8>,
    /// Since when its receiver fails, if it does.
    pub failing_since: Option<DateTime<Utc>>,
}

impl Target {
    /// The live subscription `id`; `None` when it is deleted or disabled.
    pub async fn live(pool: &PgPool, id: Uuid) -> Result<Option<Self>, sqlx::Error> {
        sqlx::query_as(
            "select id, tenant_id, url, secret_nonce, secret_ciphertext, failing_since
             from webhooks where id = $1 and deleted_at is null and disabled_at is null",
        )
        .bind(id)
        .fetch_optional(pool)
        .await
    }

    /// The tenant's subscription `id` whatever its state (`None`: deleted
    /// or another tenant's).
    pub async fn of_tenant(
        pool: &PgPool,
        tenant: TenantId,
        id: Uuid,
    ) -> Result<Option<Self>, sqlx::Error> {
        sqlx::query_as(
            "select id, tenant_id, url, secret_nonce, secret_ciphertext, failing_since
             from webhooks where tenant_id = $1 and id = $2 and deleted_at is null",
        )
        .bind(*tenant.as_uuid())
        .bind(id)
        .fetch_optional(pool)
        .await
    }
}

/// The live subscriptions with pending deliveries. (Each looks at the
/// first entry of its pending index: the table is large and mostly done.)
pub async fn with_pending(pool: &PgPool) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "select w.id from webhooks w
         cross join lateral (select d.id from webhook_deliveries d
                             where d.webhook_id = w.id and d.status = 'pending'
                             order by d.id limit 1) first
         where w.deleted_at is null and w.disabled_at is null",
    )
    .fetch_all(pool)
    .await
}

/// A pending delivery with what is POSTed.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Pending {
    /// The delivery's id.
    pub id: i64,
    /// Attempts made so far.
    pub attempts: i32,
    /// When it is due.
    pub next_attempt_at: DateTime<Utc>,
    /// When its first attempt failed, if one did.
    pub first_failed_at: Option<DateTime<Utc>>,
    /// The body's `id`.
    pub position: String,
    /// The event's type.
    pub event_type: String,
    /// The body.
    pub body: String,
}

/// The first `limit` pending deliveries of `webhook`, in delivery order.
pub async fn head(pool: &PgPool, webhook: Uuid, limit: i64) -> Result<Vec<Pending>, sqlx::Error> {
    sqlx::query_as(
        "select d.id, d.attempts, d.next_attempt_at, d.first_failed_at,
                e.position, e.event_type, e.body
         from (select * from webhook_deliveries
               where webhook_id = $1 and status = 'pending'
               order by id limit $2) d
         join lateral (select position, event_type, body from webhook_events e
                       where (e.stream, e.stream_sequence, e.event_index)
                           = (d.stream, d.stream_sequence, d.event_index)) e on true
         order by d.id",
    )
    .bind(webhook)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Records deliveries the receiver took (each answered `statuses[i]`), and
/// that it answers again.
pub async fn delivered(
    pool: &PgPool,
    webhook: Uuid,
    ids: &[i64],
    statuses: &[i32],
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    // The subscription's row first, then its deliveries: the one order of
    // locks every writer of both keeps (no deadlock with `enable`).
    sqlx::query(
        "update webhooks set failing_since = null where id = $1 and failing_since is not null",
    )
    .bind(webhook)
    .execute(&mut *tx)
    .await?;
    // By key, whatever the planner thinks of the table's size.
    sqlx::query(
        "update webhook_deliveries d
         set status = 'delivered', delivered_at = $3, last_attempt_at = $3,
             attempts = d.attempts + 1,
             last_status = ($2::int[])[array_position($1::bigint[], d.id)], last_error = null
         where d.id = any($1)",
    )
    .bind(ids)
    .bind(statuses)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// A failed attempt at delivery `id`: tried again at `retry_at`, or
/// given up (`None`).
#[derive(Clone, Debug)]
pub struct FailedAttempt {
    /// The delivery.
    pub id: i64,
    /// The receiver's status, if it answered.
    pub status: Option<i32>,
    /// The start of its answer, or why there was none.
    pub error: String,
    /// When it was made.
    pub at: DateTime<Utc>,
    /// When to try again; `None`: never (a dead letter).
    pub retry_at: Option<DateTime<Utc>>,
}

/// Records a failed attempt, and since when `webhook`'s receiver fails: a
/// failure more than `same_outage` after the one before starts a new
/// outage.
///
/// # Returns
/// Since when the receiver fails.
pub async fn attempt_failed(
    pool: &PgPool,
    webhook: Uuid,
    attempt: &FailedAttempt,
    same_outage: TimeDelta,
) -> Result<DateTime<Utc>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // The subscription's row first, then the delivery (see `delivered`).
    let since: DateTime<Utc> = sqlx::query_scalar(
        "update webhooks
         set failing_since = case when failing_since is null or last_failed_at is null
                                       or last_failed_at < $3
                                  then $2 else failing_since end,
             last_failed_at = $2
         where id = $1 returning failing_since",
    )
    .bind(webhook)
    .bind(attempt.at)
    .bind(attempt.at - same_outage)
    .fetch_one(&mut *tx)
    .await?;
    let status = match attempt.retry_at {
        Some(_) => DeliveryStatus::Pending,
        None => DeliveryStatus::Failed,
    };
    sqlx::query(
        "update webhook_deliveries
         set status = $2, attempts = attempts + 1, last_attempt_at = $3,
             first_failed_at = coalesce(first_failed_at, $3), last_status = $4,
             last_error = $5, next_attempt_at = coalesce($6, next_attempt_at)
         where id = $1",
    )
    .bind(attempt.id)
    .bind(status.as_str())
    .bind(attempt.at)
    .bind(attempt.status)
    .bind(&attempt.error)
    .bind(attempt.retry_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(since)
}

/// Turns a subscription off (nothing is queued or delivered to it any
/// more) with its reason. Its pending deliveries stay, for a replay.
///
/// # Returns
/// Whether it was live.
pub async fn disable(
    pool: &PgPool,
    webhook: Uuid,
    reason: &str,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let changed = sqlx::query(
        "update webhooks set disabled_at = $3, disabled_reason = $2
         where id = $1 and deleted_at is null and disabled_at is null",
    )
    .bind(webhook)
    .bind(reason)
    .bind(at)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(changed > 0)
}

/// Turns a disabled subscription of `tenant` on again: it receives the
/// events from the log's end `from` on, and what was still pending when it
/// was turned off is tried again now (what came meanwhile was never
/// queued: a replay sends it). Its receiver's failures are forgotten. An
/// active subscription's pending deliveries are just tried now.
///
/// # Returns
/// Whether it exists.
pub async fn enable(
    pool: &PgPool,
    tenant: TenantId,
    webhook: Uuid,
    from: [i64; 2],
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let found = sqlx::query(
        "update webhooks
         set disabled_at = null, disabled_reason = null, failing_since = null,
             from_events = case when disabled_at is null then from_events else $3 end,
             from_messages = case when disabled_at is null then from_messages else $4 end
         where tenant_id = $1 and id = $2 and deleted_at is null",
    )
    .bind(*tenant.as_uuid())
    .bind(webhook)
    .bind(from[0])
    .bind(from[1])
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if found == 0 {
        return Ok(false);
    }
    retry_pending(&mut tx, tenant, webhook, at).await?;
    tx.commit().await?;
    Ok(true)
}

/// Tries `webhook`'s pending deliveries again now, with a fresh retry
/// window (its receiver was changed): the deliverer is told which, so a
/// worker waiting for a retry stops waiting.
pub async fn retry_now(
    pool: &PgPool,
    tenant: TenantId,
    webhook: Uuid,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    retry_pending(&mut tx, tenant, webhook, at).await?;
    tx.commit().await
}

async fn retry_pending(
    conn: &mut PgConnection,
    tenant: TenantId,
    webhook: Uuid,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update webhook_deliveries set next_attempt_at = $3, first_failed_at = null
         where tenant_id = $1 and webhook_id = $2 and status = 'pending'",
    )
    .bind(*tenant.as_uuid())
    .bind(webhook)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    sqlx::query("select pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(webhook.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// One event to queue again for a subscription (a replay).
#[derive(Clone, Debug)]
pub struct Replayed {
    /// Its stream.
    pub stream: LogStream,
    /// Its commit's sequence.
    pub stream_sequence: i64,
    /// Its place in the commit.
    pub event_index: i32,
    /// Its position (the body's `id`).
    pub position: String,
    /// Its type.
    pub event_type: String,
    /// The body.
    pub body: String,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
}

/// Queues `events` (of `webhook`'s tenant) for `webhook` again, after
/// everything pending, and wakes the deliverer.
pub async fn queue_replay(
    pool: &PgPool,
    webhook: Uuid,
    tenant: Uuid,
    events: &[Replayed],
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let streams: Vec<&str> = events.iter().map(|e| e.stream.name()).collect();
    let sequences: Vec<i64> = events.iter().map(|e| e.stream_sequence).collect();
    let indexes: Vec<i32> = events.iter().map(|e| e.event_index).collect();
    let positions: Vec<&str> = events.iter().map(|e| e.position.as_str()).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let bodies: Vec<&str> = events.iter().map(|e| e.body.as_str()).collect();
    let occurred: Vec<DateTime<Utc>> = events.iter().map(|e| e.occurred_at).collect();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "insert into webhook_events
             (stream, stream_sequence, event_index, tenant_id, position, event_type, body, occurred_at)
         select s, q, i, $1, p, t, b, o
         from unnest($2::text[], $3::bigint[], $4::int[], $5::text[], $6::text[], $7::text[], $8::timestamptz[])
             as u(s, q, i, p, t, b, o)
         on conflict do nothing",
    )
    .bind(tenant)
    .bind(&streams)
    .bind(&sequences)
    .bind(&indexes)
    .bind(&positions)
    .bind(&types)
    .bind(&bodies)
    .bind(&occurred)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "insert into webhook_deliveries
             (webhook_id, tenant_id, stream, stream_sequence, event_index, status,
              next_attempt_at, created_at, replayed)
         select $1, $2, s, q, i, 'pending', $6, $6, true
         from unnest($3::text[], $4::bigint[], $5::int[]) with ordinality as u(s, q, i, n)
         order by n",
    )
    .bind(webhook)
    .bind(tenant)
    .bind(&streams)
    .bind(&sequences)
    .bind(&indexes)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    sqlx::query("select pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Forgets deliveries done before `delivered_before` and dead letters
/// older than `failed_before`, and the bodies no delivery needs any more.
///
/// # Returns
/// How many deliveries were forgotten.
pub async fn prune(
    pool: &PgPool,
    delivered_before: DateTime<Utc>,
    failed_before: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let pruned = sqlx::query(
        "delete from webhook_deliveries
         where (status = 'delivered' and delivered_at < $1)
            or (status = 'failed' and last_attempt_at < $2)
            or webhook_id in (select id from webhooks where deleted_at < $1)",
    )
    .bind(delivered_before)
    .bind(failed_before)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(
        "delete from webhook_events e
         where e.occurred_at < $1
           and not exists (select 1 from webhook_deliveries d
                           where (d.stream, d.stream_sequence, d.event_index)
                               = (e.stream, e.stream_sequence, e.event_index))",
    )
    .bind(delivered_before)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(pruned)
}

/// The key of the deliveries list: newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeliveryCursor(pub i64);

impl Cursor for DeliveryCursor {
    const TAG: char = 'd';

    fn payload(&self) -> String {
        let mut text = String::with_capacity(16);
        hex16(&mut text, self.0);
        text
    }

    fn from_payload(payload: &str) -> Option<Self> {
        parse_hex16(payload).map(Self)
    }
}

/// A delivery as the API shows it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DeliveryRow {
    /// Its id.
    pub id: i64,
    /// The event's position (the body's `id`).
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// The receiver's last HTTP status.
    pub last_status: Option<i32>,
    /// The start of its last answer, or why there was none.
    pub last_error: Option<String>,
    /// When it was last tried.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When it is tried next (pending only).
    pub next_attempt_at: DateTime<Utc>,
    /// When the receiver took it.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// Whether a replay queued it.
    pub replayed: bool,
}

impl DeliveryRow {
    /// Its status, typed.
    pub fn status(&self) -> DeliveryStatus {
        DeliveryStatus::parse(&self.status).unwrap_or(DeliveryStatus::Pending)
    }
}

/// A page of `webhook`'s deliveries (of `tenant`), newest first, with one
/// status or all.
pub async fn deliveries(
    pool: &PgPool,
    tenant: TenantId,
    webhook: Uuid,
    status: Option<DeliveryStatus>,
    page: &Page<DeliveryCursor>,
) -> Result<Paged<DeliveryRow>, sqlx::Error> {
    let rows: Vec<DeliveryRow> = sqlx::query_as(
        "select d.id, e.position as event_id, e.event_type, d.status, d.attempts,
                d.last_status, d.last_error, d.last_attempt_at, d.next_attempt_at,
                d.delivered_at, d.created_at, d.replayed
         from webhook_deliveries d
         join webhook_events e using (stream, stream_sequence, event_index)
         where d.tenant_id = $1 and d.webhook_id = $2
           and ($3::text is null or d.status = $3)
           and ($4::bigint is null or d.id < $4)
         order by d.id desc limit $5",
    )
    .bind(*tenant.as_uuid())
    .bind(webhook)
    .bind(status.map(DeliveryStatus::as_str))
    .bind(page.cursor().map(|c| c.0))
    .bind(page.fetch())
    .fetch_all(pool)
    .await?;
    Ok(Paged::from_rows(rows, page, |row| DeliveryCursor(row.id)))
}
