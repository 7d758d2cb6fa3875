//! What was received.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::types::phone::Phone;
use crate::types::{InboundId, SessionId};

/// What kind of message was received (the drivers' own words mapped to
/// one list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InboundKind {
    /// Words only.
    Text,
    /// A picture (with or without a caption).
    Image,
    /// A video.
    Video,
    /// A voice note or an audio file.
    Audio,
    /// A document (PDF, spreadsheet, ...).
    Document,
    /// A sticker.
    Sticker,
    /// A location.
    Location,
    /// A contact card.
    Contact,
    /// A reaction to a message.
    Reaction,
    /// An answer chosen from buttons or a list.
    Interactive,
    /// Something else the driver reported.
    Other,
}

impl InboundKind {
    /// As the API names it: `text`, `image`, ...
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::Document => "document",
            Self::Sticker => "sticker",
            Self::Location => "location",
            Self::Contact => "contact",
            Self::Reaction => "reaction",
            Self::Interactive => "interactive",
            Self::Other => "other",
        }
    }

    /// The kind of an attachment of this MIME type.
    pub fn of_mime_type(mime_type: &str) -> Self {
        match mime_type.split('/').next().unwrap_or_default() {
            "image" if mime_type == "image/webp" => Self::Sticker,
            "image" => Self::Image,
            "video" => Self::Video,
            "audio" => Self::Audio,
            _ => Self::Document,
        }
    }
}

/// An event of the inbound aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
        /// Its kind (absent from events recorded before it was kept).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<InboundKind>,
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
