//! Whether numbers are on WhatsApp, as the tenant's sessions found out:
//! a cache the API answers number checks from (`number_checks`).

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgPool;
use wablast_domain::types::{SessionId, TenantId};

/// How long a check is answered from: a number is asked about again
/// after this, not before.
pub const KEPT: TimeDelta = TimeDelta::days(7);

/// A number as checked.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct NumberCheck {
    /// E.164.
    pub phone: String,
    /// Whether it is on WhatsApp.
    pub on_whatsapp: bool,
    /// The chat id WhatsApp knows it by, when it is.
    pub chat_id: Option<String>,
    /// When it was asked.
    pub checked_at: DateTime<Utc>,
}

/// The tenant's checks of `phones` made at or after `since`.
pub async fn fresh(
    pool: &PgPool,
    tenant: TenantId,
    phones: &[String],
    since: DateTime<Utc>,
) -> Result<Vec<NumberCheck>, sqlx::Error> {
    sqlx::query_as(
        "select phone, on_whatsapp, chat_id, checked_at from number_checks \
         where tenant_id = $1 and phone = any($2) and checked_at >= $3",
    )
    .bind(*tenant.as_uuid())
    .bind(phones)
    .bind(since)
    .fetch_all(pool)
    .await
}

/// Records what `session` found (a later check replaces an earlier one).
pub async fn record(
    pool: &PgPool,
    tenant: TenantId,
    session: SessionId,
    checks: &[NumberCheck],
) -> Result<(), sqlx::Error> {
    if checks.is_empty() {
        return Ok(());
    }
    let phones: Vec<&str> = checks.iter().map(|c| c.phone.as_str()).collect();
    let on: Vec<bool> = checks.iter().map(|c| c.on_whatsapp).collect();
    let chats: Vec<Option<&str>> = checks.iter().map(|c| c.chat_id.as_deref()).collect();
    let at: Vec<DateTime<Utc>> = checks.iter().map(|c| c.checked_at).collect();
    sqlx::query(
        "insert into number_checks (tenant_id, phone, on_whatsapp, chat_id, session_id, checked_at) \
         select $1, p, o, c, $2, a \
         from unnest($3::text[], $4::bool[], $5::text[], $6::timestamptz[]) as t(p, o, c, a) \
         on conflict (tenant_id, phone) do update set \
             on_whatsapp = excluded.on_whatsapp, chat_id = excluded.chat_id, \
             session_id = excluded.session_id, checked_at = excluded.checked_at \
         where number_checks.checked_at <= excluded.checked_at",
    )
    .bind(*tenant.as_uuid())
    .bind(*session.as_uuid())
    .bind(&phones)
    .bind(&on)
    .bind(&chats)
    .bind(&at)
    .execute(pool)
    .await?;
    Ok(())
}
