//! What may be asked of a plan (platform admins only).

use chrono::{DateTime, Utc};

use super::PlanPeriod;
use crate::types::{DailyLimit, PlanId, Points};

/// A command to the plan aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanCommand {
    /// Put a plan on offer. Defaults (applied by the caller when the admin
    /// leaves them out): `max_recipients_per_campaign`
    /// [`PlanTerms::DEFAULT_MAX_RECIPIENTS_PER_CAMPAIGN`](super::PlanTerms::DEFAULT_MAX_RECIPIENTS_PER_CAMPAIGN),
    /// `max_daily_limit`
    /// [`PlanTerms::default_max_daily_limit`](super::PlanTerms::default_max_daily_limit).
    DefinePlan {
        /// The plan's id (the aggregate's id).
        plan_id: PlanId,
        /// What the plan is called (1 to [`MAX_NAME_CHARS`](super::MAX_NAME_CHARS)
        /// characters once trimmed).
        name: String,
        /// How long one subscription runs.
        period_days: PlanPeriod,
        /// The points allocated on each subscription (at least 1).
        points: Points,
        /// How many sessions a subscriber may have (at least 1).
        max_sessions: u32,
        /// How many recipients one campaign may have (at least 1).
        max_recipients_per_campaign: u32,
        /// The highest daily limit any one session may be given.
        max_daily_limit: DailyLimit,
        /// The price of one subscription, an integer in the smallest unit
        /// of the platform's currency (rupiah for IDR).
        price: u64,
        /// When.
        at: DateTime<Utc>,
    },
    /// Take the plan off offer: no new subscriptions; subscriptions already
    /// running keep their terms until they run out.
    RetirePlan {
        /// When.
        at: DateTime<Utc>,
    },
}
