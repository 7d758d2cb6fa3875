//! The `whatsapp-rust` client on our PostgreSQL key store, against the
//! in-process fake WhatsApp server (`wablast_tests::native_fake`, which
//! speaks the real Noise XX handshake with the crate's own protocol types,
//! then `<pair-device>` with its refs for a new device, a `<failure>` for a
//! linked one).
//!
//! What this proves: the crate accepts our `Backend` (it creates its
//! device in it, reads it back to build the QR codes and to log in),
//! completes a real Noise handshake over our transport, shows a QR code
//! that carries the server's ref and the identity stored in PostgreSQL (the
//! same identity after a restart), logs a linked device in as the number
//! stored, and reports a 401 as logged out and a 402 as a temporary ban.
//! What it cannot: that WhatsApp's servers answer as this fake does (its
//! certificate chain is a test one, accepted only because the tests build
//! the crate with `danger-skip-cert-chain-verify`).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use sqlx::PgPool;
use tokio::sync::mpsc;
use wablast_domain::session::Fence;
use wablast_domain::types::SessionId;
use wablast_session_engine::native::store::KeyStore;
use wablast_tests::TestDatabase;
use wablast_tests::native_fake::{FakeWhatsApp, ToFake, public};
use wablast_workflows::credentials::SecretKey;
use wacore::store::traits::DeviceStore;
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::types::events::{ConnectFailureReason, Event, TempBanReason};

struct Qr {
    code: String,
    timeout: Duration,
}

/// Starts a client on `store`, connected to `server`; its events come out
/// of the returned channel.
async fn client(
    store: KeyStore,
    server: Arc<FakeWhatsApp>,
) -> (BotHandle, mpsc::UnboundedReceiver<Arc<Event>>) {
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let bot = Bot::builder()
        .with_backend(store)
        .with_transport_factory(ToFake { server })
        // No version fetch: nothing here reaches WhatsApp.
        .with_version((2, 3000, 1_000_000_000))
        .skip_history_sync()
        .on_event(move |event, _client| {
            let _ = events_tx.send(event);
            async {}
        })
        .build()
        .await
        .expect("a client on the PostgreSQL key store");
    (bot.spawn(), events_rx)
}

/// The first event `pick` accepts, within 20 s.
async fn next_event<T>(
    events: &mut mpsc::UnboundedReceiver<Arc<Event>>,
    pick: impl Fn(&Event) -> Option<T>,
) -> T {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let event = events.recv().await.expect("the client runs");
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    })
    .await
    .expect("the event within 20 s")
}

async fn next_qr(events: &mut mpsc::UnboundedReceiver<Arc<Event>>) -> Qr {
    next_event(events, |event| match event {
        Event::PairingQrCode(qr) => Some(Qr {
            code: qr.code.clone(),
            timeout: qr.timeout,
        }),
        _ => None,
    })
    .await
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn a_new_device_on_the_postgres_store_shows_the_servers_qr_refs_with_its_stored_identity() {
    // Arrange
    let database = TestDatabase::create().await;
    let pool = PgPool::connect(&database.url).await.expect("PostgreSQL");
    wablast_migrations::run(&pool).await.expect("migrations");
    let session = SessionId::new();
    let fence = Fence {
        epoch: 1,
        revision: 1,
    };
    let key = SecretKey::new([4; 32]);
    let store = KeyStore::open(pool.clone(), &key, session, fence)
        .await
        .unwrap();
    let server = FakeWhatsApp::new(&["2@first-ref", "2@second-ref"]);

    // Act
    let (handle, mut qrs) = client(store.clone(), server.clone()).await;
    let first = next_qr(&mut qrs).await;

    // Assert: the first ref, for 60 s, with the device stored in PostgreSQL.
    let device = store
        .load()
        .await
        .unwrap()
        .expect("the client created its device");
    let fields: Vec<&str> = first.code.split(',').collect();
    assert_eq!(fields[0], "2@first-ref", "{}", first.code);
    assert_eq!(fields[1], b64(&public(&device.noise_key)));
    assert_eq!(fields[2], b64(&public(&device.identity_key)));
    assert_eq!(fields[3], b64(&device.adv_secret_key));
    assert!(
        first.timeout > Duration::from_secs(50) && first.timeout <= Duration::from_secs(60),
        "{:?}",
        first.timeout
    );
    handle.abort();

    // A second client on the same keys (an engine restarted) shows the
    // same identity.
    let store = KeyStore::open(pool.clone(), &key, session, fence)
        .await
        .unwrap();
    let (handle, mut qrs) = client(store, server).await;
    let again = next_qr(&mut qrs).await;
    let again: Vec<&str> = again.code.split(',').collect();
    assert_eq!(again[2], fields[2], "the same identity key");
    assert_eq!(again[1], fields[1], "the same noise key");
    handle.abort();
}

/// The resident set of this process, in bytes (Linux `/proc`).
pub(crate) fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("a VmRSS line")
        * 1024
}

/// Memory per native client: `NATIVE_SESSIONS` (default 1,000) clients,
/// each on its own session's key store, connected to the fake server and
/// showing a QR code. Prints the figure; fails over 1 MB a client (the
/// issue's target). Ignored by default (a minute of a 2-core machine):
/// `cargo test -p wablast-session-engine --test main -- --ignored
/// native_fake_server::memory --nocapture`. It measures the crate's client
/// and our store in this test binary (glibc malloc, debug build), not a
/// whole engine process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run it explicitly"]
async fn memory_per_connected_client_showing_a_qr() {
    let sessions: usize = std::env::var("NATIVE_SESSIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let database = TestDatabase::create().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(120))
        .connect(&database.url)
        .await
        .expect("PostgreSQL");
    wablast_migrations::run(&pool).await.expect("migrations");
    let key = SecretKey::new([4; 32]);
    let server = FakeWhatsApp::new(&["2@ref"]);
    let fence = Fence {
        epoch: 1,
        revision: 1,
    };
    // One client first, so code and the runtime's one-off allocations are
    // in the baseline.
    let warm = KeyStore::open(pool.clone(), &key, SessionId::new(), fence)
        .await
        .unwrap();
    let (warm_handle, mut warm_qrs) = client(warm, server.clone()).await;
    next_qr(&mut warm_qrs).await;
    let before = rss_bytes();

    let started = std::time::Instant::now();
    let mut clients = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        let store = KeyStore::open(pool.clone(), &key, SessionId::new(), fence)
            .await
            .unwrap();
        clients.push(client(store, server.clone()).await);
    }
    for (_, events) in &mut clients {
        next_qr(events).await;
    }
    let after = rss_bytes();
    let per_client = after.saturating_sub(before) / sessions as u64;
    println!(
        "{sessions} native clients showing a QR: RSS {} MiB -> {} MiB, {} KiB per client, all up in {:.1} s",
        before / (1 << 20),
        after / (1 << 20),
        per_client / 1024,
        started.elapsed().as_secs_f64()
    );
    assert!(
        per_client < 1 << 20,
        "{per_client} bytes per client: over the 1 MB target"
    );
    for (handle, _) in clients {
        handle.abort();
    }
    warm_handle.abort();
}

/// A linked device: its store holds a device with a number.
async fn linked_store(pool: &PgPool, key: &SecretKey) -> KeyStore {
    let store = KeyStore::open(
        pool.clone(),
        key,
        SessionId::new(),
        Fence {
            epoch: 1,
            revision: 1,
        },
    )
    .await
    .unwrap();
    store.create().await.unwrap();
    let mut device = store.load().await.unwrap().unwrap();
    device.pn = Some("6281234567001@s.whatsapp.net".parse().unwrap());
    store.save(&device).await.unwrap();
    store
}

#[tokio::test]
async fn a_linked_device_refused_with_401_is_logged_out() {
    let database = TestDatabase::create().await;
    let pool = PgPool::connect(&database.url).await.expect("PostgreSQL");
    wablast_migrations::run(&pool).await.expect("migrations");
    let key = SecretKey::new([4; 32]);
    let store = linked_store(&pool, &key).await;
    let server = FakeWhatsApp::refusing_logins(&[("reason", "401"), ("location", "rva")]);

    let (handle, mut events) = client(store, server.clone()).await;
    let logged_out = next_event(&mut events, |event| match event {
        Event::LoggedOut(out) => Some((out.on_connect, out.reason)),
        _ => None,
    })
    .await;

    assert_eq!(
        *server.logins.lock().unwrap(),
        [6_281_234_567_001],
        "the client logged in as the number stored in PostgreSQL"
    );
    assert!(logged_out.0, "refused at connect");
    assert_eq!(logged_out.1, ConnectFailureReason::LoggedOut);
    handle.abort();
}

#[tokio::test]
async fn a_linked_device_refused_with_402_is_temporarily_banned() {
    let database = TestDatabase::create().await;
    let pool = PgPool::connect(&database.url).await.expect("PostgreSQL");
    wablast_migrations::run(&pool).await.expect("migrations");
    let key = SecretKey::new([4; 32]);
    let store = linked_store(&pool, &key).await;
    let server =
        FakeWhatsApp::refusing_logins(&[("reason", "402"), ("code", "101"), ("expire", "3600")]);

    let (handle, mut events) = client(store, server).await;
    let (code, expire) = next_event(&mut events, |event| match event {
        Event::TemporaryBan(ban) => Some((ban.code.clone(), ban.expire)),
        _ => None,
    })
    .await;

    assert_eq!(code, TempBanReason::SentToTooManyPeople);
    assert_eq!(expire, chrono::Duration::seconds(3600));
    handle.abort();
}
