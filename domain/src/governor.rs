//! The sender governor: how much one sender (a session's number) may send,
//! beyond its daily limit, to stay alive on WhatsApp.
//!
//! A session keeps a [`Governor`] record (warm-up, restriction); from it and
//! an instant, [`Governor::limits`] derives the [`GovernorLimits`] a send is
//! held to. The day counter ([`crate::session_day`]) enforces them on each
//! slot it grants and records them on the grant, so `wablast verify` can
//! prove afterwards that no grant broke them.
//!
//! Rules:
//! - **Warm-up.** A number in warm-up may send, in its k-th 24 hours since
//!   warm-up started (k from 0), `first_day × 1.8^k` messages a local day,
//!   never more than its daily limit; once that reaches the daily limit,
//!   warm-up is over (`normal`). The first day's allowance follows the trust
//!   level: 20 at level 1, 40 at 2, 80 at 3; levels 4 and 5 skip warm-up.
//!   Warm-up starts with the number's first send, and starts again when it
//!   sends after 72 hours without sending. Simulator sessions start as
//!   established numbers (warm-up off) unless asked; every other driver
//!   starts with warm-up on.
//! - **Caps beyond the day** while warming up or cooling down: at most 4
//!   sends in any 60 seconds (the burst allowance) and 40 in any hour (the
//!   sustained rate), at most 5 new contacts (recipients never exchanged
//!   messages with) a local day, at most 5 identical rendered texts an hour.
//!   An established number (`normal`) is held to its daily limit only.
//! - **Restriction.** WhatsApp's signals (a 463 reachout timelock, the
//!   capping quota) restrict the sender until T: it sends nothing to new
//!   contacts until then; conversations already going on continue. A
//!   temporary ban or a disconnect storm stops all sending until T. For 24
//!   hours after a restriction ends the sender is `cooling_down`: held to
//!   the warm-up caps and half its daily limit.
//! - **The session's own pacing** ([`SenderPacing`]): caps per minute, per
//!   hour and on new contacts a day the owner sets apply to every state;
//!   where the governor caps too, the tighter holds.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::types::{DailyLimit, TrustLevel};

/// The governor's verdict on a sender at an instant.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum GovernorState {
    /// A new or long-idle number: its allowance grows day by day.
    WarmingUp,
    /// An established number: held to its daily limit.
    #[default]
    Normal,
    /// WhatsApp restricted it: nothing to new contacts (or nothing at all)
    /// until the restriction ends.
    Restricted,
    /// A restriction ended less than a day ago: warm-up caps and half the
    /// daily limit.
    CoolingDown,
}

impl GovernorState {
    /// Its stable name (`warming_up`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::WarmingUp => "warming_up",
            Self::Normal => "normal",
            Self::Restricted => "restricted",
            Self::CoolingDown => "cooling_down",
        }
    }
}

/// A signal from WhatsApp that holds a sender back, as a driver reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RestrictionKind {
    /// Error 463 on a failed ack: no messages to new contacts until T.
    ReachoutTimelock,
    /// The quota of unanswered messages is reached until the cycle ends.
    CappingQuota,
    /// A temporary ban: nothing at all until T.
    TemporaryBan,
    /// Many disconnects in a short time: nothing at all for a while.
    DisconnectStorm,
}

impl RestrictionKind {
    /// What it holds back.
    pub const fn scope(self) -> RestrictionScope {
        match self {
            Self::ReachoutTimelock | Self::CappingQuota => RestrictionScope::NewContacts,
            Self::TemporaryBan | Self::DisconnectStorm => RestrictionScope::All,
        }
    }

    /// How long it lasts when the signal gives no end.
    pub fn default_length(self) -> Duration {
        match self {
            Self::ReachoutTimelock | Self::CappingQuota | Self::TemporaryBan => Duration::hours(24),
            Self::DisconnectStorm => Duration::minutes(15),
        }
    }

    /// Its stable name (`reachout_timelock`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ReachoutTimelock => "reachout_timelock",
            Self::CappingQuota => "capping_quota",
            Self::TemporaryBan => "temporary_ban",
            Self::DisconnectStorm => "disconnect_storm",
        }
    }
}

/// What a restriction holds back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RestrictionScope {
    /// Messages to recipients never exchanged messages with.
    NewContacts,
    /// Every message.
    All,
}

/// A restriction in force from `since` until `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Restriction {
    /// Which signal.
    pub kind: RestrictionKind,
    /// When it was reported.
    pub since: DateTime<Utc>,
    /// When it ends.
    pub until: DateTime<Utc>,
}

impl Restriction {
    /// Whether it holds at `at`.
    pub fn holds_at(&self, at: DateTime<Utc>) -> bool {
        self.since <= at && at < self.until
    }
}

/// Why warm-up started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WarmUpReason {
    /// The number's first send.
    FirstSend,
    /// Its first send after [`Governor::IDLE_RESTART`] without sending.
    Idle,
}

/// A session's governor record (kept on the session aggregate).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Governor {
    /// Whether the number warms up (off for an established number).
    pub warm_up: bool,
    /// When the current warm-up started (its first send), if it did.
    pub warm_up_since: Option<DateTime<Utc>>,
    /// The latest restriction reported.
    pub restriction: Option<Restriction>,
    /// An earlier restriction the latest did not end: one in force when
    /// the latest came and ending after it (a 24-hour timelock that a
    /// 15-minute disconnect storm interrupted still holds after the storm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlasting: Option<Restriction>,
    /// The state last recorded on the log.
    pub recorded_state: GovernorState,
    /// When the connection dropped lately (the last
    /// [`Governor::STORM_DISCONNECTS`] within [`Governor::STORM_WINDOW`]).
    #[serde(default)]
    pub disconnects: Vec<DateTime<Utc>>,
}

/// A session's own pacing, set by its owner (`PATCH /api/v1/sessions/{id}`
/// `pacing`): a longer break every so many sends, and caps per minute, per
/// hour and on new contacts per local day. `None`: no cap of the session's
/// own (a break: the engine's default). While the number warms up, is
/// restricted or cools down, the tighter of these and the governor's caps
/// holds: a setting never loosens warm-up.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
pub struct SenderPacing {
    /// A longer break after every this many sends (2 to 1,000).
    #[serde(default)]
    pub break_every: Option<u32>,
    /// Sends in any 60 seconds (1 to 100,000).
    #[serde(default)]
    pub per_minute: Option<u32>,
    /// Sends in any hour (1 to 100,000), at least `per_minute`.
    #[serde(default)]
    pub per_hour: Option<u32>,
    /// New contacts (recipients never exchanged messages with) a local day
    /// (0 to 100,000).
    #[serde(default)]
    pub new_contacts_per_day: Option<u32>,
}

/// A pacing refused: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pacing.{field} must be {expected}, got {got}")]
pub struct PacingError {
    /// The field.
    pub field: &'static str,
    /// What it must be.
    pub expected: &'static str,
    /// What it was.
    pub got: u32,
}

impl SenderPacing {
    /// No pacing of the session's own.
    pub const NONE: Self = Self {
        break_every: None,
        per_minute: None,
        per_hour: None,
        new_contacts_per_day: None,
    };

    /// The pacing, if every field is in its range (and `per_hour` is at
    /// least `per_minute`).
    pub fn parse(self) -> Result<Self, PacingError> {
        let check =
            |field, value: Option<u32>, range: std::ops::RangeInclusive<u32>, expected| match value
            {
                Some(got) if !range.contains(&got) => Err(PacingError {
                    field,
                    expected,
                    got,
                }),
                _ => Ok(()),
            };
        check("break_every", self.break_every, 2..=1_000, "2 to 1000")?;
        check("per_minute", self.per_minute, 1..=100_000, "1 to 100000")?;
        check("per_hour", self.per_hour, 1..=100_000, "1 to 100000")?;
        check(
            "new_contacts_per_day",
            self.new_contacts_per_day,
            0..=100_000,
            "0 to 100000",
        )?;
        if let (Some(minute), Some(hour)) = (self.per_minute, self.per_hour)
            && hour < minute
        {
            return Err(PacingError {
                field: "per_hour",
                expected: "at least per_minute",
                got: hour,
            });
        }
        Ok(self)
    }

    /// `limits` held to this pacing's caps too: the tighter of each.
    pub fn tighten(&self, mut limits: GovernorLimits) -> GovernorLimits {
        fn tighter(a: Option<u32>, b: Option<u32>) -> Option<u32> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        limits.per_minute = tighter(limits.per_minute, self.per_minute);
        limits.per_hour = tighter(limits.per_hour, self.per_hour);
        limits.new_contacts_per_day =
            tighter(limits.new_contacts_per_day, self.new_contacts_per_day);
        limits
    }
}

/// The caps a send is held to at an instant, derived from a session's
/// [`Governor`]. `None`: no cap of that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GovernorLimits {
    /// The governor's state.
    pub state: GovernorState,
    /// Sends allowed on the local day (≤ the daily limit).
    pub allowance: u32,
    /// Sends in any 60 seconds.
    pub per_minute: Option<u32>,
    /// Sends in any hour.
    pub per_hour: Option<u32>,
    /// New contacts on the local day.
    pub new_contacts_per_day: Option<u32>,
    /// The same rendered text in any hour.
    pub identical_texts_per_hour: Option<u32>,
    /// Until when nothing goes to new contacts.
    pub new_contacts_blocked_until: Option<DateTime<Utc>>,
    /// Until when nothing goes at all.
    pub all_blocked_until: Option<DateTime<Utc>>,
    /// When the allowance grows next (in warm-up).
    pub grows_at: Option<DateTime<Utc>>,
}

impl GovernorLimits {
    /// No cap beyond `daily_limit`: an established number.
    pub fn daily_only(daily_limit: DailyLimit) -> Self {
        Self {
            state: GovernorState::Normal,
            allowance: daily_limit.value(),
            per_minute: None,
            per_hour: None,
            new_contacts_per_day: None,
            identical_texts_per_hour: None,
            new_contacts_blocked_until: None,
            all_blocked_until: None,
            grows_at: None,
        }
    }

    /// Whether a send must know if its recipient is a new contact.
    pub fn needs_new_contact(&self) -> bool {
        self.new_contacts_per_day.is_some() || self.new_contacts_blocked_until.is_some()
    }

    /// Whether a send must know its rendered text.
    pub fn needs_text(&self) -> bool {
        self.identical_texts_per_hour.is_some()
    }
}

impl Governor {
    /// Sends after which a number that sent nothing warms up again.
    pub const IDLE_RESTART: Duration = Duration::hours(72);
    /// Growth of the warm-up allowance per day, in thousandths (×1.8).
    pub const GROWTH_PER_MILLE: u64 = 1_800;
    /// Sends in any 60 seconds while warming up or cooling down.
    pub const WARM_UP_PER_MINUTE: u32 = 4;
    /// Sends in any hour while warming up or cooling down.
    pub const WARM_UP_PER_HOUR: u32 = 40;
    /// New contacts a local day while warming up or cooling down.
    pub const WARM_UP_NEW_CONTACTS: u32 = 5;
    /// The same text in any hour while warming up or cooling down.
    pub const WARM_UP_IDENTICAL_TEXTS: u32 = 5;
    /// How long a sender cools down after a restriction ends.
    pub const COOL_DOWN: Duration = Duration::hours(24);

    /// Disconnects within [`Governor::STORM_WINDOW`] that make a storm.
    pub const STORM_DISCONNECTS: usize = 5;
    /// The window a storm's disconnects fall in.
    pub const STORM_WINDOW: Duration = Duration::minutes(10);

    /// Notes a disconnect at `at`, keeping those of the storm window.
    pub fn note_disconnect(&mut self, at: DateTime<Utc>) {
        self.disconnects.push(at);
        self.disconnects.retain(|d| at - *d < Self::STORM_WINDOW);
        let excess = self
            .disconnects
            .len()
            .saturating_sub(Self::STORM_DISCONNECTS);
        self.disconnects.drain(..excess);
    }

    /// Whether the disconnects noted up to `at` make a storm (and no storm
    /// restriction holds yet): [`Governor::STORM_DISCONNECTS`] of them
    /// within [`Governor::STORM_WINDOW`].
    pub fn storm_at(&self, at: DateTime<Utc>) -> bool {
        let recent = self
            .disconnects
            .iter()
            .filter(|d| at - **d < Self::STORM_WINDOW)
            .count();
        recent >= Self::STORM_DISCONNECTS
            && !self
                .restriction_at(at)
                .is_some_and(|r| r.kind == RestrictionKind::DisconnectStorm)
    }

    /// Whether a session on `driver` warms up when nobody says: every
    /// driver but the simulator (whose numbers are demo and load-test
    /// numbers).
    pub fn warms_up_by_default(driver: crate::session::Driver) -> bool {
        driver != crate::session::Driver::Simulator
    }

    /// The first day's warm-up allowance at `trust`; `None`: the level
    /// skips warm-up.
    pub const fn first_day(trust: TrustLevel) -> Option<u32> {
        match trust.value() {
            1 => Some(20),
            2 => Some(40),
            3 => Some(80),
            _ => None,
        }
    }

    /// The warm-up allowance of the `k`-th day (from 0) at `trust`, not
    /// capped by the daily limit; `None`: no warm-up at that level.
    pub fn warm_up_allowance(trust: TrustLevel, k: u32) -> Option<u64> {
        let mut allowance = u64::from(Self::first_day(trust)?);
        for _ in 0..k.min(64) {
            allowance = allowance * Self::GROWTH_PER_MILLE / 1_000;
            if allowance > u64::from(DailyLimit::MAX) {
                break;
            }
        }
        Some(allowance)
    }

    /// Whether the number is still warming up at `at` (warm-up on, the
    /// trust level does not skip it, and its allowance is below the daily
    /// limit), with that allowance and when it grows next.
    fn warming(
        &self,
        at: DateTime<Utc>,
        daily_limit: DailyLimit,
        trust: TrustLevel,
    ) -> Option<(u32, Option<DateTime<Utc>>)> {
        if !self.warm_up {
            return None;
        }
        let (k, grows_at) = match self.warm_up_since {
            // Not sent yet: its first day is ahead.
            None => (0, None),
            Some(since) => {
                let days = (at - since).num_days().max(0);
                let k = u32::try_from(days).unwrap_or(u32::MAX);
                (k, Some(since + Duration::days(days + 1)))
            }
        };
        let allowance = Self::warm_up_allowance(trust, k)?;
        let limit = u64::from(daily_limit.value());
        (allowance < limit).then_some((allowance as u32, grows_at))
    }

    /// Records a restriction reported: the latest, keeping an earlier one
    /// in force that outlasts it.
    pub fn restrict(&mut self, restriction: Restriction) {
        self.outlasting = [self.restriction, self.outlasting]
            .into_iter()
            .flatten()
            .filter(|r| r.holds_at(restriction.since) && r.until > restriction.until)
            .max_by_key(|r| r.until);
        self.restriction = Some(restriction);
    }

    /// The restriction holding at `at`, if one does (the latest first).
    pub fn restriction_at(&self, at: DateTime<Utc>) -> Option<Restriction> {
        self.restrictions_at(at).next()
    }

    /// Every restriction holding at `at`, the latest first.
    pub fn restrictions_at(&self, at: DateTime<Utc>) -> impl Iterator<Item = Restriction> {
        [self.restriction, self.outlasting]
            .into_iter()
            .flatten()
            .filter(move |r| r.holds_at(at))
    }

    /// The restriction that ends last, held or ended.
    fn last_to_end(&self) -> Option<Restriction> {
        [self.restriction, self.outlasting]
            .into_iter()
            .flatten()
            .max_by_key(|r| r.until)
    }

    /// The state at `at`, and until when it holds where it says (the end
    /// of a restriction or a cool-down).
    pub fn state_at(
        &self,
        at: DateTime<Utc>,
        daily_limit: DailyLimit,
        trust: TrustLevel,
    ) -> (GovernorState, Option<DateTime<Utc>>) {
        if let Some(restriction) = self.restriction_at(at) {
            return (GovernorState::Restricted, Some(restriction.until));
        }
        if let Some(restriction) = self.last_to_end()
            && restriction.until <= at
            && at < restriction.until + Self::COOL_DOWN
        {
            return (
                GovernorState::CoolingDown,
                Some(restriction.until + Self::COOL_DOWN),
            );
        }
        if self.warming(at, daily_limit, trust).is_some() {
            return (GovernorState::WarmingUp, None);
        }
        (GovernorState::Normal, None)
    }

    /// The caps a send at `at` is held to.
    pub fn limits(
        &self,
        at: DateTime<Utc>,
        daily_limit: DailyLimit,
        trust: TrustLevel,
    ) -> GovernorLimits {
        let (state, _) = self.state_at(at, daily_limit, trust);
        let warming = self.warming(at, daily_limit, trust);
        let mut limits = GovernorLimits::daily_only(daily_limit);
        limits.state = state;
        if let Some((allowance, grows_at)) = warming {
            limits.allowance = allowance;
            limits.grows_at = grows_at;
        }
        // A number warming up, cooling down or restricted is held to the
        // warm-up caps; an established one to its daily limit only.
        let careful = state != GovernorState::Normal;
        if state == GovernorState::CoolingDown {
            limits.allowance = limits.allowance.min(daily_limit.value().div_ceil(2));
        }
        if careful {
            limits.per_minute = Some(Self::WARM_UP_PER_MINUTE);
            limits.per_hour = Some(Self::WARM_UP_PER_HOUR);
            limits.new_contacts_per_day = Some(Self::WARM_UP_NEW_CONTACTS);
            limits.identical_texts_per_hour = Some(Self::WARM_UP_IDENTICAL_TEXTS);
        }
        for restriction in self.restrictions_at(at) {
            let blocked = match restriction.kind.scope() {
                RestrictionScope::NewContacts => &mut limits.new_contacts_blocked_until,
                RestrictionScope::All => &mut limits.all_blocked_until,
            };
            *blocked = (*blocked).max(Some(restriction.until));
        }
        limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn limit(n: u64) -> DailyLimit {
        DailyLimit::parse(n).unwrap()
    }

    fn warming_since(since: &str) -> Governor {
        Governor {
            warm_up: true,
            warm_up_since: Some(utc(since)),
            ..Governor::default()
        }
    }

    #[test]
    fn warm_up_starts_at_twenty_and_grows_by_one_point_eight_a_day() {
        let level = TrustLevel::NEW;
        let allowances: Vec<u64> = (0..6)
            .map(|k| Governor::warm_up_allowance(level, k).unwrap())
            .collect();
        assert_eq!(allowances, vec![20, 36, 64, 115, 207, 372]);
        let governor = warming_since("2026-12-01T08:00:00Z");
        let day1 = governor.limits(utc("2026-12-01T09:00:00Z"), limit(500), level);
        assert_eq!(day1.state, GovernorState::WarmingUp);
        assert_eq!(day1.allowance, 20);
        assert_eq!(day1.grows_at, Some(utc("2026-12-02T08:00:00Z")));
        assert_eq!(day1.new_contacts_per_day, Some(5));
        let day3 = governor.limits(utc("2026-12-03T09:00:00Z"), limit(500), level);
        assert_eq!(day3.allowance, 64);
    }

    #[test]
    fn warm_up_ends_once_the_allowance_reaches_the_daily_limit() {
        let governor = warming_since("2026-12-01T08:00:00Z");
        let later = governor.limits(utc("2026-12-04T09:00:00Z"), limit(100), TrustLevel::NEW);
        assert_eq!(later.state, GovernorState::Normal);
        assert_eq!(later, GovernorLimits::daily_only(limit(100)));
    }

    #[test]
    fn the_trust_level_sets_the_first_day_and_high_levels_skip_warm_up() {
        let governor = warming_since("2026-12-01T08:00:00Z");
        let at = utc("2026-12-01T09:00:00Z");
        let level = |n| TrustLevel::parse(n).unwrap();
        assert_eq!(governor.limits(at, limit(500), level(2)).allowance, 40);
        assert_eq!(governor.limits(at, limit(500), level(3)).allowance, 80);
        let trusted = governor.limits(at, limit(500), level(4));
        assert_eq!(trusted, GovernorLimits::daily_only(limit(500)));
    }

    #[test]
    fn an_established_number_is_held_to_its_daily_limit_only() {
        let governor = Governor::default();
        let limits = governor.limits(utc("2026-12-01T09:00:00Z"), limit(50), TrustLevel::NEW);
        assert_eq!(limits, GovernorLimits::daily_only(limit(50)));
        assert!(!limits.needs_new_contact() && !limits.needs_text());
    }

    #[test]
    fn a_timelock_blocks_new_contacts_until_it_ends_then_the_sender_cools_down() {
        let governor = Governor {
            restriction: Some(Restriction {
                kind: RestrictionKind::ReachoutTimelock,
                since: utc("2026-12-01T08:00:00Z"),
                until: utc("2026-12-01T20:00:00Z"),
            }),
            ..Governor::default()
        };
        let during = governor.limits(utc("2026-12-01T09:00:00Z"), limit(100), TrustLevel::NEW);
        assert_eq!(during.state, GovernorState::Restricted);
        assert_eq!(
            during.new_contacts_blocked_until,
            Some(utc("2026-12-01T20:00:00Z"))
        );
        assert_eq!(during.all_blocked_until, None);
        let after = governor.limits(utc("2026-12-01T21:00:00Z"), limit(100), TrustLevel::NEW);
        assert_eq!(after.state, GovernorState::CoolingDown);
        assert_eq!(after.allowance, 50);
        assert_eq!(after.new_contacts_blocked_until, None);
        assert_eq!(after.new_contacts_per_day, Some(5));
        let (state, _) =
            governor.state_at(utc("2026-12-02T21:00:00Z"), limit(100), TrustLevel::NEW);
        assert_eq!(state, GovernorState::Normal);
    }

    #[test]
    fn a_storm_during_a_timelock_does_not_end_the_timelock() {
        let mut governor = Governor::default();
        let at = |h: u32, m: u32| utc(&format!("2026-12-01T{h:02}:{m:02}:00Z"));
        governor.restrict(Restriction {
            kind: RestrictionKind::ReachoutTimelock,
            since: at(8, 0),
            until: at(20, 0),
        });
        governor.restrict(Restriction {
            kind: RestrictionKind::DisconnectStorm,
            since: at(9, 0),
            until: at(9, 15),
        });
        // During the storm nothing goes; the new-contact block stays.
        let storm = governor.limits(at(9, 5), limit(100), TrustLevel::NEW);
        assert_eq!(storm.all_blocked_until, Some(at(9, 15)));
        assert_eq!(storm.new_contacts_blocked_until, Some(at(20, 0)));
        // After it, the timelock still holds until its end.
        let after = governor.limits(at(10, 0), limit(100), TrustLevel::NEW);
        assert_eq!(after.state, GovernorState::Restricted);
        assert_eq!(after.all_blocked_until, None);
        assert_eq!(after.new_contacts_blocked_until, Some(at(20, 0)));
        assert_eq!(
            governor.restriction_at(at(10, 0)).map(|r| r.kind),
            Some(RestrictionKind::ReachoutTimelock)
        );
        // The cool-down follows the last to end.
        let (state, until) = governor.state_at(at(21, 0), limit(100), TrustLevel::NEW);
        assert_eq!(state, GovernorState::CoolingDown);
        assert_eq!(until, Some(at(20, 0) + Governor::COOL_DOWN));
        // A later restriction that outlasts it replaces both.
        governor.restrict(Restriction {
            kind: RestrictionKind::TemporaryBan,
            since: at(11, 0),
            until: at(23, 0),
        });
        assert_eq!(governor.outlasting, None);
    }

    #[test]
    fn five_disconnects_within_ten_minutes_make_a_storm() {
        let mut governor = Governor::default();
        let start = utc("2026-12-01T08:00:00Z");
        for minute in [0, 3, 5, 7] {
            governor.note_disconnect(start + Duration::minutes(minute));
            assert!(!governor.storm_at(start + Duration::minutes(minute)));
        }
        // The fifth 11 minutes after the first: only four in the window.
        governor.note_disconnect(start + Duration::minutes(11));
        assert!(!governor.storm_at(start + Duration::minutes(11)));
        governor.note_disconnect(start + Duration::minutes(12));
        assert!(governor.storm_at(start + Duration::minutes(12)));
        assert_eq!(governor.disconnects.len(), Governor::STORM_DISCONNECTS);
        // A storm already recorded is not a new one.
        governor.restriction = Some(Restriction {
            kind: RestrictionKind::DisconnectStorm,
            since: start + Duration::minutes(12),
            until: start + Duration::minutes(27),
        });
        assert!(!governor.storm_at(start + Duration::minutes(12)));
        let limits = governor.limits(start + Duration::minutes(13), limit(100), TrustLevel::NEW);
        assert_eq!(
            limits.all_blocked_until,
            Some(start + Duration::minutes(27))
        );
    }

    #[test]
    fn a_sessions_pacing_caps_an_established_number_and_never_loosens_warm_up() {
        let pacing = SenderPacing {
            break_every: Some(10),
            per_minute: Some(10),
            per_hour: Some(30),
            new_contacts_per_day: Some(8),
        }
        .parse()
        .unwrap();
        // An established number: the session's caps alone.
        let normal = pacing.tighten(Governor::default().limits(
            utc("2026-12-01T09:00:00Z"),
            limit(100),
            TrustLevel::NEW,
        ));
        assert_eq!(
            (
                normal.per_minute,
                normal.per_hour,
                normal.new_contacts_per_day
            ),
            (Some(10), Some(30), Some(8))
        );
        assert!(normal.needs_new_contact());
        // Warming up: the tighter of each (4 a minute, 30 an hour, 5 new
        // contacts).
        let warming = pacing.tighten(warming_since("2026-12-01T08:00:00Z").limits(
            utc("2026-12-01T09:00:00Z"),
            limit(500),
            TrustLevel::NEW,
        ));
        assert_eq!(warming.state, GovernorState::WarmingUp);
        assert_eq!(
            (
                warming.per_minute,
                warming.per_hour,
                warming.new_contacts_per_day
            ),
            (Some(4), Some(30), Some(5))
        );
        assert_eq!(warming.allowance, 20);
        // No pacing changes nothing.
        let plain =
            Governor::default().limits(utc("2026-12-01T09:00:00Z"), limit(50), TrustLevel::NEW);
        assert_eq!(SenderPacing::NONE.tighten(plain), plain);
    }

    #[test]
    fn a_pacing_out_of_range_is_refused_naming_its_field() {
        let refused = |pacing: SenderPacing| pacing.parse().unwrap_err().field;
        let none = SenderPacing::NONE;
        assert_eq!(
            refused(SenderPacing {
                break_every: Some(1),
                ..none
            }),
            "break_every"
        );
        assert_eq!(
            refused(SenderPacing {
                per_minute: Some(0),
                ..none
            }),
            "per_minute"
        );
        assert_eq!(
            refused(SenderPacing {
                per_hour: Some(100_001),
                ..none
            }),
            "per_hour"
        );
        assert_eq!(
            refused(SenderPacing {
                new_contacts_per_day: Some(100_001),
                ..none
            }),
            "new_contacts_per_day"
        );
        assert_eq!(
            refused(SenderPacing {
                per_minute: Some(10),
                per_hour: Some(5),
                ..none
            }),
            "per_hour"
        );
        assert!(
            SenderPacing {
                new_contacts_per_day: Some(0),
                ..none
            }
            .parse()
            .is_ok()
        );
    }

    #[test]
    fn a_temporary_ban_blocks_everything_until_it_ends() {
        let governor = Governor {
            restriction: Some(Restriction {
                kind: RestrictionKind::TemporaryBan,
                since: utc("2026-12-01T08:00:00Z"),
                until: utc("2026-12-01T20:00:00Z"),
            }),
            ..Governor::default()
        };
        let during = governor.limits(utc("2026-12-01T09:00:00Z"), limit(100), TrustLevel::NEW);
        assert_eq!(during.all_blocked_until, Some(utc("2026-12-01T20:00:00Z")));
    }
}
