//! The engagement guard end to end: contacts the tenant sent its guard of
//! messages who never replied are left out of later campaigns (the one who
//! replied is still sent to); a campaign whose sends fail too often slows
//! itself down, saying why, and spaces its sends accordingly.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use wablast_domain::types::phone::Phone;
use wablast_session_engine::simulator::SimulatorNetwork;

use crate::app::{Client, TestApp};
use crate::campaigns::Backdoor;
use crate::events::{SseReader, subscribe};
use crate::sending::{campaign_until, completed_once_each, engine, funded, linked, verified};
use wablast_tests::wait_for as until;

/// Creates and starts a campaign to `list` from `sender` at a zero
/// throttle, with `guard` as its `skip_unanswered_after` (the default when
/// `None`).
async fn started_with_guard(
    client: &Client,
    list: Uuid,
    sender: &str,
    guard: Option<u64>,
) -> String {
    let mut body = json!({
        "name": "Promo",
        "contact_list_id": list,
        "template": "Halo {{name}}, promo minggu ini!",
        "sender_session_ids": [sender],
        "throttle": {"min_delay_ms": 0, "max_delay_ms": 0},
    });
    if let Some(guard) = guard {
        body["skip_unanswered_after"] = json!(guard);
    }
    let (status, campaign) = client.post("/api/v1/campaigns", body).await;
    assert_eq!(status, StatusCode::CREATED, "{campaign}");
    assert_eq!(
        campaign["skip_unanswered_after"],
        guard.unwrap_or(3),
        "{campaign}"
    );
    let id = campaign["id"].as_str().unwrap().to_owned();
    let (status, body) = client
        .post(&format!("/api/v1/campaigns/{id}/start"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    id
}

/// Waits until the engagement projection counts `sent` messages to each of
/// `phones`.
async fn outbound_counted(db: &sqlx::PgPool, tenant: &str, phones: &[String], sent: i64) {
    let tenant = Uuid::parse_str(tenant).unwrap();
    until(
        "the sends counted per contact",
        Duration::from_secs(20),
        async || {
            let counted: i64 = sqlx::query_scalar(
                "select count(*) from contact_outbound
             where tenant_id = $1 and phone = any($2) and sent = $3",
            )
            .bind(tenant)
            .bind(phones)
            .bind(sent)
            .fetch_one(db)
            .await
            .unwrap();
            (counted == phones.len() as i64).then_some(())
        },
    )
    .await;
}

async fn campaign(client: &Client, id: &str) -> Value {
    let (status, campaign) = client.get(&format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{campaign}");
    campaign
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engagement_the_one_contact_who_replied_is_the_only_one_still_sent_to() {
    let app = TestApp::spawn_with(|s| s.lease_ttl_seconds = 5).await;
    let backdoor = Backdoor::of(&app).await;
    let (stop, engine) = engine(&app, "engine-a", |_| {});
    let budi = funded(&app, 1000).await;
    let session = linked(&budi, "+6281299990101", 500).await;
    let list = backdoor.contact_list(&budi.tenant_id, 4, &[]).await;
    let phones: Vec<String> = (1..=4).map(|row| format!("+628120000{row:04}")).collect();

    // Three campaigns reach every contact; the first contact replies.
    let first = started_with_guard(&budi, list, &session, None).await;
    completed_once_each(&budi, &backdoor, &first, 4).await;
    let (status, body) = budi
        .post(
            &format!("/api/v1/sessions/{session}/simulator/inbound"),
            json!({"from": phones[0], "text": "Boleh, kirim katalognya"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    for _ in 0..2 {
        let id = started_with_guard(&budi, list, &session, None).await;
        let done = completed_once_each(&budi, &backdoor, &id, 4).await;
        assert_eq!(done["skipped"]["never_replied"], 0, "{done}");
    }
    outbound_counted(&backdoor.db, &budi.tenant_id, &phones, 3).await;
    // The first campaign counts the reply that came after its message.
    let replied = until("the reply counted", Duration::from_secs(20), async || {
        let c = campaign(&budi, &first).await;
        (c["replied"] == 1).then_some(c)
    })
    .await;
    assert_eq!(replied["skip_unanswered_after"], 3, "{replied}");

    // The fourth (guard 3, the default) leaves out the three who never
    // replied: the one who did is the only one sent to.
    let fourth = started_with_guard(&budi, list, &session, None).await;
    let done = completed_once_each(&budi, &backdoor, &fourth, 1).await;
    assert_eq!(done["counts"]["total"], 1, "{done}");
    assert_eq!(
        done["skipped"],
        json!({"not_on_whatsapp": 0, "never_replied": 3}),
        "{done}"
    );
    let to: Vec<String> = sqlx::query_scalar("select phone from messages where campaign_id = $1")
        .bind(Uuid::parse_str(&fourth).unwrap())
        .fetch_all(&backdoor.db)
        .await
        .unwrap();
    assert_eq!(to, vec![phones[0].clone()]);
    // Its points were reserved for that one only.
    assert_eq!(done["points_reserved"], 2, "{done}");

    // A guard of 5 leaves nobody out (three messages each so far), and
    // neither does a guard turned off.
    for guard in [5, 0] {
        let id = started_with_guard(&budi, list, &session, Some(guard)).await;
        let done = completed_once_each(&budi, &backdoor, &id, 4).await;
        assert_eq!(
            (
                done["skip_unanswered_after"].as_u64(),
                &done["skipped"]["never_replied"]
            ),
            (Some(guard), &json!(0)),
            "{done}"
        );
    }
    verified(&backdoor).await;
    stop.cancel();
    engine.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engagement_a_guard_beyond_a_hundred_is_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let backdoor = Backdoor::of(&app).await;
    let budi = funded(&app, 1000).await;
    let session = backdoor.session(&budi.tenant_id).await;
    let list = backdoor.contact_list(&budi.tenant_id, 2, &[]).await;
    let (status, body) = budi
        .post(
            "/api/v1/campaigns",
            json!({
                "name": "Promo",
                "contact_list_id": list,
                "template": "Halo {{name}}",
                "sender_session_ids": [session],
                "skip_unanswered_after": 101,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "validation_failed", "{body}");
    assert_eq!(
        body["error"]["details"]["field"], "skip_unanswered_after",
        "{body}"
    );
}

/// `count` numbers that the engine's simulated network answers as on
/// WhatsApp (`registered`) or not, from `+62813000xxxxx` on.
fn numbers(network: &SimulatorNetwork, registered: bool, count: usize) -> Vec<String> {
    (1..)
        .map(|n: u32| format!("+62813000{n:05}"))
        .filter(|phone| network.is_registered(&phone.parse::<Phone>().unwrap()) == registered)
        .take(count)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engagement_a_campaign_whose_sends_fail_slows_down_and_spaces_its_sends() {
    let app = TestApp::spawn_with(|s| s.lease_ttl_seconds = 5).await;
    let backdoor = Backdoor::of(&app).await;
    // Half the numbers are not on WhatsApp: sends to them fail for good.
    let mut simulator = app.settings.engine().expect("engine settings").simulator;
    simulator.unregistered_rate = 0.5;
    let network = SimulatorNetwork::new(simulator);
    let (stop, engine) = engine(&app, "engine-a", |c| c.simulator.unregistered_rate = 0.5);
    let budi = funded(&app, 1000).await;
    let session = linked(&budi, "+6281299990102", 500).await;

    // Two that go through, one that fails, again and again: a third of
    // the sends fail, never two in a row (no auto-pause).
    let (good, bad) = (numbers(&network, true, 10), numbers(&network, false, 5));
    let mut phones = Vec::new();
    for i in 0..5 {
        phones.extend([good[2 * i].clone(), good[2 * i + 1].clone(), bad[i].clone()]);
    }
    let contacts: Vec<Value> = phones
        .iter()
        .enumerate()
        .map(
            |(i, phone)| json!({"phone": phone, "name": format!("Pelanggan {i}"), "consent": true}),
        )
        .collect();
    let (status, list) = budi
        .post(
            "/api/v1/contact-lists",
            json!({"name": "Campuran", "contacts": contacts}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{list}");
    let (status, created) = budi
        .post(
            "/api/v1/campaigns",
            json!({
                "name": "Promo",
                "contact_list_id": list["id"],
                "template": "Halo {{name}}",
                "sender_session_ids": [session],
                "throttle": {"min_delay_ms": 100, "max_delay_ms": 200},
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let mut stream = SseReader::new(subscribe(&budi, "types=CampaignSlowedDown", None).await);
    let (status, body) = budi
        .post(&format!("/api/v1/campaigns/{id}/start"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    // After ten sends, three failed: it slows down, saying why.
    let slowed = campaign_until(&budi, &id, "the slow-down", Duration::from_secs(60), |c| {
        !c["slow_down"].is_null()
    })
    .await;
    assert_eq!(
        slowed["slow_down"]["reason"], "failures_climbing",
        "{slowed}"
    );
    assert_eq!(
        slowed["slow_down"]["session_id"],
        session.as_str(),
        "{slowed}"
    );
    assert_eq!(
        slowed["slow_down"]["throttle"],
        json!({"min_delay_ms": 2000, "max_delay_ms": 6000}),
        "{slowed}"
    );
    assert_eq!(slowed["status"], "running", "{slowed}");
    let since: DateTime<Utc> = slowed["slow_down"]["since"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let done = campaign_until(&budi, &id, "completion", Duration::from_secs(90), |c| {
        c["status"] == "completed"
    })
    .await;
    assert_eq!(
        (
            &done["counts"]["failed"],
            done["counts"]["sent"].as_i64().unwrap()
                + done["counts"]["delivered"].as_i64().unwrap()
                + done["counts"]["read"].as_i64().unwrap()
        ),
        (&json!(5), 10),
        "{done}"
    );
    // Still slow: the failures never fell under 10%.
    assert!(!done["slow_down"].is_null(), "{done}");

    // Every send's instant (sent, or failed), in order: before the
    // slow-down they come a pause of 0.1 to 0.2 s apart; after it (the
    // send already admitted at the old pace aside), 2 s at least.
    let times: Vec<DateTime<Utc>> = sqlx::query_scalar(
        "select coalesce(sent_at, updated_at) as at from messages
         where campaign_id = $1 order by at",
    )
    .bind(Uuid::parse_str(&id).unwrap())
    .fetch_all(&backdoor.db)
    .await
    .unwrap();
    assert_eq!(times.len(), 15);
    assert!(
        times[9] - times[0] < chrono::TimeDelta::seconds(5),
        "the first ten at the campaign's own pace: {times:?}"
    );
    let after: Vec<_> = times.iter().filter(|t| **t > since).collect();
    assert!(after.len() >= 4, "{since} {times:?}");
    for pair in after[1..].windows(2) {
        assert!(
            *pair[1] - *pair[0] >= chrono::TimeDelta::milliseconds(1_900),
            "sends spaced by the slowed pace after {since}: {times:?}"
        );
    }

    // The event stream said so as it happened, with the reason.
    let event = stream
        .next(Duration::from_secs(10))
        .await
        .expect("the slow-down on the event stream");
    assert_eq!(event.event, "CampaignSlowedDown", "{event:?}");
    assert!(
        event.data.to_string().contains("failures_climbing")
            && event.data.to_string().contains(&id),
        "{event:?}"
    );
    verified(&backdoor).await;
    stop.cancel();
    engine.await.unwrap().unwrap();
}
