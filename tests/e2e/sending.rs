//! Sending: a started campaign fans out over its senders, the engines send
//! every message once, receipts come back, the campaign completes and the
//! wallet settles; an engine that dies mid-campaign hands over without a
//! recipient getting two messages; daily limits and active hours hold on a
//! clock the test drives.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Days, FixedOffset, NaiveTime, Utc};
use cqrs_es::Aggregate;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wablast_domain::campaign::Campaign;
use wablast_domain::message::{Message, MessageCommand};
use wablast_domain::recipient_batch::{
    BatchRecipient, RecipientBatch, RecipientBatchCommand, batch_id,
};
use wablast_domain::types::{CampaignId, SessionId, TenantId};
use wablast_eventstore::{Actor, AggregateKey, CommandHandler, CommandMetadata};
use wablast_session_engine::engine::EngineConfig;
use wablast_workflows::clock::ManualClock;
use wablast_workflows::fanout;
use wablast_workflows::sends::{SendCommand, SendQueue};

use crate::app::{Client, TestApp};
use crate::campaigns::{Backdoor, define_plan, grant_plan};
use wablast_tests::wait_for as until;

/// An engine of the application's installation, configured by `configure`
/// (on top of quick receipts and settlement), on its own task.
pub fn engine(
    app: &TestApp,
    id: &str,
    configure: impl FnOnce(&mut EngineConfig),
) -> (CancellationToken, JoinHandle<anyhow::Result<()>>) {
    let mut config = app.settings.engine().expect("engine settings");
    config.engine_id = id.to_owned();
    config.simulator.delivered_after = Some(Duration::from_millis(50));
    config.simulator.read_after = Some(Duration::from_millis(50));
    config.settle_every = Duration::from_millis(300);
    config.send.retry =
        wablast_eventstore::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    configure(&mut config);
    let stop = CancellationToken::new();
    let settings = app.settings.clone();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move { wablast::run_engine_with(&settings, config, stop).await }
    });
    (stop, task)
}

/// A tenant with a plan of `points` (recipient cap 500).
pub async fn funded(app: &TestApp, points: u64) -> Client {
    let admin = app.admin().await;
    let tenant = app.tenant("Toko Budi").await;
    let plan = define_plan(&admin, points, 500).await;
    grant_plan(&admin, &tenant, &plan).await;
    tenant
}

/// A simulator session linked to `phone` and ready, sending up to
/// `daily_limit` a day.
pub async fn linked(client: &Client, phone: &str, daily_limit: u32) -> String {
    linked_as(client, phone, daily_limit, false).await
}

/// A simulator session linked to `phone`, warming up when `warm_up`.
pub async fn linked_as(client: &Client, phone: &str, daily_limit: u32, warm_up: bool) -> String {
    let (status, session) = client
        .post(
            "/api/v1/sessions",
            json!({"name": format!("CS {phone}"), "driver": "simulator", "daily_limit": daily_limit, "warm_up": warm_up}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let id = session["id"].as_str().unwrap().to_owned();
    let (status, body) = client
        .post(&format!("/api/v1/sessions/{id}/start"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let scan = format!("/api/v1/sessions/{id}/simulator/scan");
    until("the scan", Duration::from_secs(20), async || {
        let (status, _) = client.post(&scan, json!({"phone_number": phone})).await;
        (status == StatusCode::ACCEPTED).then_some(())
    })
    .await;
    until("ready", Duration::from_secs(20), async || {
        let (_, s) = client.get(&format!("/api/v1/sessions/{id}")).await;
        (s["status"] == "ready").then_some(())
    })
    .await;
    id
}

/// Creates and starts a campaign to `list` from `senders`.
pub async fn started(
    client: &Client,
    list: Uuid,
    senders: &[&str],
    throttle_ms: (u64, u64),
) -> String {
    let (status, campaign) = client
        .post(
            "/api/v1/campaigns",
            json!({
                "name": "Promo",
                "contact_list_id": list,
                "template": "{Halo|Hai} {{name}}, promo {{kota|kota kamu}}!",
                "sender_session_ids": senders,
                "throttle": {"min_delay_ms": throttle_ms.0, "max_delay_ms": throttle_ms.1},
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{campaign}");
    let id = campaign["id"].as_str().unwrap().to_owned();
    let (status, body) = client
        .post(&format!("/api/v1/campaigns/{id}/start"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    id
}

async fn campaign(client: &Client, id: &str) -> Value {
    let (status, campaign) = client.get(&format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{campaign}");
    campaign
}

/// The campaign once `done` says so.
pub async fn campaign_until(
    client: &Client,
    id: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    until(what, timeout, async || {
        let c = campaign(client, id).await;
        done(&c).then_some(c)
    })
    .await
}

/// How many of the campaign's messages the `messages` table has per
/// status.
async fn statuses(db: &sqlx::PgPool, campaign: &str) -> Vec<(String, i64)> {
    sqlx::query_as(
        "select status, count(*) from messages where campaign_id = $1 group by status order by status",
    )
    .bind(Uuid::parse_str(campaign).unwrap())
    .fetch_all(db)
    .await
    .unwrap()
}

/// Messages of the campaign sent (or delivered, or read).
pub async fn sent_count(db: &sqlx::PgPool, campaign: &str) -> i64 {
    sqlx::query_scalar(
        "select count(*) from messages where campaign_id = $1 and status in ('sent', 'delivered', 'read')",
    )
    .bind(Uuid::parse_str(campaign).unwrap())
    .fetch_one(db)
    .await
    .unwrap()
}

/// A tenant whose campaign to 30 contacts starts over a session linked to
/// `phone` while no engine runs (one linked the session, then stopped):
/// the tenant, the session and the campaign.
async fn started_without_an_engine(
    app: &TestApp,
    backdoor: &Backdoor,
    phone: &str,
) -> (Client, String, String) {
    let budi = funded(app, 1000).await;
    let (stop, engine) = engine(app, "engine-a", |_| {});
    let session = linked(&budi, phone, 100).await;
    stop.cancel();
    engine.await.unwrap().unwrap();
    let list = backdoor.contact_list(&budi.tenant_id, 30, &["kota"]).await;
    let id = started(&budi, list, &[&session], (0, 0)).await;
    (budi, session, id)
}

/// Waits for the campaign to complete, each of its `recipients` sent one
/// message; the campaign as it completed.
pub async fn completed_once_each(
    client: &Client,
    backdoor: &Backdoor,
    id: &str,
    recipients: i64,
) -> Value {
    let done = campaign_until(client, id, "completion", Duration::from_secs(60), |c| {
        c["status"] == "completed"
    })
    .await;
    let (messages, phones): (i64, i64) = sqlx::query_as(
        "select count(*), count(distinct phone) from messages where campaign_id = $1",
    )
    .bind(Uuid::parse_str(id).unwrap())
    .fetch_one(&backdoor.db)
    .await
    .unwrap();
    assert_eq!(
        (messages, phones),
        (recipients, recipients),
        "every recipient once"
    );
    assert_eq!(sent_count(&backdoor.db, id).await, recipients, "{done}");
    done
}

/// `wablast verify` finds the log keeps every rule.
pub async fn verified(backdoor: &Backdoor) {
    let report = wablast::verify::run(&backdoor.log).await.unwrap();
    assert!(
        report.holds(),
        "the log breaks a rule:\n{}",
        wablast::verify::render(&report)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_over_two_sessions_reaches_every_recipient_once_and_settles() {
    let app = TestApp::spawn_with(|s| s.lease_ttl_seconds = 5).await;
    let (stop, engine) = engine(&app, "engine-a", |_| {});
    let backdoor = Backdoor::of(&app).await;
    let budi = funded(&app, 1000).await;
    let first = linked(&budi, "+6281299990001", 200).await;
    let second = linked(&budi, "+6281299990002", 200).await;
    let list = backdoor.contact_list(&budi.tenant_id, 200, &["kota"]).await;

    let id = started(&budi, list, &[&first, &second], (0, 0)).await;
    let done = campaign_until(&budi, &id, "completion", Duration::from_secs(120), |c| {
        c["status"] == "completed"
    })
    .await;

    // Every recipient once, from one of the two senders, read in the end.
    let (recipients, phones, senders): (i64, i64, i64) = sqlx::query_as(
        "select count(*), count(distinct phone), count(distinct session_id)
         from messages where campaign_id = $1",
    )
    .bind(Uuid::parse_str(&id).unwrap())
    .fetch_one(&backdoor.db)
    .await
    .unwrap();
    assert_eq!((recipients, phones, senders), (200, 200, 2));
    let per_sender: Vec<i64> = sqlx::query_scalar(
        "select count(*) from messages where campaign_id = $1 group by session_id",
    )
    .bind(Uuid::parse_str(&id).unwrap())
    .fetch_all(&backdoor.db)
    .await
    .unwrap();
    assert_eq!(per_sender, vec![100, 100], "spread by equal capacity");
    assert_eq!(sent_count(&backdoor.db, &id).await, 200);
    assert_eq!(done["points_spent"], 400, "{done}");

    // The wallet captured 2 points per message and holds nothing back.
    let wallet = until("the settlement", Duration::from_secs(20), async || {
        let (_, wallet) = budi.get("/api/v1/wallet").await;
        (wallet["reserved"] == 0).then_some(wallet)
    })
    .await;
    assert_eq!(
        (wallet["balance"].as_i64(), wallet["available"].as_i64()),
        (Some(600), Some(600)),
        "{wallet}"
    );

    // Receipts: every message read, eventually.
    until("every receipt", Duration::from_secs(20), async || {
        let s = statuses(&backdoor.db, &id).await;
        (s == vec![("read".to_owned(), 200)]).then_some(())
    })
    .await;

    // A customer answers: the message becomes an inbound event with the
    // sender's number, projected for the inbox.
    let (status, body) = budi
        .post(
            &format!("/api/v1/sessions/{first}/simulator/inbound"),
            json!({"from": "+6281311112222", "text": "stok ada?"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let received: (String, String, String) =
        until("the inbound message", Duration::from_secs(10), async || {
            sqlx::query_as(
                "select from_phone, from_raw, text from inbound_messages where session_id = $1",
            )
            .bind(Uuid::parse_str(&first).unwrap())
            .fetch_optional(&backdoor.db)
            .await
            .unwrap()
        })
        .await;
    assert_eq!(received.0, "+6281311112222");
    assert_eq!(received.2, "stok ada?");
    assert!(received.1.starts_with("6281311112222"), "{received:?}");

    verified(&backdoor).await;
    stop.cancel();
    engine.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_dying_mid_campaign_hands_over_and_nobody_gets_two_messages() {
    let app = TestApp::spawn_with(|s| s.lease_ttl_seconds = 3).await;
    let backdoor = Backdoor::of(&app).await;
    // Engine A on a runtime of its own: dropping it is the process dying.
    let runtime_a = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut config = app.settings.engine().expect("engine settings");
    config.engine_id = "engine-a".to_owned();
    config.settle_every = Duration::from_millis(300);
    let settings = app.settings.clone();
    runtime_a.spawn(async move {
        wablast::run_engine_with(&settings, config, CancellationToken::new()).await
    });

    let budi = funded(&app, 1000).await;
    let session = linked(&budi, "+6281299990003", 200).await;
    let list = backdoor.contact_list(&budi.tenant_id, 40, &["kota"]).await;
    let id = started(&budi, list, &[&session], (100, 200)).await;
    until("ten sent", Duration::from_secs(30), async || {
        (sent_count(&backdoor.db, &id).await >= 10).then_some(())
    })
    .await;

    runtime_a.shutdown_background();
    let (stop, engine_b) = engine(&app, "engine-b", |_| {});
    let done = campaign_until(
        &budi,
        &id,
        "completion by B",
        Duration::from_secs(90),
        |c| c["status"] == "completed",
    )
    .await;

    // Each recipient's message was sent at most once (verify); the one A
    // died with in flight is looked up: sent, or failed when the simulated
    // WhatsApp never got it. None is unknown: the peer can tell.
    let counts = &done["counts"];
    let sent = counts["sent"].as_i64().unwrap()
        + counts["delivered"].as_i64().unwrap()
        + counts["read"].as_i64().unwrap();
    let never_left = counts["failed"].as_i64().unwrap();
    assert_eq!(counts["unknown"], 0, "{done}");
    assert_eq!(sent + never_left, 40, "{done}");
    assert!(never_left <= 1, "at most the message in flight: {done}");
    verified(&backdoor).await;
    stop.cancel();
    engine_b.await.unwrap().unwrap();
}

/// An engine paused (as by SIGSTOP) past its lease in the middle of a
/// campaign: another engine takes the session over and finishes it; the
/// paused one, once it wakes, starts no send for the session again (its
/// lease is no longer surely held, and the session and its day counter
/// refuse its fence) and lets the session go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_paused_past_its_lease_sends_nothing_once_it_wakes() {
    let app = TestApp::spawn_with(|s| s.lease_ttl_seconds = 3).await;
    let backdoor = Backdoor::of(&app).await;
    // Who started each send, and when.
    let client = async_nats::connect(&app.settings.nats_url).await.unwrap();
    let mut commits = client
        .subscribe(format!("{}.ev.*.{}.*", app.prefix, Message::TYPE))
        .await
        .unwrap();
    let starts = Arc::new(std::sync::Mutex::new(Vec::<(String, DateTime<Utc>)>::new()));
    let seen = starts.clone();
    tokio::spawn(async move {
        use futures::StreamExt;
        while let Some(message) = commits.next().await {
            let commit: wablast_eventstore::Commit =
                serde_json::from_slice(&message.payload).unwrap();
            if commit
                .events
                .iter()
                .any(|e| e.event_type == "MessageSendingStarted")
            {
                let Actor::Engine(engine) = commit.actor else {
                    continue;
                };
                seen.lock().unwrap().push((engine, commit.occurred_at));
            }
        }
    });

    // Engine A on a current-thread runtime in a thread of its own: blocking
    // that thread stops all of A (its timers, its sockets), as SIGSTOP
    // would, and its clock runs on meanwhile.
    let (pause, pauses) = std::sync::mpsc::channel::<Duration>();
    let mut config = app.settings.engine().expect("engine settings");
    config.engine_id = "engine-a".to_owned();
    config.settle_every = Duration::from_millis(300);
    let settings = app.settings.clone();
    let engine_a = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let stop = CancellationToken::new();
            let engine = tokio::spawn({
                let stop = stop.clone();
                async move { wablast::run_engine_with(&settings, config, stop).await }
            });
            loop {
                match pauses.try_recv() {
                    Ok(pause) => std::thread::sleep(pause),
                    Err(std::sync::mpsc::TryRecvError::Empty) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
                }
            }
            stop.cancel();
            let _ = engine.await;
        });
    });

    let budi = funded(&app, 1000).await;
    let session = linked(&budi, "+6281299990009", 200).await;
    let list = backdoor.contact_list(&budi.tenant_id, 40, &["kota"]).await;
    let id = started(&budi, list, &[&session], (100, 200)).await;
    until("ten sent", Duration::from_secs(30), async || {
        (sent_count(&backdoor.db, &id).await >= 10).then_some(())
    })
    .await;

    // A stands still for three lease lifetimes; B takes over meanwhile.
    pause.send(Duration::from_secs(9)).unwrap();
    let paused_at = Utc::now();
    let (stop, engine_b) = engine(&app, "engine-b", |_| {});
    let done = campaign_until(
        &budi,
        &id,
        "completion by B",
        Duration::from_secs(90),
        |c| c["status"] == "completed",
    )
    .await;
    let woke_at = paused_at + chrono::TimeDelta::seconds(9);
    // A has been awake a while (its renewal found the lease lost).
    let quiet = (woke_at - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(3);
    tokio::time::sleep(quiet).await;

    let starts = starts.lock().unwrap().clone();
    let by = |engine: &str| starts.iter().filter(|(e, _)| e == engine).count();
    assert!(by("engine-a") >= 10 && by("engine-b") > 0, "{starts:?}");
    let after_waking: Vec<_> = starts
        .iter()
        .filter(|(engine, at)| engine == "engine-a" && *at > paused_at)
        .collect();
    assert!(
        after_waking.is_empty(),
        "A started sends after it was paused past its lease: {after_waking:?}"
    );
    // The send A was paused with, looked up by B: sent, or never left (and
    // refused to A when it woke): none unknown.
    let counts = &done["counts"];
    let sent = counts["sent"].as_i64().unwrap()
        + counts["delivered"].as_i64().unwrap()
        + counts["read"].as_i64().unwrap();
    assert_eq!(counts["unknown"], 0, "{done}");
    assert_eq!(sent + counts["failed"].as_i64().unwrap(), 40, "{done}");
    assert!(counts["failed"].as_i64().unwrap() <= 1, "{done}");
    verified(&backdoor).await;
    // A let the session go: B holds it alone.
    let (_, s) = budi.get(&format!("/api/v1/sessions/{session}")).await;
    assert_eq!(
        (s["engine_id"].as_str(), s["engine_lost"].as_bool()),
        (Some("engine-b"), Some(false)),
        "{s}"
    );
    drop(pause);
    engine_a.join().unwrap();
    stop.cancel();
    engine_b.await.unwrap().unwrap();
}

/// Two engines share three sessions over a nats-server of the test's own,
/// which is killed mid-campaign and comes back after the leases expired:
/// each session gets at most one new holder, keeps it (no flapping), and
/// the campaign completes with every recipient sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_mid_campaign_gives_each_session_one_new_holder_that_keeps_it() {
    let store = tempfile::tempdir().unwrap();
    let nats = wablast_tests::PrivateNats::start(store.path(), None);
    let url = nats.url();
    let app = TestApp::spawn_with(|s| {
        s.nats_url = url;
        s.lease_ttl_seconds = 3;
    })
    .await;
    let backdoor = Backdoor::of(&app).await;
    let (stop_a, engine_a) = engine(&app, "engine-a", |_| {});
    let (stop_b, engine_b) = engine(&app, "engine-b", |_| {});
    let budi = funded(&app, 2000).await;
    let mut sessions = Vec::new();
    for n in 0..3 {
        sessions.push(linked(&budi, &format!("+62812999901{n:02}"), 500).await);
    }
    let senders: Vec<&str> = sessions.iter().map(String::as_str).collect();
    let list = backdoor.contact_list(&budi.tenant_id, 300, &["kota"]).await;
    let id = started(&budi, list, &senders, (40, 80)).await;
    until("forty sent", Duration::from_secs(30), async || {
        (sent_count(&backdoor.db, &id).await >= 40).then_some(())
    })
    .await;
    let holds = async || -> Vec<i64> {
        let mut counts = Vec::new();
        for session in &sessions {
            counts.push(
                sqlx::query_scalar(
                    "select count(*) from event_index
                     where aggregate_id = $1 and event_type = 'SessionHeld'",
                )
                .bind(session)
                .fetch_one(&backdoor.db)
                .await
                .unwrap(),
            );
        }
        counts
    };
    let before = holds().await;
    assert!(
        before.iter().all(|n| *n == 1),
        "one holder each: {before:?}"
    );

    // kill -9, down past the lease TTL, back on the same port and store.
    let port = nats.stop();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let _nats = wablast_tests::PrivateNats::start(store.path(), Some(port));

    let done = campaign_until(
        &budi,
        &id,
        "completion after the restart",
        Duration::from_secs(120),
        |c| c["status"] == "completed",
    )
    .await;
    let after = holds().await;
    // Quiet for five lease lifetimes: nobody takes anything over.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let quiet = holds().await;
    assert_eq!(after, quiet, "leases changed hands in a quiet time");
    assert!(
        after.iter().all(|n| *n <= 2),
        "at most one new holder per session for one fault: {after:?}"
    );
    let counts = &done["counts"];
    let sent = counts["sent"].as_i64().unwrap()
        + counts["delivered"].as_i64().unwrap()
        + counts["read"].as_i64().unwrap();
    // Sends cut off are looked up: sent, or never left (failed); none
    // unknown.
    assert_eq!(counts["unknown"], 0, "{done}");
    assert_eq!(sent + counts["failed"].as_i64().unwrap(), 300, "{done}");
    // NATS away is our fault, not the recipients': no auto-pause.
    let campaign = CommandHandler::<Campaign>::new(backdoor.log.clone(), ())
        .load(&AggregateKey::new(&budi.tenant_id, &id).unwrap())
        .await
        .unwrap()
        .aggregate;
    assert_eq!(campaign.auto_pauses(), 0, "{done}");
    verified(&backdoor).await;
    stop_a.cancel();
    stop_b.cancel();
    engine_a.await.unwrap().unwrap();
    engine_b.await.unwrap().unwrap();
}

/// An engine killed with several sends in flight that the simulated
/// WhatsApp had not taken yet: the new holder looks them up, finds they
/// never left, and fails them for good (never sent again); those are our
/// infrastructure's failures, not the recipients': the campaign does not
/// auto-pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_cut_off_by_a_dead_engine_do_not_auto_pause_the_campaign() {
    let app = TestApp::spawn_with(|s| s.lease_ttl_seconds = 3).await;
    let backdoor = Backdoor::of(&app).await;
    let runtime_a = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut config = app.settings.engine().expect("engine settings");
    config.engine_id = "engine-a".to_owned();
    // Slow acknowledgements: many sends are in flight at any moment.
    config.simulator.send_latency = Duration::from_secs(30);
    let settings = app.settings.clone();
    runtime_a.spawn(async move {
        wablast::run_engine_with(&settings, config, CancellationToken::new()).await
    });

    let budi = funded(&app, 1000).await;
    let session = linked(&budi, "+6281299990007", 200).await;
    let list = backdoor.contact_list(&budi.tenant_id, 12, &["kota"]).await;
    let id = started(&budi, list, &[&session], (0, 0)).await;
    until("sends in flight", Duration::from_secs(30), async || {
        let sending = statuses(&backdoor.db, &id)
            .await
            .into_iter()
            .find(|(status, _)| status == "sending")
            .map_or(0, |(_, n)| n);
        (sending >= 4).then_some(())
    })
    .await;

    runtime_a.shutdown_background();
    let (stop, engine_b) = engine(&app, "engine-b", |_| {});
    let done = campaign_until(
        &budi,
        &id,
        "completion by B",
        Duration::from_secs(60),
        |c| c["status"] == "completed",
    )
    .await;
    assert_eq!(done["counts"]["unknown"], 0, "{done}");
    assert!(done["counts"]["failed"].as_i64().unwrap() >= 4, "{done}");
    let campaign = CommandHandler::<Campaign>::new(backdoor.log.clone(), ())
        .load(&AggregateKey::new(&budi.tenant_id, &id).unwrap())
        .await
        .unwrap()
        .aggregate;
    assert_eq!(campaign.auto_pauses(), 0, "{done}");
    verified(&backdoor).await;
    stop.cancel();
    engine_b.await.unwrap().unwrap();
}

/// Sends the simulated WhatsApp took but answered late, then their engine
/// killed before any answer came: the engine that takes the session over
/// looks each up by the id it went out under, and records it sent (with
/// its cost, and the receipts WhatsApp has for it by then). None stays
/// `unknown`, none is sent twice, and the log verifies (captured = 2 ×
/// sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_taken_by_whatsapp_but_answered_after_their_engine_died_end_sent() {
    let app = TestApp::spawn_with(|s| s.lease_ttl_seconds = 3).await;
    let backdoor = Backdoor::of(&app).await;
    let runtime_a = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut config = app.settings.engine().expect("engine settings");
    config.engine_id = "engine-a".to_owned();
    // Taken at once, answered half a minute later: A never hears.
    config.simulator.answer_after = Duration::from_secs(30);
    config.simulator.delivered_after = Some(Duration::from_millis(50));
    config.simulator.read_after = None;
    let settings = app.settings.clone();
    runtime_a.spawn(async move {
        wablast::run_engine_with(&settings, config, CancellationToken::new()).await
    });

    let budi = funded(&app, 1000).await;
    let session = linked(&budi, "+6281299990017", 200).await;
    let list = backdoor.contact_list(&budi.tenant_id, 12, &["kota"]).await;
    let id = started(&budi, list, &[&session], (0, 0)).await;
    until(
        "every send in flight",
        Duration::from_secs(30),
        async || {
            let sending = statuses(&backdoor.db, &id)
                .await
                .into_iter()
                .find(|(status, _)| status == "sending")
                .map_or(0, |(_, n)| n);
            (sending == 12).then_some(())
        },
    )
    .await;

    runtime_a.shutdown_background();
    // The same simulated WhatsApp: delivered after 50 ms, never read.
    let (stop, engine_b) = engine(&app, "engine-b", |c| c.simulator.read_after = None);
    let done = campaign_until(
        &budi,
        &id,
        "completion by B",
        Duration::from_secs(60),
        |c| c["status"] == "completed",
    )
    .await;
    let counts = &done["counts"];
    assert_eq!(counts["unknown"], 0, "{done}");
    assert_eq!(counts["failed"], 0, "{done}");
    // Delivered 50 ms after it was taken: WhatsApp says so by now.
    assert_eq!(counts["delivered"], 12, "{done}");
    assert_eq!(sent_count(&backdoor.db, &id).await, 12);
    let wallet = until("the settlement", Duration::from_secs(30), async || {
        let (_, wallet) = budi.get("/api/v1/wallet").await;
        (wallet["reserved"] == 0).then_some(wallet)
    })
    .await;
    assert_eq!(wallet["balance"], 1000 - 24, "{wallet}");
    let campaign = CommandHandler::<Campaign>::new(backdoor.log.clone(), ())
        .load(&AggregateKey::new(&budi.tenant_id, &id).unwrap())
        .await
        .unwrap()
        .aggregate;
    assert_eq!(campaign.auto_pauses(), 0, "{done}");
    verified(&backdoor).await;
    stop.cancel();
    engine_b.await.unwrap().unwrap();
}

/// The next `hh:mm` in Jakarta (UTC+7, no daylight saving) after `after`.
fn next_jakarta(after: DateTime<Utc>, hour: u32, minute: u32) -> DateTime<Utc> {
    let jakarta = FixedOffset::east_opt(7 * 3600).unwrap();
    let local = after.with_timezone(&jakarta).date_naive();
    let time = NaiveTime::from_hms_opt(hour, minute, 0).unwrap();
    [local, local + Days::new(1)]
        .into_iter()
        .map(|day| {
            day.and_time(time)
                .and_local_timezone(jakarta)
                .single()
                .unwrap()
                .to_utc()
        })
        .find(|at| *at > after)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_limit_stops_sending_until_the_next_local_day() {
    let app = TestApp::spawn_with(|s| s.lease_ttl_seconds = 5).await;
    let backdoor = Backdoor::of(&app).await;
    // Mid-morning in Jakarta, later than the wall clock.
    let clock = ManualClock::new(next_jakarta(Utc::now(), 10, 0));
    let (stop, engine) = engine(&app, "engine-a", |c| c.clock = Arc::new(clock.clone()));
    let budi = funded(&app, 1000).await;
    let session = linked(&budi, "+6281299990004", 5).await;
    let list = backdoor.contact_list(&budi.tenant_id, 8, &["kota"]).await;
    let id = started(&budi, list, &[&session], (0, 0)).await;

    until("five sent", Duration::from_secs(30), async || {
        (sent_count(&backdoor.db, &id).await == 5).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sent_count(&backdoor.db, &id).await, 5, "the limit holds");
    // Running, and saying why nothing moves, until when: the session and
    // the campaign alike.
    let waiting = campaign_until(&budi, &id, "the wait said", Duration::from_secs(10), |c| {
        !c["waiting"].is_null()
    })
    .await;
    assert_eq!(waiting["status"], "running");
    assert_eq!(
        waiting["waiting"]["reason"], "daily_limit_reached",
        "{waiting}"
    );
    let next_day = next_jakarta(clock_now(&clock), 0, 0);
    let until: DateTime<Utc> = serde_json::from_value(waiting["waiting"]["until"].clone()).unwrap();
    assert_eq!(until, next_day, "{waiting}");
    let (_, sender) = budi.get(&format!("/api/v1/sessions/{session}")).await;
    assert_eq!(
        sender["waiting"]["reason"], "daily_limit_reached",
        "{sender}"
    );

    // The next local day: the other three go.
    clock.set(next_jakarta(clock_now(&clock), 0, 1));
    campaign_until(&budi, &id, "completion", Duration::from_secs(30), |c| {
        c["status"] == "completed"
    })
    .await;
    assert_eq!(sent_count(&backdoor.db, &id).await, 8);
    let (_, sender) = budi.get(&format!("/api/v1/sessions/{session}")).await;
    assert!(sender["waiting"].is_null(), "sending again: {sender}");
    verified(&backdoor).await;
    stop.cancel();
    engine.await.unwrap().unwrap();
}

/// A campaign whose senders used up their daily limits today is refused
/// at its start, saying so, and reserves nothing; once a sender can send
/// again (here: its limit raised), it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_when_every_sender_used_up_its_daily_limit_is_refused_saying_so() {
    let app = TestApp::spawn_with(|s| s.lease_ttl_seconds = 5).await;
    let backdoor = Backdoor::of(&app).await;
    // The wall clock, as the API's: no active hours set, always open.
    let (stop, engine) = engine(&app, "engine-a", |_| {});
    let budi = funded(&app, 1000).await;
    let session = linked(&budi, "+6281299990008", 2).await;
    let list = backdoor.contact_list(&budi.tenant_id, 2, &["kota"]).await;
    let first = started(&budi, list, &[&session], (0, 0)).await;
    campaign_until(&budi, &first, "completion", Duration::from_secs(30), |c| {
        c["status"] == "completed"
    })
    .await;

    let (status, second) = budi
        .post(
            "/api/v1/campaigns",
            json!({
                "name": "Promo 2", "contact_list_id": list,
                "template": "Halo {{name|Kak}}", "sender_session_ids": [session],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let second = second["id"].as_str().unwrap().to_owned();
    let start = format!("/api/v1/campaigns/{second}/start");
    let (status, body) = budi.post(&start, json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("daily_limit_reached")
        ),
        "{body}"
    );
    let (_, wallet) = budi.get("/api/v1/wallet").await;
    assert_eq!(wallet["reserved"], 0, "{wallet}");

    // A raised daily limit: it starts.
    let (status, body) = budi
        .patch(
            &format!("/api/v1/sessions/{session}"),
            json!({"daily_limit": 10}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = budi.post(&start, json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    stop.cancel();
    engine.await.unwrap().unwrap();
}

fn clock_now(clock: &ManualClock) -> DateTime<Utc> {
    wablast_workflows::clock::Clock::now(clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_active_hours_nothing_is_sent_until_the_window_opens() {
    let app = TestApp::spawn_with(|s| s.lease_ttl_seconds = 5).await;
    let backdoor = Backdoor::of(&app).await;
    // Evening in Jakarta, after the window closed.
    let evening = next_jakarta(Utc::now(), 20, 0);
    let clock = ManualClock::new(evening);
    let (stop, engine) = engine(&app, "engine-a", |c| c.clock = Arc::new(clock.clone()));
    let budi = funded(&app, 1000).await;
    let (status, body) = budi
        .put(
            "/api/v1/schedule",
            json!({"timezone": "Asia/Jakarta", "windows": [{
                "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                "start": "09:00", "end": "17:00"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let session = linked(&budi, "+6281299990005", 100).await;
    let list = backdoor.contact_list(&budi.tenant_id, 3, &["kota"]).await;
    let id = started(&budi, list, &[&session], (0, 0)).await;

    let paused = campaign_until(&budi, &id, "the wait", Duration::from_secs(30), |c| {
        c["status"] == "paused"
    })
    .await;
    assert_eq!(
        paused["pause_reason"]["kind"], "outside_active_hours",
        "{paused}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sent_count(&backdoor.db, &id).await, 0);

    // Morning: the window opens, the campaign resumes and finishes.
    clock.set(next_jakarta(evening, 9, 1));
    campaign_until(&budi, &id, "completion", Duration::from_secs(30), |c| {
        c["status"] == "completed"
    })
    .await;
    assert_eq!(sent_count(&backdoor.db, &id).await, 3);
    verified(&backdoor).await;
    stop.cancel();
    engine.await.unwrap().unwrap();
}

/// A send loop waiting for the next window wakes at once when the override
/// activates sending, when the override pauses it again it waits, and when
/// the schedule opens the window it sends: each within a few seconds, not
/// at the original opening time (hours away on the engine's clock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_override_or_a_schedule_change_wakes_a_wait_for_the_window_at_once() {
    let app = TestApp::spawn_with(|s| s.lease_ttl_seconds = 5).await;
    let backdoor = Backdoor::of(&app).await;
    // Evening in Jakarta, after the window closed; the clock stands still.
    let clock = ManualClock::new(next_jakarta(Utc::now(), 20, 0));
    let (stop, engine) = engine(&app, "engine-a", |c| c.clock = Arc::new(clock.clone()));
    let budi = funded(&app, 1000).await;
    let nine_to_five = json!({"timezone": "Asia/Jakarta", "windows": [{
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "start": "09:00", "end": "17:00"}]});
    let (status, body) = budi.put("/api/v1/schedule", nine_to_five.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let session = linked(&budi, "+6281299990006", 100).await;

    // 1. Activate now: the waiting campaign sends.
    let list = backdoor.contact_list(&budi.tenant_id, 2, &["kota"]).await;
    let first = started(&budi, list, &[&session], (0, 0)).await;
    campaign_until(&budi, &first, "the wait", Duration::from_secs(30), |c| {
        c["pause_reason"]["kind"] == "outside_active_hours"
    })
    .await;
    let (status, body) = budi
        .post("/api/v1/schedule/override", json!({"mode": "activate"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    campaign_until(&budi, &first, "completion", Duration::from_secs(5), |c| {
        c["status"] == "completed"
    })
    .await;

    // 2. Back to the windows: a new campaign waits again.
    let (status, body) = budi
        .post("/api/v1/schedule/override", json!({"mode": "none"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let list = backdoor.contact_list(&budi.tenant_id, 2, &["kota"]).await;
    let second = started(&budi, list, &[&session], (0, 0)).await;
    campaign_until(&budi, &second, "the wait", Duration::from_secs(30), |c| {
        c["pause_reason"]["kind"] == "outside_active_hours"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sent_count(&backdoor.db, &second).await, 0);

    // 3. The schedule opens the evening: it sends.
    let mut all_day = nine_to_five;
    all_day["windows"][0]["start"] = json!("00:00");
    all_day["windows"][0]["end"] = json!("23:59");
    let (status, body) = budi.put("/api/v1/schedule", all_day).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    campaign_until(&budi, &second, "completion", Duration::from_secs(5), |c| {
        c["status"] == "completed"
    })
    .await;
    assert_eq!(sent_count(&backdoor.db, &second).await, 2);
    verified(&backdoor).await;
    stop.cancel();
    engine.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banned_senders_stop_their_campaign_and_a_cancel_settles_what_was_sent() {
    let app = TestApp::spawn_with(|s| s.lease_ttl_seconds = 5).await;
    let backdoor = Backdoor::of(&app).await;
    // Every number is banned after its fifth send.
    let (stop, engine) = engine(&app, "engine-a", |c| c.simulator.ban_after_sends = Some(5));
    let budi = funded(&app, 1000).await;
    let first = linked(&budi, "+6281299990006", 100).await;
    let second = linked(&budi, "+6281299990007", 100).await;
    let list = backdoor.contact_list(&budi.tenant_id, 30, &["kota"]).await;
    let id = started(&budi, list, &[&first, &second], (0, 0)).await;

    // The first banned sender's work moves to the second, which is banned
    // in turn: the campaign pauses, saying why, with 10 sent.
    let paused = campaign_until(&budi, &id, "the pause", Duration::from_secs(60), |c| {
        c["status"] == "paused"
            && c["sender_session_ids"]
                .as_array()
                .is_some_and(Vec::is_empty)
    })
    .await;
    assert_eq!(
        paused["pause_reason"]["kind"], "sender_unavailable",
        "{paused}"
    );
    assert_eq!(paused["pause_reason"]["why"], "banned", "{paused}");
    for session in [&first, &second] {
        let (_, s) = budi.get(&format!("/api/v1/sessions/{session}")).await;
        assert_eq!(
            (s["status"].as_str(), s["last_error"].as_str()),
            (Some("logged_out"), Some("banned"))
        );
    }
    until("the sends recorded", Duration::from_secs(10), async || {
        (sent_count(&backdoor.db, &id).await == 10).then_some(())
    })
    .await;

    // Cancelled: the 20 waiting messages are cancelled, none failed, the
    // wallet captures the 10 sent (20 points) and releases the rest.
    let (status, body) = budi
        .post(&format!("/api/v1/campaigns/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // (A send taken in the moment between the ban and the engine hearing
    // of it is not the message's fault: it waits too, and is cancelled.)
    until("the clean-up", Duration::from_secs(30), async || {
        let s = statuses(&backdoor.db, &id).await;
        let count = |status: &str| s.iter().find(|(st, _)| st == status).map_or(0, |(_, n)| *n);
        (count("cancelled") == 20 && count("failed") == 0).then_some(())
    })
    .await;
    let wallet = until("the settlement", Duration::from_secs(30), async || {
        let (_, wallet) = budi.get("/api/v1/wallet").await;
        (wallet["reserved"] == 0).then_some(wallet)
    })
    .await;
    assert_eq!(wallet["balance"], 980, "{wallet}");
    verified(&backdoor).await;
    stop.cancel();
    engine.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_cut_off_after_queueing_its_batch_resumes_without_losing_or_doubling_a_recipient()
{
    let app = TestApp::spawn_with(|s| s.lease_ttl_seconds = 5).await;
    let backdoor = Backdoor::of(&app).await;
    let (budi, session, id) = started_without_an_engine(&app, &backdoor, "+6281299990009").await;

    // What a fan-out that died halfway left: its batch of the 30
    // recipients queued, and the send commands of only 6 on the queue.
    let tenant: TenantId = budi.tenant_id.parse().unwrap();
    let campaign: CampaignId = id.parse().unwrap();
    let sender = SessionId::from_uuid(session.parse().unwrap());
    let recipients: Vec<BatchRecipient> = (1..=30)
        .map(|row| BatchRecipient {
            message_id: fanout::message_id(campaign, row),
            session_id: sender,
            to: format!("+628120000{row:04}").parse().unwrap(),
            name: Some(format!("Pelanggan {row}")),
            variables: [("kota".to_owned(), format!("kota {row}"))].into(),
            content: None,
        })
        .collect();
    let batches = CommandHandler::<RecipientBatch>::new(backdoor.log.clone(), ());
    let batch_key = AggregateKey::new(tenant, batch_id(campaign, 0)).unwrap();
    batches
        .create(
            &batch_key,
            RecipientBatchCommand::QueueRecipients {
                campaign_id: campaign,
                index: 0,
                recipients,
                at: Utc::now(),
            },
            &CommandMetadata::new(Actor::Engine("engine-a".to_owned())),
        )
        .await
        .unwrap()
        .expect("queued");
    let batch = batches.load(&batch_key).await.unwrap().aggregate;
    let queue = SendQueue::open(backdoor.log.jetstream(), backdoor.log.prefix())
        .await
        .unwrap();
    let commands: Vec<SendCommand> = batch
        .messages()
        .take(6)
        .map(|queued| SendCommand {
            tenant_id: tenant,
            campaign_id: campaign,
            message_id: queued.message_id,
            queued_at: None,
            queued: Some(Box::new(queued)),
        })
        .collect();
    queue
        .publish(sender, &commands)
        .await
        .unwrap()
        .await
        .unwrap();

    // Another engine picks the start up again: the batch is not queued
    // twice, and each recipient gets one message.
    let (stop, engine_b) = engine(&app, "engine-b", |_| {});
    let done = completed_once_each(&budi, &backdoor, &id, 30).await;
    assert_eq!(done["counts"]["total"], 30, "{done}");
    let history = backdoor
        .log
        .load(RecipientBatch::TYPE, &batch_key)
        .await
        .unwrap();
    assert_eq!(history.commits.len(), 1, "the batch was queued once");
    verified(&backdoor).await;
    stop.cancel();
    engine_b.await.unwrap().unwrap();
}

/// A fan-out cut off before batches (by an upgrade, say): some messages
/// queued alone, some of their commands out. The run that resumes it
/// queues the list in batches over them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_cut_off_halfway_resumes_without_losing_or_doubling_a_recipient() {
    let app = TestApp::spawn_with(|s| s.lease_ttl_seconds = 5).await;
    let backdoor = Backdoor::of(&app).await;
    let (budi, session, id) = started_without_an_engine(&app, &backdoor, "+6281299990008").await;

    // What a fan-out that died halfway left: the first 12 recipients
    // queued, and the send commands of only 6 of them on the queue.
    let tenant: TenantId = budi.tenant_id.parse().unwrap();
    let campaign: CampaignId = id.parse().unwrap();
    let sender = SessionId::from_uuid(session.parse().unwrap());
    let messages = CommandHandler::<Message>::new(backdoor.log.clone(), ());
    let queue = SendQueue::open(backdoor.log.jetstream(), backdoor.log.prefix())
        .await
        .unwrap();
    for row in 1..=12 {
        let message_id = fanout::message_id(campaign, row);
        let queued = messages
            .create(
                &AggregateKey::new(tenant, message_id).unwrap(),
                MessageCommand::QueueMessage {
                    message_id,
                    campaign_id: campaign,
                    session_id: sender,
                    phone: format!("+628120000{row:04}").parse().unwrap(),
                    name: Some(format!("Pelanggan {row}")),
                    variables: [("kota".to_owned(), format!("kota {row}"))].into(),
                    at: Utc::now(),
                },
                &CommandMetadata::new(Actor::Engine("engine-a".to_owned())),
            )
            .await
            .unwrap()
            .expect("queued");
        if row <= 6 {
            let command = SendCommand {
                tenant_id: tenant,
                campaign_id: campaign,
                message_id,
                // Half told where the message is, half to look it up.
                queued_at: (row % 2 == 0).then_some(queued),
                queued: None,
            };
            queue
                .publish(sender, &[command])
                .await
                .unwrap()
                .await
                .unwrap();
        }
    }

    // Another engine picks the start up again.
    let (stop, engine_b) = engine(&app, "engine-b", |_| {});
    completed_once_each(&budi, &backdoor, &id, 30).await;
    verified(&backdoor).await;
    stop.cancel();
    engine_b.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_messages_show_the_text_they_were_sent_with_in_the_list_and_the_export() {
    let app = TestApp::spawn_with(|s| s.lease_ttl_seconds = 5).await;
    let (stop, engine) = engine(&app, "engine-a", |_| {});
    let backdoor = Backdoor::of(&app).await;
    let budi = funded(&app, 1000).await;
    let session = linked(&budi, "+6281299990001", 100).await;
    let list = backdoor.contact_list(&budi.tenant_id, 3, &["kota"]).await;
    let (status, created) = budi
        .post(
            "/api/v1/campaigns",
            json!({
                "name": "Promo",
                "contact_list_id": list,
                "template": "{Halo|Hai} {{Name}}, promo di {{KOTA}}!",
                "sender_session_ids": [session],
                "throttle": {"min_delay_ms": 0, "max_delay_ms": 0},
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, body) = budi
        .post(&format!("/api/v1/campaigns/{id}/start"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    completed_once_each(&budi, &backdoor, &id, 3).await;

    // Each message shows what its recipient got: their own values, one of
    // the greetings.
    let (status, page) = budi.get(&format!("/api/v1/campaigns/{id}/messages")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let mut texts = Vec::new();
    for item in items {
        let row: u32 = item["phone"].as_str().unwrap()[10..].parse().unwrap();
        let text = item["text"].as_str().unwrap_or_else(|| panic!("{item}"));
        let expected = format!("Pelanggan {row}, promo di kota {row}!");
        assert!(
            text == format!("Halo {expected}") || text == format!("Hai {expected}"),
            "{text}"
        );
        texts.push(text.to_owned());
    }
    // The export has them too, in its last column.
    let export = budi
        .request(
            reqwest::Method::GET,
            &format!("/api/v1/campaigns/{id}/export"),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = export.lines().collect();
    assert!(lines[0].ends_with(",read_at,text"), "{export}");
    for text in &texts {
        assert!(
            lines.iter().any(|l| l.ends_with(&format!(",\"{text}\""))),
            "{text} in {export}"
        );
    }

    stop.cancel();
    engine.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn governor_a_warming_up_sender_shows_its_capacity_and_holds_to_the_minute_cap() {
    let app = TestApp::spawn_with(|s| s.lease_ttl_seconds = 5).await;
    let (stop, engine) = engine(&app, "engine-a", |_| {});
    let backdoor = Backdoor::of(&app).await;
    let budi = funded(&app, 1000).await;
    let established = linked(&budi, "+6281299990031", 100).await;
    let (_, s) = budi.get(&format!("/api/v1/sessions/{established}")).await;
    assert_eq!(s["governor_state"], "normal", "{s}");
    assert_eq!(s["capacity"]["today"], 100, "{s}");
    assert_eq!(s["capacity"]["new_contacts_left"], Value::Null, "{s}");
    let session = linked_as(&budi, "+6281299990032", 100, true).await;
    let (_, s) = budi.get(&format!("/api/v1/sessions/{session}")).await;
    assert_eq!(s["governor_state"], "warming_up", "{s}");
    assert_eq!(s["capacity"]["today"], 20, "{s}");
    assert_eq!(s["capacity"]["new_contacts_left"], 5, "{s}");

    // At a zero throttle, a number on its first warm-up day sends 4 in a
    // minute, then waits, saying why.
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
    assert_eq!(s["sent_today"], 4, "{s}");
    assert_eq!(s["capacity"]["left_today"], 16, "{s}");
    assert_eq!(s["capacity"]["new_contacts_left"], 1, "{s}");
    assert!(s["capacity"]["grows_at"].is_string(), "{s}");
    verified(&backdoor).await;
    stop.cancel();
    engine.await.unwrap().unwrap();
}
