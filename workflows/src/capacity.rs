//! What senders may still send today: each session's daily limit less
//! what its day counter granted on the tenant's local date; and one
//! sender's capacity as the sender governor sees it ([`of_sender`]).

use chrono::{DateTime, Utc};
use cqrs_es::AggregateError;
use wablast_domain::governor::{GovernorState, Restriction};
use wablast_domain::session_day;
use wablast_domain::types::{SessionId, TenantId};

use crate::commands::{Commands, day_key, key, tenant_key};

/// Why a capacity could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CapacityError(String);

impl<E: std::error::Error> From<AggregateError<E>> for CapacityError {
    fn from(err: AggregateError<E>) -> Self {
        Self(err.to_string())
    }
}

/// For each of `senders`, in order, how many messages it may still send
/// on the tenant's local date at `now`.
pub async fn remaining_today(
    commands: &Commands,
    tenant: TenantId,
    senders: &[SessionId],
    now: DateTime<Utc>,
) -> Result<Vec<u64>, CapacityError> {
    let schedule = commands
        .schedules
        .load(&tenant_key(tenant))
        .await?
        .aggregate;
    let zone = schedule.active_hours().timezone();
    let mut remaining = Vec::with_capacity(senders.len());
    for &sender in senders {
        let session = commands
            .sessions
            .load(&key(tenant, sender))
            .await?
            .aggregate;
        let day = commands
            .session_days
            .load(&day_key(
                tenant,
                &session_day::aggregate_id_at(sender, now, zone),
            ))
            .await?
            .aggregate;
        // The governor's allowance: the daily limit, or less while the
        // number warms up or cools down.
        let limit = u64::from(session.governor_limits(now).allowance);
        remaining.push(limit.saturating_sub(u64::from(day.count())));
    }
    Ok(remaining)
}

/// One sender's capacity as the governor sees it now: what it may still
/// send today and this hour, new contacts left, when its allowance grows,
/// and the governor's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SenderCapacity {
    /// Today's allowance (the daily limit, or less in warm-up or cool-down).
    pub today: u32,
    /// What is left of it.
    pub left_today: u32,
    /// What may still go this hour (the hourly cap, or what is left today
    /// when there is none, whichever is less).
    pub this_hour: u32,
    /// New contacts left today; `None`: no cap on them.
    pub new_contacts_left: Option<u32>,
    /// When the allowance grows next (warm-up).
    pub grows_at: Option<DateTime<Utc>>,
    /// The governor's state.
    pub state: GovernorState,
    /// Until when the state holds, where known (a restriction, a
    /// cool-down).
    pub state_until: Option<DateTime<Utc>>,
    /// The restriction in force, if any.
    pub restriction: Option<Restriction>,
}

/// The capacity of `sender` at `now`, from its session and its day counter
/// (the log, not a projection: what the next slot request will be decided
/// on). `None`: no such session.
pub async fn of_sender(
    commands: &Commands,
    tenant: TenantId,
    sender: SessionId,
    now: DateTime<Utc>,
) -> Result<Option<SenderCapacity>, CapacityError> {
    let session = commands
        .sessions
        .load(&key(tenant, sender))
        .await?
        .aggregate;
    if !session.exists() || session.is_deleted() {
        return Ok(None);
    }
    let schedule = commands
        .schedules
        .load(&tenant_key(tenant))
        .await?
        .aggregate;
    let zone = schedule.active_hours().timezone();
    let day = commands
        .session_days
        .load(&day_key(
            tenant,
            &session_day::aggregate_id_at(sender, now, zone),
        ))
        .await?
        .aggregate;
    let limits = session.governor_limits(now);
    let (state, state_until) = session.governor_state(now);
    let left_today = limits.allowance.saturating_sub(day.count());
    let this_hour = limits.per_hour.map_or(left_today, |max| {
        max.saturating_sub(day.sent_in_hour_before(now))
            .min(left_today)
    });
    let new_contacts_left = if limits.new_contacts_blocked_until.is_some() {
        Some(0)
    } else {
        limits
            .new_contacts_per_day
            .map(|max| max.saturating_sub(day.new_contacts()))
    };
    Ok(Some(SenderCapacity {
        today: limits.allowance,
        left_today,
        this_hour,
        new_contacts_left,
        grows_at: limits.grows_at,
        state,
        state_until,
        restriction: session.governor().restriction_at(now),
    }))
}
