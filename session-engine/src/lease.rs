//! Who runs which session: engines announce themselves with a heartbeat,
//! and a session is run by the engine holding its lease. Both live in
//! JetStream KV buckets whose entries expire when they are not rewritten
//! ([`SessionLeases::ttl`]), so when an engine stops or dies its heartbeat
//! and leases disappear within one TTL and another engine takes the
//! sessions over.
//!
//! A lease is a KV entry `session id → engine id`. Taking one is an atomic
//! create (it fails while another engine's lease lives); keeping it is an
//! update that names the revision it last wrote, so an engine that lost its
//! lease (it expired while the engine was stalled, and another took it)
//! finds out at its next renewal instead of running the session twice.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use wablast_eventstore::{EventStoreError, Prefix, ensure_expiring_key_value};

/// The lease bucket of an installation: `<prefix>_SESSION_LEASES`.
pub fn leases_bucket(prefix: &Prefix) -> String {
    prefix.stream_name("session_leases")
}

/// The heartbeat bucket of an installation: `<prefix>_ENGINES`.
pub fn engines_bucket(prefix: &Prefix) -> String {
    prefix.stream_name("engines")
}

/// An entry that is not what this module writes.
fn malformed(revision: u64) -> impl Fn(serde_json::Error) -> EventStoreError {
    move |source| EventStoreError::Malformed {
        sequence: revision,
        source,
    }
}

/// A lease held by this engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The session it is for.
    pub session: String,
    /// The revision this engine last wrote: a renewal must find it.
    revision: u64,
}

/// What a lease entry holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseHolder {
    /// The engine holding it.
    pub engine: String,
    /// When it was last renewed.
    pub renewed_at: DateTime<Utc>,
}

/// The leases of one engine.
#[derive(Clone)]
pub struct SessionLeases {
    store: kv::Store,
    engine: String,
    ttl: Duration,
}

impl std::fmt::Debug for SessionLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLeases")
            .field("engine", &self.engine)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SessionLeases {
    /// The leases of `engine`, in the installation's lease bucket (created
    /// with `ttl` when missing). Every engine of an installation must use
    /// the same TTL: it is the bucket's.
    pub async fn open(
        js: &jetstream::Context,
        prefix: &Prefix,
        engine: &str,
        ttl: Duration,
    ) -> Result<Self, EventStoreError> {
        let store = ensure_expiring_key_value(
            js,
            &leases_bucket(prefix),
            "wablast session leases: which engine runs which session",
            ttl,
        )
        .await?;
        Ok(Self {
            store,
            engine: engine.to_owned(),
            ttl,
        })
    }

    /// How long a lease lives without renewal.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How often to renew: three times per TTL, so one late renewal does
    /// not lose the lease.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    fn holder(&self) -> bytes::Bytes {
        serde_json::to_vec(&LeaseHolder {
            engine: self.engine.clone(),
            renewed_at: Utc::now(),
        })
        .expect("a lease serializes")
        .into()
    }

    /// Takes the session's lease if nobody holds it.
    ///
    /// # Returns
    /// The lease, or `None` while another engine's lease lives.
    pub async fn acquire(&self, session: &str) -> Result<Option<Lease>, EventStoreError> {
        match self.store.create(session, self.holder()).await {
            Ok(revision) => Ok(Some(Lease {
                session: session.to_owned(),
                revision,
            })),
            Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => {
                // Our own lease from before a restart of this engine (same
                // id) is ours to take back.
                match self.current(session).await? {
                    Some((holder, revision)) if holder.engine == self.engine => {
                        self.take_back(session, revision).await
                    }
                    _ => Ok(None),
                }
            }
            Err(err) => Err(EventStoreError::nats(err)),
        }
    }

    async fn take_back(
        &self,
        session: &str,
        revision: u64,
    ) -> Result<Option<Lease>, EventStoreError> {
        match self.store.update(session, self.holder(), revision).await {
            Ok(revision) => Ok(Some(Lease {
                session: session.to_owned(),
                revision,
            })),
            Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(err) => Err(EventStoreError::nats(err)),
        }
    }

    /// Renews a lease.
    ///
    /// # Returns
    /// Whether it is still held: `false` when it expired and another engine
    /// took it (stop running the session).
    pub async fn renew(&self, lease: &mut Lease) -> Result<bool, EventStoreError> {
        match self
            .store
            .update(&lease.session, self.holder(), lease.revision)
            .await
        {
            Ok(revision) => {
                lease.revision = revision;
                Ok(true)
            }
            Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(err) => Err(EventStoreError::nats(err)),
        }
    }

    /// Gives a lease up (the session stopped here): another engine may take
    /// it at once. A lease already lost is left alone.
    pub async fn release(&self, lease: Lease) -> Result<(), EventStoreError> {
        match self
            .store
            .delete_expect_revision(&lease.session, Some(lease.revision))
            .await
        {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == kv::DeleteErrorKind::WrongLastRevision => Ok(()),
            Err(err) => Err(EventStoreError::nats(err)),
        }
    }

    /// Who holds the session's lease now, and at which revision.
    pub async fn current(
        &self,
        session: &str,
    ) -> Result<Option<(LeaseHolder, u64)>, EventStoreError> {
        let Some(entry) = self
            .store
            .entry(session)
            .await
            .map_err(EventStoreError::nats)?
        else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        let holder = serde_json::from_slice(&entry.value).map_err(malformed(entry.revision))?;
        Ok(Some((holder, entry.revision)))
    }
}

/// What an engine says about itself in its heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineInfo {
    /// Its id.
    pub engine: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it last said it is alive.
    pub heartbeat_at: DateTime<Utc>,
    /// How many sessions it runs.
    pub sessions: usize,
}

/// The engines of an installation, each alive while its heartbeat is
/// younger than the bucket's TTL.
#[derive(Clone)]
pub struct EngineRegistry {
    store: kv::Store,
}

impl std::fmt::Debug for EngineRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineRegistry").finish_non_exhaustive()
    }
}

impl EngineRegistry {
    /// The installation's registry (created with `ttl` when missing).
    pub async fn open(
        js: &jetstream::Context,
        prefix: &Prefix,
        ttl: Duration,
    ) -> Result<Self, EventStoreError> {
        let store = ensure_expiring_key_value(
            js,
            &engines_bucket(prefix),
            "wablast session engines and their heartbeats",
            ttl,
        )
        .await?;
        Ok(Self { store })
    }

    /// Says `info.engine` is alive.
    pub async fn heartbeat(&self, info: &EngineInfo) -> Result<(), EventStoreError> {
        let value = serde_json::to_vec(info).map_err(malformed(0))?;
        self.store
            .put(&info.engine, value.into())
            .await
            .map_err(EventStoreError::nats)?;
        Ok(())
    }

    /// Says `engine` left (a clean stop).
    pub async fn leave(&self, engine: &str) -> Result<(), EventStoreError> {
        self.store
            .delete(engine)
            .await
            .map_err(EventStoreError::nats)
    }

    /// The engines alive now.
    pub async fn live(&self) -> Result<Vec<EngineInfo>, EventStoreError> {
        use futures::TryStreamExt;
        let keys: Vec<String> = self
            .store
            .keys()
            .await
            .map_err(EventStoreError::nats)?
            .try_collect()
            .await
            .map_err(EventStoreError::nats)?;
        let mut engines = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(entry) = self
                .store
                .entry(&key)
                .await
                .map_err(EventStoreError::nats)?
                && entry.operation == kv::Operation::Put
            {
                engines
                    .push(serde_json::from_slice(&entry.value).map_err(malformed(entry.revision))?);
            }
        }
        engines.sort_by(|a: &EngineInfo, b| a.engine.cmp(&b.engine));
        Ok(engines)
    }
}
