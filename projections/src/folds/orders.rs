//! `orders`: what tenants bought through the payment gateway.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;
use wablast_domain::order::{Order, OrderEvent, OrderItem, OrderStatus};
use wablast_eventstore::RecordedEvent;

use super::{decode, id_of, missing_row, tenant_of};
use crate::rows::{Row, RowSet};
use crate::{LogStream, Projection, ProjectionError};

const NAME: &str = "orders";

/// The `orders` projection.
pub(crate) struct Orders;

/// A row of `orders`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct OrderRow {
    order_id: Uuid,
    tenant_id: Uuid,
    item_kind: String,
    plan_id: Option<Uuid>,
    plan_name: Option<String>,
    plan_period_days: Option<i32>,
    points: i64,
    amount: i64,
    status: String,
    failure_reason: Option<String>,
    transaction_id: Option<String>,
    snap_token: Option<String>,
    redirect_url: Option<String>,
    paid_at: Option<DateTime<Utc>>,
    credited_at: Option<DateTime<Utc>>,
    refunded_amount: i64,
    points_taken_back: i64,
    points_owed: i64,
    amount_mismatches: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Row for OrderRow {
    const TABLE: &'static str = "orders";
    const KEY: &'static str = "order_id";
    const COLUMNS: &'static [&'static str] = &[
        "order_id",
        "tenant_id",
        "item_kind",
        "plan_id",
        "plan_name",
        "plan_period_days",
        "points",
        "amount",
        "status",
        "failure_reason",
        "transaction_id",
        "snap_token",
        "redirect_url",
        "paid_at",
        "credited_at",
        "refunded_amount",
        "points_taken_back",
        "points_owed",
        "amount_mismatches",
        "created_at",
        "updated_at",
    ];

    fn key(&self) -> Uuid {
        self.order_id
    }
}

fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl Projection for Orders {
    fn name(&self) -> &'static str {
        NAME
    }

    fn streams(&self) -> &'static [LogStream] {
        &[LogStream::Events]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Order::TYPE])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["orders"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        _stream: LogStream,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut orders = RowSet::<OrderRow>::default();
        let ids = events
            .iter()
            .map(|e| id_of(NAME, e))
            .collect::<Result<Vec<_>, _>>()?;
        orders.load(conn, ids).await?;

        for event in events {
            let id = id_of(NAME, event)?;
            let decoded: OrderEvent = decode(NAME, event)?;
            if let OrderEvent::OrderCreated {
                item, amount, at, ..
            } = &decoded
            {
                let (item_kind, plan_id, plan_name, plan_period_days) = match item {
                    OrderItem::Plan { terms } => (
                        "plan",
                        Some(*terms.plan_id.as_uuid()),
                        Some(terms.name.clone()),
                        Some(terms.period_days.days() as i32),
                    ),
                    OrderItem::TopUp { .. } => ("top_up", None, None, None),
                };
                orders.put(OrderRow {
                    order_id: id,
                    tenant_id: tenant_of(NAME, event)?,
                    item_kind: item_kind.to_owned(),
                    plan_id,
                    plan_name,
                    plan_period_days,
                    points: big(item.points().value()),
                    amount: big(amount.value()),
                    status: OrderStatus::Created.as_str().to_owned(),
                    failure_reason: None,
                    transaction_id: None,
                    snap_token: None,
                    redirect_url: None,
                    paid_at: None,
                    credited_at: None,
                    refunded_amount: 0,
                    points_taken_back: 0,
                    points_owed: 0,
                    amount_mismatches: 0,
                    created_at: *at,
                    updated_at: *at,
                });
                continue;
            }
            let row = orders.get_mut(id).ok_or_else(|| missing_row(NAME, event))?;
            let at = match decoded {
                OrderEvent::OrderCreated { at, .. } => at,
                OrderEvent::CheckoutOpened {
                    snap_token,
                    redirect_url,
                    at,
                } => {
                    row.snap_token = Some(snap_token);
                    row.redirect_url = Some(redirect_url);
                    at
                }
                OrderEvent::OrderPending { transaction_id, at } => {
                    row.status = OrderStatus::Pending.as_str().to_owned();
                    row.transaction_id = Some(transaction_id);
                    at
                }
                OrderEvent::OrderPaid {
                    transaction_id,
                    paid_at,
                    at,
                    ..
                } => {
                    row.status = OrderStatus::Paid.as_str().to_owned();
                    row.transaction_id = Some(transaction_id);
                    row.paid_at = Some(paid_at);
                    row.failure_reason = None;
                    at
                }
                OrderEvent::OrderFailed {
                    reason,
                    transaction_id,
                    at,
                } => {
                    row.status = OrderStatus::Failed.as_str().to_owned();
                    row.failure_reason = Some(reason.as_str().to_owned());
                    if transaction_id.is_some() {
                        row.transaction_id = transaction_id;
                    }
                    at
                }
                OrderEvent::PaymentAmountMismatched { at, .. } => {
                    row.amount_mismatches += 1;
                    at
                }
                OrderEvent::OrderCredited { at, .. } => {
                    row.credited_at = Some(at);
                    at
                }
                OrderEvent::OrderRefunded {
                    refunded, full, at, ..
                } => {
                    row.refunded_amount = big(refunded.value());
                    row.status = if full {
                        OrderStatus::Refunded
                    } else {
                        OrderStatus::PartiallyRefunded
                    }
                    .as_str()
                    .to_owned();
                    at
                }
                OrderEvent::TakeBackRecorded {
                    taken, owed, at, ..
                } => {
                    row.points_taken_back += big(taken.value());
                    row.points_owed += big(owed.value());
                    at
                }
            };
            row.updated_at = at;
        }
        orders.flush(conn).await?;
        Ok(())
    }
}
