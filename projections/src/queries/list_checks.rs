//! Checks of contact lists' numbers on WhatsApp: their progress, and the
//! contacts a running one still has to ask about.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;
use wablast_domain::list_check::{CheckFailure, ListCheckStatus};
use wablast_domain::types::{ContactListId, ListCheckId, TenantId};

/// A check as projected.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ListCheckRow {
    /// Its id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// The list it checks.
    pub list_id: Uuid,
    /// The session that asks.
    pub session_id: Uuid,
    /// `running`, `completed`, `failed` or `cancelled`.
    pub status: String,
    /// How many contacts it covers.
    pub contacts: i64,
    /// The last row it covers.
    pub last_row: i32,
    /// The first row not checked yet.
    pub next_row: i32,
    /// Contacts checked so far.
    pub checked: i64,
    /// Of them, on WhatsApp.
    pub on_whatsapp: i64,
    /// Of them, not on WhatsApp.
    pub not_on_whatsapp: i64,
    /// Why it failed.
    pub failure: Option<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
}

impl ListCheckRow {
    /// Its status.
    pub fn status(&self) -> ListCheckStatus {
        ListCheckStatus::parse(&self.status).unwrap_or(ListCheckStatus::Running)
    }

    /// Why it failed, when it did.
    pub fn failure(&self) -> Option<CheckFailure> {
        CheckFailure::parse(self.failure.as_deref()?)
    }
}

const COLUMNS: &str = "id, tenant_id, list_id, session_id, status, contacts, last_row, next_row, \
     checked, on_whatsapp, not_on_whatsapp, failure, started_at, updated_at, ended_at";

/// The tenant's check `id`.
pub async fn get(
    pool: &PgPool,
    tenant: TenantId,
    id: ListCheckId,
) -> Result<Option<ListCheckRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from list_checks where tenant_id = $1 and id = $2"
    )))
    .bind(tenant.as_uuid())
    .bind(id.as_uuid())
    .fetch_optional(pool)
    .await
}

/// The latest check of the tenant's list, running or ended.
pub async fn latest(
    pool: &PgPool,
    tenant: TenantId,
    list: ContactListId,
) -> Result<Option<ListCheckRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from list_checks where tenant_id = $1 and list_id = $2 \
         order by started_at desc, id limit 1"
    )))
    .bind(tenant.as_uuid())
    .bind(list.as_uuid())
    .fetch_optional(pool)
    .await
}

/// Every running check, of every tenant, oldest first: what the checker
/// works on.
pub async fn running(pool: &PgPool) -> Result<Vec<ListCheckRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from list_checks where status = 'running' order by started_at, id"
    )))
    .fetch_all(pool)
    .await
}

/// How many contacts the tenant's live list holds, and its last row; `None`
/// when it has no such list.
pub async fn extent(
    pool: &PgPool,
    tenant: TenantId,
    list: ContactListId,
) -> Result<Option<(i64, i32)>, sqlx::Error> {
    sqlx::query_as(
        "select (select count(*) from contacts c where c.list_id = l.id),
                (select coalesce(max(row_number), 0) from contacts c where c.list_id = l.id)
         from contact_lists l
         where l.tenant_id = $1 and l.id = $2 and l.deleted_at is null",
    )
    .bind(tenant.as_uuid())
    .bind(list.as_uuid())
    .fetch_optional(pool)
    .await
}

/// Up to `limit` contacts of the tenant's list from row `from` to row
/// `last` (both included), in row order: `(row, E.164 phone)`.
pub async fn contacts_from(
    pool: &PgPool,
    tenant: TenantId,
    list: ContactListId,
    from: i32,
    last: i32,
    limit: i64,
) -> Result<Vec<(i32, String)>, sqlx::Error> {
    sqlx::query_as(
        "select row_number, phone from contacts
         where list_id = $1 and tenant_id = $2 and row_number between $3 and $4
         order by row_number limit $5",
    )
    .bind(list.as_uuid())
    .bind(tenant.as_uuid())
    .bind(from)
    .bind(last)
    .bind(limit)
    .fetch_all(pool)
    .await
}
