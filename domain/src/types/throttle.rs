//! Throttle: the random pause between two sends of one session, drawn as
//! a person's pauses are (log-normal: most near the middle, a few long
//! ones, none outside the bounds); and [`Pacing`], the longer break a
//! person takes every so many messages.

use std::time::Duration;

use rand::Rng;
use rand_distr::{Distribution, LogNormal};
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

/// A pause between `min_delay_ms` and `max_delay_ms`, drawn log-normally
/// ([`Throttle::delay`]).
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

    /// How many times longer a slowed-down campaign pauses.
    pub const SLOW_DOWN_FACTOR: u64 = 4;
    /// The shortest pause of a slowed-down campaign: 2 to 6 seconds at
    /// least, whatever its own.
    pub const SLOWED_AT_LEAST: Self = Self {
        min_delay_ms: 2_000,
        max_delay_ms: 6_000,
    };

    /// The pause of a campaign slowed down while its failures climb:
    /// [`Throttle::SLOW_DOWN_FACTOR`] times longer, and at least
    /// [`Throttle::SLOWED_AT_LEAST`] (never beyond
    /// [`Throttle::MAX_DELAY_MS`]).
    pub fn slowed(self) -> Self {
        let stretch = |ms: u64, floor: u64| {
            ms.saturating_mul(Self::SLOW_DOWN_FACTOR)
                .max(floor)
                .min(Self::MAX_DELAY_MS)
        };
        let max_delay_ms = stretch(self.max_delay_ms, Self::SLOWED_AT_LEAST.max_delay_ms);
        Self {
            min_delay_ms: stretch(self.min_delay_ms, Self::SLOWED_AT_LEAST.min_delay_ms)
                .min(max_delay_ms),
            max_delay_ms,
        }
    }

    /// Draws one pause: log-normal, its median the geometric mean of the
    /// bounds and the bounds two standard deviations (of the logarithm)
    /// away from it, so about 95% fall inside as drawn; the rest are
    /// brought back to the nearer bound. People pause around a typical
    /// length with a long tail, not evenly anywhere between two values
    /// (which a uniform draw does, and is easy to tell from a person).
    pub fn delay(&self, rng: &mut impl Rng) -> Duration {
        let (min, max) = (self.min_delay_ms, self.max_delay_ms);
        if max == 0 {
            return Duration::ZERO;
        }
        // A zero minimum: the logarithm needs a floor; a millisecond is as
        // good as none.
        let low = min.max(1) as f64;
        let high = max as f64;
        let mu = (low.ln() + high.ln()) / 2.0;
        let sigma = (high.ln() - low.ln()) / 4.0;
        let drawn = match LogNormal::new(mu, sigma) {
            Ok(distribution) if sigma > 0.0 => distribution.sample(rng),
            // Equal bounds (or a degenerate spread): the one value.
            _ => high,
        };
        Duration::from_millis((drawn.round() as u64).clamp(min, max))
    }
}

/// The longer break a person takes every so many messages: after every
/// `every` sends, a pause of `factor_min` to `factor_max` times the
/// throttle's longest pause (drawn as [`Throttle::delay`] draws). Derived
/// from the throttle, and only for one paced like a person (its longest
/// pause at least [`Pacing::HUMAN_SCALE_MS`]): a session or campaign that
/// sends flat out or nearly (load tests, the simulator) takes no break.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pacing {
    /// Sends between two breaks (0: no breaks).
    pub every: u32,
    /// The shortest break, in throttle maxima.
    pub factor_min: u32,
    /// The longest break, in throttle maxima.
    pub factor_max: u32,
}

impl Pacing {
    /// The default: every 20 messages, a break of 5 to 15 times the
    /// throttle's longest pause (25 s to 75 s at the default 2–5 s).
    pub const DEFAULT: Self = Self {
        every: 20,
        factor_min: 5,
        factor_max: 15,
    };

    /// The longest pause below which a throttle is not a person's pace,
    /// and takes no breaks: a second.
    pub const HUMAN_SCALE_MS: u64 = 1_000;

    /// No breaks.
    pub const NONE: Self = Self {
        every: 0,
        factor_min: 0,
        factor_max: 0,
    };

    /// The break after the `sent`-th send (from 1) under `throttle`, if one
    /// is due.
    pub fn break_after(
        &self,
        sent: u64,
        throttle: &Throttle,
        rng: &mut impl Rng,
    ) -> Option<Duration> {
        if self.every == 0 || sent == 0 || !sent.is_multiple_of(u64::from(self.every)) {
            return None;
        }
        let longest = throttle.max_delay_ms();
        if longest < Self::HUMAN_SCALE_MS {
            return None;
        }
        let bounds = Throttle {
            min_delay_ms: longest.saturating_mul(u64::from(self.factor_min)),
            max_delay_ms: longest.saturating_mul(u64::from(self.factor_max.max(self.factor_min))),
        };
        let pause = bounds.delay(rng);
        (!pause.is_zero()).then_some(pause)
    }
}

impl Default for Pacing {
    fn default() -> Self {
        Self::DEFAULT
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
    fn delays_are_log_normal_around_the_geometric_mean_with_a_long_tail() {
        let throttle = Throttle::new(1_000, 9_000).unwrap();
        let mut rng = StdRng::seed_from_u64(42);
        let mut draws: Vec<u64> = (0..20_000)
            .map(|_| throttle.delay(&mut rng).as_millis() as u64)
            .collect();
        draws.sort_unstable();
        let quantile = |q: f64| draws[((draws.len() - 1) as f64 * q) as usize] as f64;
        let median = quantile(0.5);
        // The median: the geometric mean of the bounds (3 s), not their
        // middle (5 s) as a uniform draw would have it.
        assert!((median - 3_000.0).abs() < 100.0, "median {median}");
        // A long tail: the mean above the median.
        let mean = draws.iter().sum::<u64>() as f64 / draws.len() as f64;
        assert!(mean > median * 1.05, "mean {mean}, median {median}");
        // The logarithm is symmetric: the quartiles are as far (in ratio)
        // from the median on both sides; sigma = ln(9) / 4, so the upper
        // quartile is median × e^(0.6745 σ) ≈ 1.45 × the median.
        let (q1, q3) = (quantile(0.25), quantile(0.75));
        assert!(
            ((q3 / median) / (median / q1) - 1.0).abs() < 0.05,
            "{q1} {median} {q3}"
        );
        assert!((q3 / median - 1.448).abs() < 0.05, "{q3} / {median}");
        // About 5% are drawn outside the bounds and brought back to them.
        let at_bounds = draws
            .iter()
            .filter(|d| **d == 1_000 || **d == 9_000)
            .count();
        let share = at_bounds as f64 / draws.len() as f64;
        assert!((0.03..0.07).contains(&share), "{share}");
        assert!(draws.iter().all(|d| (1_000..=9_000).contains(d)));
        // Seeded: the same draws again.
        let mut again = StdRng::seed_from_u64(42);
        assert_eq!(
            throttle.delay(&mut again).as_millis() as u64,
            Throttle::new(1_000, 9_000)
                .unwrap()
                .delay(&mut StdRng::seed_from_u64(42))
                .as_millis() as u64
        );
    }

    #[test]
    fn a_break_comes_every_k_sends_and_not_when_sending_flat_out() {
        let pacing = Pacing::DEFAULT;
        let throttle = Throttle::default();
        let mut rng = StdRng::seed_from_u64(3);
        let breaks: Vec<u64> = (1..=100)
            .filter(|n| pacing.break_after(*n, &throttle, &mut rng).is_some())
            .collect();
        assert_eq!(breaks, vec![20, 40, 60, 80, 100]);
        for _ in 0..200 {
            let pause = pacing.break_after(20, &throttle, &mut rng).unwrap();
            assert!(
                (25_000..=75_000).contains(&(pause.as_millis() as u64)),
                "{pause:?}"
            );
        }
        for flat_out in [
            Throttle::new(0, 0).unwrap(),
            Throttle::new(100, 200).unwrap(),
        ] {
            assert_eq!(pacing.break_after(20, &flat_out, &mut rng), None);
        }
        assert_eq!(Pacing::NONE.break_after(20, &throttle, &mut rng), None);
    }

    #[test]
    fn a_slowed_throttle_is_four_times_longer_and_at_least_two_to_six_seconds() {
        let slowed = |min, max| {
            let t = Throttle::new(min, max).unwrap().slowed();
            (t.min_delay_ms(), t.max_delay_ms())
        };
        assert_eq!(slowed(0, 0), (2_000, 6_000));
        assert_eq!(slowed(2_000, 5_000), (8_000, 20_000));
        assert_eq!(slowed(100, 200), (2_000, 6_000));
        assert_eq!(slowed(500_000, 600_000), (600_000, 600_000));
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
