//! Statistics: `GET /api/v1/stats` (a tenant's) and
//! `GET /api/v1/admin/stats` (the platform's), from the `stats` projection's
//! day rows (never a scan of `messages`).

use chrono::NaiveDate;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;
use wablast_domain::types::TenantId;

/// How the rows of a report are grouped in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granularity {
    /// By UTC day.
    Day,
    /// By ISO week (starting Monday).
    Week,
    /// By calendar month.
    Month,
}

impl Granularity {
    fn trunc(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }
}

/// What happened in one period (or one session over the whole range).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Counts {
    /// Messages sent.
    pub sent: i64,
    /// Receipts: delivered.
    pub delivered: i64,
    /// Receipts: read.
    pub read: i64,
    /// Messages that failed for good.
    pub failed: i64,
    /// Inbound messages received.
    pub replies: i64,
    /// Points the messages sent cost.
    pub points_spent: i64,
}

/// One period of a report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Period {
    /// Its first day.
    pub start: NaiveDate,
    /// Its counts.
    #[sqlx(flatten)]
    pub counts: Counts,
}

/// One session's counts over the whole range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SessionCounts {
    /// The session (the nil UUID: the receipts, whose events name no
    /// sender).
    pub session_id: Uuid,
    /// Its counts.
    #[sqlx(flatten)]
    pub counts: Counts,
}

/// How many final failures had one reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ReasonCount {
    /// The reason, as the driver or the engine said it.
    pub reason: String,
    /// How many.
    pub failed: i64,
}

/// A tenant's report over `[from, to]` (UTC days, both included).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TenantReport {
    /// Everything in the range.
    pub totals: Counts,
    /// Per period.
    pub periods: Vec<Period>,
    /// Per session.
    pub sessions: Vec<SessionCounts>,
    /// Final failures per reason, most first.
    pub failures: Vec<ReasonCount>,
}

/// The sums of a report's counts, as SQL (a literal, for `concat!`).
macro_rules! sums {
    () => {
        "coalesce(sum(sent), 0)::bigint as sent, \
         coalesce(sum(delivered), 0)::bigint as delivered, \
         coalesce(sum(read), 0)::bigint as read, \
         coalesce(sum(failed), 0)::bigint as failed, \
         coalesce(sum(replies), 0)::bigint as replies, \
         coalesce(sum(points_spent), 0)::bigint as points_spent"
    };
}

/// A tenant's report.
pub async fn tenant(
    pool: &PgPool,
    tenant: TenantId,
    from: NaiveDate,
    to: NaiveDate,
    granularity: Granularity,
) -> Result<TenantReport, sqlx::Error> {
    let tenant = *tenant.as_uuid();
    let totals: Counts = sqlx::query_as(concat!(
        "select ",
        sums!(),
        " from stats_daily where tenant_id = $1 and day between $2 and $3"
    ))
    .bind(tenant)
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await?;
    let periods: Vec<Period> = sqlx::query_as(concat!(
        "select date_trunc($4, day::timestamp)::date as start, ",
        sums!(),
        " from stats_daily \
         where tenant_id = $1 and day between $2 and $3 group by 1 order by 1"
    ))
    .bind(tenant)
    .bind(from)
    .bind(to)
    .bind(granularity.trunc())
    .fetch_all(pool)
    .await?;
    let sessions: Vec<SessionCounts> = sqlx::query_as(concat!(
        "select session_id, ",
        sums!(),
        " from stats_daily \
         where tenant_id = $1 and day between $2 and $3 group by 1 order by 1"
    ))
    .bind(tenant)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    let failures = sqlx::query_as(
        "select reason, sum(failed)::bigint as failed from stats_failures \
         where tenant_id = $1 and day between $2 and $3 group by 1 order by 2 desc, 1",
    )
    .bind(tenant)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    Ok(TenantReport {
        totals,
        periods,
        sessions,
        failures,
    })
}

/// The platform's report over `[from, to]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlatformReport {
    /// Tenants, in all.
    pub tenants: i64,
    /// Tenants that sent at least one message in the range.
    pub tenants_active: i64,
    /// Tenants suspended now.
    pub tenants_suspended: i64,
    /// Everything in the range, every tenant.
    pub totals: Counts,
    /// Per period.
    pub periods: Vec<Period>,
    /// Final failures per reason, most first.
    pub failures: Vec<ReasonCount>,
}

/// The platform's report.
pub async fn platform(
    pool: &PgPool,
    from: NaiveDate,
    to: NaiveDate,
    granularity: Granularity,
) -> Result<PlatformReport, sqlx::Error> {
    let tenants: i64 = sqlx::query_scalar("select count(*) from tenants")
        .fetch_one(pool)
        .await?;
    let tenants_suspended: i64 =
        sqlx::query_scalar("select count(*) from wallets where suspended_reason is not null")
            .fetch_one(pool)
            .await?;
    let tenants_active: i64 = sqlx::query_scalar(
        "select count(distinct tenant_id) from stats_daily \
         where day between $1 and $2 and sent > 0",
    )
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await?;
    let totals: Counts = sqlx::query_as(concat!(
        "select ",
        sums!(),
        " from stats_daily where day between $1 and $2"
    ))
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await?;
    let periods = sqlx::query_as(concat!(
        "select date_trunc($3, day::timestamp)::date as start, ",
        sums!(),
        " from stats_daily \
         where day between $1 and $2 group by 1 order by 1"
    ))
    .bind(from)
    .bind(to)
    .bind(granularity.trunc())
    .fetch_all(pool)
    .await?;
    let failures = sqlx::query_as(
        "select reason, sum(failed)::bigint as failed from stats_failures \
         where day between $1 and $2 group by 1 order by 2 desc, 1",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    Ok(PlatformReport {
        tenants,
        tenants_active,
        tenants_suspended,
        totals,
        periods,
        failures,
    })
}

/// What an order bought, as the `orders` table keeps it (`item_kind`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, sqlx::Type, utoipa::ToSchema,
)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// A plan.
    Plan,
    /// Points.
    TopUp,
}

/// What paid orders of one item brought in over one period (projection
/// `orders`).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct RevenueRow {
    /// The first day (UTC) of the period.
    pub start: NaiveDate,
    /// What the orders bought.
    pub item_kind: ItemKind,
    /// The plan bought (`None` for points).
    pub plan_id: Option<uuid::Uuid>,
    /// Its name when bought.
    pub plan_name: Option<String>,
    /// Orders paid in the period.
    pub orders: i64,
    /// What they paid, in the smallest currency unit.
    pub amount: i64,
    /// What was refunded of them since.
    pub refunded: i64,
}

/// Revenue by plan (and top-ups) per period: orders paid between `from`
/// and `to` (UTC days), by the day they were paid, with what was refunded
/// of them since. Grants are not revenue and are not counted.
pub async fn revenue(
    pool: &PgPool,
    from: NaiveDate,
    to: NaiveDate,
    granularity: Granularity,
) -> Result<Vec<RevenueRow>, sqlx::Error> {
    sqlx::query_as(
        "select date_trunc($3, paid_at at time zone 'UTC')::date as start, item_kind, plan_id, \
                max(plan_name) as plan_name, count(*)::bigint as orders, \
                sum(amount)::bigint as amount, sum(refunded_amount)::bigint as refunded \
         from orders \
         where paid_at is not null and (paid_at at time zone 'UTC')::date between $1 and $2 \
         group by 1, 2, 3 order by 1, 2, 3",
    )
    .bind(from)
    .bind(to)
    .bind(granularity.trunc())
    .fetch_all(pool)
    .await
}

/// The platform's running totals, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Totals {
    /// Messages sent, ever.
    pub sent: i64,
    /// Messages that failed for good, ever.
    pub failed: i64,
    /// Points the messages sent cost, ever.
    pub points_spent: i64,
    /// Messages of campaigns queued and not yet taken by a sender.
    pub queued: i64,
}

/// The platform's running totals (a sum over the day rows and the
/// campaigns' counts, never over `messages`).
pub async fn totals(pool: &PgPool) -> Result<Totals, sqlx::Error> {
    sqlx::query_as(
        "select \
            (select coalesce(sum(sent), 0) from stats_daily)::bigint as sent, \
            (select coalesce(sum(failed), 0) from stats_daily)::bigint as failed, \
            (select coalesce(sum(points_spent), 0) from stats_daily)::bigint as points_spent, \
            (select coalesce(sum(queued), 0) from campaign_message_counts)::bigint as queued",
    )
    .fetch_one(pool)
    .await
}
