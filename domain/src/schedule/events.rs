//! What happened to a schedule.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::types::active_hours::{Override, TimeZone, Window};

/// An event of a tenant's schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ScheduleEvent {
    /// The time zone and windows were replaced.
    ActiveHoursSet {
        /// The tenant's time zone.
        timezone: TimeZone,
        /// The weekly windows (empty = always on).
        windows: Vec<Window>,
        /// When it was asked (the command's instant).
        at: DateTime<Utc>,
    },
    /// The override changed.
    OverrideSet {
        /// The new override.
        mode: Override,
        /// When it was asked (the command's instant).
        at: DateTime<Utc>,
    },
}

impl DomainEvent for ScheduleEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ActiveHoursSet { .. } => "ActiveHoursSet",
            Self::OverrideSet { .. } => "OverrideSet",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
