//! What senders may still send today: each session's daily limit less
//! what its day counter granted on the tenant's local date.

use chrono::{DateTime, Utc};
use cqrs_es::AggregateError;
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
        let limit = u64::from(session.daily_limit().value());
        remaining.push(limit.saturating_sub(u64::from(day.count())));
    }
    Ok(remaining)
}
