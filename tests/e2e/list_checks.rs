//! A contact list's numbers checked on WhatsApp in the background: at the
//! session's pace for checks, answered from the tenant's recent checks
//! where it can, shown on each contact, followed and cancelled; campaigns
//! that skip numbers not on WhatsApp reserve and send for the others only.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use wablast_tests::wait_for as until;

use crate::app::{Client, TestApp, code};
use crate::campaigns::Backdoor;
use crate::sending::{completed_once_each, engine, funded, linked};

/// The pace of checks the engine keeps in these tests.
const PACE: Duration = Duration::from_millis(100);

/// A list made of `phones` (each with a name), by the API.
async fn list_of(client: &Client, phones: &[String]) -> String {
    let contacts: Vec<Value> = phones
        .iter()
        .enumerate()
        .map(
            |(i, phone)| json!({"phone": phone, "name": format!("Pelanggan {i}"), "consent": true}),
        )
        .collect();
    let (status, list) = client
        .post(
            "/api/v1/contact-lists",
            json!({"name": "Pelanggan", "contacts": contacts}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{list}");
    list["id"].as_str().unwrap().to_owned()
}

/// The list's check once `done` says so.
async fn check_until(
    client: &Client,
    list: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    until(what, Duration::from_secs(60), async || {
        let (status, check) = client
            .get(&format!("/api/v1/contact-lists/{list}/check"))
            .await;
        (status == StatusCode::OK && done(&check)).then_some(check)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lists_numbers_are_checked_at_the_sessions_pace_and_a_campaign_skips_those_not_on_whatsapp()
 {
    let app = TestApp::spawn().await;
    let (stop, engine) = engine(&app, "engine-a", |c| {
        c.simulator.unregistered_rate = 0.4;
        c.number_check_every = PACE;
        c.list_checks.poll = Duration::from_millis(100);
        c.list_checks.ask_within = Duration::from_millis(700);
        c.list_checks.wait = Duration::from_millis(200);
    });
    let backdoor = Backdoor::of(&app).await;
    let budi = funded(&app, 1000).await;
    let session = linked(&budi, "+6281299993101", 100).await;
    let phones: Vec<String> = (0..16).map(|i| format!("0812-6666-{i:04}")).collect();
    let list = list_of(&budi, &phones).await;

    // Two numbers were checked a moment ago: they are not asked again.
    let (status, known) = budi
        .post(
            &format!("/api/v1/sessions/{session}/check-numbers"),
            json!({"numbers": &phones[..2]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{known}");
    let asked_before = Utc::now();

    let path = format!("/api/v1/contact-lists/{list}/check");
    let (status, started) = budi.post(&path, json!({"session_id": session})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["status"], "running", "{started}");
    assert_eq!(started["contacts"], 16, "{started}");
    assert!(started["job_id"].is_string(), "{started}");
    // One check of a list at a time.
    let (status, again) = budi.post(&path, json!({"session_id": session})).await;
    assert_eq!(
        (status, code(&again)),
        (StatusCode::CONFLICT, "invalid_state"),
        "{again}"
    );

    // It gets further step by step, then completes.
    let halfway = check_until(&budi, &list, "progress", |c| {
        c["checked"].as_i64().unwrap() > 0
    })
    .await;
    assert_eq!(halfway["job_id"], started["job_id"]);
    let done = check_until(&budi, &list, "completion", |c| c["status"] == "completed").await;
    assert_eq!(done["checked"], 16, "{done}");
    let (on, off) = (
        done["on_whatsapp"].as_i64().unwrap(),
        done["not_on_whatsapp"].as_i64().unwrap(),
    );
    assert_eq!(on + off, 16, "{done}");
    assert!(on > 0 && off > 0, "a mix: {done}");
    assert!(done["ended_at"].is_string(), "{done}");

    // Asked through the session one at a time, never faster than its pace;
    // the two known numbers were not asked again.
    let mut asked: Vec<DateTime<Utc>> = sqlx::query_scalar(
        "select checked_at from number_checks where session_id = $1 and checked_at > $2
         order by checked_at",
    )
    .bind(Uuid::parse_str(&session).unwrap())
    .bind(asked_before)
    .fetch_all(&backdoor.db)
    .await
    .unwrap();
    assert_eq!(asked.len(), 14, "{asked:?}");
    asked.dedup();
    for pair in asked.windows(2) {
        let gap = (pair[1] - pair[0]).to_std().unwrap();
        // The limiter lets one through per period; the driver's own time
        // around it may shift an answer's stamp by a few milliseconds.
        assert!(
            gap >= PACE - Duration::from_millis(20),
            "{gap:?} between two checks"
        );
    }

    // Each contact says what was found.
    let (status, contacts) = budi
        .get(&format!("/api/v1/contact-lists/{list}/contacts?limit=100"))
        .await;
    assert_eq!(status, StatusCode::OK, "{contacts}");
    let contacts = contacts["items"].as_array().unwrap();
    let found_on = contacts
        .iter()
        .filter(|c| c["on_whatsapp"] == true)
        .inspect(|c| assert!(c["whatsapp_chat_id"].is_string(), "{c}"))
        .count();
    let found_off = contacts
        .iter()
        .filter(|c| c["on_whatsapp"] == false)
        .count();
    assert_eq!((found_on as i64, found_off as i64), (on, off));

    // A campaign that skips numbers not on WhatsApp reserves and sends for
    // the others only.
    let (status, campaign) = budi
        .post(
            "/api/v1/campaigns",
            json!({
                "name": "Promo",
                "contact_list_id": list,
                "template": "Halo {{name}}",
                "sender_session_ids": [session],
                "throttle": {"min_delay_ms": 0, "max_delay_ms": 0},
                "skip_not_on_whatsapp": true,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{campaign}");
    assert_eq!(campaign["skip_not_on_whatsapp"], true);
    let id = campaign["id"].as_str().unwrap().to_owned();
    let (status, body) = budi
        .post(&format!("/api/v1/campaigns/{id}/start"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let completed = completed_once_each(&budi, &backdoor, &id, on).await;
    assert_eq!(completed["skipped_not_on_whatsapp"], off, "{completed}");
    assert_eq!(completed["counts"]["total"], on, "{completed}");
    assert_eq!(completed["points_reserved"], 2 * on, "{completed}");
    let sent_to: Vec<String> =
        sqlx::query_scalar("select phone from messages where campaign_id = $1")
            .bind(Uuid::parse_str(&id).unwrap())
            .fetch_all(&backdoor.db)
            .await
            .unwrap();
    for phone in &sent_to {
        let contact = contacts.iter().find(|c| c["phone"] == *phone).unwrap();
        assert_eq!(contact["on_whatsapp"], true, "sent to {phone}");
    }

    // An ended check cannot be cancelled; another tenant sees none.
    let (status, ended) = budi.delete(&path).await;
    assert_eq!(
        (status, code(&ended)),
        (StatusCode::CONFLICT, "invalid_state")
    );
    let siti = funded(&app, 100).await;
    let (status, _) = siti.get(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = siti.post(&path, json!({"session_id": session})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    stop.cancel();
    engine.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_check_asks_nothing_more_and_a_deleted_session_fails_one() {
    let app = TestApp::spawn().await;
    let (stop, engine) = engine(&app, "engine-a", |c| {
        c.number_check_every = Duration::from_millis(200);
        c.list_checks.poll = Duration::from_millis(100);
        c.list_checks.ask_within = Duration::from_millis(500);
        c.list_checks.wait = Duration::from_millis(200);
    });
    let budi = funded(&app, 1000).await;
    let session = linked(&budi, "+6281299993102", 100).await;
    let phones: Vec<String> = (0..40).map(|i| format!("0812-5555-{i:04}")).collect();
    let list = list_of(&budi, &phones).await;
    let path = format!("/api/v1/contact-lists/{list}/check");

    let (status, _) = budi.post(&path, json!({"session_id": session})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    check_until(&budi, &list, "progress", |c| {
        c["checked"].as_i64().unwrap() > 0
    })
    .await;
    let (status, body) = budi.delete(&path).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let cancelled = check_until(&budi, &list, "the cancellation", |c| {
        c["status"] == "cancelled"
    })
    .await;
    let checked = cancelled["checked"].as_i64().unwrap();
    assert!(checked < 40, "{cancelled}");
    // Nothing more is asked or recorded.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, later) = budi.get(&path).await;
    assert_eq!(later["checked"], checked, "{later}");
    assert_eq!(later["status"], "cancelled");

    // A check whose session is deleted fails, saying why.
    let (status, _) = budi.post(&path, json!({"session_id": session})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, body) = budi.delete(&format!("/api/v1/sessions/{session}")).await;
    assert!(status.is_success(), "{status} {body}");
    let failed = check_until(&budi, &list, "the failure", |c| c["status"] == "failed").await;
    assert_eq!(failed["failure"], "session_deleted", "{failed}");

    stop.cancel();
    engine.await.unwrap().unwrap();
}
