//! Hardening: rate limits, CORS, security headers, body limits, the error
//! shape of errors outside handlers, request ids, `Idempotency-Key`, and
//! the Swagger UI.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::app::{Auth, TestApp, code};
use crate::media::{form, png};

#[tokio::test]
async fn a_client_address_over_its_budget_gets_429_with_retry_after() {
    // Arrange: 5 requests a minute per address.
    let app = TestApp::spawn_with(|settings| settings.rate_limit_per_ip = 5).await;
    let anonymous = app.tenant("Toko Budi").await.with_auth(Auth::None);

    // Act: the registration took one; four more pass.
    for _ in 0..4 {
        let (status, _) = anonymous.get("/api/v1/me").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let response = anonymous
        .request(Method::GET, "/api/v1/me")
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // One request every 12 s comes back.
    assert!((1..=12).contains(&retry_after), "{retry_after}");
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "rate_limited");
    // Probes and scrapes are never limited, nor drivers' webhooks.
    for path in ["/healthz", "/metrics", "/healthz"] {
        assert_eq!(app.get(path).await.status(), StatusCode::OK, "{path}");
    }
    let hook = app
        .http
        .post(app.url(&format!("/hooks/waha/{}", uuid::Uuid::now_v7())))
        .send()
        .await
        .unwrap();
    assert_ne!(hook.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        app.get("/openapi.json").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn each_credential_has_a_budget_of_its_own() {
    let app = TestApp::spawn_with(|settings| settings.rate_limit_per_key = 3).await;
    let budi = app.tenant("Toko Budi").await;
    let siti = app.tenant("Toko Siti").await;

    for _ in 0..3 {
        let (status, body) = budi.get("/api/v1/me").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = budi.get("/api/v1/me").await;

    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(code(&body), "rate_limited");
    assert!(
        body["error"]["details"]["retry_after_seconds"]
            .as_u64()
            .unwrap()
            >= 1
    );
    let (status, _) = siti.get("/api/v1/me").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "another credential is not held back"
    );
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.http
        .request(Method::OPTIONS, app.url("/api/v1/api-keys"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,idempotency-key",
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_lets_configured_origins_in_and_no_other() {
    let app = TestApp::spawn_with(|settings| {
        settings.cors_origins = vec!["https://app.tokobudi.id".to_owned()]
    })
    .await;

    let allowed = preflight(&app, "https://app.tokobudi.id").await;
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.tokobudi.id"
    );
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    let allowed_headers = headers["access-control-allow-headers"].to_str().unwrap();
    assert!(
        allowed_headers.contains("idempotency-key"),
        "{allowed_headers}"
    );
    assert!(allowed_headers.contains("x-api-key"), "{allowed_headers}");

    let refused = preflight(&app, "https://evil.example").await;
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-origin")
    );

    let budi = app.tenant("Toko Budi").await;
    let response = budi
        .request(Method::GET, "/api/v1/me")
        .header("origin", "https://app.tokobudi.id")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.tokobudi.id"
    );
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(
        exposed.contains("x-request-id") && exposed.contains("retry-after"),
        "{exposed}"
    );
}

#[tokio::test]
async fn without_configured_origins_there_are_no_cors_headers() {
    let app = TestApp::spawn().await;

    let response = preflight(&app, "https://app.tokobudi.id").await;

    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
}

#[tokio::test]
async fn any_origin_is_allowed_with_a_star() {
    let app = TestApp::spawn_with(|settings| settings.cors_origins = vec!["*".to_owned()]).await;

    let response = preflight(&app, "https://anywhere.example").await;

    assert_eq!(response.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;

    let answers = [
        (
            "/api/v1/me",
            budi.request(Method::GET, "/api/v1/me")
                .send()
                .await
                .unwrap(),
        ),
        ("/api/v1/me 401", app.get("/api/v1/me").await),
        ("/healthz", app.get("/healthz").await),
        ("/nowhere", app.get("/nowhere").await),
        ("/docs/", app.get("/docs/").await),
    ];

    for (what, response) in &answers {
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(headers["x-frame-options"], "DENY", "{what}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{what}");
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{what}: {policy}"
        );
        assert!(headers.contains_key("x-request-id"), "{what}");
    }
    let api = answers[0].1.headers();
    assert_eq!(api["cache-control"], "no-store");
    assert_eq!(
        api["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
    let docs = answers[4].1.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(
        docs.contains("script-src 'self'") && docs.contains("style-src 'self' 'unsafe-inline'"),
        "{docs}"
    );
}

#[tokio::test]
async fn bodies_over_the_limit_and_wrong_methods_answer_in_the_error_shape() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let huge = "x".repeat(2 * 1024 * 1024);

    let (status, body) = budi.post("/api/v1/api-keys", json!({"name": huge})).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(code(&body), "payload_too_large");

    let (status, body) = budi
        .with_auth(Auth::None)
        .post(
            "/api/v1/auth/register",
            json!({"email": "a@b.test", "password": huge}),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(code(&body), "payload_too_large");

    let (status, body) = budi.put("/api/v1/me", json!({})).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_eq!(code(&body), "method_not_allowed");
}

#[tokio::test]
async fn a_request_id_is_made_or_kept_and_answered_on_errors_too() {
    let app = TestApp::spawn().await;

    let kept = app
        .http
        .get(app.url("/api/v1/me"))
        .header("x-request-id", "client-chose-this")
        .send()
        .await
        .unwrap();
    let made = app.get("/api/v1/me").await;

    assert_eq!(kept.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(kept.headers()["x-request-id"], "client-chose-this");
    let made = made.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(made).is_ok(), "{made}");
}

async fn create_key(
    client: &crate::app::Client,
    idempotency_key: &str,
    name: &str,
) -> (StatusCode, Option<String>, Value) {
    let response = client
        .request(Method::POST, "/api/v1/api-keys")
        .header("idempotency-key", idempotency_key)
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, replayed, response.json().await.unwrap())
}

#[tokio::test]
async fn the_same_idempotency_key_and_body_answers_once_made_answer_again() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let siti = app.tenant("Toko Siti").await;

    let (status, replayed, first) = create_key(&budi, "order-42", "shop").await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(replayed, None);

    let (status, replayed, second) = create_key(&budi, "order-42", "shop").await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(second, first, "the very same answer, key included");

    let (status, listed) = budi.get("/api/v1/api-keys").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    // The stored answer holds the key, encrypted.
    let db = sqlx::PgPool::connect(&app.settings.database_url)
        .await
        .unwrap();
    let bodies: Vec<Vec<u8>> = sqlx::query_scalar("select body from idempotency_keys")
        .fetch_all(&db)
        .await
        .unwrap();
    let secret = first["key"].as_str().unwrap();
    assert_eq!(bodies.len(), 1);
    assert!(!String::from_utf8_lossy(&bodies[0]).contains(secret));

    // Another body under the key is refused, and creates nothing.
    let (status, _, body) = create_key(&budi, "order-42", "another").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(code(&body), "idempotency_key_reused");
    let (_, listed) = budi.get("/api/v1/api-keys").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    // Keys belong to the caller: another tenant's same key is its own.
    let (status, replayed, theirs) = create_key(&siti, "order-42", "shop").await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    assert_eq!(replayed, None);
    assert_ne!(theirs["id"], first["id"]);

    // Refusals are kept too.
    let (status, _, refused) = create_key(&budi, "order-43", " ").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let (status, replayed, again) = create_key(&budi, "order-43", " ").await;
    assert_eq!(
        (status, replayed.as_deref()),
        (StatusCode::BAD_REQUEST, Some("true"))
    );
    assert_eq!(again, refused);

    let (status, _, body) = create_key(&budi, &"k".repeat(300), "shop").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn a_key_in_use_by_a_running_request_is_409_until_abandoned() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let db = sqlx::PgPool::connect(&app.settings.database_url)
        .await
        .unwrap();
    let (status, _, _) = create_key(&budi, "busy", "shop").await;
    assert_eq!(status, StatusCode::CREATED);
    // Back to what it was while the request ran, started `minutes` ago.
    let running_since = |minutes: i32| {
        sqlx::query(
            "update idempotency_keys set state = 'pending', status = null, body = null,
                 created_at = now() - make_interval(mins => $1)
             where key = 'busy'",
        )
        .bind(minutes)
        .execute(&db)
    };
    running_since(0).await.unwrap();

    let (status, _, body) = create_key(&budi, "busy", "shop").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "conflict");
    let (status, _, body) = create_key(&budi, "busy", "another").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // Its process died long ago: the key is taken over, and the request runs
    // (again: whether the first attempt did its work is unknown).
    running_since(30).await.unwrap();
    let (status, replayed, body) = create_key(&budi, "busy", "shop").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(replayed, None);
    let (status, replayed, _) = create_key(&budi, "busy", "shop").await;
    assert_eq!(
        (status, replayed.as_deref()),
        (StatusCode::CREATED, Some("true"))
    );
}

#[tokio::test]
async fn concurrent_duplicates_create_one_thing() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;

    let attempts =
        futures::future::join_all((0..8).map(|_| create_key(&budi, "burst", "shop"))).await;

    let created: Vec<_> = attempts
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::CREATED)
        .collect();
    assert!(!created.is_empty());
    assert!(
        attempts
            .iter()
            .all(|(status, _, _)| *status == StatusCode::CREATED || *status == StatusCode::CONFLICT),
        "{attempts:?}"
    );
    assert!(
        created
            .iter()
            .all(|(_, _, body)| body["id"] == created[0].2["id"])
    );
    let (_, listed) = budi.get("/api/v1/api-keys").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
}

#[tokio::test]
async fn an_upload_retried_with_another_boundary_is_replayed() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let upload = |boundary: &'static str, content: Vec<u8>| {
        let request = budi
            .request(Method::POST, "/api/v1/media")
            .header("idempotency-key", "upload-1")
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(form(boundary, "file", "promo.png", &content));
        budi.send(request)
    };

    let (status, first) = upload("first-attempt", png()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, second) = upload("second-attempt", png()).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["id"], first["id"]);

    let mut other = png();
    other.extend_from_slice(b"trailing");
    let (status, body) = upload("third-attempt", other).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[tokio::test]
async fn registration_is_idempotent_by_its_key() {
    let app = TestApp::spawn().await;
    let register = || async {
        let response = app
            .http
            .post(app.url("/api/v1/auth/register"))
            .header("idempotency-key", "signup-1")
            .json(&json!({"email": "dewi@example.test", "password": "rahasia-dewi"}))
            .send()
            .await
            .unwrap();
        (response.status(), response.json::<Value>().await.unwrap())
    };

    let (status, first) = register().await;
    let (again, second) = register().await;

    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(again, StatusCode::CREATED, "not 409 email taken: {second}");
    assert_eq!(second["tenant"]["id"], first["tenant"]["id"]);
}

#[tokio::test]
async fn swagger_ui_is_served_at_docs_offline() {
    let app = TestApp::spawn().await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let redirect = no_redirects.get(app.url("/docs")).send().await.unwrap();
    assert!(redirect.status().is_redirection(), "{}", redirect.status());
    assert_eq!(redirect.headers()["location"], "/docs/");

    let page = app.get("/docs/").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui-bundle.js"), "{html}");

    let bundle = app.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(bundle.status(), StatusCode::OK);
    assert!(
        bundle.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    assert!(bundle.bytes().await.unwrap().len() > 100_000);

    let initializer = app
        .get("/docs/swagger-initializer.js")
        .await
        .text()
        .await
        .unwrap();
    assert!(initializer.contains("/openapi.json"), "{initializer}");
    assert_eq!(
        app.get("/docs/no-such-file.js").await.status(),
        StatusCode::NOT_FOUND
    );
}

/// A NUL character is valid JSON (`\u0000`) and valid in a query string,
/// but PostgreSQL refuses it in text: it is a 400 naming the field, never a
/// 500, wherever it comes (a body, nested, a key, a query, a form field).
#[tokio::test]
async fn a_nul_character_anywhere_is_a_bad_field_not_a_server_error() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let anonymous = budi.with_auth(Auth::None);

    let bodies = [
        (
            &anonymous,
            Method::POST,
            "/api/v1/auth/login",
            json!({"email": "budi\u{0}@example.test", "password": "password"}),
            "email",
        ),
        (
            &anonymous,
            Method::POST,
            "/api/v1/auth/register",
            json!({"email": "siti@example.test", "password": "password", "organization": "Toko\u{0}Siti"}),
            "organization",
        ),
        (
            &budi,
            Method::POST,
            "/api/v1/api-keys",
            json!({"name": "\u{0}"}),
            "name",
        ),
        (
            &budi,
            Method::POST,
            "/api/v1/auto-replies",
            json!({"name": "Harga", "trigger": "keyword", "pattern": "harga", "response": "cek\u{0}katalog"}),
            "response",
        ),
        (
            &budi,
            Method::PUT,
            "/api/v1/schedule",
            json!({"timezone": "Asia/Jakarta", "windows": [{"days": ["mon"], "start": "09:00", "end": "18:00"}, {"days": ["tue\u{0}"], "start": "09:00", "end": "18:00"}]}),
            "windows[1].days[0]",
        ),
    ];
    for (client, method, path, body, field) in bodies {
        let (status, answer) = client.send(client.request(method, path).json(&body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        assert_eq!(code(&answer), "validation_failed", "{path}");
        assert_eq!(answer["error"]["details"]["field"], field, "{path}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("NUL"), "{path}: {message}");
    }

    // A key holding a NUL, and an escaped backslash that only looks like one.
    let (status, answer) = budi
        .send(
            budi.request(Method::POST, "/api/v1/sessions")
                .header("content-type", "application/json")
                .body(r#"{"name": "CS", "driver_config": {"n\u0000": 1}}"#),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(
        answer["error"]["details"]["field"],
        "driver_config.n\\u0000"
    );
    let (status, answer) = budi
        .post("/api/v1/api-keys", json!({"name": "C:\\u0000 folder"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");

    // Query strings.
    let (status, answer) = budi.get("/api/v1/campaigns?status=sent%00").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["details"]["field"], "status");
    let (status, answer) = budi.get("/api/v1/sessions?cursor=%00").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["details"]["field"], "cursor");

    // A multipart text field.
    let csv = b"phone,name,consent\n+6281234567890,Budi,yes\n";
    let (content_type, body) = crate::contacts::form(&[
        ("file", Some("pelanggan.csv"), &csv[..]),
        ("name", None, b"Pelanggan\0"),
    ]);
    let (status, answer) = budi
        .send(
            budi.request(Method::POST, "/api/v1/contact-lists/import")
                .header("content-type", content_type)
                .body(body),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["details"]["field"], "name");

    // Nothing reached the database half-way: the tenant has one key.
    let (_, keys) = budi.get("/api/v1/api-keys").await;
    assert_eq!(keys["items"].as_array().unwrap().len(), 1, "{keys}");
}

/// A JSON route answers 415 to a body that does not say it is JSON, and
/// takes `application/<type>+json`.
#[tokio::test]
async fn a_body_that_is_not_json_is_an_unsupported_media_type() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;

    for content_type in [None, Some("text/plain"), Some("application/jsonx")] {
        let mut request = budi
            .request(Method::POST, "/api/v1/api-keys")
            .body(r#"{"name": "shop"}"#);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let (status, answer) = budi.send(request).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            "{content_type:?}"
        );
    }
    for content_type in [
        "application/json; charset=utf-8",
        "application/vnd.wablast+json",
    ] {
        let (status, answer) = budi
            .send(
                budi.request(Method::POST, "/api/v1/api-keys")
                    .header("content-type", content_type)
                    .body(r#"{"name": "shop"}"#),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{content_type}: {answer}");
    }
}
