//! `event_index`: where every event of both streams is, for the audit tools
//! and an aggregate's history. Insert-only.

use async_trait::async_trait;
use sqlx::PgConnection;
use wablast_eventstore::RecordedEvent;

use crate::copy::BinaryRows;
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

    fn insert_only(&self) -> bool {
        true
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
        // Insert-only, so the fastest way in: one binary `COPY` per batch.
        let mut rows = BinaryRows::new(10, events.len() * 200);
        for e in events {
            rows.row();
            rows.uuid(e.event_id);
            rows.text(stream.name());
            rows.int8(e.stream_sequence as i64);
            rows.text(&e.tenant);
            rows.text(&e.aggregate_type);
            rows.text(&e.aggregate_id);
            rows.int8(e.sequence as i64);
            rows.text(&e.event_type);
            rows.text(&e.event_version);
            rows.timestamptz(e.occurred_at);
        }
        rows.send(
            conn,
            "copy event_index (event_id, stream, stream_sequence, tenant, aggregate_type, \
                 aggregate_id, aggregate_sequence, event_type, event_version, occurred_at) \
             from stdin (format binary)",
        )
        .await?;
        Ok(())
    }
}
