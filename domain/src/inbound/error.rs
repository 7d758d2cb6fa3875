//! Why an inbound message was refused.

use crate::RefusalCode;
use crate::types::InboundId;

/// An inbound message's refusal. [`InboundError::code`] gives the stable
/// API code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    /// Another message was received under this id already.
    #[error("another message was already received under this id")]
    AlreadyReceived,
    /// The id is not the one derived from the session and the driver's id
    /// of the message.
    #[error("inbound id {got} is not the id of this session's message ({expected})")]
    IdMismatch {
        /// [`inbound_id`](super::inbound_id) of the command's session and
        /// provider message id.
        expected: InboundId,
        /// The id the command named.
        got: InboundId,
    },
    /// A required field is empty.
    #[error("{field} is empty")]
    Missing {
        /// `from_raw` or `provider_message_id`.
        field: &'static str,
    },
    /// An id longer than [`MAX_RAW_ID_CHARS`](super::MAX_RAW_ID_CHARS).
    #[error("{field} is longer than {max} characters")]
    TooLong {
        /// `from_raw` or `provider_message_id`.
        field: &'static str,
        /// The most characters allowed.
        max: usize,
    },
}

impl InboundError {
    /// The stable API code of this refusal (the REST contract's error codes).
    pub fn code(&self) -> RefusalCode {
        match self {
            Self::AlreadyReceived => RefusalCode::Conflict,
            Self::IdMismatch { .. } | Self::Missing { .. } | Self::TooLong { .. } => {
                RefusalCode::ValidationFailed
            }
        }
    }
}
