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
//!   or delete is acted on by the engine running it.
//! - **Reconciliation**: every [`EngineConfig::reconcile_every`] (and at
//!   start) an engine looks for sessions that should run (their status in
//!   the log is a running one) and that no engine holds, and takes them: a
//!   session whose engine died is taken over once its lease expires, and a
//!   start missed while no engine ran is picked up. The projected
//!   `sessions` table says where to look; the aggregate in the log decides,
//!   so a stale row never restarts a stopped session.
//! - **Leases** ([`crate::lease`]) are renewed three times per TTL; an engine
//!   that finds it lost a lease stops running the session at once.
//!
//! Drivers run here: `simulator`. Sessions of other drivers are left alone
//! until their drivers are wired in (issue #6), as is sending.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv;
use chrono::Utc;
use cqrs_es::Aggregate;
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use wablast_domain::campaign::{CampaignCommand, SenderUnavailableReason};
use wablast_domain::inbound::{self, InboundCommand};
use wablast_domain::session::{
    Driver as DriverKind, Session, SessionCommand, SessionEvent, SessionStatus,
};
use wablast_domain::types::{SessionId, TenantId};
use wablast_eventstore::{
    Actor, AggregateKey, CommandHandler, CommandMetadata, Commit, EventLog, EventStoreError,
};

use crate::aggregates::Aggregates;
use crate::clock::{Clock, SystemClock};
use crate::control::{
    self, ControlError, ControlErrorCode, PairingCodeRequest, PairingCodeResponse, QrEntry, Reply,
    SimulatorInboundRequest, SimulatorInboundResponse, SimulatorScanRequest, SimulatorScanResponse,
    Verb,
};
use crate::driver::{Driver, DriverEvent};
use crate::fanout::FanOut;
use crate::lease::{EngineInfo, EngineRegistry, Lease, SessionLeases};
use crate::receipts::{self, ProviderIds};
use crate::sender::{SendConfig, SendContext, SendLoop};
use crate::sends::SendQueue;
use crate::settlement::Settlement;
use crate::simulator::{SimulatorConfig, SimulatorError, SimulatorNetwork};

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
    /// The clock sending decides by.
    pub clock: Arc<dyn Clock>,
}

impl EngineConfig {
    /// Defaults for an engine with this id: 30 s leases, reconciliation
    /// every 5 s, a simulator that links only on scan.
    pub fn new(engine_id: impl Into<String>) -> Self {
        Self {
            engine_id: engine_id.into(),
            lease_ttl: Duration::from_secs(30),
            reconcile_every: Duration::from_secs(5),
            simulator: SimulatorConfig::default(),
            send: SendConfig::default(),
            settle_every: Duration::from_secs(2),
            clock: Arc::new(SystemClock),
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
}

/// A session this engine runs.
struct Running {
    tenant: TenantId,
    driver: Arc<dyn Driver>,
    lease: Lease,
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
    aggregates: Aggregates,
    queue: SendQueue,
    provider_ids: ProviderIds,
    leases: SessionLeases,
    registry: EngineRegistry,
    qr: kv::Store,
    network: SimulatorNetwork,
    running: Mutex<HashMap<SessionId, Running>>,
    started_at: chrono::DateTime<Utc>,
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
        let qr = control::qr_bucket(&js, &prefix).await?;
        let aggregates = Aggregates::new(&log);
        let queue = SendQueue::open(&js, &prefix).await?;
        let provider_ids = ProviderIds::open(&js, &prefix).await?;
        Ok(Arc::new(Self {
            network: SimulatorNetwork::new(config.simulator.clone()),
            config,
            client,
            log,
            db,
            sessions: aggregates.sessions.clone(),
            aggregates,
            queue,
            provider_ids,
            leases,
            registry,
            qr,
            running: Mutex::default(),
            started_at: Utc::now(),
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
        let processes = self.clone().start_processes(shutdown.clone())?;
        self.auto_start().await;
        let mut reconcile = tokio::time::interval(self.config.reconcile_every);
        let mut renew = tokio::time::interval(self.leases.renew_every());
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                message = events.next() => {
                    let Some(message) = message else { break };
                    match serde_json::from_slice::<Commit>(&message.payload) {
                        Ok(commit) => self.clone().on_commit(commit).await,
                        Err(err) => warn!(error = %err, "undecodable session commit on the log subject"),
                    }
                }
                _ = reconcile.tick() => {
                    if let Err(err) = self.clone().reconcile().await {
                        warn!(error = %err, "reconciliation failed; trying again later");
                    }
                }
                _ = renew.tick() => self.renew().await,
            }
        }
        self.shut_down().await;
        for process in processes {
            let _ = process.await;
        }
        Ok(())
    }

    fn actor(&self) -> Actor {
        Actor::Engine(self.config.engine_id.clone())
    }

    /// The campaign processes every engine runs beside its sessions: the
    /// fan-out (a durable consumer: each start handled by one engine) and
    /// completion and settlement (decided by the aggregates, so engines
    /// running it side by side record each once).
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
                        warn!(error = %err, "campaign fan-out stopped; starting it again");
                        tokio::select! {
                            () = fanout_shutdown.cancelled() => return,
                            () = tokio::time::sleep(Duration::from_secs(5)) => {}
                        }
                    }
                }
            }
        });
        let settle_every = self.config.settle_every;
        let settlement = tokio::spawn(settlement.run(settle_every, shutdown));
        Ok(vec![fanout, settlement])
    }

    /// Starts the sessions flagged to start with the engine that are not
    /// running (a stopped session stays stopped only without the flag).
    async fn auto_start(&self) {
        let flagged: Vec<(uuid::Uuid, uuid::Uuid)> = match sqlx::query_as(
            "select id, tenant_id from sessions
             where auto_start and status in ('idle', 'disconnected', 'failed')",
        )
        .fetch_all(&self.db)
        .await
        {
            Ok(rows) => rows,
            Err(err) => {
                warn!(error = %err, "sessions to auto-start not read");
                return;
            }
        };
        for (session, tenant) in flagged {
            let key = AggregateKey::new(tenant, session).expect("UUIDs are subject tokens");
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
                Err(err) => debug!(error = %err, %session, "session not auto-started"),
            }
        }
    }

    /// A session that can no longer send (banned, logged out, deleted)
    /// leaves its campaigns' rotations; their waiting sends move to the
    /// remaining senders (see [`crate::fanout`]).
    async fn sender_gone(
        &self,
        tenant: TenantId,
        session: SessionId,
        reason: SenderUnavailableReason,
    ) {
        let campaigns: Vec<uuid::Uuid> = match sqlx::query_scalar(
            "select id from campaigns
             where tenant_id = $1 and $2 = any(sender_session_ids) and status in ('running', 'paused')",
        )
        .bind(tenant.as_uuid())
        .bind(session.as_uuid())
        .fetch_all(&self.db)
        .await
        {
            Ok(rows) => rows,
            Err(err) => {
                warn!(error = %err, %session, "campaigns of a gone sender not read");
                return;
            }
        };
        for campaign in campaigns {
            let key = AggregateKey::new(tenant, campaign).expect("UUIDs are subject tokens");
            let reported = self
                .aggregates
                .campaigns
                .execute(
                    &key,
                    CampaignCommand::ReportSenderUnavailable {
                        session_id: session,
                        reason,
                        at: Utc::now(),
                    },
                    &CommandMetadata::new(self.actor()),
                )
                .await;
            match reported {
                Ok(committed) if !committed.events.is_empty() => {
                    info!(%campaign, %session, ?reason, "sender left the campaign");
                }
                Ok(_) => {}
                Err(err) => debug!(error = %err, %campaign, "sender removal not recorded"),
            }
        }
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
                    warn!(error = %err, %session, "undecodable session event");
                    continue;
                }
            };
            match event {
                SessionEvent::SessionStartRequested { .. } => {
                    self.clone().take(tenant, session).await
                }
                SessionEvent::SessionStopRequested { .. } => {
                    self.release(session, Ending::Stop).await
                }
                SessionEvent::SessionLoggedOut { .. } => {
                    self.release(session, Ending::Logout).await;
                    self.sender_gone(tenant, session, SenderUnavailableReason::LoggedOut)
                        .await;
                }
                SessionEvent::SessionDeleted { .. } => {
                    self.release(session, Ending::Stop).await;
                    self.sender_gone(tenant, session, SenderUnavailableReason::Deleted)
                        .await;
                }
                SessionEvent::SessionStatusChanged {
                    to: SessionStatus::LoggedOut,
                    error,
                    ..
                } => {
                    let reason = if error.as_deref().is_some_and(|e| e.contains("ban")) {
                        SenderUnavailableReason::Banned
                    } else {
                        SenderUnavailableReason::LoggedOut
                    };
                    self.sender_gone(tenant, session, reason).await;
                }
                _ => {}
            }
        }
    }

    /// Takes every session that should run and no engine runs.
    async fn reconcile(self: Arc<Self>) -> Result<(), EngineError> {
        let candidates: Vec<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
            "select id, tenant_id from sessions
             where driver = 'simulator'
               and status in ('starting', 'qr', 'pairing', 'authenticated', 'ready', 'disconnected')",
        )
        .fetch_all(&self.db)
        .await?;
        for (session, tenant) in candidates {
            let session = SessionId::from_uuid(session);
            if self
                .running
                .lock()
                .expect("engine lock")
                .contains_key(&session)
            {
                continue;
            }
            self.clone()
                .take(TenantId::from_uuid(tenant), session)
                .await;
        }
        let sessions = self.running.lock().expect("engine lock").len();
        self.registry
            .heartbeat(&EngineInfo {
                engine: self.config.engine_id.clone(),
                started_at: self.started_at,
                heartbeat_at: Utc::now(),
                sessions,
            })
            .await?;
        Ok(())
    }

    /// Runs the session if the log says it should run, it is one this
    /// engine can run, and its lease is free.
    async fn take(self: Arc<Self>, tenant: TenantId, session: SessionId) {
        if self
            .running
            .lock()
            .expect("engine lock")
            .contains_key(&session)
        {
            return;
        }
        let key = AggregateKey::new(tenant, session).expect("UUIDs are subject tokens");
        let state = match self.sessions.load(&key).await {
            Ok(loaded) => loaded.aggregate,
            Err(err) => {
                warn!(error = %err, %session, "cannot load the session");
                return;
            }
        };
        if !state.exists() || state.is_deleted() || !state.status().is_running() {
            return;
        }
        if state.driver() != DriverKind::Simulator {
            debug!(%session, driver = %state.driver().as_str(), "driver not run by this engine yet");
            return;
        }
        let lease = match self.leases.acquire(&session.to_string()).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return,
            Err(err) => {
                warn!(error = %err, %session, "cannot take the lease");
                return;
            }
        };
        // A session that was linked restores its link (the simulator's
        // "stored credentials" are the number it linked as).
        let linked = match state.status() {
            SessionStatus::Authenticated | SessionStatus::Ready | SessionStatus::Disconnected => {
                state.phone_number().cloned()
            }
            _ => None,
        };
        let connection = self.network.connect(session, linked);
        let driver: Arc<dyn Driver> = Arc::from(connection.driver);
        let stop = CancellationToken::new();
        let (status, status_seen) = watch::channel(state.status());
        let sending = SendLoop::new(
            SendContext {
                aggregates: self.aggregates.clone(),
                queue: self.queue.clone(),
                provider_ids: self.provider_ids.clone(),
                clock: self.config.clock.clone(),
                db: self.db.clone(),
                config: self.config.send.clone(),
                actor: self.actor(),
            },
            tenant,
            session,
            driver.clone(),
            status_seen,
            stop.clone(),
        );
        let mut tasks = vec![
            tokio::spawn(self.clone().report(
                tenant,
                session,
                connection.events,
                driver.clone(),
                status,
                stop.clone(),
            )),
            tokio::spawn(sending.run()),
        ];
        match self
            .clone()
            .serve_requests(tenant, session, driver.clone(), stop.clone())
            .await
        {
            Ok(task) => tasks.push(task),
            Err(err) => warn!(error = %err, %session, "cannot answer requests for the session"),
        }
        self.running.lock().expect("engine lock").insert(
            session,
            Running {
                tenant,
                driver: driver.clone(),
                lease,
                stop,
                tasks,
            },
        );
        info!(%session, %tenant, "running the session");
        if let Err(err) = driver.start().await {
            warn!(error = %err, %session, "the driver did not start");
        }
    }

    /// Reports what the driver sees: statuses as `Session` events, QR codes
    /// into the QR bucket.
    async fn report(
        self: Arc<Self>,
        tenant: TenantId,
        session: SessionId,
        mut events: tokio::sync::mpsc::UnboundedReceiver<DriverEvent>,
        driver: Arc<dyn Driver>,
        status: watch::Sender<SessionStatus>,
        stop: CancellationToken,
    ) {
        let key = AggregateKey::new(tenant, session).expect("UUIDs are subject tokens");
        let metadata = || CommandMetadata::new(Actor::Engine(self.config.engine_id.clone()));
        loop {
            let event = tokio::select! {
                () = stop.cancelled() => return,
                event = events.recv() => match event {
                    Some(event) => event,
                    None => return,
                },
            };
            match event {
                DriverEvent::Status(change) => {
                    if change.status != SessionStatus::Qr
                        && let Err(err) = self.qr.delete(session.to_string()).await
                    {
                        debug!(error = %err, %session, "QR entry not removed");
                    }
                    let reported = change.status;
                    let command = SessionCommand::ReportStatus {
                        status: change.status,
                        phone_number: change.phone_number,
                        error: change.error,
                        at: change.at,
                    };
                    match self.sessions.execute(&key, command, &metadata()).await {
                        // The send loop sends while the log says ready.
                        Ok(_) => {
                            let before = status.send_replace(reported);
                            if reported == SessionStatus::Disconnected
                                && before != SessionStatus::Disconnected
                            {
                                tokio::spawn(reconnect(
                                    session,
                                    driver.clone(),
                                    status.subscribe(),
                                    stop.clone(),
                                ));
                            }
                        }
                        // A late report after a stop, say: the aggregate
                        // decides, and said no.
                        Err(err) => debug!(error = %err, %session, "status report refused"),
                    }
                }
                DriverEvent::Qr(qr) => {
                    let entry = QrEntry {
                        qr: qr.payload,
                        expires_at: qr.expires_at,
                    };
                    let value = serde_json::to_vec(&entry).expect("a QR entry serializes");
                    if let Err(err) = self.qr.put(session.to_string(), value.into()).await {
                        warn!(error = %err, %session, "QR not published");
                    }
                }
                DriverEvent::Receipt(receipt) => {
                    // Apart, so a receipt waiting for its message's id does
                    // not hold up the session's other events.
                    let engine = self.clone();
                    tokio::spawn(async move {
                        if let Err(err) = receipts::record(
                            &engine.aggregates,
                            &engine.provider_ids,
                            tenant,
                            session,
                            receipt,
                            engine.actor(),
                        )
                        .await
                        {
                            warn!(error = %err, %session, "receipt not recorded");
                        }
                    });
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
                        at: inbound.at,
                    };
                    let inbound_key =
                        AggregateKey::new(tenant, inbound_id).expect("UUIDs are subject tokens");
                    if let Err(err) = self
                        .aggregates
                        .inbound
                        .execute(&inbound_key, command, &metadata())
                        .await
                    {
                        warn!(error = %err, %session, "inbound message not recorded");
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
        stop: CancellationToken,
    ) -> Result<JoinHandle<()>, EngineError> {
        let subject = control::session_subjects(self.log.prefix(), tenant, session);
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
                                    .map(|()| SimulatorInboundResponse { message_id: None })
                                    .map_err(simulator_refusal)
                            },
                        )
                        .await
                    }
                    other => serde_json::to_vec(&Reply::<()>::Error(refusal(
                        ControlErrorCode::ValidationFailed,
                        format!("unknown request {other:?}"),
                    )))
                    .expect("a reply serializes"),
                };
                if let Err(err) = self.client.publish(reply_to, answer.into()).await {
                    debug!(error = %err, %session, "reply not sent");
                }
            }
        }))
    }

    async fn renew(&self) {
        let leases: Vec<(SessionId, Lease)> = self
            .running
            .lock()
            .expect("engine lock")
            .iter()
            .map(|(id, running)| (*id, running.lease.clone()))
            .collect();
        for (session, mut lease) in leases {
            match self.leases.renew(&mut lease).await {
                Ok(true) => {
                    if let Some(running) =
                        self.running.lock().expect("engine lock").get_mut(&session)
                    {
                        running.lease = lease;
                    }
                }
                Ok(false) => {
                    warn!(%session, "lost the session's lease to another engine: no longer running it here");
                    let lost = self.running.lock().expect("engine lock").remove(&session);
                    if let Some(running) = lost {
                        running.stop.cancel();
                        let _ = running.driver.stop().await;
                    }
                }
                Err(err) => warn!(error = %err, %session, "lease not renewed; trying again"),
            }
        }
    }

    async fn release(&self, session: SessionId, ending: Ending) {
        let Some(running) = self.running.lock().expect("engine lock").remove(&session) else {
            return;
        };
        let result = match ending {
            Ending::Stop => running.driver.stop().await,
            Ending::Logout => running.driver.logout().await,
        };
        if let Err(err) = result {
            warn!(error = %err, %session, "the driver did not stop cleanly");
        }
        running.stop.cancel();
        for task in running.tasks {
            let _ = task.await;
        }
        let _ = self.qr.delete(session.to_string()).await;
        if let Err(err) = self.leases.release(running.lease).await {
            warn!(error = %err, %session, "lease not released; it expires by itself");
        }
        info!(%session, tenant = %running.tenant, "session no longer runs here");
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
            debug!(error = %err, "heartbeat not removed; it expires by itself");
        }
        info!(engine = %self.config.engine_id, "engine stopped");
    }
}

/// How a session stops running here.
#[derive(Clone, Copy)]
enum Ending {
    /// Stopped (the link is kept) or deleted.
    Stop,
    /// Logged out (the link is dropped).
    Logout,
}

/// The first pause before reconnecting a disconnected session; doubled
/// after each attempt, up to [`RECONNECT_MAX_DELAY`].
const RECONNECT_FIRST_DELAY: Duration = Duration::from_secs(1);
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(60);

/// Starts a disconnected session's driver again, with back-off, until the
/// session is no longer disconnected (reconnected, stopped, logged out) or
/// stops running here.
async fn reconnect(
    session: SessionId,
    driver: Arc<dyn Driver>,
    mut status: watch::Receiver<SessionStatus>,
    stop: CancellationToken,
) {
    let mut delay = RECONNECT_FIRST_DELAY;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        if *status.borrow_and_update() != SessionStatus::Disconnected {
            return;
        }
        info!(%session, after = ?delay, "reconnecting");
        if let Err(err) = driver.start().await {
            warn!(error = %err, %session, "reconnect failed; trying again");
        }
        delay = (delay * 2).min(RECONNECT_MAX_DELAY);
    }
}

fn refusal(code: ControlErrorCode, message: impl std::fmt::Display) -> ControlError {
    ControlError {
        code,
        message: message.to_string(),
    }
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
