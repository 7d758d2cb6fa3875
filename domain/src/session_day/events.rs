//! What happened to a day counter.

use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::types::{CampaignId, MessageId, SessionId};

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
