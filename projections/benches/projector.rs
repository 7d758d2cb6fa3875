//! Throughput of the projector against a live PostgreSQL and nats-server.
//!
//! One run prints:
//!
//! - (1) the reference: raw PostgreSQL batched inserts, rows/s of one
//!   connection running multi-row `INSERT ... SELECT FROM UNNEST($1::uuid[],
//!   ...)` into a fresh table shaped like `messages` (same columns, same
//!   secondary indexes), in batches of 1,000 and of 5,000 rows;
//! - (2) a generated history (`HistorySpec::for_events`, 1,000,000 events by
//!   default) appended to a fresh prefix (generation time, append rate), then
//!   `Projector::catch_up` over it from empty tables: log events/s, against
//!   the targets (≥ 50,000 events/s and ≥ 40% of the best raw rate);
//! - (3) a full rebuild of every projection (`rebuild::rebuild` with
//!   `NAMES`): wall time and log events/s, against the target (< 30 s for
//!   1,000,000 events).
//!
//! (2) and (3) also print the CPU seconds the bench process (the
//! projector), nats-server and PostgreSQL used, and the whole machine's: on
//! a machine shared with other work, the wall times alone say little.
//!
//! ```text
//! cargo bench -p wablast-projections --bench projector
//! BENCH_QUICK=1 cargo bench -p wablast-projections --bench projector
//! BENCH_EVENTS=200000 cargo bench -p wablast-projections --bench projector
//! ```
//!
//! Environment: `NATS_URL` (default `nats://127.0.0.1:4222`), `DATABASE_URL`
//! (its server and query are used; default
//! `postgres://postgres@127.0.0.1:5432/wablast?sslmode=disable`),
//! `BENCH_QUICK=1` (20,000 events and 20,000 raw rows, for smoke runs; the
//! default when the binary is not started by `cargo bench`, e.g. by `cargo
//! test --all-targets`; `BENCH_QUICK=0` forces full sizes), `BENCH_EVENTS`
//! (events of (2) and (3)), `BENCH_RAW_ROWS` (rows per batch size in (1)),
//! `BENCH_SEED` (the history's seed), `BENCH_IN_FLIGHT` (appends
//! outstanding in (2)), `BENCH_POOL` (PostgreSQL connections of the
//! projector), `RUST_LOG` (tracing output, e.g. `wablast_projections=debug`
//! for every batch).
//!
//! Everything is created fresh (a database `wablast_test_<hex>`, streams
//! under a prefix `bench<hex>`) and dropped at the end, also when a phase
//! fails.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;
use wablast_projections::{NAMES, Projector, rebuild};
use wablast_tests::history::{self, History, HistorySpec};
use wablast_tests::{TestDatabase, delete_streams, nats_url};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Projector catch-up: at least this share of the best raw insert rate.
const TARGET_SHARE_OF_RAW: f64 = 0.40;
/// Projector catch-up: at least this many log events per second.
const TARGET_EVENTS_PER_SEC: f64 = 50_000.0;
/// Rebuild of every projection: under this for 1,000,000 events.
const TARGET_REBUILD_1M: Duration = Duration::from_secs(30);
/// The raw insert batch sizes measured.
const RAW_BATCHES: [usize; 2] = [1_000, 5_000];

// ---------------------------------------------------------------------------
// Settings.
// ---------------------------------------------------------------------------

struct Settings {
    quick: bool,
    events: usize,
    raw_rows: usize,
    seed: u64,
    in_flight: usize,
    pool: u32,
}

impl Settings {
    fn from_env() -> Result<Self, BoxError> {
        // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
        // binary without it, and then gets a smoke run.
        let quick = match std::env::var("BENCH_QUICK") {
            Ok(v) => !v.is_empty() && v != "0",
            Err(_) => !std::env::args().any(|arg| arg == "--bench"),
        };
        let pick = |full: usize, smoke: usize| if quick { smoke } else { full };
        Ok(Self {
            quick,
            events: env_usize("BENCH_EVENTS", pick(1_000_000, 20_000))?.max(1),
            raw_rows: env_usize("BENCH_RAW_ROWS", pick(200_000, 20_000))?.max(1),
            seed: env_usize("BENCH_SEED", 1)? as u64,
            in_flight: env_usize("BENCH_IN_FLIGHT", 512)?.max(1),
            pool: env_usize("BENCH_POOL", 16)?.max(2) as u32,
        })
    }
}

fn env_usize(name: &str, default: usize) -> Result<usize, BoxError> {
    match std::env::var(name) {
        Ok(v) => Ok(v
            .trim()
            .replace('_', "")
            .parse()
            .map_err(|e| format!("{name}={v:?}: {e}"))?),
        Err(_) => Ok(default),
    }
}

fn per_sec(n: f64, elapsed: Duration) -> f64 {
    n / elapsed.as_secs_f64().max(1e-9)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

/// `12345678.9` as `12,345,679`.
fn grouped(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Deletes the bench's streams when dropped: at the end, after an error
/// or a panic.
struct Streams {
    nats_url: String,
    prefix: String,
}

impl Drop for Streams {
    fn drop(&mut self) {
        delete_streams(&self.nats_url, &self.prefix);
        println!("deleted streams {}_* and KV_{}_*", self.prefix, self.prefix);
    }
}

// ---------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------

// The binary's allocator, so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let settings = Settings::from_env()?;
    let nats_url = nats_url();
    let prefix = format!("bench{}", &Uuid::new_v4().simple().to_string()[..8]);
    // Dropped last to first: the streams, then the database (forced).
    let database = TestDatabase::create().await;
    let _streams = Streams {
        nats_url: nats_url.clone(),
        prefix: prefix.clone(),
    };
    let result = run(&settings, &database, &nats_url, &prefix).await;
    if let Err(err) = &result {
        println!("\nFAILED: {err}");
    }
    result
}

async fn run(
    settings: &Settings,
    database: &TestDatabase,
    nats_url: &str,
    prefix: &str,
) -> Result<(), BoxError> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let pool = PgPoolOptions::new()
        .max_connections(settings.pool)
        .connect(&database.url)
        .await?;
    let version: String = sqlx::query_scalar("select version()")
        .fetch_one(&pool)
        .await?;

    println!("== wablast-projections projector bench ==");
    println!("machine: {cores} core(s); {version}");
    println!(
        "mode: {}; database {}; prefix {prefix} at {nats_url}; projector pool {} connections",
        if settings.quick {
            "QUICK (smoke)"
        } else {
            "full"
        },
        database.url,
        settings.pool
    );
    if cfg!(debug_assertions) {
        println!("debug build (cargo test?): the figures below mean nothing, only that it runs");
    }

    // (1)
    println!(
        "\n-- (1) raw PostgreSQL batched insert: INSERT ... SELECT FROM UNNEST, one connection, {} rows per batch size, fresh `messages`-shaped table (pk + 2 indexes) --",
        grouped(settings.raw_rows as f64)
    );
    let mut raw_best: f64 = 0.0;
    for batch in RAW_BATCHES {
        let rate = raw_insert(&pool, settings.raw_rows, batch).await?;
        raw_best = raw_best.max(rate);
        println!(
            "(1) batch {:>5}: {:>10} rows/s",
            grouped(batch as f64),
            grouped(rate)
        );
    }

    // (2)
    println!("\n-- (2) generated history, appended, then Projector::catch_up from empty tables --");
    let started = Instant::now();
    let spec = HistorySpec::for_events(settings.events, settings.seed);
    let history = History::generate(&spec);
    let generated = started.elapsed();
    let (events, commits, aggregates) = (history.events(), history.commits(), history.aggregates());
    println!(
        "history: {} events, {} commits, {} aggregates, {} tenants, {} waves (asked ~{}; {spec:?}), generated in {:.2} s",
        grouped(events as f64),
        grouped(commits as f64),
        grouped(aggregates as f64),
        spec.tenants,
        history.waves(),
        grouped(settings.events as f64),
        generated.as_secs_f64()
    );
    let log = history::open_log(nats_url, prefix).await?;
    let started = Instant::now();
    history.append_to(&log, settings.in_flight).await?;
    let appended = started.elapsed();
    println!(
        "append: {:.2} s, {} events/s, {} commits/s ({} appends in flight per wave)",
        appended.as_secs_f64(),
        grouped(per_sec(events as f64, appended)),
        grouped(per_sec(commits as f64, appended)),
        settings.in_flight
    );
    drop(history);

    wablast_migrations::run(&pool).await?;
    let projector = Projector::new(pool.clone(), log.clone());
    let cpu = Cpu::now();
    let started = Instant::now();
    let applied: u64 = projector.catch_up().await?;
    let caught_up = started.elapsed();
    let cpu = Cpu::now().since(&cpu);
    let rate = per_sec(events as f64, caught_up);
    let share = rate / raw_best.max(1.0);
    println!(
        "catch-up: {:.2} s for {} log events ({} applications summed over the projections): {} events/s",
        caught_up.as_secs_f64(),
        grouped(events as f64),
        grouped(applied as f64),
        grouped(rate)
    );
    println!(
        "  target ≥ {} events/s: {}",
        grouped(TARGET_EVENTS_PER_SEC),
        verdict(rate >= TARGET_EVENTS_PER_SEC)
    );
    println!(
        "  target ≥ {:.0}% of the best raw insert rate ({} rows/s): {:.0}%, {}",
        TARGET_SHARE_OF_RAW * 100.0,
        grouped(raw_best),
        share * 100.0,
        verdict(share >= TARGET_SHARE_OF_RAW)
    );
    println!("  {}", cpu.describe(caught_up));

    // (3)
    println!(
        "\n-- (3) full rebuild of every projection ({}) --",
        NAMES.join(", ")
    );
    let cpu = Cpu::now();
    let started = Instant::now();
    let report = rebuild::rebuild(&pool, &log, NAMES, None).await?;
    let rebuilt = started.elapsed();
    let cpu = Cpu::now().since(&cpu);
    let target = TARGET_REBUILD_1M.mul_f64(events as f64 / 1_000_000.0);
    println!(
        "rebuild: {:.2} s for {} log events ({} applications summed over the projections): {} events/s",
        rebuilt.as_secs_f64(),
        grouped(events as f64),
        grouped(report.events() as f64),
        grouped(per_sec(events as f64, rebuilt))
    );
    for projection in &report.projections {
        println!(
            "  {:<12} {:>10} events in {:.2} s",
            projection.projection,
            grouped(projection.events as f64),
            projection.elapsed.as_secs_f64()
        );
    }
    println!(
        "  target < {} s for 1,000,000 events (so < {:.1} s for {}): {}",
        TARGET_REBUILD_1M.as_secs(),
        target.as_secs_f64(),
        grouped(events as f64),
        verdict(rebuilt < target)
    );
    println!("  {}", cpu.describe(rebuilt));

    pool.close().await;
    println!("\ndropping database {}", database.url);
    Ok(())
}

// ---------------------------------------------------------------------------
// CPU time.
// ---------------------------------------------------------------------------

/// CPU seconds used so far (Linux `/proc`; zeros elsewhere): this process,
/// nats-server, the PostgreSQL processes alive now (a backend that exited
/// meanwhile is not counted), and the whole machine (other work included).
#[derive(Default)]
struct Cpu {
    bench: f64,
    nats: f64,
    postgres: f64,
    machine: f64,
}

impl Cpu {
    fn now() -> Self {
        let mut cpu = Self {
            bench: Self::process("self").map_or(0.0, |(_, t)| t),
            ..Self::default()
        };
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let name = entry.file_name();
                let Some(pid) = name
                    .to_str()
                    .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
                else {
                    continue;
                };
                match Self::process(pid) {
                    Some((comm, t)) if comm == "nats-server" => cpu.nats += t,
                    Some((comm, t)) if comm == "postgres" => cpu.postgres += t,
                    _ => {}
                }
            }
        }
        // `cpu  user nice system idle iowait irq softirq steal ...`
        if let Ok(stat) = std::fs::read_to_string("/proc/stat")
            && let Some(line) = stat.lines().next()
        {
            let ticks: Vec<f64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect();
            let busy: f64 = ticks
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != 3 && *i != 4 && *i < 8)
                .map(|(_, t)| t)
                .sum();
            cpu.machine = busy / 100.0;
        }
        cpu
    }

    /// A process's command name and CPU seconds (user + system).
    fn process(pid: &str) -> Option<(String, f64)> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (comm, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime: fields 14 and 15 of the line, in clock ticks
        // (100 per second on Linux).
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        Some((comm.to_owned(), ticks / 100.0))
    }

    fn since(&self, before: &Self) -> Self {
        Self {
            bench: self.bench - before.bench,
            nats: self.nats - before.nats,
            postgres: self.postgres - before.postgres,
            machine: self.machine - before.machine,
        }
    }

    fn describe(&self, wall: Duration) -> String {
        format!(
            "CPU: projector {:.1} s, nats-server {:.1} s, PostgreSQL {:.1} s (live processes), machine {:.1} s in {:.1} s wall",
            self.bench,
            self.nats,
            self.postgres,
            self.machine,
            wall.as_secs_f64()
        )
    }
}

// ---------------------------------------------------------------------------
// (1) Raw batched inserts.
// ---------------------------------------------------------------------------

const RAW_TABLE: &str = "
create table bench_messages
(
    id                  uuid primary key,
    tenant_id           uuid        not null,
    campaign_id         uuid        not null,
    session_id          uuid        not null,
    phone               text        not null,
    name                text,
    status              text        not null,
    error               text,
    attempts            integer     not null default 0,
    provider_message_id text,
    cost                bigint      not null default 0,
    queued_at           timestamptz not null,
    sent_at             timestamptz,
    delivered_at        timestamptz,
    read_at             timestamptz,
    updated_at          timestamptz not null
);
create index bench_messages_by_campaign on bench_messages (tenant_id, campaign_id, id);
create index bench_messages_by_campaign_status on bench_messages (tenant_id, campaign_id, status, id);
";

const RAW_INSERT: &str = "
insert into bench_messages (id, tenant_id, campaign_id, session_id, phone, name, status, error,
    attempts, provider_message_id, cost, queued_at, sent_at, delivered_at, read_at, updated_at)
select * from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::int4[], $10::text[], $11::int8[], $12::timestamptz[],
    $13::timestamptz[], $14::timestamptz[], $15::timestamptz[], $16::timestamptz[])
";

/// One batch of message rows, column by column.
#[derive(Default)]
struct Columns {
    id: Vec<Uuid>,
    tenant_id: Vec<Uuid>,
    campaign_id: Vec<Uuid>,
    session_id: Vec<Uuid>,
    phone: Vec<String>,
    name: Vec<Option<String>>,
    status: Vec<String>,
    error: Vec<Option<String>>,
    attempts: Vec<i32>,
    provider_message_id: Vec<Option<String>>,
    cost: Vec<i64>,
    queued_at: Vec<DateTime<Utc>>,
    sent_at: Vec<Option<DateTime<Utc>>>,
    delivered_at: Vec<Option<DateTime<Utc>>>,
    read_at: Vec<Option<DateTime<Utc>>>,
    updated_at: Vec<DateTime<Utc>>,
}

impl Columns {
    /// Rows `from..from + n`, shaped like the generated messages: v7 ids,
    /// 200 tenants, 1,000 campaigns, mostly sent and delivered.
    fn rows(from: usize, n: usize, tenants: &[Uuid], campaigns: &[Uuid]) -> Self {
        let base = DateTime::<Utc>::from_timestamp(1_772_000_000, 0).expect("an instant");
        let mut c = Self::default();
        for i in from..from + n {
            let at = base + TimeDelta::milliseconds(i as i64 * 250);
            let campaign = i % campaigns.len();
            let sent = i % 10 != 0;
            c.id.push(Uuid::now_v7());
            c.tenant_id.push(tenants[campaign % tenants.len()]);
            c.campaign_id.push(campaigns[campaign]);
            c.session_id
                .push(campaigns[(campaign + 1) % campaigns.len()]);
            c.phone.push(format!("+62812{:08}", 10_000_000 + i));
            c.name
                .push((i % 5 != 0).then(|| format!("Budi Santoso {i}")));
            c.status
                .push(if sent { "delivered" } else { "failed" }.to_owned());
            c.error
                .push((!sent).then(|| "number is not on WhatsApp".to_owned()));
            c.attempts.push(1);
            c.provider_message_id
                .push(sent.then(|| format!("3EB0{i:016X}")));
            c.cost.push(if sent { 2 } else { 0 });
            c.queued_at.push(at);
            c.sent_at.push(sent.then(|| at + TimeDelta::seconds(3)));
            c.delivered_at
                .push(sent.then(|| at + TimeDelta::seconds(9)));
            c.read_at.push(None);
            c.updated_at.push(at + TimeDelta::seconds(9));
        }
        c
    }
}

/// Inserts `rows` rows in batches of `batch` into a fresh table; rows/s.
async fn raw_insert(pool: &PgPool, rows: usize, batch: usize) -> Result<f64, BoxError> {
    let mut conn = pool.acquire().await?;
    sqlx::raw_sql("drop table if exists bench_messages")
        .execute(&mut *conn)
        .await?;
    sqlx::raw_sql(RAW_TABLE).execute(&mut *conn).await?;
    let tenants: Vec<Uuid> = (0..200).map(|_| Uuid::now_v7()).collect();
    let campaigns: Vec<Uuid> = (0..1_000).map(|_| Uuid::now_v7()).collect();
    // Built before the clock starts: only the database's work is timed.
    let batches: Vec<Columns> = (0..rows)
        .step_by(batch)
        .map(|from| Columns::rows(from, batch.min(rows - from), &tenants, &campaigns))
        .collect();
    let started = Instant::now();
    for c in &batches {
        sqlx::query(RAW_INSERT)
            .bind(&c.id)
            .bind(&c.tenant_id)
            .bind(&c.campaign_id)
            .bind(&c.session_id)
            .bind(&c.phone)
            .bind(&c.name)
            .bind(&c.status)
            .bind(&c.error)
            .bind(&c.attempts)
            .bind(&c.provider_message_id)
            .bind(&c.cost)
            .bind(&c.queued_at)
            .bind(&c.sent_at)
            .bind(&c.delivered_at)
            .bind(&c.read_at)
            .bind(&c.updated_at)
            .execute(&mut *conn)
            .await?;
    }
    let elapsed = started.elapsed();
    let inserted: i64 = sqlx::query_scalar("select count(*) from bench_messages")
        .fetch_one(&mut *conn)
        .await?;
    if inserted != rows as i64 {
        return Err(format!("inserted {inserted} rows, expected {rows}").into());
    }
    sqlx::raw_sql("drop table bench_messages")
        .execute(&mut *conn)
        .await?;
    Ok(per_sec(rows as f64, elapsed))
}
