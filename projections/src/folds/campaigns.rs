//! `campaigns`: every campaign's definition and where it is in its life.
//! Its messages' counts are the `messages` projection's
//! (`campaign_message_counts`).

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;
use wablast_domain::campaign::{
    Campaign, CampaignEvent, CampaignKind, CampaignStatus, PauseReason, SlowDown,
};
use wablast_domain::types::whatsapp_template::CampaignTemplate;
use wablast_eventstore::RecordedEvent;

use super::{decode, id_of, missing_row, tenant_of};
use crate::rows::{Row, RowSet};
use crate::{LogStream, Projection, ProjectionError};

const NAME: &str = "campaigns";

/// The `campaigns` projection.
pub(crate) struct Campaigns;

/// A row of `campaigns`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CampaignRow {
    id: Uuid,
    tenant_id: Uuid,
    name: String,
    contact_list_id: Option<Uuid>,
    template: String,
    media_id: Option<Uuid>,
    sender_session_ids: Vec<Uuid>,
    throttle_min_ms: i32,
    throttle_max_ms: i32,
    status: String,
    pause_reason: Option<PauseReason>,
    resume_at: Option<DateTime<Utc>>,
    scheduled_at: Option<DateTime<Utc>>,
    recipients: i64,
    points_reserved: i64,
    points_spent: Option<i64>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
    #[serde(default)]
    start_refusal: Option<RefusedStart>,
    kind: String,
    direct_day: Option<NaiveDate>,
    skip_not_on_whatsapp: bool,
    skipped_not_on_whatsapp: i64,
    whatsapp_template: Option<CampaignTemplate>,
    #[serde(default)]
    skip_unanswered_after: i32,
    #[serde(default)]
    skipped_never_replied: i64,
    #[serde(default)]
    slow_down: Option<SlowDown>,
}

/// Why a campaign's scheduled start was refused, and when (the
/// `start_refusal` column).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RefusedStart {
    code: String,
    message: String,
    at: DateTime<Utc>,
}

impl Row for CampaignRow {
    const TABLE: &'static str = "campaigns";
    const KEY: &'static str = "id";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "tenant_id",
        "name",
        "contact_list_id",
        "template",
        "media_id",
        "sender_session_ids",
        "throttle_min_ms",
        "throttle_max_ms",
        "status",
        "pause_reason",
        "resume_at",
        "scheduled_at",
        "recipients",
        "points_reserved",
        "points_spent",
        "created_at",
        "started_at",
        "finished_at",
        "updated_at",
        "start_refusal",
        "kind",
        "direct_day",
        "skip_not_on_whatsapp",
        "skipped_not_on_whatsapp",
        "whatsapp_template",
        "skip_unanswered_after",
        "skipped_never_replied",
        "slow_down",
    ];

    fn key(&self) -> Uuid {
        self.id
    }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl Projection for Campaigns {
    fn name(&self) -> &'static str {
        NAME
    }

    fn streams(&self) -> &'static [LogStream] {
        &[LogStream::Events]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Campaign::TYPE])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["campaigns"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        _stream: LogStream,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut campaigns = RowSet::<CampaignRow>::default();
        let ids = events
            .iter()
            .map(|e| id_of(NAME, e))
            .collect::<Result<Vec<_>, _>>()?;
        campaigns.load(conn, ids).await?;

        for event in events {
            let id = id_of(NAME, event)?;
            let decoded: CampaignEvent = decode(NAME, event)?;
            if let CampaignEvent::CampaignCreated {
                name,
                contact_list_id,
                template,
                media_id,
                sender_session_ids,
                throttle,
                scheduled_at,
                skip_not_on_whatsapp,
                skip_unanswered_after,
                whatsapp_template,
                at,
                ..
            } = decoded
            {
                campaigns.put(CampaignRow {
                    id,
                    tenant_id: tenant_of(NAME, event)?,
                    name,
                    contact_list_id: Some(*contact_list_id.as_uuid()),
                    template: template.as_str().to_owned(),
                    media_id: media_id.map(|m| *m.as_uuid()),
                    sender_session_ids: sender_session_ids.iter().map(|s| *s.as_uuid()).collect(),
                    throttle_min_ms: throttle.min_delay_ms() as i32,
                    throttle_max_ms: throttle.max_delay_ms() as i32,
                    status: "draft".to_owned(),
                    pause_reason: None,
                    resume_at: None,
                    scheduled_at,
                    recipients: 0,
                    points_reserved: 0,
                    points_spent: None,
                    created_at: at,
                    started_at: None,
                    finished_at: None,
                    updated_at: at,
                    start_refusal: None,
                    kind: CampaignKind::Broadcast.as_str().to_owned(),
                    direct_day: None,
                    skip_not_on_whatsapp,
                    skipped_not_on_whatsapp: 0,
                    whatsapp_template: whatsapp_template.map(|t| *t),
                    skip_unanswered_after: skip_unanswered_after.value() as i32,
                    skipped_never_replied: 0,
                    slow_down: None,
                });
                continue;
            }
            if let CampaignEvent::DirectCampaignOpened {
                session_id,
                day,
                throttle,
                at,
                ..
            } = decoded
            {
                campaigns.put(CampaignRow {
                    id,
                    tenant_id: tenant_of(NAME, event)?,
                    name: format!("direct {day}"),
                    contact_list_id: None,
                    template: String::new(),
                    media_id: None,
                    sender_session_ids: vec![*session_id.as_uuid()],
                    throttle_min_ms: throttle.min_delay_ms() as i32,
                    throttle_max_ms: throttle.max_delay_ms() as i32,
                    status: CampaignStatus::Running.as_str().to_owned(),
                    pause_reason: None,
                    resume_at: None,
                    scheduled_at: None,
                    recipients: 0,
                    points_reserved: 0,
                    points_spent: None,
                    created_at: at,
                    started_at: Some(at),
                    finished_at: None,
                    updated_at: at,
                    start_refusal: None,
                    kind: CampaignKind::Direct { session_id, day }.as_str().to_owned(),
                    direct_day: Some(day),
                    skip_not_on_whatsapp: false,
                    skipped_not_on_whatsapp: 0,
                    whatsapp_template: None,
                    skip_unanswered_after: 0,
                    skipped_never_replied: 0,
                    slow_down: None,
                });
                continue;
            }
            let row = campaigns
                .get_mut(id)
                .ok_or_else(|| missing_row(NAME, event))?;
            match decoded {
                CampaignEvent::CampaignCreated { .. }
                | CampaignEvent::DirectCampaignOpened { .. } => {}
                CampaignEvent::CampaignScheduled { at_time, at } => {
                    row.status = CampaignStatus::Scheduled.as_str().to_owned();
                    row.scheduled_at = Some(at_time);
                    row.start_refusal = None;
                    row.updated_at = at;
                }
                CampaignEvent::ScheduledStartRefused { refusal, at } => {
                    row.status = CampaignStatus::Draft.as_str().to_owned();
                    row.scheduled_at = None;
                    row.start_refusal = Some(RefusedStart {
                        code: refusal.code,
                        message: refusal.message,
                        at,
                    });
                    row.updated_at = at;
                }
                CampaignEvent::CampaignStarted {
                    recipients,
                    points_reserved,
                    skipped_not_on_whatsapp,
                    skipped_never_replied,
                    at,
                } => {
                    row.skipped_not_on_whatsapp = count(skipped_not_on_whatsapp);
                    row.skipped_never_replied = count(skipped_never_replied);
                    row.start_refusal = None;
                    row.status = CampaignStatus::Running.as_str().to_owned();
                    row.recipients = count(recipients);
                    row.points_reserved = count(points_reserved.value());
                    row.started_at = Some(at);
                    row.updated_at = at;
                }
                CampaignEvent::CampaignPaused { reason, at } => {
                    row.status = CampaignStatus::Paused.as_str().to_owned();
                    row.pause_reason = Some(reason);
                    row.updated_at = at;
                }
                CampaignEvent::CampaignAutoPaused {
                    failures,
                    resume_at,
                    at,
                    ..
                } => {
                    row.status = CampaignStatus::Paused.as_str().to_owned();
                    row.pause_reason = Some(PauseReason::AutoConsecutiveFailures { failures });
                    row.resume_at = Some(resume_at);
                    row.updated_at = at;
                }
                CampaignEvent::CampaignSlowedDown {
                    session_id,
                    reason,
                    throttle,
                    at,
                    ..
                } => {
                    row.slow_down = Some(SlowDown {
                        reason,
                        session_id,
                        throttle,
                        since: at,
                    });
                    row.updated_at = at;
                }
                CampaignEvent::CampaignSpeedRestored { at, .. } => {
                    row.slow_down = None;
                    row.updated_at = at;
                }
                CampaignEvent::CampaignResumed { at } => {
                    row.status = CampaignStatus::Running.as_str().to_owned();
                    row.pause_reason = None;
                    row.resume_at = None;
                    row.updated_at = at;
                }
                CampaignEvent::CampaignSenderRemoved {
                    remaining_senders,
                    at,
                    ..
                } => {
                    row.sender_session_ids =
                        remaining_senders.iter().map(|s| *s.as_uuid()).collect();
                    row.updated_at = at;
                }
                CampaignEvent::CampaignCancelled { at, .. } => {
                    row.status = CampaignStatus::Cancelled.as_str().to_owned();
                    row.pause_reason = None;
                    row.resume_at = None;
                    row.finished_at = Some(at);
                    row.updated_at = at;
                }
                CampaignEvent::CampaignCompleted {
                    sent,
                    failed,
                    cancelled,
                    points_spent,
                    at,
                    ..
                } => {
                    if row.kind != CampaignKind::Broadcast.as_str() {
                        // A direct campaign's recipients: what it was given.
                        row.recipients =
                            count(sent.saturating_add(failed).saturating_add(cancelled));
                    }
                    row.status = CampaignStatus::Completed.as_str().to_owned();
                    row.pause_reason = None;
                    row.resume_at = None;
                    row.points_spent = Some(count(points_spent.value()));
                    row.finished_at = Some(at);
                    row.updated_at = at;
                }
            }
        }
        campaigns.flush(conn).await?;
        Ok(())
    }
}
