//! Where events are in the log (`event_index`): the history of an
//! aggregate, for audits.
//!
//! The index keeps the tenant as text: a tenant's id
//! ([`tenant_token`]) or [`PLATFORM`] for platform-wide aggregates.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;
use wablast_domain::types::TenantId;

use crate::LogStream;
use crate::wait::Position;

/// The tenant token of platform-wide aggregates (plans).
pub const PLATFORM: &str = wablast_eventstore::PLATFORM_TENANT;

/// The token of a tenant in the index.
pub fn tenant_token(tenant: TenantId) -> String {
    tenant.to_string()
}

/// An event's place in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct EventEntry {
    /// The event's id.
    pub event_id: Uuid,
    /// Logical stream: `events` or `messages`.
    pub stream: String,
    /// Stream sequence of its commit.
    pub stream_sequence: i64,
    /// Tenant token.
    pub tenant: String,
    /// Its aggregate's type.
    pub aggregate_type: String,
    /// Its aggregate's id.
    pub aggregate_id: String,
    /// Its place in its aggregate's history.
    pub aggregate_sequence: i64,
    /// Its type.
    pub event_type: String,
    /// Its version.
    pub event_version: String,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
}

impl EventEntry {
    /// Its position, as read-your-writes waits for it; `None` for a stream
    /// this build does not know.
    pub fn position(&self) -> Option<Position> {
        Some(Position {
            stream: LogStream::parse(&self.stream)?,
            sequence: u64::try_from(self.stream_sequence).ok()?,
        })
    }
}

/// The events of one aggregate of `tenant` (a tenant token or
/// [`PLATFORM`]), in their order.
pub async fn history(
    pool: &PgPool,
    tenant: &str,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Vec<EventEntry>, sqlx::Error> {
    sqlx::query_as(
        "select event_id, stream, stream_sequence, tenant, aggregate_type, aggregate_id, \
                aggregate_sequence, event_type, event_version, occurred_at \
         from event_index \
         where tenant = $1 and aggregate_type = $2 and aggregate_id = $3 \
         order by aggregate_sequence",
    )
    .bind(tenant)
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_all(pool)
    .await
}

/// Where an event of `tenant` (a tenant token or [`PLATFORM`]) is in the
/// log; `None` if it is not indexed (yet), or is another tenant's.
pub async fn position_of(
    pool: &PgPool,
    tenant: &str,
    event_id: Uuid,
) -> Result<Option<EventEntry>, sqlx::Error> {
    sqlx::query_as(
        "select event_id, stream, stream_sequence, tenant, aggregate_type, aggregate_id, \
                aggregate_sequence, event_type, event_version, occurred_at \
         from event_index where event_id = $1 and tenant = $2",
    )
    .bind(event_id)
    .bind(tenant)
    .fetch_optional(pool)
    .await
}
