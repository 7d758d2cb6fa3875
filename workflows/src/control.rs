//! The contract between the API and the engine for what only the engine
//! running a session knows or can do: its current QR code, a pairing code,
//! the simulator's controls, and the webhooks its driver's peer (WAHA, the
//! Cloud API) sends.
//!
//! # QR codes: a JetStream KV bucket
//!
//! The engine running a session that waits for a scan publishes the QR it
//! shows into the bucket [`qr_bucket_name`] (`<prefix>_session_qr`, opened
//! with [`qr_bucket`]), key = the session id, value = [`QrEntry`] as JSON
//! (`{"qr": "<payload>", "expires_at": "<RFC 3339>"}`), replacing it as
//! WhatsApp rotates the code and deleting it when the session leaves `qr`.
//! The API answers `GET /sessions/{id}/qr` from it while the projected
//! status is `qr` and the entry has not expired.
//!
//! # Requests: NATS request/reply
//!
//! Pairing codes and simulator controls are requests to the engine that
//! runs the session, on [`subject`]:
//! `<prefix>.engine.session.<tenant>.<session_id>.<verb>` ([`Verb`]). The
//! engine holding a session's lease subscribes to that session's subjects
//! ([`session_subjects`]) and only while it holds the lease, so exactly one
//! engine answers, and nobody answers for a session no engine runs (the API
//! then answers 503 `engine_unavailable`). The request body is the verb's
//! request type as JSON; the header [`ACTOR_HEADER`] names who asked (the
//! `Actor` of the event envelope, e.g. `user:<uuid>`), for the commands the
//! engine issues in turn. The reply is a [`Reply`] as JSON:
//! `{"ok": <response>}` or `{"error": {"code": ..., "message": ...}}`.
//!
//! # Webhooks: the raw body, not JSON
//!
//! A driver webhook the API received (`POST /hooks/waha/{id}`,
//! `POST /hooks/cloud/{id}`) goes to the engine running the session as
//! [`Verb::Webhook`], and is the one request whose body is not JSON: the
//! payload is the HTTP body exactly as received (its signature covers those
//! bytes), and the HTTP headers the drivers check travel as NATS headers of
//! the same names ([`WEBHOOK_HEADERS`]). The engine's webhook sink verifies
//! and reads it; the reply is a [`Reply`] of [`WebhookResponse`], refused
//! with [`ControlErrorCode::Unauthorized`] (a missing or wrong signature:
//! nothing changed) or [`ControlErrorCode::ValidationFailed`] (signed, but
//! not a webhook of this session).

use async_nats::jetstream;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use wablast_domain::types::phone::Phone;
use wablast_domain::types::whatsapp_template::SyncedTemplate;
use wablast_domain::types::{SessionId, TenantId};
use wablast_eventstore::{EventStoreError, Prefix, ensure_key_value};

/// How long the API waits for an engine's reply.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Header of a request naming who asked (`user:<uuid>`, `api_key:<uuid>`).
pub const ACTOR_HEADER: &str = "Wablast-Actor";

/// The HTTP headers of a webhook forwarded to the engine (as NATS headers
/// of the same, lower-case, names): WAHA's signature and its algorithm,
/// and the Cloud API's signature.
pub const WEBHOOK_HEADERS: [&str; 3] = [
    WAHA_SIGNATURE_HEADER,
    WAHA_ALGORITHM_HEADER,
    CLOUD_SIGNATURE_HEADER,
];

/// The name of the QR bucket of an installation: `<prefix>_session_qr`.
pub fn qr_bucket_name(prefix: &Prefix) -> String {
    format!("{prefix}_session_qr")
}

/// Opens the QR bucket, creating it if it does not exist yet.
pub async fn qr_bucket(
    js: &jetstream::Context,
    prefix: &Prefix,
) -> Result<jetstream::kv::Store, EventStoreError> {
    ensure_key_value(
        js,
        &qr_bucket_name(prefix),
        "The QR code each session waiting for a scan shows (key: session id)",
        prefix.replicas(),
    )
    .await
}

/// The QR code a session shows, as stored in the QR bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QrEntry {
    /// What the QR code encodes (WhatsApp's `ref,publicKey,...` string).
    pub qr: String,
    /// When WhatsApp stops accepting it.
    pub expires_at: DateTime<Utc>,
}

impl QrEntry {
    /// Whether it can still be scanned at `now`.
    pub fn is_current(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }
}

/// What a request asks the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// [`PairingCodeRequest`] → [`PairingCodeResponse`].
    PairingCode,
    /// [`SimulatorScanRequest`] → [`SimulatorScanResponse`].
    SimulatorScan,
    /// [`SimulatorInboundRequest`] → [`SimulatorInboundResponse`].
    SimulatorInbound,
    /// A driver webhook (raw body, [`WEBHOOK_HEADERS`]) →
    /// [`WebhookResponse`].
    Webhook,
    /// [`GroupsRequest`] → [`GroupsResponse`].
    Groups,
    /// [`GroupMembersRequest`] → [`GroupMembersResponse`].
    GroupMembers,
    /// [`CheckNumbersRequest`] → [`CheckNumbersResponse`].
    CheckNumbers,
    /// [`TemplatesRequest`] → [`TemplatesResponse`].
    Templates,
}

impl Verb {
    /// The subject token: `pairing_code`, `simulator_scan`,
    /// `simulator_inbound`, `webhook`, `groups`, `group_members`,
    /// `check_numbers`, `templates`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PairingCode => "pairing_code",
            Self::SimulatorScan => "simulator_scan",
            Self::SimulatorInbound => "simulator_inbound",
            Self::Webhook => "webhook",
            Self::Groups => "groups",
            Self::GroupMembers => "group_members",
            Self::CheckNumbers => "check_numbers",
            Self::Templates => "templates",
        }
    }
}

/// The subject of a request about one session.
pub fn subject(prefix: &Prefix, tenant: TenantId, session: SessionId, verb: Verb) -> String {
    format!(
        "{prefix}.engine.session.{tenant}.{session}.{}",
        verb.as_str()
    )
}

/// Every request subject of one session: what the engine running it
/// subscribes to.
pub fn session_subjects(prefix: &Prefix, tenant: TenantId, session: SessionId) -> String {
    format!("{prefix}.engine.session.{tenant}.{session}.*")
}

/// How long a request waits before asking again while no engine answers
/// for the session (one may be taking it over).
const NO_ENGINE_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// Why a request got no readable reply.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// No engine answered in time (none runs the session, or it did not
    /// answer).
    #[error("no session engine answered: {0}")]
    Unreachable(#[source] async_nats::RequestError),
    /// The engine answered something that is not a [`Reply`] of the
    /// verb's response.
    #[error("the session engine answered something unreadable: {0}")]
    Unreadable(#[source] serde_json::Error),
}

/// Who asks the engines: the NATS connection of an event log and its
/// prefix.
#[derive(Clone, Debug)]
pub struct Engines {
    client: async_nats::Client,
    prefix: Prefix,
}

impl Engines {
    /// The engines of the installation `log` belongs to.
    pub fn of(log: &wablast_eventstore::EventLog) -> Self {
        Self {
            client: log.jetstream().client(),
            prefix: log.prefix().clone(),
        }
    }

    /// Asks the engine that runs `session` to do `verb`, as `actor`,
    /// within `timeout`: while no engine answers for the session, it asks
    /// again until the time is up.
    pub async fn ask<Req: Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        tenant: TenantId,
        session: SessionId,
        verb: Verb,
        actor: &str,
        request: &Req,
        timeout: std::time::Duration,
    ) -> Result<Reply<Resp>, AskError> {
        ask(
            &self.client,
            subject(&self.prefix, tenant, session, verb),
            actor,
            request,
            timeout,
        )
        .await
    }
}

/// [`Engines::ask`] on `subject`.
async fn ask<Req: Serialize, Resp: serde::de::DeserializeOwned>(
    client: &async_nats::Client,
    subject: String,
    actor: &str,
    request: &Req,
    timeout: std::time::Duration,
) -> Result<Reply<Resp>, AskError> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(ACTOR_HEADER, actor);
    let payload = bytes::Bytes::from(serde_json::to_vec(request).map_err(AskError::Unreadable)?);
    let deadline = tokio::time::Instant::now() + timeout;
    let reply = loop {
        let request = async_nats::Request::new()
            .payload(payload.clone())
            .headers(headers.clone())
            .timeout(Some(
                deadline.saturating_duration_since(tokio::time::Instant::now()),
            ));
        match client.send_request(subject.clone(), request).await {
            Ok(reply) => break reply,
            Err(err)
                if err.kind() == async_nats::client::RequestErrorKind::NoResponders
                    && tokio::time::Instant::now() + NO_ENGINE_RETRY < deadline =>
            {
                tokio::time::sleep(NO_ENGINE_RETRY).await;
            }
            Err(err) => return Err(AskError::Unreachable(err)),
        }
    };
    serde_json::from_slice(&reply.payload).map_err(AskError::Unreadable)
}

/// Asks for a pairing code: the user types it on the phone whose number
/// this is ("link with phone number instead").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingCodeRequest {
    /// The number to link, E.164.
    pub phone_number: Phone,
}

/// A pairing code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingCodeResponse {
    /// What to type on the phone (`ABCD-EFGH`).
    pub code: String,
    /// When it stops working, if the driver knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// Simulator: the phone with this number scans the session's QR code (or
/// enters its pairing code), linking it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimulatorScanRequest {
    /// The simulated phone's number, E.164.
    pub phone_number: Phone,
}

/// The scan was accepted; the session's status follows as events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimulatorScanResponse {}

/// Simulator: someone sends the session's number a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimulatorInboundRequest {
    /// The sender, E.164.
    pub from: Phone,
    /// The text.
    pub text: String,
}

/// The message was delivered to the session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimulatorInboundResponse {
    /// The message's id at the (simulated) WhatsApp, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// The groups the session's number is in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupsRequest {}

/// A group, as the driver tells it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// The driver's id (`…@g.us`).
    pub id: String,
    /// Its subject.
    pub name: String,
    /// How many participants it has.
    pub participants: usize,
}

/// The session's groups.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupsResponse {
    /// Each group.
    pub groups: Vec<GroupInfo>,
}

/// The participants of one of the session's groups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMembersRequest {
    /// The group's id, as [`GroupInfo::id`].
    pub group_id: String,
}

/// A participant, as the driver tells it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMemberInfo {
    /// As the driver names it (`628…@c.us`, `…@lid`).
    pub id: String,
    /// The number, when WhatsApp lets the session see it.
    pub phone: Option<Phone>,
    /// Whether it administers the group.
    pub admin: bool,
}

/// The group's participants.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMembersResponse {
    /// Each participant.
    pub members: Vec<GroupMemberInfo>,
}

/// Asks WhatsApp whether numbers are on it, at the session's own pace for
/// checks (apart from its sends): as many as fit in `within_ms`, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckNumbersRequest {
    /// The numbers, E.164.
    pub phones: Vec<Phone>,
    /// How long the engine may take, in milliseconds: numbers it does not
    /// reach by then are left unchecked.
    pub within_ms: u64,
}

/// One number as WhatsApp answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberChecked {
    /// The number.
    pub phone: Phone,
    /// Whether it is on WhatsApp.
    pub on_whatsapp: bool,
    /// The chat id WhatsApp knows it by, when it is.
    pub chat_id: Option<String>,
    /// When it was asked.
    pub checked_at: DateTime<Utc>,
}

/// The numbers checked, in the order asked; those not reached in time are
/// not among them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckNumbersResponse {
    /// Each number checked.
    pub checked: Vec<NumberChecked>,
}

/// The message templates of the session's WhatsApp Business Account
/// (Cloud API sessions). The account's id travels with the request, so an
/// id set after the session started is used without restarting it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplatesRequest {
    /// The WhatsApp Business Account's id.
    pub waba_id: String,
}

/// Every template of the account, as Meta lists them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplatesResponse {
    /// Each template (each language of a name is one).
    pub templates: Vec<SyncedTemplate>,
}

/// A webhook the session's driver verified and read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookResponse {
    /// How many events it reported for the session (status changes,
    /// receipts, inbound messages); 0 for one that is not news.
    pub events: usize,
}

/// Why the engine refused a request. The API answers the code's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlErrorCode {
    /// The session is not in a state that allows it (409).
    InvalidState,
    /// The session is busy with something else (409).
    SessionBusy,
    /// The engine does not run this session (404 / stale routing).
    NotFound,
    /// A phone number the driver refused (400).
    InvalidPhone,
    /// A request the engine could not read (400).
    ValidationFailed,
    /// The driver or WhatsApp failed (502).
    DriverFailed,
    /// A webhook whose signature is missing or wrong (401).
    Unauthorized,
    /// The session's driver cannot do this (400).
    Unsupported,
}

/// A refusal, with a human message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlError {
    /// Why.
    pub code: ControlErrorCode,
    /// In words.
    pub message: String,
}

/// The engine's reply to a request: `{"ok": T}` or `{"error": {...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply<T> {
    /// Done.
    Ok(T),
    /// Refused.
    Error(ControlError),
}

/// The header WAHA signs a session's webhooks in.
pub const WAHA_SIGNATURE_HEADER: &str = "x-webhook-hmac";

/// The header naming WAHA's signature algorithm (`sha512`).
pub const WAHA_ALGORITHM_HEADER: &str = "x-webhook-hmac-algorithm";

/// The header the Cloud API signs a number's webhooks in.
pub const CLOUD_SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// Answers Meta's verification of the webhook URL: with `hub.mode` =
/// `subscribe` and `hub.verify_token` equal to ours, the answer is
/// `hub.challenge`; anything else is refused (HTTP 403).
pub fn verify_cloud_subscription(
    verify_token: &str,
    mode: Option<&str>,
    token: Option<&str>,
    challenge: Option<&str>,
) -> Option<String> {
    let token_matches = !verify_token.is_empty()
        && token.is_some_and(|token| constant_time_eq(token.as_bytes(), verify_token.as_bytes()));
    (mode == Some("subscribe") && token_matches)
        .then(|| challenge.map(str::to_owned))
        .flatten()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_the_tenant_session_and_verb() {
        let prefix = Prefix::parse("wablast").unwrap();
        let tenant = TenantId::new();
        let session = SessionId::new();
        assert_eq!(
            subject(&prefix, tenant, session, Verb::SimulatorScan),
            format!("wablast.engine.session.{tenant}.{session}.simulator_scan")
        );
        assert_eq!(
            session_subjects(&prefix, tenant, session),
            format!("wablast.engine.session.{tenant}.{session}.*")
        );
        assert_eq!(
            subject(&prefix, tenant, session, Verb::Webhook),
            format!("wablast.engine.session.{tenant}.{session}.webhook")
        );
        assert_eq!(qr_bucket_name(&prefix), "wablast_session_qr");
    }

    #[test]
    fn replies_read_as_ok_or_error() {
        let ok: Reply<PairingCodeResponse> =
            serde_json::from_str(r#"{"ok": {"code": "ABCD-EFGH"}}"#).unwrap();
        assert_eq!(
            ok,
            Reply::Ok(PairingCodeResponse {
                code: "ABCD-EFGH".into(),
                expires_at: None
            })
        );
        let err: Reply<SimulatorScanResponse> = serde_json::from_str(
            r#"{"error": {"code": "invalid_state", "message": "not waiting for a scan"}}"#,
        )
        .unwrap();
        assert_eq!(
            err,
            Reply::Error(ControlError {
                code: ControlErrorCode::InvalidState,
                message: "not waiting for a scan".into()
            })
        );
    }

    #[test]
    fn a_qr_entry_is_current_until_it_expires() {
        let now = Utc::now();
        let entry = QrEntry {
            qr: "2@abc".into(),
            expires_at: now,
        };
        assert!(!entry.is_current(now));
        assert!(entry.is_current(now - chrono::Duration::seconds(1)));
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["qr"], "2@abc");
    }
}
