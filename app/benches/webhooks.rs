//! Webhook delivery under load.
//!
//! `cargo bench -p wablast --bench webhooks` prints, on the local
//! PostgreSQL and NATS, with `wablast all` in this process (API, projector,
//! one engine) and a local receiver:
//!
//! 1. **All receivers up**: 10,000 events (sessions renamed, committed at
//!    `BENCH_EVENT_RATE`, 500/s, over 10 sessions) fanned out to 20
//!    subscriptions: deliveries/s, and the delay from an event's commit to
//!    its arrival at the receiver, p50, p99 and max. Target: p99 < 500 ms.
//! 2. **One receiver down**: the same again while one of the 20 answers
//!    503 to everything: the other 19's delays. Target: their p99 does not
//!    move.
//!
//! A warm-up of a fifth of the events comes first, then `ANALYZE` (what
//! autovacuum does within a minute of an installation's first deliveries).
//!
//! Knobs: `BENCH_EVENTS` (10,000), `BENCH_SUBSCRIPTIONS` (20),
//! `BENCH_EVENT_RATE` (500/s). Under `cargo test --all-targets` (no
//! `--bench` argument) it runs a quick smoke pass (200 events, 4
//! subscriptions) unless `BENCH_QUICK=0`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use common::{env_number, quick, settings, tenant, until};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wablast::Application;
use wablast_domain::session::{Driver, LoginMethod, Session, SessionCommand, SessionName};
use wablast_domain::types::{DailyLimit, SessionId, TenantId};
use wablast_eventstore::{Actor, AggregateKey, CommandHandler, CommandMetadata, EventLog};
use wablast_tests::{TestDatabase, delete_streams, nats_url, unique_prefix};

mod common;

/// What every receiver got: the delay of each delivery from its event's
/// commit; and which receiver answers 503.
#[derive(Default)]
struct Receivers {
    delays: Mutex<Vec<Vec<Duration>>>,
    down: AtomicUsize,
}

const NONE_DOWN: usize = usize::MAX;

async fn receive(
    State(receivers): State<Arc<Receivers>>,
    Path(n): Path<usize>,
    body: String,
) -> StatusCode {
    if receivers.down.load(Ordering::Relaxed) == n {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let now = Utc::now();
    let body: Value = serde_json::from_str(&body).expect("a JSON body");
    let occurred: DateTime<Utc> = body["occurred_at"]
        .as_str()
        .expect("occurred_at")
        .parse()
        .expect("a time");
    let delay = (now - occurred).to_std().unwrap_or_default();
    receivers.delays.lock().unwrap()[n].push(delay);
    StatusCode::OK
}

/// The `q`-th quantile of sorted delays.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Commits `n` renames over `sessions` at `rate` per second.
async fn commit_events(
    log: &EventLog,
    tenant: TenantId,
    sessions: &[SessionId],
    n: u64,
    rate: u64,
    round: u64,
) {
    let handler = CommandHandler::<Session>::new(log.clone(), ());
    let every = Duration::from_secs_f64(sessions.len() as f64 / rate as f64);
    let per_session = n / sessions.len() as u64;
    let tasks: Vec<_> = sessions
        .iter()
        .map(|&session| {
            let handler = handler.clone();
            tokio::spawn(async move {
                let key = AggregateKey::new(tenant, session).unwrap();
                let mut tick = tokio::time::interval(every);
                for i in 0..per_session {
                    tick.tick().await;
                    handler
                        .execute(
                            &key,
                            SessionCommand::UpdateSettings {
                                name: Some(
                                    SessionName::parse(&format!("Toko {round}-{i}")).unwrap(),
                                ),
                                daily_limit: None,
                                auto_start: None,
                                throttle: None,
                                pacing: None,
                                plan_max_daily_limit: DailyLimit::parse(DailyLimit::MAX.into())
                                    .unwrap(),
                                at: Utc::now(),
                            },
                            &CommandMetadata::new(Actor::System),
                        )
                        .await
                        .expect("renamed");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("committer");
    }
}

/// Runs one phase: commits the events and waits until every receiver but
/// `down` got them all.
///
/// # Returns
/// The wall time from the first commit to the last delivery, and the
/// sorted delays of the receivers up.
#[allow(clippy::too_many_arguments)]
async fn phase(
    db: &sqlx::PgPool,
    receivers: &Receivers,
    log: &EventLog,
    tenant: TenantId,
    sessions: &[SessionId],
    events: u64,
    rate: u64,
    round: u64,
    subscriptions: usize,
    down: usize,
) -> (Duration, Vec<Duration>) {
    receivers.down.store(down, Ordering::Relaxed);
    for delays in receivers.delays.lock().unwrap().iter_mut() {
        delays.clear();
    }
    let started = Instant::now();
    commit_events(log, tenant, sessions, events, rate, round).await;
    let committed = started.elapsed();
    let elapsed = until("every delivery", Duration::from_secs(600), async || {
        let delays = receivers.delays.lock().unwrap();
        (0..subscriptions)
            .filter(|n| *n != down)
            .all(|n| delays[n].len() as u64 >= events)
            .then(|| started.elapsed())
    })
    .await;
    println!(
        "  committed {events} events in {:.1} s ({:.0}/s)",
        committed.as_secs_f64(),
        events as f64 / committed.as_secs_f64()
    );
    // Where the time goes: from commit to queued (the outbox projection).
    let queued: (f64, f64) = sqlx::query_as(
        "select (percentile_cont(0.5) within group (order by ms))::float8,
                (percentile_cont(0.99) within group (order by ms))::float8
         from (select extract(epoch from d.created_at - e.occurred_at) * 1000 as ms
               from webhook_deliveries d join webhook_events e using (stream, stream_sequence, event_index)
               where e.body like $1) q",
    )
    .bind(format!("%Toko {round}-%"))
    .fetch_one(db)
    .await
    .expect("queue delays");
    println!(
        "  queued by the outbox after commit: p50 {:.1} ms, p99 {:.1} ms",
        queued.0, queued.1
    );
    let mut all: Vec<Duration> = receivers
        .delays
        .lock()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(n, _)| *n != down)
        .flat_map(|(_, d)| d.iter().copied())
        .collect();
    all.sort_unstable();
    (elapsed, all)
}

#[tokio::main]
async fn main() {
    let quick = quick();
    let events = env_number("BENCH_EVENTS", if quick { 200 } else { 10_000 });
    let subscriptions = env_number("BENCH_SUBSCRIPTIONS", if quick { 4 } else { 20 }) as usize;
    let rate = env_number("BENCH_EVENT_RATE", 500).max(1);
    let session_count = 10u64;
    let events = events / session_count * session_count;

    let db = TestDatabase::create().await;
    let prefix = unique_prefix();
    let data_dir = std::env::temp_dir().join(format!("wablast-bench-{prefix}"));
    let settings = settings(&db, &prefix, &data_dir, &["--webhook-allow-private"]);
    wablast::migrate(&settings).await.expect("migrations");
    let app = Application::build(&settings).await.expect("app builds");
    let base = format!("http://{}", app.address());
    let log = app.event_log().clone();
    let shutdown = CancellationToken::new();
    let engine = settings.engine().expect("engine settings");
    let running = tokio::spawn(app.run_all(Some(engine), shutdown.clone()));

    let (tenant_id, token) = tenant(&base, &log, "webhooks@bench.test", 1_000, 10).await;
    let handler = CommandHandler::<Session>::new(log.clone(), ());
    let mut sessions = Vec::new();
    for i in 0..session_count {
        let id = SessionId::new();
        handler
            .execute(
                &AggregateKey::new(tenant_id, id).unwrap(),
                SessionCommand::CreateSession {
                    session_id: id,
                    name: SessionName::parse(&format!("Bench {i}")).unwrap(),
                    driver: Driver::Simulator,
                    login: LoginMethod::Qr,
                    phone_number: None,
                    daily_limit: None,
                    auto_start: false,
                    warm_up: None,
                    sessions_in_use: 0,
                    plan_max_sessions: 2_000,
                    plan_max_daily_limit: DailyLimit::parse(DailyLimit::MAX.into()).unwrap(),
                    at: Utc::now(),
                },
                &CommandMetadata::new(Actor::System),
            )
            .await
            .expect("session");
        sessions.push(id);
    }

    let receivers = Arc::new(Receivers {
        delays: Mutex::new(vec![Vec::new(); subscriptions]),
        down: AtomicUsize::new(NONE_DOWN),
    });
    let receiver = axum::Router::new()
        .route("/hook/{n}", axum::routing::post(receive))
        .with_state(receivers.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver_address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let http = reqwest::Client::new();
    for n in 0..subscriptions {
        let response = http
            .post(format!("{base}/api/v1/webhooks"))
            .bearer_auth(&token)
            .json(&json!({
                "url": format!("http://{receiver_address}/hook/{n}"),
                "events": ["SessionSettingsUpdated"],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }

    println!(
        "webhooks: {events} events at {rate}/s to {subscriptions} subscriptions ({} deliveries)",
        events * subscriptions as u64
    );
    let db_pool = sqlx::PgPool::connect(&db.url).await.expect("database");
    // A warm-up, then statistics, as autovacuum gives an installation
    // that has been delivering for a minute (a table fresh from its
    // migration has none, and PostgreSQL plans it as empty).
    let warm_up = (events / 5).max(session_count) / session_count * session_count;
    phase(
        &db_pool,
        &receivers,
        &log,
        tenant_id,
        &sessions,
        warm_up,
        rate,
        0,
        subscriptions,
        NONE_DOWN,
    )
    .await;
    sqlx::query("analyze webhook_deliveries, webhook_events")
        .execute(&db_pool)
        .await
        .expect("analyzed");
    let (elapsed, up) = phase(
        &db_pool,
        &receivers,
        &log,
        tenant_id,
        &sessions,
        events,
        rate,
        1,
        subscriptions,
        NONE_DOWN,
    )
    .await;
    let p99_up = quantile(&up, 0.99);
    println!(
        "all up: {:.0} deliveries/s; commit to delivery p50 {}, p99 {}, max {} (target p99 < 500 ms: {})",
        up.len() as f64 / elapsed.as_secs_f64(),
        ms(quantile(&up, 0.5)),
        ms(p99_up),
        ms(quantile(&up, 1.0)),
        if p99_up < Duration::from_millis(500) {
            "met"
        } else {
            "NOT met"
        },
    );
    let (elapsed, others) = phase(
        &db_pool,
        &receivers,
        &log,
        tenant_id,
        &sessions,
        events,
        rate,
        2,
        subscriptions,
        0,
    )
    .await;
    let p99_down = quantile(&others, 0.99);
    println!(
        "one of {subscriptions} down (503): the others {:.0} deliveries/s; p50 {}, p99 {}, max {} (p99 {} with all up)",
        others.len() as f64 / elapsed.as_secs_f64(),
        ms(quantile(&others, 0.5)),
        ms(p99_down),
        ms(quantile(&others, 1.0)),
        ms(p99_up),
    );

    shutdown.cancel();
    let _ = running.await;
    delete_streams(&nats_url(), &prefix);
    let _ = std::fs::remove_dir_all(&data_dir);
}
