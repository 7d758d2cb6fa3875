//! Test harness: an isolated event log per test on the real NATS server
//! (a unique prefix, streams deleted afterwards) and a small counter
//! aggregate.

#![allow(dead_code)]

use std::time::Duration;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use wablast_eventstore::{EventLog, EventLogConfig, Prefix, StreamSpec};
pub use wablast_tests::{PrivateNats, nats_url, unique_prefix};

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
        Self::with_prefix(url, &unique_prefix()).await
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
        wablast_tests::delete_streams(&self.url, self.log.prefix().as_str());
    }
}

/// A counter: the smallest aggregate with a rule.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
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
