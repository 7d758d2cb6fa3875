//! What happened to a day counter.

use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::governor::GovernorLimits;
use crate::types::{CampaignId, MessageId, SessionId};

/// What a grant was held to by the sender governor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Governed {
    /// The caps at the instant of the grant.
    pub limits: GovernorLimits,
    /// Whether the recipient was a new contact (known when the caps needed
    /// it).
    pub new_contact: bool,
    /// A hash of the rendered text (when the caps needed it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_hash: Option<u64>,
    /// New contacts granted that local day, this one included.
    pub new_contacts_after: u32,
}

/// An event of a day counter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum SessionDayEvent {
    /// A send slot was granted: the message may be sent now.
    SlotGranted {
        /// The sending session.
        session_id: SessionId,
        /// The message granted.
        message_id: MessageId,
        /// The message's campaign.
        campaign_id: CampaignId,
        /// The instant granted.
        at: DateTime<Utc>,
        /// The local day it counts on (the tenant's time zone).
        local_date: NaiveDate,
        /// How many slots this session has been granted that day,
        /// this one included.
        count_after: u32,
        /// The sender governor's caps it was granted under and the facts
        /// they were checked with (absent: the daily limit only, as before
        /// the governor).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        governed: Option<Governed>,
    },
}

impl SessionDayEvent {
    /// How many slots the session had been granted that day after it: the
    /// day counter's count, read off its last event alone.
    pub fn count_after(&self) -> u32 {
        match self {
            Self::SlotGranted { count_after, .. } => *count_after,
        }
    }
}

impl DomainEvent for SessionDayEvent {
    fn event_type(&self) -> String {
        match self {
            Self::SlotGranted { .. } => "SlotGranted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
