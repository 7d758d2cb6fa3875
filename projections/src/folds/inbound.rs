//! `inbound`: the messages sessions received (`inbound_messages`), one row
//! per inbound aggregate. Insert-only: the aggregate's one event creates
//! the row, and a redelivered commit writes the very same row again.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;
use wablast_domain::inbound::{Inbound, InboundEvent};
use wablast_eventstore::RecordedEvent;

use super::{decode, id_of, tenant_of};
use crate::rows::{Row, RowSet};
use crate::{LogStream, Projection, ProjectionError};

const NAME: &str = "inbound";

/// The `inbound` projection.
pub(crate) struct Inbounds;

/// A row of `inbound_messages`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct InboundRow {
    id: Uuid,
    tenant_id: Uuid,
    session_id: Uuid,
    from_phone: Option<String>,
    from_raw: String,
    text: Option<String>,
    provider_message_id: String,
    received_at: DateTime<Utc>,
    kind: Option<String>,
}

impl Row for InboundRow {
    const TABLE: &'static str = "inbound_messages";
    const KEY: &'static str = "id";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "tenant_id",
        "session_id",
        "from_phone",
        "from_raw",
        "text",
        "provider_message_id",
        "received_at",
        "kind",
    ];

    fn key(&self) -> Uuid {
        self.id
    }
}

#[async_trait]
impl Projection for Inbounds {
    fn name(&self) -> &'static str {
        NAME
    }

    fn streams(&self) -> &'static [LogStream] {
        &[LogStream::Messages]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Inbound::TYPE])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["inbound_messages"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        _stream: LogStream,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        // Nothing to load: every event creates its row.
        let mut rows = RowSet::<InboundRow>::default();
        for event in events {
            match decode(NAME, event)? {
                InboundEvent::InboundMessageReceived {
                    session_id,
                    from,
                    from_raw,
                    text,
                    provider_message_id,
                    kind,
                    at,
                    ..
                } => rows.put(InboundRow {
                    id: id_of(NAME, event)?,
                    tenant_id: tenant_of(NAME, event)?,
                    session_id: *session_id.as_uuid(),
                    from_phone: from.map(|phone| phone.as_str().to_owned()),
                    from_raw,
                    text,
                    provider_message_id,
                    received_at: at,
                    kind: kind.map(|k| k.as_str().to_owned()),
                }),
            }
        }
        rows.flush(conn).await?;
        Ok(())
    }
}
