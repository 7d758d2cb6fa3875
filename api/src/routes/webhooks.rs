//! Webhooks: a tenant's subscriptions of its integrations' URLs to its
//! events. This module keeps the subscriptions; delivering (signed with
//! HMAC-SHA256 under the subscription's secret, retried with back-off) is
//! the deliverer's job, which finds here all it needs: the URL, the event
//! types, the secret (encrypted, see [`encrypt_secret`]) and where in the
//! log the subscription began.
//!
//! Receivers must be `https` URLs on public addresses; `http`, loopback
//! and private addresses only where the operator allows them
//! (`WABLAST_WEBHOOK_ALLOW_PRIVATE`). The deliverer checks again, on every
//! attempt, what a receiver's name resolves to.
//!
//! Deliveries are listed per subscription (the dead letters with
//! `?status=failed`), sent again from a position of the log (`replay`), and
//! a subscription is tried with a ping (`test`) or turned on again after it
//! was disabled (`enable`).

use std::collections::BTreeSet;
use std::sync::LazyLock;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rand::TryRngCore;
use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wablast_domain::webhook::WebhookCommand;
use wablast_projections::queries::webhooks::{
    self as deliveries, DeliveryCursor, DeliveryRow, DeliveryStatus, Target,
};
use wablast_projections::queries::{Page, Paged};
use wablast_projections::{LogStream, StreamName};
use wablast_workflows::credentials::SecretKey;
use wablast_workflows::webhooks::{
    Answer, REPLAY_MAX, ReplayError, ReplayFrom, check_receiver, replay,
};

use crate::commands::{self, tenant_key};
use crate::error::ErrorBody;
use crate::extract::{Json, Path, Query};
use crate::list::{List, ListParams};
use crate::routes::events::{Position, is_type_name};
use crate::{ApiError, AppState, Caller, ErrorCode};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(list_deliveries))
        .routes(routes!(replay_webhook))
        .routes(routes!(test_webhook))
        .routes(routes!(enable_webhook))
}

/// The longest URL accepted.
const MAX_URL_LENGTH: usize = 2048;
/// The most event types one subscription names.
const MAX_EVENTS: usize = 100;
/// Shortest and longest secret a caller may choose.
const SECRET_LENGTH: std::ops::RangeInclusive<usize> = 16..=256;
/// What generated secrets start with.
const SECRET_PREFIX: &str = "whsec_";

/// A new subscription.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where events are POSTed: `http` or `https`, at most 2048 characters.
    #[schema(example = "https://shop.example/wablast/events")]
    pub url: String,
    /// The event types to deliver (`SessionCreated`, `MessageSent`, ...), or
    /// `["*"]` for all of them.
    #[schema(example = json!(["MessageDelivered", "MessageFailed"]))]
    pub events: Vec<String>,
    /// The secret deliveries are signed with (16 to 256 characters); when
    /// left out, one is generated and shown in the answer, once.
    pub secret: Option<String>,
}

/// A subscription as created: the only time its secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    /// Its id.
    pub id: Uuid,
    /// Where events are POSTed.
    pub url: String,
    /// The event types delivered (`["*"]`: all).
    pub events: Vec<String>,
    /// The signing secret: the caller's, or the generated one. Never shown
    /// again; store it now.
    pub secret: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Whether a subscription receives events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookStatus {
    /// Its events are queued and delivered.
    Active,
    /// Nothing is queued for it (its receiver failed for too long; see
    /// `disabled_reason`) until it is enabled again.
    Disabled,
}

/// A subscription (without its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// Its id.
    pub id: Uuid,
    /// Where events are POSTed.
    pub url: String,
    /// The event types delivered (`["*"]`: all).
    pub events: Vec<String>,
    /// Whether it receives events.
    pub status: WebhookStatus,
    /// Why it was disabled: `receiver_failing` (its receiver failed every
    /// delivery for 3 days) or `secret_unreadable` (its secret does not
    /// open with the installation's key any more).
    #[schema(example = "receiver_failing")]
    pub disabled_reason: Option<String>,
    /// When it was disabled.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Since when its receiver fails every delivery (`null` while it
    /// answers).
    pub failing_since: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A row of `webhooks` as shown.
#[derive(sqlx::FromRow)]
struct WebhookRow {
    id: Uuid,
    url: String,
    events: Vec<String>,
    disabled_reason: Option<String>,
    disabled_at: Option<DateTime<Utc>>,
    failing_since: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl From<WebhookRow> for WebhookView {
    fn from(row: WebhookRow) -> Self {
        Self {
            id: row.id,
            url: row.url,
            events: row.events,
            status: if row.disabled_at.is_some() {
                WebhookStatus::Disabled
            } else {
                WebhookStatus::Active
            },
            disabled_reason: row.disabled_reason,
            disabled_at: row.disabled_at,
            failing_since: row.failing_since,
            created_at: row.created_at,
        }
    }
}

/// The columns of a [`WebhookRow`].
const VIEW_COLUMNS: &str =
    "id, url, events, disabled_reason, disabled_at, failing_since, created_at";

/// Subscribes a URL to some of the tenant's events.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "events",
    security(("bearer" = []), ("api_key" = [])),
    request_body = NewWebhook,
    responses(
        (status = 201, description = "Subscribed; the secret is in the answer, once", body = CreatedWebhook),
        (status = 400, description = "Bad URL, events or secret (`details.field` says which)", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 422, description = "`feature_not_in_plan`: the tenant's plan does not include webhooks", body = ErrorBody),
        (status = 503, description = "The event log is not reachable", body = ErrorBody),
    ))]
async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewWebhook>,
) -> Result<(StatusCode, axum::Json<CreatedWebhook>), ApiError> {
    let url = check_url(&body.url, state.config.webhooks.allow_private)?;
    let events = check_events(body.events)?;
    wablast_workflows::limits::TenantLimits::of(&state.commands.wallets, caller.tenant_id)
        .await?
        .require(wablast_domain::plan::PlanFeature::Webhooks)?;
    let secret = match body.secret {
        Some(secret) => check_secret(secret)?,
        None => generate_secret(),
    };
    // Deliveries start after where the log is now.
    let from = log_end(&state).await?;
    let id = Uuid::now_v7();
    let (nonce, ciphertext) = encrypt_secret(&state.config.secret_key, id, &secret);
    let created_at = Utc::now();
    sqlx::query(
        "insert into webhooks (id, tenant_id, url, events, secret_nonce, secret_ciphertext,
                               from_events, from_messages, created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(caller.tenant_id.as_uuid())
    .bind(&url)
    .bind(&events)
    .bind(nonce.as_slice())
    .bind(&ciphertext)
    .bind(from[0])
    .bind(from[1])
    .bind(created_at)
    .execute(&state.db)
    .await?;
    tracing::info!(webhook = %id, tenant = %caller.tenant_id, "webhook created");
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedWebhook {
            id,
            url,
            events,
            secret,
            created_at,
        }),
    ))
}

/// The tenant's subscriptions, oldest first (never their secrets).
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "events",
    security(("bearer" = []), ("api_key" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "A page of subscriptions", body = List<WebhookView>),
        (status = 400, description = "Bad limit or cursor", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<List<WebhookView>>, ApiError> {
    let page = params.page::<Uuid>()?;
    let rows: Vec<WebhookRow> = sqlx::query_as(AssertSqlSafe(format!(
        "select {VIEW_COLUMNS} from webhooks
         where tenant_id = $1 and deleted_at is null and ($2::uuid is null or id > $2)
         order by id limit $3"
    )))
    .bind(caller.tenant_id.as_uuid())
    .bind(page.cursor().copied())
    .bind(page.fetch())
    .fetch_all(&state.db)
    .await?;
    let paged = Paged::from_rows(rows, &page, |row| row.id);
    Ok(axum::Json(List::from_paged(paged, WebhookView::from)))
}

/// One subscription (without its secret).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "events",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The subscription's id")),
    responses(
        (status = 200, description = "The subscription", body = WebhookView),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such subscription in this tenant", body = ErrorBody),
    ))]
async fn get_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<WebhookView>, ApiError> {
    view(&state, &caller, id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("webhook"))
}

/// The tenant's subscription `id`, if it has one.
async fn view(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
) -> Result<Option<WebhookView>, ApiError> {
    let row: Option<WebhookRow> = sqlx::query_as(AssertSqlSafe(format!(
        "select {VIEW_COLUMNS} from webhooks
         where tenant_id = $1 and id = $2 and deleted_at is null"
    )))
    .bind(caller.tenant_id.as_uuid())
    .bind(id)
    .fetch_optional(&state.db)
    .await?;
    Ok(row.map(WebhookView::from))
}

/// Changes to a subscription: any of its URL, event types and secret.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookChanges {
    /// A new receiver: its pending deliveries go there.
    pub url: Option<String>,
    /// New event types (`["*"]`: all), for events committed from now on.
    pub events: Option<Vec<String>>,
    /// A new signing secret (16 to 256 characters), for every delivery
    /// from now on (pending ones included). Never shown back.
    pub secret: Option<String>,
}

/// Changes a subscription's URL, event types or secret, checked as at
/// creation. A new URL or secret tries the pending deliveries again at
/// once, with a fresh retry window.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "events",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The subscription's id")),
    request_body = WebhookChanges,
    responses(
        (status = 200, description = "The subscription as changed", body = WebhookView),
        (status = 400, description = "Bad URL, events or secret (`details.field` says which)", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such subscription in this tenant", body = ErrorBody),
    ))]
async fn update_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(changes): Json<WebhookChanges>,
) -> Result<axum::Json<WebhookView>, ApiError> {
    let receiver_changed = changes.url.is_some() || changes.secret.is_some();
    let url = changes
        .url
        .as_deref()
        .map(|url| check_url(url, state.config.webhooks.allow_private))
        .transpose()?;
    let events = changes.events.map(check_events).transpose()?;
    let sealed = changes
        .secret
        .map(check_secret)
        .transpose()?
        .map(|secret| encrypt_secret(&state.config.secret_key, id, &secret));
    let (nonce, ciphertext) = match &sealed {
        Some((nonce, ciphertext)) => (Some(nonce.as_slice()), Some(ciphertext.as_slice())),
        None => (None, None),
    };
    let changed = sqlx::query(
        "update webhooks
         set url = coalesce($3, url), events = coalesce($4, events),
             secret_nonce = coalesce($5, secret_nonce),
             secret_ciphertext = coalesce($6, secret_ciphertext)
         where tenant_id = $1 and id = $2 and deleted_at is null",
    )
    .bind(caller.tenant_id.as_uuid())
    .bind(id)
    .bind(url)
    .bind(events)
    .bind(nonce)
    .bind(ciphertext)
    .execute(&state.db)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(ApiError::not_found("webhook"));
    }
    if receiver_changed {
        // What failed at the old receiver is tried at the new one now.
        deliveries::retry_now(&state.db, caller.tenant_id, id, Utc::now()).await?;
    }
    view(&state, &caller, id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("webhook"))
}

/// Deletes a subscription: nothing is delivered to it any more.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "events",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The subscription's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such subscription in this tenant", body = ErrorBody),
    ))]
async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let deleted = sqlx::query(
        "update webhooks set deleted_at = $3
         where tenant_id = $1 and id = $2 and deleted_at is null",
    )
    .bind(caller.tenant_id.as_uuid())
    .bind(id)
    .bind(Utc::now())
    .execute(&state.db)
    .await?
    .rows_affected();
    if deleted == 0 {
        return Err(ApiError::not_found("webhook"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Which deliveries to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesParams {
    /// Only those in this state: `failed` lists the dead letters.
    pub status: Option<DeliveryStatus>,
    /// Most deliveries in the page (1 to 500, default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One event's delivery to a subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// The delivery's id (newest first in lists).
    pub id: i64,
    /// The event's `id` in the body: its position in the log.
    #[schema(example = "messages:1042")]
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// `pending` (waiting for its turn or its next try), `delivered`, or
    /// `failed` (given up: a dead letter).
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i32,
    /// The receiver's HTTP status on the last attempt (`null`: no answer).
    pub last_status: Option<i32>,
    /// The start of the receiver's last answer, or why there was none.
    pub last_error: Option<String>,
    /// When it was last tried.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When it is tried next (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the receiver took it.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// Whether a replay queued it.
    pub replayed: bool,
}

impl From<DeliveryRow> for DeliveryView {
    fn from(row: DeliveryRow) -> Self {
        let status = row.status();
        Self {
            id: row.id,
            event_id: row.event_id,
            event_type: row.event_type,
            status,
            attempts: row.attempts,
            last_status: row.last_status,
            last_error: row.last_error,
            last_attempt_at: row.last_attempt_at,
            next_attempt_at: (status == DeliveryStatus::Pending).then_some(row.next_attempt_at),
            delivered_at: row.delivered_at,
            created_at: row.created_at,
            replayed: row.replayed,
        }
    }
}

/// A subscription's deliveries, newest first; `?status=failed` lists the
/// dead letters with the receiver's last status and answer.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "events",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The subscription's id"), DeliveriesParams),
    responses(
        (status = 200, description = "A page of deliveries", body = List<DeliveryView>),
        (status = 400, description = "Bad status, limit or cursor", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such subscription in this tenant", body = ErrorBody),
    ))]
async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(params): Query<DeliveriesParams>,
) -> Result<axum::Json<List<DeliveryView>>, ApiError> {
    let page = Page::<DeliveryCursor>::parse(params.limit, params.cursor.as_deref())
        .map_err(|err| ApiError::invalid_field("cursor", err.to_string()))?;
    if view(&state, &caller, id).await?.is_none() {
        return Err(ApiError::not_found("webhook"));
    }
    let paged =
        deliveries::deliveries(&state.db, caller.tenant_id, id, params.status, &page).await?;
    Ok(axum::Json(List::from_paged(paged, DeliveryView::from)))
}

/// Where a replay starts.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// A position as event ids give it (`events:120,messages:45`; a
    /// stream left out is not replayed; `events:0,messages:0` is the
    /// beginning of the log): every event after it is sent again.
    #[schema(example = "events:0,messages:0")]
    pub from_position: String,
}

/// What a replay queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayView {
    /// Events queued again (after what is pending), with their first `id`s.
    pub queued: usize,
    /// When more than 10,000 events were left: replay again from here.
    pub next_position: Option<String>,
}

/// Sends a subscription's events again, from a position of the log on, up
/// to now: dead letters, or everything a receiver lost. At most 10,000
/// events per call; `next_position` says where to go on.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/replay", tag = "events",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The subscription's id")),
    request_body = ReplayRequest,
    responses(
        (status = 202, description = "Queued for delivery", body = ReplayView),
        (status = 400, description = "Malformed position, or beyond the end of the log", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such subscription in this tenant", body = ErrorBody),
        (status = 409, description = "The subscription is disabled: enable it first", body = ErrorBody),
        (status = 503, description = "The event log is not reachable", body = ErrorBody),
    ))]
async fn replay_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<ReplayRequest>,
) -> Result<(StatusCode, axum::Json<ReplayView>), ApiError> {
    let invalid = |message: String| ApiError::invalid_field("from_position", message);
    if body.from_position.len() > 200 {
        return Err(invalid("from_position is too long to be a position".into()));
    }
    let position: Position = body
        .from_position
        .parse()
        .map_err(|err: crate::routes::events::PositionError| invalid(err.to_string()))?;
    let webhook = view(&state, &caller, id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    if webhook.status == WebhookStatus::Disabled {
        return Err(ApiError::new(
            ErrorCode::InvalidState,
            "the subscription is disabled: enable it, then replay",
        ));
    }
    let end = log_end(&state).await?;
    let mut from = [None; 2];
    for ((slot, stream), last) in from.iter_mut().zip(LogStream::ALL).zip(end) {
        if let Some(cursor) = position.get(stream) {
            if cursor.sequence > u64::try_from(last).unwrap_or(0) {
                return Err(invalid(format!(
                    "from_position is beyond the end of the log, which is at {}:{last}",
                    stream.name()
                )));
            }
            let (sequence, skip) = cursor.resume();
            *slot = Some(ReplayFrom { sequence, skip });
        }
    }
    let replayed = replay(
        &state.log,
        &state.db,
        webhook.id,
        *caller.tenant_id.as_uuid(),
        &webhook.events,
        from,
    )
    .await
    .map_err(|err| match err {
        ReplayError::Log(message) => {
            tracing::warn!(error.message = %message, "event log unavailable for a replay");
            ApiError::new(
                ErrorCode::Unavailable,
                "the event log cannot be read right now; try again",
            )
        }
        ReplayError::Database(err) => ApiError::from(err),
    })?;
    debug_assert!(replayed.queued <= REPLAY_MAX);
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(ReplayView {
            queued: replayed.queued,
            next_position: replayed.next_position,
        }),
    ))
}

/// What the receiver made of a ping.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestView {
    /// Whether it answered 2xx.
    pub delivered: bool,
    /// Its HTTP status (`null`: no answer).
    pub status: Option<u16>,
    /// The start of its answer when it refused, or why there was none.
    pub error: Option<String>,
    /// How long the attempt took.
    pub duration_ms: u64,
}

/// Sends the receiver a signed `WebhookTest` event right away and says
/// what it answered. Nothing is queued or retried.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "events",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The subscription's id")),
    responses(
        (status = 202, description = "Sent (the contract's 202: nothing is queued); `delivered` says whether the receiver took it", body = TestView),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such subscription in this tenant", body = ErrorBody),
    ))]
async fn test_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, axum::Json<TestView>), ApiError> {
    let target = Target::of_tenant(&state.db, caller.tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    let secret = state
        .webhooks
        .secret(&target)
        .ok_or_else(|| ApiError::internal("a webhook secret does not open with this key"))?;
    let ping_id = format!("test:{}", Uuid::now_v7());
    let now = Utc::now();
    let body = serde_json::json!({
        "id": ping_id,
        "type": "WebhookTest",
        "occurred_at": now,
        "tenant_id": caller.tenant_id.as_uuid(),
        "data": {"webhook_id": id, "message": "a test delivery from wablast"},
    })
    .to_string();
    let started = std::time::Instant::now();
    let answer = state
        .webhooks
        .post(&target.url, &secret, &ping_id, "WebhookTest", body)
        .await;
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let view = match answer {
        Answer::Delivered { status } => TestView {
            delivered: true,
            status: Some(status),
            error: None,
            duration_ms,
        },
        Answer::Failed { status, error, .. } => TestView {
            delivered: false,
            status,
            error: Some(error),
            duration_ms,
        },
    };
    Ok((StatusCode::ACCEPTED, axum::Json(view)))
}

/// Turns a disabled subscription on again: it receives the events
/// committed from now on, and what was pending when it was disabled is
/// tried again now (what it missed meanwhile: `replay`). Its receiver's
/// failures are forgotten. An active one stays as it is.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/enable", tag = "events",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The subscription's id")),
    responses(
        (status = 200, description = "Enabled", body = WebhookView),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such subscription in this tenant", body = ErrorBody),
        (status = 503, description = "The event log is not reachable", body = ErrorBody),
    ))]
async fn enable_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<WebhookView>, ApiError> {
    if Target::of_tenant(&state.db, caller.tenant_id, id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("webhook"));
    }
    let at = Utc::now();
    commands::execute(
        &state.commands.webhooks,
        &tenant_key(caller.tenant_id, id),
        WebhookCommand::Enable { at },
        &caller.command(),
    )
    .await?;
    let from = log_end(&state).await?;
    if !deliveries::enable(&state.db, caller.tenant_id, id, from, at).await? {
        return Err(ApiError::not_found("webhook"));
    }
    view(&state, &caller, id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("webhook"))
}

/// Where each stream of the log ends now (`events`, `messages`).
async fn log_end(state: &AppState) -> Result<[i64; 2], ApiError> {
    let mut end = [0i64; 2];
    for (slot, stream) in end.iter_mut().zip(LogStream::ALL) {
        let info = state
            .log
            .jetstream()
            .get_stream(stream.full_name(state.log.prefix()))
            .await
            .map_err(|err| {
                tracing::warn!(error.message = %err, "event log unavailable");
                ApiError::new(
                    ErrorCode::Unavailable,
                    "the event log cannot be reached right now; try again",
                )
            })?;
        *slot =
            i64::try_from(info.cached_info().state.last_sequence).map_err(ApiError::internal)?;
    }
    Ok(end)
}

/// An absolute `http(s)` URL with a host, which receivers may use here
/// (`allow_private`: `http`, loopback and private addresses too).
fn check_url(url: &str, allow_private: bool) -> Result<String, ApiError> {
    let invalid = |message: &str| ApiError::invalid_field("url", message);
    let url = url.trim();
    if url.is_empty() {
        return Err(invalid("url must not be empty"));
    }
    if url.len() > MAX_URL_LENGTH {
        return Err(invalid(&format!(
            "url may have at most {MAX_URL_LENGTH} characters"
        )));
    }
    let uri: axum::http::Uri = url.parse().map_err(|_| invalid("url is not a valid URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(invalid("url must start with http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("url must name a host"));
    }
    check_receiver(url, allow_private).map_err(|err| invalid(&err.to_string()))?;
    Ok(url.to_owned())
}

/// Event type names, deduplicated in their order; `*` alone stands for
/// every type.
/// Every event type the log carries: those the OpenAPI document's
/// `EventPayload` describes (one schema per aggregate, one per event), so
/// that a subscription to a misspelt type is refused instead of never
/// receiving anything.
fn event_types() -> &'static BTreeSet<String> {
    static TYPES: LazyLock<BTreeSet<String>> = LazyLock::new(|| {
        let document = serde_json::to_value(crate::openapi()).expect("the document serializes");
        let schemas = &document["components"]["schemas"];
        let aggregates = schemas["EventPayload"]["oneOf"].as_array().cloned();
        aggregates
            .into_iter()
            .flatten()
            .filter_map(|aggregate| {
                let name = aggregate["$ref"].as_str()?.rsplit('/').next()?.to_owned();
                schemas[name.as_str()]["oneOf"].as_array().cloned()
            })
            .flatten()
            .filter_map(|event| event["required"][0].as_str().map(str::to_owned))
            .collect()
    });
    &TYPES
}

fn check_events(events: Vec<String>) -> Result<Vec<String>, ApiError> {
    let invalid = |message: String| ApiError::invalid_field("events", message);
    if events.is_empty() {
        return Err(invalid(
            "events names at least one event type, or `*` for all".into(),
        ));
    }
    if events.len() > MAX_EVENTS {
        return Err(invalid(format!(
            "events names at most {MAX_EVENTS} event types"
        )));
    }
    let mut checked: Vec<String> = Vec::with_capacity(events.len());
    for event in events {
        let event = event.trim();
        if event == "*" {
            return Ok(vec!["*".to_owned()]);
        }
        if !is_type_name(event) {
            return Err(invalid(format!(
                "{event:?} is not an event type name (letters, digits and `_`) or `*`"
            )));
        }
        if !event_types().contains(event) {
            return Err(invalid(format!(
                "{event:?} is no event type: the types are listed in the OpenAPI document's `EventPayload` schema (`SessionCreated`, `MessageSent`, ...), or `*` for all"
            )));
        }
        if !checked.iter().any(|e| e == event) {
            checked.push(event.to_owned());
        }
    }
    Ok(checked)
}

fn check_secret(secret: String) -> Result<String, ApiError> {
    let length = secret.chars().count();
    if !SECRET_LENGTH.contains(&length) || secret.trim() != secret {
        return Err(ApiError::invalid_field(
            "secret",
            format!(
                "secret must have {} to {} characters, without leading or trailing spaces",
                SECRET_LENGTH.start(),
                SECRET_LENGTH.end()
            ),
        ));
    }
    Ok(secret)
}

/// `whsec_` and 64 hex digits (256 random bits).
fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the OS random source works");
    format!("{SECRET_PREFIX}{}", hex::encode(bytes))
}

/// Encrypts a webhook's secret with AES-256-GCM under `key`
/// (`WABLAST_SECRET_KEY`): a fresh random nonce per call, the webhook's id
/// as associated data (a ciphertext copied to another row does not
/// decrypt).
///
/// # Returns
/// The nonce and the ciphertext (GCM's tag at its end).
pub fn encrypt_secret(key: &[u8; 32], webhook_id: Uuid, secret: &str) -> ([u8; 12], Vec<u8>) {
    let sealed = SecretKey::new(*key).seal(webhook_id.as_bytes(), secret.as_bytes());
    let (nonce, ciphertext) = sealed.split_at(12);
    (
        nonce
            .try_into()
            .expect("a sealed value starts with its nonce"),
        ciphertext.to_vec(),
    )
}

/// A webhook's secret back from [`encrypt_secret`]'s output; `None` when it
/// does not decrypt under `key` (another key, another row, tampered). The
/// deliverer opens them itself ([`wablast_workflows::webhooks::Sender`]).
#[cfg(test)]
pub fn decrypt_secret(
    key: &[u8; 32],
    webhook_id: Uuid,
    nonce: &[u8],
    ciphertext: &[u8],
) -> Option<String> {
    if nonce.len() != 12 {
        return None;
    }
    let plain = SecretKey::new(*key).open(webhook_id.as_bytes(), &[nonce, ciphertext].concat())?;
    String::from_utf8(plain).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_decrypt_only_with_their_key_and_row() {
        let key = [7u8; 32];
        let id = Uuid::now_v7();
        let (nonce, ciphertext) = encrypt_secret(&key, id, "s3cret-s3cret-s3cret");
        assert!(!ciphertext.windows(6).any(|w| w == b"s3cret".as_slice()));
        assert_eq!(
            decrypt_secret(&key, id, &nonce, &ciphertext).as_deref(),
            Some("s3cret-s3cret-s3cret")
        );
        assert_eq!(decrypt_secret(&[8u8; 32], id, &nonce, &ciphertext), None);
        assert_eq!(
            decrypt_secret(&key, Uuid::now_v7(), &nonce, &ciphertext),
            None
        );
        let (other_nonce, _) = encrypt_secret(&key, id, "s3cret-s3cret-s3cret");
        assert_ne!(nonce, other_nonce, "a fresh nonce each time");
    }

    #[test]
    fn urls_are_absolute_http_or_https() {
        assert!(check_url("https://shop.example/hook?x=1", false).is_ok());
        assert!(check_url("http://127.0.0.1:8080/hook", true).is_ok());
        assert!(check_url("http://127.0.0.1:8080/hook", false).is_err());
        assert!(check_url("https://192.168.1.10/hook", false).is_err());
        for bad in [
            "",
            "shop.example/hook",
            "ftp://shop.example/hook",
            "https://",
            "https://exa mple.com",
            "javascript:alert(1)",
        ] {
            assert!(check_url(bad, true).is_err(), "{bad:?}");
        }
        assert!(check_url(&format!("https://a.example/{}", "x".repeat(2048)), true).is_err());
    }

    #[test]
    fn events_are_event_types_or_a_star() {
        let named = |names: &[&str]| names.iter().map(|&n| n.to_owned()).collect::<Vec<_>>();
        assert_eq!(
            check_events(named(&["MessageSent", "SessionCreated", "MessageSent"])).unwrap(),
            vec!["MessageSent", "SessionCreated"]
        );
        assert_eq!(
            check_events(named(&["MessageSent", "*"])).unwrap(),
            vec!["*"]
        );
        assert!(check_events(vec![]).is_err());
        assert!(check_events(named(&["no.dots"])).is_err());
        assert!(check_events(vec![String::new()]).is_err());
        // Well formed, but no such event: refused, naming it.
        let err = check_events(named(&["MessageSent", "MesageDelivered"])).unwrap_err();
        assert!(format!("{err:?}").contains("MesageDelivered"), "{err:?}");
    }

    #[test]
    fn every_kind_of_event_is_known() {
        let types = event_types();
        for known in [
            "SessionCreated",
            "MessageSent",
            "MessageDelivered",
            "ListCheckCompleted",
            "WebhookDisabled",
            "CampaignStarted",
        ] {
            assert!(types.contains(known), "{known} missing from {types:?}");
        }
        assert!(types.len() > 50, "{}", types.len());
    }

    #[test]
    fn generated_secrets_are_random() {
        let (a, b) = (generate_secret(), generate_secret());
        assert_ne!(a, b);
        assert!(a.starts_with(SECRET_PREFIX));
        assert!(check_secret(a).is_ok());
        assert!(check_secret("short".into()).is_err());
        assert!(check_secret(" padded-secret-value ".into()).is_err());
    }
}
