//! `/healthz` (the process is alive) and `/readyz` (it can serve: NATS and
//! PostgreSQL actually answer, and no projection is too far behind the log).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use wablast_projections::lag::Lag;

use crate::{AppState, Readiness as Thresholds};

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
    /// Every projection within the allowed lag (commits behind, age of the
    /// oldest commit not yet applied).
    pub projections: Check,
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

/// The process can serve: NATS JetStream and PostgreSQL answer, and no
/// projection is more commits behind the log, or has left a commit waiting
/// longer, than allowed (`WABLAST_READY_MAX_LAG`,
/// `WABLAST_READY_MAX_LAG_SECONDS`).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "A dependency does not answer, or a projection is too far behind", body = Readiness),
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
    let projections = async {
        let lags = measure_lag(&state)
            .await
            .map_err(|err| format!("projection lag could not be measured: {err}"))?;
        too_far_behind(&lags, state.readiness, chrono::Utc::now())
    };
    let (nats, postgres, projections) = tokio::join!(nats, postgres, projections);
    let ready = nats.is_ok() && postgres.is_ok() && projections.is_ok();
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        checks: Checks {
            nats: Check::from(nats),
            postgres: Check::from(postgres),
            projections: Check::from(projections),
        },
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// The lag of every projection, or why it could not be measured in time.
pub(crate) async fn measure_lag(state: &AppState) -> Result<Vec<Lag>, String> {
    let projections = wablast_projections::all();
    let measuring = wablast_projections::lag::measure(&state.db, &state.log, &projections);
    match tokio::time::timeout(PROBE_TIMEOUT, measuring).await {
        Ok(Ok(lags)) => Ok(lags),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("no answer in time".to_owned()),
    }
}

/// `Err` naming every projection (and stream) further behind than allowed.
fn too_far_behind(
    lags: &[Lag],
    allowed: Thresholds,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), String> {
    let max_age = allowed.max_lag_age.as_secs_f64();
    let behind: Vec<String> = lags
        .iter()
        .filter(|lag| lag.behind() > allowed.max_lag || lag.age_seconds(now) > max_age)
        .map(|lag| {
            format!(
                "projection {} on stream {}: {} commits behind (max {}), oldest waiting {:.1}s (max {}s)",
                lag.projection,
                lag.stream.name(),
                lag.behind(),
                allowed.max_lag,
                lag.age_seconds(now),
                max_age,
            )
        })
        .collect();
    if behind.is_empty() {
        Ok(())
    } else {
        Err(behind.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use wablast_projections::LogStream;

    use super::*;

    fn lag(behind: u64, waiting_seconds: i64) -> Lag {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        Lag {
            projection: "sessions",
            stream: LogStream::Events,
            last_sequence: 100,
            checkpoint: 100 - behind,
            oldest_unprojected_at: (behind > 0)
                .then(|| now - chrono::Duration::seconds(waiting_seconds)),
        }
    }

    fn thresholds(max_lag: u64, max_age_seconds: u64) -> Thresholds {
        Thresholds {
            max_lag,
            max_lag_age: Duration::from_secs(max_age_seconds),
        }
    }

    fn now() -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
    }

    #[test]
    fn caught_up_projections_are_ready() {
        assert_eq!(
            too_far_behind(&[lag(0, 0)], thresholds(0, 0), now()),
            Ok(())
        );
    }

    #[test]
    fn within_both_thresholds_is_ready() {
        assert_eq!(
            too_far_behind(&[lag(5, 10)], thresholds(5, 10), now()),
            Ok(())
        );
    }

    #[test]
    fn too_many_commits_behind_is_not_ready_and_says_which() {
        let err = too_far_behind(&[lag(6, 1)], thresholds(5, 30), now()).unwrap_err();

        assert!(err.contains("sessions"), "{err}");
        assert!(err.contains("events"), "{err}");
        assert!(err.contains("6 commits behind (max 5)"), "{err}");
        assert!(err.contains("1.0s"), "{err}");
    }

    #[test]
    fn a_commit_waiting_too_long_is_not_ready_however_few_are_behind() {
        let err = too_far_behind(&[lag(1, 31)], thresholds(10_000, 30), now()).unwrap_err();

        assert!(err.contains("1 commits behind"), "{err}");
        assert!(err.contains("oldest waiting 31.0s (max 30s)"), "{err}");
    }
}
