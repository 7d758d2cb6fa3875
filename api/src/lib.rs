//! The REST API of wablast: axum routes, the one error shape, OpenAPI.
//!
//! # Layout
//!
//! - [`routes`]: one module per resource, each exposing `router()`, merged
//!   in [`router`].
//! - [`error`]: [`ApiError`], the `{"error": {code, message, details}}` shape.
//! - [`auth`]: who is calling ([`auth::Caller`]), tokens, passwords, API keys.
//! - [`commands`]: one command handler per aggregate, refusals mapped to
//!   errors.
//! - [`extract`]: `Json`, `Path`, `Query` answering bad input in the error
//!   shape; [`list`]: pagination; [`consistency`]: read-your-writes.
//! - [`contacts`]: contact lists imported from CSV or XLSX, or written
//!   as JSON rows.
//! - [`console`]: the web console at `/`, embedded at build time (the
//!   router's fallback; never in the OpenAPI document).
//! - [`receipt`]: a paid order's receipt as a PDF.
//! - [`openapi()`]: the OpenAPI document, built from the same routes.

pub mod auth;
pub(crate) mod commands;
pub(crate) mod config;
pub(crate) mod consistency;
pub(crate) mod console;
pub mod contacts;
pub(crate) mod error;
pub(crate) mod extract;
pub(crate) mod hardening;

pub(crate) mod list;
pub(crate) mod media;
pub mod receipt;
pub(crate) mod routes;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use wablast_eventstore::EventLog;
use wablast_workflows::direct_sends::DirectSends;

pub use auth::Caller;
pub use auth::token::Tokens;
pub use commands::Commands;
pub use config::ApiConfig;
pub use error::{ApiError, ErrorCode};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The query tables.
    pub db: PgPool,
    /// The event log.
    pub log: EventLog,
    /// When a projection counts as too far behind to serve.
    pub readiness: Readiness,
    /// One command handler per aggregate type.
    pub commands: Commands,
    /// Issues and checks access tokens.
    pub tokens: Arc<Tokens>,
    /// The API's settings.
    pub config: Arc<ApiConfig>,
    /// Cancelled when the server shuts down: ends responses that would
    /// otherwise never finish (event streams).
    pub shutdown: CancellationToken,
    /// Each credential's last writes, which its reads wait for.
    pub recent_writes: Arc<consistency::RecentWrites>,
    /// Single sends (the gateway's one message to one recipient).
    pub direct_sends: Arc<DirectSends>,
    /// Sends webhook pings.
    pub webhooks: wablast_workflows::webhooks::Sender,
    /// Payments through Midtrans (refused when not configured).
    pub payments: Arc<wablast_workflows::payments::Payments>,
    /// Who may act now (suspensions, team standings), in memory.
    pub access: Arc<auth::access::Access>,
}

impl AppState {
    /// The state of an API over `db` and `log`.
    pub fn new(db: PgPool, log: EventLog, config: ApiConfig, jwt_secret: &[u8]) -> Self {
        let commands = Commands::new(&log);
        let midtrans = config.midtrans.clone().and_then(|midtrans| {
            wablast_workflows::payments::midtrans::Midtrans::new(midtrans)
                .map_err(|err| {
                    tracing::error!(error = %wablast_eventstore::report::Chain(&err), "cannot build the Midtrans client: payments are refused");
                })
                .ok()
        });
        let payments = Arc::new(wablast_workflows::payments::Payments::new(
            commands.clone(),
            log.clone(),
            db.clone(),
            midtrans,
            Arc::new(wablast_workflows::clock::SystemClock),
            config.topup_pricing,
        ));
        Self {
            payments,
            access: auth::access::Access::new(db.clone(), log.clone()),
            direct_sends: Arc::new(DirectSends::new(commands.clone(), log.clone(), db.clone())),
            webhooks: wablast_workflows::webhooks::Sender::new(
                &config.webhooks,
                wablast_workflows::credentials::SecretKey::new(config.secret_key),
            ),
            commands,
            tokens: Arc::new(Tokens::new(jwt_secret, config.token_ttl)),
            db,
            log,
            readiness: Readiness::default(),
            config: Arc::new(config),
            shutdown: CancellationToken::new(),
            recent_writes: Arc::default(),
        }
    }
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
    tags(
        (name = "auth", description = "Accounts, logins and API keys"),
        (name = "members", description = "A tenant's team: invitations, roles, removal"),
        (name = "sessions", description = "Linked WhatsApp numbers"),
        (name = "contacts", description = "Contact lists imported from CSV or XLSX, or written as JSON rows"),
        (name = "media", description = "Uploaded attachments"),
        (name = "campaigns", description = "Broadcasts and their messages"),
        (name = "messages", description = "The gateway: send one message; every message sent and received"),
        (name = "wallet", description = "Points, plans and transactions"),
        (name = "schedule", description = "Active hours"),
        (name = "auto-replies", description = "Automatic answers to inbound messages"),
        (name = "events", description = "The tenant's events as Server-Sent Events; webhooks"),
        (name = "hooks", description = "Webhooks from the drivers' servers (WAHA, the WhatsApp Cloud API) and the payment gateway (Midtrans), signed by them"),
        (name = "billing", description = "Buying plans and points through Midtrans; orders and receipts"),
        (name = "admin", description = "Platform operator: plans, grants, tenants, users, suspensions, statistics"),
        (name = "fleet", description = "Platform operator: the session engines, drains and moves"),
        (name = "operations", description = "Health, readiness, metrics"),
    ),
    modifiers(&SecuritySchemes),
    components(schemas(error::ErrorBody)),
)]
struct ApiDoc;

/// The two ways to authenticate: `bearer` (a user's JWT) and `api_key`.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("A user's access token from POST /api/v1/auth/login"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Api-Key",
                "A tenant's API key from POST /api/v1/api-keys",
            ))),
        );
    }
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::health::router())
        .merge(routes::metrics::router())
        .merge(routes::auth::router())
        .merge(routes::members::router())
        .merge(routes::admin::router())
        .merge(routes::fleet::router())
        .merge(routes::sessions::router())
        .merge(routes::contacts::router())
        .merge(routes::media::router())
        .merge(routes::campaigns::router())
        .merge(routes::messages::router())
        .merge(routes::chats::router())
        .merge(routes::groups::router())
        .merge(routes::numbers::router())
        .merge(routes::list_checks::router())
        .merge(routes::templates::router())
        .merge(routes::wallet::router())
        .merge(routes::stats::router())
        .merge(routes::billing::router())
        .merge(routes::schedule::router())
        .merge(routes::auto_replies::router())
        .merge(routes::events::router())
        .merge(routes::webhooks::router())
        .merge(routes::hooks::router())
}

/// The routes and their OpenAPI document, with what the layers of
/// [`router`] answer ([`hardening::contract`]).
fn routes_and_openapi() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, mut openapi) = api_router().split_for_parts();
    hardening::contract::document(&mut openapi);
    (routes, openapi)
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes_and_openapi().1
}

/// The whole HTTP application.
///
/// Layers, from the outside in: request id (set, traced, propagated),
/// security headers, CORS (when configured), metrics, the error shape,
/// rate limits, the body limit, `Idempotency-Key`, the caller's writes
/// remembered for its reads; then the route.
pub fn router(state: AppState) -> Router {
    use axum::extract::DefaultBodyLimit;
    use axum::middleware::{from_fn, from_fn_with_state};

    // Before the first request, so that none goes unrecorded.
    routes::metrics::install();
    let (routes, openapi) = routes_and_openapi();
    let header = axum::http::HeaderName::from_static(hardening::REQUEST_ID);
    let config = state.config.clone();
    let limits =
        hardening::rate_limit::RateLimits::new(config.rate_limit_per_ip, config.rate_limit_per_key);
    let idempotency = hardening::idempotency::Idempotency::new(state.clone());
    let recent_writes = state.recent_writes.clone();
    // Every `layer` below wraps each route (and the fallback) on its own,
    // so each sees the matched route template.
    let mut app = routes
        .route(
            "/openapi.json",
            get(move || async move { axum::Json(openapi) }),
        )
        .merge(hardening::docs())
        .fallback(console::fallback)
        .with_state(state)
        .layer(from_fn_with_state(
            recent_writes,
            consistency::remember_writes,
        ))
        .layer(from_fn_with_state(
            idempotency,
            hardening::idempotency::guard,
        ))
        // Upload routes set a larger limit of their own, closer to them.
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(from_fn_with_state(limits, hardening::rate_limit::enforce))
        .layer(from_fn(hardening::error_shape::error_shape))
        .layer(from_fn(routes::metrics::track));
    if let Some(cors) = hardening::headers::cors(&config.cors_origins) {
        app = app.layer(cors);
    }
    app.layer(from_fn(hardening::headers::security_headers))
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(hardening::request_span))
        .layer(SetRequestIdLayer::new(header, MakeRequestUuid))
}
