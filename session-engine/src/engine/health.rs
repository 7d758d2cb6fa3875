//! The health of the sessions an engine runs, and of the engine itself.
//!
//! - **Silent sessions**: a ready session whose driver has reported
//!   nothing for [`HealthConfig::probe_after`] is probed
//!   ([`Driver::probe`]). No answer within [`HealthConfig::probe_timeout`],
//!   or an error, and the engine reports it `disconnected` (reason
//!   `unresponsive`), stops its driver and starts it again with back-off,
//!   as any lost connection (each try recorded on the session).
//! - **Failure storms**: when more than [`HealthConfig::storm_share`] of
//!   the engine's sessions, and at least [`HealthConfig::storm_sessions`],
//!   fail within [`HealthConfig::storm_window`] (their drivers report
//!   them disconnected or failed, or they go silent): a WhatsApp Web
//!   change or an outage, where sending on would only hammer WhatsApp. The
//!   engine then holds every send of its sessions for
//!   [`HealthConfig::storm_hold`]: each send loop records that it waits
//!   (`failure_storm`, on the session's events and its campaigns), the
//!   engine's heartbeat carries the hold (`GET /api/v1/admin/engines`),
//!   and it is logged as an error and counted
//!   (`wablast_engine_sending_holds_total`). Sending resumes by itself
//!   when the hold ends; failures that go on start a new one.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};
use wablast_domain::session::{SessionCommand, SessionStatus, StatusReason};
use wablast_domain::types::SessionId;
use wablast_eventstore::CommandMetadata;
use wablast_workflows::commands::key;
use wablast_workflows::fleet::{HoldReason, SendingHold};

use super::{Engine, Held, fenced};
use crate::driver::Driver;

/// Engine-wide send holds started (failure storms).
pub const SENDING_HOLDS: &str = "wablast_engine_sending_holds_total";
/// Silent sessions that did not answer their probe (restarted).
pub const UNRESPONSIVE_SESSIONS: &str = "wablast_sessions_unresponsive_total";

/// How an engine watches its sessions' health.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthConfig {
    /// A ready session that reported nothing for this long is probed
    /// (`WABLAST_PROBE_AFTER_SECONDS`).
    pub probe_after: Duration,
    /// How long a probe may take before the session counts as
    /// unresponsive (`WABLAST_PROBE_TIMEOUT_SECONDS`).
    pub probe_timeout: Duration,
    /// The window failures are counted in (`WABLAST_STORM_WINDOW_SECONDS`).
    pub storm_window: Duration,
    /// The share of the engine's sessions that must fail within the window
    /// to make a storm: more than this (`WABLAST_STORM_SHARE`, 0–1).
    pub storm_share: f64,
    /// The fewest failed sessions that make a storm, whatever the share
    /// (`WABLAST_STORM_SESSIONS`): one number of two failing is no storm.
    pub storm_sessions: usize,
    /// How long a storm holds every send (`WABLAST_STORM_HOLD_SECONDS`).
    pub storm_hold: Duration,
}

impl Default for HealthConfig {
    /// Probe after 3 minutes of silence, 20 s to answer; a storm is more
    /// than 30% of the sessions, and at least 5, failing within 3
    /// minutes, and holds sending for 10 minutes.
    fn default() -> Self {
        Self {
            probe_after: Duration::from_secs(180),
            probe_timeout: Duration::from_secs(20),
            storm_window: Duration::from_secs(180),
            storm_share: 0.3,
            storm_sessions: 5,
            storm_hold: Duration::from_secs(600),
        }
    }
}

/// The failures an engine saw lately.
#[derive(Debug, Default)]
pub(super) struct Storm {
    failures: VecDeque<(DateTime<Utc>, SessionId)>,
}

impl Storm {
    /// `session` failed at `now`, with `sessions` running on the engine
    /// and `held` the hold in force, if any: the hold this failure starts,
    /// when the window's failures make a storm and none holds yet.
    pub(super) fn failed(
        &mut self,
        config: &HealthConfig,
        session: SessionId,
        now: DateTime<Utc>,
        sessions: usize,
        held: Option<&SendingHold>,
    ) -> Option<SendingHold> {
        let window = TimeDelta::from_std(config.storm_window).unwrap_or(TimeDelta::MAX);
        while self
            .failures
            .front()
            .is_some_and(|(at, _)| *at <= now - window)
        {
            self.failures.pop_front();
        }
        self.failures.push_back((now, session));
        if held.is_some_and(|hold| hold.until > now) {
            return None;
        }
        let failed = self
            .failures
            .iter()
            .map(|(_, session)| *session)
            .collect::<HashSet<_>>()
            .len();
        // A session that failed and was let go still counts as one of the
        // engine's.
        let sessions = sessions.max(failed);
        let storm =
            failed >= config.storm_sessions && failed as f64 > config.storm_share * sessions as f64;
        storm.then(|| SendingHold {
            reason: HoldReason::FailureStorm,
            since: now,
            until: now + TimeDelta::from_std(config.storm_hold).unwrap_or(TimeDelta::MAX),
            failed_sessions: failed,
            sessions,
        })
    }
}

impl Engine {
    /// One of this engine's sessions failed (its driver reported it
    /// disconnected or failed, or it went silent): a storm of them holds
    /// every send.
    pub(super) async fn session_failed(&self, session: SessionId) {
        let sessions = self.running.lock().expect("engine lock").len();
        let held = self.sending_held.borrow().clone();
        let hold = self.storm.lock().expect("engine lock").failed(
            &self.config.health,
            session,
            Utc::now(),
            sessions,
            held.as_ref(),
        );
        let Some(hold) = hold else {
            return;
        };
        error!(engine = %self.config.engine_id, failed = hold.failed_sessions,
            sessions = hold.sessions, until = %hold.until,
            "failure storm: many of this engine's sessions failed within minutes; holding every send");
        metrics::counter!(SENDING_HOLDS).increment(1);
        self.sending_held.send_replace(Some(hold));
        // The operator sees it at once, not at the next beat.
        self.beat().await;
    }

    /// Probes a ready session that has been silent; when it does not
    /// answer, reports it `disconnected` (`unresponsive`), stops its
    /// driver and starts it again with back-off.
    pub(super) async fn probe_silent(
        self: &Arc<Self>,
        held: Held,
        driver: &Arc<dyn Driver>,
        status: &watch::Sender<SessionStatus>,
        stop: &CancellationToken,
    ) {
        let session = held.session;
        let timeout = self.config.health.probe_timeout;
        let error = match tokio::time::timeout(timeout, driver.probe()).await {
            Ok(Ok(())) => {
                debug!(%session, "silent session answered its probe");
                return;
            }
            Ok(Err(err)) => format!("the session did not answer a health probe: {err}"),
            Err(_) => format!(
                "the session did not answer a health probe within {} s",
                timeout.as_secs_f64()
            ),
        };
        if *status.borrow() != SessionStatus::Ready {
            // It moved on while being probed: its own report says where.
            return;
        }
        warn!(%session, %error, "silent session unresponsive: restarting it");
        metrics::counter!(UNRESPONSIVE_SESSIONS).increment(1);
        let command = fenced(
            held.fence,
            SessionCommand::ReportStatus {
                status: SessionStatus::Disconnected,
                phone_number: None,
                error: Some(error.clone()),
                reason: Some(StatusReason::Unresponsive),
                at: Utc::now(),
            },
        );
        let reported = self
            .sessions
            .execute(
                &key(held.tenant, session),
                command,
                &CommandMetadata::new(self.actor()),
            )
            .await;
        if let Err(err) = reported {
            debug!(error = %wablast_eventstore::report::Chain(&err), %session, "unresponsiveness not recorded");
            return;
        }
        status.send_replace(SessionStatus::Disconnected);
        if let Err(err) = driver.stop().await {
            debug!(error = %wablast_eventstore::report::Chain(&err), %session, "the unresponsive driver did not stop cleanly");
        }
        self.session_failed(session).await;
        tokio::spawn(self.clone().keep_connecting(
            held,
            driver.clone(),
            status.subscribe(),
            stop.clone(),
            error,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> HealthConfig {
        HealthConfig {
            storm_window: Duration::from_secs(60),
            storm_share: 0.3,
            storm_sessions: 3,
            storm_hold: Duration::from_secs(300),
            ..HealthConfig::default()
        }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn failures_above_the_share_within_the_window_hold_every_send() {
        let config = config();
        let mut storm = Storm::default();
        let ids: Vec<SessionId> = (0..4).map(|_| SessionId::new()).collect();
        assert_eq!(storm.failed(&config, ids[0], at(0), 10, None), None);
        assert_eq!(storm.failed(&config, ids[1], at(10), 10, None), None);
        // Three of ten is not more than 30%.
        assert_eq!(storm.failed(&config, ids[2], at(20), 10, None), None);
        let hold = storm
            .failed(&config, ids[3], at(30), 10, None)
            .expect("four of ten within a minute");
        assert_eq!(hold.reason, HoldReason::FailureStorm);
        assert_eq!((hold.failed_sessions, hold.sessions), (4, 10));
        assert_eq!((hold.since, hold.until), (at(30), at(330)));
    }

    #[test]
    fn a_session_failing_again_counts_once() {
        let config = config();
        let mut storm = Storm::default();
        let flapping = SessionId::new();
        for second in 0..10 {
            assert_eq!(storm.failed(&config, flapping, at(second), 2, None), None);
        }
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let config = config();
        let mut storm = Storm::default();
        for minute in 0..6 {
            assert_eq!(
                storm.failed(&config, SessionId::new(), at(minute * 61), 4, None),
                None,
                "one failure a minute is no storm"
            );
        }
    }

    #[test]
    fn fewer_failures_than_the_floor_are_no_storm_whatever_the_share() {
        let config = config();
        let mut storm = Storm::default();
        assert_eq!(
            storm.failed(&config, SessionId::new(), at(0), 2, None),
            None
        );
        assert_eq!(
            storm.failed(&config, SessionId::new(), at(1), 2, None),
            None
        );
    }

    #[test]
    fn no_new_hold_starts_while_one_holds_and_one_does_when_it_ended() {
        let config = config();
        let mut storm = Storm::default();
        let first = (0..3)
            .filter_map(|s| storm.failed(&config, SessionId::new(), at(s), 3, None))
            .next_back()
            .expect("three of three");
        assert_eq!(
            storm.failed(&config, SessionId::new(), at(5), 4, Some(&first)),
            None
        );
        let ended = SendingHold {
            until: at(6),
            ..first
        };
        assert!(
            storm
                .failed(&config, SessionId::new(), at(7), 5, Some(&ended))
                .is_some()
        );
    }
}
