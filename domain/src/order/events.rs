//! What happened to an order, and the values it is made of.

use std::fmt;

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::plan::PlanTerms;
use crate::types::{OrderId, Points, TenantId};

/// An amount of Indonesian rupiah (IDR has no minor unit in use: whole
/// rupiah).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct Rupiah(u64);

impl Rupiah {
    /// Nothing.
    pub const ZERO: Self = Self(0);

    /// An amount.
    pub const fn new(rupiah: u64) -> Self {
        Self(rupiah)
    }

    /// The amount as a number.
    pub const fn value(self) -> u64 {
        self.0
    }

    /// Parses an amount as the payment gateway writes it (`"150000.00"`,
    /// `"150000"`): whole rupiah only (a fraction that is not zero is
    /// refused).
    pub fn parse_decimal(text: &str) -> Option<Self> {
        let text = text.trim();
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, fraction),
            None => (text, ""),
        };
        if whole.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b == b'0')
        {
            return None;
        }
        whole.parse().ok().map(Self)
    }

    /// As the payment gateway's signature writes it: `"150000.00"`.
    pub fn to_decimal(self) -> String {
        format!("{}.00", self.0)
    }
}

impl fmt::Display for Rupiah {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Rp 1.500.000: Indonesian thousands separators.
        let digits = self.0.to_string();
        let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, digit) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push('.');
            }
            grouped.push(digit);
        }
        write!(f, "Rp {grouped}")
    }
}

/// What an order buys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderItem {
    /// A plan (or its renewal), on the terms it had when ordered.
    Plan {
        /// The plan's terms when ordered.
        terms: PlanTerms,
    },
    /// Points.
    TopUp {
        /// How many.
        points: Points,
    },
}

impl OrderItem {
    /// The points the item credits.
    pub fn points(&self) -> Points {
        match self {
            Self::Plan { terms } => terms.points,
            Self::TopUp { points } => *points,
        }
    }
}

/// Where an order is.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Created; no payment page yet, or the customer has not chosen how to
    /// pay.
    #[default]
    Created,
    /// The customer chose how to pay and has not paid yet.
    Pending,
    /// Paid.
    Paid,
    /// Not paid, and it will not be ([`FailureReason`]).
    Failed,
    /// Part of the payment was given back.
    PartiallyRefunded,
    /// The whole payment was given back.
    Refunded,
}

impl OrderStatus {
    /// Every status.
    pub const ALL: [Self; 6] = [
        Self::Created,
        Self::Pending,
        Self::Paid,
        Self::Failed,
        Self::PartiallyRefunded,
        Self::Refunded,
    ];

    /// As the API names it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Pending => "pending",
            Self::Paid => "paid",
            Self::Failed => "failed",
            Self::PartiallyRefunded => "partially_refunded",
            Self::Refunded => "refunded",
        }
    }

    /// The status of an API name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether it was paid (refunded or not).
    pub const fn was_paid(self) -> bool {
        matches!(self, Self::Paid | Self::PartiallyRefunded | Self::Refunded)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an order failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// The gateway (or its fraud check) denied the payment (`deny`).
    Denied,
    /// The payment was cancelled (`cancel`).
    Cancelled,
    /// The customer did not pay in time (`expire`).
    Expired,
    /// The payment failed (`failure`).
    Failed,
    /// The gateway could not open a payment page for it.
    CheckoutFailed,
}

impl FailureReason {
    /// As the API names it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Denied => "denied",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
            Self::Failed => "failed",
            Self::CheckoutFailed => "checkout_failed",
        }
    }
}

/// An event of the order aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum OrderEvent {
    /// An order was created.
    OrderCreated {
        /// The order.
        order_id: OrderId,
        /// Who buys.
        tenant_id: TenantId,
        /// What.
        item: OrderItem,
        /// For how much.
        amount: Rupiah,
        /// When.
        at: DateTime<Utc>,
    },
    /// The gateway opened a payment page for it.
    CheckoutOpened {
        /// The gateway's token of the page.
        snap_token: String,
        /// Where the customer pays.
        redirect_url: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The customer chose how to pay and has not paid yet.
    OrderPending {
        /// The gateway's transaction.
        transaction_id: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The order was paid.
    OrderPaid {
        /// The gateway's transaction.
        transaction_id: String,
        /// The amount paid (the order's).
        amount: Rupiah,
        /// When it was paid.
        paid_at: DateTime<Utc>,
        /// When it was recorded.
        at: DateTime<Utc>,
    },
    /// The order will not be paid.
    OrderFailed {
        /// Why.
        reason: FailureReason,
        /// The gateway's transaction, if there was one.
        transaction_id: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The gateway reported a transaction of another amount than the
    /// order's: refused, nothing credited.
    PaymentAmountMismatched {
        /// The gateway's transaction.
        transaction_id: String,
        /// The order's amount.
        expected: Rupiah,
        /// The amount reported.
        reported: Rupiah,
        /// When.
        at: DateTime<Utc>,
    },
    /// The wallet was credited for the paid order.
    OrderCredited {
        /// The wallet's reference of the credit.
        reference: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// (Part of) the payment was given back.
    OrderRefunded {
        /// The total refunded now.
        refunded: Rupiah,
        /// Whether that is the whole amount.
        full: bool,
        /// The points this refund takes back from the wallet (the item's
        /// points in proportion to what it gave back).
        points_back: Points,
        /// When.
        at: DateTime<Utc>,
    },
    /// What the wallet took back for a refund.
    TakeBackRecorded {
        /// The refunded total of the refund it is for.
        refunded: Rupiah,
        /// Points taken back.
        taken: Points,
        /// Points owed (spent before the refund).
        owed: Points,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for OrderEvent {
    fn event_type(&self) -> String {
        match self {
            Self::OrderCreated { .. } => "OrderCreated",
            Self::CheckoutOpened { .. } => "CheckoutOpened",
            Self::OrderPending { .. } => "OrderPending",
            Self::OrderPaid { .. } => "OrderPaid",
            Self::OrderFailed { .. } => "OrderFailed",
            Self::PaymentAmountMismatched { .. } => "PaymentAmountMismatched",
            Self::OrderCredited { .. } => "OrderCredited",
            Self::OrderRefunded { .. } => "OrderRefunded",
            Self::TakeBackRecorded { .. } => "TakeBackRecorded",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rupiah_parse_as_the_gateway_writes_them() {
        assert_eq!(
            Rupiah::parse_decimal("150000.00"),
            Some(Rupiah::new(150_000))
        );
        assert_eq!(Rupiah::parse_decimal("150000"), Some(Rupiah::new(150_000)));
        assert_eq!(Rupiah::parse_decimal("150000.50"), None);
        assert_eq!(Rupiah::parse_decimal("-1"), None);
        assert_eq!(Rupiah::parse_decimal(".00"), None);
        assert_eq!(Rupiah::new(150_000).to_decimal(), "150000.00");
        assert_eq!(Rupiah::new(1_500_000).to_string(), "Rp 1.500.000");
        assert_eq!(Rupiah::new(500).to_string(), "Rp 500");
    }
}
