//! Sessions: linked WhatsApp numbers. Create, list, read, change settings
//! and trust level, delete; start, stop and log out one or many; the QR code
//! and pairing code of a session waiting to be linked; simulator controls.
//!
//! Every command goes to the `Session` aggregate, which decides (plan
//! limits, status flow, who may set the trust level); handlers gather the
//! facts and answer what it decided. What only the engine running a session
//! knows (its QR code) or can do (pairing codes, simulator controls) goes
//! through the contract in `wablast_workflows::control`.
//!
//! Answers never carry driver secrets: `driver_config` shows only the
//! fields that are not secret (WAHA `{base_url, session_name}`, Cloud
//! `{phone_number_id, api_base}`), `null` for simulator and native sessions.

use std::collections::HashMap;

use super::campaigns::ThrottleBody;
use axum::extract::State;
use axum::http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SubsecRound, Utc};
use cqrs_es::{Aggregate, AggregateError};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wablast_domain::governor::{GovernorState, Restriction, SenderPacing};
use wablast_domain::session::{
    Driver, LoginMethod, Session, SessionCommand, SessionEvent, SessionName, SessionStatus,
};
use wablast_domain::types::phone::Phone;
use wablast_domain::types::{DailyLimit, SessionId, TenantId, Throttle, TrustLevel};
use wablast_eventstore::Committed;
use wablast_projections::queries::sessions::{self, SessionView};
use wablast_projections::wait::{self, Position};
use wablast_projections::{LogStream, StreamName};
use wablast_workflows::control::{self, ControlErrorCode, Reply, Verb};
use wablast_workflows::credentials::{self, DriverCredentials, SecretKey};
use wablast_workflows::fleet::EngineRegistry;

use crate::auth::Caller;
use crate::commands::{self, Refusal, tenant_key};
use crate::consistency::{self, After, MAX_WAIT};
use crate::error::ErrorBody;
use crate::extract::{Json, Path, Query};
use crate::list::{List, ListParams};
use crate::{ApiError, AppState, ErrorCode};
use wablast_workflows::limits::TenantLimits;

/// Most ids one batch request may name.
pub const MAX_BATCH: usize = 500;

/// The projection these handlers read.
const PROJECTION: &[&str] = &["sessions"];

/// Routes of this module. The batch routes (`/sessions/start`, `/stop`,
/// `/stop-all`) are literal paths, which the router prefers to
/// `/sessions/{id}`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_session, list_sessions))
        .routes(routes!(start_sessions))
        .routes(routes!(stop_sessions))
        .routes(routes!(stop_all_sessions))
        .routes(routes!(get_session, update_session, delete_session))
        .routes(routes!(start_session))
        .routes(routes!(stop_session))
        .routes(routes!(logout_session))
        .routes(routes!(session_qr))
        .routes(routes!(pairing_code))
        .routes(routes!(simulator_scan))
        .routes(routes!(simulator_inbound))
}

// ------------------------------------------------------------------ shapes

/// A new session.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    /// What to call it: 1 to 64 characters.
    #[schema(example = "CS Jakarta 1")]
    pub name: String,
    /// `simulator` (default), `native`, `waha` or `cloud`. `native` is
    /// **experimental**: WhatsApp Web multi-device run in wablast's own
    /// engine (no WAHA server), linked by QR code or pairing code like the
    /// others; it sends texts only (a campaign or send with an attachment
    /// on a native sender is refused with 422 `media_not_supported`).
    #[schema(example = "simulator")]
    pub driver: Option<String>,
    /// `qr` (default) or `pairing` (needs `phone_number`).
    #[schema(example = "qr")]
    pub login: Option<String>,
    /// The number to link, E.164.
    #[schema(example = "+6281234567890")]
    pub phone_number: Option<String>,
    /// Sends per local day; default: the trust level's (50 for a new
    /// number), capped by the plan.
    #[schema(minimum = 1)]
    pub daily_limit: Option<i64>,
    /// Start the session whenever the engine boots (default false).
    pub auto_start: Option<bool>,
    /// Whether the number warms up (its allowance starts at 20 a day and
    /// grows ×1.8 a day up to its daily limit). Default: true for every
    /// driver but `simulator`, whose numbers start established.
    pub warm_up: Option<bool>,
    /// Required for `waha` (`{base_url, api_key, session_name?}`) and
    /// `cloud` (`{phone_number_id, access_token, app_secret, verify_token,
    /// api_base?, waba_id?}`; `waba_id`, the WhatsApp Business Account's
    /// id, is needed to sync its templates); refused for `simulator` and
    /// `native`. Secrets are stored encrypted and never returned.
    #[schema(value_type = Option<Object>, example = json!({"base_url": "https://waha.example.com", "api_key": "secret"}))]
    pub driver_config: Option<Value>,
}

/// A session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionBody {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// `simulator | native | waha | cloud`.
    pub driver: String,
    /// `qr | pairing`.
    pub login: String,
    /// `idle | starting | qr | pairing | authenticated | ready |
    /// disconnected | failed | logged_out`.
    pub status: String,
    /// The linked number (E.164), once known.
    pub phone_number: Option<String>,
    /// Sends allowed per local day.
    pub daily_limit: i32,
    /// Whether the daily limit follows the trust level (not set by hand).
    pub daily_limit_follows_trust_level: bool,
    /// Sends granted today (the tenant's local date).
    pub sent_today: i32,
    /// 1 (new number) to 5; set by the platform admin.
    pub trust_level: i16,
    /// Whether the engine starts it on boot.
    pub auto_start: bool,
    /// Why it last stopped working; cleared once ready again.
    pub last_error: Option<String>,
    /// The driver's settings without secrets (WAHA `{base_url,
    /// session_name}`, Cloud `{phone_number_id, api_base, waba_id?}`), with
    /// `hook_url`: where the driver's server must post the session's
    /// events (WAHA's webhook URL; the callback URL of the Meta app's
    /// WhatsApp webhook), from `WABLAST_PUBLIC_URL`; `null` for simulator
    /// and native sessions.
    #[schema(value_type = Option<Object>)]
    pub driver_config: Option<Value>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// While the engine cannot connect its driver (its server restarting)
    /// and tries again with back-off: which try failed last and when the
    /// next is (`last_error` says why). Null otherwise.
    pub reconnect: Option<ReconnectBody>,
    /// Why a ready session sends nothing for now (`daily_limit_reached`,
    /// `outside_active_hours`, `sending_paused`, `plan_expired`, and the
    /// sender governor's `warm_up_allowance_reached`, `sender_restricted`,
    /// `send_cap_reached`, and `failure_storm`: many sessions of the engine
    /// running it failed within minutes, and that engine holds every send
    /// for a while) and until when; null while it sends or has nothing to
    /// send.
    pub waiting: Option<SessionWaitingBody>,
    /// The session engine running it (it holds the session's lease); null
    /// while none does (not started, stopped, failed, logged out, or just
    /// started and not taken yet).
    pub engine_id: Option<String>,
    /// The session should run but no live engine runs it: its engine died
    /// (its heartbeat expired) or none has taken it yet. Another engine
    /// takes it over within the lease's time to live; until then its
    /// status is the last one its engine reported.
    pub engine_lost: bool,
    /// The random pause between two of its single sends
    /// (`POST /api/v1/messages`); a campaign's messages keep their
    /// campaign's throttle.
    pub throttle: ThrottleBody,
    /// Its own pacing (`PATCH` `pacing`); every field null when it has
    /// none.
    pub pacing: PacingBody,
    /// What it may still send, as the sender governor sees it now (read
    /// from the log). Given by `GET /api/v1/sessions/{id}`; null in lists.
    pub capacity: Option<CapacityBody>,
    /// The sender governor's state (`warming_up`, `normal`, `restricted`,
    /// `cooling_down`); null in lists.
    pub governor_state: Option<GovernorState>,
    /// Until when that state holds, where known (a restriction's end, a
    /// cool-down's end).
    pub governor_until: Option<DateTime<Utc>>,
    /// The restriction WhatsApp put on the number, while it holds.
    pub restriction: Option<Restriction>,
}

/// A sender's capacity.
#[derive(Debug, Serialize, ToSchema)]
pub struct CapacityBody {
    /// Today's allowance: the daily limit, or less while the number warms
    /// up (day 1: 20, ×1.8 a day) or cools down after a restriction.
    pub today: u32,
    /// What is left of it today.
    pub left_today: u32,
    /// What may still go this hour.
    pub this_hour: u32,
    /// New contacts (recipients it never exchanged messages with) left
    /// today; null: no cap on them.
    pub new_contacts_left: Option<u32>,
    /// When the allowance grows next (in warm-up).
    pub grows_at: Option<DateTime<Utc>>,
}

/// Why a session sends nothing for now, and until when.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionWaitingBody {
    /// Why.
    #[schema(example = "daily_limit_reached")]
    pub reason: String,
    /// Until when, where known.
    pub until: Option<DateTime<Utc>>,
}

/// The engine's tries to connect a session's driver.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReconnectBody {
    /// Which try failed last (1, 2, ...).
    pub attempt: i32,
    /// When the next try is.
    pub next_try_at: DateTime<Utc>,
}

impl SessionBody {
    fn from_view(view: SessionView, driver_config: Option<Value>) -> Self {
        Self {
            id: view.id,
            name: view.name,
            driver: view.driver,
            login: view.login,
            status: view.status,
            phone_number: view.phone_number,
            daily_limit: view.daily_limit,
            daily_limit_follows_trust_level: view.daily_limit_follows_trust_level,
            sent_today: view.sent_today,
            trust_level: view.trust_level,
            auto_start: view.auto_start,
            last_error: view.last_error,
            driver_config,
            created_at: view.created_at,
            updated_at: view.updated_at,
            reconnect: view.reconnect_attempt.zip(view.reconnect_at).map(
                |(attempt, next_try_at)| ReconnectBody {
                    attempt,
                    next_try_at,
                },
            ),
            waiting: view.waiting_reason.map(|reason| SessionWaitingBody {
                reason,
                until: view.waiting_until,
            }),
            engine_id: view.engine_id,
            engine_lost: false,
            throttle: ThrottleBody {
                min_delay_ms: u64::try_from(view.throttle_min_ms).unwrap_or(0),
                max_delay_ms: u64::try_from(view.throttle_max_ms).unwrap_or(0),
            },
            pacing: PacingBody::of(view.pacing.map(|p| p.0).unwrap_or_default()),
            capacity: None,
            governor_state: None,
            governor_until: None,
            restriction: None,
        }
    }
}

/// Says, of each session that should run, whether a live engine runs it:
/// one heartbeat read per engine named.
async fn mark_lost_engines<'a>(
    state: &AppState,
    bodies: impl IntoIterator<Item = &'a mut SessionBody>,
) -> Result<(), ApiError> {
    let mut bodies: Vec<&mut SessionBody> = bodies
        .into_iter()
        .filter(|body| SessionStatus::parse(&body.status).is_some_and(SessionStatus::is_running))
        .collect();
    if bodies.is_empty() {
        return Ok(());
    }
    let unreachable = |e: wablast_eventstore::EventStoreError| {
        ApiError::new(
            ErrorCode::Unavailable,
            format!("event log unreachable: {e}"),
        )
    };
    let registry = EngineRegistry::find(state.log.jetstream(), state.log.prefix())
        .await
        .map_err(unreachable)?;
    let mut alive: HashMap<String, bool> = HashMap::new();
    for body in &mut bodies {
        let lost = match (&registry, &body.engine_id) {
            (Some(registry), Some(engine)) => match alive.get(engine) {
                Some(known) => !known,
                None => {
                    let is = registry.is_alive(engine).await.map_err(unreachable)?;
                    alive.insert(engine.clone(), is);
                    !is
                }
            },
            _ => true,
        };
        body.engine_lost = lost;
    }
    Ok(())
}

/// Changes to a session; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionPatch {
    /// A new name.
    pub name: Option<String>,
    /// A daily limit fixed by hand (no longer following the trust level).
    #[schema(minimum = 1)]
    pub daily_limit: Option<i64>,
    /// Start on engine boot or not.
    pub auto_start: Option<bool>,
    /// 1 to 5. Platform admin only (403 otherwise); the admin may set it on
    /// any tenant's session.
    #[schema(minimum = 1, maximum = 5)]
    pub trust_level: Option<i64>,
    /// The random pause between two of its single sends.
    pub throttle: Option<ThrottleBody>,
    /// Its own pacing, replacing the one it had (`{}` clears it): a longer
    /// break every `break_every` sends (2 to 1000), and at most
    /// `per_minute` sends in any 60 s (1 to 100000), `per_hour` in any hour
    /// (1 to 100000, at least `per_minute`), `new_contacts_per_day` new
    /// contacts a local day (0 to 100000). While the number warms up, is
    /// restricted or cools down, the tighter of these and the governor's
    /// caps holds.
    pub pacing: Option<PacingBody>,
}

/// A session's own pacing; a field absent or null: none of the session's
/// own (a break: the engine's default, every 20 sends).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PacingBody {
    /// A longer break after every this many sends.
    #[schema(minimum = 2, maximum = 1000, example = 20)]
    #[serde(default)]
    pub break_every: Option<i64>,
    /// Sends in any 60 seconds.
    #[schema(minimum = 1, maximum = 100000, example = 6)]
    #[serde(default)]
    pub per_minute: Option<i64>,
    /// Sends in any hour.
    #[schema(minimum = 1, maximum = 100000, example = 120)]
    #[serde(default)]
    pub per_hour: Option<i64>,
    /// New contacts (recipients the number never exchanged messages
    /// with) a local day.
    #[schema(minimum = 0, maximum = 100000, example = 20)]
    #[serde(default)]
    pub new_contacts_per_day: Option<i64>,
}

impl PacingBody {
    /// The pacing it asks for; 400 naming `pacing` when a field is out of
    /// range.
    fn parse(self) -> Result<SenderPacing, ApiError> {
        let refused = |message: String| ApiError::invalid_field("pacing", message);
        let field = |name: &str, value: Option<i64>| {
            value
                .map(|v| {
                    u32::try_from(v).map_err(|_| {
                        refused(format!(
                            "pacing.{name} must be a whole number from 0, got {v}"
                        ))
                    })
                })
                .transpose()
        };
        SenderPacing {
            break_every: field("break_every", self.break_every)?,
            per_minute: field("per_minute", self.per_minute)?,
            per_hour: field("per_hour", self.per_hour)?,
            new_contacts_per_day: field("new_contacts_per_day", self.new_contacts_per_day)?,
        }
        .parse()
        .map_err(|err| refused(err.to_string()))
    }

    fn of(pacing: SenderPacing) -> Self {
        Self {
            break_every: pacing.break_every.map(i64::from),
            per_minute: pacing.per_minute.map(i64::from),
            per_hour: pacing.per_hour.map(i64::from),
            new_contacts_per_day: pacing.new_contacts_per_day.map(i64::from),
        }
    }
}

/// Sessions to act on.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionIds {
    /// Session ids; an unknown one (or another tenant's) is that item's
    /// `not_found`, the others go on.
    pub ids: Vec<String>,
}

/// What became of each session of a batch, in the order asked.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResults {
    /// One per id.
    pub results: Vec<BatchResult>,
}

/// What became of one session of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    /// The id as given.
    pub id: String,
    /// `accepted` or `error`.
    #[schema(example = "accepted")]
    pub status: &'static str,
    /// Why not, for `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<BatchError>,
}

/// Why one session of a batch was refused.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchError {
    /// The error code a single request would have answered
    /// (`not_found`, `invalid_state`, ...).
    pub code: ErrorCode,
    /// In words.
    pub message: String,
}

/// The QR code to scan, as JSON.
#[derive(Debug, Serialize, ToSchema)]
pub struct QrBody {
    /// What the QR code encodes: render it, or hand it to a QR library.
    pub qr: String,
    /// When WhatsApp stops accepting it (a new one replaces it).
    pub expires_at: DateTime<Utc>,
}

/// The QR code as a PNG image.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct QrPng(Vec<u8>);

impl IntoResponse for QrPng {
    fn into_response(self) -> Response {
        (
            [
                (CACHE_CONTROL, HeaderValue::from_static("no-store")),
                (CONTENT_TYPE, HeaderValue::from_static("image/png")),
            ],
            self.0,
        )
            .into_response()
    }
}

/// A phone number to link with a pairing code.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PairingCodeRequest {
    /// The number of the phone that will type the code, E.164.
    #[schema(example = "+6281234567890")]
    pub phone_number: String,
}

/// A pairing code.
#[derive(Debug, Serialize, ToSchema)]
pub struct PairingCode {
    /// Type it on the phone: WhatsApp → Linked devices → Link with phone
    /// number instead.
    #[schema(example = "ABCD-EFGH")]
    pub code: String,
    /// When it stops working, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// Simulator: a phone scans the session's QR code.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulatorScan {
    /// The simulated phone's number, E.164.
    #[schema(example = "+6281234567890")]
    pub phone_number: String,
}

/// Simulator: a message to the session's number.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulatorInbound {
    /// The sender, E.164.
    #[schema(example = "+6281298765432")]
    pub from: String,
    /// The text (1 to 4096 characters).
    #[schema(example = "Halo, masih ada stok?")]
    pub text: String,
}

/// The engine accepted a simulator control; what follows shows as events.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimulatorAccepted {
    /// Always `accepted`.
    #[schema(example = "accepted")]
    pub status: &'static str,
    /// The simulated message's id (inbound only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

// ------------------------------------------------------------- validation

fn parse_name(field: &str, name: &str) -> Result<SessionName, ApiError> {
    SessionName::parse(name).map_err(|e| ApiError::invalid_field(field, e.to_string()))
}

fn parse_daily_limit(limit: i64) -> Result<DailyLimit, ApiError> {
    u64::try_from(limit)
        .map_err(|_| ())
        .and_then(|l| DailyLimit::parse(l).map_err(|_| ()))
        .map_err(|()| {
            ApiError::invalid_field(
                "daily_limit",
                format!("daily_limit must be between 1 and {}", DailyLimit::MAX),
            )
        })
}

fn parse_driver(driver: Option<&str>) -> Result<Driver, ApiError> {
    match driver.map(str::trim) {
        None => Ok(Driver::default()),
        Some("simulator") => Ok(Driver::Simulator),
        // Experimental: see the README's "The native driver".
        Some("native") => Ok(Driver::Native),
        Some("waha") => Ok(Driver::Waha),
        Some("cloud") => Ok(Driver::Cloud),
        Some(other) => Err(ApiError::invalid_field(
            "driver",
            format!("driver is simulator, native, waha or cloud, not {other:?}"),
        )),
    }
}

fn parse_login(login: Option<&str>) -> Result<LoginMethod, ApiError> {
    match login.map(str::trim) {
        None => Ok(LoginMethod::default()),
        Some("qr") => Ok(LoginMethod::Qr),
        Some("pairing") => Ok(LoginMethod::Pairing),
        Some(other) => Err(ApiError::invalid_field(
            "login",
            format!("login is qr or pairing, not {other:?}"),
        )),
    }
}

/// A phone number in E.164; anything else is 400 `invalid_phone`.
fn parse_phone(field: &str, phone: &str) -> Result<Phone, ApiError> {
    phone.trim().parse::<Phone>().map_err(|e| {
        ApiError::new(ErrorCode::InvalidPhone, e.to_string())
            .with_details(json!({ "field": field }))
    })
}

// ---------------------------------------------------------------- helpers

fn secret_key(state: &AppState) -> SecretKey {
    SecretKey::new(state.config.secret_key)
}

fn position_header(committed_at: Position) -> [(axum::http::HeaderName, HeaderValue); 1] {
    [consistency::header_value(committed_at)]
}

/// Sessions the tenant has, for the plan's `max_sessions`. The count comes
/// from the projection, so it first waits (bounded) until the projection
/// has caught up with the log as it is now: a session created a moment ago,
/// by this client or another, is counted. Two creates racing each other can
/// still both see the same count; the plan limit is a soft guard against
/// that one race, not a lock.
async fn sessions_in_use(state: &AppState, tenant: TenantId) -> Result<u32, ApiError> {
    let stream = state
        .log
        .stream(&LogStream::Events.full_name(state.log.prefix()))
        .map_err(ApiError::internal)?;
    let last = stream
        .get_info()
        .await
        .map_err(|e| {
            ApiError::new(
                ErrorCode::Unavailable,
                format!("event log unreachable: {e}"),
            )
        })?
        .state
        .last_sequence;
    let position = Position {
        stream: LogStream::Events,
        sequence: last,
    };
    if !wait::until_projected(&state.db, PROJECTION, position, MAX_WAIT)
        .await
        .map_err(ApiError::internal)?
    {
        tracing::warn!(%tenant, %position, "sessions counted before the projection caught up");
    }
    let count = sessions::count_active(&state.db, tenant).await?;
    Ok(u32::try_from(count).unwrap_or(u32::MAX))
}

/// A WAHA or Cloud API session's public driver config with `hook_url`:
/// where its server must post the session's events (WAHA's webhook, the
/// Meta app's callback URL), when the API knows its public address.
fn with_hook_url(state: &AppState, driver: &str, id: Uuid, config: Option<Value>) -> Option<Value> {
    let mut config = config?;
    if let (Some(public), Some(fields)) = (&state.config.public_url, config.as_object_mut()) {
        fields.insert(
            "hook_url".to_owned(),
            Value::String(format!("{public}/hooks/{driver}/{id}")),
        );
    }
    Some(config)
}

/// The session as projected, with its public driver config; `None` if the
/// tenant has no such session.
async fn read_session(
    state: &AppState,
    tenant: TenantId,
    id: Uuid,
) -> Result<Option<SessionBody>, ApiError> {
    let Some(view) = sessions::get(&state.db, tenant, SessionId::from_uuid(id), Utc::now()).await?
    else {
        return Ok(None);
    };
    let mut configs = credentials::public_configs(&state.db, tenant, &[id]).await?;
    let config = with_hook_url(state, &view.driver, id, configs.remove(&id));
    let mut body = SessionBody::from_view(view, config);
    mark_lost_engines(state, [&mut body]).await?;
    Ok(Some(body))
}

/// The session after a command: read once the projection reached the
/// command's position (bounded by [`MAX_WAIT`]; past it, what is projected).
async fn session_after(
    state: &AppState,
    tenant: TenantId,
    id: Uuid,
    position: Position,
) -> Result<SessionBody, ApiError> {
    After::at(position).wait(&state.db, PROJECTION).await?;
    read_session(state, tenant, id).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::ProjectionLag,
            "the command was applied, but the session's view is not ready yet; read it again shortly",
        )
    })
}

/// The projected session, or 404.
async fn projected_or_404(
    state: &AppState,
    after: &After,
    tenant: TenantId,
    id: Uuid,
) -> Result<SessionBody, ApiError> {
    after.wait(&state.db, PROJECTION).await?;
    consistency::found_or_caught_up(state, Session::TYPE, PROJECTION, || {
        read_session(state, tenant, id)
    })
    .await?
    .ok_or_else(|| ApiError::not_found("session"))
}

/// A refusal's code and message, for one item of a batch.
fn batch_error(err: AggregateError<wablast_domain::session::SessionError>) -> BatchError {
    match err {
        AggregateError::UserError(refusal) => BatchError {
            code: Refusal::code(&refusal).into(),
            message: refusal.to_string(),
        },
        AggregateError::AggregateConflict => BatchError {
            code: ErrorCode::Conflict,
            message: "another change to the same session won the race, twice; try again".into(),
        },
        other => {
            tracing::error!(error.message = %other, "batch session command failed");
            BatchError {
                code: ErrorCode::Internal,
                message: "internal error; it has been logged".into(),
            }
        }
    }
}

/// Runs one user command (start / stop) on each id, a few at a time, in the
/// order given; answers 202 with the results and the position of the last
/// commit.
async fn run_batch(
    state: &AppState,
    caller: &Caller,
    ids: Vec<String>,
    command: fn(DateTime<Utc>) -> SessionCommand,
) -> Result<Response, ApiError> {
    if ids.len() > MAX_BATCH {
        return Err(ApiError::invalid_field(
            "ids",
            format!("at most {MAX_BATCH} ids per request"),
        ));
    }
    let handler = &state.commands.sessions;
    let metadata = caller.command();
    let outcomes: Vec<(String, Result<u64, BatchError>)> = futures::stream::iter(ids)
        .map(|id| {
            let metadata = &metadata;
            async move {
                let Ok(uuid) = Uuid::parse_str(id.trim()) else {
                    return (
                        id,
                        Err(BatchError {
                            code: ErrorCode::NotFound,
                            message: "session not found".into(),
                        }),
                    );
                };
                let key = tenant_key(caller.tenant_id, uuid);
                let result = handler
                    .execute(&key, command(Utc::now()), metadata)
                    .await
                    .map(|committed| committed.stream_sequence)
                    .map_err(batch_error);
                (id, result)
            }
        })
        .buffered(8)
        .collect()
        .await;
    let last = outcomes
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().copied())
        .max();
    let results = outcomes
        .into_iter()
        .map(|(id, result)| match result {
            Ok(_) => BatchResult {
                id,
                status: "accepted",
                error: None,
            },
            Err(error) => BatchResult {
                id,
                status: "error",
                error: Some(error),
            },
        })
        .collect();
    let mut response = (StatusCode::ACCEPTED, axum::Json(BatchResults { results })).into_response();
    if let Some(sequence) = last {
        let (name, value) = consistency::header_value(Position {
            stream: LogStream::Events,
            sequence,
        });
        response.headers_mut().insert(name, value);
    }
    Ok(response)
}

/// Runs a user command on one session and answers 202 with the session.
async fn run_one(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    command: SessionCommand,
) -> Result<Response, ApiError> {
    let committed: Committed<Session> = commands::execute(
        &state.commands.sessions,
        &tenant_key(caller.tenant_id, id),
        command,
        &caller.command(),
    )
    .await?;
    let position = commands::position(&committed);
    let body = session_after(state, caller.tenant_id, id, position).await?;
    Ok((
        StatusCode::ACCEPTED,
        position_header(position),
        axum::Json(body),
    )
        .into_response())
}

/// Asks the engine running a session (`control` contract) and relays its
/// answer: 503 `engine_unavailable` when none answers in time.
///
/// The session is started (the caller checked): an engine takes a start up
/// within moments, so a request nobody listens to yet (a start a moment
/// ago) is sent again until [`control::REQUEST_TIMEOUT`] is spent. Nobody
/// received it, so it cannot run twice.
pub(crate) async fn ask_engine<Req: Serialize, Resp: DeserializeOwned>(
    state: &AppState,
    caller: &Caller,
    session: Uuid,
    verb: Verb,
    request: &Req,
) -> Result<Resp, ApiError> {
    ask_engine_within(
        state,
        caller,
        session,
        verb,
        request,
        control::REQUEST_TIMEOUT,
    )
    .await
}

/// [`ask_engine`], waiting up to `timeout` for the answer (a request the
/// engine takes its time over).
pub(crate) async fn ask_engine_within<Req: Serialize, Resp: DeserializeOwned>(
    state: &AppState,
    caller: &Caller,
    session: Uuid,
    verb: Verb,
    request: &Req,
    timeout: std::time::Duration,
) -> Result<Resp, ApiError> {
    let reply = control::Engines::of(&state.log)
        .ask(
            caller.tenant_id,
            SessionId::from_uuid(session),
            verb,
            &caller.actor().to_string(),
            request,
            timeout,
        )
        .await
        .map_err(|err| match err {
            control::AskError::Unreachable(err) => engine_unreachable(err),
            control::AskError::Unreadable(err) => unreadable_reply(&err),
        })?;
    match reply {
        Reply::Ok(response) => Ok(response),
        Reply::Error(refusal) => {
            let code = match refusal.code {
                ControlErrorCode::InvalidState => ErrorCode::InvalidState,
                ControlErrorCode::SessionBusy => ErrorCode::SessionBusy,
                ControlErrorCode::NotFound => ErrorCode::NotFound,
                ControlErrorCode::InvalidPhone => ErrorCode::InvalidPhone,
                ControlErrorCode::ValidationFailed => ErrorCode::ValidationFailed,
                ControlErrorCode::DriverFailed => ErrorCode::DriverFailed,
                ControlErrorCode::Unauthorized => ErrorCode::Unauthenticated,
                ControlErrorCode::Unsupported => ErrorCode::ValidationFailed,
            };
            Err(ApiError::new(code, refusal.message))
        }
    }
}

/// 503 `engine_unavailable`: no engine answered a request about a session.
pub(crate) fn engine_unreachable(err: async_nats::RequestError) -> ApiError {
    use async_nats::client::RequestErrorKind;
    let message = match err.kind() {
        RequestErrorKind::NoResponders => {
            "no session engine runs this session: check that an engine is up".to_owned()
        }
        RequestErrorKind::TimedOut => format!(
            "the session engine did not answer within {} s; try again",
            control::REQUEST_TIMEOUT.as_secs()
        ),
        _ => format!("the session engine cannot be reached: {err}"),
    };
    ApiError::new(ErrorCode::EngineUnavailable, message)
}

/// An engine's reply, read; 502 `engine_error` when it cannot be.
pub(crate) fn engine_reply<Resp: DeserializeOwned>(
    payload: &[u8],
) -> Result<Reply<Resp>, ApiError> {
    serde_json::from_slice(payload).map_err(|err| unreadable_reply(&err))
}

/// 502 `engine_error`: an engine's reply that is not one.
fn unreadable_reply(err: &serde_json::Error) -> ApiError {
    tracing::error!(error.message = %err, "unreadable reply from the session engine");
    ApiError::new(
        ErrorCode::EngineError,
        "the session engine answered something unreadable",
    )
}

// --------------------------------------------------------------- handlers

/// Links a new WhatsApp number: creates a session, `idle` until started.
#[utoipa::path(post, path = "/api/v1/sessions", tag = "sessions",
    security(("bearer" = []), ("api_key" = [])),
    request_body = NewSession,
    responses(
        (status = 201, description = "Created", body = SessionBody, headers(("X-Wablast-Position" = String, description = "Where the commit was written; send it back on reads to see it"), ("Location" = String, description = "The session's URL"))),
        (status = 400, description = "A bad field (`validation_failed` naming it) or phone number (`invalid_phone`)", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 422, description = "`plan_limit_exceeded`: the plan's sessions are used up, or the daily limit is above the plan's; `feature_not_in_plan`: a `cloud` session on a plan without official mode", body = ErrorBody),
        (status = 503, description = "`unavailable`: the event log cannot be reached to count the sessions in use; try again", body = ErrorBody),
    ))]
async fn create_session(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewSession>,
) -> Result<Response, ApiError> {
    let name = parse_name("name", &body.name)?;
    let driver = parse_driver(body.driver.as_deref())?;
    let login = parse_login(body.login.as_deref())?;
    let phone_number = body
        .phone_number
        .as_deref()
        .map(|p| parse_phone("phone_number", p))
        .transpose()?;
    let daily_limit = body.daily_limit.map(parse_daily_limit).transpose()?;
    let driver_credentials = DriverCredentials::from_request(driver, body.driver_config)
        .map_err(|e| ApiError::invalid_field(&e.field, e.message))?;

    let limits = TenantLimits::of(&state.commands.wallets, caller.tenant_id).await?;
    if driver == Driver::Cloud {
        limits.require(wablast_domain::plan::PlanFeature::OfficialMode)?;
    }
    let sessions_in_use = sessions_in_use(&state, caller.tenant_id).await?;
    let id = SessionId::new();
    // Credentials first, under the new id nobody else knows yet: a session
    // never exists without the credentials its driver needs. A refused
    // create removes them again.
    if let Some(creds) = &driver_credentials {
        credentials::store(&state.db, &secret_key(&state), caller.tenant_id, id, creds)
            .await
            .map_err(ApiError::internal)?;
    }
    let command = SessionCommand::CreateSession {
        session_id: id,
        name,
        driver,
        login,
        phone_number,
        daily_limit,
        auto_start: body.auto_start.unwrap_or(false),
        warm_up: body.warm_up,
        sessions_in_use,
        plan_max_sessions: limits.max_sessions,
        plan_max_daily_limit: limits.max_daily_limit,
        at: Utc::now(),
    };
    let committed = match commands::execute(
        &state.commands.sessions,
        &tenant_key(caller.tenant_id, id),
        command,
        &caller.command(),
    )
    .await
    {
        Ok(committed) => committed,
        Err(err) => {
            if driver_credentials.is_some() {
                credentials::delete(&state.db, caller.tenant_id, id).await?;
            }
            return Err(err);
        }
    };
    let created = committed
        .events
        .iter()
        .find_map(|e| match &e.payload {
            SessionEvent::SessionCreated {
                session_id,
                name,
                driver,
                login,
                phone_number,
                daily_limit,
                daily_limit_follows_trust_level,
                trust_level,
                auto_start,
                at,
                ..
            } => Some(SessionBody {
                id: *session_id.as_uuid(),
                name: name.to_string(),
                driver: driver.as_str().to_owned(),
                login: login.as_str().to_owned(),
                status: SessionStatus::Idle.as_str().to_owned(),
                phone_number: phone_number.as_ref().map(ToString::to_string),
                daily_limit: daily_limit.value() as i32,
                daily_limit_follows_trust_level: *daily_limit_follows_trust_level,
                sent_today: 0,
                trust_level: i16::from(trust_level.value()),
                auto_start: *auto_start,
                last_error: None,
                driver_config: with_hook_url(
                    &state,
                    driver.as_str(),
                    *session_id.as_uuid(),
                    driver_credentials.as_ref().map(|c| c.public_config()),
                ),
                // As stored (PostgreSQL keeps microseconds), so that this
                // answer and later reads agree.
                created_at: at.round_subsecs(6),
                updated_at: at.round_subsecs(6),
                reconnect: None,
                waiting: None,
                engine_id: None,
                engine_lost: false,
                throttle: ThrottleBody {
                    min_delay_ms: Throttle::DEFAULT.min_delay_ms(),
                    max_delay_ms: Throttle::DEFAULT.max_delay_ms(),
                },
                pacing: PacingBody::default(),
                capacity: None,
                governor_state: None,
                governor_until: None,
                restriction: None,
            }),
            _ => None,
        })
        .ok_or_else(|| ApiError::internal("CreateSession committed without SessionCreated"))?;
    let location = HeaderValue::from_str(&format!("/api/v1/sessions/{id}"))
        .expect("a path of a UUID is a header value");
    Ok((
        StatusCode::CREATED,
        position_header(commands::position(&committed)),
        [(LOCATION, location)],
        axum::Json(created),
    )
        .into_response())
}

/// The tenant's sessions, oldest first.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions",
    security(("bearer" = []), ("api_key" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "One page of sessions", body = List<SessionBody>),
        (status = 400, description = "Bad limit or cursor", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 503, description = "`unavailable`: the engines' heartbeats cannot be read (NATS unreachable); try again", body = ErrorBody),
    ))]
async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<List<SessionBody>>, ApiError> {
    let page = params.page::<Uuid>()?;
    after.wait(&state.db, PROJECTION).await?;
    let paged = sessions::list(&state.db, caller.tenant_id, &page, Utc::now()).await?;
    let ids: Vec<Uuid> = paged.items.iter().map(|s| s.id).collect();
    let mut configs = credentials::public_configs(&state.db, caller.tenant_id, &ids).await?;
    let mut list = List::from_paged(paged, |view| {
        let config = with_hook_url(&state, &view.driver, view.id, configs.remove(&view.id));
        SessionBody::from_view(view, config)
    });
    mark_lost_engines(&state, list.items.iter_mut()).await?;
    Ok(axum::Json(list))
}

/// One session.
#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "sessions",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The session's id")),
    responses(
        (status = 200, description = "The session", body = SessionBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such session in this tenant", body = ErrorBody),
        (status = 503, description = "`unavailable`: the engines' heartbeats cannot be read (NATS unreachable); try again", body = ErrorBody),
    ))]
async fn get_session(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<SessionBody>, ApiError> {
    let mut body = projected_or_404(&state, &after, caller.tenant_id, id).await?;
    let capacity = wablast_workflows::capacity::of_sender(
        &state.commands,
        caller.tenant_id,
        SessionId::from_uuid(id),
        Utc::now(),
    )
    .await
    .map_err(|err| ApiError::internal(format!("capacity not read: {err}")))?;
    if let Some(capacity) = capacity {
        body.capacity = Some(CapacityBody {
            today: capacity.today,
            left_today: capacity.left_today,
            this_hour: capacity.this_hour,
            new_contacts_left: capacity.new_contacts_left,
            grows_at: capacity.grows_at,
        });
        body.governor_state = Some(capacity.state);
        body.governor_until = capacity.state_until;
        body.restriction = capacity.restriction;
    }
    Ok(axum::Json(body))
}

/// Changes a session's name, daily limit, auto-start, and (platform admin
/// only, on any tenant's session) its trust level.
#[utoipa::path(patch, path = "/api/v1/sessions/{id}", tag = "sessions",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The session's id")),
    request_body = SessionPatch,
    responses(
        (status = 200, description = "The session as changed", body = SessionBody, headers(("X-Wablast-Position" = String, description = "Where the commit was written; send it back on reads to see it"))),
        (status = 400, description = "A bad field", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "`trust_level` by a caller who is not the platform admin, or an admin changing another tenant's settings", body = ErrorBody),
        (status = 404, description = "No such session in this tenant", body = ErrorBody),
        (status = 422, description = "`plan_limit_exceeded`: a daily limit above the plan's", body = ErrorBody),
        (status = 503, description = "`projection_lag`: the change was made, but the session's view is not ready yet; read it again shortly", body = ErrorBody),
    ))]
async fn update_session(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Path(id): Path<Uuid>,
    Json(body): Json<SessionPatch>,
) -> Result<Response, ApiError> {
    let name = body
        .name
        .as_deref()
        .map(|n| parse_name("name", n))
        .transpose()?;
    let daily_limit = body.daily_limit.map(parse_daily_limit).transpose()?;
    let trust_level = body
        .trust_level
        .map(|level| {
            u64::try_from(level)
                .ok()
                .and_then(|l| TrustLevel::parse(l).ok())
                .ok_or_else(|| {
                    ApiError::invalid_field("trust_level", "trust_level must be between 1 and 5")
                })
        })
        .transpose()?;
    let throttle = body
        .throttle
        .map(|t| {
            Throttle::new(t.min_delay_ms, t.max_delay_ms)
                .map_err(|err| ApiError::invalid_field("throttle", err.to_string()))
        })
        .transpose()?;
    let pacing = body.pacing.map(PacingBody::parse).transpose()?;
    let settings = name.is_some()
        || daily_limit.is_some()
        || body.auto_start.is_some()
        || throttle.is_some()
        || pacing.is_some();

    // The platform admin sets the trust level of any tenant's session: the
    // session's tenant is looked up. Everyone else acts in their tenant.
    let tenant = if caller.is_admin() {
        after.wait(&state.db, PROJECTION).await?;
        sessions::tenant_of(&state.db, SessionId::from_uuid(id))
            .await?
            .ok_or_else(|| ApiError::not_found("session"))?
    } else {
        caller.tenant_id
    };
    if tenant != caller.tenant_id {
        if settings {
            return Err(ApiError::forbidden(
                "an admin changes only the trust level of another tenant's session",
            ));
        }
        if trust_level.is_none() {
            // Nothing the admin may do there: the session is not theirs to
            // read either.
            return Err(ApiError::not_found("session"));
        }
    }

    let limits = TenantLimits::of(&state.commands.wallets, tenant).await?;
    let key = tenant_key(tenant, id);
    let metadata = caller.command();
    let mut last = None;
    // The trust level first: a caller who may not set it changes nothing.
    if let Some(level) = trust_level {
        let committed = commands::execute(
            &state.commands.sessions,
            &key,
            SessionCommand::SetTrustLevel {
                level,
                by_admin: caller.is_admin(),
                plan_max_daily_limit: limits.max_daily_limit,
                at: Utc::now(),
            },
            &metadata,
        )
        .await?;
        last = Some(commands::position(&committed));
    }
    // Settings, also when nothing was asked: then it changes nothing, and
    // only proves the session exists.
    if settings || trust_level.is_none() {
        let committed = commands::execute(
            &state.commands.sessions,
            &key,
            SessionCommand::UpdateSettings {
                name,
                daily_limit,
                auto_start: body.auto_start,
                throttle,
                pacing,
                plan_max_daily_limit: limits.max_daily_limit,
                at: Utc::now(),
            },
            &metadata,
        )
        .await?;
        last = Some(commands::position(&committed));
    }
    let position = last.expect("one command ran");
    let session = session_after(&state, tenant, id, position).await?;
    Ok((
        StatusCode::OK,
        position_header(position),
        axum::Json(session),
    )
        .into_response())
}

/// Deletes a session for good (an engine running it stops it) and its
/// stored credentials.
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "sessions",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The session's id")),
    responses(
        (status = 204, description = "Deleted", headers(("X-Wablast-Position" = String, description = "Where the commit was written; send it back on reads to see it"))),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such session in this tenant", body = ErrorBody),
    ))]
async fn delete_session(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let result = commands::execute(
        &state.commands.sessions,
        &tenant_key(caller.tenant_id, id),
        SessionCommand::DeleteSession { at: Utc::now() },
        &caller.command(),
    )
    .await;
    // Also when the session is gone already: credentials left behind by an
    // interrupted delete (or create) go with the retry. A WAHA session's
    // stay until an engine has removed the session from its WAHA server
    // with them; the engine deletes them then.
    if result
        .as_ref()
        .map_or_else(|e| e.code() == ErrorCode::NotFound, |_| true)
    {
        credentials::forget_deleted(&state.db, caller.tenant_id, SessionId::from_uuid(id)).await?;
    }
    let committed = result?;
    Ok((
        StatusCode::NO_CONTENT,
        position_header(commands::position(&committed)),
    )
        .into_response())
}

/// Starts a session (idle, disconnected, failed or logged_out → starting).
#[utoipa::path(post, path = "/api/v1/sessions/{id}/start", tag = "sessions",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The session's id")),
    responses(
        (status = 202, description = "Starting; the engine takes it from here", body = SessionBody, headers(("X-Wablast-Position" = String, description = "Where the commit was written; send it back on reads to see it"))),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such session in this tenant", body = ErrorBody),
        (status = 409, description = "`invalid_state`: it is running already", body = ErrorBody),
        (status = 503, description = "`projection_lag`: the change was made, but the session's view is not ready yet; read it again shortly", body = ErrorBody),
    ))]
async fn start_session(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    run_one(
        &state,
        &caller,
        id,
        SessionCommand::StartSession { at: Utc::now() },
    )
    .await
}

/// Stops a session without logging out (→ idle; the next start needs no
/// QR code).
#[utoipa::path(post, path = "/api/v1/sessions/{id}/stop", tag = "sessions",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The session's id")),
    responses(
        (status = 202, description = "Stopped", body = SessionBody, headers(("X-Wablast-Position" = String, description = "Where the commit was written; send it back on reads to see it"))),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such session in this tenant", body = ErrorBody),
        (status = 409, description = "`invalid_state`: it is not running", body = ErrorBody),
        (status = 503, description = "`projection_lag`: the change was made, but the session's view is not ready yet; read it again shortly", body = ErrorBody),
    ))]
async fn stop_session(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    run_one(
        &state,
        &caller,
        id,
        SessionCommand::StopSession { at: Utc::now() },
    )
    .await
}

/// Logs a session out: unlinks the number (→ logged_out; the next start
/// needs a new QR or pairing code).
#[utoipa::path(post, path = "/api/v1/sessions/{id}/logout", tag = "sessions",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The session's id")),
    responses(
        (status = 202, description = "Logged out", body = SessionBody, headers(("X-Wablast-Position" = String, description = "Where the commit was written; send it back on reads to see it"))),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such session in this tenant", body = ErrorBody),
        (status = 409, description = "`invalid_state`: it is logged out already", body = ErrorBody),
        (status = 503, description = "`projection_lag`: the change was made, but the session's view is not ready yet; read it again shortly", body = ErrorBody),
    ))]
async fn logout_session(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    run_one(
        &state,
        &caller,
        id,
        SessionCommand::LogoutSession { at: Utc::now() },
    )
    .await
}

/// Starts several sessions; each id gets its own result.
#[utoipa::path(post, path = "/api/v1/sessions/start", tag = "sessions",
    security(("bearer" = []), ("api_key" = [])),
    request_body = SessionIds,
    responses(
        (status = 202, description = "What became of each id", body = BatchResults, headers(("X-Wablast-Position" = String, description = "Where the commit was written; send it back on reads to see it"))),
        (status = 400, description = "Malformed body or too many ids", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn start_sessions(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<SessionIds>,
) -> Result<Response, ApiError> {
    run_batch(&state, &caller, body.ids, |at| {
        SessionCommand::StartSession { at }
    })
    .await
}

/// Stops several sessions; each id gets its own result.
#[utoipa::path(post, path = "/api/v1/sessions/stop", tag = "sessions",
    security(("bearer" = []), ("api_key" = [])),
    request_body = SessionIds,
    responses(
        (status = 202, description = "What became of each id", body = BatchResults, headers(("X-Wablast-Position" = String, description = "Where the commit was written; send it back on reads to see it"))),
        (status = 400, description = "Malformed body or too many ids", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn stop_sessions(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<SessionIds>,
) -> Result<Response, ApiError> {
    run_batch(&state, &caller, body.ids, |at| {
        SessionCommand::StopSession { at }
    })
    .await
}

/// Stops every running session of the tenant (those the projection shows
/// running; send `X-Wablast-Position` to include a start just made).
#[utoipa::path(post, path = "/api/v1/sessions/stop-all", tag = "sessions",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 202, description = "What became of each running session", body = BatchResults, headers(("X-Wablast-Position" = String, description = "Where the commit was written; send it back on reads to see it"))),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn stop_all_sessions(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
) -> Result<Response, ApiError> {
    after.wait(&state.db, PROJECTION).await?;
    let stoppable: Vec<SessionStatus> = SessionStatus::ALL
        .into_iter()
        .filter(|s| s.can_stop())
        .collect();
    let running = sessions::ids_in_statuses(&state.db, caller.tenant_id, &stoppable).await?;
    let ids = running.into_iter().map(|id| id.to_string()).collect();
    run_batch(&state, &caller, ids, |at| SessionCommand::StopSession {
        at,
    })
    .await
}

/// The QR code to scan with WhatsApp (Linked devices → Link a device), while
/// the session waits for one: a PNG image, or `{qr, expires_at}` with
/// `Accept: application/json`.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/qr", tag = "sessions",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("id" = Uuid, Path, description = "The session's id"),
        ("Accept" = Option<String>, Header, description = "`application/json` for the payload as JSON; otherwise a PNG"),
    ),
    responses(
        (status = 200, description = "The current QR code", content(
            (QrPng = "image/png"),
            (QrBody = "application/json"),
        )),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such session in this tenant", body = ErrorBody),
        (status = 409, description = "`invalid_state`: not waiting for a scan (or no current QR code yet)", body = ErrorBody),
        (status = 503, description = "`unavailable`: the QR codes cannot be reached; try again", body = ErrorBody),
    ))]
async fn session_qr(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let session = projected_or_404(&state, &after, caller.tenant_id, id).await?;
    if session.status != SessionStatus::Qr.as_str() {
        return Err(ApiError::new(
            ErrorCode::InvalidState,
            format!(
                "the session is {}, not waiting for a QR scan",
                session.status
            ),
        ));
    }
    let bucket = control::qr_bucket(state.log.jetstream(), state.log.prefix())
        .await
        .map_err(|e| ApiError::new(ErrorCode::Unavailable, format!("QR codes unreachable: {e}")))?;
    // The engine reports the status `qr` before it publishes the first
    // code, and a code expires as the next one is published: a client
    // following the status (the console) asks in between. It waits a
    // moment for the code rather than being refused.
    let deadline = tokio::time::Instant::now() + QR_WAIT;
    let entry = loop {
        let entry = bucket
            .get(id.to_string())
            .await
            .map_err(|e| {
                ApiError::new(ErrorCode::Unavailable, format!("QR codes unreachable: {e}"))
            })?
            .map(|bytes| serde_json::from_slice::<control::QrEntry>(&bytes))
            .transpose()
            .map_err(ApiError::internal)?
            .filter(|entry| entry.is_current(Utc::now()));
        match entry {
            Some(entry) => break entry,
            None if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(QR_POLL).await;
            }
            None => {
                return Err(ApiError::new(
                    ErrorCode::InvalidState,
                    "the session has no current QR code yet; try again in a moment",
                ));
            }
        }
    };
    let no_store = (CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let wants_json = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/json"));
    if wants_json {
        return Ok((
            [no_store],
            axum::Json(QrBody {
                qr: entry.qr,
                expires_at: entry.expires_at,
            }),
        )
            .into_response());
    }
    render_png(&entry.qr).map(IntoResponse::into_response)
}

/// How long `GET .../qr` waits for a session waiting for a scan to have a
/// current code, and how often it looks.
const QR_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
const QR_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// A QR code of `payload` as a PNG, at least 256 pixels wide with its quiet
/// zone.
fn render_png(payload: &str) -> Result<QrPng, ApiError> {
    let code = qrcode::QrCode::new(payload.as_bytes()).map_err(ApiError::internal)?;
    let image = code
        .render::<image::Luma<u8>>()
        .min_dimensions(256, 256)
        .build();
    let mut png = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut png, image::ImageFormat::Png)
        .map_err(ApiError::internal)?;
    Ok(QrPng(png.into_inner()))
}

/// Asks for a pairing code to type on the phone instead of scanning a QR
/// code. The engine running the session answers.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/pairing-code", tag = "sessions",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The session's id")),
    request_body = PairingCodeRequest,
    responses(
        (status = 200, description = "The code", body = PairingCode),
        (status = 400, description = "`invalid_phone`", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such session in this tenant", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the session is not started, or not waiting to be linked", body = ErrorBody),
        (status = 502, description = "`driver_failed`: the driver or WhatsApp failed; `engine_error`: the engine's answer was unreadable", body = ErrorBody),
        (status = 503, description = "`engine_unavailable`: the session is started but no engine runs it (yet)", body = ErrorBody),
    ))]
async fn pairing_code(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<PairingCodeRequest>,
) -> Result<axum::Json<PairingCode>, ApiError> {
    let phone_number = parse_phone("phone_number", &body.phone_number)?;
    load_session(&state, &caller, id)
        .await?
        .check_engine_request()
        .map_err(refused)?;
    let answer: control::PairingCodeResponse = ask_engine(
        &state,
        &caller,
        id,
        Verb::PairingCode,
        &control::PairingCodeRequest { phone_number },
    )
    .await?;
    Ok(axum::Json(PairingCode {
        code: answer.code,
        expires_at: answer.expires_at,
    }))
}

/// The session as its aggregate has it now (not the projection, which may
/// lag a start just made); 404 when the tenant has no such session.
async fn load_session(state: &AppState, caller: &Caller, id: Uuid) -> Result<Session, ApiError> {
    let loaded = state
        .commands
        .sessions
        .load(&tenant_key(caller.tenant_id, id))
        .await
        .map_err(ApiError::from)?;
    Ok(loaded.aggregate)
}

/// 404 unless the tenant has the session, 409 `invalid_state` unless it is
/// ready: what asks its driver through a linked number (`what`: "groups are
/// read", ...) needs. The session, when it is.
pub(crate) async fn ready_session(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    what: &str,
) -> Result<Session, ApiError> {
    let session = load_session(state, caller, id).await?;
    if !session.exists() || session.is_deleted() {
        return Err(ApiError::not_found("session"));
    }
    if !session.is_ready() {
        return Err(ApiError::new(
            ErrorCode::InvalidState,
            format!(
                "the session is {}, not ready: {what} through a linked number",
                session.status()
            ),
        ));
    }
    Ok(session)
}

/// A session's refusal, in the API's error shape.
fn refused(err: wablast_domain::session::SessionError) -> ApiError {
    ApiError::from(AggregateError::UserError(err))
}

/// Simulator only: a phone with this number scans the session's QR code,
/// linking it. Its status then moves as events (authenticated, ready).
#[utoipa::path(post, path = "/api/v1/sessions/{id}/simulator/scan", tag = "sessions",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The session's id")),
    request_body = SimulatorScan,
    responses(
        (status = 202, description = "Scanned", body = SimulatorAccepted),
        (status = 400, description = "`invalid_phone`", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such session in this tenant", body = ErrorBody),
        (status = 409, description = "`invalid_state`: not a simulator session, not started, or not waiting for a scan", body = ErrorBody),
        (status = 502, description = "`driver_failed`: the simulator failed; `engine_error`: the engine's answer was unreadable", body = ErrorBody),
        (status = 503, description = "`engine_unavailable`: the session is started but no engine runs it (yet)", body = ErrorBody),
    ))]
async fn simulator_scan(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<SimulatorScan>,
) -> Result<(StatusCode, axum::Json<SimulatorAccepted>), ApiError> {
    let phone_number = parse_phone("phone_number", &body.phone_number)?;
    load_session(&state, &caller, id)
        .await?
        .check_simulator_control()
        .map_err(refused)?;
    let _: control::SimulatorScanResponse = ask_engine(
        &state,
        &caller,
        id,
        Verb::SimulatorScan,
        &control::SimulatorScanRequest { phone_number },
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(SimulatorAccepted {
            status: "accepted",
            message_id: None,
        }),
    ))
}

/// The longest simulated inbound text.
const MAX_INBOUND_CHARS: usize = 4096;

/// Simulator only: someone sends the session's number a message (auto-replies
/// and events follow as for a real one).
#[utoipa::path(post, path = "/api/v1/sessions/{id}/simulator/inbound", tag = "sessions",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The session's id")),
    request_body = SimulatorInbound,
    responses(
        (status = 202, description = "Delivered to the session", body = SimulatorAccepted),
        (status = 400, description = "`invalid_phone` or a bad text", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such session in this tenant", body = ErrorBody),
        (status = 409, description = "`invalid_state`: not a simulator session, not started, or not linked", body = ErrorBody),
        (status = 502, description = "`driver_failed`: the simulator failed; `engine_error`: the engine's answer was unreadable", body = ErrorBody),
        (status = 503, description = "`engine_unavailable`: the session is started but no engine runs it (yet)", body = ErrorBody),
    ))]
async fn simulator_inbound(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<SimulatorInbound>,
) -> Result<(StatusCode, axum::Json<SimulatorAccepted>), ApiError> {
    let from = parse_phone("from", &body.from)?;
    let text = body.text.trim();
    if text.is_empty() || text.chars().count() > MAX_INBOUND_CHARS {
        return Err(ApiError::invalid_field(
            "text",
            format!("text must have 1 to {MAX_INBOUND_CHARS} characters"),
        ));
    }
    load_session(&state, &caller, id)
        .await?
        .check_simulator_control()
        .map_err(refused)?;
    let answer: control::SimulatorInboundResponse = ask_engine(
        &state,
        &caller,
        id,
        Verb::SimulatorInbound,
        &control::SimulatorInboundRequest {
            from,
            text: text.to_owned(),
        },
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(SimulatorAccepted {
            status: "accepted",
            message_id: answer.message_id,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendered_qr_code_is_a_png() {
        let QrPng(png) = render_png("2@abc,def,ghi").unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let image = image::load_from_memory(&png).unwrap();
        assert!(image.width() >= 256);
    }

    #[test]
    fn fields_are_validated_naming_the_field() {
        assert_eq!(
            parse_driver(Some("telegram")).unwrap_err().code(),
            ErrorCode::ValidationFailed
        );
        assert_eq!(parse_driver(None).unwrap(), Driver::Simulator);
        assert_eq!(
            parse_login(Some("sms")).unwrap_err().code(),
            ErrorCode::ValidationFailed
        );
        assert_eq!(
            parse_daily_limit(0).unwrap_err().code(),
            ErrorCode::ValidationFailed
        );
        assert_eq!(
            parse_daily_limit(-5).unwrap_err().code(),
            ErrorCode::ValidationFailed
        );
        assert_eq!(parse_daily_limit(500).unwrap().value(), 500);
        assert_eq!(
            parse_phone("phone_number", "0812").unwrap_err().code(),
            ErrorCode::InvalidPhone
        );
        assert_eq!(
            parse_phone("phone_number", "+6281234567890")
                .unwrap()
                .as_str(),
            "+6281234567890"
        );
    }
}
