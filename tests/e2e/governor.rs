//! The sender governor end to end: WhatsApp's restrictions, as the
//! simulator answers them, hold a sender back from new contacts while the
//! campaign's other senders carry its work; with no sender left with room,
//! the work waits, saying why.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wablast_domain::governor::RestrictionKind;
use wablast_session_engine::engine::{Engine, EngineConfig};

use crate::app::{Client, TestApp};
use crate::campaigns::Backdoor;
use crate::sending::{completed_once_each, funded, linked, started};
use wablast_tests::wait_for as until;

/// An engine of the application's installation (quick receipts and
/// retries, as `sending::engine`), run on its own task, kept at hand for
/// its simulated network.
async fn engine_at_hand(app: &TestApp) -> (Arc<Engine>, CancellationToken, JoinHandle<()>) {
    engine_at_hand_with(app, |_| {}).await
}

/// [`engine_at_hand`], configured further by `configure`.
pub async fn engine_at_hand_with(
    app: &TestApp,
    configure: impl FnOnce(&mut EngineConfig),
) -> (Arc<Engine>, CancellationToken, JoinHandle<()>) {
    let mut config = app.settings.engine().expect("engine settings");
    config.engine_id = "engine-a".to_owned();
    config.simulator.delivered_after = Some(Duration::from_millis(50));
    config.simulator.read_after = Some(Duration::from_millis(50));
    config.settle_every = Duration::from_millis(300);
    config.send.retry =
        wablast_eventstore::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    configure(&mut config);
    let log = wablast::open_event_log(&app.settings).await.unwrap();
    let db = wablast::database_pool(&app.settings).unwrap();
    let engine = Engine::new(config, log.jetstream().client(), log, db)
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let (engine, stop) = (engine.clone(), stop.clone());
        async move { engine.run(stop).await.unwrap() }
    });
    (engine, stop, task)
}

async fn session(client: &Client, id: &str) -> Value {
    let (status, s) = client.get(&format!("/api/v1/sessions/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    s
}

async fn verified(backdoor: &Backdoor) {
    let report = wablast::verify::run(&backdoor.log).await.unwrap();
    assert!(
        report.holds(),
        "the log breaks a rule:\n{}",
        wablast::verify::render(&report)
    );
}

/// How many of a campaign's messages each sender sent, by the `messages`
/// table (a message's sender is the one that took it last).
async fn sent_by(db: &sqlx::PgPool, campaign: &str, session: &str) -> i64 {
    sqlx::query_scalar(
        "select count(*) from messages where campaign_id = $1 and session_id = $2
           and status in ('sent', 'delivered', 'read')",
    )
    .bind(Uuid::parse_str(campaign).unwrap())
    .bind(Uuid::parse_str(session).unwrap())
    .fetch_one(db)
    .await
    .unwrap()
}

/// A campaign over two senders, one of which WhatsApp answers with a 463
/// reachout timelock: its sends to new contacts go out through the other,
/// each recipient once, and the restricted number sends none. A second
/// campaign, once the other is timelocked too, has no sender with room:
/// it waits, its senders saying why and until when.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn governor_a_timelocked_senders_new_contacts_go_out_through_the_other_sender() {
    let app = TestApp::spawn_with(|s| s.lease_ttl_seconds = 5).await;
    let (engine, stop, task) = engine_at_hand(&app).await;
    let backdoor = Backdoor::of(&app).await;
    let budi = funded(&app, 1000).await;
    let locked = linked(&budi, "+6281299990041", 200).await;
    let open = linked(&budi, "+6281299990042", 200).await;
    let network = engine.network();
    let until_t = Utc::now() + chrono::Duration::hours(1);
    network
        .restrict(
            locked.parse().unwrap(),
            RestrictionKind::ReachoutTimelock,
            until_t,
        )
        .unwrap();

    // Half the recipients are queued for the timelocked sender: its first
    // sends are answered 463, the governor records the timelock, and the
    // rest move to the other sender.
    let list = backdoor.contact_list(&budi.tenant_id, 20, &["kota"]).await;
    let id = started(&budi, list, &[&locked, &open], (0, 0)).await;
    completed_once_each(&budi, &backdoor, &id, 20).await;
    assert_eq!(sent_by(&backdoor.db, &id, &open).await, 20);
    assert_eq!(sent_by(&backdoor.db, &id, &locked).await, 0);
    assert_eq!(network.went_out(locked.parse().unwrap()).unwrap(), 0);
    assert_eq!(
        network.went_out(open.parse().unwrap()).unwrap(),
        20,
        "nothing sent twice"
    );
    let s = session(&budi, &locked).await;
    assert_eq!(s["governor_state"], "restricted", "{s}");
    assert_eq!(s["restriction"]["kind"], "reachout_timelock", "{s}");
    assert_eq!(s["capacity"]["new_contacts_left"], 0, "{s}");
    let open_state = session(&budi, &open).await;
    assert_eq!(open_state["governor_state"], "normal", "{open_state}");

    // The other sender is timelocked in turn: nobody has room for a new
    // contact, so the next campaign's messages wait, saying why.
    network
        .restrict(
            open.parse().unwrap(),
            RestrictionKind::ReachoutTimelock,
            until_t,
        )
        .unwrap();
    let list = backdoor.contact_list(&budi.tenant_id, 4, &["kota"]).await;
    // Numbers neither sender ever wrote to: new contacts for both.
    sqlx::query(
        "update contacts set phone = '+62813000' || lpad(row_number::text, 5, '0')
         where list_id = $1",
    )
    .bind(list)
    .execute(&backdoor.db)
    .await
    .unwrap();
    let second = started(&budi, list, &[&locked, &open], (0, 0)).await;
    // The other sender's first send is answered 463; what it holds, and
    // what the first hands it before it knows, waits there: the first has
    // no room for a new contact either.
    let s = until("the wait said", Duration::from_secs(30), async || {
        let s = session(&budi, &open).await;
        (s["waiting"]["reason"] == "sender_restricted").then_some(s)
    })
    .await;
    assert!(s["waiting"]["until"].is_string(), "{s}");
    assert_eq!(s["governor_state"], "restricted", "{s}");
    let l = session(&budi, &locked).await;
    assert!(
        l["waiting"].is_null() || l["waiting"]["reason"] == "sender_restricted",
        "{l}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, c) = budi.get(&format!("/api/v1/campaigns/{second}")).await;
    assert_eq!(c["status"], "running", "{c}");
    assert_eq!(sent_by(&backdoor.db, &second, &open).await, 0, "{c}");
    assert_eq!(sent_by(&backdoor.db, &second, &locked).await, 0, "{c}");
    assert_eq!(network.went_out(open.parse().unwrap()).unwrap(), 20);

    verified(&backdoor).await;
    stop.cancel();
    task.await.unwrap();
}

/// A number whose connection drops five times within ten minutes is held
/// back for a while (a disconnect storm): the session says so, and a
/// campaign's messages wait, saying why, with nothing sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn governor_a_storm_of_disconnects_pauses_the_sender_saying_why() {
    let app = TestApp::spawn_with(|s| s.lease_ttl_seconds = 5).await;
    let (engine, stop, task) = engine_at_hand(&app).await;
    let backdoor = Backdoor::of(&app).await;
    let budi = funded(&app, 1000).await;
    let shaky = linked(&budi, "+6281299990043", 100).await;
    let network = engine.network();
    for drop in 1..=5 {
        until("a ready session", Duration::from_secs(20), async || {
            network.disconnect(shaky.parse().unwrap()).ok()
        })
        .await;
        let s = until("the reconnection", Duration::from_secs(20), async || {
            let s = session(&budi, &shaky).await;
            (s["status"] == "ready").then_some(s)
        })
        .await;
        if drop < 5 {
            assert_eq!(s["governor_state"], "normal", "after {drop}: {s}");
        }
    }
    let s = session(&budi, &shaky).await;
    assert_eq!(s["governor_state"], "restricted", "{s}");
    assert_eq!(s["restriction"]["kind"], "disconnect_storm", "{s}");

    let list = backdoor.contact_list(&budi.tenant_id, 2, &["kota"]).await;
    let id = started(&budi, list, &[&shaky], (0, 0)).await;
    let s = until("the wait said", Duration::from_secs(30), async || {
        let s = session(&budi, &shaky).await;
        (s["waiting"]["reason"] == "sender_restricted").then_some(s)
    })
    .await;
    assert!(s["waiting"]["until"].is_string(), "{s}");
    assert_eq!(sent_by(&backdoor.db, &id, &shaky).await, 0);
    assert_eq!(network.went_out(shaky.parse().unwrap()).unwrap(), 0);
    verified(&backdoor).await;
    stop.cancel();
    task.await.unwrap();
}
