//! Why the plan aggregate refuses a command.

use crate::RefusalCode;
use crate::types::PlanId;

/// A refusal of the plan aggregate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A period other than 15 or 30 days.
    #[error("a plan runs 15 or 30 days, got {got}")]
    InvalidPeriod {
        /// The number of days refused.
        got: u64,
    },
    /// A blank name, or one longer than [`MAX_NAME_CHARS`](super::MAX_NAME_CHARS).
    #[error("a plan's name must be 1 to {} characters", super::MAX_NAME_CHARS)]
    InvalidName,
    /// A plan that allocates no points.
    #[error("a plan must allocate at least 1 point")]
    NoPoints,
    /// A plan that allows no session.
    #[error("a plan must allow at least 1 session")]
    NoSessions,
    /// A plan that allows no recipient per campaign.
    #[error("a plan must allow at least 1 recipient per campaign")]
    NoRecipients,
    /// A grace period longer than [`MAX_GRACE_DAYS`](super::MAX_GRACE_DAYS).
    #[error("a plan's grace period is 0 to {} days", super::MAX_GRACE_DAYS)]
    InvalidGrace,
    /// The plan is not on sale: tenants may not buy it (an admin may still
    /// grant it).
    #[error("plan {plan_id} is not on sale")]
    NotOnSale {
        /// The plan.
        plan_id: PlanId,
    },
    /// The plan is already defined (plans are defined once).
    #[error("plan {plan_id} is already defined")]
    AlreadyDefined {
        /// The plan.
        plan_id: PlanId,
    },
    /// No plan has this id.
    #[error("no such plan")]
    NotDefined,
    /// The plan is retired: nobody may subscribe to it any more.
    #[error("plan {plan_id} is retired")]
    Retired {
        /// The plan.
        plan_id: PlanId,
    },
}

impl PlanError {
    /// The stable code the API answers with (the `code` of its error body).
    pub fn code(&self) -> RefusalCode {
        match self {
            Self::InvalidPeriod { .. }
            | Self::InvalidName
            | Self::NoPoints
            | Self::NoSessions
            | Self::NoRecipients
            | Self::InvalidGrace => RefusalCode::ValidationFailed,
            Self::AlreadyDefined { .. } | Self::Retired { .. } | Self::NotOnSale { .. } => {
                RefusalCode::InvalidState
            }
            Self::NotDefined => RefusalCode::NotFound,
        }
    }
}
