//! Sessions (linked WhatsApp numbers): `GET /api/v1/sessions[/{id}]`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;
use wablast_domain::session::{Driver, SessionStatus};
use wablast_domain::types::{SessionId, TenantId, TimeZone};

use super::{Page, Paged};

/// A session as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SessionView {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// `simulator | native | waha | cloud`.
    pub driver: String,
    /// `idle | starting | qr | pairing | authenticated | ready |
    /// disconnected | failed | logged_out`.
    pub status: String,
    /// E.164, once known.
    pub phone_number: Option<String>,
    /// Sends allowed per local day.
    pub daily_limit: i32,
    /// Whether the daily limit follows the trust level (not set by hand).
    pub daily_limit_follows_trust_level: bool,
    /// Sends granted on the tenant's current local date.
    pub sent_today: i32,
    /// Trust level (sets the daily limit unless set by hand).
    pub trust_level: i16,
    /// Whether the engine starts it on its own.
    pub auto_start: bool,
    /// The last error the engine reported; cleared once ready again.
    pub last_error: Option<String>,
    /// Time of the last event applied.
    pub updated_at: DateTime<Utc>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// `qr | pairing`.
    pub login: String,
    /// While the engine tries again to connect it: which try failed last.
    pub reconnect_attempt: Option<i32>,
    /// ... and when the next try is.
    pub reconnect_at: Option<DateTime<Utc>>,
    /// Why its send loop waits (`daily_limit_reached`,
    /// `outside_active_hours`, `sending_paused`, `plan_expired`), while it
    /// does.
    pub waiting_reason: Option<String>,
    /// ... and until when, where known.
    pub waiting_until: Option<DateTime<Utc>>,
    /// The engine that runs it (took its lease last), while it runs.
    pub engine_id: Option<String>,
    /// ... since when.
    pub engine_since: Option<DateTime<Utc>>,
    /// The shortest pause between two of its single sends.
    pub throttle_min_ms: i32,
    /// The longest.
    pub throttle_max_ms: i32,
    /// Its own pacing (`{break_every, per_minute, per_hour,
    /// new_contacts_per_day}`), if set.
    pub pacing: Option<sqlx::types::Json<wablast_domain::governor::SenderPacing>>,
}

/// The tenant's local date at `now`, in its time zone (`schedules.timezone`,
/// Asia/Jakarta without a row): the `session_days` row that is today's.
///
/// The date is computed with the domain's time zones, as the engine does
/// when it grants a send, not with PostgreSQL's tz database.
pub async fn local_date(
    pool: &PgPool,
    tenant: TenantId,
    now: DateTime<Utc>,
) -> Result<NaiveDate, sqlx::Error> {
    let name: Option<String> =
        sqlx::query_scalar("select timezone from schedules where tenant_id = $1")
            .bind(*tenant.as_uuid())
            .fetch_optional(pool)
            .await?;
    let zone = match name {
        None => TimeZone::JAKARTA,
        Some(name) => TimeZone::parse(&name).unwrap_or_else(|_| {
            tracing::warn!(
                %tenant,
                timezone = %name,
                "unknown time zone in schedules: days counted in Asia/Jakarta"
            );
            TimeZone::JAKARTA
        }),
    };
    Ok(zone.local_date(now))
}

/// The rows of `sessions` with `sent_today`: the `session_days` row of
/// `today`. Ends before the `where`.
fn select(today: NaiveDate) -> QueryBuilder<Postgres> {
    let mut q = QueryBuilder::new(
        "select s.id, s.name, s.driver, s.status, s.phone_number, s.daily_limit, \
                s.daily_limit_follows_trust_level, coalesce(d.sent, 0) as sent_today, \
                s.trust_level, s.auto_start, s.last_error, s.updated_at, s.created_at, s.login, \
                s.reconnect_attempt, s.reconnect_at, s.waiting_reason, s.waiting_until, \
                s.engine_id, s.engine_since, s.throttle_min_ms, s.throttle_max_ms, s.pacing \
         from sessions s \
         left join session_days d on d.session_id = s.id and d.tenant_id = s.tenant_id \
              and d.local_date = ",
    );
    q.push_bind(today).push(" ");
    q
}

/// The tenant's sessions, by id (creation order).
///
/// `now` is the time `sent_today` is counted at (the current time, but for
/// tests).
pub async fn list(
    pool: &PgPool,
    tenant: TenantId,
    page: &Page,
    now: DateTime<Utc>,
) -> Result<Paged<SessionView>, sqlx::Error> {
    let mut q = select(local_date(pool, tenant, now).await?);
    q.push("where s.tenant_id = ").push_bind(*tenant.as_uuid());
    if let Some(after) = page.cursor() {
        q.push(" and s.id > ").push_bind(*after);
    }
    q.push(" order by s.id limit ").push_bind(page.fetch());
    let rows = q.build_query_as::<SessionView>().fetch_all(pool).await?;
    Ok(Paged::from_rows(rows, page, |row| row.id))
}

/// One of the tenant's sessions; `None` if there is none with this id, or
/// it belongs to another tenant.
pub async fn get(
    pool: &PgPool,
    tenant: TenantId,
    id: SessionId,
    now: DateTime<Utc>,
) -> Result<Option<SessionView>, sqlx::Error> {
    let mut q = select(local_date(pool, tenant, now).await?);
    q.push("where s.tenant_id = ")
        .push_bind(*tenant.as_uuid())
        .push(" and s.id = ")
        .push_bind(*id.as_uuid());
    q.build_query_as::<SessionView>().fetch_optional(pool).await
}

/// How many sessions the tenant has (deleted ones are gone): what the
/// plan's `max_sessions` holds.
pub async fn count_active(pool: &PgPool, tenant: TenantId) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from sessions where tenant_id = $1")
        .bind(*tenant.as_uuid())
        .fetch_one(pool)
        .await
}

/// Which of `ids` are the tenant's sessions (deleted ones included: their
/// rows stay).
pub async fn existing_ids(
    pool: &PgPool,
    tenant: TenantId,
    ids: &[Uuid],
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("select id from sessions where tenant_id = $1 and id = any($2)")
        .bind(tenant.as_uuid())
        .bind(ids)
        .fetch_all(pool)
        .await
}

/// The sessions (of every tenant) in one of `statuses`, as `(tenant, id)`;
/// only those flagged to start with the engine when `auto_start_only`,
/// only those of `drivers` when given.
pub async fn in_statuses(
    pool: &PgPool,
    statuses: &[SessionStatus],
    drivers: Option<&[Driver]>,
    auto_start_only: bool,
) -> Result<Vec<(TenantId, SessionId)>, sqlx::Error> {
    let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    let drivers: Option<Vec<&str>> = drivers.map(|d| d.iter().map(|d| d.as_str()).collect());
    let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "select tenant_id, id from sessions
         where status = any($1)
           and ($2::text[] is null or driver = any($2))
           and (not $3 or auto_start)
         order by id",
    )
    .bind(statuses)
    .bind(drivers)
    .bind(auto_start_only)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(tenant, id)| (TenantId::from_uuid(tenant), SessionId::from_uuid(id)))
        .collect())
}

/// The tenant's sessions in one of `statuses`, by id.
pub async fn ids_in_statuses(
    pool: &PgPool,
    tenant: TenantId,
    statuses: &[SessionStatus],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    sqlx::query_scalar(
        "select id from sessions where tenant_id = $1 and status = any($2) order by id",
    )
    .bind(tenant.as_uuid())
    .bind(statuses)
    .fetch_all(pool)
    .await
}

/// The tenant a session belongs to (for the platform admin, who acts on
/// any tenant's sessions).
pub async fn tenant_of(pool: &PgPool, id: SessionId) -> Result<Option<TenantId>, sqlx::Error> {
    let tenant: Option<Uuid> = sqlx::query_scalar("select tenant_id from sessions where id = $1")
        .bind(id.as_uuid())
        .fetch_optional(pool)
        .await?;
    Ok(tenant.map(TenantId::from_uuid))
}

/// Which of `ids` are the tenant's sessions of `driver` (the Cloud API
/// senders of a campaign, say).
pub async fn with_driver(
    pool: &PgPool,
    tenant: TenantId,
    ids: &[Uuid],
    driver: Driver,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "select id from sessions where tenant_id = $1 and id = any($2) and driver = $3",
    )
    .bind(tenant.as_uuid())
    .bind(ids)
    .bind(driver.as_str())
    .fetch_all(pool)
    .await
}

/// A session as the fleet view lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HeldSession {
    /// The session.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// Its name.
    pub name: String,
    /// Its status.
    pub status: String,
    /// Its driver.
    pub driver: String,
}

/// The sessions that should run (in one of `statuses`) and whose last
/// holder is `engine`, by id.
pub async fn held_by(
    pool: &PgPool,
    engine: &str,
    statuses: &[SessionStatus],
) -> Result<Vec<HeldSession>, sqlx::Error> {
    let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    sqlx::query_as(
        "select id, tenant_id, name, status, driver from sessions
         where engine_id = $1 and status = any($2) order by id",
    )
    .bind(engine)
    .bind(statuses)
    .fetch_all(pool)
    .await
}
