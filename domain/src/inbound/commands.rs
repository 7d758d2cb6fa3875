//! What the session engine reports to an inbound message.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::events::InboundKind;
use crate::types::phone::Phone;
use crate::types::{InboundId, SessionId};

/// A command to the inbound aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InboundCommand {
    /// A driver reported a message sent to the session's number. Reported
    /// again, the same: nothing is recorded.
    ReceiveInbound {
        /// The message's id: [`inbound_id`](super::inbound_id)`(session_id,
        /// &provider_message_id)`.
        inbound_id: InboundId,
        /// The session that received it.
        session_id: SessionId,
        /// The sender's number, when the driver could resolve it.
        from: Option<Phone>,
        /// The sender as the driver named it (`628…@c.us`, `…@lid`).
        from_raw: String,
        /// The text, if any (kept up to [`MAX_TEXT_CHARS`](super::MAX_TEXT_CHARS)
        /// characters).
        text: Option<String>,
        /// The driver's id of the message.
        provider_message_id: String,
        /// Its kind.
        kind: InboundKind,
        /// When it was sent, as the driver says.
        at: DateTime<Utc>,
    },
}
