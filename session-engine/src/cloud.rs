//! The Cloud API driver: a number on the official WhatsApp Business Cloud
//! API (Meta's Graph API), "official mode".
//!
//! Built against Meta's published OpenAPI description of the Business
//! Messaging API, Graph v23.0.
//!
//! # Requests
//!
//! Every request carries `Authorization: Bearer <access token>`; paths are
//! under `{api_base}/{version}`: `https://graph.facebook.com` and the
//! engine's Graph API version ([`CloudOptions::version`], default
//! [`DEFAULT_VERSION`]) unless the session's credentials name their own.
//!
//! | driver call | Cloud API |
//! |---|---|
//! | `start` | `GET /{phone_number_id}`: the number exists and the token may use it → `ready`, with `display_phone_number` (a landline, toll-free or test number as much as a mobile one) |
//! | `stop`, `delete` | nothing (there is no connection to close) |
//! | `logout` | nothing to unlink: reports `logged_out` |
//! | `send`, text | `POST /{phone_number_id}/messages` `{"messaging_product":"whatsapp","recipient_type":"individual","to":"628…","type":"text","text":{"body":…}}` → `{"messages":[{"id":"wamid…"}]}` |
//! | `send`, media | `POST /{phone_number_id}/media` (multipart: `messaging_product`, `type`, `file`) → `{"id"}`, then `type` `image` (JPEG and PNG, the image types the API takes), `video` (MP4 and 3GPP) or `document` (`filename`) by that id, with the text as `caption` |
//! | `send`, template | `POST /{phone_number_id}/messages` `{…, "type":"template","template":{"name":…,"language":{"policy":"deterministic","code":…},"components":[{"type":"header","parameters":[…]},{"type":"body","parameters":[{"type":"text","text":…}]}]}}`: a media header's attachment uploaded first as above and given by id (`{"type":"image","image":{"id":…}}`, `video`, `document` with `filename`), a text header's values as `text` parameters; no component without parameters |
//! | `templates(waba_id)` | `GET /{waba_id}/message_templates?fields=name,language,status,category,components&limit=100`, then with `after=<paging.cursors.after>` while the answer has a `paging.next` (at most [`MAX_TEMPLATE_PAGES`] pages): name, language, status, category, and the body's and header's text with their number of `{{n}}` |
//! | `qr`, `request_pairing_code`, `check_number`, `groups`, `group_members` | [`DriverError::Unsupported`] |
//! | `choose_message_id`, `look_up` | neither: Meta names a message only in its answer to the send (`wamid…`) and has no lookup of a sent message, so a send whose answer was lost stays `unknown` (its webhook statuses, should they come, find it only by that id) |
//!
//! Media go up first rather than by link: wablast has the bytes, and a
//! link would have to be public and stay up until Meta fetches it.
//!
//! A refused request is read by the Graph error's `code` first, then by
//! its `is_transient` and the HTTP status ([`GraphErrorKind::of`]):
//!
//! | answer | kind | a send | the session |
//! |---|---|---|---|
//! | no connection; a failed media upload that got no answer | | `Transient` | |
//! | no answer to the message request in time, connection lost; 504 | `TimedOut` | `Unknown` | |
//! | 4, 17, 613, 80007, 130429, 131056, 133016; 429 | `RateLimited` | `Transient` | |
//! | 1, 2, 131000, 131016, 131057, 133004; `is_transient`; 5xx | `Temporary` | `Transient` | |
//! | 131048 (spam rate limit) | `SpamLimited` | `Paused` for [`CloudOptions::spam_pause`]: the number's other sends wait as long, without a request | |
//! | 0, 190 (the token expired or is invalid); 401 | `AccessToken` | `SessionUnavailable` | `failed`, with Meta's reason |
//! | 3, 10, 200–299, 131005 (a permission the token lacks); 403 | `Permission` | `SessionUnavailable` | `failed` |
//! | 131037, 131042, 131045, 133010 (display name, payment, certificate, registration) | `AccountSetup` | `SessionUnavailable` | `failed` |
//! | 368 (blocked for policy violations) | `Blocked` | `SessionUnavailable` | `logged_out`, `restricted`: its campaigns' messages move to other senders |
//! | 131031 (the account is locked) | `Locked` | `SessionUnavailable` | `logged_out`, `banned` |
//! | anything else (131026 undeliverable, 131047 outside the 24 h window, 100 invalid parameter, …) | `Refused` | `Permanent`, with Meta's message | |
//!
//! `start` refused for the token, a permission or the account is a
//! [`Refusal`] (the session fails with the reason); a rate limit or Meta's
//! own failure is [`DriverError::Failed`] (the engine tries again).
//!
//! # Webhooks
//!
//! One webhook URL per Meta app serves all its numbers. Meta verifies it
//! with a `GET` (`hub.mode=subscribe`, `hub.verify_token`, answered with
//! `hub.challenge`: [`verify_subscription`]) and posts events signed with
//! `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with the
//! app secret>` ([`verify_signature`]). [`parse_webhook`] keeps what is
//! about this number: a `messages` change whose `metadata.phone_number_id`
//! is this number's id, and the account's changes (`account_update`,
//! `phone_number_quality_update`) that name this number or no number (the
//! account's, and the webhook URL is this session's):
//!
//! | Meta | reported |
//! |---|---|
//! | `statuses[].status` `sent` | nothing (the send recorded it) |
//! | `delivered`, `read` | receipts |
//! | `failed` | a `failed` receipt, with the first error's title, code and details |
//! | `messages[]` | inbound messages from `from` (the sender's `wa_id`, its number without `+`) |
//! | `errors[]` of the change (not of a message) | a [`Notice::Error`] |
//! | `account_update` `DISABLED_UPDATE`, or `ban_info.waba_ban_state` `DISABLE` | `logged_out`, `banned` |
//! | `account_update` `ACCOUNT_RESTRICTION` with `RESTRICTED_BIZ_INITIATED_MESSAGING` | `logged_out`, `restricted` (until its `expiration`) |
//! | `account_update` `ACCOUNT_DELETED` | `failed` |
//! | any other `account_update` (a violation, a ban scheduled or lifted, another restriction) | a [`Notice::Account`] |
//! | `phone_number_quality_update` | a [`Notice::Quality`] |

use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;
use wablast_domain::inbound::InboundKind;
use wablast_domain::session::{SessionStatus, StatusReason};
use wablast_domain::types::phone::{Phone, Region};
use wablast_domain::types::whatsapp_template::{
    SyncedTemplate, TemplateCategory, TemplateHeader, TemplateMessage, TemplateStatus,
    count_parameters,
};

use crate::driver::{
    Connection, Driver, DriverError, DriverEvent, Group, GroupMember, Inbound, Notice,
    OutgoingMedia, OutgoingMessage, QrCode, Receipt, ReceiptKind, Refusal, SendError, SentMessage,
    StatusChange,
};
use crate::http::{self, CallError};
use crate::webhook::WebhookError;

/// The Graph API version used when none is configured.
pub const DEFAULT_VERSION: &str = "v23.0";

/// The Graph API when none is configured.
pub const DEFAULT_API_BASE: &str = "https://graph.facebook.com";

/// The header carrying the webhook's signature, and Meta's verification
/// of the webhook URL: the API answers both, so they are part of the
/// API ⇄ engine contract.
pub use wablast_workflows::control::{
    CLOUD_SIGNATURE_HEADER as SIGNATURE_HEADER, verify_cloud_subscription as verify_subscription,
};

const PEER: &str = "the WhatsApp Cloud API";

/// The most pages of templates one listing reads (100 a page).
pub const MAX_TEMPLATE_PAGES: usize = 50;

/// A template as Meta lists it (`GET /{waba_id}/message_templates`).
#[derive(Deserialize)]
struct ListedTemplate {
    name: String,
    language: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    components: Vec<ListedComponent>,
}

#[derive(Deserialize)]
struct ListedComponent {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    text: Option<String>,
}

impl ListedTemplate {
    fn into_synced(self) -> SyncedTemplate {
        let component = |kind: &str| {
            self.components
                .iter()
                .find(|c| c.kind.eq_ignore_ascii_case(kind))
        };
        let body = component("BODY").and_then(|c| c.text.clone());
        let header = component("HEADER");
        let header_text = header.and_then(|h| h.text.clone());
        SyncedTemplate {
            body_parameters: body.as_deref().map_or(0, count_parameters),
            header_parameters: header_text.as_deref().map_or(0, count_parameters),
            header_format: header.map(|h| {
                h.format
                    .clone()
                    .unwrap_or_else(|| "TEXT".to_owned())
                    .to_ascii_uppercase()
            }),
            header_text,
            body,
            status: TemplateStatus::of_meta(&self.status),
            category: TemplateCategory::of_meta(&self.category),
            name: self.name,
            language: self.language,
        }
    }
}

/// The `template` object of a template message; `header_media` is its
/// media header's uploaded attachment (kind and id).
fn template_object(template: &TemplateMessage, header_media: Option<(&str, Value)>) -> Value {
    let mut object = json!({
        "name": template.name,
        "language": {"policy": "deterministic", "code": template.language},
    });
    let texts = |values: &[String]| -> Vec<Value> {
        values
            .iter()
            .map(|text| json!({"type": "text", "text": text}))
            .collect()
    };
    let mut components = Vec::new();
    match (&template.header, header_media) {
        (_, Some((kind, media))) => components.push(json!({
            "type": "header",
            "parameters": [{"type": kind, kind: media}],
        })),
        (Some(TemplateHeader::Text { parameters }), None) if !parameters.is_empty() => {
            components.push(json!({"type": "header", "parameters": texts(parameters)}));
        }
        _ => {}
    }
    if !template.parameters.is_empty() {
        components.push(json!({"type": "body", "parameters": texts(&template.parameters)}));
    }
    if !components.is_empty() {
        object["components"] = Value::Array(components);
    }
    object
}

/// The kind Meta gives an attachment (`image`, `video` or `document`) and
/// its object (by the uploaded id, a document with its file name).
fn media_object(media: &OutgoingMedia, id: String) -> (&'static str, Value) {
    match media.mime_type.as_str() {
        "image/jpeg" | "image/png" => ("image", json!({ "id": id })),
        "video/mp4" | "video/3gpp" => ("video", json!({ "id": id })),
        _ => ("document", json!({ "id": id, "filename": media.filename })),
    }
}

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
    /// This number's own Graph API version; default
    /// [`CloudOptions::version`].
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
    /// The Graph API version (`v23.0`) of numbers whose credentials name
    /// none.
    pub version: String,
    /// How long a number sends nothing after Meta refused a message for its
    /// spam rate limit (131048).
    pub spam_pause: Duration,
}

impl Default for CloudOptions {
    fn default() -> Self {
        Self {
            request_timeout: http::DEFAULT_TIMEOUT,
            version: DEFAULT_VERSION.to_owned(),
            spam_pause: Duration::from_secs(3600),
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
    field: String,
    #[serde(default)]
    value: Value,
}

#[derive(Default, Deserialize)]
struct MessagesValue {
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    statuses: Vec<StatusUpdate>,
    #[serde(default)]
    messages: Vec<Value>,
    #[serde(default)]
    errors: Vec<Value>,
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

/// An `account_update` change.
#[derive(Deserialize)]
struct AccountUpdate {
    #[serde(default)]
    phone_number: Option<String>,
    #[serde(default)]
    event: String,
    #[serde(default)]
    ban_info: Option<BanInfo>,
    #[serde(default)]
    restriction_info: Vec<Restriction>,
    #[serde(default)]
    violation_info: Option<Value>,
}

#[derive(Deserialize)]
struct BanInfo {
    #[serde(default)]
    waba_ban_state: String,
    #[serde(default)]
    waba_ban_date: Option<String>,
}

#[derive(Deserialize)]
struct Restriction {
    #[serde(default)]
    restriction_type: String,
    #[serde(default)]
    expiration: Option<String>,
}

/// A `phone_number_quality_update` change.
#[derive(Deserialize)]
struct QualityUpdate {
    #[serde(default)]
    display_phone_number: Option<String>,
    #[serde(default)]
    event: String,
    #[serde(default)]
    current_limit: Option<String>,
}

fn time_of(timestamp: Option<&str>) -> DateTime<Utc> {
    timestamp
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|s| Utc.timestamp_opt(s, 0).single())
        .unwrap_or_else(Utc::now)
}

/// Whether a number as Meta writes it in an account's change (`+1 555…`,
/// `15550783881`) is `ours`; an unknown own number takes every one.
fn names_ours(number: Option<&str>, ours: Option<&Phone>) -> bool {
    match (number, ours) {
        (Some(number), Some(ours)) => {
            let digits: String = number.chars().filter(char::is_ascii_digit).collect();
            digits.is_empty() || digits == ours.digits()
        }
        _ => true,
    }
}

fn status_change(
    status: SessionStatus,
    error: String,
    reason: Option<StatusReason>,
) -> DriverEvent {
    DriverEvent::Status(StatusChange {
        status,
        phone_number: None,
        error: Some(error),
        reason,
        at: Utc::now(),
    })
}

/// Reads a webhook body and keeps what is about the number
/// `phone_number_id` (`phone`: its number, once known) (pure): receipts,
/// inbound messages, status changes and notices, in the order given (see
/// the module's table).
pub fn parse_webhook(
    body: &[u8],
    phone_number_id: &str,
    phone: Option<&Phone>,
) -> Result<Vec<DriverEvent>, WebhookError> {
    let notification: Notification =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let mut events = Vec::new();
    for change in notification
        .entry
        .into_iter()
        .flat_map(|entry| entry.changes)
    {
        match change.field.as_str() {
            "account_update" => {
                let update: AccountUpdate = serde_json::from_value(change.value)
                    .map_err(|e| WebhookError::Malformed(format!("account_update: {e}")))?;
                if names_ours(update.phone_number.as_deref(), phone) {
                    events.push(account_event(update));
                }
            }
            "phone_number_quality_update" => {
                let update: QualityUpdate = serde_json::from_value(change.value).map_err(|e| {
                    WebhookError::Malformed(format!("phone_number_quality_update: {e}"))
                })?;
                if names_ours(update.display_phone_number.as_deref(), phone) {
                    events.push(DriverEvent::Notice(Notice::Quality {
                        event: update.event,
                        messaging_limit: update.current_limit,
                    }));
                }
            }
            // `messages` (Meta's examples sometimes leave the field out).
            "messages" | "" => {
                let value: MessagesValue = serde_json::from_value(change.value)
                    .map_err(|e| WebhookError::Malformed(format!("messages: {e}")))?;
                if value
                    .metadata
                    .as_ref()
                    .is_some_and(|m| m.phone_number_id == phone_number_id)
                {
                    messages_events(value, &mut events);
                }
            }
            // Groups, templates, ...: nothing for a session.
            _ => {}
        }
    }
    Ok(events)
}

fn messages_events(value: MessagesValue, events: &mut Vec<DriverEvent>) {
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
            kind: match kind {
                "text" => InboundKind::Text,
                "image" => InboundKind::Image,
                "video" => InboundKind::Video,
                "audio" | "voice" => InboundKind::Audio,
                "document" => InboundKind::Document,
                "sticker" => InboundKind::Sticker,
                "location" => InboundKind::Location,
                "contacts" => InboundKind::Contact,
                "reaction" => InboundKind::Reaction,
                "button" | "interactive" => InboundKind::Interactive,
                _ => InboundKind::Other,
            },
            provider_message_id: id.to_owned(),
            at: time_of(message.get("timestamp").and_then(Value::as_str)),
        }));
    }
    for error in value.errors {
        events.push(DriverEvent::Notice(Notice::Error {
            code: error.get("code").and_then(Value::as_i64),
            description: describe_error(&error),
        }));
    }
}

/// What an `account_update` means for the session.
fn account_event(update: AccountUpdate) -> DriverEvent {
    let ban_state = update
        .ban_info
        .as_ref()
        .map(|ban| ban.waba_ban_state.as_str());
    if update.event == "DISABLED_UPDATE" || ban_state == Some("DISABLE") {
        let since = update
            .ban_info
            .as_ref()
            .and_then(|ban| ban.waba_ban_date.as_deref())
            .map(|date| format!(" since {date}"))
            .unwrap_or_default();
        return status_change(
            SessionStatus::LoggedOut,
            format!("Meta disabled the WhatsApp Business Account{since}"),
            Some(StatusReason::Banned),
        );
    }
    if update.event == "ACCOUNT_RESTRICTION"
        && let Some(restriction) = update
            .restriction_info
            .iter()
            .find(|r| r.restriction_type == "RESTRICTED_BIZ_INITIATED_MESSAGING")
    {
        let until = restriction
            .expiration
            .as_deref()
            .map(|at| format!(" until {at}"))
            .unwrap_or_default();
        return status_change(
            SessionStatus::LoggedOut,
            format!("Meta restricts the account from starting conversations{until}"),
            Some(StatusReason::Restricted),
        );
    }
    if update.event == "ACCOUNT_DELETED" {
        return status_change(
            SessionStatus::Failed,
            "the WhatsApp Business Account was deleted".to_owned(),
            None,
        );
    }
    let mut details = Vec::new();
    if let Some(ban) = &update.ban_info {
        details.push(format!("ban state {}", ban.waba_ban_state));
        if let Some(date) = &ban.waba_ban_date {
            details.push(format!("on {date}"));
        }
    }
    for restriction in &update.restriction_info {
        details.push(match &restriction.expiration {
            Some(until) => format!("{} until {until}", restriction.restriction_type),
            None => restriction.restriction_type.clone(),
        });
    }
    if let Some(violation) = update
        .violation_info
        .as_ref()
        .and_then(|v| v.get("violation_type"))
        .and_then(Value::as_str)
    {
        details.push(format!("violation {violation}"));
    }
    DriverEvent::Notice(Notice::Account {
        event: update.event,
        details: details.join(", "),
    })
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

/// What a refused Graph API request means for wablast (see the module's
/// table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphErrorKind {
    /// Too many calls or messages for now: try again shortly.
    RateLimited,
    /// The number's messages were flagged as spam too often: it must not
    /// send for a while.
    SpamLimited,
    /// Meta failed for a while.
    Temporary,
    /// No answer in time behind Meta's gateway: the request may have been
    /// carried out.
    TimedOut,
    /// The access token expired or is invalid.
    AccessToken,
    /// The token lacks a permission.
    Permission,
    /// The account is not set up to send (display name, payment method,
    /// certificate, registration).
    AccountSetup,
    /// The account is blocked for policy violations for a while.
    Blocked,
    /// The account is locked.
    Locked,
    /// The request itself was refused (the message, a parameter).
    Refused,
}

impl GraphErrorKind {
    /// Reads a refused request's answer: the Graph error's `code` first,
    /// then its `is_transient`, then the HTTP status.
    pub fn of(status: StatusCode, body: &Value) -> Self {
        let code = body.pointer("/error/code").and_then(Value::as_i64);
        if let Some(kind) = code.and_then(Self::of_code) {
            return kind;
        }
        if body.pointer("/error/is_transient").and_then(Value::as_bool) == Some(true) {
            return Self::Temporary;
        }
        match status {
            StatusCode::GATEWAY_TIMEOUT => Self::TimedOut,
            StatusCode::TOO_MANY_REQUESTS => Self::RateLimited,
            StatusCode::UNAUTHORIZED => Self::AccessToken,
            StatusCode::FORBIDDEN => Self::Permission,
            s if s.is_server_error() => Self::Temporary,
            _ => Self::Refused,
        }
    }

    /// The kinds Meta's error codes name; `None` for the codes about the
    /// request itself.
    pub fn of_code(code: i64) -> Option<Self> {
        Some(match code {
            4 | 17 | 613 | 80007 | 130429 | 131056 | 133016 => Self::RateLimited,
            131048 => Self::SpamLimited,
            1 | 2 | 131000 | 131016 | 131057 | 133004 => Self::Temporary,
            0 | 190 => Self::AccessToken,
            3 | 10 | 200..=299 | 131005 => Self::Permission,
            131037 | 131042 | 131045 | 133010 => Self::AccountSetup,
            368 => Self::Blocked,
            131031 => Self::Locked,
            _ => return None,
        })
    }
}

/// A refused request as the driver acts on it: its kind and Meta's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphError {
    /// What it means.
    pub kind: GraphErrorKind,
    /// `title (code): details`, or the HTTP status.
    pub message: String,
}

impl GraphError {
    /// Reads a refused request's answer.
    pub fn of(status: StatusCode, body: &Value) -> Self {
        Self {
            kind: GraphErrorKind::of(status, body),
            message: graph_message(body).unwrap_or_else(|| status.to_string()),
        }
    }

    /// What `start` answers for it.
    fn into_driver_error(self) -> DriverError {
        let message = self.message;
        match self.kind {
            GraphErrorKind::AccessToken | GraphErrorKind::Permission => {
                Refusal::Credentials(format!("{PEER} refused the access token: {message}")).into()
            }
            GraphErrorKind::AccountSetup | GraphErrorKind::Blocked | GraphErrorKind::Locked => {
                Refusal::Account(message).into()
            }
            GraphErrorKind::Refused => {
                Refusal::Rejected(format!("{PEER} refused: {message}")).into()
            }
            GraphErrorKind::RateLimited
            | GraphErrorKind::SpamLimited
            | GraphErrorKind::Temporary
            | GraphErrorKind::TimedOut => DriverError::Failed(format!("{PEER}: {message}")),
        }
    }
}

/// The number Meta registered for a phone number id, from its
/// `display_phone_number` (`+1 555-555-5555`, `+62 811-0000-0001`). A
/// business number may be a landline, a toll-free number or Meta's test
/// number, which [`Phone::parse`] (people's numbers: mobile ones) refuses:
/// what Meta registered is taken as it is, by its shape (`+` and 8 to 15
/// digits), as a number stored in an event is read.
pub fn business_number(display: &str) -> Option<Phone> {
    let digits: String = display.chars().filter(char::is_ascii_digit).collect();
    let e164 = format!("+{digits}");
    Phone::parse(&e164, Region::default())
        .ok()
        .or_else(|| serde_json::from_value(Value::String(e164)).ok())
}

struct Inner {
    client: reqwest::Client,
    base: String,
    config: CloudConfig,
    options: CloudOptions,
    events: mpsc::UnboundedSender<DriverEvent>,
    /// The number, once `start` read it.
    phone: Mutex<Option<Phone>>,
    /// Until when the number sends nothing (Meta's spam rate limit).
    paused_until: Mutex<Option<Instant>>,
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

    fn report(
        &self,
        status: SessionStatus,
        phone_number: Option<Phone>,
        error: Option<String>,
        reason: Option<StatusReason>,
    ) {
        // A receiver gone means the engine let go of the session.
        let _ = self.events.send(DriverEvent::Status(StatusChange {
            status,
            phone_number,
            error,
            reason,
            at: Utc::now(),
        }));
    }

    /// The pause left, while the number sends nothing.
    fn pause_left(&self) -> Option<Duration> {
        let mut paused = self.paused_until.lock().expect("cloud driver lock");
        let left = paused.and_then(|until| until.checked_duration_since(Instant::now()));
        if left.is_none() {
            *paused = None;
        }
        left
    }

    /// What a refused send means for the message, reporting what it means
    /// for the session (see the module's table).
    fn refused(&self, status: StatusCode, body: &Value) -> SendError {
        let GraphError { kind, message } = GraphError::of(status, body);
        match kind {
            GraphErrorKind::RateLimited => {
                SendError::Transient(format!("rate limited by {PEER}: {message}"))
            }
            GraphErrorKind::Temporary => {
                SendError::Transient(format!("{PEER} failed for a while: {message}"))
            }
            GraphErrorKind::TimedOut => {
                SendError::Unknown(format!("{PEER} timed out ({status}): {message}"))
            }
            GraphErrorKind::SpamLimited => {
                let pause = self.options.spam_pause;
                *self.paused_until.lock().expect("cloud driver lock") =
                    Some(Instant::now() + pause);
                SendError::Paused {
                    reason: format!("{PEER} limits the number for spam: {message}"),
                    pause,
                }
            }
            GraphErrorKind::AccessToken | GraphErrorKind::Permission => {
                let reason = format!("{PEER} refused the access token: {message}");
                self.report(SessionStatus::Failed, None, Some(reason.clone()), None);
                SendError::SessionUnavailable(reason)
            }
            GraphErrorKind::AccountSetup => {
                let reason = format!("the WhatsApp Business Account cannot send: {message}");
                self.report(SessionStatus::Failed, None, Some(reason.clone()), None);
                SendError::SessionUnavailable(reason)
            }
            GraphErrorKind::Blocked | GraphErrorKind::Locked => {
                let why = if kind == GraphErrorKind::Blocked {
                    StatusReason::Restricted
                } else {
                    StatusReason::Banned
                };
                let reason = format!("the WhatsApp Business Account cannot send: {message}");
                self.report(
                    SessionStatus::LoggedOut,
                    None,
                    Some(reason.clone()),
                    Some(why),
                );
                SendError::SessionUnavailable(reason)
            }
            GraphErrorKind::Refused => {
                SendError::Permanent(format!("refused by {PEER}: {message}"))
            }
        }
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
        let inner = self.inner.upgrade().ok_or(WebhookError::Gone)?;
        let phone = inner.phone.lock().expect("cloud driver lock").clone();
        self.push(parse_webhook(body, &self.phone_number_id, phone.as_ref())?)
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
                .unwrap_or(options.version.as_str())
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
            phone: Mutex::default(),
            paused_until: Mutex::default(),
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
        let number = match inner.call(inner.request(Method::GET, &path)).await {
            Ok(number) => number,
            // Refused (a wrong id, a token without access): the engine
            // reports the session failed with why. No answer, or Meta's own
            // failure: the engine tries again.
            Err(CallError::Status { status, body, .. }) => {
                return Err(GraphError::of(status, &body).into_driver_error());
            }
            Err(e) => return Err(e.into_driver_error(PEER)),
        };
        let display = number.get("display_phone_number").and_then(Value::as_str);
        let Some(phone) = display.and_then(business_number) else {
            return Err(Refusal::Rejected(format!(
                "{PEER} gave the number {} no display_phone_number that reads as a number: {display:?}",
                inner.config.phone_number_id
            ))
            .into());
        };
        *inner.phone.lock().expect("cloud driver lock") = Some(phone.clone());
        inner.report(SessionStatus::Ready, Some(phone), None, None);
        Ok(())
    }

    async fn stop(&self) -> Result<(), DriverError> {
        Ok(())
    }

    /// The Cloud API keeps no connection: the number's own record
    /// (`GET /{phone-number-id}`) answering is the sign of life.
    async fn probe(&self) -> Result<(), DriverError> {
        let inner = &self.inner;
        let path = format!("/{}", inner.config.phone_number_id);
        match inner.call(inner.request(Method::GET, &path)).await {
            Ok(_) => Ok(()),
            Err(CallError::Status { status, body, .. }) => {
                Err(GraphError::of(status, &body).into_driver_error())
            }
            Err(e) => Err(e.into_driver_error(PEER)),
        }
    }

    async fn logout(&self) -> Result<(), DriverError> {
        self.inner.report(
            SessionStatus::LoggedOut,
            None,
            None,
            Some(StatusReason::LoggedOut),
        );
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
        if let Some(pause) = inner.pause_left() {
            return Err(SendError::Paused {
                reason: format!("{PEER} limits the number for spam"),
                pause,
            });
        }
        let Some(to) = message.to.phone() else {
            return Err(SendError::Permanent(format!(
                "a {PEER} number sends to people, not to groups"
            )));
        };
        let mut body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to.digits(),
        });
        match (&message.template, &message.media) {
            (Some(template), media) => {
                let header_media = match media {
                    Some(media) => Some(media_object(media, inner.upload(media).await?)),
                    None => None,
                };
                body["type"] = json!("template");
                body["template"] = template_object(template, header_media);
            }
            (None, None) => {
                body["type"] = json!("text");
                body["text"] = json!({ "body": message.text });
            }
            (None, Some(media)) => {
                let (kind, mut object) = media_object(media, inner.upload(media).await?);
                if !message.text.is_empty() {
                    object["caption"] = json!(message.text);
                }
                body["type"] = json!(kind);
                body[kind] = object;
            }
        }
        if let Some(quoted) = &message.reply_to {
            body["context"] = json!({ "message_id": quoted });
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

    fn sends_templates(&self) -> bool {
        true
    }

    async fn templates(&self, waba_id: &str) -> Result<Vec<SyncedTemplate>, DriverError> {
        let inner = &self.inner;
        if waba_id.is_empty() || !waba_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DriverError::InvalidState(format!(
                "{waba_id:?} is not a WhatsApp Business Account id (digits)"
            )));
        }
        let path = format!("/{waba_id}/message_templates");
        let mut templates = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_TEMPLATE_PAGES {
            let mut query = vec![
                (
                    "fields",
                    "name,language,status,category,components".to_owned(),
                ),
                ("limit", "100".to_owned()),
            ];
            if let Some(cursor) = &after {
                query.push(("after", cursor.clone()));
            }
            let page = match inner
                .call(inner.request(Method::GET, &path).query(&query))
                .await
            {
                Ok(page) => page,
                Err(CallError::Status { status, body, .. }) => {
                    return Err(GraphError::of(status, &body).into_driver_error());
                }
                Err(e) => return Err(e.into_driver_error(PEER)),
            };
            let data = page.get("data").cloned().unwrap_or(Value::Array(vec![]));
            let listed: Vec<ListedTemplate> = serde_json::from_value(data).map_err(|e| {
                DriverError::Failed(format!("{PEER} listed templates unreadably: {e}"))
            })?;
            templates.extend(listed.into_iter().map(ListedTemplate::into_synced));
            // Graph paging: a `next` link while there is more, the cursor
            // to ask for it by.
            let next = page.pointer("/paging/next").and_then(Value::as_str);
            let cursor = page
                .pointer("/paging/cursors/after")
                .and_then(Value::as_str);
            match (next, cursor) {
                (Some(_), Some(cursor)) if after.as_deref() != Some(cursor) => {
                    after = Some(cursor.to_owned());
                }
                _ => return Ok(templates),
            }
        }
        Err(DriverError::Failed(format!(
            "{PEER} listed more than {MAX_TEMPLATE_PAGES} pages of templates"
        )))
    }
}
