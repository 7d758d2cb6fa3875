//! The day counter aggregate: the send allowance of one session on one
//! local day.
//!
//! A slot is granted only if, at the instant asked for:
//! - the instant's local date (tenant time zone) is this counter's day and
//!   the session is this counter's (both fixed by the first grant; else
//!   `WrongDay` / `WrongSession`, code `validation_failed`);
//! - the asking engine holds the session's lease, the session is ready,
//!   the plan exists and has not expired
//!   (`at < plan_expires_at`), the campaign is running;
//! - the override is not pause;
//! - fewer slots than the daily limit were granted this day;
//! - the active hours are open (or the override is activate);
//! - the sender governor's caps hold ([`crate::governor`]): fewer grants
//!   than the day's warm-up allowance (`WarmUpAllowanceReached`), no
//!   restriction of all sending, none of new contacts for a new contact
//!   (`SenderRestricted`), and fewer than the cap of sends in the last 60
//!   seconds, in the last hour, of new contacts that day, of the same text
//!   in the last hour (`CapReached`). The windows are those of this local
//!   day's grants (a window does not reach into the day before).
//!
//! Refusals are checked in that order, so the lasting reasons (session,
//! plan, campaign, pause) come first, and a day whose limit is used up says
//! "next local midnight" rather than a window opening later today that
//! could not be used anyway.
//!
//! A message already granted this day asking again gets success and no
//! event, whatever the facts are now: a retried command never takes a
//! second slot.

use std::collections::{BTreeSet, VecDeque};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::commands::GovernorAsk;
use super::commands::SessionDayCommand;
use super::error::{Cap, SessionDayError};
use super::events::{Governed, SessionDayEvent};
use crate::governor::RestrictionScope;
use crate::types::active_hours::Override;
use crate::types::{MessageId, SessionId};

/// One session's slots on one local day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionDay {
    session_id: Option<SessionId>,
    local_date: Option<NaiveDate>,
    count: u32,
    // Bounded by the daily limit: at most that many grants a day.
    granted: BTreeSet<MessageId>,
    /// The grants of the last hour (their instant and text hash), oldest
    /// first: what the governor's windows count.
    #[serde(default)]
    recent: VecDeque<(DateTime<Utc>, Option<u64>)>,
    /// New contacts granted this day.
    #[serde(default)]
    new_contacts: u32,
    /// The instant of the latest grant.
    #[serde(default)]
    last_at: Option<DateTime<Utc>>,
}

/// The hour the governor's windows look back.
const HOUR: Duration = Duration::hours(1);
/// The minute the governor's per-minute window looks back.
const MINUTE: Duration = Duration::seconds(60);

impl SessionDay {
    /// The session, once a slot has been granted.
    pub fn session_id(&self) -> Option<SessionId> {
        self.session_id
    }

    /// The local day, once a slot has been granted.
    pub fn local_date(&self) -> Option<NaiveDate> {
        self.local_date
    }

    /// How many slots were granted.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether `message_id` was granted a slot.
    pub fn has_granted(&self, message_id: MessageId) -> bool {
        self.granted.contains(&message_id)
    }

    /// New contacts granted this day.
    pub fn new_contacts(&self) -> u32 {
        self.new_contacts
    }

    /// The instant of the latest grant.
    pub fn last_at(&self) -> Option<DateTime<Utc>> {
        self.last_at
    }

    /// Grants in the hour before `at` (`at` excluded from the window's
    /// start: `(at - 1 h, at]`).
    pub fn sent_in_hour_before(&self, at: DateTime<Utc>) -> u32 {
        self.recent.iter().filter(|(t, _)| *t > at - HOUR).count() as u32
    }

    /// Refuses a send that a restriction in force holds back: any send
    /// while everything is blocked, one to a new contact while new
    /// contacts are.
    fn restricted(ask: &GovernorAsk, at: DateTime<Utc>) -> Result<(), SessionDayError> {
        let limits = &ask.limits;
        if let Some(until) = limits.all_blocked_until.filter(|u| *u > at) {
            return Err(SessionDayError::SenderRestricted {
                scope: RestrictionScope::All,
                until,
            });
        }
        if ask.new_contact
            && let Some(until) = limits.new_contacts_blocked_until.filter(|u| *u > at)
        {
            return Err(SessionDayError::SenderRestricted {
                scope: RestrictionScope::NewContacts,
                until,
            });
        }
        Ok(())
    }

    /// Checks a send against the governor's caps (after the daily limit
    /// and the active hours): the refusal, or the facts of the grant.
    fn govern(
        &self,
        ask: &GovernorAsk,
        at: DateTime<Utc>,
        next_midnight: DateTime<Utc>,
    ) -> Result<Governed, SessionDayError> {
        let limits = &ask.limits;
        if self.count >= limits.allowance {
            let retry_at = limits
                .grows_at
                .filter(|g| *g > at)
                .map_or(next_midnight, |g| g.min(next_midnight));
            return Err(SessionDayError::WarmUpAllowanceReached {
                allowance: limits.allowance,
                retry_at,
            });
        }
        Self::restricted(ask, at)?;
        if ask.new_contact
            && let Some(max) = limits.new_contacts_per_day
            && self.new_contacts >= max
        {
            return Err(SessionDayError::CapReached {
                cap: Cap::NewContactsPerDay,
                max,
                retry_at: next_midnight,
            });
        }
        let window = |since: DateTime<Utc>, same_text: Option<u64>| {
            self.recent
                .iter()
                .filter(|(t, hash)| *t > since && (same_text.is_none() || *hash == same_text))
                .map(|(t, _)| *t)
                .collect::<Vec<_>>()
        };
        let caps = [
            (Cap::PerMinute, limits.per_minute, MINUTE, None),
            (Cap::PerHour, limits.per_hour, HOUR, None),
            (
                Cap::IdenticalTextsPerHour,
                limits
                    .identical_texts_per_hour
                    .filter(|_| ask.text_hash.is_some()),
                HOUR,
                ask.text_hash,
            ),
        ];
        for (cap, max, length, same_text) in caps {
            let Some(max) = max else { continue };
            let sends = window(at - length, same_text);
            if sends.len() as u32 >= max {
                // A send fits again once the oldest that fill the window
                // leave it.
                let oldest = sends[sends.len() - max as usize];
                return Err(SessionDayError::CapReached {
                    cap,
                    max,
                    retry_at: oldest + length,
                });
            }
        }
        Ok(Governed {
            limits: *limits,
            new_contact: ask.new_contact,
            text_hash: ask.text_hash,
            new_contacts_after: self.new_contacts + u32::from(ask.new_contact),
        })
    }
}

impl Aggregate for SessionDay {
    const TYPE: &'static str = "session_day";
    type Command = SessionDayCommand;
    type Event = SessionDayEvent;
    type Error = SessionDayError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let SessionDayCommand::RequestSlot {
            session_id,
            day,
            message_id,
            campaign_id,
            at,
            facts,
        } = command;
        let hours = &facts.active_hours;
        let local_date = hours.local_date(at);
        // The counter of one day never counts another day's sends, even on
        // its first grant (an id computed before a pause across midnight).
        if local_date != day {
            return Err(SessionDayError::WrongDay {
                expected: day,
                got: local_date,
            });
        }
        if let Some(expected) = self.local_date
            && expected != local_date
        {
            return Err(SessionDayError::WrongDay {
                expected,
                got: local_date,
            });
        }
        if let Some(expected) = self.session_id
            && expected != session_id
        {
            return Err(SessionDayError::WrongSession {
                expected,
                got: session_id,
            });
        }
        if self.granted.contains(&message_id) {
            // Granted before (a retry): counted already, but not let past
            // a restriction reported since (WhatsApp's answer to the first
            // try, say), which holds it back like any other send.
            if let Some(ask) = &facts.governor {
                Self::restricted(ask, at)?;
            }
            return Ok(());
        }
        if !facts.asked_by_holder {
            return Err(SessionDayError::NotHolder);
        }
        if !facts.session_status_ready {
            return Err(SessionDayError::SessionNotReady);
        }
        if facts.plan_expires_at.is_none_or(|expires| at >= expires) {
            return Err(SessionDayError::PlanExpired);
        }
        if !facts.campaign_running {
            return Err(SessionDayError::CampaignNotRunning);
        }
        if hours.override_mode() == Override::Pause {
            return Err(SessionDayError::Paused);
        }
        if self.count >= facts.daily_limit.value() {
            return Err(SessionDayError::DailyLimitReached {
                retry_at: hours.next_local_midnight(at),
            });
        }
        if !hours.is_open(at) {
            return Err(SessionDayError::OutsideActiveHours {
                retry_at: hours.next_opening(at),
            });
        }
        let governed = facts
            .governor
            .as_ref()
            .map(|ask| self.govern(ask, at, hours.next_local_midnight(at)))
            .transpose()?;
        let event = SessionDayEvent::SlotGranted {
            session_id,
            message_id,
            campaign_id,
            at,
            local_date,
            count_after: self.count + 1,
            governed,
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            SessionDayEvent::SlotGranted {
                session_id,
                message_id,
                local_date,
                count_after,
                at,
                governed,
                ..
            } => {
                self.session_id = Some(session_id);
                self.local_date = Some(local_date);
                self.count = count_after;
                self.granted.insert(message_id);
                self.last_at = Some(at);
                while self.recent.front().is_some_and(|(t, _)| *t <= at - HOUR) {
                    self.recent.pop_front();
                }
                let hash = governed.as_ref().and_then(|g| g.text_hash);
                self.recent.push_back((at, hash));
                if let Some(governed) = governed {
                    self.new_contacts = governed.new_contacts_after;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{DateTime, Duration, NaiveTime, Utc};
    use cqrs_es::test::TestFramework;
    use proptest::prelude::*;
    use uuid::Uuid;

    use super::*;
    use crate::session_day::aggregate_id_at;
    use crate::session_day::commands::SendFacts;
    use crate::types::active_hours::{ActiveHours, TimeZone, Weekday, Window};
    use crate::types::{CampaignId, DailyLimit};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn session() -> SessionId {
        SessionId::from_uuid(Uuid::from_u128(1))
    }

    fn message(n: u128) -> MessageId {
        MessageId::from_uuid(Uuid::from_u128(1_000 + n))
    }

    fn campaign() -> CampaignId {
        CampaignId::from_uuid(Uuid::from_u128(2))
    }

    /// Monday 2026-03-30, 10:00 WIB.
    fn monday_morning() -> DateTime<Utc> {
        utc("2026-03-30T03:00:00Z")
    }

    /// Jakarta, workdays 09:00–18:00.
    fn office_hours() -> ActiveHours {
        ActiveHours::new(
            TimeZone::JAKARTA,
            vec![Window::parse(Weekday::WORKDAYS, "09:00", "18:00").unwrap()],
            Override::None,
        )
        .unwrap()
    }

    /// Facts under which everything is allowed at [`monday_morning`].
    fn facts() -> SendFacts {
        SendFacts {
            session_status_ready: true,
            asked_by_holder: true,
            daily_limit: DailyLimit::parse(3).unwrap(),
            active_hours: office_hours(),
            plan_expires_at: Some(utc("2026-04-15T00:00:00Z")),
            campaign_running: true,
            governor: None,
        }
    }

    fn request(n: u128, at: DateTime<Utc>, facts: SendFacts) -> SessionDayCommand {
        SessionDayCommand::RequestSlot {
            session_id: session(),
            day: facts.active_hours.local_date(at),
            message_id: message(n),
            campaign_id: campaign(),
            at,
            facts,
        }
    }

    fn granted(n: u128, at: DateTime<Utc>, local_date: &str, count_after: u32) -> SessionDayEvent {
        SessionDayEvent::SlotGranted {
            session_id: session(),
            message_id: message(n),
            campaign_id: campaign(),
            at,
            local_date: date(local_date),
            count_after,
            governed: None,
        }
    }

    /// Two grants on Monday 2026-03-30 (Jakarta).
    fn two_granted() -> Vec<SessionDayEvent> {
        vec![
            granted(1, monday_morning(), "2026-03-30", 1),
            granted(2, monday_morning(), "2026-03-30", 2),
        ]
    }

    fn three_granted() -> Vec<SessionDayEvent> {
        let mut events = two_granted();
        events.push(granted(3, monday_morning(), "2026-03-30", 3));
        events
    }

    #[test]
    fn grants_a_slot_when_every_rule_allows_it() {
        TestFramework::<SessionDay>::with(())
            .given_no_previous_events()
            .when(request(1, monday_morning(), facts()))
            .then_expect_events(vec![granted(1, monday_morning(), "2026-03-30", 1)]);
    }

    #[test]
    fn counts_each_grant_of_the_day() {
        TestFramework::<SessionDay>::with(())
            .given(two_granted())
            .when(request(3, monday_morning(), facts()))
            .then_expect_events(vec![granted(3, monday_morning(), "2026-03-30", 3)]);
    }

    #[test]
    fn the_local_day_is_the_one_of_the_tenant_time_zone() {
        // 17:30 UTC Sunday is Monday 00:30 in Jakarta.
        let at = utc("2026-03-29T17:30:00Z");
        let always = SendFacts {
            active_hours: ActiveHours::default(),
            ..facts()
        };
        TestFramework::<SessionDay>::with(())
            .given_no_previous_events()
            .when(request(1, at, always))
            .then_expect_events(vec![granted(1, at, "2026-03-30", 1)]);
    }

    #[test]
    fn asking_again_for_a_granted_message_takes_no_second_slot_and_is_not_refused() {
        TestFramework::<SessionDay>::with(())
            .given(two_granted())
            .when(request(2, monday_morning(), facts()))
            .then_expect_events(vec![]);
        // Even once the limit is used up or the facts changed since.
        let closed = SendFacts {
            session_status_ready: false,
            asked_by_holder: true,
            campaign_running: false,
            ..facts()
        };
        TestFramework::<SessionDay>::with(())
            .given(three_granted())
            .when(request(3, monday_morning() + Duration::hours(12), closed))
            .then_expect_events(vec![]);
    }

    #[test]
    fn refuses_an_engine_that_does_not_hold_the_session_before_anything_else() {
        let facts = SendFacts {
            asked_by_holder: false,
            session_status_ready: false,
            ..facts()
        };
        TestFramework::<SessionDay>::with(())
            .given_no_previous_events()
            .when(request(1, monday_morning(), facts))
            .then_expect_error(SessionDayError::NotHolder);
    }

    #[test]
    fn refuses_when_the_session_is_not_ready() {
        let facts = SendFacts {
            session_status_ready: false,
            asked_by_holder: true,
            ..facts()
        };
        TestFramework::<SessionDay>::with(())
            .given_no_previous_events()
            .when(request(1, monday_morning(), facts))
            .then_expect_error(SessionDayError::SessionNotReady);
    }

    #[test]
    fn refuses_without_a_plan() {
        let facts = SendFacts {
            plan_expires_at: None,
            ..facts()
        };
        TestFramework::<SessionDay>::with(())
            .given_no_previous_events()
            .when(request(1, monday_morning(), facts))
            .then_expect_error(SessionDayError::PlanExpired);
    }

    #[test]
    fn refuses_from_the_instant_the_plan_expires() {
        let at = monday_morning();
        let expiring_now = SendFacts {
            plan_expires_at: Some(at),
            ..facts()
        };
        TestFramework::<SessionDay>::with(())
            .given_no_previous_events()
            .when(request(1, at, expiring_now))
            .then_expect_error(SessionDayError::PlanExpired);
        let expiring_next_second = SendFacts {
            plan_expires_at: Some(at + Duration::seconds(1)),
            ..facts()
        };
        TestFramework::<SessionDay>::with(())
            .given_no_previous_events()
            .when(request(1, at, expiring_next_second))
            .then_expect_events(vec![granted(1, at, "2026-03-30", 1)]);
    }

    #[test]
    fn refuses_when_the_campaign_is_not_running() {
        let facts = SendFacts {
            campaign_running: false,
            ..facts()
        };
        TestFramework::<SessionDay>::with(())
            .given_no_previous_events()
            .when(request(1, monday_morning(), facts))
            .then_expect_error(SessionDayError::CampaignNotRunning);
    }

    #[test]
    fn refuses_everything_while_paused() {
        let facts = SendFacts {
            active_hours: office_hours().with_override(Override::Pause),
            ..facts()
        };
        TestFramework::<SessionDay>::with(())
            .given_no_previous_events()
            .when(request(1, monday_morning(), facts))
            .then_expect_error(SessionDayError::Paused);
    }

    #[test]
    fn refuses_outside_active_hours_until_the_next_opening() {
        // Monday 20:00 WIB: next opening Tuesday 09:00 WIB.
        let evening = utc("2026-03-30T13:00:00Z");
        TestFramework::<SessionDay>::with(())
            .given(two_granted())
            .when(request(3, evening, facts()))
            .then_expect_error(SessionDayError::OutsideActiveHours {
                retry_at: Some(utc("2026-03-31T02:00:00Z")),
            });
    }

    #[test]
    fn grants_outside_the_windows_when_activated() {
        let evening = utc("2026-03-30T13:00:00Z");
        let facts = SendFacts {
            active_hours: office_hours().with_override(Override::Activate),
            ..facts()
        };
        TestFramework::<SessionDay>::with(())
            .given_no_previous_events()
            .when(request(1, evening, facts))
            .then_expect_events(vec![granted(1, evening, "2026-03-30", 1)]);
    }

    #[test]
    fn refuses_at_the_daily_limit_until_the_next_local_midnight() {
        // Next midnight in Jakarta: Tuesday 00:00 WIB = Monday 17:00 UTC.
        TestFramework::<SessionDay>::with(())
            .given(three_granted())
            .when(request(4, monday_morning(), facts()))
            .then_expect_error(SessionDayError::DailyLimitReached {
                retry_at: utc("2026-03-30T17:00:00Z"),
            });
    }

    #[test]
    fn a_lowered_daily_limit_refuses_once_the_count_has_reached_it() {
        let facts = SendFacts {
            daily_limit: DailyLimit::parse(2).unwrap(),
            ..facts()
        };
        TestFramework::<SessionDay>::with(())
            .given(two_granted())
            .when(request(3, monday_morning(), facts))
            .then_expect_error(SessionDayError::DailyLimitReached {
                retry_at: utc("2026-03-30T17:00:00Z"),
            });
    }

    #[test]
    fn a_used_up_day_says_midnight_even_outside_active_hours() {
        let evening = utc("2026-03-30T13:00:00Z");
        TestFramework::<SessionDay>::with(())
            .given(three_granted())
            .when(request(4, evening, facts()))
            .then_expect_error(SessionDayError::DailyLimitReached {
                retry_at: utc("2026-03-30T17:00:00Z"),
            });
    }

    #[test]
    fn refuses_an_instant_on_another_local_day() {
        // Tuesday 10:00 WIB asked of Monday's counter.
        let tuesday = monday_morning() + Duration::days(1);
        TestFramework::<SessionDay>::with(())
            .given(two_granted())
            .when(request(3, tuesday, facts()))
            .then_expect_error(SessionDayError::WrongDay {
                expected: date("2026-03-30"),
                got: date("2026-03-31"),
            });
    }

    #[test]
    fn refuses_even_a_first_request_whose_instant_is_not_on_the_addressed_day() {
        let at = monday_morning();
        let addressed = facts().active_hours.local_date(at) - chrono::Days::new(1);
        TestFramework::<SessionDay>::with(())
            .given_no_previous_events()
            .when(SessionDayCommand::RequestSlot {
                session_id: session(),
                day: addressed,
                message_id: message(1),
                campaign_id: campaign(),
                at,
                facts: facts(),
            })
            .then_expect_error(SessionDayError::WrongDay {
                expected: addressed,
                got: addressed + chrono::Days::new(1),
            });
    }

    #[test]
    fn refuses_another_session() {
        let other = SessionId::from_uuid(Uuid::from_u128(9));
        TestFramework::<SessionDay>::with(())
            .given(two_granted())
            .when(SessionDayCommand::RequestSlot {
                session_id: other,
                day: facts().active_hours.local_date(monday_morning()),
                message_id: message(3),
                campaign_id: campaign(),
                at: monday_morning(),
                facts: facts(),
            })
            .then_expect_error(SessionDayError::WrongSession {
                expected: session(),
                got: other,
            });
    }

    #[test]
    fn refusals_carry_their_api_codes_and_retry_instants() {
        let at = monday_morning();
        let cases = [
            (
                SessionDayError::WrongDay {
                    expected: date("2026-03-30"),
                    got: date("2026-03-31"),
                },
                "validation_failed",
                None,
            ),
            (
                SessionDayError::WrongSession {
                    expected: session(),
                    got: session(),
                },
                "validation_failed",
                None,
            ),
            (SessionDayError::SessionNotReady, "session_not_ready", None),
            (SessionDayError::PlanExpired, "plan_expired", None),
            (
                SessionDayError::CampaignNotRunning,
                "campaign_not_running",
                None,
            ),
            (SessionDayError::Paused, "outside_active_hours", None),
            (
                SessionDayError::OutsideActiveHours { retry_at: Some(at) },
                "outside_active_hours",
                Some(at),
            ),
            (
                SessionDayError::DailyLimitReached { retry_at: at },
                "daily_limit_reached",
                Some(at),
            ),
        ];
        for (error, code, retry_at) in cases {
            assert_eq!(error.code(), code, "{error}");
            assert_eq!(error.retry_at(), retry_at, "{error}");
        }
    }

    #[test]
    fn grants_fold_into_the_day_s_state() {
        let mut day = SessionDay::default();
        for event in two_granted() {
            day.apply(event);
        }
        assert_eq!(day.session_id(), Some(session()));
        assert_eq!(day.local_date(), Some(date("2026-03-30")));
        assert_eq!(day.count(), 2);
        assert!(day.has_granted(message(2)));
        assert!(!day.has_granted(message(3)));
    }

    #[test]
    fn the_grant_event_keeps_its_name_and_shape() {
        use cqrs_es::DomainEvent;
        let event = granted(1, monday_morning(), "2026-03-30", 1);
        assert_eq!(event.event_type(), "SlotGranted");
        assert_eq!(event.event_version(), "1.0");
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["SlotGranted"]["local_date"], "2026-03-30");
        assert_eq!(json["SlotGranted"]["count_after"], 1);
        assert_eq!(json["SlotGranted"]["at"], "2026-03-30T03:00:00Z");
        assert_eq!(
            serde_json::from_value::<SessionDayEvent>(json).unwrap(),
            event
        );
    }

    // --- properties over generated request sequences --------------------

    #[derive(Debug, Clone)]
    struct Request {
        session: u128,
        message: u128,
        at: DateTime<Utc>,
        ready: bool,
        plan_expires_at: Option<DateTime<Utc>>,
        campaign_running: bool,
    }

    #[derive(Debug, Clone)]
    struct Scenario {
        hours: ActiveHours,
        limit: DailyLimit,
        requests: Vec<Request>,
    }

    fn minute_of_day() -> impl Strategy<Value = NaiveTime> {
        prop_oneof![0u32..1440, 60u32..240]
            .prop_map(|m| NaiveTime::from_hms_opt(m / 60, m % 60, 0).unwrap())
    }

    fn windows() -> impl Strategy<Value = Window> {
        (
            prop::collection::btree_set(0usize..7, 1..=7),
            minute_of_day(),
            minute_of_day(),
        )
            .prop_map(|(days, start, end)| {
                Window::new(days.into_iter().map(|d| Weekday::ALL[d]), start, end).unwrap()
            })
    }

    fn active_hours() -> impl Strategy<Value = ActiveHours> {
        (
            prop_oneof![
                Just(TimeZone::JAKARTA),
                Just(TimeZone::parse("Europe/Berlin").unwrap())
            ],
            prop::collection::vec(windows(), 0..=3),
            prop_oneof![
                6 => Just(Override::None),
                1 => Just(Override::Pause),
                1 => Just(Override::Activate)
            ],
        )
            .prop_map(|(zone, windows, mode)| ActiveHours::new(zone, windows, mode).unwrap())
    }

    fn scenarios() -> impl Strategy<Value = Scenario> {
        let base = prop_oneof![
            Just(utc("2026-03-27T00:00:00Z")),
            Just(utc("2026-10-23T00:00:00Z")),
            (0i64..365).prop_map(|d| utc("2026-01-01T00:00:00Z") + Duration::days(d)),
        ];
        (active_hours(), 1u64..=20, base).prop_flat_map(|(hours, limit, base)| {
            let request = (
                0u128..2,
                0u128..40,
                0i64..4 * 86_400,
                prop::bool::weighted(0.9),
                prop_oneof![
                    8 => Just(Some(base + Duration::days(30))),
                    1 => Just(None),
                    1 => (0i64..4 * 86_400).prop_map(move |s| Some(base + Duration::seconds(s))),
                ],
                prop::bool::weighted(0.9),
            )
                .prop_map(
                    move |(session, message, s, ready, plan_expires_at, campaign_running)| {
                        Request {
                            session,
                            message,
                            at: base + Duration::seconds(s),
                            ready,
                            plan_expires_at,
                            campaign_running,
                        }
                    },
                );
            prop::collection::vec(request, 1..120).prop_map(move |requests| Scenario {
                hours: hours.clone(),
                limit: DailyLimit::parse(limit).unwrap(),
                requests,
            })
        })
    }

    type Outcome = Result<Vec<SessionDayEvent>, SessionDayError>;

    fn decide(
        runtime: &tokio::runtime::Runtime,
        day: &mut SessionDay,
        command: SessionDayCommand,
    ) -> Outcome {
        runtime.block_on(async {
            let sink = EventSink::default();
            day.handle(command, &(), &sink).await?;
            Ok(sink.collect().await)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn generated_requests_never_break_the_send_allowance(scenario in scenarios()) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let Scenario { hours, limit, requests } = scenario;
            let zone = hours.timezone();
            // One counter per session and local day, as the engine keys them.
            let mut days: BTreeMap<String, (SessionDay, Vec<SessionDayEvent>)> = BTreeMap::new();
            for r in requests {
                let session_id = SessionId::from_uuid(Uuid::from_u128(r.session));
                let message_id = message(r.message);
                let id = aggregate_id_at(session_id, r.at, zone);
                let (day, history) = days.entry(id).or_default();
                let already = day.has_granted(message_id);
                let count_before = day.count();
                let facts = SendFacts {
                    session_status_ready: r.ready,
                    asked_by_holder: true,
                    daily_limit: limit,
                    active_hours: hours.clone(),
                    plan_expires_at: r.plan_expires_at,
                    campaign_running: r.campaign_running,
                    governor: None,
                };
                let allowed = r.ready
                    && r.plan_expires_at.is_some_and(|e| r.at < e)
                    && r.campaign_running
                    && count_before < limit.value()
                    && hours.is_open(r.at);
                let command = SessionDayCommand::RequestSlot {
                    session_id,
                    day: facts.active_hours.local_date(r.at),
                    message_id,
                    campaign_id: campaign(),
                    at: r.at,
                    facts,
                };
                match decide(&runtime, day, command) {
                    Ok(events) if events.is_empty() => prop_assert!(already),
                    Ok(events) => {
                        prop_assert!(!already && allowed);
                        prop_assert_eq!(events.len(), 1);
                        let SessionDayEvent::SlotGranted { at, local_date, count_after, .. } =
                            events[0].clone();
                        prop_assert!(hours.is_open(at));
                        prop_assert!(hours.override_mode() != Override::Pause);
                        prop_assert_eq!(local_date, zone.local_date(at));
                        prop_assert_eq!(count_after, count_before + 1);
                        prop_assert!(count_after <= limit.value());
                        history.extend(events);
                    }
                    Err(error) => {
                        prop_assert!(!already && !allowed, "refused {:?}", error);
                        match error {
                            SessionDayError::DailyLimitReached { retry_at } => {
                                prop_assert!(count_before >= limit.value());
                                let today = zone.local_date(r.at);
                                prop_assert!(retry_at > r.at);
                                prop_assert_eq!(zone.local_date(retry_at), today.succ_opt().unwrap());
                                prop_assert_eq!(
                                    zone.local_date(retry_at - Duration::nanoseconds(1)),
                                    today
                                );
                            }
                            SessionDayError::OutsideActiveHours { retry_at } => {
                                prop_assert!(!hours.is_open(r.at));
                                // Every generated window has a day: one always opens.
                                let retry_at = retry_at.expect("a next opening");
                                prop_assert!(retry_at > r.at);
                                prop_assert!(hours.is_open(retry_at));
                            }
                            SessionDayError::Paused => {
                                prop_assert_eq!(hours.override_mode(), Override::Pause);
                            }
                            SessionDayError::NotHolder => {
                                prop_assert!(false, "every request here is the holder's");
                            }
                            SessionDayError::WrongDay { .. } | SessionDayError::WrongSession { .. } => {
                                prop_assert!(false, "the id was computed from the same facts");
                            }
                            SessionDayError::SessionNotReady => prop_assert!(!r.ready),
                            SessionDayError::PlanExpired => {
                                prop_assert!(r.plan_expires_at.is_none_or(|e| r.at >= e));
                            }
                            SessionDayError::CampaignNotRunning => prop_assert!(!r.campaign_running),
                            SessionDayError::TenantSuspended => {
                                prop_assert!(false, "the counter never answers a suspension");
                            }
                            SessionDayError::WarmUpAllowanceReached { .. }
                            | SessionDayError::SenderRestricted { .. }
                            | SessionDayError::CapReached { .. } => {
                                prop_assert!(false, "no governor was asked");
                            }
                        }
                    }
                }
            }
            for (id, (day, history)) in days {
                let grants = history.len();
                prop_assert!(grants <= limit.value() as usize, "{} granted {}", id, grants);
                let mut messages = BTreeSet::new();
                for (i, event) in history.iter().enumerate() {
                    let SessionDayEvent::SlotGranted { message_id, count_after, local_date, .. } =
                        event;
                    prop_assert_eq!(*count_after as usize, i + 1);
                    prop_assert!(messages.insert(*message_id), "granted twice");
                    prop_assert!(id.ends_with(&local_date.format("-%Y%m%d").to_string()));
                }
                // Replaying the log gives the state the decisions were made on.
                let mut replayed = SessionDay::default();
                for event in history {
                    replayed.apply(event);
                }
                prop_assert_eq!(replayed, day);
            }
        }
    }

    // The sender governor.

    use crate::governor::{Governor, GovernorLimits, Restriction, RestrictionKind};
    use crate::types::TrustLevel;

    fn always() -> SendFacts {
        SendFacts {
            active_hours: ActiveHours::default(),
            daily_limit: DailyLimit::parse(500).unwrap(),
            ..facts()
        }
    }

    fn governed_facts(limits: GovernorLimits, new_contact: bool, text: Option<u64>) -> SendFacts {
        SendFacts {
            governor: Some(GovernorAsk {
                limits,
                new_contact,
                text_hash: text,
            }),
            ..always()
        }
    }

    /// A number in its first warm-up day since `monday_morning`.
    fn warming() -> GovernorLimits {
        Governor {
            warm_up: true,
            warm_up_since: Some(monday_morning()),
            ..Governor::default()
        }
        .limits(
            monday_morning(),
            DailyLimit::parse(500).unwrap(),
            TrustLevel::NEW,
        )
    }

    /// Folds the grants of `commands` (each granted) into their events.
    fn grant_all(commands: Vec<SessionDayCommand>) -> Vec<SessionDayEvent> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut day = SessionDay::default();
        let mut events = Vec::new();
        for command in commands {
            let new = runtime
                .block_on(decide_one(&mut day, command))
                .expect("granted");
            events.extend(new);
        }
        events
    }

    async fn decide_one(
        day: &mut SessionDay,
        command: SessionDayCommand,
    ) -> Result<Vec<SessionDayEvent>, SessionDayError> {
        let sink = EventSink::default();
        // Writing to the sink applies the event to `day`.
        day.handle(command, &(), &sink).await?;
        Ok(sink.collect().await)
    }

    fn seconds(n: i64) -> Duration {
        Duration::seconds(n)
    }

    #[test]
    fn warm_up_refuses_past_the_day_allowance_until_it_grows() {
        let limits = warming();
        assert_eq!(limits.allowance, 20);
        let given = grant_all(
            (0..20)
                .map(|n| {
                    request(
                        n,
                        monday_morning() + Duration::minutes(n as i64 * 20),
                        governed_facts(
                            GovernorLimits {
                                per_minute: None,
                                per_hour: None,
                                ..limits
                            },
                            false,
                            None,
                        ),
                    )
                })
                .collect(),
        );
        let at = monday_morning() + Duration::hours(8);
        TestFramework::<SessionDay>::with(())
            .given(given)
            .when(request(21, at, governed_facts(limits, false, None)))
            .then_expect_error(SessionDayError::WarmUpAllowanceReached {
                allowance: 20,
                retry_at: always().active_hours.next_local_midnight(at),
            });
    }

    #[test]
    fn refuses_a_fifth_send_within_a_minute_while_warming_up() {
        let limits = warming();
        let t = monday_morning();
        let given = grant_all(
            (0..4)
                .map(|n| {
                    request(
                        n,
                        t + seconds(n as i64 * 5),
                        governed_facts(limits, false, None),
                    )
                })
                .collect(),
        );
        TestFramework::<SessionDay>::with(())
            .given(given.clone())
            .when(request(
                9,
                t + seconds(30),
                governed_facts(limits, false, None),
            ))
            .then_expect_error(SessionDayError::CapReached {
                cap: Cap::PerMinute,
                max: 4,
                retry_at: t + seconds(60),
            });
        // A minute after the first, one fits again.
        TestFramework::<SessionDay>::with(())
            .given(given)
            .when(request(
                9,
                t + seconds(61),
                governed_facts(limits, false, None),
            ))
            .then_expect_events(vec![SessionDayEvent::SlotGranted {
                session_id: session(),
                message_id: message(9),
                campaign_id: campaign(),
                at: t + seconds(61),
                local_date: date("2026-03-30"),
                count_after: 5,
                governed: Some(Governed {
                    limits,
                    new_contact: false,
                    text_hash: None,
                    new_contacts_after: 0,
                }),
            }]);
    }

    #[test]
    fn refuses_past_the_hourly_cap_even_when_each_minute_is_under_its_own() {
        let limits = GovernorLimits {
            per_minute: Some(4),
            per_hour: Some(6),
            ..GovernorLimits::daily_only(DailyLimit::parse(500).unwrap())
        };
        let t = monday_morning();
        let given = grant_all(
            (0..6)
                .map(|n| {
                    request(
                        n,
                        t + Duration::minutes(n as i64 * 5),
                        governed_facts(limits, false, None),
                    )
                })
                .collect(),
        );
        TestFramework::<SessionDay>::with(())
            .given(given)
            .when(request(
                9,
                t + Duration::minutes(40),
                governed_facts(limits, false, None),
            ))
            .then_expect_error(SessionDayError::CapReached {
                cap: Cap::PerHour,
                max: 6,
                retry_at: t + Duration::hours(1),
            });
    }

    #[test]
    fn refuses_a_sixth_new_contact_in_a_day_while_warming_up_but_not_a_known_one() {
        let limits = GovernorLimits {
            per_minute: None,
            per_hour: None,
            ..warming()
        };
        let t = monday_morning();
        let given = grant_all(
            (0..5)
                .map(|n| {
                    request(
                        n,
                        t + Duration::minutes(n as i64),
                        governed_facts(limits, true, None),
                    )
                })
                .collect(),
        );
        let at = t + Duration::hours(1);
        TestFramework::<SessionDay>::with(())
            .given(given.clone())
            .when(request(9, at, governed_facts(limits, true, None)))
            .then_expect_error(SessionDayError::CapReached {
                cap: Cap::NewContactsPerDay,
                max: 5,
                retry_at: always().active_hours.next_local_midnight(at),
            });
        let mut day = SessionDay::default();
        for event in given {
            day.apply(event);
        }
        assert_eq!(day.new_contacts(), 5);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let known = runtime.block_on(decide_one(
            &mut day,
            request(9, at, governed_facts(limits, false, None)),
        ));
        assert!(known.is_ok_and(|events| events.len() == 1));
    }

    #[test]
    fn refuses_the_same_text_past_its_hourly_cap_but_not_another_text() {
        let limits = GovernorLimits {
            identical_texts_per_hour: Some(2),
            ..GovernorLimits::daily_only(DailyLimit::parse(500).unwrap())
        };
        let t = monday_morning();
        let given = grant_all(vec![
            request(1, t, governed_facts(limits, false, Some(7))),
            request(2, t + seconds(10), governed_facts(limits, false, Some(8))),
            request(3, t + seconds(20), governed_facts(limits, false, Some(7))),
        ]);
        TestFramework::<SessionDay>::with(())
            .given(given.clone())
            .when(request(
                4,
                t + seconds(30),
                governed_facts(limits, false, Some(7)),
            ))
            .then_expect_error(SessionDayError::CapReached {
                cap: Cap::IdenticalTextsPerHour,
                max: 2,
                retry_at: t + Duration::hours(1),
            });
        let mut day = SessionDay::default();
        for event in given {
            day.apply(event);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let other = runtime.block_on(decide_one(
            &mut day,
            request(4, t + seconds(30), governed_facts(limits, false, Some(8))),
        ));
        assert!(other.is_ok());
    }

    #[test]
    fn a_timelocked_sender_sends_nothing_to_new_contacts_until_t_but_goes_on_with_known_ones() {
        let t = monday_morning();
        let until = t + Duration::hours(6);
        let limits = Governor {
            restriction: Some(Restriction {
                kind: RestrictionKind::ReachoutTimelock,
                since: t,
                until,
            }),
            ..Governor::default()
        }
        .limits(
            t + seconds(1),
            DailyLimit::parse(500).unwrap(),
            TrustLevel::NEW,
        );
        TestFramework::<SessionDay>::with(())
            .given_no_previous_events()
            .when(request(
                1,
                t + seconds(1),
                governed_facts(limits, true, None),
            ))
            .then_expect_error(SessionDayError::SenderRestricted {
                scope: RestrictionScope::NewContacts,
                until,
            });
        let mut day = SessionDay::default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let known = runtime.block_on(decide_one(
            &mut day,
            request(1, t + seconds(1), governed_facts(limits, false, None)),
        ));
        assert!(known.is_ok_and(|events| events.len() == 1));
    }

    #[test]
    fn a_retry_granted_before_a_timelock_is_held_back_by_it_without_counting_twice() {
        let t = monday_morning();
        let until = t + Duration::hours(6);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut day = SessionDay::default();
        // Granted while nothing held the sender back; WhatsApp answered
        // the send with a timelock.
        let first = runtime.block_on(decide_one(
            &mut day,
            request(1, t, governed_facts(warming(), true, None)),
        ));
        assert!(first.is_ok_and(|events| events.len() == 1));
        let timelocked = Governor {
            restriction: Some(Restriction {
                kind: RestrictionKind::ReachoutTimelock,
                since: t + seconds(1),
                until,
            }),
            ..Governor::default()
        }
        .limits(
            t + seconds(2),
            DailyLimit::parse(500).unwrap(),
            TrustLevel::NEW,
        );
        let retry = runtime.block_on(decide_one(
            &mut day,
            request(1, t + seconds(2), governed_facts(timelocked, true, None)),
        ));
        assert_eq!(
            retry,
            Err(SessionDayError::SenderRestricted {
                scope: RestrictionScope::NewContacts,
                until,
            })
        );
        // Once it ends, the retry goes on its first grant: nothing counted
        // again.
        let after = runtime.block_on(decide_one(
            &mut day,
            request(1, until + seconds(1), governed_facts(warming(), true, None)),
        ));
        assert_eq!(after, Ok(vec![]));
        assert_eq!(day.count(), 1);
    }

    #[test]
    fn a_temporary_ban_refuses_every_send_until_it_ends() {
        let t = monday_morning();
        let until = t + Duration::hours(2);
        let limits = Governor {
            restriction: Some(Restriction {
                kind: RestrictionKind::TemporaryBan,
                since: t,
                until,
            }),
            ..Governor::default()
        }
        .limits(
            t + seconds(1),
            DailyLimit::parse(500).unwrap(),
            TrustLevel::NEW,
        );
        TestFramework::<SessionDay>::with(())
            .given_no_previous_events()
            .when(request(
                1,
                t + seconds(1),
                governed_facts(limits, false, None),
            ))
            .then_expect_error(SessionDayError::SenderRestricted {
                scope: RestrictionScope::All,
                until,
            });
    }
}
