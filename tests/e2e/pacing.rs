//! A session's own pacing end to end: set with `PATCH
//! /api/v1/sessions/{id}` `pacing`, refused out of range naming the field,
//! shown by `GET`, and held to by the send loop: an established number
//! keeps to its own hourly cap, and a number warming up keeps to the
//! governor's tighter caps whatever looser pacing its owner sets.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::app::{Client, TestApp};
use crate::campaigns::Backdoor;
use crate::sending::{engine, funded, linked, linked_as, sent_count, started, verified};
use wablast_tests::wait_for as until;

async fn patch(
    client: &Client,
    session: &str,
    body: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    client
        .patch(&format!("/api/v1/sessions/{session}"), body)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pacing_is_set_validated_shown_and_held_to() {
    let app = TestApp::spawn_with(|s| s.lease_ttl_seconds = 5).await;
    let (stop, engine) = engine(&app, "engine-a", |_| {});
    let backdoor = Backdoor::of(&app).await;
    let budi = funded(&app, 1000).await;
    let session = linked(&budi, "+6281299990201", 100).await;
    let (_, s) = budi.get(&format!("/api/v1/sessions/{session}")).await;
    assert_eq!(
        s["pacing"],
        json!({"break_every": null, "per_minute": null, "per_hour": null, "new_contacts_per_day": null}),
        "{s}"
    );

    // Out of range, or an hour below its minute: refused, naming `pacing`.
    for wrong in [
        json!({"per_minute": 0}),
        json!({"break_every": 1}),
        json!({"per_hour": 100_001}),
        json!({"new_contacts_per_day": -1}),
        json!({"per_minute": 10, "per_hour": 5}),
    ] {
        let (status, body) = patch(&budi, &session, json!({"pacing": wrong})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{wrong}: {body}");
        assert_eq!(body["error"]["details"]["field"], "pacing", "{body}");
    }

    // Set: shown as set.
    let pacing =
        json!({"break_every": 10, "per_minute": 2, "per_hour": 2, "new_contacts_per_day": 50});
    let (status, body) = patch(&budi, &session, json!({"pacing": pacing})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["pacing"], pacing, "{body}");
    let (_, s) = budi.get(&format!("/api/v1/sessions/{session}")).await;
    assert_eq!(s["pacing"], pacing, "{s}");

    // Held to: at a zero throttle, 2 sends this hour, then it waits,
    // saying why.
    let list = backdoor.contact_list(&budi.tenant_id, 5, &["kota"]).await;
    let id = started(&budi, list, &[&session], (0, 0)).await;
    let s = until("the wait", Duration::from_secs(30), async || {
        let (_, s) = budi.get(&format!("/api/v1/sessions/{session}")).await;
        (s["waiting"]["reason"] == "send_cap_reached").then_some(s)
    })
    .await;
    until(
        "the 2 sends recorded",
        Duration::from_secs(10),
        async || (sent_count(&backdoor.db, &id).await == 2).then_some(()),
    )
    .await;
    assert_eq!(s["capacity"]["this_hour"], 0, "{s}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sent_count(&backdoor.db, &id).await,
        2,
        "nothing more this hour"
    );

    // Cleared with `{}`.
    let (status, body) = patch(&budi, &session, json!({"pacing": {}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["pacing"]["per_hour"], json!(null), "{body}");
    let (status, body) = budi
        .post(&format!("/api/v1/campaigns/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    verified(&backdoor).await;
    stop.cancel();
    engine.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pacing_never_loosens_warm_up() {
    let app = TestApp::spawn_with(|s| s.lease_ttl_seconds = 5).await;
    let (stop, engine) = engine(&app, "engine-a", |_| {});
    let backdoor = Backdoor::of(&app).await;
    let budi = funded(&app, 1000).await;
    let session = linked_as(&budi, "+6281299990202", 100, true).await;
    // Looser than warm-up's 4 a minute and 5 new contacts a day.
    let pacing =
        json!({"break_every": null, "per_minute": 50, "per_hour": 500, "new_contacts_per_day": 50});
    let (status, body) = patch(&budi, &session, json!({"pacing": pacing})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["pacing"], pacing, "{body}");
    let (_, s) = budi.get(&format!("/api/v1/sessions/{session}")).await;
    assert_eq!(s["governor_state"], "warming_up", "{s}");

    let list = backdoor.contact_list(&budi.tenant_id, 10, &["kota"]).await;
    let id = started(&budi, list, &[&session], (0, 0)).await;
    let s = until("the wait", Duration::from_secs(30), async || {
        let (_, s) = budi.get(&format!("/api/v1/sessions/{session}")).await;
        (s["waiting"]["reason"] == "send_cap_reached").then_some(s)
    })
    .await;
    until(
        "the 4 sends recorded",
        Duration::from_secs(10),
        async || (sent_count(&backdoor.db, &id).await == 4).then_some(()),
    )
    .await;
    assert_eq!(s["capacity"]["new_contacts_left"], 1, "{s}");
    verified(&backdoor).await;
    stop.cancel();
    engine.await.unwrap().unwrap();
}
