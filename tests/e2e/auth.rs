//! Accounts and access: registration, login, tokens, API keys, roles.

use reqwest::StatusCode;
use serde_json::json;

use crate::app::{ADMIN_EMAIL, Auth, TestApp, code};

#[tokio::test]
async fn register_login_and_call_with_a_token_and_an_api_key() {
    let app = TestApp::spawn().await;
    let anonymous = app.tenant("Toko Budi").await.with_auth(Auth::None);

    let (status, registered) = anonymous
        .post(
            "/api/v1/auth/register",
            json!({"email": "Siti@Example.Test", "password": "rahasia-siti", "name": "Siti", "organization": "Toko Siti"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    assert_eq!(registered["user"]["email"], "siti@example.test");
    assert_eq!(registered["user"]["role"], "owner");
    assert_eq!(registered["tenant"]["name"], "Toko Siti");
    assert!(
        registered.get("password").is_none() && registered["user"].get("password_hash").is_none()
    );

    let (status, login) = anonymous
        .post(
            "/api/v1/auth/login",
            json!({"email": "siti@example.test", "password": "rahasia-siti"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["token_type"], "Bearer");
    assert_eq!(login["expires_in"], 24 * 3600);
    let siti = anonymous.with_auth(Auth::Bearer(
        login["access_token"].as_str().unwrap().to_owned(),
    ));

    let (status, me) = siti.get("/api/v1/me").await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["user"]["email"], "siti@example.test");
    assert_eq!(me["tenant"]["id"], registered["tenant"]["id"]);

    let (status, created) = siti.post("/api/v1/api-keys", json!({"name": "shop"})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("wbk_"));
    let integration = siti.with_auth(Auth::ApiKey(key.clone()));
    let (status, me) = integration.get("/api/v1/me").await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["tenant"]["id"], registered["tenant"]["id"]);
    assert_eq!(me["user"], serde_json::Value::Null);
    assert_eq!(me["api_key"]["name"], "shop");

    let (status, listed) = siti.get("/api/v1/api-keys").await;
    assert_eq!(status, StatusCode::OK);
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert!(
        items[0].get("key").is_none(),
        "a key is shown once, never listed"
    );
    assert_eq!(items[0]["prefix"], &key[..12]);

    // An API key acts as a member: it cannot mint more keys.
    let (status, body) = integration
        .post("/api/v1/api-keys", json!({"name": "more"}))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));

    let id = created["id"].as_str().unwrap();
    let (status, _) = siti.delete(&format!("/api/v1/api-keys/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = integration.get("/api/v1/me").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    let (status, _) = siti.delete(&format!("/api/v1/api-keys/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "revoked once");
}

#[tokio::test]
async fn bad_registrations_logins_and_credentials_get_the_documented_codes() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Budi").await;
    let anonymous = budi.with_auth(Auth::None);

    let (status, body) = anonymous
        .post(
            "/api/v1/auth/register",
            json!({"email": budi.email.to_uppercase(), "password": "another-password"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "conflict"),
        "email unique, case-insensitively"
    );
    let (status, body) = anonymous
        .post(
            "/api/v1/auth/register",
            json!({"email": "new@example.test", "password": "short"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "validation_failed")
    );
    assert_eq!(body["error"]["details"]["field"], "password");
    let (status, body) = anonymous
        .post(
            "/api/v1/auth/register",
            json!({"email": "not-an-email", "password": "long enough"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "validation_failed")
    );
    let (status, body) = anonymous
        .post(
            "/api/v1/auth/register",
            json!({"email": 42, "password": "long enough"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "validation_failed")
    );
    let (status, body) = anonymous
        .send(
            anonymous
                .request(reqwest::Method::POST, "/api/v1/auth/register")
                .header("content-type", "application/json")
                .body("{\"email\": "),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "validation_failed")
    );

    let (status, body) = anonymous
        .post(
            "/api/v1/auth/login",
            json!({"email": budi.email, "password": "wrong password"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    let (status, _) = anonymous
        .post(
            "/api/v1/auth/login",
            json!({"email": "nobody@example.test", "password": "whatever1"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    for auth in [
        Auth::None,
        Auth::Bearer("not.a.token".into()),
        Auth::Bearer(format!(
            "{}x",
            match &budi.auth {
                Auth::Bearer(t) => t.clone(),
                _ => unreachable!(),
            }
        )),
        Auth::ApiKey("wbk_0000".into()),
        Auth::ApiKey("garbage".into()),
    ] {
        let (status, body) = budi.with_auth(auth.clone()).get("/api/v1/me").await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "unauthenticated"),
            "{auth:?}"
        );
    }
}

#[tokio::test]
async fn another_tenants_api_key_is_not_found() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Budi").await;
    let siti = app.tenant("Siti").await;
    let (_, created) = budi
        .post("/api/v1/api-keys", json!({"name": "budi's"}))
        .await;
    let id = created["id"].as_str().unwrap();

    let (status, body) = siti.delete(&format!("/api/v1/api-keys/{id}")).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (_, listed) = siti.get("/api/v1/api-keys").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 0);
    let (status, _) = siti.delete("/api/v1/api-keys/not-a-uuid").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Budi's key still works.
    let key = created["key"].as_str().unwrap().to_owned();
    let (status, _) = budi.with_auth(Auth::ApiKey(key)).get("/api/v1/me").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_admin_is_bootstrapped_from_configuration() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (status, me) = admin.get("/api/v1/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user"]["email"], ADMIN_EMAIL);
    assert_eq!(me["user"]["role"], "admin");
}
