//! The gateway's single sends against the campaign path, on one run.
//!
//! `cargo bench -p wablast --bench gateway` prints, on the local PostgreSQL
//! and NATS, with `wablast all` in this process (API, projector, one
//! engine; simulator driver, no delays), one tenant and 10 linked sessions
//! at zero throttle:
//!
//! 1. **Campaign path**: a campaign of 10 × 1,000 recipients; messages/s
//!    from its start to every message sent (as projected).
//! 2. **Single sends, paced**: 50 concurrent clients posting
//!    `POST /api/v1/messages` at 500 requests/s in all, round-robin over the
//!    sessions; the POST's latency (p50, p99, max), the requests accepted
//!    per second, and the messages sent per second end to end (first POST
//!    to every message sent, as projected). Target: p99 < 25 ms at 500
//!    requests/s.
//! 3. **Single sends, flat out**: the same 50 clients posting as fast as
//!    they are answered: the most requests/s accepted, and messages sent
//!    per second end to end. Target: sent/s at least 80% of the campaign
//!    path's.
//!
//! Knobs: `BENCH_SESSIONS` (10), `BENCH_MESSAGES` (per session, 1,000),
//! `BENCH_RATE` (500 requests/s), `BENCH_CLIENTS` (50). Under
//! `cargo test --all-targets` (no `--bench` argument) it runs a quick smoke
//! pass (2 sessions × 20) unless `BENCH_QUICK=0`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{contact_list, env_number, quick, rate, ready, sessions, settings, tenant, until};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wablast::Application;
use wablast_domain::types::{DailyLimit, SessionId, TenantId, Throttle};
use wablast_tests::{TestDatabase, delete_streams, nats_url, unique_prefix};

mod common;

struct Sizes {
    sessions: u64,
    messages: u64,
    rate: u64,
    clients: u64,
}

impl Sizes {
    fn from_env() -> Self {
        let (sessions, messages) = if quick() { (2, 20) } else { (10, 1_000) };
        Self {
            sessions: env_number("BENCH_SESSIONS", sessions),
            messages: env_number("BENCH_MESSAGES", messages),
            rate: env_number("BENCH_RATE", 500).max(1),
            clients: env_number("BENCH_CLIENTS", 50).max(1),
        }
    }

    fn total(&self) -> u64 {
        self.sessions * self.messages
    }
}

/// Messages of the tenant sent (or beyond), as projected: of one campaign,
/// or (`None`) single sends.
async fn sent(db: &PgPool, tenant: TenantId, campaign: Option<Uuid>) -> u64 {
    let n: i64 = sqlx::query_scalar(
        "select count(*) from messages m join campaigns c on c.id = m.campaign_id \
         where m.tenant_id = $1 and m.status in ('sent', 'delivered', 'read') \
           and (($2::uuid is null and c.kind = 'direct') or c.id = $2)",
    )
    .bind(tenant.as_uuid())
    .bind(campaign)
    .fetch_one(db)
    .await
    .expect("count");
    n as u64
}

/// The time from `since` until `n` single sends of the tenant are sent.
async fn singles_sent(db: &PgPool, tenant: TenantId, n: u64, since: Instant) -> Duration {
    until(
        "every single send sent",
        Duration::from_secs(600),
        async || (sent(db, tenant, None).await >= n).then(|| since.elapsed()),
    )
    .await
}

/// The campaign path: messages/s from the start to every message sent.
async fn campaign_path(
    base: &str,
    token: &str,
    db: &PgPool,
    tenant: TenantId,
    senders: &[SessionId],
    total: u64,
) -> f64 {
    let list = contact_list(db, tenant, total).await;
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{base}/api/v1/campaigns"))
        .bearer_auth(token)
        .json(&json!({
            "name": "Bench", "contact_list_id": list, "template": "Halo {{name}}, pesanan siap",
            "sender_session_ids": senders,
            "throttle": {"min_delay_ms": 0, "max_delay_ms": 0},
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let campaign: Uuid = created["id"].as_str().expect("campaign").parse().unwrap();
    let started = Instant::now();
    let response = http
        .post(format!("{base}/api/v1/campaigns/{campaign}/start"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let done = until("the campaign sent", Duration::from_secs(600), async || {
        (sent(db, tenant, Some(campaign)).await >= total).then(|| started.elapsed())
    })
    .await;
    rate(total, done)
}

/// Latencies, sorted: the `q`-th quantile.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// `total` single sends by `clients` clients, at `rate` requests/s in all
/// (`None`: as fast as answered). The latencies, sorted, and the time from
/// the first request to the last answer.
async fn post_singles(
    base: &str,
    token: &str,
    senders: &[SessionId],
    total: u64,
    clients: u64,
    rate: Option<u64>,
    offset: u64,
) -> (Vec<Duration>, Duration) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients as usize)
        .build()
        .unwrap();
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks = (0..clients).map(|_| {
        let (http, next, base, token) = (
            http.clone(),
            next.clone(),
            base.to_owned(),
            token.to_owned(),
        );
        let senders = senders.to_vec();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= total {
                    return latencies;
                }
                if let Some(rate) = rate {
                    let due = started + Duration::from_secs_f64(k as f64 / rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                let session = senders[(k % senders.len() as u64) as usize];
                let n = offset + k;
                let sent = Instant::now();
                let response = http
                    .post(format!("{base}/api/v1/messages"))
                    .bearer_auth(&token)
                    .json(&json!({
                        "session_id": session,
                        "to": format!("+62814{:08}", n),
                        "text": format!("Pesanan {n} sudah dikirim"),
                    }))
                    .send()
                    .await
                    .expect("posted");
                let status = response.status();
                let _ = response.bytes().await;
                latencies.push(sent.elapsed());
                assert_eq!(status, 202, "single send {n} refused");
            }
        })
    });
    let mut latencies: Vec<Duration> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .flat_map(|r| r.expect("client"))
        .collect();
    let elapsed = started.elapsed();
    latencies.sort();
    (latencies, elapsed)
}

// The binary's allocator, so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        wablast::telemetry::init(wablast::config::LogFormat::Pretty);
    }
    let sizes = Sizes::from_env();
    let db = TestDatabase::create().await;
    let prefix = unique_prefix();
    let data_dir = std::env::temp_dir().join(format!("wablast-bench-{prefix}"));
    // The clients are 50 connections of one caller.
    let settings = settings(
        &db,
        &prefix,
        &data_dir,
        &[
            "--rate-limit-per-key",
            "1000000",
            "--rate-limit-per-ip",
            "1000000",
        ],
    );
    wablast::migrate(&settings).await.expect("migrations");
    let app = Application::build(&settings).await.expect("application");
    let base = format!("http://{}", app.address());
    let mut engine = settings.engine().expect("engine settings");
    engine.simulator.auto_scan_after = Some(Duration::from_millis(100));
    engine.simulator.delivered_after = Some(Duration::ZERO);
    engine.simulator.read_after = Some(Duration::ZERO);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(app.run_all(Some(engine), shutdown.clone()));
    let log = wablast::open_event_log(&settings).await.expect("log");
    let pool = wablast::database_pool(&settings).expect("pool");
    let total = sizes.total();
    let (tenant, token) = tenant(&base, &log, "gateway@example.test", total * 6, total).await;
    let senders = sessions(
        &log,
        tenant,
        sizes.sessions,
        DailyLimit::MAX.into(),
        Some(Throttle::new(0, 0).unwrap()),
        None,
    )
    .await;
    ready(&pool, tenant, sizes.sessions).await;

    let campaign_rate = campaign_path(&base, &token, &pool, tenant, &senders, total).await;
    println!(
        "gateway: {} sessions at zero throttle, {} clients",
        sizes.sessions, sizes.clients
    );
    println!("  campaign path: {total} messages, start to all sent: {campaign_rate:.0} messages/s");

    // Paced.
    let first = Instant::now();
    let (latencies, posted) = post_singles(
        &base,
        &token,
        &senders,
        total,
        sizes.clients,
        Some(sizes.rate),
        0,
    )
    .await;
    let all_sent = singles_sent(&pool, tenant, total, first).await;
    let single_rate = rate(total, all_sent);
    println!(
        "  single sends at {} requests/s: {total} accepted in {:.2} s = {:.0} requests/s",
        sizes.rate,
        posted.as_secs_f64(),
        rate(total, posted)
    );
    println!(
        "    POST latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms  target p99 < 25 ms",
        quantile(&latencies, 0.50).as_secs_f64() * 1e3,
        quantile(&latencies, 0.99).as_secs_f64() * 1e3,
        quantile(&latencies, 1.0).as_secs_f64() * 1e3,
    );
    println!(
        "    first POST to all sent: {:.2} s = {single_rate:.0} messages/s (paced: at most {} messages/s)",
        all_sent.as_secs_f64(),
        sizes.rate
    );

    // Flat out.
    let first = Instant::now();
    let (latencies, posted) =
        post_singles(&base, &token, &senders, total, sizes.clients, None, total).await;
    let all_sent = singles_sent(&pool, tenant, 2 * total, first).await;
    let single_rate = rate(total, all_sent);
    println!(
        "  single sends flat out: {total} accepted in {:.2} s = {:.0} requests/s, POST p50 {:.1} ms, p99 {:.1} ms",
        posted.as_secs_f64(),
        rate(total, posted),
        quantile(&latencies, 0.50).as_secs_f64() * 1e3,
        quantile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
    println!(
        "    first POST to all sent: {:.2} s = {single_rate:.0} messages/s = {:.0}% of the campaign path's  target >= 80%",
        all_sent.as_secs_f64(),
        100.0 * single_rate / campaign_rate
    );

    shutdown.cancel();
    let _ = running.await;
    pool.close().await;
    delete_streams(&nats_url(), &prefix);
    let _ = std::fs::remove_dir_all(&data_dir);
}
