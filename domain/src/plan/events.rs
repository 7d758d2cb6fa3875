//! What happened to a plan.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::PlanPeriod;
use crate::types::{DailyLimit, PlanId, Points};

/// An event of the plan aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum PlanEvent {
    /// A plan was put on offer.
    PlanDefined {
        /// The plan.
        plan_id: PlanId,
        /// Its name (trimmed).
        name: String,
        /// How long one subscription runs.
        period_days: PlanPeriod,
        /// The points allocated on each subscription.
        points: Points,
        /// How many sessions a subscriber may have.
        max_sessions: u32,
        /// How many recipients one campaign may have.
        max_recipients_per_campaign: u32,
        /// The highest daily limit any one session may be given.
        max_daily_limit: DailyLimit,
        /// The price of one subscription, in the smallest currency unit.
        price: u64,
        /// When.
        at: DateTime<Utc>,
    },
    /// A plan was taken off offer.
    PlanRetired {
        /// The plan.
        plan_id: PlanId,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for PlanEvent {
    fn event_type(&self) -> String {
        match self {
            Self::PlanDefined { .. } => "PlanDefined",
            Self::PlanRetired { .. } => "PlanRetired",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}
