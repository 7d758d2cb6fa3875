//! Session leases and engine heartbeats on the real NATS JetStream.

use std::time::{Duration, Instant};

use chrono::Utc;
use wablast_eventstore::Prefix;
use wablast_session_engine::lease::{EngineInfo, EngineRegistry, Lease, Renewal, SessionLeases};
use wablast_tests::{PrivateNats, delete_streams, nats_url, unique_prefix};

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
    assert!(b.acquire("s1").await.unwrap().is_none(), "held by a");
    assert!(matches!(a.renew(&mut lease).await, Renewal::Renewed));
    assert!(b.acquire("s1").await.unwrap().is_none(), "still held by a");
    let (holder, _) = b.current("s1").await.unwrap().expect("a holds it");
    assert_eq!(holder.engine, "engine-a");

    // Another session is independent.
    assert!(b.acquire("s2").await.unwrap().is_some());

    let lease_fence = lease.fence();
    let hold = lease.hold();
    a.release(lease).await.unwrap();
    assert!(!hold.is_held(), "released: nothing runs on it any more");
    assert_eq!(a.current("s1").await.unwrap(), None);
    let taken = b.acquire("s1").await.unwrap();
    let taken = taken.expect("released: b takes it at once");
    assert!(
        taken.fence() > lease_fence,
        "a later holder has a later fence"
    );
}

#[tokio::test]
async fn a_restarted_engine_takes_its_own_leases_back() {
    let nats = Nats::connect().await;
    let before = nats.leases("engine-a", Duration::from_secs(30)).await;
    before.acquire("s1").await.unwrap().expect("taken");

    let after = nats.leases("engine-a", Duration::from_secs(30)).await;
    let mut lease = after.acquire("s1").await.unwrap().expect("its own lease");
    assert!(matches!(after.renew(&mut lease).await, Renewal::Renewed));
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
    let stale_hold = stale.hold();
    assert!(
        !stale_hold.is_held(),
        "unrenewed past its TTL: not surely held"
    );
    match dead.renew(&mut stale).await {
        Renewal::Lost { holder } => assert_eq!(holder.as_deref(), Some("engine-alive")),
        other => panic!("the stalled engine lost its lease, renewal said {other:?}"),
    }
    assert!(taken.as_ref().unwrap().fence() > stale.fence());
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
        host: "host-1".to_owned(),
        version: "0.1.0".to_owned(),
        sends_per_minute: 0,
        memory_rss_bytes: None,
        draining: false,
        sending_held: None,
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

#[tokio::test]
async fn a_lease_is_surely_held_until_its_ttl_less_a_margin_after_its_last_renewal() {
    let nats = Nats::connect().await;
    let ttl = Duration::from_secs(2);
    let leases = nats.leases("engine-a", ttl).await;
    let mut lease = leases.acquire("s1").await.unwrap().expect("taken");
    let mut hold = lease.hold();
    assert!(hold.is_held());
    tokio::time::sleep(ttl - ttl / 5 + Duration::from_millis(100)).await;
    assert!(
        !hold.is_held(),
        "past the TTL less the margin, no renewal: another engine could take it soon"
    );
    // Still within the TTL: the renewal finds it and it is held again.
    assert!(matches!(leases.renew(&mut lease).await, Renewal::Renewed));
    assert!(hold.is_held());
    assert!(hold.held().await);
    assert_eq!(hold.fence(), lease.fence(), "a renewal keeps the fence");
}

/// Two engines' leases on a nats-server of the test's own, which the test
/// kills and starts again.
struct Private {
    store: tempfile::TempDir,
    server: PrivateNats,
    a: SessionLeases,
    b: SessionLeases,
}

impl Private {
    async fn start(ttl: Duration) -> Self {
        let store = tempfile::tempdir().unwrap();
        let server = PrivateNats::start(store.path(), None);
        let client = async_nats::connect(server.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let prefix = Prefix::parse(&unique_prefix()).unwrap();
        let open = |engine| SessionLeases::open(&js, &prefix, engine, ttl);
        let (a, b) = (
            open("engine-a").await.unwrap(),
            open("engine-b").await.unwrap(),
        );
        Self {
            store,
            server,
            a,
            b,
        }
    }
}

/// Each of `sessions` taken by one engine or the other, racing: which
/// took it, and its lease.
async fn race(
    a: &SessionLeases,
    b: &SessionLeases,
    sessions: &[String],
) -> Vec<(&'static str, Lease)> {
    let mut holders = Vec::new();
    for session in sessions {
        let (x, y) = tokio::join!(a.acquire(session), b.acquire(session));
        let mut taken: Vec<_> = [("engine-a", x.unwrap()), ("engine-b", y.unwrap())]
            .into_iter()
            .filter_map(|(engine, lease)| lease.map(|l| (engine, l)))
            .collect();
        assert_eq!(
            taken.len(),
            1,
            "{session}: exactly one engine takes it, got {taken:?}"
        );
        holders.push(taken.remove(0));
    }
    holders
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_within_the_ttl_keeps_every_lease_with_its_holder() {
    // Long enough for a renewal to go unanswered (NATS requests give up
    // after 5 s) and the server to come back before the leases expire.
    let ttl = Duration::from_secs(12);
    let Private {
        store,
        server,
        a,
        b,
    } = Private::start(ttl).await;
    let sessions: Vec<String> = (0..6).map(|n| format!("s{n}")).collect();
    let mut held = Vec::new();
    for session in &sessions {
        held.push(a.acquire(session).await.unwrap().expect("free"));
    }

    // kill -9, and back on the same port and store a second later.
    let port = server.stop();
    let unanswered = a.renew(&mut held[0]).await;
    assert!(
        matches!(unanswered, Renewal::Unanswered(_)),
        "NATS away: not known, not lost ({unanswered:?})"
    );
    let _server = PrivateNats::start(store.path(), Some(port));
    wablast_tests::wait_for(
        "the client reconnected",
        Duration::from_secs(10),
        async || matches!(a.current("s0").await, Ok(Some(_))).then_some(()),
    )
    .await;

    // Every lease is still a's: renewed, not lost; b takes none.
    for _ in 0..3 {
        for lease in &mut held {
            let renewal = a.renew(lease).await;
            assert!(
                matches!(renewal, Renewal::Renewed),
                "{}: {renewal:?}",
                lease.session
            );
        }
        for session in &sessions {
            assert!(
                b.acquire(session).await.unwrap().is_none(),
                "{session} stays a's"
            );
        }
        tokio::time::sleep(ttl / 3).await;
    }
    for session in &sessions {
        let (holder, _) = b.current(session).await.unwrap().expect("held");
        assert_eq!(holder.engine, "engine-a");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_that_outlasts_the_ttl_each_session_gets_one_holder_that_keeps_it() {
    let ttl = Duration::from_secs(2);
    let Private {
        store,
        server,
        a,
        b,
    } = Private::start(ttl).await;
    let sessions: Vec<String> = (0..8).map(|n| format!("s{n}")).collect();
    let mut before = Vec::new();
    for session in &sessions {
        before.push(a.acquire(session).await.unwrap().expect("free"));
    }

    // Down for longer than the TTL: the leases expire while it is away.
    let port = server.stop();
    tokio::time::sleep(ttl + Duration::from_secs(1)).await;
    let _server = PrivateNats::start(store.path(), Some(port));
    wablast_tests::wait_for(
        "the client reconnected",
        Duration::from_secs(10),
        async || a.current("nothing").await.is_ok().then_some(()),
    )
    .await;
    wablast_tests::wait_for("the leases expired", Duration::from_secs(10), async || {
        let mut gone = true;
        for session in &sessions {
            gone &= a.current(session).await.unwrap().is_none();
        }
        gone.then_some(())
    })
    .await;
    for lease in &mut before {
        let renewal = a.renew(lease).await;
        assert!(
            matches!(renewal, Renewal::Lost { holder: None }),
            "{}: expired, so lost ({renewal:?})",
            lease.session
        );
        assert!(!lease.hold().is_held());
    }

    // Both engines race for every session: one each, with a later fence.
    let mut holders = race(&a, &b, &sessions).await;
    for ((engine, lease), old) in holders.iter().zip(&before) {
        assert!(
            lease.fence() > old.fence(),
            "{engine}: a new holder has a later fence"
        );
    }
    // No flapping: for three TTLs each holder renews and the other engine
    // takes nothing.
    let started = Instant::now();
    while started.elapsed() < ttl * 3 {
        for (engine, lease) in &mut holders {
            let (mine, other) = if *engine == "engine-a" {
                (&a, &b)
            } else {
                (&b, &a)
            };
            let renewal = mine.renew(lease).await;
            assert!(
                matches!(renewal, Renewal::Renewed),
                "{}: {renewal:?}",
                lease.session
            );
            assert!(other.acquire(&lease.session).await.unwrap().is_none());
        }
        tokio::time::sleep(ttl / 3).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_server_that_stops_answering_quiets_the_holder_without_losing_its_lease() {
    // Renewals every 4 s; a renewal NATS does not answer gives up after 5 s.
    let ttl = Duration::from_secs(12);
    let Private {
        store: _store,
        server,
        a,
        b,
    } = Private::start(ttl).await;
    let mut lease = a.acquire("s1").await.unwrap().expect("free");
    let hold = lease.hold();

    // Frozen for 11 s: within the TTL, past the holder's margin (9.6 s).
    server.pause();
    let frozen = Instant::now();
    let unanswered = a.renew(&mut lease).await;
    assert!(
        matches!(unanswered, Renewal::Unanswered(_)),
        "not answered: not known, not lost ({unanswered:?})"
    );
    while frozen.elapsed() < ttl - ttl / 5 + Duration::from_millis(200) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !hold.is_held(),
        "no renewal for the TTL less the margin: the holder is quiet"
    );
    while frozen.elapsed() < Duration::from_secs(11) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.resume();

    // The entry outlived the freeze: the holder keeps it, the other takes
    // nothing.
    let renewal = a.renew(&mut lease).await;
    assert!(matches!(renewal, Renewal::Renewed), "{renewal:?}");
    assert!(hold.is_held(), "renewed: held again");
    assert!(b.acquire("s1").await.unwrap().is_none());
    let (holder, _) = b.current("s1").await.unwrap().expect("held");
    assert_eq!(holder.engine, "engine-a");
}
