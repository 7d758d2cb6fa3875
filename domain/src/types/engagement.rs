//! Engagement: whether recipients answer, and whether sends go through.
//!
//! - [`EngagementGuard`]: a campaign leaves out the contacts the tenant
//!   sent so many messages and who never replied ([`SkipReason::NeverReplied`]).
//! - [`SendSignals`]: a sender's last outcomes, which slow a campaign down
//!   when failures and blocks climb (see
//!   [`Campaign`](crate::campaign::Campaign)'s `ReportSendSignals`).

use serde::{Deserialize, Serialize};

/// Why a campaign's start left a contact of its list out.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// A check found the number not on WhatsApp.
    NotOnWhatsapp,
    /// The tenant sent the contact [`EngagementGuard`] messages or more and
    /// the contact never replied.
    NeverReplied,
}

impl SkipReason {
    /// Every reason.
    pub const ALL: [Self; 2] = [Self::NotOnWhatsapp, Self::NeverReplied];

    /// Its stable name (`not_on_whatsapp`, `never_replied`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotOnWhatsapp => "not_on_whatsapp",
            Self::NeverReplied => "never_replied",
        }
    }
}

/// How many messages the tenant may send a contact who never replies
/// before campaigns leave the contact out: 1 to 100, or 0 (off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "u32", into = "u32")]
pub struct EngagementGuard(u32);

/// An engagement guard out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("skip_unanswered_after must be 0 (off) to {max}, got {got}", max = EngagementGuard::MAX)]
pub struct EngagementGuardError {
    /// The value given.
    pub got: u64,
}

impl EngagementGuard {
    /// The guard of a campaign that does not say: 3 unanswered messages.
    pub const DEFAULT: Self = Self(3);
    /// No guard: every contact is sent to.
    pub const OFF: Self = Self(0);
    /// The highest guard.
    pub const MAX: u32 = 100;

    /// A guard of `n` unanswered messages (0: off).
    pub fn parse(n: u64) -> Result<Self, EngagementGuardError> {
        match u32::try_from(n) {
            Ok(n) if n <= Self::MAX => Ok(Self(n)),
            _ => Err(EngagementGuardError { got: n }),
        }
    }

    /// Messages sent without a reply from which a contact is left out;
    /// `None`: off.
    pub const fn after(self) -> Option<u32> {
        if self.0 == 0 { None } else { Some(self.0) }
    }

    /// The value (0: off).
    pub const fn value(self) -> u32 {
        self.0
    }

    /// Off: for events recorded before campaigns had a guard.
    pub const fn off() -> Self {
        Self::OFF
    }
}

impl Default for EngagementGuard {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<u32> for EngagementGuard {
    type Error = EngagementGuardError;

    fn try_from(n: u32) -> Result<Self, Self::Error> {
        Self::parse(u64::from(n))
    }
}

impl From<EngagementGuard> for u32 {
    fn from(guard: EngagementGuard) -> Self {
        guard.0
    }
}

/// How one send ended, as the sender's signals count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendOutcome {
    /// WhatsApp took it.
    Sent,
    /// It failed for good (rejected, not on WhatsApp, out of attempts).
    Failed,
    /// WhatsApp held the sender back because recipients flagged its
    /// messages (a spam pause). A restriction (a 463 timelock, the capping
    /// quota) is not counted: the sender governor holds the sender to it.
    Blocked,
}

/// A sender's last outcomes for one campaign (at most
/// [`SendSignals::WINDOW`]), counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SendSignals {
    /// Outcomes counted.
    pub outcomes: u32,
    /// Of which failed.
    pub failed: u32,
    /// Of which blocked.
    pub blocked: u32,
}

impl SendSignals {
    /// How many of a sender's last outcomes are counted.
    pub const WINDOW: usize = 10;
    /// From this share of failed or blocked outcomes (in percent) a
    /// campaign slows down.
    pub const SLOW_DOWN_PERCENT: u32 = 30;
    /// Below this share (in percent) a slowed campaign takes its own pace
    /// again.
    pub const RESTORE_PERCENT: u32 = 10;

    /// The counts of `outcomes` (the last [`SendSignals::WINDOW`] of them).
    pub fn of<'a>(outcomes: impl IntoIterator<Item = &'a SendOutcome>) -> Self {
        let mut signals = Self::default();
        for outcome in outcomes {
            signals.outcomes += 1;
            match outcome {
                SendOutcome::Sent => {}
                SendOutcome::Failed => signals.failed += 1,
                SendOutcome::Blocked => signals.blocked += 1,
            }
        }
        signals
    }

    /// Whether the window is full: fewer outcomes say too little.
    pub fn is_full(&self) -> bool {
        self.outcomes as usize >= Self::WINDOW
    }

    /// Failed and blocked outcomes.
    pub fn bad(&self) -> u32 {
        self.failed.saturating_add(self.blocked)
    }

    /// Failures climbing: a full window with at least
    /// [`SendSignals::SLOW_DOWN_PERCENT`] failed or blocked.
    pub fn climbing(&self) -> bool {
        self.is_full()
            && u64::from(self.bad()) * 100
                >= u64::from(Self::SLOW_DOWN_PERCENT) * u64::from(self.outcomes)
    }

    /// Calm again: a full window with under
    /// [`SendSignals::RESTORE_PERCENT`] failed or blocked.
    pub fn calm(&self) -> bool {
        self.is_full()
            && u64::from(self.bad()) * 100
                < u64::from(Self::RESTORE_PERCENT) * u64::from(self.outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_is_off_or_one_to_a_hundred() {
        assert_eq!(EngagementGuard::parse(0).unwrap().after(), None);
        assert_eq!(EngagementGuard::parse(1).unwrap().after(), Some(1));
        assert_eq!(EngagementGuard::parse(100).unwrap().after(), Some(100));
        assert_eq!(
            EngagementGuard::parse(101),
            Err(EngagementGuardError { got: 101 })
        );
        assert_eq!(EngagementGuard::default().after(), Some(3));
        assert!(serde_json::from_str::<EngagementGuard>("101").is_err());
        assert_eq!(
            serde_json::to_string(&EngagementGuard::DEFAULT).unwrap(),
            "3"
        );
    }

    #[test]
    fn three_bad_of_ten_is_climbing_and_none_of_ten_is_calm() {
        use SendOutcome::{Blocked, Failed, Sent};
        let window = |bad: &[SendOutcome]| {
            let mut all = vec![Sent; SendSignals::WINDOW - bad.len()];
            all.extend_from_slice(bad);
            SendSignals::of(&all)
        };
        assert!(window(&[Failed, Blocked, Failed]).climbing());
        assert!(!window(&[Failed, Blocked]).climbing());
        assert!(!window(&[Failed]).calm());
        assert!(window(&[]).calm());
        // Too few outcomes say nothing either way.
        let few = SendSignals::of(&[Failed, Failed, Failed]);
        assert!(!few.climbing() && !few.calm());
    }
}
