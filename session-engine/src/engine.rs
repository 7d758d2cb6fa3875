//! The engine's session lifecycle: it runs the sessions users start, one
//! engine per session (by lease), reports what their drivers see as
//! `Session` events, publishes QR codes for the API, and answers the API's
//! requests about the sessions it runs (pairing codes, simulator controls).
//!
//! # How sessions reach an engine
//!
//! - **As they happen**: every engine listens to the session events on the
//!   log's subjects (plain NATS, no consumer state). A start asks every
//!   engine; the one that takes the lease runs the session. A stop, logout
//!   or delete is acted on by the engine running it, through its driver.
//! - **Endings** ([`endings`]): a logout or delete also reaches the
//!   session's driver's server (WAHA logs the number out, or forgets the
//!   session) when no engine ran the session: one engine carries it out
//!   once the lease is free.
//! - **Reconciliation**: every [`EngineConfig::reconcile_every`] (and at
//!   start) an engine looks for sessions that should run (their status in
//!   the log is a running one) and that no engine holds, and takes them: a
//!   session whose engine died is taken over once its lease expires, and a
//!   start missed while no engine ran is picked up. The projected
//!   `sessions` table says where to look; the aggregate in the log decides,
//!   so a stale row never restarts a stopped session.
//! - **Leases** ([`crate::lease`]) are renewed four times per TTL, by a
//!   task of their own (a long reconciliation never delays them); an engine
//!   that finds it lost a lease stops running the session at once, and one
//!   that cannot reach NATS keeps it but sends nothing once the lease may
//!   have expired. Taking a lease is recorded on the session
//!   (`SessionHeld`, with the lease's fence), and every status the engine
//!   reports carries that fence: the aggregate refuses a report from an
//!   engine that lost the session. Every change is logged at info level
//!   and counted (`wablast_session_leases_total{change}`).
//!
//! # Drivers
//!
//! - `simulator`: the engine's simulated network.
//! - `waha` and `cloud`: connected with the session's stored credentials
//!   ([`wablast_workflows::credentials::load`], opened with
//!   [`EngineConfig::secret_key`]). A session whose credentials are missing
//!   or do not open is reported `failed` with the reason, as is one whose
//!   driver does not start (its server unreachable, its credentials
//!   refused); a new start tries again. WAHA is told to post the session's
//!   events to `<public_url>/hooks/waha/<session id>`
//!   ([`EngineConfig::public_url`]), signed with a key derived per session
//!   from the secret key; the Cloud API's webhook is the Meta app's, set up
//!   by its owner as `<public_url>/hooks/cloud/<session id>`. The API
//!   forwards those webhooks here ([`control::Verb::Webhook`]), where the
//!   session's webhook sink verifies and reads them into the same stream of
//!   driver events as everything else.
//! - `native`: not run yet (sessions left alone).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv;
use chrono::{TimeDelta, Utc};
use cqrs_es::Aggregate;
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use wablast_domain::campaign::{Campaign, SenderUnavailableReason};
use wablast_domain::inbound::{self, InboundCommand};
use wablast_domain::schedule::Schedule;
use wablast_domain::session::{
    Driver as DriverKind, Fence, Session, SessionCommand, SessionEvent, SessionStatus, StatusReason,
};
use wablast_domain::types::{SessionId, TenantId};
use wablast_domain::wallet::Wallet;
use wablast_eventstore::{
    Actor, Backoff, CommandHandler, CommandMetadata, Commit, EventLog, EventStoreError,
};
use wablast_projections::queries::sessions;

use crate::cloud::{CloudConfig, CloudDriver, CloudOptions, CloudWebhookSink};
use crate::driver::{Connection, Driver, DriverError, DriverEvent};
use crate::lease::{EngineRegistry, Lease, Renewal, SessionLeases};
use crate::native::{
    self,
    driver::{NativeDriver, NativeOptions},
};
use crate::number_checks;
use crate::receipts::{self, ProviderIds};
use crate::sender::{SendConfig, SendContext, SendLoop};
use crate::simulator::{SimulatorConfig, SimulatorError, SimulatorNetwork};
use crate::waha::{WahaConfig, WahaDriver, WahaOptions, WahaWebhookSink};

mod endings;
mod fleet;
mod health;
use crate::webhook::WebhookError;
pub use health::HealthConfig;
use wablast_workflows::auto_replies::AutoReplies;
use wablast_workflows::changes::Changes;
use wablast_workflows::clock::{Clock, SystemClock};
use wablast_workflows::commands::{Commands, key};
use wablast_workflows::control::{
    self, CheckNumbersRequest, ControlError, ControlErrorCode, GroupInfo, GroupMemberInfo,
    GroupMembersRequest, GroupMembersResponse, GroupsRequest, GroupsResponse, PairingCodeRequest,
    PairingCodeResponse, QrEntry, Reply, SimulatorInboundRequest, SimulatorInboundResponse,
    SimulatorScanRequest, SimulatorScanResponse, TemplatesRequest, TemplatesResponse, Verb,
    WebhookResponse,
};
use wablast_workflows::credentials::{
    self, CloudCredentials, CredentialsError, DriverCredentials, SecretKey,
};
use wablast_workflows::direct_sends::DirectSends;
use wablast_workflows::fanout::FanOut;
use wablast_workflows::fleet::{FleetControl, SendingHold};
use wablast_workflows::list_checks::{ListCheckOptions, ListChecks};
use wablast_workflows::plan_lifecycle::PlanLifecycle;
use wablast_workflows::scheduled_starts::ScheduledStarts;
use wablast_workflows::sender_removal;
use wablast_workflows::sends::SendQueue;
use wablast_workflows::settlement::Settlement;
use wablast_workflows::webhooks::{Deliverer, WebhookOptions};

/// The drivers this engine runs.
pub const RUNNABLE_DRIVERS: [DriverKind; 4] = [
    DriverKind::Simulator,
    DriverKind::Native,
    DriverKind::Waha,
    DriverKind::Cloud,
];

/// The default life of a lease without renewal (`WABLAST_LEASE_TTL_SECONDS`):
/// it bounds the failover after a crash (its TTL, plus the moment the
/// others take to notice), under seed 004's 10 s target. Renewed four
/// times per TTL ([`SessionLeases::renew_every`]), a lease is lost only
/// when NATS answers none of four renewals in a row.
pub const DEFAULT_LEASE_TTL_SECONDS: u64 = 6;

/// How an engine runs.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// This engine's id (unique among the installation's engines).
    pub engine_id: String,
    /// How long a lease (and a heartbeat) lives without renewal: the longest
    /// a dead engine's sessions wait to be taken over.
    pub lease_ttl: Duration,
    /// How often to look for sessions that should run and do not.
    pub reconcile_every: Duration,
    /// How the simulated WhatsApp network behaves.
    pub simulator: SimulatorConfig,
    /// How sending behaves.
    pub send: SendConfig,
    /// How often campaigns are looked at for completion and settlement.
    pub settle_every: Duration,
    /// How often due scheduled campaigns are looked for.
    pub scheduled_starts_every: Duration,
    /// How often plans are looked at for a notice or their expiry.
    pub plan_lifecycle_every: Duration,
    /// The clock sending decides by.
    pub clock: Arc<dyn Clock>,
    /// The key the API seals driver credentials with (`WABLAST_SECRET_KEY`
    /// or the data directory's `secret.key`). `None`: WAHA and Cloud API
    /// sessions cannot run here (they are reported failed, saying so).
    pub secret_key: Option<SecretKey>,
    /// Where the drivers' peers reach wablast's HTTP API
    /// (`WABLAST_PUBLIC_URL`, e.g. `https://wablast.example.com`): webhooks
    /// go to `<public_url>/hooks/<driver>/<session id>`.
    pub public_url: String,
    /// The Graph API version of Cloud API numbers whose credentials name
    /// none (`WABLAST_CLOUD_API_VERSION`).
    pub cloud_api_version: String,
    /// A session asks WhatsApp whether a number is on it at most once per
    /// this long (plus up to half of it at random), apart from its sends
    /// (`WABLAST_NUMBER_CHECK_INTERVAL_MS`).
    pub number_check_every: Duration,
    /// How webhooks are delivered (`WABLAST_WEBHOOK_*`). The engine that
    /// holds the deliverer's lock delivers them; without a
    /// [`EngineConfig::secret_key`] none can be signed, and this engine
    /// delivers none.
    pub webhooks: WebhookOptions,
    /// How contact lists' numbers are checked in the background (the
    /// engine that holds the checks' lock works on them).
    pub list_checks: ListCheckOptions,
    /// How long a stop (SIGTERM) spends handing sessions to other engines
    /// before it releases the rest (`WABLAST_ENGINE_DRAIN_SECONDS`; 0:
    /// release them at once).
    pub drain_timeout: Duration,
    /// How silent sessions are probed and failure storms met.
    pub health: HealthConfig,
    /// How native sessions connect: WhatsApp's websocket
    /// (`WABLAST_NATIVE_WS_URL`), the WhatsApp Web version announced
    /// (`WABLAST_NATIVE_WA_VERSION`; unset: asked of WhatsApp at each
    /// start), typing before texts, the wait for the server's ack. Their
    /// keys are sealed with [`EngineConfig::secret_key`].
    pub native: NativeOptions,
}

impl EngineConfig {
    /// Defaults for an engine with this id: 6 s leases (a dead engine's
    /// sessions send elsewhere within about 7 s), reconciliation every 3 s,
    /// a simulator that links only on scan.
    pub fn new(engine_id: impl Into<String>) -> Self {
        Self {
            engine_id: engine_id.into(),
            lease_ttl: Duration::from_secs(DEFAULT_LEASE_TTL_SECONDS),
            reconcile_every: Duration::from_secs(3),
            simulator: SimulatorConfig::default(),
            send: SendConfig::default(),
            settle_every: Duration::from_secs(2),
            scheduled_starts_every: Duration::from_secs(1),
            plan_lifecycle_every: Duration::from_secs(5),
            clock: Arc::new(SystemClock),
            secret_key: None,
            public_url: "http://127.0.0.1:8080".to_owned(),
            cloud_api_version: crate::cloud::DEFAULT_VERSION.to_owned(),
            number_check_every: Duration::from_secs(2),
            webhooks: WebhookOptions::default(),
            list_checks: ListCheckOptions::default(),
            drain_timeout: Duration::from_secs(5),
            health: HealthConfig::default(),
            native: NativeOptions::default(),
        }
    }
}

/// Why the engine stopped.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// NATS or the log failed.
    #[error(transparent)]
    Log(#[from] EventStoreError),
    /// NATS refused a subscription.
    #[error("nats: {0}")]
    Nats(String),
    /// PostgreSQL (the projected sessions) failed.
    #[error("postgres: {0}")]
    Database(#[from] sqlx::Error),
    /// The drivers' HTTP client could not be built.
    #[error("http client: {0}")]
    Http(String),
}

/// A session this engine runs.
struct Running {
    tenant: TenantId,
    driver: Arc<dyn Driver>,
    lease: Lease,
    /// Renewals in a row NATS did not answer.
    unanswered: u32,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// One engine.
pub struct Engine {
    config: EngineConfig,
    client: async_nats::Client,
    log: EventLog,
    db: PgPool,
    sessions: CommandHandler<Session>,
    aggregates: Commands,
    queue: SendQueue,
    provider_ids: ProviderIds,
    /// Commits seen on what the send loops read for every message.
    changes: Changes,
    leases: SessionLeases,
    registry: EngineRegistry,
    qr: kv::Store,
    network: SimulatorNetwork,
    /// The HTTP drivers' client (WAHA, Cloud API).
    http: reqwest::Client,
    running: Mutex<HashMap<SessionId, Running>>,
    /// Sessions being taken now (a start and a reconciliation may try the
    /// same one at once).
    taking: Mutex<HashSet<SessionId>>,
    /// Takes under way at once (started sessions and reconciliation).
    take_permits: Arc<tokio::sync::Semaphore>,
    started_at: chrono::DateTime<Utc>,
    /// The operator's marks: drained engines, pinned sessions.
    fleet_control: FleetControl,
    /// What this engine knows of the fleet ([`fleet`]).
    view: Mutex<fleet::View>,
    /// Drained: it takes no session, and hands over those it holds.
    draining: AtomicBool,
    /// A drain's hand-overs are under way.
    draining_now: AtomicBool,
    /// Pinned sessions are being handed back to their engines.
    returning_pins: AtomicBool,
    /// Cancelled once the engine stops (no take is accepted then).
    stopping: CancellationToken,
    /// Wakes the reconciliation early (an engine left the fleet).
    reconcile_soon: tokio::sync::Notify,
    /// Its sessions' failures lately ([`health`]).
    storm: Mutex<health::Storm>,
    /// Every send held (a failure storm), while it lasts.
    sending_held: watch::Sender<Option<SendingHold>>,
}

impl Engine {
    /// An engine on this log and query database, ready to [`Engine::run`].
    pub async fn new(
        config: EngineConfig,
        client: async_nats::Client,
        log: EventLog,
        db: PgPool,
    ) -> Result<Arc<Self>, EngineError> {
        let js = log.jetstream().clone();
        let prefix = log.prefix().clone();
        let leases = SessionLeases::open(&js, &prefix, &config.engine_id, config.lease_ttl).await?;
        let registry = EngineRegistry::open(&js, &prefix, config.lease_ttl).await?;
        let fleet_control = FleetControl::open(&js, &prefix).await?;
        let qr = control::qr_bucket(&js, &prefix).await?;
        let aggregates = Commands::new(&log);
        let queue = SendQueue::open(&js, &prefix).await?;
        let provider_ids = ProviderIds::open(&js, &prefix).await?;
        let network = SimulatorNetwork::shared(config.simulator.clone(), &js, &prefix).await?;
        // A connect timeout well under the drivers' request timeout: a send
        // whose connection was never made is retried, one that timed out
        // waiting for its answer is not (see `WahaDriver::connect`).
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|err| EngineError::Http(err.to_string()))?;
        Ok(Arc::new(Self {
            network,
            http,
            config,
            client,
            log,
            db,
            sessions: aggregates.sessions.clone(),
            aggregates,
            queue,
            provider_ids,
            changes: Changes::default(),
            leases,
            registry,
            qr,
            running: Mutex::default(),
            taking: Mutex::default(),
            take_permits: Arc::new(tokio::sync::Semaphore::new(TAKEN_AT_ONCE)),
            started_at: Utc::now(),
            fleet_control,
            view: Mutex::default(),
            draining: AtomicBool::new(false),
            draining_now: AtomicBool::new(false),
            returning_pins: AtomicBool::new(false),
            stopping: CancellationToken::new(),
            reconcile_soon: tokio::sync::Notify::new(),
            storm: Mutex::default(),
            sending_held: watch::Sender::new(None),
        }))
    }

    /// The simulated network this engine's simulator sessions are on.
    pub fn network(&self) -> &SimulatorNetwork {
        &self.network
    }

    /// The sessions this engine runs now.
    pub fn running(&self) -> Vec<SessionId> {
        let mut ids: Vec<SessionId> = self
            .running
            .lock()
            .expect("engine lock")
            .keys()
            .copied()
            .collect();
        ids.sort();
        ids
    }

    /// Runs until `shutdown`: then stops every session's driver (keeping the
    /// links) and gives the leases up, so another engine takes over at once.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), EngineError> {
        let subject = format!("{}.ev.*.{}.*", self.log.prefix(), Session::TYPE);
        let mut events = self
            .client
            .subscribe(subject)
            .await
            .map_err(|err| EngineError::Nats(err.to_string()))?;
        info!(engine = %self.config.engine_id, "engine running");
        let mut processes = self.clone().start_processes(shutdown.clone())?;
        processes.push(
            self.changes
                .watch(
                    &self.client,
                    self.log.prefix(),
                    &[Campaign::TYPE, Session::TYPE, Schedule::TYPE, Wallet::TYPE],
                    shutdown.clone(),
                )
                .await
                .map_err(|err| EngineError::Nats(err.to_string()))?,
        );
        processes.push(tokio::spawn(self.clone().keep_leases(shutdown.clone())));
        // Alive through the stop's drain: they end after it.
        let fleet_stop = CancellationToken::new();
        let fleet_tasks = vec![
            tokio::spawn(self.clone().watch_fleet(fleet_stop.clone())),
            tokio::spawn(self.clone().count_sends(fleet_stop.clone())),
        ];
        self.clone().serve_fleet(fleet_stop.clone()).await?;
        self.clone().look_at_drain_mark().await;
        self.beat().await;
        self.auto_start().await;
        let mut reconcile = tokio::time::interval(self.config.reconcile_every);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.reconcile_soon.notified() => {
                    // Its leases expire about now: look a few times.
                    for wait in [300, 700, 1000] {
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                        if let Err(err) = self.clone().reconcile().await {
                            warn!(error = %wablast_eventstore::report::Chain(&err), "reconciliation failed; trying again later");
                        }
                    }
                }
                message = events.next() => {
                    let Some(message) = message else { break };
                    match serde_json::from_slice::<Commit>(&message.payload) {
                        Ok(commit) => self.clone().on_commit(commit).await,
                        Err(err) => warn!(error = %wablast_eventstore::report::Chain(&err), "undecodable session commit on the log subject"),
                    }
                }
                _ = reconcile.tick() => {
                    if let Err(err) = self.clone().reconcile().await {
                        warn!(error = %wablast_eventstore::report::Chain(&err), "reconciliation failed; trying again later");
                    }
                    self.clone().return_pinned_soon();
                }
            }
        }
        self.clone().drain_for_stop().await;
        self.stopping.cancel();
        self.shut_down().await;
        fleet_stop.cancel();
        for task in fleet_tasks {
            let _ = task.await;
        }
        for process in processes {
            let _ = process.await;
        }
        Ok(())
    }

    fn actor(&self) -> Actor {
        Actor::Engine(self.config.engine_id.clone())
    }

    /// The processes every engine runs beside its sessions: the fan-out
    /// and the auto-responder (durable consumers: each start, each
    /// received message handled by one engine), completion and
    /// settlement, and scheduled starts (decided by the aggregates, so
    /// engines running them side by side record each once).
    fn start_processes(
        self: Arc<Self>,
        shutdown: CancellationToken,
    ) -> Result<Vec<JoinHandle<()>>, EngineError> {
        let spec = FanOut::consumer(&self.log)?;
        let fanout = FanOut::new(
            self.db.clone(),
            self.aggregates.clone(),
            self.queue.clone(),
            self.config.clock.clone(),
            self.actor(),
        );
        let settlement = Settlement::new(
            self.log.clone(),
            self.db.clone(),
            self.aggregates.clone(),
            self.config.clock.clone(),
            self.actor(),
            spec.name.clone(),
        );
        let log = self.log.clone();
        let fanout_shutdown = shutdown.clone();
        let fanout = tokio::spawn(async move {
            loop {
                match wablast_eventstore::run_consumer(
                    &log,
                    &spec,
                    &fanout,
                    fanout_shutdown.clone(),
                )
                .await
                {
                    Ok(()) => return,
                    Err(err) => {
                        warn!(error = %wablast_eventstore::report::Chain(&err), "campaign fan-out stopped; starting it again");
                        tokio::select! {
                            () = fanout_shutdown.cancelled() => return,
                            () = tokio::time::sleep(Duration::from_secs(5)) => {}
                        }
                    }
                }
            }
        });
        let scheduled = ScheduledStarts::new(
            self.aggregates.clone(),
            self.db.clone(),
            self.config.clock.clone(),
            self.config.scheduled_starts_every,
        );
        let scheduled = tokio::spawn(scheduled.run(shutdown.clone()));
        let lifecycle = PlanLifecycle::new(
            self.aggregates.clone(),
            self.db.clone(),
            self.config.clock.clone(),
            self.config.plan_lifecycle_every,
        );
        let lifecycle = tokio::spawn(lifecycle.run(shutdown.clone()));
        let endings = tokio::spawn(endings::run(self.clone(), shutdown.clone()));
        let auto_replies = AutoReplies::new(
            self.db.clone(),
            self.aggregates.clone(),
            DirectSends::new(self.aggregates.clone(), self.log.clone(), self.db.clone()),
            self.config.clock.clone(),
            self.actor(),
        );
        let auto_replies = tokio::spawn(auto_replies.run(self.log.clone(), shutdown.clone()));
        let list_checks = ListChecks::new(
            self.db.clone(),
            self.aggregates.clone(),
            self.log.clone(),
            self.actor(),
            self.config.list_checks.clone(),
        );
        let list_checks = tokio::spawn(list_checks.run(shutdown.clone()));
        let mut processes = vec![
            fanout,
            scheduled,
            lifecycle,
            endings,
            auto_replies,
            list_checks,
        ];
        match &self.config.secret_key {
            Some(key) => {
                let deliverer = Deliverer::new(
                    self.db.clone(),
                    self.aggregates.clone(),
                    self.actor(),
                    self.config.webhooks.clone(),
                    key.clone(),
                );
                processes.push(tokio::spawn(deliverer.run(shutdown.clone())));
            }
            None => warn!("no secret key: this engine delivers no webhooks"),
        }
        let settle_every = self.config.settle_every;
        processes.push(tokio::spawn(settlement.run(settle_every, shutdown)));
        Ok(processes)
    }

    /// Starts the sessions flagged to start with the engine that are not
    /// running (a stopped session stays stopped only without the flag).
    async fn auto_start(&self) {
        let flagged = match sessions::in_statuses(
            &self.db,
            &[
                SessionStatus::Idle,
                SessionStatus::Disconnected,
                SessionStatus::Failed,
            ],
            None,
            true,
        )
        .await
        {
            Ok(rows) => rows,
            Err(err) => {
                warn!(error = %wablast_eventstore::report::Chain(&err), "sessions to auto-start not read");
                return;
            }
        };
        for (tenant, session) in flagged {
            let key = key(tenant, session);
            let started = self
                .sessions
                .execute(
                    &key,
                    SessionCommand::StartSession { at: Utc::now() },
                    &CommandMetadata::new(self.actor()),
                )
                .await;
            match started {
                Ok(_) => info!(%session, "session auto-started"),
                Err(err) => {
                    debug!(error = %wablast_eventstore::report::Chain(&err), %session, "session not auto-started")
                }
            }
        }
    }

    /// A session that can no longer send (banned, logged out, deleted)
    /// leaves its campaigns' rotations
    /// ([`wablast_workflows::sender_removal`]).
    async fn sender_gone(
        &self,
        tenant: TenantId,
        session: SessionId,
        reason: SenderUnavailableReason,
    ) {
        sender_removal::remove_sender(
            &self.aggregates,
            &self.log,
            &self.db,
            tenant,
            session,
            reason,
            self.actor(),
        )
        .await;
    }

    async fn on_commit(self: Arc<Self>, commit: Commit) {
        let Ok(tenant) = commit.tenant.parse::<TenantId>() else {
            return;
        };
        let Ok(session) = commit.aggregate_id.parse::<SessionId>() else {
            return;
        };
        for recorded in commit.into_recorded(0) {
            let event = match self.sessions.decode(recorded) {
                Ok(event) => event,
                Err(err) => {
                    warn!(error = %wablast_eventstore::report::Chain(&err), %session, "undecodable session event");
                    continue;
                }
            };
            match event {
                // Side by side (a thousand sessions started at once are
                // taken in parallel), bounded; a stop that follows waits for
                // the take to finish (`release`).
                SessionEvent::SessionStartRequested { .. } => {
                    let engine = self.clone();
                    tokio::spawn(async move {
                        if engine.placed_here(session).await && engine.begin_take(session) {
                            engine.take_begun(tenant, session).await;
                        }
                    });
                }
                SessionEvent::SessionStopRequested { .. } => {
                    self.release(session, Ending::Stop).await
                }
                // Logged out or deleted by its running driver here, before
                // its lease goes; the endings (`endings`) tell the driver's
                // server again once the lease is free, and alone when no
                // engine ran the session.
                SessionEvent::SessionLoggedOut { .. } => {
                    self.release(session, Ending::Logout).await;
                    self.sender_gone(tenant, session, SenderUnavailableReason::LoggedOut)
                        .await;
                }
                SessionEvent::SessionDeleted { .. } => {
                    self.release(session, Ending::Delete).await;
                    self.sender_gone(tenant, session, SenderUnavailableReason::Deleted)
                        .await;
                }
                SessionEvent::SessionStatusChanged {
                    to: SessionStatus::LoggedOut,
                    reason,
                    ..
                } => {
                    let reason = match reason {
                        Some(StatusReason::Banned) => SenderUnavailableReason::Banned,
                        _ => SenderUnavailableReason::LoggedOut,
                    };
                    self.sender_gone(tenant, session, reason).await;
                }
                _ => {}
            }
        }
    }

    /// Takes every session that should run and no engine runs.
    async fn reconcile(self: Arc<Self>) -> Result<(), EngineError> {
        let candidates = sessions::in_statuses(
            &self.db,
            &[
                SessionStatus::Starting,
                SessionStatus::Qr,
                SessionStatus::Pairing,
                SessionStatus::Authenticated,
                SessionStatus::Ready,
                SessionStatus::Disconnected,
            ],
            Some(&RUNNABLE_DRIVERS),
            false,
        )
        .await?;
        let free: Vec<_> = {
            let running = self.running.lock().expect("engine lock");
            candidates
                .into_iter()
                .filter(|(_, session)| !running.contains_key(session))
                .collect()
        };
        if self.draining.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        // Sessions no longer free are forgotten; the others wait for the
        // engine they are placed on, for a while ([`fleet`]).
        let mut mine = Vec::new();
        {
            let ids: HashSet<SessionId> = free.iter().map(|(_, s)| *s).collect();
            self.view
                .lock()
                .expect("engine lock")
                .free_since
                .retain(|s, _| ids.contains(s));
        }
        for (tenant, session) in free {
            if self.is_held_elsewhere(session).await {
                self.view
                    .lock()
                    .expect("engine lock")
                    .free_since
                    .remove(&session);
                continue;
            }
            if self.takes_free(session).await {
                mine.push((tenant, session));
            }
        }
        let free = mine;
        futures::stream::iter(free)
            .for_each_concurrent(TAKEN_AT_ONCE, |(tenant, session)| {
                self.clone().take(tenant, session)
            })
            .await;
        Ok(())
    }

    /// Runs the session if the log says it should run, it is one this
    /// engine can run, and its lease is free.
    async fn take(self: Arc<Self>, tenant: TenantId, session: SessionId) {
        if self.begin_take(session) {
            self.take_begun(tenant, session).await;
        }
    }

    /// Takes a session marked by [`Engine::begin_take`], at most
    /// [`TAKEN_AT_ONCE`] at a time (starts and reconciliation together).
    async fn take_begun(self: Arc<Self>, tenant: TenantId, session: SessionId) {
        let permit = self.take_permits.clone().acquire_owned().await;
        self.clone().take_free(tenant, session).await;
        self.end_take(session);
        drop(permit);
    }

    /// Marks the session as being taken here; `false` when it runs here
    /// or is being taken already.
    fn begin_take(&self, session: SessionId) -> bool {
        !self
            .running
            .lock()
            .expect("engine lock")
            .contains_key(&session)
            && self.taking.lock().expect("engine lock").insert(session)
    }

    fn end_take(&self, session: SessionId) {
        self.taking.lock().expect("engine lock").remove(&session);
    }

    async fn take_free(self: Arc<Self>, tenant: TenantId, session: SessionId) {
        let key = key(tenant, session);
        let state = match self.sessions.load(&key).await {
            Ok(loaded) => loaded.aggregate,
            Err(err) => {
                warn!(error = %wablast_eventstore::report::Chain(&err), %session, "cannot load the session");
                return;
            }
        };
        if !state.exists() || state.is_deleted() || !state.status().is_running() {
            return;
        }
        if !RUNNABLE_DRIVERS.contains(&state.driver()) {
            // Never left starting with no word: it says why it cannot run.
            if state.status() != SessionStatus::Failed {
                self.report_failure(
                    tenant,
                    session,
                    None,
                    format!(
                        "the {} driver is not built yet: use simulator, waha or cloud",
                        state.driver().as_str()
                    ),
                )
                .await;
            }
            return;
        }
        let lease = match self.leases.acquire(&session.to_string()).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return,
            Err(err) => {
                warn!(error = %wablast_eventstore::report::Chain(&err), %session, "cannot take the lease");
                return;
            }
        };
        let fence = lease.fence();
        let held = Held {
            tenant,
            session,
            fence,
        };
        // Recorded before anything runs: from now on only this engine's
        // reports count.
        let recorded = self
            .sessions
            .execute(
                &key,
                SessionCommand::HoldSession {
                    engine: self.config.engine_id.clone(),
                    fence,
                    at: Utc::now(),
                },
                &CommandMetadata::new(self.actor()),
            )
            .await;
        if let Err(err) = recorded {
            info!(error = %wablast_eventstore::report::Chain(&err), %session, %fence,
                "lease taken but the session refused it (stopped, or held with a later fence): giving it back");
            if let Err(err) = self.leases.release(lease).await {
                debug!(error = %wablast_eventstore::report::Chain(&err), %session, "lease not released; it expires by itself");
            }
            return;
        }
        lease_changed(LeaseChange::Taken);
        info!(%session, %tenant, %fence, engine = %self.config.engine_id, "took the session's lease");
        let (connection, webhooks) = match self.connect(tenant, session, &state, fence).await {
            Ok(connected) => connected,
            Err(failure) => {
                match failure {
                    NotConnected::Refused(reason) => {
                        warn!(%session, reason = %reason, "the session cannot run: reported failed");
                        self.report_failure(tenant, session, Some(fence), reason)
                            .await;
                    }
                    NotConnected::Later(err) => {
                        warn!(error = %err, %session, "cannot connect the session now; trying again later");
                    }
                }
                if let Err(err) = self.leases.release(lease).await {
                    debug!(error = %wablast_eventstore::report::Chain(&err), %session, "lease not released; it expires by itself");
                }
                lease_changed(LeaseChange::Released);
                return;
            }
        };
        let driver: Arc<dyn Driver> = Arc::from(connection.driver);
        let stop = CancellationToken::new();
        let (status, status_seen) = watch::channel(state.status());
        let status_watch = status.subscribe();
        let status_told = status.clone();
        let sending = SendLoop::new(
            SendContext {
                aggregates: self.aggregates.clone(),
                queue: self.queue.clone(),
                provider_ids: self.provider_ids.clone(),
                clock: self.config.clock.clone(),
                db: self.db.clone(),
                config: self.config.send.clone(),
                actor: self.actor(),
                changes: self.changes.clone(),
                hold: lease.hold(),
                engine_hold: self.sending_held.subscribe(),
            },
            tenant,
            session,
            driver.clone(),
            status_seen,
            stop.clone(),
        );
        let mut tasks = vec![
            tokio::spawn(self.clone().report(
                held,
                connection.events,
                driver.clone(),
                status,
                stop.clone(),
            )),
            tokio::spawn(sending.run()),
        ];
        match self
            .clone()
            .serve_requests(tenant, session, driver.clone(), webhooks, stop.clone())
            .await
        {
            Ok(task) => tasks.push(task),
            Err(err) => {
                warn!(error = %wablast_eventstore::report::Chain(&err), %session, "cannot answer requests for the session")
            }
        }
        let stop_connecting = stop.clone();
        self.running.lock().expect("engine lock").insert(
            session,
            Running {
                tenant,
                driver: driver.clone(),
                lease,
                unanswered: 0,
                stop,
                tasks,
            },
        );
        info!(%session, %tenant, "running the session");
        match driver.start().await {
            Ok(()) => {}
            Err(err @ DriverError::Failed(_)) => {
                // Its server unreachable or restarting, WhatsApp away: the
                // session is disconnected and tried again with back-off,
                // each try visible on it.
                let error = format!("the driver did not start: {err}");
                warn!(%session, %error, "the driver did not start; trying again");
                let command = fenced(
                    fence,
                    SessionCommand::ReportStatus {
                        status: SessionStatus::Disconnected,
                        phone_number: None,
                        error: Some(error.clone()),
                        reason: Some(StatusReason::ConnectionLost),
                        at: Utc::now(),
                    },
                );
                match self
                    .sessions
                    .execute(&key, command, &CommandMetadata::new(self.actor()))
                    .await
                {
                    Ok(_) => {
                        status_told.send_replace(SessionStatus::Disconnected);
                    }
                    Err(err) => {
                        debug!(error = %wablast_eventstore::report::Chain(&err), %session, "disconnection not recorded")
                    }
                }
                tokio::spawn(self.clone().keep_connecting(
                    held,
                    driver,
                    status_watch,
                    stop_connecting,
                    error,
                ));
            }
            Err(err) => {
                // It cannot run as it is: failed, with why, and let go, so
                // that a new start takes it again.
                warn!(error = %wablast_eventstore::report::Chain(&err), %session, "the driver did not start");
                self.report_failure(
                    tenant,
                    session,
                    Some(fence),
                    format!("the driver did not start: {err}"),
                )
                .await;
                self.release(session, Ending::Stop).await;
            }
        }
    }

    /// Starts a disconnected session's driver again with back-off (from
    /// [`RECONNECT`]: 1 s, doubling, up to a minute)
    /// until it connects, the session moves on or it is stopped; records
    /// each try on the session (`SessionReconnectScheduled`: the attempt,
    /// the next try, why the last failed).
    async fn keep_connecting(
        self: Arc<Self>,
        held: Held,
        driver: Arc<dyn Driver>,
        mut status: watch::Receiver<SessionStatus>,
        stop: CancellationToken,
        mut error: String,
    ) {
        let Held {
            tenant,
            session,
            fence,
        } = held;
        let key = key(tenant, session);
        for attempt in 1u32.. {
            let delay = RECONNECT.after(u64::from(attempt));
            let next_try_at = Utc::now() + TimeDelta::from_std(delay).unwrap_or_default();
            let scheduled = self
                .sessions
                .execute(
                    &key,
                    fenced(
                        fence,
                        SessionCommand::ReportReconnect {
                            attempt,
                            next_try_at,
                            error: error.clone(),
                            at: Utc::now(),
                        },
                    ),
                    &CommandMetadata::new(self.actor()),
                )
                .await;
            if let Err(err) = scheduled {
                // Moved on meanwhile (stopped, back, logged out).
                debug!(error = %wablast_eventstore::report::Chain(&err), %session, "reconnection not recorded; not trying again");
                return;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            if *status.borrow_and_update() != SessionStatus::Disconnected {
                return;
            }
            info!(%session, attempt, "reconnecting");
            match driver.start().await {
                Ok(()) => return,
                Err(err) => {
                    warn!(error = %wablast_eventstore::report::Chain(&err), %session, attempt, "reconnect failed; trying again");
                    error = format!("the driver did not start: {err}");
                }
            }
        }
    }

    /// Connects the session's driver: the simulated network's, a native
    /// one on the session's keys (written under the lease's `fence`), or a
    /// WAHA or Cloud API driver from the session's stored credentials, with
    /// the sink its webhooks go to.
    async fn connect(
        &self,
        tenant: TenantId,
        session: SessionId,
        state: &Session,
        fence: Fence,
    ) -> Result<(Connection, Option<Webhooks>), NotConnected> {
        if state.driver() == DriverKind::Simulator {
            // A session that was linked restores its link (the simulator's
            // "stored credentials" are the number it linked as): a stop
            // keeps it, only a logout forgets it.
            let linked = state
                .is_linked()
                .then(|| state.phone_number().cloned())
                .flatten();
            return Ok((self.network.connect(session, linked), None));
        }
        let key = self.config.secret_key.as_ref().ok_or_else(|| {
            NotConnected::Refused(
                "this engine has no WABLAST_SECRET_KEY to open the session's driver credentials with"
                    .to_owned(),
            )
        })?;
        if state.driver() == DriverKind::Native {
            return self.connect_native(session, key, fence).map(|c| (c, None));
        }
        let stored = match credentials::load(&self.db, key, tenant, session).await {
            Ok(Some(stored)) => stored,
            Ok(None) => {
                return Err(NotConnected::Refused(format!(
                    "the session has no stored driver_config for its {} driver",
                    state.driver().as_str()
                )));
            }
            Err(CredentialsError::Database(err)) => {
                return Err(NotConnected::Later(err.to_string()));
            }
            Err(err) => return Err(NotConnected::Refused(err.to_string())),
        };
        match stored {
            DriverCredentials::Waha(waha) if state.driver() == DriverKind::Waha => {
                let config = WahaConfig {
                    base_url: waha.base_url.to_string(),
                    api_key: waha.api_key,
                    session_name: waha.session_name,
                };
                let options = WahaOptions::new(
                    self.webhook_url(DriverKind::Waha, session),
                    waha_webhook_key(key, session),
                );
                let (connection, sink) =
                    WahaDriver::connect(session, config, options, self.http.clone());
                Ok((connection, Some(Webhooks::Waha(sink))))
            }
            DriverCredentials::Cloud(cloud) if state.driver() == DriverKind::Cloud => {
                info!(%session, webhook = %self.webhook_url(DriverKind::Cloud, session),
                    "Cloud API number: its Meta app's webhook must point here");
                let options = CloudOptions {
                    version: self.config.cloud_api_version.clone(),
                    ..CloudOptions::default()
                };
                let (connection, sink) =
                    CloudDriver::connect(cloud_config(&cloud), options, self.http.clone());
                Ok((connection, Some(Webhooks::Cloud(sink))))
            }
            other => Err(NotConnected::Refused(format!(
                "the session's stored driver_config is for the {} driver, not {}",
                other.driver().as_str(),
                state.driver().as_str()
            ))),
        }
    }

    /// A native driver for the session: its keys in this engine's
    /// database, sealed with `key`, every write fenced by the lease's
    /// `fence` (an engine that lost the session cannot write them). A build
    /// that does not verify WhatsApp's certificates (tests') connects only
    /// to a server on this machine.
    fn connect_native(
        &self,
        session: SessionId,
        key: &SecretKey,
        fence: Fence,
    ) -> Result<Connection, NotConnected> {
        let options = self.config.native.clone();
        if options.transport.is_none()
            && !native::cert_chain_verified()
            && !native::is_loopback_url(&options.url)
        {
            return Err(NotConnected::Refused(format!(
                "this build does not verify WhatsApp's certificates (built for tests): \
                 it connects native sessions to a test server on this machine only, not {}",
                options.url
            )));
        }
        Ok(NativeDriver::connect(
            session,
            self.db.clone(),
            key.clone(),
            fence,
            options,
        ))
    }

    /// `<public_url>/hooks/<driver>/<session id>`.
    fn webhook_url(&self, driver: DriverKind, session: SessionId) -> String {
        format!(
            "{}/hooks/{}/{session}",
            self.config.public_url.trim_end_matches('/'),
            driver.as_str()
        )
    }

    /// Reports the session `failed`, saying why: as its lease's holder
    /// (`fence`), or, for one no engine can run (`None`), as any engine.
    async fn report_failure(
        &self,
        tenant: TenantId,
        session: SessionId,
        fence: Option<Fence>,
        reason: String,
    ) {
        let key = key(tenant, session);
        let report = SessionCommand::ReportStatus {
            status: SessionStatus::Failed,
            phone_number: None,
            error: Some(reason),
            reason: None,
            at: Utc::now(),
        };
        let command = match fence {
            Some(fence) => fenced(fence, report),
            None => report,
        };
        if let Err(err) = self
            .sessions
            .execute(&key, command, &CommandMetadata::new(self.actor()))
            .await
        {
            debug!(error = %wablast_eventstore::report::Chain(&err), %session, "failure report refused");
        }
    }

    /// Reports what the driver sees: statuses as `Session` events, QR codes
    /// into the QR bucket.
    async fn report(
        self: Arc<Self>,
        held: Held,
        mut events: tokio::sync::mpsc::UnboundedReceiver<DriverEvent>,
        driver: Arc<dyn Driver>,
        status: watch::Sender<SessionStatus>,
        stop: CancellationToken,
    ) {
        let Held {
            tenant,
            session,
            fence,
        } = held;
        let key = key(tenant, session);
        let metadata = || CommandMetadata::new(Actor::Engine(self.config.engine_id.clone()));
        // Receipts are recorded until this report ends (its sender dropped).
        let (receipts, mut arrived) = tokio::sync::mpsc::unbounded_channel();
        let engine = self.clone();
        tokio::spawn(async move {
            receipts::record_all(
                &engine.aggregates,
                &engine.provider_ids,
                tenant,
                session,
                futures::stream::poll_fn(move |cx| arrived.poll_recv(cx)),
                engine.actor(),
            )
            .await;
        });
        // When the driver last said anything: a ready session silent for
        // too long is probed ([`health`]).
        let mut heard_at = tokio::time::Instant::now();
        loop {
            let silent_until = heard_at + self.config.health.probe_after;
            let ready = *status.borrow() == SessionStatus::Ready;
            let event = tokio::select! {
                () = stop.cancelled() => return,
                event = events.recv() => match event {
                    Some(event) => event,
                    None => return,
                },
                () = tokio::time::sleep_until(silent_until), if ready => {
                    self.probe_silent(held, &driver, &status, &stop).await;
                    heard_at = tokio::time::Instant::now();
                    continue;
                }
            };
            heard_at = tokio::time::Instant::now();
            match event {
                DriverEvent::Status(change) => {
                    if change.status != SessionStatus::Qr
                        && let Err(err) = self.qr.delete(session.to_string()).await
                    {
                        debug!(error = %wablast_eventstore::report::Chain(&err), %session, "QR entry not removed");
                    }
                    let reported = change.status;
                    let disconnected_because = change.error.clone();
                    let command = fenced(
                        fence,
                        SessionCommand::ReportStatus {
                            status: change.status,
                            phone_number: change.phone_number,
                            error: change.error,
                            reason: change.reason,
                            at: change.at,
                        },
                    );
                    match self.sessions.execute(&key, command, &metadata()).await {
                        // The send loop sends while the log says ready.
                        Ok(_) => {
                            let before = status.send_replace(reported);
                            if matches!(
                                reported,
                                SessionStatus::Disconnected | SessionStatus::Failed
                            ) && before != reported
                            {
                                self.session_failed(session).await;
                            }
                            if reported == SessionStatus::Disconnected
                                && before != SessionStatus::Disconnected
                            {
                                tokio::spawn(
                                    self.clone().keep_connecting(
                                        held,
                                        driver.clone(),
                                        status.subscribe(),
                                        stop.clone(),
                                        disconnected_because
                                            .unwrap_or_else(|| "the connection dropped".to_owned()),
                                    ),
                                );
                            }
                        }
                        // A late report after a stop, say: the aggregate
                        // decides, and said no.
                        Err(err) => {
                            debug!(error = %wablast_eventstore::report::Chain(&err), %session, "status report refused")
                        }
                    }
                }
                DriverEvent::Qr(qr) => {
                    let entry = QrEntry {
                        qr: qr.payload,
                        expires_at: qr.expires_at,
                    };
                    let value = serde_json::to_vec(&entry).expect("a QR entry serializes");
                    if let Err(err) = self.qr.put(session.to_string(), value.into()).await {
                        warn!(error = %wablast_eventstore::report::Chain(&err), %session, "QR not published");
                    }
                }
                DriverEvent::Receipt(receipt) => {
                    // Apart, so a receipt waiting for its message's id does
                    // not hold up the session's other events.
                    let _ = receipts.send(receipt);
                }
                DriverEvent::Notice(notice) => {
                    warn!(%session, %tenant, kind = notice.kind(), %notice, "the driver's server warns about the session's account");
                    metrics::counter!(DRIVER_NOTICES, "kind" => notice.kind()).increment(1);
                }
                DriverEvent::Inbound(inbound) => {
                    // The same message reported twice lands on one aggregate.
                    let inbound_id = inbound::inbound_id(session, &inbound.provider_message_id);
                    let command = InboundCommand::ReceiveInbound {
                        inbound_id,
                        session_id: session,
                        from: inbound.from,
                        from_raw: inbound.from_raw,
                        text: inbound.text,
                        provider_message_id: inbound.provider_message_id,
                        kind: inbound.kind,
                        at: inbound.at,
                    };
                    let inbound_key = wablast_workflows::commands::key(tenant, inbound_id);
                    if let Err(err) = self
                        .aggregates
                        .inbound
                        .execute(&inbound_key, command, &metadata())
                        .await
                    {
                        warn!(error = %wablast_eventstore::report::Chain(&err), %session, "inbound message not recorded");
                    }
                }
            }
        }
    }

    /// Answers the API's requests about the session while it runs here.
    async fn serve_requests(
        self: Arc<Self>,
        tenant: TenantId,
        session: SessionId,
        driver: Arc<dyn Driver>,
        webhooks: Option<Webhooks>,
        stop: CancellationToken,
    ) -> Result<JoinHandle<()>, EngineError> {
        let subject = control::session_subjects(self.log.prefix(), tenant, session);
        let pace = Arc::new(number_checks::Pace::new(self.config.number_check_every));
        let mut requests = self
            .client
            .subscribe(subject)
            .await
            .map_err(|err| EngineError::Nats(err.to_string()))?;
        Ok(tokio::spawn(async move {
            loop {
                let request = tokio::select! {
                    () = stop.cancelled() => break,
                    request = requests.next() => match request {
                        Some(request) => request,
                        None => break,
                    },
                };
                let Some(reply_to) = request.reply.clone() else {
                    continue;
                };
                let verb = request
                    .subject
                    .as_str()
                    .rsplit('.')
                    .next()
                    .unwrap_or_default();
                let answer = match verb {
                    v if v == Verb::PairingCode.as_str() => {
                        let driver = driver.clone();
                        answer(&request.payload, |req: PairingCodeRequest| async move {
                            driver
                                .request_pairing_code(&req.phone_number)
                                .await
                                .map(|code| PairingCodeResponse {
                                    code,
                                    expires_at: None,
                                })
                                .map_err(|err| refusal(ControlErrorCode::InvalidState, err))
                        })
                        .await
                    }
                    v if v == Verb::SimulatorScan.as_str() => {
                        let network = self.network.clone();
                        answer(&request.payload, |req: SimulatorScanRequest| async move {
                            network
                                .scan(session, req.phone_number)
                                .map(|()| SimulatorScanResponse {})
                                .map_err(simulator_refusal)
                        })
                        .await
                    }
                    v if v == Verb::SimulatorInbound.as_str() => {
                        let network = self.network.clone();
                        answer(
                            &request.payload,
                            |req: SimulatorInboundRequest| async move {
                                network
                                    .inbound(session, req.from, req.text)
                                    .map(|id| SimulatorInboundResponse {
                                        message_id: Some(id),
                                    })
                                    .map_err(simulator_refusal)
                            },
                        )
                        .await
                    }
                    v if v == Verb::CheckNumbers.as_str() => {
                        // Paced checks take seconds: answered on their own
                        // task, so that webhooks and other requests of the
                        // session are not held up behind them.
                        let (driver, pace, client) =
                            (driver.clone(), pace.clone(), self.client.clone());
                        let payload = request.payload.clone();
                        tokio::spawn(async move {
                            let reply = answer(&payload, |req: CheckNumbersRequest| async move {
                                pace.check(&*driver, req).await.map_err(driver_refusal)
                            })
                            .await;
                            if let Err(err) = client.publish(reply_to, reply.into()).await {
                                debug!(error = %wablast_eventstore::report::Chain(&err), %session, "check reply not sent");
                            }
                        });
                        continue;
                    }
                    v if v == Verb::Groups.as_str() => {
                        let driver = driver.clone();
                        answer(&request.payload, |_: GroupsRequest| async move {
                            let groups = driver.groups().await.map_err(driver_refusal)?;
                            Ok(GroupsResponse {
                                groups: groups
                                    .into_iter()
                                    .map(|g| GroupInfo {
                                        id: g.id,
                                        name: g.name,
                                        participants: g.participants,
                                    })
                                    .collect(),
                            })
                        })
                        .await
                    }
                    v if v == Verb::Templates.as_str() => {
                        let driver = driver.clone();
                        answer(&request.payload, |req: TemplatesRequest| async move {
                            let templates = driver
                                .templates(&req.waba_id)
                                .await
                                .map_err(driver_refusal)?;
                            Ok(TemplatesResponse { templates })
                        })
                        .await
                    }
                    v if v == Verb::GroupMembers.as_str() => {
                        let driver = driver.clone();
                        answer(&request.payload, |req: GroupMembersRequest| async move {
                            let members = driver
                                .group_members(&req.group_id)
                                .await
                                .map_err(driver_refusal)?;
                            Ok(GroupMembersResponse {
                                members: members
                                    .into_iter()
                                    .map(|m| GroupMemberInfo {
                                        id: m.id,
                                        phone: m.phone,
                                        admin: m.admin,
                                    })
                                    .collect(),
                            })
                        })
                        .await
                    }
                    v if v == Verb::Webhook.as_str() => {
                        let reply = match &webhooks {
                            Some(sink) => {
                                let headers = webhook_headers(request.headers.as_ref());
                                match sink.deliver(&headers, &request.payload).await {
                                    Ok(events) => Reply::Ok(WebhookResponse { events }),
                                    Err(err) => {
                                        debug!(error = %wablast_eventstore::report::Chain(&err), %session, "webhook refused");
                                        Reply::Error(webhook_refusal(err))
                                    }
                                }
                            }
                            None => Reply::Error(refusal(
                                ControlErrorCode::InvalidState,
                                "this session's driver takes no webhooks",
                            )),
                        };
                        serde_json::to_vec(&reply).expect("a reply serializes")
                    }
                    other => serde_json::to_vec(&Reply::<()>::Error(refusal(
                        ControlErrorCode::ValidationFailed,
                        format!("unknown request {other:?}"),
                    )))
                    .expect("a reply serializes"),
                };
                if let Err(err) = self.client.publish(reply_to, answer.into()).await {
                    debug!(error = %wablast_eventstore::report::Chain(&err), %session, "reply not sent");
                }
            }
        }))
    }

    /// Renews this engine's leases four times per TTL and says it is
    /// alive, until `shutdown`. Apart from the event loop, so a long
    /// reconciliation (a thousand sessions to take) never delays a renewal.
    async fn keep_leases(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.leases.renew_every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            self.renew().await;
            self.beat().await;
            self.clone().look_at_drain_mark().await;
        }
    }

    /// Renews every lease held here, side by side.
    async fn renew(&self) {
        let leases: Vec<(SessionId, Lease)> = self
            .running
            .lock()
            .expect("engine lock")
            .iter()
            .map(|(id, running)| (*id, running.lease.clone()))
            .collect();
        futures::stream::iter(leases)
            .for_each_concurrent(RENEWED_AT_ONCE, |(session, mut lease)| async move {
                let renewal = self.leases.renew(&mut lease).await;
                self.renewed(session, lease, renewal).await;
            })
            .await;
    }

    /// Acts on what a renewal found.
    async fn renewed(&self, session: SessionId, lease: Lease, renewal: Renewal) {
        match renewal {
            Renewal::Renewed => {
                if let Some(running) = self
                    .running
                    .lock()
                    .expect("engine lock")
                    .get_mut(&session)
                    .filter(|running| running.lease.fence() == lease.fence())
                {
                    if running.unanswered > 0 {
                        info!(%session, failed = running.unanswered, "lease renewed again after NATS did not answer");
                    }
                    running.unanswered = 0;
                    running.lease = lease;
                }
            }
            Renewal::Lost { holder } => {
                let lost = {
                    let mut running = self.running.lock().expect("engine lock");
                    match running.get(&session) {
                        // Still running on this lease (not released or
                        // taken again meanwhile).
                        Some(now) if now.lease.fence() == lease.fence() => running.remove(&session),
                        _ => None,
                    }
                };
                let Some(lost) = lost else { return };
                lease_changed(LeaseChange::Lost);
                match &holder {
                    Some(holder) => {
                        warn!(%session, fence = %lease.fence(), %holder, "lost the session's lease to another engine: no longer running it here")
                    }
                    None => {
                        warn!(%session, fence = %lease.fence(), "the session's lease expired unrenewed: no longer running it here")
                    }
                }
                lost.stop.cancel();
                let _ = lost.driver.stop().await;
            }
            Renewal::Unanswered(err) => {
                lease_changed(LeaseChange::Unanswered);
                let mut running = self.running.lock().expect("engine lock");
                if let Some(running) = running.get_mut(&session) {
                    running.unanswered += 1;
                    if running.unanswered == 1 {
                        warn!(error = %wablast_eventstore::report::Chain(&err), %session,
                            "lease not renewed: NATS did not answer; the session stops sending once the lease may have expired, and the renewal is tried again");
                    } else {
                        debug!(error = %wablast_eventstore::report::Chain(&err), %session, failed = running.unanswered, "lease still not renewed")
                    }
                }
            }
        }
    }

    /// Stops running a session here for a hand-over: its send loop ends
    /// (a send in flight finishes, commands in hand go back to the queue),
    /// then its driver stops (the link kept). The lease is the caller's.
    async fn stop_running(&self, session: SessionId) -> Option<Running> {
        let waiting = tokio::time::Instant::now();
        while self.taking.lock().expect("engine lock").contains(&session)
            && waiting.elapsed() < TAKE_AT_MOST
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut running = self.running.lock().expect("engine lock").remove(&session)?;
        running.stop.cancel();
        for task in std::mem::take(&mut running.tasks) {
            let _ = task.await;
        }
        if let Err(err) = running.driver.stop().await {
            warn!(error = %wablast_eventstore::report::Chain(&err), %session, "the driver did not stop cleanly");
        }
        let _ = self.qr.delete(session.to_string()).await;
        Some(running)
    }

    async fn release(&self, session: SessionId, ending: Ending) {
        // A take under way finishes first, so that what it starts stops.
        let waiting = tokio::time::Instant::now();
        while self.taking.lock().expect("engine lock").contains(&session)
            && waiting.elapsed() < TAKE_AT_MOST
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let Some(running) = self.running.lock().expect("engine lock").remove(&session) else {
            return;
        };
        let result = match ending {
            Ending::Stop => running.driver.stop().await,
            Ending::Logout => running.driver.logout().await,
            Ending::Delete => running.driver.delete().await,
        };
        match result {
            // Its server forgot it: the credentials are not needed any more.
            Ok(()) if ending == Ending::Delete => {
                if let Err(err) = credentials::delete(&self.db, running.tenant, session).await {
                    warn!(error = %wablast_eventstore::report::Chain(&err), %session, "a deleted session's credentials not deleted; its ending tries again");
                }
            }
            Ok(()) => {}
            Err(err) => {
                warn!(error = %wablast_eventstore::report::Chain(&err), %session, "the driver did not stop cleanly")
            }
        }
        running.stop.cancel();
        for task in running.tasks {
            let _ = task.await;
        }
        let _ = self.qr.delete(session.to_string()).await;
        if let Err(err) = self.leases.release(running.lease).await {
            warn!(error = %wablast_eventstore::report::Chain(&err), %session, "lease not released; it expires by itself");
        }
        lease_changed(LeaseChange::Released);
        info!(%session, tenant = %running.tenant, "session no longer runs here: lease released");
    }

    async fn shut_down(&self) {
        let sessions: Vec<SessionId> = self
            .running
            .lock()
            .expect("engine lock")
            .keys()
            .copied()
            .collect();
        for session in sessions {
            self.release(session, Ending::Stop).await;
        }
        if let Err(err) = self.registry.leave(&self.config.engine_id).await {
            debug!(error = %wablast_eventstore::report::Chain(&err), "heartbeat not removed; it expires by itself");
        }
        info!(engine = %self.config.engine_id, "engine stopped");
    }
}

/// Why a session's driver could not be connected.
enum NotConnected {
    /// It cannot run as it is (no or unreadable credentials): reported
    /// failed with this reason.
    Refused(String),
    /// Not now (the database is away): the next reconciliation tries again.
    Later(String),
}

/// The sink a running session's driver takes its peer's webhooks with.
enum Webhooks {
    Waha(WahaWebhookSink),
    Cloud(CloudWebhookSink),
}

impl Webhooks {
    async fn deliver(
        &self,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> Result<usize, WebhookError> {
        match self {
            Self::Waha(sink) => sink.deliver(headers, body).await,
            Self::Cloud(sink) => sink.deliver(headers, body).await,
        }
    }
}

/// The key WAHA signs one session's webhooks with: derived from the secret
/// key, so every engine (and none but ours) knows it, and one WAHA server's
/// key says nothing of another session's.
fn waha_webhook_key(key: &SecretKey, session: SessionId) -> String {
    hex::encode(key.derive(format!("wablast waha webhook v1 {session}").as_bytes()))
}

/// The base sessions were given when none was asked for, before the Graph
/// API version became the engine's setting: it pins no version.
const FORMER_DEFAULT_CLOUD_API_BASE: &str = "https://graph.facebook.com/v21.0";

/// The Cloud API driver's config from stored credentials. A stored
/// `api_base` may carry a Graph API version (`https://graph.facebook.com/v22.0`):
/// the driver takes the two apart; a base without one (or the former
/// default) gets the engine's version.
fn cloud_config(credentials: &CloudCredentials) -> CloudConfig {
    let mut base = credentials.api_base.clone();
    if base.as_str().trim_end_matches('/') == FORMER_DEFAULT_CLOUD_API_BASE {
        base.set_path("");
    }
    let last = base
        .path_segments()
        .and_then(|mut segments| segments.rfind(|s| !s.is_empty()))
        .map(str::to_owned);
    let version = last.filter(|segment| {
        segment.len() > 1
            && segment.starts_with('v')
            && segment[1..]
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.')
    });
    if version.is_some()
        && let Ok(mut segments) = base.path_segments_mut()
    {
        segments.pop_if_empty().pop();
    }
    CloudConfig {
        phone_number_id: credentials.phone_number_id.clone(),
        access_token: credentials.access_token.clone(),
        app_secret: credentials.app_secret.clone(),
        verify_token: credentials.verify_token.clone(),
        api_base: Some(base.as_str().trim_end_matches('/').to_owned()),
        version,
    }
}

/// The forwarded webhook headers ([`control::WEBHOOK_HEADERS`]) of a
/// request, as HTTP headers for the driver's sink.
fn webhook_headers(headers: Option<&async_nats::HeaderMap>) -> reqwest::header::HeaderMap {
    let mut map = reqwest::header::HeaderMap::new();
    let Some(headers) = headers else {
        return map;
    };
    for name in control::WEBHOOK_HEADERS {
        if let Some(value) = headers.get(name)
            && let Ok(value) = reqwest::header::HeaderValue::from_str(value.as_str())
        {
            map.insert(name, value);
        }
    }
    map
}

fn webhook_refusal(err: WebhookError) -> ControlError {
    let code = if err.is_unauthorized() {
        ControlErrorCode::Unauthorized
    } else if err == WebhookError::Gone {
        ControlErrorCode::NotFound
    } else {
        ControlErrorCode::ValidationFailed
    };
    refusal(code, err)
}

/// Sessions taken side by side by one reconciliation.
const TAKEN_AT_ONCE: usize = 16;
/// The longest a stop waits for a take of the same session under way (its
/// driver connecting) before it goes on.
const TAKE_AT_MOST: Duration = Duration::from_secs(30);
/// Leases renewed side by side.
const RENEWED_AT_ONCE: usize = 64;

/// Leases taken, renewed, lost, ... by this process's engines.
const LEASE_CHANGES: &str = "wablast_session_leases_total";
/// Sessions this process's engine holds.
const SESSIONS_HELD: &str = "wablast_engine_sessions_held";
/// Warnings about sessions' accounts from the drivers' servers, by kind.
const DRIVER_NOTICES: &str = "wablast_driver_notices_total";

/// A change to one of this engine's leases, counted in
/// [`LEASE_CHANGES`].
#[derive(Clone, Copy, Debug)]
enum LeaseChange {
    /// Taken (created, or taken back after a restart or a hand-over).
    Taken,
    /// Handed to another engine (a drain, a move, a stop).
    HandedOver,
    /// Given up (the session stopped here, or did not start).
    Released,
    /// Found expired or held by another engine at a renewal.
    Lost,
    /// A renewal NATS did not answer.
    Unanswered,
}

impl LeaseChange {
    fn as_str(self) -> &'static str {
        match self {
            Self::Taken => "taken",
            Self::HandedOver => "handed_over",
            Self::Released => "released",
            Self::Lost => "lost",
            Self::Unanswered => "unanswered",
        }
    }
}

fn lease_changed(change: LeaseChange) {
    metrics::counter!(LEASE_CHANGES, "change" => change.as_str()).increment(1);
}

/// A session as this engine holds it: whose, which, and the fence of its
/// lease, which every report about it carries.
#[derive(Clone, Copy, Debug)]
struct Held {
    tenant: TenantId,
    session: SessionId,
    fence: Fence,
}

/// How a session stops running here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// Stopped (the link is kept).
    Stop,
    /// Logged out (the link is dropped).
    Logout,
    /// Deleted (removed from its driver's server).
    Delete,
}

/// A report as the holder of the session's lease (`fence`).
fn fenced(fence: Fence, report: SessionCommand) -> SessionCommand {
    SessionCommand::FromHolder {
        fence,
        report: Box::new(report),
    }
}

/// Pauses between a disconnected session's tries to connect.
const RECONNECT: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));

fn refusal(code: ControlErrorCode, message: impl std::fmt::Display) -> ControlError {
    ControlError {
        code,
        message: message.to_string(),
    }
}

fn driver_refusal(err: DriverError) -> ControlError {
    let code = match err {
        DriverError::InvalidState(_) => ControlErrorCode::InvalidState,
        DriverError::Unsupported(_) => ControlErrorCode::Unsupported,
        DriverError::Refused(_) | DriverError::Failed(_) => ControlErrorCode::DriverFailed,
    };
    refusal(code, err)
}

fn simulator_refusal(err: SimulatorError) -> ControlError {
    let code = match err {
        SimulatorError::NotRunning => ControlErrorCode::NotFound,
        SimulatorError::NotWaitingForScan(_) | SimulatorError::NotReady(_) => {
            ControlErrorCode::InvalidState
        }
    };
    refusal(code, err)
}

/// Reads a request, runs it, and serializes the reply.
async fn answer<Req, Resp, F, Fut>(payload: &[u8], run: F) -> Vec<u8>
where
    Req: DeserializeOwned,
    Resp: Serialize,
    F: FnOnce(Req) -> Fut,
    Fut: std::future::Future<Output = Result<Resp, ControlError>>,
{
    let reply = match serde_json::from_slice::<Req>(payload) {
        Ok(request) => match run(request).await {
            Ok(response) => Reply::Ok(response),
            Err(err) => Reply::Error(err),
        },
        Err(err) => Reply::Error(refusal(ControlErrorCode::ValidationFailed, err)),
    };
    serde_json::to_vec(&reply).expect("a reply serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloud(api_base: &str) -> CloudCredentials {
        CloudCredentials {
            waba_id: None,
            phone_number_id: "106540352242922".into(),
            access_token: "t".into(),
            app_secret: "s".into(),
            verify_token: "v".into(),
            api_base: api_base.parse().unwrap(),
        }
    }

    #[test]
    fn a_stored_cloud_api_base_is_split_into_base_and_version() {
        let split = |base: &str| {
            let config = cloud_config(&cloud(base));
            (config.api_base.unwrap(), config.version)
        };
        assert_eq!(
            split(credentials::DEFAULT_CLOUD_API_BASE),
            ("https://graph.facebook.com".to_owned(), None)
        );
        assert_eq!(
            split(FORMER_DEFAULT_CLOUD_API_BASE),
            ("https://graph.facebook.com".to_owned(), None),
            "the former default pins no version"
        );
        assert_eq!(
            split("https://graph.facebook.com/v22.0"),
            (
                "https://graph.facebook.com".to_owned(),
                Some("v22.0".to_owned())
            )
        );
        assert_eq!(
            split("http://127.0.0.1:9000/graph/v19.0/"),
            (
                "http://127.0.0.1:9000/graph".to_owned(),
                Some("v19.0".to_owned())
            )
        );
        assert_eq!(
            split("http://127.0.0.1:9000"),
            ("http://127.0.0.1:9000".to_owned(), None)
        );
        assert_eq!(
            split("http://127.0.0.1:9000/video"),
            ("http://127.0.0.1:9000/video".to_owned(), None)
        );
    }

    #[test]
    fn waha_webhook_keys_differ_per_session_and_key() {
        let (a, b) = (SessionId::new(), SessionId::new());
        let key = SecretKey::new([1; 32]);
        assert_eq!(waha_webhook_key(&key, a), waha_webhook_key(&key, a));
        assert_ne!(waha_webhook_key(&key, a), waha_webhook_key(&key, b));
        assert_ne!(
            waha_webhook_key(&key, a),
            waha_webhook_key(&SecretKey::new([2; 32]), a)
        );
        assert_eq!(waha_webhook_key(&key, a).len(), 64);
    }

    #[test]
    fn only_the_webhook_headers_are_forwarded_to_the_sink() {
        let mut nats = async_nats::HeaderMap::new();
        nats.insert("x-webhook-hmac", "abcd");
        nats.insert("x-hub-signature-256", "sha256=00");
        nats.insert(control::ACTOR_HEADER, "user:1");
        let headers = webhook_headers(Some(&nats));
        assert_eq!(headers.len(), 2);
        assert_eq!(headers["x-webhook-hmac"], "abcd");
        assert_eq!(headers["x-hub-signature-256"], "sha256=00");
        assert!(webhook_headers(None).is_empty());
    }

    #[test]
    fn webhook_refusals_say_unauthorized_for_signatures() {
        let code = |err| webhook_refusal(err).code;
        assert_eq!(
            code(WebhookError::BadSignature),
            ControlErrorCode::Unauthorized
        );
        assert_eq!(
            code(WebhookError::MissingSignature),
            ControlErrorCode::Unauthorized
        );
        assert_eq!(
            code(WebhookError::Malformed("x".into())),
            ControlErrorCode::ValidationFailed
        );
        assert_eq!(code(WebhookError::Gone), ControlErrorCode::NotFound);
    }
}
