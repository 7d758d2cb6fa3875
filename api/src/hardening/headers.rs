//! Security headers on every answer, and CORS from configuration.

use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The policy of everything but the docs: JSON (and files served as
/// attachments) need nothing loaded, and nothing may frame them.
const API_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// Swagger UI's needs: its own scripts and styles (it sets inline styles),
/// data: images, and calls to this origin (`/openapi.json`, "Try it out").
const DOCS_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'none'";

/// Adds the security headers a handler did not set itself:
/// `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`,
/// `Referrer-Policy: no-referrer`, a `Content-Security-Policy` (a looser
/// one for `/docs`), and `Cache-Control: no-store` on `/api` answers (they
/// are per caller, often secret).
pub async fn security_headers(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let docs = path == "/docs" || path.starts_with("/docs/");
    let api = path.starts_with("/api/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let mut set = |name: HeaderName, value: &'static str| {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    };
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "no-referrer");
    set(
        header::CONTENT_SECURITY_POLICY,
        if docs { DOCS_POLICY } else { API_POLICY },
    );
    if api {
        set(header::CACHE_CONTROL, "no-store");
    }
    response
}

/// Headers a browser may send cross-origin.
const ALLOWED_HEADERS: [&str; 6] = [
    "authorization",
    "content-type",
    "x-api-key",
    "idempotency-key",
    "x-wablast-position",
    "last-event-id",
];

/// Headers a browser script may read.
const EXPOSED_HEADERS: [&str; 4] = [
    "x-request-id",
    "x-wablast-position",
    "retry-after",
    "idempotent-replayed",
];

/// CORS for `origins` (`*`: any); `None` when there are none: no CORS
/// headers, browsers keep other origins out. Credentials travel in headers,
/// never cookies, so none are allowed.
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        // Browsers send `Origin` without a trailing slash.
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|origin| {
                let origin = origin.trim().trim_end_matches('/');
                HeaderValue::from_str(origin)
                    .inspect_err(|_| tracing::warn!(%origin, "ignoring an unusable CORS origin"))
                    .ok()
            })
            .collect();
        AllowOrigin::list(list)
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers(ALLOWED_HEADERS.map(HeaderName::from_static))
            .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
            .max_age(Duration::from_secs(3600)),
    )
}
