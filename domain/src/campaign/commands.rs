//! What can be asked of a campaign.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::events::{PauseReason, SenderUnavailableReason, StartRefusal};
use crate::types::template::Template;
use crate::types::whatsapp_template::CampaignTemplate;
use crate::types::{
    CampaignId, ContactListId, EngagementGuard, MediaId, Points, SendSignals, SessionId, Throttle,
};

/// A command to the campaign aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CampaignCommand {
    /// Creates a draft campaign. Refused when the name is empty or longer
    /// than 120 characters (after trimming), when there is no sender or a
    /// sender appears twice, when `scheduled_at` is not in the future, or
    /// when the template uses a variable that is neither a list column nor
    /// `name`/`phone` (compared case-insensitively), or when some contact
    /// has no value for a variable the template uses without fallback.
    CreateCampaign {
        /// The campaign's id.
        campaign_id: CampaignId,
        /// Its name, trimmed: 1..=120 characters.
        name: String,
        /// The contact list it is sent to.
        contact_list_id: ContactListId,
        /// The message template.
        template: Template,
        /// An attachment sent with every message.
        media_id: Option<MediaId>,
        /// The WhatsApp template its Cloud API senders send (they cannot
        /// start conversations with free text); its parameters rendered
        /// per recipient like `template`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        whatsapp_template: Option<Box<CampaignTemplate>>,
        /// Which of the senders are Cloud API sessions (looked up by the
        /// caller): with any, a `whatsapp_template` is required; without,
        /// it is refused.
        #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
        cloud_senders: BTreeSet<SessionId>,
        /// Which of the senders cannot send an attachment (native
        /// sessions, looked up by the caller): with any, a `media_id` is
        /// refused rather than failing every message at its send. Boxed:
        /// the command stays small.
        #[serde(default)]
        text_only_senders: Box<BTreeSet<SessionId>>,
        /// The sessions that send it, in rotation (at least one, no
        /// duplicate).
        sender_session_ids: Vec<SessionId>,
        /// The pause between two sends of one session.
        throttle: Throttle,
        /// When to start it, if it is to start by itself. Stored in the
        /// draft; the campaign becomes `scheduled` through
        /// [`CampaignCommand::ScheduleCampaign`].
        scheduled_at: Option<DateTime<Utc>>,
        /// The columns of the contact list: with `name` and `phone`, the
        /// only variables the template may use.
        list_columns: BTreeSet<String>,
        /// How many of the list's contacts have no value (none, or a blank
        /// one) for each variable the template uses, keyed as the list
        /// spells it (see [`Campaign::template_variables`]).
        ///
        /// [`Campaign::template_variables`]: super::Campaign::template_variables
        #[serde(default)]
        missing_values: BTreeMap<String, u64>,
        /// Whether it leaves out the contacts a check found not on
        /// WhatsApp.
        #[serde(default)]
        skip_not_on_whatsapp: bool,
        /// Leave out, when it starts, the contacts the tenant sent this
        /// many messages or more who never replied (0: off).
        #[serde(default)]
        skip_unanswered_after: EngagementGuard,
        /// When it was asked.
        at: DateTime<Utc>,
    },
    /// Opens the direct campaign of one session's single sends on one
    /// local day: running from the start, that session its only sender.
    /// Opening it again is answered with success and no event.
    OpenDirect {
        /// Its id: [`direct_campaign_id`](super::direct_campaign_id) of the
        /// session and day.
        campaign_id: CampaignId,
        /// The session whose single sends it holds.
        session_id: SessionId,
        /// The local day (tenant time zone) it holds the single sends of.
        day: NaiveDate,
        /// The pause between two of its sends.
        throttle: Throttle,
        /// When.
        at: DateTime<Utc>,
    },
    /// Schedules a draft (or reschedules a scheduled) campaign to start at
    /// `at_time`, which must be in the future.
    ScheduleCampaign {
        /// When it should start.
        at_time: DateTime<Utc>,
        /// When it was asked.
        at: DateTime<Utc>,
    },
    /// Starts a draft or scheduled campaign (a scheduled one may start
    /// before its time by hand). The caller reserved `points_reserved` in
    /// the wallet first; if the start is refused it gives them back with
    /// `WalletCommand::CancelReservation`. A start repeated with the figures
    /// the campaign started with succeeds and records nothing. Refused, as
    /// at creation, when some recipient has no value for a variable the
    /// template uses without fallback.
    StartCampaign {
        /// How many recipients the campaign has (frozen from here).
        recipients: u64,
        /// How many recipients have no value for each variable the
        /// template uses, as at creation (the list may have changed since).
        #[serde(default)]
        missing_values: BTreeMap<String, u64>,
        /// The tenant's plan cap on recipients per campaign.
        plan_max_recipients: u64,
        /// What the wallet reserved: must be `recipients × 2`.
        points_reserved: Points,
        /// How many messages its senders may still send today, together
        /// (each sender's daily limit less what it sent), when known: none
        /// left refuses the start.
        #[serde(default)]
        sendable_today: Option<u64>,
        /// The list's contacts left out, a check having found them not on
        /// WhatsApp (a campaign that skips none: 0).
        #[serde(default)]
        skipped_not_on_whatsapp: u64,
        /// The list's contacts left out as sent the campaign's
        /// `skip_unanswered_after` messages or more without ever replying
        /// (a campaign whose guard is off: 0).
        #[serde(default)]
        skipped_never_replied: u64,
        /// When it was asked.
        at: DateTime<Utc>,
    },
    /// Pauses a running campaign. Pausing a paused campaign changes
    /// nothing, except that a manual pause takes over any other reason.
    /// [`PauseReason::AutoConsecutiveFailures`] is refused here: auto-pauses
    /// come from [`CampaignCommand::ReportConsecutiveFailures`], which sets
    /// their back-off.
    PauseCampaign {
        /// Why.
        reason: PauseReason,
        /// When it was asked.
        at: DateTime<Utc>,
    },
    /// Resumes a paused campaign (a running one: nothing changes). Refused
    /// before an auto-pause's back-off has passed, and when no sender is
    /// left.
    ResumeCampaign {
        /// When it was asked.
        at: DateTime<Utc>,
    },
    /// The engine reports consecutive failed sends on one of the campaign's
    /// senders. From [`Campaign::AUTO_PAUSE_THRESHOLD`] failures on, a
    /// running campaign auto-pauses with a back-off; otherwise nothing is
    /// recorded.
    ///
    /// [`Campaign::AUTO_PAUSE_THRESHOLD`]: super::Campaign::AUTO_PAUSE_THRESHOLD
    ReportConsecutiveFailures {
        /// The sender that failed.
        session_id: SessionId,
        /// How many sends failed in a row.
        failures: u32,
        /// When it was reported.
        at: DateTime<Utc>,
    },
    /// The engine reports a sender's last outcomes for the campaign (at
    /// most [`SendSignals::WINDOW`]). A running or paused campaign slows
    /// down when they show failures climbing (at least 30% failed or
    /// blocked), and takes its own pace again once the sender that slowed
    /// it (or, that one gone, any) shows under 10%; otherwise nothing is
    /// recorded.
    ReportSendSignals {
        /// The sender.
        session_id: SessionId,
        /// Its last outcomes, counted.
        signals: SendSignals,
        /// When it was reported.
        at: DateTime<Utc>,
    },
    /// One of the campaign's senders can no longer send (banned, logged
    /// out, deleted): it leaves the rotation for good. A running or paused
    /// campaign with no sender left pauses, saying why.
    ReportSenderUnavailable {
        /// The sender.
        session_id: SessionId,
        /// Why it is gone.
        reason: SenderUnavailableReason,
        /// When it was reported.
        at: DateTime<Utc>,
    },
    /// Records that a scheduled campaign could not start at its time (the
    /// wallet or the campaign refused): it goes back to draft, saying why,
    /// to be fixed and started or scheduled again. Issued by the scheduled
    /// starts; refused unless the campaign is scheduled.
    RefuseScheduledStart {
        /// Why it could not start.
        refusal: StartRefusal,
        /// When.
        at: DateTime<Utc>,
    },
    /// Cancels a campaign that is not finished (cancelling a cancelled one
    /// changes nothing).
    CancelCampaign {
        /// When it was asked.
        at: DateTime<Utc>,
    },
    /// Completes a running or paused campaign. Issued by a process manager
    /// once every message is final; the counts must add up to the
    /// recipients (a direct campaign's recipients are what they add up
    /// to).
    CompleteCampaign {
        /// Messages sent (sent, delivered or read): they cost points.
        sent: u64,
        /// Messages that failed, or whose outcome stayed unknown: free.
        failed: u64,
        /// Messages cancelled: free.
        cancelled: u64,
        /// When it was asked.
        at: DateTime<Utc>,
    },
}
