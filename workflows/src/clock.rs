//! The engine's clock: what time it is and how to wait for a time.
//!
//! Everything the send loop decides by time (the local day of a daily
//! limit, the opening of an active window, a back-off, the throttle between
//! two sends) reads [`Clock::now`] and waits with [`Clock::sleep_until`], so
//! a test or a demo can drive time with a [`ManualClock`] instead of
//! waiting for midnight.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

/// What time it is, and a way to wait for a time.
#[async_trait]
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now.
    fn now(&self) -> DateTime<Utc>;

    /// Returns once [`Clock::now`] is at or past `at` (at once if it is).
    async fn sleep_until(&self, at: DateTime<Utc>);

    /// Waits `delay` from now.
    async fn sleep(&self, delay: std::time::Duration) {
        let delay = TimeDelta::from_std(delay).unwrap_or(TimeDelta::MAX);
        let at = self
            .now()
            .checked_add_signed(delay)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.sleep_until(at).await;
    }
}

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep_until(&self, at: DateTime<Utc>) {
        if let Ok(delay) = (at - Utc::now()).to_std() {
            tokio::time::sleep(delay).await;
        }
    }
}

/// A clock that moves only when told to: sleepers wake when it is moved
/// past their time.
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<watch::Sender<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(watch::Sender::new(at)),
        }
    }

    /// Moves the clock to `at` (never backwards: an earlier time is ignored).
    pub fn set(&self, at: DateTime<Utc>) {
        self.now.send_if_modified(|now| {
            let later = at > *now;
            if later {
                *now = at;
            }
            later
        });
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: TimeDelta) {
        // Read first: the watch's read guard must be gone before `set`
        // takes its write lock.
        let now = *self.now.borrow();
        self.set(now + by);
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    async fn sleep_until(&self, at: DateTime<Utc>) {
        let mut now = self.now.subscribe();
        // The sender lives as long as this clock: `changed` never fails
        // while `self` is borrowed.
        while *now.borrow_and_update() < at {
            if now.changed().await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_sleepers_when_moved_past_their_time() {
        let start = DateTime::parse_from_rfc3339("2026-03-30T00:00:00Z")
            .unwrap()
            .to_utc();
        let clock = ManualClock::new(start);
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(start + TimeDelta::hours(1)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!sleeper.is_finished());
        clock.advance(TimeDelta::minutes(59));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!sleeper.is_finished(), "59 minutes are not an hour");
        clock.advance(TimeDelta::minutes(1));
        tokio::time::timeout(Duration::from_secs(1), sleeper)
            .await
            .expect("woken")
            .unwrap();
        clock.set(start);
        assert_eq!(clock.now(), start + TimeDelta::hours(1), "never backwards");
        // A time already passed returns at once.
        tokio::time::timeout(Duration::from_millis(100), clock.sleep_until(start))
            .await
            .expect("no wait for the past");
    }
}
