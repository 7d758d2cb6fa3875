//! What one message says when it is written for its recipient alone (a
//! single send through the gateway), not rendered from a campaign's
//! template.

use serde::{Deserialize, Serialize};

use super::MediaId;
use super::whatsapp_template::TemplateMessage;

/// The longest text (or caption) of one message, in characters: WhatsApp's
/// own limit for a text message.
pub const MAX_TEXT_CHARS: usize = 4096;

/// The longest id of a quoted message accepted (WhatsApp's ids are a few
/// dozen characters).
pub const MAX_REPLY_TO_CHARS: usize = 128;

/// A message's own content: a text, or an attachment with an optional
/// caption; either may quote an earlier message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageContent {
    /// The text, or the attachment's caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The attachment (from the media store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_id: Option<MediaId>,
    /// WhatsApp's id of the message this one answers (quoted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// An approved WhatsApp template instead of a text (Cloud API
    /// sessions): then there is no text and no attachment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Box<TemplateMessage>>,
}

/// Why a content is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    /// Neither a text nor an attachment.
    #[error("a message needs a text or an attachment")]
    Empty,
    /// A text (or caption) that is blank or too long.
    #[error("a text has 1 to {MAX_TEXT_CHARS} characters (not only spaces), not {chars}")]
    TextLength {
        /// How many characters it has.
        chars: usize,
    },
    /// A quoted message id that is blank or too long.
    #[error("reply_to is a message id of 1 to {MAX_REPLY_TO_CHARS} characters")]
    ReplyTo,
}

impl MessageContent {
    /// A content from its parts: a text of 1 to [`MAX_TEXT_CHARS`]
    /// characters (kept as written) and/or an attachment, and an optional
    /// quoted message id (trimmed).
    pub fn new(
        text: Option<String>,
        media_id: Option<MediaId>,
        reply_to: Option<String>,
    ) -> Result<Self, ContentError> {
        if let Some(text) = &text {
            let chars = text.chars().count();
            if text.trim().is_empty() || chars > MAX_TEXT_CHARS {
                return Err(ContentError::TextLength { chars });
            }
        }
        if text.is_none() && media_id.is_none() {
            return Err(ContentError::Empty);
        }
        Ok(Self {
            text,
            media_id,
            reply_to: check_reply_to(reply_to)?,
            template: None,
        })
    }

    /// A template message (checked by [`TemplateMessage::new`]), with an
    /// optional quoted message id.
    pub fn template(
        template: TemplateMessage,
        reply_to: Option<String>,
    ) -> Result<Self, ContentError> {
        Ok(Self {
            text: None,
            media_id: None,
            reply_to: check_reply_to(reply_to)?,
            template: Some(Box::new(template)),
        })
    }
}

fn check_reply_to(reply_to: Option<String>) -> Result<Option<String>, ContentError> {
    match reply_to {
        None => Ok(None),
        Some(id) => {
            let id = id.trim();
            if id.is_empty() || id.chars().count() > MAX_REPLY_TO_CHARS {
                return Err(ContentError::ReplyTo);
            }
            Ok(Some(id.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn a_content_is_a_text_or_an_attachment() {
        let media = MediaId::from_uuid(Uuid::from_u128(1));
        assert!(MessageContent::new(Some("Halo".into()), None, None).is_ok());
        assert!(MessageContent::new(None, Some(media), None).is_ok());
        let both = MessageContent::new(Some("Katalog".into()), Some(media), None).unwrap();
        assert_eq!(both.text.as_deref(), Some("Katalog"));
        assert_eq!(
            MessageContent::new(None, None, None),
            Err(ContentError::Empty)
        );
    }

    #[test]
    fn texts_are_bounded_and_not_blank() {
        assert_eq!(
            MessageContent::new(Some("  \n".into()), None, None),
            Err(ContentError::TextLength { chars: 3 })
        );
        let long = "a".repeat(MAX_TEXT_CHARS + 1);
        assert!(MessageContent::new(Some(long), None, None).is_err());
        let longest = "é".repeat(MAX_TEXT_CHARS);
        assert!(MessageContent::new(Some(longest), None, None).is_ok());
    }

    #[test]
    fn a_quoted_id_is_trimmed_and_bounded() {
        let quoted = MessageContent::new(Some("ya".into()), None, Some(" wamid.1 ".into()));
        assert_eq!(quoted.unwrap().reply_to.as_deref(), Some("wamid.1"));
        assert_eq!(
            MessageContent::new(Some("ya".into()), None, Some(" ".into())),
            Err(ContentError::ReplyTo)
        );
    }
}
