//! Accounts and access: registration, login, the caller, API keys.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wablast_domain::types::TenantId;

use crate::auth::accounts::{self, CreateUserError, TenantRow, UserRow};
use crate::auth::api_key::{self, KeyRow};
use crate::auth::{Caller, Credential, Role, password, unauthenticated};
use crate::error::ErrorBody;
use crate::extract::{Json, Path};
use crate::list::List;
use crate::{ApiError, AppState, ErrorCode};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(me))
        .routes(routes!(create_api_key, list_api_keys))
        .routes(routes!(revoke_api_key))
}

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The login; unique.
    #[schema(example = "budi@tokobudi.id")]
    pub email: String,
    /// At least 8 characters.
    #[schema(example = "rahasia-sekali")]
    pub password: String,
    /// The person's name.
    pub name: Option<String>,
    /// The business; becomes the tenant's name (default: the email).
    pub organization: Option<String>,
}

/// A user.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Its id.
    pub id: Uuid,
    /// Its email.
    pub email: String,
    /// `admin`, `owner` or `member`.
    pub role: Role,
    /// Its name.
    pub name: Option<String>,
}

impl From<UserRow> for UserView {
    fn from(row: UserRow) -> Self {
        Self {
            id: row.id,
            role: row.role(),
            email: row.email,
            name: row.name,
        }
    }
}

/// A tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
}

impl From<TenantRow> for TenantView {
    fn from(row: TenantRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
        }
    }
}

/// A registered account and its first access token.
#[derive(Debug, Serialize, ToSchema)]
pub struct Registered {
    /// The new user, owner of the new tenant.
    pub user: UserView,
    /// The new tenant.
    pub tenant: TenantView,
    /// A token to call the API with right away.
    pub access_token: String,
}

pub(crate) fn check_password(password: &str) -> Result<(), ApiError> {
    let length = password.chars().count();
    if length < password::MIN_LENGTH {
        return Err(ApiError::invalid_field(
            "password",
            format!(
                "the password needs at least {} characters",
                password::MIN_LENGTH
            ),
        ));
    }
    if password.len() > password::MAX_LENGTH {
        return Err(ApiError::invalid_field(
            "password",
            format!(
                "the password may have at most {} bytes",
                password::MAX_LENGTH
            ),
        ));
    }
    Ok(())
}

pub(crate) fn optional_text(
    field: &str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, ApiError> {
    let Some(value) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.chars().count() > max {
        return Err(ApiError::invalid_field(
            field,
            format!("{field} may have at most {max} characters"),
        ));
    }
    Ok(Some(value))
}

/// Creates a tenant whose owner is the new user.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth",
    request_body = Registration,
    responses(
        (status = 201, description = "Registered", body = Registered),
        (status = 400, description = "Bad email or password too short", body = ErrorBody),
        (status = 409, description = "The email is taken", body = ErrorBody),
    ))]
async fn register(
    State(state): State<AppState>,
    Json(body): Json<Registration>,
) -> Result<(StatusCode, axum::Json<Registered>), ApiError> {
    let email = accounts::normalize_email(&body.email);
    if !accounts::plausible_email(&email) {
        return Err(ApiError::invalid_field(
            "email",
            "this is not an email address",
        ));
    }
    check_password(&body.password)?;
    let name = optional_text("name", body.name, 200)?;
    let organization = optional_text("organization", body.organization, 200)?;
    let hash = password::hash(body.password)
        .await
        .map_err(ApiError::internal)?;
    let tenant_name = organization.unwrap_or_else(|| email.clone());
    let (tenant, user) = accounts::create_tenant_with_user(
        &state.db,
        &tenant_name,
        &email,
        &hash,
        Role::Owner,
        name.as_deref(),
    )
    .await
    .map_err(|err| match err {
        CreateUserError::EmailTaken => ApiError::new(ErrorCode::Conflict, err.to_string())
            .with_details(json!({"field": "email"})),
        CreateUserError::Database(err) => ApiError::internal(err),
    })?;
    let access_token = state.tokens.issue(user.id, tenant.id, Role::Owner);
    tracing::info!(user = %user.id, tenant = %tenant.id, "registered");
    Ok((
        StatusCode::CREATED,
        axum::Json(Registered {
            user: user.into(),
            tenant: tenant.into(),
            access_token,
        }),
    ))
}

/// Credentials.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Login {
    /// The login.
    pub email: String,
    /// The password.
    pub password: String,
}

/// An access token.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessToken {
    /// Send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// Logs in with email and password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    request_body = Login,
    responses(
        (status = 200, description = "Logged in", body = AccessToken),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Wrong email or password", body = ErrorBody),
        (status = 403, description = "`tenant_suspended`: the platform operator suspended the user's tenant (`details.reason`)", body = ErrorBody),
        (status = 503, description = "`unavailable`: this process is still loading who may act (just after it started); try again", body = ErrorBody),
    ))]
async fn login(
    State(state): State<AppState>,
    Json(body): Json<Login>,
) -> Result<axum::Json<AccessToken>, ApiError> {
    let email = accounts::normalize_email(&body.email);
    if body.password.len() > password::MAX_LENGTH {
        return Err(unauthenticated("wrong email or password"));
    }
    let user = accounts::user_by_email(&state.db, &email).await?;
    // Without such a user, check a dummy hash anyway: both answers take as
    // long.
    let hash = match &user {
        Some(user) => user.password_hash.clone(),
        None => password::dummy_hash().await.to_owned(),
    };
    let matches = password::verify(body.password, hash)
        .await
        .map_err(ApiError::internal)?;
    let user = user
        .filter(|_| matches)
        .ok_or_else(|| unauthenticated("wrong email or password"))?;
    let mut role = user.role();
    if role != Role::Admin {
        let tenant = TenantId::from_uuid(user.tenant_id);
        state.access.ready().await?;
        crate::auth::refuse_if_suspended(&state, tenant)?;
        role = crate::auth::current_role(&state, user.id, tenant, None)
            .map_err(|_| unauthenticated("wrong email or password"))?
            .unwrap_or(role);
    }
    Ok(axum::Json(AccessToken {
        access_token: state.tokens.issue(user.id, user.tenant_id, role),
        token_type: "Bearer",
        expires_in: state.tokens.ttl().as_secs(),
    }))
}

/// The caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The user; `null` for an API key.
    pub user: Option<UserView>,
    /// The tenant.
    pub tenant: TenantView,
    /// The API key, when the caller used one.
    pub api_key: Option<ApiKeyView>,
}

/// Who is calling.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn me(State(state): State<AppState>, caller: Caller) -> Result<axum::Json<Me>, ApiError> {
    let tenant = accounts::tenant_by_id(&state.db, *caller.tenant_id.as_uuid())
        .await?
        .ok_or_else(|| unauthenticated("the tenant no longer exists"))?;
    let (user, api_key) = match caller.credential {
        Credential::User(id) => {
            let user = accounts::user_by_id(&state.db, id)
                .await?
                .ok_or_else(|| unauthenticated("the user no longer exists"))?;
            // The role its team gives it now (an owner may have changed it).
            let mut user = UserView::from(user);
            user.role = caller.role;
            (Some(user), None)
        }
        Credential::ApiKey(id) => {
            let key = key_by_id(&state, &caller, id).await?;
            (None, Some(key.into()))
        }
    };
    Ok(axum::Json(Me {
        user,
        tenant: tenant.into(),
        api_key,
    }))
}

/// A new API key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// What it is for ("shop integration").
    pub name: String,
}

/// A created API key: the only time the key is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// The key: send as `X-Api-Key`. Shown once; store it now.
    pub key: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// An API key as listed (without the key).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its first characters, to tell keys apart.
    pub prefix: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl From<KeyRow> for ApiKeyView {
    fn from(row: KeyRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            prefix: row.key_prefix,
            created_at: row.created_at,
        }
    }
}

async fn key_by_id(state: &AppState, caller: &Caller, id: Uuid) -> Result<KeyRow, ApiError> {
    sqlx::query_as(
        "select id, name, key_prefix, created_at, revoked_at from api_keys
         where tenant_id = $1 and id = $2 and revoked_at is null",
    )
    .bind(caller.tenant_id.as_uuid())
    .bind(id)
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| ApiError::not_found("API key"))
}

/// Creates an API key for the caller's tenant (owners only).
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "auth",
    security(("bearer" = [])),
    request_body = NewApiKey,
    responses(
        (status = 201, description = "Created; the key is in the answer, once", body = CreatedApiKey),
        (status = 400, description = "Bad name", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not the tenant's owner", body = ErrorBody),
    ))]
async fn create_api_key(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewApiKey>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Role::Owner)?;
    let name = optional_text("name", Some(body.name), 100)?
        .ok_or_else(|| ApiError::invalid_field("name", "name must not be empty"))?;
    let key = api_key::generate();
    let row: KeyRow = sqlx::query_as(
        "insert into api_keys (id, tenant_id, name, key_hash, key_prefix, created_by, created_at)
         values ($1, $2, $3, $4, $5, $6, $7)
         returning id, name, key_prefix, created_at, revoked_at",
    )
    .bind(Uuid::now_v7())
    .bind(caller.tenant_id.as_uuid())
    .bind(&name)
    .bind(api_key::digest(&key))
    .bind(api_key::shown_prefix(&key))
    .bind(caller.user_id())
    .bind(Utc::now())
    .fetch_one(&state.db)
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedApiKey {
            id: row.id,
            name: row.name,
            key,
            created_at: row.created_at,
        }),
    ))
}

/// The tenant's live API keys, newest last.
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "auth",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The keys (never the keys themselves)", body = List<ApiKeyView>),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn list_api_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<List<ApiKeyView>>, ApiError> {
    let rows: Vec<KeyRow> = sqlx::query_as(
        "select id, name, key_prefix, created_at, revoked_at from api_keys
         where tenant_id = $1 and revoked_at is null order by id",
    )
    .bind(caller.tenant_id.as_uuid())
    .fetch_all(&state.db)
    .await?;
    Ok(axum::Json(List {
        items: rows.into_iter().map(ApiKeyView::from).collect(),
        next_cursor: None,
    }))
}

/// Revokes an API key: it authenticates nothing from now on.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "auth",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not the tenant's owner", body = ErrorBody),
        (status = 404, description = "No such key in this tenant", body = ErrorBody),
    ))]
async fn revoke_api_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Owner)?;
    let revoked = sqlx::query(
        "update api_keys set revoked_at = $3 where tenant_id = $1 and id = $2 and revoked_at is null",
    )
    .bind(caller.tenant_id.as_uuid())
    .bind(id)
    .bind(Utc::now())
    .execute(&state.db)
    .await?
    .rows_affected();
    if revoked == 0 {
        return Err(ApiError::not_found("API key"));
    }
    Ok(StatusCode::NO_CONTENT)
}
