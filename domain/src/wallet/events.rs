//! What happened to a wallet.
//!
//! Every event that moves points carries the wallet's totals after it
//! (`balance_after`, `reserved_after`, `available_after`), so a read model
//! of the wallet is one assignment per event, and each event is one row of
//! the transaction history ([`WalletEvent::transaction_kind`]):
//!
//! | event                 | kind         | balance  | reserved |
//! |-----------------------|--------------|----------|----------|
//! | `PlanSubscribed`      | `allocation` | + points |          |
//! | `PointsToppedUp`      | `topup`      | + points |          |
//! | `PointsGranted`       | `topup`      | + points |          |
//! | `PointsReserved`      | `reserve`    |          | + points |
//! | `PointsCaptured`      | `capture`    | − points | − points |
//! | `ReservationReleased` | `release`    |          | − points |
//! | `PlanExpired`         | `expire`     |          |          |
//! | `PointsTakenBack`     | `refund`     | − taken  |          |
//!
//! Notices and the operator's suspensions move no points and are no rows
//! of the history ([`WalletEvent::transaction_kind`] is `None`):
//! `PlanExpiryWarned`, `PlanRenewalDue`, `BalanceLowWarned`,
//! `TenantSuspended`, `TenantReactivated`.
//!
//! A settlement is a `PointsCaptured` (when something was sent) followed by
//! a `ReservationReleased` (when something was left), in one commit.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::plan::PlanTerms;
use crate::types::{CampaignId, PlanId, Points, UserId};

/// An event of the wallet aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum WalletEvent {
    /// A plan was subscribed to or renewed, and its points allocated.
    PlanSubscribed {
        /// The plan's terms, kept for the whole period.
        terms: PlanTerms,
        /// The points allocated (the plan's points).
        points: Points,
        /// When the plan now runs out.
        expires_at: DateTime<Utc>,
        /// The payment (or grant) it comes from.
        reference: String,
        /// The balance after.
        balance_after: Points,
        /// The total reserved after.
        reserved_after: Points,
        /// What is available after.
        available_after: Points,
        /// When.
        at: DateTime<Utc>,
    },
    /// Bought points were added.
    PointsToppedUp {
        /// How many.
        points: Points,
        /// The payment.
        reference: String,
        /// The balance after.
        balance_after: Points,
        /// The total reserved after.
        reserved_after: Points,
        /// What is available after.
        available_after: Points,
        /// When.
        at: DateTime<Utc>,
    },
    /// An admin gave points.
    PointsGranted {
        /// How many.
        points: Points,
        /// The admin.
        by: UserId,
        /// Why.
        reason: String,
        /// Identifies the grant.
        reference: String,
        /// The balance after.
        balance_after: Points,
        /// The total reserved after.
        reserved_after: Points,
        /// What is available after.
        available_after: Points,
        /// When.
        at: DateTime<Utc>,
    },
    /// A starting campaign reserved what it may cost.
    PointsReserved {
        /// The campaign.
        campaign_id: CampaignId,
        /// How many points it reserved.
        points: Points,
        /// The balance after (unchanged).
        balance_after: Points,
        /// The total reserved after.
        reserved_after: Points,
        /// What is available after.
        available_after: Points,
        /// When.
        at: DateTime<Utc>,
    },
    /// A settled campaign paid for the messages it sent, out of its
    /// reservation.
    PointsCaptured {
        /// The campaign.
        campaign_id: CampaignId,
        /// How many points were spent: `messages_sent ×`
        /// [`Points::PER_MESSAGE`].
        points: Points,
        /// How many messages the campaign sent.
        messages_sent: u64,
        /// What is left of the campaign's reservation (released by the
        /// `ReservationReleased` that follows; zero ends the reservation).
        campaign_reserved_after: Points,
        /// The balance after.
        balance_after: Points,
        /// The total reserved after.
        reserved_after: Points,
        /// What is available after (unchanged).
        available_after: Points,
        /// When.
        at: DateTime<Utc>,
    },
    /// A settled campaign gave back what it reserved and did not send; its
    /// reservation ends.
    ReservationReleased {
        /// The campaign.
        campaign_id: CampaignId,
        /// How many points were released.
        points: Points,
        /// The balance after (unchanged).
        balance_after: Points,
        /// The total reserved after.
        reserved_after: Points,
        /// What is available after.
        available_after: Points,
        /// When.
        at: DateTime<Utc>,
    },
    /// A reservation was given back because its campaign did not start; the
    /// campaign may reserve again.
    ReservationCancelled {
        /// The campaign.
        campaign_id: CampaignId,
        /// How many points were given back.
        points: Points,
        /// The balance after (unchanged).
        balance_after: Points,
        /// The total reserved after.
        reserved_after: Points,
        /// What is available after.
        available_after: Points,
        /// When.
        at: DateTime<Utc>,
    },
    /// A refund took back points its payment had credited: as many as were
    /// available, the rest owed.
    PointsTakenBack {
        /// How many the refund takes back.
        points: Points,
        /// How many were taken (at most what was available).
        taken: Points,
        /// How many could not be taken (spent or reserved): owed.
        owed: Points,
        /// The refund.
        reference: String,
        /// The balance after.
        balance_after: Points,
        /// The total reserved after (unchanged).
        reserved_after: Points,
        /// What is available after.
        available_after: Points,
        /// When.
        at: DateTime<Utc>,
    },
    /// The plan ran out: no sending and no auto-replies until renewed. The
    /// points stay.
    PlanExpired {
        /// The plan that ran out.
        plan_id: PlanId,
        /// When it ran out.
        expires_at: DateTime<Utc>,
        /// When the expiry was recorded.
        at: DateTime<Utc>,
    },
    /// The plan runs out soon: `days_before` (3, then 1) days before its
    /// period ends.
    PlanExpiryWarned {
        /// The plan.
        plan_id: PlanId,
        /// When its period ends.
        expires_at: DateTime<Utc>,
        /// When sending stops (the end of the period plus its grace).
        sending_until: DateTime<Utc>,
        /// How many days before the end this warning is.
        days_before: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// The plan's period ended: renew it (in its grace period, if it has
    /// one, sending goes on until `sending_until`). wablast keeps no saved
    /// payment, so nothing renews by itself: this is the reminder.
    PlanRenewalDue {
        /// The plan.
        plan_id: PlanId,
        /// When its period ended.
        expires_at: DateTime<Utc>,
        /// When sending stops.
        sending_until: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Fewer points are available than the low-balance threshold (a tenth
    /// of the plan's points). Given once until the balance is above it
    /// again.
    BalanceLowWarned {
        /// Available then.
        available: Points,
        /// The threshold.
        threshold: Points,
        /// When.
        at: DateTime<Utc>,
    },
    /// The platform operator suspended the tenant.
    TenantSuspended {
        /// Why.
        reason: String,
        /// The admin.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// The platform operator lifted the suspension.
    TenantReactivated {
        /// The admin.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
}

/// The kind of a row of the wallet's transaction history (as the
/// API names it: `allocation|topup|reserve|capture|release|expire`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransactionKind {
    /// A plan's points allocated on subscription.
    Allocation,
    /// Points bought or granted.
    Topup,
    /// Points reserved by a campaign.
    Reserve,
    /// Points spent by a campaign.
    Capture,
    /// Reserved points given back by a campaign.
    Release,
    /// A plan that ran out.
    Expire,
    /// Points taken back by a refund.
    Refund,
}

impl TransactionKind {
    /// The kind as the API names it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allocation => "allocation",
            Self::Topup => "topup",
            Self::Reserve => "reserve",
            Self::Capture => "capture",
            Self::Release => "release",
            Self::Expire => "expire",
            Self::Refund => "refund",
        }
    }
}

impl WalletEvent {
    /// The kind of transaction-history row this event is (`None`: a notice
    /// or a suspension, no row).
    pub fn transaction_kind(&self) -> Option<TransactionKind> {
        Some(match self {
            Self::PlanSubscribed { .. } => TransactionKind::Allocation,
            Self::PointsToppedUp { .. } | Self::PointsGranted { .. } => TransactionKind::Topup,
            Self::PointsReserved { .. } => TransactionKind::Reserve,
            Self::PointsCaptured { .. } => TransactionKind::Capture,
            Self::ReservationReleased { .. } | Self::ReservationCancelled { .. } => {
                TransactionKind::Release
            }
            Self::PlanExpired { .. } => TransactionKind::Expire,
            Self::PlanExpiryWarned { .. }
            | Self::PlanRenewalDue { .. }
            | Self::BalanceLowWarned { .. }
            | Self::TenantSuspended { .. }
            | Self::TenantReactivated { .. } => return None,
            Self::PointsTakenBack { .. } => TransactionKind::Refund,
        })
    }

    /// The points this event moves (zero for an expiry; those taken for a
    /// take-back).
    pub fn points(&self) -> Points {
        match self {
            Self::PlanSubscribed { points, .. }
            | Self::PointsToppedUp { points, .. }
            | Self::PointsGranted { points, .. }
            | Self::PointsReserved { points, .. }
            | Self::PointsCaptured { points, .. }
            | Self::ReservationReleased { points, .. }
            | Self::ReservationCancelled { points, .. } => *points,
            Self::PlanExpired { .. }
            | Self::PlanExpiryWarned { .. }
            | Self::PlanRenewalDue { .. }
            | Self::BalanceLowWarned { .. }
            | Self::TenantSuspended { .. }
            | Self::TenantReactivated { .. } => Points::ZERO,
            Self::PointsTakenBack { taken, .. } => *taken,
        }
    }
}

impl DomainEvent for WalletEvent {
    fn event_type(&self) -> String {
        match self {
            Self::PlanSubscribed { .. } => "PlanSubscribed",
            Self::PointsToppedUp { .. } => "PointsToppedUp",
            Self::PointsGranted { .. } => "PointsGranted",
            Self::PointsReserved { .. } => "PointsReserved",
            Self::PointsCaptured { .. } => "PointsCaptured",
            Self::ReservationReleased { .. } => "ReservationReleased",
            Self::ReservationCancelled { .. } => "ReservationCancelled",
            Self::PlanExpired { .. } => "PlanExpired",
            Self::PlanExpiryWarned { .. } => "PlanExpiryWarned",
            Self::PlanRenewalDue { .. } => "PlanRenewalDue",
            Self::BalanceLowWarned { .. } => "BalanceLowWarned",
            Self::TenantSuspended { .. } => "TenantSuspended",
            Self::TenantReactivated { .. } => "TenantReactivated",
            Self::PointsTakenBack { .. } => "PointsTakenBack",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}
