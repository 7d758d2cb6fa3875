//! Billing: a tenant buys a plan or points through Midtrans
//! (`POST /api/v1/billing/checkout`), Midtrans notifies the payment
//! (`POST /hooks/midtrans`), and the tenant sees its orders and the
//! receipt of each paid one.
//!
//! The handlers parse and answer; the payment steps (the order, the Snap
//! transaction, the status check, the wallet credited once) are
//! [`wablast_workflows::payments`].

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wablast_domain::order::{OrderError, OrderStatus};
use wablast_domain::types::{OrderId, PlanId, Points};
use wablast_projections::queries::orders;
use wablast_workflows::payments::{Buyer, Outcome, PaymentError, Purchase};

use crate::auth::{Caller, Role};
use crate::consistency::{After, header_value};
use crate::error::ErrorBody;
use crate::extract::{Json, Path, Query};
use crate::list::{List, ListParams};
use crate::receipt::{self, Receipt};
use crate::{ApiError, AppState, ErrorCode};

/// The projections billing reads.
const READS: &[&str] = &["orders"];

/// The largest notification accepted (Midtrans' are a few KB).
const MAX_NOTIFICATION_BYTES: usize = 64 * 1024;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(billing_options))
        .routes(routes!(checkout))
        .routes(routes!(list_orders))
        .routes(routes!(get_order))
        .routes(routes!(receipt_pdf))
        .routes(routes!(midtrans_notification))
        .layer(DefaultBodyLimit::max(MAX_NOTIFICATION_BYTES))
}

/// What can be bought, and how.
#[derive(Debug, Serialize, ToSchema)]
pub struct BillingOptions {
    /// Whether payments are on (Midtrans configured): otherwise checkout
    /// answers 422 `payments_not_configured` and plans and points come
    /// from the platform admin.
    pub payments_enabled: bool,
    /// `midtrans`.
    #[schema(example = "midtrans")]
    pub provider: &'static str,
    /// Midtrans' production (`false`: its sandbox).
    pub production: bool,
    /// Midtrans' client key (for Snap's JavaScript), when configured.
    pub client_key: Option<String>,
    /// `IDR`.
    #[schema(example = "IDR")]
    pub currency: &'static str,
    /// What points cost.
    pub topup: TopUpOptions,
}

/// What points cost at checkout.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopUpOptions {
    /// Rupiah per point.
    pub price_per_point: u64,
    /// The fewest points one top-up buys.
    pub min_points: u64,
    /// The most points one top-up buys.
    pub max_points: u64,
}

/// What can be bought and how: whether payments are on, what points
/// cost.
#[utoipa::path(get, path = "/api/v1/billing/options", tag = "billing",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The billing options", body = BillingOptions),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn billing_options(
    State(state): State<AppState>,
    _caller: Caller,
) -> axum::Json<BillingOptions> {
    let pricing = state.payments.pricing();
    let midtrans = state.config.midtrans.as_ref();
    axum::Json(BillingOptions {
        payments_enabled: state.payments.configured(),
        provider: "midtrans",
        production: midtrans.is_some_and(|m| m.production),
        client_key: midtrans.and_then(|m| m.client_key.clone()),
        currency: "IDR",
        topup: TopUpOptions {
            price_per_point: pricing.price_per_point,
            min_points: pricing.min_points,
            max_points: pricing.max_points,
        },
    })
}

/// What to buy: exactly one of `plan_id` and `topup_points`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCheckout {
    /// A plan on sale (subscribes, or renews from the current expiry).
    pub plan_id: Option<Uuid>,
    /// Points to buy (the installation's price per point; bounds in the
    /// error when out of them).
    pub topup_points: Option<u64>,
}

/// A checkout opened: send the buyer to `redirect_url` (or open Snap with
/// `snap_token`).
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckoutView {
    /// The order.
    pub order_id: Uuid,
    /// Snap's token of the payment page.
    pub snap_token: String,
    /// The payment page.
    pub redirect_url: String,
    /// What it costs, whole rupiah.
    pub amount: u64,
    /// `IDR`.
    #[schema(example = "IDR")]
    pub currency: &'static str,
}

/// An order.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderView {
    /// Its id (Midtrans' `order_id`).
    pub id: Uuid,
    /// `plan` or `top_up`.
    #[schema(example = "plan")]
    pub item: String,
    /// The plan bought, with its name and period when bought.
    pub plan: Option<OrderPlan>,
    /// The points it credits.
    pub points: i64,
    /// Whole rupiah.
    pub amount: i64,
    /// `IDR`.
    #[schema(example = "IDR")]
    pub currency: &'static str,
    /// `created`, `pending`, `paid`, `failed`, `partially_refunded` or
    /// `refunded`.
    #[schema(example = "paid")]
    pub status: String,
    /// Why it failed: `denied`, `cancelled`, `expired`, `failed`,
    /// `checkout_failed`.
    pub failure_reason: Option<String>,
    /// Midtrans' transaction id.
    pub transaction_id: Option<String>,
    /// Where to pay, while it can be paid.
    pub redirect_url: Option<String>,
    /// When it was paid.
    pub paid_at: Option<DateTime<Utc>>,
    /// When the wallet was credited.
    pub credited_at: Option<DateTime<Utc>>,
    /// Rupiah refunded.
    pub refunded_amount: i64,
    /// Points the refunds took back.
    pub points_taken_back: i64,
    /// Points the refunds could not take back (already spent): owed.
    pub points_owed: i64,
    /// Payments Midtrans reported for another amount (refused).
    pub amount_mismatches: i32,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// The plan of an order.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPlan {
    /// Its id.
    pub id: Uuid,
    /// Its name when bought.
    pub name: String,
    /// 15 or 30.
    pub period_days: i32,
}

impl From<orders::OrderView> for OrderView {
    fn from(o: orders::OrderView) -> Self {
        let plan = match (o.plan_id, o.plan_name, o.plan_period_days) {
            (Some(id), Some(name), Some(period_days)) => Some(OrderPlan {
                id,
                name,
                period_days,
            }),
            _ => None,
        };
        let open =
            o.status == OrderStatus::Created.as_str() || o.status == OrderStatus::Pending.as_str();
        Self {
            id: o.order_id,
            item: o.item_kind,
            plan,
            points: o.points,
            amount: o.amount,
            currency: "IDR",
            status: o.status,
            failure_reason: o.failure_reason,
            transaction_id: o.transaction_id,
            redirect_url: if open { o.redirect_url } else { None },
            paid_at: o.paid_at,
            credited_at: o.credited_at,
            refunded_amount: o.refunded_amount,
            points_taken_back: o.points_taken_back,
            points_owed: o.points_owed,
            amount_mismatches: o.amount_mismatches,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

/// Which orders.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderFilter {
    /// Only orders in this status.
    pub status: Option<String>,
}

/// What a notification did.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationTaken {
    /// The order.
    pub order_id: String,
    /// Its status now (`null` when Midtrans has no transaction for it yet).
    pub status: Option<String>,
}

fn payment_error(err: PaymentError) -> ApiError {
    match err {
        PaymentError::NotConfigured => ApiError::new(
            ErrorCode::PaymentsNotConfigured,
            "payments are not configured on this installation (WABLAST_MIDTRANS_SERVER_KEY)",
        ),
        PaymentError::PlanNotFound => {
            ApiError::not_found("plan").with_details(json!({"field": "plan_id"}))
        }
        PaymentError::PlanNotOnSale => {
            ApiError::new(ErrorCode::InvalidState, "the plan is not on sale")
                .with_details(json!({"field": "plan_id"}))
        }
        PaymentError::InvalidTopUp { min, max } => ApiError::invalid_field(
            "topup_points",
            format!("a top-up buys {min} to {max} points"),
        )
        .with_details(json!({"field": "topup_points", "min": min, "max": max})),
        PaymentError::Gateway(err) => {
            tracing::warn!(error = %wablast_eventstore::report::Chain(&err), "Midtrans failed");
            ApiError::new(
                ErrorCode::PaymentGatewayFailed,
                "the payment gateway did not answer as expected; try again",
            )
        }
        PaymentError::BadNotification(message) => ApiError::validation(message),
        PaymentError::BadSignature => ApiError::new(
            ErrorCode::Unauthenticated,
            "the notification's signature_key is wrong",
        ),
        PaymentError::OrderNotFound => ApiError::not_found("order"),
        PaymentError::Order(refusal) => {
            ApiError::from(cqrs_es::AggregateError::<OrderError>::UserError(refusal))
        }
        PaymentError::Plan(refusal) => ApiError::from(cqrs_es::AggregateError::UserError(refusal)),
        PaymentError::Wallet(refusal) => {
            ApiError::from(cqrs_es::AggregateError::UserError(refusal))
        }
        PaymentError::Log(message) => ApiError::internal(anyhow::anyhow!(message)),
        PaymentError::Database(err) => ApiError::from(err),
    }
}

/// Buys a plan (`{plan_id}`) or points (`{topup_points}`): creates the
/// order and its Midtrans Snap payment page.
///
/// The order is paid when Midtrans confirms the payment; then the plan
/// runs (or the points are credited), once.
#[utoipa::path(post, path = "/api/v1/billing/checkout", tag = "billing",
    security(("bearer" = []), ("api_key" = [])),
    request_body = NewCheckout,
    responses(
        (status = 201, description = "The order and where to pay it (`X-Wablast-Position` names the write)", body = CheckoutView),
        (status = 400, description = "Not exactly one of plan_id and topup_points; points out of bounds", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 403, description = "`forbidden`: only the tenant's owners buy (not members, not API keys); or `tenant_suspended`", body = ErrorBody),
        (status = 404, description = "No such plan", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the plan is retired or not sold (free)", body = ErrorBody),
        (status = 422, description = "`payments_not_configured`: this installation sells nothing online (no Midtrans server key); the platform admin grants plans and points", body = ErrorBody),
        (status = 502, description = "`payment_gateway_failed`: Midtrans refused or could not be reached (the order is failed, `checkout_failed`)", body = ErrorBody),
    ))]
async fn checkout(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewCheckout>,
) -> Result<Response, ApiError> {
    caller.require(Role::Owner)?;
    let purchase = match (body.plan_id, body.topup_points) {
        (Some(plan), None) => Purchase::Plan(PlanId::from_uuid(plan)),
        (None, Some(points)) => Purchase::TopUp(Points::new(points)),
        _ => {
            return Err(
                ApiError::validation("give exactly one of plan_id and topup_points")
                    .with_details(json!({"fields": ["plan_id", "topup_points"]})),
            );
        }
    };
    if !state.payments.configured() {
        return Err(payment_error(PaymentError::NotConfigured));
    }
    let (name, email) =
        crate::auth::accounts::buyer(&state.db, *caller.tenant_id.as_uuid(), caller.user_id())
            .await?
            .ok_or_else(|| ApiError::not_found("tenant"))?;
    let buyer = Buyer { name, email };
    let (checkout, committed) = state
        .payments
        .checkout(caller.tenant_id, &buyer, purchase, &caller.command())
        .await
        .map_err(payment_error)?;
    Ok((
        StatusCode::CREATED,
        [header_value(crate::commands::position(&committed))],
        axum::Json(CheckoutView {
            order_id: *checkout.order_id.as_uuid(),
            snap_token: checkout.snap_token,
            redirect_url: checkout.redirect_url,
            amount: checkout.amount.value(),
            currency: "IDR",
        }),
    )
        .into_response())
}

/// The caller's orders, newest first.
#[utoipa::path(get, path = "/api/v1/billing/orders", tag = "billing",
    security(("bearer" = []), ("api_key" = [])),
    params(ListParams, OrderFilter),
    responses(
        (status = 200, description = "A page of orders", body = List<OrderView>),
        (status = 400, description = "Bad limit, cursor or status", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn list_orders(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Query(params): Query<ListParams>,
    Query(filter): Query<OrderFilter>,
) -> Result<axum::Json<List<OrderView>>, ApiError> {
    let page = params.page::<Uuid>()?;
    let status = match filter.status.as_deref() {
        None | Some("") => None,
        Some(text) => Some(OrderStatus::parse(text).ok_or_else(|| {
            ApiError::invalid_field(
                "status",
                "status is one of created, pending, paid, failed, partially_refunded, refunded",
            )
        })?),
    };
    after.wait(&state.db, READS).await?;
    let paged = orders::list(&state.db, caller.tenant_id, status, &page).await?;
    Ok(axum::Json(List::from_paged(paged, OrderView::from)))
}

/// One of the caller's orders.
#[utoipa::path(get, path = "/api/v1/billing/orders/{id}", tag = "billing",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The order")),
    responses(
        (status = 200, description = "The order", body = OrderView),
        (status = 400, description = "Not a UUID", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such order (or another tenant's)", body = ErrorBody),
    ))]
async fn get_order(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<OrderView>, ApiError> {
    after.wait(&state.db, READS).await?;
    let order = orders::get(&state.db, caller.tenant_id, OrderId::from_uuid(id))
        .await?
        .ok_or_else(|| ApiError::not_found("order"))?;
    Ok(axum::Json(order.into()))
}

/// The receipt of a paid order, as a PDF: seller, buyer, item, amount and
/// the tax it includes, Midtrans' transaction id, when it was paid.
#[utoipa::path(get, path = "/api/v1/billing/orders/{id}/receipt.pdf", tag = "billing",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The order")),
    responses(
        (status = 200, description = "The receipt", content_type = "application/pdf", body = Vec<u8>),
        (status = 400, description = "Not a UUID", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such order (or another tenant's)", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the order was never paid", body = ErrorBody),
    ))]
async fn receipt_pdf(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    after.wait(&state.db, READS).await?;
    let order = orders::get(&state.db, caller.tenant_id, OrderId::from_uuid(id))
        .await?
        .ok_or_else(|| ApiError::not_found("order"))?;
    let (Some(paid_at), Some(transaction_id)) = (order.paid_at, order.transaction_id.clone())
    else {
        return Err(ApiError::new(
            ErrorCode::InvalidState,
            format!(
                "order {id} is {}: only a paid order has a receipt",
                order.status
            ),
        )
        .with_details(json!({"status": order.status})));
    };
    let (buyer_name, buyer_email) =
        crate::auth::accounts::buyer(&state.db, *caller.tenant_id.as_uuid(), caller.user_id())
            .await?
            .unwrap_or_default();
    let item = match (&order.plan_name, order.plan_period_days) {
        (Some(name), Some(days)) => {
            format!("Plan {name} ({days} days, {} points)", order.points)
        }
        _ => format!("Top-up of {} points", order.points),
    };
    let pdf = receipt::render(
        &state.config.seller,
        &Receipt {
            order_id: order.order_id.to_string(),
            buyer_name,
            buyer_email,
            item,
            amount: u64::try_from(order.amount).unwrap_or(0),
            refunded: u64::try_from(order.refunded_amount).unwrap_or(0),
            transaction_id,
            paid_at,
        },
    );
    Ok((
        StatusCode::OK,
        [
            (CONTENT_TYPE, "application/pdf".to_owned()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"receipt-{id}.pdf\""),
            ),
        ],
        pdf,
    )
        .into_response())
}

/// Midtrans' HTTP notification of a transaction's status.
///
/// The `signature_key` (SHA-512 of `order_id + status_code + gross_amount
/// + server key`) is checked first: a wrong one is 401 and changes
/// nothing. The transaction is then confirmed with Midtrans' status API,
/// and what it says is brought to the order: `capture` (fraud `accept`)
/// and `settlement` pay it (the plan runs or the points are credited,
/// once, however many times Midtrans notifies), `pending` keeps it
/// waiting, `deny`/`cancel`/`expire`/`failure` fail it with the reason,
/// `refund`/`partial_refund` take the points back as far as they are
/// unspent (the rest is recorded as owed). A payment of another amount than
/// the order's is refused (422) and recorded.
#[utoipa::path(post, path = "/hooks/midtrans", tag = "hooks",
    request_body(content = Object, content_type = "application/json",
        description = "Midtrans' notification: `{order_id, status_code, gross_amount, signature_key, transaction_status, transaction_id, fraud_status, ...}`"),
    responses(
        (status = 200, description = "Taken (also when nothing changed: a repeat)", body = NotificationTaken),
        (status = 400, description = "Not a Midtrans notification", body = ErrorBody),
        (status = 401, description = "`unauthenticated`: the signature_key is wrong (or no Midtrans server key is configured, so none can be right); nothing changed", body = ErrorBody),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the order cannot take it (a refund of an order never paid)", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 422, description = "`amount_mismatch`: Midtrans reports another amount than the order's; refused and recorded", body = ErrorBody),
        (status = 502, description = "`payment_gateway_failed`: the status API could not confirm it (Midtrans retries)", body = ErrorBody),
    ))]
async fn midtrans_notification(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<axum::Json<NotificationTaken>, ApiError> {
    if !state.payments.configured() {
        // No server key: no signature can be checked, so none is
        // accepted.
        return Err(ApiError::new(
            ErrorCode::Unauthenticated,
            "payments are not configured here: no notification can be verified",
        ));
    }
    let order_id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["order_id"].as_str().map(str::to_owned))
        .unwrap_or_default();
    match state.payments.notify(&body).await.map_err(payment_error)? {
        Outcome::Applied(status) => Ok(axum::Json(NotificationTaken {
            order_id,
            status: Some(status.as_str().to_owned()),
        })),
        Outcome::Unknown => Ok(axum::Json(NotificationTaken {
            order_id,
            status: None,
        })),
        Outcome::AmountMismatch { expected, reported } => Err(ApiError::new(
            ErrorCode::AmountMismatch,
            format!("Midtrans reports {reported} for an order of {expected}: refused"),
        )
        .with_details(json!({"expected": expected.value(), "reported": reported.value()}))),
    }
}
