//! The plans on offer: `GET /api/v1/plans`. Platform-wide: no tenant.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;
use wablast_domain::types::PlanId;

/// A plan as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PlanView {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Days a period lasts (15 or 30).
    pub period_days: i32,
    /// Points granted per period.
    pub points: i64,
    /// Sessions a tenant may have.
    pub max_sessions: i32,
    /// Recipients a campaign may have.
    pub max_recipients_per_campaign: i32,
    /// The highest daily limit of a session.
    pub max_daily_limit: i32,
    /// In the smallest currency unit.
    pub price: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was taken off offer.
    pub retired_at: Option<DateTime<Utc>>,
    /// Its version (1, then one more per edit).
    pub version: i32,
    /// Includes auto-replies.
    pub feature_auto_replies: bool,
    /// Includes webhooks.
    pub feature_webhooks: bool,
    /// Includes the official Cloud API driver.
    pub feature_official_mode: bool,
    /// Days of grace after a period.
    pub grace_days: i32,
    /// Tenants may buy it.
    pub on_sale: bool,
    /// When it last changed.
    pub updated_at: Option<DateTime<Utc>>,
}

const SELECT: &str = "select id, name, period_days, points, max_sessions, \
    max_recipients_per_campaign, max_daily_limit, price, created_at, retired_at, version, \
    feature_auto_replies, feature_webhooks, feature_official_mode, grace_days, on_sale, \
    updated_at from plans ";

/// Which plans a list shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanFilter {
    /// Those tenants may buy: not retired and on sale.
    OnSale,
    /// Every plan, retired and off sale ones too (the admin's view).
    All,
}

/// The plans `filter` keeps, by id (creation order).
pub async fn list(pool: &PgPool, filter: PlanFilter) -> Result<Vec<PlanView>, sqlx::Error> {
    let mut q = QueryBuilder::<Postgres>::new(SELECT);
    if filter == PlanFilter::OnSale {
        q.push("where retired_at is null and on_sale ");
    }
    q.push("order by id");
    q.build_query_as().fetch_all(pool).await
}

/// A plan, retired or not.
pub async fn get(pool: &PgPool, id: PlanId) -> Result<Option<PlanView>, sqlx::Error> {
    let mut q = QueryBuilder::<Postgres>::new(SELECT);
    q.push("where id = ").push_bind(*id.as_uuid());
    q.build_query_as().fetch_optional(pool).await
}
