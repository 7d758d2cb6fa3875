//! `auto_replies`: what the auto-responder decided for each inbound
//! message (`auto_reply_decisions`), one row per decided message. Each
//! event writes the whole row: an answer, a silence, or a withdrawn answer
//! (its reason replaces `answered`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;
use wablast_domain::auto_reply::{AutoReplyEvent, AutoReplyThread};
use wablast_eventstore::RecordedEvent;

use super::{decode, tenant_of};
use crate::queries::auto_replies::ANSWERED;
use crate::rows::{Row, RowSet};
use crate::{LogStream, Projection, ProjectionError};

const NAME: &str = "auto_replies";

/// The `auto_replies` projection.
pub(crate) struct AutoReplies;

/// A row of `auto_reply_decisions`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DecisionRow {
    inbound_id: Uuid,
    tenant_id: Uuid,
    rule_id: Option<Uuid>,
    outcome: String,
    message_id: Option<Uuid>,
    decided_at: DateTime<Utc>,
}

impl Row for DecisionRow {
    const TABLE: &'static str = "auto_reply_decisions";
    const KEY: &'static str = "inbound_id";
    const COLUMNS: &'static [&'static str] = &[
        "inbound_id",
        "tenant_id",
        "rule_id",
        "outcome",
        "message_id",
        "decided_at",
    ];

    fn key(&self) -> Uuid {
        self.inbound_id
    }
}

#[async_trait]
impl Projection for AutoReplies {
    fn name(&self) -> &'static str {
        NAME
    }

    fn streams(&self) -> &'static [LogStream] {
        &[LogStream::Messages]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[AutoReplyThread::TYPE])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["auto_reply_decisions"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        _stream: LogStream,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        // Nothing to load: every event writes its message's whole row.
        let mut rows = RowSet::<DecisionRow>::default();
        for event in events {
            let tenant_id = tenant_of(NAME, event)?;
            let row = match decode(NAME, event)? {
                AutoReplyEvent::AutoReplyAnswered {
                    inbound_id,
                    rule_id,
                    message_id,
                    at,
                } => DecisionRow {
                    inbound_id: *inbound_id.as_uuid(),
                    tenant_id,
                    rule_id: Some(rule_id),
                    outcome: ANSWERED.to_owned(),
                    message_id: Some(*message_id.as_uuid()),
                    decided_at: at,
                },
                AutoReplyEvent::AutoReplySilent {
                    inbound_id,
                    rule_id,
                    reason,
                    at,
                } => DecisionRow {
                    inbound_id: *inbound_id.as_uuid(),
                    tenant_id,
                    rule_id,
                    outcome: reason.as_str().to_owned(),
                    message_id: None,
                    decided_at: at,
                },
                AutoReplyEvent::AutoReplyWithdrawn {
                    inbound_id,
                    rule_id,
                    reason,
                    at,
                } => DecisionRow {
                    inbound_id: *inbound_id.as_uuid(),
                    tenant_id,
                    rule_id: Some(rule_id),
                    outcome: reason.as_str().to_owned(),
                    message_id: None,
                    decided_at: at,
                },
            };
            rows.put(row);
        }
        rows.flush(conn).await?;
        Ok(())
    }
}
