//! Folds of the event log into PostgreSQL query tables.
//!
//! Each [`Projection`] owns some tables (`migrations/sql`) and folds the
//! events of some aggregate types into them. A [`Projector`] reads each
//! stream through one durable JetStream consumer for all the projections of
//! it, in batches: a batch's rows and a projection's checkpoint (the stream
//! sequence of the last commit applied, `projection_checkpoint`) are written
//! in one Postgres transaction, and only then acknowledged. A crash between
//! the two, or a redelivery, brings back commits at or below the
//! checkpoint, which are skipped: nothing is skipped, nothing applied twice.
//!
//! # Layout
//!
//! - [`Projection`], [`all`], [`by_name`], [`NAMES`]: the projections.
//! - [`runner`]: the projections of one stream: leadership, consumer, batches.
//! - [`Projector`]: every projection, live ([`Projector::run`]) or up to now
//!   ([`Projector::catch_up`]).
//! - [`rebuild`]: a projection rebuilt from sequence 0 into fresh tables
//!   while the live ones serve, then swapped in one transaction.
//! - [`lag`]: how far behind each projection is.
//! - [`wait`]: read-your-writes: wait (bounded) until projections reach a
//!   position of the log.
//! - [`queries`]: the reads the API makes, every one scoped to a tenant.
//! - `folds`: the projections themselves.

#![deny(missing_docs)]

pub mod checkpoint;
mod copy;
mod error;
pub mod event_data;
mod folds;
pub mod lag;
pub mod queries;
pub mod rebuild;
mod rows;
mod runner;
pub mod wait;

use std::sync::Arc;

use async_trait::async_trait;
use cqrs_es::persist::EventUpcaster;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use wablast_eventstore::{EventLog, Prefix, RecordedEvent};

pub use error::ProjectionError;
pub use runner::RunnerOptions;

pub use wablast_domain::layout::LogStream;

/// A stream's JetStream name under the log's prefix.
pub trait StreamName {
    /// The JetStream stream's full name under a prefix.
    fn full_name(self, prefix: &Prefix) -> String;
}

impl StreamName for LogStream {
    fn full_name(self, prefix: &Prefix) -> String {
        prefix.stream_name(self.name())
    }
}

/// A stream's subject `<prefix>.ev.*.<type>.*` narrowed to one tenant, for
/// a consumer that reads only that tenant's commits; `None` for a subject
/// that is not an aggregate type's.
pub fn tenant_filter(stream_subject: &str, tenant: &str) -> Option<String> {
    let mut tokens: Vec<&str> = stream_subject.split('.').collect();
    if tokens.len() != 5 || tokens[1] != "ev" || tokens[2] != "*" {
        return None;
    }
    tokens[2] = tenant;
    Some(tokens.join("."))
}

#[cfg(test)]
mod subject_tests {
    use super::*;

    #[test]
    fn stream_subjects_narrow_to_one_tenant() {
        assert_eq!(
            tenant_filter("wablast.ev.*.session.*", "t1").as_deref(),
            Some("wablast.ev.t1.session.*")
        );
        assert_eq!(tenant_filter("wablast.dlq.>", "t1"), None);
    }
}

/// A fold of events into query tables.
#[async_trait]
pub trait Projection: Send + Sync {
    /// Its name: the checkpoint's key and `wablast replay --projection`.
    fn name(&self) -> &'static str;

    /// The streams it reads.
    fn streams(&self) -> &'static [LogStream];

    /// The aggregate types it folds; others are skipped without decoding
    /// (and, for a projection of one type catching up, not even
    /// delivered). `None`: every type.
    fn aggregate_types(&self) -> Option<&'static [&'static str]>;

    /// The tables it owns (rebuilt and swapped together).
    fn tables(&self) -> &'static [&'static str];

    /// Folds a batch of events, in log order, into its tables inside the
    /// caller's transaction. Every event is one of its aggregate types and
    /// above its checkpoint on `stream`, and a batch never splits a commit. The result must not depend on where batches
    /// begin and end.
    async fn apply(
        &self,
        conn: &mut PgConnection,
        stream: LogStream,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError>;

    /// Whether it reads the events' payloads (`false`: they are not even
    /// parsed, and arrive as `null`).
    fn needs_payloads(&self) -> bool {
        true
    }

    /// Whether it only ever inserts rows (never reads, updates or deletes
    /// them): a rebuild then adds the tables' keys after loading them.
    fn insert_only(&self) -> bool {
        false
    }

    /// Whether it folds events of this aggregate type.
    fn folds(&self, aggregate_type: &str) -> bool {
        self.aggregate_types()
            .is_none_or(|types| types.contains(&aggregate_type))
    }
}

/// Every projection's name, in the order they are run and rebuilt.
pub const NAMES: &[&str] = &[
    "sessions",
    "campaigns",
    "messages",
    "wallets",
    "schedules",
    "plans",
    "inbound",
    "chats",
    "auto_replies",
    "list_checks",
    "orders",
    "members",
    "event_index",
    "stats",
    "engagement",
];

/// Every projection that is rebuilt from the log at will.
pub fn all() -> Vec<Arc<dyn Projection>> {
    NAMES.iter().filter_map(|name| by_name(name)).collect()
}

/// Every projection a projector runs: [`all`], and the webhook outbox,
/// which queues deliveries and is never rebuilt (a rebuild would deliver
/// the whole log again).
pub fn live() -> Vec<Arc<dyn Projection>> {
    let mut projections = all();
    projections.push(Arc::new(folds::webhook_outbox::WebhookOutbox));
    projections
}

/// A projection by its name.
pub fn by_name(name: &str) -> Option<Arc<dyn Projection>> {
    Some(match name {
        "sessions" => Arc::new(folds::sessions::Sessions),
        "campaigns" => Arc::new(folds::campaigns::Campaigns),
        "messages" => Arc::new(folds::messages::Messages),
        "wallets" => Arc::new(folds::wallets::Wallets),
        "schedules" => Arc::new(folds::schedules::Schedules),
        "plans" => Arc::new(folds::plans::Plans),
        "inbound" => Arc::new(folds::inbound::Inbounds),
        "chats" => Arc::new(folds::chats::Chats),
        "auto_replies" => Arc::new(folds::auto_replies::AutoReplies),
        "list_checks" => Arc::new(folds::list_checks::ListChecks),
        "orders" => Arc::new(folds::orders::Orders),
        "members" => Arc::new(folds::members::Members),
        "event_index" => Arc::new(folds::event_index::EventIndex),
        "stats" => Arc::new(folds::stats::Stats),
        "engagement" => Arc::new(folds::engagement::Engagement),
        _ => return None,
    })
}

/// Runs projections against one event log and one database.
#[derive(Clone)]
pub struct Projector {
    pool: PgPool,
    log: EventLog,
    projections: Vec<Arc<dyn Projection>>,
    options: RunnerOptions,
    upcasters: Upcasters,
}

/// Upcasters applied to every event before it is folded.
pub(crate) type Upcasters = Arc<Vec<Box<dyn EventUpcaster>>>;

impl Projector {
    /// Every projection, with default options.
    pub fn new(pool: PgPool, log: EventLog) -> Self {
        Self {
            pool,
            log,
            projections: live(),
            options: RunnerOptions::default(),
            upcasters: Arc::new(wablast_domain::upcasters()),
        }
    }

    /// Other upcasters than the domain's ([`wablast_domain::upcasters`]).
    pub fn with_upcasters(mut self, upcasters: Vec<Box<dyn EventUpcaster>>) -> Self {
        self.upcasters = Arc::new(upcasters);
        self
    }

    /// Only these projections.
    pub fn with_projections(mut self, projections: Vec<Arc<dyn Projection>>) -> Self {
        self.projections = projections;
        self
    }

    /// Other batch sizes, consumer names or back-off.
    pub fn with_options(mut self, options: RunnerOptions) -> Self {
        self.options = options;
        self
    }

    /// The projections it runs.
    pub fn projections(&self) -> &[Arc<dyn Projection>] {
        &self.projections
    }

    /// Runs every projection on every stream it reads until `shutdown` is
    /// cancelled (`Ok`) or one of them cannot go on (`Err`, after stopping
    /// the others): an event it cannot read is never skipped.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), ProjectionError> {
        self.run_until(shutdown, false).await.map(|_| ())
    }

    /// Runs every projection until it has applied everything up to the
    /// streams' last sequences as of the call.
    ///
    /// # Returns
    /// How many events were applied.
    pub async fn catch_up(&self) -> Result<u64, ProjectionError> {
        self.run_until(CancellationToken::new(), true).await
    }

    async fn run_until(
        &self,
        shutdown: CancellationToken,
        stop_when_caught_up: bool,
    ) -> Result<u64, ProjectionError> {
        let stop_all = shutdown.child_token();
        let mut tasks = tokio::task::JoinSet::new();
        // One runner per stream, for every projection that reads it: each
        // commit is delivered and decoded once.
        for stream in LogStream::ALL {
            let readers: Vec<_> = self
                .projections
                .iter()
                .filter(|p| p.streams().contains(&stream))
                .cloned()
                .collect();
            if readers.is_empty() {
                continue;
            }
            let runner = runner::Runner::new(
                self.pool.clone(),
                self.log.clone(),
                readers,
                stream,
                self.options.clone(),
                self.upcasters.clone(),
            );
            let stop = stop_all.clone();
            tasks.spawn(async move {
                let result = if stop_when_caught_up {
                    runner.catch_up(stop.clone()).await
                } else {
                    runner.run(stop.clone()).await
                };
                if result.is_err() {
                    stop.cancel();
                }
                result
            });
        }
        let mut applied = 0;
        let mut failure = None;
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(n)) => applied += n,
                Ok(Err(err)) => {
                    stop_all.cancel();
                    failure.get_or_insert(err);
                }
                Err(panic) => {
                    stop_all.cancel();
                    failure.get_or_insert(ProjectionError::Stopped(panic.to_string()));
                }
            }
        }
        match failure {
            Some(err) => Err(err),
            None => Ok(applied),
        }
    }
}
