//! The platform operator's reads (`GET /api/v1/admin/tenants`,
//! `/admin/tenants/{id}`, `/admin/users`, `/admin/sessions`): every
//! tenant, with its owner, plan, expiry, balance, sessions and last
//! activity; every user; every session with its trust level. The only
//! reads across tenants: the API answers them to the platform admin only.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;
use wablast_domain::types::TenantId;

use super::{Page, Paged};

/// A tenant as the operator sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct TenantSummary {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its owner's email (the first owner; any user when it has none).
    pub owner_email: Option<String>,
    /// When it registered.
    pub created_at: DateTime<Utc>,
    /// Its plan (terms as subscribed), if it ever had one.
    pub plan_id: Option<Uuid>,
    /// The plan's name.
    pub plan_name: Option<String>,
    /// When the plan's period ends.
    pub plan_expires_at: Option<DateTime<Utc>>,
    /// Whether the plan's expiry is recorded.
    pub plan_expired: bool,
    /// Points.
    pub balance: i64,
    /// Points available.
    pub available: i64,
    /// Sessions (linked numbers).
    pub sessions: i64,
    /// The latest change to its wallet, sessions or campaigns.
    pub last_activity_at: Option<DateTime<Utc>>,
    /// Why it is suspended, if it is.
    pub suspended_reason: Option<String>,
    /// Since when.
    pub suspended_at: Option<DateTime<Utc>>,
}

const TENANTS: &str = "select t.id, t.name, t.created_at, \
    (select u.email from users u where u.tenant_id = t.id \
      order by (u.role = 'owner') desc, u.created_at limit 1) as owner_email, \
    w.plan_id, w.plan_name, w.plan_expires_at, coalesce(w.plan_expired, false) as plan_expired, \
    coalesce(w.balance, 0) as balance, coalesce(w.available, 0) as available, \
    (select count(*) from sessions s where s.tenant_id = t.id) as sessions, \
    greatest(w.updated_at, \
      (select max(s.updated_at) from sessions s where s.tenant_id = t.id), \
      (select max(c.updated_at) from campaigns c where c.tenant_id = t.id)) as last_activity_at, \
    w.suspended_reason, w.suspended_at \
    from tenants t left join wallets w on w.tenant_id = t.id ";

/// `%text%` for `ilike`, with the pattern's own characters escaped.
fn contains(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Every tenant, by id; with `search`, those whose name or a user's email
/// contains it (case-insensitive).
pub async fn tenants(
    pool: &PgPool,
    search: Option<&str>,
    page: &Page,
) -> Result<Paged<TenantSummary>, sqlx::Error> {
    let mut q = QueryBuilder::<Postgres>::new(TENANTS);
    q.push("where true ");
    if let Some(search) = search {
        let pattern = contains(search);
        q.push("and (t.name ilike ")
            .push_bind(pattern.clone())
            .push(" or exists (select 1 from users u where u.tenant_id = t.id and u.email ilike ")
            .push_bind(pattern)
            .push(")) ");
    }
    if let Some(after) = page.cursor() {
        q.push("and t.id > ").push_bind(*after);
    }
    q.push(" order by t.id limit ").push_bind(page.fetch());
    let rows = q.build_query_as::<TenantSummary>().fetch_all(pool).await?;
    Ok(Paged::from_rows(rows, page, |row| row.id))
}

/// One tenant; `None` when there is none with this id.
pub async fn tenant(pool: &PgPool, id: TenantId) -> Result<Option<TenantSummary>, sqlx::Error> {
    let mut q = QueryBuilder::<Postgres>::new(TENANTS);
    q.push("where t.id = ").push_bind(*id.as_uuid());
    q.build_query_as().fetch_optional(pool).await
}

/// A user as the operator sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct UserSummary {
    /// Its id.
    pub id: Uuid,
    /// Its email.
    pub email: String,
    /// `admin`, `owner` or `member`.
    pub role: String,
    /// Its name.
    pub name: Option<String>,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// The tenant's name.
    pub tenant_name: String,
    /// When it registered.
    pub created_at: DateTime<Utc>,
}

/// Every user, by id; with `search`, those whose email, name or tenant's
/// name contains it; with `tenant`, that tenant's only.
pub async fn users(
    pool: &PgPool,
    search: Option<&str>,
    tenant: Option<TenantId>,
    page: &Page,
) -> Result<Paged<UserSummary>, sqlx::Error> {
    let mut q = QueryBuilder::<Postgres>::new(
        "select u.id, u.email, coalesce(m.role, u.role) as role, u.name, u.tenant_id, \
                t.name as tenant_name, u.created_at \
         from users u join tenants t on t.id = u.tenant_id \
         left join team_members m on m.tenant_id = u.tenant_id and m.user_id = u.id \
         where true ",
    );
    if let Some(search) = search {
        let pattern = contains(search);
        q.push("and (u.email ilike ")
            .push_bind(pattern.clone())
            .push(" or u.name ilike ")
            .push_bind(pattern.clone())
            .push(" or t.name ilike ")
            .push_bind(pattern)
            .push(") ");
    }
    if let Some(tenant) = tenant {
        q.push("and u.tenant_id = ").push_bind(*tenant.as_uuid());
    }
    if let Some(after) = page.cursor() {
        q.push(" and u.id > ").push_bind(*after);
    }
    q.push(" order by u.id limit ").push_bind(page.fetch());
    let rows = q.build_query_as::<UserSummary>().fetch_all(pool).await?;
    Ok(Paged::from_rows(rows, page, |row| row.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_matches_its_text_literally() {
        assert_eq!(contains("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}

/// A session (linked number) as the operator sees it, across tenants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SessionSummary {
    /// Its id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// The tenant's name.
    pub tenant_name: String,
    /// Its name.
    pub name: String,
    /// Its driver.
    pub driver: String,
    /// Its status.
    pub status: String,
    /// Its number, once linked.
    pub phone_number: Option<String>,
    /// Its trust level (1 to 5).
    pub trust_level: i16,
    /// Its daily limit.
    pub daily_limit: i32,
    /// Whether the daily limit follows the trust level.
    pub daily_limit_follows_trust_level: bool,
    /// The engine that last took it, as the log says.
    pub engine_id: Option<String>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What [`sessions`] keeps.
#[derive(Clone, Debug, Default)]
pub struct SessionFilter<'a> {
    /// Part of the session's name, number or tenant's name
    /// (case-insensitive).
    pub search: Option<&'a str>,
    /// One tenant's sessions.
    pub tenant: Option<TenantId>,
    /// Sessions of this trust level.
    pub trust_level: Option<i16>,
    /// Sessions in this status.
    pub status: Option<wablast_domain::session::SessionStatus>,
}

/// Every tenant's sessions, by id, kept by `filter`.
pub async fn sessions(
    pool: &PgPool,
    filter: &SessionFilter<'_>,
    page: &Page,
) -> Result<Paged<SessionSummary>, sqlx::Error> {
    let mut q = QueryBuilder::<Postgres>::new(
        "select s.id, s.tenant_id, t.name as tenant_name, s.name, s.driver, s.status, \
         s.phone_number, s.trust_level, s.daily_limit, s.daily_limit_follows_trust_level, \
         s.engine_id, s.updated_at \
         from sessions s join tenants t on t.id = s.tenant_id where true ",
    );
    if let Some(search) = filter.search {
        let pattern = contains(search);
        q.push("and (s.name ilike ")
            .push_bind(pattern.clone())
            .push(" or s.phone_number ilike ")
            .push_bind(pattern.clone())
            .push(" or t.name ilike ")
            .push_bind(pattern)
            .push(") ");
    }
    if let Some(tenant) = filter.tenant {
        q.push("and s.tenant_id = ")
            .push_bind(*tenant.as_uuid())
            .push(" ");
    }
    if let Some(level) = filter.trust_level {
        q.push("and s.trust_level = ").push_bind(level).push(" ");
    }
    if let Some(status) = filter.status {
        q.push("and s.status = ")
            .push_bind(status.as_str())
            .push(" ");
    }
    if let Some(after) = page.cursor() {
        q.push("and s.id > ").push_bind(*after);
    }
    q.push(" order by s.id limit ").push_bind(page.fetch());
    let rows = q.build_query_as::<SessionSummary>().fetch_all(pool).await?;
    Ok(Paged::from_rows(rows, page, |row| row.id))
}
