//! `stats`: per tenant, UTC day and session, what was sent, delivered,
//! read, failed for good and replied, and the points spent
//! (`stats_daily`), with the final failures per reason
//! (`stats_failures`). Reports read these rows, never `messages`.
//!
//! Each event adds to a counter; the runner applies an event once (the
//! checkpoint is committed with the rows), so adding is safe. A receipt
//! (delivered, read) names no sender, and the rows may depend on nothing
//! but the events (a rebuild must give the live rows): receipts count on
//! the tenant's row of the nil session, not per session.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::NaiveDate;
use cqrs_es::Aggregate;
use serde::Serialize;
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;
use wablast_domain::inbound::{Inbound, InboundEvent};
use wablast_domain::message::{Message, MessageEvent};
use wablast_eventstore::RecordedEvent;

use super::{decode, tenant_of};
use crate::{LogStream, Projection, ProjectionError};

const NAME: &str = "stats";

/// The `stats` projection.
pub(crate) struct Stats;

#[derive(Default, Serialize)]
struct Counts {
    sent: i64,
    delivered: i64,
    read: i64,
    failed: i64,
    replies: i64,
    points_spent: i64,
}

#[derive(Serialize)]
struct DailyRow {
    tenant_id: Uuid,
    day: NaiveDate,
    session_id: Uuid,
    #[serde(flatten)]
    counts: Counts,
}

#[derive(Serialize)]
struct FailureRow {
    tenant_id: Uuid,
    day: NaiveDate,
    reason: String,
    failed: i64,
}

enum Receipt {
    Delivered,
    Read,
}

#[async_trait]
impl Projection for Stats {
    fn name(&self) -> &'static str {
        NAME
    }

    fn streams(&self) -> &'static [LogStream] {
        &[LogStream::Messages]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Message::TYPE, Inbound::TYPE])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["stats_daily", "stats_failures"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        _stream: LogStream,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut daily: BTreeMap<(Uuid, NaiveDate, Uuid), Counts> = BTreeMap::new();
        let mut failures: BTreeMap<(Uuid, NaiveDate, String), i64> = BTreeMap::new();
        let mut receipts: Vec<(Uuid, NaiveDate, Receipt)> = Vec::new();
        for event in events {
            let tenant = tenant_of(NAME, event)?;
            if event.aggregate_type == Inbound::TYPE {
                let InboundEvent::InboundMessageReceived { session_id, at, .. } =
                    decode(NAME, event)?;
                daily
                    .entry((tenant, at.date_naive(), *session_id.as_uuid()))
                    .or_default()
                    .replies += 1;
                continue;
            }
            match decode::<MessageEvent>(NAME, event)? {
                MessageEvent::MessageSent {
                    session_id,
                    cost,
                    at,
                    ..
                } => {
                    let counts = daily
                        .entry((tenant, at.date_naive(), *session_id.as_uuid()))
                        .or_default();
                    counts.sent += 1;
                    counts.points_spent += i64::try_from(cost.value()).unwrap_or(i64::MAX);
                }
                MessageEvent::MessageFailed {
                    session_id,
                    reason,
                    retryable: false,
                    at,
                    ..
                } => {
                    let day = at.date_naive();
                    daily
                        .entry((tenant, day, *session_id.as_uuid()))
                        .or_default()
                        .failed += 1;
                    *failures.entry((tenant, day, reason)).or_default() += 1;
                }
                MessageEvent::MessageDelivered { at, .. } => {
                    receipts.push((tenant, at.date_naive(), Receipt::Delivered));
                }
                MessageEvent::MessageRead { at, .. } => {
                    receipts.push((tenant, at.date_naive(), Receipt::Read));
                }
                _ => {}
            }
        }
        for (tenant, day, receipt) in receipts {
            let counts = daily.entry((tenant, day, Uuid::nil())).or_default();
            match receipt {
                Receipt::Delivered => counts.delivered += 1,
                Receipt::Read => counts.read += 1,
            }
        }
        if !daily.is_empty() {
            let rows: Vec<DailyRow> = daily
                .into_iter()
                .map(|((tenant_id, day, session_id), counts)| DailyRow {
                    tenant_id,
                    day,
                    session_id,
                    counts,
                })
                .collect();
            sqlx::query(
                "insert into stats_daily \
                     (tenant_id, day, session_id, sent, delivered, read, failed, replies, points_spent) \
                 select tenant_id, day, session_id, sent, delivered, read, failed, replies, points_spent \
                 from jsonb_populate_recordset(null::stats_daily, $1) \
                 on conflict (tenant_id, day, session_id) do update set \
                     sent = stats_daily.sent + excluded.sent, \
                     delivered = stats_daily.delivered + excluded.delivered, \
                     read = stats_daily.read + excluded.read, \
                     failed = stats_daily.failed + excluded.failed, \
                     replies = stats_daily.replies + excluded.replies, \
                     points_spent = stats_daily.points_spent + excluded.points_spent",
            )
            .bind(Json(&rows))
            .execute(&mut *conn)
            .await?;
        }
        if !failures.is_empty() {
            let rows: Vec<FailureRow> = failures
                .into_iter()
                .map(|((tenant_id, day, reason), failed)| FailureRow {
                    tenant_id,
                    day,
                    reason,
                    failed,
                })
                .collect();
            sqlx::query(
                "insert into stats_failures (tenant_id, day, reason, failed) \
                 select tenant_id, day, reason, failed \
                 from jsonb_populate_recordset(null::stats_failures, $1) \
                 on conflict (tenant_id, day, reason) do update set \
                     failed = stats_failures.failed + excluded.failed",
            )
            .bind(Json(&rows))
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}
