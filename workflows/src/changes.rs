//! What changed lately on the log, as its subjects tell: lets a send loop
//! keep the campaign, session, schedule and wallet it reads for every
//! message until one of them changes, instead of asking the log each time.
//!
//! The engine listens (plain NATS, no consumer) to the commits of a few
//! aggregate types and counts them per tenant and type. A reader notes the
//! count before it loads, and its copy is current while the count stays
//! the same. A notice can be lost (a reconnect) or arrive a moment after
//! its commit, so a copy is also only trusted for [`Changes::MAX_AGE`]: a
//! loop may act on a state at most that old, as it may act on one a moment
//! old when it reads first and writes after.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cqrs_es::{Aggregate, AggregateError};
use futures::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use wablast_domain::session_day::{SessionDay, SessionDayEvent};
use wablast_domain::types::TenantId;
use wablast_eventstore::{AggregateKey, CommandHandler, Commit, Loaded, Prefix};

/// Commits seen per tenant and aggregate type.
#[derive(Clone, Default)]
pub struct Changes {
    seen: Arc<Mutex<HashMap<(TenantId, &'static str), u64>>>,
    /// Commits seen per tenant, of every watched type.
    totals: Arc<Mutex<HashMap<TenantId, u64>>>,
    /// Per tenant, told of each commit seen on its aggregates: what a send
    /// loop waiting for a window, a new day or a resume wakes on.
    wakers: Arc<Mutex<HashMap<TenantId, Arc<Notify>>>>,
}

impl Changes {
    /// How long a copy is trusted without a notice of change.
    pub const MAX_AGE: Duration = Duration::from_secs(1);

    /// Listens to the commits of `types` until `stop`. The subscription is
    /// made before this returns, so a reader that notes a count after it
    /// sees every later change.
    pub async fn watch(
        &self,
        client: &async_nats::Client,
        prefix: &Prefix,
        types: &[&'static str],
        stop: CancellationToken,
    ) -> Result<tokio::task::JoinHandle<()>, async_nats::SubscribeError> {
        let mut subscriptions = Vec::with_capacity(types.len());
        for &aggregate_type in types {
            let subject = prefix.aggregate_type_subjects(aggregate_type);
            let subscription = client.subscribe(subject).await?;
            subscriptions.push(subscription.map(move |message| (aggregate_type, message)));
        }
        let mut notices = futures::stream::select_all(subscriptions);
        let changes = self.clone();
        Ok(tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    notice = notices.next() => match notice {
                        Some((aggregate_type, message)) => changes.noticed(aggregate_type, &message.subject),
                        None => {
                            warn!("commit notices ended; send loops read the log for every message");
                            return;
                        }
                    },
                }
            }
        }))
    }

    /// Counts a commit on `subject` (`<prefix>.ev.<tenant>.<type>.<id>`).
    fn noticed(&self, aggregate_type: &'static str, subject: &str) {
        let Some(tenant) = subject
            .rsplit('.')
            .nth(2)
            .and_then(|t| t.parse::<TenantId>().ok())
        else {
            return;
        };
        *self
            .seen
            .lock()
            .expect("changes lock")
            .entry((tenant, aggregate_type))
            .or_default() += 1;
        *self
            .totals
            .lock()
            .expect("totals lock")
            .entry(tenant)
            .or_default() += 1;
        if let Some(waker) = self.wakers.lock().expect("wakers lock").get(&tenant) {
            waker.notify_waiters();
        }
    }

    /// The commits seen on `tenant`'s watched aggregates, of every type:
    /// noted before reading what a wait depends on, and handed to
    /// [`Changes::wait_until`].
    pub fn seen(&self, tenant: TenantId) -> u64 {
        self.totals
            .lock()
            .expect("totals lock")
            .get(&tenant)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until `reached` completes or a commit on one of `tenant`'s
    /// watched aggregates is seen after `seen` (a schedule changed, an
    /// override set, a campaign resumed, a daily limit raised, a plan
    /// renewed): a wait for a window, a new day or a resume ends as soon
    /// as what it waits for may have changed.
    ///
    /// # Returns
    /// [`Woken::Reached`], or [`Woken::Changed`] (look again).
    pub async fn wait_until(
        &self,
        tenant: TenantId,
        seen: u64,
        reached: impl std::future::Future<Output = ()>,
    ) -> Woken {
        let waker = Arc::clone(
            self.wakers
                .lock()
                .expect("wakers lock")
                .entry(tenant)
                .or_default(),
        );
        let notified = waker.notified();
        tokio::pin!(notified, reached);
        // Registered before looking: a commit between the look and the
        // wait still wakes it.
        notified.as_mut().enable();
        if self.seen(tenant) != seen {
            return Woken::Changed;
        }
        tokio::select! {
            () = &mut reached => Woken::Reached,
            () = &mut notified => Woken::Changed,
        }
    }

    /// The count of commits seen on `tenant`'s aggregates of `A`.
    fn count<A: Aggregate>(&self, tenant: TenantId) -> u64 {
        self.seen
            .lock()
            .expect("changes lock")
            .get(&(tenant, A::TYPE))
            .copied()
            .unwrap_or(0)
    }
}

/// A session day as its commits name it: (tenant, aggregate id).
type DayKey = (String, String);

/// The session days' counts as their own commits tell them: a commit on
/// a session day carries its `SlotGranted` and so the day's count after
/// it. A single send's lane reads a session day's count off the log only
/// when none of its commits was seen for [`Changes::MAX_AGE`] (a quiet
/// session), not once per group while its session sends flat out.
#[derive(Clone, Default)]
pub struct DayCounts {
    /// Per session day: the highest count told or read, and when.
    known: Arc<Mutex<HashMap<DayKey, (u32, Instant)>>>,
    /// Whether commits are listened to: without it, nothing is kept.
    listening: Arc<AtomicBool>,
}

impl DayCounts {
    /// How many session days are kept before the stale ones are dropped.
    const MOST_KEPT: usize = 10_000;

    /// Listens to the commits of session days until `stop`; the
    /// subscription is made before this returns.
    pub async fn listen(
        &self,
        client: &async_nats::Client,
        prefix: &Prefix,
        stop: CancellationToken,
    ) -> Result<tokio::task::JoinHandle<()>, async_nats::SubscribeError> {
        let mut notices = client
            .subscribe(prefix.aggregate_type_subjects(SessionDay::TYPE))
            .await?;
        self.listening.store(true, Ordering::Release);
        let counts = self.clone();
        Ok(tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    notice = notices.next() => match notice {
                        Some(message) => counts.noticed(&message.payload),
                        None => break,
                    },
                }
            }
            // A count no longer told may be stale: read from now on.
            counts.listening.store(false, Ordering::Release);
            counts.known.lock().expect("day counts lock").clear();
        }))
    }

    /// Keeps the count a session day's commit (its JSON) tells.
    fn noticed(&self, payload: &[u8]) {
        let Ok(commit) = serde_json::from_slice::<Commit>(payload) else {
            return;
        };
        let Some(last) = commit.events.last() else {
            return;
        };
        let Ok(event) = serde_json::from_value::<SessionDayEvent>(last.payload.clone()) else {
            return;
        };
        self.keep(commit.tenant, commit.aggregate_id, event.count_after());
    }

    /// Keeps `count` for a session day: the higher of it and what was
    /// known (a day's count only grows), seen now.
    pub fn keep(&self, tenant: String, id: String, count: u32) {
        if !self.listening.load(Ordering::Acquire) {
            return;
        }
        let mut known = self.known.lock().expect("day counts lock");
        if known.len() >= Self::MOST_KEPT {
            known.retain(|_, (_, at)| at.elapsed() < Changes::MAX_AGE);
        }
        let entry = known.entry((tenant, id)).or_insert((count, Instant::now()));
        *entry = (entry.0.max(count), Instant::now());
    }

    /// The count of the session day at `key` when one of its commits was
    /// seen (or it was read) less than [`Changes::MAX_AGE`] ago.
    pub fn fresh(&self, key: &AggregateKey) -> Option<u32> {
        if !self.listening.load(Ordering::Acquire) {
            return None;
        }
        let known = self.known.lock().expect("day counts lock");
        known
            .get(&(key.tenant().to_owned(), key.id().to_owned()))
            .filter(|(_, at)| at.elapsed() < Changes::MAX_AGE)
            .map(|(count, _)| *count)
    }
}

/// How a [`Changes::wait_until`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Woken {
    /// What it waited for came.
    Reached,
    /// Something it may depend on changed first.
    Changed,
}

/// A copy of an aggregate kept by a reader, with what tells whether it is
/// still current.
pub struct Kept<A> {
    loaded: Loaded<A>,
    count: u64,
    at: Instant,
}

impl Changes {
    /// The aggregate at `key` of `tenant`, from `kept` while no commit on
    /// the tenant's aggregates of its type was seen since (and the copy is
    /// young), else read again (one direct get when it did not change
    /// after all).
    pub async fn current<A: Aggregate + Clone>(
        &self,
        handler: &CommandHandler<A>,
        tenant: TenantId,
        key: &AggregateKey,
        kept: &mut Option<Kept<A>>,
    ) -> Result<A, AggregateError<A::Error>> {
        let count = self.count::<A>(tenant);
        if let Some(copy) = kept.as_ref()
            && copy.count == count
            && copy.at.elapsed() < Self::MAX_AGE
        {
            return Ok(copy.loaded.aggregate.clone());
        }
        let loaded = handler
            .reload(key, kept.take().map(|copy| copy.loaded))
            .await?;
        let aggregate = loaded.aggregate.clone();
        *kept = Some(Kept {
            loaded,
            count,
            at: Instant::now(),
        });
        Ok(aggregate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_days_count_is_the_highest_its_commits_told_while_they_are_young() {
        let counts = DayCounts::default();
        let tenant = TenantId::new();
        let key = AggregateKey::new(tenant, "s-2026-12-07").unwrap();
        let commit = |count: u32| {
            let mut commit = Commit::new(
                SessionDay::TYPE,
                &key,
                &wablast_eventstore::CommandMetadata::new(wablast_eventstore::Actor::System),
            );
            let event = SessionDayEvent::SlotGranted {
                session_id: wablast_domain::types::SessionId::new(),
                message_id: wablast_domain::types::MessageId::new(),
                campaign_id: wablast_domain::types::CampaignId::new(),
                at: chrono::Utc::now(),
                local_date: chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap(),
                count_after: count,
                governed: None,
            };
            commit.push(
                u64::from(count),
                "SlotGranted".to_owned(),
                "1.0".to_owned(),
                serde_json::to_value(event).unwrap(),
            );
            serde_json::to_vec(&commit).unwrap()
        };

        // Not listening: nothing is kept, every count is read.
        counts.noticed(&commit(3));
        assert_eq!(counts.fresh(&key), None);

        counts.listening.store(true, Ordering::Release);
        counts.noticed(&commit(3));
        assert_eq!(counts.fresh(&key), Some(3));
        // A notice arriving late does not lower it; a read may raise it.
        counts.noticed(&commit(2));
        assert_eq!(counts.fresh(&key), Some(3));
        counts.keep(tenant.to_string(), "s-2026-12-07".to_owned(), 5);
        assert_eq!(counts.fresh(&key), Some(5));
        counts.noticed(b"not a commit");
        assert_eq!(counts.fresh(&key), Some(5));
        let other = AggregateKey::new(tenant, "s-2026-12-08").unwrap();
        assert_eq!(counts.fresh(&other), None);

        // Too old to trust without a newer commit.
        counts
            .known
            .lock()
            .unwrap()
            .values_mut()
            .for_each(|(_, at)| *at -= Changes::MAX_AGE);
        assert_eq!(counts.fresh(&key), None);
    }

    #[test]
    fn commits_are_counted_per_tenant_and_type() {
        let changes = Changes::default();
        let (a, b) = (TenantId::new(), TenantId::new());
        changes.noticed(
            "campaign",
            &format!("wb.ev.{a}.campaign.{}", uuid::Uuid::nil()),
        );
        changes.noticed(
            "campaign",
            &format!("wb.ev.{a}.campaign.{}", uuid::Uuid::nil()),
        );
        changes.noticed("wallet", &format!("wb.ev.{b}.wallet.{b}"));
        changes.noticed("wallet", "wb.ev.not-a-tenant.wallet.x");
        let seen = changes.seen.lock().unwrap();
        assert_eq!(seen.get(&(a, "campaign")), Some(&2));
        assert_eq!(seen.get(&(b, "wallet")), Some(&1));
        assert_eq!(seen.get(&(a, "wallet")), None);
        assert_eq!(seen.len(), 2);
        drop(seen);
        assert_eq!(changes.seen(a), 2);
        assert_eq!(changes.seen(b), 1);
    }

    #[tokio::test]
    async fn a_wait_ends_at_its_time_or_at_a_change_of_its_tenant() {
        let changes = Changes::default();
        let (a, b) = (TenantId::new(), TenantId::new());
        let never = std::future::pending::<()>();

        // A change seen before the wait began ends it at once.
        let seen = changes.seen(a);
        changes.noticed("schedule", &format!("wb.ev.{a}.schedule.{a}"));
        assert_eq!(changes.wait_until(a, seen, never).await, Woken::Changed);

        // Another tenant's change does not; the time does.
        let seen = changes.seen(a);
        let waiting = {
            let changes = changes.clone();
            tokio::spawn(async move {
                changes
                    .wait_until(a, seen, tokio::time::sleep(Duration::from_millis(200)))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        changes.noticed("schedule", &format!("wb.ev.{b}.schedule.{b}"));
        assert_eq!(waiting.await.unwrap(), Woken::Reached);

        // Its own tenant's change while it waits ends it.
        let seen = changes.seen(a);
        let waiting = {
            let changes = changes.clone();
            tokio::spawn(async move { changes.wait_until(a, seen, std::future::pending()).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        changes.noticed(
            "campaign",
            &format!("wb.ev.{a}.campaign.{}", uuid::Uuid::nil()),
        );
        let woken = tokio::time::timeout(Duration::from_secs(1), waiting).await;
        assert_eq!(woken.unwrap().unwrap(), Woken::Changed);
    }
}
