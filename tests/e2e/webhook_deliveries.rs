//! Webhook deliveries end to end: a local receiver that answers, fails,
//! times out, answers 410 and recovers; signatures checked as README says;
//! dead letters, replays, pings, disabling, a restart mid-retry, and a dead
//! receiver beside a live one.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use hmac::{KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wablast_domain::webhook::{DisableReason, WebhookEvent};
use wablast_tests::wait_for;

use crate::app::{Client, TestApp};

const SECRET: &str = "a-secret-of-the-integration";

/// How the receiver answers.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// 200.
    Ok,
    /// This status, to every request.
    Status(u16),
    /// This status to the next `n` requests, then 200.
    FailFirst(u16, usize),
    /// Never answers.
    Hang,
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    id: String,
    event_type: String,
    signature: String,
    body: String,
    answered: u16,
    at: Instant,
}

/// How it answers, and what it got.
type Shared = Arc<Mutex<(Mode, Vec<Received>)>>;

#[derive(Clone)]
struct Receiver {
    address: SocketAddr,
    state: Shared,
}

impl Receiver {
    async fn start(mode: Mode) -> Self {
        let state = Arc::new(Mutex::new((mode, Vec::new())));
        let app = axum::Router::new()
            .route("/hook", post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { address, state }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.address)
    }

    fn set(&self, mode: Mode) {
        self.state.lock().unwrap().0 = mode;
    }

    fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().1.clone()
    }

    /// The ids it took (answered 2xx), in order.
    fn taken(&self) -> Vec<String> {
        self.received()
            .into_iter()
            .filter(|r| r.answered == 200)
            .map(|r| r.id)
            .collect()
    }

    async fn wait_taken(&self, n: usize, timeout: Duration) -> Vec<String> {
        wait_for("deliveries taken", timeout, async || {
            let taken = self.taken();
            (taken.len() >= n).then_some(taken)
        })
        .await
    }
}

async fn receive(State(state): State<Shared>, headers: HeaderMap, body: String) -> AxumStatus {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mode = {
        let mut guard = state.lock().unwrap();
        let mode = guard.0;
        if let Mode::FailFirst(status, n) = mode {
            guard.0 = if n > 1 {
                Mode::FailFirst(status, n - 1)
            } else {
                Mode::Ok
            };
        }
        mode
    };
    let answered = match mode {
        Mode::Ok => 200,
        Mode::Status(status) | Mode::FailFirst(status, _) => status,
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            200
        }
    };
    state.lock().unwrap().1.push(Received {
        id: header("x-wablast-event-id"),
        event_type: header("x-wablast-event-type"),
        signature: header("x-wablast-signature"),
        body,
        answered,
        at: Instant::now(),
    });
    AxumStatus::from_u16(answered).unwrap()
}

/// Checks a signature as README's snippet does: `t=<unix>,v1=<hex>` where
/// the hex is HMAC-SHA256 of `<t>.<body>` under the secret.
fn verifies(header: &str, body: &str, secret: &str) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let Ok(given) = hex::decode(v1) else {
        return false;
    };
    mac.verify_slice(&given).is_ok()
}

/// README's verification snippet, run by Python on a delivery: whether it
/// accepts it.
fn readme_snippet_verifies(header: &str, body: &str, secret: &str) -> bool {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let block = readme
        .split("<!-- webhook-verify: begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- webhook-verify: end -->").next())
        .expect("README has the snippet between its markers");
    let code = block
        .trim()
        .trim_start_matches("```python")
        .trim_end_matches("```");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("body");
    std::fs::write(&path, body).unwrap();
    let program = format!(
        "{code}\nimport sys\nprint(verify(sys.argv[1], sys.argv[2], open(sys.argv[3], 'rb').read()))\n"
    );
    let output = std::process::Command::new("python3")
        .args(["-c", &program, secret, header])
        .arg(&path)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    match String::from_utf8_lossy(&output.stdout).trim() {
        "True" => true,
        "False" => false,
        other => panic!("the snippet printed {other:?}"),
    }
}

async fn subscribe(client: &Client, url: &str, events: Value) -> String {
    let (status, body) = client
        .post(
            "/api/v1/webhooks",
            json!({"url": url, "events": events, "secret": SECRET}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// What [`make_events`] makes.
const TYPES: [&str; 2] = ["SessionCreated", "SessionSettingsUpdated"];

/// Makes `n` events of the tenant's session (created the first time,
/// then renamed), in this order.
async fn make_events(client: &Client, n: usize) {
    let (_, list) = client.get("/api/v1/sessions").await;
    let mut session = list["items"][0]["id"].as_str().map(str::to_owned);
    for i in 0..n {
        match &session {
            None => {
                let (status, body) = client
                    .post("/api/v1/sessions", json!({"name": "Nomor toko"}))
                    .await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
                session = Some(body["id"].as_str().unwrap().to_owned());
            }
            Some(id) => {
                let (status, body) = client
                    .patch(
                        &format!("/api/v1/sessions/{id}"),
                        json!({"name": format!("Nomor {i} {}", uuid::Uuid::now_v7())}),
                    )
                    .await;
                assert_eq!(status, StatusCode::OK, "{body}");
            }
        }
    }
}

async fn deliveries(client: &Client, webhook: &str, query: &str) -> Vec<Value> {
    let (status, body) = client
        .get(&format!("/api/v1/webhooks/{webhook}/deliveries{query}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().unwrap().clone()
}

/// The subscription's deliveries once `n` are recorded as delivered
/// (right after the receiver answered).
async fn recorded(client: &Client, webhook: &str, n: usize) -> Vec<Value> {
    wait_for("deliveries recorded", Duration::from_secs(10), async || {
        let delivered = deliveries(client, webhook, "?status=delivered").await;
        (delivered.len() >= n).then_some(delivered)
    })
    .await
}

/// The stream sequence in a position (`events:12` or `events:12.1`).
fn sequence(id: &str) -> (u64, u64) {
    let (_, at) = id.split_once(':').unwrap();
    match at.split_once('.') {
        Some((s, k)) => (s.parse().unwrap(), k.parse().unwrap()),
        None => (at.parse().unwrap(), u64::MAX),
    }
}

#[tokio::test]
async fn events_arrive_signed_in_order_once_each() {
    // Arrange
    let app = TestApp::spawn_with_engine().await;
    let a = app.tenant("Toko A").await;
    let receiver = Receiver::start(Mode::Ok).await;
    let webhook = subscribe(&a, &receiver.url(), json!(TYPES)).await;

    // Act
    make_events(&a, 5).await;

    // Assert
    let taken = receiver.wait_taken(5, Duration::from_secs(20)).await;
    let received = receiver.received();
    assert_eq!(received.len(), 5, "once each: {taken:?}");
    let mut previous = (0, 0);
    for (n, r) in received.iter().enumerate() {
        assert!(verifies(&r.signature, &r.body, SECRET), "{}", r.signature);
        assert!(!verifies(&r.signature, &r.body, "another-secret-entirely"));
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["id"], r.id.as_str());
        let expected = if n == 0 { TYPES[0] } else { TYPES[1] };
        assert_eq!(body["type"], expected);
        assert_eq!(r.event_type, expected);
        assert_eq!(body["tenant_id"], a.tenant_id.as_str());
        assert!(body["occurred_at"].is_string());
        assert_eq!(body["data"]["sequence"], n + 1, "in order");
        assert_eq!(body["data"]["type"], expected);
        assert!(body["data"]["payload"].is_object());
        assert!(sequence(&r.id) > previous, "{} after {previous:?}", r.id);
        previous = sequence(&r.id);
    }
    let first = &received[0];
    assert!(readme_snippet_verifies(
        &first.signature,
        &first.body,
        SECRET
    ));
    assert!(!readme_snippet_verifies(
        &first.signature,
        &format!("{} ", first.body),
        SECRET
    ));
    assert!(!readme_snippet_verifies(
        &first.signature,
        &first.body,
        "not-the-secret-at-all"
    ));
    let listed = recorded(&a, &webhook, 5).await;
    assert_eq!(listed.len(), 5);
    assert!(
        listed.iter().all(|d| d["attempts"] == 1
            && d["last_status"] == 200
            && d["delivered_at"].is_string()),
        "{listed:?}"
    );
    assert_eq!(listed[0]["event_id"], taken[4].as_str(), "newest first");
    let (_, view) = a.get(&format!("/api/v1/webhooks/{webhook}")).await;
    assert_eq!(view["status"], "active");
    assert!(view["failing_since"].is_null());
}

#[tokio::test]
async fn a_failing_receiver_gets_everything_in_order_once_it_recovers() {
    // Arrange
    let app = TestApp::spawn_engine_with(|s| s.webhook_first_retry_ms = 50).await;
    let a = app.tenant("Toko A").await;
    let receiver = Receiver::start(Mode::FailFirst(503, 3)).await;
    let webhook = subscribe(&a, &receiver.url(), json!(TYPES)).await;

    // Act
    make_events(&a, 4).await;

    // Assert
    let taken = receiver.wait_taken(4, Duration::from_secs(30)).await;
    let received = receiver.received();
    assert_eq!(received.len(), 7, "3 failures, then each once");
    assert!(
        received[..3].iter().all(|r| r.id == taken[0]),
        "the first event is tried until taken before any other"
    );
    let mut sorted = taken.clone();
    sorted.sort_by_key(|id| sequence(id));
    assert_eq!(taken, sorted, "in log order");
    let listed = recorded(&a, &webhook, 4).await;
    assert_eq!(listed[3]["attempts"], 4, "{listed:?}");
    assert_eq!(listed[3]["status"], "delivered");
    let (_, view) = a.get(&format!("/api/v1/webhooks/{webhook}")).await;
    assert!(view["failing_since"].is_null(), "it answers again");
}

#[tokio::test]
async fn a_receiver_answering_410_gets_dead_letters_that_a_replay_sends_again() {
    // Arrange
    let app = TestApp::spawn_with_engine().await;
    let a = app.tenant("Toko A").await;
    let receiver = Receiver::start(Mode::Status(410)).await;
    let webhook = subscribe(&a, &receiver.url(), json!(TYPES)).await;
    make_events(&a, 3).await;

    // Act
    let failed = wait_for("dead letters", Duration::from_secs(20), async || {
        let failed = deliveries(&a, &webhook, "?status=failed").await;
        (failed.len() == 3).then_some(failed)
    })
    .await;
    let refused = receiver.received().len();
    receiver.set(Mode::Ok);
    let (status, replayed) = a
        .post(
            &format!("/api/v1/webhooks/{webhook}/replay"),
            json!({"from_position": "events:0"}),
        )
        .await;

    // Assert
    assert!(
        failed
            .iter()
            .all(|d| d["last_status"] == 410 && d["attempts"] == 1),
        "410 is not tried again: {failed:?}"
    );
    assert_eq!(refused, 3, "each tried once");
    assert_eq!(status, StatusCode::ACCEPTED, "{replayed}");
    assert_eq!(replayed["queued"], 3);
    assert!(replayed["next_position"].is_null());
    let taken = receiver.wait_taken(3, Duration::from_secs(20)).await;
    let mut first: Vec<String> = failed
        .iter()
        .map(|d| d["event_id"].as_str().unwrap().to_owned())
        .collect();
    first.reverse();
    assert_eq!(taken, first, "the same ids, in order");
    let listed = recorded(&a, &webhook, 3).await;
    assert!(listed.iter().all(|d| d["replayed"] == true));

    // A replay from a place the log has not reached is refused.
    let (status, body) = a
        .post(
            &format!("/api/v1/webhooks/{webhook}/replay"),
            json!({"from_position": "events:999999"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = a
        .post(
            &format!("/api/v1/webhooks/{webhook}/replay"),
            json!({"from_position": "yesterday"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_receiver_that_never_answers_does_not_slow_another_tenants_deliveries() {
    // Arrange
    let app = TestApp::spawn_engine_with(|s| {
        s.webhook_timeout_ms = 1000;
        s.webhook_first_retry_ms = 100;
    })
    .await;
    let (a, b) = (app.tenant("Toko A").await, app.tenant("Toko B").await);
    let dead = Receiver::start(Mode::Hang).await;
    let live = Receiver::start(Mode::Ok).await;
    let dead_hook = subscribe(&a, &dead.url(), json!(["*"])).await;
    subscribe(&b, &live.url(), json!(TYPES)).await;
    make_events(&a, 3).await;

    // Act
    let started = Instant::now();
    make_events(&b, 3).await;
    live.wait_taken(3, Duration::from_secs(10)).await;
    let slowest = live
        .received()
        .iter()
        .map(|r| r.at.duration_since(started))
        .max()
        .unwrap();

    // Assert
    assert!(
        slowest < Duration::from_secs(5),
        "the live receiver waited {slowest:?}"
    );
    let pending = wait_for("a timed out attempt", Duration::from_secs(10), async || {
        let pending = deliveries(&a, &dead_hook, "?status=pending").await;
        pending
            .iter()
            .any(|d| d["attempts"].as_i64() >= Some(1))
            .then_some(pending)
    })
    .await;
    let tried = pending
        .iter()
        .find(|d| d["attempts"].as_i64() >= Some(1))
        .unwrap();
    assert!(tried["last_status"].is_null());
    assert!(
        tried["last_error"].as_str().unwrap().contains("timed out"),
        "{tried}"
    );
    println!("a live receiver's slowest delivery beside a dead one: {slowest:?}");
}

#[tokio::test]
async fn a_receiver_failing_past_the_window_dead_letters_and_is_disabled_until_enabled() {
    // Arrange
    let app = TestApp::spawn_engine_with(|s| {
        s.webhook_first_retry_ms = 100;
        // The second event's attempts outlast the first failure by more
        // than 2 s: its last one, at the latest, disables.
        s.webhook_retry_seconds = 1;
        s.webhook_disable_after_seconds = 2;
    })
    .await;
    let a = app.tenant("Toko A").await;
    let receiver = Receiver::start(Mode::Status(500)).await;
    let webhook = subscribe(&a, &receiver.url(), json!(TYPES)).await;

    // Act
    make_events(&a, 1).await;
    let failed = wait_for("a dead letter", Duration::from_secs(20), async || {
        let failed = deliveries(&a, &webhook, "?status=failed").await;
        (!failed.is_empty()).then_some(failed)
    })
    .await;
    make_events(&a, 1).await;
    let disabled = wait_for(
        "the subscription disabled",
        Duration::from_secs(20),
        async || {
            let (_, view) = a.get(&format!("/api/v1/webhooks/{webhook}")).await;
            (view["status"] == "disabled").then_some(view)
        },
    )
    .await;

    // Assert
    assert!(failed[0]["attempts"].as_i64().unwrap() >= 2, "{failed:?}");
    assert_eq!(failed[0]["last_status"], 500);
    assert_eq!(
        disabled["disabled_reason"], "receiver_failing",
        "{disabled}"
    );
    let log = wablast::open_event_log(&app.settings).await.unwrap();
    let subscriptions = wablast_workflows::commands::Commands::new(&log).webhooks;
    let key = wablast_workflows::commands::key(
        wablast_domain::types::TenantId::from_uuid(a.tenant_id.parse().unwrap()),
        webhook.parse::<uuid::Uuid>().unwrap(),
    );
    let event = subscriptions.last_event(&key).await.unwrap();
    assert!(
        matches!(
            event,
            Some(WebhookEvent::WebhookDisabled {
                reason: DisableReason::ReceiverFailing,
                failing_since: Some(_),
                ..
            })
        ),
        "the log says why: {event:?}"
    );
    let tried = receiver.received().len();
    make_events(&a, 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        receiver.received().len(),
        tried,
        "nothing goes to a disabled one"
    );
    let (status, body) = a
        .post(
            &format!("/api/v1/webhooks/{webhook}/replay"),
            json!({"from_position": "events:0"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    receiver.set(Mode::Ok);
    let (status, enabled) = a
        .post(&format!("/api/v1/webhooks/{webhook}/enable"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{enabled}");
    assert_eq!(enabled["status"], "active");
    assert!(enabled["disabled_reason"].is_null());
    make_events(&a, 1).await;
    receiver.wait_taken(1, Duration::from_secs(20)).await;
    assert!(matches!(
        subscriptions.last_event(&key).await.unwrap(),
        Some(WebhookEvent::WebhookEnabled { .. })
    ));
}

#[tokio::test]
async fn a_restart_in_the_middle_of_retries_loses_nothing() {
    // Arrange
    let mut app = TestApp::spawn_engine_with(|s| s.webhook_first_retry_ms = 300).await;
    let a = app.tenant("Toko A").await;
    let receiver = Receiver::start(Mode::Status(503)).await;
    let webhook = subscribe(&a, &receiver.url(), json!(TYPES)).await;
    make_events(&a, 3).await;
    wait_for("failed attempts", Duration::from_secs(20), async || {
        (receiver.received().len() >= 2).then_some(())
    })
    .await;

    // Act
    app.restart_with_engine().await;
    let a = a.at(&app);
    receiver.set(Mode::Ok);
    make_events(&a, 1).await;

    // Assert
    let taken = receiver.wait_taken(4, Duration::from_secs(30)).await;
    let mut unique = taken.clone();
    unique.dedup();
    assert_eq!(unique.len(), 4, "each once: {taken:?}");
    let mut sorted = taken.clone();
    sorted.sort_by_key(|id| sequence(id));
    assert_eq!(taken, sorted, "in log order");
    let listed = recorded(&a, &webhook, 4).await;
    assert_eq!(listed.len(), 4);
}

#[tokio::test]
async fn a_test_ping_is_signed_and_says_what_the_receiver_answered() {
    // Arrange
    let app = TestApp::spawn().await;
    let a = app.tenant("Toko A").await;
    let receiver = Receiver::start(Mode::Ok).await;
    let webhook = subscribe(&a, &receiver.url(), json!(TYPES)).await;

    // Act
    let (status, ok) = a
        .post(&format!("/api/v1/webhooks/{webhook}/test"), json!({}))
        .await;
    receiver.set(Mode::Status(500));
    let (_, refused) = a
        .post(&format!("/api/v1/webhooks/{webhook}/test"), json!({}))
        .await;

    // Assert
    assert_eq!(status, StatusCode::ACCEPTED, "{ok}");
    assert_eq!(ok["delivered"], true);
    assert_eq!(ok["status"], 200);
    assert_eq!(refused["delivered"], false);
    assert_eq!(refused["status"], 500);
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].event_type, "WebhookTest");
    assert!(received[0].id.starts_with("test:"));
    assert!(verifies(&received[0].signature, &received[0].body, SECRET));
    assert!(
        deliveries(&a, &webhook, "").await.is_empty(),
        "nothing queued"
    );
    let (status, _) = a
        .post(
            &format!("/api/v1/webhooks/{}/test", uuid::Uuid::now_v7()),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn private_and_plain_http_receivers_are_refused_unless_allowed() {
    let app = TestApp::spawn_with(|s| s.webhook_allow_private = false).await;
    let a = app.tenant("Toko A").await;
    for url in [
        "http://shop.example/hook",
        "https://127.0.0.1/hook",
        "https://10.0.0.8/hook",
        "https://[::1]/hook",
        "https://localhost:8443/hook",
        "https://169.254.169.254/latest/meta-data",
    ] {
        let (status, body) = a
            .post("/api/v1/webhooks", json!({"url": url, "events": ["*"]}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert_eq!(body["error"]["details"]["field"], "url");
    }
    let (status, _) = a
        .post(
            "/api/v1/webhooks",
            json!({"url": "https://shop.example/hook", "events": ["*"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn a_changed_subscription_sends_to_its_new_receiver_signed_with_its_new_secret() {
    // Arrange
    let app = TestApp::spawn_with_engine().await;
    let a = app.tenant("Toko A").await;
    let (old, new) = (
        Receiver::start(Mode::Ok).await,
        Receiver::start(Mode::Ok).await,
    );
    let webhook = subscribe(&a, &old.url(), json!(TYPES)).await;
    make_events(&a, 1).await;
    old.wait_taken(1, Duration::from_secs(20)).await;

    // Act
    let rotated = "a-new-secret-for-the-new-receiver";
    let (status, changed) = a
        .patch(
            &format!("/api/v1/webhooks/{webhook}"),
            json!({"url": new.url(), "events": ["SessionSettingsUpdated"], "secret": rotated}),
        )
        .await;
    make_events(&a, 1).await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["url"], new.url());
    assert_eq!(changed["events"], json!(["SessionSettingsUpdated"]));
    assert!(changed.get("secret").is_none(), "never shown back");
    new.wait_taken(1, Duration::from_secs(20)).await;
    let got = &new.received()[0];
    assert_eq!(got.event_type, "SessionSettingsUpdated");
    assert!(verifies(&got.signature, &got.body, rotated));
    assert!(!verifies(&got.signature, &got.body, SECRET));
    assert_eq!(old.received().len(), 1, "nothing more to the old receiver");

    for (body, field) in [
        (json!({"url": "ftp://shop.example/hook"}), "url"),
        (json!({"events": []}), "events"),
        (json!({"secret": "short"}), "secret"),
    ] {
        let (status, answer) = a
            .patch(&format!("/api/v1/webhooks/{webhook}"), body.clone())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["error"]["details"]["field"], field, "{body}");
    }
    let (status, _) = a
        .patch(
            &format!("/api/v1/webhooks/{}", uuid::Uuid::now_v7()),
            json!({"url": new.url()}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let b = app.tenant("Toko B").await;
    let (status, _) = b
        .patch(
            &format!("/api/v1/webhooks/{webhook}"),
            json!({"url": new.url()}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's");
}

#[tokio::test]
async fn a_receiver_moved_while_its_delivery_waits_for_a_retry_gets_it_at_once() {
    // Arrange: the first retry would come a minute later.
    let app = TestApp::spawn_engine_with(|s| s.webhook_first_retry_ms = 60_000).await;
    let a = app.tenant("Toko A").await;
    let (broken, fixed) = (
        Receiver::start(Mode::Status(503)).await,
        Receiver::start(Mode::Ok).await,
    );
    let webhook = subscribe(&a, &broken.url(), json!(TYPES)).await;
    make_events(&a, 1).await;
    wait_for("a failed attempt", Duration::from_secs(20), async || {
        (!broken.received().is_empty()).then_some(())
    })
    .await;

    // Act
    let moved = Instant::now();
    let (status, _) = a
        .patch(
            &format!("/api/v1/webhooks/{webhook}"),
            json!({"url": fixed.url()}),
        )
        .await;

    // Assert
    assert_eq!(status, StatusCode::OK);
    fixed.wait_taken(1, Duration::from_secs(10)).await;
    assert!(moved.elapsed() < Duration::from_secs(10));
    assert_eq!(broken.received().len(), 1);
    let listed = recorded(&a, &webhook, 1).await;
    assert_eq!(listed[0]["attempts"], 2, "{listed:?}");
}
