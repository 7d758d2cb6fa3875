//! Payments through Midtrans: a checkout opens an order and its payment
//! page; the gateway's notifications (and a re-check of orders left
//! waiting) bring what Midtrans says of each order's transaction to the
//! order, and the wallet is credited (or, after a refund, debited) once.
//!
//! # Steps
//!
//! 1. [`Payments::checkout`]: the order (`OrderCreated`, the plan's terms
//!    as they are now, or the points, and the amount) and a Snap
//!    transaction (`CheckoutOpened`); a gateway that refuses or cannot be
//!    reached fails the order (`checkout_failed`).
//! 2. [`Payments::notify`]: a notification whose `signature_key` is right
//!    names an order; its transaction is read back from the status API
//!    (never trusted from the notification) and reported to the order.
//! 3. [`Payments::settle`]: a paid order not credited yet credits the
//!    wallet (`Subscribe` or `TopUp`, reference `order:<id>`: credited
//!    once whatever happens), then records it on the order; a refund not
//!    taken back yet takes the points back (`TakeBack`) and records what
//!    was taken and what is owed.
//! 4. [`Payments::recheck_due`] (run by [`Payments::run`], in one process
//!    of the fleet at a time, under an advisory lock): the orders that
//!    have waited long enough, by [`Clock`], are looked up again, and paid
//!    orders whose credit was interrupted are settled.
//!
//! Every step is safe to repeat: the order decides once, the wallet
//! credits a reference once.

pub mod midtrans;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use cqrs_es::Aggregate;
use cqrs_es::AggregateError;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use wablast_domain::order::{
    Order, OrderCommand, OrderError, OrderItem, OrderStatus, Rupiah, credit_reference,
    take_back_reference,
};
use wablast_domain::plan::PlanError;
use wablast_domain::types::{OrderId, PlanId, Points, TenantId};
use wablast_domain::wallet::{WalletCommand, WalletError};
use wablast_eventstore::{
    Actor, AggregateKey, CommandMetadata, Committed, EventLog, EventStoreError, PLATFORM_TENANT,
};
use wablast_projections::queries::orders;

use crate::clock::Clock;
use crate::commands::{Commands, follow_up, key, tenant_key};
use midtrans::{
    CustomerDetails, ItemDetails, Midtrans, MidtransError, Notification, SnapRequest,
    TransactionDetails,
};

/// What a tenant buys at checkout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purchase {
    /// A plan (or its renewal).
    Plan(PlanId),
    /// Points.
    TopUp(Points),
}

/// Who buys (Midtrans' `customer_details`).
#[derive(Clone, Debug)]
pub struct Buyer {
    /// Their name (the tenant's).
    pub name: String,
    /// Their email.
    pub email: String,
}

/// A checkout opened: where the buyer pays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkout {
    /// The order.
    pub order_id: OrderId,
    /// The payment page's token.
    pub snap_token: String,
    /// The payment page.
    pub redirect_url: String,
    /// The order's amount.
    pub amount: Rupiah,
}

/// What buying points costs, and how many may be bought at once.
#[derive(Clone, Copy, Debug)]
pub struct TopUpPricing {
    /// Rupiah per point.
    pub price_per_point: u64,
    /// The fewest points one top-up buys.
    pub min_points: u64,
    /// The most points one top-up buys.
    pub max_points: u64,
}

impl Default for TopUpPricing {
    fn default() -> Self {
        Self {
            price_per_point: 100,
            min_points: 100,
            max_points: 1_000_000,
        }
    }
}

/// What a notification or a re-check did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The order is now in this status (settled as far as it can be).
    Applied(OrderStatus),
    /// Midtrans reports another amount than the order's: refused,
    /// recorded on the order, nothing credited.
    AmountMismatch {
        /// The order's amount.
        expected: Rupiah,
        /// What Midtrans reports.
        reported: Rupiah,
    },
    /// Midtrans has no transaction for the order (yet).
    Unknown,
}

/// Why a payment step failed.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// Midtrans is not configured: nothing can be paid.
    #[error("payments are not configured on this installation")]
    NotConfigured,
    /// No such plan.
    #[error("no such plan")]
    PlanNotFound,
    /// The plan is retired (or costs nothing: it is granted, not sold).
    #[error("the plan is not on sale")]
    PlanNotOnSale,
    /// A top-up of too few or too many points.
    #[error("a top-up buys {min} to {max} points")]
    InvalidTopUp {
        /// The fewest.
        min: u64,
        /// The most.
        max: u64,
    },
    /// Midtrans refused or could not be reached: nothing was paid.
    #[error(transparent)]
    Gateway(#[from] MidtransError),
    /// A notification that is not Midtrans' JSON.
    #[error("not a Midtrans notification: {0}")]
    BadNotification(String),
    /// A notification whose `signature_key` is wrong.
    #[error("the notification's signature_key is wrong")]
    BadSignature,
    /// No such order.
    #[error("no such order")]
    OrderNotFound,
    /// The order refused what Midtrans reports (e.g. a refund of an order
    /// never paid).
    #[error(transparent)]
    Order(#[from] OrderError),
    /// The wallet refused the credit or take-back.
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// A plan refused (never for a load: loading refuses nothing).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The log or its aggregates failed (a conflict lost twice, NATS).
    #[error("the log failed: {0}")]
    Log(String),
    /// The query tables failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl<E: std::error::Error + Into<PaymentError>> From<AggregateError<E>> for PaymentError {
    fn from(err: AggregateError<E>) -> Self {
        match err {
            AggregateError::UserError(refusal) => refusal.into(),
            other => Self::Log(wablast_eventstore::report::Chain(&other).to_string()),
        }
    }
}

impl From<EventStoreError> for PaymentError {
    fn from(err: EventStoreError) -> Self {
        Self::Log(wablast_eventstore::report::Chain(&err).to_string())
    }
}

/// How the re-check runs.
#[derive(Clone, Copy, Debug)]
pub struct RecheckOptions {
    /// How often it looks.
    pub every: Duration,
    /// How long an order waits, unchanged, before it is looked up.
    pub after: TimeDelta,
    /// How long after its creation an unpaid order is still looked up
    /// (Snap's pages expire after a day by default).
    pub for_at_most: TimeDelta,
}

impl Default for RecheckOptions {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(60),
            after: TimeDelta::minutes(5),
            for_at_most: TimeDelta::days(2),
        }
    }
}

/// The most orders one re-check looks at.
const BATCH: i64 = 100;

/// Payments: checkout, notifications, settlement, re-check.
#[derive(Clone)]
pub struct Payments {
    commands: Commands,
    log: EventLog,
    db: PgPool,
    midtrans: Option<Midtrans>,
    clock: Arc<dyn Clock>,
    pricing: TopUpPricing,
}

fn plan_key(plan: PlanId) -> AggregateKey {
    AggregateKey::new(PLATFORM_TENANT, plan)
        .expect("the platform tenant and UUIDs are subject tokens")
}

impl Payments {
    /// Payments through `midtrans` (`None`: not configured, every payment
    /// is refused), timed by `clock`.
    pub fn new(
        commands: Commands,
        log: EventLog,
        db: PgPool,
        midtrans: Option<Midtrans>,
        clock: Arc<dyn Clock>,
        pricing: TopUpPricing,
    ) -> Self {
        Self {
            commands,
            log,
            db,
            midtrans,
            clock,
            pricing,
        }
    }

    /// Whether Midtrans is configured.
    pub fn configured(&self) -> bool {
        self.midtrans.is_some()
    }

    /// What points cost.
    pub fn pricing(&self) -> TopUpPricing {
        self.pricing
    }

    fn midtrans(&self) -> Result<&Midtrans, PaymentError> {
        self.midtrans.as_ref().ok_or(PaymentError::NotConfigured)
    }

    /// Opens an order and its payment page.
    ///
    /// # Errors
    /// [`PaymentError::NotConfigured`] before anything is written; a bad
    /// purchase; [`PaymentError::Gateway`] when Midtrans refused or could
    /// not be reached (the order is then failed, `checkout_failed`).
    #[tracing::instrument(skip_all, fields(%tenant))]
    pub async fn checkout(
        &self,
        tenant: TenantId,
        buyer: &Buyer,
        purchase: Purchase,
        metadata: &CommandMetadata,
    ) -> Result<(Checkout, Committed<Order>), PaymentError> {
        let midtrans = self.midtrans()?;
        let (item, amount, line) = match purchase {
            Purchase::Plan(plan_id) => {
                let plan = self
                    .commands
                    .plans
                    .load(&plan_key(plan_id))
                    .await?
                    .aggregate;
                let terms = plan.subscription_terms().map_err(|refusal| match refusal {
                    PlanError::NotDefined => PaymentError::PlanNotFound,
                    _ => PaymentError::PlanNotOnSale,
                })?;
                if plan.price() == 0 {
                    return Err(PaymentError::PlanNotOnSale);
                }
                let line = ItemDetails {
                    id: plan_id.to_string(),
                    price: plan.price(),
                    quantity: 1,
                    name: item_name(&format!(
                        "{} ({} days)",
                        terms.name,
                        terms.period_days.days()
                    )),
                };
                (OrderItem::Plan { terms }, Rupiah::new(plan.price()), line)
            }
            Purchase::TopUp(points) => {
                let pricing = self.pricing;
                let invalid = PaymentError::InvalidTopUp {
                    min: pricing.min_points,
                    max: pricing.max_points,
                };
                if !(pricing.min_points..=pricing.max_points).contains(&points.value()) {
                    return Err(invalid);
                }
                let amount = points
                    .value()
                    .checked_mul(pricing.price_per_point)
                    .ok_or(invalid)?;
                let line = ItemDetails {
                    id: "topup".to_owned(),
                    price: pricing.price_per_point,
                    quantity: points.value(),
                    name: "Top-up points".to_owned(),
                };
                (OrderItem::TopUp { points }, Rupiah::new(amount), line)
            }
        };
        let order_id = OrderId::new();
        let order_key = key(tenant, order_id);
        let at = self.clock.now();
        self.commands
            .orders
            .execute(
                &order_key,
                OrderCommand::Create {
                    order_id,
                    tenant_id: tenant,
                    item,
                    amount,
                    at,
                },
                metadata,
            )
            .await?;
        let request = SnapRequest {
            transaction_details: TransactionDetails {
                order_id: order_id.to_string(),
                gross_amount: amount.value(),
            },
            item_details: vec![line],
            customer_details: CustomerDetails {
                first_name: item_name(&buyer.name),
                email: buyer.email.clone(),
            },
            callbacks: midtrans
                .config()
                .finish_url
                .clone()
                .map(|finish| midtrans::Callbacks { finish }),
        };
        match midtrans.create_transaction(&request).await {
            Ok(page) => {
                let committed = self
                    .commands
                    .orders
                    .execute(
                        &order_key,
                        OrderCommand::OpenCheckout {
                            snap_token: page.token.clone(),
                            redirect_url: page.redirect_url.clone(),
                            at: self.clock.now(),
                        },
                        &follow_up(metadata),
                    )
                    .await?;
                info!(%order_id, %amount, "checkout opened");
                Ok((
                    Checkout {
                        order_id,
                        snap_token: page.token,
                        redirect_url: page.redirect_url,
                        amount,
                    },
                    committed,
                ))
            }
            Err(err) => {
                warn!(%order_id, error = %wablast_eventstore::report::Chain(&err), "Midtrans did not open the checkout");
                if let Err(failed) = self
                    .commands
                    .orders
                    .execute(
                        &order_key,
                        OrderCommand::FailCheckout {
                            at: self.clock.now(),
                        },
                        &follow_up(metadata),
                    )
                    .await
                {
                    warn!(%order_id, error = %wablast_eventstore::report::Chain(&failed), "cannot record the failed checkout");
                }
                Err(PaymentError::Gateway(err))
            }
        }
    }

    /// Takes a Midtrans HTTP notification: checks its signature, confirms
    /// the transaction with the status API, and brings it to the order.
    ///
    /// # Errors
    /// [`PaymentError::BadSignature`] (nothing changes),
    /// [`PaymentError::BadNotification`], [`PaymentError::OrderNotFound`],
    /// [`PaymentError::Gateway`] when the status API cannot confirm it.
    #[tracing::instrument(skip_all)]
    pub async fn notify(&self, body: &[u8]) -> Result<Outcome, PaymentError> {
        let midtrans = self.midtrans()?;
        let notification: Notification = serde_json::from_slice(body)
            .map_err(|e| PaymentError::BadNotification(e.to_string()))?;
        if !midtrans.verify(&notification) {
            return Err(PaymentError::BadSignature);
        }
        let order_id: OrderId = notification
            .order_id
            .parse()
            .map_err(|_| PaymentError::OrderNotFound)?;
        let tenant = self
            .tenant_of(order_id)
            .await?
            .ok_or(PaymentError::OrderNotFound)?;
        self.check(tenant, order_id).await
    }

    /// Whose order this is: from the `orders` table, waiting (a little)
    /// for it to catch up with the log when the order is not there yet
    /// (a notification right after the checkout).
    async fn tenant_of(&self, order_id: OrderId) -> Result<Option<TenantId>, PaymentError> {
        if let Some(tenant) = orders::tenant_of(&self.db, order_id).await? {
            return Ok(Some(tenant));
        }
        let end = crate::layout::end_of_stream(&self.log, Order::TYPE).await?;
        wablast_projections::wait::until_projected(
            &self.db,
            &["orders"],
            end,
            Duration::from_secs(5),
        )
        .await
        .map_err(|err| PaymentError::Log(wablast_eventstore::report::Chain(&err).to_string()))?;
        Ok(orders::tenant_of(&self.db, order_id).await?)
    }

    /// Looks the order's transaction up at Midtrans and brings it to the
    /// order, then settles the order.
    pub async fn check(
        &self,
        tenant: TenantId,
        order_id: OrderId,
    ) -> Result<Outcome, PaymentError> {
        let midtrans = self.midtrans()?;
        let order_key = key(tenant, order_id);
        let order = self.commands.orders.load(&order_key).await?.aggregate;
        if order.item().is_none() {
            return Err(PaymentError::OrderNotFound);
        }
        let Some(transaction) = midtrans.status(&order_id.to_string()).await? else {
            self.settle(tenant, order_id).await?;
            return Ok(Outcome::Unknown);
        };
        if transaction.order_id != order_id.to_string() {
            return Err(MidtransError::Unreadable(format!(
                "the status of order {order_id} names order {}",
                transaction.order_id
            ))
            .into());
        }
        let reported = transaction.amount().ok_or_else(|| {
            MidtransError::Unreadable(format!("gross_amount {:?}", transaction.gross_amount))
        })?;
        let report = transaction.report().ok_or_else(|| {
            MidtransError::Unreadable(format!("refund amount of order {order_id}"))
        })?;
        let metadata = CommandMetadata::new(Actor::System);
        self.commands
            .orders
            .execute(
                &order_key,
                OrderCommand::ReportPayment {
                    transaction_id: transaction.transaction_id.clone(),
                    report: report.clone(),
                    gross_amount: reported,
                    paid_at: transaction.paid_at(),
                    at: self.clock.now(),
                },
                &metadata,
            )
            .await?;
        if reported != order.amount() {
            warn!(%order_id, expected = %order.amount(), %reported, "Midtrans reports another amount: refused");
            return Ok(Outcome::AmountMismatch {
                expected: order.amount(),
                reported,
            });
        }
        let status = self.settle(tenant, order_id).await?;
        info!(%order_id, ?report, %status, "payment checked");
        Ok(Outcome::Applied(status))
    }

    /// Credits the wallet for a paid order not credited yet, and takes
    /// back the points of a refund not taken back yet.
    ///
    /// # Returns
    /// The order's status.
    pub async fn settle(
        &self,
        tenant: TenantId,
        order_id: OrderId,
    ) -> Result<OrderStatus, PaymentError> {
        let order_key = key(tenant, order_id);
        let wallet_key = tenant_key(tenant);
        let metadata = CommandMetadata::new(Actor::System);
        let mut order = self.commands.orders.load(&order_key).await?.aggregate;
        if order.needs_credit() {
            let reference = credit_reference(order_id);
            let at = self.clock.now();
            let command = match order.item() {
                Some(OrderItem::Plan { terms }) => WalletCommand::Subscribe {
                    terms: terms.clone(),
                    reference,
                    at,
                },
                Some(OrderItem::TopUp { points }) => WalletCommand::TopUp {
                    points: *points,
                    reference,
                    at,
                },
                None => return Err(PaymentError::OrderNotFound),
            };
            self.commands
                .wallets
                .execute(&wallet_key, command, &metadata)
                .await?;
            self.commands
                .orders
                .execute(
                    &order_key,
                    OrderCommand::RecordCredit { at },
                    &follow_up(&metadata),
                )
                .await?;
            info!(%order_id, %tenant, "wallet credited for the order");
            order = self.commands.orders.load(&order_key).await?.aggregate;
        }
        if let Some((refunded, points)) = order.pending_take_back() {
            let reference = take_back_reference(order_id, refunded);
            let at = self.clock.now();
            let (taken, owed) = if points == Points::ZERO {
                (Points::ZERO, Points::ZERO)
            } else {
                self.commands
                    .wallets
                    .execute(
                        &wallet_key,
                        WalletCommand::TakeBack {
                            points,
                            reference: reference.clone(),
                            at,
                        },
                        &follow_up(&metadata),
                    )
                    .await?;
                let wallet = self.commands.wallets.load(&wallet_key).await?.aggregate;
                wallet.taken_back(&reference).ok_or_else(|| {
                    PaymentError::Log(format!("take-back {reference} not recorded"))
                })?
            };
            self.commands
                .orders
                .execute(
                    &order_key,
                    OrderCommand::RecordTakeBack {
                        refunded,
                        taken,
                        owed,
                        at,
                    },
                    &follow_up(&metadata),
                )
                .await?;
            info!(%order_id, %tenant, %taken, %owed, "points taken back for a refund");
            order = self.commands.orders.load(&order_key).await?.aggregate;
        }
        Ok(order.status())
    }

    /// Looks up every order that waited `options.after` unchanged (by the
    /// clock), up to a batch.
    ///
    /// # Returns
    /// Each order looked up with what came of it.
    pub async fn recheck_due(
        &self,
        options: &RecheckOptions,
    ) -> Result<Vec<(OrderId, Result<Outcome, PaymentError>)>, PaymentError> {
        self.midtrans()?;
        let now: DateTime<Utc> = self.clock.now();
        let due = orders::unsettled(
            &self.db,
            now - options.after,
            now - options.for_at_most,
            BATCH,
        )
        .await?;
        let mut outcomes = Vec::with_capacity(due.len());
        for (tenant, order_id) in due {
            let outcome = self.check(tenant, order_id).await;
            if let Err(err) = &outcome {
                warn!(%order_id, error = %wablast_eventstore::report::Chain(err), "cannot re-check the order");
            }
            outcomes.push((order_id, outcome));
        }
        Ok(outcomes)
    }

    /// Re-checks the waiting orders every `options.every` until
    /// `shutdown`, in one process of the fleet at a time (the holder of
    /// [`RECHECK_LOCK`]; the others stand by and take over when it goes).
    pub async fn run(self, options: RecheckOptions, shutdown: CancellationToken) {
        if !self.configured() {
            return;
        }
        crate::leadership::keep_leading("pending-order re-check", options.every, &shutdown, || {
            self.lead_rechecks(&options, &shutdown)
        })
        .await;
    }

    /// Re-checks while it holds the lock; `Ok` when another process has it
    /// (or at `shutdown`).
    async fn lead_rechecks(
        &self,
        options: &RecheckOptions,
        shutdown: &CancellationToken,
    ) -> Result<(), sqlx::Error> {
        use sqlx::Connection as _;

        let Some(mut leadership) = crate::leadership::try_lead(&self.db, RECHECK_LOCK).await?
        else {
            tracing::debug!("another process re-checks the waiting orders; standing by");
            return Ok(());
        };
        info!("re-checking the waiting orders");
        let mut tick = tokio::time::interval(options.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                _ = tick.tick() => {}
            }
            // Still the leader? A lost connection released the lock.
            leadership.ping().await?;
            if let Err(err) = self.recheck_due(options).await {
                warn!(error = %wablast_eventstore::report::Chain(&err), "cannot re-check the waiting orders");
            }
        }
    }
}

/// The advisory lock of the one process that re-checks waiting orders.
pub const RECHECK_LOCK: &str = "wablast pending-order re-check";

/// A name as Midtrans keeps it: 50 characters at most.
fn item_name(name: &str) -> String {
    name.chars().take(50).collect()
}
