//! The platform operator's endpoints: plans on offer and grants to tenants
//! (how an operator credits a tenant without a payment gateway). Every
//! route answers 403 to anyone but the admin.

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
use wablast_domain::types::{DailyLimit, PlanId, Points, TenantId, UserId};
use wablast_domain::wallet::WalletCommand;
use wablast_eventstore::CommandMetadata;

use super::wallet::PlanView;
use crate::auth::{Caller, Role};
use crate::commands::{self, platform_key, position, tenant_key};
use crate::consistency::header_value;
use crate::error::ErrorBody;
use crate::extract::{Json, Path};
use crate::{ApiError, AppState};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(define_plan))
        .routes(routes!(grant))
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
                at,
            },
            &caller.command(),
        )
        .await
        .map_err(|err| match err {
            cqrs_es::AggregateError::UserError(refusal) => plan_refusal(refusal),
            other => ApiError::from(other),
        })?;
    let terms = state
        .commands
        .plans
        .load(&platform_key(plan_id))
        .await
        .map_err(ApiError::from)?
        .aggregate
        .subscription_terms()
        .map_err(plan_refusal)?;
    tracing::info!(plan = %plan_id, name = %terms.name, "plan defined");
    let view = PlanView {
        id: *plan_id.as_uuid(),
        name: terms.name,
        period_days: i32::try_from(terms.period_days.days()).unwrap_or(i32::MAX),
        points: i64::try_from(body.points).unwrap_or(i64::MAX),
        max_sessions: i32::try_from(body.max_sessions).unwrap_or(i32::MAX),
        max_recipients_per_campaign: i32::try_from(max_recipients_per_campaign).unwrap_or(i32::MAX),
        max_daily_limit: i32::try_from(max_daily_limit.value()).unwrap_or(i32::MAX),
        price: i64::try_from(body.price).unwrap_or(i64::MAX),
        created_at: at,
        retired_at: None,
    };
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
    let exists: bool = sqlx::query_scalar("select exists (select 1 from tenants where id = $1)")
        .bind(id)
        .fetch_one(&state.db)
        .await?;
    if !exists {
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
