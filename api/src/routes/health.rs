//! `/healthz` (the process is alive) and `/readyz` (it can serve: NATS and
//! PostgreSQL actually answer).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// How long a dependency may take to answer a readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness and what it was decided on.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// Each dependency checked.
    pub checks: Checks,
}

/// The dependencies a ready process needs.
#[derive(Debug, Serialize, ToSchema)]
pub struct Checks {
    /// NATS with JetStream.
    pub nats: Check,
    /// PostgreSQL.
    pub postgres: Check,
}

/// One dependency's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    /// Whether it answered in time.
    pub ok: bool,
    /// Why not, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Check {
    fn from(result: Result<(), String>) -> Self {
        match result {
            Ok(()) => Self {
                ok: true,
                error: None,
            },
            Err(error) => Self {
                ok: false,
                error: Some(error),
            },
        }
    }
}

/// The process can serve: NATS JetStream and PostgreSQL answer.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "A dependency does not answer", body = Readiness),
    ))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let nats = async {
        match tokio::time::timeout(PROBE_TIMEOUT, state.log.ping()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(format!("jetstream: {err}")),
            Err(_) => Err("jetstream did not answer in time".to_owned()),
        }
    };
    let postgres = async {
        let probe = sqlx::query_scalar::<_, i32>("select 1").fetch_one(&state.db);
        match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(format!("postgres: {err}")),
            Err(_) => Err("postgres did not answer in time".to_owned()),
        }
    };
    let (nats, postgres) = tokio::join!(nats, postgres);
    let ready = nats.is_ok() && postgres.is_ok();
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        checks: Checks {
            nats: Check::from(nats),
            postgres: Check::from(postgres),
        },
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
