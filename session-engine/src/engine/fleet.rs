//! The engine as one of a fleet: where sessions go, and handing them over.
//!
//! - **View**: every engine watches the heartbeat bucket, so it knows the
//!   live engines and their load within milliseconds of their last beat
//!   (an engine beats again at once after it took or gave up a session).
//!   Placements it decided and the chosen engine has not yet beaten for
//!   count on top ([`View::pending`]), so a burst of starts spreads.
//! - **Placement** ([`wablast_workflows::fleet::place`]): a started
//!   session, or one found free at reconciliation, is taken only by the
//!   engine it is placed on; any engine takes a session left free longer
//!   than [`PLACEMENT_GRACE`] (its chosen engine did not).
//! - **Hand-over** ([`Engine::hand_over`]): the holder stops the session
//!   (its send in flight finishes, commands in hand go back to the queue),
//!   rewrites the lease to name the taker, and asks the taker to take it
//!   (`<prefix>.fleet.<engine>.take`); the taker answers once it runs the
//!   session. A taker that does not is withdrawn from the lease, and the
//!   session taken again here (or by anyone).
//! - **Pins**: a session pinned to an engine runs there whenever that
//!   engine is live and not drained; while it is away the session runs
//!   elsewhere, and its holder hands it back once the pinned engine beats
//!   again ([`Engine::return_pinned_soon`], at each reconciliation).
//! - **Drain**: a drained engine hands its sessions over one at a time
//!   and takes none; SIGTERM drains too, bounded by
//!   [`super::EngineConfig::drain_timeout`], before the leases left are
//!   released.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use chrono::Utc;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use wablast_domain::types::{SessionId, TenantId};
use wablast_eventstore::Commit;
use wablast_workflows::fleet::{
    EngineInfo, FleetRefusal, FleetReply, FleetVerb, MoveRequest, TakeRequest, fleet_subject, place,
};

use super::{Engine, EngineError};

/// How long a free session waits for the engine it is placed on before
/// any engine takes it.
pub(super) const PLACEMENT_GRACE: Duration = Duration::from_secs(3);
/// How long a holder waits for its taker to say it runs the session (a
/// busy taker starting the session's driver can take seconds; a refusal
/// bounces the session back).
const TAKE_ANSWER: Duration = Duration::from_secs(8);

/// What an engine knows of the fleet.
#[derive(Default)]
pub(super) struct View {
    /// The other engines' last heartbeats, as seen, with when they were
    /// seen.
    engines: HashMap<String, (EngineInfo, Instant)>,
    /// Placements decided here, by engine, not yet in its heartbeat.
    pending: HashMap<String, Vec<Instant>>,
    /// Free sessions seen at reconciliation, since when.
    pub(super) free_since: HashMap<SessionId, Instant>,
    /// When this engine's sessions sent their messages (the last minute).
    pub(super) sends: VecDeque<Instant>,
}

impl Engine {
    /// This engine's heartbeat as of now.
    pub(super) fn info(&self) -> EngineInfo {
        let sessions = self.running.lock().expect("engine lock").len();
        let sends_per_minute = {
            let mut view = self.view.lock().expect("engine lock");
            let minute_ago = Instant::now() - Duration::from_secs(60);
            while view.sends.front().is_some_and(|at| *at < minute_ago) {
                view.sends.pop_front();
            }
            view.sends.len() as u64
        };
        EngineInfo {
            engine: self.config.engine_id.clone(),
            started_at: self.started_at,
            heartbeat_at: Utc::now(),
            sessions,
            host: host(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            sends_per_minute,
            memory_rss_bytes: memory_rss_bytes(),
            draining: self.draining.load(Ordering::SeqCst),
            sending_held: self
                .sending_held
                .borrow()
                .clone()
                .filter(|hold| hold.until > Utc::now()),
        }
    }

    /// Says this engine is alive, and how loaded.
    pub(super) async fn beat(&self) {
        let info = self.info();
        metrics::gauge!(super::SESSIONS_HELD).set(info.sessions as f64);
        metrics::gauge!(SENDS_PER_MINUTE).set(info.sends_per_minute as f64);
        if let Err(err) = self.registry.heartbeat(&info).await {
            warn!(error = %wablast_eventstore::report::Chain(&err), "heartbeat not written; trying again");
        }
    }

    /// The live engines as this one sees them, itself included, each
    /// with the placements decided here that its heartbeat does not show
    /// yet counted as sessions.
    fn fleet(&self) -> Vec<EngineInfo> {
        let me = self.info();
        let ttl = self.config.lease_ttl;
        let mut view = self.view.lock().expect("engine lock");
        let now = Instant::now();
        let mut engines: Vec<EngineInfo> = view
            .engines
            .values()
            .filter(|(info, seen)| info.engine != me.engine && now.duration_since(*seen) < ttl)
            .map(|(info, _)| info.clone())
            .collect();
        engines.push(me);
        let View {
            pending,
            engines: seen,
            ..
        } = &mut *view;
        for info in &mut engines {
            if let Some(placed) = pending.get_mut(&info.engine) {
                let beaten = seen.get(&info.engine).map(|(_, at)| *at);
                placed.retain(|at| {
                    now.duration_since(*at) < Duration::from_secs(5)
                        && beaten.is_none_or(|beaten| beaten < *at)
                });
                info.sessions += placed.len();
            }
        }
        engines
    }

    /// The engine a session needing one goes to (`excluded`: not that
    /// one), counted as pending on it.
    pub(super) async fn placement(
        &self,
        session: SessionId,
        excluded: Option<&str>,
    ) -> Option<String> {
        let pinned = match self.fleet_control.pinned(&session.to_string()).await {
            Ok(pinned) => pinned,
            Err(err) => {
                debug!(error = %wablast_eventstore::report::Chain(&err), %session, "pin not read");
                None
            }
        };
        let engines = self.fleet();
        let chosen = place(
            &session.to_string(),
            &engines,
            &Default::default(),
            pinned.as_deref(),
            excluded,
        )?;
        self.view
            .lock()
            .expect("engine lock")
            .pending
            .entry(chosen.clone())
            .or_default()
            .push(Instant::now());
        Some(chosen)
    }

    /// Whether this engine takes a session that was started.
    pub(super) async fn placed_here(&self, session: SessionId) -> bool {
        if self.draining.load(Ordering::SeqCst) {
            return false;
        }
        self.placement(session, None).await.as_deref() == Some(self.config.engine_id.as_str())
    }

    /// Whether this engine takes a session found free at reconciliation:
    /// placed here, or left free past [`PLACEMENT_GRACE`].
    pub(super) async fn takes_free(&self, session: SessionId) -> bool {
        if self.draining.load(Ordering::SeqCst) {
            return false;
        }
        let since = *self
            .view
            .lock()
            .expect("engine lock")
            .free_since
            .entry(session)
            .or_insert_with(Instant::now);
        since.elapsed() >= PLACEMENT_GRACE || self.placed_here(session).await
    }

    /// Keeps [`View::engines`] up to date from the heartbeat bucket, and
    /// reconciles soon after an engine's heartbeat goes (it stopped or
    /// died: its sessions need a new holder).
    pub(super) async fn watch_fleet(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let mut entries = match self.registry.watch().await {
                Ok(entries) => entries,
                Err(err) => {
                    debug!(error = %wablast_eventstore::report::Chain(&err), "fleet not watched; trying again");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            let mut check = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = check.tick() => self.notice_departures(),
                    entry = entries.next() => match entry {
                        Some(Ok(entry)) => self.seen(entry),
                        Some(Err(err)) => {
                            debug!(error = %err, "fleet watch failed; watching again");
                            break;
                        }
                        None => break,
                    },
                }
            }
        }
    }

    fn seen(&self, entry: kv::Entry) {
        let mut view = self.view.lock().expect("engine lock");
        match entry.operation {
            kv::Operation::Put => {
                if let Ok(info) = serde_json::from_slice::<EngineInfo>(&entry.value) {
                    view.engines
                        .insert(info.engine.clone(), (info, Instant::now()));
                }
            }
            kv::Operation::Delete | kv::Operation::Purge => {
                if view.engines.remove(&entry.key).is_some() {
                    self.reconcile_soon.notify_one();
                }
            }
        }
    }

    /// An engine whose heartbeat was not renewed for a TTL is gone: its
    /// leases have expired (they are renewed before each beat).
    fn notice_departures(&self) {
        let ttl = self.config.lease_ttl;
        let mut view = self.view.lock().expect("engine lock");
        let before = view.engines.len();
        view.engines
            .retain(|_, (_, seen)| seen.elapsed() < ttl + Duration::from_millis(250));
        if view.engines.len() < before {
            self.reconcile_soon.notify_one();
        }
    }

    /// Counts this engine's sends (for its heartbeat's sends per minute)
    /// from the message commits it makes.
    pub(super) async fn count_sends(self: Arc<Self>, stop: CancellationToken) {
        let subject = format!("{}.ev.*.message.*", self.log.prefix());
        let Ok(mut commits) = self.client.subscribe(subject).await else {
            warn!("message commits not watched: sends per minute stay 0");
            return;
        };
        let me = format!("\"{}\"", self.config.engine_id);
        loop {
            let message = tokio::select! {
                () = stop.cancelled() => return,
                message = commits.next() => match message {
                    Some(message) => message,
                    None => return,
                },
            };
            // Cheap checks first: most commits are not this engine's sends.
            if !contains(&message.payload, b"\"MessageSent\"")
                || !contains(&message.payload, me.as_bytes())
            {
                continue;
            }
            let Ok(commit) = serde_json::from_slice::<Commit>(&message.payload) else {
                continue;
            };
            let mine = matches!(&commit.actor, wablast_eventstore::Actor::Engine(id) if *id == self.config.engine_id);
            if mine {
                let sent = commit
                    .events
                    .iter()
                    .filter(|e| e.event_type == "MessageSent")
                    .count();
                let mut view = self.view.lock().expect("engine lock");
                let now = Instant::now();
                view.sends.extend(std::iter::repeat_n(now, sent));
            }
        }
    }

    /// Answers the fleet's requests to this engine (takes, moves, drain
    /// marks) until `stop`.
    pub(super) async fn serve_fleet(
        self: Arc<Self>,
        stop: CancellationToken,
    ) -> Result<(), EngineError> {
        let subject = format!("{}.fleet.{}.*", self.log.prefix(), self.config.engine_id);
        let mut requests = self
            .client
            .subscribe(subject)
            .await
            .map_err(|err| EngineError::Nats(err.to_string()))?;
        tokio::spawn(async move {
            loop {
                let request = tokio::select! {
                    () = stop.cancelled() => return,
                    request = requests.next() => match request {
                        Some(request) => request,
                        None => return,
                    },
                };
                let verb = request
                    .subject
                    .as_str()
                    .rsplit('.')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let engine = self.clone();
                // Each on its own task: a take waits for its driver.
                tokio::spawn(async move {
                    let reply = engine.clone().answer_fleet(&verb, &request.payload).await;
                    if let Some(to) = request.reply {
                        let body = serde_json::to_vec(&reply).expect("a reply serializes");
                        if let Err(err) = engine.client.publish(to, body.into()).await {
                            debug!(error = %err, "fleet reply not sent");
                        }
                    }
                });
            }
        });
        Ok(())
    }

    async fn answer_fleet(self: Arc<Self>, verb: &str, payload: &[u8]) -> FleetReply {
        let refused = |reason, message: String| FleetReply::Refused { reason, message };
        if verb == FleetVerb::Drain.as_str() {
            self.clone().look_at_drain_mark().await;
            return FleetReply::Moved {
                engine: self.config.engine_id.clone(),
            };
        }
        if verb == FleetVerb::Take.as_str() {
            let Ok(request) = serde_json::from_slice::<TakeRequest>(payload) else {
                return refused(
                    FleetRefusal::TargetRefused,
                    "unreadable take request".into(),
                );
            };
            let (Ok(tenant), Ok(session)) = (
                request.tenant.parse::<TenantId>(),
                request.session.parse::<SessionId>(),
            ) else {
                return refused(FleetRefusal::TargetRefused, "bad ids".into());
            };
            if self.draining.load(Ordering::SeqCst) || self.stopping.is_cancelled() {
                return refused(
                    FleetRefusal::Draining,
                    format!("engine {} is drained", self.config.engine_id),
                );
            }
            self.clone().take(tenant, session).await;
            return if self
                .running
                .lock()
                .expect("engine lock")
                .contains_key(&session)
            {
                self.beat().await;
                FleetReply::Moved {
                    engine: self.config.engine_id.clone(),
                }
            } else {
                refused(
                    FleetRefusal::TargetRefused,
                    format!("engine {} did not take the session", self.config.engine_id),
                )
            };
        }
        if verb == FleetVerb::Move.as_str() {
            let Ok(request) = serde_json::from_slice::<MoveRequest>(payload) else {
                return refused(FleetRefusal::NotHeld, "unreadable move request".into());
            };
            let Ok(session) = request.session.parse::<SessionId>() else {
                return refused(FleetRefusal::NotHeld, "bad session id".into());
            };
            if !self
                .running
                .lock()
                .expect("engine lock")
                .contains_key(&session)
            {
                return refused(
                    FleetRefusal::NotHeld,
                    format!("engine {} does not run the session", self.config.engine_id),
                );
            }
            let target = match request.target {
                Some(target) => target,
                None => match self.placement(session, Some(&self.config.engine_id)).await {
                    Some(target) => target,
                    None => {
                        return refused(
                            FleetRefusal::NoEngineAvailable,
                            "no other live, undrained engine".into(),
                        );
                    }
                },
            };
            return match self.clone().hand_over(session, &target).await {
                Ok(engine) => FleetReply::Moved { engine },
                Err(reason) => refused(reason, format!("engine {target} did not take the session")),
            };
        }
        refused(
            FleetRefusal::TargetRefused,
            format!("unknown fleet request {verb:?}"),
        )
    }

    /// Reads this engine's drain mark; once drained, hands its sessions
    /// over one by one (a drain under way goes on).
    pub(super) async fn look_at_drain_mark(self: Arc<Self>) {
        let drained = match self.fleet_control.is_drained(&self.config.engine_id).await {
            Ok(drained) => drained,
            Err(err) => {
                debug!(error = %wablast_eventstore::report::Chain(&err), "drain mark not read");
                return;
            }
        };
        let was = self.draining.swap(drained, Ordering::SeqCst);
        if drained != was {
            info!(engine = %self.config.engine_id, drained, "drain mark changed");
            self.beat().await;
        }
        if drained && !self.draining_now.swap(true, Ordering::SeqCst) {
            let engine = self.clone();
            tokio::spawn(async move {
                engine.clone().drain(None).await;
                engine.draining_now.store(false, Ordering::SeqCst);
            });
        }
    }

    /// Hands each session held here that is pinned to another engine back
    /// to it once that engine is live and not drained (it was away: the
    /// session ran here meanwhile), on a task of its own, one run at a
    /// time.
    pub(super) fn return_pinned_soon(self: Arc<Self>) {
        if self.draining.load(Ordering::SeqCst)
            || self.running.lock().expect("engine lock").is_empty()
            || self.returning_pins.swap(true, Ordering::SeqCst)
        {
            return;
        }
        tokio::spawn(async move {
            self.clone().return_pinned().await;
            self.returning_pins.store(false, Ordering::SeqCst);
        });
    }

    async fn return_pinned(self: Arc<Self>) {
        let pins = match self.fleet_control.marks().await {
            Ok((_, pins)) => pins,
            Err(err) => {
                debug!(error = %wablast_eventstore::report::Chain(&err), "pins not read");
                return;
            }
        };
        if pins.is_empty() {
            return;
        }
        let open: Vec<String> = self
            .fleet()
            .into_iter()
            .filter(|e| !e.draining && e.engine != self.config.engine_id)
            .map(|e| e.engine)
            .collect();
        let held: Vec<SessionId> = self
            .running
            .lock()
            .expect("engine lock")
            .keys()
            .copied()
            .collect();
        for session in held {
            let Some(pinned) = pins.get(&session.to_string()) else {
                continue;
            };
            if !open.contains(pinned) || self.stopping.is_cancelled() {
                continue;
            }
            info!(%session, engine = %pinned, "the engine the session is pinned to is back: handing the session to it");
            if let Err(reason) = self.clone().hand_over(session, pinned).await {
                warn!(%session, engine = %pinned, ?reason, "the pinned session did not go back; trying again later");
            }
        }
    }

    /// Hands every session held here to other engines, one at a time,
    /// while drained (or until `deadline`: a stop's bounded drain).
    pub(super) async fn drain(self: Arc<Self>, deadline: Option<tokio::time::Instant>) {
        loop {
            if deadline.is_none() && !self.draining.load(Ordering::SeqCst) {
                return;
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return;
            }
            let next = self
                .running
                .lock()
                .expect("engine lock")
                .keys()
                .next()
                .copied();
            let Some(session) = next else { return };
            let target = self.placement(session, Some(&self.config.engine_id)).await;
            let Some(target) = target else {
                if deadline.is_some() {
                    info!("no other engine to hand sessions to");
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            if let Err(reason) = self.clone().hand_over(session, &target).await {
                warn!(%session, %target, ?reason, "hand-over refused; trying another engine");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// Hands a session held here to `target` ([`self`](self) module doc).
    ///
    /// # Returns
    /// The engine that runs it now (`target`), or why not.
    pub(super) async fn hand_over(
        self: Arc<Self>,
        session: SessionId,
        target: &str,
    ) -> Result<String, FleetRefusal> {
        if target == self.config.engine_id {
            return Ok(target.to_owned());
        }
        let started = Instant::now();
        let Some(running) = self.stop_running(session).await else {
            return Err(FleetRefusal::NotHeld);
        };
        let tenant = running.tenant;
        let revision = match self.leases.hand_over(running.lease, target).await {
            Ok(Some(revision)) => revision,
            Ok(None) => return Err(FleetRefusal::NotHeld),
            Err(err) => {
                warn!(error = %wablast_eventstore::report::Chain(&err), %session, "lease not handed over; it expires by itself");
                return Err(FleetRefusal::TargetRefused);
            }
        };
        super::lease_changed(super::LeaseChange::HandedOver);
        self.beat().await;
        let request = TakeRequest {
            tenant: tenant.to_string(),
            session: session.to_string(),
        };
        let subject = fleet_subject(self.log.prefix(), target, FleetVerb::Take);
        let body = serde_json::to_vec(&request).expect("a request serializes");
        let answer =
            tokio::time::timeout(TAKE_ANSWER, self.client.request(subject, body.into())).await;
        let taken = match answer {
            Ok(Ok(reply)) => matches!(
                serde_json::from_slice::<FleetReply>(&reply.payload),
                Ok(FleetReply::Moved { .. })
            ),
            _ => false,
        };
        if taken {
            info!(%session, %target, took = ?started.elapsed(), "session handed over");
            return Ok(target.to_owned());
        }
        warn!(%session, %target, "the engine handed the session did not take it: withdrawn");
        if let Err(err) = self.leases.withdraw(&session.to_string(), revision).await {
            debug!(error = %wablast_eventstore::report::Chain(&err), %session, "hand-over not withdrawn; it expires by itself");
        }
        if !self.draining.load(Ordering::SeqCst) && !self.stopping.is_cancelled() {
            self.clone().take(tenant, session).await;
        }
        Err(FleetRefusal::TargetRefused)
    }

    /// A stop's drain: every session handed to another engine, side by
    /// side, within the configured bound.
    pub(super) async fn drain_for_stop(self: Arc<Self>) {
        let bound = self.config.drain_timeout;
        if bound.is_zero() || self.running.lock().expect("engine lock").is_empty() {
            return;
        }
        self.draining.store(true, Ordering::SeqCst);
        self.beat().await;
        let sessions: Vec<SessionId> = self
            .running
            .lock()
            .expect("engine lock")
            .keys()
            .copied()
            .collect();
        let started = Instant::now();
        let handing = futures::stream::iter(sessions).for_each_concurrent(8, |session| {
            let engine = self.clone();
            async move {
                if let Some(target) = engine
                    .placement(session, Some(&engine.config.engine_id))
                    .await
                {
                    let _ = engine.hand_over(session, &target).await;
                }
            }
        });
        if tokio::time::timeout(bound, handing).await.is_err() {
            warn!(bound = ?bound, "stop's drain took too long; the sessions left are released");
        }
        info!(took = ?started.elapsed(), left = self.running.lock().expect("engine lock").len(), "stop's drain done");
    }
}

/// Sends per minute of this process's engine.
const SENDS_PER_MINUTE: &str = "wablast_engine_sends_per_minute";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The machine's name (`HOSTNAME`, else the kernel's).
fn host() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_default()
}

/// This process's resident memory, from `/proc/self/status` (Linux).
fn memory_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl Engine {
    /// Whether another engine's lease on the session lives (an unreadable
    /// lease counts as held: the take would fail the same way).
    pub(super) async fn is_held_elsewhere(&self, session: SessionId) -> bool {
        match self.leases.current(&session.to_string()).await {
            Ok(Some((holder, _))) => holder.engine != self.config.engine_id,
            Ok(None) => false,
            Err(_) => true,
        }
    }
}
