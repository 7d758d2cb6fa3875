//! The schedule aggregate.
//!
//! Rules: active hours are validated when set (at most
//! [`ActiveHours::MAX_WINDOWS`] windows; windows and time zones are already
//! valid by type); setting the active hours keeps the override; setting a
//! value the schedule already has emits nothing.

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::commands::ScheduleCommand;
use super::error::ScheduleError;
use super::events::ScheduleEvent;
use crate::types::active_hours::ActiveHours;

/// A tenant's active hours and override.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    active_hours: ActiveHours,
}

impl Schedule {
    /// The tenant's active hours, override included: the fact to pass to a
    /// send-slot request.
    pub fn active_hours(&self) -> &ActiveHours {
        &self.active_hours
    }
}

impl Aggregate for Schedule {
    const TYPE: &'static str = "schedule";
    type Command = ScheduleCommand;
    type Event = ScheduleEvent;
    type Error = ScheduleError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            ScheduleCommand::SetActiveHours {
                timezone,
                windows,
                at,
            } => {
                let current = &self.active_hours;
                let next = ActiveHours::new(timezone, windows.clone(), current.override_mode())?;
                if next != *current {
                    sink.write(
                        ScheduleEvent::ActiveHoursSet {
                            timezone,
                            windows,
                            at,
                        },
                        self,
                    )
                    .await;
                }
            }
            ScheduleCommand::SetOverride { mode, at } => {
                if mode != self.active_hours.override_mode() {
                    sink.write(ScheduleEvent::OverrideSet { mode, at }, self)
                        .await;
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ScheduleEvent::ActiveHoursSet {
                timezone, windows, ..
            } => {
                self.active_hours = ActiveHours::from_validated(
                    timezone,
                    windows,
                    self.active_hours.override_mode(),
                );
            }
            ScheduleEvent::OverrideSet { mode, .. } => {
                self.active_hours = self.active_hours.clone().with_override(mode);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::types::active_hours::{ActiveHoursError, Override, TimeZone, Weekday, Window};

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-30T02:00:00Z")
            .unwrap()
            .to_utc()
    }

    fn berlin() -> TimeZone {
        TimeZone::parse("Europe/Berlin").unwrap()
    }

    fn workdays() -> Vec<Window> {
        vec![Window::parse(Weekday::WORKDAYS, "09:00", "18:00").unwrap()]
    }

    fn set_in_berlin() -> ScheduleEvent {
        ScheduleEvent::ActiveHoursSet {
            timezone: berlin(),
            windows: workdays(),
            at: at(),
        }
    }

    fn fold(events: Vec<ScheduleEvent>) -> Schedule {
        let mut schedule = Schedule::default();
        for event in events {
            schedule.apply(event);
        }
        schedule
    }

    #[test]
    fn a_schedule_never_set_is_jakarta_and_always_on() {
        let schedule = Schedule::default();
        assert_eq!(schedule.active_hours(), &ActiveHours::default());
        assert_eq!(schedule.active_hours().timezone(), TimeZone::JAKARTA);
        assert!(schedule.active_hours().windows().is_empty());
        assert_eq!(schedule.active_hours().override_mode(), Override::None);
        assert!(schedule.active_hours().is_open(at()));
    }

    #[test]
    fn sets_the_time_zone_and_windows() {
        TestFramework::<Schedule>::with(())
            .given_no_previous_events()
            .when(ScheduleCommand::SetActiveHours {
                timezone: berlin(),
                windows: workdays(),
                at: at(),
            })
            .then_expect_events(vec![set_in_berlin()]);
        let schedule = fold(vec![set_in_berlin()]);
        assert_eq!(schedule.active_hours().timezone(), berlin());
        assert_eq!(schedule.active_hours().windows(), workdays().as_slice());
    }

    #[test]
    fn setting_the_same_active_hours_again_emits_nothing() {
        TestFramework::<Schedule>::with(())
            .given(vec![set_in_berlin()])
            .when(ScheduleCommand::SetActiveHours {
                timezone: berlin(),
                windows: workdays(),
                at: at(),
            })
            .then_expect_events(vec![]);
        TestFramework::<Schedule>::with(())
            .given_no_previous_events()
            .when(ScheduleCommand::SetActiveHours {
                timezone: TimeZone::JAKARTA,
                windows: vec![],
                at: at(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn clearing_the_windows_makes_it_always_on() {
        let cleared = ScheduleEvent::ActiveHoursSet {
            timezone: berlin(),
            windows: vec![],
            at: at(),
        };
        TestFramework::<Schedule>::with(())
            .given(vec![set_in_berlin()])
            .when(ScheduleCommand::SetActiveHours {
                timezone: berlin(),
                windows: vec![],
                at: at(),
            })
            .then_expect_events(vec![cleared.clone()]);
        let schedule = fold(vec![set_in_berlin(), cleared]);
        assert!(schedule.active_hours().is_open(at()));
    }

    #[test]
    fn refuses_more_windows_than_allowed() {
        TestFramework::<Schedule>::with(())
            .given_no_previous_events()
            .when(ScheduleCommand::SetActiveHours {
                timezone: berlin(),
                windows: vec![workdays()[0].clone(); ActiveHours::MAX_WINDOWS + 1],
                at: at(),
            })
            .then_expect_error(ScheduleError::InvalidActiveHours(
                ActiveHoursError::TooManyWindows { got: 101, max: 100 },
            ));
        let error = ScheduleError::InvalidActiveHours(ActiveHoursError::NoDays);
        assert_eq!(error.code(), "validation_failed");
    }

    #[test]
    fn sets_the_override() {
        TestFramework::<Schedule>::with(())
            .given_no_previous_events()
            .when(ScheduleCommand::SetOverride {
                mode: Override::Pause,
                at: at(),
            })
            .then_expect_events(vec![ScheduleEvent::OverrideSet {
                mode: Override::Pause,
                at: at(),
            }]);
    }

    #[test]
    fn setting_the_same_override_again_emits_nothing() {
        TestFramework::<Schedule>::with(())
            .given(vec![ScheduleEvent::OverrideSet {
                mode: Override::Activate,
                at: at(),
            }])
            .when(ScheduleCommand::SetOverride {
                mode: Override::Activate,
                at: at(),
            })
            .then_expect_events(vec![]);
        TestFramework::<Schedule>::with(())
            .given_no_previous_events()
            .when(ScheduleCommand::SetOverride {
                mode: Override::None,
                at: at(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn setting_active_hours_keeps_the_override_and_the_override_keeps_the_windows() {
        let paused = ScheduleEvent::OverrideSet {
            mode: Override::Pause,
            at: at(),
        };
        let schedule = fold(vec![paused.clone(), set_in_berlin()]);
        assert_eq!(schedule.active_hours().override_mode(), Override::Pause);
        assert_eq!(schedule.active_hours().timezone(), berlin());

        let schedule = fold(vec![set_in_berlin(), paused]);
        assert_eq!(schedule.active_hours().windows(), workdays().as_slice());
        assert!(!schedule.active_hours().is_open(at()));
    }

    #[test]
    fn events_keep_their_names_and_shape() {
        use cqrs_es::DomainEvent;
        assert_eq!(set_in_berlin().event_type(), "ActiveHoursSet");
        assert_eq!(set_in_berlin().event_version(), "1.0");
        let event = ScheduleEvent::OverrideSet {
            mode: Override::Activate,
            at: at(),
        };
        assert_eq!(event.event_type(), "OverrideSet");
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"OverrideSet":{"mode":"activate","at":"2026-03-30T02:00:00Z"}}"#
        );
        let json = serde_json::to_string(&set_in_berlin()).unwrap();
        assert_eq!(
            serde_json::from_str::<ScheduleEvent>(&json).unwrap(),
            set_in_berlin()
        );
    }
}
