//! Throughput and latency of the event log against a live nats-server.
//!
//! One run prints, on the same server:
//!
//! - (a) raw JetStream publish-with-ack rate, pipelined (the reference);
//! - (b) commits/s for new aggregates, many in flight: (b1) `EventLog::append`,
//!   (b2) `CommandHandler::execute`, each as a % of (a);
//! - (c) latency of one `CommandHandler::execute` (load, decide, commit) on
//!   aggregates with 10, 100 and 1,000 prior commits, and with 100 prior
//!   commits spread over a busy stream.
//!
//! Diagnostics next to each figure (publish options one by one, CPU per
//! operation of this process and of a local nats-server, the parts of a
//! load) say where the time goes.
//!
//! ```text
//! cargo bench -p wablast-eventstore --bench eventlog
//! BENCH_QUICK=1 cargo bench -p wablast-eventstore --bench eventlog
//! ```
//!
//! Environment: `NATS_URL` (default `nats://127.0.0.1:4222`), `BENCH_QUICK=1`
//! (small sizes, for smoke runs; the default when the binary is not started
//! by `cargo bench`, e.g. by `cargo test --all-targets`; `BENCH_QUICK=0`
//! forces full sizes), `BENCH_MESSAGES` (messages of (a)),
//! `BENCH_AGGREGATES` (new aggregates of each (b) run), `BENCH_WINDOW` (acks in
//! flight in (a)), `BENCH_CONCURRENCY` (tasks in (b)), `BENCH_SAMPLES` (per
//! history length in (c)), `BENCH_HISTORIES` (comma separated prior commit
//! counts for (c)), `BENCH_SPARSE_GAP` (commits of other aggregates between
//! two of a sampled aggregate in the extra "busy stream" run of (c) at 100
//! prior commits; 0 skips it), `BENCH_EVENT_PAD` (bytes of padding in each
//! event).
//!
//! Every stream is created under a fresh prefix (`bench<8 hex>`) and deleted
//! at the end, also when a phase fails.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{
    self, context::PublishAckFuture, message::PublishMessage, stream::Config as StreamConfig,
    stream::StorageType,
};
use bytes::Bytes;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use futures::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use uuid::Uuid;
use wablast_eventstore::log::EVENT_TYPES_HEADER;
use wablast_eventstore::{
    Actor, AggregateKey, CommandHandler, CommandMetadata, Commit, EventLog, EventLogConfig, Prefix,
    StreamSpec,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Target of (b): commits/s at least this share of (a).
const TARGET_SHARE_OF_RAW: f64 = 0.50;
/// Target of (c): p99 of load-then-commit below this at 100 prior commits.
const TARGET_P99_AT_100: Duration = Duration::from_millis(5);
/// The tenant token of every bench aggregate.
const TENANT: &str = "bench";

// ---------------------------------------------------------------------------
// The test aggregate: a counter.
// ---------------------------------------------------------------------------

/// A counter; each `Add` records the new total.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Counter {
    total: u64,
}

#[derive(Clone, Debug)]
enum CounterCommand {
    Add { n: u64 },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum CounterEvent {
    /// `note` pads the event to a realistic size.
    Added { n: u64, total: u64, note: String },
}

impl DomainEvent for CounterEvent {
    fn event_type(&self) -> String {
        "Added".to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("counter overflow")]
struct CounterOverflow;

/// What the counter's events are padded with.
struct CounterServices {
    note: String,
}

impl Aggregate for Counter {
    const TYPE: &'static str = "counter";
    type Command = CounterCommand;
    type Event = CounterEvent;
    type Error = CounterOverflow;
    type Services = CounterServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            CounterCommand::Add { n } => {
                let total = self.total.checked_add(n).ok_or(CounterOverflow)?;
                let event = CounterEvent::Added {
                    n,
                    total,
                    note: services.note.clone(),
                };
                sink.write(event, self).await;
                Ok(())
            }
        }
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            CounterEvent::Added { total, .. } => self.total = total,
        }
    }
}

/// The commit an `Add { n: 1 }` command makes at aggregate sequence
/// `sequence` (the counter's total then equals its sequence).
fn added_commit(key: &AggregateKey, sequence: u64, note: &str) -> Result<Commit, BoxError> {
    let metadata = CommandMetadata::new(Actor::System);
    let mut commit = Commit::new(Counter::TYPE, key, &metadata);
    let event = CounterEvent::Added {
        n: 1,
        total: sequence,
        note: note.to_owned(),
    };
    commit.push(
        sequence,
        event.event_type(),
        event.event_version(),
        serde_json::to_value(&event)?,
    );
    Ok(commit)
}

fn key(label: &str, i: usize) -> Result<AggregateKey, BoxError> {
    Ok(AggregateKey::new(TENANT, format!("{label}-{i:06}"))?)
}

// ---------------------------------------------------------------------------
// Settings.
// ---------------------------------------------------------------------------

struct Settings {
    quick: bool,
    nats_url: String,
    messages: usize,
    aggregates: usize,
    window: usize,
    concurrency: usize,
    samples: usize,
    histories: Vec<usize>,
    sparse_gap: usize,
    event_pad: usize,
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
        let messages = env_usize("BENCH_MESSAGES", pick(50_000, 2_000))?;
        let histories = match std::env::var("BENCH_HISTORIES") {
            Ok(list) => list
                .split(',')
                .map(|h| h.trim().parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("BENCH_HISTORIES={list:?}: {e}"))?,
            Err(_) if quick => vec![10, 100],
            Err(_) => vec![10, 100, 1_000],
        };
        Ok(Self {
            quick,
            nats_url: std::env::var("NATS_URL")
                .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned()),
            messages,
            aggregates: env_usize("BENCH_AGGREGATES", messages)?,
            window: env_usize("BENCH_WINDOW", 2_048)?.max(1),
            concurrency: env_usize("BENCH_CONCURRENCY", 512)?.max(1),
            samples: env_usize("BENCH_SAMPLES", pick(200, 30))?.max(1),
            histories,
            sparse_gap: env_usize("BENCH_SPARSE_GAP", pick(1_000, 50))?,
            event_pad: env_usize("BENCH_EVENT_PAD", 64)?,
        })
    }
}

fn env_usize(name: &str, default: usize) -> Result<usize, BoxError> {
    match std::env::var(name) {
        Ok(v) => Ok(v.trim().parse().map_err(|e| format!("{name}={v:?}: {e}"))?),
        Err(_) => Ok(default),
    }
}

// ---------------------------------------------------------------------------
// Measuring.
// ---------------------------------------------------------------------------

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on Linux).
const CLOCK_TICKS_PER_SEC: u64 = 100;

/// The local nats-server's pid, if exactly one runs on this machine.
static SERVER_PID: OnceLock<Option<String>> = OnceLock::new();

fn server_pid() -> Option<&'static str> {
    SERVER_PID
        .get_or_init(|| {
            let pids: Vec<String> = std::fs::read_dir("/proc")
                .ok()?
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let pid = entry.file_name().into_string().ok()?;
                    let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
                    (comm.trim() == "nats-server").then_some(pid)
                })
                .collect();
            match pids.as_slice() {
                [pid] => Some(pid.clone()),
                _ => None,
            }
        })
        .as_deref()
}

/// User + system CPU time of a process so far, in clock ticks.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// CPU used by this process and by the local nats-server during a run
/// (Linux only; 10 ms resolution).
struct CpuMeter {
    client: Option<u64>,
    server: Option<u64>,
}

#[derive(Clone, Copy, Default)]
struct CpuUsed {
    client: Option<Duration>,
    server: Option<Duration>,
}

impl CpuMeter {
    fn start() -> Self {
        Self {
            client: cpu_ticks("self"),
            server: server_pid().and_then(cpu_ticks),
        }
    }

    fn stop(self) -> CpuUsed {
        let since = |before: Option<u64>, now: Option<u64>| {
            Some(Duration::from_millis(
                (now? - before?) * 1_000 / CLOCK_TICKS_PER_SEC,
            ))
        };
        CpuUsed {
            client: since(self.client, cpu_ticks("self")),
            server: since(self.server, server_pid().and_then(cpu_ticks)),
        }
    }
}

/// The outcome of a throughput run.
struct Throughput {
    ok: usize,
    errors: usize,
    first_error: Option<String>,
    elapsed: Duration,
    /// Per-operation latencies, when measured.
    latencies: Vec<Duration>,
    cpu: CpuUsed,
}

impl Throughput {
    fn per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn print(&self, label: &str) {
        println!(
            "{label:<58} {:>9.0} /s   ({} ok in {:.2} s)",
            self.per_sec(),
            self.ok,
            self.elapsed.as_secs_f64()
        );
        if !self.latencies.is_empty() {
            let p = Percentiles::of(self.latencies.clone());
            println!(
                "{:<58} per-op latency under load: p50 {}  p99 {}  max {}",
                "",
                ms(p.p50),
                ms(p.p99),
                ms(p.max)
            );
        }
        let per_op = |cpu: Option<Duration>| match cpu {
            Some(cpu) if self.ok > 0 => {
                format!("{:5.1} us", cpu.as_secs_f64() * 1e6 / self.ok as f64)
            }
            _ => "  n/a".to_owned(),
        };
        let busy = match (self.cpu.client, self.cpu.server) {
            (Some(client), Some(server)) => format!(
                "{:.2}",
                (client + server).as_secs_f64() / self.elapsed.as_secs_f64()
            ),
            _ => "n/a".to_owned(),
        };
        println!(
            "{:<58} cpu per op: client {}, nats-server {}; cores busy {busy}",
            "",
            per_op(self.cpu.client),
            per_op(self.cpu.server)
        );
        if self.errors > 0 {
            println!(
                "{:<58} !! {} errors, first: {}",
                "",
                self.errors,
                self.first_error.as_deref().unwrap_or("?")
            );
        }
    }
}

struct Percentiles {
    n: usize,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
    mean: Duration,
}

impl Percentiles {
    fn of(mut samples: Vec<Duration>) -> Self {
        assert!(!samples.is_empty(), "no samples");
        samples.sort_unstable();
        let n = samples.len();
        // Nearest rank.
        let rank = |p: f64| samples[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        Self {
            n,
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: samples[n - 1],
            mean: samples.iter().sum::<Duration>() / n as u32,
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:7.3} ms", d.as_secs_f64() * 1e3)
}

fn verdict(met: bool) -> &'static str {
    if met { "MET" } else { "NOT MET" }
}

/// Runs `op(0..n)` on `concurrency` tasks, each taking the next index when
/// its previous operation is done, and measures each operation.
async fn run_concurrently<F, Fut>(n: usize, concurrency: usize, op: F) -> Throughput
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let op = Arc::new(op);
    let mut tasks = JoinSet::new();
    let cpu = CpuMeter::start();
    let start = Instant::now();
    for _ in 0..concurrency.min(n) {
        let next = next.clone();
        let op = op.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            let mut first_error = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let began = Instant::now();
                match op(i).await {
                    Ok(()) => latencies.push(began.elapsed()),
                    Err(err) => {
                        errors += 1;
                        first_error.get_or_insert(err);
                    }
                }
            }
            (latencies, errors, first_error)
        });
    }
    let mut total = Throughput {
        ok: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        latencies: Vec::with_capacity(n),
        cpu: CpuUsed::default(),
    };
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((latencies, errors, first_error)) => {
                total.ok += latencies.len();
                total.latencies.extend(latencies);
                total.errors += errors;
                if total.first_error.is_none() {
                    total.first_error = first_error;
                }
            }
            Err(err) => {
                total.errors += 1;
                total
                    .first_error
                    .get_or_insert(format!("task failed: {err}"));
            }
        }
    }
    total.elapsed = start.elapsed();
    total.cpu = cpu.stop();
    total
}

// ---------------------------------------------------------------------------
// (a) Raw JetStream publishing.
// ---------------------------------------------------------------------------

/// What each raw message carries, so that the cost of each publish option
/// of `EventLog::append` shows on its own.
#[derive(Clone, Copy)]
struct RawMode {
    /// A subject per message (as an aggregate per commit), else one subject.
    subject_per_message: bool,
    /// A unique `Nats-Msg-Id` (the server's duplicate check).
    msg_id: bool,
    /// `Nats-Expected-Last-Subject-Sequence: 0` and the event types header.
    expected_last: bool,
}

impl RawMode {
    /// One subject, no headers: the reference.
    const PLAIN: Self = Self {
        subject_per_message: false,
        msg_id: false,
        expected_last: false,
    };
    const SUBJECTS: Self = Self {
        subject_per_message: true,
        ..Self::PLAIN
    };
    const SUBJECTS_MSG_ID: Self = Self {
        msg_id: true,
        ..Self::SUBJECTS
    };
    /// What `EventLog::append` sends for a new aggregate.
    const LOG_LIKE: Self = Self {
        expected_last: true,
        ..Self::SUBJECTS_MSG_ID
    };
}

fn raw_message(prefix: &str, mode: RawMode, i: usize, payload: &Bytes) -> (String, PublishMessage) {
    let subject = if mode.subject_per_message {
        format!("{prefix}.raw.m{i:06}")
    } else {
        format!("{prefix}.raw.all")
    };
    let mut message = PublishMessage::build().payload(payload.clone());
    if mode.msg_id {
        message = message.message_id(format!("{}@{subject}", Uuid::now_v7()));
    }
    if mode.expected_last {
        message = message
            .expected_last_subject_sequence(0)
            .header(EVENT_TYPES_HEADER, "Added");
    }
    (subject, message)
}

/// How a raw run keeps publishes in flight.
#[derive(Clone, Copy)]
enum Pipelining {
    /// One task, up to this many acks in flight.
    Window(usize),
    /// This many tasks, each awaiting its ack before the next publish (the
    /// concurrency model of (b)).
    Tasks(usize),
}

/// One raw run on a fresh stream named `<prefix>_<name>`, deleted after.
#[allow(clippy::too_many_arguments)]
async fn raw_run(
    js: &jetstream::Context,
    prefix: &str,
    streams: &mut Vec<String>,
    name: &str,
    mode: RawMode,
    pipelining: Pipelining,
    n: usize,
    payload: &Bytes,
) -> Result<Throughput, BoxError> {
    let stream = raw_stream(js, prefix, name, streams).await?;
    let result = match pipelining {
        Pipelining::Window(window) => raw_windowed(js, prefix, mode, n, window, payload).await,
        Pipelining::Tasks(tasks) => raw_tasks(js, prefix, mode, n, tasks, payload).await,
    };
    check_count(js, &stream, result.ok).await?;
    drop_stream(js, streams, &stream).await;
    Ok(result)
}

/// A fresh file-storage stream for raw publishing.
async fn raw_stream(
    js: &jetstream::Context,
    prefix: &str,
    name: &str,
    created: &mut Vec<String>,
) -> Result<String, BoxError> {
    let stream = format!("{prefix}_{name}");
    js.create_stream(StreamConfig {
        name: stream.clone(),
        subjects: vec![format!("{prefix}.raw.>")],
        storage: StorageType::File,
        num_replicas: 1,
        allow_direct: true,
        ..Default::default()
    })
    .await?;
    created.push(stream.clone());
    Ok(stream)
}

/// Deletes a raw stream as soon as its phase is done.
async fn drop_stream(js: &jetstream::Context, streams: &mut Vec<String>, stream: &str) {
    delete_stream(js, stream).await;
    streams.retain(|s| s != stream);
}

async fn delete_stream(js: &jetstream::Context, stream: &str) {
    if let Err(err) = js.delete_stream(stream).await {
        eprintln!("warning: stream {stream} not deleted: {err}");
    }
}

/// Publishes `n` messages from one task, keeping up to `window` acks in
/// flight.
async fn raw_windowed(
    js: &jetstream::Context,
    prefix: &str,
    mode: RawMode,
    n: usize,
    window: usize,
    payload: &Bytes,
) -> Throughput {
    let mut in_flight = FuturesUnordered::new();
    let mut ok = 0;
    let mut errors = 0;
    let mut first_error = None;
    let mut note = |result: Result<(), String>| match result {
        Ok(()) => ok += 1,
        Err(err) => {
            errors += 1;
            first_error.get_or_insert(err);
        }
    };
    let cpu = CpuMeter::start();
    let start = Instant::now();
    for i in 0..n {
        let (subject, message) = raw_message(prefix, mode, i, payload);
        match js.send_publish(subject, message).await {
            Ok(ack) => in_flight.push(ack.into_future()),
            Err(err) => note(Err(err.to_string())),
        }
        if in_flight.len() >= window
            && let Some(result) = in_flight.next().await
        {
            note(result.map(drop).map_err(|e| e.to_string()));
        }
    }
    while let Some(result) = in_flight.next().await {
        note(result.map(drop).map_err(|e| e.to_string()));
    }
    let elapsed = start.elapsed();
    Throughput {
        ok,
        errors,
        first_error,
        elapsed,
        latencies: Vec::new(),
        cpu: cpu.stop(),
    }
}

/// Publishes `n` messages from `concurrency` tasks, each awaiting its ack
/// before publishing the next: the concurrency model of (b).
async fn raw_tasks(
    js: &jetstream::Context,
    prefix: &str,
    mode: RawMode,
    n: usize,
    concurrency: usize,
    payload: &Bytes,
) -> Throughput {
    let js = js.clone();
    let prefix = prefix.to_owned();
    let payload = payload.clone();
    run_concurrently(n, concurrency, move |i| {
        let js = js.clone();
        let (subject, message) = raw_message(&prefix, mode, i, &payload);
        async move {
            let ack: PublishAckFuture = js
                .send_publish(subject, message)
                .await
                .map_err(|e| e.to_string())?;
            ack.await.map(drop).map_err(|e| e.to_string())
        }
    })
    .await
}

async fn stream_messages(js: &jetstream::Context, stream: &str) -> Result<u64, BoxError> {
    Ok(js.get_stream(stream).await?.info().await?.state.messages)
}

// ---------------------------------------------------------------------------
// (c) Latency on aggregates with history.
// ---------------------------------------------------------------------------

/// Appends `commits` commits to each of `aggregates` aggregates (the
/// aggregates in parallel, each one's commits in order). Not timed.
async fn seed(
    log: &EventLog,
    label: &str,
    aggregates: usize,
    commits: usize,
    gap: usize,
    note: &str,
) -> Result<Vec<AggregateKey>, BoxError> {
    let keys = (0..aggregates)
        .map(|i| key(label, i))
        .collect::<Result<Vec<_>, _>>()?;
    let mut last = vec![0; aggregates];
    for round in 1..=commits {
        // One commit on every aggregate, concurrently: their commits
        // interleave in the stream as busy aggregates' commits do.
        let appends = keys
            .iter()
            .zip(&last)
            .map(|(key, &expected)| {
                let commit = added_commit(key, round as u64, note);
                async move { Ok::<_, BoxError>(log.append(expected, &commit?).await?) }
            })
            .collect::<Vec<_>>();
        last = futures::future::try_join_all(appends).await?;
        // Then `gap` commits of other (new) aggregates.
        if gap > 0 {
            let filler = format!("{label}-f{round}");
            let written = futures::stream::iter(0..gap)
                .map(|j| {
                    let commit = key(&filler, j).and_then(|k| added_commit(&k, 1, note));
                    async move { Ok::<_, BoxError>(log.append(0, &commit?).await?) }
                })
                .buffer_unordered(256)
                .collect::<Vec<_>>()
                .await;
            written.into_iter().collect::<Result<Vec<_>, _>>()?;
        }
    }
    Ok(keys)
}

/// How many aggregates to spread `samples` commands over so that each one's
/// history grows by at most a tenth (at least one commit) while sampled.
fn aggregates_for(history: usize, samples: usize) -> usize {
    let growth = (history / 10).max(1);
    samples.div_ceil(growth).max(1)
}

/// Client CPU of the commit path without the server, on one thread: building
/// a commit as (b1) does, and serializing it as `EventLog::append` does.
fn commit_cpu(n: usize, note: &str) -> Result<(Duration, Duration), BoxError> {
    let began = Instant::now();
    let commits = (0..n)
        .map(|i| key("cpu", i).and_then(|k| added_commit(&k, 1, note)))
        .collect::<Result<Vec<_>, _>>()?;
    let build = began.elapsed() / n as u32;
    let began = Instant::now();
    let mut bytes = 0;
    for commit in &commits {
        bytes += serde_json::to_vec(commit)?.len();
    }
    let serialize = began.elapsed() / n as u32;
    std::hint::black_box(bytes);
    Ok((build, serialize))
}

/// Latency of `samples` appends in a row to one new aggregate, each
/// expecting the previous one: the commit half of a command alone.
async fn sequential_appends(
    log: &EventLog,
    samples: usize,
    note: &str,
) -> Result<Percentiles, BoxError> {
    let key = key("c0", 0)?;
    let mut last = 0;
    let mut latencies = Vec::with_capacity(samples);
    for sequence in 1..=samples as u64 {
        let commit = added_commit(&key, sequence, note)?;
        let began = Instant::now();
        last = log.append(last, &commit).await?;
        latencies.push(began.elapsed());
    }
    Ok(Percentiles::of(latencies))
}

struct LatencyResult {
    history: usize,
    /// Commits of other aggregates between two of a sampled aggregate.
    gap: usize,
    aggregates: usize,
    execute: Percentiles,
    load: Percentiles,
    /// CPU used by the loads (this process, nats-server).
    load_cpu: CpuUsed,
    last_commit: Percentiles,
    consumer_create: Percentiles,
    consumer_delete: Percentiles,
}

async fn latency_at(
    handler: &CommandHandler<Counter>,
    history: usize,
    gap: usize,
    samples: usize,
    note: &str,
) -> Result<LatencyResult, BoxError> {
    let aggregates = aggregates_for(history, samples);
    let label = format!("c{history}g{gap}");
    let seeding = Instant::now();
    let keys = seed(handler.log(), &label, aggregates, history, gap, note).await?;
    println!(
        "  seeded {aggregates} aggregate(s) x {history} commits{} in {:.2} s (not timed): each aggregate's history spans ~{} stream messages",
        if gap > 0 {
            format!(", {gap} other commits between rounds")
        } else {
            String::new()
        },
        seeding.elapsed().as_secs_f64(),
        history * (aggregates + gap)
    );

    // The direct get of the last commit that starts every load.
    let mut last_commit = Vec::with_capacity(samples);
    for i in 0..samples {
        let key = &keys[i % aggregates];
        let began = Instant::now();
        let last = handler.log().last_commit(Counter::TYPE, key).await?;
        last_commit.push(began.elapsed());
        if last.is_none() {
            return Err(format!("{key}: no last commit").into());
        }
    }

    // Creating and deleting an ephemeral consumer like the one a load
    // reads through (same configuration as `EventLog::load`).
    let stream = handler
        .log()
        .stream(handler.log().stream_name_of(Counter::TYPE)?)?;
    let mut consumer_create = Vec::with_capacity(samples);
    let mut consumer_delete = Vec::with_capacity(samples);
    for i in 0..samples {
        let key = &keys[i % aggregates];
        let began = Instant::now();
        let consumer = stream
            .create_consumer(pull::Config {
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: 1 },
                ack_policy: AckPolicy::None,
                filter_subject: handler.log().prefix().aggregate_subject(Counter::TYPE, key),
                memory_storage: true,
                inactive_threshold: Duration::from_secs(10),
                num_replicas: 1,
                ..Default::default()
            })
            .await?;
        consumer_create.push(began.elapsed());
        if consumer.cached_info().num_pending != history as u64 {
            return Err(format!(
                "{key}: consumer sees {} pending",
                consumer.cached_info().num_pending
            )
            .into());
        }
        let began = Instant::now();
        stream.delete_consumer(&consumer.cached_info().name).await?;
        consumer_delete.push(began.elapsed());
    }

    // Load only, before any command, so that every load sees exactly
    // `history` commits.
    let mut load = Vec::with_capacity(samples);
    let cpu = CpuMeter::start();
    for i in 0..samples {
        let key = &keys[i % aggregates];
        let began = Instant::now();
        let loaded = handler.load(key).await?;
        load.push(began.elapsed());
        if loaded.sequence != history as u64 || loaded.aggregate.total != history as u64 {
            return Err(format!(
                "{key}: loaded sequence {} total {}, expected {history}",
                loaded.sequence, loaded.aggregate.total
            )
            .into());
        }
    }
    let load_cpu = cpu.stop();

    let mut execute = Vec::with_capacity(samples);
    for i in 0..samples {
        let key = &keys[i % aggregates];
        let metadata = CommandMetadata::new(Actor::System);
        let began = Instant::now();
        handler
            .execute(key, CounterCommand::Add { n: 1 }, &metadata)
            .await
            .map_err(|e| format!("execute on {key}: {e}"))?;
        execute.push(began.elapsed());
    }

    // Every command landed exactly once, on top of the seeded history.
    let expected = history + samples.div_ceil(aggregates);
    let loaded = handler.load(&keys[0]).await?;
    if loaded.aggregate.total != expected as u64 || loaded.sequence != expected as u64 {
        return Err(format!(
            "{}: total {} at sequence {} after the samples, expected {expected}",
            keys[0], loaded.aggregate.total, loaded.sequence
        )
        .into());
    }

    Ok(LatencyResult {
        history,
        gap,
        aggregates,
        execute: Percentiles::of(execute),
        load: Percentiles::of(load),
        load_cpu,
        last_commit: Percentiles::of(last_commit),
        consumer_create: Percentiles::of(consumer_create),
        consumer_delete: Percentiles::of(consumer_delete),
    })
}

// ---------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let settings = Settings::from_env()?;
    let client = async_nats::connect(&settings.nats_url).await?;
    let prefix = format!("bench{}", &Uuid::new_v4().simple().to_string()[..8]);
    let log = EventLog::open(
        client.clone(),
        EventLogConfig::new(
            Prefix::parse(&prefix)?,
            vec![StreamSpec::kept_forever("events", &[Counter::TYPE])],
        ),
    )
    .await?;
    let js = log.jetstream().clone();
    let mut streams: Vec<String> = log.stream_names().map(str::to_owned).collect();
    // The snapshot bucket's stream.
    streams.push(format!(
        "KV_{}",
        Prefix::parse(&prefix)?.stream_name("snapshots")
    ));

    let result = run(&settings, &client, &log, &prefix, &mut streams).await;

    for stream in &streams {
        delete_stream(&js, stream).await;
    }
    println!(
        "\ndeleted streams: {} (and the raw streams, after each phase)",
        streams.join(", ")
    );
    result
}

async fn run(
    settings: &Settings,
    client: &async_nats::Client,
    log: &EventLog,
    prefix: &str,
    streams: &mut Vec<String>,
) -> Result<(), BoxError> {
    let js = log.jetstream().clone();
    let server = client.server_info();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let note = "x".repeat(settings.event_pad);

    // Raw messages are as large as a commit of the counter, so that (a) and
    // (b) move the same bytes.
    let sample_commit = serde_json::to_vec(&added_commit(&key("b1", 0)?, 1, &note)?)?;
    let payload = Bytes::from(vec![b'r'; sample_commit.len()]);

    println!("== wablast-eventstore event log bench ==");
    println!(
        "machine: {cores} core(s); nats-server {} at {} (jetstream: {}); client async-nats",
        server.version, settings.nats_url, server.jetstream
    );
    println!(
        "mode: {}; prefix {prefix}; streams: file storage, 1 replica",
        if settings.quick {
            "QUICK (smoke)"
        } else {
            "full"
        }
    );
    if cfg!(debug_assertions) {
        println!("debug build (cargo test?): the figures below mean nothing, only that it runs");
    }
    match server_pid() {
        Some(pid) => {
            println!("cpu: this process and the local nats-server (pid {pid}) measured from /proc")
        }
        None => println!("cpu: nats-server not found (or not unique) locally; server cpu n/a"),
    }
    println!(
        "sizes: (a) {} msgs, window {}; (b) {} new aggregates per run, {} tasks; (c) {} samples at {:?} prior commits",
        settings.messages,
        settings.window,
        settings.aggregates,
        settings.concurrency,
        settings.samples,
        settings.histories
    );
    println!(
        "payload: commit of one Added event = {} bytes of JSON (event note padded with {} bytes); raw payload = {} bytes",
        sample_commit.len(),
        settings.event_pad,
        payload.len()
    );

    // (a)
    println!("\n-- (a) raw JetStream publish with ack (send_publish, fresh file stream each) --");
    let window = Pipelining::Window(settings.window);
    let n = settings.messages;
    let raw_before = raw_run(
        &js,
        prefix,
        streams,
        "RAW_A",
        RawMode::PLAIN,
        window,
        n,
        &payload,
    )
    .await?;
    raw_before.print(&format!(
        "(a)  one subject, no headers, window {}",
        settings.window
    ));
    println!("   diagnostics: the publish options of EventLog::append, one at a time");
    let mut diagnostics = Vec::new();
    for (name, label, mode, pipelining) in [
        (
            "RAW_S",
            format!("(a1) + subject per message, window {}", settings.window),
            RawMode::SUBJECTS,
            window,
        ),
        (
            "RAW_SM",
            format!("(a2) + Nats-Msg-Id, window {}", settings.window),
            RawMode::SUBJECTS_MSG_ID,
            window,
        ),
        (
            "RAW_SME",
            format!(
                "(a3) + expected-last-subj-seq 0 (= log), window {}",
                settings.window
            ),
            RawMode::LOG_LIKE,
            window,
        ),
        (
            "RAW_SME_T",
            format!(
                "(a4) as (a3), {} tasks each awaiting its ack",
                settings.concurrency
            ),
            RawMode::LOG_LIKE,
            Pipelining::Tasks(settings.concurrency),
        ),
    ] {
        let run = raw_run(&js, prefix, streams, name, mode, pipelining, n, &payload).await?;
        run.print(&label);
        diagnostics.push(run);
    }

    // (b)
    let events_stream = log.stream_name_of(Counter::TYPE)?.to_owned();
    let services = || CounterServices { note: note.clone() };
    println!(
        "\n-- (b) commits/s for NEW aggregates, one commit each, {} concurrent tasks --",
        settings.concurrency
    );
    let (build, serialize) = commit_cpu(settings.aggregates.min(20_000), &note)?;
    println!(
        "client cpu without the server, one thread: build a commit {:.1} us, serde_json::to_vec it {:.1} us",
        build.as_secs_f64() * 1e6,
        serialize.as_secs_f64() * 1e6
    );
    let before = stream_messages(&js, &events_stream).await?;
    let b1 = {
        let log = log.clone();
        let note = note.clone();
        run_concurrently(settings.aggregates, settings.concurrency, move |i| {
            let log = log.clone();
            let commit = key("b1", i).and_then(|k| added_commit(&k, 1, &note));
            async move {
                let commit = commit.map_err(|e| e.to_string())?;
                log.append(0, &commit)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        })
        .await
    };
    b1.print("(b1) EventLog::append(0, &commit)");
    let after_b1 = stream_messages(&js, &events_stream).await?;
    expect_delta(before, after_b1, b1.ok)?;

    let handler = CommandHandler::<Counter>::new(log.clone(), services());
    let b2 = {
        let handler = handler.clone();
        run_concurrently(settings.aggregates, settings.concurrency, move |i| {
            let handler = handler.clone();
            async move {
                let key = key("b2", i).map_err(|e| e.to_string())?;
                let metadata = CommandMetadata::new(Actor::System);
                handler
                    .execute(&key, CounterCommand::Add { n: 1 }, &metadata)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        })
        .await
    };
    b2.print("(b2) CommandHandler::execute (load + decide + commit)");
    let after_b2 = stream_messages(&js, &events_stream).await?;
    expect_delta(after_b1, after_b2, b2.ok)?;

    let raw_after = raw_run(
        &js,
        prefix,
        streams,
        "RAW_A_AGAIN",
        RawMode::PLAIN,
        window,
        n,
        &payload,
    )
    .await?;
    raw_after.print(&format!(
        "(a)  again, after (b): one subject, no headers, window {}",
        settings.window
    ));
    let reference = (raw_before.per_sec() + raw_after.per_sec()) / 2.0;
    let log_like = diagnostics[2].per_sec().max(diagnostics[3].per_sec());

    // (c)
    println!(
        "\n-- (c) latency of one CommandHandler::execute (load + decide + commit), sequential --"
    );
    println!(
        "events stream {events_stream} holds {} messages before (c)",
        stream_messages(&js, &events_stream).await?
    );
    let append = sequential_appends(log, settings.samples, &note).await?;
    print_percentiles("  append only, one new aggregate", &append);
    let mut latencies = Vec::new();
    let levels = settings
        .histories
        .iter()
        .map(|&history| (history, 0))
        .chain((settings.sparse_gap > 0).then_some((100, settings.sparse_gap)));
    for (history, gap) in levels {
        if gap == 0 {
            println!("history {history}:");
        } else {
            println!("history {history}, each commit {gap} other commits apart (a busy stream):");
        }
        let result = latency_at(&handler, history, gap, settings.samples, &note).await?;
        let growth = settings.samples.div_ceil(result.aggregates);
        println!(
            "  {} samples over {} aggregate(s), each with {}..{} prior commits",
            result.execute.n,
            result.aggregates,
            history,
            history + growth - 1
        );
        print_percentiles("  execute (load+decide+commit)", &result.execute);
        print_percentiles("  load only (diagnostic)", &result.load);
        let per_load = |cpu: Option<Duration>| {
            cpu.map_or("n/a".to_owned(), |cpu| {
                ms(cpu / result.load.n as u32).trim().to_owned()
            })
        };
        println!(
            "{:<36} cpu per load: client {}, nats-server {}",
            "",
            per_load(result.load_cpu.client),
            per_load(result.load_cpu.server)
        );
        print_percentiles("  last_commit only (diagnostic)", &result.last_commit);
        print_percentiles("  create load's consumer (diag.)", &result.consumer_create);
        print_percentiles("  delete that consumer (diag.)", &result.consumer_delete);
        latencies.push(result);
    }

    // Summary.
    println!("\n== summary (targets from the issue) ==");
    println!(
        "machine: {cores} core(s), nats-server {} (client and server share the machine)",
        server.version
    );
    println!(
        "(a)  raw publish-with-ack, pipelined:            {:>9.0} msgs/s   (reference: mean of {:.0} before and {:.0} after (b))",
        reference,
        raw_before.per_sec(),
        raw_after.per_sec()
    );
    println!(
        "(a3/a4) raw as the log publishes (best of both): {:>9.0} msgs/s = {:5.1}% of (a)   (the server's ceiling for (b1))",
        log_like,
        log_like / reference * 100.0
    );
    for (label, run) in [
        ("(b1) EventLog::append, new aggregates:        ", &b1),
        ("(b2) CommandHandler::execute, new aggregates: ", &b2),
    ] {
        let share = run.per_sec() / reference;
        println!(
            "{label}   {:>9.0} commits/s = {:5.1}% of (a), {:5.1}% of (a3/a4)   target >= {:.0}% of (a): {}",
            run.per_sec(),
            share * 100.0,
            run.per_sec() / log_like * 100.0,
            TARGET_SHARE_OF_RAW * 100.0,
            verdict(share >= TARGET_SHARE_OF_RAW && run.errors == 0)
        );
    }
    for result in &latencies {
        let target = if result.history == 100 {
            format!(
                "   target p99 < {}: {}",
                ms(TARGET_P99_AT_100).trim(),
                verdict(result.execute.p99 < TARGET_P99_AT_100)
            )
        } else {
            String::new()
        };
        let apart = if result.gap > 0 {
            format!(", {} apart", result.gap)
        } else {
            String::new()
        };
        println!(
            "(c)  execute at {:>5} prior commits{apart:<12}: p50 {}  p99 {}  max {}{target}",
            result.history,
            ms(result.execute.p50),
            ms(result.execute.p99),
            ms(result.execute.max)
        );
    }
    if !settings.histories.contains(&100) {
        println!(
            "(c)  target p99 < 5 ms at 100 prior commits: not measured (100 not in BENCH_HISTORIES)"
        );
    }
    let errors = [&raw_before, &raw_after, &b1, &b2]
        .into_iter()
        .chain(&diagnostics)
        .map(|run| run.errors)
        .sum::<usize>();
    if errors > 0 {
        return Err(format!("{errors} operations failed (see above)").into());
    }
    Ok(())
}

fn print_percentiles(label: &str, p: &Percentiles) {
    println!(
        "{label:<36} p50 {}  p90 {}  p99 {}  max {}  mean {}",
        ms(p.p50),
        ms(p.p90),
        ms(p.p99),
        ms(p.max),
        ms(p.mean)
    );
}

async fn check_count(js: &jetstream::Context, stream: &str, ok: usize) -> Result<(), BoxError> {
    let stored = stream_messages(js, stream).await?;
    if stored != ok as u64 {
        return Err(format!("{stream} holds {stored} messages, {ok} were acknowledged").into());
    }
    Ok(())
}

fn expect_delta(before: u64, after: u64, ok: usize) -> Result<(), BoxError> {
    if after - before != ok as u64 {
        return Err(format!(
            "the events stream grew by {} messages, {ok} commits were acknowledged",
            after - before
        )
        .into());
    }
    Ok(())
}
