//! List check aggregate (`TYPE` = `"list_check"`): one run of "which of
//! this contact list's numbers are on WhatsApp?", a background job that
//! asks through one session at that session's pace for checks.
//!
//! The check covers the contacts the list held when it started (rows up to
//! [`ListCheckEvent::ListCheckStarted::last_row`]), in row order. Each step
//! records how far it got ([`ListCheckEvent::ListCheckProgressed`], with
//! the running totals), so a check cut off by a crash goes on from the row
//! after the last one recorded, and an integrator watching the event
//! stream sees its progress. It ends completed, failed (why:
//! [`CheckFailure`]) or cancelled.
//!
//! Rules:
//! - a step moves forward (a step at or before the recorded row is a retry
//!   and records nothing) and never counts more contacts than the check
//!   covers;
//! - nothing is recorded on a check that ended; ending one that ended the
//!   same way records nothing, ending it another way is refused.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::types::{ContactListId, SessionId};

/// Where a check stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListCheckStatus {
    /// Asking, or waiting for its session to be ready.
    Running,
    /// Every contact it covers was checked.
    Completed,
    /// It could not go on ([`CheckFailure`]).
    Failed,
    /// Stopped by the tenant.
    Cancelled,
}

impl ListCheckStatus {
    /// Its name, as stored and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status of that name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Running,
            Self::Completed,
            Self::Failed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|status| status.as_str() == name)
    }
}

/// Why a check could not go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckFailure {
    /// The contact list was deleted.
    ListDeleted,
    /// The session that asks was deleted.
    SessionDeleted,
    /// The session that asks was logged out: it asks nothing until it is
    /// linked again (a session that is stopped, reconnecting or failed is
    /// waited for).
    SessionLoggedOut,
    /// The session's driver cannot check numbers (the Cloud API).
    Unsupported,
}

impl CheckFailure {
    /// Its name, as stored and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ListDeleted => "list_deleted",
            Self::SessionDeleted => "session_deleted",
            Self::SessionLoggedOut => "session_logged_out",
            Self::Unsupported => "unsupported",
        }
    }

    /// The reason of that name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::ListDeleted,
            Self::SessionDeleted,
            Self::SessionLoggedOut,
            Self::Unsupported,
        ]
        .into_iter()
        .find(|reason| reason.as_str() == name)
    }
}

/// What may be done to a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListCheckCommand {
    /// Starts checking the list's contacts up to `last_row`.
    Start {
        /// The list.
        list_id: ContactListId,
        /// The session that asks.
        session_id: SessionId,
        /// How many contacts it covers.
        contacts: u64,
        /// The last row it covers (contacts added later are not).
        last_row: i32,
        /// When.
        at: DateTime<Utc>,
    },
    /// Records a step: the contacts before `next_row` are checked, this
    /// step's among them found on WhatsApp or not.
    Record {
        /// The first row not checked yet.
        next_row: i32,
        /// Contacts of this step on WhatsApp.
        on_whatsapp: u64,
        /// Contacts of this step not on WhatsApp.
        not_on_whatsapp: u64,
        /// When.
        at: DateTime<Utc>,
    },
    /// Every contact it covers was checked.
    Complete {
        /// When.
        at: DateTime<Utc>,
    },
    /// It cannot go on.
    Fail {
        /// Why.
        reason: CheckFailure,
        /// When.
        at: DateTime<Utc>,
    },
    /// The tenant stops it.
    Cancel {
        /// When.
        at: DateTime<Utc>,
    },
}

/// What happened to a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ListCheckEvent {
    /// It started.
    ListCheckStarted {
        /// The list.
        list_id: ContactListId,
        /// The session that asks.
        session_id: SessionId,
        /// How many contacts it covers.
        contacts: u64,
        /// The last row it covers.
        last_row: i32,
        /// When.
        at: DateTime<Utc>,
    },
    /// It got further: the totals so far.
    ListCheckProgressed {
        /// The first row not checked yet.
        next_row: i32,
        /// Contacts checked so far.
        checked: u64,
        /// Of them, on WhatsApp.
        on_whatsapp: u64,
        /// Of them, not on WhatsApp.
        not_on_whatsapp: u64,
        /// When.
        at: DateTime<Utc>,
    },
    /// Every contact it covers was checked.
    ListCheckCompleted {
        /// When.
        at: DateTime<Utc>,
    },
    /// It could not go on.
    ListCheckFailed {
        /// Why.
        reason: CheckFailure,
        /// When.
        at: DateTime<Utc>,
    },
    /// The tenant stopped it.
    ListCheckCancelled {
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for ListCheckEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ListCheckStarted { .. } => "ListCheckStarted",
            Self::ListCheckProgressed { .. } => "ListCheckProgressed",
            Self::ListCheckCompleted { .. } => "ListCheckCompleted",
            Self::ListCheckFailed { .. } => "ListCheckFailed",
            Self::ListCheckCancelled { .. } => "ListCheckCancelled",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// Why a check refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListCheckError {
    /// Started twice.
    #[error("this check has started already")]
    AlreadyStarted,
    /// Anything but a start before the start.
    #[error("no such check")]
    NotStarted,
    /// A step or another end after it ended.
    #[error("this check is {}: it records nothing more", .0.as_str())]
    Ended(ListCheckStatus),
    /// A step counting more contacts than the check covers.
    #[error("{checked} contacts checked of the {contacts} this check covers")]
    TooMany {
        /// What the step would make the total.
        checked: u64,
        /// What the check covers.
        contacts: u64,
    },
}

impl ListCheckError {
    /// The stable code of the refusal.
    pub fn code(&self) -> crate::RefusalCode {
        match self {
            Self::AlreadyStarted => crate::RefusalCode::Conflict,
            Self::NotStarted => crate::RefusalCode::NotFound,
            Self::Ended(_) => crate::RefusalCode::InvalidState,
            Self::TooMany { .. } => crate::RefusalCode::ValidationFailed,
        }
    }
}

/// A check's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListCheck {
    status: Option<ListCheckStatus>,
    list_id: Option<ContactListId>,
    session_id: Option<SessionId>,
    contacts: u64,
    last_row: i32,
    next_row: i32,
    on_whatsapp: u64,
    not_on_whatsapp: u64,
}

impl ListCheck {
    /// Where it stands; `None` before it started.
    pub fn status(&self) -> Option<ListCheckStatus> {
        self.status
    }

    /// The list it checks.
    pub fn list_id(&self) -> Option<ContactListId> {
        self.list_id
    }

    /// The session that asks.
    pub fn session_id(&self) -> Option<SessionId> {
        self.session_id
    }

    /// How many contacts it covers.
    pub fn contacts(&self) -> u64 {
        self.contacts
    }

    /// The last row it covers.
    pub fn last_row(&self) -> i32 {
        self.last_row
    }

    /// The first row not checked yet.
    pub fn next_row(&self) -> i32 {
        self.next_row
    }

    /// Contacts checked so far.
    pub fn checked(&self) -> u64 {
        self.on_whatsapp + self.not_on_whatsapp
    }

    /// Of them, on WhatsApp.
    pub fn on_whatsapp(&self) -> u64 {
        self.on_whatsapp
    }

    /// Of them, not on WhatsApp.
    pub fn not_on_whatsapp(&self) -> u64 {
        self.not_on_whatsapp
    }

    /// The event ending a running check with `status`, nothing for one
    /// that ended so already, a refusal for one that ended otherwise.
    fn end(
        &self,
        status: ListCheckStatus,
        event: ListCheckEvent,
    ) -> Result<Option<ListCheckEvent>, ListCheckError> {
        match self.status {
            None => Err(ListCheckError::NotStarted),
            Some(ListCheckStatus::Running) => Ok(Some(event)),
            Some(ended) if ended == status => Ok(None),
            Some(ended) => Err(ListCheckError::Ended(ended)),
        }
    }
}

impl Aggregate for ListCheck {
    const TYPE: &'static str = "list_check";
    type Command = ListCheckCommand;
    type Event = ListCheckEvent;
    type Error = ListCheckError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            ListCheckCommand::Start {
                list_id,
                session_id,
                contacts,
                last_row,
                at,
            } => {
                if self.status.is_some() {
                    return Err(ListCheckError::AlreadyStarted);
                }
                Some(ListCheckEvent::ListCheckStarted {
                    list_id,
                    session_id,
                    contacts,
                    last_row,
                    at,
                })
            }
            ListCheckCommand::Record {
                next_row,
                on_whatsapp,
                not_on_whatsapp,
                at,
            } => match self.status {
                None => return Err(ListCheckError::NotStarted),
                Some(ListCheckStatus::Running) if next_row <= self.next_row => None,
                Some(ListCheckStatus::Running) => {
                    let on_whatsapp = self.on_whatsapp.saturating_add(on_whatsapp);
                    let not_on_whatsapp = self.not_on_whatsapp.saturating_add(not_on_whatsapp);
                    let checked = on_whatsapp.saturating_add(not_on_whatsapp);
                    if checked > self.contacts {
                        return Err(ListCheckError::TooMany {
                            checked,
                            contacts: self.contacts,
                        });
                    }
                    Some(ListCheckEvent::ListCheckProgressed {
                        next_row,
                        checked,
                        on_whatsapp,
                        not_on_whatsapp,
                        at,
                    })
                }
                Some(ended) => return Err(ListCheckError::Ended(ended)),
            },
            ListCheckCommand::Complete { at } => self.end(
                ListCheckStatus::Completed,
                ListCheckEvent::ListCheckCompleted { at },
            )?,
            ListCheckCommand::Fail { reason, at } => self.end(
                ListCheckStatus::Failed,
                ListCheckEvent::ListCheckFailed { reason, at },
            )?,
            ListCheckCommand::Cancel { at } => self.end(
                ListCheckStatus::Cancelled,
                ListCheckEvent::ListCheckCancelled { at },
            )?,
        };
        if let Some(event) = event {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ListCheckEvent::ListCheckStarted {
                list_id,
                session_id,
                contacts,
                last_row,
                ..
            } => {
                self.status = Some(ListCheckStatus::Running);
                self.list_id = Some(list_id);
                self.session_id = Some(session_id);
                self.contacts = contacts;
                self.last_row = last_row;
            }
            ListCheckEvent::ListCheckProgressed {
                next_row,
                on_whatsapp,
                not_on_whatsapp,
                ..
            } => {
                self.next_row = next_row;
                self.on_whatsapp = on_whatsapp;
                self.not_on_whatsapp = not_on_whatsapp;
            }
            ListCheckEvent::ListCheckCompleted { .. } => {
                self.status = Some(ListCheckStatus::Completed);
            }
            ListCheckEvent::ListCheckFailed { .. } => {
                self.status = Some(ListCheckStatus::Failed);
            }
            ListCheckEvent::ListCheckCancelled { .. } => {
                self.status = Some(ListCheckStatus::Cancelled);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use cqrs_es::test::TestFramework;

    use super::*;

    type Given = TestFramework<ListCheck>;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 2, 0, 0).unwrap()
    }

    fn started(contacts: u64) -> ListCheckEvent {
        ListCheckEvent::ListCheckStarted {
            list_id: ContactListId::from_uuid(uuid::Uuid::nil()),
            session_id: SessionId::from_uuid(uuid::Uuid::nil()),
            contacts,
            last_row: 10,
            at: at(),
        }
    }

    fn record(next_row: i32, on: u64, off: u64) -> ListCheckCommand {
        ListCheckCommand::Record {
            next_row,
            on_whatsapp: on,
            not_on_whatsapp: off,
            at: at(),
        }
    }

    fn progressed(next_row: i32, on: u64, off: u64) -> ListCheckEvent {
        ListCheckEvent::ListCheckProgressed {
            next_row,
            checked: on + off,
            on_whatsapp: on,
            not_on_whatsapp: off,
            at: at(),
        }
    }

    #[test]
    fn steps_add_up_to_running_totals() {
        Given::with(())
            .given(vec![started(10), progressed(4, 2, 1)])
            .when(record(8, 3, 1))
            .then_expect_events(vec![progressed(8, 5, 2)]);
    }

    #[test]
    fn a_step_at_or_before_the_recorded_row_is_a_retry() {
        Given::with(())
            .given(vec![started(10), progressed(4, 2, 1)])
            .when(record(4, 2, 1))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_step_never_counts_more_contacts_than_the_check_covers() {
        Given::with(())
            .given(vec![started(3), progressed(3, 2, 0)])
            .when(record(5, 1, 1))
            .then_expect_error(ListCheckError::TooMany {
                checked: 4,
                contacts: 3,
            });
    }

    #[test]
    fn a_check_starts_once_and_records_nothing_before() {
        Given::with(())
            .given(vec![started(3)])
            .when(ListCheckCommand::Start {
                list_id: ContactListId::from_uuid(uuid::Uuid::nil()),
                session_id: SessionId::from_uuid(uuid::Uuid::nil()),
                contacts: 3,
                last_row: 3,
                at: at(),
            })
            .then_expect_error(ListCheckError::AlreadyStarted);
        Given::with(())
            .given_no_previous_events()
            .when(record(2, 1, 0))
            .then_expect_error(ListCheckError::NotStarted);
    }

    #[test]
    fn an_ended_check_records_nothing_more() {
        let cancelled = ListCheckEvent::ListCheckCancelled { at: at() };
        Given::with(())
            .given(vec![started(3), cancelled.clone()])
            .when(record(2, 1, 0))
            .then_expect_error(ListCheckError::Ended(ListCheckStatus::Cancelled));
        Given::with(())
            .given(vec![started(3), cancelled.clone()])
            .when(ListCheckCommand::Cancel { at: at() })
            .then_expect_events(vec![]);
        Given::with(())
            .given(vec![started(3), cancelled])
            .when(ListCheckCommand::Complete { at: at() })
            .then_expect_error(ListCheckError::Ended(ListCheckStatus::Cancelled));
        Given::with(())
            .given(vec![started(3)])
            .when(ListCheckCommand::Fail {
                reason: CheckFailure::SessionDeleted,
                at: at(),
            })
            .then_expect_events(vec![ListCheckEvent::ListCheckFailed {
                reason: CheckFailure::SessionDeleted,
                at: at(),
            }]);
    }
}
