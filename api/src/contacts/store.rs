//! The SQL of contact lists (`migrations/sql/0004_contacts.sql`). Every
//! read is scoped to a tenant and ignores deleted lists: another tenant's
//! list, or a deleted one, is `None` (a 404).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;
use wablast_domain::types::{ContactListId, TenantId};
use wablast_projections::queries::{Cursor, Page, Paged};

use super::Contact;
use super::parse::Format;

/// Where a list's contacts came from (its `source_format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = ContactListSource)]
pub enum Source {
    /// An imported CSV file.
    Csv,
    /// An imported XLSX workbook.
    Xlsx,
    /// JSON rows, without a file (`POST /api/v1/contact-lists`).
    Json,
    /// A WhatsApp group's participants
    /// (`POST /api/v1/contact-lists/group-import`).
    Group,
}

impl Source {
    /// As stored: `csv`, `xlsx` or `json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Xlsx => "xlsx",
            Self::Json => "json",
            Self::Group => "group",
        }
    }
}

impl From<Format> for Source {
    fn from(format: Format) -> Self {
        match format {
            Format::Csv => Self::Csv,
            Format::Xlsx => Self::Xlsx,
        }
    }
}

impl TryFrom<String> for Source {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        [Self::Csv, Self::Xlsx, Self::Json, Self::Group]
            .into_iter()
            .find(|source| source.as_str() == text)
            .ok_or_else(|| format!("unknown list source {text:?}"))
    }
}

/// A list about to be created.
#[derive(Debug)]
pub struct NewList<'a> {
    /// Its id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant: TenantId,
    /// Its name.
    pub name: &'a str,
    /// Its template variables.
    pub columns: &'a [String],
    /// Where its contacts come from.
    pub source: Source,
    /// The uploaded file's name.
    pub filename: Option<&'a str>,
    /// The group its contacts were read from.
    pub group: Option<GroupOrigin<'a>>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// The WhatsApp group a list's contacts were read from, and the session
/// that read it.
#[derive(Clone, Copy, Debug)]
pub struct GroupOrigin<'a> {
    /// The group's id (`…@g.us`).
    pub group_id: &'a str,
    /// The session.
    pub session_id: Uuid,
}

/// Inserts a list with zero counts ([`count_rows`] adds its rows' once
/// they are read), inside the transaction that stores its contacts.
pub async fn insert_list(db: &mut PgConnection, list: &NewList<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into contact_lists
             (id, tenant_id, name, columns, total_rows, accepted, rejected,
              source_filename, source_format, created_at, source_group_id, source_session_id)
         values ($1, $2, $3, $4, 0, 0, 0, $5, $6, $7, $8, $9)",
    )
    .bind(list.id)
    .bind(list.tenant.as_uuid())
    .bind(list.name)
    .bind(list.columns)
    .bind(list.filename)
    .bind(list.source.as_str())
    .bind(list.created_at)
    .bind(list.group.map(|g| g.group_id))
    .bind(list.group.map(|g| g.session_id))
    .execute(db)
    .await?;
    Ok(())
}

/// Inserts a batch of contacts in one statement.
pub async fn insert_contacts(
    db: &mut PgConnection,
    list_id: Uuid,
    tenant: TenantId,
    contacts: &[Contact],
) -> Result<(), sqlx::Error> {
    let rows: Vec<i32> = contacts.iter().map(|c| c.row).collect();
    let phones: Vec<&str> = contacts.iter().map(|c| c.phone.as_str()).collect();
    let names: Vec<Option<&str>> = contacts.iter().map(|c| c.name.as_deref()).collect();
    let variables: Vec<&str> = contacts.iter().map(|c| c.variables.as_str()).collect();
    sqlx::query(
        "insert into contacts (list_id, row_number, tenant_id, phone, name, variables)
         select $1, r, $2, p, n, v::jsonb
         from unnest($3::int4[], $4::text[], $5::text[], $6::text[]) as t(r, p, n, v)",
    )
    .bind(list_id)
    .bind(tenant.as_uuid())
    .bind(&rows)
    .bind(&phones)
    .bind(&names)
    .bind(&variables)
    .execute(db)
    .await?;
    Ok(())
}

fn count(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A list as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ListRow {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its template variables.
    pub columns: Vec<String>,
    /// Data rows in the file.
    pub total_rows: i32,
    /// Contacts stored.
    pub accepted: i32,
    /// Rows refused.
    pub rejected: i32,
    /// The uploaded file's name.
    pub source_filename: Option<String>,
    /// Where its contacts came from.
    #[sqlx(try_from = "String")]
    pub source_format: Source,
    /// When it was imported.
    pub created_at: DateTime<Utc>,
}

const LIST_COLUMNS: &str =
    "id, name, columns, total_rows, accepted, rejected, source_filename, source_format, created_at";

/// The tenant's lists, oldest first.
pub async fn lists(
    pool: &PgPool,
    tenant: TenantId,
    page: &Page<Uuid>,
) -> Result<Paged<ListRow>, sqlx::Error> {
    let rows: Vec<ListRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {LIST_COLUMNS} from contact_lists
         where tenant_id = $1 and deleted_at is null and ($2::uuid is null or id > $2)
         order by id limit $3"
    )))
    .bind(tenant.as_uuid())
    .bind(page.cursor().copied())
    .bind(page.fetch())
    .fetch_all(pool)
    .await?;
    Ok(Paged::from_rows(rows, page, |row| row.id))
}

/// One of the tenant's lists.
pub async fn list(
    pool: &PgPool,
    tenant: TenantId,
    id: Uuid,
) -> Result<Option<ListRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {LIST_COLUMNS} from contact_lists
         where tenant_id = $1 and id = $2 and deleted_at is null"
    )))
    .bind(tenant.as_uuid())
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// The sort key of a list's contacts: the data row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowCursor(pub i32);

impl Cursor for RowCursor {
    const TAG: char = 'r';

    fn payload(&self) -> String {
        format!("{:08x}", self.0)
    }

    fn from_payload(payload: &str) -> Option<Self> {
        if payload.len() != 8 || !payload.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(payload, 16)
            .ok()
            .and_then(|n| i32::try_from(n).ok())
            .map(Self)
    }
}

/// A contact as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ContactRow {
    /// Its data row in the file.
    pub row_number: i32,
    /// E.164.
    pub phone: String,
    /// Its name.
    pub name: Option<String>,
    /// Its variables.
    pub variables: serde_json::Value,
    /// Whether the tenant's latest check found its number on WhatsApp;
    /// `None` when never checked.
    pub on_whatsapp: Option<bool>,
    /// The chat id WhatsApp gave for it.
    pub whatsapp_chat_id: Option<String>,
    /// When it was checked.
    pub whatsapp_checked_at: Option<DateTime<Utc>>,
}

/// A page of a list's contacts, by row. The list must be the tenant's
/// (checked by the caller with [`list`]); the tenant filter is repeated
/// here anyway.
pub async fn contacts(
    pool: &PgPool,
    tenant: TenantId,
    list_id: Uuid,
    page: &Page<RowCursor>,
) -> Result<Paged<ContactRow>, sqlx::Error> {
    let rows: Vec<ContactRow> = sqlx::query_as(
        "select c.row_number, c.phone, c.name, c.variables, n.on_whatsapp,
                n.chat_id as whatsapp_chat_id, n.checked_at as whatsapp_checked_at
         from contacts c
         left join number_checks n on n.tenant_id = c.tenant_id and n.phone = c.phone
         where c.list_id = $1 and c.tenant_id = $2 and c.row_number > $3
         order by c.row_number limit $4",
    )
    .bind(list_id)
    .bind(tenant.as_uuid())
    .bind(page.cursor().map_or(0, |c| c.0))
    .bind(page.fetch())
    .fetch_all(pool)
    .await?;
    Ok(Paged::from_rows(rows, page, |row| {
        RowCursor(row.row_number)
    }))
}

/// Deletes a list (soft: campaigns sent to it keep their recipients).
/// `false` when the tenant has no such list.
pub async fn delete(pool: &PgPool, tenant: TenantId, id: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "update contact_lists set deleted_at = now()
         where tenant_id = $1 and id = $2 and deleted_at is null",
    )
    .bind(tenant.as_uuid())
    .bind(id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A list locked for a change of its contacts (`FOR UPDATE`, until the
/// transaction ends): changes of one list run one at a time.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct LockedList {
    /// Its name.
    pub name: String,
    /// Its template variables.
    pub columns: Vec<String>,
    /// Rows it was given so far: its contacts' rows are at most this.
    pub total_rows: i32,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Locks the tenant's live list `id`; `None` when it is not the tenant's
/// or was deleted.
pub async fn lock_list(
    db: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
) -> Result<Option<LockedList>, sqlx::Error> {
    sqlx::query_as(
        "select name, columns, total_rows, created_at from contact_lists
         where tenant_id = $1 and id = $2 and deleted_at is null
         for update",
    )
    .bind(tenant.as_uuid())
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Which of `phones` (E.164) the list has, with their contacts' rows.
pub async fn rows_of_phones(
    db: &mut PgConnection,
    list_id: Uuid,
    phones: &[String],
) -> Result<Vec<(String, i32)>, sqlx::Error> {
    sqlx::query_as(
        "select phone, row_number from contacts
         where list_id = $1 and phone = any($2::text[])",
    )
    .bind(list_id)
    .bind(phones)
    .fetch_all(db)
    .await
}

/// Adds what rows gave to a list's counts (a new list's, or a locked
/// one's) and sets its columns.
pub async fn count_rows(
    db: &mut PgConnection,
    id: Uuid,
    columns: &[String],
    total_rows: u32,
    accepted: u32,
    rejected: u32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update contact_lists
         set columns = $2, total_rows = total_rows + $3, accepted = accepted + $4,
             rejected = rejected + $5
         where id = $1",
    )
    .bind(id)
    .bind(columns)
    .bind(count(total_rows))
    .bind(count(accepted))
    .bind(count(rejected))
    .execute(db)
    .await?;
    Ok(())
}

/// Deletes the contact of `row` from a locked list; `false` when the list
/// has none there.
pub async fn delete_contact(
    db: &mut PgConnection,
    list_id: Uuid,
    row: i32,
) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query("delete from contacts where list_id = $1 and row_number = $2")
        .bind(list_id)
        .bind(row)
        .execute(&mut *db)
        .await?;
    if deleted.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("update contact_lists set accepted = accepted - 1 where id = $1")
        .bind(list_id)
        .execute(db)
        .await?;
    Ok(true)
}

/// What campaign creation needs to know about a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListSummary {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// The template variables its contacts have (besides `name` and
    /// `phone`).
    pub columns: Vec<String>,
    /// How many contacts it has (all consented and deduplicated).
    pub accepted: i64,
}

/// The tenant's list `list_id` for a campaign; `None` when it is not the
/// tenant's or was deleted.
pub async fn list_for_campaign(
    pool: &PgPool,
    tenant: TenantId,
    list_id: ContactListId,
) -> Result<Option<ListSummary>, sqlx::Error> {
    let row: Option<(Uuid, String, Vec<String>, i32)> = sqlx::query_as(
        "select id, name, columns, accepted from contact_lists
         where tenant_id = $1 and id = $2 and deleted_at is null",
    )
    .bind(tenant.as_uuid())
    .bind(list_id.as_uuid())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(id, name, columns, accepted)| ListSummary {
        id,
        name,
        columns,
        accepted: i64::from(accepted),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_cursors_round_trip_and_refuse_junk() {
        for n in [0, 1, 4_999, i32::MAX] {
            let text = RowCursor(n).encode();
            assert_eq!(RowCursor::decode(&text), Ok(RowCursor(n)));
        }
        for junk in ["r", "r123", "rzzzzzzzz", "r80000000", "x00000001"] {
            assert!(RowCursor::decode(junk).is_err(), "{junk:?}");
        }
        assert!(RowCursor::decode(&Uuid::now_v7().encode()).is_err());
    }
}
