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
}

const SELECT: &str = "select id, name, period_days, points, max_sessions, \
    max_recipients_per_campaign, max_daily_limit, price, created_at, retired_at from plans ";

/// Every plan, by id (creation order); retired ones only if asked.
pub async fn list(pool: &PgPool, include_retired: bool) -> Result<Vec<PlanView>, sqlx::Error> {
    let mut q = QueryBuilder::<Postgres>::new(SELECT);
    if !include_retired {
        q.push("where retired_at is null ");
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
