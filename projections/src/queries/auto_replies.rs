//! The tenant's auto-reply rules (`auto_replies`, written by the API), as
//! the auto-responder reads them.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;
use wablast_domain::types::{SessionId, TenantId};

/// The outcome of an answered message (the others are the reasons of
/// `wablast_domain::auto_reply::Silence`).
pub const ANSWERED: &str = "answered";

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
    /// The most messages it answers an hour (`None`: no limit).
    pub max_per_hour: Option<i32>,
    /// Its own weekly windows, in the tenant's time zone (`None`: the
    /// tenant's active hours alone).
    pub active_windows: Option<sqlx::types::Json<Vec<RuleWindow>>>,
}

/// One of a rule's weekly windows, as the API checked and stored it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct RuleWindow {
    /// `mon` ... `sun`.
    pub days: Vec<String>,
    /// `HH:MM`.
    pub start: String,
    /// `HH:MM`.
    pub end: String,
}

/// The tenant's enabled rules that answer on `session`, in the order they
/// are tried: the highest priority first, then the oldest.
pub async fn answering(
    pool: &PgPool,
    tenant: TenantId,
    session: SessionId,
) -> Result<Vec<AutoReplyRule>, sqlx::Error> {
    sqlx::query_as(
        "select id, trigger, pattern, response, media_id, cooldown_seconds, updated_at, \
                max_per_hour, active_windows \
         from auto_replies \
         where tenant_id = $1 and enabled \
           and (session_ids is null or $2 = any(session_ids)) \
         order by priority desc, created_at, id",
    )
    .bind(*tenant.as_uuid())
    .bind(*session.as_uuid())
    .fetch_all(pool)
    .await
}

/// What one rule decided: how many inbound messages per outcome
/// (`answered`, or why not), and when it last answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleStats {
    /// Messages per outcome.
    pub outcomes: Vec<(String, i64)>,
    /// When it last answered.
    pub last_answered_at: Option<DateTime<Utc>>,
}

/// The decisions of the tenant's rule `rule`.
pub async fn stats(pool: &PgPool, tenant: TenantId, rule: Uuid) -> Result<RuleStats, sqlx::Error> {
    let rows: Vec<(String, i64, Option<DateTime<Utc>>)> = sqlx::query_as(
        "select outcome, count(*), max(decided_at) filter (where outcome = 'answered') \
         from auto_reply_decisions where tenant_id = $1 and rule_id = $2 \
         group by outcome order by outcome",
    )
    .bind(*tenant.as_uuid())
    .bind(rule)
    .fetch_all(pool)
    .await?;
    Ok(RuleStats {
        last_answered_at: rows.iter().filter_map(|(_, _, at)| *at).max(),
        outcomes: rows
            .into_iter()
            .map(|(outcome, n, _)| (outcome, n))
            .collect(),
    })
}
