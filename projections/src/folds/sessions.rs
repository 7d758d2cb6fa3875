//! `sessions`: linked WhatsApp numbers as they are now (`sessions`) and the
//! send slots each was granted per local day (`session_days`).

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;
use wablast_domain::governor::SenderPacing;
use wablast_domain::session::{Session, SessionEvent, SessionStatus};
use wablast_domain::session_day::{SessionDay, SessionDayEvent};
use wablast_domain::types::Throttle;
use wablast_eventstore::RecordedEvent;

use super::{decode, id_of, missing_row, tenant_of};
use crate::rows::{Row, RowSet};
use crate::{LogStream, Projection, ProjectionError};

const NAME: &str = "sessions";

/// The `sessions` projection.
pub(crate) struct Sessions;

/// A row of `sessions`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SessionRow {
    id: Uuid,
    tenant_id: Uuid,
    name: String,
    driver: String,
    login: String,
    status: String,
    phone_number: Option<String>,
    daily_limit: i32,
    daily_limit_follows_trust_level: bool,
    trust_level: i16,
    auto_start: bool,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    #[serde(default)]
    reconnect_attempt: Option<i32>,
    #[serde(default)]
    reconnect_at: Option<DateTime<Utc>>,
    #[serde(default)]
    waiting_reason: Option<String>,
    #[serde(default)]
    waiting_until: Option<DateTime<Utc>>,
    #[serde(default)]
    engine_id: Option<String>,
    #[serde(default)]
    engine_since: Option<DateTime<Utc>>,
    throttle_min_ms: i32,
    throttle_max_ms: i32,
    #[serde(default)]
    pacing: Option<SenderPacing>,
}

impl Row for SessionRow {
    const TABLE: &'static str = "sessions";
    const KEY: &'static str = "id";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "tenant_id",
        "name",
        "driver",
        "login",
        "status",
        "phone_number",
        "daily_limit",
        "daily_limit_follows_trust_level",
        "trust_level",
        "auto_start",
        "last_error",
        "created_at",
        "updated_at",
        "reconnect_attempt",
        "reconnect_at",
        "waiting_reason",
        "waiting_until",
        "engine_id",
        "engine_since",
        "throttle_min_ms",
        "throttle_max_ms",
        "pacing",
    ];

    fn key(&self) -> Uuid {
        self.id
    }
}

/// Slots granted to one session on one local day.
#[derive(Serialize)]
struct DayCount {
    session_id: Uuid,
    local_date: NaiveDate,
    tenant_id: Uuid,
    sent: u32,
}

#[async_trait]
impl Projection for Sessions {
    fn name(&self) -> &'static str {
        NAME
    }

    fn streams(&self) -> &'static [LogStream] {
        &[LogStream::Events]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Session::TYPE, SessionDay::TYPE])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["sessions", "session_days"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        _stream: LogStream,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut sessions = RowSet::<SessionRow>::default();
        let session_ids = events
            .iter()
            .filter(|e| e.aggregate_type == Session::TYPE)
            .map(|e| id_of(NAME, e))
            .collect::<Result<Vec<_>, _>>()?;
        sessions.load(conn, session_ids).await?;
        // Latest count per (session, day): counts only grow within a day.
        let mut days: std::collections::BTreeMap<(Uuid, NaiveDate), DayCount> =
            std::collections::BTreeMap::new();

        for event in events {
            if event.aggregate_type == SessionDay::TYPE {
                let SessionDayEvent::SlotGranted {
                    session_id,
                    local_date,
                    count_after,
                    ..
                } = decode(NAME, event)?;
                let key = (*session_id.as_uuid(), local_date);
                let count = days.entry(key).or_insert(DayCount {
                    session_id: key.0,
                    local_date,
                    tenant_id: tenant_of(NAME, event)?,
                    sent: 0,
                });
                count.sent = count.sent.max(count_after);
                continue;
            }
            let id = id_of(NAME, event)?;
            let decoded: SessionEvent = decode(NAME, event)?;
            if let SessionEvent::SessionCreated {
                name,
                driver,
                login,
                phone_number,
                daily_limit,
                daily_limit_follows_trust_level,
                trust_level,
                auto_start,
                at,
                ..
            } = &decoded
            {
                sessions.put(SessionRow {
                    id,
                    tenant_id: tenant_of(NAME, event)?,
                    name: name.as_str().to_owned(),
                    driver: driver.as_str().to_owned(),
                    login: login.as_str().to_owned(),
                    status: SessionStatus::Idle.as_str().to_owned(),
                    phone_number: phone_number.as_ref().map(|p| p.as_str().to_owned()),
                    daily_limit: daily_limit.value() as i32,
                    daily_limit_follows_trust_level: *daily_limit_follows_trust_level,
                    trust_level: i16::from(trust_level.value()),
                    auto_start: *auto_start,
                    last_error: None,
                    created_at: *at,
                    updated_at: *at,
                    reconnect_attempt: None,
                    reconnect_at: None,
                    waiting_reason: None,
                    waiting_until: None,
                    engine_id: None,
                    engine_since: None,
                    throttle_min_ms: Throttle::DEFAULT.min_delay_ms() as i32,
                    throttle_max_ms: Throttle::DEFAULT.max_delay_ms() as i32,
                    pacing: None,
                });
                continue;
            }
            if let SessionEvent::SessionDeleted { .. } = decoded {
                sessions.remove(id);
                continue;
            }
            let row = sessions
                .get_mut(id)
                .ok_or_else(|| missing_row(NAME, event))?;
            if !matches!(
                decoded,
                SessionEvent::SessionReconnectScheduled { .. }
                    | SessionEvent::SessionWaiting { .. }
                    | SessionEvent::SessionHeld { .. }
                    | SessionEvent::SessionSettingsUpdated { .. }
                    | SessionEvent::TrustLevelChanged { .. }
                    | SessionEvent::WarmUpStarted { .. }
                    | SessionEvent::SenderRestricted { .. }
                    | SessionEvent::GovernorStateChanged { .. }
            ) {
                // A new status ends the engine's tries to connect, and the
                // send loop's wait.
                row.reconnect_attempt = None;
                row.reconnect_at = None;
                row.waiting_reason = None;
                row.waiting_until = None;
            }
            match decoded {
                // The governor's view is read from the session aggregate
                // (`GET /sessions/{id}` asks the capacity workflow).
                SessionEvent::SessionCreated { .. }
                | SessionEvent::SessionDeleted { .. }
                | SessionEvent::WarmUpStarted { .. }
                | SessionEvent::SenderRestricted { .. }
                | SessionEvent::GovernorStateChanged { .. } => {}
                SessionEvent::SessionWaiting { reason, until, at } => {
                    row.waiting_reason = reason.map(|r| r.as_str().to_owned());
                    row.waiting_until = reason.and(until);
                    row.updated_at = at;
                }
                SessionEvent::SessionReconnectScheduled {
                    attempt,
                    next_try_at,
                    error,
                    at,
                } => {
                    row.reconnect_attempt = Some(i32::try_from(attempt).unwrap_or(i32::MAX));
                    row.reconnect_at = Some(next_try_at);
                    row.last_error = Some(error);
                    row.updated_at = at;
                }
                SessionEvent::SessionStartRequested { at, .. } => {
                    row.status = SessionStatus::Starting.as_str().to_owned();
                    row.updated_at = at;
                }
                SessionEvent::SessionStopRequested { at, .. } => {
                    row.status = SessionStatus::Idle.as_str().to_owned();
                    row.engine_id = None;
                    row.engine_since = None;
                    row.updated_at = at;
                }
                SessionEvent::SessionLoggedOut { at, .. } => {
                    row.status = SessionStatus::LoggedOut.as_str().to_owned();
                    row.engine_id = None;
                    row.engine_since = None;
                    row.updated_at = at;
                }
                SessionEvent::SessionHeld { engine, at, .. } => {
                    row.engine_id = Some(engine);
                    row.engine_since = Some(at);
                    row.updated_at = at;
                }
                SessionEvent::SessionStatusChanged {
                    to,
                    phone_number,
                    error,
                    at,
                    ..
                } => {
                    row.status = to.as_str().to_owned();
                    if !to.is_running() {
                        // Failed or logged out: no engine runs it any more.
                        row.engine_id = None;
                        row.engine_since = None;
                    }
                    if let Some(phone) = phone_number {
                        row.phone_number = Some(phone.as_str().to_owned());
                    }
                    row.last_error = error;
                    row.updated_at = at;
                }
                SessionEvent::SessionSettingsUpdated {
                    name,
                    daily_limit,
                    daily_limit_follows_trust_level,
                    auto_start,
                    throttle,
                    pacing,
                    at,
                } => {
                    row.pacing = (pacing != SenderPacing::NONE).then_some(pacing);
                    row.throttle_min_ms = throttle.min_delay_ms() as i32;
                    row.throttle_max_ms = throttle.max_delay_ms() as i32;
                    row.name = name.as_str().to_owned();
                    row.daily_limit = daily_limit.value() as i32;
                    row.daily_limit_follows_trust_level = daily_limit_follows_trust_level;
                    row.auto_start = auto_start;
                    row.updated_at = at;
                }
                SessionEvent::TrustLevelChanged {
                    to,
                    daily_limit,
                    at,
                    ..
                } => {
                    row.trust_level = i16::from(to.value());
                    row.daily_limit = daily_limit.value() as i32;
                    row.updated_at = at;
                }
            }
        }

        sessions.flush(conn).await?;
        if !days.is_empty() {
            let days: Vec<&DayCount> = days.values().collect();
            sqlx::query(
                "insert into session_days (session_id, local_date, tenant_id, sent) \
                 select session_id, local_date, tenant_id, sent \
                 from jsonb_populate_recordset(null::session_days, $1) \
                 on conflict (session_id, local_date) \
                 do update set sent = greatest(session_days.sent, excluded.sent)",
            )
            .bind(Json(&days))
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}
