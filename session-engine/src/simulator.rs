//! The simulator: an in-process WhatsApp network, so the whole product can
//! be used, demonstrated and load-tested with no phone. It is the default
//! driver, not a test double: it behaves like WhatsApp does from the
//! engine's side, with the bad days included.
//!
//! - **Linking**: a started session that was never linked waits for a scan
//!   with a QR code that rotates every [`SimulatorConfig::qr_ttl`]; it links
//!   when [`SimulatorNetwork::scan`] is called (the API's simulator scan
//!   endpoint) or by itself after [`SimulatorConfig::auto_scan_after`]. A
//!   pairing code can be asked instead of the QR; it links the same ways.
//!   A linked session that starts again restores without a QR.
//! - **Sending**: a send succeeds, fails for a while (transient) or for good
//!   (permanent) at configurable rates; numbers can be "not on WhatsApp" at
//!   a configurable rate. Delivered and read receipts follow after
//!   configurable delays; a recipient may reply.
//! - **What WhatsApp accepted**: each send goes out under our id
//!   (`sim-<message id>`, [`Driver::choose_message_id`]); what the
//!   simulated WhatsApp accepts is kept in a JetStream KV bucket every
//!   engine of the installation shares (`<prefix>_simulator_accepted`,
//!   three days, [`SimulatorNetwork::shared`]), so that a send whose
//!   answer was lost (its engine killed, [`SimulatorConfig::answer_after`])
//!   can be looked up by another engine ([`Driver::look_up`]): accepted →
//!   it went out, delivered and read as the receipt delays say by now; not
//!   there → it never left. A network without the bucket knows only its
//!   own sends, and cannot tell about others.
//! - **Bans**: after [`SimulatorConfig::ban_after_sends`] sends the number is
//!   banned: it reports `logged_out` ("banned") and sends fail.
//! - **Inbound**: [`SimulatorNetwork::inbound`] delivers a message to a
//!   session (the API's simulator inbound endpoint).
//!
//! Every decision is a function of the seed and what it is about (the
//! message id, the number, the session), never of timing or order, so a
//! seeded run is reproducible.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use uuid::Uuid;
use wablast_domain::inbound::InboundKind;
use wablast_domain::session::{SessionStatus, StatusReason};
use wablast_domain::types::phone::Phone;
use wablast_domain::types::{Chat, SessionId};

use wablast_domain::governor::RestrictionKind;

use async_nats::jetstream::{self as js, kv};
use tracing::warn;
use wablast_domain::message::Receipt as MessageReceipt;
use wablast_eventstore::{EventStoreError, Prefix};

use crate::driver::{
    Connection, Driver, DriverError, DriverEvent, Group, GroupMember, Inbound, LookedUp,
    OutgoingMessage, QrCode, Receipt, ReceiptKind, SendError, SentMessage, StatusChange,
};

/// How the simulated network behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulatorConfig {
    /// Seeds every decision.
    pub seed: u64,
    /// How long a QR code is valid before the next one replaces it.
    pub qr_ttl: Duration,
    /// A session waiting for a scan links by itself after this long
    /// (`None`: only a scan links it).
    pub auto_scan_after: Option<Duration>,
    /// The number a session links as when it links by itself.
    pub auto_scan_phone: Option<Phone>,
    /// Share of sends that fail for a while.
    pub transient_failure_rate: f64,
    /// Share of sends that fail for good.
    pub permanent_failure_rate: f64,
    /// Share of numbers that are not on WhatsApp.
    pub unregistered_rate: f64,
    /// Delay from sent to delivered (`None`: never delivered).
    pub delivered_after: Option<Duration>,
    /// Delay from delivered to read (`None`: never read).
    pub read_after: Option<Duration>,
    /// Share of read messages the recipient answers.
    pub reply_rate: f64,
    /// Delay from read to the reply.
    pub reply_after: Duration,
    /// The number is banned after this many sends (`None`: never).
    pub ban_after_sends: Option<u64>,
    /// How long a send takes to be acknowledged (WhatsApp's round trip),
    /// before WhatsApp takes it.
    pub send_latency: Duration,
    /// How long WhatsApp's answer to a send it took takes to come back:
    /// an engine killed meanwhile never hears it (a lookup tells).
    pub answer_after: Duration,
    /// Share of sends WhatsApp answers with a 463 reachout timelock.
    pub timelock_rate: f64,
    /// Share of sends WhatsApp answers with "capping quota reached".
    pub capping_rate: f64,
    /// How long a simulated timelock or capping lasts.
    pub restriction_length: Duration,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            qr_ttl: Duration::from_secs(20),
            auto_scan_after: None,
            auto_scan_phone: None,
            transient_failure_rate: 0.0,
            permanent_failure_rate: 0.0,
            unregistered_rate: 0.0,
            delivered_after: Some(Duration::from_secs(2)),
            read_after: Some(Duration::from_secs(10)),
            reply_rate: 0.0,
            reply_after: Duration::from_secs(30),
            ban_after_sends: None,
            send_latency: Duration::ZERO,
            answer_after: Duration::ZERO,
            timelock_rate: 0.0,
            capping_rate: 0.0,
            restriction_length: Duration::from_secs(3600),
        }
    }
}

/// A request to the network that could not be carried out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SimulatorError {
    /// No running simulated session has this id.
    #[error("the session is not running on this engine")]
    NotRunning,
    /// The session is not waiting for a scan.
    #[error("the session is not waiting for a QR scan or pairing code (it is {0})")]
    NotWaitingForScan(SessionStatus),
    /// The session is not linked and connected.
    #[error("the session is not ready (it is {0})")]
    NotReady(SessionStatus),
}

/// The simulated WhatsApp network: the sessions connected to it and how it
/// behaves. Cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct SimulatorNetwork {
    inner: Arc<NetworkInner>,
}

#[derive(Debug)]
struct NetworkInner {
    config: SimulatorConfig,
    sessions: Mutex<HashMap<SessionId, Weak<Mutex<SimSession>>>>,
    /// When the messages this network's sessions sent were accepted, by
    /// provider id.
    accepted: Mutex<HashMap<String, DateTime<Utc>>>,
    /// The same, for every engine of the installation.
    shared: Option<kv::Store>,
}

impl SimulatorNetwork {
    /// How long the simulated WhatsApp remembers a message it accepted.
    pub const ACCEPTED_KEPT: Duration = Duration::from_secs(3 * 24 * 3600);

    /// A network behaving as `config` says, knowing only of its own sends.
    pub fn new(config: SimulatorConfig) -> Self {
        Self::with_bucket(config, None)
    }

    /// A network behaving as `config` says, that keeps what it accepts in
    /// the installation's `<prefix>_simulator_accepted` bucket (created if
    /// needed), where every engine's network looks sends up.
    pub async fn shared(
        config: SimulatorConfig,
        jetstream: &js::Context,
        prefix: &Prefix,
    ) -> Result<Self, EventStoreError> {
        let bucket = wablast_eventstore::ensure_expiring_key_value(
            jetstream,
            &format!("{prefix}_simulator_accepted"),
            "the messages the simulated WhatsApp accepted, by provider id",
            Self::ACCEPTED_KEPT,
            prefix.replicas(),
        )
        .await?;
        Ok(Self::with_bucket(config, Some(bucket)))
    }

    fn with_bucket(config: SimulatorConfig, shared: Option<kv::Store>) -> Self {
        Self {
            inner: Arc::new(NetworkInner {
                config,
                sessions: Mutex::default(),
                accepted: Mutex::default(),
                shared,
            }),
        }
    }

    /// WhatsApp takes the message `provider_message_id` at `at`; `false`:
    /// it refuses it, because a lookup found no message of that id before
    /// and said it never left (a lookup and a late send race for the id:
    /// whichever comes first is the truth), or the bucket could not keep
    /// it.
    async fn accept(&self, provider_message_id: &str, at: DateTime<Utc>) -> bool {
        if let Some(bucket) = &self.inner.shared {
            match bucket
                .create(provider_message_id, at.to_rfc3339().into())
                .await
            {
                Ok(_) => {}
                Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => {
                    if let Ok(Some(value)) = bucket.get(provider_message_id).await
                        && value.as_ref() == NEVER_LEFT
                    {
                        return false;
                    }
                    // Sent again under the same id: the same message.
                }
                Err(err) => {
                    // Taken only once any engine can look it up: a send
                    // the bucket does not have never left.
                    warn!(error = %err, provider_message_id, "the simulator's acceptance could not be kept: the send is refused");
                    return false;
                }
            }
        }
        self.inner
            .accepted
            .lock()
            .expect("simulator lock")
            .insert(provider_message_id.to_owned(), at);
        true
    }

    /// What became of the message `provider_message_id`, as the simulated
    /// WhatsApp knows it. Not found, it never left, and is refused should
    /// its send still come.
    pub async fn look_up(&self, provider_message_id: &str) -> Result<LookedUp, DriverError> {
        let failed = |err: &dyn std::fmt::Display| {
            DriverError::Failed(format!("simulator lookup of {provider_message_id}: {err}"))
        };
        let mine = self
            .inner
            .accepted
            .lock()
            .expect("simulator lock")
            .get(provider_message_id)
            .copied();
        let entry = match (mine, &self.inner.shared) {
            (Some(at), _) => Some(Bytes::from(at.to_rfc3339())),
            (None, None) => return Ok(LookedUp::CannotTell),
            (None, Some(bucket)) => match bucket
                .get(provider_message_id)
                .await
                .map_err(|e| failed(&e))?
            {
                Some(value) => Some(value),
                None => match bucket
                    .create(provider_message_id, Bytes::from_static(NEVER_LEFT))
                    .await
                {
                    Ok(_) => None,
                    Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => bucket
                        .get(provider_message_id)
                        .await
                        .map_err(|e| failed(&e))?,
                    Err(err) => return Err(failed(&err)),
                },
            },
        };
        let accepted_at = match entry {
            None => return Ok(LookedUp::NeverLeft),
            Some(value) if value.as_ref() == NEVER_LEFT => return Ok(LookedUp::NeverLeft),
            Some(value) => std::str::from_utf8(&value)
                .ok()
                .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
                .map(|at| at.with_timezone(&Utc))
                .ok_or_else(|| failed(&"an unreadable entry"))?,
        };
        // How far it got by now, as the receipt delays say.
        let config = &self.inner.config;
        let elapsed = (Utc::now() - accepted_at).to_std().unwrap_or_default();
        let receipt = config
            .delivered_after
            .filter(|delivered| elapsed >= *delivered)
            .map(|delivered| match config.read_after {
                Some(read) if elapsed >= delivered + read => MessageReceipt::Read,
                _ => MessageReceipt::Delivered,
            });
        Ok(LookedUp::WentOut { receipt })
    }

    /// How it behaves.
    pub fn config(&self) -> &SimulatorConfig {
        &self.inner.config
    }

    /// Connects a session; `linked` is the number it was linked as before
    /// (its stored credentials), if any.
    pub fn connect(&self, session_id: SessionId, linked: Option<Phone>) -> Connection {
        let (events, receiver) = mpsc::unbounded_channel();
        let session = Arc::new(Mutex::new(SimSession {
            id: session_id,
            status: SessionStatus::Idle,
            linked,
            qr: None,
            pairing_code: None,
            generation: 0,
            sends: 0,
            went_out: 0,
            restricted: None,
            banned: false,
            hung: false,
            events,
        }));
        self.inner
            .sessions
            .lock()
            .expect("simulator lock")
            .insert(session_id, Arc::downgrade(&session));
        Connection {
            driver: Box::new(SimulatorDriver {
                network: self.clone(),
                session,
            }),
            events: receiver,
        }
    }

    fn session(&self, session_id: SessionId) -> Result<Arc<Mutex<SimSession>>, SimulatorError> {
        let mut sessions = self.inner.sessions.lock().expect("simulator lock");
        match sessions.get(&session_id).and_then(Weak::upgrade) {
            Some(session) => Ok(session),
            None => {
                sessions.remove(&session_id);
                Err(SimulatorError::NotRunning)
            }
        }
    }

    /// The phone `phone` scans the session's QR (or types its pairing
    /// code): the session links as that number.
    pub fn scan(&self, session_id: SessionId, phone: Phone) -> Result<(), SimulatorError> {
        let session = self.session(session_id)?;
        let mut s = session.lock().expect("session lock");
        if !matches!(s.status, SessionStatus::Qr | SessionStatus::Pairing) {
            return Err(SimulatorError::NotWaitingForScan(s.status));
        }
        s.link(phone);
        Ok(())
    }

    /// The session's connection drops (a phone off the network, a
    /// WhatsApp hiccup): it reports `disconnected` and stays so until it is
    /// started again.
    pub fn disconnect(&self, session_id: SessionId) -> Result<(), SimulatorError> {
        let session = self.session(session_id)?;
        let mut s = session.lock().expect("session lock");
        if s.status != SessionStatus::Ready {
            return Err(SimulatorError::NotReady(s.status));
        }
        s.generation += 1;
        s.report(
            SessionStatus::Disconnected,
            Some("connection lost".to_owned()),
        );
        Ok(())
    }

    /// The session's connection hangs (a stuck WhatsApp Web socket): it
    /// still says `ready`, but answers no health probe until it is stopped
    /// and started again.
    pub fn hang(&self, session_id: SessionId) -> Result<(), SimulatorError> {
        let session = self.session(session_id)?;
        let mut s = session.lock().expect("session lock");
        if s.status != SessionStatus::Ready {
            return Err(SimulatorError::NotReady(s.status));
        }
        s.hung = true;
        Ok(())
    }

    /// WhatsApp restricts the session's number (a 463 reachout timelock,
    /// the capping quota, a temporary ban) until `until`: each of its sends
    /// until then is answered with that restriction.
    pub fn restrict(
        &self,
        session_id: SessionId,
        kind: RestrictionKind,
        until: DateTime<Utc>,
    ) -> Result<(), SimulatorError> {
        let session = self.session(session_id)?;
        session.lock().expect("session lock").restricted = Some((kind, until));
        Ok(())
    }

    /// How many messages the session's number sent (WhatsApp accepted):
    /// refused sends do not count.
    pub fn went_out(&self, session_id: SessionId) -> Result<u64, SimulatorError> {
        let session = self.session(session_id)?;
        let went_out = session.lock().expect("session lock").went_out;
        Ok(went_out)
    }

    /// `from` sends `text` to the session's number; the message's id, as
    /// the driver reports it.
    pub fn inbound(
        &self,
        session_id: SessionId,
        from: Phone,
        text: String,
    ) -> Result<String, SimulatorError> {
        let session = self.session(session_id)?;
        let s = session.lock().expect("session lock");
        if s.status != SessionStatus::Ready {
            return Err(SimulatorError::NotReady(s.status));
        }
        Ok(s.emit_inbound(from, text, Uuid::now_v7().to_string()))
    }

    /// A number in [0, 1) decided by the seed and `what`.
    fn roll(&self, what: &[&[u8]]) -> f64 {
        let mut hasher = Sha256::new();
        hasher.update(self.inner.config.seed.to_be_bytes());
        for part in what {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        let digest = hasher.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Whether `phone` is on the simulated WhatsApp.
    pub fn is_registered(&self, phone: &Phone) -> bool {
        self.roll(&[b"registered", phone.as_str().as_bytes()])
            >= self.inner.config.unregistered_rate
    }
}

/// One simulated session's state.
#[derive(Debug)]
struct SimSession {
    id: SessionId,
    status: SessionStatus,
    linked: Option<Phone>,
    qr: Option<QrCode>,
    pairing_code: Option<String>,
    /// Bumped at every start, stop and logout: timers of an earlier run
    /// see a different generation and do nothing.
    generation: u64,
    sends: u64,
    /// Messages that went out (accepted by the simulated WhatsApp).
    went_out: u64,
    /// WhatsApp restricts this number until then (set by
    /// [`SimulatorNetwork::restrict`]).
    restricted: Option<(RestrictionKind, DateTime<Utc>)>,
    banned: bool,
    /// Its connection hangs (set by [`SimulatorNetwork::hang`]) until a
    /// stop drops it.
    hung: bool,
    events: mpsc::UnboundedSender<DriverEvent>,
}

impl SimSession {
    /// The groups the simulated number is in: three, named from its
    /// session id.
    fn groups(&self) -> Vec<Group> {
        let id = self.id.as_uuid().simple().to_string();
        (0..3)
            .map(|i| Group {
                id: format!("{}{i}@g.us", &id[..12]),
                name: ["Pelanggan Setia", "Reseller", "Tim CS"][i].to_owned(),
                participants: 5 + i * 5,
            })
            .collect()
    }

    fn report(&mut self, status: SessionStatus, error: Option<String>) {
        self.report_why(status, error, None);
    }

    fn report_why(
        &mut self,
        status: SessionStatus,
        error: Option<String>,
        reason: Option<StatusReason>,
    ) {
        self.status = status;
        // A receiver gone means the engine let go of the session: nothing
        // to tell.
        let _ = self.events.send(DriverEvent::Status(StatusChange {
            status,
            phone_number: self.linked.clone(),
            error,
            reason,
            at: Utc::now(),
        }));
    }

    fn link(&mut self, phone: Phone) {
        self.linked = Some(phone);
        self.qr = None;
        self.pairing_code = None;
        self.report(SessionStatus::Authenticated, None);
        self.report(SessionStatus::Ready, None);
    }

    fn new_qr(&mut self, ttl: Duration, rotation: u64) {
        let qr = QrCode {
            payload: format!(
                "2@wablast-simulator,{},{},{rotation}",
                self.id,
                Uuid::now_v7().simple()
            ),
            expires_at: Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default(),
        };
        self.qr = Some(qr.clone());
        let _ = self.events.send(DriverEvent::Qr(qr));
    }

    /// Reports a message from `from`; its provider id.
    fn emit_inbound(&self, from: Phone, text: String, id: String) -> String {
        let provider_message_id = format!("sim-in-{id}");
        let _ = self.events.send(DriverEvent::Inbound(Inbound {
            from_raw: from.whatsapp_chat_id(),
            from: Some(from),
            text: Some(text),
            kind: InboundKind::Text,
            provider_message_id: provider_message_id.clone(),
            at: Utc::now(),
        }));
        provider_message_id
    }
}

/// What the accepted bucket holds for an id looked up before any send of
/// it was accepted.
const NEVER_LEFT: &[u8] = b"never-left";

/// The simulator's id of our message `message_id`.
fn sim_message_id(message_id: Uuid) -> String {
    format!("sim-{}", message_id.simple())
}

/// The [`Driver`] of one simulated session.
#[derive(Debug)]
pub struct SimulatorDriver {
    network: SimulatorNetwork,
    session: Arc<Mutex<SimSession>>,
}

impl SimulatorDriver {
    fn lock(&self) -> std::sync::MutexGuard<'_, SimSession> {
        self.session.lock().expect("session lock")
    }

    /// Runs `then` on the session after `delay`, unless it was stopped,
    /// restarted or dropped meanwhile.
    fn after(
        &self,
        delay: Duration,
        generation: u64,
        then: impl FnOnce(&mut SimSession) + Send + 'static,
    ) {
        let session = Arc::downgrade(&self.session);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(session) = session.upgrade() {
                let mut s = session.lock().expect("session lock");
                if s.generation == generation {
                    then(&mut s);
                }
            }
        });
    }

    /// Rotates the QR while the session waits for a scan.
    fn rotate_qr(&self, generation: u64) {
        let ttl = self.network.config().qr_ttl.max(Duration::from_millis(10));
        let session = Arc::downgrade(&self.session);
        tokio::spawn(async move {
            let mut rotation = 1;
            loop {
                tokio::time::sleep(ttl).await;
                let Some(session) = session.upgrade() else {
                    return;
                };
                let mut s = session.lock().expect("session lock");
                if s.generation != generation || s.status != SessionStatus::Qr {
                    return;
                }
                s.new_qr(ttl, rotation);
                rotation += 1;
            }
        });
    }

    fn wait_for_scan(&self, s: &mut SimSession) {
        let config = self.network.config().clone();
        s.report(SessionStatus::Qr, None);
        s.new_qr(config.qr_ttl, 0);
        let generation = s.generation;
        self.rotate_qr(generation);
        if let Some(delay) = config.auto_scan_after {
            let phone = config.auto_scan_phone.clone().unwrap_or_else(|| {
                // A plausible Indonesian mobile number of this session.
                let n = (self
                    .network
                    .roll(&[b"auto-phone", s.id.as_uuid().as_bytes()])
                    * 1e8) as u64;
                Phone::parse(&format!("+62812{n:08}"), Default::default()).expect("a valid number")
            });
            self.after(delay, generation, move |s| {
                if matches!(s.status, SessionStatus::Qr | SessionStatus::Pairing) {
                    s.link(phone);
                }
            });
        }
    }
}

#[async_trait]
impl Driver for SimulatorDriver {
    async fn start(&self) -> Result<(), DriverError> {
        let mut s = self.lock();
        if !matches!(
            s.status,
            SessionStatus::Idle
                | SessionStatus::LoggedOut
                | SessionStatus::Failed
                | SessionStatus::Disconnected
        ) {
            return Ok(());
        }
        s.generation += 1;
        if s.banned {
            s.report_why(
                SessionStatus::LoggedOut,
                Some("banned".to_owned()),
                Some(StatusReason::Banned),
            );
            return Ok(());
        }
        match s.linked.clone() {
            Some(_) => {
                s.report(SessionStatus::Authenticated, None);
                s.report(SessionStatus::Ready, None);
            }
            None => self.wait_for_scan(&mut s),
        }
        Ok(())
    }

    async fn stop(&self) -> Result<(), DriverError> {
        let mut s = self.lock();
        s.generation += 1;
        s.hung = false;
        s.status = SessionStatus::Idle;
        s.qr = None;
        s.pairing_code = None;
        Ok(())
    }

    async fn logout(&self) -> Result<(), DriverError> {
        let mut s = self.lock();
        s.generation += 1;
        s.linked = None;
        s.qr = None;
        s.pairing_code = None;
        s.report(SessionStatus::LoggedOut, None);
        Ok(())
    }

    async fn probe(&self) -> Result<(), DriverError> {
        let hung = {
            let s = self.lock();
            if s.status != SessionStatus::Ready {
                return Err(DriverError::InvalidState(format!(
                    "the session is not ready (it is {})",
                    s.status
                )));
            }
            s.hung
        };
        if hung {
            // A stuck socket never answers: the engine's probe times out.
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    async fn qr(&self) -> Result<Option<QrCode>, DriverError> {
        let s = self.lock();
        Ok(match s.status {
            SessionStatus::Qr => s.qr.clone(),
            _ => None,
        })
    }

    async fn request_pairing_code(&self, phone: &Phone) -> Result<String, DriverError> {
        let mut s = self.lock();
        if !matches!(s.status, SessionStatus::Qr | SessionStatus::Pairing) {
            return Err(DriverError::InvalidState(format!(
                "a pairing code is only given while waiting for a scan (the session is {})",
                s.status
            )));
        }
        // Eight characters as WhatsApp shows them: ABCD-EFGH, no 0/O/1/I.
        const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let code: String = (0..8)
            .map(|i: u8| {
                let r = self.network.roll(&[
                    b"pairing",
                    s.id.as_uuid().as_bytes(),
                    phone.as_str().as_bytes(),
                    &[i],
                ]);
                ALPHABET[(r * ALPHABET.len() as f64) as usize] as char
            })
            .collect();
        let code = format!("{}-{}", &code[..4], &code[4..]);
        s.pairing_code = Some(code.clone());
        s.qr = None;
        s.report(SessionStatus::Pairing, None);
        Ok(code)
    }

    async fn send(&self, message: &OutgoingMessage) -> Result<SentMessage, SendError> {
        self.send_as(message, None).await
    }

    /// `sim-` and our id: the id [`Driver::send`] sends it as too.
    async fn choose_message_id(
        &self,
        message_id: Uuid,
        _with_media: bool,
    ) -> Result<Option<String>, DriverError> {
        Ok(Some(sim_message_id(message_id)))
    }

    async fn look_up(
        &self,
        _to: &Chat,
        provider_message_id: &str,
    ) -> Result<LookedUp, DriverError> {
        self.network.look_up(provider_message_id).await
    }

    async fn send_as(
        &self,
        message: &OutgoingMessage,
        provider_message_id: Option<&str>,
    ) -> Result<SentMessage, SendError> {
        let config = self.network.config().clone();
        if !config.send_latency.is_zero() {
            tokio::time::sleep(config.send_latency).await;
        }
        // Decided under the session's lock, released before anything is
        // awaited.
        let (sent, generation) = {
            let mut s = self.lock();
            if s.banned {
                return Err(SendError::SessionUnavailable(
                    "the number is banned".to_owned(),
                ));
            }
            if s.status != SessionStatus::Ready {
                return Err(SendError::Transient(format!(
                    "not connected (the session is {})",
                    s.status
                )));
            }
            if let Some((kind, until)) = s.restricted
                && Utc::now() < until
            {
                return Err(SendError::Restricted {
                    kind,
                    until: Some(until),
                    reason: format!("{} (simulated)", kind.as_str()),
                });
            }
            let id = message.message_id.as_bytes();
            // Decided per message, and per attempt for transient failures, so a
            // retry can succeed.
            s.sends += 1;
            let attempt = s.sends.to_be_bytes();
            match &message.to {
                Chat::Person(phone) if !self.network.is_registered(phone) => {
                    return Err(SendError::Permanent(format!("{phone} is not on WhatsApp")));
                }
                Chat::Group(group) if !s.groups().iter().any(|g| g.id == group.as_str()) => {
                    return Err(SendError::Permanent(format!(
                        "this number is not in the group {group}"
                    )));
                }
                _ => {}
            }
            if self.network.roll(&[b"permanent", id]) < config.permanent_failure_rate {
                return Err(SendError::Permanent(
                    "rejected by WhatsApp (simulated)".to_owned(),
                ));
            }
            for (rate, kind, label) in [
                (
                    config.timelock_rate,
                    RestrictionKind::ReachoutTimelock,
                    &b"timelock"[..],
                ),
                (
                    config.capping_rate,
                    RestrictionKind::CappingQuota,
                    &b"capping"[..],
                ),
            ] {
                if self.network.roll(&[label, id, &attempt]) < rate {
                    let until = Utc::now()
                        + chrono::TimeDelta::from_std(config.restriction_length)
                            .unwrap_or_default();
                    return Err(SendError::Restricted {
                        kind,
                        until: Some(until),
                        reason: format!("{} (simulated)", kind.as_str()),
                    });
                }
            }
            if self.network.roll(&[b"transient", id, &attempt]) < config.transient_failure_rate {
                return Err(SendError::Transient("network error (simulated)".to_owned()));
            }
            let provider_message_id = provider_message_id
                .map_or_else(|| sim_message_id(message.message_id), str::to_owned);
            let sent = SentMessage {
                provider_message_id: provider_message_id.clone(),
                at: Utc::now(),
            };
            let generation = s.generation;
            s.went_out += 1;
            if config.ban_after_sends.is_some_and(|limit| s.sends >= limit) {
                s.banned = true;
                s.generation += 1;
                s.report_why(
                    SessionStatus::LoggedOut,
                    Some("banned".to_owned()),
                    Some(StatusReason::Banned),
                );
            }
            (sent, generation)
        };
        let provider_message_id = sent.provider_message_id.clone();
        let id = message.message_id.as_bytes();
        // WhatsApp has it: remembered where any engine can look it up.
        if !self.network.accept(&provider_message_id, sent.at).await {
            self.lock().went_out -= 1;
            return Err(SendError::Transient(format!(
                "{provider_message_id} not taken (looked up as never sent, or WhatsApp's record failed; simulated)"
            )));
        }

        if let Some(delivered_after) = config.delivered_after {
            let receipt = |kind| {
                let provider_message_id = provider_message_id.clone();
                move |s: &mut SimSession| {
                    let _ = s.events.send(DriverEvent::Receipt(Receipt {
                        provider_message_id,
                        kind,
                        at: Utc::now(),
                    }));
                }
            };
            self.after(delivered_after, generation, receipt(ReceiptKind::Delivered));
            if let Some(read_after) = config.read_after {
                let read_at = delivered_after + read_after;
                self.after(read_at, generation, receipt(ReceiptKind::Read));
                if let Some(from) = message.to.phone().cloned()
                    && self.network.roll(&[b"reply", id]) < config.reply_rate
                {
                    let reply_id = message.message_id.simple().to_string();
                    self.after(read_at + config.reply_after, generation, move |s| {
                        if s.status == SessionStatus::Ready {
                            s.emit_inbound(
                                from,
                                "Terima kasih, info lebih lanjut?".to_owned(),
                                reply_id,
                            );
                        }
                    });
                }
            }
        }
        if !config.answer_after.is_zero() {
            tokio::time::sleep(config.answer_after).await;
        }
        Ok(sent)
    }

    async fn check_number(&self, phone: &Phone) -> Result<bool, DriverError> {
        let s = self.lock();
        if s.status != SessionStatus::Ready {
            return Err(DriverError::InvalidState(format!(
                "the session is {}",
                s.status
            )));
        }
        Ok(self.network.is_registered(phone))
    }

    async fn groups(&self) -> Result<Vec<Group>, DriverError> {
        let s = self.lock();
        if s.status != SessionStatus::Ready {
            return Err(DriverError::InvalidState(format!(
                "the session is {}",
                s.status
            )));
        }
        Ok(s.groups())
    }

    async fn group_members(&self, group_id: &str) -> Result<Vec<GroupMember>, DriverError> {
        let groups = self.groups().await?;
        let group = groups
            .iter()
            .find(|g| g.id == group_id)
            .ok_or_else(|| DriverError::Failed(format!("no group {group_id}")))?;
        // Every fourth participant hides their number, as WhatsApp's
        // `@lid` ids do: the session sees who they are, not their number.
        Ok((0..group.participants)
            .map(|i| {
                if i % 4 == 3 {
                    return GroupMember {
                        id: format!("{}@lid", 90_000_000_000_000u64 + i as u64),
                        phone: None,
                        admin: false,
                    };
                }
                let phone =
                    Phone::parse(&format!("+62813{:08}", 10_000_000 + i), Default::default())
                        .expect("a valid number");
                GroupMember {
                    id: phone.whatsapp_chat_id(),
                    phone: Some(phone),
                    admin: i == 0,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(text: &str) -> Phone {
        text.parse().expect("a valid number")
    }

    fn message(to: &str) -> OutgoingMessage {
        OutgoingMessage {
            message_id: Uuid::now_v7(),
            to: phone(to).into(),
            text: "Halo Kak".to_owned(),
            media: None,
            reply_to: None,
            template: None,
        }
    }

    async fn next(events: &mut mpsc::UnboundedReceiver<DriverEvent>) -> DriverEvent {
        tokio::time::timeout(Duration::from_secs(3600), events.recv())
            .await
            .expect("an event in time")
            .expect("the driver is alive")
    }

    fn status_of(event: &DriverEvent) -> SessionStatus {
        match event {
            DriverEvent::Status(change) => change.status,
            other => panic!("expected a status change, got {other:?}"),
        }
    }

    async fn ready(network: &SimulatorNetwork) -> Connection {
        let session_id = SessionId::new();
        let mut connection = network.connect(session_id, Some(phone("+6281100000001")));
        connection.driver.start().await.unwrap();
        assert_eq!(
            status_of(&next(&mut connection.events).await),
            SessionStatus::Authenticated
        );
        assert_eq!(
            status_of(&next(&mut connection.events).await),
            SessionStatus::Ready
        );
        connection
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_session_waits_with_a_rotating_qr_and_links_on_scan() {
        let network = SimulatorNetwork::new(SimulatorConfig::default());
        let session_id = SessionId::new();
        let Connection { driver, mut events } = network.connect(session_id, None);

        driver.start().await.unwrap();
        assert_eq!(status_of(&next(&mut events).await), SessionStatus::Qr);
        let DriverEvent::Qr(first) = next(&mut events).await else {
            panic!("a QR")
        };
        assert_eq!(driver.qr().await.unwrap(), Some(first.clone()));
        // 20 s later a new one replaces it.
        let DriverEvent::Qr(second) = next(&mut events).await else {
            panic!("a new QR")
        };
        assert_ne!(first.payload, second.payload);
        assert_eq!(driver.qr().await.unwrap(), Some(second));

        network.scan(session_id, phone("+6281234567890")).unwrap();
        assert_eq!(
            status_of(&next(&mut events).await),
            SessionStatus::Authenticated
        );
        let DriverEvent::Status(ready) = next(&mut events).await else {
            panic!("ready")
        };
        assert_eq!(ready.status, SessionStatus::Ready);
        assert_eq!(ready.phone_number, Some(phone("+6281234567890")));
        assert_eq!(driver.qr().await.unwrap(), None);
        assert_eq!(
            network.scan(session_id, phone("+6281234567890")),
            Err(SimulatorError::NotWaitingForScan(SessionStatus::Ready))
        );

        // Stopped and started again: the link is kept, no QR.
        driver.stop().await.unwrap();
        driver.start().await.unwrap();
        assert_eq!(
            status_of(&next(&mut events).await),
            SessionStatus::Authenticated
        );
        assert_eq!(status_of(&next(&mut events).await), SessionStatus::Ready);

        // Logged out: the next start needs a QR again.
        driver.logout().await.unwrap();
        assert_eq!(
            status_of(&next(&mut events).await),
            SessionStatus::LoggedOut
        );
        driver.start().await.unwrap();
        assert_eq!(status_of(&next(&mut events).await), SessionStatus::Qr);
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_can_link_by_itself_or_with_a_pairing_code() {
        let network = SimulatorNetwork::new(SimulatorConfig {
            auto_scan_after: Some(Duration::from_secs(5)),
            ..SimulatorConfig::default()
        });
        let session_id = SessionId::new();
        let Connection { driver, mut events } = network.connect(session_id, None);
        driver.start().await.unwrap();
        assert_eq!(status_of(&next(&mut events).await), SessionStatus::Qr);
        let code = driver
            .request_pairing_code(&phone("+6281234567890"))
            .await
            .unwrap();
        assert_eq!(code.len(), 9);
        assert_eq!(&code[4..5], "-");
        assert_eq!(
            code,
            driver
                .request_pairing_code(&phone("+6281234567890"))
                .await
                .unwrap(),
            "the same seed, session and number give the same code"
        );
        let mut statuses = Vec::new();
        while statuses.last() != Some(&SessionStatus::Ready) {
            if let DriverEvent::Status(change) = next(&mut events).await {
                statuses.push(change.status);
            }
        }
        assert_eq!(
            statuses,
            [
                SessionStatus::Pairing,
                SessionStatus::Pairing,
                SessionStatus::Authenticated,
                SessionStatus::Ready
            ]
        );
        assert!(
            driver
                .request_pairing_code(&phone("+6281234567890"))
                .await
                .is_err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn sends_are_receipted_delivered_then_read_and_answered() {
        let network = SimulatorNetwork::new(SimulatorConfig {
            reply_rate: 1.0,
            ..SimulatorConfig::default()
        });
        let Connection { driver, mut events } = ready(&network).await;
        let sent = driver.send(&message("+6281234567890")).await.unwrap();

        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(next(&mut events).await);
        }
        let DriverEvent::Receipt(delivered) = &seen[0] else {
            panic!("{seen:?}")
        };
        let DriverEvent::Receipt(read) = &seen[1] else {
            panic!("{seen:?}")
        };
        let DriverEvent::Inbound(reply) = &seen[2] else {
            panic!("{seen:?}")
        };
        assert_eq!(delivered.kind, ReceiptKind::Delivered);
        assert_eq!(read.kind, ReceiptKind::Read);
        assert_eq!(delivered.provider_message_id, sent.provider_message_id);
        assert_eq!(reply.from, Some(phone("+6281234567890")));
        assert_eq!(reply.from_raw, "6281234567890@c.us");
    }

    #[tokio::test(start_paused = true)]
    async fn outcomes_follow_the_rates_and_the_seed() {
        let config = SimulatorConfig {
            seed: 42,
            transient_failure_rate: 0.2,
            permanent_failure_rate: 0.1,
            delivered_after: None,
            ..SimulatorConfig::default()
        };
        let messages: Vec<OutgoingMessage> = (0..2000)
            .map(|i| OutgoingMessage {
                message_id: Uuid::from_u128(i),
                ..message("+6281234567890")
            })
            .collect();
        let outcomes = |config: SimulatorConfig| {
            let messages = messages.clone();
            async move {
                let network = SimulatorNetwork::new(config);
                let connection = ready(&network).await;
                let mut outcomes = Vec::new();
                for m in &messages {
                    outcomes.push(match connection.driver.send(m).await {
                        Ok(_) => 'o',
                        Err(SendError::Transient(_)) => 't',
                        Err(SendError::Permanent(_)) => 'p',
                        Err(SendError::Unknown(_)) => 'u',
                        Err(SendError::SessionUnavailable(_)) => 's',
                        Err(SendError::Paused { .. }) => 'w',
                        Err(SendError::Restricted { .. }) => 'r',
                    });
                }
                outcomes
            }
        };
        let first = outcomes(config.clone()).await;
        let again = outcomes(config.clone()).await;
        let other_seed = outcomes(SimulatorConfig { seed: 7, ..config }).await;

        assert_eq!(first, again, "the same seed decides the same");
        assert_ne!(first, other_seed);
        let share = |c| first.iter().filter(|o| **o == c).count() as f64 / first.len() as f64;
        assert!((share('p') - 0.1).abs() < 0.03, "permanent {}", share('p'));
        assert!((share('t') - 0.18).abs() < 0.04, "transient {}", share('t'));
    }

    #[tokio::test]
    async fn a_timelock_rate_of_one_answers_every_send_with_a_timelock_until_t() {
        let network = SimulatorNetwork::new(SimulatorConfig {
            timelock_rate: 1.0,
            restriction_length: Duration::from_secs(600),
            delivered_after: None,
            ..SimulatorConfig::default()
        });
        let Connection { driver, .. } = ready(&network).await;
        let before = Utc::now();
        match driver.send(&message("+6281234567890")).await {
            Err(SendError::Restricted { kind, until, .. }) => {
                assert_eq!(kind, RestrictionKind::ReachoutTimelock);
                assert!(until.is_some_and(|t| t >= before + chrono::TimeDelta::seconds(600)));
            }
            other => panic!("expected a timelock, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_number_is_banned_after_enough_sends() {
        let network = SimulatorNetwork::new(SimulatorConfig {
            ban_after_sends: Some(3),
            delivered_after: None,
            ..SimulatorConfig::default()
        });
        let Connection { driver, mut events } = ready(&network).await;
        for _ in 0..3 {
            driver.send(&message("+6281234567890")).await.unwrap();
        }
        let DriverEvent::Status(banned) = next(&mut events).await else {
            panic!("banned")
        };
        assert_eq!(
            (banned.status, banned.error.as_deref()),
            (SessionStatus::LoggedOut, Some("banned"))
        );
        assert!(matches!(
            driver.send(&message("+6281234567890")).await,
            Err(SendError::SessionUnavailable(_))
        ));
        driver.start().await.unwrap();
        assert_eq!(
            status_of(&next(&mut events).await),
            SessionStatus::LoggedOut,
            "still banned"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_send_goes_out_under_our_id_and_is_looked_up_by_it_and_a_ban_still_holds() {
        let network = SimulatorNetwork::new(SimulatorConfig {
            ban_after_sends: Some(2),
            delivered_after: None,
            ..SimulatorConfig::default()
        });
        let Connection { driver, .. } = ready(&network).await;
        let first = message("+6281234567890");
        let chosen = driver
            .choose_message_id(first.message_id, false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(chosen, format!("sim-{}", first.message_id.simple()));
        let sent = driver.send_as(&first, Some(&chosen)).await.unwrap();
        assert_eq!(sent.provider_message_id, chosen);
        assert_eq!(
            driver.look_up(&first.to, &chosen).await.unwrap(),
            LookedUp::WentOut { receipt: None }
        );
        // Without the installation's bucket, another engine's send is not
        // known here.
        assert_eq!(
            driver.look_up(&first.to, "sim-elsewhere").await.unwrap(),
            LookedUp::CannotTell
        );
        // Banned after its second send: a send under a chosen id is refused
        // like any other.
        driver.send(&message("+6281234567891")).await.unwrap();
        let third = message("+6281234567892");
        let chosen = driver
            .choose_message_id(third.message_id, false)
            .await
            .unwrap();
        assert!(matches!(
            driver.send_as(&third, chosen.as_deref()).await,
            Err(SendError::SessionUnavailable(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn inbound_messages_reach_a_ready_session_only() {
        let network = SimulatorNetwork::new(SimulatorConfig::default());
        let session_id = SessionId::new();
        let Connection { driver, mut events } =
            network.connect(session_id, Some(phone("+6281100000001")));
        assert_eq!(
            network.inbound(session_id, phone("+6281234567890"), "halo".into()),
            Err(SimulatorError::NotReady(SessionStatus::Idle))
        );
        driver.start().await.unwrap();
        next(&mut events).await;
        next(&mut events).await;
        network
            .inbound(
                session_id,
                phone("+6281234567890"),
                "halo, stok ada?".into(),
            )
            .unwrap();
        let DriverEvent::Inbound(inbound) = next(&mut events).await else {
            panic!("inbound")
        };
        assert_eq!(inbound.text.as_deref(), Some("halo, stok ada?"));

        drop(driver);
        assert_eq!(
            network.inbound(session_id, phone("+6281234567890"), "halo".into()),
            Err(SimulatorError::NotRunning)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_send_before_ready_is_transient_and_unregistered_numbers_are_permanent() {
        let network = SimulatorNetwork::new(SimulatorConfig {
            unregistered_rate: 1.0,
            ..SimulatorConfig::default()
        });
        let idle = network.connect(SessionId::new(), None);
        assert!(matches!(
            idle.driver.send(&message("+6281234567890")).await,
            Err(SendError::Transient(_))
        ));
        let connection = ready(&network).await;
        assert!(
            !connection
                .driver
                .check_number(&phone("+6281234567890"))
                .await
                .unwrap()
        );
        assert!(matches!(
            connection.driver.send(&message("+6281234567890")).await,
            Err(SendError::Permanent(reason)) if reason.contains("not on WhatsApp")
        ));
        let groups = connection.driver.groups().await.unwrap();
        let members = connection
            .driver
            .group_members(&groups[0].id)
            .await
            .unwrap();
        assert_eq!(members.len(), groups[0].participants);
    }
}
