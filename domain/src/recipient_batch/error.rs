//! Why a recipient batch refused a command.

use crate::RefusalCode;

/// A recipient batch's refusal. [`RecipientBatchError::code`] gives the
/// stable API code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecipientBatchError {
    /// The batch was queued already.
    #[error("recipient batch already queued")]
    AlreadyQueued,
    /// A batch of no recipients, or of more than [`BATCH_SIZE`](super::BATCH_SIZE).
    #[error("a recipient batch holds 1 to {max} recipients, not {got}")]
    Size {
        /// The most allowed.
        max: usize,
        /// How many were given.
        got: usize,
    },
    /// Two recipients of the batch share a message id.
    #[error("message {0} is in the batch twice")]
    Repeated(String),
    /// A direct campaign's batch holding all it may: the next message goes
    /// to the next batch.
    #[error("the batch holds its {capacity} messages")]
    Full {
        /// How many it holds.
        capacity: u32,
    },
    /// An admission to a batch the fan-out queued, or one held to other
    /// bounds than those it was opened with.
    #[error("this batch takes no admission")]
    NotAdmitting,
}

impl RecipientBatchError {
    /// The stable API code of this refusal (the REST contract's error codes).
    pub fn code(&self) -> RefusalCode {
        match self {
            Self::AlreadyQueued | Self::Full { .. } | Self::NotAdmitting => RefusalCode::Conflict,
            Self::Size { .. } | Self::Repeated(_) => RefusalCode::ValidationFailed,
        }
    }
}
