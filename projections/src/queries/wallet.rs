//! A tenant's points and plan: `GET /api/v1/wallet` and
//! `GET /api/v1/wallet/transactions`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;
use wablast_domain::types::TenantId;

use super::{Cursor, Page, Paged, hex16, parse_hex16};

/// The wallet as the API shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WalletView {
    /// Points owned.
    pub balance: i64,
    /// Points held for running campaigns.
    pub reserved: i64,
    /// Points that can be reserved: `balance - reserved`.
    pub available: i64,
    /// The plan subscribed to (its terms as subscribed); null before any.
    pub plan: Option<WalletPlan>,
    /// When the plan expires.
    pub plan_expires_at: Option<DateTime<Utc>>,
    /// Whether its expiry has been recorded (sending is blocked).
    pub plan_expired: bool,
    /// When sending stops: the expiry plus the plan's grace days.
    pub sending_until: Option<DateTime<Utc>>,
    /// Why the platform operator suspended the tenant, while suspended.
    pub suspended_reason: Option<String>,
    /// Whether the low-balance warning stands (fewer points available than
    /// a tenth of the plan's).
    pub low_balance: bool,
}

/// The plan of a wallet, with its terms as subscribed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WalletPlan {
    /// The plan's id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Days a period lasts.
    pub period_days: i32,
    /// Sessions the tenant may have.
    pub max_sessions: Option<i32>,
    /// Recipients a campaign may have.
    pub max_recipients_per_campaign: Option<i32>,
    /// The highest daily limit of a session.
    pub max_daily_limit: Option<i32>,
    /// The plan's version subscribed (its terms then).
    pub version: Option<i32>,
    /// Days of grace after the period.
    pub grace_days: Option<i32>,
}

#[derive(sqlx::FromRow)]
struct WalletRow {
    balance: i64,
    reserved: i64,
    available: i64,
    plan_id: Option<Uuid>,
    plan_name: Option<String>,
    plan_period_days: Option<i32>,
    max_sessions: Option<i32>,
    max_recipients_per_campaign: Option<i32>,
    max_daily_limit: Option<i32>,
    plan_expires_at: Option<DateTime<Utc>>,
    plan_expired: bool,
    sending_until: Option<DateTime<Utc>>,
    suspended_reason: Option<String>,
    low_balance_warned: bool,
    plan_version: Option<i32>,
    grace_days: Option<i32>,
}

/// The tenant's wallet: zeros and no plan for a tenant that never had
/// points.
pub async fn get(pool: &PgPool, tenant: TenantId) -> Result<WalletView, sqlx::Error> {
    let row: Option<WalletRow> = sqlx::query_as(
        "select balance, reserved, available, plan_id, plan_name, plan_period_days, \
                max_sessions, max_recipients_per_campaign, max_daily_limit, plan_expires_at, \
                plan_expired, sending_until, suspended_reason, low_balance_warned, plan_version, \
                grace_days \
         from wallets where tenant_id = $1",
    )
    .bind(*tenant.as_uuid())
    .fetch_optional(pool)
    .await?;
    let Some(r) = row else {
        return Ok(WalletView::default());
    };
    let plan = match (r.plan_id, r.plan_name, r.plan_period_days) {
        (Some(id), Some(name), Some(period_days)) => Some(WalletPlan {
            id,
            name,
            period_days,
            max_sessions: r.max_sessions,
            max_recipients_per_campaign: r.max_recipients_per_campaign,
            max_daily_limit: r.max_daily_limit,
            version: r.plan_version,
            grace_days: r.grace_days,
        }),
        _ => None,
    };
    Ok(WalletView {
        balance: r.balance,
        reserved: r.reserved,
        available: r.available,
        plan,
        plan_expires_at: r.plan_expires_at,
        plan_expired: r.plan_expired,
        sending_until: r.sending_until,
        suspended_reason: r.suspended_reason,
        low_balance: r.low_balance_warned,
    })
}

/// Why the tenant is suspended, if it is (what authentication asks on
/// every call).
pub async fn suspension(pool: &PgPool, tenant: TenantId) -> Result<Option<String>, sqlx::Error> {
    let reason: Option<Option<String>> =
        sqlx::query_scalar("select suspended_reason from wallets where tenant_id = $1")
            .bind(*tenant.as_uuid())
            .fetch_optional(pool)
            .await?;
    Ok(reason.flatten())
}

/// The tenants whose wallet has a notice or an expiry due at `now` and not
/// recorded yet, as the projection knows: the period ends within the
/// largest of `warning_days` (and that warning or a nearer one is not
/// given), the period ended without its renewal reminder, sending stopped
/// without the expiry recorded, or fewer points are available than the
/// plan's points / `low_balance_divisor` without the warning. At most
/// `limit`, soonest expiry first.
pub async fn due_for_notice(
    pool: &PgPool,
    now: DateTime<Utc>,
    warning_days: &[u32],
    low_balance_divisor: u64,
    limit: i64,
) -> Result<Vec<TenantId>, sqlx::Error> {
    let days: Vec<i32> = warning_days.iter().map(|d| *d as i32).collect();
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "select tenant_id from wallets \
         where plan_id is not null and ( \
             (not plan_expired and ( \
                 sending_until <= $1 \
                 or (plan_expires_at <= $1 and not renewal_reminded) \
                 or (plan_expires_at > $1 and exists ( \
                     select 1 from unnest($2::int[]) d \
                     where plan_expires_at - make_interval(days => d) <= $1 \
                       and coalesce(expiry_warned_days, 2147483647) > d)))) \
             or (not low_balance_warned \
                 and available < greatest(plan_points / $3, 1))) \
         order by plan_expires_at limit $4",
    )
    .bind(now)
    .bind(&days)
    .bind(i64::try_from(low_balance_divisor).unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(ids.into_iter().map(TenantId::from_uuid).collect())
}

/// A movement of points (or the plan's expiry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct TransactionView {
    /// The event's id.
    pub id: Uuid,
    /// `allocation | topup | reserve | capture | release | expire`.
    pub kind: String,
    /// Points moved.
    pub points: i64,
    /// The payment, grant or campaign it belongs to.
    pub reference: Option<String>,
    /// The campaign it belongs to.
    pub campaign_id: Option<Uuid>,
    /// The balance after it.
    pub balance_after: i64,
    /// Points reserved after it.
    pub reserved_after: i64,
    /// Points available after it.
    pub available_after: i64,
    /// When it happened.
    pub created_at: DateTime<Utc>,
    /// Position in the log (the order of the history).
    #[serde(skip)]
    pub stream_sequence: i64,
    /// Position in its commit.
    #[serde(skip)]
    pub event_sequence: i64,
}

/// Where a page of the wallet's history starts: the log position of the
/// last transaction of the previous page (the history is newest first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransactionCursor {
    /// Stream sequence.
    pub stream_sequence: i64,
    /// Event sequence in the commit.
    pub event_sequence: i64,
}

impl Cursor for TransactionCursor {
    const TAG: char = 'w';

    fn payload(&self) -> String {
        let mut text = String::with_capacity(32);
        hex16(&mut text, self.stream_sequence);
        hex16(&mut text, self.event_sequence);
        text
    }

    fn from_payload(payload: &str) -> Option<Self> {
        if payload.len() != 32 || !payload.is_ascii() {
            return None;
        }
        let (stream, event) = payload.split_at(16);
        Some(Self {
            stream_sequence: parse_hex16(stream)?,
            event_sequence: parse_hex16(event)?,
        })
    }
}

/// The tenant's wallet history, newest first.
pub async fn transactions(
    pool: &PgPool,
    tenant: TenantId,
    page: &Page<TransactionCursor>,
) -> Result<Paged<TransactionView>, sqlx::Error> {
    let mut q = QueryBuilder::<Postgres>::new(
        "select id, kind, points, reference, campaign_id, balance_after, reserved_after, \
                available_after, created_at, stream_sequence, event_sequence \
         from wallet_transactions where tenant_id = ",
    );
    q.push_bind(*tenant.as_uuid());
    if let Some(before) = page.cursor() {
        q.push(" and (stream_sequence, event_sequence) < (")
            .push_bind(before.stream_sequence)
            .push(", ")
            .push_bind(before.event_sequence)
            .push(")");
    }
    q.push(" order by stream_sequence desc, event_sequence desc limit ")
        .push_bind(page.fetch());
    let rows = q
        .build_query_as::<TransactionView>()
        .fetch_all(pool)
        .await?;
    Ok(Paged::from_rows(rows, page, |row| TransactionCursor {
        stream_sequence: row.stream_sequence,
        event_sequence: row.event_sequence,
    }))
}
