//! The `native` [`Driver`]: one `whatsapp-rust` client per session, on
//! the session's PostgreSQL key store ([`super::store`]), in this process.
//!
//! What the client reports becomes [`DriverEvent`]s, in order (one task per
//! running client reads its events):
//! - a QR code (`PairingQrCode`, refreshed every 20 s after the first 60 s)
//!   → [`DriverEvent::Qr`] and `qr`; the codes running out
//!   (`PairingQrCodesExhausted`) → `failed` (a new start shows new ones);
//! - the phone's link (`PairSuccess`) → `authenticated`, the login after it
//!   (`Connected`) → `ready` with the linked number;
//! - a dropped connection → `disconnected` (the client reconnects by
//!   itself, and reports `Connected` again);
//! - WhatsApp unlinking the device (`LoggedOut`, a 401 at login or a
//!   stream error) → every key erased, `logged_out` with
//!   [`StatusReason::LoggedOut`];
//! - a temporary ban (`TemporaryBan`, a 402) → `logged_out` with
//!   [`StatusReason::Restricted`], keys kept: the engine moves the session's
//!   campaign messages to its other senders, and a send meanwhile answers
//!   [`SendError::Restricted`] with the ban's end;
//! - another connection of the same device taking over (`StreamReplaced`)
//!   → `failed` with [`StatusReason::Replaced`];
//! - receipts (delivered, read, played) and incoming messages.
//!
//! A send names the message with an id derived from ours
//! ([`provider_message_id`]: the same for every attempt, so a send whose
//! outcome was lost can be matched later), waits for WhatsApp's server ack
//! of that id and classifies a refusal; no ack within
//! [`NativeOptions::ack_timeout`] is an unknown outcome.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use sha2::Digest;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};
use wablast_domain::governor::RestrictionKind;
use wablast_domain::inbound::InboundKind;
use wablast_domain::session::{Fence, SessionStatus, StatusReason};
use wablast_domain::types::SessionId;
use wablast_domain::types::phone::Phone;
use wablast_workflows::credentials::SecretKey;
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::transport::{
    TokioWebSocketTransportFactory, Transport, TransportEvent, TransportFactory,
};
use whatsapp_rust::types::events::{Event, EventHandler};
use whatsapp_rust::types::presence::ReceiptType;
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::{Client, Jid, SendOptions};

use super::store::{self, KeyStore};
use crate::driver::{
    Connection, Driver, DriverError, DriverEvent, Group, GroupMember, Inbound, OutgoingMessage,
    QrCode, Receipt, ReceiptKind, SendError, SentMessage, StatusChange,
};
use crate::waha::{Typing, phone_of_chat_id};

/// WhatsApp's own websocket.
pub const WHATSAPP_WEB_WS_URL: &str = wacore::net::WHATSAPP_WEB_WS_URL;

/// WhatsApp's peer, as errors name it.
const PEER: &str = "WhatsApp";

/// How a native session connects.
#[derive(Clone)]
pub struct NativeOptions {
    /// The websocket the client connects to ([`WHATSAPP_WEB_WS_URL`]
    /// unless a test server's: `WABLAST_NATIVE_WS_URL`).
    pub url: String,
    /// How the client's connections are made instead of a websocket to
    /// [`NativeOptions::url`] (tests' in-process fake server).
    pub transport: Option<Arc<dyn TransportFactory>>,
    /// The WhatsApp Web version to announce; `None` fetches the current one
    /// from WhatsApp at each start.
    pub version: Option<(u32, u32, u32)>,
    /// How long a send waits for WhatsApp's server ack before its outcome
    /// is unknown.
    pub ack_timeout: Duration,
    /// Shows "typing…" to the recipient for a while before a text
    /// (`None`: sent at once).
    pub typing: Option<Typing>,
}

impl Default for NativeOptions {
    fn default() -> Self {
        Self {
            url: WHATSAPP_WEB_WS_URL.to_owned(),
            transport: None,
            version: None,
            ack_timeout: Duration::from_secs(20),
            typing: Some(Typing::default()),
        }
    }
}

impl fmt::Debug for NativeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NativeOptions")
            .field("url", &self.url)
            .field("transport", &self.transport.as_ref().map(|_| "custom"))
            .field("version", &self.version)
            .field("ack_timeout", &self.ack_timeout)
            .field("typing", &self.typing)
            .finish()
    }
}

/// WhatsApp's id of a message we send: `3EB0` and 18 hex digits (the shape
/// of WhatsApp Web's own ids), derived from ours, so every attempt of one
/// message carries the same id and a send whose outcome was lost can be
/// matched to its receipts later.
pub fn provider_message_id(message_id: uuid::Uuid) -> String {
    let digest = sha2::Sha256::new()
        .chain_update(b"wablast native message id v1")
        .chain_update(message_id.as_bytes())
        .finalize();
    format!("3EB0{}", hex::encode_upper(&digest[..9]))
}

/// The server's answer to a sent message.
#[derive(Debug)]
enum Ack {
    Accepted,
    Refused(String),
}

/// What the client's events are turned into, and the running client.
struct Inner {
    session: SessionId,
    pool: PgPool,
    key: SecretKey,
    fence: Fence,
    options: NativeOptions,
    events: mpsc::UnboundedSender<DriverEvent>,
    state: Mutex<State>,
    /// Sends waiting for their server ack, by WhatsApp id.
    acks: Arc<Mutex<HashMap<String, oneshot::Sender<Ack>>>>,
}

#[derive(Default)]
struct State {
    /// The running client (none when stopped).
    bot: Option<BotHandle>,
    /// Counts starts: events of an older client are ignored.
    generation: u64,
    /// The status last reported.
    status: Option<SessionStatus>,
    qr: Option<QrCode>,
    phone: Option<Phone>,
    /// A temporary ban's end, while it lasts.
    banned_until: Option<chrono::DateTime<Utc>>,
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("native driver lock")
    }

    /// Reports `status` unless it is the one reported last.
    fn report(
        &self,
        state: &mut State,
        status: SessionStatus,
        error: Option<String>,
        reason: Option<StatusReason>,
    ) {
        if state.status == Some(status) {
            return;
        }
        state.status = Some(status);
        let _ = self.events.send(DriverEvent::Status(StatusChange {
            status,
            phone_number: state.phone.clone(),
            error,
            reason,
            at: Utc::now(),
        }));
    }

    fn client(&self) -> Option<Arc<Client>> {
        self.state().bot.as_ref().map(BotHandle::client)
    }

    /// The running client, logged in.
    fn ready_client(&self) -> Result<Arc<Client>, DriverError> {
        let client = self
            .client()
            .ok_or_else(|| DriverError::InvalidState("the session is not running".to_owned()))?;
        if !client.is_logged_in() {
            return Err(DriverError::InvalidState(
                "the session is not connected to WhatsApp".to_owned(),
            ));
        }
        Ok(client)
    }

    /// Takes the running client out (it is shut down by the caller).
    fn take_bot(&self) -> Option<BotHandle> {
        let mut state = self.state();
        state.generation += 1;
        state.qr = None;
        state.bot.take()
    }

    /// Erases every key of the session.
    async fn erase_keys(&self) -> Result<(), DriverError> {
        match store::erase(&self.pool, self.session).await {
            Ok(rows) => {
                info!(session = %self.session, rows, "native keys erased");
                Ok(())
            }
            Err(err) => {
                warn!(session = %self.session, error = %err, "native keys not erased");
                Err(DriverError::Failed(format!(
                    "the session's keys were not erased: {err}"
                )))
            }
        }
    }

    /// Turns one of the client's events into what the engine hears.
    async fn on_event(self: &Arc<Self>, generation: u64, event: &Event, client: &Arc<Client>) {
        if self.state().generation != generation {
            return;
        }
        match event {
            Event::PairingQrCode(qr) => {
                let code = QrCode {
                    payload: qr.code.clone(),
                    expires_at: Utc::now()
                        + chrono::TimeDelta::from_std(qr.timeout).unwrap_or_default(),
                };
                let mut state = self.state();
                state.qr = Some(code.clone());
                let _ = self.events.send(DriverEvent::Qr(code));
                self.report(&mut state, SessionStatus::Qr, None, None);
            }
            Event::PairingQrCodesExhausted(_) => {
                let bot = self.take_bot();
                self.report(
                    &mut self.state(),
                    SessionStatus::Failed,
                    Some("no QR code was scanned before they ran out: start the session again for new ones".to_owned()),
                    None,
                );
                if let Some(bot) = bot {
                    bot.shutdown().await;
                }
            }
            Event::PairSuccess(paired) => {
                let mut state = self.state();
                state.qr = None;
                state.phone = phone_of_jid(&paired.id);
                self.report(&mut state, SessionStatus::Authenticated, None, None);
            }
            Event::PairError(failed) => {
                let mut state = self.state();
                self.report(
                    &mut state,
                    SessionStatus::Failed,
                    Some(format!("the link with the phone failed: {}", failed.error)),
                    None,
                );
            }
            Event::Connected(_) => {
                let pn = client
                    .persistence_manager()
                    .get_device_snapshot()
                    .pn
                    .clone();
                let mut state = self.state();
                state.qr = None;
                if let Some(phone) = pn.as_ref().and_then(phone_of_jid) {
                    state.phone = Some(phone);
                }
                state.banned_until = None;
                self.report(&mut state, SessionStatus::Ready, None, None);
            }
            Event::Disconnected(_) => {
                let mut state = self.state();
                // Only a linked session's connection is worth a status: a
                // connection that showed QR codes ends and is made again on
                // its own (the pairing's restart among them).
                if state.status == Some(SessionStatus::Ready) {
                    self.report(
                        &mut state,
                        SessionStatus::Disconnected,
                        Some("the connection to WhatsApp dropped; reconnecting".to_owned()),
                        Some(StatusReason::ConnectionLost),
                    );
                }
            }
            Event::LoggedOut(out) => {
                let bot = self.take_bot();
                // Unlinked: the keys are worth nothing now, and must not
                // outlive the link.
                let _ = self.erase_keys().await;
                {
                    let mut state = self.state();
                    self.report(
                        &mut state,
                        SessionStatus::LoggedOut,
                        Some(format!(
                            "WhatsApp logged the device out ({:?}{})",
                            out.reason,
                            if out.on_connect { ", at login" } else { "" }
                        )),
                        Some(StatusReason::LoggedOut),
                    );
                    state.phone = None;
                }
                if let Some(bot) = bot {
                    tokio::spawn(bot.shutdown());
                }
            }
            Event::TemporaryBan(ban) => {
                let bot = self.take_bot();
                let until = Utc::now() + ban.expire;
                let mut state = self.state();
                state.banned_until = Some(until);
                self.report(
                    &mut state,
                    SessionStatus::LoggedOut,
                    Some(format!(
                        "WhatsApp banned the number temporarily ({:?}) until {until}",
                        ban.code
                    )),
                    Some(StatusReason::Restricted),
                );
                drop(state);
                if let Some(bot) = bot {
                    tokio::spawn(bot.shutdown());
                }
            }
            Event::ConnectFailure(failure) => {
                let mut state = self.state();
                self.report(
                    &mut state,
                    SessionStatus::Failed,
                    Some(format!(
                        "WhatsApp refused the connection ({:?}){}",
                        failure.reason,
                        failure
                            .message
                            .as_deref()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    )),
                    None,
                );
            }
            Event::StreamReplaced(_) => {
                let mut state = self.state();
                self.report(
                    &mut state,
                    SessionStatus::Failed,
                    Some("another connection of this linked device took over".to_owned()),
                    Some(StatusReason::Replaced),
                );
            }
            Event::Receipt(receipt) => {
                let kind = match &receipt.r#type {
                    ReceiptType::Delivered => ReceiptKind::Delivered,
                    ReceiptType::Read | ReceiptType::Played => ReceiptKind::Read,
                    ReceiptType::ServerError => ReceiptKind::Failed {
                        reason: "WhatsApp could not deliver it (server error receipt)".to_owned(),
                    },
                    _ => return,
                };
                for id in &receipt.message_ids {
                    let _ = self.events.send(DriverEvent::Receipt(Receipt {
                        provider_message_id: id.to_string(),
                        kind: kind.clone(),
                        at: receipt.timestamp,
                    }));
                }
            }
            Event::Messages(batch) => {
                for message in batch.messages.iter() {
                    let info = &message.info;
                    if info.source.is_from_me || info.source.is_group {
                        continue;
                    }
                    let sender = &info.source.sender;
                    let from = phone_of_jid(sender)
                        .or_else(|| info.source.sender_alt.as_ref().and_then(phone_of_jid));
                    let (kind, text) = inbound_content(&message.message);
                    let _ = self.events.send(DriverEvent::Inbound(Inbound {
                        from,
                        from_raw: sender.to_string(),
                        text,
                        kind,
                        provider_message_id: info.id.to_string(),
                        at: info.timestamp,
                    }));
                }
            }
            _ => {}
        }
    }

    /// Starts a client on the session's keys.
    async fn spawn(self: &Arc<Self>) -> Result<(), DriverError> {
        let keys = KeyStore::open(self.pool.clone(), &self.key, self.session, self.fence)
            .await
            .map_err(|err| DriverError::Failed(err.to_string()))?;
        let generation = {
            let mut state = self.state();
            if state.bot.is_some() {
                return Ok(());
            }
            state.generation += 1;
            state.generation
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let handler = Forward {
            events: tx,
            acks: self.acks.clone(),
        };
        let transport: Arc<dyn TransportFactory> = match &self.options.transport {
            Some(custom) => custom.clone(),
            None => Arc::new(TokioWebSocketTransportFactory::new().with_url(&self.options.url)),
        };
        let mut builder = Bot::builder()
            .with_backend(keys)
            .with_transport_factory(Shared(transport))
            .skip_history_sync()
            .with_event_handler(handler);
        if let Some(version) = self.options.version {
            builder = builder.with_version(version);
        }
        let bot = builder.build().await.map_err(|err| {
            DriverError::Failed(format!("the native client did not start: {err}"))
        })?;
        let handle = bot.spawn();
        let client = handle.client();
        {
            let mut state = self.state();
            if state.generation != generation || state.bot.is_some() {
                // Stopped (or started again) meanwhile.
                handle.abort();
                return Ok(());
            }
            state.bot = Some(handle);
        }
        // The events, in order. Holds neither the driver nor the client
        // (the client holds the sending half): it ends with the client,
        // the driver, or this client's generation.
        let inner: Weak<Self> = Arc::downgrade(self);
        let client = Arc::downgrade(&client);
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let (Some(inner), Some(client)) = (inner.upgrade(), client.upgrade()) else {
                    break;
                };
                inner.on_event(generation, &event, &client).await;
                if inner.state().generation != generation {
                    break;
                }
            }
        });
        Ok(())
    }

    async fn shutdown(&self) {
        if let Some(bot) = self.take_bot() {
            bot.shutdown().await;
        }
    }
}

/// The client's events: server acks answer the send waiting for them at
/// once; everything else goes, in order, to the session's event task.
struct Forward {
    events: mpsc::UnboundedSender<Arc<Event>>,
    acks: Arc<Mutex<HashMap<String, oneshot::Sender<Ack>>>>,
}

impl EventHandler for Forward {
    fn handle_event(&self, event: Arc<Event>) {
        if let Event::ServerAck(ack) = &*event {
            if ack.class.as_deref().is_none_or(|class| class == "message")
                && let Some(waiting) = self.acks.lock().expect("acks lock").remove(&ack.id)
            {
                let _ = waiting.send(match &ack.error {
                    Some(code) => Ack::Refused(code.clone()),
                    None => Ack::Accepted,
                });
            }
            return;
        }
        let _ = self.events.send(event);
    }
}

/// A shared transport factory, as the client builder takes one.
struct Shared(Arc<dyn TransportFactory>);

#[async_trait]
impl TransportFactory for Shared {
    async fn create_transport(
        &self,
    ) -> Result<
        (
            Arc<dyn Transport>,
            whatsapp_rust::async_channel::Receiver<TransportEvent>,
        ),
        whatsapp_rust::anyhow::Error,
    > {
        self.0.create_transport().await
    }
}

/// `628…@s.whatsapp.net` (with or without a device) → the number.
fn phone_of_jid(jid: &Jid) -> Option<Phone> {
    phone_of_chat_id(&jid.to_non_ad().to_string())
}

/// What an incoming message is, and its words.
fn inbound_content(message: &wa::Message) -> (InboundKind, Option<String>) {
    if let Some(text) = &message.conversation {
        return (InboundKind::Text, Some(text.clone()));
    }
    if let Some(extended) = message.extended_text_message.as_option() {
        return (InboundKind::Text, extended.text.clone());
    }
    if let Some(image) = message.image_message.as_option() {
        return (InboundKind::Image, image.caption.clone());
    }
    if let Some(video) = message.video_message.as_option() {
        return (InboundKind::Video, video.caption.clone());
    }
    if message.audio_message.is_set() {
        return (InboundKind::Audio, None);
    }
    if let Some(document) = message.document_message.as_option() {
        return (InboundKind::Document, document.caption.clone());
    }
    if message.sticker_message.is_set() {
        return (InboundKind::Sticker, None);
    }
    if message.location_message.is_set() {
        return (InboundKind::Location, None);
    }
    if message.contact_message.is_set() {
        return (InboundKind::Contact, None);
    }
    if message.reaction_message.is_set() {
        return (InboundKind::Reaction, None);
    }
    (InboundKind::Other, None)
}

/// What a server's refusal (`<ack error="…">`) of a message means.
fn refusal(code: &str) -> SendError {
    match code {
        // No messages to new contacts for a while.
        "463" => SendError::Restricted {
            kind: RestrictionKind::ReachoutTimelock,
            until: None,
            reason: format!("{PEER} refused the message with 463 (reach-out timelock)"),
        },
        // Rate limited, or the server's own trouble.
        "429" | "500" | "503" => {
            SendError::Transient(format!("{PEER} refused the message for now ({code})"))
        }
        _ => SendError::Permanent(format!("{PEER} refused the message ({code})")),
    }
}

/// What a send the client could not finish means.
fn send_failure(err: &whatsapp_rust::send::SendError) -> SendError {
    use whatsapp_rust::ClientError;
    use whatsapp_rust::send::SendError as Crate;
    match err {
        Crate::NotLoggedIn
        | Crate::Client(ClientError::NotConnected | ClientError::NotLoggedIn) => {
            SendError::Transient(format!("not connected to {PEER}"))
        }
        // Writing to the socket failed: the stanza may have gone out.
        Crate::Client(ClientError::Socket(_)) => {
            SendError::Unknown(format!("the connection to {PEER} failed mid-send: {err}"))
        }
        Crate::InvalidRequest(why) => SendError::Permanent(why.clone()),
        // Before the message went out (a key or device query, encryption).
        _ => SendError::Transient(format!("the message was not sent: {err}")),
    }
}

/// A session on WhatsApp Web multi-device, in this process.
pub struct NativeDriver {
    inner: Arc<Inner>,
}

impl fmt::Debug for NativeDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NativeDriver")
            .field("session", &self.inner.session)
            .field("fence", &self.inner.fence)
            .finish_non_exhaustive()
    }
}

impl NativeDriver {
    /// A driver for `session`, its keys in `pool` sealed with `key` and
    /// written under the engine's lease `fence`. Nothing connects until
    /// [`Driver::start`].
    pub fn connect(
        session: SessionId,
        pool: PgPool,
        key: SecretKey,
        fence: Fence,
        options: NativeOptions,
    ) -> Connection {
        let (events, receiver) = mpsc::unbounded_channel();
        let driver = Self {
            inner: Arc::new(Inner {
                session,
                pool,
                key,
                fence,
                options,
                events,
                state: Mutex::default(),
                acks: Arc::default(),
            }),
        };
        Connection {
            driver: Box::new(driver),
            events: receiver,
        }
    }

    /// The running client (tests and benches reach the crate through it).
    pub fn client(&self) -> Option<Arc<Client>> {
        self.inner.client()
    }
}

impl Drop for NativeDriver {
    fn drop(&mut self) {
        if let Some(bot) = self.inner.take_bot() {
            bot.abort();
        }
    }
}

#[async_trait]
impl Driver for NativeDriver {
    async fn start(&self) -> Result<(), DriverError> {
        self.inner.spawn().await
    }

    async fn stop(&self) -> Result<(), DriverError> {
        // The keys stay: the next start logs in with them.
        self.inner.shutdown().await;
        Ok(())
    }

    async fn logout(&self) -> Result<(), DriverError> {
        let inner = &self.inner;
        let bot = inner.take_bot();
        if let Some(bot) = bot {
            let client = bot.client();
            // Tells WhatsApp to forget the device when connected, then
            // disconnects.
            client.logout().await;
            bot.shutdown().await;
        }
        inner.erase_keys().await?;
        let mut state = inner.state();
        inner.report(
            &mut state,
            SessionStatus::LoggedOut,
            None,
            Some(StatusReason::LoggedOut),
        );
        state.phone = None;
        Ok(())
    }

    async fn delete(&self) -> Result<(), DriverError> {
        let inner = &self.inner;
        if let Some(bot) = inner.take_bot() {
            bot.client().logout().await;
            bot.shutdown().await;
        }
        inner.erase_keys().await
    }

    /// The client logged in and its socket up (the crate's keepalive pings
    /// WhatsApp and drops a socket that stops answering).
    async fn probe(&self) -> Result<(), DriverError> {
        let client = self.inner.ready_client()?;
        if client.is_connected() {
            Ok(())
        } else {
            Err(DriverError::Failed(
                "the connection to WhatsApp is down".to_owned(),
            ))
        }
    }

    async fn qr(&self) -> Result<Option<QrCode>, DriverError> {
        Ok(self.inner.state().qr.clone())
    }

    async fn request_pairing_code(&self, phone: &Phone) -> Result<String, DriverError> {
        let inner = &self.inner;
        let client = inner.client().ok_or_else(|| {
            DriverError::InvalidState(
                "start the session before asking for a pairing code".to_owned(),
            )
        })?;
        if client.is_logged_in() {
            return Err(DriverError::InvalidState(
                "the session is linked already".to_owned(),
            ));
        }
        let options = whatsapp_rust::pair_code::PairCodeOptions {
            phone_number: phone.digits().to_owned(),
            ..Default::default()
        };
        let code = client
            .pair_with_code(options)
            .await
            .map_err(|err| DriverError::Failed(format!("{PEER} gave no pairing code: {err}")))?;
        let mut state = inner.state();
        state.qr = None;
        inner.report(&mut state, SessionStatus::Pairing, None, None);
        Ok(code)
    }

    /// The id [`Driver::send`] sends it as: derived from ours. No lookup
    /// (the default cannot tell); its receipts prove a send.
    async fn choose_message_id(
        &self,
        message_id: uuid::Uuid,
        _with_media: bool,
    ) -> Result<Option<String>, DriverError> {
        Ok(Some(provider_message_id(message_id)))
    }

    async fn send(&self, message: &OutgoingMessage) -> Result<SentMessage, SendError> {
        let inner = &self.inner;
        if let Some(until) = inner.state().banned_until
            && Utc::now() < until
        {
            return Err(SendError::Restricted {
                kind: RestrictionKind::TemporaryBan,
                until: Some(until),
                reason: format!("{PEER} banned the number temporarily"),
            });
        }
        if message.media.is_some() {
            return Err(SendError::Permanent(
                "the native driver does not send media yet".to_owned(),
            ));
        }
        let client = inner
            .ready_client()
            .map_err(|err| SendError::Transient(err.to_string()))?;
        let Some(phone) = message.to.phone() else {
            return Err(SendError::Permanent(
                "the native driver does not send to groups yet".to_owned(),
            ));
        };
        let to: Jid = format!("{}@s.whatsapp.net", phone.digits())
            .parse()
            .map_err(|err| SendError::Permanent(format!("{phone}: {err:?}")))?;
        if let Some(typing) = inner.options.typing
            && client.chatstate().send_composing(&to).await.is_ok()
        {
            tokio::time::sleep(typing.pause_for(&message.text)).await;
            let _ = client.chatstate().send_paused(&to).await;
        }
        let body = match &message.reply_to {
            None => wa::Message {
                conversation: Some(message.text.clone()),
                ..Default::default()
            },
            Some(quoted) => wa::Message {
                extended_text_message: whatsapp_rust::buffa::MessageField::some(
                    wa::message::ExtendedTextMessage {
                        text: Some(message.text.clone()),
                        context_info: whatsapp_rust::buffa::MessageField::some(wa::ContextInfo {
                            stanza_id: Some(quoted.clone()),
                            participant: Some(to.to_string()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ),
                ..Default::default()
            },
        };
        let id = provider_message_id(message.message_id);
        let (tx, acked) = oneshot::channel();
        inner.acks.lock().expect("acks lock").insert(id.clone(), tx);
        let forget = || {
            inner.acks.lock().expect("acks lock").remove(&id);
        };
        if let Err(err) = client
            .send_message_with_options(to, body, SendOptions::default().with_message_id(id.clone()))
            .await
        {
            forget();
            debug!(session = %inner.session, error = %err, "native send failed");
            return Err(send_failure(&err));
        }
        match tokio::time::timeout(inner.options.ack_timeout, acked).await {
            Ok(Ok(Ack::Accepted)) => Ok(SentMessage {
                provider_message_id: id,
                at: Utc::now(),
            }),
            Ok(Ok(Ack::Refused(code))) => Err(refusal(&code)),
            Ok(Err(_)) => Err(SendError::Unknown(format!(
                "the client stopped before {PEER} acknowledged the message"
            ))),
            Err(_) => {
                forget();
                Err(SendError::Unknown(format!(
                    "{PEER} did not acknowledge the message within {:?}",
                    inner.options.ack_timeout
                )))
            }
        }
    }

    async fn check_number(&self, phone: &Phone) -> Result<bool, DriverError> {
        let client = self.inner.ready_client()?;
        let jid: Jid = format!("{}@s.whatsapp.net", phone.digits())
            .parse()
            .map_err(|err| DriverError::Failed(format!("{phone}: {err:?}")))?;
        let found = client
            .contacts()
            .is_on_whatsapp(std::slice::from_ref(&jid))
            .await
            .map_err(|err| DriverError::Failed(format!("{PEER} did not answer: {err}")))?;
        Ok(found.iter().any(|result| result.is_registered))
    }

    async fn groups(&self) -> Result<Vec<Group>, DriverError> {
        let client = self.inner.ready_client()?;
        let groups = client
            .groups()
            .get_participating()
            .await
            .map_err(|err| DriverError::Failed(format!("{PEER} did not answer: {err}")))?;
        let mut groups: Vec<Group> = groups
            .into_values()
            .map(|group| Group {
                id: group.id.to_string(),
                name: group.subject,
                participants: group.participants.len(),
            })
            .collect();
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(groups)
    }

    async fn group_members(&self, group_id: &str) -> Result<Vec<GroupMember>, DriverError> {
        let client = self.inner.ready_client()?;
        let jid: Jid = group_id
            .parse()
            .map_err(|err| DriverError::InvalidState(format!("{group_id}: {err:?}")))?;
        let group = client
            .groups()
            .get_metadata(&jid)
            .await
            .map_err(|err| DriverError::Failed(format!("{PEER} did not answer: {err}")))?;
        Ok(group
            .participants
            .iter()
            .map(|member| GroupMember {
                id: member.jid.to_string(),
                phone: phone_of_jid(&member.jid)
                    .or_else(|| member.phone_number.as_ref().and_then(phone_of_jid)),
                admin: member.is_admin(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_messages_whatsapp_id_is_derived_from_ours_in_whatsapp_webs_shape() {
        let ours = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);

        let id = provider_message_id(ours);

        assert_eq!(id, provider_message_id(ours), "the same for every attempt");
        assert_ne!(id, provider_message_id(uuid::Uuid::from_u128(1)));
        assert_eq!(id.len(), 22);
        assert!(id.starts_with("3EB0"));
        assert!(
            id[4..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase())
        );
    }

    #[test]
    fn a_refusal_is_classified_by_its_code() {
        assert!(matches!(
            refusal("463"),
            SendError::Restricted {
                kind: RestrictionKind::ReachoutTimelock,
                ..
            }
        ));
        assert!(matches!(refusal("503"), SendError::Transient(_)));
        assert!(matches!(refusal("400"), SendError::Permanent(_)));
    }
}
