//! The engine fleet, for the platform operator: the live engines with
//! their load, the sessions each runs, drains (maintenance: an engine
//! hands its sessions to the others and takes none until undrained) and
//! moves of one session, optionally pinning it to an engine (a dedicated
//! number). The engines carry these out themselves
//! ([`wablast_workflows::fleet`]); this module checks what can be done and
//! asks. Every route answers 403 to anyone but the admin.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wablast_domain::session::SessionStatus;
use wablast_domain::types::SessionId;
use wablast_eventstore::EventStoreError;
use wablast_projections::queries::sessions;
use wablast_workflows::fleet::{
    EngineInfo, EngineRegistry, FleetControl, FleetRefusal, FleetReply, FleetVerb, MoveRequest,
    SendingHold, fleet_subject,
};

use crate::auth::{Caller, Role};
use crate::error::{ErrorBody, ErrorCode};
use crate::extract::{Json, Path};
use crate::{ApiError, AppState};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_engines))
        .routes(routes!(engine_sessions))
        .routes(routes!(drain))
        .routes(routes!(undrain))
        .routes(routes!(move_session))
        .routes(routes!(unpin))
}

/// The statuses of a session that should run on an engine.
const RUNNING: [SessionStatus; 6] = [
    SessionStatus::Starting,
    SessionStatus::Qr,
    SessionStatus::Pairing,
    SessionStatus::Authenticated,
    SessionStatus::Ready,
    SessionStatus::Disconnected,
];

/// How long an engine has to carry out a move (its hand-over waits up to
/// 8 s for the taker).
const MOVE_ANSWER: Duration = Duration::from_secs(15);

/// One live session engine.
#[derive(Debug, Serialize, ToSchema)]
pub struct EngineView {
    /// Its id (`WABLAST_ENGINE_ID`).
    pub id: String,
    /// The machine it runs on.
    pub host: String,
    /// The wablast version it runs.
    pub version: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub last_heartbeat_at: DateTime<Utc>,
    /// Sessions it runs.
    pub sessions: u64,
    /// Messages it sent in the last minute.
    pub sends_per_minute: u64,
    /// Its resident memory in bytes (null where the system does not say).
    pub memory_rss_bytes: Option<u64>,
    /// Drained: it takes no session until undrained.
    pub drained: bool,
    /// Every send of its sessions held for now (too many of its sessions
    /// failed within minutes), until when and why; null while it sends.
    pub sending_held: Option<SendingHold>,
}

impl EngineView {
    fn of(info: EngineInfo, drained: bool) -> Self {
        Self {
            id: info.engine,
            host: info.host,
            version: info.version,
            started_at: info.started_at,
            last_heartbeat_at: info.heartbeat_at,
            sessions: info.sessions as u64,
            sends_per_minute: info.sends_per_minute,
            memory_rss_bytes: info.memory_rss_bytes,
            drained,
            sending_held: info.sending_held.filter(|hold| hold.until > Utc::now()),
        }
    }
}

/// The live engines.
#[derive(Debug, Serialize, ToSchema)]
pub struct EngineList {
    /// By id.
    pub items: Vec<EngineView>,
}

/// A session an engine runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct EngineSession {
    /// The session.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// Its name.
    pub name: String,
    /// Its status.
    pub status: String,
    /// Its driver.
    pub driver: String,
    /// The engine it is pinned to, if any.
    pub pinned_to: Option<String>,
}

/// The sessions of one engine.
#[derive(Debug, Serialize, ToSchema)]
pub struct EngineSessions {
    /// By id.
    pub items: Vec<EngineSession>,
}

/// Where to move a session.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    /// The engine to run it on; absent: the least-loaded other engine.
    pub engine_id: Option<String>,
    /// Keep it on `engine_id` from now on (a dedicated number): it goes
    /// back there whenever it needs an engine and that one is live.
    /// Needs `engine_id`.
    #[serde(default)]
    pub pin: bool,
}

/// A session moved.
#[derive(Debug, Serialize, ToSchema)]
pub struct Moved {
    /// The session.
    pub session_id: Uuid,
    /// The engine that ran it.
    pub from: String,
    /// The engine that runs it now.
    pub to: String,
    /// The engine it is pinned to, if any.
    pub pinned_to: Option<String>,
}

fn unreachable(err: EventStoreError) -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        format!("the fleet cannot be read (NATS unreachable): {err}"),
    )
}

async fn registry(state: &AppState) -> Result<Option<EngineRegistry>, ApiError> {
    EngineRegistry::find(state.log.jetstream(), state.log.prefix())
        .await
        .map_err(unreachable)
}

async fn control(state: &AppState) -> Result<FleetControl, ApiError> {
    FleetControl::open(state.log.jetstream(), state.log.prefix())
        .await
        .map_err(unreachable)
}

/// The live engine `id`, or 404 `not_found`.
async fn live_engine(state: &AppState, id: &str) -> Result<EngineInfo, ApiError> {
    let not_found = || ApiError::not_found(&format!("engine {id:?}"));
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(not_found());
    }
    let Some(registry) = registry(state).await? else {
        return Err(not_found());
    };
    registry
        .get(id)
        .await
        .map_err(unreachable)?
        .ok_or_else(not_found)
}

/// The live engines with their load.
#[utoipa::path(get, path = "/api/v1/admin/engines", tag = "fleet",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The live engines", body = EngineList),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not the platform admin", body = ErrorBody),
        (status = 503, description = "`unavailable`: NATS unreachable", body = ErrorBody),
    ))]
async fn list_engines(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<EngineList>, ApiError> {
    caller.require(Role::Admin)?;
    let Some(registry) = registry(&state).await? else {
        return Ok(axum::Json(EngineList { items: Vec::new() }));
    };
    let engines = registry.live().await.map_err(unreachable)?;
    let (drained, _) = control(&state).await?.marks().await.map_err(unreachable)?;
    let items = engines
        .into_iter()
        .map(|info| {
            let is = drained.contains(&info.engine) || info.draining;
            EngineView::of(info, is)
        })
        .collect();
    Ok(axum::Json(EngineList { items }))
}

/// The sessions an engine runs.
#[utoipa::path(get, path = "/api/v1/admin/engines/{id}/sessions", tag = "fleet",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Engine id")),
    responses(
        (status = 200, description = "Its sessions", body = EngineSessions),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not the platform admin", body = ErrorBody),
        (status = 404, description = "No such live engine", body = ErrorBody),
        (status = 503, description = "`unavailable`: NATS unreachable", body = ErrorBody),
    ))]
async fn engine_sessions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<EngineSessions>, ApiError> {
    caller.require(Role::Admin)?;
    live_engine(&state, &id).await?;
    let (_, pins) = control(&state).await?.marks().await.map_err(unreachable)?;
    let rows = sessions::held_by(&state.db, &id, &RUNNING)
        .await
        .map_err(ApiError::from)?;
    let items = rows
        .into_iter()
        .map(|row| EngineSession {
            pinned_to: pins.get(&row.id.to_string()).cloned(),
            id: row.id,
            tenant_id: row.tenant_id,
            name: row.name,
            status: row.status,
            driver: row.driver,
        })
        .collect();
    Ok(axum::Json(EngineSessions { items }))
}

/// Asks `engine` to look at its drain mark again.
async fn tell(state: &AppState, engine: &str) {
    let subject = fleet_subject(state.log.prefix(), engine, FleetVerb::Drain);
    let client = state.log.jetstream().client();
    let asked = tokio::time::timeout(
        Duration::from_secs(3),
        client.request(subject, Vec::new().into()),
    )
    .await;
    if !matches!(asked, Ok(Ok(_))) {
        tracing::warn!(%engine, "engine did not answer; it reads its drain mark at its next heartbeat");
    }
}

/// Drains an engine (maintenance): it hands its sessions to the other
/// engines one at a time, without a pause in their sending longer than a
/// hand-over, and takes none until undrained. Its mark is kept across its
/// restarts.
#[utoipa::path(post, path = "/api/v1/admin/engines/{id}/drain", tag = "fleet",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Engine id")),
    responses(
        (status = 202, description = "Draining: its sessions leave it one by one", body = EngineView),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not the platform admin", body = ErrorBody),
        (status = 404, description = "No such live engine", body = ErrorBody),
        (status = 409, description = "`no_engine_available`: no other live, undrained engine would take its sessions", body = ErrorBody),
        (status = 503, description = "`unavailable`: NATS unreachable", body = ErrorBody),
    ))]
async fn drain(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, axum::Json<EngineView>), ApiError> {
    caller.require(Role::Admin)?;
    let info = live_engine(&state, &id).await?;
    let control = control(&state).await?;
    let (drained, _) = control.marks().await.map_err(unreachable)?;
    let Some(registry) = registry(&state).await? else {
        return Err(ApiError::not_found(&format!("engine {id:?}")));
    };
    let others = registry
        .live()
        .await
        .map_err(unreachable)?
        .into_iter()
        .filter(|e| e.engine != id && !e.draining && !drained.contains(&e.engine))
        .count();
    if others == 0 && !drained.contains(&id) {
        return Err(ApiError::new(
            ErrorCode::NoEngineAvailable,
            format!("no other live, undrained engine would take the sessions of {id}"),
        ));
    }
    control.drain(&id).await.map_err(unreachable)?;
    tracing::info!(engine = %id, "engine drained by the operator");
    tell(&state, &id).await;
    Ok((StatusCode::ACCEPTED, axum::Json(EngineView::of(info, true))))
}

/// Lifts an engine's drain: it takes sessions again.
#[utoipa::path(post, path = "/api/v1/admin/engines/{id}/undrain", tag = "fleet",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Engine id")),
    responses(
        (status = 202, description = "Taking sessions again", body = EngineView),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not the platform admin", body = ErrorBody),
        (status = 404, description = "No such live engine", body = ErrorBody),
        (status = 503, description = "`unavailable`: NATS unreachable", body = ErrorBody),
    ))]
async fn undrain(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, axum::Json<EngineView>), ApiError> {
    caller.require(Role::Admin)?;
    let info = live_engine(&state, &id).await?;
    control(&state)
        .await?
        .undrain(&id)
        .await
        .map_err(unreachable)?;
    tracing::info!(engine = %id, "engine undrained by the operator");
    tell(&state, &id).await;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(EngineView::of(info, false)),
    ))
}

/// Moves a running session to another engine (by hand-over: its sending
/// pauses for the hand-over only), and optionally pins it there.
#[utoipa::path(post, path = "/api/v1/admin/sessions/{id}/move", tag = "fleet",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Session id")),
    request_body = MoveBody,
    responses(
        (status = 202, description = "Runs on the engine named in `to`", body = Moved),
        (status = 400, description = "Bad body (`pin` without `engine_id`)", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not the platform admin", body = ErrorBody),
        (status = 404, description = "No such session, or no such live engine", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the session runs on no live engine, or on that one already; `engine_draining`: the engine is drained; `no_engine_available`: no other engine could take it; `conflict`: the engine named did not take it", body = ErrorBody),
        (status = 503, description = "`unavailable` / `engine_unavailable`: NATS or the session's engine did not answer", body = ErrorBody),
    ))]
async fn move_session(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<MoveBody>,
) -> Result<(StatusCode, axum::Json<Moved>), ApiError> {
    caller.require(Role::Admin)?;
    if body.pin && body.engine_id.is_none() {
        return Err(ApiError::invalid_field(
            "pin",
            "pin needs engine_id: the engine to pin the session to",
        ));
    }
    let session = SessionId::from_uuid(id);
    let Some(tenant) = sessions::tenant_of(&state.db, session)
        .await
        .map_err(ApiError::from)?
    else {
        return Err(ApiError::not_found("session"));
    };
    let control = control(&state).await?;
    if let Some(target) = &body.engine_id {
        live_engine(&state, target).await?;
        let (drained, _) = control.marks().await.map_err(unreachable)?;
        if drained.contains(target) {
            return Err(ApiError::new(
                ErrorCode::EngineDraining,
                format!("engine {target} is drained: undrain it first"),
            ));
        }
    }
    // Who runs it: the lease's holder, when it is alive.
    let holder = wablast_workflows::fleet::lease_holder(
        state.log.jetstream(),
        state.log.prefix(),
        &session.to_string(),
    )
    .await
    .map_err(unreachable)?;
    let from = match holder {
        Some(holder) if live_engine(&state, &holder).await.is_ok() => holder,
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidState,
                "the session runs on no live engine (not started, or between engines)",
            ));
        }
    };
    if body.pin
        && let Some(target) = &body.engine_id
    {
        control
            .pin(&session.to_string(), target)
            .await
            .map_err(unreachable)?;
    }
    let pinned_to = control
        .pinned(&session.to_string())
        .await
        .map_err(unreachable)?;
    if body.engine_id.as_deref() == Some(from.as_str()) {
        if body.pin {
            return Ok((
                StatusCode::ACCEPTED,
                axum::Json(Moved {
                    session_id: id,
                    to: from.clone(),
                    from,
                    pinned_to,
                }),
            ));
        }
        return Err(ApiError::new(
            ErrorCode::InvalidState,
            format!("the session runs on {from} already"),
        ));
    }
    let request = MoveRequest {
        tenant: tenant.to_string(),
        session: session.to_string(),
        target: body.engine_id.clone(),
    };
    let subject = fleet_subject(state.log.prefix(), &from, FleetVerb::Move);
    let client = state.log.jetstream().client();
    let payload = serde_json::to_vec(&request).expect("a request serializes");
    let reply =
        match tokio::time::timeout(MOVE_ANSWER, client.request(subject, payload.into())).await {
            Ok(Ok(reply)) => reply,
            _ => {
                return Err(ApiError::new(
                    ErrorCode::EngineUnavailable,
                    format!("engine {from} did not answer"),
                ));
            }
        };
    match serde_json::from_slice::<FleetReply>(&reply.payload) {
        Ok(FleetReply::Moved { engine }) => {
            tracing::info!(session = %id, %from, to = %engine, "session moved by the operator");
            Ok((
                StatusCode::ACCEPTED,
                axum::Json(Moved {
                    session_id: id,
                    from,
                    to: engine,
                    pinned_to,
                }),
            ))
        }
        Ok(FleetReply::Refused { reason, message }) => Err(match reason {
            FleetRefusal::NotHeld => ApiError::new(ErrorCode::InvalidState, message),
            FleetRefusal::NoEngineAvailable => ApiError::new(ErrorCode::NoEngineAvailable, message),
            FleetRefusal::Draining => ApiError::new(ErrorCode::EngineDraining, message),
            FleetRefusal::TargetRefused => ApiError::new(ErrorCode::Conflict, message),
        }),
        Err(_) => Err(ApiError::new(
            ErrorCode::EngineError,
            format!("engine {from} answered something unreadable"),
        )),
    }
}

/// Unpins a session: it goes wherever the fleet places it from now on.
#[utoipa::path(post, path = "/api/v1/admin/sessions/{id}/unpin", tag = "fleet",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 204, description = "Not pinned (any more)"),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not the platform admin", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 503, description = "`unavailable`: NATS unreachable", body = ErrorBody),
    ))]
async fn unpin(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    let session = SessionId::from_uuid(id);
    if sessions::tenant_of(&state.db, session)
        .await
        .map_err(ApiError::from)?
        .is_none()
    {
        return Err(ApiError::not_found("session"));
    }
    control(&state)
        .await?
        .unpin(&session.to_string())
        .await
        .map_err(unreachable)?;
    Ok(StatusCode::NO_CONTENT)
}
