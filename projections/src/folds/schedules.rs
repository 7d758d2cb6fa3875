//! `schedules`: each tenant's active hours and override.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;
use wablast_domain::schedule::{Schedule, ScheduleEvent};
use wablast_domain::types::{Override, TimeZone, Window};
use wablast_eventstore::RecordedEvent;

use super::{decode, missing_row, tenant_of};
use crate::rows::{Row, RowSet};
use crate::{LogStream, Projection, ProjectionError};

const NAME: &str = "schedules";

/// The `schedules` projection.
pub(crate) struct Schedules;

/// A row of `schedules`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ScheduleRow {
    tenant_id: Uuid,
    timezone: String,
    windows: Vec<Window>,
    #[serde(rename = "override")]
    override_mode: Override,
    updated_at: DateTime<Utc>,
}

impl Row for ScheduleRow {
    const TABLE: &'static str = "schedules";
    const KEY: &'static str = "tenant_id";
    const COLUMNS: &'static [&'static str] =
        &["tenant_id", "timezone", "windows", "override", "updated_at"];

    fn key(&self) -> Uuid {
        self.tenant_id
    }
}

#[async_trait]
impl Projection for Schedules {
    fn name(&self) -> &'static str {
        NAME
    }

    fn streams(&self) -> &'static [LogStream] {
        &[LogStream::Events]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Schedule::TYPE])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["schedules"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        _stream: LogStream,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut schedules = RowSet::<ScheduleRow>::default();
        let tenants = events
            .iter()
            .map(|e| tenant_of(NAME, e))
            .collect::<Result<Vec<_>, _>>()?;
        schedules.load(conn, tenants).await?;

        for event in events {
            let tenant_id = tenant_of(NAME, event)?;
            if !schedules.contains(tenant_id) {
                // Before the first change a tenant has the default schedule.
                schedules.put(ScheduleRow {
                    tenant_id,
                    timezone: TimeZone::default().name().to_owned(),
                    windows: Vec::new(),
                    override_mode: Override::default(),
                    updated_at: event.occurred_at,
                });
            }
            let row = schedules
                .get_mut(tenant_id)
                .ok_or_else(|| missing_row(NAME, event))?;
            match decode(NAME, event)? {
                ScheduleEvent::ActiveHoursSet {
                    timezone,
                    windows,
                    at,
                } => {
                    row.timezone = timezone.name().to_owned();
                    row.windows = windows;
                    row.updated_at = at;
                }
                ScheduleEvent::OverrideSet { mode, at } => {
                    row.override_mode = mode;
                    row.updated_at = at;
                }
            }
        }
        schedules.flush(conn).await?;
        Ok(())
    }
}
