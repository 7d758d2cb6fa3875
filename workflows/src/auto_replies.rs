//! The auto-responder: every message a session receives is matched against
//! the tenant's enabled rules, and the first that matches (oldest first)
//! answers through the session that received it, as a single send like
//! any other (points, daily limit, plan, active hours).
//!
//! A durable consumer of the inbound messages (`auto-replies`), shared by
//! the engines: each message is decided by one of them, once. What was
//! decided, an answer or a silence and why, is an event of the contact's
//! thread ([`wablast_domain::auto_reply`]), which also holds the rules
//! that span messages: a rule's cooldown per contact and the loop guard.
//! In order:
//!
//! 1. a tenant without enabled rules for the session: nothing to decide;
//! 2. never answered: a message received long ago (a history sync, an
//!    outage: [`STALE_AFTER`]), in a group, a status broadcast, one sent
//!    from the session's own number, one whose sender's number is hidden;
//! 3. the first rule that matches: `keyword`, the whole text, `contains`,
//!    a part of it (both trimmed, ignoring case and accents: "Térima
//!    Kasih" is "terima kasih"), `regex`, the rule's regex (compiled once
//!    per version of the rule, size-limited); none: `no_match`. A rule
//!    with windows of its own answers only inside them (in the tenant's
//!    time zone), leaving the message to the next rule that matches; when
//!    every rule that matches is closed: `outside_hours`;
//! 4. the thread takes the answer unless the rule's cooldown or the loop
//!    guard says no, and the rule's hourly counter unless its
//!    `max_per_hour` was reached (`rate_limited`);
//! 5. the answer is queued as a single send that refuses closed active
//!    hours; a refusal withdraws the answer with its reason.
//!
//! The answer's message id is derived from the inbound message, so a
//! message delivered again is admitted once.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::DeliverPolicy;
use chrono::{DateTime, TimeDelta, Utc};
use cqrs_es::{Aggregate, AggregateError};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, instrument, warn};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;
use uuid::Uuid;
use wablast_domain::auto_reply::{
    AutoReplyCommand, RuleHourCommand, Silence, answer_id, rule_hour_id, thread_id,
};
use wablast_domain::inbound::{Inbound, InboundEvent};
use wablast_domain::types::phone::Phone;
use wablast_domain::types::{
    ActiveHours, ActiveHoursError, InboundId, MediaId, MessageContent, Override, SessionId,
    TenantId, TimeZone, Weekday, Window,
};
use wablast_eventstore::{
    Actor, AggregateKey, CommandMetadata, ConsumerSpec, Delivery, EventLog, EventStoreError,
    RecordedEvent, WorkError, Worker, run_consumer,
};
use wablast_projections::queries::auto_replies::{self as rules, AutoReplyRule, RuleWindow};

use crate::clock::Clock;
use crate::commands::{Commands, key};
use crate::direct_sends::{DirectSend, DirectSendError, DirectSends, OutsideActiveHours};

/// A rule's own windows as active hours in `zone`.
fn rule_hours(zone: TimeZone, windows: &[RuleWindow]) -> Result<ActiveHours, ActiveHoursError> {
    let windows = windows
        .iter()
        .map(|w| {
            let days = w
                .days
                .iter()
                .map(|d| Weekday::from_str(d))
                .collect::<Result<Vec<_>, _>>()?;
            Window::parse(days, &w.start, &w.end)
        })
        .collect::<Result<Vec<_>, _>>()?;
    ActiveHours::new(zone, windows, Override::None)
}

/// A message received longer ago than this is not answered.
pub const STALE_AFTER: TimeDelta = TimeDelta::minutes(15);

/// The most memory a compiled regex may take: patterns that would blow up
/// are refused when a rule is made rather than when a message arrives.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// What an inbound message is matched with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The whole message is the pattern.
    Keyword,
    /// The message contains the pattern.
    Contains,
    /// The pattern, a regex, matches in the message.
    Regex,
}

impl Trigger {
    /// The trigger named `name` (`keyword`, `contains`, `regex`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "keyword" => Some(Self::Keyword),
            "contains" => Some(Self::Contains),
            "regex" => Some(Self::Regex),
            _ => None,
        }
    }
}

/// A rule's regex `pattern`, compiled within the size every rule's is
/// held to (by the API when the rule is made, here when it answers).
pub fn compile(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// The consumer's durable name.
const CONSUMER: &str = "auto-replies";

/// A rule as it was at a time (its id and when it last changed).
type RuleVersion = (Uuid, DateTime<Utc>);

/// The auto-responder of an engine.
pub struct AutoReplies {
    db: PgPool,
    aggregates: Commands,
    sends: DirectSends,
    clock: Arc<dyn Clock>,
    actor: Actor,
    /// Compiled regexes per rule and version.
    regexes: Mutex<HashMap<RuleVersion, Arc<regex::Regex>>>,
}

impl AutoReplies {
    /// An auto-responder sending through `sends`.
    pub fn new(
        db: PgPool,
        aggregates: Commands,
        sends: DirectSends,
        clock: Arc<dyn Clock>,
        actor: Actor,
    ) -> Self {
        Self {
            db,
            aggregates,
            sends,
            clock,
            actor,
            regexes: Mutex::default(),
        }
    }

    /// Its durable consumer: every inbound message from now on.
    pub fn consumer(log: &EventLog) -> Result<ConsumerSpec, EventStoreError> {
        let mut spec = ConsumerSpec::new(CONSUMER, log.stream_name_of(Inbound::TYPE)?);
        spec.filter_subject = log.prefix().aggregate_type_subjects(Inbound::TYPE);
        // The messages received before there was an auto-responder are
        // not answered now.
        spec.deliver_policy = DeliverPolicy::New;
        spec.ack_wait = Duration::from_secs(60);
        spec.max_deliveries = 10;
        spec.batch = 16;
        spec.max_ack_pending = 64;
        Ok(spec)
    }

    /// Runs until `shutdown`, starting again when it stops on an error.
    pub async fn run(self, log: EventLog, shutdown: CancellationToken) {
        let spec = match Self::consumer(&log) {
            Ok(spec) => spec,
            Err(err) => {
                warn!(error = %wablast_eventstore::report::Chain(&err), "auto-replies not run");
                return;
            }
        };
        loop {
            match run_consumer(&log, &spec, &self, shutdown.clone()).await {
                Ok(()) => return,
                Err(err) => {
                    warn!(error = %wablast_eventstore::report::Chain(&err), "auto-replies stopped; starting them again");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(5)) => {}
                    }
                }
            }
        }
    }

    /// Decides `received`, a message received by one of `tenant`'s
    /// sessions.
    #[instrument(name = "auto-reply", skip_all, fields(inbound = %received.inbound_id, session = %received.session_id))]
    async fn decide(
        &self,
        tenant: TenantId,
        received: Received,
        cause: &RecordedEvent,
    ) -> Result<(), WorkError> {
        let rules = rules::answering(&self.db, tenant, received.session_id)
            .await
            .map_err(WorkError::retryable)?;
        if rules.is_empty() {
            return Ok(());
        }
        let thread = Thread {
            key: key(tenant, thread_id(received.session_id, &received.from_raw)),
            inbound_id: received.inbound_id,
            cause,
            actor: &self.actor,
        };
        let now = self.clock.now();
        if let Some(reason) = self.ignored(tenant, &received, now).await? {
            return thread.silence(&self.aggregates, None, reason, now).await;
        }
        let text = received.text.as_deref().unwrap_or_default();
        let matching: Vec<&AutoReplyRule> = rules
            .iter()
            .filter(|rule| self.matches(rule, text))
            .collect();
        let Some(first) = matching.first() else {
            return thread
                .silence(&self.aggregates, None, Silence::NoMatch, now)
                .await;
        };
        // The first that matches and is in its own windows: a rule for
        // office hours and another for the night may share a keyword.
        let Some(rule) = self.first_open(tenant, &matching, now).await? else {
            return thread
                .silence(&self.aggregates, Some(first.id), Silence::OutsideHours, now)
                .await;
        };
        let Some(to) = received.from.clone() else {
            return thread
                .silence(&self.aggregates, Some(rule.id), Silence::NoNumber, now)
                .await;
        };
        let message_id = answer_id(received.inbound_id);
        let taken = self
            .aggregates
            .auto_reply_threads
            .execute(
                &thread.key,
                AutoReplyCommand::Answer {
                    inbound_id: received.inbound_id,
                    rule_id: rule.id,
                    cooldown_seconds: u32::try_from(rule.cooldown_seconds).unwrap_or(0),
                    message_id,
                    at: now,
                },
                &thread.metadata("answer"),
            )
            .await;
        match taken {
            Ok(_) => {}
            Err(AggregateError::UserError(refusal)) => {
                return thread
                    .silence(&self.aggregates, Some(rule.id), refusal.silence(), now)
                    .await;
            }
            Err(err) => return Err(WorkError::retryable(err)),
        }
        // The rule's own rate, whoever asks.
        if let Some(limit) = rule.max_per_hour {
            let counted = self
                .aggregates
                .auto_reply_rule_hours
                .execute(
                    &key(tenant, rule_hour_id(rule.id, now)),
                    RuleHourCommand::Count {
                        inbound_id: received.inbound_id,
                        limit: u32::try_from(limit).unwrap_or(0),
                        at: now,
                    },
                    &thread.metadata("count"),
                )
                .await;
            match counted {
                Ok(_) => {}
                Err(AggregateError::UserError(_)) => {
                    return thread
                        .withdraw(&self.aggregates, rule.id, Silence::RateLimited, now)
                        .await;
                }
                Err(err) => return Err(WorkError::retryable(err)),
            }
        }
        let content = match MessageContent::new(
            Some(rule.response.clone()),
            rule.media_id.map(MediaId::from_uuid),
            None,
        ) {
            Ok(content) => content,
            Err(err) => {
                warn!(rule = %rule.id, error = %err, "the rule's answer cannot be sent");
                return thread
                    .withdraw(&self.aggregates, rule.id, Silence::Failed, now)
                    .await;
            }
        };
        let send = DirectSend {
            message_id,
            session_id: received.session_id,
            to: to.into(),
            content,
            outside_active_hours: OutsideActiveHours::Refuse,
            answering_since: Some(received.at),
        };
        let metadata = thread.metadata("send");
        match self.sends.send(tenant, send, &metadata, now).await {
            Ok(_) => {
                info!(rule = %rule.id, message = %message_id, "answered");
                Ok(())
            }
            Err(DirectSendError::Log(err)) => Err(WorkError::retryable(err)),
            Err(refused) => {
                debug!(rule = %rule.id, reason = %refused, "the answer was refused");
                thread
                    .withdraw(&self.aggregates, rule.id, silence_of(&refused), now)
                    .await
            }
        }
    }

    /// The first of `rules` inside its own windows (a rule without any is
    /// always inside), in the tenant's time zone.
    async fn first_open<'r>(
        &self,
        tenant: TenantId,
        rules: &[&'r AutoReplyRule],
        now: DateTime<Utc>,
    ) -> Result<Option<&'r AutoReplyRule>, WorkError> {
        let mut timezone = None;
        for rule in rules {
            let Some(windows) = rule.active_windows.as_ref().filter(|w| !w.is_empty()) else {
                return Ok(Some(rule));
            };
            let zone = match timezone {
                Some(zone) => zone,
                None => {
                    let schedule = self
                        .aggregates
                        .schedules
                        .load(&key(tenant, *tenant.as_uuid()))
                        .await
                        .map_err(WorkError::retryable)?;
                    let zone = schedule.aggregate.active_hours().timezone();
                    timezone = Some(zone);
                    zone
                }
            };
            match rule_hours(zone, windows) {
                Ok(hours) if hours.is_open(now) => return Ok(Some(rule)),
                Ok(_) => {}
                Err(err) => {
                    // Checked when stored; a rule that no longer reads
                    // never answers rather than answer at any hour.
                    warn!(rule = %rule.id, error = %err, "a rule's windows do not read");
                }
            }
        }
        Ok(None)
    }

    /// Why `received` is never answered, if it is not.
    async fn ignored(
        &self,
        tenant: TenantId,
        received: &Received,
        now: DateTime<Utc>,
    ) -> Result<Option<Silence>, WorkError> {
        if received.at < now - STALE_AFTER {
            return Ok(Some(Silence::Stale));
        }
        let raw = received.from_raw.as_str();
        if raw.ends_with("@g.us") {
            return Ok(Some(Silence::Group));
        }
        if raw.ends_with("@broadcast") {
            return Ok(Some(Silence::StatusBroadcast));
        }
        let session = self
            .aggregates
            .sessions
            .load(&key(tenant, received.session_id))
            .await
            .map_err(WorkError::retryable)?
            .aggregate;
        if received.from.is_some() && session.phone_number() == received.from.as_ref() {
            return Ok(Some(Silence::OwnMessage));
        }
        Ok(None)
    }

    /// Whether `text` matches `rule`.
    fn matches(&self, rule: &AutoReplyRule, text: &str) -> bool {
        match Trigger::parse(&rule.trigger) {
            Some(Trigger::Keyword) => folded(text) == folded(&rule.pattern),
            Some(Trigger::Contains) => folded(text).contains(&folded(&rule.pattern)),
            Some(Trigger::Regex) => self.regex(rule).is_some_and(|regex| regex.is_match(text)),
            None => {
                warn!(rule = %rule.id, trigger = %rule.trigger, "unknown trigger");
                false
            }
        }
    }

    /// The rule's regex, compiled once per version of the rule.
    fn regex(&self, rule: &AutoReplyRule) -> Option<Arc<regex::Regex>> {
        let version = (rule.id, rule.updated_at);
        let mut regexes = self.regexes.lock().expect("regex cache");
        if let Some(regex) = regexes.get(&version) {
            return Some(regex.clone());
        }
        match compile(&rule.pattern) {
            Ok(regex) => {
                // Older versions of the rule are not asked for again.
                regexes.retain(|(id, _), _| *id != rule.id);
                let regex = Arc::new(regex);
                regexes.insert(version, regex.clone());
                Some(regex)
            }
            Err(err) => {
                warn!(rule = %rule.id, error = %err, "the rule's regex does not compile");
                None
            }
        }
    }
}

impl Worker for AutoReplies {
    async fn handle(&self, delivery: &Delivery) -> Result<(), WorkError> {
        for recorded in delivery.events().map_err(WorkError::fatal)? {
            let event = self
                .aggregates
                .inbound
                .decode(recorded.clone())
                .map_err(WorkError::fatal)?;
            let InboundEvent::InboundMessageReceived {
                inbound_id,
                session_id,
                from,
                from_raw,
                text,
                at,
                ..
            } = event;
            let tenant: TenantId = recorded
                .key()
                .map_err(WorkError::fatal)?
                .tenant()
                .parse()
                .map_err(|_| WorkError::fatal("an inbound message's tenant is a UUID"))?;
            let received = Received {
                inbound_id,
                session_id,
                from,
                from_raw,
                text,
                at,
            };
            self.decide(tenant, received, &recorded).await?;
        }
        Ok(())
    }
}

/// What the auto-responder reads of a received message.
struct Received {
    inbound_id: InboundId,
    session_id: SessionId,
    from: Option<Phone>,
    from_raw: String,
    text: Option<String>,
    at: DateTime<Utc>,
}

/// The thread a decision is recorded on.
struct Thread<'a> {
    key: AggregateKey,
    inbound_id: InboundId,
    cause: &'a RecordedEvent,
    actor: &'a Actor,
}

impl Thread<'_> {
    fn metadata(&self, purpose: &str) -> CommandMetadata {
        CommandMetadata::caused_by(
            self.cause,
            &format!("auto-reply {purpose}"),
            self.actor.clone(),
        )
    }

    async fn silence(
        &self,
        aggregates: &Commands,
        rule_id: Option<Uuid>,
        reason: Silence,
        at: DateTime<Utc>,
    ) -> Result<(), WorkError> {
        debug!(reason = reason.as_str(), "not answered");
        aggregates
            .auto_reply_threads
            .execute(
                &self.key,
                AutoReplyCommand::Silence {
                    inbound_id: self.inbound_id,
                    rule_id,
                    reason,
                    at,
                },
                &self.metadata("silence"),
            )
            .await
            .map(drop)
            .map_err(WorkError::retryable)
    }

    async fn withdraw(
        &self,
        aggregates: &Commands,
        rule_id: Uuid,
        reason: Silence,
        at: DateTime<Utc>,
    ) -> Result<(), WorkError> {
        aggregates
            .auto_reply_threads
            .execute(
                &self.key,
                AutoReplyCommand::Withdraw {
                    inbound_id: self.inbound_id,
                    rule_id,
                    reason,
                    at,
                },
                &self.metadata("withdraw"),
            )
            .await
            .map(drop)
            .map_err(WorkError::retryable)
    }
}

/// Why a single send's refusal leaves a message unanswered.
fn silence_of(refused: &DirectSendError) -> Silence {
    match refused {
        DirectSendError::OutsideActiveHours { .. } => Silence::OutsideHours,
        DirectSendError::InsufficientPoints { .. } => Silence::NoPoints,
        DirectSendError::PlanExpired { .. } => Silence::PlanExpired,
        DirectSendError::TenantSuspended { .. } => Silence::TenantSuspended,
        DirectSendError::DailyLimitReached { .. } => Silence::DailyLimitReached,
        DirectSendError::SessionNotFound | DirectSendError::SessionNotReady { .. } => {
            Silence::SessionNotReady
        }
        // An answer opens no conversation, is no template and goes to a
        // person: these are
        // not expected, and fail.
        DirectSendError::TemplateNotSupported { .. }
        | DirectSendError::GroupsNotSupported { .. }
        | DirectSendError::MediaNotSupported { .. }
        | DirectSendError::Template(_)
        | DirectSendError::OutsideCustomerServiceWindow { .. }
        | DirectSendError::Log(_)
        | DirectSendError::Database(_) => Silence::Failed,
    }
}

/// `text` as keywords compare: trimmed, inner spaces as one, lower case,
/// without accents.
fn folded(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::folded;

    #[test]
    fn keywords_compare_without_case_accents_or_extra_spaces() {
        assert_eq!(folded("  Térima   KASIH "), "terima kasih");
        assert_eq!(folded("JAM BUKA?"), "jam buka?");
        assert_ne!(folded("jam buka"), folded("jam tutup"));
    }
}
