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

/// The last decision on `contact`'s thread on `session`, once there is one
/// about `inbound` (its simulator message id).
async fn decision(
    backdoor: &crate::campaigns::Backdoor,
    tenant: TenantId,
    session: &str,
    contact: &str,
    inbound: &str,
) -> wablast_domain::auto_reply::AutoReplyEvent {
    use wablast_domain::auto_reply::{AutoReplyEvent, thread_id};
    let session: SessionId = session.parse().unwrap();
    let inbound_id = wablast_domain::inbound::inbound_id(session, inbound);
    let threads = wablast_workflows::commands::Commands::new(&backdoor.log).auto_reply_threads;
    let key = wablast_workflows::commands::key(tenant, thread_id(session, contact));
    wablast_tests::wait_for(
        "the decision",
        std::time::Duration::from_secs(30),
        async || {
            let last = threads.last_event(&key).await.unwrap()?;
            let about = match &last {
                AutoReplyEvent::AutoReplyAnswered { inbound_id, .. }
                | AutoReplyEvent::AutoReplySilent { inbound_id, .. }
                | AutoReplyEvent::AutoReplyWithdrawn { inbound_id, .. } => *inbound_id,
            };
            (about == inbound_id).then_some(last)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_message_matching_a_rule_is_answered_once_per_cooldown_and_silences_say_why() {
    use wablast_domain::auto_reply::{AutoReplyEvent, Silence};
    let app = TestApp::spawn().await;
    let backdoor = crate::campaigns::Backdoor::of(&app).await;
    let (stop, engine) = crate::sending::engine(&app, "engine-a", |_| {});
    let budi = crate::sending::funded(&app, 100).await;
    let tenant = tenant(&budi);
    let session = crate::sending::linked(&budi, "+6281299992001", 100).await;
    let (status, _) = budi
        .patch(
            &format!("/api/v1/sessions/{session}"),
            json!({"throttle": {"min_delay_ms": 0, "max_delay_ms": 0}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, rule) = budi
        .post(
            "/api/v1/auto-replies",
            json!({"name": "Jam buka", "trigger": "keyword", "pattern": "jam buka",
                   "response": "Kami buka setiap hari pukul 09.00–18.00 WIB."}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    let inbound = |from: &'static str, text: &'static str| {
        let (budi, session) = (budi.clone(), session.clone());
        async move {
            let (status, accepted) = budi
                .post(
                    &format!("/api/v1/sessions/{session}/simulator/inbound"),
                    json!({"from": from, "text": text}),
                )
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
            accepted["message_id"].as_str().unwrap().to_owned()
        }
    };
    let siti = "6281200000011@c.us";

    // Asked in other words (case, accents, spaces), the rule answers.
    let first = inbound("+6281200000011", "  JAM  Búka ").await;
    let answered = decision(&backdoor, tenant, &session, siti, &first).await;
    let AutoReplyEvent::AutoReplyAnswered {
        message_id,
        rule_id,
        ..
    } = answered
    else {
        panic!("{answered:?}");
    };
    assert_eq!(rule_id.to_string(), rule["id"].as_str().unwrap());
    let reply = wablast_tests::wait_for(
        "the answer sent",
        std::time::Duration::from_secs(30),
        async || {
            sqlx::query_as::<_, (String, String, Option<String>)>(
                "select status, phone, text from messages where id = $1",
            )
            .bind(message_id.as_uuid())
            .fetch_optional(&backdoor.db)
            .await
            .unwrap()
            .filter(|(status, _, _)| status == "sent" || status == "delivered" || status == "read")
        },
    )
    .await;
    assert_eq!(reply.1, "+6281200000011");
    assert_eq!(
        reply.2.as_deref(),
        Some("Kami buka setiap hari pukul 09.00–18.00 WIB.")
    );

    // Asked again within the hour: silence, saying why.
    let again = inbound("+6281200000011", "jam buka").await;
    let silent = decision(&backdoor, tenant, &session, siti, &again).await;
    assert!(
        matches!(
            silent,
            AutoReplyEvent::AutoReplySilent {
                reason: Silence::Cooldown,
                ..
            }
        ),
        "{silent:?}"
    );
    // Something no rule knows.
    let other = inbound("+6281200000011", "berapa ongkirnya?").await;
    let silent = decision(&backdoor, tenant, &session, siti, &other).await;
    assert!(
        matches!(
            silent,
            AutoReplyEvent::AutoReplySilent {
                reason: Silence::NoMatch,
                ..
            }
        ),
        "{silent:?}"
    );

    // Outside the active hours, another contact is not answered.
    let closed = chrono::Utc::now() + chrono::TimeDelta::hours(12);
    let window = |t: chrono::DateTime<chrono::Utc>| t.format("%H:%M").to_string();
    let (status, schedule) = budi
        .put(
            "/api/v1/schedule",
            json!({"timezone": "UTC", "windows": [{"days": ["mon","tue","wed","thu","fri","sat","sun"],
                   "start": window(closed), "end": window(closed + chrono::TimeDelta::minutes(2))}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{schedule}");
    let late = inbound("+6281200000012", "Jam buka").await;
    // Taken, then withdrawn once the single send refused the closed hours.
    let withdrawn = wablast_tests::wait_for(
        "the withdrawal",
        std::time::Duration::from_secs(30),
        async || {
            let last = decision(&backdoor, tenant, &session, "6281200000012@c.us", &late).await;
            (!matches!(last, AutoReplyEvent::AutoReplyAnswered { .. })).then_some(last)
        },
    )
    .await;
    assert!(
        matches!(
            withdrawn,
            AutoReplyEvent::AutoReplyWithdrawn {
                reason: Silence::OutsideHours,
                ..
            }
        ),
        "{withdrawn:?}"
    );
    let answers: i64 = sqlx::query_scalar(
        "select count(*) from messages where tenant_id = $1 and phone in ('+6281200000011', '+6281200000012')",
    )
    .bind(tenant.as_uuid())
    .fetch_one(&backdoor.db)
    .await
    .unwrap();
    assert_eq!(answers, 1, "one answer in all");

    // The rule's stats count its decisions (the unmatched message is no
    // decision of this rule's).
    let path = format!(
        "/api/v1/auto-replies/{}/stats",
        rule["id"].as_str().unwrap()
    );
    let stats = wablast_tests::wait_for(
        "the stats",
        std::time::Duration::from_secs(30),
        async || {
            let (status, stats) = budi.get(&path).await;
            assert_eq!(status, StatusCode::OK, "{stats}");
            (stats["outcomes"] == json!({"answered": 1, "cooldown": 1, "outside_hours": 1}))
                .then_some(stats)
        },
    )
    .await;
    assert_eq!(
        (stats["answered"].as_i64(), stats["unanswered"].as_i64()),
        (Some(1), Some(2)),
        "{stats}"
    );
    assert!(stats["last_answered_at"].is_string(), "{stats}");
    let siti_client = crate::sending::funded(&app, 10).await;
    let (status, error) = siti_client.get(&path).await;
    assert_eq!((status, code(&error)), (StatusCode::NOT_FOUND, "not_found"));

    let report = wablast::verify::run(&backdoor.log).await.unwrap();
    assert!(report.holds(), "{}", wablast::verify::render(&report));
    stop.cancel();
    engine.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_matching_rule_of_highest_priority_answers_then_the_oldest() {
    use wablast_domain::auto_reply::AutoReplyEvent;
    let app = TestApp::spawn().await;
    let backdoor = crate::campaigns::Backdoor::of(&app).await;
    let (stop, engine) = crate::sending::engine(&app, "engine-a", |_| {});
    let budi = crate::sending::funded(&app, 100).await;
    let tenant = tenant(&budi);
    let session = crate::sending::linked(&budi, "+6281299992002", 100).await;
    let mut ids = Vec::new();
    for (name, trigger, pattern, priority) in [
        ("Semua", "regex", "(?i)ongkir", 0),
        ("Ongkir", "contains", "ongkir", 5),
        ("Ongkir juga", "contains", "ongkir", 5),
    ] {
        let (status, rule) = budi
            .post(
                "/api/v1/auto-replies",
                json!({"name": name, "trigger": trigger, "pattern": pattern,
                       "response": format!("Jawaban {name}"), "priority": priority}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{rule}");
        assert_eq!(rule["priority"], priority);
        ids.push(rule["id"].as_str().unwrap().to_owned());
    }
    let (status, accepted) = budi
        .post(
            &format!("/api/v1/sessions/{session}/simulator/inbound"),
            json!({"from": "+6281200000021", "text": "Berapa ONGKIR ke Bandung?"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let inbound = accepted["message_id"].as_str().unwrap();
    let answered = decision(&backdoor, tenant, &session, "6281200000021@c.us", inbound).await;
    let AutoReplyEvent::AutoReplyAnswered { rule_id, .. } = answered else {
        panic!("{answered:?}");
    };
    assert_eq!(rule_id.to_string(), ids[1], "priority 5, the older of two");
    stop.cancel();
    engine.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_answers_at_most_its_hourly_limit_whoever_asks() {
    use wablast_domain::auto_reply::{AutoReplyEvent, Silence};
    let app = TestApp::spawn().await;
    let backdoor = crate::campaigns::Backdoor::of(&app).await;
    let (stop, engine) = crate::sending::engine(&app, "engine-a", |_| {});
    let budi = crate::sending::funded(&app, 100).await;
    let tenant = tenant(&budi);
    let session = crate::sending::linked(&budi, "+6281299992003", 100).await;
    let (status, rule) = budi
        .post(
            "/api/v1/auto-replies",
            json!({"name": "Promo", "trigger": "contains", "pattern": "promo",
                   "response": "Promo berlaku sampai Minggu.", "max_per_hour": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    assert_eq!(rule["max_per_hour"], 1);
    let mut decided = Vec::new();
    for from in ["+6281200000031", "+6281200000032"] {
        let (status, accepted) = budi
            .post(
                &format!("/api/v1/sessions/{session}/simulator/inbound"),
                json!({"from": from, "text": "Ada promo?"}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        let contact = format!("{}@c.us", from.trim_start_matches('+'));
        let inbound = accepted["message_id"].as_str().unwrap().to_owned();
        let last = wablast_tests::wait_for(
            "the final decision",
            std::time::Duration::from_secs(30),
            async || {
                let last = decision(&backdoor, tenant, &session, &contact, &inbound).await;
                // The first is answered; the second taken, then withdrawn.
                (decided.is_empty() || !matches!(last, AutoReplyEvent::AutoReplyAnswered { .. }))
                    .then_some(last)
            },
        )
        .await;
        decided.push(last);
    }
    assert!(
        matches!(decided[0], AutoReplyEvent::AutoReplyAnswered { .. }),
        "{decided:?}"
    );
    assert!(
        matches!(
            decided[1],
            AutoReplyEvent::AutoReplyWithdrawn {
                reason: Silence::RateLimited,
                ..
            }
        ),
        "{decided:?}"
    );
    // The limit can be lifted.
    let path = format!("/api/v1/auto-replies/{}", rule["id"].as_str().unwrap());
    let (status, changed) = budi.patch(&path, json!({"max_per_hour": null})).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["max_per_hour"], serde_json::Value::Null);
    stop.cancel();
    engine.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_outside_its_own_windows_leaves_the_message_to_the_next_or_to_silence() {
    use wablast_domain::auto_reply::{AutoReplyEvent, Silence};
    let app = TestApp::spawn().await;
    let backdoor = crate::campaigns::Backdoor::of(&app).await;
    let (stop, engine) = crate::sending::engine(&app, "engine-a", |_| {});
    let budi = crate::sending::funded(&app, 100).await;
    let tenant = tenant(&budi);
    let session = crate::sending::linked(&budi, "+6281299992004", 100).await;
    // Asia/Jakarta (the default zone) is UTC+7 all year: a window two hours
    // from now is closed now, every day.
    let local = chrono::Utc::now() + chrono::TimeDelta::hours(7);
    let hhmm = |t: chrono::DateTime<chrono::Utc>| t.format("%H:%M").to_string();
    let every_day = json!(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]);
    let closed = json!([{"days": every_day, "start": hhmm(local + chrono::TimeDelta::hours(2)),
                          "end": hhmm(local + chrono::TimeDelta::hours(3))}]);
    let (status, office) = budi
        .post(
            "/api/v1/auto-replies",
            json!({"name": "Kantor", "trigger": "contains", "pattern": "jam buka",
                   "response": "Kami di kantor.", "priority": 5, "active_windows": closed}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{office}");
    assert_eq!(office["active_windows"], closed);
    let (status, night) = budi
        .post(
            "/api/v1/auto-replies",
            json!({"name": "Malam", "trigger": "contains", "pattern": "jam buka",
                   "response": "Kantor tutup; kami jawab besok.",
                   "active_windows": [{"days": every_day, "start": "00:00", "end": "00:00"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{night}");
    let ask = |from: &'static str| {
        let (budi, session) = (budi.clone(), session.clone());
        async move {
            let (status, accepted) = budi
                .post(
                    &format!("/api/v1/sessions/{session}/simulator/inbound"),
                    json!({"from": from, "text": "Jam buka hari ini?"}),
                )
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
            accepted["message_id"].as_str().unwrap().to_owned()
        }
    };

    // The office rule is closed: the night rule answers.
    let inbound = ask("+6281200000041").await;
    let answered = decision(&backdoor, tenant, &session, "6281200000041@c.us", &inbound).await;
    let AutoReplyEvent::AutoReplyAnswered { rule_id, .. } = answered else {
        panic!("{answered:?}");
    };
    assert_eq!(rule_id.to_string(), night["id"].as_str().unwrap());

    // Without the night rule: silence, outside hours, naming the rule.
    let path = format!("/api/v1/auto-replies/{}", night["id"].as_str().unwrap());
    let (status, _) = budi.delete(&path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let inbound = ask("+6281200000042").await;
    let silent = decision(&backdoor, tenant, &session, "6281200000042@c.us", &inbound).await;
    let AutoReplyEvent::AutoReplySilent {
        rule_id, reason, ..
    } = silent
    else {
        panic!("{silent:?}");
    };
    assert_eq!(reason, Silence::OutsideHours);
    assert_eq!(
        rule_id.map(|id| id.to_string()).as_deref(),
        office["id"].as_str()
    );

    // Windows are checked like the tenant's, and can be taken away.
    let office_path = format!("/api/v1/auto-replies/{}", office["id"].as_str().unwrap());
    let (status, body) = budi
        .patch(
            &office_path,
            json!({"active_windows": [{"days": ["someday"], "start": "09:00", "end": "17:00"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["details"]["field"], "active_windows[0].days");
    let (status, body) = budi
        .patch(&office_path, json!({"active_windows": null}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["active_windows"].is_null());
    stop.cancel();
    engine.await.unwrap().unwrap();
}
