//! Throttle: the random pause between two sends of one session.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Why a throttle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThrottleError {
    /// `min_delay_ms` greater than `max_delay_ms`.
    #[error("min_delay_ms ({min}) is greater than max_delay_ms ({max})")]
    MinAboveMax {
        /// The minimum given.
        min: u64,
        /// The maximum given.
        max: u64,
    },
    /// A delay longer than [`Throttle::MAX_DELAY_MS`].
    #[error("max_delay_ms must be at most {limit}, got {got}")]
    TooLong {
        /// The maximum given.
        got: u64,
        /// The longest allowed.
        limit: u64,
    },
}

/// A pause drawn uniformly between `min_delay_ms` and `max_delay_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "ThrottleFields")]
pub struct Throttle {
    min_delay_ms: u64,
    max_delay_ms: u64,
}

#[derive(Deserialize)]
struct ThrottleFields {
    min_delay_ms: u64,
    max_delay_ms: u64,
}

impl TryFrom<ThrottleFields> for Throttle {
    type Error = ThrottleError;

    fn try_from(fields: ThrottleFields) -> Result<Self, Self::Error> {
        Self::new(fields.min_delay_ms, fields.max_delay_ms)
    }
}

impl Throttle {
    /// The default: 2 to 5 seconds.
    pub const DEFAULT: Self = Self {
        min_delay_ms: 2_000,
        max_delay_ms: 5_000,
    };
    /// The longest pause allowed: 10 minutes.
    pub const MAX_DELAY_MS: u64 = 600_000;

    /// A throttle; zero delays are allowed (load tests, the simulator).
    pub fn new(min_delay_ms: u64, max_delay_ms: u64) -> Result<Self, ThrottleError> {
        if min_delay_ms > max_delay_ms {
            return Err(ThrottleError::MinAboveMax {
                min: min_delay_ms,
                max: max_delay_ms,
            });
        }
        if max_delay_ms > Self::MAX_DELAY_MS {
            return Err(ThrottleError::TooLong {
                got: max_delay_ms,
                limit: Self::MAX_DELAY_MS,
            });
        }
        Ok(Self {
            min_delay_ms,
            max_delay_ms,
        })
    }

    /// The shortest pause, in milliseconds.
    pub const fn min_delay_ms(&self) -> u64 {
        self.min_delay_ms
    }

    /// The longest pause, in milliseconds.
    pub const fn max_delay_ms(&self) -> u64 {
        self.max_delay_ms
    }

    /// Draws one pause.
    pub fn delay(&self, rng: &mut impl Rng) -> Duration {
        Duration::from_millis(rng.random_range(self.min_delay_ms..=self.max_delay_ms))
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn delays_stay_between_min_and_max() {
        let throttle = Throttle::default();
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..1_000 {
            let delay = throttle.delay(&mut rng).as_millis() as u64;
            assert!((2_000..=5_000).contains(&delay));
        }
    }

    #[test]
    fn inverted_or_huge_bounds_are_refused() {
        assert!(matches!(
            Throttle::new(5, 4),
            Err(ThrottleError::MinAboveMax { .. })
        ));
        assert!(matches!(
            Throttle::new(0, 600_001),
            Err(ThrottleError::TooLong { .. })
        ));
        assert!(
            serde_json::from_str::<Throttle>(r#"{"min_delay_ms":9,"max_delay_ms":1}"#).is_err()
        );
        assert_eq!(
            Throttle::new(0, 0)
                .unwrap()
                .delay(&mut StdRng::seed_from_u64(1))
                .as_millis(),
            0
        );
    }
}
