//! The order aggregate.
//!
//! Invariants: created once with a positive amount; paid at most once, and
//! only for its own amount; a payment is never undone by a later pending or
//! failure; refunds only grow, up to the amount; the wallet is credited
//! once per paid order and each refund's take-back is recorded once.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::{
    FailureReason, OrderCommand, OrderError, OrderEvent, OrderItem, OrderStatus, PaymentReport,
    Rupiah,
};
use crate::types::{OrderId, Points, TenantId};

/// The wallet reference of an order's credit: the wallet credits a
/// reference once, so an order is credited once.
pub fn credit_reference(order_id: OrderId) -> String {
    format!("order:{order_id}")
}

/// The wallet reference of the take-back of an order's refund that
/// brought its refunded total to `refunded`.
pub fn take_back_reference(order_id: OrderId, refunded: Rupiah) -> String {
    format!("order:{order_id}:refund:{}", refunded.value())
}

/// One order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Order {
    order_id: OrderId,
    tenant_id: TenantId,
    item: Option<OrderItem>,
    amount: Rupiah,
    status: OrderStatus,
    created_at: Option<DateTime<Utc>>,
    snap_token: Option<String>,
    redirect_url: Option<String>,
    transaction_id: Option<String>,
    paid_at: Option<DateTime<Utc>>,
    failure: Option<FailureReason>,
    credited: bool,
    refunded: Rupiah,
    take_back_recorded_for: Rupiah,
    taken_back: Points,
    owed: Points,
    last_mismatch: Option<(String, Rupiah)>,
}

impl Order {
    /// The order's id.
    pub fn order_id(&self) -> OrderId {
        self.order_id
    }

    /// Who buys.
    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }

    /// What it buys (`None` before it is created).
    pub fn item(&self) -> Option<&OrderItem> {
        self.item.as_ref()
    }

    /// For how much.
    pub fn amount(&self) -> Rupiah {
        self.amount
    }

    /// Where it is.
    pub fn status(&self) -> OrderStatus {
        self.status
    }

    /// The payment page, once opened: its token and URL.
    pub fn checkout(&self) -> Option<(&str, &str)> {
        self.snap_token.as_deref().zip(self.redirect_url.as_deref())
    }

    /// The gateway's transaction, once it reported one.
    pub fn transaction_id(&self) -> Option<&str> {
        self.transaction_id.as_deref()
    }

    /// When it was paid.
    pub fn paid_at(&self) -> Option<DateTime<Utc>> {
        self.paid_at
    }

    /// Why it failed.
    pub fn failure(&self) -> Option<FailureReason> {
        self.failure
    }

    /// Whether it was paid and the wallet not credited yet.
    pub fn needs_credit(&self) -> bool {
        self.status.was_paid() && !self.credited
    }

    /// The refund whose take-back is not recorded yet, if any: the
    /// refunded total it brought and the points it takes back.
    pub fn pending_take_back(&self) -> Option<(Rupiah, Points)> {
        (self.refunded > self.take_back_recorded_for).then(|| {
            let points = self
                .points_back_for(self.refunded)
                .saturating_sub(self.points_back_for(self.take_back_recorded_for));
            (self.refunded, points)
        })
    }

    /// The points taken back and owed, in all.
    pub fn taken_back_and_owed(&self) -> (Points, Points) {
        (self.taken_back, self.owed)
    }

    /// The points refunds totalling `refunded` take back: the item's
    /// points in proportion, all of them for a full refund.
    fn points_back_for(&self, refunded: Rupiah) -> Points {
        let points = self.item.as_ref().map_or(Points::ZERO, OrderItem::points);
        if refunded >= self.amount {
            return points;
        }
        let share = u128::from(points.value()) * u128::from(refunded.value())
            / u128::from(self.amount.value().max(1));
        Points::new(u64::try_from(share).unwrap_or(u64::MAX))
    }

    fn created(&self) -> Result<(), OrderError> {
        if self.item.is_some() {
            Ok(())
        } else {
            Err(OrderError::NotCreated)
        }
    }

    async fn report(
        &mut self,
        transaction_id: String,
        report: PaymentReport,
        gross_amount: Rupiah,
        paid_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
        sink: &EventSink<Self>,
    ) -> Result<(), OrderError> {
        self.created()?;
        if gross_amount != self.amount {
            let mismatch = (transaction_id.clone(), gross_amount);
            if self.last_mismatch.as_ref() != Some(&mismatch) {
                let event = OrderEvent::PaymentAmountMismatched {
                    transaction_id,
                    expected: self.amount,
                    reported: gross_amount,
                    at,
                };
                sink.write(event, self).await;
            }
            return Ok(());
        }
        let status = self.status;
        let event = match report {
            PaymentReport::Pending if status == OrderStatus::Created => {
                Some(OrderEvent::OrderPending { transaction_id, at })
            }
            PaymentReport::Paid if !status.was_paid() => Some(OrderEvent::OrderPaid {
                transaction_id,
                amount: self.amount,
                paid_at: paid_at.unwrap_or(at),
                at,
            }),
            PaymentReport::Failed(reason)
                if matches!(status, OrderStatus::Created | OrderStatus::Pending) =>
            {
                Some(OrderEvent::OrderFailed {
                    reason,
                    transaction_id: Some(transaction_id),
                    at,
                })
            }
            PaymentReport::Refunded { refunded } => {
                if !status.was_paid() {
                    return Err(OrderError::InvalidState { status });
                }
                if refunded > self.amount {
                    return Err(OrderError::InvalidRefund {
                        refunded,
                        already: self.refunded,
                        amount: self.amount,
                    });
                }
                (refunded > self.refunded).then(|| OrderEvent::OrderRefunded {
                    refunded,
                    full: refunded == self.amount,
                    points_back: self
                        .points_back_for(refunded)
                        .saturating_sub(self.points_back_for(self.refunded)),
                    at,
                })
            }
            // Already known, or stale (a pending or failure after a
            // payment): nothing changes.
            PaymentReport::Pending | PaymentReport::Paid | PaymentReport::Failed(_) => None,
        };
        if let Some(event) = event {
            sink.write(event, self).await;
        }
        Ok(())
    }
}

impl Aggregate for Order {
    const TYPE: &'static str = "order";
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            OrderCommand::Create {
                order_id,
                tenant_id,
                item,
                amount,
                at,
            } => {
                if self.item.is_some() {
                    return Err(OrderError::AlreadyCreated);
                }
                if amount == Rupiah::ZERO || item.points() == Points::ZERO {
                    return Err(OrderError::NothingOrdered);
                }
                let event = OrderEvent::OrderCreated {
                    order_id,
                    tenant_id,
                    item,
                    amount,
                    at,
                };
                sink.write(event, self).await;
            }
            OrderCommand::OpenCheckout {
                snap_token,
                redirect_url,
                at,
            } => {
                self.created()?;
                if self.status != OrderStatus::Created || self.snap_token.is_some() {
                    return Err(OrderError::InvalidState {
                        status: self.status,
                    });
                }
                let event = OrderEvent::CheckoutOpened {
                    snap_token,
                    redirect_url,
                    at,
                };
                sink.write(event, self).await;
            }
            OrderCommand::FailCheckout { at } => {
                self.created()?;
                if self.status != OrderStatus::Created {
                    return Err(OrderError::InvalidState {
                        status: self.status,
                    });
                }
                let event = OrderEvent::OrderFailed {
                    reason: FailureReason::CheckoutFailed,
                    transaction_id: None,
                    at,
                };
                sink.write(event, self).await;
            }
            OrderCommand::ReportPayment {
                transaction_id,
                report,
                gross_amount,
                paid_at,
                at,
            } => {
                self.report(transaction_id, report, gross_amount, paid_at, at, sink)
                    .await?
            }
            OrderCommand::RecordCredit { at } => {
                self.created()?;
                if !self.status.was_paid() {
                    return Err(OrderError::InvalidState {
                        status: self.status,
                    });
                }
                if !self.credited {
                    let event = OrderEvent::OrderCredited {
                        reference: credit_reference(self.order_id),
                        at,
                    };
                    sink.write(event, self).await;
                }
            }
            OrderCommand::RecordTakeBack {
                refunded,
                taken,
                owed,
                at,
            } => {
                self.created()?;
                if refunded <= self.take_back_recorded_for {
                    return Ok(());
                }
                let Some((pending_for, points)) = self.pending_take_back() else {
                    return Err(OrderError::InvalidState {
                        status: self.status,
                    });
                };
                if refunded != pending_for {
                    return Err(OrderError::InvalidRefund {
                        refunded,
                        already: self.refunded,
                        amount: self.amount,
                    });
                }
                if taken.checked_add(owed) != Some(points) {
                    return Err(OrderError::TakeBackExceedsRefunds);
                }
                let event = OrderEvent::TakeBackRecorded {
                    refunded,
                    taken,
                    owed,
                    at,
                };
                sink.write(event, self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            OrderEvent::OrderCreated {
                order_id,
                tenant_id,
                item,
                amount,
                at,
            } => {
                self.order_id = order_id;
                self.tenant_id = tenant_id;
                self.item = Some(item);
                self.amount = amount;
                self.status = OrderStatus::Created;
                self.created_at = Some(at);
            }
            OrderEvent::CheckoutOpened {
                snap_token,
                redirect_url,
                ..
            } => {
                self.snap_token = Some(snap_token);
                self.redirect_url = Some(redirect_url);
            }
            OrderEvent::OrderPending { transaction_id, .. } => {
                self.status = OrderStatus::Pending;
                self.transaction_id = Some(transaction_id);
            }
            OrderEvent::OrderPaid {
                transaction_id,
                paid_at,
                ..
            } => {
                self.status = OrderStatus::Paid;
                self.transaction_id = Some(transaction_id);
                self.paid_at = Some(paid_at);
                self.failure = None;
            }
            OrderEvent::OrderFailed {
                reason,
                transaction_id,
                ..
            } => {
                self.status = OrderStatus::Failed;
                self.failure = Some(reason);
                if transaction_id.is_some() {
                    self.transaction_id = transaction_id;
                }
            }
            OrderEvent::PaymentAmountMismatched {
                transaction_id,
                reported,
                ..
            } => {
                self.last_mismatch = Some((transaction_id, reported));
            }
            OrderEvent::OrderCredited { .. } => {
                self.credited = true;
            }
            OrderEvent::OrderRefunded { refunded, full, .. } => {
                self.refunded = refunded;
                self.status = if full {
                    OrderStatus::Refunded
                } else {
                    OrderStatus::PartiallyRefunded
                };
            }
            OrderEvent::TakeBackRecorded {
                refunded,
                taken,
                owed,
                ..
            } => {
                self.take_back_recorded_for = refunded;
                self.taken_back = self
                    .taken_back
                    .checked_add(taken)
                    .unwrap_or(self.taken_back);
                self.owed = self.owed.checked_add(owed).unwrap_or(self.owed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use cqrs_es::test::TestFramework;
    use uuid::Uuid;

    use super::*;

    type OrderTest = TestFramework<Order>;

    fn day(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, day, 9, 0, 0).unwrap()
    }

    fn order_id() -> OrderId {
        OrderId::from_uuid(Uuid::from_u128(1))
    }

    fn top_up() -> OrderItem {
        OrderItem::TopUp {
            points: Points::new(1_000),
        }
    }

    fn created() -> OrderEvent {
        OrderEvent::OrderCreated {
            order_id: order_id(),
            tenant_id: TenantId::from_uuid(Uuid::from_u128(2)),
            item: top_up(),
            amount: Rupiah::new(100_000),
            at: day(1),
        }
    }

    fn paid() -> OrderEvent {
        OrderEvent::OrderPaid {
            transaction_id: "tx-1".to_string(),
            amount: Rupiah::new(100_000),
            paid_at: day(2),
            at: day(2),
        }
    }

    fn credited() -> OrderEvent {
        OrderEvent::OrderCredited {
            reference: credit_reference(order_id()),
            at: day(2),
        }
    }

    fn report(report: PaymentReport, amount: u64) -> OrderCommand {
        OrderCommand::ReportPayment {
            transaction_id: "tx-1".to_string(),
            report,
            gross_amount: Rupiah::new(amount),
            paid_at: Some(day(2)),
            at: day(2),
        }
    }

    #[test]
    fn an_order_is_created_once_with_a_positive_amount() {
        OrderTest::with(())
            .given_no_previous_events()
            .when(OrderCommand::Create {
                order_id: order_id(),
                tenant_id: TenantId::from_uuid(Uuid::from_u128(2)),
                item: top_up(),
                amount: Rupiah::new(100_000),
                at: day(1),
            })
            .then_expect_events(vec![created()]);
        OrderTest::with(())
            .given(vec![created()])
            .when(OrderCommand::Create {
                order_id: order_id(),
                tenant_id: TenantId::from_uuid(Uuid::from_u128(2)),
                item: top_up(),
                amount: Rupiah::new(100_000),
                at: day(1),
            })
            .then_expect_error(OrderError::AlreadyCreated);
        OrderTest::with(())
            .given_no_previous_events()
            .when(OrderCommand::Create {
                order_id: order_id(),
                tenant_id: TenantId::from_uuid(Uuid::from_u128(2)),
                item: top_up(),
                amount: Rupiah::ZERO,
                at: day(1),
            })
            .then_expect_error(OrderError::NothingOrdered);
    }

    #[test]
    fn a_settlement_of_the_order_amount_pays_it() {
        OrderTest::with(())
            .given(vec![created()])
            .when(report(PaymentReport::Paid, 100_000))
            .then_expect_events(vec![paid()]);
    }

    #[test]
    fn a_second_report_of_the_payment_changes_nothing() {
        OrderTest::with(())
            .given(vec![created(), paid()])
            .when(report(PaymentReport::Paid, 100_000))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_payment_of_another_amount_is_refused_and_recorded_once() {
        let mismatch = OrderEvent::PaymentAmountMismatched {
            transaction_id: "tx-1".to_string(),
            expected: Rupiah::new(100_000),
            reported: Rupiah::new(1_000),
            at: day(2),
        };
        OrderTest::with(())
            .given(vec![created()])
            .when(report(PaymentReport::Paid, 1_000))
            .then_expect_events(vec![mismatch.clone()]);
        OrderTest::with(())
            .given(vec![created(), mismatch])
            .when(report(PaymentReport::Paid, 1_000))
            .then_expect_events(vec![]);
    }

    #[test]
    fn pending_then_expired_fails_the_order_with_the_reason() {
        OrderTest::with(())
            .given(vec![created()])
            .when(report(PaymentReport::Pending, 100_000))
            .then_expect_events(vec![OrderEvent::OrderPending {
                transaction_id: "tx-1".to_string(),
                at: day(2),
            }]);
        OrderTest::with(())
            .given(vec![
                created(),
                OrderEvent::OrderPending {
                    transaction_id: "tx-1".to_string(),
                    at: day(2),
                },
            ])
            .when(report(
                PaymentReport::Failed(FailureReason::Expired),
                100_000,
            ))
            .then_expect_events(vec![OrderEvent::OrderFailed {
                reason: FailureReason::Expired,
                transaction_id: Some("tx-1".to_string()),
                at: day(2),
            }]);
    }

    #[test]
    fn a_failure_or_pending_after_the_payment_changes_nothing() {
        OrderTest::with(())
            .given(vec![created(), paid()])
            .when(report(
                PaymentReport::Failed(FailureReason::Denied),
                100_000,
            ))
            .then_expect_events(vec![]);
        OrderTest::with(())
            .given(vec![created(), paid()])
            .when(report(PaymentReport::Pending, 100_000))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_paid_order_is_credited_once() {
        OrderTest::with(())
            .given(vec![created(), paid()])
            .when(OrderCommand::RecordCredit { at: day(2) })
            .then_expect_events(vec![credited()]);
        OrderTest::with(())
            .given(vec![created(), paid(), credited()])
            .when(OrderCommand::RecordCredit { at: day(3) })
            .then_expect_events(vec![]);
        OrderTest::with(())
            .given(vec![created()])
            .when(OrderCommand::RecordCredit { at: day(3) })
            .then_expect_error(OrderError::InvalidState {
                status: OrderStatus::Created,
            });
    }

    #[test]
    fn a_partial_refund_takes_back_points_in_proportion() {
        OrderTest::with(())
            .given(vec![created(), paid(), credited()])
            .when(report(
                PaymentReport::Refunded {
                    refunded: Rupiah::new(25_000),
                },
                100_000,
            ))
            .then_expect_events(vec![OrderEvent::OrderRefunded {
                refunded: Rupiah::new(25_000),
                full: false,
                points_back: Points::new(250),
                at: day(2),
            }]);
    }

    #[test]
    fn the_rest_of_a_refund_takes_back_the_rest_of_the_points() {
        let partial = OrderEvent::OrderRefunded {
            refunded: Rupiah::new(33_333),
            full: false,
            points_back: Points::new(333),
            at: day(2),
        };
        let recorded = OrderEvent::TakeBackRecorded {
            refunded: Rupiah::new(33_333),
            taken: Points::new(300),
            owed: Points::new(33),
            at: day(2),
        };
        OrderTest::with(())
            .given(vec![created(), paid(), credited(), partial, recorded])
            .when(report(
                PaymentReport::Refunded {
                    refunded: Rupiah::new(100_000),
                },
                100_000,
            ))
            .then_expect_events(vec![OrderEvent::OrderRefunded {
                refunded: Rupiah::new(100_000),
                full: true,
                points_back: Points::new(667),
                at: day(2),
            }]);
    }

    #[test]
    fn refuses_a_refund_of_an_order_never_paid_or_above_its_amount() {
        OrderTest::with(())
            .given(vec![created()])
            .when(report(
                PaymentReport::Refunded {
                    refunded: Rupiah::new(1),
                },
                100_000,
            ))
            .then_expect_error(OrderError::InvalidState {
                status: OrderStatus::Created,
            });
        OrderTest::with(())
            .given(vec![created(), paid()])
            .when(report(
                PaymentReport::Refunded {
                    refunded: Rupiah::new(100_001),
                },
                100_000,
            ))
            .then_expect_error(OrderError::InvalidRefund {
                refunded: Rupiah::new(100_001),
                already: Rupiah::ZERO,
                amount: Rupiah::new(100_000),
            });
    }

    #[test]
    fn a_refund_reported_again_changes_nothing() {
        let refunded = OrderEvent::OrderRefunded {
            refunded: Rupiah::new(100_000),
            full: true,
            points_back: Points::new(1_000),
            at: day(2),
        };
        OrderTest::with(())
            .given(vec![created(), paid(), credited(), refunded])
            .when(report(
                PaymentReport::Refunded {
                    refunded: Rupiah::new(100_000),
                },
                100_000,
            ))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_take_back_is_recorded_once_and_must_add_up() {
        let refunded = OrderEvent::OrderRefunded {
            refunded: Rupiah::new(100_000),
            full: true,
            points_back: Points::new(1_000),
            at: day(3),
        };
        let recorded = OrderEvent::TakeBackRecorded {
            refunded: Rupiah::new(100_000),
            taken: Points::new(600),
            owed: Points::new(400),
            at: day(3),
        };
        OrderTest::with(())
            .given(vec![created(), paid(), credited(), refunded.clone()])
            .when(OrderCommand::RecordTakeBack {
                refunded: Rupiah::new(100_000),
                taken: Points::new(600),
                owed: Points::new(400),
                at: day(3),
            })
            .then_expect_events(vec![recorded.clone()]);
        OrderTest::with(())
            .given(vec![created(), paid(), credited(), refunded.clone()])
            .when(OrderCommand::RecordTakeBack {
                refunded: Rupiah::new(100_000),
                taken: Points::new(600),
                owed: Points::new(500),
                at: day(3),
            })
            .then_expect_error(OrderError::TakeBackExceedsRefunds);
        OrderTest::with(())
            .given(vec![created(), paid(), credited(), refunded, recorded])
            .when(OrderCommand::RecordTakeBack {
                refunded: Rupiah::new(100_000),
                taken: Points::new(600),
                owed: Points::new(400),
                at: day(4),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_checkout_that_could_not_open_fails_the_order() {
        OrderTest::with(())
            .given(vec![created()])
            .when(OrderCommand::FailCheckout { at: day(1) })
            .then_expect_events(vec![OrderEvent::OrderFailed {
                reason: FailureReason::CheckoutFailed,
                transaction_id: None,
                at: day(1),
            }]);
    }

    #[test]
    fn a_report_for_an_order_that_does_not_exist_is_refused() {
        OrderTest::with(())
            .given_no_previous_events()
            .when(report(PaymentReport::Paid, 100_000))
            .then_expect_error(OrderError::NotCreated);
    }
}
