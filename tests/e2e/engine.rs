//! Session engines sharing sessions: one dies, another takes its sessions
//! over within the lease's TTL and carries on where the log says they were.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use wablast_session_engine::engine::Engine;
use wablast_tests::wait_for as until;

use crate::app::TestApp;

/// Who holds the session's lease now.
async fn lease_holder(app: &TestApp, session: &str) -> Option<String> {
    let client = async_nats::connect(&app.settings.nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let store = js
        .get_key_value(format!("{}_SESSION_LEASES", app.prefix))
        .await
        .ok()?;
    let entry = store.get(session).await.ok()??;
    let holder: serde_json::Value = serde_json::from_slice(&entry).unwrap();
    holder["engine"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_engines_session_is_taken_over_within_the_ttl() {
    let app = TestApp::spawn_with(|settings| settings.lease_ttl_seconds = 3).await;
    let engine = |id: &str| {
        let mut config = app.settings.engine().expect("engine settings");
        config.engine_id = id.to_owned();
        config
    };

    // Engine A on a runtime of its own: dropping the runtime is the
    // engine's process dying (nothing released, nothing said).
    let runtime_a = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (settings, config_a) = (app.settings.clone(), engine("engine-a"));
    runtime_a.spawn(async move {
        wablast::run_engine_with(&settings, config_a, CancellationToken::new()).await
    });

    let budi = app.tenant("Toko Budi").await;
    let (status, session) = budi
        .post(
            "/api/v1/sessions",
            json!({"name": "CS", "driver": "simulator"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let id = session["id"].as_str().unwrap().to_owned();
    let (status, _) = budi
        .post(&format!("/api/v1/sessions/{id}/start"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let scan = format!("/api/v1/sessions/{id}/simulator/scan");
    until("the scan", Duration::from_secs(20), async || {
        let (status, _) = budi
            .post(&scan, json!({"phone_number": "+6281299990000"}))
            .await;
        (status == StatusCode::ACCEPTED).then_some(())
    })
    .await;
    until("ready", Duration::from_secs(20), async || {
        let (_, s) = budi.get(&format!("/api/v1/sessions/{id}")).await;
        (s["status"] == "ready").then_some(())
    })
    .await;
    assert_eq!(lease_holder(&app, &id).await.as_deref(), Some("engine-a"));
    let (_, s) = budi.get(&format!("/api/v1/sessions/{id}")).await;
    assert_eq!(
        (s["engine_id"].as_str(), s["engine_lost"].as_bool()),
        (Some("engine-a"), Some(false)),
        "the session says which engine runs it: {s}"
    );

    // Engine B joins; A holds the session, so B leaves it alone.
    let stop_b = CancellationToken::new();
    let (settings, config_b, stop) = (app.settings.clone(), engine("engine-b"), stop_b.clone());
    let engine_b =
        tokio::spawn(async move { wablast::run_engine_with(&settings, config_b, stop).await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(lease_holder(&app, &id).await.as_deref(), Some("engine-a"));

    // A dies.
    let died = Instant::now();
    runtime_a.shutdown_background();
    until("the takeover", Duration::from_secs(15), async || {
        (lease_holder(&app, &id).await.as_deref() == Some("engine-b")).then_some(())
    })
    .await;
    let took = died.elapsed();
    assert!(
        took < Duration::from_secs(3 + 2 + 2),
        "taken over after {took:?}"
    );

    // B runs it: still ready on the same number, and B answers for it.
    let s = until("B shown running it", Duration::from_secs(10), async || {
        let (_, s) = budi.get(&format!("/api/v1/sessions/{id}")).await;
        (s["engine_id"] == "engine-b").then_some(s)
    })
    .await;
    assert_eq!(
        (
            s["status"].as_str(),
            s["phone_number"].as_str(),
            s["engine_lost"].as_bool()
        ),
        (Some("ready"), Some("+6281299990000"), Some(false))
    );
    let inbound = format!("/api/v1/sessions/{id}/simulator/inbound");
    let (status, body) = budi
        .post(
            &inbound,
            json!({"from": "+6281311112222", "text": "stok ada?"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    stop_b.cancel();
    engine_b.await.unwrap().unwrap();
    assert_eq!(
        lease_holder(&app, &id).await,
        None,
        "a clean stop gives the lease up"
    );
    // No engine left: the session says its engine is lost, not `ready` as
    // if nothing happened.
    let (_, s) = budi.get(&format!("/api/v1/sessions/{id}")).await;
    assert_eq!(
        (
            s["status"].as_str(),
            s["engine_id"].as_str(),
            s["engine_lost"].as_bool()
        ),
        (Some("ready"), Some("engine-b"), Some(true)),
        "{s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_connection_drops_reconnects_by_itself() {
    let app = TestApp::spawn_with(|settings| settings.lease_ttl_seconds = 5).await;
    let log = wablast::open_event_log(&app.settings).await.unwrap();
    let db = wablast::database_pool(&app.settings).unwrap();
    let engine = Engine::new(
        app.settings.engine().expect("engine settings"),
        log.jetstream().client(),
        log,
        db.clone(),
    )
    .await
    .unwrap();
    let stop = CancellationToken::new();
    let running = tokio::spawn(engine.clone().run(stop.clone()));

    let budi = app.tenant("Toko Budi").await;
    let (status, session) = budi
        .post(
            "/api/v1/sessions",
            json!({"name": "CS", "driver": "simulator"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let id = session["id"].as_str().unwrap().to_owned();
    budi.post(&format!("/api/v1/sessions/{id}/start"), json!({}))
        .await;
    let scan = format!("/api/v1/sessions/{id}/simulator/scan");
    until("the scan", Duration::from_secs(20), async || {
        let (status, _) = budi
            .post(&scan, json!({"phone_number": "+6281299990000"}))
            .await;
        (status == StatusCode::ACCEPTED).then_some(())
    })
    .await;
    let status_changes = async || -> i64 {
        sqlx::query_scalar(
            "select count(*) from event_index
             where aggregate_id = $1 and event_type = 'SessionStatusChanged'",
        )
        .bind(&id)
        .fetch_one(&db)
        .await
        .unwrap()
    };
    until("ready", Duration::from_secs(20), async || {
        let (_, s) = budi.get(&format!("/api/v1/sessions/{id}")).await;
        (s["status"] == "ready").then_some(())
    })
    .await;
    let before = status_changes().await;

    // The connection drops: disconnected, then the engine starts the
    // driver again and the session is ready on the same number.
    engine
        .network()
        .disconnect(id.parse().unwrap())
        .expect("a ready session can drop");
    until("the reconnection", Duration::from_secs(20), async || {
        let (_, s) = budi.get(&format!("/api/v1/sessions/{id}")).await;
        (s["status"] == "ready" && status_changes().await >= before + 3).then_some(s)
    })
    .await;
    let (_, s) = budi.get(&format!("/api/v1/sessions/{id}")).await;
    assert_eq!(s["phone_number"], "+6281299990000");

    stop.cancel();
    running.await.unwrap().unwrap();
}

/// Stop keeps a linked number linked (no new QR at the next start); only a
/// logout forgets the link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_session_starts_again_without_a_new_scan_and_a_logout_forgets_the_link() {
    let app = TestApp::spawn_with_engine().await;
    let budi = app.tenant("Toko Budi").await;
    let (status, session) = budi
        .post(
            "/api/v1/sessions",
            json!({"name": "CS", "driver": "simulator"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let id = session["id"].as_str().unwrap().to_owned();
    let session_path = format!("/api/v1/sessions/{id}");
    let status_is = |want: &'static str| {
        let (budi, path) = (&budi, &session_path);
        async move {
            until(want, Duration::from_secs(20), async || {
                let (_, s) = budi.get(path).await;
                (s["status"] == want).then_some(())
            })
            .await;
        }
    };

    let (status, _) = budi.post(&format!("{session_path}/start"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    status_is("qr").await;
    let (status, body) = budi
        .post(
            &format!("{session_path}/simulator/scan"),
            json!({"phone_number": "+6281299990000"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    status_is("ready").await;

    let (status, _) = budi.post(&format!("{session_path}/stop"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    status_is("idle").await;
    let (status, _) = budi.post(&format!("{session_path}/start"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    status_is("ready").await;
    let (_, s) = budi.get(&session_path).await;
    assert_eq!(s["phone_number"], "+6281299990000", "{s}");

    let (status, _) = budi
        .post(&format!("{session_path}/logout"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    status_is("logged_out").await;
    let (status, _) = budi.post(&format!("{session_path}/start"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    status_is("qr").await;
}
