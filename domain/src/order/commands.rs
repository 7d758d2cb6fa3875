//! What may be asked of an order.

use chrono::{DateTime, Utc};

use crate::types::{OrderId, Points, TenantId};

use super::{FailureReason, OrderItem, Rupiah};

/// What the payment gateway says of an order's transaction, as confirmed
/// with it (its status API), mapped to what it means for the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentReport {
    /// Waiting for the customer to pay.
    Pending,
    /// Paid (settled, or captured and accepted by the fraud check).
    Paid,
    /// Not paid, and it will not be.
    Failed(FailureReason),
    /// Refunded, `refunded` in all so far.
    Refunded {
        /// The total refunded so far.
        refunded: Rupiah,
    },
}

/// A command to the order aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderCommand {
    /// Create the order.
    Create {
        /// Its id (the aggregate's id; the gateway's `order_id`).
        order_id: OrderId,
        /// Who buys.
        tenant_id: TenantId,
        /// What.
        item: OrderItem,
        /// For how much (positive).
        amount: Rupiah,
        /// When.
        at: DateTime<Utc>,
    },
    /// The gateway opened a payment page for it.
    OpenCheckout {
        /// The gateway's token of the payment page.
        snap_token: String,
        /// Where the customer pays.
        redirect_url: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The gateway could not open a payment page: the order will never be
    /// paid.
    FailCheckout {
        /// When.
        at: DateTime<Utc>,
    },
    /// Record what the gateway says of the order's transaction.
    ReportPayment {
        /// The gateway's transaction id.
        transaction_id: String,
        /// What it means.
        report: PaymentReport,
        /// The transaction's amount as the gateway states it.
        gross_amount: Rupiah,
        /// When the gateway says it was paid (settlement time), if it did.
        paid_at: Option<DateTime<Utc>>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Record that the wallet was credited for the paid order.
    RecordCredit {
        /// When.
        at: DateTime<Utc>,
    },
    /// Record what the wallet took back for the refund that brought the
    /// refunded total to `refunded`: `taken` points, and `owed` the rest
    /// (already spent). Recorded once per refund.
    RecordTakeBack {
        /// The refunded total of the refund it is for.
        refunded: Rupiah,
        /// Points the wallet took back.
        taken: Points,
        /// Points it could not take back (spent): owed.
        owed: Points,
        /// When.
        at: DateTime<Utc>,
    },
}
