//! Sending throughput, fan-out time and the engine's memory.
//!
//! `cargo bench -p wablast --bench sending` prints, on the local PostgreSQL
//! and NATS:
//!
//! 1. **End to end**: `wablast all` in this process (API, projector, one
//!    engine; simulator driver with no delays and immediate receipts), one
//!    tenant with 10 linked sessions, one campaign of 10 × 10,000
//!    recipients at zero throttle. Timed from the start request: the
//!    fan-out (every send command queued), every message sent, and every
//!    message read *as the projected counts show it* (projections caught
//!    up), in messages/s. Target: ≥ 2,000 messages/s; fan-out of 100,000
//!    recipients under 5 s. Run twice, in this process: first with the
//!    sender governor's caps out of reach (established numbers, held to
//!    their daily limit alone), then with the governor on (every session
//!    paced: caps per minute, per hour and on new contacts a day, each
//!    looked at for every send, set too high to bind); it prints both
//!    and the ratio. Target: the governor on keeps ≥ 90% of the
//!    messages/s.
//! 2. **Raw JetStream publish rate** of the same run's NATS: as many
//!    messages of a commit's size, published pipelined to a stream of their
//!    own.
//! 3. **Engine memory**: the real `wablast engine` binary running 1,000
//!    idle, linked simulator sessions; its peak RSS (`VmHWM`). Target:
//!    under 200 MB.
//!
//! Knobs: `BENCH_SESSIONS` (10), `BENCH_RECIPIENTS` (per session, 10,000),
//! `BENCH_IDLE_SESSIONS` (1,000); `BENCH_FANOUT_ONLY=1` times the fan-out
//! alone (the campaign's throttle holds the sends back) and ends there;
//! `BENCH_GOVERNOR=off|on` runs only one of the two end-to-end runs;
//! `RUST_LOG` turns on the application's tracing. Under `cargo test --all-targets` (no
//! `--bench` argument) it runs a quick smoke pass (2 × 200, 50 idle) unless
//! `BENCH_QUICK=0`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use common::{contact_list, env_number, quick, rate, ready, sessions, settings, tenant, until};
use futures::StreamExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wablast::Application;
use wablast_domain::governor::SenderPacing;
use wablast_domain::session::Session;
use wablast_domain::types::TenantId;
use wablast_eventstore::{AggregateKey, CommandHandler};
use wablast_tests::{TestDatabase, delete_streams, nats_url, unique_prefix};
use wablast_workflows::sends::SendQueue;

mod common;

struct Sizes {
    sessions: u64,
    recipients: u64,
    idle_sessions: u64,
}

impl Sizes {
    fn from_env() -> Self {
        let (sessions, recipients, idle) = if quick() {
            (2, 200, 50)
        } else {
            (10, 10_000, 1_000)
        };
        Self {
            sessions: env_number("BENCH_SESSIONS", sessions),
            recipients: env_number("BENCH_RECIPIENTS", recipients),
            idle_sessions: env_number("BENCH_IDLE_SESSIONS", idle),
        }
    }
}

/// Send commands waiting or under way (the queue forgets answered ones).
async fn unanswered_sends(js: &jetstream::Context, prefix: &str) -> Option<u64> {
    let mut stream = js.get_stream(format!("{prefix}_SENDS")).await.ok()?;
    stream.info().await.ok().map(|i| i.state.messages)
}

/// CPU seconds (user + system) used so far by process `pid`.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The local nats-server's pid, if one runs here.
fn nats_server_pid() -> Option<String> {
    let out = Command::new("pgrep")
        .args(["-x", "nats-server"])
        .output()
        .ok()?;
    String::from_utf8(out.stdout)
        .ok()?
        .split_whitespace()
        .next()
        .map(str::to_owned)
}

/// Counts the send commands put on the queue, as the server sees them
/// published (several travel in one queue message).
async fn count_queued_sends(
    client: async_nats::Client,
    prefix: &str,
) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
    let counted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut published = client
        .subscribe(format!("{prefix}.send.>"))
        .await
        .expect("send queue subscription");
    // Subscribed before anything is queued.
    client.flush().await.expect("flush");
    let count = counted.clone();
    tokio::spawn(async move {
        while let Some(message) = published.next().await {
            let commands = SendQueue::decode(&message.payload).map_or(0, |c| c.len() as u64);
            count.fetch_add(commands, std::sync::atomic::Ordering::Relaxed);
        }
    });
    counted
}

async fn projected_counts(db: &PgPool, campaign: Uuid) -> (i64, i64) {
    sqlx::query_as(
        "select sent + delivered + read, read from campaign_message_counts where campaign_id = $1",
    )
    .bind(campaign)
    .fetch_optional(db)
    .await
    .expect("counts")
    .unwrap_or((0, 0))
}

/// The pacing of the governed run: every cap of the governor's evaluated
/// on every send (new contacts included), none within reach.
const OUT_OF_REACH: SenderPacing = SenderPacing {
    break_every: None,
    per_minute: Some(100_000),
    per_hour: Some(100_000),
    new_contacts_per_day: Some(100_000),
};

/// One end-to-end run; its messages/s once every message is read (none
/// for a fan-out-only run). `governed`: every session paced
/// ([`OUT_OF_REACH`]).
async fn end_to_end(sizes: &Sizes, governed: bool) -> Option<f64> {
    let db = TestDatabase::create().await;
    let prefix = unique_prefix();
    let data_dir = std::env::temp_dir().join(format!("wablast-bench-{prefix}"));
    let settings = settings(&db, &prefix, &data_dir, &[]);
    wablast::migrate(&settings).await.expect("migrations");
    let app = Application::build(&settings).await.expect("application");
    let base = format!("http://{}", app.address());
    let mut engine = settings.engine().expect("engine settings");
    engine.simulator.auto_scan_after = Some(Duration::from_millis(100));
    engine.simulator.delivered_after = Some(Duration::ZERO);
    engine.simulator.read_after = Some(Duration::ZERO);
    engine.settle_every = Duration::from_millis(500);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(app.run_all(Some(engine), shutdown.clone()));

    let log = wablast::open_event_log(&settings).await.expect("log");
    let pool = wablast::database_pool(&settings).expect("pool");
    let total = sizes.sessions * sizes.recipients;
    let (tenant, token) = tenant(&base, &log, "bench@example.test", total * 2, total).await;
    let senders = sessions(
        &log,
        tenant,
        sizes.sessions,
        sizes.recipients.max(1),
        None,
        governed.then_some(OUT_OF_REACH),
    )
    .await;
    ready(&pool, tenant, sizes.sessions).await;
    let list = contact_list(&pool, tenant, total).await;

    // BENCH_FANOUT_ONLY: the sends wait 10 minutes each, so the fan-out is
    // timed alone; the run ends once it is done.
    let fanout_only = std::env::var("BENCH_FANOUT_ONLY").is_ok_and(|v| v != "0");
    let throttle_ms = if fanout_only { 600_000 } else { 0 };
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{base}/api/v1/campaigns"))
        .bearer_auth(&token)
        .json(&json!({
            "name": "Bench", "contact_list_id": list,
            "template": "{Halo|Hai} {{name}} di {{kota}}, promo hari ini!",
            "sender_session_ids": senders,
            "throttle": {"min_delay_ms": throttle_ms, "max_delay_ms": throttle_ms},
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let campaign: Uuid = created["id"].as_str().expect("campaign").parse().unwrap();
    let js = log.jetstream().clone();

    let nats_pid = nats_server_pid();
    let cpu_before = (
        cpu_seconds("self"),
        nats_pid.as_deref().and_then(cpu_seconds),
    );
    let queued = count_queued_sends(js.client(), &prefix).await;
    let started = Instant::now();
    let response = http
        .post(format!("{base}/api/v1/campaigns/{campaign}/start"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    let limit = Duration::from_secs(600);
    let fanned_out = until("the fan-out", limit, async || {
        (queued.load(std::sync::atomic::Ordering::Relaxed) >= total).then(|| started.elapsed())
    })
    .await;
    let cpu_fanned_out = (
        cpu_seconds("self"),
        nats_pid.as_deref().and_then(cpu_seconds),
    );
    let spent = |(before, after): (Option<f64>, Option<f64>)| match (before, after) {
        (Some(before), Some(after)) => format!("{:.1} CPU-s", after - before),
        _ => "not measured".to_owned(),
    };
    // The wall time of a fan-out on a machine shared with other work says
    // little alone: what it cost is what can be compared between runs.
    let fan_out_cpu = format!(
        "CPU in the fan-out: this process {}, nats-server {}",
        spent((cpu_before.0, cpu_fanned_out.0)),
        spent((cpu_before.1, cpu_fanned_out.1))
    );
    let mut messages_per_second = None;
    if fanout_only {
        println!(
            "fan-out alone (sends throttled to one per 10 minutes): {total} recipients in {:.2} s ({:.0} recipients/s)  target < 5 s for 100,000",
            fanned_out.as_secs_f64(),
            rate(total, fanned_out)
        );
        println!("  {fan_out_cpu}");
    } else {
        let mut sent_at = None;
        let mut answered_at = None;
        let read_at = until("every message read", limit, async || {
            if answered_at.is_none() && unanswered_sends(&js, &prefix).await == Some(0) {
                answered_at = Some(started.elapsed());
            }
            let (sent, read) = projected_counts(&pool, campaign).await;
            if sent as u64 >= total && sent_at.is_none() {
                sent_at = Some(started.elapsed());
            }
            (read as u64 >= total).then(|| started.elapsed())
        })
        .await;
        let sent_at = sent_at.unwrap_or(read_at);
        let answered_at = answered_at.unwrap_or(read_at);
        let cpu_after = (
            cpu_seconds("self"),
            nats_pid.as_deref().and_then(cpu_seconds),
        );

        // The raw publish rate of the same NATS, commit-sized messages,
        // pipelined like the engine's appends are not (each waits for its ack).
        let raw = raw_publish_rate(&js, &prefix, total.max(10_000)).await;

        println!(
            "end to end, {}: {} sessions x {} recipients = {total} messages",
            if governed {
                "the governor on (caps per minute, per hour, new contacts a day, out of reach)"
            } else {
                "the governor's caps out of reach (daily limit only)"
            },
            sizes.sessions,
            sizes.recipients
        );
        println!(
            "  fan-out (start request -> every send command queued): {:.2} s ({:.0} recipients/s)  target < 5 s for 100,000",
            fanned_out.as_secs_f64(),
            rate(total, fanned_out)
        );
        println!("    {fan_out_cpu}");
        println!(
            "  every send command answered (engine done sending): {:.2} s = {:.0} messages/s",
            answered_at.as_secs_f64(),
            rate(total, answered_at)
        );
        println!(
            "  every message sent (projected): {:.2} s  = {:.0} messages/s",
            sent_at.as_secs_f64(),
            rate(total, sent_at)
        );
        println!(
            "  every message read, projections caught up: {:.2} s = {:.0} messages/s  target >= 2,000",
            read_at.as_secs_f64(),
            rate(total, read_at)
        );
        messages_per_second = Some(rate(total, read_at));
        println!(
            "  CPU from start to all read: this process (API, projector, engine) {}, nats-server {}",
            spent((cpu_before.0, cpu_after.0)),
            spent((cpu_before.1, cpu_after.1))
        );
        println!(
            "  raw JetStream publish (pipelined, {} B each): {:.0} messages/s",
            RAW_SIZE, raw
        );
    }

    shutdown.cancel();
    let _ = running.await;
    pool.close().await;
    delete_streams(&nats_url(), &prefix);
    let _ = std::fs::remove_dir_all(&data_dir);
    messages_per_second
}

/// About the size of a message commit on the log.
const RAW_SIZE: usize = 700;

async fn raw_publish_rate(js: &jetstream::Context, prefix: &str, n: u64) -> f64 {
    let name = format!("{prefix}_RAW");
    js.create_stream(jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![format!("{prefix}.raw.>")],
        ..Default::default()
    })
    .await
    .expect("raw stream");
    let payload = bytes::Bytes::from(vec![b'x'; RAW_SIZE]);
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let js = js.clone();
            let payload = payload.clone();
            let subject = format!("{prefix}.raw.{}", i % 1000);
            async move {
                js.publish(subject, payload)
                    .await
                    .expect("published")
                    .await
                    .expect("stored");
            }
        })
        .buffer_unordered(256)
        .collect::<Vec<()>>()
        .await;
    let elapsed = started.elapsed();
    let _ = js.delete_stream(&name).await;
    rate(n, elapsed)
}

/// Peak RSS of the `wablast engine` binary with `n` idle linked sessions.
async fn engine_memory(n: u64) {
    let db = TestDatabase::create().await;
    let prefix = unique_prefix();
    let data_dir = std::env::temp_dir().join(format!("wablast-bench-{prefix}"));
    let settings = settings(&db, &prefix, &data_dir, &[]);
    wablast::migrate(&settings).await.expect("migrations");
    let log = wablast::open_event_log(&settings).await.expect("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wablast"))
        .arg("engine")
        .env("DATABASE_URL", &db.url)
        .env("NATS_URL", nats_url())
        .env("WABLAST_NATS_PREFIX", &prefix)
        .env("WABLAST_DATA_DIR", &data_dir)
        .env("WABLAST_SIMULATOR_AUTO_SCAN_SECONDS", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("wablast engine starts");
    // The engine takes sessions as they start: let it subscribe first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tenant = TenantId::new();
    let started = Instant::now();
    let ids = sessions(&log, tenant, n, 100, None, None).await;
    let handler = CommandHandler::<Session>::new(log.clone(), ());
    until(
        "every session linked",
        Duration::from_secs(300),
        async || {
            let mut ready = 0;
            for id in &ids {
                let session = handler
                    .load(&AggregateKey::new(tenant, id).unwrap())
                    .await
                    .unwrap()
                    .aggregate;
                ready += u64::from(session.is_ready());
            }
            (ready == n).then_some(())
        },
    )
    .await;
    let linked = started.elapsed();
    // Idle for a while: heartbeats, lease renewals, the send loops waiting.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).expect("proc status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let (peak, now) = (field("VmHWM:"), field("VmRSS:"));
    println!(
        "engine memory: {n} idle simulator sessions (linked in {:.1} s)",
        linked.as_secs_f64()
    );
    println!(
        "  peak RSS {:.1} MB, RSS now {:.1} MB  target < 200 MB",
        peak as f64 / 1024.0,
        now as f64 / 1024.0
    );
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    delete_streams(&nats_url(), &prefix);
    let _ = std::fs::remove_dir_all(&data_dir);
}

// The binary's allocator, so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    // Quiet unless RUST_LOG asks (`RUST_LOG=wablast_projections=debug`).
    if std::env::var_os("RUST_LOG").is_some() {
        wablast::telemetry::init(wablast::config::LogFormat::Pretty);
    }
    let sizes = Sizes::from_env();
    let only = std::env::var("BENCH_GOVERNOR").ok();
    let out_of_reach = match only.as_deref() {
        Some("on") => None,
        _ => end_to_end(&sizes, false).await,
    };
    let governed = match only.as_deref() {
        Some("off") => None,
        _ => end_to_end(&sizes, true).await,
    };
    if let (Some(off), Some(on)) = (out_of_reach, governed) {
        println!(
            "the governor's cost: {on:.0} messages/s with it on, {off:.0} with its caps out of reach: {:.1}%  target >= 90%",
            on / off * 100.0
        );
    }
    engine_memory(sizes.idle_sessions).await;
}
