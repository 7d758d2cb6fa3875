//! The tenant's active hours: a time zone, weekly windows (none: always
//! on) and a manual override (pause all, activate now). Never set, they are
//! Asia/Jakarta, always on.

use std::str::FromStr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wablast_domain::schedule::{Schedule, ScheduleCommand, ScheduleError};
use wablast_domain::types::active_hours::parse_hhmm;
use wablast_domain::types::{ActiveHours, ActiveHoursError, Override, TimeZone, Weekday, Window};
use wablast_eventstore::Committed;
use wablast_projections::queries::schedule;

use crate::auth::Caller;
use crate::commands::{position, tenant_key};
use crate::consistency::{After, header_value};
use crate::error::ErrorBody;
use crate::extract::Json;
use crate::{ApiError, AppState};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_schedule, put_schedule))
        .routes(routes!(set_override))
}

/// Active hours as set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    /// An IANA time zone (default `Asia/Jakarta`).
    #[schema(example = "Asia/Jakarta")]
    pub timezone: Option<String>,
    /// The weekly windows; none (or empty): always on.
    #[serde(default)]
    pub windows: Vec<WindowBody>,
}

/// One weekly window, local time. `end` before `start` crosses midnight;
/// `end` equal to `start` is the whole day.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowBody {
    /// The days it opens on: `mon`, `tue`, `wed`, `thu`, `fri`, `sat`,
    /// `sun`.
    #[schema(example = json!(["mon", "tue", "wed", "thu", "fri"]))]
    pub days: Vec<String>,
    /// When it opens, `HH:MM`.
    #[schema(example = "09:00")]
    pub start: String,
    /// When it closes, `HH:MM`.
    #[schema(example = "18:00")]
    pub end: String,
}

/// The manual override.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OverrideMode {
    /// The windows decide.
    None,
    /// Closed, whatever the windows say ("pause all").
    Pause,
    /// Open, whatever the windows say ("activate now").
    Activate,
}

impl From<OverrideMode> for Override {
    fn from(mode: OverrideMode) -> Self {
        match mode {
            OverrideMode::None => Self::None,
            OverrideMode::Pause => Self::Pause,
            OverrideMode::Activate => Self::Activate,
        }
    }
}

/// A new override.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOverride {
    /// `pause` (pause all), `activate` (activate now) or `none` (back to
    /// the windows).
    pub mode: OverrideMode,
}

/// A tenant's active hours.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleView {
    /// The IANA time zone.
    #[schema(example = "Asia/Jakarta")]
    pub timezone: String,
    /// The weekly windows; empty: always on.
    pub windows: Vec<WindowBody>,
    /// The manual override: `none`, `pause` or `activate`.
    #[serde(rename = "override")]
    #[schema(example = "none")]
    pub override_mode: String,
}

impl From<&ActiveHours> for ScheduleView {
    fn from(hours: &ActiveHours) -> Self {
        Self {
            timezone: hours.timezone().name().to_owned(),
            windows: hours
                .windows()
                .iter()
                .map(|w| WindowBody {
                    days: w.days().iter().map(|d| d.as_str().to_owned()).collect(),
                    start: w.start().format("%H:%M").to_string(),
                    end: w.end().format("%H:%M").to_string(),
                })
                .collect(),
            override_mode: hours.override_mode().as_str().to_owned(),
        }
    }
}

/// A window as the client wrote it, checked; errors name the field
/// (`<list>[2].start`, `list` being `windows` here).
pub(crate) fn parse_window(list: &str, i: usize, window: &WindowBody) -> Result<Window, ApiError> {
    let field = |name: &str| format!("{list}[{i}].{name}");
    let invalid = |name: &str, err: ActiveHoursError| {
        ApiError::invalid_field(&field(name), format!("{}: {err}", field(name)))
    };
    let days = window
        .days
        .iter()
        .map(|day| Weekday::from_str(day))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| invalid("days", err))?;
    let start = parse_hhmm(&window.start).map_err(|err| invalid("start", err))?;
    let end = parse_hhmm(&window.end).map_err(|err| invalid("end", err))?;
    Window::new(days, start, end).map_err(|err| invalid("days", err))
}

async fn answer(
    state: &AppState,
    caller: &Caller,
    committed: &Committed<Schedule>,
) -> Result<Response, ApiError> {
    let key = tenant_key(caller.tenant_id, caller.tenant_id);
    let loaded = state
        .commands
        .schedules
        .load(&key)
        .await
        .map_err(ApiError::from)?;
    Ok((
        StatusCode::OK,
        [header_value(position(committed))],
        axum::Json(ScheduleView::from(loaded.aggregate.active_hours())),
    )
        .into_response())
}

fn schedule_error(err: cqrs_es::AggregateError<ScheduleError>) -> ApiError {
    let too_many = matches!(
        &err,
        cqrs_es::AggregateError::UserError(ScheduleError::InvalidActiveHours(
            ActiveHoursError::TooManyWindows { .. }
        ))
    );
    let error = ApiError::from(err);
    if too_many {
        error.with_details(serde_json::json!({"field": "windows"}))
    } else {
        error
    }
}

/// The caller's active hours (Asia/Jakarta, always on, when never set).
#[utoipa::path(get, path = "/api/v1/schedule", tag = "schedule",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The active hours", body = ScheduleView),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn get_schedule(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
) -> Result<axum::Json<ScheduleView>, ApiError> {
    after.wait(&state.db, &["schedules"]).await?;
    let view = schedule::get(&state.db, caller.tenant_id).await?;
    let windows = serde_json::from_value(view.windows).map_err(ApiError::internal)?;
    Ok(axum::Json(ScheduleView {
        timezone: view.timezone,
        windows,
        override_mode: view.override_mode,
    }))
}

/// Replaces the time zone and windows (the override stays as it is).
#[utoipa::path(put, path = "/api/v1/schedule", tag = "schedule",
    security(("bearer" = []), ("api_key" = [])),
    request_body = NewSchedule,
    responses(
        (status = 200, description = "The active hours now (`X-Wablast-Position` names the write)", body = ScheduleView),
        (status = 400, description = "Bad time zone, day, time, or too many windows; `details.field` names it", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn put_schedule(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewSchedule>,
) -> Result<Response, ApiError> {
    let timezone = match body.timezone.as_deref() {
        Some(name) => TimeZone::parse(name)
            .map_err(|err| ApiError::invalid_field("timezone", err.to_string()))?,
        None => TimeZone::JAKARTA,
    };
    let windows = body
        .windows
        .iter()
        .enumerate()
        .map(|(i, window)| parse_window("windows", i, window))
        .collect::<Result<Vec<_>, _>>()?;
    let key = tenant_key(caller.tenant_id, caller.tenant_id);
    let committed = state
        .commands
        .schedules
        .execute(
            &key,
            ScheduleCommand::SetActiveHours {
                timezone,
                windows,
                at: Utc::now(),
            },
            &caller.command(),
        )
        .await
        .map_err(schedule_error)?;
    answer(&state, &caller, &committed).await
}

/// Sets the manual override: `pause` stops all sending, `activate` sends
/// whatever the windows say, `none` goes back to the windows.
#[utoipa::path(post, path = "/api/v1/schedule/override", tag = "schedule",
    security(("bearer" = []), ("api_key" = [])),
    request_body = NewOverride,
    responses(
        (status = 200, description = "The active hours now (`X-Wablast-Position` names the write)", body = ScheduleView),
        (status = 400, description = "Not one of pause, activate, none", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn set_override(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewOverride>,
) -> Result<Response, ApiError> {
    let key = tenant_key(caller.tenant_id, caller.tenant_id);
    let committed = state
        .commands
        .schedules
        .execute(
            &key,
            ScheduleCommand::SetOverride {
                mode: body.mode.into(),
                at: Utc::now(),
            },
            &caller.command(),
        )
        .await
        .map_err(schedule_error)?;
    answer(&state, &caller, &committed).await
}
