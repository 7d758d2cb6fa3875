//! Webhooks: a tenant's subscriptions of its integrations' URLs to its
//! events. This module keeps the subscriptions; delivering (signed with
//! HMAC-SHA256 under the subscription's secret, retried with back-off) is
//! the deliverer's job, which finds here all it needs: the URL, the event
//! types, the secret (encrypted, see [`encrypt_secret`]) and where in the
//! log the subscription began.
//!
//! URLs must be `http` or `https`. Any host is accepted for now, private
//! and loopback addresses included (tests deliver to localhost): refusing
//! those (against server-side request forgery) would be a configured rule
//! of the deliverer.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rand::TryRngCore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wablast_projections::queries::Paged;
use wablast_projections::{LogStream, StreamName};
use wablast_workflows::credentials::SecretKey;

use crate::error::ErrorBody;
use crate::extract::{Json, Path, Query};
use crate::list::{List, ListParams};
use crate::routes::events::is_type_name;
use crate::{ApiError, AppState, Caller, ErrorCode};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, delete_webhook))
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

/// A subscription (without its secret).
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct WebhookView {
    /// Its id.
    pub id: Uuid,
    /// Where events are POSTed.
    pub url: String,
    /// The event types delivered (`["*"]`: all).
    pub events: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Subscribes a URL to some of the tenant's events.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "events",
    security(("bearer" = []), ("api_key" = [])),
    request_body = NewWebhook,
    responses(
        (status = 201, description = "Subscribed; the secret is in the answer, once", body = CreatedWebhook),
        (status = 400, description = "Bad URL, events or secret (`details.field` says which)", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 503, description = "The event log is not reachable", body = ErrorBody),
    ))]
async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewWebhook>,
) -> Result<(StatusCode, axum::Json<CreatedWebhook>), ApiError> {
    let url = check_url(&body.url)?;
    let events = check_events(body.events)?;
    let secret = match body.secret {
        Some(secret) => check_secret(secret)?,
        None => generate_secret(),
    };
    // Deliveries start after where the log is now.
    let mut from = [0i64; 2];
    for (slot, stream) in from
        .iter_mut()
        .zip([LogStream::Events, LogStream::Messages])
    {
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
    let rows: Vec<WebhookView> = sqlx::query_as(
        "select id, url, events, created_at from webhooks
         where tenant_id = $1 and deleted_at is null and ($2::uuid is null or id > $2)
         order by id limit $3",
    )
    .bind(caller.tenant_id.as_uuid())
    .bind(page.cursor().copied())
    .bind(page.fetch())
    .fetch_all(&state.db)
    .await?;
    let paged = Paged::from_rows(rows, &page, |row| row.id);
    Ok(axum::Json(List::from_paged(paged, |row| row)))
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
    sqlx::query_as(
        "select id, url, events, created_at from webhooks
         where tenant_id = $1 and id = $2 and deleted_at is null",
    )
    .bind(caller.tenant_id.as_uuid())
    .bind(id)
    .fetch_optional(&state.db)
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

/// An absolute `http(s)` URL with a host.
fn check_url(url: &str) -> Result<String, ApiError> {
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
    Ok(url.to_owned())
}

/// Event type names, deduplicated in their order; `*` alone stands for
/// every type.
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
/// does not decrypt under `key` (another key, another row, tampered). Only
/// the tests read secrets back until webhooks are delivered.
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
        assert!(check_url("https://shop.example/hook?x=1").is_ok());
        assert!(check_url("http://127.0.0.1:8080/hook").is_ok());
        for bad in [
            "",
            "shop.example/hook",
            "ftp://shop.example/hook",
            "https://",
            "https://exa mple.com",
            "javascript:alert(1)",
        ] {
            assert!(check_url(bad).is_err(), "{bad:?}");
        }
        assert!(check_url(&format!("https://a.example/{}", "x".repeat(2048))).is_err());
    }

    #[test]
    fn events_are_type_names_or_a_star() {
        assert_eq!(
            check_events(vec!["A".into(), "B".into(), "A".into()]).unwrap(),
            vec!["A", "B"]
        );
        assert_eq!(
            check_events(vec!["A".into(), "*".into()]).unwrap(),
            vec!["*"]
        );
        assert!(check_events(vec![]).is_err());
        assert!(check_events(vec!["no.dots".into()]).is_err());
        assert!(check_events(vec![String::new()]).is_err());
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
