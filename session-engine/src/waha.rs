//! The WAHA driver: a session on a WAHA server (WhatsApp HTTP API), driven
//! over its HTTP API, with its events coming back as webhooks.
//!
//! Built against WAHA's published OpenAPI description, 2026.7.1; where the
//! spec leaves a shape open, the WAHA sources decide (noted where used).
//!
//! # Requests
//!
//! Every request carries `X-Api-Key`.
//!
//! | driver call | WAHA |
//! |---|---|
//! | `start` | `POST /api/sessions` `{name, start: true, config: {webhooks}}`; on a 422, `GET /api/sessions/{session}`: found, it existed: its config gets our webhook (below), then `POST /api/sessions/{session}/start` (idempotent); not found, the 422 was a refusal: `GET /api/server/version` tells whether it is WAHA Core's (`tier: CORE` runs only the session `default`: [`Refusal::OnlyDefaultSession`]) |
//! | `stop` | `POST /api/sessions/{session}/stop` |
//! | `logout` | `POST /api/sessions/{session}/stop`, then `/logout` (logging out a running session restarts it for a new QR; a stopped one stays stopped) |
//! | `delete` | `DELETE /api/sessions/{session}` (WAHA stops, logs out and forgets it; idempotent) |
//! | `qr` | `GET /api/{session}/auth/qr?format=raw` → `{value}` (the raw QR text, not the PNG) |
//! | `request_pairing_code` | `POST /api/{session}/auth/request-code` `{phoneNumber}` → `{code}` (the spec gives no body; WAHA's `PairingCodeResponse` is `{code}`) |
//! | `send` | a text: `POST /api/startTyping` `{session, chatId}`, a pause as long as typing the text takes ([`Typing`]), `POST /api/stopTyping`, then `POST /api/sendText` `{session, chatId, text}` (WAHA's advice against blocks: a number that sends without typing looks like a bot); media: `/api/sendImage` (`image/*`) or `/api/sendFile` `{session, chatId, file: {mimetype, filename, data (base64)}, caption}` |
//! | `choose_message_id` | `GET /api/{session}/new-message-id` → `{id}`, for a text (`sendText` takes it as `id`; `sendImage` and `sendFile` take none: an attachment goes without an id of ours) |
//! | `look_up` | `GET /api/{session}/chats/{chatId}/messages/true_{chatId}_{id}?downloadMedia=false` → a `WAMessage` read by its `ack` ([`looked_up`]); 404 (not naming the session) → it never left |
//! | `check_number` | `GET /api/contacts/check-exists?phone=&session=` → `{numberExists}` |
//! | `groups` | `GET /api/{session}/groups` (shape left open by the spec: see [`parse_groups`]) |
//! | `group_members` | `GET /api/{session}/groups/{id}/participants/v2` → `[{id, pn, role}]` |
//!
//! `PUT /api/sessions/{session}` replaces the whole config, so it is only
//! sent when our webhook is missing from what `GET` answered, and then with
//! that config: the user's settings and other webhooks are kept, a webhook
//! of ours with an older key or events is replaced (WAHA restarts a running
//! session on `PUT`).
//!
//! A request other than a send refused with 401 or 403 is
//! [`Refusal::Credentials`] (the API key); other failures are
//! [`DriverError::Failed`].
//!
//! A send that fails:
//!
//! | WAHA's answer | [`SendError`] |
//! |---|---|
//! | no connection | `Transient` |
//! | no answer in time, connection lost mid-request, 504 | `Unknown` (it may have been sent) |
//! | 5xx, 429 | `Transient` |
//! | 401, 403 (the API key), 404 (no such session on the server) | `Transient`: the message is not at fault |
//! | 422 naming the session (`{error, session, …}`: the session is not `WORKING`) | `Transient` |
//! | any other 4xx | `Permanent`, with WAHA's message |
//!
//! # Webhooks
//!
//! WAHA posts `session.status`, `message` and `message.ack` to the URL the
//! session was created with, signed with `X-Webhook-Hmac` (hex HMAC-SHA512
//! of the raw body with our key) and `X-Webhook-Hmac-Algorithm: sha512`
//! ([`verify_signature`]). [`parse_webhook`] reads one, [`events_of`] says
//! what it means for us:
//!
//! | WAHA | reported |
//! |---|---|
//! | `STARTING` | nothing (`starting` is the user's) |
//! | `SCAN_QR_CODE` | `qr`, and the QR itself ([`DriverEvent::Qr`], fetched by the sink) |
//! | `PASSKEY_REQUIRED`, `PASSKEY_CONFIRMATION_REQUIRED` | `pairing` (the phone must confirm) |
//! | `WORKING` | `ready`, with the number from `me` |
//! | `FAILED` | `failed` |
//! | `STOPPED` after our stop, logout or config update | nothing (the user's stop is `idle`, logout reports `logged_out` itself) |
//! | `STOPPED` we did not ask for | `disconnected` if it was `WORKING` (the engine reconnects), else `failed` |
//! | ack `2` DEVICE | `delivered` |
//! | ack `3` READ, `4` PLAYED | `read` |
//! | ack `-1` ERROR | `failed` |
//! | ack `0` PENDING, `1` SERVER | nothing (the send already recorded `sent`) |
//!
//! Receipts are keyed by the WhatsApp message id (the last part of WAHA's
//! `true_628…@c.us_3EB0…`), because the chat part of WAHA's id may name
//! the recipient as `@c.us` when sending and as `@lid` in the ack.
//!
//! An incoming message (`message`, not from us, not from a group, channel
//! or status broadcast) names its sender as `628…@c.us` or, for hidden
//! numbers, `…@lid`. A `@lid` sender is resolved from the phone-number
//! alternative the engine's raw message carries when it has one
//! (`_data.key.remoteJidAlt` / `senderPn` on NOWEB, `_data.Info.SenderAlt`
//! on GOWS), else by the sink through `GET /api/{session}/lids/{lid}`; the
//! raw id is always kept. Inbound messages keep WAHA's whole id (what WAHA
//! needs to reply to or mark them).

use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha512;
use tokio::sync::mpsc;
use wablast_domain::inbound::InboundKind;
use wablast_domain::session::{SessionStatus, StatusReason};
use wablast_domain::types::SessionId;
use wablast_domain::types::phone::Phone;

use crate::driver::{
    Connection, Driver, DriverError, DriverEvent, Group, GroupMember, Inbound, LookedUp,
    OutgoingMessage, QrCode, Receipt, ReceiptKind, Refusal, SendError, SentMessage, StatusChange,
};
use crate::http::{self, CallError};
use crate::webhook::WebhookError;
use wablast_domain::message::Receipt as MessageReceipt;
use wablast_domain::types::Chat;

/// The events wablast asks WAHA for.
pub const WEBHOOK_EVENTS: [&str; 3] = ["session.status", "message", "message.ack"];

/// The header carrying the webhook's signature.
pub use wablast_workflows::control::WAHA_SIGNATURE_HEADER as SIGNATURE_HEADER;

/// The header naming the signature's algorithm (`sha512`).
pub use wablast_workflows::control::WAHA_ALGORITHM_HEADER as ALGORITHM_HEADER;

/// How long a QR code is shown before WhatsApp replaces it (WAHA does not
/// say; WhatsApp rotates them about every 20 s).
pub const QR_TTL: Duration = Duration::from_secs(20);

const PEER: &str = "the WAHA server";

/// How to reach one WAHA server and which session to use on it: the
/// session's driver credentials (stored encrypted).
#[derive(Clone, Deserialize)]
pub struct WahaConfig {
    /// `https://waha.example.com` (no `/api`).
    pub base_url: String,
    /// Sent as `X-Api-Key`.
    pub api_key: String,
    /// The WAHA session to use (default: [`default_session_name`]; WAHA
    /// Core only has `default`).
    #[serde(default)]
    pub session_name: Option<String>,
}

impl fmt::Debug for WahaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WahaConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("session_name", &self.session_name)
            .finish()
    }
}

/// Where WAHA sends the session's events back to (wablast's own webhook
/// endpoint), how long a request may take, and how texts are typed.
#[derive(Clone)]
pub struct WahaOptions {
    /// The URL of wablast's WAHA webhook for this session.
    pub webhook_url: String,
    /// The key WAHA signs webhooks with.
    pub webhook_hmac_key: String,
    /// How long one request to WAHA may take.
    pub request_timeout: Duration,
    /// "typing…" before each text; `None`: texts go out at once.
    pub typing: Option<Typing>,
}

impl fmt::Debug for WahaOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WahaOptions")
            .field("webhook_url", &self.webhook_url)
            .field("webhook_hmac_key", &"<redacted>")
            .field("request_timeout", &self.request_timeout)
            .field("typing", &self.typing)
            .finish()
    }
}

impl WahaOptions {
    /// Options with the default timeout and typing.
    pub fn new(webhook_url: impl Into<String>, webhook_hmac_key: impl Into<String>) -> Self {
        Self {
            webhook_url: webhook_url.into(),
            webhook_hmac_key: webhook_hmac_key.into(),
            request_timeout: http::DEFAULT_TIMEOUT,
            typing: Some(Typing::default()),
        }
    }
}

/// How long "typing…" shows before a text: `per_char` for each character
/// of it, at least `min`, at most `max` (a long text is not typed for a
/// minute).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Typing {
    /// The time one character takes.
    pub per_char: Duration,
    /// The shortest pause.
    pub min: Duration,
    /// The longest pause.
    pub max: Duration,
}

impl Default for Typing {
    /// About 25 characters a second, from one to five seconds.
    fn default() -> Self {
        Self {
            per_char: Duration::from_millis(40),
            min: Duration::from_secs(1),
            max: Duration::from_secs(5),
        }
    }
}

impl Typing {
    /// How long typing `text` shows.
    pub fn pause_for(&self, text: &str) -> Duration {
        let chars = u32::try_from(text.chars().count()).unwrap_or(u32::MAX);
        self.per_char
            .saturating_mul(chars)
            .clamp(self.min, self.max.max(self.min))
    }
}

/// The WAHA session name of a wablast session when none is configured.
pub fn default_session_name(session_id: SessionId) -> String {
    format!("wablast-{}", session_id.as_uuid().simple())
}

/// A WAHA session status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WahaStatus {
    /// Not running.
    Stopped,
    /// Coming up.
    Starting,
    /// Waiting for a QR scan (or a pairing code).
    ScanQrCode,
    /// Waiting for a passkey.
    PasskeyRequired,
    /// Waiting for the phone to confirm a passkey code.
    PasskeyConfirmationRequired,
    /// Linked and connected.
    Working,
    /// Gave up.
    Failed,
    /// A status this driver does not know.
    #[serde(other)]
    Unknown,
}

/// What `GET /api/server/version` says of the server's edition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum WahaTier {
    /// WAHA Core: one session, named `default`.
    Core,
    /// WAHA Plus: any number of sessions.
    Plus,
    /// An edition this driver does not know.
    #[serde(other)]
    Other,
}

/// The only session WAHA Core runs.
pub const CORE_SESSION_NAME: &str = "default";

/// One webhook, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WahaWebhook {
    /// The WAHA session it is about.
    pub session: String,
    /// What happened.
    pub event: WahaEvent,
}

/// What a webhook says happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WahaEvent {
    /// `session.status`.
    Status {
        /// The new status.
        status: WahaStatus,
        /// The linked number (`me`), when WAHA knows it.
        me: Option<Phone>,
        /// When.
        at: DateTime<Utc>,
    },
    /// `message` from someone else.
    Inbound(Inbound),
    /// `message.ack` of a message we sent that moves its status.
    Receipt(Receipt),
    /// Nothing for us (another event, our own message, an ack that only
    /// confirms `sent`, a group message); says why.
    Ignored(String),
}

/// What the driver knows that a `session.status` alone does not tell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusContext {
    /// We asked for the session to stop (stop, logout, a config update):
    /// its `STOPPED` is not news.
    pub stop_expected: bool,
    /// It was `WORKING` before.
    pub linked: bool,
}

/// Checks the webhook's signature: `signature` is `X-Webhook-Hmac` (hex
/// HMAC-SHA512 of `body` with `key`), `algorithm` is
/// `X-Webhook-Hmac-Algorithm`, which must say `sha512`. Constant-time.
pub fn verify_signature(
    key: &str,
    body: &[u8],
    signature: Option<&str>,
    algorithm: Option<&str>,
) -> Result<(), WebhookError> {
    if key.is_empty() {
        return Err(WebhookError::NoKey);
    }
    let signature = signature.ok_or(WebhookError::MissingSignature)?;
    match algorithm.map(str::trim) {
        Some(algorithm) if algorithm.eq_ignore_ascii_case("sha512") => {}
        Some(other) => return Err(WebhookError::UnsupportedAlgorithm(other.to_owned())),
        None => return Err(WebhookError::UnsupportedAlgorithm(String::new())),
    }
    let expected = hex::decode(signature.trim()).map_err(|_| WebhookError::MalformedSignature)?;
    let mut mac = Hmac::<Sha512>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| WebhookError::BadSignature)
}

/// [`verify_signature`] with the headers as received.
pub fn verify_headers(key: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), WebhookError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    verify_signature(
        key,
        body,
        header(SIGNATURE_HEADER),
        header(ALGORITHM_HEADER),
    )
}

#[derive(Deserialize)]
struct Envelope {
    event: String,
    session: String,
    #[serde(default)]
    timestamp: Option<f64>,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    me: Option<MeInfo>,
}

#[derive(Deserialize)]
struct MeInfo {
    id: String,
}

/// Reads a webhook body (pure: no I/O, no state).
pub fn parse_webhook(body: &[u8]) -> Result<WahaWebhook, WebhookError> {
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let at = envelope
        .timestamp
        .and_then(|ms| Utc.timestamp_millis_opt(ms as i64).single())
        .unwrap_or_else(Utc::now);
    let payload = &envelope.payload;
    let event = match envelope.event.as_str() {
        "session.status" => {
            let status = payload
                .get("status")
                .cloned()
                .ok_or_else(|| WebhookError::Malformed("session.status without a status".into()))
                .and_then(|s| {
                    serde_json::from_value(s).map_err(|e| WebhookError::Malformed(e.to_string()))
                })?;
            WahaEvent::Status {
                status,
                me: envelope.me.as_ref().and_then(|me| phone_of_chat_id(&me.id)),
                at,
            }
        }
        "message" => inbound_of(payload, at)?,
        "message.ack" => receipt_of(payload, at)?,
        other => WahaEvent::Ignored(format!("event {other}")),
    };
    Ok(WahaWebhook {
        session: envelope.session,
        event,
    })
}

fn str_field<'a>(value: &'a Value, name: &str) -> Option<&'a str> {
    value.get(name).and_then(Value::as_str)
}

/// `value` without the object fields that are `null`, at every depth.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

fn inbound_of(payload: &Value, at: DateTime<Utc>) -> Result<WahaEvent, WebhookError> {
    let id = str_field(payload, "id")
        .ok_or_else(|| WebhookError::Malformed("message without an id".into()))?;
    let from = str_field(payload, "from")
        .ok_or_else(|| WebhookError::Malformed("message without a sender".into()))?;
    if payload.get("fromMe").and_then(Value::as_bool) == Some(true) {
        return Ok(WahaEvent::Ignored("our own message".into()));
    }
    if !is_person(from) {
        return Ok(WahaEvent::Ignored(format!("a message in {from}")));
    }
    let phone = phone_of_chat_id(from).or_else(|| {
        // A hidden (`@lid`) sender: the engine's raw message may carry the
        // number as well (NOWEB: key.remoteJidAlt / senderPn; GOWS:
        // Info.SenderAlt).
        let data = payload.get("_data")?;
        [
            data.pointer("/key/remoteJidAlt"),
            data.pointer("/key/senderPn"),
            data.pointer("/Info/SenderAlt"),
            data.pointer("/Info/Sender"),
        ]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(phone_of_chat_id)
    });
    let at = payload
        .get("timestamp")
        .and_then(Value::as_f64)
        .and_then(|s| Utc.timestamp_opt(s as i64, 0).single())
        .unwrap_or(at);
    let text = str_field(payload, "body")
        .filter(|body| !body.is_empty())
        .map(str::to_owned);
    // WAHA names media by their MIME type, locations and contact cards by
    // their own fields.
    let kind = if payload.get("location").is_some_and(|l| !l.is_null()) {
        InboundKind::Location
    } else if payload
        .get("vCards")
        .and_then(Value::as_array)
        .is_some_and(|cards| !cards.is_empty())
    {
        InboundKind::Contact
    } else if payload.get("hasMedia").and_then(Value::as_bool) == Some(true) {
        payload
            .pointer("/media/mimetype")
            .and_then(Value::as_str)
            .map_or(InboundKind::Document, InboundKind::of_mime_type)
    } else if text.is_some() {
        InboundKind::Text
    } else {
        InboundKind::Other
    };
    Ok(WahaEvent::Inbound(Inbound {
        from: phone,
        from_raw: from.to_owned(),
        text,
        kind,
        provider_message_id: id.to_owned(),
        at,
    }))
}

fn receipt_of(payload: &Value, at: DateTime<Utc>) -> Result<WahaEvent, WebhookError> {
    let id = str_field(payload, "id")
        .ok_or_else(|| WebhookError::Malformed("ack without a message id".into()))?;
    let ack = payload
        .get("ack")
        .and_then(Value::as_f64)
        .ok_or_else(|| WebhookError::Malformed("ack without an ack level".into()))?;
    if payload.get("fromMe").and_then(Value::as_bool) == Some(false) {
        return Ok(WahaEvent::Ignored("an ack of a message we received".into()));
    }
    let kind = match ack as i64 {
        -1 => ReceiptKind::Failed {
            reason: "WhatsApp reported an error for the message".to_owned(),
        },
        2 => ReceiptKind::Delivered,
        3 | 4 => ReceiptKind::Read,
        0 | 1 => return Ok(WahaEvent::Ignored(format!("ack {ack} (pending or server)"))),
        other => return Ok(WahaEvent::Ignored(format!("unknown ack {other}"))),
    };
    Ok(WahaEvent::Receipt(Receipt {
        provider_message_id: message_key_id(id),
        kind,
        at,
    }))
}

/// What a webhook means for the session (pure). A `SCAN_QR_CODE` reports
/// `qr`; the QR itself needs a request and is added by the sink.
pub fn events_of(webhook: &WahaWebhook, context: StatusContext) -> Vec<DriverEvent> {
    match &webhook.event {
        WahaEvent::Status { status, me, at } => {
            let report_why = |status, error: Option<&str>, reason| {
                vec![DriverEvent::Status(StatusChange {
                    status,
                    phone_number: me.clone(),
                    error: error.map(str::to_owned),
                    reason,
                    at: *at,
                })]
            };
            let report = |status, error| report_why(status, error, None);
            match status {
                WahaStatus::Starting | WahaStatus::Unknown => Vec::new(),
                WahaStatus::Stopped if context.stop_expected => Vec::new(),
                WahaStatus::Stopped if context.linked => report_why(
                    SessionStatus::Disconnected,
                    Some("the session stopped on the WAHA server"),
                    Some(StatusReason::ConnectionLost),
                ),
                WahaStatus::Stopped => report(
                    SessionStatus::Failed,
                    Some("the session stopped on the WAHA server"),
                ),
                WahaStatus::ScanQrCode => report(SessionStatus::Qr, None),
                WahaStatus::PasskeyRequired | WahaStatus::PasskeyConfirmationRequired => {
                    report(SessionStatus::Pairing, None)
                }
                WahaStatus::Working => report(SessionStatus::Ready, None),
                WahaStatus::Failed => report(
                    SessionStatus::Failed,
                    Some("the WAHA session failed (see the WAHA server's logs)"),
                ),
            }
        }
        WahaEvent::Inbound(inbound) => vec![DriverEvent::Inbound(inbound.clone())],
        WahaEvent::Receipt(receipt) => vec![DriverEvent::Receipt(receipt.clone())],
        WahaEvent::Ignored(_) => Vec::new(),
    }
}

/// Whether a chat id names a person (not a group, channel or broadcast).
fn is_person(chat_id: &str) -> bool {
    ["@c.us", "@s.whatsapp.net", "@lid"]
        .iter()
        .any(|suffix| chat_id.ends_with(suffix))
}

/// `628…@c.us` (or `@s.whatsapp.net`, with or without a device) → the
/// number; anything else (`@lid`, groups) → `None`.
pub fn phone_of_chat_id(chat_id: &str) -> Option<Phone> {
    let user = chat_id
        .strip_suffix("@c.us")
        .or_else(|| chat_id.strip_suffix("@s.whatsapp.net"))?;
    let digits = user.split([':', '.']).next()?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    format!("+{digits}").parse().ok()
}

/// The WhatsApp message id inside WAHA's serialized id
/// (`{fromMe}_{chat}_{id}[_{participant}]`); other forms are kept whole.
pub fn message_key_id(serialized: &str) -> String {
    let parts: Vec<&str> = serialized.split('_').collect();
    match parts.as_slice() {
        ["true" | "false", _chat, id, ..] if !id.is_empty() => (*id).to_owned(),
        _ => serialized.to_owned(),
    }
}

/// What a message WAHA found (`WAMessage`) says of how far it got, by its
/// `ack`: `-1` ERROR it never left, `0` PENDING WAHA cannot tell yet,
/// `1` SERVER it went out, `2` DEVICE delivered, `3` READ and `4` PLAYED
/// read; no `ack`, it went out.
pub fn looked_up(message: &Value) -> LookedUp {
    match message.get("ack").and_then(Value::as_i64) {
        Some(-1) => LookedUp::NeverLeft,
        Some(0) => LookedUp::CannotTell,
        Some(2) => LookedUp::WentOut {
            receipt: Some(MessageReceipt::Delivered),
        },
        Some(3 | 4) => LookedUp::WentOut {
            receipt: Some(MessageReceipt::Read),
        },
        _ => LookedUp::WentOut { receipt: None },
    }
}

/// The sent message's id in WAHA's answer: `id` as a string (WAMessage,
/// the spec's answer to `sendText`), `id._serialized` (WEBJS objects) or
/// `key.id` (NOWEB's raw message, which `sendImage`/`sendFile` may answer
/// with: the spec leaves their answer open).
fn sent_message_id(answer: &Value) -> Option<String> {
    if let Some(id) = answer.get("id").and_then(Value::as_str) {
        return Some(message_key_id(id));
    }
    if let Some(id) = answer.pointer("/id/_serialized").and_then(Value::as_str) {
        return Some(message_key_id(id));
    }
    answer
        .pointer("/key/id")
        .or_else(|| answer.pointer("/id/id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// WAHA's error message: NestJS answers `{message}` (a string or a list)
/// or, for errors raised with an object, `{error, …}`.
fn waha_message(body: &Value) -> Option<String> {
    match body.get("message") {
        Some(Value::String(message)) => return Some(message.clone()),
        Some(Value::Array(messages)) => {
            return Some(
                messages
                    .iter()
                    .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join("; "),
            );
        }
        _ => {}
    }
    match body.get("error") {
        Some(Value::String(error)) => Some(error.clone()),
        Some(other @ Value::Object(_)) => waha_message(other),
        _ => None,
    }
}

/// The outcome of a send WAHA refused (see the module's table).
fn send_error(status: StatusCode, message: String, body: &Value) -> SendError {
    let names_session = body.get("session").is_some() && body.get("error").is_some();
    match status {
        StatusCode::GATEWAY_TIMEOUT => SendError::Unknown(format!(
            "{PEER} timed out behind a gateway (504): {message}"
        )),
        StatusCode::TOO_MANY_REQUESTS => {
            SendError::Transient(format!("rate limited by {PEER}: {message}"))
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            SendError::Transient(format!("{PEER} refused the API key ({status}): {message}"))
        }
        StatusCode::NOT_FOUND => {
            SendError::Transient(format!("the session is not on {PEER} (404): {message}"))
        }
        StatusCode::UNPROCESSABLE_ENTITY if names_session => {
            SendError::Transient(format!("the WAHA session cannot send now: {message}"))
        }
        s if s.is_server_error() => SendError::Transient(format!("{PEER} failed ({s}): {message}")),
        s => SendError::Permanent(format!("{PEER} refused the message ({s}): {message}")),
    }
}

/// Reads the groups list. The spec leaves its shape open (it depends on
/// the WAHA engine), so this accepts a list or a map of groups, each in
/// WAHA's `GroupInfo` shape (`id`, `subject`, `participants`), WEBJS's
/// (`id._serialized`, `name`, `groupMetadata.participants`) or GOWS's
/// (`JID`, `Name`, `Participants`).
pub fn parse_groups(answer: &Value) -> Vec<Group> {
    let items: Vec<&Value> = match answer {
        Value::Array(items) => items.iter().collect(),
        Value::Object(map) => map.values().collect(),
        _ => Vec::new(),
    };
    items
        .into_iter()
        .filter_map(|group| {
            let id = group
                .get("id")
                .and_then(|id| {
                    id.as_str()
                        .or_else(|| id.get("_serialized").and_then(Value::as_str))
                })
                .or_else(|| str_field(group, "JID"))?;
            let name = ["subject", "name", "Name"]
                .iter()
                .find_map(|field| str_field(group, field))
                .or_else(|| {
                    group
                        .pointer("/groupMetadata/subject")
                        .and_then(Value::as_str)
                })
                .unwrap_or_default();
            let participants = [
                "/participants",
                "/groupMetadata/participants",
                "/Participants",
            ]
            .iter()
            .find_map(|path| group.pointer(path).and_then(Value::as_array))
            .map_or(0, Vec::len);
            Some(Group {
                id: id.to_owned(),
                name: name.to_owned(),
                participants,
            })
        })
        .collect()
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Every `STOPPED` is news.
    #[default]
    Nothing,
    /// We stopped or logged out the session.
    Stopped,
    /// A config update restarts it: one `STOPPED` is ours.
    Restart,
}

#[derive(Debug, Default)]
struct State {
    expect: Expect,
    linked: bool,
}

struct Inner {
    client: reqwest::Client,
    base_url: String,
    api_key: String,
    session: String,
    options: WahaOptions,
    state: Mutex<State>,
    events: mpsc::UnboundedSender<DriverEvent>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WahaDriver")
            .field("base_url", &self.base_url)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base_url))
            .header("X-Api-Key", &self.api_key)
            .timeout(self.options.request_timeout)
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, CallError> {
        http::call(request, waha_message).await
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("waha driver lock")
    }

    fn emit(&self, events: Vec<DriverEvent>) -> usize {
        let count = events.len();
        for event in events {
            // A receiver gone means the engine let go of the session.
            let _ = self.events.send(event);
        }
        count
    }

    /// A failed request other than a send, for the caller: a refused API
    /// key is a [`Refusal`], the rest a failure worth trying again.
    fn driver_error(&self, e: CallError) -> DriverError {
        match e {
            CallError::Status {
                status: status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
                message,
                ..
            } => Refusal::Credentials(format!("{PEER} refused the API key ({status}): {message}"))
                .into(),
            e => e.into_driver_error(PEER),
        }
    }

    fn webhook(&self) -> Value {
        json!({
            "url": self.options.webhook_url,
            "events": WEBHOOK_EVENTS,
            "hmac": { "key": self.options.webhook_hmac_key },
        })
    }

    fn webhook_config(&self) -> Value {
        json!({ "webhooks": [self.webhook()] })
    }

    /// The session's config as WAHA answered it (`info`), with our webhook
    /// in it: every other setting and webhook kept, a webhook to our URL
    /// replaced by ours. Unset (`null`) fields are left out, as WAHA reads
    /// them the same.
    fn merged_config(&self, info: &Value) -> Value {
        let mut config = match info.get("config") {
            Some(Value::Object(config)) => config.clone(),
            _ => serde_json::Map::new(),
        };
        let mut webhooks: Vec<Value> = match config.remove("webhooks") {
            Some(Value::Array(webhooks)) => webhooks
                .into_iter()
                .filter(|webhook| {
                    str_field(webhook, "url") != Some(self.options.webhook_url.as_str())
                })
                .collect(),
            _ => Vec::new(),
        };
        webhooks.push(self.webhook());
        config.insert("webhooks".to_owned(), Value::Array(webhooks));
        without_nulls(Value::Object(config))
    }

    /// Whether the session's config on WAHA already sends our events to us.
    fn has_our_webhook(&self, info: &Value) -> bool {
        let Some(webhooks) = info.pointer("/config/webhooks").and_then(Value::as_array) else {
            return false;
        };
        webhooks.iter().any(|webhook| {
            let events: Vec<&str> = webhook
                .get("events")
                .and_then(Value::as_array)
                .map(|events| events.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            str_field(webhook, "url") == Some(self.options.webhook_url.as_str())
                && WEBHOOK_EVENTS.iter().all(|e| events.contains(e))
                // WAHA may hide the key; when it shows it, it must be ours.
                && webhook
                    .pointer("/hmac/key")
                    .and_then(Value::as_str)
                    .is_none_or(|key| key == self.options.webhook_hmac_key)
        })
    }

    /// Reports what a webhook means (and the QR with `qr`). `from_waha`:
    /// it came from WAHA, not from the answer to our own start (only WAHA's
    /// own reports tell that a config update's restart is over).
    async fn handle(&self, webhook: WahaWebhook, from_waha: bool) -> usize {
        match &webhook.event {
            WahaEvent::Status { status, .. } => {
                let status = *status;
                let events = {
                    let mut state = self.state();
                    let context = StatusContext {
                        stop_expected: state.expect != Expect::Nothing,
                        linked: state.linked,
                    };
                    let events = events_of(&webhook, context);
                    match status {
                        WahaStatus::Working => state.linked = true,
                        WahaStatus::Stopped | WahaStatus::Failed | WahaStatus::ScanQrCode => {
                            state.linked = false
                        }
                        _ => {}
                    }
                    if from_waha
                        && state.expect == Expect::Restart
                        && matches!(
                            status,
                            WahaStatus::Stopped | WahaStatus::Working | WahaStatus::ScanQrCode
                        )
                    {
                        state.expect = Expect::Nothing;
                    }
                    events
                };
                let mut count = self.emit(events);
                if status == WahaStatus::ScanQrCode
                    && let Ok(Some(qr)) = self.fetch_qr().await
                {
                    count += self.emit(vec![DriverEvent::Qr(qr)]);
                }
                count
            }
            WahaEvent::Inbound(inbound)
                if inbound.from.is_none() && inbound.from_raw.ends_with("@lid") =>
            {
                let mut inbound = inbound.clone();
                inbound.from = self.resolve_lid(&inbound.from_raw).await;
                self.emit(vec![DriverEvent::Inbound(inbound)])
            }
            _ => self.emit(events_of(&webhook, StatusContext::default())),
        }
    }

    async fn resolve_lid(&self, lid: &str) -> Option<Phone> {
        let path = format!("/api/{}/lids/{lid}", self.session);
        match self.call(self.request(Method::GET, &path)).await {
            Ok(answer) => str_field(&answer, "pn").and_then(phone_of_chat_id),
            Err(e) => {
                tracing::warn!(
                    session = %self.session,
                    error.message = %e.into_driver_error(PEER),
                    "could not resolve a @lid sender"
                );
                None
            }
        }
    }

    async fn fetch_qr(&self) -> Result<Option<QrCode>, DriverError> {
        let path = format!("/api/{}/auth/qr", self.session);
        let request = self
            .request(Method::GET, &path)
            .query(&[("format", "raw")])
            .header("Accept", "application/json");
        match self.call(request).await {
            Ok(answer) => Ok(str_field(&answer, "value").map(|value| QrCode {
                payload: value.to_owned(),
                expires_at: Utc::now() + chrono::Duration::from_std(QR_TTL).unwrap_or_default(),
            })),
            // WAHA answers 422 when the session is not waiting for a scan.
            Err(CallError::Status {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                ..
            }) => Ok(None),
            Err(e) => Err(self.driver_error(e)),
        }
    }

    /// Creates the session on WAHA, or brings its webhook config up to
    /// date, and starts it. Returns WAHA's view of it.
    async fn upsert_and_start(&self) -> Result<Value, DriverError> {
        let create = self.request(Method::POST, "/api/sessions").json(&json!({
            "name": self.session,
            "start": true,
            "config": self.webhook_config(),
        }));
        // WAHA answers 422 both for a session that exists ("Session '…'
        // already exists. Use PUT to update it.") and for one it will not
        // create (WAHA Core and any name but `default`): the session's own
        // answer tells which.
        let refused = match self.call(create).await {
            Ok(created) => return Ok(created),
            Err(CallError::Status {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message,
                ..
            }) => message,
            Err(e) => return Err(self.driver_error(e)),
        };
        let path = format!("/api/sessions/{}", self.session);
        let info = match self.call(self.request(Method::GET, &path)).await {
            Ok(info) => info,
            Err(CallError::Status {
                status: StatusCode::NOT_FOUND | StatusCode::UNPROCESSABLE_ENTITY,
                ..
            }) => return Err(self.creation_refused(refused).await),
            Err(e) => return Err(self.driver_error(e)),
        };
        if !self.has_our_webhook(&info) {
            let running = !matches!(str_field(&info, "status"), Some("STOPPED") | None);
            if running {
                self.state().expect = Expect::Restart;
            }
            self.call(
                self.request(Method::PUT, &path)
                    .json(&json!({ "config": self.merged_config(&info) })),
            )
            .await
            .map_err(|e| self.driver_error(e))?;
        }
        self.call(self.request(Method::POST, &format!("{path}/start")))
            .await
            .map_err(|e| self.driver_error(e))
    }

    /// Why WAHA would not create the session (`message`: its answer):
    /// WAHA Core's single session, or WAHA's own words.
    async fn creation_refused(&self, message: String) -> DriverError {
        if self.session != CORE_SESSION_NAME && self.tier().await == Some(WahaTier::Core) {
            return Refusal::OnlyDefaultSession {
                name: self.session.clone(),
            }
            .into();
        }
        Refusal::Rejected(format!("{PEER} would not create the session: {message}")).into()
    }

    /// The server's edition, when it says.
    async fn tier(&self) -> Option<WahaTier> {
        let version = self
            .call(self.request(Method::GET, "/api/server/version"))
            .await
            .ok()?;
        serde_json::from_value(version.get("tier")?.clone()).ok()
    }

    /// Shows "typing…" in the chat for as long as typing `text` takes
    /// (`typing`), then stops it. Only for show: a failure sends anyway.
    async fn type_text(&self, typing: Typing, chat_id: &str, text: &str) {
        let body = json!({ "session": self.session, "chatId": chat_id });
        if let Err(e) = self
            .call(self.request(Method::POST, "/api/startTyping").json(&body))
            .await
        {
            tracing::debug!(session = %self.session, error.message = %e.into_driver_error(PEER),
                "typing not shown; sending anyway");
            return;
        }
        tokio::time::sleep(typing.pause_for(text)).await;
        if let Err(e) = self
            .call(self.request(Method::POST, "/api/stopTyping").json(&body))
            .await
        {
            tracing::debug!(session = %self.session, error.message = %e.into_driver_error(PEER),
                "typing not stopped; sending anyway");
        }
    }

    async fn me(&self) -> Option<Phone> {
        let path = format!("/api/sessions/{}/me", self.session);
        let answer = self.call(self.request(Method::GET, &path)).await.ok()?;
        str_field(&answer, "id").and_then(phone_of_chat_id)
    }

    /// A request ending the session on WAHA (stop, logout, delete): a
    /// session WAHA does not know is ended already.
    async fn end(&self, method: Method, path: &str) -> Result<(), DriverError> {
        match self.call(self.request(method, path)).await {
            Ok(_)
            | Err(CallError::Status {
                status: StatusCode::NOT_FOUND,
                ..
            }) => Ok(()),
            Err(e) => Err(self.driver_error(e)),
        }
    }
}

/// The [`Driver`] of one WAHA session.
#[derive(Debug)]
pub struct WahaDriver {
    inner: Arc<Inner>,
}

/// Hands the session's webhooks to its driver. The API receives them (or
/// an engine receives them forwarded); cheap to clone; holds the driver
/// weakly, so dropping the driver ends the session's events.
#[derive(Clone)]
pub struct WahaWebhookSink {
    inner: Weak<Inner>,
    session: Arc<str>,
    hmac_key: Arc<str>,
}

impl fmt::Debug for WahaWebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WahaWebhookSink")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl WahaWebhookSink {
    /// The WAHA session whose webhooks this takes.
    pub fn session_name(&self) -> &str {
        &self.session
    }

    /// Verifies a webhook (headers and raw body as received), reads it and
    /// reports what it means on the session's event stream. Returns how
    /// many events were reported. A refused webhook reports nothing: the
    /// API answers 401 when [`WebhookError::is_unauthorized`].
    pub async fn deliver(&self, headers: &HeaderMap, body: &[u8]) -> Result<usize, WebhookError> {
        verify_headers(&self.hmac_key, headers, body)?;
        self.push(parse_webhook(body)?).await
    }

    /// Reports a webhook that was already verified and read elsewhere
    /// ([`verify_headers`], [`parse_webhook`]).
    pub async fn push(&self, webhook: WahaWebhook) -> Result<usize, WebhookError> {
        if webhook.session != *self.session {
            return Err(WebhookError::OtherSession(webhook.session));
        }
        let inner = self.inner.upgrade().ok_or(WebhookError::Gone)?;
        Ok(inner.handle(webhook, true).await)
    }
}

impl WahaDriver {
    /// Connects a wablast session to a WAHA server. Nothing is requested
    /// until [`Driver::start`]. The sink takes the session's webhooks.
    ///
    /// Give `client` a connect timeout shorter than the request timeout:
    /// reqwest cannot tell a request timeout spent connecting from one
    /// spent waiting for the answer, so a send that times out is
    /// `Unknown`, while one whose connection could not be made in time is
    /// `Transient`.
    pub fn connect(
        session_id: SessionId,
        config: WahaConfig,
        options: WahaOptions,
        client: reqwest::Client,
    ) -> (Connection, WahaWebhookSink) {
        let (events, receiver) = mpsc::unbounded_channel();
        let session = config
            .session_name
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| default_session_name(session_id));
        let inner = Arc::new(Inner {
            client,
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            api_key: config.api_key,
            session: session.clone(),
            state: Mutex::default(),
            events,
            options,
        });
        let sink = WahaWebhookSink {
            inner: Arc::downgrade(&inner),
            session: session.into(),
            hmac_key: inner.options.webhook_hmac_key.as_str().into(),
        };
        let connection = Connection {
            driver: Box::new(WahaDriver { inner }),
            events: receiver,
        };
        (connection, sink)
    }
}

#[async_trait]
impl Driver for WahaDriver {
    async fn start(&self) -> Result<(), DriverError> {
        let inner = &self.inner;
        inner.state().expect = Expect::Nothing;
        let answer = inner.upsert_and_start().await?;
        // A session already running sends no status change: report where
        // it is now (repeating a status is no change).
        let status = answer
            .get("status")
            .cloned()
            .and_then(|s| serde_json::from_value::<WahaStatus>(s).ok());
        if let Some(status) = status {
            let me = match status {
                WahaStatus::Working => inner.me().await,
                _ => None,
            };
            inner
                .handle(
                    WahaWebhook {
                        session: inner.session.clone(),
                        event: WahaEvent::Status {
                            status,
                            me,
                            at: Utc::now(),
                        },
                    },
                    false,
                )
                .await;
        }
        Ok(())
    }

    /// `GET /api/sessions/{session}`: WAHA answering that the session is
    /// `WORKING`.
    async fn probe(&self) -> Result<(), DriverError> {
        let inner = &self.inner;
        let path = format!("/api/sessions/{}", inner.session);
        let info = inner
            .call(inner.request(Method::GET, &path))
            .await
            .map_err(|e| inner.driver_error(e))?;
        let status = info
            .get("status")
            .cloned()
            .and_then(|s| serde_json::from_value::<WahaStatus>(s).ok());
        match status {
            Some(WahaStatus::Working) => Ok(()),
            other => Err(DriverError::Failed(format!(
                "{PEER} says the session is {}, not WORKING",
                other.map_or_else(|| "in no status".to_owned(), |s| format!("{s:?}"))
            ))),
        }
    }

    async fn stop(&self) -> Result<(), DriverError> {
        let inner = &self.inner;
        inner.state().expect = Expect::Stopped;
        inner
            .end(
                Method::POST,
                &format!("/api/sessions/{}/stop", inner.session),
            )
            .await
    }

    async fn logout(&self) -> Result<(), DriverError> {
        let inner = &self.inner;
        inner.state().expect = Expect::Stopped;
        // Stopped first: WAHA restarts a running session it logs out.
        inner
            .end(
                Method::POST,
                &format!("/api/sessions/{}/stop", inner.session),
            )
            .await?;
        inner
            .end(
                Method::POST,
                &format!("/api/sessions/{}/logout", inner.session),
            )
            .await?;
        inner.state().linked = false;
        inner.emit(vec![DriverEvent::Status(StatusChange {
            status: SessionStatus::LoggedOut,
            phone_number: None,
            error: None,
            reason: Some(StatusReason::LoggedOut),
            at: Utc::now(),
        })]);
        Ok(())
    }

    async fn delete(&self) -> Result<(), DriverError> {
        let inner = &self.inner;
        inner.state().expect = Expect::Stopped;
        inner
            .end(Method::DELETE, &format!("/api/sessions/{}", inner.session))
            .await?;
        inner.state().linked = false;
        Ok(())
    }

    async fn qr(&self) -> Result<Option<QrCode>, DriverError> {
        self.inner.fetch_qr().await
    }

    async fn request_pairing_code(&self, phone: &Phone) -> Result<String, DriverError> {
        let inner = &self.inner;
        let path = format!("/api/{}/auth/request-code", inner.session);
        let request = inner
            .request(Method::POST, &path)
            .json(&json!({ "phoneNumber": phone.digits() }));
        let answer = match inner.call(request).await {
            Ok(answer) => answer,
            Err(CallError::Status {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message,
                ..
            }) => return Err(DriverError::InvalidState(message)),
            Err(e) => return Err(inner.driver_error(e)),
        };
        let code = str_field(&answer, "code")
            .ok_or_else(|| DriverError::Failed(format!("{PEER} gave no pairing code")))?
            .to_owned();
        inner.emit(vec![DriverEvent::Status(StatusChange {
            status: SessionStatus::Pairing,
            phone_number: None,
            error: None,
            reason: None,
            at: Utc::now(),
        })]);
        Ok(code)
    }

    async fn send(&self, message: &OutgoingMessage) -> Result<SentMessage, SendError> {
        self.send_as(message, None).await
    }

    /// `GET /api/{session}/new-message-id` → `{id}`, for a text (WAHA's
    /// `sendImage` and `sendFile` take no id).
    async fn choose_message_id(
        &self,
        _message_id: uuid::Uuid,
        with_media: bool,
    ) -> Result<Option<String>, DriverError> {
        if with_media {
            return Ok(None);
        }
        let inner = &self.inner;
        let path = format!("/api/{}/new-message-id", inner.session);
        let answer = inner
            .call(inner.request(Method::GET, &path))
            .await
            .map_err(|e| inner.driver_error(e))?;
        str_field(&answer, "id")
            .map(|id| Some(id.to_owned()))
            .ok_or_else(|| DriverError::Failed(format!("{PEER} gave no new message id")))
    }

    /// `GET /api/{session}/chats/{chatId}/messages/{true_<chatId>_<id>}`:
    /// found, it went out, as far as its `ack` says ([`looked_up`]); 404,
    /// it never left.
    async fn look_up(&self, to: &Chat, provider_message_id: &str) -> Result<LookedUp, DriverError> {
        let inner = &self.inner;
        let chat_id = to.whatsapp_chat_id();
        let path = format!(
            "/api/{}/chats/{chat_id}/messages/true_{chat_id}_{provider_message_id}",
            inner.session
        );
        let request = inner
            .request(Method::GET, &path)
            .query(&[("downloadMedia", "false")]);
        match inner.call(request).await {
            Ok(answer) => Ok(looked_up(&answer)),
            Err(CallError::Status {
                status: StatusCode::NOT_FOUND,
                body,
                ..
            }) if body.get("session").is_none() => Ok(LookedUp::NeverLeft),
            Err(e) => Err(inner.driver_error(e)),
        }
    }

    async fn send_as(
        &self,
        message: &OutgoingMessage,
        provider_message_id: Option<&str>,
    ) -> Result<SentMessage, SendError> {
        let inner = &self.inner;
        let chat_id = message.to.whatsapp_chat_id();
        let (path, body) = match &message.media {
            None => {
                if let Some(typing) = inner.options.typing {
                    inner.type_text(typing, &chat_id, &message.text).await;
                }
                (
                    "/api/sendText",
                    json!({ "session": inner.session, "chatId": chat_id, "text": message.text }),
                )
            }
            Some(media) => {
                let mut body = json!({
                    "session": inner.session,
                    "chatId": chat_id,
                    "file": {
                        "mimetype": media.mime_type,
                        "filename": media.filename,
                        "data": base64::engine::general_purpose::STANDARD.encode(&media.bytes),
                    },
                });
                if !message.text.is_empty() {
                    body["caption"] = json!(message.text);
                }
                let path = if media.mime_type.starts_with("image/") {
                    "/api/sendImage"
                } else {
                    "/api/sendFile"
                };
                (path, body)
            }
        };
        let mut body = body;
        if let Some(quoted) = &message.reply_to {
            body["reply_to"] = json!(quoted);
        }
        if let Some(id) = provider_message_id
            && message.media.is_none()
        {
            body["id"] = json!(id);
        }
        match inner
            .call(inner.request(Method::POST, path).json(&body))
            .await
        {
            Ok(answer) => {
                let provider_message_id = sent_message_id(&answer).unwrap_or_else(|| {
                    tracing::warn!(
                        session = %inner.session,
                        message_id = %message.message_id,
                        "WAHA accepted a message without naming it: its receipts cannot be matched"
                    );
                    format!("wablast-{}", message.message_id.simple())
                });
                Ok(SentMessage {
                    provider_message_id,
                    at: Utc::now(),
                })
            }
            Err(CallError::Transport(e)) => Err(http::transport_send_error(PEER, &e)),
            Err(CallError::Status {
                status,
                message,
                body,
            }) => Err(send_error(status, message, &body)),
        }
    }

    async fn check_number(&self, phone: &Phone) -> Result<bool, DriverError> {
        let inner = &self.inner;
        let request = inner
            .request(Method::GET, "/api/contacts/check-exists")
            .query(&[("phone", phone.digits()), ("session", &inner.session)]);
        let answer = inner
            .call(request)
            .await
            .map_err(|e| inner.driver_error(e))?;
        answer
            .get("numberExists")
            .and_then(Value::as_bool)
            .ok_or_else(|| DriverError::Failed(format!("{PEER} did not say whether it exists")))
    }

    async fn groups(&self) -> Result<Vec<Group>, DriverError> {
        let inner = &self.inner;
        let path = format!("/api/{}/groups", inner.session);
        let answer = inner
            .call(inner.request(Method::GET, &path))
            .await
            .map_err(|e| inner.driver_error(e))?;
        Ok(parse_groups(&answer))
    }

    async fn group_members(&self, group_id: &str) -> Result<Vec<GroupMember>, DriverError> {
        let inner = &self.inner;
        let path = format!("/api/{}/groups/{group_id}/participants/v2", inner.session);
        let answer = inner
            .call(inner.request(Method::GET, &path))
            .await
            .map_err(|e| inner.driver_error(e))?;
        #[derive(Deserialize)]
        struct Participant {
            id: String,
            #[serde(default)]
            pn: Option<String>,
            role: String,
        }
        let participants: Vec<Participant> = serde_json::from_value(answer).map_err(|e| {
            DriverError::Failed(format!("{PEER} gave unreadable participants: {e}"))
        })?;
        Ok(participants
            .into_iter()
            .filter(|p| p.role != "left")
            .map(|p| GroupMember {
                phone: p
                    .pn
                    .as_deref()
                    .and_then(phone_of_chat_id)
                    .or_else(|| phone_of_chat_id(&p.id)),
                admin: matches!(p.role.as_str(), "admin" | "superadmin"),
                id: p.id,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn kind_of(payload: Value) -> InboundKind {
        let mut message = json!({
            "id": "false_6281234567890@c.us_3EB0A1",
            "from": "6281234567890@c.us",
            "fromMe": false,
            "timestamp": 1_765_000_000,
        });
        for (k, v) in payload.as_object().unwrap() {
            message[k] = v.clone();
        }
        match inbound_of(&message, Utc::now()).unwrap() {
            WahaEvent::Inbound(inbound) => inbound.kind,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_received_message_keeps_its_kind() {
        assert_eq!(kind_of(json!({"body": "halo"})), InboundKind::Text);
        assert_eq!(
            kind_of(json!({"hasMedia": true, "body": "foto", "media": {"mimetype": "image/jpeg"}})),
            InboundKind::Image
        );
        assert_eq!(
            kind_of(json!({"hasMedia": true, "media": {"mimetype": "audio/ogg; codecs=opus"}})),
            InboundKind::Audio
        );
        assert_eq!(kind_of(json!({"hasMedia": true})), InboundKind::Document);
        assert_eq!(
            kind_of(json!({"location": {"latitude": -6.2, "longitude": 106.8}})),
            InboundKind::Location
        );
        assert_eq!(
            kind_of(json!({"vCards": ["BEGIN:VCARD..."]})),
            InboundKind::Contact
        );
        assert_eq!(kind_of(json!({"body": ""})), InboundKind::Other);
    }
}
