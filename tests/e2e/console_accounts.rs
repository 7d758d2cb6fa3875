//! The console's Wallet, Developers and Admin pages in a real browser
//! (`console/e2e/accounts.mjs`, see `console.rs` for what it needs): the
//! platform admin offers a plan and grants it to a shop, whose owner reads
//! the wallet live, makes, uses and revokes an API key, and follows a
//! webhook subscription to a local receiver through pings, deliveries, a
//! disabling, an enabling and a replay.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use hmac::{KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wablast_tests::wait_for;

use crate::app::{ADMIN_EMAIL, ADMIN_PASSWORD, Client};
use crate::campaigns::grant_plan;
use crate::console::{Browser, plan, register};

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    event_type: String,
    signature: String,
    body: String,
}

/// A webhook receiver on localhost: `/hook` takes every event, `/down`
/// answers 503 with a body the console shows.
struct Receiver {
    address: SocketAddr,
    received: Log,
}

impl Receiver {
    async fn start() -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/hook", post(take))
            .route("/down", post(refuse))
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { address, received }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

type Log = Arc<Mutex<Vec<Received>>>;

async fn take(
    State(log): State<Log>,
    headers: HeaderMap,
    body: String,
) -> (AxumStatus, &'static str) {
    record(&log, "/hook", &headers, body);
    (AxumStatus::OK, "ok")
}

async fn refuse(
    State(log): State<Log>,
    headers: HeaderMap,
    body: String,
) -> (AxumStatus, &'static str) {
    record(&log, "/down", &headers, body);
    (AxumStatus::SERVICE_UNAVAILABLE, "sedang perbaikan")
}

fn record(log: &Log, path: &str, headers: &HeaderMap, body: String) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    log.lock().unwrap().push(Received {
        path: path.to_owned(),
        event_type: header("x-wablast-event-type"),
        signature: header("x-wablast-signature"),
        body,
    });
}

/// Whether `header` (`t=<unix>,v1=<hex>`) signs `body` under `secret`, as
/// README says.
fn signed_with(header: &str, body: &str, secret: &str) -> bool {
    let parts: Vec<(&str, &str)> = header
        .split(',')
        .filter_map(|p| p.split_once('='))
        .collect();
    let field = |name: &str| parts.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let (Some(t), Some(v1)) = (field("t"), field("v1")) else {
        return false;
    };
    let Ok(given) = hex::decode(v1) else {
        return false;
    };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    mac.verify_slice(&given).is_ok()
}

/// The admin grants `points` to `tenant`, which sees the write.
async fn grant_points(admin: &Client, tenant: &Client, points: u64) {
    let (status, granted) = admin
        .post(
            &format!("/api/v1/admin/tenants/{}/grant", tenant.tenant_id),
            json!({"points": points, "reason": "bonus pelanggan setia"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{granted}");
}

/// The subscription's deliveries in `status`.
async fn deliveries(owner: &Client, webhook: &str, status: &str) -> Vec<Value> {
    let (code, page) = owner
        .get(&format!(
            "/api/v1/webhooks/{webhook}/deliveries?status={status}"
        ))
        .await;
    assert_eq!(code, StatusCode::OK, "{page}");
    page["items"].as_array().cloned().unwrap_or_default()
}

/// The admin offers a plan and grants it in the browser; the owner sees
/// the wallet (live), uses and revokes an API key from Node, follows a
/// webhook through its receiver's answers, failures, disabling, enabling
/// and a replay, and is refused the admin page. Screenshots land in
/// `console/test-results/accounts/`; a console error fails the test.
#[tokio::test]
async fn the_admin_grants_a_plan_and_the_owner_runs_wallet_keys_and_webhooks_in_the_browser() {
    // Arrange
    let Some((browser, app)) = Browser::with_app(|s| {
        s.webhook_first_retry_ms = 100;
        // A failing receiver's delivery is given up after 1 s, and the
        // subscription disabled after 2 s of failures.
        s.webhook_retry_seconds = 1;
        s.webhook_disable_after_seconds = 2;
    })
    .await
    else {
        return;
    };
    let receiver = Receiver::start().await;
    let admin = app.admin().await;
    let email = format!("budi-{}@example.test", uuid::Uuid::now_v7().simple());
    let password = "rahasia-budi-123";
    let owner = register(&app, &email, password, "Toko Budi").await;
    let first_plan = plan(&admin).await;
    grant_plan(&admin, &owner, &first_plan).await;
    let mut webhook_secret = String::new();

    // Act + Assert: the journey, answering its steps.
    browser
        .run(
            &app,
            "accounts.mjs",
            &[
                ("WABLAST_CONSOLE_ADMIN_EMAIL", ADMIN_EMAIL),
                ("WABLAST_CONSOLE_ADMIN_PASSWORD", ADMIN_PASSWORD),
                ("WABLAST_CONSOLE_EMAIL", &email),
                ("WABLAST_CONSOLE_PASSWORD", password),
                ("WABLAST_CONSOLE_TENANT_ID", &owner.tenant_id),
                ("WABLAST_CONSOLE_RECEIVER", &receiver.url()),
            ],
            async |step, data| match step {
                "grant-points" => grant_points(&admin, &owner, 250).await,
                "webhook-created" => {
                    webhook_secret = data["secret"]
                        .as_str()
                        .expect("the secret shown")
                        .to_owned();
                    // The ping came, signed with the secret the console showed.
                    let ping = receiver.received();
                    let ping = ping
                        .iter()
                        .find(|r| r.event_type == "WebhookTest")
                        .expect("the test ping reached the receiver");
                    assert!(signed_with(&ping.signature, &ping.body, &webhook_secret));
                    let (status, session) = owner
                        .post("/api/v1/sessions", json!({"name": "Nomor toko"}))
                        .await;
                    assert_eq!(status, StatusCode::CREATED, "{session}");
                    grant_points(&admin, &owner, 100).await;
                }
                "receiver-down" => {
                    let webhook = data["webhook_id"].as_str().expect("the webhook's id");
                    // One event given up, then another whose retries outlast
                    // the 2 s of failures: the subscription is disabled.
                    grant_points(&admin, &owner, 10).await;
                    wait_for("a dead letter", Duration::from_secs(20), async || {
                        let failed = deliveries(&owner, webhook, "failed").await;
                        (!failed.is_empty()).then_some(())
                    })
                    .await;
                    grant_points(&admin, &owner, 20).await;
                    wait_for(
                        "the subscription disabled",
                        Duration::from_secs(20),
                        async || {
                            let (_, view) = owner.get(&format!("/api/v1/webhooks/{webhook}")).await;
                            (view["status"] == "disabled").then_some(())
                        },
                    )
                    .await;
                }
                "replayed" => {
                    let rotated = data["secret"].as_str().expect("the new secret");
                    let received = receiver.received();
                    let taken: Vec<&Received> =
                        received.iter().filter(|r| r.path == "/hook").collect();
                    // Before the rotation, deliveries were signed with the
                    // first secret; the replay's, with the new one.
                    assert!(
                        taken.iter().any(|r| r.event_type == "SessionCreated"
                            && signed_with(&r.signature, &r.body, &webhook_secret)),
                        "{taken:?}"
                    );
                    let replayed = taken
                        .iter()
                        .rev()
                        .find(|r| r.event_type == "PointsGranted")
                        .expect("the replayed event reached the receiver");
                    assert!(signed_with(&replayed.signature, &replayed.body, rotated));
                    assert!(!signed_with(
                        &replayed.signature,
                        &replayed.body,
                        &webhook_secret
                    ));
                }
                other => panic!("unknown step {other}"),
            },
        )
        .await;

    // The grants in the browser reached the wallet.
    let (status, wallet) = owner.get("/api/v1/wallet").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(wallet["plan"]["name"], "Paket Usaha 30", "{wallet}");
}
