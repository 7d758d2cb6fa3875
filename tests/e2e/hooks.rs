//! Driver webhooks end to end: a `waha` session started through the API is
//! created on a (local) WAHA server by the engine, and WAHA's signed
//! webhooks move it; a `cloud` session's Meta verification, signed
//! notifications, and refused signatures.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Sha256, Sha512};
use sqlx::Connection;
use wablast_tests::peer::{Peer, Recorded, Reply};

use crate::app::{Client, TestApp, code};
use wablast_tests::wait_for as until;

const WAHA_API_KEY: &str = "waha-api-key";
const WAHA_SESSION: &str = "toko-andi";

const GRAPH_TOKEN: &str = "EAAGm0PX4ZCpsBAtesttoken";
const APP_SECRET: &str = "meta-app-secret";
const VERIFY_TOKEN: &str = "wablast-verify";
const NUMBER_ID: &str = "106540352242922";

fn hmac_hex<M: Mac + KeyInit>(key: &str, body: &[u8]) -> String {
    let mut mac = <M as KeyInit>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A WAHA server: refuses requests without our API key, creates sessions.
async fn waha_server() -> Peer {
    waha_server_at("127.0.0.1:0").await
}

/// [`waha_server`] on `address`.
async fn waha_server_at(address: &str) -> Peer {
    Peer::start_at(address, |request: &Recorded| {
        if request.header("x-api-key") != Some(WAHA_API_KEY) {
            return Reply::json(401, json!({"message": "Unauthorized", "statusCode": 401}));
        }
        match request.route().as_str() {
            "POST /api/sessions" => Reply::json(
                201,
                json!({"name": WAHA_SESSION, "status": "STARTING", "config": request.json()["config"]}),
            ),
            _ => Reply::json(404, json!({"message": "Not Found", "statusCode": 404})),
        }
    })
    .await
}

/// A WAHA `session.status` webhook, as WAHA posts it.
fn waha_status(status: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": "evt_01jcxkz0f8b3r5k9n2m4p6q8s0",
        "timestamp": 1_767_225_600_000u64,
        "session": WAHA_SESSION,
        "metadata": {},
        "engine": "NOWEB",
        "event": "session.status",
        "payload": {"name": WAHA_SESSION, "status": status, "statuses": []},
        "me": {"id": "6281100000001@c.us", "pushName": "Toko Andi"},
        "environment": {"version": "2026.7.1", "engine": "NOWEB", "tier": "PLUS"},
    }))
    .unwrap()
}

async fn post_waha(app: &TestApp, id: &str, body: Vec<u8>, hmac: &str) -> (StatusCode, Value) {
    let response = app
        .http
        .post(app.url(&format!("/hooks/waha/{id}")))
        .header("content-type", "application/json")
        .header("x-webhook-hmac", hmac)
        .header("x-webhook-hmac-algorithm", "sha512")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn status_of(tenant: &Client, id: &str) -> Value {
    tenant.get(&format!("/api/v1/sessions/{id}")).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waha_webhooks_move_a_session_the_engine_created_on_the_waha_server() {
    // Arrange: a waha session on a local WAHA server.
    let app = TestApp::spawn_with_engine().await;
    let waha = waha_server().await;
    let andi = app.tenant("Toko Andi").await;
    let (status, session) = andi
        .post(
            "/api/v1/sessions",
            json!({"name": "CS WAHA", "driver": "waha", "driver_config": {
                "base_url": waha.base_url, "api_key": WAHA_API_KEY, "session_name": WAHA_SESSION,
            }}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let id = session["id"].as_str().unwrap().to_owned();

    // Not running yet: nobody can take its webhooks.
    let (status, body) = post_waha(&app, &id, waha_status("WORKING"), "00").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(code(&body), "engine_unavailable");

    // Act: start it; the engine creates the session on WAHA.
    let (status, _) = andi
        .post(&format!("/api/v1/sessions/{id}/start"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let created = until("the WAHA session", Duration::from_secs(20), async || {
        waha.requests()
            .into_iter()
            .find(|r| r.route() == "POST /api/sessions")
    })
    .await;

    // Assert: WAHA posts to our hook, signing with a key of its own.
    let config = created.json();
    assert_eq!(config["name"], WAHA_SESSION);
    assert_eq!(config["start"], true);
    let hook = &config["config"]["webhooks"][0];
    assert!(
        hook["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/hooks/waha/{id}")),
        "{hook}"
    );
    assert_eq!(
        hook["events"],
        json!(["session.status", "message", "message.ack"])
    );
    let key = hook["hmac"]["key"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 64);

    // A bad signature is refused and changes nothing.
    let working = waha_status("WORKING");
    let forged = hmac_hex::<Hmac<Sha512>>("not the key", &working);
    let (status, body) = post_waha(&app, &id, working.clone(), &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "unauthenticated");
    let response = app
        .http
        .post(app.url(&format!("/hooks/waha/{id}")))
        .body(working.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "unsigned");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status_of(&andi, &id).await["status"], "starting");

    // WAHA says WORKING, signed: the session is ready on WAHA's number.
    let signature = hmac_hex::<Hmac<Sha512>>(&key, &working);
    let (status, body) = post_waha(&app, &id, working, &signature).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"status": "accepted", "events": 1}));
    let ready = until("ready", Duration::from_secs(20), async || {
        let session = status_of(&andi, &id).await;
        (session["status"] == "ready").then_some(session)
    })
    .await;
    assert_eq!(ready["phone_number"], "+6281100000001");

    // Another session's id, or none: 404 in the error shape.
    let unknown = uuid::Uuid::now_v7();
    let (status, body) = post_waha(&app, &unknown.to_string(), waha_status("WORKING"), "00").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(code(&body), "not_found");
    let response = app
        .http
        .post(app.url(&format!("/hooks/cloud/{id}")))
        .header("x-hub-signature-256", "sha256=00")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::NOT_FOUND,
        "a WAHA session has no Cloud API hook"
    );
}

/// The Graph API: refuses requests without our token, knows our number.
async fn graph_server() -> Peer {
    Peer::start(|request: &Recorded| {
        if request.header("authorization") != Some(&format!("Bearer {GRAPH_TOKEN}")) {
            return Reply::json(
                401,
                json!({"error": {"message": "Invalid OAuth access token", "type": "OAuthException", "code": 190}}),
            );
        }
        match request.route().as_str() {
            "GET /v21.0/106540352242922" => Reply::json(
                200,
                json!({
                    "verified_name": "Toko Andi",
                    "code_verification_status": "VERIFIED",
                    "display_phone_number": "+62 811-0000-0002",
                    "quality_rating": "GREEN",
                    "id": NUMBER_ID,
                }),
            ),
            _ => Reply::json(
                400,
                json!({"error": {"message": "Unsupported request", "type": "GraphMethodException", "code": 100}}),
            ),
        }
    })
    .await
}

/// A message status notification for our number, as Meta posts it.
fn cloud_status(status: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "102290129340398",
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "6281100000002", "phone_number_id": NUMBER_ID},
                    "statuses": [{
                        "id": "wamid.HBgNNjI4MTIzNDU2Nzg5MBUCABEYEjE=",
                        "status": status,
                        "timestamp": "1767225600",
                        "recipient_id": "6281234567890",
                    }],
                },
            }],
        }],
    }))
    .unwrap()
}

async fn post_cloud(
    app: &TestApp,
    id: &str,
    body: Vec<u8>,
    signature: &str,
) -> (StatusCode, Value) {
    let response = app
        .http
        .post(app.url(&format!("/hooks/cloud/{id}")))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_session_answers_meta_s_verification_and_takes_signed_notifications() {
    // Arrange: a cloud session on a local Graph API.
    let app = TestApp::spawn_with_engine().await;
    let graph = graph_server().await;
    let andi = app.tenant("Toko Andi Official").await;
    let (status, session) = andi
        .post(
            "/api/v1/sessions",
            json!({"name": "Official", "driver": "cloud", "driver_config": {
                "phone_number_id": NUMBER_ID, "access_token": GRAPH_TOKEN,
                "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN,
                "api_base": format!("{}/v21.0", graph.base_url),
            }}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let id = session["id"].as_str().unwrap().to_owned();

    // Meta verifies the URL (before the session ever runs): the challenge
    // is echoed as plain text for the right token only.
    let verify = |token: &str| {
        app.http
            .get(app.url(&format!(
                "/hooks/cloud/{id}?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444"
            )))
            .send()
    };
    let response = verify(VERIFY_TOKEN).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(response.text().await.unwrap(), "1158201444");
    let response = verify("guessed").await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "forbidden");

    // Act: start it; the engine checks the number with the Graph API.
    let (status, _) = andi
        .post(&format!("/api/v1/sessions/{id}/start"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let ready = until("ready", Duration::from_secs(20), async || {
        let session = status_of(&andi, &id).await;
        (session["status"] == "ready").then_some(session)
    })
    .await;
    assert_eq!(ready["phone_number"], "+6281100000002");

    // Assert: a signed notification is taken, a forged one refused.
    let delivered = cloud_status("delivered");
    let signature = format!(
        "sha256={}",
        hmac_hex::<Hmac<Sha256>>(APP_SECRET, &delivered)
    );
    let (status, body) = post_cloud(&app, &id, delivered.clone(), &signature).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"status": "accepted", "events": 1}));

    let forged = format!(
        "sha256={}",
        hmac_hex::<Hmac<Sha256>>("another secret", &delivered)
    );
    let (status, body) = post_cloud(&app, &id, delivered.clone(), &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "unauthenticated");
    let (status, _) = post_cloud(&app, &id, delivered, "not-a-signature").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(status_of(&andi, &id).await["status"], "ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_whose_driver_cannot_connect_fail_or_try_again_saying_why() {
    // Arrange: one session's sealed credentials altered, another's WAHA
    // server gone.
    let app = TestApp::spawn_with_engine().await;
    let create = async |tenant: &Client, base_url: &str| {
        let (status, session) = tenant
            .post(
                "/api/v1/sessions",
                json!({"name": "CS", "driver": "waha", "driver_config": {
                    "base_url": base_url, "api_key": WAHA_API_KEY, "session_name": WAHA_SESSION,
                }}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{session}");
        session["id"].as_str().unwrap().to_owned()
    };
    let andi = app.tenant("Toko Andi").await;
    let altered = create(&andi, "http://waha.invalid").await;
    let budi = app.tenant("Toko Budi").await;
    let gone_url = wablast_tests::peer::closed_port_url().await;
    let gone = create(&budi, &gone_url).await;
    let mut db = sqlx::PgConnection::connect(&app.settings.database_url)
        .await
        .unwrap();
    sqlx::query(
        "update session_credentials set secret = set_byte(secret, 20, get_byte(secret, 20) # 1) \
         where session_id = $1",
    )
    .bind(uuid::Uuid::parse_str(&altered).unwrap())
    .execute(&mut db)
    .await
    .unwrap();

    // Act
    for (tenant, id) in [(&andi, &altered), (&budi, &gone)] {
        let (status, _) = tenant
            .post(&format!("/api/v1/sessions/{id}/start"), json!({}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }

    // Assert
    let failed = async |tenant: &Client, id: &str| {
        until("failed", Duration::from_secs(20), async || {
            let session = status_of(tenant, id).await;
            (session["status"] == "failed").then_some(session)
        })
        .await
    };
    let session = failed(&andi, &altered).await;
    assert!(
        session["last_error"]
            .as_str()
            .unwrap()
            .contains("do not decrypt"),
        "{session}"
    );
    // The unreachable server is tried again with back-off, each try on
    // the session; once the server is back, the session goes on.
    let retrying = until("tries again", Duration::from_secs(20), async || {
        let session = status_of(&budi, &gone).await;
        (session["reconnect"]["attempt"].as_i64() >= Some(2)).then_some(session)
    })
    .await;
    assert_eq!(retrying["status"], "disconnected", "{retrying}");
    let error = retrying["last_error"].as_str().unwrap();
    assert!(
        error.contains("did not start") && error.contains("WAHA server unreachable"),
        "{retrying}"
    );
    assert!(
        retrying["reconnect"]["next_try_at"].is_string(),
        "{retrying}"
    );
    let address = gone_url.trim_start_matches("http://").to_owned();
    let back = waha_server_at(&address).await;
    let created = until(
        "the session created again",
        Duration::from_secs(30),
        async || {
            back.requests()
                .into_iter()
                .find(|r| r.route() == "POST /api/sessions")
        },
    )
    .await;
    let key = created.json()["config"]["webhooks"][0]["hmac"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let scan = waha_status("SCAN_QR_CODE");
    let signature = hmac_hex::<Hmac<Sha512>>(&key, &scan);
    let (status, body) = post_waha(&app, &gone, scan, &signature).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let session = until("waiting for a scan", Duration::from_secs(20), async || {
        let session = status_of(&budi, &gone).await;
        (session["status"] == "qr").then_some(session)
    })
    .await;
    assert!(session["reconnect"].is_null(), "{session}");
}
