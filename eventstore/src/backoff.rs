//! Exponential back-off, the one rule every retry loop of wablast waits by:
//! a first pause, doubled after each failed attempt, up to a ceiling.

use std::time::Duration;

/// Pauses between attempts: [`Backoff::first`] after the first failure,
/// doubled after each further one, at most [`Backoff::max`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The pause after the first failed attempt.
    pub first: Duration,
    /// The longest pause.
    pub max: Duration,
}

impl Backoff {
    /// Pauses from `first`, doubling, up to `max`.
    pub const fn new(first: Duration, max: Duration) -> Self {
        Self { first, max }
    }

    /// The pause after `failures` failed attempts in a row (1 for the
    /// first): `first × 2^(failures − 1)`, at most `max`; no pause before
    /// any failure.
    pub fn after(&self, failures: u64) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let doublings = u32::try_from(failures - 1).unwrap_or(u32::MAX).min(31);
        self.first.saturating_mul(1u32 << doublings).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_first_pause_up_to_the_ceiling() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let pauses: Vec<u64> = (0..10).map(|n| backoff.after(n).as_secs()).collect();
        assert_eq!(pauses, [0, 1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff.after(u64::MAX), Duration::from_secs(60));
    }
}
