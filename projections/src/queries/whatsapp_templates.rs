//! The WhatsApp templates of Cloud API sessions, as Meta last listed them
//! (`whatsapp_templates`): replaced whole by each sync, read by the
//! template list and by the checks of template sends.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use wablast_domain::types::whatsapp_template::{SyncedTemplate, TemplateCategory, TemplateStatus};
use wablast_domain::types::{SessionId, TenantId};

/// A stored template row.
#[derive(sqlx::FromRow)]
struct Row {
    name: String,
    language: String,
    status: String,
    category: String,
    body: Option<String>,
    body_parameters: i32,
    header_format: Option<String>,
    header_text: Option<String>,
    header_parameters: i32,
    synced_at: DateTime<Utc>,
}

impl Row {
    fn into_template(self) -> (SyncedTemplate, DateTime<Utc>) {
        (
            SyncedTemplate {
                name: self.name,
                language: self.language,
                status: TemplateStatus::of_meta(&self.status),
                category: TemplateCategory::of_meta(&self.category),
                body: self.body,
                body_parameters: u32::try_from(self.body_parameters).unwrap_or(0),
                header_format: self.header_format,
                header_text: self.header_text,
                header_parameters: u32::try_from(self.header_parameters).unwrap_or(0),
            },
            self.synced_at,
        )
    }
}

/// The columns of a [`Row`].
macro_rules! select {
    ($rest:literal) => {
        concat!(
            "select name, language, status, category, body, body_parameters, \
             header_format, header_text, header_parameters, synced_at \
             from whatsapp_templates ",
            $rest
        )
    };
}

/// Replaces the session's templates with `templates`, synced at `at`, in
/// one transaction (a template Meta no longer lists is gone).
pub async fn replace(
    pool: &PgPool,
    tenant: TenantId,
    session: SessionId,
    templates: &[SyncedTemplate],
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("delete from whatsapp_templates where tenant_id = $1 and session_id = $2")
        .bind(tenant.as_uuid())
        .bind(session.as_uuid())
        .execute(&mut *tx)
        .await?;
    for t in templates {
        sqlx::query(
            "insert into whatsapp_templates \
                 (tenant_id, session_id, name, language, status, category, body, \
                  body_parameters, header_format, header_text, header_parameters, synced_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             on conflict (tenant_id, session_id, name, language) do nothing",
        )
        .bind(tenant.as_uuid())
        .bind(session.as_uuid())
        .bind(&t.name)
        .bind(&t.language)
        .bind(t.status.as_str())
        .bind(t.category.as_str())
        .bind(&t.body)
        .bind(i32::try_from(t.body_parameters).unwrap_or(i32::MAX))
        .bind(&t.header_format)
        .bind(&t.header_text)
        .bind(i32::try_from(t.header_parameters).unwrap_or(i32::MAX))
        .bind(at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// The session's templates with when they were synced, by name and
/// language.
pub async fn list(
    pool: &PgPool,
    tenant: TenantId,
    session: SessionId,
) -> Result<Vec<(SyncedTemplate, DateTime<Utc>)>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(select!(
        "where tenant_id = $1 and session_id = $2 order by name, language"
    ))
    .bind(tenant.as_uuid())
    .bind(session.as_uuid())
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Row::into_template).collect())
}

/// The session's template of `name` in `language`, if synced.
pub async fn find(
    pool: &PgPool,
    tenant: TenantId,
    session: SessionId,
    name: &str,
    language: &str,
) -> Result<Option<SyncedTemplate>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(select!(
        "where tenant_id = $1 and session_id = $2 and name = $3 and language = $4"
    ))
    .bind(tenant.as_uuid())
    .bind(session.as_uuid())
    .bind(name)
    .bind(language)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| r.into_template().0))
}
