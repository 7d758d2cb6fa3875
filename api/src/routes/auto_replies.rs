//! Auto-replies: a tenant's rules for answering inbound messages, and what
//! they decided. The engines' auto-responder (`workflows::auto_replies`)
//! answers with them.
//!
//! Triggers: `keyword`, the whole message is the pattern (trimmed, ignoring
//! case and accents); `contains`, the message contains the pattern
//! (ignoring case and accents);
//! `regex`, the pattern (Rust `regex` syntax; `(?i)` to ignore case)
//! matches somewhere in the message.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wablast_projections::queries::auto_replies::ANSWERED;
use wablast_projections::queries::{self, Paged};
use wablast_workflows::auto_replies;

use wablast_domain::types::ActiveHours;

use crate::consistency::After;
use crate::error::ErrorBody;
use crate::extract::{Json, Path, Query};
use crate::list::{List, ListParams};
use crate::routes::schedule::{WindowBody, parse_window};
use crate::{ApiError, AppState, Caller};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_auto_reply, list_auto_replies))
        .routes(routes!(
            get_auto_reply,
            update_auto_reply,
            delete_auto_reply
        ))
        .routes(routes!(auto_reply_stats))
}

/// The projections the stats read.
const READS: &[&str] = &["auto_replies"];

/// The longest name.
const MAX_NAME: usize = 100;
/// The longest pattern.
const MAX_PATTERN: usize = 500;
/// The longest answer (WhatsApp's limit for a text message).
const MAX_RESPONSE: usize = 4096;
/// The most sessions a rule names.
const MAX_SESSIONS: usize = 100;
/// The longest cooldown: 7 days.
const MAX_COOLDOWN_SECONDS: i64 = 7 * 24 * 3600;
/// The highest priority (and the negated lowest).
const MAX_PRIORITY: i32 = 1000;
/// The highest hourly limit of a rule.
const MAX_PER_HOUR: i32 = 10_000;
/// The cooldown when none is given: an hour.
const DEFAULT_COOLDOWN_SECONDS: i64 = 3600;

/// What an inbound message is matched with (the schema of the `trigger`
/// fields).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(
    dead_code,
    reason = "the OpenAPI schema of the `trigger` fields, never built"
)]
pub enum Trigger {
    /// The whole message is the pattern (trimmed, ignoring case).
    Keyword,
    /// The message contains the pattern (ignoring case).
    Contains,
    /// The pattern, a regex (Rust `regex` syntax), matches in the message.
    Regex,
}

/// A new rule.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAutoReply {
    /// What it is for ("opening hours").
    #[schema(example = "Jam buka")]
    pub name: String,
    /// `keyword`, `contains` or `regex`.
    #[schema(value_type = Trigger)]
    pub trigger: String,
    /// What an inbound message is matched against (at most 500
    /// characters; a valid regex for `regex`).
    #[schema(example = "jam buka")]
    pub pattern: String,
    /// The answer (at most 4096 characters).
    #[schema(example = "Kami buka setiap hari pukul 09.00–18.00 WIB.")]
    pub response: String,
    /// An uploaded medium sent with the answer.
    pub media_id: Option<Uuid>,
    /// The sessions it answers on (the tenant's); every session when left
    /// out or `null`.
    pub session_ids: Option<Vec<Uuid>>,
    /// A contact gets this answer at most once per this many seconds (0 to
    /// 604800; default 3600).
    pub cooldown_seconds: Option<i64>,
    /// Whether it answers (default true).
    pub enabled: Option<bool>,
    /// Which rule answers first when several match: higher first, then the
    /// oldest (-1000 to 1000; default 0).
    pub priority: Option<i32>,
    /// The most messages it answers an hour, whoever asks (1 to 10000);
    /// no limit when left out.
    pub max_per_hour: Option<i32>,
    /// Weekly windows (in the tenant's time zone) it answers in, on top of
    /// the tenant's active hours: at most 100; left out, null or empty: the
    /// tenant's hours alone.
    pub active_windows: Option<Vec<WindowBody>>,
}

/// Changes to a rule: any subset of its fields. `media_id: null` removes
/// the medium, `session_ids: null` makes it answer on every session.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoReplyChanges {
    /// New name.
    pub name: Option<String>,
    /// New trigger: `keyword`, `contains` or `regex`.
    #[schema(value_type = Option<Trigger>)]
    pub trigger: Option<String>,
    /// New pattern.
    pub pattern: Option<String>,
    /// New answer.
    pub response: Option<String>,
    /// New medium; `null` for none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>, nullable)]
    pub media_id: Option<Option<Uuid>>,
    /// New sessions; `null` for every session.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<Uuid>>, nullable)]
    pub session_ids: Option<Option<Vec<Uuid>>>,
    /// New cooldown (0 to 604800 seconds).
    pub cooldown_seconds: Option<i64>,
    /// Whether it answers.
    pub enabled: Option<bool>,
    /// New priority (-1000 to 1000).
    pub priority: Option<i32>,
    /// New hourly limit (1 to 10000); `null` for none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>, nullable)]
    pub max_per_hour: Option<Option<i32>>,
    /// New windows of its own; `null` (or empty) for the tenant's hours
    /// alone.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<WindowBody>>, nullable)]
    pub active_windows: Option<Option<Vec<WindowBody>>>,
}

/// A field that is present, maybe `null`: `Some(None)`; absent is `None`
/// (through `#[serde(default)]`).
fn present<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A rule.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct AutoReply {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// `keyword`, `contains` or `regex`.
    #[schema(value_type = Trigger)]
    pub trigger: String,
    /// What inbound messages are matched against.
    pub pattern: String,
    /// The answer.
    pub response: String,
    /// The medium sent with the answer, if any.
    pub media_id: Option<Uuid>,
    /// The sessions it answers on; `null`: every session.
    pub session_ids: Option<Vec<Uuid>>,
    /// Seconds before a contact gets this answer again.
    pub cooldown_seconds: i32,
    /// Whether it answers.
    pub enabled: bool,
    /// Higher answers first (then the oldest).
    pub priority: i32,
    /// The most messages it answers an hour; `null`: no limit.
    pub max_per_hour: Option<i32>,
    /// Its own weekly windows (the tenant's time zone), on top of the
    /// tenant's active hours; `null`: the tenant's hours alone.
    #[schema(value_type = Option<Vec<WindowBody>>)]
    pub active_windows: Option<sqlx::types::Json<Vec<WindowBody>>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// The columns of an [`AutoReply`], as a literal for `concat!`.
macro_rules! columns {
    () => {
        "id, name, trigger, pattern, response, media_id, session_ids, \
         cooldown_seconds, enabled, priority, max_per_hour, active_windows, created_at, updated_at"
    };
}

/// What a rule holds once checked.
struct Rule {
    name: String,
    trigger: String,
    pattern: String,
    response: String,
    media_id: Option<Uuid>,
    session_ids: Option<Vec<Uuid>>,
    cooldown_seconds: i32,
    enabled: bool,
    priority: i32,
    max_per_hour: Option<i32>,
    active_windows: Option<Vec<WindowBody>>,
}

/// A rule as asked for, before it is checked.
struct Draft {
    name: String,
    trigger: String,
    pattern: String,
    response: String,
    media_id: Option<Uuid>,
    session_ids: Option<Vec<Uuid>>,
    cooldown_seconds: i64,
    enabled: bool,
    priority: i32,
    max_per_hour: Option<i32>,
    active_windows: Option<Vec<WindowBody>>,
}

impl Draft {
    /// Checks every field; trims the name and the pattern of a keyword or
    /// contains rule, and deduplicates the sessions.
    fn check(self) -> Result<Rule, ApiError> {
        let Self {
            name,
            trigger,
            pattern,
            response,
            media_id,
            session_ids,
            cooldown_seconds,
            enabled,
            priority,
            max_per_hour,
            active_windows,
        } = self;
        let name = text("name", &name, MAX_NAME)?.to_owned();
        let trigger = trigger.trim().to_owned();
        let pattern = match auto_replies::Trigger::parse(&trigger) {
            Some(auto_replies::Trigger::Keyword | auto_replies::Trigger::Contains) => {
                text("pattern", &pattern, MAX_PATTERN)?.to_owned()
            }
            Some(auto_replies::Trigger::Regex) => {
                text("pattern", &pattern, MAX_PATTERN)?;
                auto_replies::compile(&pattern).map_err(|err| {
                    ApiError::invalid_field(
                        "pattern",
                        format!("pattern is not a valid regex: {err}"),
                    )
                })?;
                pattern
            }
            None => {
                return Err(ApiError::invalid_field(
                    "trigger",
                    format!("trigger is keyword, contains or regex, not {trigger:?}"),
                ));
            }
        };
        if response.trim().is_empty() {
            return Err(ApiError::invalid_field(
                "response",
                "response must not be empty",
            ));
        }
        if response.chars().count() > MAX_RESPONSE {
            return Err(ApiError::invalid_field(
                "response",
                format!("response may have at most {MAX_RESPONSE} characters"),
            ));
        }
        let cooldown_seconds = i32::try_from(cooldown_seconds)
            .ok()
            .filter(|s| (0..=MAX_COOLDOWN_SECONDS).contains(&i64::from(*s)))
            .ok_or_else(|| {
                ApiError::invalid_field(
                    "cooldown_seconds",
                    format!("cooldown_seconds is between 0 and {MAX_COOLDOWN_SECONDS} (7 days)"),
                )
            })?;
        let session_ids = match session_ids {
            None => None,
            Some(ids) if ids.is_empty() => {
                return Err(ApiError::invalid_field(
                    "session_ids",
                    "session_ids names at least one session; leave it out (or null) for every session",
                ));
            }
            Some(ids) if ids.len() > MAX_SESSIONS => {
                return Err(ApiError::invalid_field(
                    "session_ids",
                    format!("session_ids names at most {MAX_SESSIONS} sessions"),
                ));
            }
            Some(ids) => {
                let mut unique: Vec<Uuid> = Vec::with_capacity(ids.len());
                for id in ids {
                    if !unique.contains(&id) {
                        unique.push(id);
                    }
                }
                Some(unique)
            }
        };
        if !(-MAX_PRIORITY..=MAX_PRIORITY).contains(&priority) {
            return Err(ApiError::invalid_field(
                "priority",
                format!("priority is between -{MAX_PRIORITY} and {MAX_PRIORITY}"),
            ));
        }
        if max_per_hour.is_some_and(|n| !(1..=MAX_PER_HOUR).contains(&n)) {
            return Err(ApiError::invalid_field(
                "max_per_hour",
                format!("max_per_hour is between 1 and {MAX_PER_HOUR}, or null for no limit"),
            ));
        }
        let active_windows = match active_windows {
            None => None,
            Some(windows) if windows.is_empty() => None,
            Some(windows) if windows.len() > ActiveHours::MAX_WINDOWS => {
                return Err(ApiError::invalid_field(
                    "active_windows",
                    format!(
                        "active_windows names at most {} windows",
                        ActiveHours::MAX_WINDOWS
                    ),
                ));
            }
            Some(windows) => {
                for (i, window) in windows.iter().enumerate() {
                    parse_window("active_windows", i, window)?;
                }
                Some(windows)
            }
        };
        Ok(Rule {
            name,
            trigger,
            pattern,
            response,
            media_id,
            session_ids,
            cooldown_seconds,
            enabled,
            priority,
            max_per_hour,
            active_windows,
        })
    }
}

impl Rule {
    /// 400 naming the sessions that are not the tenant's.
    async fn check_sessions(&self, state: &AppState, caller: &Caller) -> Result<(), ApiError> {
        crate::media::require(&state.db, *caller.tenant_id.as_uuid(), self.media_id).await?;
        let Some(ids) = &self.session_ids else {
            return Ok(());
        };
        let found =
            wablast_projections::queries::sessions::existing_ids(&state.db, caller.tenant_id, ids)
                .await?;
        let missing: Vec<Uuid> = ids
            .iter()
            .filter(|id| !found.contains(id))
            .copied()
            .collect();
        if let Some(first) = missing.first() {
            return Err(
                ApiError::validation(format!("no session {first} in this tenant"))
                    .with_details(json!({"field": "session_ids", "missing": missing})),
            );
        }
        Ok(())
    }
}

/// A trimmed, non-empty text of at most `max` characters.
fn text<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ApiError::invalid_field(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if value.chars().count() > max {
        return Err(ApiError::invalid_field(
            field,
            format!("{field} may have at most {max} characters"),
        ));
    }
    Ok(value)
}

/// Creates a rule.
#[utoipa::path(post, path = "/api/v1/auto-replies", tag = "auto-replies",
    security(("bearer" = []), ("api_key" = [])),
    request_body = NewAutoReply,
    params(("X-Wablast-Position" = Option<String>, Header,
        description = "A position an earlier write answered: the sessions named are checked once projected up to it")),
    responses(
        (status = 201, description = "Created", body = AutoReply),
        (status = 400, description = "A bad field (`details.field` says which; `details.missing` lists sessions that are not the tenant's)", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "`not_found`: `media_id` is no medium of this tenant", body = ErrorBody),
        (status = 422, description = "`feature_not_in_plan`: the tenant's plan does not include auto-replies", body = ErrorBody),
    ))]
async fn create_auto_reply(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Json(body): Json<NewAutoReply>,
) -> Result<(StatusCode, axum::Json<AutoReply>), ApiError> {
    let rule = Draft {
        name: body.name,
        trigger: body.trigger,
        pattern: body.pattern,
        response: body.response,
        media_id: body.media_id,
        session_ids: body.session_ids,
        cooldown_seconds: body.cooldown_seconds.unwrap_or(DEFAULT_COOLDOWN_SECONDS),
        enabled: body.enabled.unwrap_or(true),
        priority: body.priority.unwrap_or(0),
        max_per_hour: body.max_per_hour,
        active_windows: body.active_windows,
    }
    .check()?;
    wablast_workflows::limits::TenantLimits::of(&state.commands.wallets, caller.tenant_id)
        .await?
        .require(wablast_domain::plan::PlanFeature::AutoReplies)?;
    after.wait(&state.db, &["sessions"]).await?;
    rule.check_sessions(&state, &caller).await?;
    let now = Utc::now();
    let created: AutoReply = sqlx::query_as(concat!(
        "insert into auto_replies (id, tenant_id, name, trigger, pattern, response, media_id,
                                   session_ids, cooldown_seconds, enabled, created_at, updated_at,
                                   priority, max_per_hour, active_windows)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13, $14)
         returning ",
        columns!(),
        ""
    ))
    .bind(Uuid::now_v7())
    .bind(caller.tenant_id.as_uuid())
    .bind(&rule.name)
    .bind(&rule.trigger)
    .bind(&rule.pattern)
    .bind(&rule.response)
    .bind(rule.media_id)
    .bind(&rule.session_ids)
    .bind(rule.cooldown_seconds)
    .bind(rule.enabled)
    .bind(now)
    .bind(rule.priority)
    .bind(rule.max_per_hour)
    .bind(rule.active_windows.as_ref().map(sqlx::types::Json))
    .fetch_one(&state.db)
    .await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// The tenant's rules, oldest first.
#[utoipa::path(get, path = "/api/v1/auto-replies", tag = "auto-replies",
    security(("bearer" = []), ("api_key" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "A page of rules", body = List<AutoReply>),
        (status = 400, description = "Bad limit or cursor", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn list_auto_replies(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<List<AutoReply>>, ApiError> {
    let page = params.page::<Uuid>()?;
    let rows: Vec<AutoReply> = sqlx::query_as(concat!(
        "select ",
        columns!(),
        " from auto_replies
         where tenant_id = $1 and ($2::uuid is null or id > $2)
         order by id limit $3"
    ))
    .bind(caller.tenant_id.as_uuid())
    .bind(page.cursor().copied())
    .bind(page.fetch())
    .fetch_all(&state.db)
    .await?;
    let paged = Paged::from_rows(rows, &page, |row| row.id);
    Ok(axum::Json(List::from_paged(paged, |row| row)))
}

async fn find(state: &AppState, caller: &Caller, id: Uuid) -> Result<AutoReply, ApiError> {
    sqlx::query_as(concat!(
        "select ",
        columns!(),
        " from auto_replies where tenant_id = $1 and id = $2"
    ))
    .bind(caller.tenant_id.as_uuid())
    .bind(id)
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| ApiError::not_found("auto-reply"))
}

/// One rule.
#[utoipa::path(get, path = "/api/v1/auto-replies/{id}", tag = "auto-replies",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The rule's id")),
    responses(
        (status = 200, description = "The rule", body = AutoReply),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such rule in this tenant", body = ErrorBody),
    ))]
async fn get_auto_reply(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<AutoReply>, ApiError> {
    find(&state, &caller, id).await.map(axum::Json)
}

/// What a rule decided.
#[derive(Debug, Serialize, ToSchema)]
pub struct AutoReplyStats {
    /// The rule.
    pub rule_id: Uuid,
    /// Inbound messages it answered.
    pub answered: i64,
    /// Inbound messages it matched and did not answer.
    pub unanswered: i64,
    /// Messages per outcome: `answered`, or why not (`cooldown`,
    /// `loop_guard`, `outside_hours`, `no_points`, `plan_expired`,
    /// `daily_limit_reached`, `session_not_ready`, `no_number`, `failed`).
    #[schema(example = json!({"answered": 12, "cooldown": 3}))]
    pub outcomes: BTreeMap<String, i64>,
    /// When it last answered.
    pub last_answered_at: Option<DateTime<Utc>>,
}

/// What a rule decided for the messages it matched: answers, and silences
/// with their reasons (every decision is an event of the contact's
/// auto-reply thread).
#[utoipa::path(get, path = "/api/v1/auto-replies/{id}/stats", tag = "auto-replies",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The rule's id")),
    responses(
        (status = 200, description = "Its decisions", body = AutoReplyStats),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such rule in this tenant", body = ErrorBody),
    ))]
async fn auto_reply_stats(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<AutoReplyStats>, ApiError> {
    after.wait(&state.db, READS).await?;
    let rule = find(&state, &caller, id).await?;
    let stats = queries::auto_replies::stats(&state.db, caller.tenant_id, rule.id).await?;
    let outcomes: BTreeMap<String, i64> = stats.outcomes.into_iter().collect();
    let answered = outcomes.get(ANSWERED).copied().unwrap_or(0);
    Ok(axum::Json(AutoReplyStats {
        rule_id: rule.id,
        answered,
        unanswered: outcomes.values().sum::<i64>() - answered,
        outcomes,
        last_answered_at: stats.last_answered_at,
    }))
}

/// Changes some of a rule's fields; the rule as a whole is checked again.
#[utoipa::path(patch, path = "/api/v1/auto-replies/{id}", tag = "auto-replies",
    security(("bearer" = []), ("api_key" = [])),
    request_body = AutoReplyChanges,
    params(
        ("id" = Uuid, Path, description = "The rule's id"),
        ("X-Wablast-Position" = Option<String>, Header,
            description = "A position an earlier write answered: the sessions named are checked once projected up to it"),
    ),
    responses(
        (status = 200, description = "The rule as changed", body = AutoReply),
        (status = 400, description = "A bad field (`details.field` says which)", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such rule in this tenant, or `media_id` is no medium of it", body = ErrorBody),
    ))]
async fn update_auto_reply(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Path(id): Path<Uuid>,
    Json(changes): Json<AutoReplyChanges>,
) -> Result<axum::Json<AutoReply>, ApiError> {
    let current = find(&state, &caller, id).await?;
    let rule = Draft {
        name: changes.name.unwrap_or(current.name),
        trigger: changes.trigger.unwrap_or(current.trigger),
        pattern: changes.pattern.unwrap_or(current.pattern),
        response: changes.response.unwrap_or(current.response),
        media_id: changes.media_id.unwrap_or(current.media_id),
        session_ids: changes.session_ids.unwrap_or(current.session_ids),
        cooldown_seconds: changes
            .cooldown_seconds
            .unwrap_or(i64::from(current.cooldown_seconds)),
        enabled: changes.enabled.unwrap_or(current.enabled),
        priority: changes.priority.unwrap_or(current.priority),
        max_per_hour: changes.max_per_hour.unwrap_or(current.max_per_hour),
        active_windows: changes
            .active_windows
            .unwrap_or_else(|| current.active_windows.map(|windows| windows.0)),
    }
    .check()?;
    wablast_workflows::limits::TenantLimits::of(&state.commands.wallets, caller.tenant_id)
        .await?
        .require(wablast_domain::plan::PlanFeature::AutoReplies)?;
    after.wait(&state.db, &["sessions"]).await?;
    rule.check_sessions(&state, &caller).await?;
    // Last writer wins, field by field as the whole rule: a rule is small
    // and edited by hand.
    sqlx::query_as(concat!(
        "update auto_replies
         set name = $3, trigger = $4, pattern = $5, response = $6, media_id = $7,
             session_ids = $8, cooldown_seconds = $9, enabled = $10, updated_at = $11,
             priority = $12, max_per_hour = $13, active_windows = $14
         where tenant_id = $1 and id = $2
         returning ",
        columns!(),
        ""
    ))
    .bind(caller.tenant_id.as_uuid())
    .bind(id)
    .bind(&rule.name)
    .bind(&rule.trigger)
    .bind(&rule.pattern)
    .bind(&rule.response)
    .bind(rule.media_id)
    .bind(&rule.session_ids)
    .bind(rule.cooldown_seconds)
    .bind(rule.enabled)
    .bind(Utc::now())
    .bind(rule.priority)
    .bind(rule.max_per_hour)
    .bind(rule.active_windows.as_ref().map(sqlx::types::Json))
    .fetch_optional(&state.db)
    .await?
    .map(axum::Json)
    .ok_or_else(|| ApiError::not_found("auto-reply"))
}

/// Deletes a rule.
#[utoipa::path(delete, path = "/api/v1/auto-replies/{id}", tag = "auto-replies",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The rule's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such rule in this tenant", body = ErrorBody),
    ))]
async fn delete_auto_reply(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let deleted = sqlx::query("delete from auto_replies where tenant_id = $1 and id = $2")
        .bind(caller.tenant_id.as_uuid())
        .bind(id)
        .execute(&state.db)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(ApiError::not_found("auto-reply"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(trigger: &str, pattern: &str) -> Draft {
        Draft {
            name: "r".into(),
            trigger: trigger.into(),
            pattern: pattern.into(),
            response: "hi".into(),
            media_id: None,
            session_ids: None,
            cooldown_seconds: 60,
            enabled: true,
            priority: 0,
            max_per_hour: None,
            active_windows: None,
        }
    }

    #[tokio::test]
    async fn hourly_limits_out_of_range_are_refused() {
        for max_per_hour in [0, -1, 10_001] {
            let draft = Draft {
                max_per_hour: Some(max_per_hour),
                ..draft("keyword", "halo")
            };
            assert_eq!(refused_field(draft).await, "max_per_hour");
        }
    }

    #[tokio::test]
    async fn priorities_out_of_range_are_refused() {
        for priority in [-1001, 1001] {
            let draft = Draft {
                priority,
                ..draft("keyword", "halo")
            };
            assert_eq!(refused_field(draft).await, "priority");
        }
        assert!(
            Draft {
                priority: 1000,
                ..draft("keyword", "halo")
            }
            .check()
            .is_ok()
        );
    }

    /// The field a refused draft's error names.
    async fn refused_field(draft: Draft) -> String {
        let err = draft.check().err().expect("refused");
        assert_eq!(err.code(), crate::ErrorCode::ValidationFailed);
        let body = axum::response::IntoResponse::into_response(err).into_body();
        let body: serde_json::Value =
            serde_json::from_slice(&axum::body::to_bytes(body, usize::MAX).await.unwrap()).unwrap();
        body["error"]["details"]["field"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    #[tokio::test]
    async fn keyword_and_contains_patterns_are_trimmed_text() {
        assert_eq!(draft("keyword", "  halo ").check().unwrap().pattern, "halo");
        assert_eq!(draft("contains", "harga").check().unwrap().pattern, "harga");
        assert_eq!(refused_field(draft("keyword", "   ")).await, "pattern");
        assert_eq!(
            refused_field(draft("contains", &"x".repeat(MAX_PATTERN + 1))).await,
            "pattern"
        );
    }

    #[tokio::test]
    async fn regex_patterns_must_compile_within_bounds() {
        assert!(draft("regex", r"(?i)^harga\s+\w+$").check().is_ok());
        assert_eq!(refused_field(draft("regex", "(unclosed")).await, "pattern");
        // Valid syntax, but far too big a program to keep in memory.
        assert_eq!(
            refused_field(draft("regex", r"\w{1000}\w{1000}")).await,
            "pattern"
        );
    }

    #[tokio::test]
    async fn unknown_triggers_and_cooldowns_out_of_range_are_refused() {
        assert_eq!(refused_field(draft("exact", "x")).await, "trigger");
        for cooldown_seconds in [-1, MAX_COOLDOWN_SECONDS + 1, i64::MAX] {
            let field = refused_field(Draft {
                cooldown_seconds,
                ..draft("keyword", "x")
            })
            .await;
            assert_eq!(field, "cooldown_seconds", "{cooldown_seconds}");
        }
        assert!(
            Draft {
                cooldown_seconds: MAX_COOLDOWN_SECONDS,
                ..draft("keyword", "x")
            }
            .check()
            .is_ok()
        );
    }

    #[tokio::test]
    async fn sessions_are_deduplicated_and_an_empty_list_is_refused() {
        let id = Uuid::now_v7();
        let checked = Draft {
            session_ids: Some(vec![id, id]),
            ..draft("keyword", "x")
        }
        .check()
        .unwrap();
        assert_eq!(checked.session_ids, Some(vec![id]));
        let empty = Draft {
            session_ids: Some(vec![]),
            ..draft("keyword", "x")
        };
        assert_eq!(refused_field(empty).await, "session_ids");
    }

    #[tokio::test]
    async fn responses_are_not_blank_nor_too_long() {
        let blank = Draft {
            response: "  ".into(),
            ..draft("keyword", "x")
        };
        assert_eq!(refused_field(blank).await, "response");
        let long = Draft {
            response: "x".repeat(MAX_RESPONSE + 1),
            ..draft("keyword", "x")
        };
        assert_eq!(refused_field(long).await, "response");
    }

    #[test]
    fn changes_tell_null_from_absent() {
        let absent: AutoReplyChanges = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.media_id, None);
        let null: AutoReplyChanges = serde_json::from_str(r#"{"media_id": null}"#).unwrap();
        assert_eq!(null.media_id, Some(None));
        let id = Uuid::now_v7();
        let set: AutoReplyChanges =
            serde_json::from_str(&format!(r#"{{"session_ids": ["{id}"]}}"#)).unwrap();
        assert_eq!(set.session_ids, Some(Some(vec![id])));
    }
}
