//! Auto-reply rules: created, listed, read, changed and deleted per tenant,
//! each field checked, sessions held to the tenant's.

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use wablast_domain::types::{SessionId, TenantId};

use crate::app::{Auth, Client, TestApp, code};
use crate::events::create_session;

fn tenant(client: &Client) -> TenantId {
    TenantId::from_uuid(client.tenant_id.parse().unwrap())
}

/// A session of `client`'s tenant, projected: the position to send with a
/// request that names it.
async fn projected_session(app: &TestApp, client: &Client) -> (SessionId, String) {
    let log = wablast::open_event_log(&app.settings).await.unwrap();
    let (id, sequence) = create_session(&log, tenant(client)).await;
    (id, format!("events:{sequence}"))
}

/// POST with a read-your-writes position.
async fn post_after(
    client: &Client,
    path: &str,
    body: Value,
    position: &str,
) -> (StatusCode, Value) {
    client
        .send(
            client
                .request(reqwest::Method::POST, path)
                .header("x-wablast-position", position)
                .json(&body),
        )
        .await
}

fn minimal() -> Value {
    json!({"name": "Jam buka", "trigger": "keyword", "pattern": "jam buka", "response": "Kami buka 09.00–18.00 WIB."})
}

#[tokio::test]
async fn a_rule_is_created_with_defaults_read_listed_changed_and_deleted() {
    // Arrange
    let app = TestApp::spawn().await;
    let a = app.tenant("Toko A").await;

    // Act
    let (status, created) = a.post("/api/v1/auto-replies", minimal()).await;

    // Assert: the defaults.
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "Jam buka");
    assert_eq!(created["trigger"], "keyword");
    assert_eq!(created["pattern"], "jam buka");
    assert_eq!(created["response"], "Kami buka 09.00–18.00 WIB.");
    assert_eq!(created["cooldown_seconds"], 3600);
    assert_eq!(created["enabled"], true);
    assert!(created["session_ids"].is_null());
    assert!(created["media_id"].is_null());
    let path = format!("/api/v1/auto-replies/{}", created["id"].as_str().unwrap());
    let (status, read) = a.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, created);

    // Act: a subset of the fields.
    let (_, uploaded) = crate::media::upload(&a, "promo.png", &crate::media::png()).await;
    let media: Uuid = uploaded["id"].as_str().unwrap().parse().unwrap();
    let (status, body) = a.patch(&path, json!({"media_id": Uuid::now_v7()})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "not_found"),
        "an unknown medium"
    );
    let (status, changed) = a
        .patch(
            &path,
            json!({"enabled": false, "cooldown_seconds": 0, "media_id": media}),
        )
        .await;

    // Assert: those, and only those, changed.
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["enabled"], false);
    assert_eq!(changed["cooldown_seconds"], 0);
    assert_eq!(changed["media_id"], media.to_string());
    for same in [
        "name",
        "trigger",
        "pattern",
        "response",
        "session_ids",
        "created_at",
    ] {
        assert_eq!(changed[same], created[same], "{same}");
    }
    let (_, cleared) = a.patch(&path, json!({"media_id": null})).await;
    assert!(cleared["media_id"].is_null());
    assert_eq!(cleared["enabled"], false, "absent fields stay");
    let (status, regex) = a
        .patch(
            &path,
            json!({"trigger": "regex", "pattern": r"(?i)^jam\s+buka"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{regex}");
    assert_eq!(regex["trigger"], "regex");
    let (status, same) = a.patch(&path, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(same["pattern"], regex["pattern"]);

    let (status, list) = a.get("/api/v1/auto-replies").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["trigger"], "regex");

    let (status, _) = a.delete(&path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = a.get(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "not_found");
    let (status, _) = a.delete(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_rules_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let a = app.tenant("Toko A").await;
    let with = |field: &str, value: Value| {
        let mut body = minimal();
        body[field] = value;
        body
    };

    for (body, field) in [
        (with("name", json!("  ")), "name"),
        (with("name", json!("n".repeat(101))), "name"),
        (with("trigger", json!("exact")), "trigger"),
        (with("pattern", json!("")), "pattern"),
        (with("pattern", json!("p".repeat(501))), "pattern"),
        (
            json!({"name": "r", "trigger": "regex", "pattern": "(unclosed", "response": "x"}),
            "pattern",
        ),
        (with("response", json!(" ")), "response"),
        (with("response", json!("r".repeat(4097))), "response"),
        (with("cooldown_seconds", json!(-1)), "cooldown_seconds"),
        (
            with("cooldown_seconds", json!(7 * 24 * 3600 + 1)),
            "cooldown_seconds",
        ),
        (with("session_ids", json!([])), "session_ids"),
    ] {
        let (status, answer) = a.post("/api/v1/auto-replies", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(code(&answer), "validation_failed", "{body}");
        assert_eq!(answer["error"]["details"]["field"], field, "{body}");
    }
    for body in [
        json!({"name": "r", "trigger": "keyword", "pattern": "x"}),
        with("cooldown_seconds", json!("soon")),
        with("session_ids", json!(["not-a-uuid"])),
        with("color", json!("red")),
    ] {
        let (status, answer) = a.post("/api/v1/auto-replies", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(code(&answer), "validation_failed", "{body}");
    }
    let (status, ok) = a
        .post(
            "/api/v1/auto-replies",
            with("cooldown_seconds", json!(7 * 24 * 3600)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ok}");

    // A change is checked with the rule it makes, and changes nothing when
    // refused.
    let path = format!("/api/v1/auto-replies/{}", ok["id"].as_str().unwrap());
    let (status, answer) = a
        .patch(&path, json!({"trigger": "regex", "pattern": "["}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["details"]["field"], "pattern");
    let (status, answer) = a.patch(&path, json!({"cooldown_seconds": 604801})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["details"]["field"], "cooldown_seconds");
    let (_, unchanged) = a.get(&path).await;
    assert_eq!(unchanged["trigger"], "keyword");
    assert_eq!(unchanged["cooldown_seconds"], 604800);
    let (_, list) = a.get("/api/v1/auto-replies").await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "only the good one"
    );
}

#[tokio::test]
async fn sessions_must_be_the_tenants_own() {
    // Arrange
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant("Toko A").await, app.tenant("Toko B").await);
    let (mine, at_mine) = projected_session(&app, &a).await;
    let (theirs, at_theirs) = projected_session(&app, &b).await;
    let nobodys = Uuid::now_v7();

    // Act
    let mut body = minimal();
    body["session_ids"] = json!([mine, mine]);
    let (status, created) = post_after(&a, "/api/v1/auto-replies", body, &at_mine).await;

    // Assert
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["session_ids"], json!([mine.to_string()]));

    for (other, position) in [
        (theirs.to_string(), &at_theirs),
        (nobodys.to_string(), &at_theirs),
    ] {
        let mut body = minimal();
        body["session_ids"] = json!([mine, other]);
        let (status, answer) = post_after(&a, "/api/v1/auto-replies", body, position).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(code(&answer), "validation_failed");
        assert_eq!(answer["error"]["details"]["field"], "session_ids");
        assert_eq!(answer["error"]["details"]["missing"], json!([other]));
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&other)
        );
    }

    let path = format!("/api/v1/auto-replies/{}", created["id"].as_str().unwrap());
    let (status, answer) = a.patch(&path, json!({"session_ids": [theirs]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer["error"]["details"]["missing"],
        json!([theirs.to_string()])
    );
    let (status, everywhere) = a.patch(&path, json!({"session_ids": null})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(everywhere["session_ids"].is_null(), "every session");
}

#[tokio::test]
async fn another_tenants_rules_are_not_found() {
    // Arrange
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant("Toko A").await, app.tenant("Toko B").await);
    let (_, created) = a.post("/api/v1/auto-replies", minimal()).await;
    let path = format!("/api/v1/auto-replies/{}", created["id"].as_str().unwrap());

    // Act / Assert
    let (status, body) = b.get(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "not_found");
    let (status, _) = b.patch(&path, json!({"enabled": false})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = b.delete(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = b.get("/api/v1/auto-replies").await;
    assert_eq!(list["items"], json!([]));
    let (_, still) = a.get(&path).await;
    assert_eq!(still["enabled"], true, "untouched");
    let (status, _) = a.get("/api/v1/auto-replies/not-a-uuid").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = a.with_auth(Auth::None).get("/api/v1/auto-replies").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&body), "unauthenticated");
}

#[tokio::test]
async fn rules_are_listed_in_pages() {
    let app = TestApp::spawn().await;
    let a = app.tenant("Toko A").await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let mut body = minimal();
        body["name"] = json!(format!("rule {n}"));
        let (_, created) = a.post("/api/v1/auto-replies", body).await;
        ids.push(created["id"].as_str().unwrap().to_owned());
    }

    let (_, first) = a.get("/api/v1/auto-replies?limit=2").await;
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (_, second) = a
        .get(&format!("/api/v1/auto-replies?limit=2&cursor={cursor}"))
        .await;

    let listed: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids);
    assert!(second["next_cursor"].is_null());
    let (status, _) = a.get("/api/v1/auto-replies?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
