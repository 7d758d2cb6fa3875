//! Checks of a whole contact list's numbers on WhatsApp, run in the
//! background through one session (`workflows::list_checks`): start one,
//! follow it, cancel it. Its progress is also on the event stream
//! (`ListCheckProgressed`), and each contact shows what was found
//! (`GET /api/v1/contact-lists/{id}/contacts`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wablast_domain::list_check::{CheckFailure, ListCheckCommand, ListCheckStatus};
use wablast_domain::session::Driver;
use wablast_domain::types::{ContactListId, ListCheckId, SessionId};
use wablast_projections::queries::list_checks::{self, ListCheckRow};

use super::sessions::ready_session;
use crate::auth::Caller;
use crate::commands::{position, tenant_key};
use crate::consistency::{After, header_value};
use crate::error::ErrorBody;
use crate::extract::{Json, Path};
use crate::{ApiError, AppState, ErrorCode};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(start_check, get_check, cancel_check))
}

/// The projection the views read.
const READS: &[&str] = &["list_checks"];

/// Which session checks the list.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewListCheck {
    /// A ready session of the caller's that can check numbers (not a Cloud
    /// API number).
    pub session_id: Uuid,
}

/// A check of a list's numbers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListCheckView {
    /// The check's id.
    pub job_id: Uuid,
    /// The list it checks.
    pub list_id: Uuid,
    /// The session that asks.
    pub session_id: Uuid,
    /// `running`, `completed`, `failed` or `cancelled`.
    pub status: ListCheckStatus,
    /// The contacts it covers: the list's when it started.
    pub contacts: i64,
    /// Contacts checked so far (`on_whatsapp` + `not_on_whatsapp`).
    pub checked: i64,
    /// Of them, on WhatsApp.
    pub on_whatsapp: i64,
    /// Of them, not on WhatsApp.
    pub not_on_whatsapp: i64,
    /// Why it failed.
    pub failure: Option<CheckFailure>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it last got further.
    pub updated_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
}

impl From<ListCheckRow> for ListCheckView {
    fn from(row: ListCheckRow) -> Self {
        Self {
            status: row.status(),
            failure: row.failure(),
            job_id: row.id,
            list_id: row.list_id,
            session_id: row.session_id,
            contacts: row.contacts,
            checked: row.checked,
            on_whatsapp: row.on_whatsapp,
            not_on_whatsapp: row.not_on_whatsapp,
            started_at: row.started_at,
            updated_at: row.updated_at,
            ended_at: row.ended_at,
        }
    }
}

/// Checks which of a list's numbers are on WhatsApp, in the background.
///
/// The check covers the list's contacts as they are now, in order, and
/// asks through the session at its own pace for checks (by default one
/// number per 2 seconds with a random delay on top, apart from its sends:
/// asking about many numbers quickly gets a number banned). Numbers any of
/// the tenant's sessions checked in the last 7 days are answered from that
/// check at once. It goes on after restarts, waits while the session is not
/// ready, and fails when the list or the session is deleted or the session
/// logged out. Its progress is on the event stream (`ListCheckStarted`,
/// `ListCheckProgressed`, `ListCheckCompleted`, `ListCheckFailed`) and at
/// `GET /api/v1/contact-lists/{id}/check`; each contact shows what was
/// found, and campaigns created with `skip_not_on_whatsapp` leave out
/// those not on WhatsApp. One check of a list runs at a time.
#[utoipa::path(post, path = "/api/v1/contact-lists/{id}/check", tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The list")),
    request_body = NewListCheck,
    responses(
        (status = 202, description = "Started (`X-Wablast-Position` names the write)", body = ListCheckView),
        (status = 400, description = "`validation_failed`: a bad body, an empty list, or a session whose driver cannot check numbers (Cloud API)", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such list or session in the caller's tenant", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the session is not ready, or a check of this list is running", body = ErrorBody),
    ))]
async fn start_check(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Path(id): Path<Uuid>,
    Json(body): Json<NewListCheck>,
) -> Result<Response, ApiError> {
    let list_id = ContactListId::from_uuid(id);
    let (contacts, last_row) = list_checks::extent(&state.db, caller.tenant_id, list_id)
        .await?
        .ok_or_else(|| ApiError::not_found("contact list"))?;
    let session = ready_session(&state, &caller, body.session_id, "numbers are checked").await?;
    if session.driver() == Driver::Cloud {
        return Err(ApiError::invalid_field(
            "session_id",
            "a Cloud API number cannot check numbers: use another session",
        ));
    }
    if contacts == 0 {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            "the list has no contacts to check",
        ));
    }
    after.wait(&state.db, READS).await?;
    if let Some(running) = list_checks::latest(&state.db, caller.tenant_id, list_id)
        .await?
        .filter(|check| check.status() == ListCheckStatus::Running)
    {
        return Err(ApiError::new(
            ErrorCode::InvalidState,
            format!("a check of this list is running: {}", running.id),
        ));
    }
    let check = ListCheckId::new();
    let at = Utc::now();
    let contacts = u64::try_from(contacts).unwrap_or(0);
    let committed = state
        .commands
        .list_checks
        .execute(
            &tenant_key(caller.tenant_id, check),
            ListCheckCommand::Start {
                list_id,
                session_id: SessionId::from_uuid(body.session_id),
                contacts,
                last_row,
                at,
            },
            &caller.command(),
        )
        .await?;
    let view = ListCheckView {
        job_id: *check.as_uuid(),
        list_id: id,
        session_id: body.session_id,
        status: ListCheckStatus::Running,
        contacts: i64::try_from(contacts).unwrap_or(i64::MAX),
        checked: 0,
        on_whatsapp: 0,
        not_on_whatsapp: 0,
        failure: None,
        started_at: at,
        updated_at: at,
        ended_at: None,
    };
    Ok((
        StatusCode::ACCEPTED,
        [header_value(position(&committed))],
        axum::Json(view),
    )
        .into_response())
}

/// The latest check of a list's numbers, running or ended.
#[utoipa::path(get, path = "/api/v1/contact-lists/{id}/check", tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The list")),
    responses(
        (status = 200, description = "Its latest check", body = ListCheckView),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such list in the caller's tenant, or it was never checked", body = ErrorBody),
    ))]
async fn get_check(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<ListCheckView>, ApiError> {
    after.wait(&state.db, READS).await?;
    list_checks::latest(&state.db, caller.tenant_id, ContactListId::from_uuid(id))
        .await?
        .map(|row| axum::Json(row.into()))
        .ok_or_else(|| ApiError::not_found("list check"))
}

/// Stops the running check of a list. What it found so far stays.
#[utoipa::path(delete, path = "/api/v1/contact-lists/{id}/check", tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The list")),
    responses(
        (status = 204, description = "Cancelled (`X-Wablast-Position` names the write)"),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such list in the caller's tenant, or it was never checked", body = ErrorBody),
        (status = 409, description = "`invalid_state`: its latest check ended (completed or failed)", body = ErrorBody),
    ))]
async fn cancel_check(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    after.wait(&state.db, READS).await?;
    let latest = list_checks::latest(&state.db, caller.tenant_id, ContactListId::from_uuid(id))
        .await?
        .ok_or_else(|| ApiError::not_found("list check"))?;
    let committed = state
        .commands
        .list_checks
        .execute(
            &tenant_key(caller.tenant_id, latest.id),
            ListCheckCommand::Cancel { at: Utc::now() },
            &caller.command(),
        )
        .await?;
    Ok((StatusCode::NO_CONTENT, [header_value(position(&committed))]).into_response())
}
