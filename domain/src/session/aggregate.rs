//! The session aggregate.
//!
//! Rules (each has a test below):
//! - Created once ([`SessionError::AlreadyExists`]); every other command on a
//!   session never created is [`SessionError::NotFound`].
//! - Creation is held to the plan: refused as `plan_limit_exceeded` when the
//!   tenant's sessions in use already reach the plan's maximum, or when the
//!   daily limit asked for is above the plan's per-session maximum. A pairing
//!   login needs a phone number (`validation_failed`).
//! - A daily limit not set by hand follows the trust level: it is the level's
//!   default ([`TrustLevel::default_daily_limit`]) capped by the plan's
//!   maximum, at creation and whenever an admin changes the level. One set
//!   by hand (at creation or in the settings) stays put when the level
//!   changes. There is no "back to the default" yet.
//! - Start, stop, logout and delete by the user, and the engine's status
//!   reports, follow the table in [`super::status`]; anything else is
//!   `invalid_state` naming the current status. A report of the current
//!   status changes nothing (no event).
//! - `ready` needs a phone number: the report's, or the one already known;
//!   a reported number replaces the known one (the phone is the authority).
//! - The last error is the reason of the latest failed / logged_out /
//!   disconnected report (failed and logged_out get a generic reason when
//!   the engine gives none); reaching `ready` clears it.
//! - Settings above the plan's daily limit are `plan_limit_exceeded`; a
//!   settings change that changes nothing emits nothing.
//! - Only an admin changes the trust level (`forbidden`).
//! - Deleted is final: every later command is `not_found`, and the session
//!   never changes again.
//! - Only a started session (a running status: an engine runs it) can be
//!   asked for a pairing code or sent simulator controls; simulator
//!   controls are for simulator sessions. Anything else is `invalid_state`
//!   ([`Session::check_engine_request`], [`Session::check_simulator_control`]).

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::{
    Driver, Fence, LoginMethod, SessionCommand, SessionError, SessionEvent, SessionName,
    SessionStatus, WaitReason,
};
use crate::governor::{
    Governor, GovernorLimits, GovernorState, Restriction, RestrictionKind, SenderPacing,
    WarmUpReason,
};
use crate::types::phone::Phone;
use crate::types::{DailyLimit, SessionId, Throttle, TrustLevel};

/// The reason recorded when the engine reports `failed` without one.
pub const DEFAULT_FAILURE_REASON: &str = "the driver failed without giving a reason";
/// The reason recorded when the engine reports `logged_out` without one.
pub const DEFAULT_LOGGED_OUT_REASON: &str =
    "logged out by WhatsApp or from the phone's linked devices";

/// One linked WhatsApp number. `Default` is "not created yet".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// `None` until created.
    id: Option<SessionId>,
    /// `None` until created.
    name: Option<SessionName>,
    driver: Driver,
    login: LoginMethod,
    status: SessionStatus,
    phone_number: Option<Phone>,
    daily_limit: DailyLimit,
    daily_limit_follows_trust_level: bool,
    trust_level: TrustLevel,
    auto_start: bool,
    last_error: Option<String>,
    deleted: bool,
    updated_at: Option<DateTime<Utc>>,
    /// Whether the number is linked: authenticated once and not logged out
    /// since. A stop keeps the link; only a logout (ours, or WhatsApp's)
    /// forgets it.
    #[serde(default)]
    linked: bool,
    /// The engine's tries to connect it: which one failed last, and when
    /// the next is. `None` once its status moves.
    #[serde(default)]
    reconnect: Option<Reconnect>,
    /// Why its send loop waits, while it does.
    #[serde(default)]
    waiting: Option<Waiting>,
    /// The engine that took its lease last, and the lease's fence.
    #[serde(default)]
    holder: Option<Holder>,
    /// The pause between two of its single sends.
    #[serde(default)]
    throttle: Throttle,
    /// The sender governor's record: warm-up and restriction.
    #[serde(default)]
    governor: Governor,
    /// Its own pacing, set by its owner.
    #[serde(default)]
    pacing: SenderPacing,
}

/// The engine holding a session's lease, as it recorded when it took it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The engine.
    pub engine: String,
    /// The lease's fence.
    pub fence: Fence,
    /// When it took the lease.
    pub since: DateTime<Utc>,
}

/// Why a session's send loop waits, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    /// Why.
    pub reason: WaitReason,
    /// Until when, where known.
    pub until: Option<DateTime<Utc>>,
}

/// The engine's tries to connect a session's driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconnect {
    /// Which try failed last (1, 2, ...).
    pub attempt: u32,
    /// When the next try is.
    pub next_try_at: DateTime<Utc>,
}

impl Session {
    /// The sender governor's record.
    pub fn governor(&self) -> &Governor {
        &self.governor
    }

    /// The caps of a send at `at`: the governor's ([`Governor::limits`]),
    /// held to the session's own pacing too ([`SenderPacing::tighten`]).
    pub fn governor_limits(&self, at: DateTime<Utc>) -> GovernorLimits {
        self.pacing
            .tighten(self.governor.limits(at, self.daily_limit, self.trust_level))
    }

    /// Its own pacing.
    pub fn pacing(&self) -> SenderPacing {
        self.pacing
    }

    /// The governor's state at `at`, and until when it holds where known.
    pub fn governor_state(&self, at: DateTime<Utc>) -> (GovernorState, Option<DateTime<Utc>>) {
        self.governor
            .state_at(at, self.daily_limit, self.trust_level)
    }

    /// The session's id, once created.
    pub fn id(&self) -> Option<SessionId> {
        self.id
    }

    /// Whether the session was created (deleted ones included).
    pub fn exists(&self) -> bool {
        self.id.is_some()
    }

    /// Whether the session was deleted (for good).
    pub fn is_deleted(&self) -> bool {
        self.deleted
    }

    /// What the user calls it, once created.
    pub fn name(&self) -> Option<&SessionName> {
        self.name.as_ref()
    }

    /// What connects it to WhatsApp.
    pub fn driver(&self) -> Driver {
        self.driver
    }

    /// How it logs in.
    pub fn login(&self) -> LoginMethod {
        self.login
    }

    /// Where it is in its life.
    pub fn status(&self) -> SessionStatus {
        self.status
    }

    /// Whether it can send now: ready and not deleted.
    pub fn is_ready(&self) -> bool {
        self.status == SessionStatus::Ready && !self.deleted
    }

    /// The pause between two of its single sends (a campaign's messages
    /// keep their campaign's).
    pub fn throttle(&self) -> Throttle {
        self.throttle
    }

    /// The most messages it may send in one local day.
    pub fn daily_limit(&self) -> DailyLimit {
        self.daily_limit
    }

    /// Whether the daily limit is the trust level's default (and moves with
    /// it) rather than one set by hand.
    pub fn daily_limit_follows_trust_level(&self) -> bool {
        self.daily_limit_follows_trust_level
    }

    /// How far the number is trusted.
    pub fn trust_level(&self) -> TrustLevel {
        self.trust_level
    }

    /// Whether its number is linked: authenticated and not logged out
    /// since (stopped or disconnected ones included), so a start restores
    /// the link instead of asking for a new QR or pairing code.
    pub fn is_linked(&self) -> bool {
        self.linked
            || matches!(
                self.status,
                SessionStatus::Authenticated | SessionStatus::Ready | SessionStatus::Disconnected
            )
    }

    /// Why its send loop waits, while it does.
    pub fn waiting(&self) -> Option<Waiting> {
        self.waiting
    }

    /// The engine that took its lease last (it may have died since: its
    /// heartbeat says).
    pub fn holder(&self) -> Option<&Holder> {
        self.holder.as_ref()
    }

    /// The engine's tries to connect it, while it is trying again.
    pub fn reconnect(&self) -> Option<Reconnect> {
        self.reconnect
    }

    /// The linked number (always known when ready).
    pub fn phone_number(&self) -> Option<&Phone> {
        self.phone_number.as_ref()
    }

    /// Whether the engine starts it on boot.
    pub fn auto_start(&self) -> bool {
        self.auto_start
    }

    /// Why it last stopped working (failed, logged out, disconnected);
    /// cleared once ready again.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// When it last changed.
    pub fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.updated_at
    }

    /// Whether the engine running the session may be asked something about
    /// it (a pairing code, a simulator control): the session exists and is
    /// started. An idle, stopped, failed or logged-out session has no engine
    /// to ask ([`SessionError::NotStarted`]).
    pub fn check_engine_request(&self) -> Result<(), SessionError> {
        if self.deleted || !self.exists() {
            return Err(SessionError::NotFound);
        }
        if !self.status.is_running() {
            return Err(SessionError::NotStarted {
                status: self.status,
            });
        }
        Ok(())
    }

    /// Whether simulator controls (a scan, an inbound message) apply: a
    /// started simulator session.
    pub fn check_simulator_control(&self) -> Result<(), SessionError> {
        if self.deleted || !self.exists() {
            return Err(SessionError::NotFound);
        }
        if self.driver != Driver::Simulator {
            return Err(SessionError::NotSimulator {
                driver: self.driver,
            });
        }
        self.check_engine_request()
    }

    /// Decides a command: the one event it leads to, none when it changes
    /// nothing, or the refusal.
    fn decide(&self, command: SessionCommand) -> Result<Option<SessionEvent>, SessionError> {
        let creating = matches!(command, SessionCommand::CreateSession { .. });
        if self.deleted || (!self.exists() && !creating) {
            return Err(SessionError::NotFound);
        }
        let from = self.status;
        let event = match command {
            SessionCommand::CreateSession {
                session_id,
                name,
                driver,
                login,
                phone_number,
                daily_limit,
                auto_start,
                warm_up,
                sessions_in_use,
                plan_max_sessions,
                plan_max_daily_limit,
                at,
            } => {
                if self.exists() {
                    return Err(SessionError::AlreadyExists);
                }
                if login == LoginMethod::Pairing && phone_number.is_none() {
                    return Err(SessionError::PairingNeedsPhoneNumber);
                }
                if sessions_in_use >= plan_max_sessions {
                    return Err(SessionError::SessionLimitReached {
                        in_use: sessions_in_use,
                        max: plan_max_sessions,
                    });
                }
                ensure_within_plan(daily_limit, plan_max_daily_limit)?;
                let trust_level = TrustLevel::NEW;
                let (daily_limit, daily_limit_follows_trust_level) = match daily_limit {
                    Some(limit) => (limit, false),
                    None => (default_limit(trust_level, plan_max_daily_limit), true),
                };
                SessionEvent::SessionCreated {
                    session_id,
                    name,
                    driver,
                    login,
                    phone_number,
                    daily_limit,
                    daily_limit_follows_trust_level,
                    trust_level,
                    auto_start,
                    warm_up: warm_up.unwrap_or_else(|| Governor::warms_up_by_default(driver)),
                    at,
                }
            }
            SessionCommand::ObserveSending { last_sent_at, at } => {
                let governor = &self.governor;
                if !governor.warm_up || Governor::first_day(self.trust_level).is_none() {
                    return Ok(None);
                }
                let reason = match (governor.warm_up_since, last_sent_at) {
                    (None, _) => WarmUpReason::FirstSend,
                    (Some(_), Some(last)) if at - last >= Governor::IDLE_RESTART => {
                        WarmUpReason::Idle
                    }
                    // Warm-up started, and the number sent in the last
                    // days (or nothing since warm-up started, which the
                    // schedule already counts from its start).
                    (Some(since), None) if at - since >= Governor::IDLE_RESTART => {
                        WarmUpReason::Idle
                    }
                    _ => return Ok(None),
                };
                SessionEvent::WarmUpStarted { since: at, reason }
            }
            SessionCommand::ReportRestriction { kind, until, at } => {
                let until = until
                    .filter(|u| *u > at)
                    .unwrap_or_else(|| at + kind.default_length());
                let restriction = Restriction {
                    kind,
                    since: at,
                    until,
                };
                if self
                    .governor
                    .restriction_at(at)
                    .is_some_and(|r| r.kind == kind && r.until >= until)
                {
                    // Already restricted as long by the same signal.
                    return Ok(None);
                }
                SessionEvent::SenderRestricted { restriction }
            }
            SessionCommand::ReportGovernorState { at } => {
                let (to, until) = self.governor_state(at);
                if to == self.governor.recorded_state {
                    return Ok(None);
                }
                SessionEvent::GovernorStateChanged {
                    from: self.governor.recorded_state,
                    to,
                    until,
                    at,
                }
            }
            SessionCommand::StartSession { at } => {
                if !from.can_start() {
                    return Err(SessionError::CannotStart { status: from });
                }
                SessionEvent::SessionStartRequested { from, at }
            }
            SessionCommand::StopSession { at } => {
                if !from.can_stop() {
                    return Err(SessionError::CannotStop { status: from });
                }
                SessionEvent::SessionStopRequested { from, at }
            }
            SessionCommand::LogoutSession { at } => {
                if !from.can_log_out() {
                    return Err(SessionError::CannotLogOut { status: from });
                }
                SessionEvent::SessionLoggedOut { from, at }
            }
            SessionCommand::DeleteSession { at } => SessionEvent::SessionDeleted { from, at },
            SessionCommand::HoldSession { engine, fence, at } => {
                let holder = self.holder.as_ref().map_or(Fence::default(), |h| h.fence);
                if fence < holder {
                    return Err(SessionError::LeaseLost { fence, holder });
                }
                if !from.is_running() {
                    return Err(SessionError::NotStarted { status: from });
                }
                if fence == holder && self.holder.as_ref().is_some_and(|h| h.engine == engine) {
                    return Ok(None);
                }
                SessionEvent::SessionHeld { engine, fence, at }
            }
            SessionCommand::FromHolder { fence, report } => {
                let holder = self.holder.as_ref().map_or(Fence::default(), |h| h.fence);
                if fence != holder {
                    return Err(SessionError::LeaseLost { fence, holder });
                }
                if !matches!(
                    *report,
                    SessionCommand::ReportStatus { .. }
                        | SessionCommand::ReportReconnect { .. }
                        | SessionCommand::ReportWaiting { .. }
                        | SessionCommand::ObserveSending { .. }
                        | SessionCommand::ReportRestriction { .. }
                        | SessionCommand::ReportGovernorState { .. }
                ) {
                    return Err(SessionError::NotAReport);
                }
                return self.decide(*report);
            }
            SessionCommand::ReportWaiting { reason, until, at } => {
                let now = self.waiting.map(|w| (w.reason, w.until));
                if now == reason.map(|r| (r, until)) || (now.is_none() && reason.is_none()) {
                    return Ok(None);
                }
                SessionEvent::SessionWaiting { reason, until, at }
            }
            SessionCommand::ReportReconnect {
                attempt,
                next_try_at,
                error,
                at,
            } => {
                if !matches!(from, SessionStatus::Starting | SessionStatus::Disconnected) {
                    return Err(SessionError::NotReconnecting { status: from });
                }
                SessionEvent::SessionReconnectScheduled {
                    attempt,
                    next_try_at,
                    error,
                    at,
                }
            }
            SessionCommand::ReportStatus {
                status: to,
                phone_number,
                error,
                reason: why,
                at,
            } => {
                if to == from {
                    return Ok(None);
                }
                if !from.can_report(to) {
                    return Err(SessionError::InvalidTransition { from, to });
                }
                let phone_number = phone_number.or_else(|| self.phone_number.clone());
                if to == SessionStatus::Ready && phone_number.is_none() {
                    return Err(SessionError::ReadyWithoutPhoneNumber);
                }
                let reason = error.map(|e| e.trim().to_owned()).filter(|e| !e.is_empty());
                let error = match to {
                    SessionStatus::Ready => None,
                    SessionStatus::Failed => {
                        Some(reason.unwrap_or_else(|| DEFAULT_FAILURE_REASON.to_owned()))
                    }
                    SessionStatus::LoggedOut => {
                        Some(reason.unwrap_or_else(|| DEFAULT_LOGGED_OUT_REASON.to_owned()))
                    }
                    _ => reason.or_else(|| self.last_error.clone()),
                };
                SessionEvent::SessionStatusChanged {
                    from,
                    to,
                    phone_number,
                    error,
                    // Ready again: nothing is wrong any more.
                    reason: why.filter(|_| to != SessionStatus::Ready),
                    at,
                }
            }
            SessionCommand::UpdateSettings {
                name,
                daily_limit,
                auto_start,
                throttle,
                pacing,
                plan_max_daily_limit,
                at,
            } => {
                ensure_within_plan(daily_limit, plan_max_daily_limit)?;
                let Some(name) = name.or_else(|| self.name.clone()) else {
                    // Unreachable: a created session has a name.
                    return Err(SessionError::NotFound);
                };
                let (daily_limit, daily_limit_follows_trust_level) = match daily_limit {
                    Some(limit) => (limit, false),
                    None => (self.daily_limit, self.daily_limit_follows_trust_level),
                };
                let auto_start = auto_start.unwrap_or(self.auto_start);
                let throttle = throttle.unwrap_or(self.throttle);
                let pacing = pacing.unwrap_or(self.pacing);
                if Some(&name) == self.name.as_ref()
                    && daily_limit == self.daily_limit
                    && daily_limit_follows_trust_level == self.daily_limit_follows_trust_level
                    && auto_start == self.auto_start
                    && throttle == self.throttle
                    && pacing == self.pacing
                {
                    return Ok(None);
                }
                SessionEvent::SessionSettingsUpdated {
                    name,
                    daily_limit,
                    daily_limit_follows_trust_level,
                    auto_start,
                    throttle,
                    pacing,
                    at,
                }
            }
            SessionCommand::SetTrustLevel {
                level,
                by_admin,
                plan_max_daily_limit,
                at,
            } => {
                if !by_admin {
                    return Err(SessionError::Forbidden);
                }
                if level == self.trust_level {
                    return Ok(None);
                }
                let daily_limit = if self.daily_limit_follows_trust_level {
                    default_limit(level, plan_max_daily_limit)
                } else {
                    self.daily_limit
                };
                SessionEvent::TrustLevelChanged {
                    from: self.trust_level,
                    to: level,
                    daily_limit,
                    at,
                }
            }
        };
        Ok(Some(event))
    }
}

/// Refuses a daily limit above the plan's maximum.
fn ensure_within_plan(
    requested: Option<DailyLimit>,
    plan_max: DailyLimit,
) -> Result<(), SessionError> {
    match requested {
        Some(requested) if requested > plan_max => Err(SessionError::DailyLimitAbovePlan {
            requested,
            max: plan_max,
        }),
        _ => Ok(()),
    }
}

/// The daily limit of a session that follows its trust level.
fn default_limit(level: TrustLevel, plan_max: DailyLimit) -> DailyLimit {
    level.default_daily_limit().min(plan_max)
}

impl Aggregate for Session {
    const TYPE: &'static str = "session";
    type Command = SessionCommand;
    type Event = SessionEvent;
    type Error = SessionError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        if let Some(event) = self.decide(command)? {
            let disconnected_at = match &event {
                SessionEvent::SessionStatusChanged {
                    to: SessionStatus::Disconnected,
                    at,
                    ..
                } => Some(*at),
                _ => None,
            };
            sink.write(event, self).await;
            // A storm of disconnects holds the sender back for a while,
            // decided with the disconnect that made it.
            if let Some(at) = disconnected_at
                && self.governor.storm_at(at)
            {
                let kind = RestrictionKind::DisconnectStorm;
                let restriction = Restriction {
                    kind,
                    since: at,
                    until: at + kind.default_length(),
                };
                sink.write(SessionEvent::SenderRestricted { restriction }, self)
                    .await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        if matches!(
            event,
            SessionEvent::SessionStartRequested { .. }
                | SessionEvent::SessionStopRequested { .. }
                | SessionEvent::SessionLoggedOut { .. }
                | SessionEvent::SessionDeleted { .. }
                | SessionEvent::SessionStatusChanged { .. }
        ) {
            // A new status ends the tries it was about, and the wait.
            self.reconnect = None;
            self.waiting = None;
        }
        match event {
            SessionEvent::SessionCreated {
                session_id,
                name,
                driver,
                login,
                phone_number,
                daily_limit,
                daily_limit_follows_trust_level,
                trust_level,
                auto_start,
                warm_up,
                at,
            } => {
                self.governor.warm_up = warm_up;
                self.id = Some(session_id);
                self.name = Some(name);
                self.driver = driver;
                self.login = login;
                self.status = SessionStatus::Idle;
                self.phone_number = phone_number;
                self.daily_limit = daily_limit;
                self.daily_limit_follows_trust_level = daily_limit_follows_trust_level;
                self.trust_level = trust_level;
                self.auto_start = auto_start;
                self.updated_at = Some(at);
            }
            SessionEvent::SessionStartRequested { at, .. } => {
                self.status = SessionStatus::Starting;
                self.updated_at = Some(at);
            }
            SessionEvent::SessionStopRequested { at, .. } => {
                self.status = SessionStatus::Idle;
                self.updated_at = Some(at);
            }
            SessionEvent::SessionLoggedOut { at, .. } => {
                self.status = SessionStatus::LoggedOut;
                self.linked = false;
                self.updated_at = Some(at);
            }
            SessionEvent::SessionDeleted { at, .. } => {
                self.deleted = true;
                self.updated_at = Some(at);
            }
            SessionEvent::SessionStatusChanged {
                to,
                phone_number,
                error,
                at,
                ..
            } => {
                match to {
                    SessionStatus::Authenticated | SessionStatus::Ready => self.linked = true,
                    SessionStatus::LoggedOut => self.linked = false,
                    _ => {}
                }
                if to == SessionStatus::Disconnected {
                    self.governor.note_disconnect(at);
                }
                self.status = to;
                self.phone_number = phone_number;
                self.last_error = error;
                self.updated_at = Some(at);
            }
            SessionEvent::SessionWaiting { reason, until, at } => {
                self.waiting = reason.map(|reason| Waiting { reason, until });
                self.updated_at = Some(at);
            }
            SessionEvent::SessionHeld { engine, fence, at } => {
                self.holder = Some(Holder {
                    engine,
                    fence,
                    since: at,
                });
            }
            SessionEvent::SessionReconnectScheduled {
                attempt,
                next_try_at,
                error,
                at,
            } => {
                self.reconnect = Some(Reconnect {
                    attempt,
                    next_try_at,
                });
                self.last_error = Some(error);
                self.updated_at = Some(at);
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
                self.throttle = throttle;
                self.pacing = pacing;
                self.name = Some(name);
                self.daily_limit = daily_limit;
                self.daily_limit_follows_trust_level = daily_limit_follows_trust_level;
                self.auto_start = auto_start;
                self.updated_at = Some(at);
            }
            SessionEvent::WarmUpStarted { since, .. } => {
                self.governor.warm_up_since = Some(since);
            }
            SessionEvent::SenderRestricted { restriction } => {
                self.governor.restrict(restriction);
            }
            SessionEvent::GovernorStateChanged { to, .. } => {
                self.governor.recorded_state = to;
            }
            SessionEvent::TrustLevelChanged {
                to,
                daily_limit,
                at,
                ..
            } => {
                self.trust_level = to;
                self.daily_limit = daily_limit;
                self.updated_at = Some(at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::session::StatusReason;
    use crate::types::phone::Region;

    type SessionTest = TestFramework<Session>;
    use SessionStatus::{
        Authenticated, Disconnected, Failed, Idle, LoggedOut, Pairing, Qr, Ready, Starting,
    };

    fn at(minute: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 25, 9, 0, 0).unwrap() + Duration::minutes(minute)
    }

    fn phone() -> Phone {
        Phone::parse("0812 3456 7890", Region::ID).unwrap()
    }

    fn other_phone() -> Phone {
        Phone::parse("0813 9876 5432", Region::ID).unwrap()
    }

    fn id() -> SessionId {
        SessionId::from_uuid(uuid::Uuid::from_u128(7))
    }

    fn name(s: &str) -> SessionName {
        SessionName::parse(s).unwrap()
    }

    fn limit(n: u64) -> DailyLimit {
        DailyLimit::parse(n).unwrap()
    }

    fn level(n: u64) -> TrustLevel {
        TrustLevel::parse(n).unwrap()
    }

    fn create() -> SessionCommand {
        SessionCommand::CreateSession {
            session_id: id(),
            name: name("CS Jakarta"),
            driver: Driver::Simulator,
            login: LoginMethod::Qr,
            phone_number: None,
            daily_limit: None,
            auto_start: false,
            warm_up: None,
            sessions_in_use: 0,
            plan_max_sessions: 3,
            plan_max_daily_limit: limit(500),
            at: at(0),
        }
    }

    fn created() -> SessionEvent {
        SessionEvent::SessionCreated {
            session_id: id(),
            name: name("CS Jakarta"),
            driver: Driver::Simulator,
            login: LoginMethod::Qr,
            phone_number: None,
            daily_limit: limit(50),
            daily_limit_follows_trust_level: true,
            trust_level: TrustLevel::NEW,
            auto_start: false,
            warm_up: false,
            at: at(0),
        }
    }

    /// The history of a created session now in `status` (linked to
    /// [`phone`] when the status needs a link).
    fn in_status(status: SessionStatus) -> Vec<SessionEvent> {
        let mut events = vec![created()];
        match status {
            Idle => {}
            Starting => events.push(SessionEvent::SessionStartRequested {
                from: Idle,
                at: at(1),
            }),
            LoggedOut => events.push(SessionEvent::SessionLoggedOut {
                from: Idle,
                at: at(1),
            }),
            to => events.push(SessionEvent::SessionStatusChanged {
                from: Starting,
                to,
                phone_number: Some(phone()),
                error: None,
                reason: None,
                at: at(1),
            }),
        }
        events
    }

    fn report(status: SessionStatus) -> SessionCommand {
        SessionCommand::ReportStatus {
            status,
            phone_number: None,
            error: None,
            reason: None,
            at: at(2),
        }
    }

    fn changed(from: SessionStatus, to: SessionStatus, error: Option<&str>) -> SessionEvent {
        SessionEvent::SessionStatusChanged {
            from,
            to,
            phone_number: Some(phone()),
            error: error.map(str::to_owned),
            reason: None,
            at: at(2),
        }
    }

    fn fold(events: Vec<SessionEvent>) -> Session {
        let mut session = Session::default();
        for event in events {
            session.apply(event);
        }
        session
    }

    #[test]
    fn only_a_started_session_takes_engine_requests() {
        for status in SessionStatus::ALL {
            let session = fold(in_status(status));
            let answer = session.check_engine_request();
            if status.is_running() {
                assert_eq!(answer, Ok(()), "{status}");
            } else {
                assert_eq!(answer, Err(SessionError::NotStarted { status }), "{status}");
                assert_eq!(answer.unwrap_err().code(), "invalid_state");
            }
        }
        assert_eq!(
            Session::default().check_engine_request(),
            Err(SessionError::NotFound)
        );
        let mut deleted = in_status(Ready);
        deleted.push(SessionEvent::SessionDeleted {
            from: Ready,
            at: at(3),
        });
        assert_eq!(
            fold(deleted).check_engine_request(),
            Err(SessionError::NotFound)
        );
    }

    #[test]
    fn simulator_controls_are_for_started_simulator_sessions() {
        assert_eq!(fold(in_status(Qr)).check_simulator_control(), Ok(()));
        assert_eq!(
            fold(in_status(Idle)).check_simulator_control(),
            Err(SessionError::NotStarted { status: Idle })
        );
        let mut waha = in_status(Idle);
        if let SessionEvent::SessionCreated { driver, .. } = &mut waha[0] {
            *driver = Driver::Waha;
        }
        let refused = fold(waha).check_simulator_control().unwrap_err();
        assert_eq!(
            refused,
            SessionError::NotSimulator {
                driver: Driver::Waha
            }
        );
        assert_eq!(refused.code(), "invalid_state");
    }

    fn settings(
        name: Option<&str>,
        daily_limit: Option<u64>,
        auto_start: Option<bool>,
    ) -> SessionCommand {
        SessionCommand::UpdateSettings {
            name: name.map(self::name),
            daily_limit: daily_limit.map(limit),
            auto_start,
            throttle: None,
            pacing: None,
            plan_max_daily_limit: limit(500),
            at: at(3),
        }
    }

    #[test]
    fn a_pacing_is_a_setting_whose_caps_hold_with_the_governors() {
        let mut session = folded(in_status(Ready));
        assert_eq!(session.pacing(), SenderPacing::NONE);
        let pacing = SenderPacing {
            break_every: Some(5),
            per_minute: Some(2),
            per_hour: None,
            new_contacts_per_day: Some(3),
        };
        let change = |pacing| SessionCommand::UpdateSettings {
            name: None,
            daily_limit: None,
            auto_start: None,
            throttle: None,
            pacing,
            plan_max_daily_limit: limit(500),
            at: at(3),
        };
        let event = session.decide(change(Some(pacing))).unwrap();
        assert!(
            matches!(&event, Some(SessionEvent::SessionSettingsUpdated { pacing: p, .. }) if *p == pacing),
            "{event:?}"
        );
        session.apply(event.unwrap());
        assert_eq!(session.pacing(), pacing);
        assert_eq!(session.decide(change(Some(pacing))).unwrap(), None);
        assert_eq!(session.decide(change(None)).unwrap(), None, "kept");
        let limits = session.governor_limits(at(4));
        assert_eq!(
            (
                limits.per_minute,
                limits.per_hour,
                limits.new_contacts_per_day
            ),
            (Some(2), None, Some(3))
        );
    }

    #[test]
    fn a_throttle_for_single_sends_is_a_setting_kept_until_changed() {
        let quick = Throttle::new(0, 500).unwrap();
        let mut session = folded(in_status(Ready));
        assert_eq!(session.throttle(), Throttle::DEFAULT);
        let change = |throttle| SessionCommand::UpdateSettings {
            name: None,
            daily_limit: None,
            auto_start: None,
            throttle,
            pacing: None,
            plan_max_daily_limit: limit(500),
            at: at(3),
        };
        let event = session.decide(change(Some(quick))).unwrap();
        assert!(
            matches!(&event, Some(SessionEvent::SessionSettingsUpdated { throttle, .. }) if *throttle == quick),
            "{event:?}"
        );
        session.apply(event.unwrap());
        assert_eq!(session.throttle(), quick);
        assert_eq!(
            session.decide(change(Some(quick))).unwrap(),
            None,
            "the same: nothing"
        );
        assert_eq!(session.decide(change(None)).unwrap(), None, "kept");
    }

    fn trust(to: u64, by_admin: bool, plan_max: u64) -> SessionCommand {
        SessionCommand::SetTrustLevel {
            level: level(to),
            by_admin,
            plan_max_daily_limit: limit(plan_max),
            at: at(4),
        }
    }

    // --- the link ---

    fn folded(events: Vec<SessionEvent>) -> Session {
        let mut session = Session::default();
        for event in events {
            session.apply(event);
        }
        session
    }

    #[test]
    fn a_stop_keeps_the_link_and_only_a_logout_forgets_it() {
        let mut events = in_status(Ready);
        events.push(SessionEvent::SessionStopRequested {
            from: Ready,
            at: at(2),
        });
        assert!(folded(events.clone()).is_linked(), "stopped: still linked");
        events.push(SessionEvent::SessionStartRequested {
            from: Idle,
            at: at(3),
        });
        assert!(folded(events.clone()).is_linked(), "starting again: linked");
        events.push(SessionEvent::SessionLoggedOut {
            from: Starting,
            at: at(4),
        });
        assert!(!folded(events).is_linked(), "logged out: the link is gone");
        assert!(!folded(in_status(Qr)).is_linked(), "never scanned");
        let mut by_whatsapp = in_status(Ready);
        by_whatsapp.push(changed(Ready, LoggedOut, Some("logged out")));
        assert!(
            !folded(by_whatsapp).is_linked(),
            "logged out from the phone"
        );
    }

    #[test]
    fn the_engines_tries_to_connect_show_until_the_status_moves() {
        let retry = |attempt| SessionCommand::ReportReconnect {
            attempt,
            next_try_at: at(10),
            error: "the WAHA server unreachable".to_owned(),
            at: at(3),
        };
        let scheduled = SessionEvent::SessionReconnectScheduled {
            attempt: 2,
            next_try_at: at(10),
            error: "the WAHA server unreachable".to_owned(),
            at: at(3),
        };
        for from in [Starting, Disconnected] {
            SessionTest::with(())
                .given(in_status(from))
                .when(retry(2))
                .then_expect_events(vec![scheduled.clone()]);
        }
        for from in [Idle, Qr, Ready, Failed, LoggedOut] {
            SessionTest::with(())
                .given(in_status(from))
                .when(retry(1))
                .then_expect_error(SessionError::NotReconnecting { status: from });
        }
        let mut events = in_status(Disconnected);
        events.push(scheduled);
        let retrying = folded(events.clone());
        assert_eq!(retrying.reconnect().map(|r| r.attempt), Some(2));
        assert_eq!(retrying.status(), Disconnected);
        events.push(changed(Disconnected, Qr, None));
        assert_eq!(
            folded(events).reconnect(),
            None,
            "a new status ends the tries"
        );
    }

    // --- creation ---

    #[test]
    fn creates_an_idle_session_with_the_default_daily_limit_of_a_new_number() {
        SessionTest::with(())
            .given_no_previous_events()
            .when(create())
            .then_expect_events(vec![created()]);
    }

    #[test]
    fn the_default_daily_limit_is_capped_by_the_plan() {
        let mut command = create();
        if let SessionCommand::CreateSession {
            plan_max_daily_limit,
            ..
        } = &mut command
        {
            *plan_max_daily_limit = limit(30);
        }
        let mut expected = created();
        if let SessionEvent::SessionCreated { daily_limit, .. } = &mut expected {
            *daily_limit = limit(30);
        }
        SessionTest::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_events(vec![expected]);
    }

    #[test]
    fn creates_a_session_with_the_daily_limit_asked_for_which_no_longer_follows_the_trust_level() {
        let mut command = create();
        if let SessionCommand::CreateSession { daily_limit, .. } = &mut command {
            *daily_limit = Some(limit(500));
        }
        let mut expected = created();
        if let SessionEvent::SessionCreated {
            daily_limit,
            daily_limit_follows_trust_level,
            ..
        } = &mut expected
        {
            *daily_limit = limit(500);
            *daily_limit_follows_trust_level = false;
        }
        SessionTest::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_events(vec![expected]);
    }

    #[test]
    fn refuses_a_daily_limit_above_the_plan_maximum_at_creation() {
        let mut command = create();
        if let SessionCommand::CreateSession { daily_limit, .. } = &mut command {
            *daily_limit = Some(limit(501));
        }
        SessionTest::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(SessionError::DailyLimitAbovePlan {
                requested: limit(501),
                max: limit(500),
            });
    }

    #[test]
    fn refuses_to_create_a_session_when_the_plan_has_no_session_left() {
        let mut command = create();
        if let SessionCommand::CreateSession {
            sessions_in_use, ..
        } = &mut command
        {
            *sessions_in_use = 3;
        }
        SessionTest::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(SessionError::SessionLimitReached { in_use: 3, max: 3 });
    }

    #[test]
    fn creates_the_last_session_the_plan_allows() {
        let mut command = create();
        if let SessionCommand::CreateSession {
            sessions_in_use, ..
        } = &mut command
        {
            *sessions_in_use = 2;
        }
        SessionTest::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_events(vec![created()]);
    }

    #[test]
    fn refuses_a_pairing_login_without_a_phone_number() {
        let mut command = create();
        if let SessionCommand::CreateSession { login, .. } = &mut command {
            *login = LoginMethod::Pairing;
        }
        SessionTest::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(SessionError::PairingNeedsPhoneNumber);
    }

    #[test]
    fn creates_a_pairing_session_with_its_phone_number() {
        let mut command = create();
        if let SessionCommand::CreateSession {
            login,
            phone_number,
            driver,
            auto_start,
            ..
        } = &mut command
        {
            *login = LoginMethod::Pairing;
            *phone_number = Some(phone());
            *driver = Driver::Native;
            *auto_start = true;
        }
        let mut expected = created();
        if let SessionEvent::SessionCreated {
            login,
            phone_number,
            driver,
            auto_start,
            warm_up,
            ..
        } = &mut expected
        {
            *login = LoginMethod::Pairing;
            *phone_number = Some(phone());
            *driver = Driver::Native;
            *auto_start = true;
            // Every driver but the simulator warms up unless told.
            *warm_up = true;
        }
        SessionTest::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_events(vec![expected]);
    }

    #[test]
    fn refuses_to_create_a_session_twice() {
        SessionTest::with(())
            .given(vec![created()])
            .when(create())
            .then_expect_error(SessionError::AlreadyExists);
    }

    #[test]
    fn refuses_every_command_but_create_on_a_session_never_created() {
        for command in every_command_but_create() {
            SessionTest::with(())
                .given_no_previous_events()
                .when(command)
                .then_expect_error(SessionError::NotFound);
        }
    }

    // --- start, stop, logout, delete ---

    #[test]
    fn starts_an_idle_session() {
        SessionTest::with(())
            .given(in_status(Idle))
            .when(SessionCommand::StartSession { at: at(2) })
            .then_expect_events(vec![SessionEvent::SessionStartRequested {
                from: Idle,
                at: at(2),
            }]);
    }

    #[test]
    fn starts_a_logged_out_session_again_for_a_new_login() {
        SessionTest::with(())
            .given(in_status(LoggedOut))
            .when(SessionCommand::StartSession { at: at(2) })
            .then_expect_events(vec![SessionEvent::SessionStartRequested {
                from: LoggedOut,
                at: at(2),
            }]);
    }

    #[test]
    fn refuses_to_start_a_ready_session_naming_its_status() {
        let error = SessionTest::with(())
            .given(in_status(Ready))
            .when(SessionCommand::StartSession { at: at(2) })
            .inspect_result()
            .unwrap_err();
        assert_eq!(error, SessionError::CannotStart { status: Ready });
        assert_eq!(error.code(), "invalid_state");
        assert_eq!(error.to_string(), "cannot start a session that is ready");
    }

    #[test]
    fn stops_a_ready_session_without_logging_out() {
        SessionTest::with(())
            .given(in_status(Ready))
            .when(SessionCommand::StopSession { at: at(2) })
            .then_expect_events(vec![SessionEvent::SessionStopRequested {
                from: Ready,
                at: at(2),
            }]);
        let mut events = in_status(Ready);
        events.push(SessionEvent::SessionStopRequested {
            from: Ready,
            at: at(2),
        });
        let session = fold(events);
        assert_eq!(session.status(), Idle);
        assert_eq!(session.phone_number(), Some(&phone()));
    }

    #[test]
    fn refuses_to_stop_an_idle_session() {
        SessionTest::with(())
            .given(in_status(Idle))
            .when(SessionCommand::StopSession { at: at(2) })
            .then_expect_error(SessionError::CannotStop { status: Idle });
    }

    #[test]
    fn logs_out_a_ready_session() {
        SessionTest::with(())
            .given(in_status(Ready))
            .when(SessionCommand::LogoutSession { at: at(2) })
            .then_expect_events(vec![SessionEvent::SessionLoggedOut {
                from: Ready,
                at: at(2),
            }]);
    }

    #[test]
    fn refuses_to_log_out_a_logged_out_session() {
        SessionTest::with(())
            .given(in_status(LoggedOut))
            .when(SessionCommand::LogoutSession { at: at(2) })
            .then_expect_error(SessionError::CannotLogOut { status: LoggedOut });
    }

    #[test]
    fn deletes_a_running_session_telling_the_engine_what_it_was() {
        SessionTest::with(())
            .given(in_status(Ready))
            .when(SessionCommand::DeleteSession { at: at(2) })
            .then_expect_events(vec![SessionEvent::SessionDeleted {
                from: Ready,
                at: at(2),
            }]);
    }

    #[test]
    fn refuses_every_command_after_deletion_as_not_found() {
        let mut history = in_status(Ready);
        history.push(SessionEvent::SessionDeleted {
            from: Ready,
            at: at(2),
        });
        let mut commands = every_command_but_create();
        commands.push(create());
        commands.push(report(Ready));
        for command in commands {
            SessionTest::with(())
                .given(history.clone())
                .when(command)
                .then_expect_error(SessionError::NotFound);
        }
        let session = fold(history);
        assert!(session.is_deleted());
        assert!(!session.is_ready());
    }

    /// Start, stop, logout and delete from each of the nine statuses,
    /// against the table in `status.rs` written out again here.
    #[test]
    fn user_commands_follow_the_documented_table_from_every_status() {
        for from in SessionStatus::ALL {
            let startable = matches!(from, Idle | Disconnected | Failed | LoggedOut);
            let stoppable = matches!(
                from,
                Starting | Qr | Pairing | Authenticated | Ready | Disconnected
            );
            let start = SessionTest::with(())
                .given(in_status(from))
                .when(SessionCommand::StartSession { at: at(2) })
                .inspect_result();
            if startable {
                assert_eq!(
                    start,
                    Ok(vec![SessionEvent::SessionStartRequested {
                        from,
                        at: at(2)
                    }])
                );
            } else {
                assert_eq!(start, Err(SessionError::CannotStart { status: from }));
            }
            let stop = SessionTest::with(())
                .given(in_status(from))
                .when(SessionCommand::StopSession { at: at(2) })
                .inspect_result();
            if stoppable {
                assert_eq!(
                    stop,
                    Ok(vec![SessionEvent::SessionStopRequested { from, at: at(2) }])
                );
            } else {
                assert_eq!(stop, Err(SessionError::CannotStop { status: from }));
            }
            let logout = SessionTest::with(())
                .given(in_status(from))
                .when(SessionCommand::LogoutSession { at: at(2) })
                .inspect_result();
            if from == LoggedOut {
                assert_eq!(logout, Err(SessionError::CannotLogOut { status: from }));
            } else {
                assert_eq!(
                    logout,
                    Ok(vec![SessionEvent::SessionLoggedOut { from, at: at(2) }])
                );
            }
            SessionTest::with(())
                .given(in_status(from))
                .when(SessionCommand::DeleteSession { at: at(2) })
                .then_expect_events(vec![SessionEvent::SessionDeleted { from, at: at(2) }]);
        }
    }

    // --- leases: who holds the session, fencing ---

    fn fence(revision: u64) -> Fence {
        Fence { epoch: 1, revision }
    }

    fn hold(engine: &str, revision: u64) -> SessionCommand {
        SessionCommand::HoldSession {
            engine: engine.to_owned(),
            fence: fence(revision),
            at: at(3),
        }
    }

    fn held(engine: &str, revision: u64) -> SessionEvent {
        SessionEvent::SessionHeld {
            engine: engine.to_owned(),
            fence: fence(revision),
            at: at(3),
        }
    }

    fn disconnected_by(revision: u64) -> SessionCommand {
        SessionCommand::FromHolder {
            fence: fence(revision),
            report: Box::new(SessionCommand::ReportStatus {
                status: Disconnected,
                phone_number: None,
                error: None,
                reason: None,
                at: at(4),
            }),
        }
    }

    #[test]
    fn an_engine_takes_a_running_session_and_a_later_lease_takes_it_over() {
        SessionTest::with(())
            .given(in_status(Ready))
            .when(hold("engine-a", 10))
            .then_expect_events(vec![held("engine-a", 10)]);
        let mut history = in_status(Ready);
        history.push(held("engine-a", 10));
        SessionTest::with(())
            .given(history.clone())
            .when(hold("engine-b", 25))
            .then_expect_events(vec![held("engine-b", 25)]);
        SessionTest::with(())
            .given(history.clone())
            .when(hold("engine-a", 10))
            .then_expect_events(vec![]);
        SessionTest::with(())
            .given(history)
            .when(hold("engine-b", 9))
            .then_expect_error(SessionError::LeaseLost {
                fence: fence(9),
                holder: fence(10),
            });
        SessionTest::with(())
            .given(in_status(Idle))
            .when(hold("engine-a", 10))
            .then_expect_error(SessionError::NotStarted { status: Idle });
    }

    #[test]
    fn a_lease_bucket_created_again_gives_later_fences_whatever_its_revisions() {
        let mut history = in_status(Ready);
        history.push(held("engine-a", 900));
        let after_reset = Fence {
            epoch: 2,
            revision: 3,
        };
        SessionTest::with(())
            .given(history)
            .when(SessionCommand::HoldSession {
                engine: "engine-b".to_owned(),
                fence: after_reset,
                at: at(3),
            })
            .then_expect_events(vec![SessionEvent::SessionHeld {
                engine: "engine-b".to_owned(),
                fence: after_reset,
                at: at(3),
            }]);
    }

    #[test]
    fn only_the_holders_reports_are_recorded() {
        let mut history = in_status(Ready);
        history.push(held("engine-a", 10));
        history.push(held("engine-b", 25));
        SessionTest::with(())
            .given(history.clone())
            .when(disconnected_by(10))
            .then_expect_error(SessionError::LeaseLost {
                fence: fence(10),
                holder: fence(25),
            });
        let events = SessionTest::with(())
            .given(history.clone())
            .when(disconnected_by(25))
            .inspect_result()
            .expect("the holder's report is recorded");
        assert!(matches!(
            events.as_slice(),
            [SessionEvent::SessionStatusChanged {
                from: Ready,
                to: Disconnected,
                ..
            }]
        ));
        SessionTest::with(())
            .given(history)
            .when(SessionCommand::FromHolder {
                fence: fence(25),
                report: Box::new(SessionCommand::StopSession { at: at(4) }),
            })
            .then_expect_error(SessionError::NotAReport);
        // A session no engine recorded holding refuses fenced reports.
        SessionTest::with(())
            .given(in_status(Ready))
            .when(disconnected_by(10))
            .then_expect_error(SessionError::LeaseLost {
                fence: fence(10),
                holder: Fence::default(),
            });
    }

    // --- engine reports ---

    /// The report table of `status.rs`, written out again: `from`, then the
    /// statuses the engine may report from it.
    const REPORTABLE: [(SessionStatus, &[SessionStatus]); 9] = [
        (Idle, &[]),
        (
            Starting,
            &[
                Qr,
                Pairing,
                Authenticated,
                Ready,
                Disconnected,
                Failed,
                LoggedOut,
            ],
        ),
        (Qr, &[Pairing, Authenticated, Ready, Failed, LoggedOut]),
        (Pairing, &[Qr, Authenticated, Ready, Failed, LoggedOut]),
        (Authenticated, &[Ready, Disconnected, Failed, LoggedOut]),
        (Ready, &[Disconnected, Failed, LoggedOut]),
        (
            Disconnected,
            &[Qr, Pairing, Authenticated, Ready, Failed, LoggedOut],
        ),
        (Failed, &[]),
        (LoggedOut, &[]),
    ];

    #[test]
    fn every_report_follows_the_documented_table() {
        for (from, allowed) in REPORTABLE {
            for to in SessionStatus::ALL {
                let result = SessionTest::with(())
                    .given(in_status(from))
                    .when(SessionCommand::ReportStatus {
                        status: to,
                        phone_number: Some(phone()),
                        error: Some("why".to_owned()),
                        reason: None,
                        at: at(2),
                    })
                    .inspect_result();
                let expected = if to == from {
                    Ok(vec![])
                } else if allowed.contains(&to) {
                    Ok(vec![changed(from, to, (to != Ready).then_some("why"))])
                } else {
                    Err(SessionError::InvalidTransition { from, to })
                };
                assert_eq!(result, expected, "{from} -> {to}");
                assert_eq!(from.can_report(to), allowed.contains(&to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn a_scanned_qr_may_go_straight_to_ready() {
        SessionTest::with(())
            .given(in_status(Qr))
            .when(SessionCommand::ReportStatus {
                status: Ready,
                phone_number: Some(phone()),
                error: None,
                reason: None,
                at: at(2),
            })
            .then_expect_events(vec![changed(Qr, Ready, None)]);
    }

    #[test]
    fn reaching_ready_records_the_reported_phone_number() {
        SessionTest::with(())
            .given(vec![
                created(),
                SessionEvent::SessionStartRequested {
                    from: Idle,
                    at: at(1),
                },
            ])
            .when(SessionCommand::ReportStatus {
                status: Ready,
                phone_number: Some(other_phone()),
                error: None,
                reason: None,
                at: at(2),
            })
            .then_expect_events(vec![SessionEvent::SessionStatusChanged {
                from: Starting,
                to: Ready,
                phone_number: Some(other_phone()),
                error: None,
                reason: None,
                at: at(2),
            }]);
    }

    #[test]
    fn reaching_ready_keeps_the_phone_number_already_known() {
        SessionTest::with(())
            .given(in_status(Authenticated))
            .when(report(Ready))
            .then_expect_events(vec![changed(Authenticated, Ready, None)]);
    }

    #[test]
    fn refuses_ready_when_no_phone_number_is_reported_or_known() {
        SessionTest::with(())
            .given(vec![
                created(),
                SessionEvent::SessionStartRequested {
                    from: Idle,
                    at: at(1),
                },
            ])
            .when(report(Ready))
            .then_expect_error(SessionError::ReadyWithoutPhoneNumber);
    }

    #[test]
    fn a_report_of_the_current_status_emits_nothing() {
        SessionTest::with(())
            .given(in_status(Ready))
            .when(SessionCommand::ReportStatus {
                status: Ready,
                phone_number: Some(other_phone()),
                error: Some("ignored".to_owned()),
                reason: None,
                at: at(2),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_ban_logs_the_session_out_with_the_reason() {
        SessionTest::with(())
            .given(in_status(Ready))
            .when(SessionCommand::ReportStatus {
                status: LoggedOut,
                phone_number: None,
                error: Some("  banned by WhatsApp ".to_owned()),
                reason: None,
                at: at(2),
            })
            .then_expect_events(vec![changed(Ready, LoggedOut, Some("banned by WhatsApp"))]);
    }

    #[test]
    fn a_failure_without_a_reason_records_a_generic_one() {
        SessionTest::with(())
            .given(in_status(Qr))
            .when(SessionCommand::ReportStatus {
                status: Failed,
                phone_number: None,
                error: Some("   ".to_owned()),
                reason: None,
                at: at(2),
            })
            .then_expect_events(vec![changed(Qr, Failed, Some(DEFAULT_FAILURE_REASON))]);
        SessionTest::with(())
            .given(in_status(Ready))
            .when(report(LoggedOut))
            .then_expect_events(vec![changed(
                Ready,
                LoggedOut,
                Some(DEFAULT_LOGGED_OUT_REASON),
            )]);
    }

    #[test]
    fn a_disconnect_without_a_reason_keeps_the_last_error() {
        let mut history = in_status(Ready);
        history.push(changed(Ready, Disconnected, Some("connection lost")));
        history.push(changed(
            Disconnected,
            Authenticated,
            Some("connection lost"),
        ));
        SessionTest::with(())
            .given(history)
            .when(report(Disconnected))
            .then_expect_events(vec![changed(
                Authenticated,
                Disconnected,
                Some("connection lost"),
            )]);
    }

    #[test]
    fn reaching_ready_again_clears_the_last_error() {
        let mut history = in_status(Ready);
        history.push(changed(Ready, Disconnected, Some("connection lost")));
        SessionTest::with(())
            .given(history)
            .when(report(Ready))
            .then_expect_events(vec![changed(Disconnected, Ready, None)]);
    }

    #[test]
    fn refuses_a_report_that_goes_back_to_the_qr_from_ready() {
        SessionTest::with(())
            .given(in_status(Ready))
            .when(report(Qr))
            .then_expect_error(SessionError::InvalidTransition {
                from: Ready,
                to: Qr,
            });
    }

    #[test]
    fn refuses_a_late_report_on_a_session_the_user_stopped() {
        let mut history = in_status(Qr);
        history.push(SessionEvent::SessionStopRequested {
            from: Qr,
            at: at(2),
        });
        SessionTest::with(())
            .given(history)
            .when(report(Ready))
            .then_expect_error(SessionError::InvalidTransition {
                from: Idle,
                to: Ready,
            });
    }

    // --- settings ---

    #[test]
    fn updates_the_name_daily_limit_and_auto_start() {
        SessionTest::with(())
            .given(in_status(Ready))
            .when(settings(Some(" Toko Online "), Some(120), Some(true)))
            .then_expect_events(vec![SessionEvent::SessionSettingsUpdated {
                name: name("Toko Online"),
                daily_limit: limit(120),
                daily_limit_follows_trust_level: false,
                auto_start: true,
                throttle: Throttle::DEFAULT,
                pacing: SenderPacing::NONE,
                at: at(3),
            }]);
    }

    #[test]
    fn settings_left_out_stay_as_they_are() {
        SessionTest::with(())
            .given(in_status(Idle))
            .when(settings(None, None, Some(true)))
            .then_expect_events(vec![SessionEvent::SessionSettingsUpdated {
                name: name("CS Jakarta"),
                daily_limit: limit(50),
                daily_limit_follows_trust_level: true,
                auto_start: true,
                throttle: Throttle::DEFAULT,
                pacing: SenderPacing::NONE,
                at: at(3),
            }]);
    }

    #[test]
    fn refuses_a_daily_limit_above_the_plan_maximum_in_the_settings() {
        SessionTest::with(())
            .given(in_status(Idle))
            .when(settings(None, Some(501), None))
            .then_expect_error(SessionError::DailyLimitAbovePlan {
                requested: limit(501),
                max: limit(500),
            });
    }

    #[test]
    fn settings_that_change_nothing_emit_nothing() {
        SessionTest::with(())
            .given(in_status(Idle))
            .when(settings(Some("CS Jakarta"), None, Some(false)))
            .then_expect_events(vec![]);
    }

    #[test]
    fn setting_the_default_daily_limit_by_hand_pins_it() {
        SessionTest::with(())
            .given(in_status(Idle))
            .when(settings(None, Some(50), None))
            .then_expect_events(vec![SessionEvent::SessionSettingsUpdated {
                name: name("CS Jakarta"),
                daily_limit: limit(50),
                daily_limit_follows_trust_level: false,
                auto_start: false,
                throttle: Throttle::DEFAULT,
                pacing: SenderPacing::NONE,
                at: at(3),
            }]);
    }

    // --- trust level ---

    #[test]
    fn refuses_to_change_the_trust_level_unless_an_admin_asks() {
        let error = SessionTest::with(())
            .given(in_status(Ready))
            .when(trust(3, false, 500))
            .inspect_result()
            .unwrap_err();
        assert_eq!(error, SessionError::Forbidden);
        assert_eq!(error.code(), "forbidden");
    }

    #[test]
    fn a_default_daily_limit_follows_the_new_trust_level() {
        SessionTest::with(())
            .given(in_status(Ready))
            .when(trust(3, true, 500))
            .then_expect_events(vec![SessionEvent::TrustLevelChanged {
                from: TrustLevel::NEW,
                to: level(3),
                daily_limit: limit(200),
                at: at(4),
            }]);
    }

    #[test]
    fn a_daily_limit_following_the_trust_level_is_capped_by_the_plan() {
        SessionTest::with(())
            .given(in_status(Ready))
            .when(trust(5, true, 300))
            .then_expect_events(vec![SessionEvent::TrustLevelChanged {
                from: TrustLevel::NEW,
                to: level(5),
                daily_limit: limit(300),
                at: at(4),
            }]);
    }

    #[test]
    fn a_daily_limit_set_by_hand_stays_when_the_trust_level_changes() {
        let mut history = in_status(Ready);
        history.push(SessionEvent::SessionSettingsUpdated {
            name: name("CS Jakarta"),
            daily_limit: limit(75),
            daily_limit_follows_trust_level: false,
            auto_start: false,
            throttle: Throttle::DEFAULT,
            pacing: SenderPacing::NONE,
            at: at(3),
        });
        SessionTest::with(())
            .given(history)
            .when(trust(4, true, 500))
            .then_expect_events(vec![SessionEvent::TrustLevelChanged {
                from: TrustLevel::NEW,
                to: level(4),
                daily_limit: limit(75),
                at: at(4),
            }]);
    }

    #[test]
    fn setting_the_same_trust_level_emits_nothing() {
        SessionTest::with(())
            .given(in_status(Ready))
            .when(trust(1, true, 500))
            .then_expect_events(vec![]);
    }

    // --- facts, codes, serialization ---

    #[test]
    fn the_accessors_give_the_send_allowance_its_facts() {
        let mut history = in_status(Ready);
        history.push(SessionEvent::TrustLevelChanged {
            from: TrustLevel::NEW,
            to: level(2),
            daily_limit: limit(100),
            at: at(4),
        });
        let session = fold(history);
        assert_eq!(session.id(), Some(id()));
        assert!(session.exists());
        assert_eq!(session.status(), Ready);
        assert!(session.is_ready());
        assert_eq!(session.daily_limit(), limit(100));
        assert!(session.daily_limit_follows_trust_level());
        assert_eq!(session.trust_level(), level(2));
        assert_eq!(session.phone_number(), Some(&phone()));
        assert!(!session.is_deleted());
        assert!(!session.auto_start());
        assert_eq!(session.last_error(), None);
        assert_eq!(session.name(), Some(&name("CS Jakarta")));
        assert_eq!(session.driver(), Driver::Simulator);
        assert_eq!(session.login(), LoginMethod::Qr);
        assert_eq!(session.updated_at(), Some(at(4)));
    }

    #[test]
    fn every_refusal_has_its_api_code() {
        let cases = [
            (SessionError::NotFound, "not_found"),
            (SessionError::AlreadyExists, "conflict"),
            (SessionError::PairingNeedsPhoneNumber, "validation_failed"),
            (SessionError::ReadyWithoutPhoneNumber, "validation_failed"),
            (
                SessionError::SessionLimitReached { in_use: 1, max: 1 },
                "plan_limit_exceeded",
            ),
            (
                SessionError::DailyLimitAbovePlan {
                    requested: limit(2),
                    max: limit(1),
                },
                "plan_limit_exceeded",
            ),
            (SessionError::CannotStart { status: Ready }, "invalid_state"),
            (SessionError::CannotStop { status: Idle }, "invalid_state"),
            (
                SessionError::CannotLogOut { status: LoggedOut },
                "invalid_state",
            ),
            (
                SessionError::InvalidTransition {
                    from: Ready,
                    to: Qr,
                },
                "invalid_state",
            ),
            (SessionError::Forbidden, "forbidden"),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code, "{error}");
        }
    }

    #[test]
    fn events_are_named_after_their_variant_and_survive_a_round_trip() {
        use cqrs_es::DomainEvent;
        let event = changed(Ready, LoggedOut, Some("banned"));
        assert_eq!(event.event_type(), "SessionStatusChanged");
        assert_eq!(event.event_version(), "1.0");
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["SessionStatusChanged"]["to"], "logged_out");
        assert_eq!(serde_json::from_value::<SessionEvent>(json).unwrap(), event);
        assert_eq!(Session::TYPE, "session");
    }

    /// One of every command but create, each valid in some status.
    fn every_command_but_create() -> Vec<SessionCommand> {
        vec![
            SessionCommand::StartSession { at: at(2) },
            SessionCommand::StopSession { at: at(2) },
            SessionCommand::LogoutSession { at: at(2) },
            SessionCommand::DeleteSession { at: at(2) },
            report(Starting),
            settings(Some("x"), Some(10), Some(true)),
            trust(2, true, 500),
        ]
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Every move the flow allows, written out independently of
        /// `status.rs`: the user's commands and the engine's reports.
        fn allowed_moves() -> Vec<(SessionStatus, SessionStatus)> {
            let mut moves = vec![];
            for from in [Idle, Disconnected, Failed, LoggedOut] {
                moves.push((from, Starting));
            }
            for from in [Starting, Qr, Pairing, Authenticated, Ready, Disconnected] {
                moves.push((from, Idle));
            }
            for from in SessionStatus::ALL {
                if from != LoggedOut {
                    moves.push((from, LoggedOut));
                }
            }
            for (from, tos) in REPORTABLE {
                for to in tos {
                    moves.push((from, *to));
                }
            }
            moves
        }

        /// The statuses reachable from idle through the allowed moves.
        fn reachable() -> Vec<SessionStatus> {
            let moves = allowed_moves();
            let mut seen = vec![Idle];
            let mut i = 0;
            while i < seen.len() {
                for (from, to) in &moves {
                    if *from == seen[i] && !seen.contains(to) {
                        seen.push(*to);
                    }
                }
                i += 1;
            }
            seen
        }

        #[test]
        fn every_status_is_reachable_from_idle() {
            let reachable = reachable();
            for status in SessionStatus::ALL {
                assert!(reachable.contains(&status), "{status}");
            }
        }

        fn status() -> impl Strategy<Value = SessionStatus> {
            proptest::sample::select(SessionStatus::ALL.to_vec())
        }

        fn command() -> impl Strategy<Value = SessionCommand> {
            let phone = prop_oneof![Just(None), Just(Some(phone())), Just(Some(other_phone()))];
            let error = prop_oneof![
                Just(None),
                Just(Some("banned".to_owned())),
                Just(Some(" ".to_owned()))
            ];
            prop_oneof![
                (
                    any::<bool>(),
                    phone.clone(),
                    proptest::option::of(1u64..=600),
                    0u32..4,
                    1u64..=600,
                )
                    .prop_map(
                        |(pairing, phone_number, daily_limit, in_use, max)| {
                            SessionCommand::CreateSession {
                                session_id: id(),
                                name: name("S"),
                                driver: Driver::Simulator,
                                login: if pairing {
                                    LoginMethod::Pairing
                                } else {
                                    LoginMethod::Qr
                                },
                                phone_number,
                                daily_limit: daily_limit.map(limit),
                                auto_start: false,
                                warm_up: None,
                                sessions_in_use: in_use,
                                plan_max_sessions: 3,
                                plan_max_daily_limit: limit(max),
                                at: at(0),
                            }
                        }
                    ),
                Just(SessionCommand::StartSession { at: at(1) }),
                Just(SessionCommand::StopSession { at: at(1) }),
                Just(SessionCommand::LogoutSession { at: at(1) }),
                Just(SessionCommand::DeleteSession { at: at(1) }),
                (status(), phone, error).prop_map(|(status, phone_number, error)| {
                    SessionCommand::ReportStatus {
                        status,
                        phone_number,
                        error,
                        reason: None,
                        at: at(1),
                    }
                }),
                (
                    proptest::option::of(1u64..=600),
                    any::<Option<bool>>(),
                    1u64..=600
                )
                    .prop_map(|(daily_limit, auto_start, max)| {
                        SessionCommand::UpdateSettings {
                            name: None,
                            daily_limit: daily_limit.map(limit),
                            auto_start,
                            throttle: None,
                            pacing: None,
                            plan_max_daily_limit: limit(max),
                            at: at(1),
                        }
                    }),
                (1u64..=5, any::<bool>(), 1u64..=600).prop_map(|(l, by_admin, max)| {
                    SessionCommand::SetTrustLevel {
                        level: level(l),
                        by_admin,
                        plan_max_daily_limit: limit(max),
                        at: at(1),
                    }
                }),
            ]
        }

        proptest! {
            /// Over any sequence of commands: every status change is a move
            /// the flow allows, a ready session has a phone number, a refused
            /// command changes nothing, the events fold back into the same
            /// session, and once deleted nothing changes again.
            #[test]
            fn random_command_sequences_keep_the_session_in_the_flow(
                commands in proptest::collection::vec(
                    // Extra reports, so sequences get deep into the flow.
                    prop_oneof![1 => command(), 1 => status().prop_map(report)],
                    1..60,
                )
            ) {
                let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
                let moves = allowed_moves();
                let reachable = reachable();
                let mut session = Session::default();
                let mut history: Vec<SessionEvent> = vec![];
                let mut create_first = vec![create()];
                create_first.extend(commands);
                for command in create_first {
                    let before = session.clone();
                    let sink = EventSink::default();
                    let result = runtime.block_on(session.handle(command.clone(), &(), &sink));
                    let events = runtime.block_on(sink.collect());
                    prop_assert!(events.len() <= 1);
                    match result {
                        Err(error) => {
                            prop_assert_eq!(&session, &before, "{:?} refused ({}) but changed the session", command, error);
                            prop_assert!(events.is_empty());
                            if before.is_deleted() {
                                prop_assert_eq!(error, SessionError::NotFound);
                            }
                        }
                        Ok(()) => {
                            prop_assert!(!before.is_deleted(), "{:?} accepted after deletion", command);
                            if before.status() != session.status() {
                                prop_assert!(
                                    moves.contains(&(before.status(), session.status())),
                                    "{} -> {} by {:?}", before.status(), session.status(), command
                                );
                            }
                            if events.is_empty() {
                                prop_assert_eq!(&session, &before);
                            }
                        }
                    }
                    prop_assert!(reachable.contains(&session.status()));
                    if session.status() == Ready {
                        prop_assert!(session.phone_number().is_some());
                    }
                    if session.daily_limit_follows_trust_level() {
                        prop_assert!(session.daily_limit() <= session.trust_level().default_daily_limit());
                    }
                    history.extend(events);
                    prop_assert_eq!(&fold(history.clone()), &session);
                }
            }
        }
    }

    // The sender governor.

    use crate::governor::{GovernorState, Restriction, RestrictionKind, WarmUpReason};

    fn warming_created() -> SessionEvent {
        let mut event = created();
        if let SessionEvent::SessionCreated { warm_up, .. } = &mut event {
            *warm_up = true;
        }
        event
    }

    fn observe(last_sent_at: Option<DateTime<Utc>>, minute: i64) -> SessionCommand {
        SessionCommand::ObserveSending {
            last_sent_at,
            at: at(minute),
        }
    }

    #[test]
    fn a_simulator_session_is_established_unless_asked_to_warm_up() {
        SessionTest::with(())
            .given_no_previous_events()
            .when(create())
            .then_expect_events(vec![created()]);
        let mut asked = create();
        if let SessionCommand::CreateSession { warm_up, .. } = &mut asked {
            *warm_up = Some(true);
        }
        SessionTest::with(())
            .given_no_previous_events()
            .when(asked)
            .then_expect_events(vec![warming_created()]);
    }

    #[test]
    fn warm_up_starts_with_the_first_send_of_a_number_that_warms_up() {
        SessionTest::with(())
            .given(vec![warming_created()])
            .when(observe(None, 5))
            .then_expect_events(vec![SessionEvent::WarmUpStarted {
                since: at(5),
                reason: WarmUpReason::FirstSend,
            }]);
        SessionTest::with(())
            .given(vec![created()])
            .when(observe(None, 5))
            .then_expect_events(vec![]);
    }

    #[test]
    fn warm_up_starts_again_after_seventy_two_hours_without_sending() {
        let started = SessionEvent::WarmUpStarted {
            since: at(0),
            reason: WarmUpReason::FirstSend,
        };
        let days = |d: i64| d * 24 * 60;
        SessionTest::with(())
            .given(vec![warming_created(), started.clone()])
            .when(observe(Some(at(days(1))), days(3)))
            .then_expect_events(vec![]);
        SessionTest::with(())
            .given(vec![warming_created(), started])
            .when(observe(Some(at(days(1))), days(4)))
            .then_expect_events(vec![SessionEvent::WarmUpStarted {
                since: at(days(4)),
                reason: WarmUpReason::Idle,
            }]);
    }

    #[test]
    fn a_trust_level_of_four_skips_warm_up() {
        let trusted = SessionEvent::TrustLevelChanged {
            from: TrustLevel::NEW,
            to: level(4),
            daily_limit: limit(350),
            at: at(1),
        };
        SessionTest::with(())
            .given(vec![warming_created(), trusted])
            .when(observe(None, 5))
            .then_expect_events(vec![]);
    }

    #[test]
    fn the_fifth_disconnect_within_ten_minutes_restricts_the_sender_for_a_storm() {
        let hop = |from, to, minute| SessionEvent::SessionStatusChanged {
            from,
            to,
            phone_number: Some(phone()),
            error: None,
            reason: None,
            at: at(minute),
        };
        let mut history = in_status(Ready);
        for minute in [3, 5, 7, 9] {
            history.push(hop(Ready, Disconnected, minute));
            history.push(hop(Disconnected, Ready, minute + 1));
        }
        let disconnect = |minute| SessionCommand::ReportStatus {
            status: Disconnected,
            phone_number: None,
            error: None,
            reason: Some(StatusReason::ConnectionLost),
            at: at(minute),
        };
        let dropped = |minute| SessionEvent::SessionStatusChanged {
            from: Ready,
            to: Disconnected,
            phone_number: Some(phone()),
            error: None,
            reason: Some(StatusReason::ConnectionLost),
            at: at(minute),
        };
        SessionTest::with(())
            .given(history.clone())
            .when(disconnect(11))
            .then_expect_events(vec![
                dropped(11),
                SessionEvent::SenderRestricted {
                    restriction: Restriction {
                        kind: RestrictionKind::DisconnectStorm,
                        since: at(11),
                        until: at(26),
                    },
                },
            ]);
        // Spread over more than ten minutes: no storm.
        SessionTest::with(())
            .given(history)
            .when(disconnect(14))
            .then_expect_events(vec![dropped(14)]);
    }

    #[test]
    fn a_restriction_is_recorded_until_its_end_or_the_kind_default() {
        let restriction = |until| Restriction {
            kind: RestrictionKind::ReachoutTimelock,
            since: at(1),
            until,
        };
        SessionTest::with(())
            .given(vec![created()])
            .when(SessionCommand::ReportRestriction {
                kind: RestrictionKind::ReachoutTimelock,
                until: Some(at(120)),
                at: at(1),
            })
            .then_expect_events(vec![SessionEvent::SenderRestricted {
                restriction: restriction(at(120)),
            }]);
        SessionTest::with(())
            .given(vec![created()])
            .when(SessionCommand::ReportRestriction {
                kind: RestrictionKind::ReachoutTimelock,
                until: None,
                at: at(1),
            })
            .then_expect_events(vec![SessionEvent::SenderRestricted {
                restriction: restriction(at(1) + Duration::hours(24)),
            }]);
        // The same signal again, ending no later: nothing new.
        SessionTest::with(())
            .given(vec![
                created(),
                SessionEvent::SenderRestricted {
                    restriction: restriction(at(120)),
                },
            ])
            .when(SessionCommand::ReportRestriction {
                kind: RestrictionKind::ReachoutTimelock,
                until: Some(at(100)),
                at: at(2),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn the_governor_state_is_recorded_when_it_changes() {
        let restricted = SessionEvent::SenderRestricted {
            restriction: Restriction {
                kind: RestrictionKind::CappingQuota,
                since: at(1),
                until: at(60),
            },
        };
        SessionTest::with(())
            .given(vec![created(), restricted.clone()])
            .when(SessionCommand::ReportGovernorState { at: at(2) })
            .then_expect_events(vec![SessionEvent::GovernorStateChanged {
                from: GovernorState::Normal,
                to: GovernorState::Restricted,
                until: Some(at(60)),
                at: at(2),
            }]);
        let recorded = SessionEvent::GovernorStateChanged {
            from: GovernorState::Normal,
            to: GovernorState::Restricted,
            until: Some(at(60)),
            at: at(2),
        };
        SessionTest::with(())
            .given(vec![created(), restricted.clone(), recorded.clone()])
            .when(SessionCommand::ReportGovernorState { at: at(3) })
            .then_expect_events(vec![]);
        SessionTest::with(())
            .given(vec![created(), restricted, recorded])
            .when(SessionCommand::ReportGovernorState { at: at(61) })
            .then_expect_events(vec![SessionEvent::GovernorStateChanged {
                from: GovernorState::Restricted,
                to: GovernorState::CoolingDown,
                until: Some(at(60) + Duration::hours(24)),
                at: at(61),
            }]);
    }
}
