//! What a plan offers: its period and the terms a wallet keeps when it
//! subscribes.

use std::fmt;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use super::error::PlanError;
use crate::types::{DailyLimit, PlanId, Points};

/// How long one subscription to a plan runs: 15 or 30 days. Serialized as
/// the number of days (`15`, `30`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub enum PlanPeriod {
    /// A 15-day plan.
    Days15,
    /// A 30-day plan.
    Days30,
}

impl PlanPeriod {
    /// Parses a period given in days: 15 or 30.
    pub fn parse(days: u64) -> Result<Self, PlanError> {
        match days {
            15 => Ok(Self::Days15),
            30 => Ok(Self::Days30),
            got => Err(PlanError::InvalidPeriod { got }),
        }
    }

    /// The period in days.
    pub const fn days(self) -> u32 {
        match self {
            Self::Days15 => 15,
            Self::Days30 => 30,
        }
    }

    /// The period as a duration.
    pub fn duration(self) -> TimeDelta {
        TimeDelta::days(i64::from(self.days()))
    }
}

impl TryFrom<u32> for PlanPeriod {
    type Error = PlanError;

    fn try_from(days: u32) -> Result<Self, Self::Error> {
        Self::parse(u64::from(days))
    }
}

impl From<PlanPeriod> for u32 {
    fn from(period: PlanPeriod) -> Self {
        period.days()
    }
}

impl fmt::Display for PlanPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} days", self.days())
    }
}

/// The terms of a plan as a wallet keeps them when it subscribes: a
/// snapshot, so a plan retired or redefined later changes nothing for
/// subscriptions already running. Get them from
/// [`Plan::subscription_terms`](super::Plan::subscription_terms), which
/// refuses retired and unknown plans.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlanTerms {
    /// The plan subscribed to.
    pub plan_id: PlanId,
    /// Its name when subscribed.
    pub name: String,
    /// How long one subscription runs.
    pub period_days: PlanPeriod,
    /// The points allocated on each subscription.
    pub points: Points,
    /// How many sessions (WhatsApp numbers) the tenant may have.
    pub max_sessions: u32,
    /// How many recipients one campaign may have.
    pub max_recipients_per_campaign: u32,
    /// The highest daily limit any one session may be given.
    pub max_daily_limit: DailyLimit,
    /// What the plan includes (auto-replies, webhooks, official mode).
    /// Terms recorded before plans had features included everything.
    #[serde(default)]
    pub features: PlanFeatures,
    /// Days sending goes on after the period ends (0: none), before the
    /// plan expires.
    #[serde(default)]
    pub grace_days: u32,
    /// The plan's version these terms are of (1 when defined; each edit
    /// adds one). Terms recorded before plans had versions are version 1.
    #[serde(default = "first_version")]
    pub version: u32,
}

fn first_version() -> u32 {
    1
}

/// What a plan includes beyond points and limits. Each is enforced where
/// it applies: an auto-reply rule, a webhook subscription, a session on the
/// official Cloud API driver are refused (`feature_not_in_plan`) to a
/// tenant whose plan lacks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlanFeatures {
    /// Auto-reply rules.
    pub auto_replies: bool,
    /// Webhook subscriptions.
    pub webhooks: bool,
    /// Sessions on the official WhatsApp Business Cloud API.
    pub official_mode: bool,
}

impl Default for PlanFeatures {
    /// Everything: what plans included before they had features.
    fn default() -> Self {
        Self {
            auto_replies: true,
            webhooks: true,
            official_mode: true,
        }
    }
}

/// One feature a plan may include.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanFeature {
    /// Auto-reply rules.
    AutoReplies,
    /// Webhook subscriptions.
    Webhooks,
    /// The official WhatsApp Business Cloud API driver.
    OfficialMode,
}

impl PlanFeature {
    /// The feature as the API names it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AutoReplies => "auto_replies",
            Self::Webhooks => "webhooks",
            Self::OfficialMode => "official_mode",
        }
    }
}

impl fmt::Display for PlanFeature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PlanFeatures {
    /// Whether `feature` is included.
    pub const fn includes(self, feature: PlanFeature) -> bool {
        match feature {
            PlanFeature::AutoReplies => self.auto_replies,
            PlanFeature::Webhooks => self.webhooks,
            PlanFeature::OfficialMode => self.official_mode,
        }
    }
}

impl PlanTerms {
    /// The recipient cap of a plan defined without one (seeds: 200).
    pub const DEFAULT_MAX_RECIPIENTS_PER_CAMPAIGN: u32 = 200;

    /// The per-session daily limit cap of a plan defined without one
    /// (seeds: 500).
    pub fn default_max_daily_limit() -> DailyLimit {
        DailyLimit::parse(500).expect("500 is within 1..=DailyLimit::MAX")
    }

    /// Refused with [`FeatureNotInPlan`] unless the terms include `feature`.
    pub fn require(&self, feature: PlanFeature) -> Result<(), FeatureNotInPlan> {
        if self.features.includes(feature) {
            Ok(())
        } else {
            Err(FeatureNotInPlan {
                feature,
                plan_id: self.plan_id,
            })
        }
    }
}

/// A feature the tenant's plan does not include (code
/// `feature_not_in_plan`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the plan does not include {feature}")]
pub struct FeatureNotInPlan {
    /// The feature asked for.
    pub feature: PlanFeature,
    /// The tenant's plan.
    pub plan_id: PlanId,
}

impl FeatureNotInPlan {
    /// The stable code the API answers with.
    pub fn code(&self) -> crate::RefusalCode {
        crate::RefusalCode::FeatureNotInPlan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_runs_fifteen_or_thirty_days() {
        assert_eq!(PlanPeriod::parse(15), Ok(PlanPeriod::Days15));
        assert_eq!(PlanPeriod::parse(30), Ok(PlanPeriod::Days30));
        assert_eq!(
            PlanPeriod::parse(7),
            Err(PlanError::InvalidPeriod { got: 7 })
        );
        assert_eq!(PlanPeriod::Days30.duration(), TimeDelta::days(30));
    }

    #[test]
    fn a_period_is_serialized_as_its_number_of_days() {
        assert_eq!(serde_json::to_string(&PlanPeriod::Days15).unwrap(), "15");
        assert_eq!(
            serde_json::from_str::<PlanPeriod>("30").unwrap(),
            PlanPeriod::Days30
        );
        assert!(serde_json::from_str::<PlanPeriod>("31").is_err());
    }

    #[test]
    fn plans_default_to_the_seed_caps() {
        assert_eq!(PlanTerms::DEFAULT_MAX_RECIPIENTS_PER_CAMPAIGN, 200);
        assert_eq!(PlanTerms::default_max_daily_limit().value(), 500);
    }

    #[test]
    fn terms_recorded_before_features_include_everything_at_version_one() {
        let old = serde_json::json!({
            "plan_id": "00000000-0000-0000-0000-000000000001", "name": "Old",
            "period_days": 30, "points": 100, "max_sessions": 1,
            "max_recipients_per_campaign": 200, "max_daily_limit": 500,
        });
        let terms: PlanTerms = serde_json::from_value(old).unwrap();
        assert_eq!(terms.features, PlanFeatures::default());
        assert_eq!((terms.grace_days, terms.version), (0, 1));
        assert!(terms.require(PlanFeature::Webhooks).is_ok());
    }

    #[test]
    fn a_plan_without_a_feature_refuses_it() {
        let old = serde_json::json!({
            "plan_id": "00000000-0000-0000-0000-000000000001", "name": "Lite",
            "period_days": 15, "points": 100, "max_sessions": 1,
            "max_recipients_per_campaign": 200, "max_daily_limit": 500,
            "features": {"auto_replies": true, "webhooks": false, "official_mode": false},
        });
        let terms: PlanTerms = serde_json::from_value(old).unwrap();
        assert_eq!(
            terms.require(PlanFeature::Webhooks).unwrap_err().feature,
            PlanFeature::Webhooks
        );
        assert!(terms.require(PlanFeature::AutoReplies).is_ok());
        assert_eq!(
            terms.require(PlanFeature::OfficialMode).unwrap_err().code(),
            "feature_not_in_plan"
        );
    }
}
