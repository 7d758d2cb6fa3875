//! What stands between the Internet and the handlers, wired in
//! [`crate::router`].
//!
//! # Layout
//!
//! - [`rate_limit`]: per credential and per client address, 429 with
//!   `Retry-After`.
//! - [`headers`]: security headers on every answer; CORS from
//!   configuration.
//! - [`error_shape`]: errors produced outside our handlers (axum's 405,
//!   a body limit's plain-text 413) answered in the API's error shape, and
//!   the request id in the details of a 5xx.
//! - [`idempotency`]: `Idempotency-Key` on POSTs.
//! - [`contract`]: what these layers answer, in the OpenAPI document of
//!   every operation.
//! - [`request_span`]: the request id in every log line of a request.
//! - [`docs`]: Swagger UI at `/docs`.
//!
//! Request body limits: `DefaultBodyLimit` at `max_body_bytes` for every
//! route (the JSON extractor answers 413 `payload_too_large`); upload routes
//! set their own, larger limit on their route.

pub mod contract;
pub mod error_shape;
pub mod headers;
pub mod idempotency;
pub mod rate_limit;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use utoipa_swagger_ui::{Config, SwaggerUi};

/// The header carrying a request's id (set when the client sent none).
pub const REQUEST_ID: &str = "x-request-id";

/// The tracing span of one request: method, path and request id, so that
/// every line logged while answering it can be found by the id the client
/// saw.
pub fn request_span(request: &Request<Body>) -> tracing::Span {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
    )
}

/// Swagger UI at `/docs/` (`/docs` redirects there), browsing
/// `/openapi.json`. Its files are built into the binary: it works offline.
pub fn docs<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    SwaggerUi::new("/docs")
        // No call to the public validator: offline, and nothing leaves.
        .config(Config::from("/openapi.json").validator_url("none"))
        .into()
}
