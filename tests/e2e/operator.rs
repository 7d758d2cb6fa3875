//! The operating half of paying and operating: plans edited (a new
//! version; subscribers keep theirs until renewal), taken off sale and
//! retired, their features enforced; tenants found, suspended and
//! reactivated by the platform admin; a plan expiring on a clock the test
//! drives; statistics that agree with the messages sent.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wablast_workflows::clock::{Clock, ManualClock};

use crate::app::{Auth, Client, TestApp, code};
use crate::campaigns::{Backdoor, define_plan, grant_plan, sees_writes_of};
use crate::sending::{engine, funded, linked, started};
use wablast_tests::wait_for as until;

const HOOK: &str = "https://shop.example/hooks/wablast";

async fn webhook(client: &Client) -> (StatusCode, Value) {
    client
        .post(
            "/api/v1/webhooks",
            json!({"url": HOOK, "events": ["MessageSent"]}),
        )
        .await
}

/// A tenant subscribed before an edit keeps the terms it bought (version
/// 1, webhooks included, 3 sessions); a tenant subscribing after gets
/// version 2, and its plan's lack of webhooks is enforced.
#[tokio::test]
async fn an_edited_plan_keeps_old_subscribers_terms_until_they_renew() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let budi = app.tenant("Toko Budi").await;
    let siti = app.tenant("Toko Siti").await;
    let plan = define_plan(&admin, 1000, 200).await;
    grant_plan(&admin, &budi, &plan).await;

    // Act: a new version, without webhooks, with more points.
    let (status, edited) = admin
        .patch(
            &format!("/api/v1/admin/plans/{plan}"),
            json!({"points": 2000, "max_sessions": 1, "grace_days": 2,
                   "features": {"auto_replies": true, "webhooks": false, "official_mode": false}}),
        )
        .await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["version"], 2);
    assert_eq!(edited["points"], 2000);
    assert_eq!(edited["grace_days"], 2);
    assert_eq!(edited["features"]["webhooks"], false);
    let (_, wallet) = budi.get("/api/v1/wallet").await;
    assert_eq!(wallet["plan"]["version"], 1, "{wallet}");
    assert_eq!(wallet["plan"]["max_sessions"], 3);
    assert_eq!(wallet["balance"], 1000);
    let (status, body) = webhook(&budi).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the old terms had webhooks: {body}"
    );

    grant_plan(&admin, &siti, &plan).await;
    let (_, wallet) = siti.get("/api/v1/wallet").await;
    assert_eq!(wallet["plan"]["version"], 2, "{wallet}");
    assert_eq!(wallet["plan"]["max_sessions"], 1);
    assert_eq!(wallet["plan"]["grace_days"], 2);
    assert_eq!(wallet["balance"], 2000);
    let (status, body) = webhook(&siti).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "feature_not_in_plan"),
        "{body}"
    );
    assert_eq!(body["error"]["details"]["feature"], "webhooks");

    // Renewing brings the old subscriber to the new version.
    grant_plan(&admin, &budi, &plan).await;
    let (_, wallet) = budi.get("/api/v1/wallet").await;
    assert_eq!(wallet["plan"]["version"], 2, "{wallet}");

    // Bad edits name their field; nothing changed records no version.
    let (status, body) = admin
        .patch(
            &format!("/api/v1/admin/plans/{plan}"),
            json!({"grace_days": 99}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "validation_failed")
    );
    assert_eq!(body["error"]["details"]["field"], "grace_days");
    let (status, same) = admin
        .patch(
            &format!("/api/v1/admin/plans/{plan}"),
            json!({"points": 2000}),
        )
        .await;
    assert_eq!((status, &same["version"]), (StatusCode::OK, &json!(2)));
}

/// A plan off sale leaves the tenants' list (the admin still sees and may
/// grant it); a retired plan refuses every new subscription and edit.
#[tokio::test]
async fn a_retired_plan_refuses_subscription_and_plans_off_sale_are_not_listed() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let budi = app.tenant("Toko Budi").await;
    let basic = define_plan(&admin, 1000, 200).await;
    let (status, hidden) = admin
        .post(
            "/api/v1/admin/plans",
            json!({"name": "Khusus", "period_days": 15, "points": 500, "max_sessions": 1,
                   "price": 50000, "on_sale": false}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hidden}");
    assert_eq!(hidden["on_sale"], false);
    let hidden = hidden["id"].as_str().unwrap().to_owned();

    sees_writes_of(&budi, &admin);
    let (_, plans) = budi.get("/api/v1/plans").await;
    let listed: Vec<&str> = plans["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [basic.as_str()], "only what is on sale");
    let (_, every) = admin.get("/api/v1/plans").await;
    assert_eq!(
        every["items"].as_array().unwrap().len(),
        2,
        "the admin sees all"
    );
    grant_plan(&admin, &budi, &hidden).await;

    // Act
    let (status, retired) = admin
        .post(&format!("/api/v1/admin/plans/{basic}/retire"), json!({}))
        .await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{retired}");
    assert!(retired["retired_at"].is_string());
    let (status, body) = admin
        .post(
            &format!("/api/v1/admin/tenants/{}/grant", budi.tenant_id),
            json!({"plan_id": basic}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "invalid_state"),
        "{body}"
    );
    let (status, body) = admin
        .patch(
            &format!("/api/v1/admin/plans/{basic}"),
            json!({"points": 5}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "invalid_state")
    );
    sees_writes_of(&budi, &admin);
    let (_, plans) = budi.get("/api/v1/plans").await;
    assert_eq!(plans["items"], json!([]));
    let (status, body) = admin
        .post(
            &format!("/api/v1/admin/plans/{}/retire", uuid::Uuid::now_v7()),
            json!({}),
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
}

/// A suspended tenant's API key and sign-in get 403 `tenant_suspended`
/// with the reason; nothing is deleted; reactivation restores both.
#[tokio::test]
async fn a_suspended_tenant_is_refused_until_reactivated() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let budi = app.tenant("Toko Budi").await;
    let (status, key) = budi.post("/api/v1/api-keys", json!({"name": "shop"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let integration = budi.with_auth(Auth::ApiKey(key["key"].as_str().unwrap().to_owned()));
    let login = json!({"email": budi.email, "password": "password-of-{name}"});
    let anonymous = budi.with_auth(Auth::None);
    let (status, _) = anonymous.post("/api/v1/auth/login", login.clone()).await;
    assert_eq!(status, StatusCode::OK, "signs in before");

    // Act
    let suspend = format!("/api/v1/admin/tenants/{}/suspend", budi.tenant_id);
    let (status, tenant) = admin
        .post(&suspend, json!({"reason": "spam complaints"}))
        .await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{tenant}");
    assert_eq!(tenant["suspended"], true);
    assert_eq!(tenant["suspended_reason"], "spam complaints");
    for (who, client) in [("API key", &integration), ("user", &budi)] {
        let (status, body) = client.get("/api/v1/sessions").await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "tenant_suspended"),
            "{who}: {body}"
        );
        assert_eq!(body["error"]["details"]["reason"], "spam complaints");
    }
    let (status, body) = anonymous.post("/api/v1/auth/login", login.clone()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "tenant_suspended"),
        "{body}"
    );
    let (status, body) = admin.post(&suspend, json!({"reason": " "})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "validation_failed")
    );
    let (status, body) = admin
        .post(
            &format!("/api/v1/admin/tenants/{}/suspend", admin.tenant_id),
            json!({"reason": "oops"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "invalid_state")
    );

    let (status, tenant) = admin
        .post(
            &format!("/api/v1/admin/tenants/{}/reactivate", budi.tenant_id),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tenant}");
    assert_eq!(tenant["suspended"], false);
    let (status, keys) = integration.get("/api/v1/sessions").await;
    assert_eq!(status, StatusCode::OK, "{keys}");
    let (status, _) = anonymous.post("/api/v1/auth/login", login).await;
    assert_eq!(status, StatusCode::OK);
    let (status, keys) = budi.get("/api/v1/api-keys").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        keys["items"].as_array().unwrap().len(),
        1,
        "nothing deleted"
    );
}

/// The admin finds tenants by name or email, a page at a time, with their
/// plan, balance and sessions, and lists users; everyone else gets 403.
#[tokio::test]
async fn the_admin_searches_tenants_and_users_and_nobody_else_may() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let budi = app.tenant("Toko Budi").await;
    let siti = app.tenant("Warung Siti").await;
    let _other = app.tenant("Toko Andi").await;
    let plan = define_plan(&admin, 1000, 200).await;
    grant_plan(&admin, &budi, &plan).await;

    // By name, case-insensitive.
    let (status, page) = admin.get("/api/v1/admin/tenants?q=toko").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Toko Budi", "Toko Andi"]);
    let found = &page["items"][0];
    assert_eq!(found["id"], json!(budi.tenant_id));
    assert_eq!(found["owner_email"], json!(budi.email));
    assert_eq!(found["plan"]["id"], json!(plan));
    assert_eq!(found["balance"], 1000);
    assert_eq!(found["sessions"], 0);
    assert!(found["plan_expires_at"].is_string());
    assert!(found["last_activity_at"].is_string());
    assert_eq!(found["suspended"], false);

    // By email.
    let (_, page) = admin
        .get(&format!(
            "/api/v1/admin/tenants?q={}",
            siti.email.to_uppercase()
        ))
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["items"][0]["id"], json!(siti.tenant_id));

    // Page by page: the admin's own tenant and three more.
    let (_, first) = admin.get("/api/v1/admin/tenants?limit=3").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 3);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = admin
        .get(&format!("/api/v1/admin/tenants?limit=3&cursor={cursor}"))
        .await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["next_cursor"], Value::Null);

    let (status, one) = admin
        .get(&format!("/api/v1/admin/tenants/{}", siti.tenant_id))
        .await;
    assert_eq!(
        (status, &one["name"]),
        (StatusCode::OK, &json!("Warung Siti"))
    );
    let (status, _) = admin
        .get(&format!("/api/v1/admin/tenants/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, users) = admin.get("/api/v1/admin/users?q=warung").await;
    assert_eq!(status, StatusCode::OK, "{users}");
    assert_eq!(users["items"].as_array().unwrap().len(), 1);
    assert_eq!(users["items"][0]["email"], json!(siti.email));
    assert_eq!(users["items"][0]["role"], "owner");
    assert_eq!(users["items"][0]["tenant_name"], "Warung Siti");

    for path in [
        "/api/v1/admin/tenants".to_owned(),
        format!("/api/v1/admin/tenants/{}", siti.tenant_id),
        "/api/v1/admin/users".to_owned(),
        "/api/v1/admin/stats".to_owned(),
    ] {
        let (status, body) = budi.get(&path).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{path}"
        );
    }
    for path in [
        format!("/api/v1/admin/tenants/{}/suspend", siti.tenant_id),
        format!("/api/v1/admin/tenants/{}/reactivate", siti.tenant_id),
        format!("/api/v1/admin/plans/{plan}/retire"),
    ] {
        let (status, body) = budi.post(&path, json!({"reason": "x"})).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{path}"
        );
    }
    let (status, _) = budi
        .patch(&format!("/api/v1/admin/plans/{plan}"), json!({"points": 1}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// A campaign's messages sent, whatever their receipts since.
fn gone_out(campaign: &Value) -> i64 {
    ["sent", "delivered", "read"]
        .iter()
        .map(|s| campaign["counts"][s].as_i64().unwrap_or(0))
        .sum()
}

async fn event_types(db: &sqlx::PgPool, tenant: &str) -> Vec<String> {
    sqlx::query_scalar(
        "select event_type from event_index where tenant = $1 and aggregate_type = 'wallet' \
         order by stream_sequence",
    )
    .bind(tenant)
    .fetch_all(db)
    .await
    .unwrap()
}

/// On a clock the test drives: 3 days before the end the tenant is warned;
/// past the end a running campaign waits with `plan_expired`, the renewal
/// is reminded and the expiry recorded; a renewal lets it go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_expires_on_a_driven_clock_and_a_running_campaign_stops_with_plan_expired() {
    let app = TestApp::spawn_with(|s| s.lease_ttl_seconds = 5).await;
    let backdoor = Backdoor::of(&app).await;
    let clock = ManualClock::new(Utc::now());
    let (stop, engine) = engine(&app, "engine-a", |c| {
        c.clock = Arc::new(clock.clone());
        c.plan_lifecycle_every = Duration::from_millis(200);
    });
    let budi = funded(&app, 1000).await;
    let (_, wallet) = budi.get("/api/v1/wallet").await;
    let expires_at: chrono::DateTime<Utc> =
        serde_json::from_value(wallet["plan_expires_at"].clone()).unwrap();
    let session = linked(&budi, "+6281299990031", 100).await;
    let list = backdoor.contact_list(&budi.tenant_id, 6, &["kota"]).await;
    // A second between two sends, on the test's clock: one send, then a wait.
    let id = started(&budi, list, &[&session], (1000, 1000)).await;
    until("the first send", Duration::from_secs(30), async || {
        let (_, c) = budi.get(&format!("/api/v1/campaigns/{id}")).await;
        (gone_out(&c) >= 1).then_some(())
    })
    .await;

    // 3 days before the end: warned.
    clock.set(expires_at - TimeDelta::days(2));
    until("the expiry warning", Duration::from_secs(20), async || {
        event_types(&backdoor.db, &budi.tenant_id)
            .await
            .contains(&"PlanExpiryWarned".to_owned())
            .then_some(())
    })
    .await;

    // Act: past the end.
    clock.set(expires_at + TimeDelta::minutes(1));

    // Assert
    let waiting = until("plan_expired", Duration::from_secs(30), async || {
        let (_, c) = budi.get(&format!("/api/v1/campaigns/{id}")).await;
        (c["waiting"]["reason"] == "plan_expired").then_some(c)
    })
    .await;
    assert_eq!(waiting["status"], "running", "{waiting}");
    let sent = gone_out(&waiting);
    assert!(sent < 6, "{waiting}");
    until("the expiry recorded", Duration::from_secs(20), async || {
        let (_, w) = budi.get("/api/v1/wallet").await;
        (w["plan_expired"] == true).then_some(())
    })
    .await;
    let types = event_types(&backdoor.db, &budi.tenant_id).await;
    for expected in ["PlanExpiryWarned", "PlanRenewalDue", "PlanExpired"] {
        assert!(
            types.contains(&expected.to_owned()),
            "{expected}: {types:?}"
        );
    }
    clock.advance(TimeDelta::seconds(5));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, c) = budi.get(&format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(gone_out(&c), sent, "nothing more sent");

    stop.cancel();
    engine.await.unwrap().unwrap();
    let report = wablast::verify::run(&backdoor.log).await.unwrap();
    assert!(report.holds(), "{}", wablast::verify::render(&report));
    let _ = clock.now();
}

/// A simulator campaign to 12 contacts completes; the tenant's statistics,
/// the platform's and `/metrics` count what the messages table holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_agree_with_the_messages_sent() {
    let app = TestApp::spawn_with(|s| s.lease_ttl_seconds = 5).await;
    let backdoor = Backdoor::of(&app).await;
    let (stop, engine) = engine(&app, "engine-a", |_| {});
    let budi = funded(&app, 1000).await;
    let admin = app.admin().await;
    let session = linked(&budi, "+6281299990032", 100).await;
    let list = backdoor.contact_list(&budi.tenant_id, 12, &["kota"]).await;
    let id = started(&budi, list, &[&session], (0, 0)).await;
    until("completion", Duration::from_secs(60), async || {
        let (_, c) = budi.get(&format!("/api/v1/campaigns/{id}")).await;
        (c["status"] == "completed").then_some(())
    })
    .await;
    let (sent, delivered): (i64, i64) = sqlx::query_as(
        "select count(*) filter (where sent_at is not null), \
                count(*) filter (where delivered_at is not null) \
         from messages where campaign_id = $1",
    )
    .bind(uuid::Uuid::parse_str(&id).unwrap())
    .fetch_one(&backdoor.db)
    .await
    .unwrap();
    assert_eq!(sent, 12);

    // Act
    let stats = until(
        "the receipts counted",
        Duration::from_secs(30),
        async || {
            let (status, s) = budi.get("/api/v1/stats?granularity=week").await;
            assert_eq!(status, StatusCode::OK, "{s}");
            (s["totals"]["delivered"].as_i64() == Some(delivered)).then_some(s)
        },
    )
    .await;

    // Assert
    assert_eq!(stats["totals"]["sent"], 12, "{stats}");
    assert_eq!(stats["totals"]["points_spent"], 24);
    assert_eq!(stats["totals"]["failed"], 0);
    assert_eq!(stats["granularity"], "week");
    let per_session = stats["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session_id"] == json!(session))
        .unwrap();
    assert_eq!(per_session["sent"], 12);
    let periods_sent: i64 = stats["periods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sent"].as_i64().unwrap())
        .sum();
    assert_eq!(periods_sent, 12);

    let (status, platform) = admin.get("/api/v1/admin/stats").await;
    assert_eq!(status, StatusCode::OK, "{platform}");
    assert_eq!(platform["totals"]["sent"], 12);
    assert_eq!(platform["tenants_active"], 1);
    // Granted, not paid: no revenue.
    assert_eq!(platform["revenue_by_plan"], json!([]));

    let metrics = app.get("/metrics").await.text().await.unwrap();
    for line in [
        "messages_sent_total 12",
        "wablast_messages_sent_total 12",
        "messages_failed_total 0",
        "wallet_points_deducted_total 24",
        "queue_depth 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }

    let (status, body) = budi.get("/api/v1/stats?from=2026-13-01").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "validation_failed")
    );
    let (status, body) = budi.get("/api/v1/stats?granularity=hour").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "validation_failed")
    );
    stop.cancel();
    engine.await.unwrap().unwrap();
}

/// Suspension is enforced from memory, in every API process: another
/// process refuses the tenant within its follower's lag (measured), a
/// process started afterwards refuses it from its first request, and no
/// request reads the `wallets` or `team_members` tables to decide (it is
/// answered while both are locked).
#[tokio::test]
async fn a_suspension_reaches_every_api_process_without_a_query_per_request() {
    // Arrange: a second API process on the same database and log.
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let budi = app.tenant("Toko Budi").await;
    let second = TestApp::start(app.settings.clone(), None).await;
    let budi_there = budi.at(&second);
    let (status, _) = budi_there.get("/api/v1/sessions").await;
    assert_eq!(status, StatusCode::OK);

    // Act
    let suspend = format!("/api/v1/admin/tenants/{}/suspend", budi.tenant_id);
    let (status, body) = admin.post(&suspend, json!({"reason": "spam"})).await;
    let answered = std::time::Instant::now();

    // Assert
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = budi.get("/api/v1/sessions").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "tenant_suspended"),
        "the process that suspended enforces it when it answers"
    );
    until(
        "the other process to refuse",
        Duration::from_secs(5),
        async || {
            let (status, _) = budi_there.get("/api/v1/sessions").await;
            (status == StatusCode::FORBIDDEN).then_some(())
        },
    )
    .await;
    let lag = answered.elapsed();
    eprintln!("suspension enforced by another API process after {lag:?}");
    assert!(lag < Duration::from_secs(2), "{lag:?}");
    let third = TestApp::start(app.settings.clone(), None).await;
    let (status, body) = budi.at(&third).get("/api/v1/sessions").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "tenant_suspended"),
        "a process started later loads it: {body}"
    );

    let backdoor = Backdoor::of(&app).await;
    let mut locked = backdoor.db.begin().await.unwrap();
    sqlx::query("lock table wallets, team_members in access exclusive mode")
        .execute(&mut *locked)
        .await
        .unwrap();
    let (status, body) =
        tokio::time::timeout(Duration::from_secs(3), budi_there.get("/api/v1/sessions"))
            .await
            .expect("answered without reading the locked tables");
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "tenant_suspended")
    );
    let siti = app.tenant("Toko Siti").await.at(&second);
    let (status, _) = tokio::time::timeout(Duration::from_secs(3), siti.get("/api/v1/me"))
        .await
        .expect("answered without reading the locked tables");
    assert_eq!(status, StatusCode::OK);
    locked.rollback().await.unwrap();

    // Reactivated, every process lets it in again.
    let reactivate = format!("/api/v1/admin/tenants/{}/reactivate", budi.tenant_id);
    let (status, _) = admin.post(&reactivate, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    until(
        "the other process to let it in",
        Duration::from_secs(5),
        async || {
            let (status, _) = budi_there.get("/api/v1/sessions").await;
            (status == StatusCode::OK).then_some(())
        },
    )
    .await;
}

/// The admin lists every tenant's sessions with their trust levels,
/// filtered and paged; the level set on one shows; nobody else may list
/// them, and bad filters are refused.
#[tokio::test]
async fn the_admin_lists_every_tenants_sessions_with_their_trust_levels() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (budi, siti) = (funded(&app, 100).await, funded(&app, 100).await);
    let mut ids = Vec::new();
    for (client, name) in [(&budi, "CS Budi"), (&siti, "CS Siti")] {
        let (status, session) = client
            .post(
                "/api/v1/sessions",
                json!({"name": name, "driver": "simulator"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{session}");
        ids.push(session["id"].as_str().unwrap().to_owned());
    }
    // Once the admin's read side knows the session (another client made
    // it).
    until("the trust level set", Duration::from_secs(10), async || {
        let (status, _) = admin
            .patch(
                &format!("/api/v1/sessions/{}", ids[1]),
                json!({"trust_level": 4}),
            )
            .await;
        (status == StatusCode::OK).then_some(())
    })
    .await;

    let listed = async |query: &str| {
        let (status, body) = admin.get(&format!("/api/v1/admin/sessions{query}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    };
    let names = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = until(
        "both listed, the level set",
        Duration::from_secs(10),
        async || {
            let body = listed("").await;
            (names(&body) == ["CS Budi", "CS Siti"] && body["items"][1]["trust_level"] == 4)
                .then_some(body)
        },
    )
    .await;
    assert_eq!(
        all["items"][0]["tenant_id"],
        budi.tenant_id.as_str(),
        "{all}"
    );
    assert_eq!(all["items"][0]["tenant_name"], "Toko Budi", "{all}");
    assert_eq!(all["items"][0]["status"], "idle", "{all}");
    assert_eq!(names(&listed("?trust_level=4").await), ["CS Siti"]);
    assert_eq!(names(&listed("?q=cs%20bud").await), ["CS Budi"]);
    assert_eq!(
        names(&listed(&format!("?tenant_id={}", siti.tenant_id)).await),
        ["CS Siti"]
    );
    assert_eq!(names(&listed("?status=ready").await), Vec::<String>::new());
    let first = listed("?limit=1").await;
    assert_eq!(names(&first), ["CS Budi"]);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    assert_eq!(
        names(&listed(&format!("?limit=1&cursor={cursor}")).await),
        ["CS Siti"]
    );

    for bad in ["?trust_level=9", "?status=asleep", "?limit=0"] {
        let (status, body) = admin.get(&format!("/api/v1/admin/sessions{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (status, body) = budi.get("/api/v1/admin/sessions").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}
