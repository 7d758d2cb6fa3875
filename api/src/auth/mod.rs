//! Who is calling: a user with a JWT (`Authorization: Bearer <jwt>`) or an
//! integration with an API key (`X-Api-Key: <key>`), and what they may do.
//!
//! [`Caller`] is an extractor: a handler that takes one answers 401
//! `unauthenticated` before it runs when the credentials are missing or
//! bad. Every query and command a handler issues is scoped to
//! [`Caller::tenant_id`].
//!
//! Roles: `admin` (the platform operator), `owner` (a tenant's owner: also
//! manages the team, API keys and billing) and `member`. An API key acts as
//! a member of its tenant.
//!
//! Whether a tenant is suspended, and a team member's current role or
//! removal, come from [`access::Access`], kept in memory from the event
//! log: authenticating costs no query for a user's token (one, by the key's
//! digest, for an API key).

pub mod access;
pub mod accounts;
pub mod api_key;
pub mod invitation;
pub mod password;
pub mod token;

use std::fmt;
use std::str::FromStr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use wablast_domain::types::TenantId;
use wablast_eventstore::{Actor, CommandMetadata};

use crate::consistency::CallerSlot;
use crate::{ApiError, AppState, ErrorCode};

/// Header carrying an API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// What a caller may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A tenant's member: uses everything the tenant owns, but does not
    /// manage its members, API keys or billing.
    Member,
    /// A tenant's owner: a member who also manages the team, API keys and
    /// billing.
    Owner,
    /// The platform operator: plans, grants, trust levels.
    Admin,
}

impl Role {
    /// As stored and written in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Owner => "owner",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "member" => Ok(Self::Member),
            "owner" => Ok(Self::Owner),
            "admin" => Ok(Self::Admin),
            other => Err(format!("unknown role {other:?}")),
        }
    }
}

/// How a caller proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Credential {
    /// A user's JWT.
    User(Uuid),
    /// A tenant's API key, by its id.
    ApiKey(Uuid),
}

/// An authenticated caller.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    /// The tenant everything it does is scoped to.
    pub tenant_id: TenantId,
    /// The user or API key.
    pub credential: Credential,
    /// What it may do.
    pub role: Role,
    /// The request's id (`X-Request-Id`) as the correlation id of every
    /// command it causes: `wablast audit` and the logs lead from an HTTP
    /// call to every event it caused.
    pub correlation: Uuid,
}

impl Caller {
    /// The actor recorded on the events its commands cause.
    pub fn actor(&self) -> Actor {
        match self.credential {
            Credential::User(id) => Actor::User(id),
            Credential::ApiKey(id) => Actor::ApiKey(id),
        }
    }

    /// Metadata for a new command of this caller.
    pub fn command(&self) -> CommandMetadata {
        CommandMetadata {
            correlation_id: self.correlation,
            ..CommandMetadata::new(self.actor())
        }
    }

    /// The id of the user or API key calling.
    pub fn credential_id(&self) -> Uuid {
        match self.credential {
            Credential::User(id) | Credential::ApiKey(id) => id,
        }
    }

    /// The user, when the caller is one (not an API key).
    pub fn user_id(&self) -> Option<Uuid> {
        match self.credential {
            Credential::User(id) => Some(id),
            Credential::ApiKey(_) => None,
        }
    }

    /// Whether the caller is the platform admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// 403 unless the caller has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("this needs the {role} role")))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = match parts.extensions.get::<Caller>() {
            Some(caller) => *caller,
            None => {
                let caller = authenticate(parts, state).await?;
                parts.extensions.insert(caller);
                caller
            }
        };
        // For the writes it is answered to be remembered as its own.
        if let Some(slot) = parts.extensions.get::<CallerSlot>() {
            slot.set(caller);
        }
        Ok(caller)
    }
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    if let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| unauthenticated("Authorization must be `Bearer <token>`"))?;
        let claims = state
            .tokens
            .verify(token)
            .map_err(|reason| unauthenticated(&reason))?;
        let tenant = TenantId::from_uuid(claims.tenant);
        let role = if claims.role == Role::Admin {
            Role::Admin
        } else {
            state.access.ready().await?;
            refuse_if_suspended(state, tenant)?;
            current_role(state, claims.sub, tenant, Some(claims.iat))?.unwrap_or(claims.role)
        };
        return Ok(Caller {
            tenant_id: tenant,
            credential: Credential::User(claims.sub),
            role,
            correlation: correlation_of(parts),
        });
    }
    if let Some(value) = parts.headers.get(API_KEY_HEADER) {
        let key = value
            .to_str()
            .map_err(|_| unauthenticated("the API key is not valid"))?;
        let found = api_key::authenticate(&state.db, key.trim())
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| unauthenticated("the API key is not valid or was revoked"))?;
        state.access.ready().await?;
        refuse_if_suspended(state, found.tenant_id)?;
        if let Some(creator) = found.created_by {
            current_role(state, creator, found.tenant_id, None).map_err(|_| {
                unauthenticated("the API key's creator was removed from the tenant")
            })?;
        }
        return Ok(Caller {
            tenant_id: found.tenant_id,
            credential: Credential::ApiKey(found.id),
            role: Role::Member,
            correlation: correlation_of(parts),
        });
    }
    Err(unauthenticated(
        "send `Authorization: Bearer <token>` or `X-Api-Key: <key>`",
    ))
}

/// The correlation id of a request's commands: its `X-Request-Id` (set by
/// the API when the client sent none) when that is a UUID, else a UUID
/// derived from it (v5), so the same id always leads to the same events.
fn correlation_of(parts: &Parts) -> Uuid {
    let id = parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    match id {
        Some(id) => Uuid::parse_str(id)
            .unwrap_or_else(|_| Uuid::new_v5(&Uuid::NAMESPACE_OID, id.as_bytes())),
        None => Uuid::now_v7(),
    }
}

/// 403 `tenant_suspended` (with the operator's reason) when the platform
/// operator suspended `tenant`: its logins and API keys do nothing until
/// it is reactivated. From memory ([`access::Access`]): call
/// [`access::Access::ready`] first.
pub fn refuse_if_suspended(state: &AppState, tenant: TenantId) -> Result<(), ApiError> {
    match state.access.suspension(tenant) {
        None => Ok(()),
        Some(reason) => Err(ApiError::new(
            ErrorCode::TenantSuspended,
            "the platform operator suspended this tenant",
        )
        .with_details(serde_json::json!({ "reason": reason }))),
    }
}

/// `user`'s role in `tenant` as its team has it now (`None`: its team was
/// never changed, so the account's role stands); 401 when an owner took it
/// out of the team (or it moved to another tenant since), or for an access
/// token issued (`issued_at`, Unix seconds) before its last removal.
pub fn current_role(
    state: &AppState,
    user: Uuid,
    tenant: TenantId,
    issued_at: Option<i64>,
) -> Result<Option<Role>, ApiError> {
    match state.access.standing(user) {
        None => Ok(None),
        Some(standing)
            if standing.removed
                || standing.tenant != tenant
                || issued_at
                    .zip(standing.removed_at)
                    .is_some_and(|(i, r)| i < r) =>
        {
            Err(unauthenticated("this account was removed from the tenant"))
        }
        Some(standing) => Ok(Some(standing.role)),
    }
}

/// 401 with the reason.
pub fn unauthenticated(reason: &str) -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, reason)
}
