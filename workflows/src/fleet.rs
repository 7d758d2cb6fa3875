//! The installation's session engines, as they say themselves: each
//! writes a heartbeat ([`EngineInfo`]) into a KV bucket whose entries
//! expire one lease TTL after their last write, so an engine that died is
//! gone from it within that time. The engines write it; the API reads it
//! to say whether the engine running a session is still alive.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use wablast_eventstore::{EventStoreError, Prefix, ensure_expiring_key_value};

/// The heartbeat bucket of an installation: `<prefix>_ENGINES`.
pub fn engines_bucket(prefix: &Prefix) -> String {
    prefix.stream_name("engines")
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
        let value = serde_json::to_vec(info).map_err(EventStoreError::malformed_at(0))?;
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

    /// The registry if any engine of the installation ever ran (the bucket
    /// exists); `None` otherwise. For readers: it creates nothing.
    pub async fn find(
        js: &jetstream::Context,
        prefix: &Prefix,
    ) -> Result<Option<Self>, EventStoreError> {
        use jetstream::context::GetStreamErrorKind;
        let bucket = engines_bucket(prefix);
        match js.get_key_value(&bucket).await {
            Ok(store) => Ok(Some(Self { store })),
            // Which failure it was is asked only on this path: the bucket
            // missing, or NATS away.
            Err(err) => match js.get_stream(format!("KV_{bucket}")).await {
                Err(missing)
                    if matches!(missing.kind(), GetStreamErrorKind::JetStream(e)
                        if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
                {
                    Ok(None)
                }
                _ => Err(EventStoreError::nats(err)),
            },
        }
    }

    /// Whether `engine` is alive: its heartbeat has not expired.
    pub async fn is_alive(&self, engine: &str) -> Result<bool, EventStoreError> {
        let entry = self
            .store
            .entry(engine)
            .await
            .map_err(EventStoreError::nats)?;
        Ok(entry.is_some_and(|e| e.operation == kv::Operation::Put))
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
                engines.push(
                    serde_json::from_slice(&entry.value)
                        .map_err(EventStoreError::malformed_at(entry.revision))?,
                );
            }
        }
        engines.sort_by(|a: &EngineInfo, b| a.engine.cmp(&b.engine));
        Ok(engines)
    }
}
