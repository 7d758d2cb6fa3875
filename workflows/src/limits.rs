//! What a tenant's plan allows, as facts for the commands that need them
//! (sessions it may have, recipients per campaign, highest daily limit).
//! The aggregates decide with these; handlers only look them up.

use cqrs_es::AggregateError;
use wablast_domain::plan::{FeatureNotInPlan, PlanFeature, PlanTerms};
use wablast_domain::types::{DailyLimit, TenantId};
use wablast_domain::wallet::{Wallet, WalletError};
use wablast_eventstore::CommandHandler;

use crate::commands::tenant_key;

/// A tenant's limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantLimits {
    /// Sessions (linked numbers) it may have.
    pub max_sessions: u32,
    /// Recipients one campaign may have.
    pub max_recipients_per_campaign: u64,
    /// The highest daily limit of one session.
    pub max_daily_limit: DailyLimit,
    /// The plan's terms as subscribed (`None`: never subscribed; a tenant
    /// trying the product may set everything up, and sends nothing
    /// without a plan anyway).
    pub plan: Option<PlanTerms>,
}

/// Sessions a tenant without a plan may link: one, to try the product.
pub const MAX_SESSIONS_WITHOUT_PLAN: u32 = 1;
/// Recipients per campaign without a plan (the documented default without a plan).
pub const MAX_RECIPIENTS_WITHOUT_PLAN: u64 = 200;
/// Highest daily limit per session without a plan (the documented default without a plan).
pub const MAX_DAILY_LIMIT_WITHOUT_PLAN: u64 = 500;

impl TenantLimits {
    /// The limits of a tenant that never subscribed to a plan.
    pub fn without_plan() -> Self {
        Self {
            max_sessions: MAX_SESSIONS_WITHOUT_PLAN,
            max_recipients_per_campaign: MAX_RECIPIENTS_WITHOUT_PLAN,
            max_daily_limit: DailyLimit::parse(MAX_DAILY_LIMIT_WITHOUT_PLAN)
                .expect("the default daily limit is valid"),
            plan: None,
        }
    }

    /// Refused when the tenant's plan (as subscribed, expired or not) does
    /// not include `feature`.
    pub fn require(&self, feature: PlanFeature) -> Result<(), FeatureNotInPlan> {
        match &self.plan {
            Some(terms) => terms.require(feature),
            None => Ok(()),
        }
    }

    /// The limits of `tenant`: its plan's terms as subscribed, as the log
    /// has them (the wallet aggregate, not its projection: a plan granted a
    /// moment ago counts at once, whoever granted it).
    pub async fn of(
        wallets: &CommandHandler<Wallet>,
        tenant: TenantId,
    ) -> Result<Self, AggregateError<WalletError>> {
        let wallet = wallets.load(&tenant_key(tenant)).await?.aggregate;
        Ok(wallet.plan().map_or_else(Self::without_plan, |terms| Self {
            max_sessions: terms.max_sessions,
            max_recipients_per_campaign: u64::from(terms.max_recipients_per_campaign),
            max_daily_limit: terms.max_daily_limit,
            plan: Some(terms.clone()),
        }))
    }
}
