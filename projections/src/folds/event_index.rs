//! `event_index`: where every event of both streams is, for the audit tools
//! and an aggregate's history. Insert-only.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;
use wablast_eventstore::RecordedEvent;

use crate::{LogStream, Projection, ProjectionError};

/// The `event_index` projection.
pub(crate) struct EventIndex;

#[async_trait]
impl Projection for EventIndex {
    fn name(&self) -> &'static str {
        "event_index"
    }

    fn streams(&self) -> &'static [LogStream] {
        &LogStream::ALL
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        None
    }

    fn tables(&self) -> &'static [&'static str] {
        &["event_index"]
    }

    fn needs_payloads(&self) -> bool {
        false
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        stream: LogStream,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        if events.is_empty() {
            return Ok(());
        }
        let n = events.len();
        let mut ids = Vec::with_capacity(n);
        let mut sequences = Vec::with_capacity(n);
        let mut tenants = Vec::with_capacity(n);
        let mut types = Vec::with_capacity(n);
        let mut aggregate_ids = Vec::with_capacity(n);
        let mut aggregate_sequences = Vec::with_capacity(n);
        let mut event_types = Vec::with_capacity(n);
        let mut versions = Vec::with_capacity(n);
        let mut times: Vec<DateTime<Utc>> = Vec::with_capacity(n);
        for e in events {
            ids.push(e.event_id);
            sequences.push(e.stream_sequence as i64);
            tenants.push(e.tenant.as_str());
            types.push(e.aggregate_type.as_str());
            aggregate_ids.push(e.aggregate_id.as_str());
            aggregate_sequences.push(e.sequence as i64);
            event_types.push(e.event_type.as_str());
            versions.push(e.event_version.as_str());
            times.push(e.occurred_at);
        }
        sqlx::query(
            "insert into event_index (event_id, stream, stream_sequence, tenant, aggregate_type, \
                 aggregate_id, aggregate_sequence, event_type, event_version, occurred_at) \
             select event_id, $2, stream_sequence, tenant, aggregate_type, aggregate_id, \
                 aggregate_sequence, event_type, event_version, occurred_at \
             from unnest($1::uuid[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::int8[], \
                 $8::text[], $9::text[], $10::timestamptz[]) \
                 as e(event_id, stream_sequence, tenant, aggregate_type, aggregate_id, \
                      aggregate_sequence, event_type, event_version, occurred_at)",
        )
        .bind(&ids as &[Uuid])
        .bind(stream.name())
        .bind(&sequences)
        .bind(&tenants)
        .bind(&types)
        .bind(&aggregate_ids)
        .bind(&aggregate_sequences)
        .bind(&event_types)
        .bind(&versions)
        .bind(&times)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
