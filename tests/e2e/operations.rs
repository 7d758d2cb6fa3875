//! Health, readiness (dependencies and projection lag), metrics, the error
//! shape for unknown paths, the OpenAPI document, request ids.

use std::time::Duration;

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::Value;
use wablast::config::Settings;
use wablast_domain::session::{Driver, LoginMethod, Session, SessionCommand, SessionName};
use wablast_domain::types::{DailyLimit, SessionId, TenantId};
use wablast_eventstore::{Actor, AggregateKey, CommandHandler, CommandMetadata, EventLog};
use wablast_projections::Projector;
use wablast_tests::{PrivateNats, TestDatabase, free_port, unique_prefix, wait_for};

use crate::app::{TestApp, settings};

/// A migrated database and a unique prefix, with settings the test may
/// change before starting the application.
async fn prepared_settings() -> (Settings, TestDatabase) {
    let db = TestDatabase::create().await;
    let settings = settings(&db.url, &wablast_tests::nats_url(), &unique_prefix());
    wablast::migrate(&settings).await.expect("migrations apply");
    (settings, db)
}

/// One commit in the `events` stream (a session created), written through
/// its aggregate as the API will.
async fn append_a_commit(log: &EventLog) {
    let session_id = SessionId::new();
    let key = AggregateKey::new(TenantId::new(), session_id).unwrap();
    CommandHandler::<Session>::new(log.clone(), ())
        .execute(
            &key,
            SessionCommand::CreateSession {
                session_id,
                name: SessionName::parse("CS 1").unwrap(),
                driver: Driver::Simulator,
                login: LoginMethod::Qr,
                phone_number: None,
                daily_limit: Some(DailyLimit::parse(10).unwrap()),
                auto_start: false,
                warm_up: None,
                sessions_in_use: 0,
                plan_max_sessions: 3,
                plan_max_daily_limit: DailyLimit::parse(500).unwrap(),
                at: Utc::now(),
            },
            &CommandMetadata::new(Actor::System),
        )
        .await
        .expect("the session is created");
}

/// Runs every projection up to the end of the log, as the projector would.
async fn catch_up(settings: &Settings, log: &EventLog) {
    let pool = wablast::database_pool(settings).unwrap();
    Projector::new(pool.clone(), log.clone())
        .catch_up()
        .await
        .expect("the projections catch up");
    pool.close().await;
}

async fn metrics_text(app: &TestApp) -> String {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.unwrap()
}

/// The value of the sample `name{labels}` (labels as written, in order).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().expect("a number"))
}

#[tokio::test]
async fn healthz_says_the_process_is_alive() {
    let app = TestApp::spawn().await;

    let response = app.get("/healthz").await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "ok");
}

#[tokio::test]
async fn readyz_is_ready_when_nats_and_postgres_answer() {
    let app = TestApp::spawn().await;

    let response = app.get("/readyz").await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["nats"]["ok"], true);
    assert_eq!(body["checks"]["postgres"]["ok"], true);
    assert_eq!(body["checks"]["projections"]["ok"], true);
}

#[tokio::test]
async fn readyz_is_not_ready_while_postgres_is_unreachable() {
    // Nothing listens on this port.
    let database_url = format!("postgres://postgres@127.0.0.1:{}/wablast", free_port());
    let prefix = unique_prefix();
    let app = TestApp::start(
        settings(&database_url, &wablast_tests::nats_url(), &prefix),
        None,
    )
    .await;

    let response = app.get("/readyz").await;

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["postgres"]["ok"], false);
    assert!(
        body["checks"]["postgres"]["error"]
            .as_str()
            .unwrap()
            .contains("postgres")
    );
    assert_eq!(body["checks"]["nats"]["ok"], true);
    assert_eq!(body["checks"]["projections"]["ok"], false);
    assert!(
        body["checks"]["projections"]["error"]
            .as_str()
            .unwrap()
            .contains("could not be measured")
    );
    // Alive all the same.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn readyz_turns_not_ready_when_nats_goes_away_and_ready_when_it_is_back() {
    let store = tempfile::tempdir().unwrap();
    let nats = PrivateNats::start(store.path(), None);
    let db = TestDatabase::create().await;
    let settings = settings(&db.url, &nats.url(), "ops");
    // Without the query tables the projections' lag cannot be measured.
    wablast::migrate(&settings).await.expect("migrations apply");
    let app = TestApp::start(settings, Some(db)).await;
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);

    let port = nats.stop();

    let body: Value = wait_for("not ready", Duration::from_secs(15), || async {
        let response = app.get("/readyz").await;
        (response.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(())?;
        response.json().await.ok()
    })
    .await;
    assert_eq!(body["checks"]["nats"]["ok"], false);
    assert_eq!(body["checks"]["postgres"]["ok"], true);

    let _nats = PrivateNats::start(store.path(), Some(port));
    wait_for("ready again", Duration::from_secs(30), || async {
        (app.get("/readyz").await.status() == StatusCode::OK).then_some(())
    })
    .await;
}

#[tokio::test]
async fn readyz_is_not_ready_while_projections_are_more_commits_behind_than_allowed() {
    let (mut settings, db) = prepared_settings().await;
    settings.ready_max_lag = 0;
    // No projector runs in a TestApp: the test decides when they catch up.
    let app = TestApp::start(settings.clone(), Some(db)).await;
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    let log = wablast::open_event_log(&settings).await.unwrap();

    append_a_commit(&log).await;

    let response = app.get("/readyz").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["nats"]["ok"], true);
    assert_eq!(body["checks"]["postgres"]["ok"], true);
    assert_eq!(body["checks"]["projections"]["ok"], false);
    let reason = body["checks"]["projections"]["error"].as_str().unwrap();
    assert!(
        reason.contains("projection sessions on stream events: 1 commits behind (max 0)"),
        "{reason}"
    );
    assert!(reason.contains("oldest waiting"), "{reason}");
    // Projections of the messages stream are not behind.
    assert!(!reason.contains("stream messages"), "{reason}");

    catch_up(&settings, &log).await;

    let response = app.get("/readyz").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["projections"]["ok"], true);
}

#[tokio::test]
async fn readyz_is_not_ready_while_a_commit_waits_longer_than_allowed() {
    let (mut settings, db) = prepared_settings().await;
    settings.ready_max_lag = 10_000;
    settings.ready_max_lag_seconds = 1;
    let app = TestApp::start(settings.clone(), Some(db)).await;
    let log = wablast::open_event_log(&settings).await.unwrap();

    append_a_commit(&log).await;

    let reason: String = wait_for("not ready", Duration::from_secs(15), || async {
        let response = app.get("/readyz").await;
        (response.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(())?;
        let body: Value = response.json().await.ok()?;
        Some(body["checks"]["projections"]["error"].as_str()?.to_owned())
    })
    .await;
    assert!(
        reason.contains("projection sessions on stream events: 1 commits behind (max 10000)"),
        "{reason}"
    );
    assert!(reason.contains("(max 1s)"), "{reason}");

    catch_up(&settings, &log).await;

    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn metrics_expose_the_lag_of_every_projection_and_requests_by_route_template() {
    let (settings, db) = prepared_settings().await;
    let app = TestApp::start(settings.clone(), Some(db)).await;
    let log = wablast::open_event_log(&settings).await.unwrap();
    append_a_commit(&log).await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    let id = uuid::Uuid::new_v4();
    // Under /api: other unknown paths are the console's client routes.
    let unknown = format!("/api/v1/no/such/path/{id}");
    assert_eq!(app.get(&unknown).await.status(), StatusCode::NOT_FOUND);
    let session = format!("/api/v1/sessions/{id}");
    assert_eq!(app.get(&session).await.status(), StatusCode::UNAUTHORIZED);

    let text = metrics_text(&app).await;

    assert_eq!(sample(&text, "wablast_projection_lag_up"), Some(1.0));
    for name in wablast_projections::NAMES {
        for gauge in [
            "wablast_projection_lag_commits",
            "wablast_projection_lag_seconds",
            "wablast_projection_checkpoint",
        ] {
            let found = text
                .lines()
                .any(|line| line.starts_with(&format!("{gauge}{{projection=\"{name}\",")));
            assert!(found, "{gauge} of {name} missing in\n{text}");
        }
    }
    let sessions = r#"{projection="sessions",stream="events"}"#;
    assert_eq!(
        sample(&text, &format!("wablast_projection_lag_commits{sessions}")),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, &format!("wablast_projection_checkpoint{sessions}")),
        Some(0.0)
    );
    assert!(sample(&text, &format!("wablast_projection_lag_seconds{sessions}")).unwrap() > 0.0);
    assert_eq!(
        sample(&text, r#"wablast_stream_last_sequence{stream="events"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"wablast_stream_last_sequence{stream="messages"}"#),
        Some(0.0)
    );
    // Requests, by route template; an unknown path is not a label value.
    let requests = |route: &str, status: &str| {
        text.lines().any(|line| {
            line.starts_with("wablast_http_requests_total{")
                && line.contains(r#"method="GET""#)
                && line.contains(&format!(r#"route="{route}""#))
                && line.contains(&format!(r#"status="{status}""#))
        })
    };
    assert!(requests("/healthz", "200"), "{text}");
    assert!(requests("unmatched", "404"), "{text}");
    assert!(requests("/api/v1/sessions/{id}", "401"), "{text}");
    assert!(!text.contains(&id.to_string()), "{text}");
    assert!(
        text.lines().any(
            |line| line.starts_with("wablast_http_request_duration_seconds_bucket{")
                && line.contains(r#"route="/healthz""#)
        ),
        "{text}"
    );

    catch_up(&settings, &log).await;
    let text = metrics_text(&app).await;

    assert_eq!(
        sample(&text, &format!("wablast_projection_lag_commits{sessions}")),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, &format!("wablast_projection_lag_seconds{sessions}")),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, &format!("wablast_projection_checkpoint{sessions}")),
        Some(1.0)
    );
    assert!(requests_total_for(&text, "/metrics") >= 1.0, "{text}");
}

#[tokio::test]
async fn metrics_answer_without_the_lag_while_postgres_is_unreachable() {
    let database_url = format!("postgres://postgres@127.0.0.1:{}/wablast", free_port());
    let app = TestApp::start(
        settings(&database_url, &wablast_tests::nats_url(), &unique_prefix()),
        None,
    )
    .await;

    let text = metrics_text(&app).await;

    assert_eq!(sample(&text, "wablast_projection_lag_up"), Some(0.0));
    assert!(!text.contains("wablast_projection_lag_commits{"), "{text}");
}

/// Requests answered on a route, every method and status together.
fn requests_total_for(text: &str, route: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.starts_with("wablast_http_requests_total{")
                && line.contains(&format!(r#"route="{route}""#))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn an_unknown_path_answers_404_in_the_error_shape() {
    let app = TestApp::spawn().await;

    let response = app.get("/api/v1/no-such-thing").await;

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert!(body["error"]["message"].is_string());
    assert!(body["error"]["details"].is_object());
}

#[tokio::test]
async fn openapi_json_is_served_and_matches_the_checked_in_document() {
    let app = TestApp::spawn().await;

    let response = app.get("/openapi.json").await;

    assert_eq!(response.status(), StatusCode::OK);
    let served: Value = response.json().await.unwrap();
    let checked_in: Value =
        serde_json::from_str(&std::fs::read_to_string(wablast_openapi::path()).unwrap()).unwrap();
    assert_eq!(served, checked_in);
    assert!(served["paths"]["/healthz"]["get"].is_object());
    assert!(served["paths"]["/readyz"]["get"].is_object());
    assert!(served["paths"]["/metrics"]["get"].is_object());
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_the_callers() {
    let app = TestApp::spawn().await;

    let generated = app.get("/healthz").await;
    let kept = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();

    assert!(generated.headers().get("x-request-id").is_some());
    assert_eq!(kept.headers()["x-request-id"], "req-123");
}

#[tokio::test]
async fn the_application_stops_gracefully() {
    let app = TestApp::spawn().await;

    let stopped = tokio::time::timeout(Duration::from_secs(10), app.stop()).await;

    stopped.expect("stops in time").expect("stops cleanly");
}

/// PostgreSQL connections go without Nagle's algorithm (`TCP_NODELAY`):
/// without it a statement larger than one TCP segment waits for the
/// server's delayed ACK, about 40 ms a statement. sqlx 0.9.0 does not set
/// it; the vendored sqlx-core does (vendor/README.md). Once a sqlx release
/// sets it itself, this passes without the vendored copy, and it can go.
#[tokio::test]
async fn postgres_connections_go_without_nagles_algorithm() {
    let (settings, _db) = prepared_settings().await;
    let pool = wablast::database_pool(&settings).unwrap();
    let mut connection = pool.acquire().await.unwrap();
    sqlx::query("select 1")
        .execute(&mut *connection)
        .await
        .unwrap();
    let port = settings
        .database_url
        .parse::<reqwest::Url>()
        .unwrap()
        .port()
        .unwrap_or(5432);

    // A connection of our own with Nagle's algorithm on, to show the check
    // sees it.
    let plain_stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let plain = plain_stream.local_addr().unwrap();

    // This process's TCP sockets to PostgreSQL, each duplicated by
    // pidfd_getfd to read its options.
    let me = rustix::process::pidfd_open(
        rustix::process::getpid(),
        rustix::process::PidfdFlags::empty(),
    )
    .unwrap();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let Some(fd) = entry
            .unwrap()
            .file_name()
            .to_str()
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        let Ok(socket) =
            rustix::process::pidfd_getfd(&me, fd, rustix::process::PidfdGetfdFlags::empty())
        else {
            continue;
        };
        let socket = socket2::SockRef::from(&socket);
        let address = |a: std::io::Result<socket2::SockAddr>| a.ok().and_then(|a| a.as_socket());
        let (Some(local), Some(peer)) = (address(socket.local_addr()), address(socket.peer_addr()))
        else {
            continue;
        };
        if peer.port() == port && peer.ip().is_loopback() {
            found.push((local, socket.tcp_nodelay().unwrap()));
        }
    }
    let ours: Vec<bool> = found
        .iter()
        .filter(|(local, _)| *local == plain)
        .map(|(_, nodelay)| *nodelay)
        .collect();
    assert_eq!(ours, [false], "the check sees a plain connection as it is");
    let pooled: Vec<_> = found.iter().filter(|(local, _)| *local != plain).collect();
    assert!(!pooled.is_empty(), "no pool connection to PostgreSQL found");
    assert!(
        pooled.iter().all(|(_, nodelay)| *nodelay),
        "a pool connection to PostgreSQL waits for delayed ACKs: {pooled:?}"
    );
}
