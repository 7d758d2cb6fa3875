//! Health, readiness, the error shape for unknown paths, the OpenAPI
//! document, request ids.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use wablast_tests::{PrivateNats, TestDatabase, free_port, unique_prefix, wait_for};

use crate::app::{TestApp, settings};

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
    // Alive all the same.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn readyz_turns_not_ready_when_nats_goes_away_and_ready_when_it_is_back() {
    let store = tempfile::tempdir().unwrap();
    let nats = PrivateNats::start(store.path(), None);
    let db = TestDatabase::create().await;
    let app = TestApp::start(settings(&db.url, &nats.url(), "ops"), Some(db)).await;
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
