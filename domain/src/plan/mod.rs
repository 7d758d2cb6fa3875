//! Plans: the subscriptions on offer, platform-wide (aggregate type
//! `plan`, one aggregate per plan). A plan runs 15 or 30 days, allocates
//! points on each subscription and caps what a subscriber may do (sessions,
//! recipients per campaign, daily limit per session).
//!
//! A wallet does not read the plan aggregate when it runs: it keeps a
//! [`PlanTerms`] snapshot taken when it subscribes, which the caller gets
//! from [`Plan::subscription_terms`] (refused for retired and unknown
//! plans). Retiring a plan therefore stops new subscriptions only.

mod aggregate;
mod commands;
mod error;
mod events;
mod terms;

pub use aggregate::Plan;
pub use commands::{PlanChanges, PlanCommand};
pub use error::PlanError;
pub use events::PlanEvent;
pub use terms::{FeatureNotInPlan, PlanFeature, PlanFeatures, PlanPeriod, PlanTerms};

/// The longest grace period a plan may give, in days.
pub const MAX_GRACE_DAYS: u32 = 14;

/// The longest plan name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
