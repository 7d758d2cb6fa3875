//! Per-session limits: the daily limit and the trust level it derives from.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a limit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// A daily limit outside 1..=[`DailyLimit::MAX`].
    #[error("daily limit must be between 1 and {max}, got {got}")]
    DailyLimitOutOfRange {
        /// The value refused.
        got: u64,
        /// The largest allowed.
        max: u32,
    },
    /// A trust level outside 1..=5.
    #[error("trust level must be between 1 and 5, got {0}")]
    TrustLevelOutOfRange(u64),
}

/// How many messages a session may send in one local day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct DailyLimit(u32);

impl DailyLimit {
    /// The limit of a new session when none is given (seeds: 50).
    pub const DEFAULT: Self = Self(50);
    /// The largest limit any plan can allow.
    pub const MAX: u32 = 100_000;

    /// Parses a limit: 1..=[`DailyLimit::MAX`].
    pub fn parse(limit: u64) -> Result<Self, LimitError> {
        match u32::try_from(limit) {
            Ok(l) if (1..=Self::MAX).contains(&l) => Ok(Self(l)),
            _ => Err(LimitError::DailyLimitOutOfRange {
                got: limit,
                max: Self::MAX,
            }),
        }
    }

    /// The limit as a number.
    pub const fn value(self) -> u32 {
        self.0
    }
}

impl Default for DailyLimit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<u32> for DailyLimit {
    type Error = LimitError;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::parse(u64::from(value))
    }
}

impl From<DailyLimit> for u32 {
    fn from(limit: DailyLimit) -> Self {
        limit.0
    }
}

impl fmt::Display for DailyLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/day", self.0)
    }
}

/// How far a session (a WhatsApp number) is trusted not to be banned: new
/// numbers start at 1; an operator raises it as a number ages well. It sets
/// the default daily limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct TrustLevel(u8);

impl TrustLevel {
    /// A new number.
    pub const NEW: Self = Self(1);

    /// Parses a level: 1..=5.
    pub fn parse(level: u64) -> Result<Self, LimitError> {
        match u8::try_from(level) {
            Ok(l) if (1..=5).contains(&l) => Ok(Self(l)),
            _ => Err(LimitError::TrustLevelOutOfRange(level)),
        }
    }

    /// The level as a number.
    pub const fn value(self) -> u8 {
        self.0
    }

    /// The daily limit a session of this level gets unless one is set:
    /// 50, 100, 200, 350, 500.
    pub const fn default_daily_limit(self) -> DailyLimit {
        DailyLimit(match self.0 {
            1 => 50,
            2 => 100,
            3 => 200,
            4 => 350,
            _ => 500,
        })
    }
}

impl Default for TrustLevel {
    fn default() -> Self {
        Self::NEW
    }
}

impl TryFrom<u8> for TrustLevel {
    type Error = LimitError;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Self::parse(u64::from(value))
    }
}

impl From<TrustLevel> for u8 {
    fn from(level: TrustLevel) -> Self {
        level.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_limits_outside_the_range_are_refused() {
        assert!(DailyLimit::parse(0).is_err());
        assert!(DailyLimit::parse(u64::from(DailyLimit::MAX) + 1).is_err());
        assert_eq!(DailyLimit::parse(500).unwrap().value(), 500);
        assert!(serde_json::from_str::<DailyLimit>("0").is_err());
    }

    #[test]
    fn trust_levels_set_the_default_daily_limit() {
        assert!(TrustLevel::parse(0).is_err());
        assert!(TrustLevel::parse(6).is_err());
        assert_eq!(TrustLevel::NEW.default_daily_limit(), DailyLimit::DEFAULT);
        assert_eq!(
            TrustLevel::parse(5).unwrap().default_daily_limit().value(),
            500
        );
    }
}
