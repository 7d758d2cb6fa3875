//! The REST API of wablast: axum routes, the one error shape, OpenAPI.
//!
//! # Layout
//!
//! - [`routes`]: one module per resource, each exposing `router()`, merged
//!   in [`router`].
//! - [`error`]: [`ApiError`], the `{"error": {code, message, details}}` shape.
//! - [`openapi()`]: the OpenAPI document, built from the same routes.

pub mod error;
pub mod routes;

use axum::Router;
use axum::routing::get;
use sqlx::PgPool;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use wablast_eventstore::EventLog;

pub use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The query tables.
    pub db: PgPool,
    /// The event log.
    pub log: EventLog,
    /// When a projection counts as too far behind to serve.
    pub readiness: Readiness,
}

/// When `/readyz` says the projections are too far behind to serve.
#[derive(Clone, Copy, Debug)]
pub struct Readiness {
    /// Most commits a projection may be behind the log.
    pub max_lag: u64,
    /// Oldest a commit not yet projected may be.
    pub max_lag_age: std::time::Duration,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            max_lag: 10_000,
            max_lag_age: std::time::Duration::from_secs(30),
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wablast",
        description = "Multi-tenant WhatsApp broadcast backend: sessions, contacts, campaigns, wallet, events.",
        license(name = "Proprietary"),
    ),
    tags((name = "operations", description = "Health, readiness, metrics")),
    components(schemas(error::ErrorBody)),
)]
struct ApiDoc;

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::health::router())
        .merge(routes::metrics::router())
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    // Before the first request, so that none goes unrecorded.
    routes::metrics::install();
    let (routes, openapi) = api_router().split_for_parts();
    let header = axum::http::HeaderName::from_static("x-request-id");
    routes
        .route(
            "/openapi.json",
            get(move || async move { axum::Json(openapi) }),
        )
        .fallback(error::no_such_route)
        .with_state(state)
        // Per route (and fallback), so it sees the matched route template.
        .layer(axum::middleware::from_fn(routes::metrics::track))
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::new(header, MakeRequestUuid))
}
