//! Native sessions through the HTTP API: two sessions of the `native`
//! driver (WhatsApp Web multi-device in the engine's own process) linked by
//! QR code against the fake WhatsApp server (`wablast_tests::native_fake`,
//! one fake phone per session behind one websocket on loopback, given to
//! the engine as `WABLAST_NATIVE_WS_URL`), then a campaign over both: every
//! recipient gets one message, each acked by the server and read, and the
//! log keeps every rule. An attachment from a native sender is refused.
//!
//! What it proves: the engine runs native sessions (QR codes to the API,
//! pairing, login, sends through the real Signal encryption and the
//! server's acks, receipts into the campaign's counts) with their keys in
//! PostgreSQL under the lease's fence. What it cannot: that WhatsApp
//! answers as the fake does (see the README's staging check with a real
//! phone).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::ACCEPT;
use serde_json::json;
use uuid::Uuid;
use wablast_tests::native_fake::FakeWhatsAppNetwork;
use wablast_tests::wait_for as until;

use crate::app::{Client, TestApp, code};
use crate::campaigns::Backdoor;
use crate::sending::{completed_once_each, funded, started, verified};

/// A native session created, started, shown a QR code through the API and
/// linked by the phone of `phone` (digits) scanning it: ready as that
/// number.
async fn linked_native(client: &Client, network: &Arc<FakeWhatsAppNetwork>, phone: &str) -> String {
    let (status, session) = client
        .post(
            "/api/v1/sessions",
            json!({"name": format!("Native {phone}"), "driver": "native", "daily_limit": 100, "warm_up": false}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    assert_eq!(session["driver"], "native");
    let id = session["id"].as_str().unwrap().to_owned();
    let (status, body) = client
        .post(&format!("/api/v1/sessions/{id}/start"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let qr = until("a QR code", Duration::from_secs(30), async || {
        let (status, body) = client
            .send(
                client
                    .request(reqwest::Method::GET, &format!("/api/v1/sessions/{id}/qr"))
                    .header(ACCEPT, "application/json"),
            )
            .await;
        (status == StatusCode::OK).then(|| body["qr"].as_str().unwrap().to_owned())
    })
    .await;
    assert!(qr.starts_with("2@phone-"), "the fake server's ref: {qr}");
    assert!(network.scan(&qr, phone), "the phone scans the QR code");
    // The first login after a link waits up to 10 s for an app-state key
    // the fake does not keep.
    let ready = until("ready", Duration::from_secs(60), async || {
        let (_, s) = client.get(&format!("/api/v1/sessions/{id}")).await;
        (s["status"] == "ready").then_some(s)
    })
    .await;
    assert_eq!(ready["phone_number"], format!("+{phone}"), "{ready}");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_over_two_native_sessions_on_the_fake_whatsapp_reaches_everyone_once() {
    let network = FakeWhatsAppNetwork::new(2);
    let recipients = 6;
    // The list's numbers (`Backdoor::contact_list`) are on WhatsApp.
    for row in 1..=recipients {
        network.register(&format!("628120000{row:04}"));
    }
    let (url, _server) = network.listen().await;
    let app = TestApp::spawn_engine_with(|settings| {
        settings.native_ws_url = url.clone();
        // No version fetch: nothing here reaches WhatsApp.
        settings.native_wa_version = Some((2, 3000, 1_000_000_000));
    })
    .await;
    let backdoor = Backdoor::of(&app).await;
    let budi = funded(&app, 1000).await;

    let first = linked_native(&budi, &network, "6281299990001").await;
    let second = linked_native(&budi, &network, "6281299990002").await;
    let paired: BTreeSet<Option<u64>> = network.phones().iter().map(|p| p.paired()).collect();
    assert_eq!(
        paired,
        BTreeSet::from([Some(6_281_299_990_001), Some(6_281_299_990_002)]),
        "each session on its own phone"
    );

    let list = backdoor
        .contact_list(&budi.tenant_id, recipients, &["kota"])
        .await;

    // Texts only for now: an attachment from a native sender is refused at
    // once (422), never accepted and failed at its send.
    let (_, uploaded) = crate::media::upload(&budi, "promo.png", &crate::media::png()).await;
    let (status, body) = budi
        .post(
            "/api/v1/campaigns",
            json!({"name": "Katalog", "contact_list_id": list, "template": "Halo {{name}}",
                   "sender_session_ids": [&first, &second], "media_id": uploaded["id"]}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "media_not_supported"),
        "{body}"
    );
    let (status, body) = budi
        .post(
            "/api/v1/messages",
            json!({"session_id": first, "to": "+6281200000001", "media_id": uploaded["id"], "caption": "katalog"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "media_not_supported"),
        "{body}"
    );
    let id = started(&budi, list, &[&first, &second], (0, 0)).await;
    let done = completed_once_each(&budi, &backdoor, &id, recipients as i64).await;
    assert_eq!(done["points_spent"], 2 * recipients, "{done}");

    // Both senders sent, each message went to WhatsApp once under the id
    // the driver derived from ours, to its recipient.
    let per_sender: Vec<i64> = sqlx::query_scalar(
        "select count(*) from messages where campaign_id = $1 group by session_id",
    )
    .bind(Uuid::parse_str(&id).unwrap())
    .fetch_all(&backdoor.db)
    .await
    .unwrap();
    assert_eq!(per_sender.len(), 2, "both senders sent: {per_sender:?}");
    let on_the_wire = network.messages();
    let to: BTreeSet<String> = on_the_wire
        .iter()
        .map(|(_, to, _)| to.split(['@', ':']).next().unwrap().to_owned())
        .collect();
    let expected: BTreeSet<String> = (1..=recipients)
        .map(|row| format!("628120000{row:04}"))
        .collect();
    assert_eq!(to, expected, "every recipient reached on the wire");
    assert_eq!(on_the_wire.len(), recipients, "once each: {on_the_wire:?}");
    let provider_ids: Vec<String> =
        sqlx::query_scalar("select provider_message_id from messages where campaign_id = $1")
            .bind(Uuid::parse_str(&id).unwrap())
            .fetch_all(&backdoor.db)
            .await
            .unwrap();
    let provider_ids: BTreeSet<String> = provider_ids.into_iter().collect();
    let wire_ids: BTreeSet<String> = on_the_wire.iter().map(|(id, _, _)| id.clone()).collect();
    assert_eq!(provider_ids, wire_ids, "our messages carry WhatsApp's ids");

    // The fake server's receipts: every message read, eventually.
    until("every receipt", Duration::from_secs(30), async || {
        let read: i64 = sqlx::query_scalar(
            "select count(*) from messages where campaign_id = $1 and status = 'read'",
        )
        .bind(Uuid::parse_str(&id).unwrap())
        .fetch_one(&backdoor.db)
        .await
        .unwrap();
        (read == recipients as i64).then_some(())
    })
    .await;

    // The keys are in PostgreSQL, sealed, for both sessions.
    let sessions_with_keys: i64 =
        sqlx::query_scalar("select count(distinct session_id) from native_keys")
            .fetch_one(&backdoor.db)
            .await
            .unwrap();
    assert_eq!(sessions_with_keys, 2);

    verified(&backdoor).await;
    app.stop().await.unwrap();
}
