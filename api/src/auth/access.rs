//! Who may act right now, in memory: the tenants the platform operator
//! suspended and every team member's role and removal, kept current from
//! the event log, so authenticating a request costs no query.
//!
//! # How it stays current
//!
//! On start it reads a snapshot of the query tables (`wallets`' suspensions
//! and `members`' standings, with the lower of the two projections'
//! checkpoints, in one repeatable-read transaction), then follows the
//! events stream from that checkpoint through an ordered consumer filtered
//! to the `wallet` and `team` subjects, applying `TenantSuspended`,
//! `TenantReactivated` and the team's events. Every change sets a state
//! outright (suspended with this reason, this role, removed), so a change
//! the snapshot already holds is harmlessly applied again. Requests wait
//! until the follower has caught up with the stream as it stood when it
//! started ([`Access::ready`]): no request is ever judged on a state older
//! than the snapshot.
//!
//! # The lag
//!
//! A change is in force in a process once its follower has read the commit:
//! the subscription lag, a push delivery from JetStream (milliseconds on
//! one machine). The process that made the change waits for it before it
//! answers ([`Access::reached`]), so the operator's `suspend` and the
//! owner's `DELETE /members/{id}` answer only once they are enforced there;
//! other API processes enforce it as soon as their follower has read it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::push::OrderedConfig;
use cqrs_es::Aggregate;
use futures::StreamExt;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;
use wablast_domain::team::{Team, TeamEvent, TeamRole};
use wablast_domain::types::TenantId;
use wablast_domain::wallet::{Wallet, WalletEvent};
use wablast_eventstore::{Backoff, Commit, EventLog, RecordedEvent};

use super::Role;
use crate::{ApiError, ErrorCode};

/// How long a request waits for the follower to be ready before it is
/// answered 503 `unavailable`.
const READY_WAIT: Duration = Duration::from_secs(10);

/// A member of a founded team, as authentication sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberStanding {
    /// Its tenant.
    pub tenant: TenantId,
    /// Its role there.
    pub role: Role,
    /// Whether an owner took it out.
    pub removed: bool,
    /// When it was last taken out (Unix seconds), even if it joined again
    /// since: access tokens issued before are refused.
    pub removed_at: Option<i64>,
}

#[derive(Debug, Default)]
struct State {
    suspended: HashMap<TenantId, String>,
    members: HashMap<Uuid, MemberStanding>,
}

/// Who may act: suspensions and team standings, in memory.
pub struct Access {
    state: RwLock<State>,
    /// The events stream sequence applied so far (`None`: not ready).
    applied: watch::Sender<Option<u64>>,
    source: Mutex<Option<(PgPool, EventLog)>>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("applied", &*self.applied.borrow())
            .finish_non_exhaustive()
    }
}

fn role_of(role: TeamRole) -> Role {
    match role {
        TeamRole::Owner => Role::Owner,
        TeamRole::Member => Role::Member,
    }
}

impl Access {
    /// Access over `db` and `log`; following starts with [`Access::start`]
    /// (or the first request).
    pub fn new(db: PgPool, log: EventLog) -> Arc<Self> {
        Arc::new(Self {
            state: RwLock::default(),
            applied: watch::Sender::new(None),
            source: Mutex::new(Some((db, log))),
        })
    }

    /// Starts following the log (once; later calls do nothing). The task
    /// ends when the last handle to `self` is dropped.
    pub fn start(self: &Arc<Self>) {
        let Some((db, log)) = self.source.lock().expect("not poisoned").take() else {
            return;
        };
        let weak = Arc::downgrade(self);
        tokio::spawn(follow(weak, db, log));
    }

    /// Waits until the follower has caught up once (503 after a while).
    pub async fn ready(self: &Arc<Self>) -> Result<(), ApiError> {
        if self.applied.borrow().is_some() {
            return Ok(());
        }
        self.start();
        let mut applied = self.applied.subscribe();
        match tokio::time::timeout(READY_WAIT, applied.wait_for(Option::is_some)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ApiError::new(
                ErrorCode::Unavailable,
                "access rights are still being loaded; try again",
            )),
        }
    }

    /// Waits until the follower has applied the events stream up to
    /// `sequence` (at most `timeout`; `false` when it has not).
    pub async fn reached(self: &Arc<Self>, sequence: u64, timeout: Duration) -> bool {
        self.start();
        let mut applied = self.applied.subscribe();
        tokio::time::timeout(
            timeout,
            applied.wait_for(|a| a.is_some_and(|a| a >= sequence)),
        )
        .await
        .is_ok_and(|r| r.is_ok())
    }

    /// The operator's reason when `tenant` is suspended.
    pub fn suspension(&self, tenant: TenantId) -> Option<String> {
        self.state
            .read()
            .expect("not poisoned")
            .suspended
            .get(&tenant)
            .cloned()
    }

    /// `user`'s standing in a founded team (`None`: it is in no founded
    /// team, so its account's role stands).
    pub fn standing(&self, user: Uuid) -> Option<MemberStanding> {
        self.state
            .read()
            .expect("not poisoned")
            .members
            .get(&user)
            .copied()
    }

    /// Replaces the state with a snapshot.
    fn load(&self, snapshot: wablast_projections::queries::members::AccessSnapshot) {
        let mut state = State::default();
        for (tenant, reason) in snapshot.suspended {
            state.suspended.insert(TenantId::from_uuid(tenant), reason);
        }
        for m in snapshot.members {
            let role = m.role.parse::<TeamRole>().map_or(Role::Member, role_of);
            // An account moved to another tenant has a removed row in the
            // first and a live one in the second: the live one counts.
            let entry = MemberStanding {
                tenant: TenantId::from_uuid(m.tenant_id),
                role,
                removed: m.removed,
                removed_at: m.last_removed_at.map(|at| at.timestamp()),
            };
            match state.members.get(&m.user_id) {
                Some(live) if !live.removed && entry.removed => {}
                _ => {
                    state.members.insert(m.user_id, entry);
                }
            }
        }
        *self.state.write().expect("not poisoned") = state;
    }

    /// Applies one event of the log (others are ignored).
    fn apply(&self, event: &RecordedEvent) {
        let Ok(tenant) = event.tenant.parse::<Uuid>().map(TenantId::from_uuid) else {
            return;
        };
        if event.aggregate_type == Wallet::TYPE {
            if !matches!(
                event.event_type.as_str(),
                "TenantSuspended" | "TenantReactivated"
            ) {
                return;
            }
            let Ok(decoded) = serde_json::from_value::<WalletEvent>(event.payload.clone()) else {
                tracing::error!(
                    sequence = event.stream_sequence,
                    "a suspension event does not decode"
                );
                return;
            };
            let mut state = self.state.write().expect("not poisoned");
            match decoded {
                WalletEvent::TenantSuspended { reason, .. } => {
                    state.suspended.insert(tenant, reason);
                }
                WalletEvent::TenantReactivated { .. } => {
                    state.suspended.remove(&tenant);
                }
                _ => {}
            }
        } else if event.aggregate_type == Team::TYPE {
            let Ok(decoded) = serde_json::from_value::<TeamEvent>(event.payload.clone()) else {
                tracing::error!(
                    sequence = event.stream_sequence,
                    "a team event does not decode"
                );
                return;
            };
            let mut state = self.state.write().expect("not poisoned");
            let mut set = |user: Uuid, role: TeamRole, removed: Option<i64>| {
                let before = state.members.get(&user).and_then(|s| s.removed_at);
                state.members.insert(
                    user,
                    MemberStanding {
                        tenant,
                        role: role_of(role),
                        removed: removed.is_some(),
                        removed_at: removed.or(before),
                    },
                );
            };
            match decoded {
                TeamEvent::TeamFounded { members, .. } => {
                    for m in members {
                        set(*m.user_id.as_uuid(), m.role, None);
                    }
                }
                TeamEvent::InvitationAccepted { user_id, role, .. }
                | TeamEvent::MemberRoleChanged { user_id, role, .. } => {
                    set(*user_id.as_uuid(), role, None);
                }
                TeamEvent::MemberRemoved {
                    user_id, role, at, ..
                } => {
                    set(*user_id.as_uuid(), role, Some(at.timestamp()));
                }
                TeamEvent::MemberInvited { .. } | TeamEvent::InvitationRevoked { .. } => {}
            }
        }
    }
}

/// Loads the snapshot and follows the log until `access` is dropped,
/// starting over (from a fresh snapshot) when anything fails.
async fn follow(access: Weak<Access>, db: PgPool, log: EventLog) {
    let backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let mut failures = 0;
    loop {
        match follow_once(&access, &db, &log).await {
            Ok(()) => return,
            Err(err) => {
                failures += 1;
                tracing::warn!(error = %err, "access follower stopped; starting again");
            }
        }
        tokio::time::sleep(backoff.after(failures)).await;
        if access.strong_count() == 0 {
            return;
        }
    }
}

/// One run of the follower: `Ok` when `access` was dropped.
async fn follow_once(access: &Weak<Access>, db: &PgPool, log: &EventLog) -> Result<(), String> {
    let snapshot = wablast_projections::queries::members::access_snapshot(db)
        .await
        .map_err(|err| format!("snapshot: {err}"))?;
    let from = snapshot.sequence + 1;
    {
        let Some(access) = access.upgrade() else {
            return Ok(());
        };
        access.load(snapshot);
    }
    let stream_name = log
        .stream_name_of(Wallet::TYPE)
        .map_err(|err| err.to_string())?
        .to_owned();
    let stream = log
        .jetstream()
        .get_stream(&stream_name)
        .await
        .map_err(|err| format!("stream: {err}"))?;
    let tip = stream.cached_info().state.last_sequence;
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_subject: log.jetstream().client().new_inbox(),
            filter_subjects: vec![
                log.prefix().aggregate_type_subjects(Wallet::TYPE),
                log.prefix().aggregate_type_subjects(Team::TYPE),
            ],
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ..Default::default()
        })
        .await
        .map_err(|err| format!("consumer: {err}"))?;
    let name = consumer.cached_info().name.clone();
    let _cleanup = Cleanup(Some((stream.clone(), name)));
    // Caught up once everything up to the tip is read: at once when
    // nothing of the two types came after the snapshot.
    let mut caught_up = consumer.cached_info().num_pending == 0;
    if caught_up && let Some(access) = access.upgrade() {
        access.applied.send_replace(Some(tip.max(from - 1)));
    }
    let mut messages = consumer
        .messages()
        .await
        .map_err(|err| format!("messages: {err}"))?;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(1), messages.next()).await;
        let Some(access) = access.upgrade() else {
            return Ok(());
        };
        let message = match next {
            Err(_) => continue,
            Ok(None) => return Err("the consumer ended".into()),
            Ok(Some(Err(err))) => {
                tracing::debug!(error.message = %err, "access follower hiccup");
                continue;
            }
            Ok(Some(Ok(message))) => message,
        };
        let info = message.info().map_err(|err| err.to_string())?;
        let sequence = info.stream_sequence;
        let pending = info.pending;
        match serde_json::from_slice::<Commit>(&message.payload) {
            Ok(commit) => {
                for event in commit.into_recorded(sequence) {
                    access.apply(&event);
                }
            }
            Err(err) => tracing::error!(sequence, error = %err, "a commit does not decode"),
        }
        if !caught_up && (pending == 0 || sequence >= tip) {
            caught_up = true;
        }
        if caught_up {
            access.applied.send_replace(Some(sequence.max(tip)));
        }
    }
}

/// Deletes the follower's consumer when a run ends.
struct Cleanup(Option<(async_nats::jetstream::stream::Stream, String)>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let (Some((stream, name)), Ok(runtime)) =
            (self.0.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(async move {
                let _ = stream.delete_consumer(&name).await;
            });
        }
    }
}
