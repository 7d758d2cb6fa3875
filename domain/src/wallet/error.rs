//! Why the wallet aggregate refuses a command.

use chrono::{DateTime, Utc};

use crate::RefusalCode;
use crate::types::{CampaignId, Points};

/// A refusal of the wallet aggregate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalletError {
    /// A top-up or grant of no points.
    #[error("points must be positive")]
    NoPoints,
    /// A reservation for no recipient.
    #[error("a reservation needs at least one recipient")]
    NoRecipients,
    /// A blank reference, or one longer than
    /// [`MAX_REFERENCE_CHARS`](super::MAX_REFERENCE_CHARS).
    #[error("a reference must be 1 to {} characters", super::MAX_REFERENCE_CHARS)]
    InvalidReference,
    /// A blank grant reason, or one longer than
    /// [`MAX_REASON_CHARS`](super::MAX_REASON_CHARS).
    #[error("a reason must be 1 to {} characters", super::MAX_REASON_CHARS)]
    InvalidReason,
    /// An amount or instant too large to count.
    #[error("amount or date out of range")]
    OutOfRange,
    /// The reference was already credited, for another amount.
    #[error("reference {reference:?} was already credited with another amount")]
    ReferenceAlreadyUsed {
        /// The reference.
        reference: String,
    },
    /// There is no plan, or it has expired: no sending, no auto-replies.
    #[error("no running plan: subscribe or renew to send")]
    PlanExpired {
        /// When the last plan expired (`None`: never subscribed).
        expired_at: Option<DateTime<Utc>>,
    },
    /// Fewer points are available than the campaign needs.
    #[error("not enough points: {required} required, {available} available")]
    InsufficientPoints {
        /// What the campaign needs.
        required: Points,
        /// What the wallet has available.
        available: Points,
    },
    /// The campaign already has another reservation.
    #[error("campaign {campaign_id} already has {reserved} reserved")]
    AlreadyReserved {
        /// The campaign.
        campaign_id: CampaignId,
        /// What it has reserved.
        reserved: Points,
    },
    /// The campaign was settled: it cannot reserve again.
    #[error("campaign {campaign_id} is already settled")]
    AlreadySettled {
        /// The campaign.
        campaign_id: CampaignId,
    },
    /// The campaign has no reservation to settle.
    #[error("campaign {campaign_id} has no reservation")]
    NoReservation {
        /// The campaign.
        campaign_id: CampaignId,
    },
    /// More messages were reported sent than the campaign reserved for: a
    /// bug upstream (the send allowance should have stopped them).
    #[error("campaign {campaign_id} reserved {reserved} but reports {messages_sent} messages sent")]
    SettlementExceedsReservation {
        /// The campaign.
        campaign_id: CampaignId,
        /// What it reserved.
        reserved: Points,
        /// How many messages it reported sent.
        messages_sent: u64,
    },
    /// There is no plan to expire.
    #[error("no plan to expire")]
    NoPlan,
    /// The plan is still running.
    #[error("the plan runs until {retry_at}")]
    PlanStillRunning {
        /// When it expires.
        retry_at: DateTime<Utc>,
    },
    /// The platform operator suspended the tenant: no sending, no
    /// reservation until it is reactivated.
    #[error("the tenant is suspended: {reason}")]
    Suspended {
        /// Why, as the operator said.
        reason: String,
    },
}

impl WalletError {
    /// The stable code the API answers with (the `code` of its error body).
    pub fn code(&self) -> RefusalCode {
        match self {
            Self::NoPoints
            | Self::NoRecipients
            | Self::InvalidReference
            | Self::InvalidReason
            | Self::OutOfRange => RefusalCode::ValidationFailed,
            Self::ReferenceAlreadyUsed { .. } => RefusalCode::Conflict,
            Self::PlanExpired { .. } => RefusalCode::PlanExpired,
            Self::Suspended { .. } => RefusalCode::TenantSuspended,
            Self::InsufficientPoints { .. } => RefusalCode::InsufficientPoints,
            Self::AlreadyReserved { .. }
            | Self::AlreadySettled { .. }
            | Self::NoReservation { .. }
            | Self::SettlementExceedsReservation { .. }
            | Self::NoPlan
            | Self::PlanStillRunning { .. } => RefusalCode::InvalidState,
        }
    }
}
