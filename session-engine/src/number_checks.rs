//! Number checks ("is this number on WhatsApp?") at a session's own pace,
//! apart from its sends: asking WhatsApp about many numbers quickly is what
//! gets a number banned, so each session asks at most once per interval,
//! with a random delay on top.

use std::time::Duration;

use chrono::Utc;
use governor::{DefaultDirectRateLimiter, Jitter, Quota, RateLimiter};
use tokio::time::Instant;
use wablast_workflows::control::{CheckNumbersRequest, CheckNumbersResponse, NumberChecked};

use crate::driver::{Driver, DriverError};

/// The longest a check request may take, whatever it asks.
pub const MAX_WITHIN: Duration = Duration::from_secs(30);

/// One session's pace of checks.
#[derive(Debug)]
pub struct Pace {
    limiter: DefaultDirectRateLimiter,
    jitter: Jitter,
}

impl Pace {
    /// At most one check per `every` (at least 1 ms), each delayed by up
    /// to half of `every` more.
    pub fn new(every: Duration) -> Self {
        let every = every.max(Duration::from_millis(1));
        let quota = Quota::with_period(every).expect("a period of at least 1 ms");
        Self {
            limiter: RateLimiter::direct(quota),
            jitter: Jitter::up_to(every / 2),
        }
    }

    /// Asks about each number in order, at this pace, until the request's
    /// time is up: those not reached are left out. A driver failure before
    /// any answer is the request's; after some, the answers so far are
    /// given.
    pub async fn check(
        &self,
        driver: &dyn Driver,
        request: CheckNumbersRequest,
    ) -> Result<CheckNumbersResponse, DriverError> {
        let within = Duration::from_millis(request.within_ms).min(MAX_WITHIN);
        let deadline = Instant::now() + within;
        let mut checked = Vec::with_capacity(request.phones.len());
        for phone in request.phones {
            let turn = self.limiter.until_ready_with_jitter(self.jitter);
            if tokio::time::timeout_at(deadline, turn).await.is_err() {
                break;
            }
            match driver.check_number(&phone).await {
                Ok(on_whatsapp) => checked.push(NumberChecked {
                    chat_id: on_whatsapp.then(|| phone.whatsapp_chat_id()),
                    phone,
                    on_whatsapp,
                    checked_at: Utc::now(),
                }),
                Err(err) if checked.is_empty() => return Err(err),
                Err(err) => {
                    tracing::info!(error = %err, "number checks stopped midway");
                    break;
                }
            }
        }
        Ok(CheckNumbersResponse { checked })
    }
}

#[cfg(test)]
mod tests {
    use wablast_domain::session::SessionStatus;
    use wablast_domain::types::SessionId;
    use wablast_domain::types::phone::Phone;

    use super::*;
    use crate::driver::DriverEvent;
    use crate::simulator::{SimulatorConfig, SimulatorNetwork};

    #[tokio::test]
    async fn checks_keep_their_pace_and_stop_when_the_time_is_up() {
        let network = SimulatorNetwork::new(SimulatorConfig::default());
        let mut connection =
            network.connect(SessionId::new(), Some("+6281299993001".parse().unwrap()));
        connection.driver.start().await.unwrap();
        while let Some(event) = connection.events.recv().await {
            if matches!(&event, DriverEvent::Status(s) if s.status == SessionStatus::Ready) {
                break;
            }
        }
        let driver = &*connection.driver;
        let phones: Vec<Phone> = (0..10)
            .map(|i| format!("+62812000030{i:02}").parse().unwrap())
            .collect();
        let pace = Pace::new(Duration::from_millis(200));
        let started = std::time::Instant::now();
        let answer = pace
            .check(
                driver,
                CheckNumbersRequest {
                    phones: phones.clone(),
                    within_ms: 700,
                },
            )
            .await
            .unwrap();
        let elapsed = started.elapsed();
        // The first at once, then one per 200 ms (plus up to 100 ms): at
        // most 4 within 700 ms, and at least 3.
        assert!(
            (3..=4).contains(&answer.checked.len()),
            "{} checked",
            answer.checked.len()
        );
        assert!(elapsed < Duration::from_millis(900), "{elapsed:?}");
        assert_eq!(answer.checked[0].phone, phones[0]);
        assert_eq!(answer.checked[1].phone, phones[1]);
    }
}
