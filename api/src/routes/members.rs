//! A tenant's members: invitations, roles, removal (`team` aggregate).
//!
//! Owners invite (`POST /members/invite`: the answer carries a one-time
//! token, shown once, which the owner passes on; wablast sends no email),
//! change roles and remove members; the invitee joins with
//! `POST /members/accept` (the token and a password: it becomes an account
//! of the tenant). Members and API keys may list the team but not change
//! it (403 `forbidden`); the team's last owner is neither removed nor
//! demoted (422 `last_owner`). A removed member's tokens and the API keys
//! it created stop working at once in this process (`auth::access`).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wablast_domain::team::{TeamCommand, TeamMember, TeamRole};
use wablast_domain::types::{InvitationId, TenantId, UserId};
use wablast_eventstore::{Actor, CommandMetadata};
use wablast_projections::queries::members;
use wablast_projections::wait::Position;

use super::auth::{Registered, UserView};
use crate::auth::{Caller, Role, accounts, api_key, invitation, password};
use crate::commands::{self, position, tenant_key};
use crate::consistency::{After, header_value};
use crate::error::ErrorBody;
use crate::extract::{Json, Path};
use crate::list::List;
use crate::{ApiError, AppState, ErrorCode};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(invite_member))
        .routes(routes!(accept_invitation))
        .routes(routes!(list_members))
        .routes(routes!(list_invitations))
        .routes(routes!(revoke_invitation))
        .routes(routes!(change_role, remove_member))
}

/// A member of the team.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    /// The account.
    pub user_id: Uuid,
    /// Its email.
    pub email: String,
    /// Its name.
    pub name: Option<String>,
    /// `owner` or `member`.
    pub role: TeamRole,
    /// When it joined (registered, for the tenant's first accounts).
    pub joined_at: DateTime<Utc>,
}

impl From<members::MemberRow> for MemberView {
    fn from(row: members::MemberRow) -> Self {
        Self {
            user_id: row.user_id,
            role: row.role.parse().unwrap_or(TeamRole::Member),
            email: row.email,
            name: row.name,
            joined_at: row.joined_at,
        }
    }
}

/// A pending invitation.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    /// Its id.
    pub id: Uuid,
    /// The invitee's email.
    pub email: String,
    /// The role it joins with.
    pub role: TeamRole,
    /// The owner who invited.
    pub invited_by: Uuid,
    /// When.
    pub invited_at: DateTime<Utc>,
    /// Until when it may be accepted.
    pub expires_at: DateTime<Utc>,
}

impl From<members::InvitationRow> for InvitationView {
    fn from(row: members::InvitationRow) -> Self {
        Self {
            id: row.id,
            role: row.role.parse().unwrap_or(TeamRole::Member),
            email: row.email,
            invited_by: row.invited_by,
            invited_at: row.invited_at,
            expires_at: row.expires_at,
        }
    }
}

/// An invitation to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvitation {
    /// The invitee's email.
    #[schema(example = "sari@tokobudi.id")]
    pub email: String,
    /// `owner` or `member`.
    pub role: TeamRole,
}

/// A new invitation and its token: the only time the token is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedInvitation {
    /// The invitation.
    #[serde(flatten)]
    pub invitation: InvitationView,
    /// The one-time token the invitee joins with
    /// (`POST /api/v1/members/accept`). Shown once.
    pub token: String,
    /// The console's page that accepts it: `/accept-invite?token=...`.
    pub accept_path: String,
}

/// A role to give.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    /// `owner` or `member`.
    pub role: TeamRole,
}

/// Joining a team with an invitation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Acceptance {
    /// The invitation's token.
    pub token: String,
    /// The new account's password (at least 8 characters).
    pub password: String,
    /// The person's name.
    pub name: Option<String>,
}

/// How long a handler waits for its change to be enforced by this
/// process's access rights before it answers 503.
const ENFORCED_WITHIN: Duration = Duration::from_secs(10);

/// The team as the account store has it: who founds it when it has no
/// events yet.
async fn founders(state: &AppState, tenant: TenantId) -> Result<Vec<TeamMember>, ApiError> {
    Ok(members::founders(&state.db, tenant)
        .await?
        .into_iter()
        .map(|(id, role)| TeamMember {
            user_id: UserId::from_uuid(id),
            role: role.parse().unwrap_or(TeamRole::Member),
        })
        .collect())
}

/// Waits until the `members` projection and this process's access rights
/// have the change at `at`.
async fn settled(state: &AppState, at: Position) -> Result<(), ApiError> {
    After::at(at).wait(&state.db, &["members"]).await?;
    if state.access.reached(at.sequence, ENFORCED_WITHIN).await {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::Unavailable,
            "the change is recorded but not yet enforced; try again",
        ))
    }
}

fn by(caller: &Caller) -> Option<UserId> {
    caller.user_id().map(UserId::from_uuid)
}

/// Runs an owner's command on the caller's team (`command` given who
/// asked and the founders a team from before starts from), then waits
/// until this process enforces it; where it stands on the log.
async fn on_team(
    state: &AppState,
    caller: &Caller,
    command: impl FnOnce(Option<UserId>, Vec<TeamMember>) -> TeamCommand,
) -> Result<Position, ApiError> {
    let founders = founders(state, caller.tenant_id).await?;
    let committed = commands::execute(
        &state.commands.teams,
        &tenant_key(caller.tenant_id, caller.tenant_id),
        command(by(caller), founders),
        &caller.command(),
    )
    .await?;
    let at = position(&committed);
    settled(state, at).await?;
    Ok(at)
}

/// Invites someone to join the caller's tenant (owners only).
///
/// A pending invitation of the same email is replaced. wablast sends no
/// email: pass the token (or the console's accept page) on.
#[utoipa::path(post, path = "/api/v1/members/invite", tag = "members",
    security(("bearer" = []), ("api_key" = [])),
    request_body = NewInvitation,
    responses(
        (status = 201, description = "Invited; the token is in the answer, once", body = CreatedInvitation),
        (status = 400, description = "Not an email address, or a role other than owner or member", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an owner of the tenant (members and API keys may not invite); or `tenant_suspended`", body = ErrorBody),
        (status = 409, description = "`conflict`: the email has an account already (in this tenant or another)", body = ErrorBody),
    ))]
async fn invite_member(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewInvitation>,
) -> Result<Response, ApiError> {
    let email = accounts::normalize_email(&body.email);
    if !accounts::plausible_email(&email) {
        return Err(ApiError::invalid_field(
            "email",
            "this is not an email address",
        ));
    }
    if caller.role < Role::Owner {
        return Err(ApiError::forbidden(
            "only the tenant's owners manage its members",
        ));
    }
    if let Some(user) = accounts::user_by_email(&state.db, &email).await? {
        let removed = state.access.standing(user.id).is_some_and(|s| s.removed);
        if !removed {
            let whose = if user.tenant_id == *caller.tenant_id.as_uuid() {
                "this account is a member already"
            } else {
                "this email has an account in another tenant"
            };
            return Err(
                ApiError::new(ErrorCode::Conflict, whose).with_details(json!({"field": "email"}))
            );
        }
    }
    let invitation_id = InvitationId::new();
    let token = invitation::generate(caller.tenant_id, invitation_id);
    let at = on_team(&state, &caller, |by, founders| TeamCommand::Invite {
        invitation_id,
        email,
        role: body.role,
        token_digest: invitation::digest(&token),
        by,
        founders,
        at: Utc::now(),
    })
    .await?;
    let row = members::pending_invitations(&state.db, caller.tenant_id)
        .await?
        .into_iter()
        .find(|i| i.id == *invitation_id.as_uuid())
        .ok_or_else(|| ApiError::internal("the invitation is not in the projection"))?;
    tracing::info!(tenant = %caller.tenant_id, invitation = %invitation_id, "member invited");
    Ok((
        StatusCode::CREATED,
        [header_value(at)],
        axum::Json(CreatedInvitation {
            invitation: row.into(),
            accept_path: format!("/accept-invite?token={token}"),
            token,
        }),
    )
        .into_response())
}

/// Joins a team with an invitation's token: creates the invitee's account
/// in the inviting tenant, with the invitation's role, and answers its
/// first access token.
///
/// An email whose account was removed from a team joins with that account
/// (its new password replacing the old); an email with a live account is
/// refused (409).
#[utoipa::path(post, path = "/api/v1/members/accept", tag = "members",
    request_body = Acceptance,
    responses(
        (status = 201, description = "Joined", body = Registered),
        (status = 400, description = "Password too short, name too long", body = ErrorBody),
        (status = 403, description = "`tenant_suspended`: the platform operator suspended the inviting tenant", body = ErrorBody),
        (status = 404, description = "`not_found`: no such invitation (a wrong token too)", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the invitation was used, withdrawn, replaced or has expired; `conflict`: the email has a live account", body = ErrorBody),
        (status = 503, description = "`unavailable`: this process is still loading who may act; try again", body = ErrorBody),
    ))]
async fn accept_invitation(
    State(state): State<AppState>,
    Json(body): Json<Acceptance>,
) -> Result<(StatusCode, axum::Json<Registered>), ApiError> {
    let token = body.token.trim();
    let (tenant, invitation_id) =
        invitation::parse(token).ok_or_else(|| ApiError::not_found("invitation"))?;
    let digest = invitation::digest(token);
    super::auth::check_password(&body.password)?;
    let name = super::auth::optional_text("name", body.name, 200)?;
    let key = tenant_key(tenant, tenant);
    let team = state
        .commands
        .teams
        .load(&key)
        .await
        .map_err(ApiError::internal)?;
    let team = team.aggregate;
    if team.is_closed(invitation_id, &digest) {
        return Err(ApiError::new(
            ErrorCode::InvalidState,
            "this invitation was used or withdrawn already",
        ));
    }
    let (email, role, _) = team
        .pending_invitation(invitation_id, &digest)
        .ok_or_else(|| ApiError::not_found("invitation"))?;
    let (email, role) = (email.to_owned(), role);
    state.access.ready().await?;
    crate::auth::refuse_if_suspended(&state, tenant)?;
    let existing = accounts::user_by_email(&state.db, &email).await?;
    let user_id = match &existing {
        None => Uuid::now_v7(),
        Some(user) if state.access.standing(user.id).is_some_and(|s| s.removed) => user.id,
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "an account with this email already exists",
            ));
        }
    };
    let hash = password::hash(body.password)
        .await
        .map_err(ApiError::internal)?;
    let account_role = match role {
        TeamRole::Owner => Role::Owner,
        TeamRole::Member => Role::Member,
    };
    // The account is written with the acceptance: committed only once the
    // team recorded it, so no account exists that its team does not know.
    let mut tx = state.db.begin().await?;
    let user = accounts::join_tenant(
        &mut tx,
        user_id,
        *tenant.as_uuid(),
        &email,
        &hash,
        account_role,
        name.as_deref(),
    )
    .await?
    .ok_or_else(|| {
        ApiError::new(
            ErrorCode::Conflict,
            "an account with this email already exists",
        )
    })?;
    let metadata = CommandMetadata::new(Actor::User(user.id));
    let committed = commands::execute(
        &state.commands.teams,
        &key,
        TeamCommand::AcceptInvitation {
            invitation_id,
            token_digest: digest,
            user_id: UserId::from_uuid(user.id),
            at: Utc::now(),
        },
        &metadata,
    )
    .await?;
    tx.commit().await?;
    settled(&state, position(&committed)).await?;
    let tenant_row = accounts::tenant_by_id(&state.db, *tenant.as_uuid())
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    let access_token = state.tokens.issue(user.id, tenant_row.id, account_role);
    tracing::info!(user = %user.id, %tenant, "invitation accepted");
    Ok((
        StatusCode::CREATED,
        axum::Json(Registered {
            user: UserView {
                id: user.id,
                email: user.email,
                role: account_role,
                name: user.name,
            },
            tenant: tenant_row.into(),
            access_token,
        }),
    ))
}

/// The tenant's members, in the order they joined.
#[utoipa::path(get, path = "/api/v1/members", tag = "members",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The members", body = List<MemberView>),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
) -> Result<axum::Json<List<MemberView>>, ApiError> {
    after.wait(&state.db, &["members"]).await?;
    let rows = members::members(&state.db, caller.tenant_id).await?;
    Ok(axum::Json(List {
        items: rows.into_iter().map(MemberView::from).collect(),
        next_cursor: None,
    }))
}

/// The tenant's pending invitations, oldest first.
#[utoipa::path(get, path = "/api/v1/members/invitations", tag = "members",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The pending invitations (never their tokens)", body = List<InvitationView>),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn list_invitations(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
) -> Result<axum::Json<List<InvitationView>>, ApiError> {
    after.wait(&state.db, &["members"]).await?;
    let rows = members::pending_invitations(&state.db, caller.tenant_id).await?;
    Ok(axum::Json(List {
        items: rows.into_iter().map(InvitationView::from).collect(),
        next_cursor: None,
    }))
}

/// Withdraws a pending invitation (owners only): its token joins nothing.
#[utoipa::path(delete, path = "/api/v1/members/invitations/{id}", tag = "members",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The invitation")),
    responses(
        (status = 204, description = "Withdrawn"),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an owner of the tenant", body = ErrorBody),
        (status = 404, description = "No such pending invitation", body = ErrorBody),
        (status = 409, description = "`invalid_state`: accepted, withdrawn or replaced already", body = ErrorBody),
    ))]
async fn revoke_invitation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let at = on_team(&state, &caller, |by, founders| {
        TeamCommand::RevokeInvitation {
            invitation_id: InvitationId::from_uuid(id),
            by,
            founders,
            at: Utc::now(),
        }
    })
    .await?;
    Ok((StatusCode::NO_CONTENT, [header_value(at)]).into_response())
}

/// Gives a member another role (owners only). The team's last owner is not
/// demoted.
#[utoipa::path(patch, path = "/api/v1/members/{user_id}", tag = "members",
    security(("bearer" = []), ("api_key" = [])),
    params(("user_id" = Uuid, Path, description = "The member")),
    request_body = RoleChange,
    responses(
        (status = 200, description = "The member with its role", body = MemberView),
        (status = 400, description = "A role other than owner or member", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an owner of the tenant", body = ErrorBody),
        (status = 404, description = "No such member in this tenant", body = ErrorBody),
        (status = 422, description = "`last_owner`: the team's last owner is not demoted", body = ErrorBody),
    ))]
async fn change_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<Uuid>,
    Json(body): Json<RoleChange>,
) -> Result<Response, ApiError> {
    let at = on_team(&state, &caller, |by, founders| TeamCommand::ChangeRole {
        user_id: UserId::from_uuid(user_id),
        role: body.role,
        by,
        founders,
        at: Utc::now(),
    })
    .await?;
    let member = members::members(&state.db, caller.tenant_id)
        .await?
        .into_iter()
        .find(|m| m.user_id == user_id)
        .ok_or_else(|| ApiError::not_found("member"))?;
    Ok(([header_value(at)], axum::Json(MemberView::from(member))).into_response())
}

/// Takes a member out of the team (owners only): its logins, access
/// tokens and the API keys it created stop working; nothing it did is
/// deleted. The team's last owner is not removed.
#[utoipa::path(delete, path = "/api/v1/members/{user_id}", tag = "members",
    security(("bearer" = []), ("api_key" = [])),
    params(("user_id" = Uuid, Path, description = "The member")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an owner of the tenant", body = ErrorBody),
        (status = 404, description = "No such member in this tenant", body = ErrorBody),
        (status = 422, description = "`last_owner`: the team's last owner is not removed", body = ErrorBody),
    ))]
async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(user_id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let committed = commands::execute(
        &state.commands.teams,
        &tenant_key(caller.tenant_id, caller.tenant_id),
        TeamCommand::RemoveMember {
            user_id: UserId::from_uuid(user_id),
            by: by(&caller),
            founders: founders(&state, caller.tenant_id).await?,
            at: Utc::now(),
        },
        &caller.command(),
    )
    .await?;
    let at = position(&committed);
    // The keys it created are refused from now on (`auth::access`); they
    // are also revoked, so that joining again does not bring them back.
    api_key::revoke_created_by(&state.db, caller.tenant_id, user_id).await?;
    settled(&state, at).await?;
    tracing::info!(tenant = %caller.tenant_id, user = %user_id, "member removed");
    Ok((StatusCode::NO_CONTENT, [header_value(at)]).into_response())
}
