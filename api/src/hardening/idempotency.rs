//! `Idempotency-Key` on POSTs: a client that did not hear the answer sends
//! the request again with the same key and gets the first answer, without
//! the request running twice.
//!
//! - Only POSTs under `/api/v1` that carry the header, from an
//!   authenticated caller: a key belongs to the credential that used it
//!   (user or API key). Registration, which has no caller, keys by the key
//!   alone (a replay needs the same body: the same email and password).
//! - The first request claims the key (a `pending` row) before it runs; the
//!   answer is stored when it completes. The same key again with the same
//!   method, path and body: the stored answer, with `Idempotent-Replayed:
//!   true`. With another request: 422 `idempotency_key_reused`. While the
//!   first still runs: 409 `conflict`; retry later.
//! - Stored: 2xx and 4xx answers of at most 1 MiB, for 24 hours. Not
//!   stored (the key is released and a retry runs again): 5xx, and 408,
//!   409, 425 and 429, which say "try again".
//! - The request body is read (up to the largest upload) to compare it; a
//!   multipart body is compared without its boundary, which clients choose
//!   anew on every attempt.
//! - Answers can hold secrets (a new API key, an access token): their
//!   bodies are stored encrypted (AES-256-GCM with `WABLAST_SECRET_KEY`,
//!   bound to their scope and key), and only the same credential can have
//!   them replayed.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use wablast_workflows::credentials::SecretKey;

use axum::body::{Body, HttpBody, to_bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::Credential;
use crate::{ApiError, AppState, Caller, ErrorCode};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// The header marking a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";

/// Longest key accepted.
pub const MAX_KEY_LENGTH: usize = 255;
/// The paths whose keys belong to no caller (there is none yet).
pub const ANONYMOUS: [&str; 1] = ["/api/v1/auth/register"];
/// How long an answer is kept.
const KEEP: TimeDelta = TimeDelta::hours(24);
/// A pending claim older than this is taken to be abandoned (its process
/// died) and may be claimed again.
const ABANDONED_AFTER: TimeDelta = TimeDelta::minutes(5);
/// Largest answer stored.
const MAX_STORED_BODY: usize = 1024 * 1024;
/// Headers of an answer kept with it.
const KEPT_HEADERS: [HeaderName; 3] = [
    header::CONTENT_TYPE,
    header::LOCATION,
    HeaderName::from_static("x-wablast-position"),
];
/// How often expired keys are deleted.
const SWEEP_EVERY: TimeDelta = TimeDelta::minutes(10);

/// The middleware's state.
#[derive(Clone)]
pub struct Idempotency {
    state: AppState,
    next_sweep: Arc<AtomicI64>,
}

impl Idempotency {
    /// Keys kept in `state.db`.
    pub fn new(state: AppState) -> Self {
        Self {
            state,
            next_sweep: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Deletes expired keys, at most every [`SWEEP_EVERY`], in the
    /// background.
    fn sweep(&self) {
        let now = Utc::now().timestamp();
        let due = self.next_sweep.load(Ordering::Relaxed);
        if now < due
            || self
                .next_sweep
                .compare_exchange(
                    due,
                    now + SWEEP_EVERY.num_seconds(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        let db = self.state.db.clone();
        tokio::spawn(async move {
            if let Err(err) = sqlx::query("delete from idempotency_keys where expires_at < $1")
                .bind(Utc::now())
                .execute(&db)
                .await
            {
                tracing::warn!(error.message = %err, "expired idempotency keys not deleted");
            }
        });
    }
}

/// What a key is used for.
struct Target {
    method: String,
    path: String,
    fingerprint: Vec<u8>,
}

/// Whose key it is.
struct Scope {
    name: String,
    tenant_id: Option<Uuid>,
}

/// The middleware.
pub async fn guard(
    State(idempotency): State<Idempotency>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST
        || !applies_to(request.uri().path())
        || !request.headers().contains_key(HEADER)
    {
        return next.run(request).await;
    }
    match prepare(&idempotency, request).await {
        Ok(Prepared::Run(request, claim)) => run(request, claim, next).await,
        Ok(Prepared::PassThrough(request)) => next.run(request).await,
        Ok(Prepared::Answer(response)) => response,
        Err(err) => err.into_response(),
    }
}

/// Whether a POST to `path` may carry an `Idempotency-Key` (from a caller,
/// or to one of the [`ANONYMOUS`] paths).
pub fn applies_to(path: &str) -> bool {
    path.starts_with("/api/v1/")
}

enum Prepared {
    /// The key is ours: run the request.
    Run(Request, Claim),
    /// Not for us (no caller: the handler answers 401).
    PassThrough(Request),
    /// Answered from the stored row, or refused.
    Answer(Response),
}

/// A key claimed by this attempt.
struct Claim {
    db: PgPool,
    secret: [u8; 32],
    scope: String,
    key: String,
    id: Uuid,
    settled: bool,
}

impl Claim {
    /// Stores the answer: later attempts replay it.
    async fn complete(mut self, status: StatusCode, headers: &HeaderMap, body: &[u8]) {
        let kept: Map<String, Value> = KEPT_HEADERS
            .iter()
            .filter_map(|name| {
                let value = headers.get(name)?.to_str().ok()?;
                Some((name.as_str().to_owned(), Value::String(value.to_owned())))
            })
            .collect();
        let stored = sqlx::query(
            "update idempotency_keys
             set state = 'completed', status = $4, headers = $5, body = $6, completed_at = $7
             where scope = $1 and key = $2 and claim = $3 and state = 'pending'",
        )
        .bind(&self.scope)
        .bind(&self.key)
        .bind(self.id)
        .bind(i16::try_from(status.as_u16()).unwrap_or(i16::MAX))
        .bind(Value::Object(kept))
        .bind(seal(
            &self.secret,
            &sealing_context(&self.scope, &self.key),
            body,
        ))
        .bind(Utc::now())
        .execute(&self.db)
        .await;
        match stored {
            Ok(_) => self.settled = true,
            // The answer goes out anyway; the key is released so that a
            // retry runs again rather than waiting for a pending row.
            Err(err) => {
                tracing::warn!(error.message = %err, "idempotent answer not stored");
                self.release().await;
            }
        }
    }

    /// Gives the key up: the next attempt runs the request.
    async fn release(mut self) {
        self.settled = true;
        if let Err(err) = release(&self.db, &self.scope, &self.key, self.id).await {
            tracing::warn!(error.message = %err, "idempotency key not released");
        }
    }
}

async fn release(db: &PgPool, scope: &str, key: &str, claim: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "delete from idempotency_keys where scope = $1 and key = $2 and claim = $3 and state = 'pending'",
    )
    .bind(scope)
    .bind(key)
    .bind(claim)
    .execute(db)
    .await
    .map(drop)
}

impl Drop for Claim {
    // The request was dropped half-way (the client went away, a panic):
    // release the key rather than leave it pending.
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (db, scope, key, id) = (
                self.db.clone(),
                self.scope.clone(),
                self.key.clone(),
                self.id,
            );
            runtime.spawn(async move {
                let _ = release(&db, &scope, &key, id).await;
            });
        }
    }
}

async fn prepare(idempotency: &Idempotency, request: Request) -> Result<Prepared, ApiError> {
    let state = &idempotency.state;
    let key = parse_key(&request.headers()[HEADER])?;
    let (mut parts, body) = request.into_parts();
    let scope = if ANONYMOUS.contains(&parts.uri.path()) {
        Scope {
            name: "anonymous".to_owned(),
            tenant_id: None,
        }
    } else {
        // Authenticated here once; the handler's `Caller` finds it in the
        // request's extensions.
        match Caller::from_request_parts(&mut parts, state).await {
            Ok(caller) => Scope {
                name: match caller.credential {
                    Credential::User(id) => format!("user:{id}"),
                    Credential::ApiKey(id) => format!("api_key:{id}"),
                },
                tenant_id: Some(*caller.tenant_id.as_uuid()),
            },
            Err(_) => return Ok(Prepared::PassThrough(Request::from_parts(parts, body))),
        }
    };
    let limit = state
        .config
        .max_upload_bytes
        .max(state.config.max_body_bytes);
    let body = to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large("the request body is too large"))?;
    let fingerprint = fingerprint(&parts, &body);
    let target = Target {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        fingerprint,
    };
    let request = Request::from_parts(parts, Body::from(body));
    idempotency.sweep();
    // Twice at most: a row can vanish between the claim and the look (its
    // request released it).
    for _ in 0..2 {
        let claim = Uuid::now_v7();
        if claimed(&state.db, &scope, &key, &target, claim).await? {
            return Ok(Prepared::Run(
                request,
                Claim {
                    db: state.db.clone(),
                    secret: state.config.secret_key,
                    scope: scope.name,
                    key,
                    id: claim,
                    settled: false,
                },
            ));
        }
        if let Some(stored) = stored(&state.db, &scope, &key).await? {
            let context = sealing_context(&scope.name, &key);
            return Ok(Prepared::Answer(answer(
                stored,
                &target,
                &state.config.secret_key,
                &context,
            )?));
        }
    }
    Err(ApiError::new(
        ErrorCode::Conflict,
        "a request with this Idempotency-Key is in progress; try again",
    ))
}

fn parse_key(value: &HeaderValue) -> Result<String, ApiError> {
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|key| !key.is_empty() && key.len() <= MAX_KEY_LENGTH)
        .ok_or_else(|| {
            ApiError::validation(format!(
                "Idempotency-Key must be 1 to {MAX_KEY_LENGTH} visible ASCII characters"
            ))
            .with_details(json!({"header": "Idempotency-Key"}))
        })?;
    Ok(key.to_owned())
}

/// What makes two requests the same: method, path and query, media type,
/// and body (a multipart body without its boundary).
fn fingerprint(parts: &Parts, body: &[u8]) -> Vec<u8> {
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str());
    hasher.update(b"\n");
    hasher.update(parts.uri.to_string());
    hasher.update(b"\n");
    hasher.update(essence.to_ascii_lowercase());
    hasher.update(b"\n");
    match boundary(content_type) {
        Some(boundary) => {
            let needle = format!("--{boundary}");
            let mut rest = body;
            while let Some(at) = find(rest, needle.as_bytes()) {
                hasher.update(&rest[..at]);
                hasher.update(b"--boundary");
                rest = &rest[at + needle.len()..];
            }
            hasher.update(rest);
        }
        None => hasher.update(body),
    }
    hasher.finalize().to_vec()
}

/// The boundary of a `multipart/*` content type.
fn boundary(content_type: &str) -> Option<&str> {
    let (essence, parameters) = content_type.split_once(';')?;
    if !essence
        .trim()
        .to_ascii_lowercase()
        .starts_with("multipart/")
    {
        return None;
    }
    parameters.split(';').find_map(|parameter| {
        let (name, value) = parameter.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"'))
            .filter(|value| !value.is_empty())
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Claims the key for this attempt: a new key, or one whose row expired
/// or was abandoned. Whether it is ours.
async fn claimed(
    db: &PgPool,
    scope: &Scope,
    key: &str,
    target: &Target,
    claim: Uuid,
) -> Result<bool, sqlx::Error> {
    let now = Utc::now();
    let row = sqlx::query(
        "insert into idempotency_keys
             (scope, key, tenant_id, method, path, request_hash, state, claim, created_at, expires_at)
         values ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9)
         on conflict (scope, key) do update
             set tenant_id = excluded.tenant_id, method = excluded.method, path = excluded.path,
                 request_hash = excluded.request_hash, state = 'pending', claim = excluded.claim,
                 status = null, headers = null, body = null, completed_at = null,
                 created_at = excluded.created_at, expires_at = excluded.expires_at
             where idempotency_keys.expires_at < $8
                or (idempotency_keys.state = 'pending' and idempotency_keys.created_at < $10)
         returning claim",
    )
    .bind(&scope.name)
    .bind(key)
    .bind(scope.tenant_id)
    .bind(&target.method)
    .bind(&target.path)
    .bind(&target.fingerprint)
    .bind(claim)
    .bind(now)
    .bind(now + KEEP)
    .bind(now - ABANDONED_AFTER)
    .fetch_optional(db)
    .await?;
    Ok(row.is_some())
}

/// A key's row as another attempt left it.
#[derive(sqlx::FromRow)]
struct Stored {
    method: String,
    path: String,
    request_hash: Vec<u8>,
    state: String,
    status: Option<i16>,
    headers: Option<Value>,
    body: Option<Vec<u8>>,
    expires_at: DateTime<Utc>,
}

async fn stored(db: &PgPool, scope: &Scope, key: &str) -> Result<Option<Stored>, sqlx::Error> {
    sqlx::query_as(
        "select method, path, request_hash, state, status, headers, body, expires_at
         from idempotency_keys where scope = $1 and key = $2",
    )
    .bind(&scope.name)
    .bind(key)
    .fetch_optional(db)
    .await
}

/// The answer to a request whose key another attempt holds.
fn answer(
    stored: Stored,
    target: &Target,
    secret: &[u8; 32],
    context: &[u8],
) -> Result<Response, ApiError> {
    if stored.method != target.method
        || stored.path != target.path
        || stored.request_hash != target.fingerprint
    {
        return Err(ApiError::new(
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was used for a different request; use a new key",
        ));
    }
    if stored.state != "completed" || stored.expires_at < Utc::now() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "a request with this Idempotency-Key is in progress; try again",
        ));
    }
    let status = stored
        .status
        .and_then(|status| u16::try_from(status).ok())
        .and_then(|status| StatusCode::from_u16(status).ok())
        .ok_or_else(|| ApiError::internal("a stored idempotent answer has no status"))?;
    let body = open(secret, context, &stored.body.unwrap_or_default())
        .map_err(|_| ApiError::internal("a stored idempotent answer does not decrypt"))?;
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Some(Value::Object(kept)) = stored.headers {
        for (name, value) in kept {
            if let (Ok(name), Some(Ok(value))) = (
                HeaderName::try_from(name),
                value.as_str().map(HeaderValue::from_str),
            ) {
                headers.insert(name, value);
            }
        }
    }
    headers.insert(
        HeaderName::from_static(REPLAYED),
        HeaderValue::from_static("true"),
    );
    Ok(response)
}

/// What a stored body is bound to: its row.
fn sealing_context(scope: &str, key: &str) -> Vec<u8> {
    [scope.as_bytes(), b"\n", key.as_bytes()].concat()
}

/// Encrypts `plain` (AES-256-GCM): a random nonce, then the ciphertext.
fn seal(secret: &[u8; 32], context: &[u8], plain: &[u8]) -> Vec<u8> {
    SecretKey::new(*secret).seal(context, plain)
}

/// Decrypts what [`seal`] made.
fn open(secret: &[u8; 32], context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, aes_gcm::Error> {
    SecretKey::new(*secret)
        .open(context, sealed)
        .ok_or(aes_gcm::Error)
}

/// Whether an answer with this status is kept for replays.
fn kept(status: StatusCode) -> bool {
    (status.is_success() || status.is_client_error())
        && !matches!(status.as_u16(), 408 | 409 | 425 | 429)
}

async fn run(request: Request, claim: Claim, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let small = response
        .body()
        .size_hint()
        .upper()
        .is_some_and(|size| size <= MAX_STORED_BODY as u64);
    if !kept(status) || !small {
        claim.release().await;
        return response;
    }
    let (parts, body) = response.into_parts();
    match to_bytes(body, MAX_STORED_BODY).await {
        Ok(body) => {
            claim.complete(status, &parts.headers, &body).await;
            Response::from_parts(parts, Body::from(body))
        }
        Err(err) => {
            claim.release().await;
            ApiError::internal(format!("answer unreadable: {err}")).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(content_type: &str) -> Parts {
        let (parts, ()) = axum::http::Request::builder()
            .method(Method::POST)
            .uri("/api/v1/media")
            .header(header::CONTENT_TYPE, content_type)
            .body(())
            .unwrap()
            .into_parts();
        parts
    }

    fn multipart(boundary: &str, content: &str) -> Vec<u8> {
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\n\r\n{content}\r\n--{boundary}--\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn multipart_bodies_compare_without_their_boundary() {
        let one = fingerprint(
            &parts("multipart/form-data; boundary=abc123"),
            &multipart("abc123", "%PDF-1.4"),
        );
        let two = fingerprint(
            &parts("multipart/form-data; boundary=\"zz9\""),
            &multipart("zz9", "%PDF-1.4"),
        );
        let other = fingerprint(
            &parts("multipart/form-data; boundary=zz9"),
            &multipart("zz9", "%PDF-1.5"),
        );

        assert_eq!(one, two);
        assert_ne!(one, other);
    }

    #[test]
    fn json_bodies_compare_byte_for_byte() {
        let json = parts("application/json");
        assert_eq!(
            fingerprint(&json, b"{\"name\":\"a\"}"),
            fingerprint(&json, b"{\"name\":\"a\"}")
        );
        assert_ne!(
            fingerprint(&json, b"{\"name\":\"a\"}"),
            fingerprint(&json, b"{\"name\":\"b\"}")
        );
    }

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert_eq!(
            parse_key(&HeaderValue::from_static(" order-42 ")).unwrap(),
            "order-42"
        );
        assert!(parse_key(&HeaderValue::from_static("")).is_err());
        assert!(parse_key(&HeaderValue::from_str(&"k".repeat(256)).unwrap()).is_err());
        assert!(parse_key(&HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap()).is_err());
    }

    #[test]
    fn stored_bodies_are_sealed_to_their_row() {
        let secret = [9; 32];
        let sealed = seal(&secret, b"user:1\nk", b"{\"key\":\"wbk_secret\"}");

        assert!(!String::from_utf8_lossy(&sealed).contains("wbk_secret"));
        assert_eq!(
            open(&secret, b"user:1\nk", &sealed).unwrap(),
            b"{\"key\":\"wbk_secret\"}"
        );
        assert!(open(&secret, b"user:2\nk", &sealed).is_err());
        assert!(open(&[8; 32], b"user:1\nk", &sealed).is_err());
        assert!(open(&secret, b"user:1\nk", &sealed[..10]).is_err());
    }

    #[test]
    fn retryable_and_server_errors_are_not_kept() {
        assert!(kept(StatusCode::CREATED));
        assert!(kept(StatusCode::UNPROCESSABLE_ENTITY));
        assert!(kept(StatusCode::BAD_REQUEST));
        assert!(!kept(StatusCode::CONFLICT));
        assert!(!kept(StatusCode::TOO_MANY_REQUESTS));
        assert!(!kept(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(!kept(StatusCode::SERVICE_UNAVAILABLE));
    }
}
