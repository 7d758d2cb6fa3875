//! Webhooks from the drivers' servers: WAHA's events
//! (`POST /hooks/waha/{session_id}`) and the WhatsApp Cloud API's
//! (`GET|POST /hooks/cloud/{session_id}`).
//!
//! No user signs in here: the signature is the proof (WAHA's
//! `X-Webhook-Hmac`, Meta's `X-Hub-Signature-256`), and only the driver of
//! the session holds its key. So the API does not read the body: it finds
//! whose session it is (its stored credentials name the tenant and the
//! driver; none → 404) and forwards the raw body and the signature headers
//! to the engine running the session (`control::Verb::Webhook`), whose
//! driver verifies and reads it. A bad signature is 401 and changes
//! nothing; no engine running the session is 503 `engine_unavailable`
//! (both peers retry).
//!
//! Meta's `GET` verification of the webhook URL is answered here, from the
//! stored verify token: Meta checks the URL when the app's owner sets it
//! up, which may be before the session ever runs.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wablast_domain::session::Driver;
use wablast_domain::types::{SessionId, TenantId};
use wablast_workflows::control::{
    self, ControlErrorCode, Reply, Verb, WEBHOOK_HEADERS, WebhookResponse,
};
use wablast_workflows::credentials::{self, DriverCredentials, SecretKey};

use crate::error::ErrorBody;
use crate::extract::{Path, Query};
use crate::routes::sessions::{engine_reply, engine_unreachable};
use crate::{ApiError, AppState, ErrorCode};

/// The largest webhook accepted. WAHA's and Meta's events are small JSON
/// (media arrive as links, not inline).
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

/// Room for the NATS headers around a forwarded body.
const NATS_HEADER_ROOM: usize = 4 * 1024;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(waha_webhook))
        .routes(routes!(cloud_verification, cloud_webhook))
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES))
}

/// A webhook the session's driver took.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAccepted {
    /// Always `accepted`.
    #[schema(example = "accepted")]
    pub status: &'static str,
    /// How many events it reported for the session (status changes,
    /// receipts, inbound messages); 0 for one that is not news.
    pub events: usize,
}

/// Meta's verification of the webhook URL.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CloudVerification {
    /// `subscribe`.
    #[serde(rename = "hub.mode")]
    #[param(rename = "hub.mode")]
    pub mode: Option<String>,
    /// The verify token of the session's `driver_config`.
    #[serde(rename = "hub.verify_token")]
    #[param(rename = "hub.verify_token")]
    pub verify_token: Option<String>,
    /// What to answer when the token matches.
    #[serde(rename = "hub.challenge")]
    #[param(rename = "hub.challenge")]
    pub challenge: Option<String>,
}

/// Whose session this is, if it is one of `driver`: its stored credentials
/// name the tenant (written when the session was created, removed when it
/// is deleted).
async fn session_tenant(state: &AppState, id: Uuid, driver: Driver) -> Result<TenantId, ApiError> {
    let row: Option<(Uuid, String)> =
        sqlx::query_as("select tenant_id, driver from session_credentials where session_id = $1")
            .bind(id)
            .fetch_optional(&state.db)
            .await?;
    match row {
        Some((tenant, stored)) if stored == driver.as_str() => Ok(TenantId::from_uuid(tenant)),
        _ => Err(ApiError::not_found("session")),
    }
}

/// Forwards a webhook to the engine running the session and answers what
/// its driver made of it.
async fn forward(
    state: &AppState,
    tenant: TenantId,
    id: Uuid,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<axum::Json<WebhookAccepted>, ApiError> {
    let client = state.log.jetstream().client();
    if body.len() + NATS_HEADER_ROOM > client.server_info().max_payload {
        return Err(ApiError::too_large(
            "the webhook is larger than this installation can forward",
        ));
    }
    let mut forwarded = async_nats::HeaderMap::new();
    for name in WEBHOOK_HEADERS {
        if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) {
            forwarded.insert(name, value);
        }
    }
    let subject = control::subject(
        state.log.prefix(),
        tenant,
        SessionId::from_uuid(id),
        Verb::Webhook,
    );
    let request = async_nats::Request::new()
        .payload(body)
        .headers(forwarded)
        .timeout(Some(control::REQUEST_TIMEOUT));
    let reply = client
        .send_request(subject, request)
        .await
        .map_err(engine_unreachable)?;
    match engine_reply::<WebhookResponse>(&reply.payload)? {
        Reply::Ok(WebhookResponse { events }) => Ok(axum::Json(WebhookAccepted {
            status: "accepted",
            events,
        })),
        Reply::Error(refusal) => Err(match refusal.code {
            ControlErrorCode::Unauthorized => {
                ApiError::new(ErrorCode::Unauthenticated, refusal.message)
            }
            // The engine let go of the session between our request and its
            // answer.
            ControlErrorCode::NotFound => {
                ApiError::new(ErrorCode::EngineUnavailable, refusal.message)
            }
            ControlErrorCode::InvalidState | ControlErrorCode::SessionBusy => {
                ApiError::new(ErrorCode::InvalidState, refusal.message)
            }
            ControlErrorCode::ValidationFailed
            | ControlErrorCode::InvalidPhone
            | ControlErrorCode::Unsupported => ApiError::validation(refusal.message),
            ControlErrorCode::DriverFailed => {
                ApiError::new(ErrorCode::DriverFailed, refusal.message)
            }
        }),
    }
}

/// An event from the WAHA server of a `waha` session (`session.status`,
/// `message`, `message.ack`), signed by WAHA with the key wablast gave it.
#[utoipa::path(post, path = "/hooks/waha/{session_id}", tag = "hooks",
    params(
        ("session_id" = Uuid, Path, description = "The session's id"),
        ("X-Webhook-Hmac" = String, Header, description = "Hex HMAC-SHA512 of the raw body"),
        ("X-Webhook-Hmac-Algorithm" = String, Header, description = "`sha512`"),
    ),
    request_body(content = Object, content_type = "application/json",
        description = "A WAHA webhook event: `{event, session, payload, me?, timestamp}`"),
    responses(
        (status = 200, description = "Taken by the session's driver", body = WebhookAccepted),
        (status = 400, description = "Signed, but not an event of this session", body = ErrorBody),
        (status = 401, description = "`unauthenticated`: the signature is missing or wrong; nothing changed", body = ErrorBody),
        (status = 404, description = "No such WAHA session", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 503, description = "`engine_unavailable`: no engine runs the session", body = ErrorBody),
    ))]
async fn waha_webhook(
    State(state): State<AppState>,
    Path(session_id): Path<Uuid>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<WebhookAccepted>, ApiError> {
    let tenant = session_tenant(&state, session_id, Driver::Waha).await?;
    // Refused before it travels: unsigned is never accepted.
    if !headers.contains_key(control::WAHA_SIGNATURE_HEADER) {
        return Err(unsigned());
    }
    forward(&state, tenant, session_id, &headers, body).await
}

/// Meta's verification of a `cloud` session's webhook URL: answers
/// `hub.challenge` as plain text when `hub.mode` is `subscribe` and
/// `hub.verify_token` is the session's verify token.
#[utoipa::path(get, path = "/hooks/cloud/{session_id}", tag = "hooks",
    params(("session_id" = Uuid, Path, description = "The session's id"), CloudVerification),
    responses(
        (status = 200, description = "The challenge, echoed", body = String, content_type = "text/plain"),
        (status = 403, description = "`forbidden`: not a subscription, or the verify token does not match", body = ErrorBody),
        (status = 404, description = "No such Cloud API session", body = ErrorBody),
    ))]
async fn cloud_verification(
    State(state): State<AppState>,
    Path(session_id): Path<Uuid>,
    Query(query): Query<CloudVerification>,
) -> Result<Response, ApiError> {
    let tenant = session_tenant(&state, session_id, Driver::Cloud).await?;
    let key = SecretKey::new(state.config.secret_key);
    let stored = credentials::load(&state.db, &key, tenant, SessionId::from_uuid(session_id))
        .await
        .map_err(ApiError::internal)?;
    let Some(DriverCredentials::Cloud(stored)) = stored else {
        return Err(ApiError::not_found("session"));
    };
    match control::verify_cloud_subscription(
        &stored.verify_token,
        query.mode.as_deref(),
        query.verify_token.as_deref(),
        query.challenge.as_deref(),
    ) {
        Some(challenge) => Ok((
            StatusCode::OK,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            challenge,
        )
            .into_response()),
        None => Err(ApiError::forbidden(
            "not a subscription verification, or the verify token does not match",
        )),
    }
}

/// A notification from the Meta app of a `cloud` session (message
/// statuses, inbound messages), signed with the app secret.
#[utoipa::path(post, path = "/hooks/cloud/{session_id}", tag = "hooks",
    params(
        ("session_id" = Uuid, Path, description = "The session's id"),
        ("X-Hub-Signature-256" = String, Header, description = "`sha256=` and the hex HMAC-SHA256 of the raw body with the app secret"),
    ),
    request_body(content = Object, content_type = "application/json",
        description = "A WhatsApp Business Account notification: `{object, entry: [{changes: [{value}]}]}`"),
    responses(
        (status = 200, description = "Taken by the session's driver", body = WebhookAccepted),
        (status = 400, description = "Signed, but unreadable", body = ErrorBody),
        (status = 401, description = "`unauthenticated`: the signature is missing or wrong; nothing changed", body = ErrorBody),
        (status = 404, description = "No such Cloud API session", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 503, description = "`engine_unavailable`: no engine runs the session", body = ErrorBody),
    ))]
async fn cloud_webhook(
    State(state): State<AppState>,
    Path(session_id): Path<Uuid>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<WebhookAccepted>, ApiError> {
    let tenant = session_tenant(&state, session_id, Driver::Cloud).await?;
    if !headers.contains_key(control::CLOUD_SIGNATURE_HEADER) {
        return Err(unsigned());
    }
    forward(&state, tenant, session_id, &headers, body).await
}

fn unsigned() -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, "the webhook is not signed")
}
