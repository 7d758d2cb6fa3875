//! Active hours: when a tenant's sessions may send (and auto-reply), as
//! weekly windows in an IANA time zone, plus a manual override.
//!
//! # How an instant is decided
//!
//! - **Override first.** [`Override::Pause`] closes everything,
//!   [`Override::Activate`] opens everything; [`Override::None`] lets the
//!   windows decide.
//! - **No windows = always open.**
//! - **A window belongs to the local day it starts on.** On each of its
//!   days, a window opens at `start` and closes at `end` (half-open: open at
//!   `start`, closed at `end`):
//!   - `start < end`: the same day (`mon 09:00–18:00`);
//!   - `end < start`: it crosses midnight and closes the next day
//!     (`mon 22:00–02:00` is open from Monday 22:00 to Tuesday 02:00, even if
//!     Tuesday is not one of its days);
//!   - `end == start`: a whole day, until the same local time the next day
//!     (`mon 00:00–00:00` is all of Monday). Chosen over refusing it: times
//!     are whole minutes, so this is the only way to say "all day", and a
//!     window of zero length would be useless anyway.
//!
//!   Several windows per day are allowed, and they may overlap: the hours
//!   are open when any window is.
//! - **Local time → instant (daylight saving).** Both ends of a window are
//!   mapped to instants by one rule: a local time `t` becomes the *first
//!   instant at which the local clock reads `t` or later*. So:
//!   - an ordinary local time is that instant;
//!   - an ambiguous local time (the clock falls back and shows it twice)
//!     is its *earliest* instant, the first pass;
//!   - a local time that does not exist (the clock springs forward over it)
//!     is the *first instant after the gap*, the moment of the change.
//!
//!   Each occurrence of a window is then one interval of instants, and the
//!   hours are open exactly inside those intervals. Consequences, in
//!   Europe/Berlin: on 2026-03-29 (02:00 → 03:00) a `02:30–04:00` window
//!   opens at 03:00 CEST, and a `02:00–02:30` window does not open at all
//!   that day; on 2026-10-25 (03:00 → 02:00) a `02:30–04:00` window opens at
//!   02:30 CEST (first pass) and stays open 2½ hours, while a
//!   `01:00–02:30` window closes at 02:30 CEST, so 02:15 CET (second pass)
//!   is closed.
//! - **Local days** follow the same rule: a local day starts at the first
//!   instant whose local date is that day ([`TimeZone::next_local_midnight`]).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone as _,
    Timelike, Utc,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::RefusalCode;

/// Why active hours (or a part of them) were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActiveHoursError {
    /// Not an IANA time zone name.
    #[error("unknown time zone {0:?} (expected an IANA name such as Asia/Jakarta)")]
    UnknownTimeZone(String),
    /// A time that is not `HH:MM`.
    #[error("invalid time {0:?} (expected HH:MM, 00:00 to 23:59)")]
    InvalidTime(String),
    /// A time with seconds: windows are whole minutes.
    #[error("window times must be whole minutes, got {0}")]
    NotWholeMinute(NaiveTime),
    /// Not one of `mon`..`sun`.
    #[error("unknown day {0:?} (expected mon, tue, wed, thu, fri, sat or sun)")]
    UnknownDay(String),
    /// A window with no day.
    #[error("a window needs at least one day")]
    NoDays,
    /// More windows than [`ActiveHours::MAX_WINDOWS`].
    #[error("at most {max} windows, got {got}")]
    TooManyWindows {
        /// How many were given.
        got: usize,
        /// The most allowed.
        max: usize,
    },
}

impl ActiveHoursError {
    /// The stable API code: always `validation_failed`.
    pub fn code(&self) -> RefusalCode {
        RefusalCode::ValidationFailed
    }
}

/// An IANA time zone (`Asia/Jakarta`, `Europe/Berlin`), serialized as its
/// name. Unknown names are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZone(Tz);

impl TimeZone {
    /// Asia/Jakarta (WIB, UTC+7): the default.
    pub const JAKARTA: Self = Self(Tz::Asia__Jakarta);

    /// Parses an IANA name, exactly as the tz database spells it.
    pub fn parse(name: &str) -> Result<Self, ActiveHoursError> {
        name.parse::<Tz>()
            .map(Self)
            .map_err(|_| ActiveHoursError::UnknownTimeZone(name.to_owned()))
    }

    /// The IANA name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// The chrono-tz zone.
    pub const fn tz(&self) -> Tz {
        self.0
    }

    /// The local date at an instant.
    pub fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.0).date_naive()
    }

    /// The local wall-clock time at an instant.
    pub fn local_datetime(&self, at: DateTime<Utc>) -> NaiveDateTime {
        at.with_timezone(&self.0).naive_local()
    }

    /// The first instant of the local day after `at`'s local day (local
    /// midnight; if midnight is skipped by a clock change, the first instant
    /// after the change). Always after `at`.
    pub fn next_local_midnight(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        self.local_date(at)
            .succ_opt()
            .and_then(|next| self.instant_of(next.and_time(NaiveTime::MIN)))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// The first instant at which the local clock reads `local` or later:
    /// the instant itself, the earliest one when `local` is ambiguous (the
    /// clock falls back over it), the end of the gap when `local` does not
    /// exist (the clock springs forward over it). `None` only out of chrono's
    /// date range.
    pub fn instant_of(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.0.from_local_datetime(&local) {
            LocalResult::Single(t) => Some(t.to_utc()),
            LocalResult::Ambiguous(a, b) => Some(a.min(b).to_utc()),
            LocalResult::None => self.end_of_gap(local),
        }
    }

    // `local` falls in a gap: binary search for the first instant whose
    // local time is past it. Offsets are less than a day, so the local time
    // a day before `local` (read as UTC) is before it and a day after is
    // after it; transitions are whole seconds.
    fn end_of_gap(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        let day = 86_400;
        let seconds = local.and_utc().timestamp();
        let (mut lo, mut hi) = (seconds.checked_sub(day)?, seconds.checked_add(day)?);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.local_datetime(DateTime::from_timestamp(mid, 0)?) >= local {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        DateTime::from_timestamp(hi, 0)
    }
}

impl Default for TimeZone {
    fn default() -> Self {
        Self::JAKARTA
    }
}

impl FromStr for TimeZone {
    type Err = ActiveHoursError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for TimeZone {
    type Error = ActiveHoursError;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::parse(&name)
    }
}

impl From<TimeZone> for String {
    fn from(zone: TimeZone) -> Self {
        zone.name().to_owned()
    }
}

impl From<Tz> for TimeZone {
    fn from(tz: Tz) -> Self {
        Self(tz)
    }
}

impl AsRef<str> for TimeZone {
    fn as_ref(&self) -> &str {
        self.name()
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A day of the week, serialized `"mon"`..`"sun"`, ordered Monday first.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum Weekday {
    /// Monday.
    #[serde(rename = "mon")]
    Mon,
    /// Tuesday.
    #[serde(rename = "tue")]
    Tue,
    /// Wednesday.
    #[serde(rename = "wed")]
    Wed,
    /// Thursday.
    #[serde(rename = "thu")]
    Thu,
    /// Friday.
    #[serde(rename = "fri")]
    Fri,
    /// Saturday.
    #[serde(rename = "sat")]
    Sat,
    /// Sunday.
    #[serde(rename = "sun")]
    Sun,
}

impl Weekday {
    /// Every day, Monday first.
    pub const ALL: [Self; 7] = [
        Self::Mon,
        Self::Tue,
        Self::Wed,
        Self::Thu,
        Self::Fri,
        Self::Sat,
        Self::Sun,
    ];
    /// Monday to Friday.
    pub const WORKDAYS: [Self; 5] = [Self::Mon, Self::Tue, Self::Wed, Self::Thu, Self::Fri];

    /// The short name: `"mon"`..`"sun"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Mon => "mon",
            Self::Tue => "tue",
            Self::Wed => "wed",
            Self::Thu => "thu",
            Self::Fri => "fri",
            Self::Sat => "sat",
            Self::Sun => "sun",
        }
    }

    /// The day of a date.
    pub fn of(date: NaiveDate) -> Self {
        date.weekday().into()
    }
}

impl From<chrono::Weekday> for Weekday {
    fn from(day: chrono::Weekday) -> Self {
        match day {
            chrono::Weekday::Mon => Self::Mon,
            chrono::Weekday::Tue => Self::Tue,
            chrono::Weekday::Wed => Self::Wed,
            chrono::Weekday::Thu => Self::Thu,
            chrono::Weekday::Fri => Self::Fri,
            chrono::Weekday::Sat => Self::Sat,
            chrono::Weekday::Sun => Self::Sun,
        }
    }
}

impl From<Weekday> for chrono::Weekday {
    fn from(day: Weekday) -> Self {
        match day {
            Weekday::Mon => Self::Mon,
            Weekday::Tue => Self::Tue,
            Weekday::Wed => Self::Wed,
            Weekday::Thu => Self::Thu,
            Weekday::Fri => Self::Fri,
            Weekday::Sat => Self::Sat,
            Weekday::Sun => Self::Sun,
        }
    }
}

impl FromStr for Weekday {
    type Err = ActiveHoursError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|day| day.as_str() == s)
            .ok_or_else(|| ActiveHoursError::UnknownDay(s.to_owned()))
    }
}

impl fmt::Display for Weekday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One weekly window: open on each of `days` from `start` to `end`, local
/// time (see the module docs for midnight and daylight saving). Serialized
/// as `{"days": ["mon", ...], "start": "09:00", "end": "18:00"}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "WindowFields")]
pub struct Window {
    days: BTreeSet<Weekday>,
    #[serde(serialize_with = "serialize_hhmm")]
    start: NaiveTime,
    #[serde(serialize_with = "serialize_hhmm")]
    end: NaiveTime,
}

#[derive(Deserialize)]
struct WindowFields {
    days: BTreeSet<Weekday>,
    start: String,
    end: String,
}

impl TryFrom<WindowFields> for Window {
    type Error = ActiveHoursError;

    fn try_from(fields: WindowFields) -> Result<Self, Self::Error> {
        Self::parse(fields.days, &fields.start, &fields.end)
    }
}

fn serialize_hhmm<S: serde::Serializer>(
    time: &NaiveTime,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&time.format("%H:%M"))
}

impl Window {
    /// A window; refused without days or with times that are not whole
    /// minutes. `end < start` crosses midnight; `end == start` is a whole
    /// day.
    pub fn new(
        days: impl IntoIterator<Item = Weekday>,
        start: NaiveTime,
        end: NaiveTime,
    ) -> Result<Self, ActiveHoursError> {
        let days: BTreeSet<Weekday> = days.into_iter().collect();
        if days.is_empty() {
            return Err(ActiveHoursError::NoDays);
        }
        for time in [start, end] {
            if time.second() != 0 || time.nanosecond() != 0 {
                return Err(ActiveHoursError::NotWholeMinute(time));
            }
        }
        Ok(Self { days, start, end })
    }

    /// A window from `"HH:MM"` times.
    pub fn parse(
        days: impl IntoIterator<Item = Weekday>,
        start: &str,
        end: &str,
    ) -> Result<Self, ActiveHoursError> {
        Self::new(days, parse_hhmm(start)?, parse_hhmm(end)?)
    }

    /// The days it opens on.
    pub fn days(&self) -> &BTreeSet<Weekday> {
        &self.days
    }

    /// When it opens, local time.
    pub fn start(&self) -> NaiveTime {
        self.start
    }

    /// When it closes, local time (the next day when not after `start`).
    pub fn end(&self) -> NaiveTime {
        self.end
    }

    /// Whether it closes on the day after it opens (`end <= start`).
    pub fn crosses_midnight(&self) -> bool {
        self.end <= self.start
    }

    /// The instants `[open, close)` of its occurrence starting on local
    /// `date`, if `date` is one of its days and the occurrence is not empty
    /// (it is when it lies entirely in a daylight-saving gap).
    pub fn occurrence(
        &self,
        zone: TimeZone,
        date: NaiveDate,
    ) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if !self.days.contains(&Weekday::of(date)) {
            return None;
        }
        let open = zone.instant_of(date.and_time(self.start))?;
        let end_date = if self.crosses_midnight() {
            date.succ_opt()?
        } else {
            date
        };
        let close = zone.instant_of(end_date.and_time(self.end))?;
        (open < close).then_some((open, close))
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days: Vec<&str> = self.days.iter().map(|d| d.as_str()).collect();
        write!(
            f,
            "{} {}-{}",
            days.join(","),
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

/// Parses a strict `"HH:MM"` (24-hour, two digits each, `00:00`..`23:59`).
pub fn parse_hhmm(text: &str) -> Result<NaiveTime, ActiveHoursError> {
    let invalid = || ActiveHoursError::InvalidTime(text.to_owned());
    let bytes = text.as_bytes();
    let digits_ok = bytes.len() == 5
        && bytes[2] == b':'
        && [0, 1, 3, 4].iter().all(|&i| bytes[i].is_ascii_digit());
    if !digits_ok {
        return Err(invalid());
    }
    NaiveTime::parse_from_str(text, "%H:%M").map_err(|_| invalid())
}

/// The manual override of a tenant's active hours.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Override {
    /// The windows decide.
    #[default]
    None,
    /// Closed, whatever the windows say ("pause all").
    Pause,
    /// Open, whatever the windows say ("activate now").
    Activate,
}

impl Override {
    /// `"none"`, `"pause"` or `"activate"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Pause => "pause",
            Self::Activate => "activate",
        }
    }
}

impl fmt::Display for Override {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tenant's active hours: a time zone, weekly windows (none = always
/// open) and an override. See the module docs for how an instant is
/// decided. Serialized as
/// `{"timezone": "Asia/Jakarta", "windows": [...], "override_mode": "none"}`.
/// The default is Asia/Jakarta, no windows, no override: always open.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ActiveHoursFields")]
pub struct ActiveHours {
    timezone: TimeZone,
    windows: Vec<Window>,
    override_mode: Override,
}

#[derive(Deserialize)]
struct ActiveHoursFields {
    #[serde(default)]
    timezone: TimeZone,
    #[serde(default)]
    windows: Vec<Window>,
    #[serde(default)]
    override_mode: Override,
}

impl TryFrom<ActiveHoursFields> for ActiveHours {
    type Error = ActiveHoursError;

    fn try_from(fields: ActiveHoursFields) -> Result<Self, Self::Error> {
        Self::new(fields.timezone, fields.windows, fields.override_mode)
    }
}

impl ActiveHours {
    /// The most windows one tenant may have.
    pub const MAX_WINDOWS: usize = 100;

    // How many local days ahead `next_opening` looks: every window recurs
    // weekly, so a week and a day always finds one unless all of them lie
    // in daylight-saving gaps.
    const SEARCH_DAYS: i64 = 8;

    /// Active hours; refused with more than [`ActiveHours::MAX_WINDOWS`]
    /// windows. Windows are kept in the order given.
    pub fn new(
        timezone: TimeZone,
        windows: Vec<Window>,
        override_mode: Override,
    ) -> Result<Self, ActiveHoursError> {
        if windows.len() > Self::MAX_WINDOWS {
            return Err(ActiveHoursError::TooManyWindows {
                got: windows.len(),
                max: Self::MAX_WINDOWS,
            });
        }
        Ok(Self {
            timezone,
            windows,
            override_mode,
        })
    }

    /// Always open in a time zone (no windows, no override).
    pub fn always_open(timezone: TimeZone) -> Self {
        Self {
            timezone,
            windows: Vec::new(),
            override_mode: Override::None,
        }
    }

    // For folding events whose content was validated when they were
    // decided (an event is a fact; refusing to fold it helps no one).
    pub(crate) fn from_validated(
        timezone: TimeZone,
        windows: Vec<Window>,
        override_mode: Override,
    ) -> Self {
        Self {
            timezone,
            windows,
            override_mode,
        }
    }

    /// The same hours with another override.
    #[must_use]
    pub fn with_override(mut self, override_mode: Override) -> Self {
        self.override_mode = override_mode;
        self
    }

    /// The time zone.
    pub fn timezone(&self) -> TimeZone {
        self.timezone
    }

    /// The windows (empty = always open).
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// The override.
    pub fn override_mode(&self) -> Override {
        self.override_mode
    }

    /// Whether sending is allowed at `at`: never when paused, always when
    /// activated or without windows, else inside any window.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        match self.override_mode {
            Override::Pause => false,
            Override::Activate => true,
            Override::None => self.windows.is_empty() || self.in_window(at),
        }
    }

    /// The earliest instant at or after `at` when the hours are open: `at`
    /// itself when open now, `None` when paused (no opening until the
    /// override changes) or when no window opens within the next 8 local
    /// days (only possible if every window lies in a daylight-saving gap).
    pub fn next_opening(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.override_mode == Override::Pause {
            return None;
        }
        if self.is_open(at) {
            return Some(at);
        }
        // Not open at `at`, so any occurrence opening at or before `at` has
        // closed: only later openings count. A local time is mapped to
        // instants monotonically, so openings on a later day are never
        // earlier than those of the day before: the first day with one wins.
        let today = self.local_date(at);
        (-1..=Self::SEARCH_DAYS)
            .filter_map(|d| shift(today, d))
            .find_map(|date| {
                self.windows
                    .iter()
                    .filter_map(|w| w.occurrence(self.timezone, date))
                    .map(|(open, _)| open)
                    .filter(|&open| open > at)
                    .min()
            })
    }

    /// The local date at `at`, in these hours' time zone.
    pub fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        self.timezone.local_date(at)
    }

    /// The first instant of the next local day, in these hours' time zone.
    pub fn next_local_midnight(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        self.timezone.next_local_midnight(at)
    }

    fn in_window(&self, at: DateTime<Utc>) -> bool {
        // An occurrence lasts at most a day and a daylight-saving shift, so
        // only those starting from two local days before to one after can
        // hold `at` (one each side would do; the margin is for odd zones).
        let today = self.local_date(at);
        (-2..=1).filter_map(|d| shift(today, d)).any(|date| {
            self.windows.iter().any(|w| {
                w.occurrence(self.timezone, date)
                    .is_some_and(|(open, close)| open <= at && at < close)
            })
        })
    }
}

fn shift(date: NaiveDate, days: i64) -> Option<NaiveDate> {
    date.checked_add_signed(TimeDelta::days(days))
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use proptest::prelude::*;

    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn zone(name: &str) -> TimeZone {
        TimeZone::parse(name).unwrap()
    }

    fn hours(zone_name: &str, windows: Vec<Window>) -> ActiveHours {
        ActiveHours::new(zone(zone_name), windows, Override::None).unwrap()
    }

    fn window(days: &[Weekday], start: &str, end: &str) -> Window {
        Window::parse(days.iter().copied(), start, end).unwrap()
    }

    fn every_day(start: &str, end: &str) -> Window {
        window(&Weekday::ALL, start, end)
    }

    #[test]
    fn time_zones_parse_iana_names_and_refuse_others() {
        assert_eq!(zone("Europe/Berlin").name(), "Europe/Berlin");
        assert_eq!(TimeZone::default().name(), "Asia/Jakarta");
        for bad in [
            "",
            "Jakarta",
            "asia/jakarta",
            "Mars/Olympus",
            " Asia/Jakarta",
        ] {
            assert_eq!(
                TimeZone::parse(bad),
                Err(ActiveHoursError::UnknownTimeZone(bad.to_owned()))
            );
        }
        assert_eq!(
            serde_json::to_string(&zone("Asia/Makassar")).unwrap(),
            r#""Asia/Makassar""#
        );
        assert!(serde_json::from_str::<TimeZone>(r#""Nowhere/Land""#).is_err());
        assert_eq!(
            TimeZone::parse("x").unwrap_err().code(),
            "validation_failed"
        );
    }

    #[test]
    fn windows_serialize_as_days_and_hh_mm() {
        let w = window(&[Weekday::Fri, Weekday::Mon], "09:00", "18:30");
        let json = serde_json::to_string(&w).unwrap();
        assert_eq!(
            json,
            r#"{"days":["mon","fri"],"start":"09:00","end":"18:30"}"#
        );
        assert_eq!(serde_json::from_str::<Window>(&json).unwrap(), w);
        assert_eq!(w.to_string(), "mon,fri 09:00-18:30");
    }

    #[test]
    fn bad_windows_are_refused() {
        assert_eq!(
            Window::parse([], "09:00", "10:00"),
            Err(ActiveHoursError::NoDays)
        );
        for bad in ["9:00", "24:00", "09:60", "0900", "09:00:00", "", "ab:cd"] {
            assert_eq!(
                Window::parse([Weekday::Mon], bad, "10:00"),
                Err(ActiveHoursError::InvalidTime(bad.to_owned()))
            );
        }
        let with_seconds = NaiveTime::from_hms_opt(9, 0, 30).unwrap();
        assert_eq!(
            Window::new([Weekday::Mon], with_seconds, NaiveTime::MIN),
            Err(ActiveHoursError::NotWholeMinute(with_seconds))
        );
        for bad in [
            r#"{"days":[],"start":"09:00","end":"10:00"}"#,
            r#"{"days":["monday"],"start":"09:00","end":"10:00"}"#,
            r#"{"days":["mon"],"start":"9","end":"10:00"}"#,
        ] {
            assert!(serde_json::from_str::<Window>(bad).is_err(), "{bad}");
        }
        assert_eq!("sun".parse::<Weekday>(), Ok(Weekday::Sun));
        assert!("Sunday".parse::<Weekday>().is_err());
    }

    #[test]
    fn too_many_windows_are_refused() {
        let many = vec![every_day("09:00", "10:00"); ActiveHours::MAX_WINDOWS + 1];
        assert_eq!(
            ActiveHours::new(TimeZone::JAKARTA, many, Override::None),
            Err(ActiveHoursError::TooManyWindows { got: 101, max: 100 })
        );
        let json = format!(
            r#"{{"timezone":"Asia/Jakarta","windows":[{}]}}"#,
            vec![r#"{"days":["mon"],"start":"09:00","end":"10:00"}"#; 101].join(",")
        );
        assert!(serde_json::from_str::<ActiveHours>(&json).is_err());
    }

    #[test]
    fn active_hours_round_trip_through_json_with_defaults() {
        let h = hours("Europe/Berlin", vec![every_day("22:00", "02:00")])
            .with_override(Override::Pause);
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(
            json,
            r#"{"timezone":"Europe/Berlin","windows":[{"days":["mon","tue","wed","thu","fri","sat","sun"],"start":"22:00","end":"02:00"}],"override_mode":"pause"}"#
        );
        assert_eq!(serde_json::from_str::<ActiveHours>(&json).unwrap(), h);
        assert_eq!(
            serde_json::from_str::<ActiveHours>("{}").unwrap(),
            ActiveHours::default()
        );
        assert_eq!(
            serde_json::from_str::<Override>(r#""activate""#).unwrap(),
            Override::Activate
        );
    }

    #[test]
    fn no_windows_means_always_open() {
        let h = ActiveHours::default();
        let at = utc("2026-03-29T01:30:00Z");
        assert!(h.is_open(at));
        assert_eq!(h.next_opening(at), Some(at));
    }

    #[test]
    fn the_override_beats_the_windows() {
        let h = hours("Asia/Jakarta", vec![every_day("09:00", "10:00")]);
        let night = utc("2026-03-30T16:00:00Z"); // 23:00 WIB
        let morning = utc("2026-03-30T02:30:00Z"); // 09:30 WIB
        assert!(!h.is_open(night));
        assert!(h.is_open(morning));

        let paused = h.clone().with_override(Override::Pause);
        assert!(!paused.is_open(morning));
        assert_eq!(paused.next_opening(morning), None);

        let active = h.with_override(Override::Activate);
        assert!(active.is_open(night));
        assert_eq!(active.next_opening(night), Some(night));
    }

    #[test]
    fn jakarta_workday_windows_open_and_close_in_local_time() {
        // 2026-03-30 is a Monday; WIB is UTC+7 all year.
        let h = hours(
            "Asia/Jakarta",
            vec![window(&Weekday::WORKDAYS, "09:00", "18:00")],
        );
        assert!(!h.is_open(utc("2026-03-30T01:59:59Z"))); // 08:59:59
        assert!(h.is_open(utc("2026-03-30T02:00:00Z"))); // 09:00 opens
        assert!(h.is_open(utc("2026-03-30T10:59:59Z"))); // 17:59:59
        assert!(!h.is_open(utc("2026-03-30T11:00:00Z"))); // 18:00 closes
        assert_eq!(
            h.next_opening(utc("2026-03-30T11:00:00Z")),
            Some(utc("2026-03-31T02:00:00Z"))
        );
        // Friday evening → Monday morning.
        assert_eq!(
            h.next_opening(utc("2026-04-03T12:00:00Z")),
            Some(utc("2026-04-06T02:00:00Z"))
        );
    }

    #[test]
    fn a_window_crossing_midnight_belongs_to_the_day_it_starts() {
        // Monday only, 22:00–02:00: Monday 22:00 to Tuesday 02:00 (WIB).
        let h = hours(
            "Asia/Jakarta",
            vec![window(&[Weekday::Mon], "22:00", "02:00")],
        );
        assert!(!h.is_open(utc("2026-03-29T18:00:00Z"))); // Mon 01:00
        assert!(h.is_open(utc("2026-03-30T15:00:00Z"))); // Mon 22:00
        assert!(h.is_open(utc("2026-03-30T18:00:00Z"))); // Tue 01:00
        assert!(!h.is_open(utc("2026-03-30T19:00:00Z"))); // Tue 02:00
        assert!(!h.is_open(utc("2026-03-31T15:00:00Z"))); // Tue 22:00
        assert_eq!(
            h.next_opening(utc("2026-03-29T18:00:00Z")),
            Some(utc("2026-03-30T15:00:00Z"))
        );
        assert_eq!(
            h.next_opening(utc("2026-03-30T19:00:00Z")),
            Some(utc("2026-04-06T15:00:00Z"))
        );
    }

    #[test]
    fn equal_start_and_end_is_a_whole_day() {
        let h = hours(
            "Asia/Jakarta",
            vec![window(&[Weekday::Mon], "00:00", "00:00")],
        );
        assert!(!h.is_open(utc("2026-03-29T16:59:59Z"))); // Sun 23:59:59
        assert!(h.is_open(utc("2026-03-29T17:00:00Z"))); // Mon 00:00
        assert!(h.is_open(utc("2026-03-30T16:59:59Z"))); // Mon 23:59:59
        assert!(!h.is_open(utc("2026-03-30T17:00:00Z"))); // Tue 00:00
    }

    #[test]
    fn two_separate_windows_on_one_day_leave_the_gap_between_them_closed() {
        // Morning and afternoon shifts with a lunch break, in Jakarta (UTC+7).
        let h = hours(
            "Asia/Jakarta",
            vec![every_day("08:00", "12:00"), every_day("13:00", "17:00")],
        );
        assert!(h.is_open(utc("2026-03-30T04:59:00Z"))); // 11:59
        assert!(!h.is_open(utc("2026-03-30T05:30:00Z"))); // 12:30, lunch
        assert_eq!(
            h.next_opening(utc("2026-03-30T05:30:00Z")),
            Some(utc("2026-03-30T06:00:00Z")) // 13:00
        );
        assert!(h.is_open(utc("2026-03-30T06:00:00Z")));
        assert!(!h.is_open(utc("2026-03-30T10:00:00Z"))); // 17:00
    }

    #[test]
    fn overlapping_windows_join() {
        let h = hours(
            "Asia/Jakarta",
            vec![every_day("09:00", "12:00"), every_day("11:00", "14:00")],
        );
        assert!(h.is_open(utc("2026-03-30T06:30:00Z"))); // 13:30
        assert!(!h.is_open(utc("2026-03-30T07:00:00Z"))); // 14:00
    }

    #[test]
    fn berlin_spring_forward_opens_a_window_starting_in_the_gap_at_the_end_of_the_gap() {
        // 2026-03-29: 02:00 CET → 03:00 CEST at 01:00 UTC.
        let h = hours("Europe/Berlin", vec![every_day("02:30", "04:00")]);
        assert!(!h.is_open(utc("2026-03-29T00:59:59Z")));
        assert!(h.is_open(utc("2026-03-29T01:00:00Z"))); // 03:00 CEST
        assert!(!h.is_open(utc("2026-03-29T02:00:00Z"))); // 04:00 CEST
        assert_eq!(
            h.next_opening(utc("2026-03-28T22:00:00Z")),
            Some(utc("2026-03-29T01:00:00Z"))
        );
        // The day before: 02:30 CET = 01:30 UTC.
        assert_eq!(
            h.next_opening(utc("2026-03-27T22:00:00Z")),
            Some(utc("2026-03-28T01:30:00Z"))
        );
    }

    #[test]
    fn berlin_spring_forward_skips_a_window_inside_the_gap() {
        let h = hours("Europe/Berlin", vec![every_day("02:00", "02:30")]);
        for minute in 0..240 {
            let at = utc("2026-03-28T23:00:00Z") + Duration::minutes(minute);
            assert!(!h.is_open(at), "{at}");
        }
        // Next: Monday 02:00 CEST = 00:00 UTC.
        assert_eq!(
            h.next_opening(utc("2026-03-28T23:00:00Z")),
            Some(utc("2026-03-30T00:00:00Z"))
        );
    }

    #[test]
    fn berlin_fall_back_takes_the_first_pass_of_a_repeated_time() {
        // 2026-10-25: 03:00 CEST → 02:00 CET at 01:00 UTC; 02:xx happens twice.
        let opens = hours("Europe/Berlin", vec![every_day("02:30", "04:00")]);
        assert!(!opens.is_open(utc("2026-10-25T00:29:59Z")));
        assert!(opens.is_open(utc("2026-10-25T00:30:00Z"))); // 02:30 CEST
        assert!(opens.is_open(utc("2026-10-25T01:15:00Z"))); // 02:15 CET
        assert!(opens.is_open(utc("2026-10-25T02:59:59Z"))); // 03:59:59 CET
        assert!(!opens.is_open(utc("2026-10-25T03:00:00Z"))); // 04:00 CET

        let closes = hours("Europe/Berlin", vec![every_day("01:00", "02:30")]);
        assert!(closes.is_open(utc("2026-10-24T23:00:00Z"))); // 01:00 CEST
        assert!(!closes.is_open(utc("2026-10-25T00:30:00Z"))); // 02:30 CEST
        assert!(!closes.is_open(utc("2026-10-25T01:15:00Z"))); // 02:15 CET
        assert_eq!(
            closes.next_opening(utc("2026-10-25T01:15:00Z")),
            Some(utc("2026-10-26T00:00:00Z")) // Monday 01:00 CET
        );
    }

    #[test]
    fn local_days_follow_the_time_zone() {
        let jakarta = TimeZone::JAKARTA;
        let at = utc("2026-03-29T17:30:00Z"); // Mon 00:30 WIB
        assert_eq!(
            jakarta.local_date(at),
            NaiveDate::from_ymd_opt(2026, 3, 30).unwrap()
        );
        assert_eq!(jakarta.next_local_midnight(at), utc("2026-03-30T17:00:00Z"));

        let berlin = zone("Europe/Berlin");
        // The 23-hour day and the 25-hour day.
        assert_eq!(
            berlin.next_local_midnight(utc("2026-03-28T12:00:00Z")),
            utc("2026-03-28T23:00:00Z")
        );
        assert_eq!(
            berlin.next_local_midnight(utc("2026-03-29T12:00:00Z")),
            utc("2026-03-29T22:00:00Z")
        );
        assert_eq!(
            berlin.next_local_midnight(utc("2026-10-25T12:00:00Z")),
            utc("2026-10-25T23:00:00Z")
        );
        assert_eq!(
            berlin.next_local_midnight(utc("2026-10-24T22:00:00Z")), // Sun 00:00 CEST
            utc("2026-10-25T23:00:00Z")
        );
    }

    #[test]
    fn a_skipped_midnight_starts_the_day_at_the_end_of_the_gap() {
        // America/Santiago springs forward at 24:00 → 01:00 (2026-09-06).
        let santiago = zone("America/Santiago");
        let at = utc("2026-09-05T12:00:00Z");
        let midnight = santiago.next_local_midnight(at);
        assert_eq!(midnight, utc("2026-09-06T04:00:00Z"));
        assert_eq!(
            santiago.local_datetime(midnight),
            NaiveDate::from_ymd_opt(2026, 9, 6)
                .unwrap()
                .and_hms_opt(1, 0, 0)
                .unwrap()
        );
    }

    // --- properties ---------------------------------------------------

    fn zones() -> impl Strategy<Value = TimeZone> {
        prop_oneof![Just(TimeZone::JAKARTA), Just(zone("Europe/Berlin"))]
    }

    fn minute_of_day() -> impl Strategy<Value = NaiveTime> {
        // Often around the 02:00–03:00 clock changes of Europe/Berlin.
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
            zones(),
            prop::collection::vec(windows(), 0..=3),
            prop_oneof![
                6 => Just(Override::None),
                1 => Just(Override::Pause),
                1 => Just(Override::Activate)
            ],
        )
            .prop_map(|(zone, windows, mode)| ActiveHours::new(zone, windows, mode).unwrap())
    }

    /// Instants in 2026, often in the weeks of the Berlin clock changes.
    fn instants() -> impl Strategy<Value = DateTime<Utc>> {
        let around = |start: &'static str| {
            (0i64..7 * 86_400).prop_map(move |s| utc(start) + Duration::seconds(s))
        };
        prop_oneof![
            around("2026-03-26T00:00:00Z"),
            around("2026-10-22T00:00:00Z"),
            (0i64..365 * 86_400).prop_map(|s| utc("2026-01-01T00:00:00Z") + Duration::seconds(s)),
        ]
    }

    /// The plain reading of the windows on the local clock: right wherever
    /// the offset does not change around `at`.
    fn open_on_the_local_clock(h: &ActiveHours, at: DateTime<Utc>) -> bool {
        let local = h.timezone().local_datetime(at);
        let (date, time) = (local.date(), local.time());
        let yesterday = date.pred_opt().unwrap();
        h.windows().iter().any(|w| {
            let today = w.days().contains(&Weekday::of(date));
            let from_yesterday = w.days().contains(&Weekday::of(yesterday));
            if w.start() < w.end() {
                today && w.start() <= time && time < w.end()
            } else {
                (today && w.start() <= time) || (from_yesterday && time < w.end())
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn next_opening_is_open_and_nothing_before_it_is(h in active_hours(), at in instants()) {
            let next = h.next_opening(at);
            if h.override_mode() == Override::Pause {
                prop_assert_eq!(next, None);
                return Ok(());
            }
            // Every generated window has a day, so one opens within a week.
            let next = next.expect("an opening within 8 days");
            prop_assert!(next >= at);
            prop_assert!(h.is_open(next));
            prop_assert_eq!(h.is_open(at), next == at);
            let mut t = at;
            while t < next {
                prop_assert!(!h.is_open(t), "open at {} before the next opening {}", t, next);
                t += Duration::minutes(1);
            }
            if next > at {
                prop_assert!(!h.is_open(next - Duration::seconds(1)));
            }
        }

        #[test]
        fn is_open_reads_the_local_clock_away_from_clock_changes(
            h in active_hours(),
            at in instants(),
        ) {
            let tz = h.timezone().tz();
            let offset = |t: DateTime<Utc>| t.with_timezone(&tz).offset().to_string();
            let steady = offset(at) == offset(at - Duration::hours(50))
                && offset(at) == offset(at + Duration::hours(50));
            prop_assume!(steady);
            let expected = match h.override_mode() {
                Override::Pause => false,
                Override::Activate => true,
                Override::None => h.windows().is_empty() || open_on_the_local_clock(&h, at),
            };
            prop_assert_eq!(h.is_open(at), expected);
        }

        #[test]
        fn next_local_midnight_starts_the_next_local_day(zone in zones(), at in instants()) {
            let midnight = zone.next_local_midnight(at);
            let today = zone.local_date(at);
            prop_assert!(midnight > at);
            prop_assert_eq!(zone.local_date(midnight), today.succ_opt().unwrap());
            prop_assert_eq!(zone.local_date(midnight - Duration::nanoseconds(1)), today);
        }

        #[test]
        fn active_hours_survive_json(h in active_hours()) {
            let json = serde_json::to_string(&h).unwrap();
            prop_assert_eq!(serde_json::from_str::<ActiveHours>(&json).unwrap(), h);
        }
    }
}
