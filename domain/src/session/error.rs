//! Why a session refused a command.

use super::{Driver, Fence, SessionStatus};
use crate::types::DailyLimit;

/// A session's refusal, with the stable API code in [`SessionError::code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The session was never created, or was deleted.
    #[error("session not found")]
    NotFound,
    /// A create for a session that exists.
    #[error("session already exists")]
    AlreadyExists,
    /// A pairing login with no phone number to pair.
    #[error("a pairing-code login needs a phone number")]
    PairingNeedsPhoneNumber,
    /// A `ready` report with no phone number, and none known.
    #[error("a ready session needs its phone number, and none was reported or known")]
    ReadyWithoutPhoneNumber,
    /// The plan's session count is used up.
    #[error("the plan allows {max} sessions and {in_use} are in use")]
    SessionLimitReached {
        /// Sessions the tenant has.
        in_use: u32,
        /// Sessions the plan allows.
        max: u32,
    },
    /// A daily limit above the plan's maximum.
    #[error("the plan allows a daily limit of at most {max}, asked for {requested}")]
    DailyLimitAbovePlan {
        /// The limit asked for.
        requested: DailyLimit,
        /// The plan's maximum.
        max: DailyLimit,
    },
    /// A start from a status that cannot start.
    #[error("cannot start a session that is {status}")]
    CannotStart {
        /// The session's status.
        status: SessionStatus,
    },
    /// A stop of a session that is not running.
    #[error("cannot stop a session that is {status}")]
    CannotStop {
        /// The session's status.
        status: SessionStatus,
    },
    /// A logout of a session that is logged out already.
    #[error("cannot log out a session that is {status}")]
    CannotLogOut {
        /// The session's status.
        status: SessionStatus,
    },
    /// An engine report that the status flow does not allow.
    #[error("a session cannot go from {from} to {to}")]
    InvalidTransition {
        /// The session's status.
        from: SessionStatus,
        /// The status reported.
        to: SessionStatus,
    },
    /// A reconnection reported for a session that is not trying to
    /// connect (starting or disconnected).
    #[error("a session that is {status} is not reconnecting")]
    NotReconnecting {
        /// The session's status.
        status: SessionStatus,
    },
    /// A pairing code or simulator control asked of a session no engine
    /// runs, because it is not started.
    #[error("the session is not started (it is {status}): start it first")]
    NotStarted {
        /// The session's status.
        status: SessionStatus,
    },
    /// A simulator control for a session of another driver.
    #[error("simulator controls are for simulator sessions; this one's driver is {driver}")]
    NotSimulator {
        /// The session's driver.
        driver: Driver,
    },
    /// A take or a report from an engine whose lease is not (or no longer)
    /// the one recorded: another engine holds the session.
    #[error(
        "the session is held by another engine's lease (fence {holder}), not this one's ({fence})"
    )]
    LeaseLost {
        /// The caller's fence.
        fence: Fence,
        /// The holder's fence (the zero fence: none recorded).
        holder: Fence,
    },
    /// A command other than a report sent as one
    /// ([`super::SessionCommand::FromHolder`]).
    #[error("only status, reconnection and waiting reports come from the session's engine")]
    NotAReport,
    /// A trust level change by someone who is not an admin.
    #[error("only an admin can change a session's trust level")]
    Forbidden,
}

impl SessionError {
    /// The stable API error code (the `code` of its error body).
    pub fn code(&self) -> crate::RefusalCode {
        use crate::RefusalCode as Code;
        match self {
            Self::NotFound => Code::NotFound,
            Self::AlreadyExists => Code::Conflict,
            Self::PairingNeedsPhoneNumber | Self::ReadyWithoutPhoneNumber => Code::ValidationFailed,
            Self::SessionLimitReached { .. } | Self::DailyLimitAbovePlan { .. } => {
                Code::PlanLimitExceeded
            }
            Self::CannotStart { .. }
            | Self::CannotStop { .. }
            | Self::CannotLogOut { .. }
            | Self::InvalidTransition { .. }
            | Self::NotReconnecting { .. }
            | Self::NotStarted { .. }
            | Self::NotSimulator { .. }
            | Self::LeaseLost { .. } => Code::InvalidState,
            Self::NotAReport => Code::ValidationFailed,
            Self::Forbidden => Code::Forbidden,
        }
    }
}
