//! Webhook subscriptions: created with a secret shown once and stored
//! encrypted, listed, read and deleted per tenant.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::app::{Auth, TestApp, code};

const SECRET: &str = "a-secret-of-the-integration";

async fn database(app: &TestApp) -> PgPool {
    PgPool::connect(&app.settings.database_url).await.unwrap()
}

#[tokio::test]
async fn a_webhook_is_created_read_listed_and_deleted_without_its_secret_ever_coming_back() {
    // Arrange
    let app = TestApp::spawn().await;
    let a = app.tenant("Toko A").await;

    // Act
    let (status, created) = a
        .post(
            "/api/v1/webhooks",
            json!({"url": "https://shop.example/hooks/wablast", "events": ["MessageDelivered", "MessageFailed"], "secret": SECRET}),
        )
        .await;

    // Assert
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["url"], "https://shop.example/hooks/wablast");
    assert_eq!(
        created["events"],
        json!(["MessageDelivered", "MessageFailed"])
    );
    assert_eq!(created["secret"], SECRET, "shown once, at creation");
    assert!(created["created_at"].is_string());
    let id = created["id"].as_str().unwrap().to_owned();

    let (status, one) = a.get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["id"], id.as_str());
    assert_eq!(one["events"], created["events"]);
    assert!(one.get("secret").is_none(), "{one}");
    let (status, list) = a.get("/api/v1/webhooks").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["id"], id.as_str());
    assert!(list["items"][0].get("secret").is_none());
    assert!(list["next_cursor"].is_null());
    assert!(!list.to_string().contains(SECRET));

    let (status, _) = a.delete(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, gone) = a.get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&gone), "not_found");
    let (status, _) = a.delete(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = a.get("/api/v1/webhooks").await;
    assert_eq!(list["items"], json!([]));
}

#[tokio::test]
async fn without_a_secret_one_is_generated_and_the_stored_secret_is_encrypted() {
    // Arrange
    let app = TestApp::spawn().await;
    let a = app.tenant("Toko A").await;
    let db = database(&app).await;

    // Act
    let (status, generated) = a
        .post(
            "/api/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]}),
        )
        .await;
    let (_, given) = a
        .post(
            "/api/v1/webhooks",
            json!({"url": "http://localhost/hook", "events": ["SessionCreated"], "secret": SECRET}),
        )
        .await;

    // Assert
    assert_eq!(status, StatusCode::CREATED, "{generated}");
    let secret = generated["secret"].as_str().unwrap();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 6 + 64,
        "{secret}"
    );
    for (body, secret) in [(&generated, secret), (&given, SECRET)] {
        let id: Uuid = body["id"].as_str().unwrap().parse().unwrap();
        let (nonce, ciphertext): (Vec<u8>, Vec<u8>) =
            sqlx::query_as("select secret_nonce, secret_ciphertext from webhooks where id = $1")
                .bind(id)
                .fetch_one(&db)
                .await
                .unwrap();
        assert_eq!(nonce.len(), 12);
        assert_eq!(ciphertext.len(), secret.len() + 16, "ciphertext and tag");
        assert!(
            !ciphertext
                .windows(8)
                .any(|w| secret.as_bytes().windows(8).any(|s| s == w)),
            "no part of the secret is stored in clear"
        );
        let row: Value = sqlx::query_scalar("select to_jsonb(w) from webhooks w where id = $1")
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap();
        assert!(!row.to_string().contains(secret));
    }
    // A fresh nonce per row.
    let nonces: Vec<Vec<u8>> = sqlx::query_scalar("select secret_nonce from webhooks")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_ne!(nonces[0], nonces[1]);
}

#[tokio::test]
async fn bad_webhooks_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let a = app.tenant("Toko A").await;
    let long_url = format!("https://shop.example/{}", "x".repeat(2100));

    for (body, field) in [
        (json!({"url": "shop.example/hook", "events": ["*"]}), "url"),
        (
            json!({"url": "ftp://shop.example/hook", "events": ["*"]}),
            "url",
        ),
        (json!({"url": "https://", "events": ["*"]}), "url"),
        (json!({"url": "", "events": ["*"]}), "url"),
        (json!({"url": long_url, "events": ["*"]}), "url"),
        (json!({"url": "https://a.example", "events": []}), "events"),
        (
            json!({"url": "https://a.example", "events": ["Session.Created"]}),
            "events",
        ),
        (
            json!({"url": "https://a.example", "events": [""]}),
            "events",
        ),
        (
            json!({"url": "https://a.example", "events": ["*"], "secret": "short"}),
            "secret",
        ),
    ] {
        let (status, answer) = a.post("/api/v1/webhooks", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(code(&answer), "validation_failed", "{body}");
        assert_eq!(answer["error"]["details"]["field"], field, "{body}");
    }
    for body in [
        json!({"events": ["*"]}),
        json!({"url": "https://a.example", "events": "*"}),
        json!({"url": "https://a.example", "events": ["*"], "extra": 1}),
    ] {
        let (status, answer) = a.post("/api/v1/webhooks", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(code(&answer), "validation_failed", "{body}");
    }
    let (_, list) = a.get("/api/v1/webhooks").await;
    assert_eq!(list["items"], json!([]), "nothing was created");
}

#[tokio::test]
async fn another_tenants_webhooks_are_not_found() {
    // Arrange
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant("Toko A").await, app.tenant("Toko B").await);
    let (_, created) = a
        .post(
            "/api/v1/webhooks",
            json!({"url": "https://a.example/hook", "events": ["*"]}),
        )
        .await;
    let path = format!("/api/v1/webhooks/{}", created["id"].as_str().unwrap());

    // Act / Assert
    let (status, body) = b.get(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "not_found");
    let (status, _) = b.delete(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = b.get("/api/v1/webhooks").await;
    assert_eq!(list["items"], json!([]));
    let (status, _) = a.get(&path).await;
    assert_eq!(status, StatusCode::OK, "still there for its tenant");
    let (status, body) = a.with_auth(Auth::None).get("/api/v1/webhooks").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&body), "unauthenticated");
}

#[tokio::test]
async fn webhooks_are_listed_in_pages_and_remember_where_the_log_was() {
    // Arrange
    let app = TestApp::spawn().await;
    let a = app.tenant("Toko A").await;
    let log = wablast::open_event_log(&app.settings).await.unwrap();
    let tenant = wablast_domain::types::TenantId::from_uuid(a.tenant_id.parse().unwrap());
    let (_, at) = crate::events::create_session(&log, tenant).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let (status, body) = a
            .post(
                "/api/v1/webhooks",
                json!({"url": format!("https://a.example/{n}"), "events": ["*"]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        ids.push(body["id"].as_str().unwrap().to_owned());
    }

    // Act
    let (_, first) = a.get("/api/v1/webhooks?limit=2").await;
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (_, second) = a
        .get(&format!("/api/v1/webhooks?limit=2&cursor={cursor}"))
        .await;

    // Assert
    let listed: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids);
    assert!(second["next_cursor"].is_null());
    let (status, _) = a.get("/api/v1/webhooks?cursor=nonsense").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let from: i64 = sqlx::query_scalar("select from_events from webhooks where id = $1")
        .bind(ids[0].parse::<Uuid>().unwrap())
        .fetch_one(&database(&app).await)
        .await
        .unwrap();
    assert!(
        from >= at as i64,
        "deliveries start after the session's commit ({from} < {at})"
    );
}
