//! Session health: a ready session that goes silent and does not answer
//! its probe is restarted; a storm of failures on one engine holds every
//! send there for a while (each waiting session says why, the operator
//! sees the hold), and sending resumes by itself when it ends.

use std::time::Duration;

use cqrs_es::Aggregate;
use reqwest::StatusCode;
use serde_json::json;
use wablast_domain::session::Session;
use wablast_domain::types::{SessionId, TenantId};
use wablast_eventstore::AggregateKey;

use crate::app::{Client, TestApp};
use crate::campaigns::Backdoor;
use crate::governor::engine_at_hand_with;
use crate::sending::{funded, linked};
use wablast_tests::wait_for as until;

/// The types and payloads of the session's events, in order.
async fn session_events(backdoor: &Backdoor, client: &Client, id: &str) -> Vec<(String, String)> {
    let tenant = TenantId::from_uuid(client.tenant_id.parse().unwrap());
    let session: SessionId = id.parse().unwrap();
    let history = backdoor
        .log
        .load(Session::TYPE, &AggregateKey::new(tenant, session).unwrap())
        .await
        .unwrap();
    history
        .commits
        .iter()
        .flat_map(|(_, commit)| &commit.events)
        .map(|event| (event.event_type.clone(), event.payload.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_session_that_does_not_answer_its_probe_is_restarted() {
    let app = TestApp::spawn().await;
    let (engine, stop, task) = engine_at_hand_with(&app, |config| {
        config.health.probe_after = Duration::from_millis(500);
        config.health.probe_timeout = Duration::from_millis(500);
    })
    .await;
    let backdoor = Backdoor::of(&app).await;
    let budi = funded(&app, 1000).await;
    let session = linked(&budi, "+6281299993001", 100).await;

    // Silent but answering: probed, left alone.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let events = session_events(&backdoor, &budi, &session).await;
    assert!(
        !events.iter().any(|(_, p)| p.contains("unresponsive")),
        "{events:?}"
    );

    // Its connection hangs: the probe gets no answer, the session is
    // reported disconnected (unresponsive), restarted, and ready again on
    // the same number.
    engine
        .network()
        .hang(session.parse().unwrap())
        .expect("a ready session can hang");
    let events = until("the restart", Duration::from_secs(20), async || {
        let events = session_events(&backdoor, &budi, &session).await;
        let unresponsive = events.iter().position(|(kind, p)| {
            kind == "SessionStatusChanged"
                && p.contains(r#""to":"disconnected""#)
                && p.contains(r#""reason":"unresponsive""#)
        })?;
        let ready_again = events[unresponsive..]
            .iter()
            .any(|(kind, p)| kind == "SessionStatusChanged" && p.contains(r#""to":"ready""#));
        ready_again.then_some(events)
    })
    .await;
    assert!(
        events
            .iter()
            .any(|(kind, p)| kind == "SessionReconnectScheduled" && p.contains("health probe")),
        "{events:?}"
    );
    let (_, s) = budi.get(&format!("/api/v1/sessions/{session}")).await;
    assert_eq!(
        (s["status"].as_str(), s["phone_number"].as_str()),
        (Some("ready"), Some("+6281299993001")),
        "{s}"
    );

    // Restarted, it sends.
    let (status, queued) = budi
        .post(
            "/api/v1/messages",
            json!({"session_id": session, "to": "+6281311110001", "text": "Halo"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let id = queued["id"].as_str().unwrap().to_owned();
    until("the message sent", Duration::from_secs(20), async || {
        let (_, m) = budi.get(&format!("/api/v1/messages/{id}")).await;
        matches!(m["status"].as_str(), Some("sent" | "delivered" | "read")).then_some(())
    })
    .await;

    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_failures_holds_every_send_on_the_engine_until_it_ends() {
    let app = TestApp::spawn().await;
    let hold = Duration::from_secs(6);
    let (engine, stop, task) = engine_at_hand_with(&app, |config| {
        config.health.storm_sessions = 2;
        config.health.storm_share = 0.5;
        config.health.storm_window = Duration::from_secs(60);
        config.health.storm_hold = hold;
    })
    .await;
    let backdoor = Backdoor::of(&app).await;
    let admin = app.admin().await;
    let budi = funded(&app, 1000).await;
    let mut sessions = Vec::new();
    // The plan's three numbers.
    for i in 0..3 {
        sessions.push(linked(&budi, &format!("+628129999400{i}"), 100).await);
    }
    let quiet = sessions[2].clone();

    // One of three dropping is no storm.
    let drop = |session: &String| {
        engine
            .network()
            .disconnect(session.parse().unwrap())
            .expect("a ready session can drop");
    };
    drop(&sessions[0]);
    until("the drop seen", Duration::from_secs(10), async || {
        let events = session_events(&backdoor, &budi, &sessions[0]).await;
        events
            .iter()
            .any(|(kind, p)| kind == "SessionStatusChanged" && p.contains(r#""to":"disconnected""#))
            .then_some(())
    })
    .await;
    let (_, engines) = admin.get("/api/v1/admin/engines").await;
    assert!(engines["items"][0]["sending_held"].is_null(), "{engines}");

    // A second within the window: more than half of the engine's sessions
    // failed, so it holds every send.
    drop(&sessions[1]);
    let held = until("the hold", Duration::from_secs(10), async || {
        let (_, engines) = admin.get("/api/v1/admin/engines").await;
        let held = engines["items"][0]["sending_held"].clone();
        (!held.is_null()).then_some(held)
    })
    .await;
    assert_eq!(held["reason"], "failure_storm", "{held}");
    assert_eq!(
        (held["failed_sessions"].as_u64(), held["sessions"].as_u64()),
        (Some(2), Some(3)),
        "{held}"
    );

    // A message to send on the session that never failed waits, saying
    // why, until the hold ends.
    let (status, queued) = budi
        .post(
            "/api/v1/messages",
            json!({"session_id": quiet, "to": "+6281311110002", "text": "Halo"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let id = queued["id"].as_str().unwrap().to_owned();
    let waiting = until("the wait said", Duration::from_secs(10), async || {
        let (_, s) = budi.get(&format!("/api/v1/sessions/{quiet}")).await;
        (s["waiting"]["reason"] == "failure_storm").then_some(s)
    })
    .await;
    assert_eq!(waiting["status"], "ready", "{waiting}");
    let (_, m) = budi.get(&format!("/api/v1/messages/{id}")).await;
    assert_eq!(m["status"], "queued", "held, not sent: {m}");
    let events = session_events(&backdoor, &budi, &quiet).await;
    assert!(
        events
            .iter()
            .any(|(kind, p)| kind == "SessionWaiting" && p.contains("failure_storm")),
        "{events:?}"
    );

    // The hold ends by itself: the message goes, and the session no
    // longer says it waits.
    until(
        "the message sent",
        hold + Duration::from_secs(20),
        async || {
            let (_, m) = budi.get(&format!("/api/v1/messages/{id}")).await;
            matches!(m["status"].as_str(), Some("sent" | "delivered" | "read")).then_some(())
        },
    )
    .await;
    until("the wait over", Duration::from_secs(10), async || {
        let (_, s) = budi.get(&format!("/api/v1/sessions/{quiet}")).await;
        s["waiting"].is_null().then_some(())
    })
    .await;
    let (_, engines) = admin.get("/api/v1/admin/engines").await;
    assert!(engines["items"][0]["sending_held"].is_null(), "{engines}");

    stop.cancel();
    task.await.unwrap();
}
