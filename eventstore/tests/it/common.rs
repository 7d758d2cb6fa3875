//! Test harness: an isolated event log per test on the real NATS server
//! (a unique prefix, streams deleted afterwards), a private nats-server for
//! tests that restart it, and a small counter aggregate.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use wablast_eventstore::{EventLog, EventLogConfig, Prefix, StreamSpec};

/// The NATS server the tests use (`NATS_URL`, default the local one).
pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// An event log with a prefix of its own; its streams are deleted on drop.
pub struct TestLog {
    pub log: EventLog,
    pub client: async_nats::Client,
    url: String,
}

impl TestLog {
    pub async fn new() -> Self {
        Self::on(&nats_url()).await
    }

    pub async fn on(url: &str) -> Self {
        let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
        Self::with_prefix(url, &prefix).await
    }

    pub async fn with_prefix(url: &str, prefix: &str) -> Self {
        let client = async_nats::connect(url).await.expect("NATS reachable");
        let log = open_log(client.clone(), prefix).await;
        Self {
            log,
            client,
            url: url.to_owned(),
        }
    }
}

pub async fn open_log(client: async_nats::Client, prefix: &str) -> EventLog {
    EventLog::open(
        client,
        EventLogConfig::new(
            Prefix::parse(prefix).unwrap(),
            vec![
                StreamSpec::kept_forever("events", &["counter"]),
                StreamSpec::with_retention("messages", &["message"], Duration::from_secs(3600)),
            ],
        ),
    )
    .await
    .expect("event log opens")
}

impl Drop for TestLog {
    fn drop(&mut self) {
        let url = self.url.clone();
        let streams: Vec<String> = self.log.stream_names().map(str::to_owned).collect();
        // Drop cannot await: clean up on a runtime of our own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                if let Ok(client) = async_nats::connect(&url).await {
                    let js = async_nats::jetstream::new(client);
                    for stream in streams {
                        let _ = js.delete_stream(&stream).await;
                    }
                }
            });
        })
        .join();
    }
}

/// A nats-server of the test's own, on a free port, storing in `store`.
/// Killed on drop.
pub struct PrivateNats {
    child: Child,
    pub port: u16,
}

impl PrivateNats {
    pub fn start(store: &Path, port: Option<u16>) -> Self {
        let port = port.unwrap_or_else(|| {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        });
        let binary = [
            "nats-server",
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
        ]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())
        .expect("nats-server installed (scripts/services.sh installs it)");
        let child = Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nats-server did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn stop(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A counter: the smallest aggregate with a rule.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Counter {
    pub total: i64,
    pub adds: u64,
}

#[derive(Debug, Clone)]
pub enum CounterCommand {
    /// Adds `n`; refused when the total would go negative.
    Add(i64),
    /// Adds `n` twice, as two events of one command.
    AddTwice(i64),
    /// Decides nothing.
    Nothing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CounterEvent {
    Added { n: i64, total: i64 },
}

impl DomainEvent for CounterEvent {
    fn event_type(&self) -> String {
        "Added".into()
    }
    fn event_version(&self) -> String {
        "1.0".into()
    }
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum CounterError {
    #[error("total would go negative")]
    Negative,
}

impl Aggregate for Counter {
    const TYPE: &'static str = "counter";
    type Command = CounterCommand;
    type Event = CounterEvent;
    type Error = CounterError;
    type Services = ();

    async fn handle(
        &mut self,
        command: CounterCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), CounterError> {
        let (n, times) = match command {
            CounterCommand::Add(n) => (n, 1),
            CounterCommand::AddTwice(n) => (n, 2),
            CounterCommand::Nothing => return Ok(()),
        };
        for _ in 0..times {
            if self.total + n < 0 {
                return Err(CounterError::Negative);
            }
            let total = self.total + n;
            sink.write(CounterEvent::Added { n, total }, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: CounterEvent) {
        match event {
            CounterEvent::Added { total, .. } => {
                self.total = total;
                self.adds += 1;
            }
        }
    }
}
