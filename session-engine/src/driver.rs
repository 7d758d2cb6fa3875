//! What the engine asks of WhatsApp, whatever connects it: one [`Driver`]
//! per session, and the stream of [`DriverEvent`]s it reports (status
//! changes, QR codes, receipts, inbound messages).
//!
//! A driver only talks to WhatsApp. It never decides whether a send is
//! allowed (the aggregates do) and keeps no business state: the engine turns
//! its events into commands.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use wablast_domain::inbound::InboundKind;
pub use wablast_domain::message::LookedUp;
use wablast_domain::session::{SessionStatus, StatusReason};
use wablast_domain::types::Chat;
use wablast_domain::types::phone::Phone;
use wablast_domain::types::whatsapp_template::{SyncedTemplate, TemplateMessage};

/// A QR code to scan with the phone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QrCode {
    /// What the QR encodes.
    pub payload: String,
    /// When it stops being accepted (a new one follows).
    pub expires_at: DateTime<Utc>,
}

/// What the driver saw the session do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusChange {
    /// The status now (never `idle` or `starting`: those are the user's).
    pub status: SessionStatus,
    /// The linked number, once known.
    pub phone_number: Option<Phone>,
    /// Why, for failed / logged_out / disconnected, in words.
    pub error: Option<String>,
    /// Why, as the engine and the campaigns act on it (banned, logged out,
    /// ...), when the driver knows.
    pub reason: Option<StatusReason>,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// How far a sent message got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    /// On the recipient's phone.
    Delivered,
    /// Opened.
    Read,
    /// WhatsApp gave up on it after accepting it.
    Failed {
        /// Why.
        reason: String,
    },
}

/// A delivery receipt for a message this session sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The id the driver gave the message when it was sent.
    pub provider_message_id: String,
    /// How far it got.
    pub kind: ReceiptKind,
    /// When.
    pub at: DateTime<Utc>,
}

/// A message someone sent to this session's number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inbound {
    /// The sender's number, when the driver could resolve it (a `@lid` id
    /// may not be).
    pub from: Option<Phone>,
    /// The sender as the driver named it (`628…@c.us`, `…@lid`).
    pub from_raw: String,
    /// The text (or caption), if any.
    pub text: Option<String>,
    /// Its kind.
    pub kind: InboundKind,
    /// The driver's id of the message.
    pub provider_message_id: String,
    /// When it was sent.
    pub at: DateTime<Utc>,
}

/// Something the driver's peer said about the account that changes
/// nothing the session can do by itself (those are [`StatusChange`]s): a
/// warning worth an operator's eye.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The number's quality rating or messaging limit changed (the Cloud
    /// API's `phone_number_quality_update`).
    Quality {
        /// What happened, in the peer's words (`FLAGGED`, `DOWNGRADE`, ...).
        event: String,
        /// The messaging limit now (`TIER_1K`, ...), when given.
        messaging_limit: Option<String>,
    },
    /// A warning about the account (a policy violation, a ban scheduled or
    /// lifted, a restriction that leaves sending alone).
    Account {
        /// What happened, in the peer's words.
        event: String,
        /// Its details.
        details: String,
    },
    /// An error the peer reported outside any one message.
    Error {
        /// The peer's code, when it gave one.
        code: Option<i64>,
        /// The error in words.
        description: String,
    },
}

impl Notice {
    /// Its kind, for logs and metrics: `quality`, `account` or `error`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Quality { .. } => "quality",
            Self::Account { .. } => "account",
            Self::Error { .. } => "error",
        }
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Quality {
                event,
                messaging_limit: Some(limit),
            } => write!(f, "quality: {event} (messaging limit {limit})"),
            Self::Quality { event, .. } => write!(f, "quality: {event}"),
            Self::Account { event, details } => write!(f, "account: {event}: {details}"),
            Self::Error {
                code: Some(code),
                description,
            } => write!(f, "error {code}: {description}"),
            Self::Error { description, .. } => write!(f, "error: {description}"),
        }
    }
}

/// Everything a driver reports, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DriverEvent {
    /// The session's status changed.
    Status(StatusChange),
    /// A new QR code is waiting to be scanned.
    Qr(QrCode),
    /// A receipt for a sent message.
    Receipt(Receipt),
    /// An incoming message.
    Inbound(Inbound),
    /// A warning about the account.
    Notice(Notice),
}

/// An attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingMedia {
    /// `image/png`, `application/pdf`, ...
    pub mime_type: String,
    /// Its file name as the recipient sees it.
    pub filename: String,
    /// Its bytes.
    pub bytes: Bytes,
}

/// A message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Our id of the message (drivers that accept a client id use it, so a
    /// retried send is not sent twice).
    pub message_id: uuid::Uuid,
    /// The recipient: a person, or a group the number is in.
    pub to: Chat,
    /// The rendered text (the caption, with media).
    pub text: String,
    /// An attachment (with a template: its header's).
    pub media: Option<OutgoingMedia>,
    /// WhatsApp's id of a message this one answers (quoted).
    pub reply_to: Option<String>,
    /// An approved template to send instead of `text` (only a driver that
    /// [`Driver::sends_templates`] is given one); its media header's
    /// attachment is `media`.
    pub template: Option<TemplateMessage>,
}

/// A message WhatsApp accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMessage {
    /// The driver's id of it: receipts name it.
    pub provider_message_id: String,
    /// When it was accepted.
    pub at: DateTime<Utc>,
}

/// Why a send did not go out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later (network, rate limit, not connected).
    #[error("transient: {0}")]
    Transient(String),
    /// Will never work (not on WhatsApp, rejected, blocked).
    #[error("permanent: {0}")]
    Permanent(String),
    /// The outcome is not known (the connection dropped mid-send): it may
    /// have been sent. Never retried silently.
    #[error("unknown outcome: {0}")]
    Unknown(String),
    /// The session cannot send at all any more (the number was banned,
    /// its access token refused): not the message's fault, which waits for
    /// a sender that can. The driver reports the session's new status.
    #[error("the session cannot send: {0}")]
    SessionUnavailable(String),
    /// WhatsApp holds the number back for a while (too many of its
    /// messages were flagged as spam): nothing is sent from it until
    /// `pause` has passed. Not the message's fault: it waits that long.
    #[error("the session pauses for {pause:?}: {reason}")]
    Paused {
        /// Why.
        reason: String,
        /// How long the session sends nothing from now.
        pause: Duration,
    },
    /// WhatsApp restricted the number (a 463 reachout timelock, the
    /// capping quota, a temporary ban): the message was not sent; the
    /// sender governor records the restriction and holds the sender to it.
    #[error("the sender is restricted ({kind:?}) until {until:?}: {reason}")]
    Restricted {
        /// Which signal.
        kind: wablast_domain::governor::RestrictionKind,
        /// When it ends, if WhatsApp said.
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// Why, as the driver read it.
        reason: String,
    },
}

/// Why a request other than a send failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// The session is not in a state that allows it (e.g. a QR while
    /// linked).
    #[error("{0}")]
    InvalidState(String),
    /// The driver cannot do this at all.
    #[error("{0} is not supported by this driver")]
    Unsupported(&'static str),
    /// The driver's server refuses the session as it is configured:
    /// trying again changes nothing until its `driver_config` (or the
    /// account) does.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// WhatsApp or the driver's server failed (unreachable, an error of its
    /// own): worth trying again.
    #[error("{0}")]
    Failed(String),
}

/// Why a driver's server refuses a session as configured.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The WAHA server runs WAHA Core, which has one session, named
    /// `default`.
    #[error(
        "the WAHA server runs WAHA Core, which only has the session named \"default\", not {name:?}: \
         set the session's driver_config.session_name to \"default\" (one number per WAHA Core server), or use WAHA Plus"
    )]
    OnlyDefaultSession {
        /// The session name that was asked for.
        name: String,
    },
    /// The credentials (an API key, an access token) were refused, expired
    /// or lack a permission.
    #[error("the credentials were refused: {0}")]
    Credentials(String),
    /// The account cannot be used (banned, locked, unpaid, not
    /// registered).
    #[error("the account cannot be used: {0}")]
    Account(String),
    /// Anything else the server refused (a number id it does not know,
    /// say), in its words.
    #[error("{0}")]
    Rejected(String),
}

/// A group the session's number is in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// The driver's id (`…@g.us`).
    pub id: String,
    /// Its subject.
    pub name: String,
    /// How many participants.
    pub participants: usize,
}

/// A participant of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    /// As the driver names it.
    pub id: String,
    /// The number, when it could be resolved.
    pub phone: Option<Phone>,
    /// Whether it administers the group.
    pub admin: bool,
}

/// One session's connection to WhatsApp.
#[async_trait]
pub trait Driver: Send + Sync + fmt::Debug {
    /// Brings the session up: restores a stored link (reporting
    /// `authenticated`/`ready`) or asks for a QR (reporting `qr` and a
    /// [`DriverEvent::Qr`]).
    async fn start(&self) -> Result<(), DriverError>;

    /// Takes the session down, keeping the link.
    async fn stop(&self) -> Result<(), DriverError>;

    /// Unlinks the number (reports `logged_out`).
    async fn logout(&self) -> Result<(), DriverError>;

    /// Removes the session from the driver's server for good, unlinking
    /// it. A driver whose server keeps nothing of a session beyond its
    /// connection only stops it.
    async fn delete(&self) -> Result<(), DriverError> {
        self.stop().await
    }

    /// Whether the connection of a ready session still answers: asked by
    /// the engine when the session has reported nothing for a while. An
    /// error, or no answer within the engine's probe timeout, has the
    /// engine restart the session.
    async fn probe(&self) -> Result<(), DriverError>;

    /// The QR code waiting to be scanned, if the session waits for one.
    async fn qr(&self) -> Result<Option<QrCode>, DriverError>;

    /// Asks for a pairing code to type on the phone of `phone` instead of
    /// scanning (reports `pairing`).
    async fn request_pairing_code(&self, phone: &Phone) -> Result<String, DriverError>;

    /// Sends one message.
    async fn send(&self, message: &OutgoingMessage) -> Result<SentMessage, SendError>;

    /// The driver's id for the send of our message `message_id`, chosen
    /// before it goes out, so that a send whose answer is lost (the engine
    /// died, the connection dropped) can be looked up by it
    /// ([`Driver::look_up`]). `None`: the peer names a message only in
    /// its answer (the Cloud API), cannot be given an id for this kind of
    /// message (`with_media`: it has an attachment), or the driver has no
    /// lookup.
    async fn choose_message_id(
        &self,
        _message_id: uuid::Uuid,
        _with_media: bool,
    ) -> Result<Option<String>, DriverError> {
        Ok(None)
    }

    /// Sends one message under `provider_message_id`, as
    /// [`Driver::choose_message_id`] chose it (`None`: as [`Driver::send`]).
    /// The message the peer accepts must carry that id.
    async fn send_as(
        &self,
        message: &OutgoingMessage,
        _provider_message_id: Option<&str>,
    ) -> Result<SentMessage, SendError> {
        self.send(message).await
    }

    /// What became of the message this session sent to `to` as
    /// `provider_message_id`, as the peer knows it: it went out (with how
    /// far it got, if known), it never left, or the peer cannot tell.
    /// A driver without a lookup cannot tell.
    async fn look_up(
        &self,
        _to: &Chat,
        _provider_message_id: &str,
    ) -> Result<LookedUp, DriverError> {
        Ok(LookedUp::CannotTell)
    }

    /// Whether `phone` has WhatsApp.
    async fn check_number(&self, phone: &Phone) -> Result<bool, DriverError>;

    /// The groups the number is in.
    async fn groups(&self) -> Result<Vec<Group>, DriverError>;

    /// A group's participants.
    async fn group_members(&self, group_id: &str) -> Result<Vec<GroupMember>, DriverError>;

    /// Whether it sends WhatsApp message templates
    /// ([`OutgoingMessage::template`]): the Cloud API does.
    fn sends_templates(&self) -> bool {
        false
    }

    /// The message templates of the WhatsApp Business Account `waba_id`
    /// (every page of them).
    async fn templates(&self, _waba_id: &str) -> Result<Vec<SyncedTemplate>, DriverError> {
        Err(DriverError::Unsupported("message templates"))
    }
}

/// A connected driver and the stream of what it reports.
pub struct Connection {
    /// The driver.
    pub driver: Box<dyn Driver>,
    /// Its events, in order; closed when the driver is dropped.
    pub events: mpsc::UnboundedReceiver<DriverEvent>,
}
