//! Configuration from environment variables (or the matching flags), with
//! defaults that work on a laptop running PostgreSQL and NATS locally.

use std::net::SocketAddr;
use std::time::Duration;

use wablast_eventstore::{EventLogConfig, EventStoreError, Prefix, StreamSpec};

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    Pretty,
    /// One JSON object per line, for a log collector.
    Json,
}

/// Settings shared by every subcommand.
#[derive(Clone, Debug, clap::Args)]
pub struct Settings {
    /// PostgreSQL holding the query tables; the database is created if
    /// missing.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/wablast"
    )]
    pub database_url: String,

    /// NATS server with JetStream enabled.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// Prefix of every stream, subject and KV bucket name, so several
    /// installations or test runs can share one NATS server.
    #[arg(long, env = "WABLAST_NATS_PREFIX", default_value = "wablast")]
    pub nats_prefix: String,

    /// Address the HTTP API listens on.
    #[arg(long, env = "WABLAST_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Log format.
    #[arg(long, env = "WABLAST_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,

    /// Days message events (which hold message content) are kept in the log.
    #[arg(long, env = "WABLAST_MESSAGE_RETENTION_DAYS", default_value_t = 14,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub message_retention_days: u32,

    /// `/readyz` says not ready while a projection is more than this many
    /// commits behind the log.
    #[arg(long, env = "WABLAST_READY_MAX_LAG", default_value_t = 10_000)]
    pub ready_max_lag: u64,

    /// `/readyz` says not ready while the oldest commit a projection has not
    /// applied is older than this many seconds.
    #[arg(long, env = "WABLAST_READY_MAX_LAG_SECONDS", default_value_t = 30)]
    pub ready_max_lag_seconds: u64,
}

/// Aggregate types kept forever: one stream. A type added here is added to
/// the stream's subjects at the next start.
pub fn long_lived_aggregates() -> [&'static str; 6] {
    use cqrs_es::Aggregate;
    use wablast_domain::{campaign, plan, schedule, session, session_day, wallet};
    [
        session::Session::TYPE,
        session_day::SessionDay::TYPE,
        schedule::Schedule::TYPE,
        plan::Plan::TYPE,
        wallet::Wallet::TYPE,
        campaign::Campaign::TYPE,
    ]
}

/// Per-recipient message aggregates: a stream of their own with a retention
/// (privacy, and ~180 bytes of server memory per subject).
pub fn message_aggregates() -> [&'static str; 1] {
    use cqrs_es::Aggregate;
    [wablast_domain::message::Message::TYPE]
}

impl Settings {
    /// How the event log is laid out on the NATS server.
    pub fn event_log(&self) -> Result<EventLogConfig, EventStoreError> {
        let retention = Duration::from_secs(u64::from(self.message_retention_days) * 24 * 3600);
        Ok(EventLogConfig::new(
            Prefix::parse(&self.nats_prefix)?,
            vec![
                StreamSpec::kept_forever("events", &long_lived_aggregates()),
                StreamSpec::with_retention("messages", &message_aggregates(), retention),
            ],
        ))
    }
}
