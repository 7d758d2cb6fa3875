//! A session's status and the table of the transitions between them.
//!
//! Two kinds of actor move a session. The user (through the API) starts,
//! stops, logs out and deletes it; the engine reports what the driver and the
//! phone did. The user's commands:
//!
//! | command  | allowed from                                   | to           |
//! |----------|------------------------------------------------|--------------|
//! | start    | idle, disconnected, failed, logged_out         | starting     |
//! | stop     | starting, qr, pairing, authenticated, ready, disconnected (the running statuses) | idle (credentials kept) |
//! | logout   | every status but logged_out                    | logged_out (credentials gone) |
//! | delete   | every status                                   | deleted, for good |
//!
//! `disconnected` is both running (the engine is reconnecting, so it can be
//! stopped) and startable (a user may ask for a fresh start instead of
//! waiting).
//!
//! The engine's reports ([`SessionStatus::can_report`]); a report equal to the
//! current status is no change and never refused:
//!
//! | from \ to     | qr | pairing | authenticated | ready | disconnected | failed | logged_out |
//! |---------------|----|---------|---------------|-------|--------------|--------|------------|
//! | starting      | ✓  | ✓       | ✓             | ✓     | ✓            | ✓      | ✓          |
//! | qr            | =  | ✓       | ✓             | ✓     |              | ✓      | ✓          |
//! | pairing       | ✓  | =       | ✓             | ✓     |              | ✓      | ✓          |
//! | authenticated |    |         | =             | ✓     | ✓            | ✓      | ✓          |
//! | ready         |    |         |               | =     | ✓            | ✓      | ✓          |
//! | disconnected  | ✓  | ✓       | ✓             | ✓     | =            | ✓      | ✓          |
//!
//! Why these and no others:
//! - `starting → authenticated | ready`: a session with stored credentials
//!   restores without a QR; `qr | pairing → ready`: some drivers never say
//!   `authenticated`. The engine reports what the phone did.
//! - `qr ⇄ pairing`: a session waiting for a scan may be asked for a pairing
//!   code instead (`POST /sessions/{id}/pairing-code`), and a pairing code
//!   that expires may fall back to a QR.
//! - `disconnected` means "connection lost, reconnecting": a session that
//!   got past the login (authenticated or ready) lost its connection, or a
//!   starting one whose driver could not connect yet (its server restarting)
//!   while the engine tries again with back-off. It comes back through
//!   `authenticated`, straight to `ready`, or, when the link was lost
//!   meanwhile, to `qr` or `pairing`. A session that cannot go on at all
//!   (no credentials, a driver not built) is `failed`.
//! - `failed` and `logged_out` (unlinked or banned by WhatsApp) may come from
//!   every running status.
//! - Nothing is reported out of `idle`, `failed` or `logged_out`: they are at
//!   rest and only a user's start moves them (a late report from an engine
//!   that was told to stop is refused, not obeyed). Nothing reports `idle` or
//!   `starting`: those are the user's stop and start.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a session is in its life, as the API names it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Not running; credentials, if any, are kept. A new session starts here.
    #[default]
    Idle,
    /// Asked to start; the engine is bringing it up.
    Starting,
    /// Waiting for the phone to scan a QR code.
    Qr,
    /// Waiting for the user to type a pairing code on the phone.
    Pairing,
    /// The phone accepted the link; syncing before it can send.
    Authenticated,
    /// Connected and able to send.
    Ready,
    /// Linked but the connection dropped; the engine is reconnecting.
    Disconnected,
    /// The engine gave up (see the session's last error).
    Failed,
    /// Unlinked, by the user or by WhatsApp (banned, removed from the
    /// phone's linked devices): a new QR or pairing code is needed.
    LoggedOut,
}

impl SessionStatus {
    /// Every status, in flow order.
    pub const ALL: [Self; 9] = [
        Self::Idle,
        Self::Starting,
        Self::Qr,
        Self::Pairing,
        Self::Authenticated,
        Self::Ready,
        Self::Disconnected,
        Self::Failed,
        Self::LoggedOut,
    ];

    /// The API name (`idle`, `logged_out`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Starting => "starting",
            Self::Qr => "qr",
            Self::Pairing => "pairing",
            Self::Authenticated => "authenticated",
            Self::Ready => "ready",
            Self::Disconnected => "disconnected",
            Self::Failed => "failed",
            Self::LoggedOut => "logged_out",
        }
    }

    /// The status of an API name (`None` for none of them).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }

    /// Whether an engine is (or should be) running the session: starting,
    /// qr, pairing, authenticated, ready or disconnected. These are the
    /// statuses a stop applies to.
    pub const fn is_running(self) -> bool {
        matches!(
            self,
            Self::Starting
                | Self::Qr
                | Self::Pairing
                | Self::Authenticated
                | Self::Ready
                | Self::Disconnected
        )
    }

    /// Whether a user may start the session from here: idle, disconnected,
    /// failed or logged_out.
    pub const fn can_start(self) -> bool {
        matches!(
            self,
            Self::Idle | Self::Disconnected | Self::Failed | Self::LoggedOut
        )
    }

    /// Whether a user may stop the session from here (the running statuses).
    pub const fn can_stop(self) -> bool {
        self.is_running()
    }

    /// Whether a user may log the session out from here: from every status
    /// but logged_out.
    pub const fn can_log_out(self) -> bool {
        !matches!(self, Self::LoggedOut)
    }

    /// Whether the engine may report a move from `self` to `to` (the table in
    /// the module docs). A report of the current status is not a move: the
    /// caller treats it as no change, and this answers `false` for it.
    pub const fn can_report(self, to: Self) -> bool {
        use SessionStatus::{
            Authenticated, Disconnected, Failed, Idle, LoggedOut, Pairing, Qr, Ready, Starting,
        };
        match (self, to) {
            (Idle | Failed | LoggedOut, _) | (_, Idle | Starting) => false,
            // `from` is running from here on.
            (_, Failed | LoggedOut) => true,
            (Starting, Qr | Pairing | Authenticated | Ready) => true,
            (Qr, Pairing | Authenticated | Ready) => true,
            (Pairing, Qr | Authenticated | Ready) => true,
            // A driver that could not connect yet is disconnected while
            // the engine tries again.
            (Starting, Disconnected) => true,
            (Authenticated, Ready | Disconnected) => true,
            (Ready, Disconnected) => true,
            // Back, linked or (the link lost meanwhile) asking to be.
            (Disconnected, Authenticated | Ready | Qr | Pairing) => true,
            _ => false,
        }
    }
}

impl fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_serialize_as_the_api_names_them() {
        for status in SessionStatus::ALL {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(
                serde_json::from_str::<SessionStatus>(&json).unwrap(),
                status
            );
        }
        assert_eq!(
            serde_json::to_string(&SessionStatus::LoggedOut).unwrap(),
            "\"logged_out\""
        );
    }

    #[test]
    fn no_status_reports_a_move_to_itself() {
        for status in SessionStatus::ALL {
            assert!(!status.can_report(status), "{status}");
        }
    }
}

/// Why a session left `ready`, as its driver knows it: what the engine
/// and the campaigns act on (a banned number leaves its campaigns for
/// good; a connection lost is waited out), never read from the error text.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StatusReason {
    /// WhatsApp banned the number.
    Banned,
    /// The number was unlinked (from the phone's linked devices, or by
    /// WhatsApp).
    LoggedOut,
    /// WhatsApp restricts the number for a while (a temporary ban, a
    /// reach-out timelock).
    Restricted,
    /// Another connection of the same linked device took over.
    Replaced,
    /// The connection to WhatsApp, or to the driver's server, dropped.
    ConnectionLost,
    /// The session went silent and did not answer the engine's health
    /// probe: the engine restarts it.
    Unresponsive,
}

impl StatusReason {
    /// Its stable name (`banned`, `logged_out`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Banned => "banned",
            Self::LoggedOut => "logged_out",
            Self::Restricted => "restricted",
            Self::Replaced => "replaced",
            Self::ConnectionLost => "connection_lost",
            Self::Unresponsive => "unresponsive",
        }
    }
}

/// Why a ready session sends nothing for now, as its send loop found: what
/// the session and its campaigns say instead of `running` with nothing
/// moving.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum WaitReason {
    /// Its daily limit is used up until the next local day.
    DailyLimitReached,
    /// The tenant's active hours are closed until the next opening.
    OutsideActiveHours,
    /// The tenant paused all sending (the override).
    SendingPaused,
    /// The tenant's plan expired: sending waits for a renewal.
    PlanExpired,
    /// The platform operator suspended the tenant: sending waits for its
    /// reactivation.
    TenantSuspended,
    /// The sender governor's warm-up allowance for today is used up.
    WarmUpAllowanceReached,
    /// WhatsApp restricted the sender (a reachout timelock, the capping
    /// quota, a temporary ban): its next message waits until it ends.
    SenderRestricted,
    /// A sender governor cap (a minute, an hour, new contacts a day,
    /// identical texts an hour) is reached for now.
    SendCapReached,
    /// Many of the sessions on the engine running this one failed within
    /// minutes (a WhatsApp Web change, an outage): the engine holds every
    /// send for a while instead of hammering WhatsApp.
    FailureStorm,
}

impl WaitReason {
    /// Its stable name (`daily_limit_reached`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DailyLimitReached => "daily_limit_reached",
            Self::OutsideActiveHours => "outside_active_hours",
            Self::SendingPaused => "sending_paused",
            Self::PlanExpired => "plan_expired",
            Self::TenantSuspended => "tenant_suspended",
            Self::WarmUpAllowanceReached => "warm_up_allowance_reached",
            Self::SenderRestricted => "sender_restricted",
            Self::SendCapReached => "send_cap_reached",
            Self::FailureStorm => "failure_storm",
        }
    }
}
