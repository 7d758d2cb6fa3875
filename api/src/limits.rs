//! What a tenant's plan allows, as facts for the commands that need them
//! (sessions it may have, recipients per campaign, highest daily limit).
//! The aggregates decide with these; handlers only look them up.

use wablast_domain::types::{DailyLimit, TenantId};
use wablast_projections::queries::wallet;

use crate::ApiError;

/// A tenant's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TenantLimits {
    /// Sessions (linked numbers) it may have.
    pub max_sessions: u32,
    /// Recipients one campaign may have.
    pub max_recipients_per_campaign: u64,
    /// The highest daily limit of one session.
    pub max_daily_limit: DailyLimit,
}

/// Sessions a tenant without a plan may link: one, to try the product.
pub const MAX_SESSIONS_WITHOUT_PLAN: u32 = 1;
/// Recipients per campaign without a plan (API.md's plan default).
pub const MAX_RECIPIENTS_WITHOUT_PLAN: u64 = 200;
/// Highest daily limit per session without a plan (API.md's plan default).
pub const MAX_DAILY_LIMIT_WITHOUT_PLAN: u64 = 500;

impl TenantLimits {
    /// The limits of a tenant that never subscribed to a plan.
    pub fn without_plan() -> Self {
        Self {
            max_sessions: MAX_SESSIONS_WITHOUT_PLAN,
            max_recipients_per_campaign: MAX_RECIPIENTS_WITHOUT_PLAN,
            max_daily_limit: DailyLimit::parse(MAX_DAILY_LIMIT_WITHOUT_PLAN)
                .expect("the default daily limit is valid"),
        }
    }

    /// The limits of `tenant`: its plan's terms as subscribed (read from the
    /// projected wallet), each missing term at its default.
    pub async fn of(db: &sqlx::PgPool, tenant: TenantId) -> Result<Self, ApiError> {
        let defaults = Self::without_plan();
        let Some(plan) = wallet::get(db, tenant).await?.plan else {
            return Ok(defaults);
        };
        let to_u32 = |v: i32| u32::try_from(v).unwrap_or(0);
        Ok(Self {
            max_sessions: plan.max_sessions.map_or(defaults.max_sessions, to_u32),
            max_recipients_per_campaign: plan
                .max_recipients_per_campaign
                .map_or(defaults.max_recipients_per_campaign, |v| {
                    u64::from(to_u32(v))
                }),
            max_daily_limit: plan
                .max_daily_limit
                .and_then(|v| DailyLimit::parse(u64::from(to_u32(v))).ok())
                .unwrap_or(defaults.max_daily_limit),
        })
    }
}
