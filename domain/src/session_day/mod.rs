//! The send allowance: one session's sends on one local day (`TYPE`
//! `"session_day"`). Before each send the engine asks for a slot
//! ([`SessionDayCommand::RequestSlot`]); the answer is a grant
//! ([`SessionDayEvent::SlotGranted`]) or a typed refusal
//! ([`SessionDayError`]), with the instant when asking again makes sense
//! where there is one.
//!
//! One aggregate per session per local day (of the tenant's time zone), so
//! it stays small: its id is [`aggregate_id`]`(session_id, local_date)`,
//! `<session_id>-<yyyymmdd>`. Compute the day with
//! [`aggregate_id_at`] from the same active hours you pass in the request,
//! or the request is refused as being for another day.

pub mod aggregate;
pub mod commands;
pub mod error;
pub mod events;

use chrono::{DateTime, NaiveDate, Utc};

pub use aggregate::SessionDay;
pub use commands::{GovernorAsk, SendFacts, SessionDayCommand};
pub use error::{Cap, SessionDayError};
pub use events::{Governed, SessionDayEvent};

use crate::types::SessionId;
use crate::types::active_hours::TimeZone;

/// The id of the day counter of `session_id` on `local_date`:
/// `<session_id>-<yyyymmdd>` (e.g.
/// `0195f3a2-...-7c1d-20260330`). The framework id is then
/// `<tenant>.<this>`.
pub fn aggregate_id(session_id: SessionId, local_date: NaiveDate) -> String {
    format!("{session_id}-{}", local_date.format("%Y%m%d"))
}

/// The id of the day counter that decides a send of `session_id` at `at`,
/// the local day taken in `timezone` (the tenant's, from its schedule).
pub fn aggregate_id_at(session_id: SessionId, at: DateTime<Utc>, timezone: TimeZone) -> String {
    aggregate_id(session_id, timezone.local_date(at))
}

/// The session and local day of a day counter's id, if it is one.
pub fn parse_aggregate_id(id: &str) -> Option<(SessionId, NaiveDate)> {
    let (session, day) = id.rsplit_once('-')?;
    if day.len() != 8 || !day.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let date = NaiveDate::parse_from_str(day, "%Y%m%d").ok()?;
    Some((session.parse().ok()?, date))
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn the_aggregate_id_is_the_session_and_the_local_day() {
        let session =
            SessionId::from_uuid(Uuid::from_u128(0x0195_f3a2_0000_7000_8000_0000_0000_0001));
        let day = NaiveDate::from_ymd_opt(2026, 3, 30).unwrap();
        let id = aggregate_id(session, day);
        assert_eq!(id, "0195f3a2-0000-7000-8000-000000000001-20260330");
        assert_eq!(parse_aggregate_id(&id), Some((session, day)));
        assert_eq!(parse_aggregate_id("nope-20260330"), None);
        assert_eq!(parse_aggregate_id(&format!("{session}-2026033")), None);

        // 2026-03-29T17:30Z is already Monday 00:30 in Jakarta, still
        // Sunday 19:30 in Berlin.
        let at = DateTime::parse_from_rfc3339("2026-03-29T17:30:00Z")
            .unwrap()
            .to_utc();
        assert!(aggregate_id_at(session, at, TimeZone::JAKARTA).ends_with("-20260330"));
        let berlin = TimeZone::parse("Europe/Berlin").unwrap();
        assert!(aggregate_id_at(session, at, berlin).ends_with("-20260329"));
    }
}
