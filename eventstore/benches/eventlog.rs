//! Throughput and latency of the event log against a live nats-server.
//!
//! One run prints, on the same server:
//!
//! - (a) raw JetStream publish-with-ack rate, pipelined (the reference);
//! - (b) commits/s for new aggregates, many in flight: (b1) `EventLog::append`,
//!   (b2) `CommandHandler::execute`, (b3) cqrs-es `CqrsFramework::execute` over
//!   `JetStreamEventRepository`, each as a % of (a);
//! - (c) latency of one `CommandHandler::execute` (load, decide, commit) on
//!   aggregates with 10, 100 and 1,000 prior commits.
//!
//! ```text
//! cargo bench -p wablast-eventstore --bench eventlog
//! BENCH_QUICK=1 cargo bench -p wablast-eventstore --bench eventlog
//! ```
//!
//! Environment: `NATS_URL` (default `nats://127.0.0.1:4222`), `BENCH_QUICK=1`
//! (small sizes, for smoke runs), `BENCH_MESSAGES` (messages of (a)),
//! `BENCH_AGGREGATES` (new aggregates of each (b) run), `BENCH_WINDOW` (acks in
//! flight in (a)), `BENCH_CONCURRENCY` (tasks in (b)), `BENCH_SAMPLES` (per
//! history length in (c)), `BENCH_HISTORIES` (comma separated prior commit
//! counts for (c)), `BENCH_EVENT_PAD` (bytes of padding in each event).
//!
//! Every stream is created under a fresh prefix (`bench<8 hex>`) and deleted
//! at the end, also when a phase fails.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{
    self, context::PublishAckFuture, message::PublishMessage, stream::Config as StreamConfig,
    stream::StorageType,
};
use bytes::Bytes;
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, CqrsFramework, DomainEvent};
use futures::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use uuid::Uuid;
use wablast_eventstore::log::EVENT_TYPES_HEADER;
use wablast_eventstore::{
    Actor, AggregateKey, CommandHandler, CommandMetadata, Commit, EventLog, EventLogConfig,
    JetStreamEventRepository, Prefix, StreamSpec,
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
#[derive(Debug, Default, Serialize, Deserialize)]
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
    event_pad: usize,
}

impl Settings {
    fn from_env() -> Result<Self, BoxError> {
        let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
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

/// The outcome of a throughput run.
struct Throughput {
    ok: usize,
    errors: usize,
    first_error: Option<String>,
    elapsed: Duration,
    /// Per-operation latencies, when measured.
    latencies: Vec<Duration>,
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
    total
}

// ---------------------------------------------------------------------------
// (a) Raw JetStream publishing.
// ---------------------------------------------------------------------------

/// How the raw messages are published.
#[derive(Clone, Copy, PartialEq)]
enum RawMode {
    /// One subject, no headers: the plain reference.
    Plain,
    /// What `EventLog::append` sends: a subject per message, a `Nats-Msg-Id`,
    /// `Nats-Expected-Last-Subject-Sequence: 0` and the event types header.
    LogLike,
}

fn raw_message(prefix: &str, mode: RawMode, i: usize, payload: &Bytes) -> (String, PublishMessage) {
    let message = PublishMessage::build().payload(payload.clone());
    match mode {
        RawMode::Plain => (format!("{prefix}.raw.all"), message),
        RawMode::LogLike => {
            let subject = format!("{prefix}.raw.m{i:06}");
            let message = message
                .message_id(format!("{}@{subject}", Uuid::now_v7()))
                .expected_last_subject_sequence(0)
                .header(EVENT_TYPES_HEADER, "Added");
            (subject, message)
        }
    }
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
    Throughput {
        ok,
        errors,
        first_error,
        elapsed: start.elapsed(),
        latencies: Vec::new(),
    }
}

/// Publishes `n` messages from `concurrency` tasks, each awaiting its ack
/// before publishing the next: the concurrency model of (b).
async fn raw_tasks(
    js: &jetstream::Context,
    prefix: &str,
    n: usize,
    concurrency: usize,
    payload: &Bytes,
) -> Throughput {
    let js = js.clone();
    let prefix = prefix.to_owned();
    let payload = payload.clone();
    run_concurrently(n, concurrency, move |i| {
        let js = js.clone();
        let (subject, message) = raw_message(&prefix, RawMode::LogLike, i, &payload);
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
    note: &str,
) -> Result<Vec<AggregateKey>, BoxError> {
    let keys = (0..aggregates)
        .map(|i| key(label, i))
        .collect::<Result<Vec<_>, _>>()?;
    let mut tasks = JoinSet::new();
    for key in keys.clone() {
        let log = log.clone();
        let note = note.to_owned();
        tasks.spawn(async move {
            let mut last = 0;
            for sequence in 1..=commits as u64 {
                let commit = added_commit(&key, sequence, &note)?;
                last = log.append(last, &commit).await?;
            }
            Ok::<_, BoxError>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    Ok(keys)
}

/// How many aggregates to spread `samples` commands over so that each one's
/// history grows by at most a tenth (at least one commit) while sampled.
fn aggregates_for(history: usize, samples: usize) -> usize {
    let growth = (history / 10).max(1);
    samples.div_ceil(growth).max(1)
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
    aggregates: usize,
    execute: Percentiles,
    load: Percentiles,
    last_commit: Percentiles,
}

async fn latency_at(
    handler: &CommandHandler<Counter>,
    history: usize,
    samples: usize,
    note: &str,
) -> Result<LatencyResult, BoxError> {
    let aggregates = aggregates_for(history, samples);
    let label = format!("c{history}");
    let seeding = Instant::now();
    let keys = seed(handler.log(), &label, aggregates, history, note).await?;
    println!(
        "  seeded {aggregates} aggregate(s) x {history} commits in {:.2} s (not timed)",
        seeding.elapsed().as_secs_f64()
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

    // Load only, before any command, so that every load sees exactly
    // `history` commits.
    let mut load = Vec::with_capacity(samples);
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
        aggregates,
        execute: Percentiles::of(execute),
        load: Percentiles::of(load),
        last_commit: Percentiles::of(last_commit),
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
    println!("\n-- (a) raw JetStream publish with ack (send_publish, fresh file stream) --");
    let raw_name = raw_stream(&js, prefix, "RAW_A", streams).await?;
    let raw = raw_windowed(
        &js,
        prefix,
        RawMode::Plain,
        settings.messages,
        settings.window,
        &payload,
    )
    .await;
    raw.print(&format!(
        "(a)  one subject, no headers, window {}",
        settings.window
    ));
    check_count(&js, &raw_name, raw.ok).await?;
    drop_stream(&js, streams, &raw_name).await;

    println!("   diagnostics (what the log sends, same server):");
    let raw_name = raw_stream(&js, prefix, "RAW_HDR", streams).await?;
    let raw_hdr = raw_windowed(
        &js,
        prefix,
        RawMode::LogLike,
        settings.messages,
        settings.window,
        &payload,
    )
    .await;
    raw_hdr.print(&format!(
        "(a') subject/msg, msg-id, expected-last-subj-seq, window {}",
        settings.window
    ));
    check_count(&js, &raw_name, raw_hdr.ok).await?;
    drop_stream(&js, streams, &raw_name).await;

    let raw_name = raw_stream(&js, prefix, "RAW_TASKS", streams).await?;
    let raw_tasks = raw_tasks(
        &js,
        prefix,
        settings.messages,
        settings.concurrency,
        &payload,
    )
    .await;
    raw_tasks.print(&format!(
        "(a\") as (a'), {} tasks each awaiting its ack",
        settings.concurrency
    ));
    check_count(&js, &raw_name, raw_tasks.ok).await?;
    drop_stream(&js, streams, &raw_name).await;

    // (b)
    let events_stream = log.stream_name_of(Counter::TYPE)?.to_owned();
    let services = || CounterServices { note: note.clone() };
    println!(
        "\n-- (b) commits/s for NEW aggregates, one commit each, {} concurrent tasks --",
        settings.concurrency
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

    let cqrs = Arc::new(CqrsFramework::new(
        PersistedEventStore::<_, Counter>::new_event_store(JetStreamEventRepository::new(
            log.clone(),
        )),
        Vec::new(),
        services(),
    ));
    let b3 = {
        let cqrs = cqrs.clone();
        run_concurrently(settings.aggregates, settings.concurrency, move |i| {
            let cqrs = cqrs.clone();
            async move {
                let key = key("b3", i).map_err(|e| e.to_string())?;
                let metadata = CommandMetadata::new(Actor::System).to_map();
                cqrs.execute_with_metadata(
                    &key.to_framework_id(),
                    CounterCommand::Add { n: 1 },
                    metadata,
                )
                .await
                .map_err(|e| e.to_string())
            }
        })
        .await
    };
    b3.print("(b3) cqrs-es CqrsFramework over JetStreamEventRepository");
    let after_b3 = stream_messages(&js, &events_stream).await?;
    expect_delta(after_b2, after_b3, b3.ok)?;

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
    for &history in &settings.histories {
        println!("history {history}:");
        let result = latency_at(&handler, history, settings.samples, &note).await?;
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
        print_percentiles("  last_commit only (diagnostic)", &result.last_commit);
        latencies.push(result);
    }

    // Summary.
    println!("\n== summary (targets from the issue) ==");
    println!(
        "machine: {cores} core(s), nats-server {} (client and server share the machine)",
        server.version
    );
    println!(
        "(a)  raw publish-with-ack, pipelined:            {:>9.0} msgs/s   (reference)",
        raw.per_sec()
    );
    for (label, run) in [
        ("(b1) EventLog::append, new aggregates:        ", &b1),
        ("(b2) CommandHandler::execute, new aggregates: ", &b2),
        ("(b3) CqrsFramework (cqrs-es), new aggregates: ", &b3),
    ] {
        let share = run.per_sec() / raw.per_sec();
        println!(
            "{label}   {:>9.0} commits/s = {:5.1}% of (a)   target >= {:.0}%: {}",
            run.per_sec(),
            share * 100.0,
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
        println!(
            "(c)  execute at {:>5} prior commits: p50 {}  p99 {}  max {}{target}",
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
    let errors = raw.errors + raw_hdr.errors + raw_tasks.errors + b1.errors + b2.errors + b3.errors;
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
