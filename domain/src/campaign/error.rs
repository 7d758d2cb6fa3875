//! Why a campaign refused a command.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::aggregate::CampaignStatus;
use crate::RefusalCode;
use crate::types::{Points, SessionId};

/// A campaign's refusal. [`CampaignError::code`] gives the stable API code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CampaignError {
    /// The campaign was created already.
    #[error("campaign already exists")]
    AlreadyCreated,
    /// The campaign does not exist.
    #[error("campaign not found")]
    NotFound,
    /// The name is empty or too long once trimmed.
    #[error("campaign name must be 1 to 120 characters, got {chars}")]
    InvalidName {
        /// Its length in characters, trimmed.
        chars: usize,
    },
    /// No sender session was given.
    #[error("a campaign needs at least one sender session")]
    NoSenders,
    /// A sender session was given twice.
    #[error("sender session {0} is listed twice")]
    DuplicateSender(SessionId),
    /// The template uses variables the contact list does not have.
    #[error("template uses unknown variables: {}", .names.join(", "))]
    UnknownVariables {
        /// The unknown variables, sorted.
        names: Vec<String>,
    },
    /// Some recipients have no value for a variable the template uses
    /// without fallback: their messages could not be rendered.
    #[error(
        "some contacts have no value for {}: give the variable a fallback (`{{{{name|Kak}}}}`) or fill the list",
        .missing.iter().map(|(name, count)| format!("{name} ({count})")).collect::<Vec<_>>().join(", ")
    )]
    TemplateVariablesMissing {
        /// Per variable (as the list spells it), how many recipients lack
        /// it.
        missing: BTreeMap<String, u64>,
    },
    /// A start time that is not in the future.
    #[error("scheduled time {at_time} is not in the future")]
    ScheduleInPast {
        /// The time given.
        at_time: DateTime<Utc>,
    },
    /// The command does not apply in the campaign's status.
    #[error("cannot {action} a {status} campaign")]
    InvalidState {
        /// What was asked (`schedule`, `start`, `pause`, ...).
        action: &'static str,
        /// The campaign's status.
        status: CampaignStatus,
    },
    /// A start with no recipient.
    #[error(
        "a campaign needs at least one recipient (contacts found not on WhatsApp do not count when it skips them)"
    )]
    NoRecipients,
    /// A start leaving out contacts not on WhatsApp, of a campaign that
    /// was not created to skip them.
    #[error("this campaign sends to every contact: it skips none")]
    SkipsNone,
    /// More recipients than the plan allows per campaign.
    #[error("{recipients} recipients exceed the plan's cap of {cap} per campaign")]
    RecipientCapExceeded {
        /// The recipients.
        recipients: u64,
        /// The plan's cap.
        cap: u64,
    },
    /// The reservation does not match `recipients × 2`.
    #[error("{reserved} reserved, but the recipients need {required}")]
    ReservationMismatch {
        /// What the recipients need.
        required: Points,
        /// What was reserved.
        reserved: Points,
    },
    /// No sender is left in the rotation.
    #[error("no sender session is left to send this campaign")]
    NoActiveSenders,
    /// A resume before the auto-pause's back-off has passed.
    #[error("campaign is backing off after consecutive failures until {retry_at}")]
    BackingOff {
        /// When resuming is allowed.
        retry_at: DateTime<Utc>,
    },
    /// [`PauseReason::AutoConsecutiveFailures`](super::PauseReason) given to
    /// `PauseCampaign`.
    #[error("auto-pauses are reported as consecutive failures, not asked for")]
    AutoPauseByHand,
    /// A session that was never one of the campaign's senders.
    #[error("session {0} is not a sender of this campaign")]
    UnknownSender(SessionId),
    /// A start while every sender's daily limit is used up for today.
    #[error("every sender of the campaign has used up its daily limit for today")]
    DailyLimitReached,
    /// Cloud API senders, and no WhatsApp template: they could not start a
    /// conversation with anyone.
    #[error(
        "sessions {} are Cloud API numbers, which can only start conversations with an approved template: give the campaign a whatsapp_template",
        .sessions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    TemplateRequired {
        /// The Cloud API senders.
        sessions: Vec<SessionId>,
    },
    /// An attachment, and senders that send text only (native sessions).
    #[error(
        "sessions {} cannot send attachments yet (native driver): send text, or choose other senders",
        .sessions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    MediaNotSupported {
        /// The senders that send text only.
        sessions: Vec<SessionId>,
    },
    /// A WhatsApp template, and no Cloud API sender to send it.
    #[error("a whatsapp_template is sent by Cloud API senders only, and the campaign has none")]
    TemplateWithoutCloudSender,
    /// Completion counts that do not add up to the recipients.
    #[error("{counted} messages counted, but the campaign has {recipients} recipients")]
    CountsMismatch {
        /// sent + failed + cancelled.
        counted: u64,
        /// The recipients frozen at start.
        recipients: u64,
    },
}

impl CampaignError {
    /// The stable API code of this refusal (the REST contract's error codes).
    pub fn code(&self) -> RefusalCode {
        match self {
            Self::AlreadyCreated => RefusalCode::Conflict,
            Self::NotFound | Self::UnknownSender(_) => RefusalCode::NotFound,
            Self::InvalidName { .. }
            | Self::NoSenders
            | Self::DuplicateSender(_)
            | Self::UnknownVariables { .. }
            | Self::ScheduleInPast { .. }
            | Self::NoRecipients
            | Self::SkipsNone
            | Self::ReservationMismatch { .. }
            | Self::AutoPauseByHand
            | Self::CountsMismatch { .. } => RefusalCode::ValidationFailed,
            Self::InvalidState { .. } | Self::BackingOff { .. } => RefusalCode::InvalidState,
            Self::RecipientCapExceeded { .. } => RefusalCode::RecipientCapExceeded,
            Self::TemplateVariablesMissing { .. } => RefusalCode::TemplateVariablesMissing,
            Self::NoActiveSenders => RefusalCode::SessionNotReady,
            Self::DailyLimitReached => RefusalCode::DailyLimitReached,
            Self::TemplateRequired { .. } => RefusalCode::TemplateRequired,
            Self::TemplateWithoutCloudSender => RefusalCode::TemplateNotSupported,
            Self::MediaNotSupported { .. } => RefusalCode::MediaNotSupported,
        }
    }
}
