//! The platform operator's endpoints: plans (define, edit, retire), grants
//! to tenants (how an operator credits a tenant without a payment
//! gateway), the tenants, users and sessions (with their trust levels) of
//! the platform, suspensions, and the platform's statistics. Every route
//! answers 403 to anyone but the admin.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wablast_domain::plan::{PlanCommand, PlanError, PlanPeriod, PlanTerms};
use wablast_domain::session::SessionStatus;
use wablast_domain::types::{DailyLimit, PlanId, Points, TenantId, UserId};
use wablast_domain::wallet::WalletCommand;
use wablast_eventstore::CommandMetadata;

use super::wallet::{PlanFeaturesView, PlanView};
use crate::auth::{Caller, Role};
use crate::commands::{self, platform_key, position, tenant_key};
use crate::consistency::After;
use crate::consistency::header_value;
use crate::error::ErrorBody;
use crate::extract::{Json, Path, Query};
use crate::list::List;
use crate::{ApiError, AppState};
use wablast_domain::plan::{Plan, PlanChanges, PlanFeatures};
use wablast_projections::queries::operator;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(define_plan))
        .routes(routes!(edit_plan))
        .routes(routes!(retire_plan))
        .routes(routes!(grant))
        .routes(routes!(list_tenants))
        .routes(routes!(get_tenant))
        .routes(routes!(suspend_tenant))
        .routes(routes!(reactivate_tenant))
        .routes(routes!(list_users))
        .routes(routes!(list_sessions))
        .routes(routes!(platform_stats))
}

/// The header whose value identifies a request across its retries.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A plan to put on offer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPlan {
    /// 1 to 100 characters.
    #[schema(example = "Basic 30")]
    pub name: String,
    /// How long one subscription runs: 15 or 30 days.
    #[schema(example = 30)]
    pub period_days: u64,
    /// Points allocated on each subscription (at least 1).
    #[schema(example = 2000)]
    pub points: u64,
    /// Sessions a subscriber may have (at least 1).
    #[schema(example = 3)]
    pub max_sessions: u32,
    /// Recipients one campaign may have (default 200).
    #[schema(example = 200)]
    pub max_recipients_per_campaign: Option<u32>,
    /// The highest daily limit of one session (default 500).
    #[schema(example = 500)]
    pub max_daily_limit: Option<u64>,
    /// Price of one subscription, in the currency's smallest unit (rupiah).
    #[schema(example = 150000)]
    pub price: u64,
    /// What it includes (default: everything).
    pub features: Option<PlanFeaturesView>,
    /// Days sending goes on after a period ends, 0 to 14 (default 0).
    #[schema(example = 3)]
    pub grace_days: Option<u32>,
    /// Whether tenants may buy it (default true).
    pub on_sale: Option<bool>,
}

/// What changes in a plan: every field is optional; those left out stay.
/// Any change makes a new version; subscribers keep the version they
/// bought until they renew.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanEdit {
    /// 1 to 100 characters.
    pub name: Option<String>,
    /// 15 or 30.
    pub period_days: Option<u64>,
    /// Points per subscription (at least 1).
    pub points: Option<u64>,
    /// Sessions a subscriber may have (at least 1).
    pub max_sessions: Option<u32>,
    /// Recipients one campaign may have (at least 1).
    pub max_recipients_per_campaign: Option<u32>,
    /// The highest daily limit of one session.
    pub max_daily_limit: Option<u64>,
    /// Price in rupiah.
    pub price: Option<u64>,
    /// What it includes.
    pub features: Option<PlanFeaturesView>,
    /// Days of grace, 0 to 14.
    pub grace_days: Option<u32>,
    /// Whether tenants may buy it.
    pub on_sale: Option<bool>,
}

/// What to credit a tenant with: exactly one of `plan_id` and `points`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    /// Subscribe the tenant to this plan (or renew it): its points are
    /// allocated and it runs for its period.
    pub plan_id: Option<Uuid>,
    /// Add these points (at least 1), without a plan.
    pub points: Option<u64>,
    /// Identifies the grant: one repeated with the same reference credits
    /// once. Default: the `Idempotency-Key` header, else a new one.
    pub reference: Option<String>,
    /// Why points are granted (recorded on the wallet's history).
    pub reason: Option<String>,
}

/// What a tenant was credited with.
#[derive(Debug, Serialize, ToSchema)]
pub struct Granted {
    /// The tenant.
    pub tenant_id: Uuid,
    /// The plan subscribed to, for a plan grant.
    pub plan: Option<GrantedPlan>,
    /// The points credited.
    pub points: u64,
    /// What identifies the grant (send it again to retry safely).
    pub reference: String,
    /// Whether this request credited them (`false`: a repeat of a grant
    /// already made with this reference).
    pub credited: bool,
    /// The wallet's balance now.
    pub balance: u64,
    /// Its available points now.
    pub available: u64,
    /// When the tenant's plan runs out.
    pub plan_expires_at: Option<DateTime<Utc>>,
}

/// A plan granted.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantedPlan {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// 15 or 30.
    pub period_days: u32,
}

/// Which field a plan's refusal is about.
fn plan_field(refusal: &PlanError) -> Option<&'static str> {
    match refusal {
        PlanError::InvalidPeriod { .. } => Some("period_days"),
        PlanError::InvalidName => Some("name"),
        PlanError::NoPoints => Some("points"),
        PlanError::NoSessions => Some("max_sessions"),
        PlanError::NoRecipients => Some("max_recipients_per_campaign"),
        PlanError::InvalidGrace => Some("grace_days"),
        _ => None,
    }
}

fn plan_refusal(refusal: PlanError) -> ApiError {
    let field = plan_field(&refusal);
    let error = ApiError::from(cqrs_es::AggregateError::UserError(refusal));
    match field {
        Some(field) => error.with_details(json!({ "field": field })),
        None => error,
    }
}

/// Puts a plan on offer.
#[utoipa::path(post, path = "/api/v1/admin/plans", tag = "admin",
    security(("bearer" = [])),
    request_body = NewPlan,
    responses(
        (status = 201, description = "On offer (`X-Wablast-Position` names the write)", body = PlanView),
        (status = 400, description = "Bad field (period not 15 or 30, no points, ...)", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not the platform admin", body = ErrorBody),
    ))]
async fn define_plan(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewPlan>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let period_days = PlanPeriod::parse(body.period_days).map_err(plan_refusal)?;
    let max_daily_limit = match body.max_daily_limit {
        Some(limit) => DailyLimit::parse(limit)
            .map_err(|err| ApiError::invalid_field("max_daily_limit", err.to_string()))?,
        None => PlanTerms::default_max_daily_limit(),
    };
    let max_recipients_per_campaign = body
        .max_recipients_per_campaign
        .unwrap_or(PlanTerms::DEFAULT_MAX_RECIPIENTS_PER_CAMPAIGN);
    let plan_id = PlanId::new();
    let at = Utc::now();
    let committed = state
        .commands
        .plans
        .execute(
            &platform_key(plan_id),
            PlanCommand::DefinePlan {
                plan_id,
                name: body.name.clone(),
                period_days,
                points: Points::new(body.points),
                max_sessions: body.max_sessions,
                max_recipients_per_campaign,
                max_daily_limit,
                price: body.price,
                features: body.features.map(features).unwrap_or_default(),
                grace_days: body.grace_days.unwrap_or(0),
                on_sale: body.on_sale.unwrap_or(true),
                at,
            },
            &caller.command(),
        )
        .await
        .map_err(|err| match err {
            cqrs_es::AggregateError::UserError(refusal) => plan_refusal(refusal),
            other => ApiError::from(other),
        })?;
    let view = plan_view(&state, plan_id).await?;
    tracing::info!(plan = %plan_id, name = %view.name, "plan defined");
    Ok((
        StatusCode::CREATED,
        [header_value(position(&committed))],
        axum::Json(view),
    )
        .into_response())
}

/// Credits a tenant: subscribes it to a plan (`{plan_id}`) or adds points
/// (`{points}`).
///
/// Retried with the same `reference` (or `Idempotency-Key`), a grant
/// credits once.
#[utoipa::path(post, path = "/api/v1/admin/tenants/{id}/grant", tag = "admin",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The tenant"),
        ("Idempotency-Key" = Option<String>, Header, description = "The grant's reference when the body has none"),
    ),
    request_body = NewGrant,
    responses(
        (status = 201, description = "Credited (`X-Wablast-Position` names the write)", body = Granted),
        (status = 400, description = "Not exactly one of plan_id and points; bad points, reference or reason", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not the platform admin", body = ErrorBody),
        (status = 404, description = "No such tenant, or no such plan", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the plan is retired; `conflict`: the reference was used for another amount", body = ErrorBody),
    ))]
async fn grant(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Json(body): Json<NewGrant>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let admin = caller
        .user_id()
        .ok_or_else(|| ApiError::forbidden("grants are made by the admin user"))?;
    if operator::tenant(&state.db, TenantId::from_uuid(id))
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("tenant"));
    }
    let reference = match body.reference.clone().or_else(|| {
        headers
            .get(IDEMPOTENCY_KEY)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }) {
        Some(reference) => reference,
        None => format!("grant-{}", Uuid::now_v7()),
    };
    let tenant = TenantId::from_uuid(id);
    let wallet_key = tenant_key(tenant, tenant);
    let at = Utc::now();
    let metadata: CommandMetadata = caller.command();
    let (command, plan, points) = match (body.plan_id, body.points) {
        (Some(plan_id), None) => {
            let terms = state
                .commands
                .plans
                .load(&platform_key(plan_id))
                .await
                .map_err(ApiError::from)?
                .aggregate
                .subscription_terms()
                .map_err(|refusal| match refusal {
                    PlanError::NotDefined => ApiError::not_found("plan")
                        .with_details(json!({"field": "plan_id", "id": plan_id})),
                    other => plan_refusal(other),
                })?;
            let plan = GrantedPlan {
                id: plan_id,
                name: terms.name.clone(),
                period_days: terms.period_days.days(),
            };
            let points = terms.points.value();
            (
                WalletCommand::Subscribe {
                    terms,
                    reference: reference.clone(),
                    at,
                },
                Some(plan),
                points,
            )
        }
        (None, Some(points)) => (
            WalletCommand::Grant {
                points: Points::new(points),
                by: UserId::from_uuid(admin),
                reason: body
                    .reason
                    .clone()
                    .unwrap_or_else(|| "granted by the platform admin".to_owned()),
                reference: reference.clone(),
                at,
            },
            None,
            points,
        ),
        _ => {
            return Err(
                ApiError::validation("give exactly one of plan_id and points")
                    .with_details(json!({"fields": ["plan_id", "points"]})),
            );
        }
    };
    let committed =
        commands::execute(&state.commands.wallets, &wallet_key, command, &metadata).await?;
    let wallet = state
        .commands
        .wallets
        .load(&wallet_key)
        .await
        .map_err(ApiError::from)?
        .aggregate;
    tracing::info!(%tenant, points, %reference, by = %admin, "granted");
    Ok((
        StatusCode::CREATED,
        [header_value(position(&committed))],
        axum::Json(Granted {
            tenant_id: id,
            plan,
            points,
            reference: reference.trim().to_owned(),
            credited: !committed.events.is_empty(),
            balance: wallet.balance().value(),
            available: wallet.available().value(),
            plan_expires_at: wallet.plan_expires_at(),
        }),
    )
        .into_response())
}

fn features(view: PlanFeaturesView) -> PlanFeatures {
    PlanFeatures {
        auto_replies: view.auto_replies,
        webhooks: view.webhooks,
        official_mode: view.official_mode,
    }
}

fn clamp_i32(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn clamp_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A plan as the log has it now (its projection may lag).
async fn plan_view(state: &AppState, plan_id: PlanId) -> Result<PlanView, ApiError> {
    let plan: Plan = state
        .commands
        .plans
        .load(&platform_key(plan_id))
        .await
        .map_err(ApiError::from)?
        .aggregate;
    let terms = plan
        .terms()
        .ok_or_else(|| ApiError::not_found("plan"))?
        .clone();
    Ok(PlanView {
        id: *plan_id.as_uuid(),
        name: terms.name,
        period_days: clamp_i32(u64::from(terms.period_days.days())),
        points: clamp_i64(terms.points.value()),
        max_sessions: clamp_i32(u64::from(terms.max_sessions)),
        max_recipients_per_campaign: clamp_i32(u64::from(terms.max_recipients_per_campaign)),
        max_daily_limit: clamp_i32(u64::from(terms.max_daily_limit.value())),
        price: clamp_i64(plan.price()),
        created_at: plan.defined_at().unwrap_or_else(Utc::now),
        retired_at: plan.retired_at(),
        version: clamp_i32(u64::from(terms.version)),
        features: PlanFeaturesView {
            auto_replies: terms.features.auto_replies,
            webhooks: terms.features.webhooks,
            official_mode: terms.features.official_mode,
        },
        grace_days: clamp_i32(u64::from(terms.grace_days)),
        on_sale: plan.is_on_sale(),
    })
}

/// Changes a plan: a new version for new subscriptions and renewals;
/// tenants subscribed keep the terms they bought until they renew.
#[utoipa::path(patch, path = "/api/v1/admin/plans/{id}", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The plan")),
    request_body = PlanEdit,
    responses(
        (status = 200, description = "The plan as it now stands (`version` one more when anything changed)", body = PlanView),
        (status = 400, description = "Bad field (`details.field`)", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not the platform admin", body = ErrorBody),
        (status = 404, description = "No such plan", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the plan is retired", body = ErrorBody),
    ))]
async fn edit_plan(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<PlanEdit>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let period_days = body
        .period_days
        .map(PlanPeriod::parse)
        .transpose()
        .map_err(plan_refusal)?;
    let max_daily_limit = body
        .max_daily_limit
        .map(DailyLimit::parse)
        .transpose()
        .map_err(|err| ApiError::invalid_field("max_daily_limit", err.to_string()))?;
    let plan_id = PlanId::from_uuid(id);
    let changes = PlanChanges {
        name: body.name,
        period_days,
        points: body.points.map(Points::new),
        max_sessions: body.max_sessions,
        max_recipients_per_campaign: body.max_recipients_per_campaign,
        max_daily_limit,
        price: body.price,
        features: body.features.map(features),
        grace_days: body.grace_days,
        on_sale: body.on_sale,
    };
    let committed = state
        .commands
        .plans
        .execute(
            &platform_key(plan_id),
            PlanCommand::EditPlan {
                changes,
                at: Utc::now(),
            },
            &caller.command(),
        )
        .await
        .map_err(|err| match err {
            cqrs_es::AggregateError::UserError(refusal) => plan_refusal(refusal),
            other => ApiError::from(other),
        })?;
    let view = plan_view(&state, plan_id).await?;
    tracing::info!(plan = %plan_id, version = view.version, "plan edited");
    Ok((
        StatusCode::OK,
        [header_value(position(&committed))],
        axum::Json(view),
    )
        .into_response())
}

/// Takes a plan off offer for good: no new subscriptions (nor grants);
/// tenants subscribed keep it until their period ends. Retiring a retired
/// plan changes nothing.
#[utoipa::path(post, path = "/api/v1/admin/plans/{id}/retire", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The plan")),
    responses(
        (status = 200, description = "Retired", body = PlanView),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not the platform admin", body = ErrorBody),
        (status = 404, description = "No such plan", body = ErrorBody),
    ))]
async fn retire_plan(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let plan_id = PlanId::from_uuid(id);
    let committed = state
        .commands
        .plans
        .execute(
            &platform_key(plan_id),
            PlanCommand::RetirePlan { at: Utc::now() },
            &caller.command(),
        )
        .await
        .map_err(|err| match err {
            cqrs_es::AggregateError::UserError(refusal) => plan_refusal(refusal),
            other => ApiError::from(other),
        })?;
    let view = plan_view(&state, plan_id).await?;
    tracing::info!(plan = %plan_id, "plan retired");
    Ok((
        StatusCode::OK,
        [header_value(position(&committed))],
        axum::Json(view),
    )
        .into_response())
}

/// A tenant as the operator sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantSummary {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its owner's email.
    pub owner_email: Option<String>,
    /// When it registered.
    pub created_at: DateTime<Utc>,
    /// Its plan (as subscribed), null before any.
    pub plan: Option<TenantPlan>,
    /// When the plan's period ends.
    pub plan_expires_at: Option<DateTime<Utc>>,
    /// Whether the plan's expiry is recorded.
    pub plan_expired: bool,
    /// Points.
    pub balance: i64,
    /// Points available.
    pub available: i64,
    /// Sessions (linked numbers).
    pub sessions: i64,
    /// The latest change to its wallet, sessions or campaigns.
    pub last_activity_at: Option<DateTime<Utc>>,
    /// Whether it is suspended.
    pub suspended: bool,
    /// Why, when suspended.
    pub suspended_reason: Option<String>,
    /// Since when.
    pub suspended_at: Option<DateTime<Utc>>,
}

/// A tenant's plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantPlan {
    /// The plan.
    pub id: Uuid,
    /// Its name.
    pub name: Option<String>,
}

impl From<operator::TenantSummary> for TenantSummary {
    fn from(t: operator::TenantSummary) -> Self {
        Self {
            id: t.id,
            name: t.name,
            owner_email: t.owner_email,
            created_at: t.created_at,
            plan: t.plan_id.map(|id| TenantPlan {
                id,
                name: t.plan_name,
            }),
            plan_expires_at: t.plan_expires_at,
            plan_expired: t.plan_expired,
            balance: t.balance,
            available: t.available,
            sessions: t.sessions,
            last_activity_at: t.last_activity_at,
            suspended: t.suspended_reason.is_some(),
            suspended_reason: t.suspended_reason,
            suspended_at: t.suspended_at,
        }
    }
}

/// A search over a list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Search {
    /// Part of a name or email (case-insensitive), at most 200 characters.
    pub q: Option<String>,
    /// Rows per page: 1 to 500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl Search {
    fn text(&self) -> Result<Option<&str>, ApiError> {
        let q = self.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
        if q.is_some_and(|q| q.chars().count() > 200) {
            return Err(ApiError::invalid_field(
                "q",
                "q may have at most 200 characters",
            ));
        }
        Ok(q)
    }

    fn page(&self) -> Result<wablast_projections::queries::Page, ApiError> {
        crate::list::ListParams {
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
        .page()
    }
}

/// Every tenant, oldest first; `?q=` keeps those whose name or a user's
/// email contains it.
#[utoipa::path(get, path = "/api/v1/admin/tenants", tag = "admin",
    security(("bearer" = [])),
    params(Search),
    responses(
        (status = 200, description = "A page of tenants", body = List<TenantSummary>),
        (status = 400, description = "Bad limit, cursor or q", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not the platform admin", body = ErrorBody),
    ))]
async fn list_tenants(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Query(search): Query<Search>,
) -> Result<axum::Json<List<TenantSummary>>, ApiError> {
    caller.require(Role::Admin)?;
    let page = search.page()?;
    let q = search.text()?;
    after.wait(&state.db, &["wallets", "sessions"]).await?;
    let paged = operator::tenants(&state.db, q, &page).await?;
    Ok(axum::Json(List::from_paged(paged, TenantSummary::from)))
}

/// One tenant.
#[utoipa::path(get, path = "/api/v1/admin/tenants/{id}", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The tenant")),
    responses(
        (status = 200, description = "The tenant", body = TenantSummary),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not the platform admin", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ))]
async fn get_tenant(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<TenantSummary>, ApiError> {
    caller.require(Role::Admin)?;
    after.wait(&state.db, &["wallets", "sessions"]).await?;
    let tenant = operator::tenant(&state.db, TenantId::from_uuid(id))
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    Ok(axum::Json(tenant.into()))
}

/// Why a tenant is suspended.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Suspension {
    /// 1 to 500 characters: shown to the tenant's users and integrations
    /// in every refusal.
    #[schema(example = "spam complaints")]
    pub reason: String,
}

/// Suspends a tenant: its logins, API keys and sending stop (403
/// `tenant_suspended` with the reason; running campaigns wait with
/// `tenant_suspended`); nothing is deleted. Suspending a suspended tenant
/// changes nothing.
#[utoipa::path(post, path = "/api/v1/admin/tenants/{id}/suspend", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The tenant")),
    request_body = Suspension,
    responses(
        (status = 200, description = "Suspended", body = TenantSummary),
        (status = 400, description = "No reason, or one too long", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not the platform admin", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the platform admin's own tenant", body = ErrorBody),
    ))]
async fn suspend_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<Suspension>,
) -> Result<axum::Json<TenantSummary>, ApiError> {
    caller.require(Role::Admin)?;
    let admin = caller
        .user_id()
        .ok_or_else(|| ApiError::forbidden("suspensions are made by the admin user"))?;
    let tenant = TenantId::from_uuid(id);
    if tenant == caller.tenant_id {
        return Err(ApiError::new(
            crate::ErrorCode::InvalidState,
            "the platform admin's own tenant is not suspended",
        ));
    }
    standing(
        &state,
        tenant,
        WalletCommand::Suspend {
            reason: body.reason,
            by: UserId::from_uuid(admin),
            at: Utc::now(),
        },
        &caller,
    )
    .await
    .map(axum::Json)
}

/// Lifts a tenant's suspension. A tenant not suspended: nothing changes.
#[utoipa::path(post, path = "/api/v1/admin/tenants/{id}/reactivate", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The tenant")),
    responses(
        (status = 200, description = "Active", body = TenantSummary),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not the platform admin", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ))]
async fn reactivate_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<TenantSummary>, ApiError> {
    caller.require(Role::Admin)?;
    let admin = caller
        .user_id()
        .ok_or_else(|| ApiError::forbidden("reactivations are made by the admin user"))?;
    standing(
        &state,
        TenantId::from_uuid(id),
        WalletCommand::Reactivate {
            by: UserId::from_uuid(admin),
            at: Utc::now(),
        },
        &caller,
    )
    .await
    .map(axum::Json)
}

/// Runs a suspension or reactivation on the tenant's wallet and answers
/// once authentication sees it (the `wallets` projection reached it).
async fn standing(
    state: &AppState,
    tenant: TenantId,
    command: WalletCommand,
    caller: &Caller,
) -> Result<TenantSummary, ApiError> {
    if operator::tenant(&state.db, tenant).await?.is_none() {
        return Err(ApiError::not_found("tenant"));
    }
    let committed = commands::execute(
        &state.commands.wallets,
        &tenant_key(tenant, tenant),
        command,
        &caller.command(),
    )
    .await?;
    let at = position(&committed);
    After::at(at).wait(&state.db, &["wallets"]).await?;
    // Answered once this process enforces it (others: within their
    // follower's lag, see `auth::access`).
    if !state
        .access
        .reached(at.sequence, std::time::Duration::from_secs(10))
        .await
    {
        return Err(ApiError::new(
            crate::ErrorCode::Unavailable,
            "the change is recorded but not yet enforced; try again",
        ));
    }
    let summary = operator::tenant(&state.db, tenant)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    tracing::info!(%tenant, suspended = summary.suspended_reason.is_some(), "tenant standing changed");
    Ok(summary.into())
}

/// A user as the operator sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserSummary {
    /// Its id.
    pub id: Uuid,
    /// Its email.
    pub email: String,
    /// `admin`, `owner` or `member`.
    pub role: Role,
    /// Its name.
    pub name: Option<String>,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// The tenant's name.
    pub tenant_name: String,
    /// When it registered.
    pub created_at: DateTime<Utc>,
}

/// Which users.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserSearch {
    /// Part of an email, a name or a tenant's name (case-insensitive).
    pub q: Option<String>,
    /// Only this tenant's users.
    pub tenant_id: Option<Uuid>,
    /// Rows per page: 1 to 500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Every user of the platform, oldest first.
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin",
    security(("bearer" = [])),
    params(UserSearch),
    responses(
        (status = 200, description = "A page of users", body = List<UserSummary>),
        (status = 400, description = "Bad limit, cursor, q or tenant_id", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not the platform admin", body = ErrorBody),
    ))]
async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    Query(search): Query<UserSearch>,
) -> Result<axum::Json<List<UserSummary>>, ApiError> {
    caller.require(Role::Admin)?;
    let as_search = Search {
        q: search.q.clone(),
        limit: search.limit,
        cursor: search.cursor.clone(),
    };
    let page = as_search.page()?;
    let q = as_search.text()?;
    let paged = operator::users(
        &state.db,
        q,
        search.tenant_id.map(TenantId::from_uuid),
        &page,
    )
    .await?;
    Ok(axum::Json(List::from_paged(paged, |u| UserSummary {
        id: u.id,
        email: u.email,
        role: u.role.parse().unwrap_or(Role::Member),
        name: u.name,
        tenant_id: u.tenant_id,
        tenant_name: u.tenant_name,
        created_at: u.created_at,
    })))
}

/// Which sessions.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionSearch {
    /// Part of the session's name, its number or its tenant's name
    /// (case-insensitive), at most 200 characters.
    pub q: Option<String>,
    /// Only this tenant's sessions.
    pub tenant_id: Option<Uuid>,
    /// Only sessions of this trust level (1 to 5).
    #[param(minimum = 1, maximum = 5)]
    pub trust_level: Option<i64>,
    /// Only sessions in this status.
    pub status: Option<SessionStatus>,
    /// Rows per page: 1 to 500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A session as the operator sees it, across tenants. Its trust level is
/// set with `PATCH /api/v1/sessions/{id}` `{trust_level}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminSession {
    /// The session.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// The tenant's name.
    pub tenant_name: String,
    /// Its name.
    pub name: String,
    /// Its driver.
    pub driver: String,
    /// Its status.
    pub status: SessionStatus,
    /// Its number, once linked.
    pub phone_number: Option<String>,
    /// Its trust level, 1 (new) to 5 (trusted).
    pub trust_level: i16,
    /// Its daily limit.
    pub daily_limit: i32,
    /// Whether the daily limit follows the trust level (the tenant set
    /// none of its own).
    pub daily_limit_follows_trust_level: bool,
    /// The engine that last took it (it may have left since).
    pub engine_id: Option<String>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// Every tenant's sessions (linked numbers), oldest first, with their
/// trust levels.
#[utoipa::path(get, path = "/api/v1/admin/sessions", tag = "admin",
    security(("bearer" = [])),
    params(SessionSearch),
    responses(
        (status = 200, description = "A page of sessions", body = List<AdminSession>),
        (status = 400, description = "Bad limit, cursor, q, tenant_id, trust_level or status", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not the platform admin", body = ErrorBody),
    ))]
async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Query(search): Query<SessionSearch>,
) -> Result<axum::Json<List<AdminSession>>, ApiError> {
    caller.require(Role::Admin)?;
    let as_search = Search {
        q: search.q.clone(),
        limit: search.limit,
        cursor: search.cursor.clone(),
    };
    let page = as_search.page()?;
    let q = as_search.text()?;
    let trust_level = search
        .trust_level
        .map(|level| {
            i16::try_from(level)
                .ok()
                .filter(|level| (1..=5).contains(level))
                .ok_or_else(|| {
                    ApiError::invalid_field("trust_level", "trust_level must be between 1 and 5")
                })
        })
        .transpose()?;
    after.wait(&state.db, &["sessions"]).await?;
    let filter = operator::SessionFilter {
        search: q,
        tenant: search.tenant_id.map(TenantId::from_uuid),
        trust_level,
        status: search.status,
    };
    let paged = operator::sessions(&state.db, &filter, &page).await?;
    Ok(axum::Json(List::from_paged(paged, |s| AdminSession {
        id: s.id,
        tenant_id: s.tenant_id,
        tenant_name: s.tenant_name,
        name: s.name,
        driver: s.driver,
        status: SessionStatus::parse(&s.status).unwrap_or_default(),
        phone_number: s.phone_number,
        trust_level: s.trust_level,
        daily_limit: s.daily_limit,
        daily_limit_follows_trust_level: s.daily_limit_follows_trust_level,
        engine_id: s.engine_id,
        updated_at: s.updated_at,
    })))
}

/// The platform's statistics over a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlatformStats {
    /// The first day (UTC) counted.
    pub from: chrono::NaiveDate,
    /// The last day counted.
    pub to: chrono::NaiveDate,
    /// Tenants, in all.
    pub tenants: i64,
    /// Tenants that sent at least one message in the range.
    pub tenants_active: i64,
    /// Tenants suspended now.
    pub tenants_suspended: i64,
    /// Every tenant's messages in the range.
    pub totals: super::stats::StatsCounts,
    /// Per period.
    pub periods: Vec<super::stats::StatsPeriod>,
    /// Final failures by reason, most first.
    pub failures: Vec<super::stats::FailureCount>,
    /// Revenue by plan (and top-ups, `plan_id` null) from the orders paid
    /// through Midtrans in the range, biggest first; grants are not
    /// revenue.
    pub revenue_by_plan: Vec<PlanRevenue>,
}

/// What one plan (or top-ups) brought in.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanRevenue {
    /// `plan` or `top_up`.
    pub item: wablast_projections::queries::stats::ItemKind,
    /// The plan (`null` for top-ups).
    pub plan_id: Option<Uuid>,
    /// Its name when bought (`null` for top-ups).
    pub plan_name: Option<String>,
    /// Orders paid.
    pub orders: i64,
    /// What they paid, in rupiah.
    pub amount: i64,
    /// What was refunded of them.
    pub refunded: i64,
    /// `amount - refunded`.
    pub net: i64,
    /// Per period (of the granularity asked), oldest first; periods with
    /// nothing paid are left out.
    pub periods: Vec<RevenuePeriod>,
}

/// What one plan brought in over one period.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevenuePeriod {
    /// The period's first day.
    pub start: chrono::NaiveDate,
    /// Orders paid.
    pub orders: i64,
    /// What they paid.
    pub amount: i64,
    /// What was refunded of them.
    pub refunded: i64,
    /// `amount - refunded`.
    pub net: i64,
}

/// Folds the rows per period into one entry per plan (and top-ups).
fn revenue_by_plan(rows: Vec<wablast_projections::queries::stats::RevenueRow>) -> Vec<PlanRevenue> {
    let mut plans: Vec<PlanRevenue> = Vec::new();
    for row in rows {
        let index = match plans
            .iter()
            .position(|p| p.item == row.item_kind && p.plan_id == row.plan_id)
        {
            Some(index) => index,
            None => {
                plans.push(PlanRevenue {
                    item: row.item_kind,
                    plan_id: row.plan_id,
                    plan_name: row.plan_name.clone(),
                    orders: 0,
                    amount: 0,
                    refunded: 0,
                    net: 0,
                    periods: Vec::new(),
                });
                plans.len() - 1
            }
        };
        let plan = &mut plans[index];
        plan.orders += row.orders;
        plan.amount += row.amount;
        plan.refunded += row.refunded;
        plan.net += row.amount - row.refunded;
        plan.periods.push(RevenuePeriod {
            start: row.start,
            orders: row.orders,
            amount: row.amount,
            refunded: row.refunded,
            net: row.amount - row.refunded,
        });
    }
    plans.sort_by(|a, b| b.net.cmp(&a.net).then(a.plan_name.cmp(&b.plan_name)));
    plans
}

/// The platform's statistics: tenants, messages, failures by reason and
/// revenue by plan.
#[utoipa::path(get, path = "/api/v1/admin/stats", tag = "admin",
    security(("bearer" = [])),
    params(super::stats::StatsQuery),
    responses(
        (status = 200, description = "The statistics", body = PlatformStats),
        (status = 400, description = "Bad from, to or granularity", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "Not the platform admin", body = ErrorBody),
    ))]
async fn platform_stats(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Query(query): Query<super::stats::StatsQuery>,
) -> Result<axum::Json<PlatformStats>, ApiError> {
    caller.require(Role::Admin)?;
    let (from, to, granularity) = query.range()?;
    after
        .wait(&state.db, &["stats", "wallets", "orders"])
        .await?;
    let report =
        wablast_projections::queries::stats::platform(&state.db, from, to, granularity).await?;
    let revenue =
        wablast_projections::queries::stats::revenue(&state.db, from, to, granularity).await?;
    Ok(axum::Json(PlatformStats {
        from,
        to,
        tenants: report.tenants,
        tenants_active: report.tenants_active,
        tenants_suspended: report.tenants_suspended,
        totals: report.totals.into(),
        periods: report.periods.into_iter().map(Into::into).collect(),
        failures: report.failures.into_iter().map(Into::into).collect(),
        revenue_by_plan: revenue_by_plan(revenue),
    }))
}
