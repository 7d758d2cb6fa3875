//! What happened to a session. Events carry the facts after the change, so
//! `apply` only assigns.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::{Driver, Fence, LoginMethod, SessionName, SessionStatus, StatusReason, WaitReason};
use crate::governor::{GovernorState, Restriction, SenderPacing, WarmUpReason};
use crate::types::phone::Phone;
use crate::types::{DailyLimit, SessionId, Throttle, TrustLevel};

/// One change to a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum SessionEvent {
    /// A session was created, idle, at trust level 1.
    SessionCreated {
        /// The session's id.
        session_id: SessionId,
        /// What the user calls it.
        name: SessionName,
        /// What connects it to WhatsApp.
        driver: Driver,
        /// QR code or pairing code.
        login: LoginMethod,
        /// The number to link, if given.
        phone_number: Option<Phone>,
        /// The daily limit it got (asked for, or the trust level's default
        /// capped by the plan).
        daily_limit: DailyLimit,
        /// Whether that limit is the trust level's default (and moves with
        /// it) rather than one set by hand.
        daily_limit_follows_trust_level: bool,
        /// Its trust level (always [`TrustLevel::NEW`] for now).
        trust_level: TrustLevel,
        /// Start on engine boot.
        auto_start: bool,
        /// Whether the number warms up (absent in events recorded before
        /// the governor: established).
        #[serde(default)]
        warm_up: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// A user asked the session to start: it is now `starting`.
    SessionStartRequested {
        /// The status it was started from.
        from: SessionStatus,
        /// When.
        at: DateTime<Utc>,
    },
    /// A user stopped the session without logging out: it is now `idle`,
    /// credentials kept.
    SessionStopRequested {
        /// The status it was stopped from.
        from: SessionStatus,
        /// When.
        at: DateTime<Utc>,
    },
    /// A user logged the session out: it is now `logged_out`, credentials
    /// gone.
    SessionLoggedOut {
        /// The status it was logged out from.
        from: SessionStatus,
        /// When.
        at: DateTime<Utc>,
    },
    /// The session was deleted for good; an engine running it stops it.
    SessionDeleted {
        /// The status it had (running ones need stopping).
        from: SessionStatus,
        /// When.
        at: DateTime<Utc>,
    },
    /// The engine reported a new status.
    SessionStatusChanged {
        /// The status before.
        from: SessionStatus,
        /// The status now.
        to: SessionStatus,
        /// The session's phone number after the change (reported, or
        /// already known). Always present when `to` is `ready`.
        phone_number: Option<Phone>,
        /// The session's last error after the change: the reason given now,
        /// or the one before; `None` once ready again.
        error: Option<String>,
        /// Why, when the driver knows (banned, logged out, ...). Absent in
        /// events recorded before it was known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<StatusReason>,
        /// When the engine saw it.
        at: DateTime<Utc>,
    },
    /// The engine could not connect the session's driver (its server
    /// unreachable, WhatsApp away) and tries again at `next_try_at`.
    SessionReconnectScheduled {
        /// Which try failed (1, 2, ...).
        attempt: u32,
        /// When the next try is.
        next_try_at: DateTime<Utc>,
        /// Why it failed.
        error: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The session's send loop waits (a used-up daily limit, closed active
    /// hours, the override, an expired plan), or, with no reason, sends
    /// again.
    SessionWaiting {
        /// Why; `None`: it sends again.
        reason: Option<WaitReason>,
        /// Until when, where known.
        until: Option<DateTime<Utc>>,
        /// When.
        at: DateTime<Utc>,
    },
    /// An engine took the session's lease and runs it from now on; only
    /// its reports (with this fence) are recorded until another takes it.
    SessionHeld {
        /// The engine.
        engine: String,
        /// The lease's fence.
        fence: Fence,
        /// When.
        at: DateTime<Utc>,
    },
    /// The user's settings changed; all of them as they are now.
    SessionSettingsUpdated {
        /// The name.
        name: SessionName,
        /// The daily limit.
        daily_limit: DailyLimit,
        /// Whether the daily limit still follows the trust level.
        daily_limit_follows_trust_level: bool,
        /// Start on engine boot.
        auto_start: bool,
        /// The pause between two of its single sends (the default for
        /// events recorded before it was a setting).
        #[serde(default)]
        throttle: Throttle,
        /// Its own pacing (none for events recorded before it was a
        /// setting).
        #[serde(default)]
        pacing: SenderPacing,
        /// When.
        at: DateTime<Utc>,
    },
    /// Warm-up started: the number's allowance starts low again and grows
    /// day by day from `since`.
    WarmUpStarted {
        /// When (the send about to go).
        since: DateTime<Utc>,
        /// Why.
        reason: WarmUpReason,
    },
    /// WhatsApp restricted the sender (a driver's signal).
    SenderRestricted {
        /// The restriction.
        restriction: Restriction,
    },
    /// The sender governor's state changed.
    GovernorStateChanged {
        /// The state before.
        from: GovernorState,
        /// The state now.
        to: GovernorState,
        /// Until when it holds, where known (a restriction's end).
        until: Option<DateTime<Utc>>,
        /// When.
        at: DateTime<Utc>,
    },
    /// An admin changed the trust level.
    TrustLevelChanged {
        /// The level before.
        from: TrustLevel,
        /// The level now.
        to: TrustLevel,
        /// The daily limit now: the new level's default capped by the plan
        /// when it follows the trust level, unchanged otherwise.
        daily_limit: DailyLimit,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for SessionEvent {
    fn event_type(&self) -> String {
        match self {
            Self::SessionCreated { .. } => "SessionCreated",
            Self::SessionStartRequested { .. } => "SessionStartRequested",
            Self::SessionStopRequested { .. } => "SessionStopRequested",
            Self::SessionLoggedOut { .. } => "SessionLoggedOut",
            Self::SessionDeleted { .. } => "SessionDeleted",
            Self::SessionStatusChanged { .. } => "SessionStatusChanged",
            Self::SessionReconnectScheduled { .. } => "SessionReconnectScheduled",
            Self::SessionWaiting { .. } => "SessionWaiting",
            Self::SessionHeld { .. } => "SessionHeld",
            Self::SessionSettingsUpdated { .. } => "SessionSettingsUpdated",
            Self::TrustLevelChanged { .. } => "TrustLevelChanged",
            Self::WarmUpStarted { .. } => "WarmUpStarted",
            Self::SenderRestricted { .. } => "SenderRestricted",
            Self::GovernorStateChanged { .. } => "GovernorStateChanged",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
