//! Why a message refused a command.

use super::aggregate::MessageStatus;
use crate::RefusalCode;
use crate::types::Points;

/// A message's refusal. [`MessageError::code`] gives the stable API code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The message was queued already.
    #[error("message already exists")]
    AlreadyQueued,
    /// The message does not exist.
    #[error("message not found")]
    NotFound,
    /// The command does not apply in the message's status.
    #[error("cannot {action} a {status} message")]
    InvalidState {
        /// What was asked (`start sending`, `record as sent`, ...).
        action: &'static str,
        /// The message's status.
        status: MessageStatus,
    },
    /// An attempt number that is not greater than the last one (a repeated
    /// or out-of-order command).
    #[error("attempt {attempt} is not after attempt {last}")]
    StaleAttempt {
        /// The attempt asked for.
        attempt: u32,
        /// The last attempt made.
        last: u32,
    },
    /// A retry of a failure that was not retryable.
    #[error("message failed for good and is not retried")]
    FailedForGood,
    /// A send of a message whose earlier attempt may have gone out.
    #[error("message may have been sent already and is never re-sent silently")]
    OutcomeUnknown,
    /// A cost other than the price of one message.
    #[error("a message costs {expected}, not {got}")]
    WrongCost {
        /// The price of one message.
        expected: Points,
        /// The cost given.
        got: Points,
    },
}

impl MessageError {
    /// The stable API code of this refusal (the REST contract's error codes).
    pub fn code(&self) -> RefusalCode {
        match self {
            Self::AlreadyQueued | Self::StaleAttempt { .. } => RefusalCode::Conflict,
            Self::NotFound => RefusalCode::NotFound,
            Self::InvalidState { .. } | Self::FailedForGood | Self::OutcomeUnknown => {
                RefusalCode::InvalidState
            }
            Self::WrongCost { .. } => RefusalCode::ValidationFailed,
        }
    }
}
