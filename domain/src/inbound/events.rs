//! What was received.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::types::phone::Phone;
use crate::types::{InboundId, SessionId};

/// An event of the inbound aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InboundEvent {
    /// A message was sent to a session's number. The only event of its
    /// aggregate.
    InboundMessageReceived {
        /// The message's id.
        inbound_id: InboundId,
        /// The session that received it.
        session_id: SessionId,
        /// The sender's number in E.164, when the driver could resolve it.
        from: Option<Phone>,
        /// The sender as the driver named it (`628…@c.us`, `…@lid`).
        from_raw: String,
        /// The text (at most [`MAX_TEXT_CHARS`](super::MAX_TEXT_CHARS)
        /// characters), if any.
        text: Option<String>,
        /// The driver's id of the message.
        provider_message_id: String,
        /// When it was sent, as the driver says.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for InboundEvent {
    fn event_type(&self) -> String {
        match self {
            Self::InboundMessageReceived { .. } => "InboundMessageReceived",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
