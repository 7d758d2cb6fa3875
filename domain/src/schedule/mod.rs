//! A tenant's schedule: its active hours (time zone, weekly windows) and
//! the manual override. One aggregate per tenant (`TYPE` `"schedule"`).
//!
//! Never set, a schedule is Asia/Jakarta, no windows (always on), no
//! override. Setting the value it already has emits nothing.
//!
//! The schedule does not refuse sends itself: whoever asks for a send slot
//! (`session_day`) reads [`Schedule::active_hours`] and passes it along as a
//! fact.

pub mod aggregate;
pub mod commands;
pub mod error;
pub mod events;

pub use aggregate::Schedule;
pub use commands::ScheduleCommand;
pub use error::ScheduleError;
pub use events::ScheduleEvent;
