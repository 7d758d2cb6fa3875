//! Why a schedule refused a command.

use crate::RefusalCode;
use crate::types::active_hours::ActiveHoursError;

/// A refusal of a schedule command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The active hours are not acceptable (too many windows).
    #[error("invalid active hours: {0}")]
    InvalidActiveHours(#[from] ActiveHoursError),
}

impl ScheduleError {
    /// The stable API code.
    pub fn code(&self) -> RefusalCode {
        match self {
            Self::InvalidActiveHours(_) => RefusalCode::ValidationFailed,
        }
    }
}
