//! Orders paid through the payment gateway: `GET /api/v1/billing/orders`,
//! one order, its receipt; and the orders the payment re-check looks at.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;
use wablast_domain::order::OrderStatus;
use wablast_domain::types::{OrderId, TenantId};

use super::{Page, Paged};

/// An order as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct OrderView {
    /// Its id.
    pub order_id: Uuid,
    /// Who bought.
    pub tenant_id: Uuid,
    /// `plan` or `top_up`.
    pub item_kind: String,
    /// The plan bought.
    pub plan_id: Option<Uuid>,
    /// Its name when bought.
    pub plan_name: Option<String>,
    /// Its period when bought.
    pub plan_period_days: Option<i32>,
    /// The points it credits.
    pub points: i64,
    /// Whole rupiah.
    pub amount: i64,
    /// `created`, `pending`, `paid`, `failed`, `partially_refunded`,
    /// `refunded`.
    pub status: String,
    /// Why it failed.
    pub failure_reason: Option<String>,
    /// The gateway's transaction.
    pub transaction_id: Option<String>,
    /// Where the customer pays.
    pub redirect_url: Option<String>,
    /// When it was paid.
    pub paid_at: Option<DateTime<Utc>>,
    /// When the wallet was credited.
    pub credited_at: Option<DateTime<Utc>>,
    /// Rupiah refunded, in all.
    pub refunded_amount: i64,
    /// Points the refunds took back.
    pub points_taken_back: i64,
    /// Points the refunds could not take back (spent).
    pub points_owed: i64,
    /// Payments reported for another amount (refused).
    pub amount_mismatches: i32,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

const SELECT: &str = "select order_id, tenant_id, item_kind, plan_id, plan_name, \
    plan_period_days, points, amount, status, failure_reason, transaction_id, redirect_url, \
    paid_at, credited_at, refunded_amount, points_taken_back, points_owed, amount_mismatches, \
    created_at, updated_at from orders ";

/// The tenant's orders, newest first.
pub async fn list(
    pool: &PgPool,
    tenant: TenantId,
    status: Option<OrderStatus>,
    page: &Page,
) -> Result<Paged<OrderView>, sqlx::Error> {
    let mut q = QueryBuilder::<Postgres>::new(SELECT);
    q.push("where tenant_id = ").push_bind(*tenant.as_uuid());
    if let Some(status) = status {
        q.push(" and status = ").push_bind(status.as_str());
    }
    if let Some(cursor) = page.cursor() {
        q.push(" and order_id < ").push_bind(*cursor);
    }
    q.push(" order by order_id desc limit ")
        .push_bind(page.fetch());
    let rows: Vec<OrderView> = q.build_query_as().fetch_all(pool).await?;
    Ok(Paged::from_rows(rows, page, |row| row.order_id))
}

/// One of the tenant's orders (`None` for another tenant's).
pub async fn get(
    pool: &PgPool,
    tenant: TenantId,
    order: OrderId,
) -> Result<Option<OrderView>, sqlx::Error> {
    let mut q = QueryBuilder::<Postgres>::new(SELECT);
    q.push("where tenant_id = ")
        .push_bind(*tenant.as_uuid())
        .push(" and order_id = ")
        .push_bind(*order.as_uuid());
    q.build_query_as().fetch_optional(pool).await
}

/// Whose order this is, whatever the tenant (for the gateway's
/// notifications, which name the order only).
pub async fn tenant_of(pool: &PgPool, order: OrderId) -> Result<Option<TenantId>, sqlx::Error> {
    let tenant: Option<Uuid> =
        sqlx::query_scalar("select tenant_id from orders where order_id = $1")
            .bind(*order.as_uuid())
            .fetch_optional(pool)
            .await?;
    Ok(tenant.map(TenantId::from_uuid))
}

/// Orders not settled that have not changed since `before`, oldest change
/// first: those still waiting for their payment (created with a payment
/// page, or pending) created since `created_since`, and those paid whose
/// wallet is not credited yet.
pub async fn unsettled(
    pool: &PgPool,
    before: DateTime<Utc>,
    created_since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<(TenantId, OrderId)>, sqlx::Error> {
    let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "select tenant_id, order_id from orders \
         where ((status in ($1, $2) and created_at >= $4) \
                or (paid_at is not null and credited_at is null)) \
           and updated_at < $3 \
         order by updated_at limit $5",
    )
    .bind(OrderStatus::Created.as_str())
    .bind(OrderStatus::Pending.as_str())
    .bind(before)
    .bind(created_since)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(tenant, order)| (TenantId::from_uuid(tenant), OrderId::from_uuid(order)))
        .collect())
}
