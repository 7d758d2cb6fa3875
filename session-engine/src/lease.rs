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
//!
//! Three things keep a lease to one holder even when NATS restarts or an
//! engine stalls:
//! - the holder stops sending by itself before its lease could expire
//!   ([`Hold::is_held`]): from the start of its last successful renewal it
//!   counts the TTL less a margin, so a holder cut off from NATS or paused
//!   is quiet before any other engine can take the session;
//! - a renewal that fails says why ([`Renewal`]): lost (the entry expired
//!   or another engine wrote it: stop the session) or unanswered (NATS
//!   away: keep the session, quiet, and try again), instead of treating
//!   every failure as a loss and racing to take the session back;
//! - every holder has a fence, the bucket's epoch and the revision it took
//!   the lease at, which only grows from one holder to the next; the session aggregate records
//!   it (`SessionHeld`) and refuses reports carrying any other, so an
//!   engine that wakes after losing the lease cannot act on the session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use wablast_domain::session::Fence;
use wablast_eventstore::{EventStoreError, Prefix, ensure_expiring_key_value};
pub use wablast_workflows::fleet::{EngineInfo, EngineRegistry, engines_bucket};

/// The lease bucket of an installation: `<prefix>_SESSION_LEASES`.
pub fn leases_bucket(prefix: &Prefix) -> String {
    prefix.stream_name("session_leases")
}

/// A lease held by this engine (clones share what [`Hold`]s see).
#[derive(Clone, Debug)]
pub struct Lease {
    /// The session it is for.
    pub session: String,
    /// The revision this engine last wrote: a renewal must find it.
    revision: u64,
    /// The bucket's epoch and the revision it was taken at: the holder's
    /// fence.
    fence: Fence,
    /// Until when no other engine can hold it, as far as this one knows.
    until: Arc<watch::Sender<Instant>>,
}

impl Lease {
    /// The lease's fence: the bucket's epoch and its revision when taken.
    /// Fences only grow from one holder of a session to the next
    /// (revisions are positions in the lease bucket's stream; a bucket
    /// created again has a later epoch).
    pub fn fence(&self) -> Fence {
        self.fence
    }

    /// What the session's tasks rely on while it runs here.
    pub fn hold(&self) -> Hold {
        Hold {
            fence: self.fence,
            until: self.until.subscribe(),
        }
    }
}

/// A running session's view of its lease: its fence, and whether it is
/// surely still held. A lease is surely held until its TTL, less a margin,
/// after the start of its last successful renewal: no other engine can
/// take it before the server lets it expire, which is one TTL after that
/// renewal arrived. A holder that cannot renew (NATS unreachable, the
/// process paused) stops sending once that time passes, before another
/// engine could have taken the session.
#[derive(Clone, Debug)]
pub struct Hold {
    fence: Fence,
    until: watch::Receiver<Instant>,
}

impl Hold {
    /// The lease's fence ([`Lease::fence`]).
    pub fn fence(&self) -> Fence {
        self.fence
    }

    /// Whether the lease is surely held now.
    pub fn is_held(&self) -> bool {
        Instant::now() < *self.until.borrow()
    }

    /// Waits until the lease is surely held (at once when it is).
    ///
    /// # Returns
    /// `false` when it never will be again: the lease is gone.
    pub async fn held(&mut self) -> bool {
        loop {
            let until = *self.until.borrow_and_update();
            if Instant::now() < until {
                return true;
            }
            if self.until.changed().await.is_err() {
                return false;
            }
        }
    }
}

/// What a renewal found.
#[derive(Debug)]
pub enum Renewal {
    /// Still held; surely until one TTL (less the margin) from now.
    Renewed,
    /// Another engine holds it (it expired while this one could not renew,
    /// and was taken), or nobody does any more: stop running the session.
    Lost {
        /// Who holds it now, when anyone does.
        holder: Option<String>,
    },
    /// NATS did not answer: not known whether it is still held. Sending
    /// stops by itself once [`Hold::is_held`] turns false; a later renewal
    /// finds out.
    Unanswered(EventStoreError),
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
    /// When the bucket was created (µs since 1970): the epoch of fences.
    epoch: u64,
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
            prefix.replicas(),
        )
        .await?;
        let created = store
            .status()
            .await
            .map_err(EventStoreError::nats)?
            .info
            .created;
        Ok(Self {
            store,
            engine: engine.to_owned(),
            ttl,
            epoch: u64::try_from(created.timestamp_micros()).unwrap_or_default(),
        })
    }

    /// How long a lease lives without renewal.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How often to renew: four times per TTL. Two renewals in a row that
    /// NATS does not answer leave the holder sending; after a third it is
    /// quiet (a fifth of the TTL before the entry could expire), and only
    /// the fourth can find the lease lost. A short TTL (fast failover)
    /// stays that tolerant of a NATS hiccup.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 4
    }

    /// Until when a lease written (or renewed) by a request started at
    /// `asked` is surely held: its TTL after that, less a fifth of it for
    /// a send under way when it ends and for clocks that run apart.
    fn surely_until(&self, asked: Instant) -> Instant {
        asked + self.ttl - self.ttl / 5
    }

    fn holder(&self) -> bytes::Bytes {
        serde_json::to_vec(&LeaseHolder {
            engine: self.engine.clone(),
            renewed_at: Utc::now(),
        })
        .expect("a lease serializes")
        .into()
    }

    fn lease(&self, session: &str, revision: u64, asked: Instant) -> Lease {
        let (until, _) = watch::channel(self.surely_until(asked));
        Lease {
            session: session.to_owned(),
            revision,
            fence: Fence {
                epoch: self.epoch,
                revision,
            },
            until: Arc::new(until),
        }
    }

    /// Takes the session's lease if nobody holds it: an atomic create,
    /// refused while another engine's entry lives (it is gone once its
    /// holder released it or it expired unrenewed).
    ///
    /// # Returns
    /// The lease, or `None` while another engine's lease lives.
    pub async fn acquire(&self, session: &str) -> Result<Option<Lease>, EventStoreError> {
        let asked = Instant::now();
        match self.store.create(session, self.holder()).await {
            Ok(revision) => Ok(Some(self.lease(session, revision, asked))),
            Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => {
                // Our own lease from before a restart of this engine (same
                // id) is ours to take back.
                match self.current(session).await? {
                    Some((holder, revision)) if holder.engine == self.engine => {
                        self.take_back(session, revision, asked).await
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
        asked: Instant,
    ) -> Result<Option<Lease>, EventStoreError> {
        match self.store.update(session, self.holder(), revision).await {
            Ok(revision) => Ok(Some(self.lease(session, revision, asked))),
            Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(err) => Err(EventStoreError::nats(err)),
        }
    }

    /// Renews a lease: an update that names the revision this engine last
    /// wrote, so it fails once the entry expired or another engine wrote it.
    ///
    /// A renewal NATS did not answer may still have landed (the client sent
    /// it again once reconnected): the entry then holds this engine's own
    /// later write, which is adopted, not taken for a loss.
    pub async fn renew(&self, lease: &mut Lease) -> Renewal {
        let asked = Instant::now();
        let mut adopted = false;
        loop {
            match self
                .store
                .update(&lease.session, self.holder(), lease.revision)
                .await
            {
                Ok(revision) => {
                    lease.revision = revision;
                    lease.until.send_replace(self.surely_until(asked));
                    return Renewal::Renewed;
                }
                Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    let current = match self.current(&lease.session).await {
                        Ok(current) => current,
                        Err(err) => return Renewal::Unanswered(err),
                    };
                    match current {
                        Some((holder, revision)) if holder.engine == self.engine && !adopted => {
                            lease.revision = revision;
                            adopted = true;
                        }
                        current => {
                            lease.until.send_replace(asked);
                            return Renewal::Lost {
                                holder: current.map(|(holder, _)| holder.engine),
                            };
                        }
                    }
                }
                Err(err) => return Renewal::Unanswered(EventStoreError::nats(err)),
            }
        }
    }

    /// Gives a lease up (the session stopped here): another engine may take
    /// it at once. A lease already lost is left alone.
    pub async fn release(&self, lease: Lease) -> Result<(), EventStoreError> {
        // Nothing runs on it any more, whatever the server answers.
        lease.until.send_replace(Instant::now());
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

    /// Hands a lease to `engine`: the entry is rewritten to name it
    /// (expecting the revision this engine last wrote), so no third engine
    /// can take the session meanwhile, and `engine` takes it back as its
    /// own ([`SessionLeases::acquire`]). Nothing runs on it here any more.
    ///
    /// # Returns
    /// The revision written (to withdraw the hand-over with
    /// [`SessionLeases::withdraw`]), or `None` when the lease was lost.
    pub async fn hand_over(
        &self,
        lease: Lease,
        engine: &str,
    ) -> Result<Option<u64>, EventStoreError> {
        lease.until.send_replace(Instant::now());
        let holder = serde_json::to_vec(&LeaseHolder {
            engine: engine.to_owned(),
            renewed_at: Utc::now(),
        })
        .expect("a lease serializes");
        match self
            .store
            .update(&lease.session, holder.into(), lease.revision)
            .await
        {
            Ok(revision) => Ok(Some(revision)),
            Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(err) => Err(EventStoreError::nats(err)),
        }
    }

    /// Withdraws a hand-over its taker did not take up: the entry written
    /// at `revision` is deleted, so any engine may take the session at
    /// once. An entry changed since (taken up after all) is left alone.
    pub async fn withdraw(&self, session: &str, revision: u64) -> Result<(), EventStoreError> {
        match self
            .store
            .delete_expect_revision(session, Some(revision))
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
        let holder = serde_json::from_slice(&entry.value)
            .map_err(EventStoreError::malformed_at(entry.revision))?;
        Ok(Some((holder, entry.revision)))
    }
}
