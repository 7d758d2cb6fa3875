//! The installation's session engines, as they say themselves: each
//! writes a heartbeat ([`EngineInfo`]) into a KV bucket whose entries
//! expire one lease TTL after their last write, so an engine that died is
//! gone from it within that time. The engines write it; the API reads it
//! to say whether the engine running a session is still alive, and to show
//! the operator the fleet.
//!
//! The operator steers the fleet through [`FleetControl`] (a KV bucket of
//! drained engines and pinned sessions) and requests on
//! [`fleet_subject`]s answered by the engines themselves:
//! - **drain**: an engine marked drained hands its sessions, one by one,
//!   to the others and takes none until undrained;
//! - **move**: the engine holding a session hands it to another;
//! - **placement** ([`place`]): a session that needs an engine goes to the
//!   least-loaded live one that is not drained (by sessions held and sends
//!   per minute), or to the engine it is pinned to.

use std::collections::{HashMap, HashSet};
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
    /// The machine it runs on.
    #[serde(default)]
    pub host: String,
    /// The wablast version it runs.
    #[serde(default)]
    pub version: String,
    /// Messages its sessions sent in the last minute.
    #[serde(default)]
    pub sends_per_minute: u64,
    /// Its resident memory (bytes), where the system says it.
    #[serde(default)]
    pub memory_rss_bytes: Option<u64>,
    /// Whether it is drained (holds no sessions until undrained).
    #[serde(default)]
    pub draining: bool,
    /// Every send of its sessions held for now, and why.
    #[serde(default)]
    pub sending_held: Option<SendingHold>,
}

/// An engine holding every send of its sessions for a while.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SendingHold {
    /// Why.
    pub reason: HoldReason,
    /// Since when.
    pub since: DateTime<Utc>,
    /// Until when (sending resumes by itself then).
    pub until: DateTime<Utc>,
    /// Its sessions that failed within the storm window.
    pub failed_sessions: usize,
    /// The sessions it ran when it decided.
    pub sessions: usize,
}

/// Why an engine holds its sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    /// Many of its sessions failed (disconnected, failed, went silent)
    /// within minutes: a WhatsApp Web change or an outage, where sending
    /// on would only hammer WhatsApp.
    FailureStorm,
}

impl EngineInfo {
    /// How loaded it is, for placement: one per session held, plus one
    /// per message a second it sends (a session sending every second
    /// weighs two idle ones).
    pub fn load(&self) -> f64 {
        self.sessions as f64 + self.sends_per_minute as f64 / 60.0
    }
}

/// Where a session goes: the engine it is `pinned` to when that one is
/// live and not drained; else the least-loaded ([`EngineInfo::load`]) live
/// engine that is neither drained nor `excluded`. Ties go by a hash of the
/// session and the engine (rendezvous), so engines deciding from the same
/// view agree, and a burst of new sessions on equal engines spreads.
/// `None`: no engine can take it.
pub fn place<'a>(
    session: &str,
    engines: impl IntoIterator<Item = &'a EngineInfo>,
    drained: &HashSet<String>,
    pinned: Option<&str>,
    excluded: Option<&str>,
) -> Option<String> {
    let open: Vec<&EngineInfo> = engines
        .into_iter()
        .filter(|e| !e.draining && !drained.contains(&e.engine))
        .filter(|e| Some(e.engine.as_str()) != excluded)
        .collect();
    if let Some(pinned) = pinned
        && open.iter().any(|e| e.engine == pinned)
    {
        return Some(pinned.to_owned());
    }
    open.into_iter()
        .min_by(|a, b| {
            a.load()
                .total_cmp(&b.load())
                .then_with(|| rendezvous(session, &a.engine).cmp(&rendezvous(session, &b.engine)))
        })
        .map(|e| e.engine.clone())
}

fn rendezvous(session: &str, engine: &str) -> u64 {
    // FNV-1a: stable across processes and versions (std's hasher is not).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in session.bytes().chain([0]).chain(engine.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The subject of requests to one engine (`<prefix>.fleet.<engine>.<verb>`).
pub fn fleet_subject(prefix: &Prefix, engine: &str, verb: FleetVerb) -> String {
    format!("{prefix}.fleet.{engine}.{}", verb.as_str())
}

/// What an engine is asked on its [`fleet_subject`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FleetVerb {
    /// Take this session, handed over to you ([`TakeRequest`]).
    Take,
    /// Hand this session you hold to another engine ([`MoveRequest`]).
    Move,
    /// Look at your drain mark again now.
    Drain,
}

impl FleetVerb {
    /// As written in the subject.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Take => "take",
            Self::Move => "move",
            Self::Drain => "drain",
        }
    }
}

/// A session handed to an engine: its lease already names it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TakeRequest {
    /// The session's tenant.
    pub tenant: String,
    /// The session.
    pub session: String,
}

/// A session its holder is asked to hand over.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MoveRequest {
    /// The session's tenant.
    pub tenant: String,
    /// The session.
    pub session: String,
    /// The engine to hand it to; `None`: the least-loaded other one.
    pub target: Option<String>,
}

/// An engine's answer to a [`TakeRequest`] or [`MoveRequest`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum FleetReply {
    /// Done: the session runs on this engine now.
    Moved {
        /// The engine it runs on.
        engine: String,
    },
    /// Not done, and why.
    Refused {
        /// Why.
        reason: FleetRefusal,
        /// In words.
        message: String,
    },
}

/// Why an engine did not do what the fleet asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FleetRefusal {
    /// The engine does not hold the session (any more).
    NotHeld,
    /// No other live, undrained engine can take it.
    NoEngineAvailable,
    /// The engine asked to take it did not.
    TargetRefused,
    /// The engine is drained: it takes no session.
    Draining,
}

/// The operator's marks on the fleet: drained engines and pinned
/// sessions, in the `<prefix>_FLEET` bucket (kept until changed).
#[derive(Clone)]
pub struct FleetControl {
    store: kv::Store,
}

impl std::fmt::Debug for FleetControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetControl").finish_non_exhaustive()
    }
}

/// A mark in [`FleetControl`].
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Mark {
    /// The engine (pins: the one the session is pinned to).
    engine: String,
    at: DateTime<Utc>,
}

impl FleetControl {
    /// The installation's marks (the bucket created when missing).
    pub async fn open(js: &jetstream::Context, prefix: &Prefix) -> Result<Self, EventStoreError> {
        let store = wablast_eventstore::ensure_key_value(
            js,
            &prefix.stream_name("fleet"),
            "wablast fleet: drained engines and sessions pinned to an engine",
            prefix.replicas(),
        )
        .await?;
        Ok(Self { store })
    }

    fn drain_key(engine: &str) -> String {
        format!("drain.{}", key_token(engine))
    }

    fn pin_key(session: &str) -> String {
        format!("pin.{}", key_token(session))
    }

    /// Marks `engine` drained.
    pub async fn drain(&self, engine: &str) -> Result<(), EventStoreError> {
        self.put(&Self::drain_key(engine), engine).await
    }

    /// Lifts the drain mark of `engine`.
    pub async fn undrain(&self, engine: &str) -> Result<(), EventStoreError> {
        self.store
            .purge(Self::drain_key(engine))
            .await
            .map_err(EventStoreError::nats)
    }

    /// Pins `session` to `engine`.
    pub async fn pin(&self, session: &str, engine: &str) -> Result<(), EventStoreError> {
        self.put(&Self::pin_key(session), engine).await
    }

    /// Unpins `session`.
    pub async fn unpin(&self, session: &str) -> Result<(), EventStoreError> {
        self.store
            .purge(Self::pin_key(session))
            .await
            .map_err(EventStoreError::nats)
    }

    async fn put(&self, key: &str, engine: &str) -> Result<(), EventStoreError> {
        let mark = Mark {
            engine: engine.to_owned(),
            at: Utc::now(),
        };
        let value = serde_json::to_vec(&mark).map_err(EventStoreError::malformed_at(0))?;
        self.store
            .put(key, value.into())
            .await
            .map_err(EventStoreError::nats)?;
        Ok(())
    }

    async fn mark(&self, key: &str) -> Result<Option<Mark>, EventStoreError> {
        let Some(entry) = self.store.entry(key).await.map_err(EventStoreError::nats)? else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        serde_json::from_slice(&entry.value)
            .map(Some)
            .map_err(EventStoreError::malformed_at(entry.revision))
    }

    /// Whether `engine` is drained.
    pub async fn is_drained(&self, engine: &str) -> Result<bool, EventStoreError> {
        Ok(self.mark(&Self::drain_key(engine)).await?.is_some())
    }

    /// The engine `session` is pinned to.
    pub async fn pinned(&self, session: &str) -> Result<Option<String>, EventStoreError> {
        Ok(self.mark(&Self::pin_key(session)).await?.map(|m| m.engine))
    }

    /// Every drained engine and every pin (session → engine).
    pub async fn marks(
        &self,
    ) -> Result<(HashSet<String>, HashMap<String, String>), EventStoreError> {
        use futures::TryStreamExt;
        let keys: Vec<String> = match self.store.keys().await {
            Ok(keys) => keys.try_collect().await.map_err(EventStoreError::nats)?,
            Err(err) => return Err(EventStoreError::nats(err)),
        };
        let (mut drained, mut pins) = (HashSet::new(), HashMap::new());
        for key in keys {
            let Some(mark) = self.mark(&key).await? else {
                continue;
            };
            if key.starts_with("drain.") {
                drained.insert(mark.engine);
            } else if let Some(session) = key.strip_prefix("pin.") {
                pins.insert(session.to_owned(), mark.engine);
            }
        }
        Ok((drained, pins))
    }
}

/// A KV key token for an id: kept as it is when it is one already.
fn key_token(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
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
            prefix.replicas(),
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

    /// One engine's heartbeat, while it lives.
    pub async fn get(&self, engine: &str) -> Result<Option<EngineInfo>, EventStoreError> {
        let Some(entry) = self
            .store
            .entry(engine)
            .await
            .map_err(EventStoreError::nats)?
        else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        serde_json::from_slice(&entry.value)
            .map(Some)
            .map_err(EventStoreError::malformed_at(entry.revision))
    }

    /// Every heartbeat as it is written (the live ones first).
    pub async fn watch(&self) -> Result<kv::Watch, EventStoreError> {
        self.store
            .watch_with_history(">")
            .await
            .map_err(EventStoreError::nats)
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
                // Created meanwhile (an engine starting): opened now.
                Ok(_) => js
                    .get_key_value(&bucket)
                    .await
                    .map(|store| Some(Self { store }))
                    .map_err(EventStoreError::nats),
                Err(_) => Err(EventStoreError::nats(err)),
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

/// The engine holding a session's lease now (`None`: nobody, or no engine
/// ever ran). For readers: it creates nothing.
pub async fn lease_holder(
    js: &jetstream::Context,
    prefix: &Prefix,
    session: &str,
) -> Result<Option<String>, EventStoreError> {
    #[derive(Deserialize)]
    struct Holder {
        engine: String,
    }
    let Ok(store) = js.get_key_value(prefix.stream_name("session_leases")).await else {
        return Ok(None);
    };
    let Some(entry) = store.entry(session).await.map_err(EventStoreError::nats)? else {
        return Ok(None);
    };
    if entry.operation != kv::Operation::Put {
        return Ok(None);
    }
    Ok(serde_json::from_slice::<Holder>(&entry.value)
        .ok()
        .map(|h| h.engine))
}
