//! Wallet and plans: the admin defines plans and grants them (or points),
//! the tenant sees its wallet and history; only the admin may.

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::app::{Auth, Client, TestApp, code};
use crate::campaigns::{define_plan, grant_plan, sees_writes_of};

async fn grant(admin: &Client, tenant: &str, body: Value) -> (StatusCode, Value) {
    admin
        .post(&format!("/api/v1/admin/tenants/{tenant}/grant"), body)
        .await
}

#[tokio::test]
async fn a_new_wallet_is_empty() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;

    let (status, wallet) = budi.get("/api/v1/wallet").await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        wallet,
        json!({"balance": 0, "reserved": 0, "available": 0, "plan": null,
               "plan_expires_at": null, "plan_expired": false, "sending_until": null,
               "suspended_reason": null, "low_balance": false})
    );
    let (status, page) = budi.get("/api/v1/wallet/transactions").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page, json!({"items": [], "next_cursor": null}));
}

#[tokio::test]
async fn the_admin_defines_a_plan_and_grants_it_and_the_wallet_shows_it() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let budi = app.tenant("Toko Budi").await;

    // Act: a plan with the default caps.
    let (status, plan) = admin
        .post(
            "/api/v1/admin/plans",
            json!({"name": "Basic 30", "period_days": 30, "points": 2000, "max_sessions": 3, "price": 150000}),
        )
        .await;

    // Assert
    assert_eq!(status, StatusCode::CREATED, "{plan}");
    assert_eq!(plan["name"], "Basic 30");
    assert_eq!(plan["period_days"], 30);
    assert_eq!(plan["points"], 2000);
    assert_eq!(plan["max_recipients_per_campaign"], 200);
    assert_eq!(plan["max_daily_limit"], 500);
    assert_eq!(plan["price"], 150000);
    let plan_id = plan["id"].as_str().unwrap().to_owned();
    sees_writes_of(&budi, &admin);
    let (status, plans) = budi.get("/api/v1/plans").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(plans["items"].as_array().unwrap().len(), 1);
    assert_eq!(plans["items"][0]["id"], json!(plan_id));
    assert_eq!(plans["next_cursor"], Value::Null);

    let granted = grant_plan(&admin, &budi, &plan_id).await;
    assert_eq!(granted["tenant_id"], json!(budi.tenant_id));
    assert_eq!(
        granted["plan"],
        json!({"id": plan_id, "name": "Basic 30", "period_days": 30})
    );
    assert_eq!(granted["points"], 2000);
    assert_eq!(granted["credited"], true);
    assert_eq!(granted["balance"], 2000);
    let expires: DateTime<Utc> =
        serde_json::from_value(granted["plan_expires_at"].clone()).unwrap();
    assert!(
        (expires - (Utc::now() + TimeDelta::days(30)))
            .num_minutes()
            .abs()
            < 5
    );

    let (_, wallet) = budi.get("/api/v1/wallet").await;
    assert_eq!(
        (
            &wallet["balance"],
            &wallet["reserved"],
            &wallet["available"]
        ),
        (&json!(2000), &json!(0), &json!(2000))
    );
    assert_eq!(wallet["plan"]["id"], json!(plan_id));
    assert_eq!(wallet["plan"]["name"], "Basic 30");
    assert_eq!(wallet["plan"]["period_days"], 30);
    // The query tables keep microseconds.
    let shown: DateTime<Utc> = serde_json::from_value(wallet["plan_expires_at"].clone()).unwrap();
    assert!((shown - expires).num_microseconds().unwrap().abs() <= 1);

    // Points on top, by reference: a retry credits once.
    let request = || {
        admin
            .request(
                reqwest::Method::POST,
                &format!("/api/v1/admin/tenants/{}/grant", budi.tenant_id),
            )
            .header("idempotency-key", "bonus-ramadan")
            .json(&json!({"points": 150, "reason": "bonus Ramadan"}))
    };
    let (status, first) = admin.send(request()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["reference"], "bonus-ramadan");
    assert_eq!(first["credited"], true);
    assert_eq!(first["plan"], Value::Null);
    // The same request again is answered from the idempotency store, as
    // it was the first time, and credits nothing more.
    let replayed = request().send().await.unwrap();
    assert_eq!(replayed.status(), StatusCode::CREATED);
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    let again: Value = replayed.json().await.unwrap();
    assert_eq!(again, first);
    // Without the header, the same reference is a retry the wallet
    // recognises: nothing more is credited.
    let (status, again) = grant(
        &admin,
        &budi.tenant_id,
        json!({"points": 150, "reference": "bonus-ramadan"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(again["credited"], false);
    assert_eq!(again["balance"], 2150);
    // Another amount under the same reference is refused.
    let (status, body) = grant(
        &admin,
        &budi.tenant_id,
        json!({"points": 1, "reference": "bonus-ramadan"}),
    )
    .await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "conflict"));

    sees_writes_of(&budi, &admin);
    let (_, wallet) = budi.get("/api/v1/wallet").await;
    assert_eq!(wallet["balance"], 2150);
    let (_, page) = budi.get("/api/v1/wallet/transactions").await;
    let items = page["items"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|t| t["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["topup", "allocation"]);
    assert_eq!(items[0]["points"], 150);
    assert_eq!(items[0]["reference"], "bonus-ramadan");
    assert_eq!(items[1]["points"], 2000);

    // Pages of the history, newest first.
    let (_, page) = budi.get("/api/v1/wallet/transactions?limit=1").await;
    assert_eq!(page["items"][0]["kind"], "topup");
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, next) = budi
        .get(&format!(
            "/api/v1/wallet/transactions?limit=1&cursor={cursor}"
        ))
        .await;
    assert_eq!(next["items"][0]["kind"], "allocation");
    assert_eq!(next["next_cursor"], Value::Null);
    let (status, body) = budi
        .get(&format!(
            "/api/v1/wallet/transactions?cursor=i{}",
            Uuid::now_v7().simple()
        ))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "validation_failed"),
        "a cursor of another list"
    );
}

#[tokio::test]
async fn admin_endpoints_refuse_everyone_but_the_admin() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let budi = app.tenant("Toko Budi").await;
    let plan = define_plan(&admin, 100, 200).await;
    let (status, key) = budi.post("/api/v1/api-keys", json!({"name": "shop"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let member = budi.with_auth(Auth::ApiKey(key["key"].as_str().unwrap().to_owned()));
    let new_plan = json!({"name": "Gratis", "period_days": 15, "points": 1_000_000, "max_sessions": 99, "price": 0});

    for (who, client) in [("owner", &budi), ("member", &member)] {
        let (status, body) = client.post("/api/v1/admin/plans", new_plan.clone()).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{who}"
        );
        let (status, body) = grant(client, &budi.tenant_id, json!({"plan_id": plan})).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{who}"
        );
        let (status, body) = grant(client, &budi.tenant_id, json!({"points": 5})).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{who}"
        );
    }
    let anonymous = budi.with_auth(Auth::None);
    let (status, _) = anonymous.post("/api/v1/admin/plans", new_plan).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = anonymous.get("/api/v1/wallet").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Nothing was granted, nothing defined but the admin's plan.
    let (_, wallet) = budi.get("/api/v1/wallet").await;
    assert_eq!(wallet["balance"], 0);
    sees_writes_of(&budi, &admin);
    let (_, plans) = member.get("/api/v1/plans").await;
    assert_eq!(plans["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_plans_and_grants_are_refused_with_the_field() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let budi = app.tenant("Toko Budi").await;
    let plan = define_plan(&admin, 100, 200).await;
    let good =
        json!({"name": "Basic", "period_days": 30, "points": 100, "max_sessions": 1, "price": 1});

    for (field, value) in [
        ("period_days", json!(7)),
        ("name", json!("  ")),
        ("points", json!(0)),
        ("max_sessions", json!(0)),
        ("max_recipients_per_campaign", json!(0)),
        ("max_daily_limit", json!(0)),
    ] {
        let mut body = good.clone();
        body[field] = value;
        let (status, answer) = admin.post("/api/v1/admin/plans", body).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::BAD_REQUEST, "validation_failed"),
            "{field}: {answer}"
        );
        assert_eq!(answer["error"]["details"]["field"], field, "{answer}");
    }
    for body in [
        json!({"name": "Basic", "period_days": 30, "points": -1, "max_sessions": 1, "price": 1}),
        json!({"name": "Basic", "period_days": 30, "points": 100, "max_sessions": 1}),
        json!({"name": "Basic", "period_days": "30", "points": 100, "max_sessions": 1, "price": 1}),
    ] {
        let (status, answer) = admin.post("/api/v1/admin/plans", body.clone()).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::BAD_REQUEST, "validation_failed"),
            "{body}"
        );
    }

    for body in [
        json!({}),
        json!({"plan_id": plan, "points": 5}),
        json!({"points": 0}),
        json!({"points": 5, "reason": " "}),
    ] {
        let (status, answer) = grant(&admin, &budi.tenant_id, body.clone()).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::BAD_REQUEST, "validation_failed"),
            "{body}: {answer}"
        );
    }
    let (status, answer) = grant(&admin, &Uuid::now_v7().to_string(), json!({"points": 5})).await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::NOT_FOUND, "not_found"),
        "{answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tenant")
    );
    let (status, answer) = grant(&admin, &budi.tenant_id, json!({"plan_id": Uuid::now_v7()})).await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::NOT_FOUND, "not_found"),
        "{answer}"
    );
    assert_eq!(answer["error"]["details"]["field"], "plan_id");

    // The tenant got nothing.
    sees_writes_of(&budi, &admin);
    let (_, wallet) = budi.get("/api/v1/wallet").await;
    assert_eq!(wallet["balance"], 0);
}

#[tokio::test]
async fn a_read_after_a_position_of_another_stream_does_not_wait() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;

    // The wallet is not projected from the messages stream: nothing to
    // wait for there, however far the position.
    let started = std::time::Instant::now();
    let (status, wallet) = budi.get_after("/api/v1/wallet", "messages:999999999").await;

    assert_eq!(status, StatusCode::OK, "{wallet}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let (status, body) = budi.get_after("/api/v1/wallet", "wallets:1").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "validation_failed")
    );
}
