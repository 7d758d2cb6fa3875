//! Why a send slot was refused.

use chrono::{DateTime, NaiveDate, Utc};

use crate::types::SessionId;

/// A refusal of a send slot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionDayError {
    /// The instant is on another local day than this counter's: the caller
    /// computed the wrong aggregate id.
    #[error("wrong day: this counter is for {expected}, the instant is on {got} local time")]
    WrongDay {
        /// This counter's local day.
        expected: NaiveDate,
        /// The local day of the instant asked for.
        got: NaiveDate,
    },
    /// Another session than this counter's: the caller computed the wrong
    /// aggregate id.
    #[error("wrong session: this counter is for session {expected}, not {got}")]
    WrongSession {
        /// This counter's session.
        expected: SessionId,
        /// The session asked for.
        got: SessionId,
    },
    /// The asking engine does not hold the session's lease (any more).
    #[error("the asking engine does not hold the session's lease")]
    NotHolder,
    /// The session is not `ready`.
    #[error("session is not ready")]
    SessionNotReady,
    /// No plan, or it has expired.
    #[error("plan expired (or no plan)")]
    PlanExpired,
    /// The platform operator suspended the tenant (the wallet's answer,
    /// [`Wallet::can_send_at`](crate::wallet::Wallet::can_send_at), asked
    /// before the counter).
    #[error("the tenant is suspended")]
    TenantSuspended,
    /// The message's campaign is not running.
    #[error("campaign is not running")]
    CampaignNotRunning,
    /// The tenant paused all sending (override); ask again once the override
    /// changes.
    #[error("sending is paused")]
    Paused,
    /// The daily limit is used up; a new day starts at `retry_at`.
    #[error("daily limit reached; ask again at {retry_at}")]
    DailyLimitReached {
        /// The next local midnight.
        retry_at: DateTime<Utc>,
    },
    /// Outside the active hours.
    #[error("outside active hours")]
    OutsideActiveHours {
        /// When they open next (`None`: no opening within 8 days).
        retry_at: Option<DateTime<Utc>>,
    },
}

impl SessionDayError {
    /// The stable API code.
    pub fn code(&self) -> crate::RefusalCode {
        use crate::RefusalCode as Code;
        match self {
            Self::WrongDay { .. } | Self::WrongSession { .. } => Code::ValidationFailed,
            Self::SessionNotReady => Code::SessionNotReady,
            Self::NotHolder => Code::InvalidState,
            Self::PlanExpired => Code::PlanExpired,
            Self::TenantSuspended => Code::TenantSuspended,
            Self::CampaignNotRunning => Code::CampaignNotRunning,
            Self::Paused | Self::OutsideActiveHours { .. } => Code::OutsideActiveHours,
            Self::DailyLimitReached { .. } => Code::DailyLimitReached,
        }
    }

    /// When asking again makes sense, if the refusal says.
    pub fn retry_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::DailyLimitReached { retry_at } => Some(*retry_at),
            Self::OutsideActiveHours { retry_at } => *retry_at,
            _ => None,
        }
    }
}
