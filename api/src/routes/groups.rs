//! WhatsApp groups a session's number is in, their participants, and a
//! contact list made from one.
//!
//! Only the engine running the session can ask its driver, so these are
//! requests to it (the `control` contract); a session no engine runs
//! answers 503 `engine_unavailable`.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wablast_domain::types::GroupId;
use wablast_workflows::control::{
    self, GroupMembersRequest, GroupMembersResponse, GroupsRequest, GroupsResponse, Verb,
};

use super::contacts::list_name;
use super::sessions::{ask_engine, ready_session};
use crate::auth::Caller;
use crate::contacts::edit::{self, Participant};
use crate::contacts::{Imported, store};
use crate::error::ErrorBody;
use crate::extract::{Json, Path};
use crate::{ApiError, AppState};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_groups))
        .routes(routes!(list_members))
        .routes(routes!(import_group))
}

/// A group the session's number is in.
#[derive(Debug, Serialize, ToSchema)]
pub struct Group {
    /// Its id (`…@g.us`).
    #[schema(example = "120363025246125486@g.us")]
    pub id: String,
    /// Its subject.
    #[schema(example = "Pelanggan Setia")]
    pub name: String,
    /// How many participants it has.
    pub participants: usize,
}

/// A group's participant.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupMember {
    /// As WhatsApp names it (`628…@c.us`, or `…@lid` when the number is
    /// hidden).
    pub id: String,
    /// The number, when WhatsApp lets the session see it.
    #[schema(example = "+6281234567890")]
    pub phone: Option<String>,
    /// Whether it administers the group.
    pub admin: bool,
}

/// The session's groups.
#[derive(Debug, Serialize, ToSchema)]
pub struct Groups {
    /// Each group.
    pub items: Vec<Group>,
    /// Always null: one page holds them all.
    pub next_cursor: Option<String>,
}

/// A group's participants.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupMembers {
    /// Each participant.
    pub items: Vec<GroupMember>,
    /// Always null: one page holds them all.
    pub next_cursor: Option<String>,
}

/// A contact list to make from a group.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupImport {
    /// The session whose number is in the group.
    pub session_id: Uuid,
    /// The group (`GET /api/v1/sessions/{id}/groups`).
    #[schema(example = "120363025246125486@g.us")]
    pub group_id: String,
    /// The list's name (1 to 200 characters).
    #[schema(example = "Grup Pelanggan Setia")]
    pub name: String,
}

fn group_id(text: &str) -> Result<String, ApiError> {
    text.parse::<GroupId>()
        .map(|id| id.as_str().to_owned())
        .map_err(|err| ApiError::invalid_field("group_id", err.to_string()))
}

async fn members(
    state: &AppState,
    caller: &Caller,
    session: Uuid,
    group: String,
) -> Result<Vec<control::GroupMemberInfo>, ApiError> {
    let answer: GroupMembersResponse = ask_engine(
        state,
        caller,
        session,
        Verb::GroupMembers,
        &GroupMembersRequest { group_id: group },
    )
    .await?;
    Ok(answer.members)
}

/// The groups the session's number is in, as WhatsApp tells them now.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/groups", tag = "sessions",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The session")),
    responses(
        (status = 200, description = "The groups", body = Groups),
        (status = 400, description = "`validation_failed`: the session's driver cannot list groups", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such session in the caller's tenant", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the session is not ready", body = ErrorBody),
        (status = 502, description = "`driver_failed`: WhatsApp or the driver's server failed; `engine_error`", body = ErrorBody),
        (status = 503, description = "`engine_unavailable`: no engine runs the session", body = ErrorBody),
    ))]
async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Groups>, ApiError> {
    ready_session(&state, &caller, id, "groups are read").await?;
    let answer: GroupsResponse =
        ask_engine(&state, &caller, id, Verb::Groups, &GroupsRequest {}).await?;
    Ok(axum::Json(Groups {
        items: answer
            .groups
            .into_iter()
            .map(|g| Group {
                id: g.id,
                name: g.name,
                participants: g.participants,
            })
            .collect(),
        next_cursor: None,
    }))
}

/// A group's participants, with their numbers where WhatsApp shows them.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/groups/{group_id}/members", tag = "sessions",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("id" = Uuid, Path, description = "The session"),
        ("group_id" = String, Path, description = "The group (`…@g.us`)"),
    ),
    responses(
        (status = 200, description = "The participants", body = GroupMembers),
        (status = 400, description = "`validation_failed`: not a group id, or the driver cannot list participants", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such session in the caller's tenant", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the session is not ready", body = ErrorBody),
        (status = 502, description = "`driver_failed`: no such group, or WhatsApp failed; `engine_error`", body = ErrorBody),
        (status = 503, description = "`engine_unavailable`: no engine runs the session", body = ErrorBody),
    ))]
async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, group)): Path<(Uuid, String)>,
) -> Result<axum::Json<GroupMembers>, ApiError> {
    let group = group_id(&group)?;
    ready_session(&state, &caller, id, "groups are read").await?;
    let members = members(&state, &caller, id, group).await?;
    Ok(axum::Json(GroupMembers {
        items: members
            .into_iter()
            .map(|m| GroupMember {
                id: m.id,
                phone: m.phone.map(|p| p.as_str().to_owned()),
                admin: m.admin,
            })
            .collect(),
        next_cursor: None,
    }))
}

/// Makes a contact list of a group's participants.
///
/// Each participant whose number the session can see becomes a contact
/// (checked like any imported row); importing them is the importer's
/// statement that they agreed to receive messages, and the list records
/// the group it came from. Participants whose number WhatsApp hides are
/// reported as `number_hidden`, `row` being their place among the
/// participants.
#[utoipa::path(post, path = "/api/v1/contact-lists/group-import", tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    request_body = GroupImport,
    responses(
        (status = 201, description = "Created, with the report of participants not imported", body = Imported),
        (status = 400, description = "`validation_failed`: a bad name or group id, or the driver cannot list participants", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such session in the caller's tenant", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the session is not ready", body = ErrorBody),
        (status = 502, description = "`driver_failed`: no such group, or WhatsApp failed; `engine_error`", body = ErrorBody),
        (status = 503, description = "`engine_unavailable`: no engine runs the session", body = ErrorBody),
    ))]
async fn import_group(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<GroupImport>,
) -> Result<(StatusCode, axum::Json<Imported>), ApiError> {
    let name = list_name(Some(body.name), None)?;
    let group = group_id(&body.group_id)?;
    ready_session(&state, &caller, body.session_id, "groups are read").await?;
    let members = members(&state, &caller, body.session_id, group.clone()).await?;
    let participants: Vec<Participant> = members
        .into_iter()
        .map(|m| Participant {
            id: m.id,
            phone: m.phone.map(|p| p.as_str().to_owned()),
        })
        .collect();
    let created = edit::create_from_group(
        &state.db,
        caller.tenant_id,
        name,
        store::GroupOrigin {
            group_id: &group,
            session_id: body.session_id,
        },
        &participants,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}
