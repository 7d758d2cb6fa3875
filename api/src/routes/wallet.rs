//! The tenant's wallet (points, plan, history of points) and the plans on
//! offer.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wablast_projections::queries::{TransactionCursor, plans, wallet};

use crate::auth::Caller;
use crate::consistency::After;
use crate::error::ErrorBody;
use crate::extract::Query;
use crate::list::{List, ListParams};
use crate::{ApiError, AppState};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_wallet))
        .routes(routes!(list_transactions))
        .routes(routes!(list_plans))
}

/// A tenant's points and plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct WalletView {
    /// All the points the tenant has, reserved or not.
    pub balance: i64,
    /// Points held for running campaigns.
    pub reserved: i64,
    /// Points a new campaign may reserve: `balance - reserved`.
    pub available: i64,
    /// The plan last subscribed to, with its terms as subscribed; null
    /// before any.
    pub plan: Option<WalletPlan>,
    /// When the plan runs out (ran out, when in the past).
    pub plan_expires_at: Option<DateTime<Utc>>,
    /// Whether the plan is known to have run out: sending is blocked until
    /// it is renewed.
    pub plan_expired: bool,
    /// When sending stops: `plan_expires_at` plus the plan's grace days.
    pub sending_until: Option<DateTime<Utc>>,
    /// Why the platform operator suspended the tenant; null unless
    /// suspended.
    pub suspended_reason: Option<String>,
    /// Whether fewer points are available than a tenth of the plan's (the
    /// `BalanceLowWarned` event was given and still stands).
    pub low_balance: bool,
}

/// The plan of a wallet, its terms as subscribed.
#[derive(Debug, Serialize, ToSchema)]
pub struct WalletPlan {
    /// The plan.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// 15 or 30.
    pub period_days: i32,
    /// Sessions the tenant may have.
    pub max_sessions: Option<i32>,
    /// Recipients one campaign may have.
    pub max_recipients_per_campaign: Option<i32>,
    /// The highest daily limit of one session.
    pub max_daily_limit: Option<i32>,
    /// The plan's version subscribed: its terms stay until renewal.
    pub version: Option<i32>,
    /// Days of grace after the period.
    pub grace_days: Option<i32>,
}

impl From<wallet::WalletView> for WalletView {
    fn from(w: wallet::WalletView) -> Self {
        Self {
            balance: w.balance,
            reserved: w.reserved,
            available: w.available,
            plan: w.plan.map(|p| WalletPlan {
                id: p.id,
                name: p.name,
                period_days: p.period_days,
                max_sessions: p.max_sessions,
                max_recipients_per_campaign: p.max_recipients_per_campaign,
                max_daily_limit: p.max_daily_limit,
                version: p.version,
                grace_days: p.grace_days,
            }),
            plan_expires_at: w.plan_expires_at,
            plan_expired: w.plan_expired,
            sending_until: w.sending_until,
            suspended_reason: w.suspended_reason,
            low_balance: w.low_balance,
        }
    }
}

/// A movement of points (or the plan's expiry).
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionView {
    /// Its id (the event's).
    pub id: Uuid,
    /// `allocation`, `topup`, `reserve`, `capture`, `release` or `expire`.
    #[schema(example = "reserve")]
    pub kind: String,
    /// Points moved.
    pub points: i64,
    /// The payment, grant, plan or campaign it belongs to.
    pub reference: Option<String>,
    /// The campaign it belongs to.
    pub campaign_id: Option<Uuid>,
    /// The balance after it.
    pub balance_after: i64,
    /// Points reserved after it.
    pub reserved_after: i64,
    /// Points available after it.
    pub available_after: i64,
    /// When it happened.
    pub created_at: DateTime<Utc>,
}

impl From<wallet::TransactionView> for TransactionView {
    fn from(t: wallet::TransactionView) -> Self {
        Self {
            id: t.id,
            kind: t.kind,
            points: t.points,
            reference: t.reference,
            campaign_id: t.campaign_id,
            balance_after: t.balance_after,
            reserved_after: t.reserved_after,
            available_after: t.available_after,
            created_at: t.created_at,
        }
    }
}

/// A plan on offer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanView {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// How long one subscription runs: 15 or 30 days.
    pub period_days: i32,
    /// Points allocated on each subscription.
    pub points: i64,
    /// Sessions a subscriber may have.
    pub max_sessions: i32,
    /// Recipients one campaign may have.
    pub max_recipients_per_campaign: i32,
    /// The highest daily limit of one session.
    pub max_daily_limit: i32,
    /// Price of one subscription, in the currency's smallest unit (rupiah).
    pub price: i64,
    /// When it was put on offer.
    pub created_at: DateTime<Utc>,
    /// When it was taken off offer.
    pub retired_at: Option<DateTime<Utc>>,
    /// Its version: 1, then one more per edit. Subscribers keep the
    /// version they bought until they renew.
    pub version: i32,
    /// What it includes.
    pub features: PlanFeaturesView,
    /// Days sending goes on after a period ends.
    pub grace_days: i32,
    /// Whether tenants may buy it (`GET /plans` lists only those).
    pub on_sale: bool,
}

/// What a plan includes.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanFeaturesView {
    /// Auto-reply rules.
    pub auto_replies: bool,
    /// Webhook subscriptions.
    pub webhooks: bool,
    /// Sessions on the official WhatsApp Business Cloud API (driver
    /// `cloud`).
    pub official_mode: bool,
}

impl From<plans::PlanView> for PlanView {
    fn from(p: plans::PlanView) -> Self {
        Self {
            id: p.id,
            name: p.name,
            period_days: p.period_days,
            points: p.points,
            max_sessions: p.max_sessions,
            max_recipients_per_campaign: p.max_recipients_per_campaign,
            max_daily_limit: p.max_daily_limit,
            price: p.price,
            created_at: p.created_at,
            retired_at: p.retired_at,
            version: p.version,
            features: PlanFeaturesView {
                auto_replies: p.feature_auto_replies,
                webhooks: p.feature_webhooks,
                official_mode: p.feature_official_mode,
            },
            grace_days: p.grace_days,
            on_sale: p.on_sale,
        }
    }
}

/// The caller's wallet: zeros and no plan before any points.
#[utoipa::path(get, path = "/api/v1/wallet", tag = "wallet",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The wallet", body = WalletView),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn get_wallet(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
) -> Result<axum::Json<WalletView>, ApiError> {
    after.wait(&state.db, &["wallets"]).await?;
    let view = wallet::get(&state.db, caller.tenant_id).await?;
    Ok(axum::Json(view.into()))
}

/// The caller's history of points, newest first.
#[utoipa::path(get, path = "/api/v1/wallet/transactions", tag = "wallet",
    security(("bearer" = []), ("api_key" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "A page of transactions", body = List<TransactionView>),
        (status = 400, description = "Bad limit or cursor", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn list_transactions(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<List<TransactionView>>, ApiError> {
    let page = params.page::<TransactionCursor>()?;
    after.wait(&state.db, &["wallets"]).await?;
    let paged = wallet::transactions(&state.db, caller.tenant_id, &page).await?;
    Ok(axum::Json(List::from_paged(paged, TransactionView::from)))
}

/// The plans tenants may buy (on sale, not retired), oldest first; the
/// platform admin sees every plan. One page holds them all:
/// `next_cursor` is always null.
#[utoipa::path(get, path = "/api/v1/plans", tag = "wallet",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The plans on offer", body = List<PlanView>),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn list_plans(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
) -> Result<axum::Json<List<PlanView>>, ApiError> {
    after.wait(&state.db, &["plans"]).await?;
    let filter = if caller.is_admin() {
        plans::PlanFilter::All
    } else {
        plans::PlanFilter::OnSale
    };
    let plans = plans::list(&state.db, filter).await?;
    Ok(axum::Json(List {
        items: plans.into_iter().map(PlanView::from).collect(),
        next_cursor: None,
    }))
}
