//! The campaign aggregate: decisions in `handle`, assignments in `apply`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::commands::CampaignCommand;
use super::error::CampaignError;
use super::events::{CampaignEvent, PauseReason, SenderUnavailableReason, SlowDownReason};
use crate::types::template::Template;
use crate::types::whatsapp_template::CampaignTemplate;
use crate::types::{
    CampaignId, ContactListId, EngagementGuard, MediaId, Points, SendSignals, SessionId, Throttle,
};

/// Where a campaign is in its lifecycle (as the API
/// names it: `draft`, `scheduled`,
/// `running`, `paused`, `completed`, `cancelled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    /// Created, not scheduled, not started.
    Draft,
    /// Waiting for its start time.
    Scheduled,
    /// Sending.
    Running,
    /// Sending stopped for a reason; it may resume.
    Paused,
    /// Every message is final. Terminal.
    Completed,
    /// Cancelled. Terminal.
    Cancelled,
}

impl CampaignStatus {
    /// The status as the API spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Scheduled => "scheduled",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for CampaignStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a campaign is: a broadcast to a contact list, or the single sends
/// of one session on one local day (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CampaignKind {
    /// A template sent to a contact list.
    #[default]
    Broadcast,
    /// One session's single sends on one local day.
    Direct {
        /// The session.
        session_id: SessionId,
        /// The local day.
        day: NaiveDate,
    },
}

impl CampaignKind {
    /// The kind as the read side names it: `broadcast` or `direct`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Broadcast => "broadcast",
            Self::Direct { .. } => "direct",
        }
    }
}

/// A sender that left the rotation, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedSender {
    /// The sender.
    pub session_id: SessionId,
    /// Why it can no longer send.
    pub reason: SenderUnavailableReason,
}

/// A campaign slowed down, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlowDown {
    /// Why.
    pub reason: SlowDownReason,
    /// The sender whose outcomes slowed it.
    pub session_id: SessionId,
    /// The pause it keeps meanwhile.
    pub throttle: Throttle,
    /// Since when.
    pub since: DateTime<Utc>,
}

/// One broadcast: its definition, its lifecycle, and the recipients and
/// points frozen at its start. No per-message state (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    id: Option<CampaignId>,
    #[serde(default)]
    kind: CampaignKind,
    status: Option<CampaignStatus>,
    name: String,
    contact_list_id: Option<ContactListId>,
    template: Option<Template>,
    media_id: Option<MediaId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    whatsapp_template: Option<CampaignTemplate>,
    all_senders: Vec<SessionId>,
    senders: Vec<SessionId>,
    removed_senders: Vec<RemovedSender>,
    throttle: Throttle,
    scheduled_at: Option<DateTime<Utc>>,
    #[serde(default)]
    skip_not_on_whatsapp: bool,
    recipients: u64,
    #[serde(default)]
    skipped_not_on_whatsapp: u64,
    #[serde(default = "EngagementGuard::off")]
    skip_unanswered_after: EngagementGuard,
    #[serde(default)]
    skipped_never_replied: u64,
    #[serde(default)]
    slow_down: Option<SlowDown>,
    points_reserved: Points,
    pause_reason: Option<PauseReason>,
    auto_pauses: u32,
    resume_at: Option<DateTime<Utc>>,
}

impl Campaign {
    /// Consecutive failures from which a running campaign auto-pauses.
    pub const AUTO_PAUSE_THRESHOLD: u32 = 3;
    /// The longest name, in characters.
    pub const MAX_NAME_CHARS: usize = 120;
    /// Template variables every recipient has, whatever the list's columns.
    pub const BUILT_IN_VARIABLES: [&'static str; 2] = ["name", "phone"];

    /// How long the `pause_number`-th auto-pause of a campaign lasts:
    /// 30 s, 60 s, then 120 s for the third and every later one.
    pub fn auto_pause_backoff(pause_number: u32) -> TimeDelta {
        match pause_number {
            0 | 1 => TimeDelta::seconds(30),
            2 => TimeDelta::seconds(60),
            _ => TimeDelta::seconds(120),
        }
    }

    /// The campaign's id; `None` until created.
    pub fn id(&self) -> Option<CampaignId> {
        self.id
    }

    /// A broadcast, or one session's single sends of one day.
    pub fn kind(&self) -> CampaignKind {
        self.kind
    }

    /// The campaign's status; `None` until created.
    pub fn status(&self) -> Option<CampaignStatus> {
        self.status
    }

    /// Whether it is sending (the send allowance's "campaign is running").
    pub fn is_running(&self) -> bool {
        self.status == Some(CampaignStatus::Running)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The contact list it is sent to.
    pub fn contact_list_id(&self) -> Option<ContactListId> {
        self.contact_list_id
    }

    /// The message template; `None` until created.
    pub fn template(&self) -> Option<&Template> {
        self.template.as_ref()
    }

    /// The attachment sent with every message.
    pub fn media_id(&self) -> Option<MediaId> {
        self.media_id
    }

    /// The WhatsApp template its Cloud API senders send.
    pub fn whatsapp_template(&self) -> Option<&CampaignTemplate> {
        self.whatsapp_template.as_ref()
    }

    /// The senders still in rotation, in their original order.
    pub fn senders(&self) -> &[SessionId] {
        &self.senders
    }

    /// The senders that left the rotation, and why.
    pub fn removed_senders(&self) -> &[RemovedSender] {
        &self.removed_senders
    }

    /// The pause between two sends of one session.
    pub fn throttle(&self) -> Throttle {
        self.throttle
    }

    /// When it is meant to start by itself.
    pub fn scheduled_at(&self) -> Option<DateTime<Utc>> {
        self.scheduled_at
    }

    /// Its recipients, frozen at start (0 before).
    pub fn recipients(&self) -> u64 {
        self.recipients
    }

    /// Whether it leaves out the contacts a check found not on WhatsApp.
    pub fn skips_not_on_whatsapp(&self) -> bool {
        self.skip_not_on_whatsapp
    }

    /// The list's contacts it left out at its start, a check having found
    /// them not on WhatsApp.
    pub fn skipped_not_on_whatsapp(&self) -> u64 {
        self.skipped_not_on_whatsapp
    }

    /// The engagement guard: messages the tenant sent a contact who never
    /// replied from which its start leaves the contact out.
    pub fn skip_unanswered_after(&self) -> EngagementGuard {
        self.skip_unanswered_after
    }

    /// The list's contacts it left out at its start as sent too many
    /// messages without ever replying.
    pub fn skipped_never_replied(&self) -> u64 {
        self.skipped_never_replied
    }

    /// Whether, and why, it is slowed down.
    pub fn slow_down(&self) -> Option<&SlowDown> {
        self.slow_down.as_ref()
    }

    /// The pause between two sends of a session whose own pace is `own`
    /// (a broadcast's throttle, or a single send's session's): slowed while
    /// the campaign is slowed down.
    pub fn paced(&self, own: Throttle) -> Throttle {
        if self.slow_down.is_some() {
            own.slowed()
        } else {
            own
        }
    }

    /// What a sender's `signals` would record now
    /// ([`CampaignCommand::ReportSendSignals`]): the slow-down, the speed
    /// restored, or nothing. The engine asks before it reports, so that a
    /// sender whose sends go well costs the campaign no command.
    pub fn pace_change(
        &self,
        session_id: SessionId,
        signals: SendSignals,
        at: DateTime<Utc>,
    ) -> Option<CampaignEvent> {
        if !matches!(
            self.status,
            Some(CampaignStatus::Running | CampaignStatus::Paused)
        ) {
            return None;
        }
        match &self.slow_down {
            None if signals.climbing() => Some(CampaignEvent::CampaignSlowedDown {
                session_id,
                reason: SlowDownReason::FailuresClimbing,
                signals,
                throttle: self.throttle.slowed(),
                at,
            }),
            // The sender that slowed it is calm again; or, gone from the
            // rotation, any other that is calm speaks for the campaign.
            Some(slow)
                if signals.calm()
                    && (slow.session_id == session_id
                        || !self.senders.contains(&slow.session_id)) =>
            {
                Some(CampaignEvent::CampaignSpeedRestored {
                    session_id,
                    signals,
                    throttle: self.throttle,
                    at,
                })
            }
            _ => None,
        }
    }

    /// The points reserved at start (zero before).
    pub fn points_reserved(&self) -> Points {
        self.points_reserved
    }

    /// Why it is paused, while it is.
    pub fn pause_reason(&self) -> Option<&PauseReason> {
        self.pause_reason.as_ref()
    }

    /// How many times it auto-paused after consecutive failures.
    pub fn auto_pauses(&self) -> u32 {
        self.auto_pauses
    }

    /// The earliest instant a resume is allowed, while an auto-pause's
    /// back-off holds it (kept through a manual re-pause; cleared by the
    /// resume).
    pub fn resume_at(&self) -> Option<DateTime<Utc>> {
        self.resume_at
    }

    /// The variables a recipient of a list with `list_columns` needs values
    /// for to receive `template`: those it uses, as the list (or the
    /// built-ins `name` and `phone`) spell them. The facts a create or a
    /// start takes as `missing_values` are counted for these.
    pub fn template_variables(
        template: &Template,
        list_columns: impl IntoIterator<Item = String>,
    ) -> BTreeSet<String> {
        let mut known: BTreeSet<String> = list_columns.into_iter().collect();
        known.extend(Self::BUILT_IN_VARIABLES.map(str::to_owned));
        template.known_variables(&known)
    }

    /// A recipient's values for the template, as the send renders it: its
    /// list columns, with the built-ins over them (`name` when it has one,
    /// `phone` always).
    pub fn template_values(
        phone: &str,
        name: Option<&str>,
        columns: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut values = columns.clone();
        if let Some(name) = name {
            values.insert("name".to_owned(), name.to_owned());
        }
        values.insert("phone".to_owned(), phone.to_owned());
        values
    }

    /// The variables `template` uses that a list with `list_columns` does
    /// not have (nor are they `name` or `phone`), compared
    /// case-insensitively: a campaign with any is refused.
    pub fn unknown_template_variables(
        template: &Template,
        list_columns: impl IntoIterator<Item = String>,
    ) -> BTreeSet<String> {
        let mut known: BTreeSet<String> = list_columns.into_iter().collect();
        known.extend(Self::BUILT_IN_VARIABLES.map(str::to_owned));
        template.unknown_variables(&known)
    }

    /// Refuses a template some recipients could not receive: a variable
    /// used without fallback that some of them have no value for.
    fn ensure_renderable(
        template: &Template,
        missing_values: &BTreeMap<String, u64>,
    ) -> Result<(), CampaignError> {
        let missing = template.unfilled(missing_values);
        if missing.is_empty() {
            Ok(())
        } else {
            Err(CampaignError::TemplateVariablesMissing { missing })
        }
    }

    fn current(&self) -> Result<CampaignStatus, CampaignError> {
        self.status.ok_or(CampaignError::NotFound)
    }

    fn ensure_sender(&self, session_id: SessionId) -> Result<(), CampaignError> {
        if self.all_senders.contains(&session_id) {
            Ok(())
        } else {
            Err(CampaignError::UnknownSender(session_id))
        }
    }

    /// Decides what a command means in the current state: the events to
    /// record (possibly none), or a refusal.
    fn decide(&self, command: CampaignCommand) -> Result<Vec<CampaignEvent>, CampaignError> {
        use CampaignStatus as S;
        match command {
            CampaignCommand::CreateCampaign {
                campaign_id,
                name,
                contact_list_id,
                template,
                media_id,
                whatsapp_template,
                cloud_senders,
                text_only_senders,
                sender_session_ids,
                throttle,
                scheduled_at,
                list_columns,
                missing_values,
                skip_not_on_whatsapp,
                skip_unanswered_after,
                at,
            } => {
                if self.status.is_some() {
                    return Err(CampaignError::AlreadyCreated);
                }
                let name = name.trim();
                let chars = name.chars().count();
                if !(1..=Self::MAX_NAME_CHARS).contains(&chars) {
                    return Err(CampaignError::InvalidName { chars });
                }
                if sender_session_ids.is_empty() {
                    return Err(CampaignError::NoSenders);
                }
                let mut seen = BTreeSet::new();
                for session_id in &sender_session_ids {
                    if !seen.insert(*session_id) {
                        return Err(CampaignError::DuplicateSender(*session_id));
                    }
                }
                if let Some(at_time) = scheduled_at.filter(|t| *t <= at) {
                    return Err(CampaignError::ScheduleInPast { at_time });
                }
                let unknown = Self::unknown_template_variables(&template, list_columns.clone());
                if !unknown.is_empty() {
                    return Err(CampaignError::UnknownVariables {
                        names: unknown.into_iter().collect(),
                    });
                }
                Self::ensure_renderable(&template, &missing_values)?;
                let text_only: Vec<SessionId> = sender_session_ids
                    .iter()
                    .filter(|s| text_only_senders.contains(s))
                    .copied()
                    .collect();
                if media_id.is_some() && !text_only.is_empty() {
                    return Err(CampaignError::MediaNotSupported {
                        sessions: text_only,
                    });
                }
                let cloud: Vec<SessionId> = sender_session_ids
                    .iter()
                    .filter(|s| cloud_senders.contains(s))
                    .copied()
                    .collect();
                match (&whatsapp_template, cloud.is_empty()) {
                    (None, false) => {
                        return Err(CampaignError::TemplateRequired { sessions: cloud });
                    }
                    (Some(_), true) => return Err(CampaignError::TemplateWithoutCloudSender),
                    _ => {}
                }
                if let Some(whatsapp) = &whatsapp_template {
                    for parameter in whatsapp.all_parameters() {
                        let unknown =
                            Self::unknown_template_variables(parameter, list_columns.clone());
                        if !unknown.is_empty() {
                            return Err(CampaignError::UnknownVariables {
                                names: unknown.into_iter().collect(),
                            });
                        }
                        Self::ensure_renderable(parameter, &missing_values)?;
                    }
                }
                Ok(vec![CampaignEvent::CampaignCreated {
                    campaign_id,
                    name: name.to_owned(),
                    contact_list_id,
                    template,
                    media_id,
                    whatsapp_template,
                    sender_session_ids,
                    throttle,
                    scheduled_at,
                    skip_not_on_whatsapp,
                    skip_unanswered_after,
                    at,
                }])
            }

            CampaignCommand::OpenDirect {
                campaign_id,
                session_id,
                day,
                throttle,
                at,
            } => {
                if self.status.is_some() {
                    return match self.kind {
                        CampaignKind::Direct {
                            session_id: s,
                            day: d,
                        } if s == session_id && d == day => Ok(vec![]),
                        _ => Err(CampaignError::AlreadyCreated),
                    };
                }
                Ok(vec![CampaignEvent::DirectCampaignOpened {
                    campaign_id,
                    session_id,
                    day,
                    throttle,
                    at,
                }])
            }

            CampaignCommand::ScheduleCampaign { at_time, at } => match self.current()? {
                S::Draft | S::Scheduled if at_time > at => {
                    Ok(vec![CampaignEvent::CampaignScheduled { at_time, at }])
                }
                S::Draft | S::Scheduled => Err(CampaignError::ScheduleInPast { at_time }),
                status => Err(CampaignError::InvalidState {
                    action: "schedule",
                    status,
                }),
            },

            CampaignCommand::StartCampaign {
                recipients,
                missing_values,
                plan_max_recipients,
                points_reserved,
                sendable_today,
                skipped_not_on_whatsapp,
                skipped_never_replied,
                at,
            } => {
                let status = self.current()?;
                // A retried start (a double click, a lost response) of a
                // campaign that started with these very figures is answered
                // as the first one was: the caller must not take it as a
                // refusal and give the reservation back.
                if matches!(status, S::Running | S::Paused)
                    && recipients == self.recipients
                    && points_reserved == self.points_reserved
                {
                    return Ok(Vec::new());
                }
                if !matches!(status, S::Draft | S::Scheduled) {
                    return Err(CampaignError::InvalidState {
                        action: "start",
                        status,
                    });
                }
                if self.senders.is_empty() {
                    return Err(CampaignError::NoActiveSenders);
                }
                if (skipped_not_on_whatsapp > 0 && !self.skip_not_on_whatsapp)
                    || (skipped_never_replied > 0 && self.skip_unanswered_after.after().is_none())
                {
                    return Err(CampaignError::SkipsNone);
                }
                if recipients == 0 {
                    return Err(CampaignError::NoRecipients);
                }
                if let Some(template) = &self.template {
                    Self::ensure_renderable(template, &missing_values)?;
                }
                // Beyond u64::MAX / 2 recipients the price no longer fits in
                // Points: no plan can allow that many.
                let cap = plan_max_recipients.min(u64::MAX / Points::PER_MESSAGE.value());
                let required = match Points::for_messages(recipients) {
                    Some(required) if recipients <= cap => required,
                    _ => return Err(CampaignError::RecipientCapExceeded { recipients, cap }),
                };
                if points_reserved != required {
                    return Err(CampaignError::ReservationMismatch {
                        required,
                        reserved: points_reserved,
                    });
                }
                if sendable_today == Some(0) {
                    // Nothing could go out before tomorrow: said now, not
                    // after a start that sends nothing.
                    return Err(CampaignError::DailyLimitReached);
                }
                Ok(vec![CampaignEvent::CampaignStarted {
                    recipients,
                    points_reserved,
                    skipped_not_on_whatsapp,
                    skipped_never_replied,
                    at,
                }])
            }

            CampaignCommand::PauseCampaign { reason, at } => {
                let status = self.current()?;
                if matches!(reason, PauseReason::AutoConsecutiveFailures { .. }) {
                    return Err(CampaignError::AutoPauseByHand);
                }
                match status {
                    S::Running => Ok(vec![CampaignEvent::CampaignPaused { reason, at }]),
                    // A user's pause takes over any other reason, so that
                    // whatever resumes automatic pauses leaves it alone.
                    S::Paused
                        if reason == PauseReason::Manual
                            && self.pause_reason != Some(PauseReason::Manual) =>
                    {
                        Ok(vec![CampaignEvent::CampaignPaused { reason, at }])
                    }
                    S::Paused => Ok(vec![]),
                    status => Err(CampaignError::InvalidState {
                        action: "pause",
                        status,
                    }),
                }
            }

            CampaignCommand::ResumeCampaign { at } => match self.current()? {
                S::Running => Ok(vec![]),
                S::Paused => {
                    if self.senders.is_empty() {
                        return Err(CampaignError::NoActiveSenders);
                    }
                    if let Some(retry_at) = self.resume_at.filter(|t| at < *t) {
                        return Err(CampaignError::BackingOff { retry_at });
                    }
                    Ok(vec![CampaignEvent::CampaignResumed { at }])
                }
                status => Err(CampaignError::InvalidState {
                    action: "resume",
                    status,
                }),
            },

            CampaignCommand::ReportConsecutiveFailures {
                session_id,
                failures,
                at,
            } => {
                let status = self.current()?;
                self.ensure_sender(session_id)?;
                // Failures reported while not running (already paused by
                // another sender, finished) are facts with nothing to decide.
                if status != S::Running || failures < Self::AUTO_PAUSE_THRESHOLD {
                    return Ok(vec![]);
                }
                let pause_number = self.auto_pauses.saturating_add(1);
                Ok(vec![CampaignEvent::CampaignAutoPaused {
                    session_id,
                    failures,
                    pause_number,
                    resume_at: at + Self::auto_pause_backoff(pause_number),
                    at,
                }])
            }

            CampaignCommand::ReportSendSignals {
                session_id,
                signals,
                at,
            } => {
                self.current()?;
                self.ensure_sender(session_id)?;
                Ok(self
                    .pace_change(session_id, signals, at)
                    .into_iter()
                    .collect())
            }

            CampaignCommand::ReportSenderUnavailable {
                session_id,
                reason,
                at,
            } => {
                let status = self.current()?;
                self.ensure_sender(session_id)?;
                if matches!(status, S::Completed | S::Cancelled)
                    || !self.senders.contains(&session_id)
                {
                    return Ok(vec![]);
                }
                let remaining_senders: Vec<SessionId> = self
                    .senders
                    .iter()
                    .copied()
                    .filter(|s| *s != session_id)
                    .collect();
                let stranded = remaining_senders.is_empty();
                let mut events = vec![CampaignEvent::CampaignSenderRemoved {
                    session_id,
                    reason,
                    remaining_senders,
                    at,
                }];
                // A paused campaign takes this reason too: it can no longer
                // resume, and the user must see why.
                if stranded && matches!(status, S::Running | S::Paused) {
                    events.push(CampaignEvent::CampaignPaused {
                        reason: PauseReason::SenderUnavailable {
                            session_id,
                            why: reason,
                        },
                        at,
                    });
                }
                Ok(events)
            }

            CampaignCommand::RefuseScheduledStart { refusal, at } => match self.current()? {
                S::Scheduled => Ok(vec![CampaignEvent::ScheduledStartRefused { refusal, at }]),
                status => Err(CampaignError::InvalidState {
                    action: "refuse the scheduled start of",
                    status,
                }),
            },

            CampaignCommand::CancelCampaign { at } => match self.current()? {
                S::Draft | S::Scheduled | S::Running | S::Paused => {
                    Ok(vec![CampaignEvent::CampaignCancelled {
                        points_reserved: self.points_reserved,
                        at,
                    }])
                }
                S::Cancelled => Ok(vec![]),
                status => Err(CampaignError::InvalidState {
                    action: "cancel",
                    status,
                }),
            },

            CampaignCommand::CompleteCampaign {
                sent,
                failed,
                cancelled,
                at,
            } => {
                let status = self.current()?;
                if !matches!(status, S::Running | S::Paused) {
                    return Err(CampaignError::InvalidState {
                        action: "complete",
                        status,
                    });
                }
                let counted = sent
                    .checked_add(failed)
                    .and_then(|n| n.checked_add(cancelled))
                    .unwrap_or(u64::MAX);
                // A direct campaign's recipients are the messages it was
                // given, counted now.
                if self.kind == CampaignKind::Broadcast && counted != self.recipients {
                    return Err(CampaignError::CountsMismatch {
                        counted,
                        recipients: self.recipients,
                    });
                }
                // sent <= recipients, whose price was checked at start (a
                // direct campaign's in its blocks).
                let points_spent = Points::for_messages(sent).unwrap_or(self.points_reserved);
                Ok(vec![CampaignEvent::CampaignCompleted {
                    sent,
                    failed,
                    cancelled,
                    points_reserved: self.points_reserved,
                    points_spent,
                    at,
                }])
            }
        }
    }
}

impl Aggregate for Campaign {
    const TYPE: &'static str = "campaign";
    type Command = CampaignCommand;
    type Event = CampaignEvent;
    type Error = CampaignError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            CampaignEvent::CampaignCreated {
                campaign_id,
                name,
                contact_list_id,
                template,
                media_id,
                whatsapp_template,
                sender_session_ids,
                throttle,
                scheduled_at,
                skip_not_on_whatsapp,
                skip_unanswered_after,
                at: _,
            } => {
                self.id = Some(campaign_id);
                self.skip_not_on_whatsapp = skip_not_on_whatsapp;
                self.skip_unanswered_after = skip_unanswered_after;
                self.status = Some(CampaignStatus::Draft);
                self.name = name;
                self.contact_list_id = Some(contact_list_id);
                self.template = Some(template);
                self.media_id = media_id;
                self.whatsapp_template = whatsapp_template.map(|t| *t);
                self.all_senders = sender_session_ids.clone();
                self.senders = sender_session_ids;
                self.throttle = throttle;
                self.scheduled_at = scheduled_at;
            }
            CampaignEvent::DirectCampaignOpened {
                campaign_id,
                session_id,
                day,
                throttle,
                at: _,
            } => {
                self.id = Some(campaign_id);
                self.kind = CampaignKind::Direct { session_id, day };
                self.status = Some(CampaignStatus::Running);
                self.name = format!("direct {day}");
                self.all_senders = vec![session_id];
                self.senders = vec![session_id];
                self.throttle = throttle;
            }
            CampaignEvent::CampaignScheduled { at_time, at: _ } => {
                self.status = Some(CampaignStatus::Scheduled);
                self.scheduled_at = Some(at_time);
            }
            CampaignEvent::ScheduledStartRefused { refusal: _, at: _ } => {
                self.status = Some(CampaignStatus::Draft);
                self.scheduled_at = None;
            }
            CampaignEvent::CampaignStarted {
                recipients,
                points_reserved,
                skipped_not_on_whatsapp,
                skipped_never_replied,
                at: _,
            } => {
                self.status = Some(CampaignStatus::Running);
                self.recipients = recipients;
                self.skipped_not_on_whatsapp = skipped_not_on_whatsapp;
                self.skipped_never_replied = skipped_never_replied;
                self.points_reserved = points_reserved;
            }
            CampaignEvent::CampaignPaused { reason, at: _ } => {
                self.status = Some(CampaignStatus::Paused);
                self.pause_reason = Some(reason);
            }
            CampaignEvent::CampaignAutoPaused {
                session_id: _,
                failures,
                pause_number,
                resume_at,
                at: _,
            } => {
                self.status = Some(CampaignStatus::Paused);
                self.pause_reason = Some(PauseReason::AutoConsecutiveFailures { failures });
                self.auto_pauses = pause_number;
                self.resume_at = Some(resume_at);
            }
            CampaignEvent::CampaignSlowedDown {
                session_id,
                reason,
                throttle,
                at,
                ..
            } => {
                self.slow_down = Some(SlowDown {
                    reason,
                    session_id,
                    throttle,
                    since: at,
                });
            }
            CampaignEvent::CampaignSpeedRestored { .. } => {
                self.slow_down = None;
            }
            CampaignEvent::CampaignResumed { at: _ } => {
                self.status = Some(CampaignStatus::Running);
                self.pause_reason = None;
                self.resume_at = None;
            }
            CampaignEvent::CampaignSenderRemoved {
                session_id,
                reason,
                remaining_senders,
                at: _,
            } => {
                self.senders = remaining_senders;
                self.removed_senders
                    .push(RemovedSender { session_id, reason });
            }
            CampaignEvent::CampaignCancelled { .. } => {
                self.status = Some(CampaignStatus::Cancelled);
                self.pause_reason = None;
                self.resume_at = None;
            }
            CampaignEvent::CampaignCompleted {
                sent,
                failed,
                cancelled,
                ..
            } => {
                if self.kind != CampaignKind::Broadcast {
                    self.recipients = sent.saturating_add(failed).saturating_add(cancelled);
                }
                self.status = Some(CampaignStatus::Completed);
                self.pause_reason = None;
                self.resume_at = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use chrono::{DateTime, TimeDelta, TimeZone, Utc};
    use cqrs_es::test::TestFramework;
    use cqrs_es::{Aggregate, DomainEvent};
    use proptest::prelude::*;
    use uuid::Uuid;

    use super::*;

    type Given = TestFramework<Campaign>;

    fn t(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, 2, 0, 0).unwrap() + TimeDelta::seconds(seconds)
    }

    fn sender(n: u128) -> SessionId {
        SessionId::from_uuid(Uuid::from_u128(n))
    }

    fn campaign_id() -> CampaignId {
        CampaignId::from_uuid(Uuid::from_u128(100))
    }

    fn list_id() -> ContactListId {
        ContactListId::from_uuid(Uuid::from_u128(200))
    }

    fn template() -> Template {
        Template::parse("{Halo|Hai} {{name|Kak}}, pesanan {{order}} untuk {{phone}} siap").unwrap()
    }

    fn columns(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn create() -> CampaignCommand {
        CampaignCommand::CreateCampaign {
            skip_not_on_whatsapp: false,
            skip_unanswered_after: EngagementGuard::DEFAULT,
            campaign_id: campaign_id(),
            name: "  Promo Ramadan  ".to_owned(),
            contact_list_id: list_id(),
            template: template(),
            media_id: None,
            whatsapp_template: None,
            cloud_senders: BTreeSet::new(),
            text_only_senders: Box::default(),
            sender_session_ids: vec![sender(1), sender(2)],
            throttle: Throttle::DEFAULT,
            scheduled_at: None,
            list_columns: columns(&["order", "city"]),
            missing_values: BTreeMap::new(),
            at: t(0),
        }
    }

    fn open_direct() -> CampaignCommand {
        CampaignCommand::OpenDirect {
            campaign_id: campaign_id(),
            session_id: sender(1),
            day: "2025-03-01".parse().unwrap(),
            throttle: Throttle::DEFAULT,
            at: t(0),
        }
    }

    fn direct_opened() -> CampaignEvent {
        CampaignEvent::DirectCampaignOpened {
            campaign_id: campaign_id(),
            session_id: sender(1),
            day: "2025-03-01".parse().unwrap(),
            throttle: Throttle::DEFAULT,
            at: t(0),
        }
    }

    #[test]
    fn a_direct_campaign_opens_running_once_with_its_session_as_sender() {
        Given::with(())
            .given_no_previous_events()
            .when(open_direct())
            .then_expect_events(vec![direct_opened()]);
        Given::with(())
            .given(vec![direct_opened()])
            .when(open_direct())
            .then_expect_events(vec![]);
        Given::with(())
            .given(vec![created()])
            .when(open_direct())
            .then_expect_error(CampaignError::AlreadyCreated);
        let mut campaign = Campaign::default();
        campaign.apply(direct_opened());
        assert!(campaign.is_running());
        assert_eq!(campaign.senders(), &[sender(1)]);
        assert_eq!(
            campaign.kind(),
            CampaignKind::Direct {
                session_id: sender(1),
                day: "2025-03-01".parse().unwrap()
            }
        );
        assert_eq!(campaign.template(), None);
    }

    #[test]
    fn a_direct_campaign_completes_with_the_messages_it_was_given() {
        let complete = CampaignCommand::CompleteCampaign {
            sent: 7,
            failed: 2,
            cancelled: 1,
            at: t(90),
        };
        Given::with(())
            .given(vec![direct_opened()])
            .when(complete.clone())
            .then_expect_events(vec![CampaignEvent::CampaignCompleted {
                sent: 7,
                failed: 2,
                cancelled: 1,
                points_reserved: Points::ZERO,
                points_spent: Points::new(14),
                at: t(90),
            }]);
        let mut campaign = Campaign::default();
        campaign.apply(direct_opened());
        campaign.apply(CampaignEvent::CampaignCompleted {
            sent: 7,
            failed: 2,
            cancelled: 1,
            points_reserved: Points::ZERO,
            points_spent: Points::new(14),
            at: t(90),
        });
        assert_eq!(campaign.recipients(), 10);
    }

    fn created() -> CampaignEvent {
        CampaignEvent::CampaignCreated {
            skip_not_on_whatsapp: false,
            skip_unanswered_after: EngagementGuard::DEFAULT,
            campaign_id: campaign_id(),
            name: "Promo Ramadan".to_owned(),
            contact_list_id: list_id(),
            template: template(),
            media_id: None,
            whatsapp_template: None,
            sender_session_ids: vec![sender(1), sender(2)],
            throttle: Throttle::DEFAULT,
            scheduled_at: None,
            at: t(0),
        }
    }

    fn created_with_one_sender() -> CampaignEvent {
        CampaignEvent::CampaignCreated {
            skip_not_on_whatsapp: false,
            skip_unanswered_after: EngagementGuard::DEFAULT,
            campaign_id: campaign_id(),
            name: "Solo".to_owned(),
            contact_list_id: list_id(),
            template: template(),
            media_id: None,
            whatsapp_template: None,
            sender_session_ids: vec![sender(1)],
            throttle: Throttle::DEFAULT,
            scheduled_at: None,
            at: t(0),
        }
    }

    fn with_create(edit: impl FnOnce(&mut CampaignCommand)) -> CampaignCommand {
        let mut command = create();
        edit(&mut command);
        command
    }

    fn scheduled(at_time: i64) -> CampaignEvent {
        CampaignEvent::CampaignScheduled {
            at_time: t(at_time),
            at: t(1),
        }
    }

    fn started() -> CampaignEvent {
        CampaignEvent::CampaignStarted {
            skipped_not_on_whatsapp: 0,
            skipped_never_replied: 0,
            recipients: 150,
            points_reserved: Points::new(300),
            at: t(10),
        }
    }

    fn start(recipients: u64, points: u64) -> CampaignCommand {
        CampaignCommand::StartCampaign {
            skipped_not_on_whatsapp: 0,
            skipped_never_replied: 0,
            recipients,
            missing_values: BTreeMap::new(),
            plan_max_recipients: 200,
            points_reserved: Points::new(points),
            sendable_today: None,
            at: t(10),
        }
    }

    fn paused(reason: PauseReason) -> CampaignEvent {
        CampaignEvent::CampaignPaused { reason, at: t(20) }
    }

    fn auto_paused(pause_number: u32, at: i64) -> CampaignEvent {
        CampaignEvent::CampaignAutoPaused {
            session_id: sender(1),
            failures: 3,
            pause_number,
            resume_at: t(at) + Campaign::auto_pause_backoff(pause_number),
            at: t(at),
        }
    }

    fn resumed(at: i64) -> CampaignEvent {
        CampaignEvent::CampaignResumed { at: t(at) }
    }

    fn failures(failures: u32, at: i64) -> CampaignCommand {
        CampaignCommand::ReportConsecutiveFailures {
            session_id: sender(1),
            failures,
            at: t(at),
        }
    }

    fn unavailable(n: u128, reason: SenderUnavailableReason) -> CampaignCommand {
        CampaignCommand::ReportSenderUnavailable {
            session_id: sender(n),
            reason,
            at: t(30),
        }
    }

    fn completed() -> CampaignEvent {
        CampaignEvent::CampaignCompleted {
            sent: 140,
            failed: 8,
            cancelled: 2,
            points_reserved: Points::new(300),
            points_spent: Points::new(280),
            at: t(900),
        }
    }

    fn fold(events: Vec<CampaignEvent>) -> Campaign {
        let mut campaign = Campaign::default();
        for event in events {
            campaign.apply(event);
        }
        campaign
    }

    // --- create -----------------------------------------------------------

    #[test]
    fn creates_a_draft_campaign_with_its_name_trimmed() {
        Given::with(())
            .given_no_previous_events()
            .when(create())
            .then_expect_events(vec![created()]);
        let campaign = fold(vec![created()]);
        assert_eq!(campaign.id(), Some(campaign_id()));
        assert_eq!(campaign.status(), Some(CampaignStatus::Draft));
        assert_eq!(campaign.name(), "Promo Ramadan");
        assert_eq!(campaign.contact_list_id(), Some(list_id()));
        assert_eq!(campaign.senders(), &[sender(1), sender(2)]);
        assert_eq!(campaign.template(), Some(&template()));
        assert_eq!(campaign.media_id(), None);
        assert_eq!(campaign.throttle(), Throttle::DEFAULT);
        assert_eq!(campaign.recipients(), 0);
        assert_eq!(campaign.points_reserved(), Points::ZERO);
        assert!(!campaign.is_running());
    }

    #[test]
    fn keeps_the_start_time_given_at_creation_in_the_draft() {
        let command = with_create(|c| {
            if let CampaignCommand::CreateCampaign { scheduled_at, .. } = c {
                *scheduled_at = Some(t(3600));
            }
        });
        let events = Given::with(())
            .given_no_previous_events()
            .when(command)
            .inspect_result()
            .unwrap();
        let campaign = fold(events);
        assert_eq!(campaign.status(), Some(CampaignStatus::Draft));
        assert_eq!(campaign.scheduled_at(), Some(t(3600)));
    }

    #[test]
    fn refuses_to_create_a_campaign_twice() {
        Given::with(())
            .given(vec![created()])
            .when(create())
            .then_expect_error(CampaignError::AlreadyCreated);
    }

    #[test]
    fn refuses_a_name_that_is_blank_once_trimmed() {
        let command = with_create(|c| {
            if let CampaignCommand::CreateCampaign { name, .. } = c {
                *name = "   \t ".to_owned();
            }
        });
        Given::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(CampaignError::InvalidName { chars: 0 });
    }

    #[test]
    fn refuses_a_name_longer_than_120_characters_counting_characters_not_bytes() {
        let command = |n: usize| {
            with_create(|c| {
                if let CampaignCommand::CreateCampaign { name, .. } = c {
                    *name = "é".repeat(n);
                }
            })
        };
        Given::with(())
            .given_no_previous_events()
            .when(command(121))
            .then_expect_error(CampaignError::InvalidName { chars: 121 });
        assert!(
            Given::with(())
                .given_no_previous_events()
                .when(command(120))
                .inspect_result()
                .is_ok()
        );
    }

    #[test]
    fn refuses_a_campaign_without_senders() {
        let command = with_create(|c| {
            if let CampaignCommand::CreateCampaign {
                sender_session_ids, ..
            } = c
            {
                sender_session_ids.clear();
            }
        });
        Given::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(CampaignError::NoSenders);
    }

    #[test]
    fn refuses_cloud_api_senders_without_a_whatsapp_template() {
        let command = with_create(|c| {
            if let CampaignCommand::CreateCampaign { cloud_senders, .. } = c {
                cloud_senders.insert(sender(2));
            }
        });
        Given::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(CampaignError::TemplateRequired {
                sessions: vec![sender(2)],
            });
    }

    #[test]
    fn refuses_an_attachment_from_senders_that_send_text_only() {
        let command = with_create(|c| {
            if let CampaignCommand::CreateCampaign {
                text_only_senders,
                media_id,
                ..
            } = c
            {
                text_only_senders.insert(sender(2));
                *media_id = Some(MediaId::from_uuid(uuid::Uuid::from_u128(9)));
            }
        });
        Given::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(CampaignError::MediaNotSupported {
                sessions: vec![sender(2)],
            });
        let text = with_create(|c| {
            if let CampaignCommand::CreateCampaign {
                text_only_senders, ..
            } = c
            {
                text_only_senders.insert(sender(2));
            }
        });
        assert!(
            Given::with(())
                .given_no_previous_events()
                .when(text)
                .inspect_result()
                .is_ok(),
            "a text from them is fine"
        );
    }

    #[test]
    fn refuses_a_whatsapp_template_without_a_cloud_api_sender() {
        let command = with_create(|c| {
            if let CampaignCommand::CreateCampaign {
                whatsapp_template, ..
            } = c
            {
                *whatsapp_template = Some(Box::new(
                    CampaignTemplate::new("promo", "id", vec![], None).unwrap(),
                ));
            }
        });
        Given::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(CampaignError::TemplateWithoutCloudSender);
    }

    #[test]
    fn a_whatsapp_template_s_parameters_use_only_known_variables() {
        let with_parameter = |parameter: &str| {
            let parameter = Template::parse(parameter).unwrap();
            with_create(move |c| {
                if let CampaignCommand::CreateCampaign {
                    whatsapp_template,
                    cloud_senders,
                    ..
                } = c
                {
                    cloud_senders.insert(sender(1));
                    *whatsapp_template = Some(Box::new(
                        CampaignTemplate::new("promo", "id", vec![parameter], None).unwrap(),
                    ));
                }
            })
        };
        Given::with(())
            .given_no_previous_events()
            .when(with_parameter("{{voucher}}"))
            .then_expect_error(CampaignError::UnknownVariables {
                names: vec!["voucher".to_owned()],
            });
        let created = Given::with(())
            .given_no_previous_events()
            .when(with_parameter("{{name|Kak}}"))
            .inspect_result()
            .unwrap();
        assert!(matches!(
            &created[0],
            CampaignEvent::CampaignCreated { whatsapp_template: Some(t), .. } if t.name == "promo"
        ));
    }

    #[test]
    fn refuses_a_sender_listed_twice() {
        let command = with_create(|c| {
            if let CampaignCommand::CreateCampaign {
                sender_session_ids, ..
            } = c
            {
                *sender_session_ids = vec![sender(1), sender(2), sender(1)];
            }
        });
        Given::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(CampaignError::DuplicateSender(sender(1)));
    }

    #[test]
    fn refuses_template_variables_the_list_does_not_have_naming_them() {
        let command = with_create(|c| {
            if let CampaignCommand::CreateCampaign {
                template,
                list_columns,
                ..
            } = c
            {
                *template =
                    Template::parse("Hi {{name}} {{voucher}} {{city}} {{amount|0}}").unwrap();
                *list_columns = columns(&["city"]);
            }
        });
        Given::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(CampaignError::UnknownVariables {
                names: vec!["amount".to_owned(), "voucher".to_owned()],
            });
    }

    #[test]
    fn accepts_name_and_phone_whatever_the_list_columns() {
        let command = with_create(|c| {
            if let CampaignCommand::CreateCampaign {
                template,
                list_columns,
                ..
            } = c
            {
                *template = Template::parse("Halo {{name|Kak}} ({{phone}})").unwrap();
                list_columns.clear();
            }
        });
        assert!(
            Given::with(())
                .given_no_previous_events()
                .when(command)
                .inspect_result()
                .is_ok()
        );
    }

    fn missing(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
    }

    #[test]
    fn matches_template_variables_to_list_columns_case_insensitively() {
        let command = with_create(|c| {
            if let CampaignCommand::CreateCampaign { template, .. } = c {
                *template =
                    Template::parse("Hi {{Name}}, {{ORDER}} ke {{City}} {{Phone}}").unwrap();
            }
        });
        assert!(
            Given::with(())
                .given_no_previous_events()
                .when(command)
                .inspect_result()
                .is_ok()
        );
        assert_eq!(
            Campaign::template_variables(&template(), columns(&["Order", "city"])),
            columns(&["Order", "name", "phone"])
        );
    }

    #[test]
    fn refuses_a_template_variable_some_contacts_have_no_value_for_counting_them() {
        // `order` has no fallback; `name` has one, so its 4 are fine.
        let command = with_create(|c| {
            if let CampaignCommand::CreateCampaign { missing_values, .. } = c {
                *missing_values = missing(&[("name", 4), ("order", 2), ("phone", 0)]);
            }
        });
        let refusal = CampaignError::TemplateVariablesMissing {
            missing: missing(&[("order", 2)]),
        };
        assert_eq!(refusal.code(), "template_variables_missing");
        assert_eq!(
            refusal.to_string(),
            "some contacts have no value for order (2): give the variable a fallback \
             (`{{name|Kak}}`) or fill the list"
        );
        Given::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(refusal);
    }

    #[test]
    fn accepts_contacts_without_a_value_where_the_template_gives_a_fallback() {
        let command = with_create(|c| {
            if let CampaignCommand::CreateCampaign {
                template,
                missing_values,
                ..
            } = c
            {
                *template = Template::parse("Halo {{Name|Kak}}, {{order|pesanan}} siap").unwrap();
                *missing_values = missing(&[("name", 4), ("order", 7)]);
            }
        });
        Given::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_events(vec![CampaignEvent::CampaignCreated {
                skip_not_on_whatsapp: false,
                skip_unanswered_after: EngagementGuard::DEFAULT,
                campaign_id: campaign_id(),
                name: "Promo Ramadan".to_owned(),
                contact_list_id: list_id(),
                template: Template::parse("Halo {{Name|Kak}}, {{order|pesanan}} siap").unwrap(),
                media_id: None,
                whatsapp_template: None,
                sender_session_ids: vec![sender(1), sender(2)],
                throttle: Throttle::DEFAULT,
                scheduled_at: None,
                at: t(0),
            }]);
    }

    #[test]
    fn refuses_a_start_when_contacts_lack_a_variable_the_template_requires() {
        let start_with = |missing_values| CampaignCommand::StartCampaign {
            skipped_not_on_whatsapp: 0,
            skipped_never_replied: 0,
            recipients: 150,
            missing_values,
            plan_max_recipients: 200,
            points_reserved: Points::new(300),
            sendable_today: None,
            at: t(10),
        };
        // Matched to the template's `{{order}}` whatever the list's case.
        Given::with(())
            .given(vec![created()])
            .when(start_with(missing(&[("ORDER", 150), ("name", 150)])))
            .then_expect_error(CampaignError::TemplateVariablesMissing {
                missing: missing(&[("ORDER", 150)]),
            });
        Given::with(())
            .given(vec![created()])
            .when(start_with(missing(&[("order", 0), ("name", 150)])))
            .then_expect_events(vec![started()]);
    }

    #[test]
    fn refuses_a_start_time_at_creation_that_is_not_in_the_future() {
        let command = with_create(|c| {
            if let CampaignCommand::CreateCampaign { scheduled_at, .. } = c {
                *scheduled_at = Some(t(0));
            }
        });
        Given::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(CampaignError::ScheduleInPast { at_time: t(0) });
    }

    // --- schedule ---------------------------------------------------------

    #[test]
    fn schedules_a_draft_campaign() {
        Given::with(())
            .given(vec![created()])
            .when(CampaignCommand::ScheduleCampaign {
                at_time: t(3600),
                at: t(1),
            })
            .then_expect_events(vec![scheduled(3600)]);
        let campaign = fold(vec![created(), scheduled(3600)]);
        assert_eq!(campaign.status(), Some(CampaignStatus::Scheduled));
        assert_eq!(campaign.scheduled_at(), Some(t(3600)));
    }

    #[test]
    fn reschedules_a_scheduled_campaign() {
        Given::with(())
            .given(vec![created(), scheduled(3600)])
            .when(CampaignCommand::ScheduleCampaign {
                at_time: t(7200),
                at: t(1),
            })
            .then_expect_events(vec![scheduled(7200)]);
    }

    #[test]
    fn refuses_to_schedule_a_start_that_is_not_in_the_future() {
        Given::with(())
            .given(vec![created()])
            .when(CampaignCommand::ScheduleCampaign {
                at_time: t(5),
                at: t(5),
            })
            .then_expect_error(CampaignError::ScheduleInPast { at_time: t(5) });
    }

    #[test]
    fn refuses_to_schedule_a_running_campaign() {
        Given::with(())
            .given(vec![created(), started()])
            .when(CampaignCommand::ScheduleCampaign {
                at_time: t(3600),
                at: t(11),
            })
            .then_expect_error(CampaignError::InvalidState {
                action: "schedule",
                status: CampaignStatus::Running,
            });
    }

    #[test]
    fn refuses_any_command_to_a_campaign_that_does_not_exist() {
        Given::with(())
            .given_no_previous_events()
            .when(CampaignCommand::ScheduleCampaign {
                at_time: t(3600),
                at: t(1),
            })
            .then_expect_error(CampaignError::NotFound);
        Given::with(())
            .given_no_previous_events()
            .when(start(10, 20))
            .then_expect_error(CampaignError::NotFound);
        Given::with(())
            .given_no_previous_events()
            .when(failures(3, 1))
            .then_expect_error(CampaignError::NotFound);
        Given::with(())
            .given_no_previous_events()
            .when(CampaignCommand::CancelCampaign { at: t(1) })
            .then_expect_error(CampaignError::NotFound);
    }

    // --- start ------------------------------------------------------------

    #[test]
    fn starts_a_draft_campaign_recording_recipients_and_the_reservation() {
        Given::with(())
            .given(vec![created()])
            .when(start(150, 300))
            .then_expect_events(vec![started()]);
        let campaign = fold(vec![created(), started()]);
        assert!(campaign.is_running());
        assert_eq!(campaign.recipients(), 150);
        assert_eq!(campaign.points_reserved(), Points::new(300));
    }

    #[test]
    fn starts_a_scheduled_campaign_before_its_time_by_hand() {
        Given::with(())
            .given(vec![created(), scheduled(3600)])
            .when(start(150, 300))
            .then_expect_events(vec![started()]);
    }

    #[test]
    fn starts_with_exactly_as_many_recipients_as_the_plan_allows() {
        Given::with(())
            .given(vec![created()])
            .when(start(200, 400))
            .then_expect_events(vec![CampaignEvent::CampaignStarted {
                skipped_not_on_whatsapp: 0,
                skipped_never_replied: 0,
                recipients: 200,
                points_reserved: Points::new(400),
                at: t(10),
            }]);
    }

    #[test]
    fn refuses_more_recipients_than_the_plan_allows() {
        let refusal = CampaignError::RecipientCapExceeded {
            recipients: 201,
            cap: 200,
        };
        assert_eq!(refusal.code(), "recipient_cap_exceeded");
        Given::with(())
            .given(vec![created()])
            .when(start(201, 402))
            .then_expect_error(refusal);
    }

    #[test]
    fn refuses_a_recipient_count_whose_price_does_not_fit_in_points() {
        Given::with(())
            .given(vec![created()])
            .when(CampaignCommand::StartCampaign {
                skipped_not_on_whatsapp: 0,
                skipped_never_replied: 0,
                recipients: u64::MAX,
                missing_values: BTreeMap::new(),
                plan_max_recipients: u64::MAX,
                points_reserved: Points::new(u64::MAX),
                sendable_today: None,
                at: t(10),
            })
            .then_expect_error(CampaignError::RecipientCapExceeded {
                recipients: u64::MAX,
                cap: u64::MAX / 2,
            });
    }

    #[test]
    fn refuses_to_start_when_its_senders_can_send_nothing_more_today() {
        let with_capacity = |sendable| match start(150, 300) {
            CampaignCommand::StartCampaign {
                recipients,
                missing_values,
                plan_max_recipients,
                points_reserved,
                at,
                ..
            } => CampaignCommand::StartCampaign {
                skipped_not_on_whatsapp: 0,
                skipped_never_replied: 0,
                recipients,
                missing_values,
                plan_max_recipients,
                points_reserved,
                sendable_today: Some(sendable),
                at,
            },
            _ => unreachable!(),
        };
        Given::with(())
            .given(vec![created()])
            .when(with_capacity(0))
            .then_expect_error(CampaignError::DailyLimitReached);
        assert_eq!(
            CampaignError::DailyLimitReached.code(),
            "daily_limit_reached"
        );
        // One message today is enough to start: the rest waits for the
        // next days.
        Given::with(())
            .given(vec![created()])
            .when(with_capacity(1))
            .then_expect_events(vec![started()]);
    }

    #[test]
    fn refuses_to_start_without_recipients() {
        Given::with(())
            .given(vec![created()])
            .when(start(0, 0))
            .then_expect_error(CampaignError::NoRecipients);
    }

    #[test]
    fn refuses_a_reservation_that_is_not_two_points_per_recipient() {
        Given::with(())
            .given(vec![created()])
            .when(start(150, 299))
            .then_expect_error(CampaignError::ReservationMismatch {
                required: Points::new(300),
                reserved: Points::new(299),
            });
        Given::with(())
            .given(vec![created()])
            .when(start(150, 302))
            .then_expect_error(CampaignError::ReservationMismatch {
                required: Points::new(300),
                reserved: Points::new(302),
            });
    }

    #[test]
    fn a_retried_start_with_the_same_figures_records_nothing_and_is_not_refused() {
        let CampaignEvent::CampaignStarted {
            recipients,
            points_reserved,
            ..
        } = started()
        else {
            unreachable!()
        };
        Given::with(())
            .given(vec![created(), started()])
            .when(start(recipients, points_reserved.value()))
            .then_expect_events(vec![]);
    }

    #[test]
    fn refuses_to_start_a_campaign_again_with_other_figures() {
        Given::with(())
            .given(vec![created(), started()])
            .when(start(100, 200))
            .then_expect_error(CampaignError::InvalidState {
                action: "start",
                status: CampaignStatus::Running,
            });
    }

    #[test]
    fn refuses_to_start_a_cancelled_campaign() {
        Given::with(())
            .given(vec![
                created(),
                CampaignEvent::CampaignCancelled {
                    points_reserved: Points::ZERO,
                    at: t(5),
                },
            ])
            .when(start(150, 300))
            .then_expect_error(CampaignError::InvalidState {
                action: "start",
                status: CampaignStatus::Cancelled,
            });
    }

    #[test]
    fn refuses_to_start_when_no_sender_is_left() {
        Given::with(())
            .given(vec![
                created_with_one_sender(),
                CampaignEvent::CampaignSenderRemoved {
                    session_id: sender(1),
                    reason: SenderUnavailableReason::Banned,
                    remaining_senders: vec![],
                    at: t(5),
                },
            ])
            .when(start(150, 300))
            .then_expect_error(CampaignError::NoActiveSenders);
    }

    // --- pause ------------------------------------------------------------

    #[test]
    fn pauses_a_running_campaign_by_hand() {
        Given::with(())
            .given(vec![created(), started()])
            .when(CampaignCommand::PauseCampaign {
                reason: PauseReason::Manual,
                at: t(20),
            })
            .then_expect_events(vec![paused(PauseReason::Manual)]);
        let campaign = fold(vec![created(), started(), paused(PauseReason::Manual)]);
        assert_eq!(campaign.status(), Some(CampaignStatus::Paused));
        assert_eq!(campaign.pause_reason(), Some(&PauseReason::Manual));
        assert_eq!(campaign.resume_at(), None);
    }

    #[test]
    fn pauses_a_running_campaign_when_active_hours_close() {
        Given::with(())
            .given(vec![created(), started()])
            .when(CampaignCommand::PauseCampaign {
                reason: PauseReason::OutsideActiveHours,
                at: t(20),
            })
            .then_expect_events(vec![paused(PauseReason::OutsideActiveHours)]);
    }

    #[test]
    fn a_manual_pause_takes_over_an_automatic_one() {
        Given::with(())
            .given(vec![
                created(),
                started(),
                paused(PauseReason::OutsideActiveHours),
            ])
            .when(CampaignCommand::PauseCampaign {
                reason: PauseReason::Manual,
                at: t(20),
            })
            .then_expect_events(vec![paused(PauseReason::Manual)]);
    }

    #[test]
    fn pausing_a_paused_campaign_again_changes_nothing() {
        Given::with(())
            .given(vec![created(), started(), paused(PauseReason::Manual)])
            .when(CampaignCommand::PauseCampaign {
                reason: PauseReason::Manual,
                at: t(21),
            })
            .then_expect_events(vec![]);
        // An automatic reason never replaces a user's pause.
        Given::with(())
            .given(vec![created(), started(), paused(PauseReason::Manual)])
            .when(CampaignCommand::PauseCampaign {
                reason: PauseReason::OutsideActiveHours,
                at: t(21),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn refuses_an_auto_pause_asked_for_by_hand() {
        Given::with(())
            .given(vec![created(), started()])
            .when(CampaignCommand::PauseCampaign {
                reason: PauseReason::AutoConsecutiveFailures { failures: 3 },
                at: t(20),
            })
            .then_expect_error(CampaignError::AutoPauseByHand);
    }

    #[test]
    fn refuses_to_pause_a_campaign_that_is_not_running() {
        Given::with(())
            .given(vec![created()])
            .when(CampaignCommand::PauseCampaign {
                reason: PauseReason::Manual,
                at: t(20),
            })
            .then_expect_error(CampaignError::InvalidState {
                action: "pause",
                status: CampaignStatus::Draft,
            });
        Given::with(())
            .given(vec![created(), started(), completed()])
            .when(CampaignCommand::PauseCampaign {
                reason: PauseReason::Manual,
                at: t(901),
            })
            .then_expect_error(CampaignError::InvalidState {
                action: "pause",
                status: CampaignStatus::Completed,
            });
    }

    // --- resume -----------------------------------------------------------

    #[test]
    fn resumes_a_paused_campaign() {
        Given::with(())
            .given(vec![created(), started(), paused(PauseReason::Manual)])
            .when(CampaignCommand::ResumeCampaign { at: t(25) })
            .then_expect_events(vec![resumed(25)]);
        let campaign = fold(vec![
            created(),
            started(),
            paused(PauseReason::Manual),
            resumed(25),
        ]);
        assert!(campaign.is_running());
        assert_eq!(campaign.pause_reason(), None);
    }

    #[test]
    fn resuming_a_running_campaign_changes_nothing() {
        Given::with(())
            .given(vec![created(), started()])
            .when(CampaignCommand::ResumeCampaign { at: t(25) })
            .then_expect_events(vec![]);
    }

    #[test]
    fn refuses_to_resume_during_the_back_off_saying_when_to_retry() {
        Given::with(())
            .given(vec![created(), started(), auto_paused(1, 100)])
            .when(CampaignCommand::ResumeCampaign { at: t(129) })
            .then_expect_error(CampaignError::BackingOff { retry_at: t(130) });
    }

    #[test]
    fn resumes_once_the_back_off_has_passed() {
        Given::with(())
            .given(vec![created(), started(), auto_paused(1, 100)])
            .when(CampaignCommand::ResumeCampaign { at: t(130) })
            .then_expect_events(vec![resumed(130)]);
        let campaign = fold(vec![
            created(),
            started(),
            auto_paused(1, 100),
            resumed(130),
        ]);
        assert_eq!(campaign.resume_at(), None);
        assert_eq!(campaign.auto_pauses(), 1);
    }

    #[test]
    fn a_manual_pause_during_a_back_off_keeps_the_back_off() {
        Given::with(())
            .given(vec![
                created(),
                started(),
                auto_paused(2, 100),
                paused(PauseReason::Manual),
            ])
            .when(CampaignCommand::ResumeCampaign { at: t(150) })
            .then_expect_error(CampaignError::BackingOff { retry_at: t(160) });
    }

    #[test]
    fn refuses_to_resume_when_no_sender_is_left() {
        Given::with(())
            .given(vec![
                created_with_one_sender(),
                started(),
                CampaignEvent::CampaignSenderRemoved {
                    session_id: sender(1),
                    reason: SenderUnavailableReason::LoggedOut,
                    remaining_senders: vec![],
                    at: t(30),
                },
                paused(PauseReason::SenderUnavailable {
                    session_id: sender(1),
                    why: SenderUnavailableReason::LoggedOut,
                }),
            ])
            .when(CampaignCommand::ResumeCampaign { at: t(40) })
            .then_expect_error(CampaignError::NoActiveSenders);
    }

    #[test]
    fn refuses_to_resume_a_campaign_that_is_not_paused() {
        Given::with(())
            .given(vec![created(), scheduled(3600)])
            .when(CampaignCommand::ResumeCampaign { at: t(40) })
            .then_expect_error(CampaignError::InvalidState {
                action: "resume",
                status: CampaignStatus::Scheduled,
            });
    }

    // --- engagement guard ---------------------------------------------------

    fn start_skipping(not_on_whatsapp: u64, never_replied: u64) -> CampaignCommand {
        CampaignCommand::StartCampaign {
            skipped_not_on_whatsapp: not_on_whatsapp,
            skipped_never_replied: never_replied,
            recipients: 150,
            missing_values: BTreeMap::new(),
            plan_max_recipients: 200,
            points_reserved: Points::new(300),
            sendable_today: None,
            at: t(10),
        }
    }

    #[test]
    fn a_campaign_guards_against_unanswered_contacts_by_default_and_counts_those_left_out() {
        let campaign = fold(vec![created()]);
        assert_eq!(campaign.skip_unanswered_after().after(), Some(3));
        Given::with(())
            .given(vec![created()])
            .when(start_skipping(0, 7))
            .then_expect_events(vec![CampaignEvent::CampaignStarted {
                recipients: 150,
                points_reserved: Points::new(300),
                skipped_not_on_whatsapp: 0,
                skipped_never_replied: 7,
                at: t(10),
            }]);
        let started = fold(vec![
            created(),
            CampaignEvent::CampaignStarted {
                recipients: 150,
                points_reserved: Points::new(300),
                skipped_not_on_whatsapp: 0,
                skipped_never_replied: 7,
                at: t(10),
            },
        ]);
        assert_eq!(started.skipped_never_replied(), 7);
    }

    #[test]
    fn a_campaign_whose_guard_is_off_refuses_a_start_that_left_unanswered_contacts_out() {
        let off = match created() {
            CampaignEvent::CampaignCreated {
                campaign_id,
                name,
                contact_list_id,
                template,
                media_id,
                whatsapp_template,
                sender_session_ids,
                throttle,
                scheduled_at,
                skip_not_on_whatsapp,
                at,
                ..
            } => CampaignEvent::CampaignCreated {
                campaign_id,
                name,
                contact_list_id,
                template,
                media_id,
                whatsapp_template,
                sender_session_ids,
                throttle,
                scheduled_at,
                skip_not_on_whatsapp,
                skip_unanswered_after: EngagementGuard::OFF,
                at,
            },
            _ => unreachable!(),
        };
        Given::with(())
            .given(vec![off])
            .when(start_skipping(0, 1))
            .then_expect_error(CampaignError::SkipsNone);
    }

    #[test]
    fn a_campaign_recorded_before_the_guard_existed_has_it_off() {
        let mut json = serde_json::to_value(created()).unwrap();
        json["CampaignCreated"]
            .as_object_mut()
            .unwrap()
            .remove("skip_unanswered_after");
        let old: CampaignEvent = serde_json::from_value(json).unwrap();
        assert_eq!(
            fold(vec![old]).skip_unanswered_after(),
            EngagementGuard::OFF
        );
    }

    // --- slowing down when failures climb ----------------------------------

    fn signals(failed: u32, blocked: u32) -> SendSignals {
        SendSignals {
            outcomes: 10,
            failed,
            blocked,
        }
    }

    fn report_signals(n: u128, signals: SendSignals, at: i64) -> CampaignCommand {
        CampaignCommand::ReportSendSignals {
            session_id: sender(n),
            signals,
            at: t(at),
        }
    }

    fn slowed_down(n: u128, signals: SendSignals, at: i64) -> CampaignEvent {
        CampaignEvent::CampaignSlowedDown {
            session_id: sender(n),
            reason: SlowDownReason::FailuresClimbing,
            signals,
            throttle: Throttle::DEFAULT.slowed(),
            at: t(at),
        }
    }

    #[test]
    fn a_campaign_slows_down_when_three_of_a_senders_last_ten_sends_fail_or_are_blocked() {
        Given::with(())
            .given(vec![created(), started()])
            .when(report_signals(1, signals(2, 1), 100))
            .then_expect_events(vec![slowed_down(1, signals(2, 1), 100)]);
        let campaign = fold(vec![
            created(),
            started(),
            slowed_down(1, signals(2, 1), 100),
        ]);
        let slow = campaign.slow_down().copied().unwrap();
        assert_eq!(slow.reason, SlowDownReason::FailuresClimbing);
        assert_eq!(slow.since, t(100));
        // 4× the default 2–5 s.
        let paced = campaign.paced(campaign.throttle());
        assert_eq!(
            (paced.min_delay_ms(), paced.max_delay_ms()),
            (8_000, 20_000)
        );
        assert_eq!(paced, slow.throttle);
    }

    #[test]
    fn fewer_failures_or_a_window_not_full_yet_do_not_slow_a_campaign_down() {
        Given::with(())
            .given(vec![created(), started()])
            .when(report_signals(1, signals(2, 0), 100))
            .then_expect_events(vec![]);
        let few = SendSignals {
            outcomes: 4,
            failed: 4,
            blocked: 0,
        };
        Given::with(())
            .given(vec![created(), started()])
            .when(report_signals(1, few, 100))
            .then_expect_events(vec![]);
        // Not started, or finished: nothing to pace.
        Given::with(())
            .given(vec![created()])
            .when(report_signals(1, signals(5, 5), 100))
            .then_expect_events(vec![]);
        Given::with(())
            .given(vec![created(), started()])
            .when(report_signals(9, signals(5, 5), 100))
            .then_expect_error(CampaignError::UnknownSender(sender(9)));
    }

    #[test]
    fn a_slowed_campaign_takes_its_own_pace_again_once_the_sender_is_under_ten_percent() {
        let history = vec![created(), started(), slowed_down(1, signals(3, 0), 100)];
        // Still failing, or another sender doing well: still slow.
        Given::with(())
            .given(history.clone())
            .when(report_signals(1, signals(1, 0), 200))
            .then_expect_events(vec![]);
        Given::with(())
            .given(history.clone())
            .when(report_signals(2, signals(0, 0), 200))
            .then_expect_events(vec![]);
        Given::with(())
            .given(history.clone())
            .when(report_signals(1, signals(5, 0), 200))
            .then_expect_events(vec![]);
        let restored = CampaignEvent::CampaignSpeedRestored {
            session_id: sender(1),
            signals: signals(0, 0),
            throttle: Throttle::DEFAULT,
            at: t(300),
        };
        Given::with(())
            .given(history.clone())
            .when(report_signals(1, signals(0, 0), 300))
            .then_expect_events(vec![restored.clone()]);
        let mut again = history;
        again.push(restored);
        let campaign = fold(again);
        assert_eq!(campaign.slow_down(), None);
        assert_eq!(campaign.paced(campaign.throttle()), Throttle::DEFAULT);
    }

    #[test]
    fn a_campaign_slowed_by_a_sender_gone_since_is_restored_by_another() {
        let history = vec![
            created(),
            started(),
            slowed_down(1, signals(3, 0), 100),
            CampaignEvent::CampaignSenderRemoved {
                session_id: sender(1),
                reason: SenderUnavailableReason::Banned,
                remaining_senders: vec![sender(2)],
                at: t(150),
            },
        ];
        Given::with(())
            .given(history)
            .when(report_signals(2, signals(0, 0), 200))
            .then_expect_events(vec![CampaignEvent::CampaignSpeedRestored {
                session_id: sender(2),
                signals: signals(0, 0),
                throttle: Throttle::DEFAULT,
                at: t(200),
            }]);
    }

    // --- consecutive failures ---------------------------------------------

    #[test]
    fn auto_pauses_after_three_consecutive_failures_for_30_seconds() {
        Given::with(())
            .given(vec![created(), started()])
            .when(failures(3, 100))
            .then_expect_events(vec![CampaignEvent::CampaignAutoPaused {
                session_id: sender(1),
                failures: 3,
                pause_number: 1,
                resume_at: t(130),
                at: t(100),
            }]);
        let campaign = fold(vec![created(), started(), auto_paused(1, 100)]);
        assert_eq!(campaign.status(), Some(CampaignStatus::Paused));
        assert_eq!(
            campaign.pause_reason(),
            Some(&PauseReason::AutoConsecutiveFailures { failures: 3 })
        );
        assert_eq!(campaign.resume_at(), Some(t(130)));
    }

    #[test]
    fn later_auto_pauses_back_off_60_then_120_seconds_and_120_thereafter() {
        let mut history = vec![created(), started(), auto_paused(1, 100), resumed(130)];
        Given::with(())
            .given(history.clone())
            .when(failures(4, 200))
            .then_expect_events(vec![CampaignEvent::CampaignAutoPaused {
                session_id: sender(1),
                failures: 4,
                pause_number: 2,
                resume_at: t(260),
                at: t(200),
            }]);
        history.extend([auto_paused(2, 200), resumed(260)]);
        Given::with(())
            .given(history.clone())
            .when(failures(3, 300))
            .then_expect_events(vec![CampaignEvent::CampaignAutoPaused {
                session_id: sender(1),
                failures: 3,
                pause_number: 3,
                resume_at: t(420),
                at: t(300),
            }]);
        history.extend([auto_paused(3, 300), resumed(420)]);
        Given::with(())
            .given(history)
            .when(failures(3, 500))
            .then_expect_events(vec![CampaignEvent::CampaignAutoPaused {
                session_id: sender(1),
                failures: 3,
                pause_number: 4,
                resume_at: t(620),
                at: t(500),
            }]);
    }

    #[test]
    fn fewer_than_three_consecutive_failures_change_nothing() {
        Given::with(())
            .given(vec![created(), started()])
            .when(failures(2, 100))
            .then_expect_events(vec![]);
    }

    #[test]
    fn failures_reported_while_not_running_change_nothing() {
        Given::with(())
            .given(vec![created(), started(), auto_paused(1, 100)])
            .when(failures(5, 101))
            .then_expect_events(vec![]);
        Given::with(())
            .given(vec![created()])
            .when(failures(5, 101))
            .then_expect_events(vec![]);
    }

    #[test]
    fn refuses_failures_from_a_session_that_is_not_a_sender() {
        Given::with(())
            .given(vec![created(), started()])
            .when(CampaignCommand::ReportConsecutiveFailures {
                session_id: sender(9),
                failures: 3,
                at: t(100),
            })
            .then_expect_error(CampaignError::UnknownSender(sender(9)));
    }

    // --- unavailable senders ----------------------------------------------

    #[test]
    fn removes_a_banned_sender_from_the_rotation() {
        let removed = CampaignEvent::CampaignSenderRemoved {
            session_id: sender(1),
            reason: SenderUnavailableReason::Banned,
            remaining_senders: vec![sender(2)],
            at: t(30),
        };
        Given::with(())
            .given(vec![created(), started()])
            .when(unavailable(1, SenderUnavailableReason::Banned))
            .then_expect_events(vec![removed.clone()]);
        let campaign = fold(vec![created(), started(), removed]);
        assert!(campaign.is_running());
        assert_eq!(campaign.senders(), &[sender(2)]);
        assert_eq!(
            campaign.removed_senders(),
            &[RemovedSender {
                session_id: sender(1),
                reason: SenderUnavailableReason::Banned,
            }]
        );
    }

    #[test]
    fn pauses_a_running_campaign_saying_why_when_its_last_sender_logs_out() {
        Given::with(())
            .given(vec![created_with_one_sender(), started()])
            .when(unavailable(1, SenderUnavailableReason::LoggedOut))
            .then_expect_events(vec![
                CampaignEvent::CampaignSenderRemoved {
                    session_id: sender(1),
                    reason: SenderUnavailableReason::LoggedOut,
                    remaining_senders: vec![],
                    at: t(30),
                },
                CampaignEvent::CampaignPaused {
                    reason: PauseReason::SenderUnavailable {
                        session_id: sender(1),
                        why: SenderUnavailableReason::LoggedOut,
                    },
                    at: t(30),
                },
            ]);
    }

    #[test]
    fn a_paused_campaign_takes_the_reason_when_its_last_sender_is_deleted() {
        Given::with(())
            .given(vec![
                created_with_one_sender(),
                started(),
                paused(PauseReason::Manual),
            ])
            .when(unavailable(1, SenderUnavailableReason::Deleted))
            .then_expect_events(vec![
                CampaignEvent::CampaignSenderRemoved {
                    session_id: sender(1),
                    reason: SenderUnavailableReason::Deleted,
                    remaining_senders: vec![],
                    at: t(30),
                },
                CampaignEvent::CampaignPaused {
                    reason: PauseReason::SenderUnavailable {
                        session_id: sender(1),
                        why: SenderUnavailableReason::Deleted,
                    },
                    at: t(30),
                },
            ]);
    }

    #[test]
    fn a_draft_losing_its_last_sender_stays_a_draft() {
        Given::with(())
            .given(vec![created_with_one_sender()])
            .when(unavailable(1, SenderUnavailableReason::Banned))
            .then_expect_events(vec![CampaignEvent::CampaignSenderRemoved {
                session_id: sender(1),
                reason: SenderUnavailableReason::Banned,
                remaining_senders: vec![],
                at: t(30),
            }]);
    }

    #[test]
    fn a_sender_reported_unavailable_twice_is_removed_once() {
        Given::with(())
            .given(vec![
                created(),
                started(),
                CampaignEvent::CampaignSenderRemoved {
                    session_id: sender(1),
                    reason: SenderUnavailableReason::Banned,
                    remaining_senders: vec![sender(2)],
                    at: t(30),
                },
            ])
            .when(unavailable(1, SenderUnavailableReason::Deleted))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_finished_campaign_ignores_unavailable_senders() {
        Given::with(())
            .given(vec![created(), started(), completed()])
            .when(unavailable(1, SenderUnavailableReason::Banned))
            .then_expect_events(vec![]);
    }

    #[test]
    fn refuses_an_unavailable_session_that_is_not_a_sender() {
        Given::with(())
            .given(vec![created(), started()])
            .when(unavailable(7, SenderUnavailableReason::Banned))
            .then_expect_error(CampaignError::UnknownSender(sender(7)));
    }

    // --- cancel -----------------------------------------------------------

    #[test]
    fn cancels_a_draft_or_scheduled_campaign_with_nothing_reserved() {
        for history in [vec![created()], vec![created(), scheduled(3600)]] {
            Given::with(())
                .given(history)
                .when(CampaignCommand::CancelCampaign { at: t(5) })
                .then_expect_events(vec![CampaignEvent::CampaignCancelled {
                    points_reserved: Points::ZERO,
                    at: t(5),
                }]);
        }
    }

    #[test]
    fn cancels_a_running_or_paused_campaign_saying_what_was_reserved() {
        for history in [
            vec![created(), started()],
            vec![created(), started(), paused(PauseReason::Manual)],
        ] {
            Given::with(())
                .given(history)
                .when(CampaignCommand::CancelCampaign { at: t(50) })
                .then_expect_events(vec![CampaignEvent::CampaignCancelled {
                    points_reserved: Points::new(300),
                    at: t(50),
                }]);
        }
        let campaign = fold(vec![
            created(),
            started(),
            CampaignEvent::CampaignCancelled {
                points_reserved: Points::new(300),
                at: t(50),
            },
        ]);
        assert_eq!(campaign.status(), Some(CampaignStatus::Cancelled));
    }

    #[test]
    fn cancelling_a_cancelled_campaign_changes_nothing() {
        Given::with(())
            .given(vec![
                created(),
                CampaignEvent::CampaignCancelled {
                    points_reserved: Points::ZERO,
                    at: t(5),
                },
            ])
            .when(CampaignCommand::CancelCampaign { at: t(6) })
            .then_expect_events(vec![]);
    }

    #[test]
    fn refuses_to_cancel_a_completed_campaign() {
        Given::with(())
            .given(vec![created(), started(), completed()])
            .when(CampaignCommand::CancelCampaign { at: t(901) })
            .then_expect_error(CampaignError::InvalidState {
                action: "cancel",
                status: CampaignStatus::Completed,
            });
    }

    // --- complete ---------------------------------------------------------

    #[test]
    fn completes_a_running_or_paused_campaign_recording_counts_and_what_was_spent() {
        let complete = CampaignCommand::CompleteCampaign {
            sent: 140,
            failed: 8,
            cancelled: 2,
            at: t(900),
        };
        Given::with(())
            .given(vec![created(), started()])
            .when(complete.clone())
            .then_expect_events(vec![completed()]);
        Given::with(())
            .given(vec![created(), started(), paused(PauseReason::Manual)])
            .when(complete)
            .then_expect_events(vec![completed()]);
        let campaign = fold(vec![created(), started(), completed()]);
        assert_eq!(campaign.status(), Some(CampaignStatus::Completed));
        assert_eq!(campaign.recipients(), 150);
        assert_eq!(campaign.points_reserved(), Points::new(300));
    }

    #[test]
    fn refuses_completion_counts_that_do_not_add_up_to_the_recipients() {
        Given::with(())
            .given(vec![created(), started()])
            .when(CampaignCommand::CompleteCampaign {
                sent: 140,
                failed: 8,
                cancelled: 1,
                at: t(900),
            })
            .then_expect_error(CampaignError::CountsMismatch {
                counted: 149,
                recipients: 150,
            });
        Given::with(())
            .given(vec![created(), started()])
            .when(CampaignCommand::CompleteCampaign {
                sent: u64::MAX,
                failed: 1,
                cancelled: 0,
                at: t(900),
            })
            .then_expect_error(CampaignError::CountsMismatch {
                counted: u64::MAX,
                recipients: 150,
            });
    }

    #[test]
    fn refuses_to_complete_a_campaign_that_never_started() {
        Given::with(())
            .given(vec![created()])
            .when(CampaignCommand::CompleteCampaign {
                sent: 0,
                failed: 0,
                cancelled: 0,
                at: t(900),
            })
            .then_expect_error(CampaignError::InvalidState {
                action: "complete",
                status: CampaignStatus::Draft,
            });
    }

    #[test]
    fn refuses_to_complete_a_campaign_twice() {
        Given::with(())
            .given(vec![created(), started(), completed()])
            .when(CampaignCommand::CompleteCampaign {
                sent: 140,
                failed: 8,
                cancelled: 2,
                at: t(901),
            })
            .then_expect_error(CampaignError::InvalidState {
                action: "complete",
                status: CampaignStatus::Completed,
            });
    }

    // --- names and shapes -------------------------------------------------

    #[test]
    fn every_refusal_has_its_api_code() {
        let cases = [
            (CampaignError::AlreadyCreated, "conflict"),
            (CampaignError::NotFound, "not_found"),
            (CampaignError::UnknownSender(sender(1)), "not_found"),
            (CampaignError::InvalidName { chars: 0 }, "validation_failed"),
            (CampaignError::NoSenders, "validation_failed"),
            (
                CampaignError::DuplicateSender(sender(1)),
                "validation_failed",
            ),
            (
                CampaignError::UnknownVariables { names: vec![] },
                "validation_failed",
            ),
            (
                CampaignError::ScheduleInPast { at_time: t(0) },
                "validation_failed",
            ),
            (CampaignError::NoRecipients, "validation_failed"),
            (
                CampaignError::ReservationMismatch {
                    required: Points::ZERO,
                    reserved: Points::ZERO,
                },
                "validation_failed",
            ),
            (CampaignError::AutoPauseByHand, "validation_failed"),
            (
                CampaignError::CountsMismatch {
                    counted: 0,
                    recipients: 1,
                },
                "validation_failed",
            ),
            (
                CampaignError::InvalidState {
                    action: "start",
                    status: CampaignStatus::Running,
                },
                "invalid_state",
            ),
            (
                CampaignError::BackingOff { retry_at: t(0) },
                "invalid_state",
            ),
            (
                CampaignError::RecipientCapExceeded {
                    recipients: 2,
                    cap: 1,
                },
                "recipient_cap_exceeded",
            ),
            (CampaignError::NoActiveSenders, "session_not_ready"),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code, "{error:?}");
        }
        assert_eq!(
            CampaignError::InvalidState {
                action: "start",
                status: CampaignStatus::Running,
            }
            .to_string(),
            "cannot start a running campaign"
        );
        assert_eq!(
            CampaignError::UnknownVariables {
                names: vec!["a".to_owned(), "b".to_owned()],
            }
            .to_string(),
            "template uses unknown variables: a, b"
        );
    }

    #[test]
    fn events_are_named_after_their_variant_and_serialized_externally_tagged() {
        assert_eq!(Campaign::TYPE, "campaign");
        let events = vec![
            created(),
            scheduled(3600),
            started(),
            paused(PauseReason::SenderUnavailable {
                session_id: sender(1),
                why: SenderUnavailableReason::LoggedOut,
            }),
            auto_paused(1, 100),
            resumed(130),
            CampaignEvent::CampaignSenderRemoved {
                session_id: sender(1),
                reason: SenderUnavailableReason::Banned,
                remaining_senders: vec![sender(2)],
                at: t(30),
            },
            CampaignEvent::CampaignCancelled {
                points_reserved: Points::new(300),
                at: t(50),
            },
            completed(),
        ];
        for event in events {
            let json = serde_json::to_value(&event).unwrap();
            let tag = json.as_object().unwrap().keys().next().unwrap().clone();
            assert_eq!(tag, event.event_type());
            assert_eq!(event.event_version(), "1.0");
            assert_eq!(
                serde_json::from_value::<CampaignEvent>(json).unwrap(),
                event
            );
        }
        assert_eq!(
            serde_json::to_value(PauseReason::SenderUnavailable {
                session_id: sender(1),
                why: SenderUnavailableReason::LoggedOut,
            })
            .unwrap(),
            serde_json::json!({
                "kind": "sender_unavailable",
                "session_id": sender(1).to_string(),
                "why": "logged_out",
            })
        );
        assert_eq!(
            serde_json::to_value(PauseReason::OutsideActiveHours).unwrap(),
            serde_json::json!({"kind": "outside_active_hours"})
        );
        for status in [
            CampaignStatus::Draft,
            CampaignStatus::Scheduled,
            CampaignStatus::Running,
            CampaignStatus::Paused,
            CampaignStatus::Completed,
            CampaignStatus::Cancelled,
        ] {
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
    }

    #[test]
    fn the_aggregate_state_round_trips_through_json_for_snapshots() {
        let campaign = fold(vec![created(), started(), auto_paused(1, 100)]);
        let json = serde_json::to_string(&campaign).unwrap();
        assert_eq!(serde_json::from_str::<Campaign>(&json).unwrap(), campaign);
    }

    // --- invariants over generated histories ------------------------------

    fn any_command() -> impl Strategy<Value = CampaignCommand> {
        let at = 0i64..2_000;
        let sender_n = 1u128..4;
        let why = prop_oneof![
            Just(SenderUnavailableReason::Banned),
            Just(SenderUnavailableReason::LoggedOut),
            Just(SenderUnavailableReason::Deleted),
        ];
        let reason = prop_oneof![
            Just(PauseReason::Manual),
            Just(PauseReason::OutsideActiveHours),
            (1u32..5).prop_map(|failures| PauseReason::AutoConsecutiveFailures { failures }),
        ];
        prop_oneof![
            Just(create()),
            (at.clone(), at.clone()).prop_map(|(a, b)| CampaignCommand::ScheduleCampaign {
                at_time: t(a),
                at: t(b),
            }),
            (0u64..6, prop::bool::weighted(0.8), 0u64..14, at.clone()).prop_map(
                |(recipients, matching, points, a)| CampaignCommand::StartCampaign {
                    skipped_not_on_whatsapp: 0,
                    skipped_never_replied: 0,
                    recipients,
                    missing_values: BTreeMap::new(),
                    plan_max_recipients: 4,
                    // Mostly the right reservation, so that histories start.
                    points_reserved: Points::new(if matching { recipients * 2 } else { points }),
                    sendable_today: None,
                    at: t(a),
                }
            ),
            (reason, at.clone())
                .prop_map(|(reason, a)| CampaignCommand::PauseCampaign { reason, at: t(a) }),
            at.clone()
                .prop_map(|a| CampaignCommand::ResumeCampaign { at: t(a) }),
            (sender_n.clone(), 0u32..6, at.clone()).prop_map(|(n, failures, a)| {
                CampaignCommand::ReportConsecutiveFailures {
                    session_id: sender(n),
                    failures,
                    at: t(a),
                }
            }),
            (sender_n, why, at.clone()).prop_map(|(n, reason, a)| {
                CampaignCommand::ReportSenderUnavailable {
                    session_id: sender(n),
                    reason,
                    at: t(a),
                }
            }),
            at.clone()
                .prop_map(|a| CampaignCommand::CancelCampaign { at: t(a) }),
            (0u64..5, 0u64..5, 0u64..5, at).prop_map(|(sent, failed, cancelled, a)| {
                CampaignCommand::CompleteCampaign {
                    sent,
                    failed,
                    cancelled,
                    at: t(a),
                }
            }),
        ]
    }

    /// The moves of the lifecycle diagram (and staying put).
    fn allowed(from: Option<CampaignStatus>, to: Option<CampaignStatus>) -> bool {
        use CampaignStatus as S;
        from == to
            || matches!(
                (from, to),
                (None, Some(S::Draft))
                    | (
                        Some(S::Draft),
                        Some(S::Scheduled | S::Running | S::Cancelled)
                    )
                    | (Some(S::Scheduled), Some(S::Running | S::Cancelled))
                    | (
                        Some(S::Running),
                        Some(S::Paused | S::Completed | S::Cancelled)
                    )
                    | (
                        Some(S::Paused),
                        Some(S::Running | S::Completed | S::Cancelled)
                    )
            )
    }

    proptest! {
        #[test]
        fn generated_histories_keep_the_campaign_invariants(
            commands in prop::collection::vec(any_command(), 0..30)
        ) {
            let mut history: Vec<CampaignEvent> = vec![];
            let mut commands = commands;
            commands.insert(0, create());
            for command in commands {
                let result = Given::with(())
                    .given(history.clone())
                    .when(command)
                    .inspect_result();
                let Ok(events) = result else { continue };
                for event in events {
                    let prior = fold(history.clone());
                    history.push(event.clone());
                    let after = fold(history.clone());
                    prop_assert!(
                        allowed(prior.status(), after.status()),
                        "{:?} -> {:?} by {:?}", prior.status(), after.status(), event
                    );
                    let started = prior
                        .status()
                        .is_some_and(|s| !matches!(s, CampaignStatus::Draft | CampaignStatus::Scheduled));
                    if started {
                        // Frozen at start.
                        prop_assert_eq!(prior.recipients(), after.recipients());
                        prop_assert_eq!(prior.points_reserved(), after.points_reserved());
                    }
                    prop_assert_eq!(after.points_reserved().value(), after.recipients() * 2);
                    prop_assert!(after.recipients() <= 4);
                    if let CampaignEvent::CampaignCompleted { sent, failed, cancelled, .. } = event {
                        prop_assert_eq!(sent + failed + cancelled, after.recipients());
                    }
                }
                // Checked per command: one command may remove the last sender
                // and pause.
                let after = fold(history.clone());
                if after.is_running() {
                    prop_assert!(!after.senders().is_empty());
                }
            }
        }
    }
}
