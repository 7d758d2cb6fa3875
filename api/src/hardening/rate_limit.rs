//! Rate limiting with `governor`: a budget per client address and one per
//! credential, each `n` requests a minute (GCRA: a burst of `n`, then one
//! every `60/n` seconds). Over budget: 429 `rate_limited` with
//! `Retry-After`. Health, readiness and metrics are never limited (probes
//! and scrapers must get through), nor are the drivers' webhooks under
//! `/hooks/`: they prove themselves with a signature, and a gateway
//! delivering a campaign's receipts sends bursts from one address that
//! must not be dropped.
//!
//! The client address is the connection's peer (`ConnectInfo`):
//! `X-Forwarded-For` is not trusted. IPv6 clients are limited per /64, the
//! block one subscriber usually holds. The credential is the
//! `Authorization` or `X-Api-Key` header, kept only as a digest; it is
//! counted whether or not it turns out valid, after the address's budget,
//! so made-up credentials do not get around the address's limit.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::auth::API_KEY_HEADER;
use crate::{ApiError, ErrorCode};

/// Paths never limited.
const EXEMPT: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// How often idle keys are forgotten.
const UPKEEP_EVERY: Duration = Duration::from_secs(60);

/// The two budgets of a running API.
pub struct RateLimits {
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_credential: Option<DefaultKeyedRateLimiter<[u8; 16]>>,
    clock: DefaultClock,
    started: Instant,
    /// Milliseconds after `started` when idle keys are next forgotten.
    next_upkeep: AtomicU64,
}

impl RateLimits {
    /// Budgets of requests per minute; 0 means no limit.
    pub fn new(per_address: u32, per_credential: u32) -> Arc<Self> {
        Arc::new(Self {
            per_address: NonZeroU32::new(per_address)
                .map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            per_credential: NonZeroU32::new(per_credential)
                .map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            clock: DefaultClock::default(),
            started: Instant::now(),
            next_upkeep: AtomicU64::new(millis(UPKEEP_EVERY)),
        })
    }

    /// Takes one request from each budget that applies; when one is
    /// spent, how long until the next request would be allowed.
    pub fn check(
        &self,
        address: Option<IpAddr>,
        credential: Option<[u8; 16]>,
    ) -> Result<(), Duration> {
        self.upkeep();
        if let (Some(limiter), Some(address)) = (&self.per_address, address) {
            limiter
                .check_key(&address_key(address))
                .map_err(|not_until| not_until.wait_time_from(self.clock.now()))?;
        }
        if let (Some(limiter), Some(credential)) = (&self.per_credential, credential) {
            limiter
                .check_key(&credential)
                .map_err(|not_until| not_until.wait_time_from(self.clock.now()))?;
        }
        Ok(())
    }

    /// Keys tracked (both budgets).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.per_address.as_ref().map_or(0, |l| l.len())
            + self.per_credential.as_ref().map_or(0, |l| l.len())
    }

    /// Whether no key is tracked.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets keys whose budget is full again (they would behave the same
    /// as new ones), once a minute, on whichever request comes first: the
    /// memory held is bounded by the clients of the last minute.
    fn upkeep(&self) {
        let now = millis(self.started.elapsed());
        let due = self.next_upkeep.load(Ordering::Relaxed);
        if now < due
            || self
                .next_upkeep
                .compare_exchange(
                    due,
                    now + millis(UPKEEP_EVERY),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        self.forget_idle();
    }

    /// Forgets keys whose budget is full again.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.per_address {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.per_credential {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// IPv4 as is; IPv6 by its /64.
fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

/// A digest of the request's credential, if it carries one.
fn credential(headers: &HeaderMap) -> Option<[u8; 16]> {
    let value = headers
        .get(header::AUTHORIZATION)
        .or_else(|| headers.get(API_KEY_HEADER))?;
    let digest = Sha256::digest(value.as_bytes());
    let mut key = [0; 16];
    key.copy_from_slice(&digest[..16]);
    Some(key)
}

/// The middleware: 429 when a budget is spent.
pub async fn enforce(
    State(limits): State<Arc<RateLimits>>,
    request: Request,
    next: Next,
) -> Response {
    if !applies_to(request.uri().path()) {
        return next.run(request).await;
    }
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    match limits.check(address, credential(request.headers())) {
        Ok(()) => next.run(request).await,
        Err(wait) => too_many(wait),
    }
}

/// Whether requests to `path` are limited: all but probes, scrapes and the
/// drivers' webhooks.
pub fn applies_to(path: &str) -> bool {
    !EXEMPT.contains(&path) && !path.starts_with("/hooks/")
}

fn too_many(wait: Duration) -> Response {
    // Whole seconds, rounded up: a client waiting this long gets through.
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let mut response = ApiError::new(
        ErrorCode::RateLimited,
        format!("too many requests; try again in {seconds} s"),
    )
    .with_details(json!({"retry_after_seconds": seconds}))
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    #[test]
    fn a_spent_budget_says_how_long_to_wait_and_others_are_untouched() {
        let limits = RateLimits::new(3, 1000);
        let me: IpAddr = [10, 0, 0, 1].into();
        let you: IpAddr = [10, 0, 0, 2].into();
        for _ in 0..3 {
            assert_eq!(limits.check(Some(me), None), Ok(()));
        }

        let wait = limits.check(Some(me), None).unwrap_err();

        // 3 a minute: the next one in about 20 s.
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert_eq!(limits.check(Some(you), None), Ok(()));
    }

    #[test]
    fn credentials_have_budgets_of_their_own() {
        let limits = RateLimits::new(1000, 2);
        let address: IpAddr = [10, 0, 0, 1].into();
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        let a = credential(&headers);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        let b = credential(&headers);
        assert_ne!(a, b);

        assert_eq!(limits.check(Some(address), a), Ok(()));
        assert_eq!(limits.check(Some(address), a), Ok(()));
        assert!(limits.check(Some(address), a).is_err());
        assert_eq!(limits.check(Some(address), b), Ok(()));
        // Without a credential only the address counts.
        assert_eq!(limits.check(Some(address), None), Ok(()));
    }

    #[test]
    fn ipv6_clients_share_their_64_block() {
        let one: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let two: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(one.into()), address_key(two.into()));
        assert_ne!(address_key(one.into()), address_key(other.into()));
        let mapped: Ipv6Addr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_key(mapped.into()), IpAddr::from([10, 0, 0, 1]));
    }

    #[test]
    fn idle_keys_are_forgotten() {
        let limits = RateLimits::new(6000, 6000);
        for n in 0..50u8 {
            limits
                .check(Some([10, 0, 0, n].into()), Some([n; 16]))
                .unwrap();
        }
        assert_eq!(limits.len(), 100);
        // 100 a second: a spent cell is back after 10 ms.
        std::thread::sleep(Duration::from_millis(30));

        limits.forget_idle();

        assert!(limits.is_empty());
    }

    #[test]
    fn zero_means_unlimited() {
        let limits = RateLimits::new(0, 0);
        for _ in 0..10_000 {
            assert_eq!(
                limits.check(Some([10, 0, 0, 1].into()), Some([1; 16])),
                Ok(())
            );
        }
    }
}
