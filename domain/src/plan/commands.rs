//! What may be asked of a plan (platform admins only).

use chrono::{DateTime, Utc};

use super::{PlanFeatures, PlanPeriod};
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
        /// What the plan includes.
        features: PlanFeatures,
        /// Days sending goes on after a period ends (0 to
        /// [`MAX_GRACE_DAYS`](super::MAX_GRACE_DAYS)).
        grace_days: u32,
        /// Whether tenants may buy it (`GET /plans` lists it).
        on_sale: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// Change the plan: a new version. Subscriptions running keep the terms
    /// they were bought with until they renew; new subscriptions and
    /// renewals get the new ones. Nothing changed: nothing recorded.
    EditPlan {
        /// What changes (`None`: stays).
        changes: PlanChanges,
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

/// What an edit changes; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanChanges {
    /// A new name.
    pub name: Option<String>,
    /// A new period.
    pub period_days: Option<PlanPeriod>,
    /// New points per subscription.
    pub points: Option<Points>,
    /// New sessions cap.
    pub max_sessions: Option<u32>,
    /// New recipients-per-campaign cap.
    pub max_recipients_per_campaign: Option<u32>,
    /// New highest daily limit.
    pub max_daily_limit: Option<DailyLimit>,
    /// New price.
    pub price: Option<u64>,
    /// New features.
    pub features: Option<PlanFeatures>,
    /// New grace period.
    pub grace_days: Option<u32>,
    /// On sale or not.
    pub on_sale: Option<bool>,
}
