//! Why the order aggregate refuses a command.

use crate::RefusalCode;

use super::{OrderStatus, Rupiah};

/// A refusal of the order aggregate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// The order was created already.
    #[error("the order exists already")]
    AlreadyCreated,
    /// No such order.
    #[error("no such order")]
    NotCreated,
    /// An order of nothing (no amount, or a top-up of no points).
    #[error("an order needs a positive amount and item")]
    NothingOrdered,
    /// Not in a state that allows it.
    #[error("the order is {status}")]
    InvalidState {
        /// Its status.
        status: OrderStatus,
    },
    /// A refund of more than was paid, or less than already refunded.
    #[error("a refund of {refunded} does not fit an order of {amount} refunded {already} so far")]
    InvalidRefund {
        /// The refunded total reported.
        refunded: Rupiah,
        /// What was already refunded.
        already: Rupiah,
        /// The order's amount.
        amount: Rupiah,
    },
    /// More points recorded as taken back and owed than the refunds take
    /// back.
    #[error("more points recorded back than the refunds take back")]
    TakeBackExceedsRefunds,
}

impl OrderError {
    /// The stable code the API answers with.
    pub fn code(&self) -> RefusalCode {
        match self {
            Self::NotCreated => RefusalCode::NotFound,
            Self::NothingOrdered | Self::InvalidRefund { .. } => RefusalCode::ValidationFailed,
            Self::AlreadyCreated => RefusalCode::Conflict,
            Self::InvalidState { .. } | Self::TakeBackExceedsRefunds => RefusalCode::InvalidState,
        }
    }
}
