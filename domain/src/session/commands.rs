//! What the API and the engine ask of a session.

use chrono::{DateTime, Utc};

use super::{Driver, Fence, LoginMethod, SessionName, SessionStatus, StatusReason, WaitReason};
use crate::governor::{RestrictionKind, SenderPacing};
use crate::types::phone::Phone;
use crate::types::{DailyLimit, SessionId, Throttle, TrustLevel};

/// A request to a session. Facts from elsewhere (the tenant's plan, how many
/// sessions it has, whether the caller is an admin) travel in the command:
/// the aggregate does no I/O.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionCommand {
    /// Link a new WhatsApp number (the session starts idle).
    CreateSession {
        /// The session's id.
        session_id: SessionId,
        /// What the user calls it.
        name: SessionName,
        /// What connects it to WhatsApp.
        driver: Driver,
        /// QR code or pairing code.
        login: LoginMethod,
        /// The number to link; required for a pairing login.
        phone_number: Option<Phone>,
        /// A daily limit; `None` follows the trust level's default.
        daily_limit: Option<DailyLimit>,
        /// Start the session when the engine boots.
        auto_start: bool,
        /// Whether the number warms up ([`crate::governor`]); `None`: the
        /// driver's default (every driver but the simulator).
        warm_up: Option<bool>,
        /// Sessions the tenant already has (not deleted), this one excluded.
        sessions_in_use: u32,
        /// Sessions the tenant's plan allows.
        plan_max_sessions: u32,
        /// The highest daily limit the tenant's plan allows per session.
        plan_max_daily_limit: DailyLimit,
        /// When it was asked.
        at: DateTime<Utc>,
    },
    /// Bring the session up (idle, disconnected, failed or logged_out →
    /// starting).
    StartSession {
        /// When it was asked.
        at: DateTime<Utc>,
    },
    /// Take the session down without logging out: credentials are kept and
    /// the next start needs no QR (running → idle).
    StopSession {
        /// When it was asked.
        at: DateTime<Utc>,
    },
    /// Unlink the number: credentials are dropped and the next start needs a
    /// new QR or pairing code (→ logged_out).
    LogoutSession {
        /// When it was asked.
        at: DateTime<Utc>,
    },
    /// Remove the session for good; the engine stops it. Every later command
    /// is refused as not found.
    DeleteSession {
        /// When it was asked.
        at: DateTime<Utc>,
    },
    /// What the engine saw the driver and phone do.
    ReportStatus {
        /// The status now.
        status: SessionStatus,
        /// The linked number, when the driver knows it (needed, or already
        /// known, for `ready`).
        phone_number: Option<Phone>,
        /// Why, for failed / logged_out / disconnected ("banned", "QR expired").
        error: Option<String>,
        /// Why, as the driver knows it (banned, logged out, ...).
        reason: Option<StatusReason>,
        /// When the engine saw it.
        at: DateTime<Utc>,
    },
    /// The engine could not connect the session's driver and tries again
    /// at `next_try_at` (refused unless the session is starting or
    /// disconnected).
    ReportReconnect {
        /// Which try failed (1, 2, ...).
        attempt: u32,
        /// When the next try is.
        next_try_at: DateTime<Utc>,
        /// Why it failed.
        error: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The send loop says why it waits, or (`reason: None`) that it sends
    /// again. Repeating what it said changes nothing.
    ReportWaiting {
        /// Why; `None`: it sends again.
        reason: Option<WaitReason>,
        /// Until when, where known.
        until: Option<DateTime<Utc>>,
        /// When.
        at: DateTime<Utc>,
    },
    /// An engine took the session's lease and runs it from now on. The
    /// lease's fence ([`Fence`]) only grows from one holder
    /// to the next: a take with an older fence than the one recorded is
    /// refused ([`super::SessionError::LeaseLost`]).
    HoldSession {
        /// The engine.
        engine: String,
        /// The lease's fence.
        fence: Fence,
        /// When it took the lease.
        at: DateTime<Utc>,
    },
    /// A report (status, reconnection, waiting) from the engine holding the
    /// session, refused unless `fence` is the holder's
    /// ([`SessionCommand::HoldSession`]): an engine that lost the lease
    /// while it was paused or cut off cannot act on the session any more.
    FromHolder {
        /// The reporting engine's lease fence.
        fence: Fence,
        /// The report: `ReportStatus`, `ReportReconnect` or `ReportWaiting`.
        report: Box<SessionCommand>,
    },
    /// Change the user's settings; `None` keeps a setting as it is.
    UpdateSettings {
        /// A new name.
        name: Option<SessionName>,
        /// A new daily limit, fixed by hand (it no longer follows the trust
        /// level).
        daily_limit: Option<DailyLimit>,
        /// Start on engine boot or not.
        auto_start: Option<bool>,
        /// A new pause between two of its single sends.
        throttle: Option<Throttle>,
        /// A new pacing of its own ([`SenderPacing`], parsed).
        pacing: Option<SenderPacing>,
        /// The highest daily limit the tenant's plan allows per session.
        plan_max_daily_limit: DailyLimit,
        /// When it was asked.
        at: DateTime<Utc>,
    },
    /// The send loop is about to send: starts warm-up at the number's
    /// first send, or again when it sent nothing for
    /// [`crate::governor::Governor::IDLE_RESTART`] (nothing when it does not warm up, or
    /// is warming up and was not idle).
    ObserveSending {
        /// Its latest send, as the day counters know it (`None`: none in
        /// the last days looked at).
        last_sent_at: Option<DateTime<Utc>>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A driver reported a WhatsApp signal that holds the sender back.
    ReportRestriction {
        /// Which signal.
        kind: RestrictionKind,
        /// When it ends, if the signal says; otherwise the kind's default
        /// length from `at`.
        until: Option<DateTime<Utc>>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Records the governor's state at `at` when it changed since last
    /// recorded (warm-up over, a restriction or cool-down ended).
    ReportGovernorState {
        /// When.
        at: DateTime<Utc>,
    },
    /// An operator's verdict on how far the number is trusted.
    SetTrustLevel {
        /// The new level.
        level: TrustLevel,
        /// Whether the caller is a platform admin (only admins may).
        by_admin: bool,
        /// The highest daily limit the tenant's plan allows per session: a
        /// daily limit that follows the trust level is capped by it.
        plan_max_daily_limit: DailyLimit,
        /// When it was asked.
        at: DateTime<Utc>,
    },
}
