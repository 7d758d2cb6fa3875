//! What may be asked of a wallet.

use chrono::{DateTime, Utc};

use crate::plan::PlanTerms;
use crate::types::{CampaignId, Points, UserId};

/// A command to the wallet aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum WalletCommand {
    /// Subscribe to (or renew) a plan: allocates its points and runs it for
    /// its period, from its current expiry when it is still running.
    Subscribe {
        /// The terms of an active plan, from
        /// [`Plan::subscription_terms`](crate::plan::Plan::subscription_terms).
        terms: PlanTerms,
        /// The payment (or admin grant) this subscription comes from:
        /// 1 to [`MAX_REFERENCE_CHARS`](super::MAX_REFERENCE_CHARS)
        /// characters once trimmed, credited once.
        reference: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Add bought points.
    TopUp {
        /// How many (at least 1).
        points: Points,
        /// The payment: 1 to [`MAX_REFERENCE_CHARS`](super::MAX_REFERENCE_CHARS)
        /// characters once trimmed, credited once.
        reference: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Add points given by a platform admin, without a payment.
    Grant {
        /// How many (at least 1).
        points: Points,
        /// The admin.
        by: UserId,
        /// Why: 1 to [`MAX_REASON_CHARS`](super::MAX_REASON_CHARS)
        /// characters once trimmed.
        reason: String,
        /// Identifies this grant (the request's idempotency key, say): a
        /// grant repeated with the same reference and points credits once.
        reference: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Reserve what a campaign about to start costs:
    /// `recipients ×` [`Points::PER_MESSAGE`].
    Reserve {
        /// The campaign.
        campaign_id: CampaignId,
        /// How many recipients it has (at least 1).
        recipients: u64,
        /// When (the plan must be running then).
        at: DateTime<Utc>,
    },
    /// Make a direct campaign's reservation cover `messages` messages in
    /// all (`messages ×` [`Points::PER_MESSAGE`]), reserving what it lacks;
    /// one that covers them already records nothing, so a retry, or two
    /// callers asking for the same block, reserve once.
    ExtendReservation {
        /// The direct campaign.
        campaign_id: CampaignId,
        /// How many of its messages the reservation must cover, in all.
        messages: u64,
        /// When (the plan must be running then).
        at: DateTime<Utc>,
    },
    /// Settle a campaign that completed or was cancelled: capture what was
    /// sent, release the rest of its reservation.
    Settle {
        /// The campaign.
        campaign_id: CampaignId,
        /// How many messages it sent (each costs [`Points::PER_MESSAGE`]).
        messages_sent: u64,
        /// When.
        at: DateTime<Utc>,
    },
    /// Give back a reservation whose campaign did not start after all (its
    /// start was refused after the points were reserved). Unlike a
    /// settlement, the campaign may reserve again later. Nothing reserved:
    /// nothing to do.
    CancelReservation {
        /// The campaign.
        campaign_id: CampaignId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Take back points a refunded payment had credited: as many as are
    /// available (not spent, not reserved), the rest recorded as owed. A
    /// reference is taken back once (a retry records nothing).
    TakeBack {
        /// How many points the refund takes back.
        points: Points,
        /// The refund: 1 to [`MAX_REFERENCE_CHARS`](super::MAX_REFERENCE_CHARS)
        /// characters once trimmed, taken back once.
        reference: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Record that the plan ran out (sent by a timer at or after the
    /// expiry instant).
    ExpirePlan {
        /// When.
        at: DateTime<Utc>,
    },
    /// Suspend the tenant (the platform operator): sending, reservations
    /// and auto-replies stop, with the reason; nothing is deleted.
    /// Suspending a suspended tenant records nothing.
    Suspend {
        /// Why: 1 to [`MAX_REASON_CHARS`](super::MAX_REASON_CHARS)
        /// characters once trimmed.
        reason: String,
        /// The admin.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Lift a suspension. A tenant not suspended: nothing to record.
    Reactivate {
        /// The admin.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Record the notices due at `at` and not given yet this period: the
    /// plan's expiry coming (3 days, then 1 day before), its renewal due
    /// (at the end of its period), the balance running low. Sent by a
    /// timer; nothing due records nothing.
    Notify {
        /// When.
        at: DateTime<Utc>,
    },
}
