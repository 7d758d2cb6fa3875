//! The gateway's single sends: one message to one recipient goes out once,
//! under the campaign rules (points, daily limit, active hours, plan),
//! costs 2 points reserved in blocks, and is settled once its day is over.

use std::sync::Arc;
use std::time::Duration;

use chrono::{Days, Timelike, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use wablast_workflows::clock::ManualClock;

use crate::app::{TestApp, code};
use crate::campaigns::{Backdoor, define_plan, grant_plan};
use crate::sending::{engine, funded, linked};
use wablast_tests::wait_for as until;

/// A message's row once `done` says so: (status, text).
async fn message_until(
    db: &sqlx::PgPool,
    id: &str,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> (String, Option<String>) {
    let id = Uuid::parse_str(id).unwrap();
    until(what, Duration::from_secs(30), async || {
        let row: Option<(String, Option<String>)> =
            sqlx::query_as("select status, text from messages where id = $1")
                .bind(id)
                .fetch_optional(db)
                .await
                .unwrap();
        row.filter(|(status, _)| done(status))
    })
    .await
}

fn sent(status: &str) -> bool {
    matches!(status, "sent" | "delivered" | "read")
}

async fn wallet(client: &crate::app::Client) -> Value {
    let (status, wallet) = client.get("/api/v1/wallet").await;
    assert_eq!(status, StatusCode::OK, "{wallet}");
    wallet
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_send_goes_out_once_and_is_settled_when_its_day_is_over() {
    let app = TestApp::spawn().await;
    let backdoor = Backdoor::of(&app).await;
    let clock = ManualClock::new(Utc::now());
    let (stop, engine) = engine(&app, "engine-a", |c| c.clock = Arc::new(clock.clone()));
    let budi = funded(&app, 1000).await;
    let session = linked(&budi, "+6281299991001", 100).await;
    // Its single sends go out without a pause (a campaign keeps its own).
    let (status, patched) = budi
        .patch(
            &format!("/api/v1/sessions/{session}"),
            json!({"throttle": {"min_delay_ms": 0, "max_delay_ms": 0}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(
        patched["throttle"],
        json!({"min_delay_ms": 0, "max_delay_ms": 0})
    );
    let (status, error) = budi
        .patch(
            &format!("/api/v1/sessions/{session}"),
            json!({"throttle": {"min_delay_ms": 5000, "max_delay_ms": 1000}}),
        )
        .await;
    assert_eq!(
        (status, code(&error)),
        (StatusCode::BAD_REQUEST, "validation_failed")
    );

    let send = || {
        budi.request(reqwest::Method::POST, "/api/v1/messages")
            .header("idempotency-key", "pesanan-77")
            .json(&json!({"session_id": session, "to": "0812-1111-2222", "text": "Halo Budi, pesanan 77 dikirim"}))
    };
    let (status, queued) = budi.send(send()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["to"], "+6281211112222");
    let id = queued["id"].as_str().unwrap().to_owned();
    // A retry with the same key is the same message, sent once.
    let (status, again) = budi.send(send()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_eq!(again["id"], queued["id"]);

    let (_, text) = message_until(&backdoor.db, &id, "sent", sent).await;
    assert_eq!(text.as_deref(), Some("Halo Budi, pesanan 77 dikirim"));
    let count: i64 = sqlx::query_scalar(
        "select count(*) from messages where tenant_id = $1 and phone = '+6281211112222'",
    )
    .bind(Uuid::parse_str(&budi.tenant_id).unwrap())
    .fetch_one(&backdoor.db)
    .await
    .unwrap();
    assert_eq!(count, 1, "one message for two requests");

    // One block reserved (50 messages), not one reservation per message.
    let held = wallet(&budi).await;
    assert_eq!(held["reserved"], 100, "{held}");
    assert_eq!(held["balance"], 1000, "{held}");
    // Single sends are no campaign of the tenant's lists.
    let (_, campaigns) = budi.get("/api/v1/campaigns").await;
    assert_eq!(campaigns["items"], json!([]), "{campaigns}");

    // Once its local day is over, its campaign completes and settles: 2
    // points captured, the rest of the block released.
    clock.set(Utc::now() + Days::new(2));
    until("settled", Duration::from_secs(30), async || {
        let w = wallet(&budi).await;
        (w["reserved"] == 0).then_some(())
    })
    .await;
    let settled = wallet(&budi).await;
    assert_eq!(settled["balance"], 998, "{settled}");
    assert_eq!(settled["available"], 998, "{settled}");
    let report = wablast::verify::run(&backdoor.log).await.unwrap();
    assert!(
        report.holds(),
        "the log breaks a rule:\n{}",
        wablast::verify::render(&report)
    );
    stop.cancel();
    engine.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_sends_at_once_are_each_admitted_once_and_refused_for_themselves() {
    let app = TestApp::spawn().await;
    let backdoor = Backdoor::of(&app).await;
    let (stop, engine) = engine(&app, "engine-a", |_| {});
    // Points for 130 messages: two full blocks and a third of 30.
    let budi = funded(&app, 2 * 130).await;
    let session = linked(&budi, "+6281299991004", 500).await;
    let (status, patched) = budi
        .patch(
            &format!("/api/v1/sessions/{session}"),
            json!({"throttle": {"min_delay_ms": 0, "max_delay_ms": 0}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");

    // 160 requests at once are decided in groups: 130 are admitted, each
    // once, and only the 30 the wallet cannot pay for are refused.
    let posts = (0..160).map(|n| {
        let budi = budi.clone();
        let session = session.clone();
        async move {
            budi.post(
                "/api/v1/messages",
                json!({"session_id": session, "to": format!("0813-3333-{n:04}"), "text": format!("Pesanan {n}")}),
            )
            .await
        }
    });
    let answers = futures::future::join_all(posts).await;
    let mut accepted = std::collections::HashSet::new();
    let mut refused = 0;
    for (status, body) in &answers {
        match *status {
            StatusCode::ACCEPTED => assert!(accepted.insert(body["id"].clone()), "{body}"),
            StatusCode::UNPROCESSABLE_ENTITY => {
                assert_eq!(code(body), "insufficient_points", "{body}");
                refused += 1;
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!((accepted.len(), refused), (130, 30));

    let tenant = Uuid::parse_str(&budi.tenant_id).unwrap();
    until("130 sent", Duration::from_secs(60), async || {
        let n: i64 = sqlx::query_scalar(
            "select count(*) from messages where tenant_id = $1 and status in ('sent', 'delivered', 'read')",
        )
        .bind(tenant)
        .fetch_one(&backdoor.db)
        .await
        .unwrap();
        (n == 130).then_some(())
    })
    .await;
    let held = wallet(&budi).await;
    assert_eq!(held["available"], 0, "{held}");
    let report = wablast::verify::run(&backdoor.log).await.unwrap();
    assert!(
        report.holds(),
        "the log breaks a rule:\n{}",
        wablast::verify::render(&report)
    );
    stop.cancel();
    engine.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_send_is_refused_at_once_when_it_could_not_go() {
    let app = TestApp::spawn().await;
    let (stop, engine) = engine(&app, "engine-a", |_| {});
    let admin = app.admin().await;
    // Points for one message only.
    let budi = app.tenant("Toko Budi").await;
    let plan = define_plan(&admin, 3, 500).await;
    grant_plan(&admin, &budi, &plan).await;
    let session = linked(&budi, "+6281299991002", 1).await;
    let post = |body: Value| {
        let budi = budi.clone();
        async move { budi.post("/api/v1/messages", body).await }
    };
    let to = |n: u32| format!("0812-2222-{n:04}");

    // Bad requests change nothing.
    for (body, expected) in [
        (
            json!({"session_id": session, "to": to(1)}),
            "validation_failed",
        ),
        (
            json!({"session_id": session, "to": to(1), "text": " "}),
            "validation_failed",
        ),
        (
            json!({"session_id": session, "to": to(1), "text": "x".repeat(4097)}),
            "validation_failed",
        ),
        (
            json!({"session_id": session, "to": "1203 6302@g.us", "text": "hai"}),
            "validation_failed",
        ),
        (
            json!({"session_id": session, "to": "bukan nomor", "text": "hai"}),
            "invalid_phone",
        ),
        (
            json!({"session_id": session, "to": to(1), "text": "hai", "reply_to": " "}),
            "validation_failed",
        ),
        (
            json!({"session_id": session, "to": to(1), "text": "hai", "default_region": "XX"}),
            "validation_failed",
        ),
        (
            json!({"session_id": session, "to": to(1), "text": "hai", "outside_active_hours": "later"}),
            "validation_failed",
        ),
    ] {
        let (status, error) = post(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {error}");
        assert_eq!(code(&error), expected, "{body}: {error}");
    }
    let (status, error) =
        post(json!({"session_id": Uuid::now_v7(), "to": to(1), "text": "hai"})).await;
    assert_eq!(
        (status, code(&error)),
        (StatusCode::NOT_FOUND, "not_found"),
        "{error}"
    );
    let (status, error) = post(
        json!({"session_id": session, "to": to(1), "media_id": Uuid::now_v7(), "caption": "katalog"}),
    )
    .await;
    assert_eq!(
        (status, code(&error)),
        (StatusCode::NOT_FOUND, "not_found"),
        "{error}"
    );

    // Another tenant's session is not found.
    let siti = funded(&app, 100).await;
    let (status, error) = siti
        .post(
            "/api/v1/messages",
            json!({"session_id": session, "to": to(1), "text": "hai"}),
        )
        .await;
    assert_eq!(
        (status, code(&error)),
        (StatusCode::NOT_FOUND, "not_found"),
        "{error}"
    );

    // A session that is not linked: 409.
    let (_, idle) = budi
        .post(
            "/api/v1/sessions",
            json!({"name": "Belum", "driver": "simulator"}),
        )
        .await;
    let (status, error) = post(json!({"session_id": idle["id"], "to": to(1), "text": "hai"})).await;
    assert_eq!(
        (status, code(&error)),
        (StatusCode::CONFLICT, "invalid_state"),
        "{error}"
    );
    assert_eq!(
        error["error"]["details"]["session_status"], "idle",
        "{error}"
    );

    // Closed hours: refused when asked, queued otherwise.
    let closed = Utc::now() + chrono::TimeDelta::hours(12);
    let window = |t: chrono::DateTime<Utc>| format!("{:02}:{:02}", t.hour(), t.minute());
    let (status, schedule) = budi
        .put(
            "/api/v1/schedule",
            json!({"timezone": "UTC", "windows": [{"days": ["mon","tue","wed","thu","fri","sat","sun"],
                   "start": window(closed), "end": window(closed + chrono::TimeDelta::minutes(2))}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{schedule}");
    let (status, error) = post(
        json!({"session_id": session, "to": to(1), "text": "hai", "outside_active_hours": "refuse"}),
    )
    .await;
    assert_eq!(
        (status, code(&error)),
        (StatusCode::UNPROCESSABLE_ENTITY, "outside_active_hours"),
        "{error}"
    );
    let (status, waiting) =
        post(json!({"session_id": session, "to": to(1), "text": "nanti saja"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{waiting}");
    // Its block took the only message the wallet could pay for.
    let (status, error) = post(json!({"session_id": session, "to": to(2), "text": "hai"})).await;
    assert_eq!(
        (status, code(&error)),
        (StatusCode::UNPROCESSABLE_ENTITY, "insufficient_points"),
        "{error}"
    );

    // Open hours: the waiting one goes, and the day's limit of 1 is used.
    let (status, _) = budi
        .put(
            "/api/v1/schedule",
            json!({"timezone": "UTC", "windows": []}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let backdoor = Backdoor::of(&app).await;
    message_until(&backdoor.db, waiting["id"].as_str().unwrap(), "sent", sent).await;
    let (status, error) = post(json!({"session_id": session, "to": to(3), "text": "hai"})).await;
    assert_eq!(
        (status, code(&error)),
        (StatusCode::UNPROCESSABLE_ENTITY, "daily_limit_reached"),
        "{error}"
    );
    assert!(error["error"]["details"]["retry_at"].is_string(), "{error}");
    stop.cancel();
    engine.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_and_the_inbox_show_every_message_sent_and_received() {
    let app = TestApp::spawn().await;
    let backdoor = Backdoor::of(&app).await;
    let (stop, engine) = engine(&app, "engine-a", |_| {});
    let budi = funded(&app, 1000).await;
    let session = linked(&budi, "+6281299991003", 100).await;

    // A campaign to two contacts, two single sends, one message received.
    let list = backdoor.contact_list(&budi.tenant_id, 2, &["kota"]).await;
    let campaign = crate::sending::started(&budi, list, &[&session], (0, 0)).await;
    let mut singles = Vec::new();
    for text in ["Pesanan Anda dikirim", "Terima kasih!"] {
        let (status, queued) = budi
            .post(
                "/api/v1/messages",
                json!({"session_id": session, "to": "+62 812-0000-0001", "text": text,
                       "reply_to": "false_6281200000001@c.us_3EB0A1"}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
        singles.push(queued["id"].as_str().unwrap().to_owned());
    }
    let (status, _) = budi
        .post(
            &format!("/api/v1/sessions/{session}/simulator/inbound"),
            json!({"from": "+6281200000001", "text": "Barangnya sudah sampai"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    for id in &singles {
        message_until(&backdoor.db, id, "sent", sent).await;
    }

    let all = until("five messages", Duration::from_secs(30), async || {
        let (status, page) = budi.get("/api/v1/messages").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap().clone();
        (items.len() == 5
            && items
                .iter()
                .filter(|m| sent(m["status"].as_str().unwrap()))
                .count()
                == 4)
            .then_some(items)
    })
    .await;
    let times: Vec<String> = all
        .iter()
        .map(|m| {
            m["queued_at"]
                .as_str()
                .or(m["received_at"].as_str())
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");

    let received = &budi.get("/api/v1/messages?direction=in").await.1["items"];
    assert_eq!(received.as_array().unwrap().len(), 1, "{received}");
    assert_eq!(received[0]["status"], "received");
    assert_eq!(received[0]["peer"], "+6281200000001");
    assert_eq!(received[0]["type"], "text");
    assert_eq!(received[0]["text"], "Barangnya sudah sampai");

    let of_campaign = &budi
        .get(&format!("/api/v1/messages?campaign_id={campaign}"))
        .await
        .1["items"];
    assert_eq!(of_campaign.as_array().unwrap().len(), 2, "{of_campaign}");
    assert!(
        of_campaign
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["campaign_id"] == campaign)
    );

    // The peer in any form: the campaign's message, both single sends and
    // the answer.
    let with_peer = &budi.get("/api/v1/messages?peer=0812-0000-0001").await.1["items"];
    assert_eq!(with_peer.as_array().unwrap().len(), 4, "{with_peer}");

    // A single send on its own, with its text and no campaign.
    let (status, single) = budi.get(&format!("/api/v1/messages/{}", singles[1])).await;
    assert_eq!(status, StatusCode::OK, "{single}");
    assert_eq!(single["direction"], "out");
    assert_eq!(single["campaign_id"], Value::Null);
    assert_eq!(single["type"], "text");
    assert_eq!(single["text"], "Terima kasih!");
    assert_eq!(single["reply_to"], "false_6281200000001@c.us_3EB0A1");
    assert!(single["sent_at"].is_string(), "{single}");

    // Page after page: each message once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/messages?limit=2&cursor={c}"),
            None => "/api/v1/messages?limit=2".to_owned(),
        };
        let (status, page) = budi.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for m in page["items"].as_array().unwrap() {
            seen.push(m["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = all
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, expected);

    for bad in [
        "direction=sideways",
        "status=lost",
        "cursor=zzz",
        "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
        "limit=0",
    ] {
        let (status, error) = budi.get(&format!("/api/v1/messages?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {error}");
    }

    // The inbox: a chat per peer, the one that answered first, unread.
    let chats = until("two chats", Duration::from_secs(30), async || {
        let (status, page) = budi
            .get(&format!("/api/v1/chats?session_id={session}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap().clone();
        (items.len() == 2).then_some(items)
    })
    .await;
    assert_eq!(chats[0]["peer"], "+6281200000001", "{chats:?}");
    assert_eq!(chats[0]["last_direction"], "in");
    assert_eq!(chats[0]["last_message"], "Barangnya sudah sampai");
    assert_eq!(chats[0]["unread"], 1);
    assert_eq!(chats[1]["peer"], "+6281200000002");
    assert_eq!(chats[1]["last_direction"], "out");
    assert_eq!(chats[1]["unread"], 0);
    let chat = chats[0]["id"].as_str().unwrap().to_owned();
    // One peer's chat, the number in any form.
    let (status, one) = budi
        .get(&format!(
            "/api/v1/chats?session_id={session}&peer=0812-0000-0001"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["items"].as_array().unwrap().len(), 1, "{one}");
    assert_eq!(one["items"][0]["id"], chat.as_str(), "{one}");
    let (status, error) = budi.get("/api/v1/chats?peer=%20").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    let (status, _) = budi
        .post(&format!("/api/v1/chats/{chat}/read"), json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, page) = budi.get("/api/v1/chats").await;
    assert_eq!(page["items"][0]["unread"], 0, "{page}");
    // A new answer is unread again.
    let (status, _) = budi
        .post(
            &format!("/api/v1/sessions/{session}/simulator/inbound"),
            json!({"from": "+6281200000001", "text": "Makasih kak"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    until("unread again", Duration::from_secs(30), async || {
        let (_, page) = budi.get("/api/v1/chats").await;
        (page["items"][0]["unread"] == 1 && page["items"][0]["last_message"] == "Makasih kak")
            .then_some(())
    })
    .await;
    let (status, _) = budi
        .post(&format!("/api/v1/chats/{}/read", Uuid::now_v7()), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Another tenant sees none of them.
    let siti = funded(&app, 100).await;
    let (status, _) = siti.get(&format!("/api/v1/messages/{}", singles[0])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, theirs) = siti.get("/api/v1/messages").await;
    assert_eq!(theirs["items"], json!([]));
    let (_, theirs) = siti.get("/api/v1/chats").await;
    assert_eq!(theirs["items"], json!([]));
    let (status, _) = siti
        .post(&format!("/api/v1/chats/{chat}/read"), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    stop.cancel();
    engine.await.unwrap().unwrap();
}
