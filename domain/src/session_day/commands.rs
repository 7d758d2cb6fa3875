//! What can be asked of a day counter.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::governor::GovernorLimits;
use crate::types::active_hours::ActiveHours;
use crate::types::{CampaignId, DailyLimit, MessageId, SessionId};

/// What the rest of the system knows when a slot is asked for, gathered by
/// the caller from the other aggregates (the day counter does no I/O).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendFacts {
    /// The session's status is `ready`.
    pub session_status_ready: bool,
    /// The asking engine holds the session's lease: the fence the session
    /// recorded last (`SessionHeld`) is the asking engine's. An engine
    /// that lost the session (paused past its lease, cut off from NATS)
    /// gets no slot, so it sends nothing more for it.
    pub asked_by_holder: bool,
    /// The session's daily limit.
    pub daily_limit: DailyLimit,
    /// The tenant's active hours, override included (its time zone also
    /// decides the local day).
    pub active_hours: ActiveHours,
    /// When the tenant's plan expires; `None` = no plan.
    pub plan_expires_at: Option<DateTime<Utc>>,
    /// The message's campaign is `running`.
    pub campaign_running: bool,
    /// What the sender governor holds this send to, and what it needs to
    /// know of it; `None`: the daily limit only.
    pub governor: Option<GovernorAsk>,
}

/// A send as the sender governor sees it: the caps of the sender at the
/// instant ([`crate::governor::Governor::limits`]) and the facts of the
/// message the caps need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GovernorAsk {
    /// The caps.
    pub limits: GovernorLimits,
    /// The recipient never exchanged messages with this sender (known
    /// only when the caps need it; `false` otherwise).
    pub new_contact: bool,
    /// A hash of the rendered text (when the caps need it).
    pub text_hash: Option<u64>,
}

/// A command to a day counter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SessionDayCommand {
    /// May `session_id` send `message_id` now? Asking again for a message
    /// already granted this day is answered with success and no event.
    RequestSlot {
        /// The sending session.
        session_id: SessionId,
        /// The local day the caller addressed (the day in the aggregate's
        /// id): the instant must fall on it, first request included.
        day: NaiveDate,
        /// The message to send.
        message_id: MessageId,
        /// The message's campaign.
        campaign_id: CampaignId,
        /// The instant of the send.
        at: DateTime<Utc>,
        /// The facts from other aggregates.
        facts: SendFacts,
    },
}
