//! What can be asked of a schedule.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::types::active_hours::{Override, TimeZone, Window};

/// A command to a tenant's schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ScheduleCommand {
    /// Replace the time zone and windows (the override is kept). An empty
    /// `windows` means always on.
    SetActiveHours {
        /// The tenant's time zone.
        timezone: TimeZone,
        /// The weekly windows, in the order shown to the user.
        windows: Vec<Window>,
        /// When it was asked.
        at: DateTime<Utc>,
    },
    /// Set the manual override: pause all, activate now, or back to the
    /// windows.
    SetOverride {
        /// The new override.
        mode: Override,
        /// When it was asked.
        at: DateTime<Utc>,
    },
}
