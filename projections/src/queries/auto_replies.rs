//! The tenant's auto-reply rules (`auto_replies`, written by the API), as
//! the auto-responder reads them.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;
use wablast_domain::types::{SessionId, TenantId};

/// A rule, as it answers.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct AutoReplyRule {
    /// Its id.
    pub id: Uuid,
    /// `keyword`, `contains` or `regex`.
    pub trigger: String,
    /// What a message is matched against.
    pub pattern: String,
    /// The answer.
    pub response: String,
    /// An uploaded medium sent with the answer.
    pub media_id: Option<Uuid>,
    /// Seconds before a contact gets this answer again.
    pub cooldown_seconds: i32,
    /// When it last changed (a new version of its pattern).
    pub updated_at: DateTime<Utc>,
}

/// The tenant's enabled rules that answer on `session`, oldest first (the
/// order they are tried in).
pub async fn answering(
    pool: &PgPool,
    tenant: TenantId,
    session: SessionId,
) -> Result<Vec<AutoReplyRule>, sqlx::Error> {
    sqlx::query_as(
        "select id, trigger, pattern, response, media_id, cooldown_seconds, updated_at \
         from auto_replies \
         where tenant_id = $1 and enabled \
           and (session_ids is null or $2 = any(session_ids)) \
         order by created_at, id",
    )
    .bind(*tenant.as_uuid())
    .bind(*session.as_uuid())
    .fetch_all(pool)
    .await
}
