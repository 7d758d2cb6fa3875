//! `plans`: the subscription plans on offer (platform-wide).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;
use wablast_domain::plan::{Plan, PlanEvent};
use wablast_eventstore::RecordedEvent;

use super::{decode, id_of, missing_row};
use crate::rows::{Row, RowSet};
use crate::{LogStream, Projection, ProjectionError};

const NAME: &str = "plans";

/// The `plans` projection.
pub(crate) struct Plans;

/// A row of `plans`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PlanRow {
    id: Uuid,
    name: String,
    period_days: i32,
    points: i64,
    max_sessions: i32,
    max_recipients_per_campaign: i32,
    max_daily_limit: i32,
    price: i64,
    created_at: DateTime<Utc>,
    retired_at: Option<DateTime<Utc>>,
    version: i32,
    feature_auto_replies: bool,
    feature_webhooks: bool,
    feature_official_mode: bool,
    grace_days: i32,
    on_sale: bool,
    updated_at: Option<DateTime<Utc>>,
}

impl Row for PlanRow {
    const TABLE: &'static str = "plans";
    const KEY: &'static str = "id";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "name",
        "period_days",
        "points",
        "max_sessions",
        "max_recipients_per_campaign",
        "max_daily_limit",
        "price",
        "created_at",
        "retired_at",
        "version",
        "feature_auto_replies",
        "feature_webhooks",
        "feature_official_mode",
        "grace_days",
        "on_sale",
        "updated_at",
    ];

    fn key(&self) -> Uuid {
        self.id
    }
}

#[async_trait]
impl Projection for Plans {
    fn name(&self) -> &'static str {
        NAME
    }

    fn streams(&self) -> &'static [LogStream] {
        &[LogStream::Events]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Plan::TYPE])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["plans"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        _stream: LogStream,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut plans = RowSet::<PlanRow>::default();
        let ids = events
            .iter()
            .map(|e| id_of(NAME, e))
            .collect::<Result<Vec<_>, _>>()?;
        plans.load(conn, ids).await?;

        for event in events {
            let id = id_of(NAME, event)?;
            match decode(NAME, event)? {
                PlanEvent::PlanDefined {
                    name,
                    period_days,
                    points,
                    max_sessions,
                    max_recipients_per_campaign,
                    max_daily_limit,
                    price,
                    features,
                    grace_days,
                    on_sale,
                    at,
                    ..
                } => plans.put(PlanRow {
                    id,
                    name,
                    period_days: period_days.days() as i32,
                    points: i64::try_from(points.value()).unwrap_or(i64::MAX),
                    max_sessions: max_sessions as i32,
                    max_recipients_per_campaign: max_recipients_per_campaign as i32,
                    max_daily_limit: max_daily_limit.value() as i32,
                    price: i64::try_from(price).unwrap_or(i64::MAX),
                    created_at: at,
                    retired_at: None,
                    version: 1,
                    feature_auto_replies: features.auto_replies,
                    feature_webhooks: features.webhooks,
                    feature_official_mode: features.official_mode,
                    grace_days: grace_days as i32,
                    on_sale,
                    updated_at: Some(at),
                }),
                PlanEvent::PlanEdited {
                    version,
                    name,
                    period_days,
                    points,
                    max_sessions,
                    max_recipients_per_campaign,
                    max_daily_limit,
                    price,
                    features,
                    grace_days,
                    on_sale,
                    at,
                    ..
                } => {
                    let row = plans.get_mut(id).ok_or_else(|| missing_row(NAME, event))?;
                    row.version = version as i32;
                    row.name = name;
                    row.period_days = period_days.days() as i32;
                    row.points = i64::try_from(points.value()).unwrap_or(i64::MAX);
                    row.max_sessions = max_sessions as i32;
                    row.max_recipients_per_campaign = max_recipients_per_campaign as i32;
                    row.max_daily_limit = max_daily_limit.value() as i32;
                    row.price = i64::try_from(price).unwrap_or(i64::MAX);
                    row.feature_auto_replies = features.auto_replies;
                    row.feature_webhooks = features.webhooks;
                    row.feature_official_mode = features.official_mode;
                    row.grace_days = grace_days as i32;
                    row.on_sale = on_sale;
                    row.updated_at = Some(at);
                }
                PlanEvent::PlanRetired { at, .. } => {
                    plans
                        .get_mut(id)
                        .ok_or_else(|| missing_row(NAME, event))?
                        .retired_at = Some(at);
                }
            }
        }
        plans.flush(conn).await?;
        Ok(())
    }
}
