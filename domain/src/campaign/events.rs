//! What happened to a campaign.

use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::types::template::Template;
use crate::types::whatsapp_template::CampaignTemplate;
use crate::types::{
    CampaignId, ContactListId, EngagementGuard, MediaId, Points, SendSignals, SessionId, Throttle,
};

/// Why a campaign slowed itself down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SlowDownReason {
    /// A sender's last sends failed or were blocked too often (at least
    /// 30% of its last 10).
    FailuresClimbing,
}

impl SlowDownReason {
    /// Its stable name (`failures_climbing`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FailuresClimbing => "failures_climbing",
        }
    }
}

/// Why a sender session left a campaign's rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SenderUnavailableReason {
    /// WhatsApp banned the number.
    Banned,
    /// The number was logged out (unlinked from the phone).
    LoggedOut,
    /// The session was deleted.
    Deleted,
}

/// Why a campaign is paused. Serialized internally tagged:
/// `{"kind": "manual"}`, `{"kind": "sender_unavailable", "session_id": ..,
/// "why": "banned"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PauseReason {
    /// A user paused it.
    Manual,
    /// Sends failed in a row; it may resume after a back-off.
    AutoConsecutiveFailures {
        /// How many sends failed in a row.
        failures: u32,
    },
    /// A sender can no longer send and no other is left.
    SenderUnavailable {
        /// The sender.
        session_id: SessionId,
        /// Why it can no longer send.
        why: SenderUnavailableReason,
    },
    /// The tenant's active hours are closed.
    OutsideActiveHours,
}

/// Why a scheduled campaign could not start at its time: the refusal's
/// stable code (`insufficient_points`, `plan_expired`,
/// `recipient_cap_exceeded`, `session_not_ready`, ...) and its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StartRefusal {
    /// The refusal's stable code, as the API answers it.
    pub code: String,
    /// What it says.
    pub message: String,
}

/// An event of the campaign aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum CampaignEvent {
    /// A draft campaign was created.
    CampaignCreated {
        /// The campaign's id.
        campaign_id: CampaignId,
        /// Its name, trimmed.
        name: String,
        /// The contact list it is sent to.
        contact_list_id: ContactListId,
        /// The message template.
        template: Template,
        /// An attachment sent with every message.
        media_id: Option<MediaId>,
        /// The WhatsApp template its Cloud API senders send.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        whatsapp_template: Option<Box<CampaignTemplate>>,
        /// The sender sessions, in rotation order.
        sender_session_ids: Vec<SessionId>,
        /// The pause between two sends of one session.
        throttle: Throttle,
        /// When it is meant to start, if given at creation.
        scheduled_at: Option<DateTime<Utc>>,
        /// Whether it leaves out the contacts a check found not on
        /// WhatsApp (decided, and counted, when it starts).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        skip_not_on_whatsapp: bool,
        /// Messages the tenant sent a contact who never replied from which
        /// the campaign leaves the contact out (0: off; campaigns recorded
        /// before the guard existed: off).
        #[serde(default = "EngagementGuard::off")]
        skip_unanswered_after: EngagementGuard,
        /// When.
        at: DateTime<Utc>,
    },
    /// The direct campaign of one session's single sends on one local day
    /// was opened, running.
    DirectCampaignOpened {
        /// The campaign's id.
        campaign_id: CampaignId,
        /// The session whose single sends it holds (its only sender).
        session_id: SessionId,
        /// The local day.
        day: NaiveDate,
        /// The pause between two of its sends.
        throttle: Throttle,
        /// When.
        at: DateTime<Utc>,
    },
    /// The campaign was (re)scheduled.
    CampaignScheduled {
        /// When it should start.
        at_time: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A scheduled campaign could not start at its time: it is a draft
    /// again.
    ScheduledStartRefused {
        /// Why.
        refusal: StartRefusal,
        /// When.
        at: DateTime<Utc>,
    },
    /// The campaign started: recipients and reserved points are frozen.
    CampaignStarted {
        /// How many recipients it has.
        recipients: u64,
        /// The points the wallet reserved for it (`recipients × 2`).
        points_reserved: Points,
        /// The list's contacts it left out, a check having found them not
        /// on WhatsApp (not among `recipients`).
        #[serde(default, skip_serializing_if = "is_zero")]
        skipped_not_on_whatsapp: u64,
        /// The list's contacts it left out as sent too many messages
        /// without ever replying (not among `recipients`).
        #[serde(default, skip_serializing_if = "is_zero")]
        skipped_never_replied: u64,
        /// When.
        at: DateTime<Utc>,
    },
    /// The campaign was paused (or, already paused, its reason changed).
    CampaignPaused {
        /// Why.
        reason: PauseReason,
        /// When.
        at: DateTime<Utc>,
    },
    /// The campaign paused itself after consecutive failures.
    CampaignAutoPaused {
        /// The sender whose sends failed.
        session_id: SessionId,
        /// How many sends failed in a row.
        failures: u32,
        /// Which auto-pause of this campaign this is (1, 2, 3, ...).
        pause_number: u32,
        /// The earliest instant it may resume.
        resume_at: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The campaign slowed itself down: its pause between two sends of a
    /// session is [`Throttle::slowed`] until its speed is restored.
    CampaignSlowedDown {
        /// The sender whose outcomes slowed it.
        session_id: SessionId,
        /// Why.
        reason: SlowDownReason,
        /// The sender's last outcomes.
        signals: SendSignals,
        /// The pause it keeps now.
        throttle: Throttle,
        /// When.
        at: DateTime<Utc>,
    },
    /// A slowed-down campaign takes its own pace again: the sender's
    /// failures fell under 10% of its last sends.
    CampaignSpeedRestored {
        /// The sender whose outcomes restored it.
        session_id: SessionId,
        /// The sender's last outcomes.
        signals: SendSignals,
        /// The pause it keeps again (its own).
        throttle: Throttle,
        /// When.
        at: DateTime<Utc>,
    },
    /// The campaign runs again.
    CampaignResumed {
        /// When.
        at: DateTime<Utc>,
    },
    /// A sender left the rotation for good.
    CampaignSenderRemoved {
        /// The sender.
        session_id: SessionId,
        /// Why it can no longer send.
        reason: SenderUnavailableReason,
        /// The senders still in rotation.
        remaining_senders: Vec<SessionId>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The campaign was cancelled. If it had started, the wallet settles:
    /// it captures what the messages' own events say was sent and releases
    /// the rest.
    CampaignCancelled {
        /// The points reserved at start (zero if it never started).
        points_reserved: Points,
        /// When.
        at: DateTime<Utc>,
    },
    /// Every message is final: the counts are recorded and the wallet
    /// settles.
    CampaignCompleted {
        /// Messages sent.
        sent: u64,
        /// Messages failed (or unknown).
        failed: u64,
        /// Messages cancelled.
        cancelled: u64,
        /// The points reserved at start.
        points_reserved: Points,
        /// What the sent messages cost (`sent × 2`); the rest of the
        /// reservation is to be released.
        points_spent: Points,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for CampaignEvent {
    fn event_type(&self) -> String {
        match self {
            Self::CampaignCreated { .. } => "CampaignCreated",
            Self::DirectCampaignOpened { .. } => "DirectCampaignOpened",
            Self::CampaignScheduled { .. } => "CampaignScheduled",
            Self::ScheduledStartRefused { .. } => "ScheduledStartRefused",
            Self::CampaignStarted { .. } => "CampaignStarted",
            Self::CampaignPaused { .. } => "CampaignPaused",
            Self::CampaignAutoPaused { .. } => "CampaignAutoPaused",
            Self::CampaignSlowedDown { .. } => "CampaignSlowedDown",
            Self::CampaignSpeedRestored { .. } => "CampaignSpeedRestored",
            Self::CampaignResumed { .. } => "CampaignResumed",
            Self::CampaignSenderRemoved { .. } => "CampaignSenderRemoved",
            Self::CampaignCancelled { .. } => "CampaignCancelled",
            Self::CampaignCompleted { .. } => "CampaignCompleted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// Whether a count is 0 (left out of an event's JSON).
fn is_zero(n: &u64) -> bool {
    *n == 0
}
