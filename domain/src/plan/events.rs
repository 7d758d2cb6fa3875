//! What happened to a plan.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::{PlanFeatures, PlanPeriod};
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
        /// What it includes (everything for plans defined before features).
        #[serde(default)]
        features: PlanFeatures,
        /// Days of grace after a period (0 before grace periods existed).
        #[serde(default)]
        grace_days: u32,
        /// Whether tenants may buy it (plans defined before were).
        #[serde(default = "on_sale_by_default")]
        on_sale: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// A plan was changed: its version `version`, with every term as it
    /// now stands (derived facts: a read model copies them).
    PlanEdited {
        /// The plan.
        plan_id: PlanId,
        /// The new version (2 for the first edit).
        version: u32,
        /// Its name.
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
        /// The price of one subscription.
        price: u64,
        /// What it includes.
        features: PlanFeatures,
        /// Days of grace after a period.
        grace_days: u32,
        /// Whether tenants may buy it.
        on_sale: bool,
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
            Self::PlanEdited { .. } => "PlanEdited",
            Self::PlanRetired { .. } => "PlanRetired",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

fn on_sale_by_default() -> bool {
    true
}
