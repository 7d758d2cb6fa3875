//! `list_checks`: checks of contact lists' numbers on WhatsApp, with
//! their progress.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;
use wablast_domain::list_check::{ListCheck, ListCheckEvent, ListCheckStatus};
use wablast_eventstore::RecordedEvent;

use super::{decode, id_of, missing_row, tenant_of};
use crate::rows::{Row, RowSet};
use crate::{LogStream, Projection, ProjectionError};

const NAME: &str = "list_checks";

/// The `list_checks` projection.
pub(crate) struct ListChecks;

/// A row of `list_checks`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ListCheckRow {
    id: Uuid,
    tenant_id: Uuid,
    list_id: Uuid,
    session_id: Uuid,
    status: String,
    contacts: i64,
    last_row: i32,
    next_row: i32,
    checked: i64,
    on_whatsapp: i64,
    not_on_whatsapp: i64,
    failure: Option<String>,
    started_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
}

impl Row for ListCheckRow {
    const TABLE: &'static str = "list_checks";
    const KEY: &'static str = "id";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "tenant_id",
        "list_id",
        "session_id",
        "status",
        "contacts",
        "last_row",
        "next_row",
        "checked",
        "on_whatsapp",
        "not_on_whatsapp",
        "failure",
        "started_at",
        "updated_at",
        "ended_at",
    ];

    fn key(&self) -> Uuid {
        self.id
    }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl Projection for ListChecks {
    fn name(&self) -> &'static str {
        NAME
    }

    fn streams(&self) -> &'static [LogStream] {
        &[LogStream::Events]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[ListCheck::TYPE])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["list_checks"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        _stream: LogStream,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut checks = RowSet::<ListCheckRow>::default();
        let ids = events
            .iter()
            .map(|e| id_of(NAME, e))
            .collect::<Result<Vec<_>, _>>()?;
        checks.load(conn, ids).await?;

        for event in events {
            let id = id_of(NAME, event)?;
            let decoded: ListCheckEvent = decode(NAME, event)?;
            if let ListCheckEvent::ListCheckStarted {
                list_id,
                session_id,
                contacts,
                last_row,
                at,
            } = decoded
            {
                checks.put(ListCheckRow {
                    id,
                    tenant_id: tenant_of(NAME, event)?,
                    list_id: *list_id.as_uuid(),
                    session_id: *session_id.as_uuid(),
                    status: ListCheckStatus::Running.as_str().to_owned(),
                    contacts: count(contacts),
                    last_row,
                    next_row: 0,
                    checked: 0,
                    on_whatsapp: 0,
                    not_on_whatsapp: 0,
                    failure: None,
                    started_at: at,
                    updated_at: at,
                    ended_at: None,
                });
                continue;
            }
            let row = checks.get_mut(id).ok_or_else(|| missing_row(NAME, event))?;
            let (status, at) = match decoded {
                ListCheckEvent::ListCheckStarted { .. } => unreachable!("handled above"),
                ListCheckEvent::ListCheckProgressed {
                    next_row,
                    checked,
                    on_whatsapp,
                    not_on_whatsapp,
                    at,
                } => {
                    row.next_row = next_row;
                    row.checked = count(checked);
                    row.on_whatsapp = count(on_whatsapp);
                    row.not_on_whatsapp = count(not_on_whatsapp);
                    row.updated_at = at;
                    continue;
                }
                ListCheckEvent::ListCheckCompleted { at } => (ListCheckStatus::Completed, at),
                ListCheckEvent::ListCheckFailed { reason, at } => {
                    row.failure = Some(reason.as_str().to_owned());
                    (ListCheckStatus::Failed, at)
                }
                ListCheckEvent::ListCheckCancelled { at } => (ListCheckStatus::Cancelled, at),
            };
            row.status = status.as_str().to_owned();
            row.updated_at = at;
            row.ended_at = Some(at);
        }
        checks.flush(conn).await?;
        Ok(())
    }
}
