//! Sessions: create, list, read, change, delete; start, stop, log out one
//! or many; plan limits; driver configs and their secrets; the QR code the
//! engine publishes; pairing codes and simulator controls relayed to the
//! engine over NATS; tenants kept apart; the admin's trust level.

use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use wablast_domain::session::{Session, SessionCommand, SessionStatus};
use wablast_eventstore::{Actor, AggregateKey, CommandHandler, CommandMetadata, ensure_key_value};

use crate::app::{Auth, Client, TestApp, code};

const SESSIONS: &str = "/api/v1/sessions";

fn path(id: &str) -> String {
    format!("{SESSIONS}/{id}")
}

/// A POST that, like the client's GETs, carries the position of the
/// client's last write, so it sees it (controls read the projection).
async fn post_seen(client: &Client, path: &str, body: Value) -> (StatusCode, Value) {
    let mut request = client.request(Method::POST, path).json(&body);
    let position = client.position.lock().unwrap().clone();
    if let Some(position) = position {
        request = request.header("x-wablast-position", position);
    }
    client.send(request).await
}

/// Creates a simulator session and returns its id.
async fn create(client: &Client, name: &str) -> String {
    let (status, body) = client.post(SESSIONS, json!({"name": name})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

/// Reports a status as the engine does: a command to the session's
/// aggregate. Returns the position of the commit (`events:N`).
async fn report(app: &TestApp, tenant: &str, session: &str, status: SessionStatus) -> String {
    let log = wablast::open_event_log(&app.settings).await.unwrap();
    let key = AggregateKey::new(tenant, session).unwrap();
    let committed = CommandHandler::<Session>::new(log, ())
        .with_upcasters(wablast_domain::upcasters())
        .execute(
            &key,
            SessionCommand::ReportStatus {
                status,
                phone_number: None,
                error: None,
                reason: None,
                at: Utc::now(),
            },
            &CommandMetadata::new(Actor::Engine("test-engine".into())),
        )
        .await
        .expect("the engine's report is accepted");
    format!("events:{}", committed.stream_sequence)
}

async fn database(app: &TestApp) -> PgPool {
    PgPool::connect(&app.settings.database_url).await.unwrap()
}

#[tokio::test]
async fn sessions_are_created_listed_read_changed_and_deleted() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;

    let response = budi
        .request(Method::POST, SESSIONS)
        .json(&json!({"name": "  CS Jakarta 1 ", "phone_number": "+6281234567890", "auto_start": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let position = response.headers()["x-wablast-position"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(position.starts_with("events:"), "{position}");
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["name"], "CS Jakarta 1");
    assert_eq!(created["driver"], "simulator");
    assert_eq!(created["login"], "qr");
    assert_eq!(created["status"], "idle");
    assert_eq!(created["phone_number"], "+6281234567890");
    assert_eq!(created["daily_limit"], 50);
    assert_eq!(created["daily_limit_follows_trust_level"], true);
    assert_eq!(created["sent_today"], 0);
    assert_eq!(created["trust_level"], 1);
    assert_eq!(created["auto_start"], true);
    assert_eq!(created["last_error"], Value::Null);
    assert_eq!(created["driver_config"], Value::Null);

    let (status, read) = budi.get_after(&path(&id), &position).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    for field in [
        "id",
        "name",
        "driver",
        "login",
        "status",
        "phone_number",
        "daily_limit",
        "sent_today",
        "trust_level",
        "auto_start",
        "last_error",
        "created_at",
    ] {
        assert_eq!(read[field], created[field], "{field}");
    }
    let (status, list) = budi.get_after(SESSIONS, &position).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["id"], id.as_str());
    assert_eq!(list["next_cursor"], Value::Null);

    let (status, changed) = budi
        .patch(
            &path(&id),
            json!({"name": "CS Bandung", "daily_limit": 120, "auto_start": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["name"], "CS Bandung");
    assert_eq!(changed["daily_limit"], 120);
    assert_eq!(changed["daily_limit_follows_trust_level"], false);
    assert_eq!(changed["auto_start"], false);
    let (_, read) = budi.get(&path(&id)).await;
    assert_eq!(read["name"], "CS Bandung");
    assert_eq!(read["daily_limit"], 120);

    let (status, body) = budi.delete(&path(&id)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = budi.get(&path(&id)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "not_found");
    let (_, list) = budi.get(SESSIONS).await;
    assert_eq!(list["items"], json!([]));
    let (status, _) = budi.delete(&path(&id)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = budi.post(&format!("{}/start", path(&id)), json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn start_stop_and_logout_follow_the_status_flow() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let id = create(&budi, "CS 1").await;
    let action = |verb: &str| format!("{}/{verb}", path(&id));

    let (status, body) = budi.post(&action("start"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "starting");
    assert_eq!(body["id"], id.as_str());
    let (status, body) = budi.post(&action("start"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(code(&body), "invalid_state");

    let (status, body) = budi.post(&action("stop"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "idle");
    let (status, body) = budi.post(&action("stop"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(code(&body), "invalid_state");

    let (status, body) = budi.post(&action("logout"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "logged_out");
    let (status, body) = budi.post(&action("logout"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(code(&body), "invalid_state");

    let (status, body) = budi.post(&action("start"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["status"], "starting");
    let (_, read) = budi.get(&path(&id)).await;
    assert_eq!(read["status"], "starting");
}

#[tokio::test]
async fn batches_answer_each_id_and_never_touch_another_tenant() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let siti = app.tenant("Toko Siti").await;
    let own = create(&budi, "CS Budi").await;
    let theirs = create(&siti, "CS Siti").await;
    let unknown = uuid::Uuid::now_v7().to_string();

    let (status, body) = budi
        .post(
            &format!("{SESSIONS}/start"),
            json!({"ids": [own, unknown, theirs, "not-a-uuid"]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0], json!({"id": own, "status": "accepted"}));
    for (result, id) in results[1..].iter().zip([&unknown, &theirs, "not-a-uuid"]) {
        assert_eq!(result["id"], id);
        assert_eq!(result["status"], "error");
        assert_eq!(result["error"]["code"], "not_found");
    }
    let (_, read) = budi.get(&path(&own)).await;
    assert_eq!(read["status"], "starting");
    let (_, read) = siti.get(&path(&theirs)).await;
    assert_eq!(
        read["status"], "idle",
        "the other tenant's session did not start"
    );

    let (status, body) = budi
        .post(
            &format!("{SESSIONS}/stop"),
            json!({"ids": [own, own, theirs]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["results"][0]["status"], "accepted");
    assert_eq!(body["results"][1]["error"]["code"], "invalid_state");
    assert_eq!(body["results"][2]["error"]["code"], "not_found");

    // stop-all stops the caller's running sessions only.
    let (status, _) = siti
        .post(&format!("{}/start", path(&theirs)), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = budi.post(&format!("{}/start", path(&own)), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, body) = post_seen(&budi, &format!("{SESSIONS}/stop-all"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["results"], json!([{"id": own, "status": "accepted"}]));
    let (_, read) = budi.get(&path(&own)).await;
    assert_eq!(read["status"], "idle");
    let (_, read) = siti.get(&path(&theirs)).await;
    assert_eq!(read["status"], "starting");
    let (status, body) = post_seen(&budi, &format!("{SESSIONS}/stop-all"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["results"], json!([]), "nothing left running");

    let too_many: Vec<String> = (0..501).map(|_| unknown.clone()).collect();
    let (status, body) = budi
        .post(&format!("{SESSIONS}/start"), json!({"ids": too_many}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["details"]["field"], "ids");
    let (status, _) = budi.post(&format!("{SESSIONS}/start"), json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_tenant_without_a_plan_has_one_session_and_the_default_daily_cap() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;

    let (status, body) = budi
        .post(SESSIONS, json!({"name": "CS 1", "daily_limit": 501}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(code(&body), "plan_limit_exceeded");

    let (status, first) = budi
        .post(SESSIONS, json!({"name": "CS 1", "daily_limit": 500}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["daily_limit"], 500);
    let id = first["id"].as_str().unwrap();

    let (status, body) = budi.post(SESSIONS, json!({"name": "CS 2"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(code(&body), "plan_limit_exceeded");

    let (status, body) = budi.patch(&path(id), json!({"daily_limit": 501})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(code(&body), "plan_limit_exceeded");

    // A deleted session no longer counts.
    let (status, _) = budi.delete(&path(id)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = budi.post(SESSIONS, json!({"name": "CS 2"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn bad_fields_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;

    let cases = [
        (json!({"name": "   "}), "validation_failed", "name"),
        (json!({"name": "x".repeat(65)}), "validation_failed", "name"),
        (json!({"name": "CS\n1"}), "validation_failed", "name"),
        (
            json!({"name": "CS", "driver": "telegram"}),
            "validation_failed",
            "driver",
        ),
        (
            json!({"name": "CS", "login": "sms"}),
            "validation_failed",
            "login",
        ),
        (
            json!({"name": "CS", "daily_limit": 0}),
            "validation_failed",
            "daily_limit",
        ),
        (
            json!({"name": "CS", "daily_limit": -3}),
            "validation_failed",
            "daily_limit",
        ),
        (
            json!({"name": "CS", "phone_number": "0812"}),
            "invalid_phone",
            "phone_number",
        ),
        (
            json!({"name": "CS", "phone_number": "0812-3456-7890"}),
            "invalid_phone",
            "phone_number",
        ),
        (
            json!({"name": "CS", "phone_number": "+622155551234"}),
            "invalid_phone",
            "phone_number",
        ),
    ];
    for (body, expected_code, field) in cases {
        let (status, answer) = budi.post(SESSIONS, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {answer}");
        assert_eq!(code(&answer), expected_code, "{body}");
        assert_eq!(answer["error"]["details"]["field"], field, "{body}");
    }
    for body in [
        json!({"name": "CS", "colour": "red"}),
        json!({"name": 5}),
        json!({}),
        json!({"name": "CS", "auto_start": "yes"}),
    ] {
        let (status, answer) = budi.post(SESSIONS, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {answer}");
        assert_eq!(code(&answer), "validation_failed");
    }
    // The aggregate's own rule: a pairing login needs the number.
    let (status, answer) = budi
        .post(SESSIONS, json!({"name": "CS", "login": "pairing"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(code(&answer), "validation_failed");

    // Nothing was created by any of these.
    let (_, list) = budi.get(SESSIONS).await;
    assert_eq!(list["items"], json!([]));

    let (status, created) = budi
        .post(
            SESSIONS,
            json!({"name": "CS", "login": "pairing", "phone_number": "+6281234567890"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"daily_limit": 0}), "daily_limit"),
        (json!({"trust_level": 9}), "trust_level"),
    ] {
        let (status, answer) = budi.patch(&path(id), body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {answer}");
        assert_eq!(answer["error"]["details"]["field"], field);
    }
    let (status, _) = budi.get(&format!("{SESSIONS}/not-a-uuid")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn driver_configs_are_checked_and_their_secrets_never_answered() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let db = database(&app).await;

    let refused = [
        (json!({"name": "W", "driver": "waha"}), "driver_config"),
        (
            json!({"name": "S", "driver": "simulator", "driver_config": {"base_url": "https://x.example"}}),
            "driver_config",
        ),
        // Native keeps its keys itself: no driver_config.
        (
            json!({"name": "N", "driver": "native", "driver_config": {"base_url": "https://x.example"}}),
            "driver_config",
        ),
        (
            json!({"name": "W", "driver": "waha", "driver_config": {"base_url": "waha.local", "api_key": "k"}}),
            "driver_config.base_url",
        ),
        (
            json!({"name": "W", "driver": "waha", "driver_config": {"base_url": "https://waha.example.com", "api_key": ""}}),
            "driver_config.api_key",
        ),
        (
            json!({"name": "W", "driver": "waha", "driver_config": {"base_url": "https://waha.example.com"}}),
            "driver_config",
        ),
        (
            json!({"name": "C", "driver": "cloud", "driver_config": {"phone_number_id": "123", "access_token": "t", "app_secret": "s"}}),
            "driver_config",
        ),
        (
            json!({"name": "C", "driver": "cloud", "driver_config": {"phone_number_id": "123", "access_token": "t", "app_secret": "s", "verify_token": "v", "api_base": "not a url"}}),
            "driver_config.api_base",
        ),
    ];
    for (body, field) in refused {
        let (status, answer) = budi.post(SESSIONS, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {answer}");
        assert_eq!(code(&answer), "validation_failed");
        assert_eq!(answer["error"]["details"]["field"], field, "{body}");
    }
    let stored: i64 = sqlx::query_scalar("select count(*) from session_credentials")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(stored, 0, "a refused create stores nothing");

    // WAHA: the key never comes back, in any answer.
    let secret = "waha-key-sangat-rahasia";
    let (status, created) = budi
        .post(
            SESSIONS,
            json!({"name": "WAHA 1", "driver": "waha", "driver_config": {"base_url": "https://waha.example.com", "api_key": secret, "session_name": "toko"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created["driver_config"],
        json!({"base_url": "https://waha.example.com/", "session_name": "toko",
               "hook_url": app.url(&format!("/hooks/waha/{id}"))})
    );
    let mut answers = vec![created.clone()];
    answers.push(budi.get(&path(&id)).await.1);
    answers.push(budi.get(SESSIONS).await.1);
    answers.push(budi.patch(&path(&id), json!({"name": "WAHA Satu"})).await.1);
    answers.push(
        budi.post(&format!("{}/start", path(&id)), json!({}))
            .await
            .1,
    );
    for answer in &answers {
        assert!(!answer.to_string().contains(secret), "{answer}");
        assert!(!answer.to_string().contains("api_key"), "{answer}");
    }
    assert_eq!(answers[1]["driver_config"]["session_name"], "toko");
    assert_eq!(
        answers[2]["items"][0]["driver_config"]["base_url"],
        "https://waha.example.com/"
    );

    // At rest: the public part in the clear, the key sealed.
    let (driver, config, sealed): (String, Value, Vec<u8>) = sqlx::query_as(
        "select driver, config, secret from session_credentials where session_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(driver, "waha");
    assert!(!config.to_string().contains(secret));
    assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_bytes()));

    // Deleting the session keeps a WAHA session's credentials for the
    // engine, which removes the session from its WAHA server, then deletes
    // them (no engine runs here).
    let (status, _) = budi.delete(&path(&id)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let stored: i64 = sqlx::query_scalar("select count(*) from session_credentials")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(stored, 1);
    sqlx::query("delete from session_credentials")
        .execute(&db)
        .await
        .unwrap();

    // Cloud: three secrets, none answered; the default Graph API base.
    let (status, created) = budi
        .post(
            SESSIONS,
            json!({"name": "Cloud 1", "driver": "cloud", "driver_config": {
                "phone_number_id": "109876543210", "access_token": "EAAG-token-rahasia",
                "app_secret": "app-secret-rahasia", "verify_token": "verify-rahasia"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let read = budi.get(&path(&id)).await.1;
    for answer in [&created, &read] {
        let text = answer.to_string();
        assert!(!text.contains("rahasia"), "{text}");
        assert_eq!(answer["driver"], "cloud");
        assert_eq!(answer["driver_config"]["phone_number_id"], "109876543210");
        assert_eq!(
            answer["driver_config"]["api_base"],
            "https://graph.facebook.com/"
        );
    }

    // Deleting a Cloud session deletes its credentials: Meta keeps no
    // session to remove.
    let (status, _) = budi.delete(&path(&id)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let stored: i64 = sqlx::query_scalar("select count(*) from session_credentials")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn another_tenants_session_is_not_found_on_every_endpoint() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let siti = app.tenant("Toko Siti").await;
    let id = create(&budi, "CS Budi").await;
    // Siti's reads wait for Budi's write, so a 404 is not lag.
    *siti.position.lock().unwrap() = budi.position.lock().unwrap().clone();

    let (status, body) = siti.get(&path(&id)).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = siti.get(&format!("{}/qr", path(&id))).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, list) = siti.get(SESSIONS).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"], json!([]));
    let (status, body) = siti.patch(&path(&id), json!({"name": "mine now"})).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    for verb in ["start", "stop", "logout"] {
        let (status, body) = siti.post(&format!("{}/{verb}", path(&id)), json!({})).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{verb}"
        );
    }
    for (verb, body) in [
        ("pairing-code", json!({"phone_number": "+6281234567890"})),
        ("simulator/scan", json!({"phone_number": "+6281234567890"})),
        (
            "simulator/inbound",
            json!({"from": "+6281234567890", "text": "halo"}),
        ),
    ] {
        let (status, answer) = post_seen(&siti, &format!("{}/{verb}", path(&id)), body).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{verb}"
        );
    }
    let (status, body) = siti.delete(&path(&id)).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));

    // Untouched.
    let (status, read) = budi.get(&path(&id)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["name"], "CS Budi");
    assert_eq!(read["status"], "idle");
}

#[tokio::test]
async fn only_the_platform_admin_sets_the_trust_level_of_any_tenants_session() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let admin = app.admin().await;
    let id = create(&budi, "CS Budi").await;

    // The owner may not, not even along with a setting it may change.
    let (status, body) = budi
        .patch(&path(&id), json!({"trust_level": 3, "name": "CS Naik"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "forbidden");
    let (_, read) = budi.get(&path(&id)).await;
    assert_eq!(read["trust_level"], 1);
    assert_eq!(read["name"], "CS Budi", "nothing was applied");

    // Nor may an API key (a member).
    let (status, key) = budi.post("/api/v1/api-keys", json!({"name": "shop"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let integration = budi.with_auth(Auth::ApiKey(key["key"].as_str().unwrap().to_owned()));
    let (status, body) = integration
        .patch(&path(&id), json!({"trust_level": 2}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // The admin, on another tenant's session: the level and the daily limit
    // that follows it.
    let seen = budi.position.lock().unwrap().clone().unwrap();
    let response = admin
        .request(Method::PATCH, &path(&id))
        .header("x-wablast-position", seen)
        .json(&json!({"trust_level": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let changed_at = response.headers()["x-wablast-position"]
        .to_str()
        .unwrap()
        .to_owned();
    let changed: Value = response.json().await.unwrap();
    assert_eq!(changed["trust_level"], 3);
    assert_eq!(changed["daily_limit"], 200);
    assert_eq!(changed["id"], id.as_str());
    let (status, body) = admin.patch(&path(&id), json!({"name": "CS Admin"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = admin.patch(&path(&id), json!({})).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "nothing to show the admin: {body}"
    );
    let (status, body) = admin
        .patch(
            &path(&uuid::Uuid::now_v7().to_string()),
            json!({"trust_level": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // The admin reads other tenants' sessions no more than anyone.
    let (status, _) = admin.get(&path(&id)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, read) = budi.get_after(&path(&id), &changed_at).await;
    assert_eq!(read["trust_level"], 3);
    assert_eq!(read["daily_limit"], 200);
}

#[tokio::test]
async fn an_api_key_manages_sessions_like_a_user() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let (status, key) = budi.post("/api/v1/api-keys", json!({"name": "shop"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let integration = budi.with_auth(Auth::ApiKey(key["key"].as_str().unwrap().to_owned()));

    let id = create(&integration, "CS API").await;
    let (status, read) = integration.get(&path(&id)).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    let (status, body) = integration
        .post(&format!("{}/start", path(&id)), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = integration
        .patch(&path(&id), json!({"auto_start": true}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["auto_start"], true);
    let (_, list) = budi.get(SESSIONS).await;
    assert_eq!(list["items"][0]["id"], id.as_str(), "the same tenant's");
    let (status, _) = integration.delete(&path(&id)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let anonymous = budi.with_auth(Auth::None);
    let (status, body) = anonymous.get(SESSIONS).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    let (status, _) = anonymous.post(SESSIONS, json!({"name": "x"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_qr_code_the_engine_publishes_is_served_while_the_session_waits_for_a_scan() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let id = create(&budi, "CS QR").await;
    let qr_path = format!("{}/qr", path(&id));

    let (status, body) = budi.get(&qr_path).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "invalid_state");

    let (status, _) = budi.post(&format!("{}/start", path(&id)), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let position = report(&app, &budi.tenant_id, &id, SessionStatus::Qr).await;

    // Waiting for a scan, but the engine has published no code yet.
    let (status, body) = budi.get_after(&qr_path, &position).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "invalid_state");

    // The engine publishes the code, as the control contract says.
    let log = wablast::open_event_log(&app.settings).await.unwrap();
    let bucket = ensure_key_value(
        log.jetstream(),
        &format!("{}_session_qr", app.prefix),
        "test",
        wablast_eventstore::Replicas::One,
    )
    .await
    .unwrap();
    let payload = "2@Xy9kQ3pLm0vR7tWz,Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78St90Uv12=,Wx34Yz56";
    let entry = json!({"qr": payload, "expires_at": Utc::now() + chrono::Duration::seconds(60)});
    bucket
        .put(&id, serde_json::to_vec(&entry).unwrap().into())
        .await
        .unwrap();

    let response = budi
        .request(Method::GET, &qr_path)
        .header("x-wablast-position", &position)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let png = response.bytes().await.unwrap();
    let image = image::load_from_memory(&png).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1);
    let (_, decoded) = grids[0].decode().unwrap();
    assert_eq!(decoded, payload);

    let response = budi
        .request(Method::GET, &qr_path)
        .header("x-wablast-position", &position)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["qr"], payload);
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap()).unwrap(),
        chrono::DateTime::parse_from_rfc3339(entry["expires_at"].as_str().unwrap()).unwrap()
    );

    // An expired code is no code.
    let expired = json!({"qr": payload, "expires_at": Utc::now() - chrono::Duration::seconds(1)});
    bucket
        .put(&id, serde_json::to_vec(&expired).unwrap().into())
        .await
        .unwrap();
    let (status, body) = budi.get_after(&qr_path, &position).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Once linked, no QR is served even if one is left in the bucket.
    bucket
        .put(&id, serde_json::to_vec(&entry).unwrap().into())
        .await
        .unwrap();
    let position = report(&app, &budi.tenant_id, &id, SessionStatus::Authenticated).await;
    let (status, body) = budi.get_after(&qr_path, &position).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "invalid_state");
}

/// A fake engine: answers the requests on one subject with `reply`, and
/// hands each request (payload and actor header) to the test.
async fn fake_engine(
    nats: &async_nats::Client,
    subject: String,
    reply: Value,
) -> tokio::sync::mpsc::UnboundedReceiver<(Value, Option<String>)> {
    let mut requests = nats.subscribe(subject).await.unwrap();
    nats.flush().await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let nats = nats.clone();
    tokio::spawn(async move {
        while let Some(message) = requests.next().await {
            let body: Value = serde_json::from_slice(&message.payload).unwrap_or(Value::Null);
            let actor = message
                .headers
                .as_ref()
                .and_then(|h| h.get("Wablast-Actor"))
                .map(|v| v.to_string());
            let _ = tx.send((body, actor));
            if let Some(inbox) = message.reply {
                nats.publish(inbox, serde_json::to_vec(&reply).unwrap().into())
                    .await
                    .unwrap();
            }
        }
    });
    rx
}

/// Creates a simulator session and starts it (no engine takes it up in a
/// [`TestApp::spawn`]ed app: it stays `starting`); returns its id.
async fn create_started(client: &Client, name: &str) -> String {
    let id = create(client, name).await;
    let (status, body) = client
        .post(&format!("{}/start", path(&id)), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "starting");
    id
}

#[tokio::test]
async fn pairing_codes_and_simulator_controls_are_relayed_to_the_engine() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let id = create_started(&budi, "CS Sim").await;
    let nats = async_nats::connect(&app.settings.nats_url).await.unwrap();
    let subject = |verb: &str| {
        format!(
            "{}.engine.session.{}.{id}.{verb}",
            app.prefix, budi.tenant_id
        )
    };
    let action = |verb: &str| format!("{}/{verb}", path(&id));

    // Started, but no engine takes the session up: 503 once the request's
    // time is spent.
    let started = std::time::Instant::now();
    let (status, body) = post_seen(
        &budi,
        &action("pairing-code"),
        json!({"phone_number": "+6281234567890"}),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(code(&body), "engine_unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("engine")
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(10),
        "{waited:?}"
    );

    let mut asked = fake_engine(
        &nats,
        subject("pairing_code"),
        json!({"ok": {"code": "ABCD-EFGH"}}),
    )
    .await;
    let (status, body) = post_seen(
        &budi,
        &action("pairing-code"),
        json!({"phone_number": "+6281234567890"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"code": "ABCD-EFGH"}));
    let (request, actor) = asked.recv().await.unwrap();
    assert_eq!(request, json!({"phone_number": "+6281234567890"}));
    assert!(actor.unwrap().starts_with("user:"));

    let (status, body) = post_seen(
        &budi,
        &action("pairing-code"),
        json!({"phone_number": "0812"}),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_phone")
    );
    assert!(
        asked.try_recv().is_err(),
        "a bad number never reaches the engine"
    );

    // The engine's refusal is relayed with its status.
    let mut scans = fake_engine(
        &nats,
        subject("simulator_scan"),
        json!({"error": {"code": "invalid_state", "message": "not waiting for a scan"}}),
    )
    .await;
    let (status, body) = post_seen(
        &budi,
        &action("simulator/scan"),
        json!({"phone_number": "+6281234567890"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "invalid_state");
    assert_eq!(body["error"]["message"], "not waiting for a scan");
    assert_eq!(
        scans.recv().await.unwrap().0,
        json!({"phone_number": "+6281234567890"})
    );

    let mut inbound = fake_engine(
        &nats,
        subject("simulator_inbound"),
        json!({"ok": {"message_id": "sim-1"}}),
    )
    .await;
    let (status, body) = post_seen(
        &budi,
        &action("simulator/inbound"),
        json!({"from": "+6281298765432", "text": "Halo, masih ada stok?"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"status": "accepted", "message_id": "sim-1"}));
    assert_eq!(
        inbound.recv().await.unwrap().0,
        json!({"from": "+6281298765432", "text": "Halo, masih ada stok?"})
    );
    for (body, expected) in [
        (
            json!({"from": "+6281298765432", "text": "  "}),
            "validation_failed",
        ),
        (json!({"from": "nobody", "text": "halo"}), "invalid_phone"),
    ] {
        let (status, answer) = post_seen(&budi, &action("simulator/inbound"), body).await;
        assert_eq!((status, code(&answer)), (StatusCode::BAD_REQUEST, expected));
    }

    // Simulator controls are for simulator sessions only.
    let siti = app.tenant("Toko Siti").await;
    let (status, waha) = siti
        .post(
            SESSIONS,
            json!({"name": "WAHA", "driver": "waha", "driver_config": {"base_url": "https://waha.example.com", "api_key": "k"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{waha}");
    let waha = waha["id"].as_str().unwrap();
    for (verb, body) in [
        ("simulator/scan", json!({"phone_number": "+6281234567890"})),
        (
            "simulator/inbound",
            json!({"from": "+6281234567890", "text": "halo"}),
        ),
    ] {
        let (status, answer) = post_seen(&siti, &format!("{}/{verb}", path(waha)), body).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::CONFLICT, "invalid_state"),
            "{verb}: {answer}"
        );
    }
}

#[tokio::test]
async fn an_engine_that_does_not_answer_in_time_is_unavailable() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let id = create_started(&budi, "CS Sim").await;
    let nats = async_nats::connect(&app.settings.nats_url).await.unwrap();
    let _silent = nats
        .subscribe(format!(
            "{}.engine.session.{}.{id}.simulator_scan",
            app.prefix, budi.tenant_id
        ))
        .await
        .unwrap();
    nats.flush().await.unwrap();

    let started = std::time::Instant::now();
    let (status, body) = post_seen(
        &budi,
        &format!("{}/simulator/scan", path(&id)),
        json!({"phone_number": "+6281234567890"}),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(code(&body), "engine_unavailable");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
}

#[tokio::test]
async fn controls_of_a_session_that_is_not_started_are_invalid_state() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    // Three sessions: a plan allows them.
    let admin = app.admin().await;
    let plan = crate::campaigns::define_plan(&admin, 100, 10).await;
    crate::campaigns::grant_plan(&admin, &budi, &plan).await;
    let idle = create(&budi, "CS Idle").await;
    let stopped = create_started(&budi, "CS Stopped").await;
    let (status, body) = budi
        .post(&format!("{}/stop", path(&stopped)), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let logged_out = create(&budi, "CS Logged out").await;
    let (status, body) = budi
        .post(&format!("{}/logout", path(&logged_out)), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // An engine that would answer: it must never be asked.
    let nats = async_nats::connect(&app.settings.nats_url).await.unwrap();
    let mut asked = fake_engine(
        &nats,
        format!("{}.engine.session.{}.*.*", app.prefix, budi.tenant_id),
        json!({"ok": {"code": "ABCD-EFGH"}}),
    )
    .await;

    for (id, was) in [
        (&idle, "idle"),
        (&stopped, "idle"),
        (&logged_out, "logged_out"),
    ] {
        for (verb, body) in [
            ("pairing-code", json!({"phone_number": "+6281234567890"})),
            ("simulator/scan", json!({"phone_number": "+6281234567890"})),
            (
                "simulator/inbound",
                json!({"from": "+6281298765432", "text": "halo"}),
            ),
        ] {
            let (status, answer) = budi.post(&format!("{}/{verb}", path(id)), body).await;
            assert_eq!(
                (status, code(&answer)),
                (StatusCode::CONFLICT, "invalid_state"),
                "{verb} of a session that is {was}: {answer}"
            );
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("not started") && message.contains(was),
                "{message}"
            );
        }
    }
    assert!(asked.try_recv().is_err(), "the engine was asked");

    // An unknown session stays a 404.
    let (status, answer) = budi
        .post(
            &format!("{}/simulator/scan", path(&uuid::Uuid::now_v7().to_string())),
            json!({"phone_number": "+6281234567890"}),
        )
        .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[tokio::test]
async fn a_request_made_just_before_an_engine_takes_the_session_up_waits_for_it() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let id = create_started(&budi, "CS Sim").await;
    let nats = async_nats::connect(&app.settings.nats_url).await.unwrap();
    let subject = format!(
        "{}.engine.session.{}.{id}.pairing_code",
        app.prefix, budi.tenant_id
    );

    // The engine subscribes a moment after the request was made.
    let engine = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let asked = fake_engine(&nats, subject, json!({"ok": {"code": "WXYZ-1234"}})).await;
        (nats, asked)
    });
    let (status, body) = post_seen(
        &budi,
        &format!("{}/pairing-code", path(&id)),
        json!({"phone_number": "+6281234567890"}),
    )
    .await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["code"], "WXYZ-1234");
    let (_nats, mut asked) = engine.await.unwrap();
    assert!(asked.recv().await.is_some());
    assert!(asked.try_recv().is_err(), "asked once");
}
