//! Single sends: one message to one recipient, written by its sender (the
//! gateway's `POST /api/v1/messages`), sent by the same message aggregate
//! and the same send loop as a campaign's.
//!
//! A single send is admitted to the *direct campaign* of its session and
//! local day (see [`wablast_domain::campaign`]), then queued for the
//! session like any campaign message:
//!
//! 1. What would refuse it anyway is said at once: no such session, a
//!    session that is not ready, an expired plan, a daily limit used up,
//!    and (when the caller asks so) closed active hours. These are read
//!    from the aggregates; the send loop's slot still decides at send time.
//! 2. The direct campaign is opened (once a day per session).
//! 3. The message is admitted to the campaign's current recipient batch,
//!    whose points the wallet reserved before the batch took its first
//!    message (`ExtendReservation` to the batch's end: idempotent, so
//!    two callers opening the same batch reserve once). A full batch sends
//!    the message to the next one, reserved likewise, for up to
//!    [`BLOCK`] messages or what the wallet still has.
//! 4. Its send command goes on the session's queue, carrying the message
//!    as its batch admitted it (its first commit is the send loop's).
//!
//! A Cloud API session ("official mode") sends under Meta's rules, checked
//! in step 1 for its sends only: a WhatsApp template (only such a session
//! sends one) must be synced for it, approved and given its parameters;
//! free text or media goes only to someone who wrote to it in the last 24
//! hours (the customer-service window), read from the messages received.
//!
//! Every step may be repeated: the campaign opens once, a message id is
//! admitted once, and a command delivered twice finds its message sent.
//! A message id derived from the caller's idempotency key makes a retried
//! request land on the same message.
//!
//! The wallet is touched once per block, not per message; the campaign
//! once a day. A session's sends are decided in a *lane* of its own in a
//! process, a group at a time: while one group is written, the requests
//! arriving wait and go together in the next, so under load a group costs
//! one read of the session, wallet and schedule, one commit of admissions
//! (per batch) and one publish of send commands, whatever its size; the
//! lane goes on to the next group while the queue acknowledges the last
//! (each request is answered once its command is stored). A lone request
//! is a group of one. Its batch sees no conflicting writer
//! but another process's; a group's commit carries the metadata of its
//! first request.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::{Arc, Mutex};

use async_nats::jetstream::context::PublishAckFuture;
use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::Aggregate;
use cqrs_es::AggregateError;
use sqlx::PgPool;
use tokio::sync::{OnceCell, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, instrument, warn};
use wablast_domain::campaign::{CampaignCommand, CampaignError, direct_campaign_id};
use wablast_domain::recipient_batch::{
    BatchRecipient, RecipientBatch, RecipientBatchCommand, RecipientBatchError, batch_id,
};
use wablast_domain::schedule::Schedule;
use wablast_domain::session::{Driver, Session, SessionStatus};
use wablast_domain::session_day::{self, SessionDayEvent};
use wablast_domain::types::Chat;
use wablast_domain::types::whatsapp_template::{
    CUSTOMER_SERVICE_WINDOW, TemplateUseError, window_is_open,
};
use wablast_domain::types::{
    ActiveHours, CampaignId, MessageContent, MessageId, Points, SessionId, TenantId, Throttle,
};
use wablast_domain::wallet::{Wallet, WalletCommand, WalletError};
use wablast_eventstore::{CommandMetadata, EventLog, EventStoreError, Loaded};
use wablast_projections::queries::{chats, whatsapp_templates};
use wablast_projections::wait::Position;

use crate::changes::{Changes, DayCounts, Kept};
use crate::commands::{Commands, day_key, follow_up, key, position, tenant_key};
use crate::sends::{SendCommand, SendQueue};

/// The most messages one batch of a direct campaign holds, and so the most
/// points one reservation block takes (`BLOCK × 2`).
pub const BLOCK: u32 = 50;

/// What a caller asks to send.
#[derive(Clone, Debug)]
pub struct DirectSend {
    /// The message's id (from the caller's idempotency key, or new).
    pub message_id: MessageId,
    /// The session that sends it.
    pub session_id: SessionId,
    /// The recipient: a person or a group the session's number is in.
    pub to: Chat,
    /// What it says.
    pub content: MessageContent,
    /// What to do when the active hours are closed now.
    pub outside_active_hours: OutsideActiveHours,
    /// When the recipient last wrote to the session, when the caller
    /// knows (an answer to a message just received): it opens a Cloud API
    /// session's customer-service window whatever the read side has
    /// projected yet.
    pub answering_since: Option<DateTime<Utc>>,
}

/// What a single send does when the tenant's active hours are closed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutsideActiveHours {
    /// It is queued and goes out when they open.
    #[default]
    Wait,
    /// It is refused.
    Refuse,
}

/// A single send admitted and queued.
#[derive(Clone, Debug)]
pub struct Queued {
    /// The message.
    pub message_id: MessageId,
    /// The direct campaign holding it.
    pub campaign_id: CampaignId,
    /// When it was admitted.
    pub queued_at: DateTime<Utc>,
    /// Where its admission was written (what a read waits for).
    pub written: Position,
}

/// Why a single send was not queued.
#[derive(Clone, Debug, thiserror::Error)]
pub enum DirectSendError {
    /// The tenant has no such session.
    #[error("no such session")]
    SessionNotFound,
    /// The session cannot send now.
    #[error("the session is {status}, not ready: start it and link it first")]
    SessionNotReady {
        /// Its status.
        status: SessionStatus,
    },
    /// No plan, or it ran out.
    #[error("the plan has expired: renew it to send")]
    PlanExpired {
        /// When it ran out (`None`: never subscribed).
        expired_at: Option<DateTime<Utc>>,
    },
    /// The platform operator suspended the tenant.
    #[error("the tenant is suspended: {reason}")]
    TenantSuspended {
        /// Why.
        reason: String,
    },
    /// The session sent its daily limit today.
    #[error("the session sent its daily limit of {limit} today")]
    DailyLimitReached {
        /// The limit.
        limit: u32,
        /// When the next local day starts.
        retry_at: DateTime<Utc>,
    },
    /// The active hours are closed (or sending is paused) and the caller
    /// asked not to wait.
    #[error("outside the active hours")]
    OutsideActiveHours {
        /// When they open next (`None`: paused by hand).
        opens_at: Option<DateTime<Utc>>,
    },
    /// The wallet has not the points of one message.
    #[error("{required} points are needed, {available} are available")]
    InsufficientPoints {
        /// The points needed.
        required: Points,
        /// The points available.
        available: Points,
    },
    /// A WhatsApp template from a session that is not a Cloud API one.
    #[error(
        "WhatsApp templates are sent by Cloud API sessions only; this session's driver is {driver}"
    )]
    TemplateNotSupported {
        /// The session's driver.
        driver: Driver,
    },
    /// A message to a group from a session whose driver does not send to
    /// groups (Cloud API numbers reach people only).
    #[error("this session's driver ({driver}) does not send to groups")]
    GroupsNotSupported {
        /// The session's driver.
        driver: Driver,
    },
    /// An attachment from a session whose driver sends text only (a native
    /// session, for now).
    #[error("this session's driver ({driver}) does not send attachments yet: send text")]
    MediaNotSupported {
        /// The session's driver.
        driver: Driver,
    },
    /// The template cannot be sent (not synced, not approved, the wrong
    /// number of parameters, a header not supported).
    #[error(transparent)]
    Template(TemplateUseError),
    /// Free text or media from a Cloud API session to someone who has not
    /// written to it within the customer-service window.
    #[error(
        "{to} has not written to this Cloud API number in the last {} hours: WhatsApp only lets it start a conversation with an approved template",
        CUSTOMER_SERVICE_WINDOW.num_hours()
    )]
    OutsideCustomerServiceWindow {
        /// The recipient.
        to: Chat,
        /// When they last wrote to the session, if ever.
        last_inbound_at: Option<DateTime<Utc>>,
    },
    /// The event log could not be read or written: try again (with the
    /// same idempotency key, the same message).
    #[error("the event log: {0}")]
    Log(String),
    /// The database could not be read: try again.
    #[error("the database: {0}")]
    Database(String),
}

impl From<sqlx::Error> for DirectSendError {
    fn from(err: sqlx::Error) -> Self {
        Self::Database(err.to_string())
    }
}

impl<E: std::error::Error> From<AggregateError<E>> for DirectSendError {
    fn from(err: AggregateError<E>) -> Self {
        Self::Log(err.to_string())
    }
}

impl From<EventStoreError> for DirectSendError {
    fn from(err: EventStoreError) -> Self {
        Self::Log(err.to_string())
    }
}

/// The batch a direct campaign admits to now.
#[derive(Clone, Copy, Debug)]
struct Block {
    index: u32,
    first: u64,
    capacity: u32,
}

/// The most single sends of one session decided together: one read of the
/// session, wallet and schedule, one commit of admissions (per batch), one
/// publish of their send commands.
const GROUP: usize = 500;

/// A single send waiting for its session's lane.
struct Request {
    send: DirectSend,
    metadata: CommandMetadata,
    now: DateTime<Utc>,
    reply: oneshot::Sender<Result<Queued, DirectSendError>>,
}

impl Request {
    /// Its recipient as a batch admits it, sent by `session_id`.
    fn recipient(&self, session_id: SessionId) -> BatchRecipient {
        BatchRecipient {
            message_id: self.send.message_id,
            session_id,
            to: self.send.to.clone(),
            name: None,
            variables: Default::default(),
            content: Some(self.send.content.clone()),
        }
    }

    fn answer(self, result: Result<Queued, DirectSendError>) {
        // A caller that went away learns nothing; its message stands.
        let _ = self.reply.send(result);
    }
}

/// One session's single sends in a process: requests wait here while the
/// ones before them are decided, then go together.
#[derive(Default)]
struct Lane {
    waiting: Mutex<Waiting>,
    admitting: tokio::sync::Mutex<Admitting>,
}

#[derive(Default)]
struct Waiting {
    requests: Vec<Request>,
    /// A task is deciding this lane's requests.
    draining: bool,
}

/// What a lane knows of its session's direct campaign: the one it admits
/// to, the batch that takes admissions and that batch's state.
#[derive(Default)]
struct Admitting {
    /// The session, wallet and schedule as the last group read them, kept
    /// while no commit of theirs is seen ([`Changes`]).
    session: Option<Kept<Session>>,
    wallet: Option<Kept<Wallet>>,
    schedule: Option<Kept<Schedule>>,
    /// The tenant's active hours as the last group read them.
    hours: Option<ActiveHours>,
    campaign: Option<CampaignId>,
    block: Option<Block>,
    batch: Option<Loaded<RecipientBatch>>,
}

/// Ends a lane's draining if its task panics: the requests waiting are
/// answered (their senders dropped) and the next request starts anew.
struct Draining<'a>(&'a Lane);

impl Drop for Draining<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut waiting = self.0.waiting.lock().unwrap_or_else(|e| e.into_inner());
            waiting.requests.clear();
            waiting.draining = false;
        }
    }
}

/// Single sends of an API process.
#[derive(Clone)]
pub struct DirectSends {
    inner: Arc<Inner>,
}

struct Inner {
    commands: Commands,
    log: EventLog,
    /// Where a Cloud API session's templates and received messages are
    /// read.
    db: PgPool,
    queue: OnceCell<SendQueue>,
    /// The commits of sessions, wallets and schedules seen, which tell a
    /// lane whether what it read is still current.
    changes: OnceCell<Changes>,
    /// The session days' counts their commits told (listened to with
    /// `changes`).
    day_counts: DayCounts,
    /// Stops watching them when the last handle goes.
    stop: CancellationToken,
    /// Per session: its lane.
    lanes: Mutex<HashMap<(TenantId, SessionId), Arc<Lane>>>,
    /// Per tenant: its sessions' blocks are reserved one at a time here,
    /// so that sessions opening blocks at once do not race on the wallet.
    reserving: Mutex<HashMap<TenantId, Arc<tokio::sync::Mutex<()>>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl DirectSends {
    /// Single sends over `log`, reading the query tables of `db`.
    pub fn new(commands: Commands, log: EventLog, db: PgPool) -> Self {
        Self {
            inner: Arc::new(Inner {
                commands,
                log,
                db,
                queue: OnceCell::new(),
                changes: OnceCell::new(),
                day_counts: DayCounts::default(),
                stop: CancellationToken::new(),
                lanes: Mutex::default(),
                reserving: Mutex::default(),
            }),
        }
    }

    /// Admits and queues one single send of `tenant` at `now`.
    ///
    /// The sends of one session are decided in groups: while one group is
    /// written, the requests arriving wait and go in the next one. Each is
    /// answered for itself (a refusal refuses only its own request).
    #[instrument(skip(self, send, metadata), fields(session = %send.session_id, message = %send.message_id))]
    pub async fn send(
        &self,
        tenant: TenantId,
        send: DirectSend,
        metadata: &CommandMetadata,
        now: DateTime<Utc>,
    ) -> Result<Queued, DirectSendError> {
        let session_id = send.session_id;
        let lane = self.inner.lane(tenant, session_id);
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut waiting = lane.waiting.lock().expect("lane lock");
            waiting.requests.push(Request {
                send,
                metadata: metadata.clone(),
                now,
                reply,
            });
            !std::mem::replace(&mut waiting.draining, true)
        };
        if start {
            // Its own task: a caller that goes away does not stop the
            // requests waiting behind it.
            let inner = self.inner.clone();
            tokio::spawn(async move { inner.drain(tenant, session_id, &lane).await });
        }
        answer.await.unwrap_or_else(|_| {
            Err(DirectSendError::Log(
                "the admission was interrupted: retry with the same idempotency key".to_owned(),
            ))
        })
    }
}

impl Inner {
    async fn queue(&self) -> Result<&SendQueue, DirectSendError> {
        self.queue
            .get_or_try_init(|| SendQueue::open(self.log.jetstream(), self.log.prefix()))
            .await
            .map_err(DirectSendError::from)
    }

    fn lane(&self, tenant: TenantId, session_id: SessionId) -> Arc<Lane> {
        let mut lanes = self.lanes.lock().expect("lanes lock");
        lanes.entry((tenant, session_id)).or_default().clone()
    }

    /// Decides the lane's requests, a group at a time, until none waits.
    async fn drain(&self, tenant: TenantId, session_id: SessionId, lane: &Lane) {
        let _draining = Draining(lane);
        let mut admitting = lane.admitting.lock().await;
        loop {
            let group: Vec<Request> = {
                let mut waiting = lane.waiting.lock().expect("lane lock");
                if waiting.requests.is_empty() {
                    waiting.draining = false;
                    return;
                }
                let n = waiting.requests.len().min(GROUP);
                waiting.requests.drain(..n).collect()
            };
            debug!(requests = group.len(), "single sends decided together");
            self.decide(tenant, session_id, &mut admitting, group).await;
        }
    }

    /// Decides a group of one session's requests: refuses what must be,
    /// admits the rest to the day's direct campaign and queues them.
    async fn decide(
        &self,
        tenant: TenantId,
        session_id: SessionId,
        admitting: &mut Admitting,
        group: Vec<Request>,
    ) {
        let commands = &self.commands;
        // 1. What refuses a send anyway: the session, the wallet, the
        // schedule and the day's counter, read side by side (the counter
        // of the day the time zone of the last group gives; read again
        // if it changed).
        let (session_key, tenant_key) = (key(tenant, session_id), tenant_key(tenant));
        let guessed = admitting
            .hours
            .as_ref()
            .map(|hours| hours.local_date(group[0].now));
        let changes = self.changes().await;
        let (session, wallet, schedule, counted) = tokio::join!(
            changes.current(
                &commands.sessions,
                tenant,
                &session_key,
                &mut admitting.session
            ),
            changes.current(
                &commands.wallets,
                tenant,
                &tenant_key,
                &mut admitting.wallet
            ),
            changes.current(
                &commands.schedules,
                tenant,
                &tenant_key,
                &mut admitting.schedule
            ),
            async {
                let day = guessed?;
                Some((day, self.day_count(tenant, session_id, day).await))
            },
        );
        let (session, wallet, schedule) = match (session, wallet, schedule) {
            (Ok(session), Ok(wallet), Ok(schedule)) => (session, wallet, schedule),
            (Err(err), _, _) => return refuse_all(group, &err.into()),
            (_, Err(err), _) => return refuse_all(group, &err.into()),
            (_, _, Err(err)) => return refuse_all(group, &err.into()),
        };
        if !session.exists() || session.is_deleted() {
            return refuse_all(group, &DirectSendError::SessionNotFound);
        }
        if !session.is_ready() {
            let status = session.status();
            return refuse_all(group, &DirectSendError::SessionNotReady { status });
        }
        let hours = schedule.active_hours();
        admitting.hours = Some(hours.clone());
        let limit = session.daily_limit().value();
        // Per local day (a group may straddle midnight): sent or taken.
        let mut days: Vec<(NaiveDate, u32, Vec<Request>)> = Vec::new();
        if let Some((day, Ok(count))) = counted {
            days.push((day, count, Vec::new()));
        }
        for request in group {
            let now = request.now;
            match wallet.can_send_at(now) {
                Err(WalletError::PlanExpired { expired_at }) => {
                    request.answer(Err(DirectSendError::PlanExpired { expired_at }));
                    continue;
                }
                Err(WalletError::Suspended { reason }) => {
                    request.answer(Err(DirectSendError::TenantSuspended { reason }));
                    continue;
                }
                _ => {}
            }
            let day = hours.local_date(now);
            let slot = match days.iter().position(|(d, _, _)| *d == day) {
                Some(slot) => slot,
                None => match self.day_count(tenant, session_id, day).await {
                    Ok(count) => {
                        days.push((day, count, Vec::new()));
                        days.len() - 1
                    }
                    Err(err) => {
                        request.answer(Err(err));
                        continue;
                    }
                },
            };
            let (_, taken, accepted) = &mut days[slot];
            if *taken >= limit {
                request.answer(Err(DirectSendError::DailyLimitReached {
                    limit,
                    retry_at: hours.next_local_midnight(now),
                }));
                continue;
            }
            if request.send.outside_active_hours == OutsideActiveHours::Refuse
                && !hours.is_open(now)
            {
                request.answer(Err(DirectSendError::OutsideActiveHours {
                    opens_at: hours.next_opening(now),
                }));
                continue;
            }
            if let Err(err) = self
                .official_rules(tenant, session_id, session.driver(), &request)
                .await
            {
                request.answer(Err(err));
                continue;
            }
            *taken += 1;
            accepted.push(request);
        }
        for (day, _, accepted) in days {
            if accepted.is_empty() {
                continue;
            }
            let campaign_id = direct_campaign_id(session_id, day);
            let session = (session_id, session.throttle());
            let admitted = self
                .admit(tenant, session, day, campaign_id, admitting, accepted)
                .await;
            self.enqueue(tenant, session_id, campaign_id, admitted)
                .await;
        }
    }

    /// What tells whether a lane's copies are current: watched from the
    /// first send on. Without the watch (NATS refused the subscription) a
    /// copy is still trusted for [`Changes::MAX_AGE`] only.
    async fn changes(&self) -> &Changes {
        self.changes
            .get_or_init(|| async {
                let changes = Changes::default();
                let watched = changes
                    .watch(
                        &self.log.jetstream().client(),
                        self.log.prefix(),
                        &[Session::TYPE, Wallet::TYPE, Schedule::TYPE],
                        self.stop.clone(),
                    )
                    .await;
                if let Err(err) = watched {
                    warn!(error = %err, "single sends cannot watch commits: they read the log at least once a second");
                }
                let listened = self
                    .day_counts
                    .listen(
                        &self.log.jetstream().client(),
                        self.log.prefix(),
                        self.stop.clone(),
                    )
                    .await;
                if let Err(err) = listened {
                    warn!(error = %err, "single sends cannot listen to day counts: they read them for every group");
                }
                changes
            })
            .await
    }

    /// Meta's rules for a Cloud API session's send (see the module docs);
    /// a template from any other session is refused.
    async fn official_rules(
        &self,
        tenant: TenantId,
        session_id: SessionId,
        driver: Driver,
        request: &Request,
    ) -> Result<(), DirectSendError> {
        let send = &request.send;
        // Cloud API numbers reach people only; the native driver sends
        // neither to groups nor attachments yet: refused here rather than
        // failed at the send.
        if send.to.group().is_some() && matches!(driver, Driver::Cloud | Driver::Native) {
            return Err(DirectSendError::GroupsNotSupported { driver });
        }
        if send.content.media_id.is_some() && driver == Driver::Native {
            return Err(DirectSendError::MediaNotSupported { driver });
        }
        match (&send.content.template, driver) {
            (None, Driver::Cloud) if window_is_open(send.answering_since, request.now) => Ok(()),
            (None, Driver::Cloud) => {
                let last_inbound_at =
                    chats::last_inbound_at(&self.db, tenant, session_id, send.to.as_str()).await?;
                if window_is_open(last_inbound_at, request.now) {
                    Ok(())
                } else {
                    Err(DirectSendError::OutsideCustomerServiceWindow {
                        to: send.to.clone(),
                        last_inbound_at,
                    })
                }
            }
            (None, _) => Ok(()),
            (Some(template), Driver::Cloud) => {
                let synced = whatsapp_templates::find(
                    &self.db,
                    tenant,
                    session_id,
                    &template.name,
                    &template.language,
                )
                .await?;
                match synced {
                    None => Err(TemplateUseError::NotFound {
                        name: template.name.clone(),
                        language: template.language.clone(),
                    }),
                    Some(synced) => {
                        synced.check_use(template.parameters.len(), template.header_given())
                    }
                }
                .map_err(DirectSendError::Template)
            }
            (Some(_), driver) => Err(DirectSendError::TemplateNotSupported { driver }),
        }
    }

    /// Slots the session was granted on `day`: its day counter's count, as
    /// its last commit told it (see [`DayCounts`]), or read off its last
    /// event (one get, not a fold of the day's grants) when none was seen
    /// lately.
    async fn day_count(
        &self,
        tenant: TenantId,
        session_id: SessionId,
        day: NaiveDate,
    ) -> Result<u32, DirectSendError> {
        let key = day_key(tenant, &session_day::aggregate_id(session_id, day));
        if let Some(count) = self.day_counts.fresh(&key) {
            return Ok(count);
        }
        let last = self.commands.session_days.last_event(&key).await?;
        let count = last.as_ref().map_or(0, SessionDayEvent::count_after);
        self.day_counts
            .keep(key.tenant().to_owned(), key.id().to_owned(), count);
        Ok(count)
    }

    /// Admits `requests` to the day's direct campaign, in order; answers
    /// those it could not admit and returns the others with where their
    /// admission was written.
    async fn admit(
        &self,
        tenant: TenantId,
        (session_id, throttle): (SessionId, Throttle),
        day: NaiveDate,
        campaign_id: CampaignId,
        admitting: &mut Admitting,
        mut requests: Vec<Request>,
    ) -> Vec<(Request, Position)> {
        let metadata = follow_up(&requests[0].metadata);
        let now = requests[0].now;
        // 2. The day's direct campaign, opened once.
        if admitting.campaign != Some(campaign_id) {
            if let Err(err) = self
                .open(
                    tenant,
                    (session_id, throttle),
                    day,
                    campaign_id,
                    &metadata,
                    now,
                )
                .await
            {
                refuse_all(requests, &err);
                return Vec::new();
            }
            *admitting = Admitting {
                hours: admitting.hours.take(),
                campaign: Some(campaign_id),
                ..Admitting::default()
            };
        }
        // 3. Admitted to batches their points were reserved for.
        let mut admitted = Vec::with_capacity(requests.len());
        while !requests.is_empty() {
            let block = match admitting.block {
                Some(block) => block,
                None => match self
                    .current_block(tenant, campaign_id, &metadata, now)
                    .await
                {
                    Ok(block) => block,
                    Err(err) => {
                        refuse_all(requests, &err);
                        break;
                    }
                },
            };
            admitting.block = Some(block);
            let commands = requests
                .iter()
                .map(|request| RecipientBatchCommand::AdmitRecipient {
                    campaign_id,
                    index: block.index,
                    first: block.first,
                    capacity: block.capacity,
                    recipient: request.recipient(session_id),
                    at: request.now,
                })
                .collect();
            let decided = self
                .commands
                .recipient_batches
                .execute_each_on(
                    &key(tenant, batch_id(campaign_id, block.index)),
                    &mut admitting.batch,
                    commands,
                    &metadata,
                )
                .await;
            let (written, accepted, refusal) = match decided {
                Ok(decided) => (
                    Some(position(&decided.committed)),
                    decided.accepted,
                    decided.refusal,
                ),
                // The first refused: nothing written.
                Err(AggregateError::UserError(refusal)) => (None, 0, Some(refusal)),
                Err(err) => {
                    // What this process knew may be stale: read it again.
                    admitting.block = None;
                    admitting.batch = None;
                    refuse_all(requests, &err.into());
                    break;
                }
            };
            if let Some(written) = written {
                admitted.extend(requests.drain(..accepted).map(|request| (request, written)));
            }
            match refusal {
                None => {}
                Some(RecipientBatchError::Full { capacity }) => {
                    // The next batch starts where this one ends.
                    let next = self
                        .next_block(
                            tenant,
                            campaign_id,
                            block.index + 1,
                            block.first + u64::from(capacity),
                            &metadata,
                            now,
                        )
                        .await;
                    match next {
                        Ok(next) => {
                            admitting.block = Some(next);
                            admitting.batch = None;
                        }
                        Err(err) => {
                            // The full batch stays current: the next
                            // request asks the wallet again.
                            refuse_all(requests, &err);
                            break;
                        }
                    }
                }
                Some(refusal) => {
                    admitting.block = None;
                    admitting.batch = None;
                    refuse_all(requests, &DirectSendError::Log(refusal.to_string()));
                    break;
                }
            }
        }
        admitted
    }

    /// Puts the admitted messages' send commands on the session's queue
    /// (their first commit is the send loop's) and answers their requests
    /// once the queue stored them. The commands are published here, in
    /// the lane's order; the wait for the queue's acknowledgements is a
    /// task of its own, so the lane decides its next group meanwhile.
    async fn enqueue(
        &self,
        tenant: TenantId,
        session_id: SessionId,
        campaign_id: CampaignId,
        admitted: Vec<(Request, Position)>,
    ) {
        if admitted.is_empty() {
            return;
        }
        let queue = match self.queue().await {
            Ok(queue) => queue,
            Err(err) => {
                return refuse_all(admitted.into_iter().map(|(request, _)| request), &err);
            }
        };
        let commands: Vec<SendCommand> = admitted
            .iter()
            .map(|(request, _)| SendCommand {
                tenant_id: tenant,
                campaign_id,
                message_id: request.send.message_id,
                queued_at: None,
                queued: Some(Box::new(
                    request
                        .recipient(session_id)
                        .into_queued(campaign_id, request.now),
                )),
            })
            .collect();
        // Many queue messages in flight, then their acknowledgements.
        let mut acks = Vec::new();
        let mut unpublished = None;
        for chunk in commands.chunks(SendQueue::COMMANDS_PER_MESSAGE) {
            match queue.publish(session_id, chunk).await {
                Ok(ack) => acks.push(ack),
                Err(err) => {
                    unpublished = Some(err.to_string());
                    break;
                }
            }
        }
        tokio::spawn(answer_when_stored(campaign_id, admitted, acks, unpublished));
    }

    /// Opens the session's direct campaign of `day` (its throttle is the
    /// session's then; the send loop follows the session's as it changes).
    async fn open(
        &self,
        tenant: TenantId,
        (session_id, throttle): (SessionId, Throttle),
        day: NaiveDate,
        campaign_id: CampaignId,
        metadata: &CommandMetadata,
        now: DateTime<Utc>,
    ) -> Result<(), DirectSendError> {
        let opened = self
            .commands
            .campaigns
            .execute(
                &key(tenant, campaign_id),
                CampaignCommand::OpenDirect {
                    campaign_id,
                    session_id,
                    day,
                    throttle,
                    at: now,
                },
                &follow_up(metadata),
            )
            .await;
        match opened {
            Ok(_) => Ok(()),
            Err(AggregateError::UserError(CampaignError::AlreadyCreated)) => Err(
                DirectSendError::Log(format!("campaign {campaign_id} is not a direct campaign")),
            ),
            Err(err) => Err(err.into()),
        }
    }

    /// The batch the campaign admits to now, as the log says: the first
    /// batch not full (a new one when all are).
    async fn current_block(
        &self,
        tenant: TenantId,
        campaign_id: CampaignId,
        metadata: &CommandMetadata,
        now: DateTime<Utc>,
    ) -> Result<Block, DirectSendError> {
        let mut index = 0;
        let mut first = 0;
        loop {
            let batch = self
                .commands
                .recipient_batches
                .load(&key(tenant, batch_id(campaign_id, index)))
                .await?
                .aggregate;
            match batch.admission_bounds() {
                None => break,
                Some((next, true)) => {
                    index += 1;
                    first = next;
                }
                Some((next, false)) => {
                    let capacity = u32::try_from(next - first).unwrap_or(BLOCK);
                    // Its points were reserved before it took its first
                    // message; asked again, the wallet records nothing.
                    self.reserve(tenant, campaign_id, next, metadata, now)
                        .await?;
                    return Ok(Block {
                        index,
                        first,
                        capacity,
                    });
                }
            }
        }
        debug!(%campaign_id, index, "a new batch for single sends");
        self.next_block(tenant, campaign_id, index, first, metadata, now)
            .await
    }

    /// Opens batch `index` of the campaign, starting at message `first`:
    /// reserves its points first, as many as the wallet has up to
    /// [`BLOCK`] messages.
    async fn next_block(
        &self,
        tenant: TenantId,
        campaign_id: CampaignId,
        index: u32,
        first: u64,
        metadata: &CommandMetadata,
        now: DateTime<Utc>,
    ) -> Result<Block, DirectSendError> {
        let wallet = self
            .commands
            .wallets
            .load(&tenant_key(tenant))
            .await?
            .aggregate;
        // What is reserved for the campaign beyond `first` messages (a
        // block another process reserved, or a retry's) is used first.
        let reserved = wallet.reservation(campaign_id).unwrap_or(Points::ZERO);
        let covered = reserved.value() / Points::PER_MESSAGE.value();
        let spare = covered.saturating_sub(first);
        let affordable = spare + wallet.available().value() / Points::PER_MESSAGE.value();
        let capacity = u32::try_from(affordable.min(u64::from(BLOCK))).unwrap_or(BLOCK);
        if capacity == 0 {
            return Err(DirectSendError::InsufficientPoints {
                required: Points::PER_MESSAGE,
                available: wallet.available(),
            });
        }
        self.reserve(
            tenant,
            campaign_id,
            first + u64::from(capacity),
            metadata,
            now,
        )
        .await?;
        Ok(Block {
            index,
            first,
            capacity,
        })
    }

    /// Makes the campaign's reservation cover `messages` messages.
    async fn reserve(
        &self,
        tenant: TenantId,
        campaign_id: CampaignId,
        messages: u64,
        metadata: &CommandMetadata,
        now: DateTime<Utc>,
    ) -> Result<(), DirectSendError> {
        let turn = self
            .reserving
            .lock()
            .expect("reserving lock")
            .entry(tenant)
            .or_default()
            .clone();
        let _turn = turn.lock().await;
        let reserved = self
            .commands
            .wallets
            .execute(
                &tenant_key(tenant),
                WalletCommand::ExtendReservation {
                    campaign_id,
                    messages,
                    at: now,
                },
                &follow_up(metadata),
            )
            .await;
        match reserved {
            Ok(_) => Ok(()),
            Err(AggregateError::UserError(WalletError::InsufficientPoints {
                required,
                available,
            })) => Err(DirectSendError::InsufficientPoints {
                required,
                available,
            }),
            Err(AggregateError::UserError(WalletError::PlanExpired { expired_at })) => {
                Err(DirectSendError::PlanExpired { expired_at })
            }
            Err(AggregateError::UserError(WalletError::Suspended { reason })) => {
                Err(DirectSendError::TenantSuspended { reason })
            }
            Err(err) => Err(err.into()),
        }
    }
}

/// Answers every request of `requests` with `err`.
/// Answers the requests `admitted` as their send commands' queue messages
/// (`acks`, in order, [`SendQueue::COMMANDS_PER_MESSAGE`] requests each)
/// are stored; those past the acknowledgements were not published
/// (`unpublished` says why).
async fn answer_when_stored(
    campaign_id: CampaignId,
    admitted: Vec<(Request, Position)>,
    acks: Vec<PublishAckFuture>,
    unpublished: Option<String>,
) {
    let mut stored = futures::future::join_all(acks.into_iter().map(IntoFuture::into_future))
        .await
        .into_iter();
    let mut admitted = admitted.into_iter();
    loop {
        let chunk: Vec<_> = admitted
            .by_ref()
            .take(SendQueue::COMMANDS_PER_MESSAGE)
            .collect();
        if chunk.is_empty() {
            return;
        }
        let outcome = match stored.next() {
            Some(ack) => ack.map(drop).map_err(|err| err.to_string()),
            None => Err(unpublished.clone().unwrap_or_default()),
        };
        for (request, written) in chunk {
            let result = match &outcome {
                Ok(()) => Ok(Queued {
                    message_id: request.send.message_id,
                    campaign_id,
                    queued_at: request.now,
                    written,
                }),
                Err(err) => Err(DirectSendError::Log(err.clone())),
            };
            request.answer(result);
        }
    }
}

fn refuse_all(requests: impl IntoIterator<Item = Request>, err: &DirectSendError) {
    for request in requests {
        request.answer(Err(err.clone()));
    }
}
