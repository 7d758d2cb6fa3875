//! Session leases and engine heartbeats on the real NATS JetStream.

use std::time::{Duration, Instant};

use chrono::Utc;
use wablast_eventstore::Prefix;
use wablast_session_engine::lease::{EngineInfo, EngineRegistry, SessionLeases};
use wablast_tests::{delete_streams, nats_url, unique_prefix};

struct Nats {
    js: async_nats::jetstream::Context,
    prefix: String,
}

impl Nats {
    async fn connect() -> Self {
        let client = async_nats::connect(nats_url()).await.expect("NATS is up");
        Self {
            js: async_nats::jetstream::new(client),
            prefix: unique_prefix(),
        }
    }

    fn prefix(&self) -> Prefix {
        Prefix::parse(&self.prefix).unwrap()
    }

    async fn leases(&self, engine: &str, ttl: Duration) -> SessionLeases {
        SessionLeases::open(&self.js, &self.prefix(), engine, ttl)
            .await
            .expect("lease bucket")
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        delete_streams(&nats_url(), &self.prefix);
    }
}

#[tokio::test]
async fn one_engine_at_a_time_holds_a_session() {
    let nats = Nats::connect().await;
    let a = nats.leases("engine-a", Duration::from_secs(30)).await;
    let b = nats.leases("engine-b", Duration::from_secs(30)).await;

    let mut lease = a.acquire("s1").await.unwrap().expect("free: a takes it");
    assert_eq!(b.acquire("s1").await.unwrap(), None, "held by a");
    assert!(a.renew(&mut lease).await.unwrap());
    assert_eq!(b.acquire("s1").await.unwrap(), None, "still held by a");
    let (holder, _) = b.current("s1").await.unwrap().expect("a holds it");
    assert_eq!(holder.engine, "engine-a");

    // Another session is independent.
    assert!(b.acquire("s2").await.unwrap().is_some());

    a.release(lease).await.unwrap();
    assert_eq!(a.current("s1").await.unwrap(), None);
    let taken = b.acquire("s1").await.unwrap();
    assert!(taken.is_some(), "released: b takes it at once");
}

#[tokio::test]
async fn a_restarted_engine_takes_its_own_leases_back() {
    let nats = Nats::connect().await;
    let before = nats.leases("engine-a", Duration::from_secs(30)).await;
    before.acquire("s1").await.unwrap().expect("taken");

    let after = nats.leases("engine-a", Duration::from_secs(30)).await;
    let mut lease = after.acquire("s1").await.unwrap().expect("its own lease");
    assert!(after.renew(&mut lease).await.unwrap());
}

#[tokio::test]
async fn a_lease_not_renewed_expires_and_another_engine_takes_over() {
    let nats = Nats::connect().await;
    let ttl = Duration::from_secs(2);
    let dead = nats.leases("engine-dead", ttl).await;
    let alive = nats.leases("engine-alive", ttl).await;
    let mut stale = dead.acquire("s1").await.unwrap().expect("taken");

    // engine-dead stops renewing; engine-alive keeps trying.
    let started = Instant::now();
    let mut taken = None;
    while taken.is_none() {
        assert!(started.elapsed() < ttl * 5, "the lease never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
        taken = alive.acquire("s1").await.unwrap();
    }
    assert!(
        started.elapsed() >= ttl / 2,
        "taken over too early: {:?}",
        started.elapsed()
    );

    // The stalled engine learns it lost the lease at its next renewal.
    assert!(!dead.renew(&mut stale).await.unwrap());
    let (holder, _) = dead.current("s1").await.unwrap().expect("held");
    assert_eq!(holder.engine, "engine-alive");
    // Releasing a lost lease leaves the new holder alone.
    dead.release(stale).await.unwrap();
    assert!(alive.current("s1").await.unwrap().is_some());
}

#[tokio::test]
async fn engines_are_alive_while_they_beat() {
    let nats = Nats::connect().await;
    let ttl = Duration::from_secs(2);
    let registry = EngineRegistry::open(&nats.js, &nats.prefix(), ttl)
        .await
        .unwrap();
    let info = |engine: &str| EngineInfo {
        engine: engine.to_owned(),
        started_at: Utc::now(),
        heartbeat_at: Utc::now(),
        sessions: 3,
    };
    registry.heartbeat(&info("e1")).await.unwrap();
    registry.heartbeat(&info("e2")).await.unwrap();
    let live: Vec<String> = registry
        .live()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.engine)
        .collect();
    assert_eq!(live, ["e1", "e2"]);

    registry.leave("e1").await.unwrap();
    // e2 stops beating: it is gone after the TTL.
    let started = Instant::now();
    loop {
        let live = registry.live().await.unwrap();
        if live.is_empty() {
            break;
        }
        assert_eq!(live.len(), 1);
        assert!(started.elapsed() < ttl * 5, "e2 never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
