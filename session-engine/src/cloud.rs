//! The Cloud API driver: a number on the official WhatsApp Business Cloud
//! API (Meta's Graph API), "official mode".
//!
//! # Requests
//!
//! Every request carries `Authorization: Bearer <access token>`; paths are
//! under `{api_base}/{version}` (default `https://graph.facebook.com/v21.0`).
//!
//! | driver call | Cloud API |
//! |---|---|
//! | `start` | `GET /{phone_number_id}`: the number exists and the token may use it → `ready`, with `display_phone_number` |
//! | `stop` | nothing (there is no connection to close) |
//! | `logout` | nothing to unlink: reports `logged_out` |
//! | `send`, text | `POST /{phone_number_id}/messages` `{"messaging_product":"whatsapp","recipient_type":"individual","to":"628…","type":"text","text":{"body":…}}` → `{"messages":[{"id":"wamid…"}]}` |
//! | `send`, media | `POST /{phone_number_id}/media` (multipart: `messaging_product`, `type`, `file`) → `{"id"}`, then `type` `image` (JPEG and PNG, the image types the API takes) or `document` (`filename`) by that id, with the text as `caption` |
//! | `qr`, `request_pairing_code`, `check_number`, `groups`, `group_members` | [`DriverError::Unsupported`] |
//!
//! Media go up first rather than by link: wablast has the bytes, and a
//! link would have to be public and stay up until Meta fetches it.
//!
//! A send that fails, by the Graph error's `code` first, then by HTTP
//! status ([`send_error`]):
//!
//! | answer | [`SendError`] |
//! |---|---|
//! | no connection; a failed media upload that got no answer | `Transient` |
//! | no answer to the message request in time, connection lost, 504 | `Unknown` |
//! | rate limits: 4, 80007, 130429, 131048, 131056, 133016; 429 | `Transient` |
//! | temporary: 1, 2, 131000, 131016, 133004; 5xx | `Transient` |
//! | the token: 0, 3, 10, 190, 200–299; 401, 403 | `Transient` (the message is not at fault) |
//! | the account: 368 (blocked for a policy violation), 131031 (locked), 131042 (payment) | `Transient`, and the session reports `failed` with the reason |
//! | anything else (131026 undeliverable, 131047 outside the 24 h window, 100 invalid parameter, …) | `Permanent`, with Meta's message |
//!
//! # Webhooks
//!
//! One webhook URL per Meta app serves all its numbers. Meta verifies it
//! with a `GET` (`hub.mode=subscribe`, `hub.verify_token`, answered with
//! `hub.challenge`: [`verify_subscription`]) and posts events signed with
//! `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with the
//! app secret>` ([`verify_signature`]). [`parse_webhook`] keeps what is
//! about this number (`metadata.phone_number_id`):
//!
//! | `statuses[].status` | reported |
//! |---|---|
//! | `sent` | nothing (the send recorded it) |
//! | `delivered` | `delivered` |
//! | `read` | `read` |
//! | `failed` | `failed`, with the first error's title, code and details |
//!
//! `messages[]` become inbound messages from `from` (the sender's `wa_id`,
//! its number without `+`).

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;
use wablast_domain::session::{SessionStatus, StatusReason};
use wablast_domain::types::phone::{Phone, Region};

use crate::driver::{
    Connection, Driver, DriverError, DriverEvent, Group, GroupMember, Inbound, OutgoingMedia,
    OutgoingMessage, QrCode, Receipt, ReceiptKind, SendError, SentMessage, StatusChange,
};
use crate::http::{self, CallError};
use crate::webhook::WebhookError;

/// The Graph API version used when none is configured.
pub const DEFAULT_VERSION: &str = "v21.0";

/// The Graph API when none is configured.
pub const DEFAULT_API_BASE: &str = "https://graph.facebook.com";

/// The header carrying the webhook's signature, and Meta's verification
/// of the webhook URL: the API answers both, so they are part of the
/// API ⇄ engine contract.
pub use wablast_workflows::control::{
    CLOUD_SIGNATURE_HEADER as SIGNATURE_HEADER, verify_cloud_subscription as verify_subscription,
};

const PEER: &str = "the WhatsApp Cloud API";

/// A number on the Cloud API: the session's driver credentials (stored
/// encrypted).
#[derive(Clone, Deserialize)]
pub struct CloudConfig {
    /// The business phone number's id (not the number).
    pub phone_number_id: String,
    /// A system user's access token.
    pub access_token: String,
    /// The Meta app's secret: webhooks are signed with it.
    pub app_secret: String,
    /// What Meta must present when it verifies the webhook URL.
    pub verify_token: String,
    /// Default [`DEFAULT_API_BASE`].
    #[serde(default)]
    pub api_base: Option<String>,
    /// Default [`DEFAULT_VERSION`].
    #[serde(default)]
    pub version: Option<String>,
}

impl fmt::Debug for CloudConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudConfig")
            .field("phone_number_id", &self.phone_number_id)
            .field("access_token", &"<redacted>")
            .field("app_secret", &"<redacted>")
            .field("verify_token", &"<redacted>")
            .field("api_base", &self.api_base)
            .field("version", &self.version)
            .finish()
    }
}

/// How the driver talks to the Cloud API.
#[derive(Clone, Debug)]
pub struct CloudOptions {
    /// How long one request may take.
    pub request_timeout: Duration,
}

impl Default for CloudOptions {
    fn default() -> Self {
        Self {
            request_timeout: http::DEFAULT_TIMEOUT,
        }
    }
}

/// Checks the signature of a webhook: `signature` is `X-Hub-Signature-256`,
/// `sha256=` and the hex HMAC-SHA256 of `body` with the app secret.
/// Constant-time.
pub fn verify_signature(
    app_secret: &str,
    body: &[u8],
    signature: Option<&str>,
) -> Result<(), WebhookError> {
    if app_secret.is_empty() {
        return Err(WebhookError::NoKey);
    }
    let signature = signature.ok_or(WebhookError::MissingSignature)?.trim();
    let hex_digest = match signature.split_once('=') {
        Some((algorithm, digest)) if algorithm.eq_ignore_ascii_case("sha256") => digest,
        Some((algorithm, _)) => return Err(WebhookError::UnsupportedAlgorithm(algorithm.into())),
        None => return Err(WebhookError::MalformedSignature),
    };
    let expected = hex::decode(hex_digest).map_err(|_| WebhookError::MalformedSignature)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| WebhookError::BadSignature)
}

#[derive(Deserialize)]
struct Notification {
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    #[serde(default)]
    value: ChangeValue,
}

#[derive(Default, Deserialize)]
struct ChangeValue {
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    statuses: Vec<StatusUpdate>,
    #[serde(default)]
    messages: Vec<Value>,
}

#[derive(Deserialize)]
struct Metadata {
    phone_number_id: String,
}

#[derive(Deserialize)]
struct StatusUpdate {
    id: String,
    status: String,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    errors: Vec<Value>,
}

fn time_of(timestamp: Option<&str>) -> DateTime<Utc> {
    timestamp
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|s| Utc.timestamp_opt(s, 0).single())
        .unwrap_or_else(Utc::now)
}

/// Reads a webhook body and keeps what is about `phone_number_id` (pure):
/// receipts and inbound messages, in the order given.
pub fn parse_webhook(body: &[u8], phone_number_id: &str) -> Result<Vec<DriverEvent>, WebhookError> {
    let notification: Notification =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let mut events = Vec::new();
    let values = notification
        .entry
        .into_iter()
        .flat_map(|entry| entry.changes)
        .map(|change| change.value)
        .filter(|value| {
            value
                .metadata
                .as_ref()
                .is_some_and(|m| m.phone_number_id == phone_number_id)
        });
    for value in values {
        for status in value.statuses {
            let kind = match status.status.as_str() {
                "delivered" => ReceiptKind::Delivered,
                "read" => ReceiptKind::Read,
                "failed" => ReceiptKind::Failed {
                    reason: status
                        .errors
                        .first()
                        .map(describe_error)
                        .unwrap_or_else(|| "failed, no reason given".to_owned()),
                },
                // `sent` is recorded by the send; others are not receipts.
                _ => continue,
            };
            events.push(DriverEvent::Receipt(Receipt {
                provider_message_id: status.id,
                kind,
                at: time_of(status.timestamp.as_deref()),
            }));
        }
        for message in value.messages {
            let (Some(from), Some(id)) = (
                message.get("from").and_then(Value::as_str),
                message.get("id").and_then(Value::as_str),
            ) else {
                continue;
            };
            let kind = message.get("type").and_then(Value::as_str).unwrap_or("");
            let text = message
                .pointer("/text/body")
                .or_else(|| message.get(kind).and_then(|m| m.get("caption")))
                .or_else(|| message.pointer("/button/text"))
                .or_else(|| message.pointer("/interactive/button_reply/title"))
                .or_else(|| message.pointer("/interactive/list_reply/title"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            events.push(DriverEvent::Inbound(Inbound {
                from: phone_of_wa_id(from),
                from_raw: from.to_owned(),
                text,
                provider_message_id: id.to_owned(),
                at: time_of(message.get("timestamp").and_then(Value::as_str)),
            }));
        }
    }
    Ok(events)
}

/// A `wa_id` (`6281234567890`) → the number.
pub fn phone_of_wa_id(wa_id: &str) -> Option<Phone> {
    if wa_id.is_empty() || !wa_id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    format!("+{wa_id}").parse().ok()
}

/// `title (code): details` of a Graph or webhook error object.
fn describe_error(error: &Value) -> String {
    let text = |name: &str| error.get(name).and_then(Value::as_str);
    let mut description = text("title")
        .or_else(|| text("message"))
        .unwrap_or("error")
        .to_owned();
    if let Some(code) = error.get("code").and_then(Value::as_i64) {
        description.push_str(&format!(" ({code})"));
    }
    if let Some(details) = error.pointer("/error_data/details").and_then(Value::as_str)
        && !description.contains(details)
    {
        description.push_str(": ");
        description.push_str(details);
    }
    description
}

fn graph_message(body: &Value) -> Option<String> {
    body.get("error").map(describe_error)
}

/// What a refused Cloud API request means for the message, and whether
/// it says the account cannot send at all (see the module's table).
pub fn send_error(status: StatusCode, body: &Value) -> (SendError, Option<String>) {
    let message = graph_message(body).unwrap_or_else(|| status.to_string());
    let code = body.pointer("/error/code").and_then(Value::as_i64);
    let transient = |why: &str| SendError::Transient(format!("{why}: {message}"));
    match code {
        Some(4 | 80007 | 130429 | 131048 | 131056 | 133016) => {
            (transient("rate limited by the Cloud API"), None)
        }
        Some(1 | 2 | 131000 | 131016 | 133004) => {
            (transient("the Cloud API failed for a while"), None)
        }
        Some(0 | 3 | 10 | 190 | 200..=299) => {
            (transient("the Cloud API refused the access token"), None)
        }
        Some(368 | 131031 | 131042) => (
            transient("the WhatsApp Business Account cannot send"),
            Some(message.clone()),
        ),
        Some(_) if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS => (
            SendError::Permanent(format!("refused by the Cloud API: {message}")),
            None,
        ),
        _ => match status {
            StatusCode::GATEWAY_TIMEOUT => (
                SendError::Unknown(format!("the Cloud API timed out (504): {message}")),
                None,
            ),
            StatusCode::TOO_MANY_REQUESTS => (transient("rate limited by the Cloud API"), None),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                (transient("the Cloud API refused the access token"), None)
            }
            s if s.is_server_error() => (transient("the Cloud API failed"), None),
            _ => (
                SendError::Permanent(format!("refused by the Cloud API: {message}")),
                None,
            ),
        },
    }
}

struct Inner {
    client: reqwest::Client,
    base: String,
    config: CloudConfig,
    options: CloudOptions,
    events: mpsc::UnboundedSender<DriverEvent>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudDriver")
            .field("base", &self.base)
            .field("phone_number_id", &self.config.phone_number_id)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.config.access_token)
            .timeout(self.options.request_timeout)
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, CallError> {
        http::call(request, graph_message).await
    }

    fn report(&self, status: SessionStatus, phone_number: Option<Phone>, error: Option<String>) {
        // A receiver gone means the engine let go of the session.
        let reason = (status == SessionStatus::LoggedOut).then_some(StatusReason::LoggedOut);
        let _ = self.events.send(DriverEvent::Status(StatusChange {
            status,
            phone_number,
            error,
            reason,
            at: Utc::now(),
        }));
    }

    fn refused(&self, status: StatusCode, body: &Value) -> SendError {
        let (error, account) = send_error(status, body);
        if let Some(reason) = account {
            self.report(SessionStatus::Failed, None, Some(reason));
        }
        error
    }

    /// Uploads an attachment; returns its media id. Nothing is sent yet,
    /// so a request with no answer is only transient.
    async fn upload(&self, media: &OutgoingMedia) -> Result<String, SendError> {
        let file = reqwest::multipart::Part::bytes(media.bytes.to_vec())
            .file_name(media.filename.clone())
            .mime_str(&media.mime_type)
            .map_err(|e| {
                SendError::Permanent(format!("bad media type {:?}: {e}", media.mime_type))
            })?;
        let form = reqwest::multipart::Form::new()
            .text("messaging_product", "whatsapp")
            .text("type", media.mime_type.clone())
            .part("file", file);
        let path = format!("/{}/media", self.config.phone_number_id);
        match self
            .call(self.request(Method::POST, &path).multipart(form))
            .await
        {
            Ok(answer) => answer
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| SendError::Transient(format!("{PEER} gave the upload no id"))),
            Err(CallError::Transport(e)) => Err(SendError::Transient(format!(
                "the media upload to {PEER} failed: {}",
                http::describe(&e)
            ))),
            Err(CallError::Status { status, body, .. }) => Err(self.refused(status, &body)),
        }
    }
}

/// The [`Driver`] of one Cloud API number.
#[derive(Debug)]
pub struct CloudDriver {
    inner: Arc<Inner>,
}

/// Hands the Meta app's webhooks to a number's driver. Cheap to clone;
/// holds the driver weakly.
#[derive(Clone)]
pub struct CloudWebhookSink {
    inner: Weak<Inner>,
    phone_number_id: Arc<str>,
    app_secret: Arc<str>,
    verify_token: Arc<str>,
}

impl fmt::Debug for CloudWebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudWebhookSink")
            .field("phone_number_id", &self.phone_number_id)
            .finish_non_exhaustive()
    }
}

impl CloudWebhookSink {
    /// The number whose events this takes.
    pub fn phone_number_id(&self) -> &str {
        &self.phone_number_id
    }

    /// Answers Meta's `GET` verification ([`verify_subscription`]).
    pub fn verify_subscription(
        &self,
        mode: Option<&str>,
        token: Option<&str>,
        challenge: Option<&str>,
    ) -> Option<String> {
        verify_subscription(&self.verify_token, mode, token, challenge)
    }

    /// Verifies a webhook (headers and raw body as received) and reports
    /// what in it is about this number. Returns how many events were
    /// reported. A refused webhook reports nothing: the API answers 401
    /// when [`WebhookError::is_unauthorized`].
    pub async fn deliver(&self, headers: &HeaderMap, body: &[u8]) -> Result<usize, WebhookError> {
        let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
        verify_signature(&self.app_secret, body, signature)?;
        self.push(parse_webhook(body, &self.phone_number_id)?)
    }

    /// Reports events of a webhook that was already verified and read
    /// elsewhere ([`verify_signature`], [`parse_webhook`] for this number).
    pub fn push(&self, events: Vec<DriverEvent>) -> Result<usize, WebhookError> {
        let inner = self.inner.upgrade().ok_or(WebhookError::Gone)?;
        let count = events.len();
        for event in events {
            // A receiver gone means the engine let go of the session.
            let _ = inner.events.send(event);
        }
        Ok(count)
    }
}

impl CloudDriver {
    /// Connects a number. Nothing is requested until [`Driver::start`].
    /// The sink takes its webhooks. Give `client` a connect timeout shorter
    /// than the request timeout (see [`crate::waha::WahaDriver::connect`]).
    pub fn connect(
        config: CloudConfig,
        options: CloudOptions,
        client: reqwest::Client,
    ) -> (Connection, CloudWebhookSink) {
        let (events, receiver) = mpsc::unbounded_channel();
        let base = format!(
            "{}/{}",
            config
                .api_base
                .as_deref()
                .filter(|b| !b.trim().is_empty())
                .unwrap_or(DEFAULT_API_BASE)
                .trim_end_matches('/'),
            config
                .version
                .as_deref()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or(DEFAULT_VERSION)
        );
        let sink_parts = (
            config.phone_number_id.as_str().into(),
            config.app_secret.as_str().into(),
            config.verify_token.as_str().into(),
        );
        let inner = Arc::new(Inner {
            client,
            base,
            config,
            options,
            events,
        });
        let sink = CloudWebhookSink {
            inner: Arc::downgrade(&inner),
            phone_number_id: sink_parts.0,
            app_secret: sink_parts.1,
            verify_token: sink_parts.2,
        };
        let connection = Connection {
            driver: Box::new(CloudDriver { inner }),
            events: receiver,
        };
        (connection, sink)
    }
}

#[async_trait]
impl Driver for CloudDriver {
    async fn start(&self) -> Result<(), DriverError> {
        let inner = &self.inner;
        let path = format!("/{}", inner.config.phone_number_id);
        match inner.call(inner.request(Method::GET, &path)).await {
            Ok(number) => {
                let phone = number
                    .get("display_phone_number")
                    .and_then(Value::as_str)
                    .and_then(|display| {
                        let digits: String = display.chars().filter(char::is_ascii_digit).collect();
                        Phone::parse(&format!("+{digits}"), Region::default()).ok()
                    });
                inner.report(SessionStatus::Ready, phone, None);
                Ok(())
            }
            Err(e) => {
                // Refused (a wrong id, a token without access): failed until
                // the credentials change. No answer: the engine retries.
                if let CallError::Status {
                    status, message, ..
                } = &e
                    && status.is_client_error()
                {
                    inner.report(SessionStatus::Failed, None, Some(message.clone()));
                }
                Err(e.into_driver_error(PEER))
            }
        }
    }

    async fn stop(&self) -> Result<(), DriverError> {
        Ok(())
    }

    async fn logout(&self) -> Result<(), DriverError> {
        self.inner.report(SessionStatus::LoggedOut, None, None);
        Ok(())
    }

    async fn qr(&self) -> Result<Option<QrCode>, DriverError> {
        Err(DriverError::Unsupported("QR linking"))
    }

    async fn request_pairing_code(&self, _phone: &Phone) -> Result<String, DriverError> {
        Err(DriverError::Unsupported("pairing codes"))
    }

    async fn send(&self, message: &OutgoingMessage) -> Result<SentMessage, SendError> {
        let inner = &self.inner;
        let mut body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": message.to.digits(),
        });
        match &message.media {
            None => {
                body["type"] = json!("text");
                body["text"] = json!({ "body": message.text });
            }
            Some(media) => {
                let id = inner.upload(media).await?;
                let mut object = json!({ "id": id });
                if !message.text.is_empty() {
                    object["caption"] = json!(message.text);
                }
                let kind = if matches!(media.mime_type.as_str(), "image/jpeg" | "image/png") {
                    "image"
                } else {
                    object["filename"] = json!(media.filename);
                    "document"
                };
                body["type"] = json!(kind);
                body[kind] = object;
            }
        }
        let path = format!("/{}/messages", inner.config.phone_number_id);
        match inner
            .call(inner.request(Method::POST, &path).json(&body))
            .await
        {
            Ok(answer) => {
                let id = answer
                    .pointer("/messages/0/id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        // Accepted (2xx) without an id: it may be on its way.
                        SendError::Unknown(format!("{PEER} accepted the message without an id"))
                    })?;
                Ok(SentMessage {
                    provider_message_id: id.to_owned(),
                    at: Utc::now(),
                })
            }
            Err(CallError::Transport(e)) => Err(http::transport_send_error(PEER, &e)),
            Err(CallError::Status { status, body, .. }) => Err(inner.refused(status, &body)),
        }
    }

    async fn check_number(&self, _phone: &Phone) -> Result<bool, DriverError> {
        Err(DriverError::Unsupported("checking numbers"))
    }

    async fn groups(&self) -> Result<Vec<Group>, DriverError> {
        Err(DriverError::Unsupported("groups"))
    }

    async fn group_members(&self, _group_id: &str) -> Result<Vec<GroupMember>, DriverError> {
        Err(DriverError::Unsupported("groups"))
    }
}
