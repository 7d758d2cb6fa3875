//! Why a send slot was refused.

use chrono::{DateTime, NaiveDate, Utc};

use crate::governor::RestrictionScope;
use crate::types::SessionId;

/// A cap of the sender governor beyond the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cap {
    /// Sends in any 60 seconds.
    PerMinute,
    /// Sends in any hour.
    PerHour,
    /// New contacts a local day.
    NewContactsPerDay,
    /// The same rendered text in any hour.
    IdenticalTextsPerHour,
}

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
    /// The sender governor's warm-up allowance for the day is used up
    /// (below the daily limit); it grows or a new day starts at
    /// `retry_at`.
    #[error("warm-up allowance of {allowance} reached; ask again at {retry_at}")]
    WarmUpAllowanceReached {
        /// The day's allowance.
        allowance: u32,
        /// When it grows, or the next local midnight, whichever is first.
        retry_at: DateTime<Utc>,
    },
    /// WhatsApp restricted the sender: nothing (`scope` all) or nothing to
    /// new contacts goes until `until`.
    #[error("the sender is restricted until {until}")]
    SenderRestricted {
        /// What is held back.
        scope: RestrictionScope,
        /// When the restriction ends.
        until: DateTime<Utc>,
    },
    /// A cap of the sender governor beyond the day (sends a minute or an
    /// hour, new contacts a day, identical texts an hour) is reached until
    /// `retry_at`.
    #[error("{cap:?} cap of {max} reached; ask again at {retry_at}")]
    CapReached {
        /// Which cap.
        cap: Cap,
        /// Its value.
        max: u32,
        /// When a send fits under it again.
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
            Self::DailyLimitReached { .. } | Self::WarmUpAllowanceReached { .. } => {
                Code::DailyLimitReached
            }
            Self::SenderRestricted { .. } => Code::SenderRestricted,
            Self::CapReached { .. } => Code::SendCapReached,
        }
    }

    /// When asking again makes sense, if the refusal says.
    pub fn retry_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::DailyLimitReached { retry_at }
            | Self::WarmUpAllowanceReached { retry_at, .. }
            | Self::CapReached { retry_at, .. } => Some(*retry_at),
            Self::SenderRestricted { until, .. } => Some(*until),
            Self::OutsideActiveHours { retry_at } => *retry_at,
            _ => None,
        }
    }
}
