//! The per-session send loop: takes the session's send commands in order
//! and, for each, asks for a slot, waits its turn, sends, and records what
//! happened.
//!
//! The loop never decides whether a send is allowed. It asks the session's
//! day counter for a slot and obeys: a daily limit reached means waiting for
//! the next local day, a closed window waiting for the next opening (the
//! campaign says so: it pauses as `outside_active_hours` and resumes when
//! the window opens). The aggregates hold every other rule too: a message
//! is taken (`queued → sending`) before it leaves and its outcome recorded
//! after; a message found `sending` when its command comes back was cut off
//! by a crash (or its answer was lost): it is never sent again, and the
//! driver's peer is asked what became of it by the id chosen before it went
//! out ([`Driver::choose_message_id`], [`Driver::look_up`]): sent, failed
//! for good (it never left), or `unknown` when the peer cannot tell.
//!
//! Per message, in the order of the session's queue:
//! 1. the message must still wait (`queued`, or a failure that may be
//!    retried), its campaign must be running (paused: the command waits; an
//!    auto-pause or a closed window is resumed by the loop when its time
//!    comes; finished: the message is cancelled);
//! 2. the throttle: a random pause between the campaign's `min_delay_ms`
//!    and `max_delay_ms` (a single send: the session's) after the
//!    session's previous send;
//! 3. a slot from the day counter, with the facts it needs (session ready,
//!    daily limit, active hours, plan expiry, campaign running);
//! 4. `StartSending`, the template rendered (spintax seeded by the message
//!    id, so a retry reads the same), the driver's send;
//! 5. `RecordSent` with its cost, or `RecordFailed`: a transient error is
//!    tried again with exponential back-off up to
//!    [`SendConfig::max_attempts`], a permanent one fails with its reason,
//!    an unknown outcome is looked up a while later (or marked `unknown`
//!    when the send had no id of ours to look it up by), a session that cannot send
//!    any more (banned) leaves the message waiting for a sender, and one
//!    WhatsApp holds back for a while (its spam limit) leaves it waiting
//!    the pause out.
//!    Failures in a row are reported to the campaign, which auto-pauses
//!    from three on. Only the recipients' failures count: an outcome made
//!    unknown by our own infrastructure (an engine that died mid-send, a
//!    connection that dropped) does not.
//!
//! Steps 1 to 3 (admission) go in the order of the queue, so slots are
//! asked for and sends started in queue order. Commands that need not wait
//! (the campaign running at a zero throttle, the message queued) are
//! admitted together: the loop takes up to [`TAKEN_TOGETHER`] from the
//! queue at once and asks the day counter for all their slots in one
//! commit, which grants them in order up to the first it refuses; that one
//! and those after it are admitted one by one. Steps 4 and 5 (delivery) of
//! admitted messages run side by side, up to [`SendConfig::in_flight`]: at
//! a zero throttle the session sends while earlier messages are still being
//! recorded, instead of waiting for each round trip to the log. The
//! campaign, session, schedule and wallet read for every message are kept
//! while [`Changes`] sees no commit on them.
//!
//! Commands come several to a queue message ([`Taken`]): the message is
//! acknowledged once all of its commands are done, and given back (after
//! the shortest wait any of them asked for) when one of them must wait;
//! those of its commands that were done then come back and are dropped.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use cqrs_es::AggregateError;
use futures::{FutureExt, StreamExt};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use wablast_domain::campaign::{
    Campaign, CampaignCommand, CampaignEvent, CampaignKind, CampaignStatus, PauseReason,
};
use wablast_domain::governor::{GovernorLimits, RestrictionScope};
use wablast_domain::message::{Message, MessageCommand, MessageStatus};
use wablast_domain::schedule::Schedule;
use wablast_domain::session::Session;
use wablast_domain::session::{SessionCommand, SessionStatus, WaitReason};
use wablast_domain::session_day::{
    self, GovernorAsk, SendFacts, SessionDay, SessionDayCommand, SessionDayError,
};
use wablast_domain::types::whatsapp_template::{TemplateHeader, TemplateMessage};
use wablast_domain::types::{
    CampaignId, MediaId, MessageId, Pacing, Points, SendOutcome, SendSignals, SessionId, TenantId,
    Throttle,
};
use wablast_domain::wallet::{Wallet, WalletError};
use wablast_eventstore::{Actor, AggregateKey, Backoff, CommandMetadata, EventStoreError, Loaded};

use crate::driver::{Driver, LookedUp, OutgoingMedia, OutgoingMessage, SendError};
use crate::lease::Hold;
use crate::receipts::ProviderIds;
use wablast_workflows::changes::{Changes, Kept, Woken};
use wablast_workflows::clock::Clock;
use wablast_workflows::commands::{self, Commands, key, tenant_key};
use wablast_workflows::fleet::SendingHold;
use wablast_workflows::restricted_sends::{self, Moved};
use wablast_workflows::sends::{Answer, SendCommand, SendQueue, Taken};

/// How long after its answer was lost a send is looked up at the peer
/// (when it was sent under an id of ours): time for it to arrive there.
const LOOK_UP_AFTER: Duration = Duration::from_secs(10);

/// Deliveries of a command after which a lookup that keeps failing on a
/// ready session gives up: the outcome stays unknown.
const LOOK_UPS: u64 = 8;

/// Commands taken from the queue at once: those that need not wait are
/// admitted together (one commit of the day counter for all their slots).
const TAKEN_TOGETHER: usize = 16;

/// How sending behaves.
#[derive(Clone, Debug)]
pub struct SendConfig {
    /// Attempts of one message on transient errors (the first included).
    pub max_attempts: u32,
    /// Pauses between attempts of one message (from its first failure).
    pub retry: Backoff,
    /// Where media files are (`<data_dir>/media`); `None`: campaigns with
    /// media fail their messages with a reason.
    pub media_dir: Option<PathBuf>,
    /// Sends of one session under way at once (started, outcome not yet
    /// recorded), at most [`SendQueue::MAX_TAKEN`] less one.
    pub in_flight: usize,
    /// The longer break every so many sends of a session paced like a
    /// person ([`Pacing`]).
    pub pacing: Pacing,
}

impl Default for SendConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            retry: Backoff::new(Duration::from_secs(2), Duration::from_secs(60)),
            media_dir: None,
            in_flight: 32,
            pacing: Pacing::DEFAULT,
        }
    }
}

/// What the engine hands a session's send loop.
#[derive(Clone)]
pub struct SendContext {
    /// The command handlers.
    pub aggregates: Commands,
    /// The send queue.
    pub queue: SendQueue,
    /// Provider ids of sent messages, for receipts.
    pub provider_ids: ProviderIds,
    /// The engine's clock.
    pub clock: Arc<dyn Clock>,
    /// The query database (media metadata).
    pub db: PgPool,
    /// How sending behaves.
    pub config: SendConfig,
    /// Who the loop acts as.
    pub actor: Actor,
    /// Which aggregates changed lately.
    pub changes: Changes,
    /// The session's lease, as this engine holds it: nothing is sent while
    /// it is not surely held, and the day counter grants slots only to the
    /// engine whose fence the session recorded.
    pub hold: Hold,
    /// The engine's hold on every send (a failure storm), while it lasts.
    pub engine_hold: watch::Receiver<Option<SendingHold>>,
}

impl SendContext {
    /// Until when the engine holds every send, if it does now.
    fn engine_held_until(&self) -> Option<DateTime<Utc>> {
        let now = Utc::now();
        self.engine_hold
            .borrow()
            .as_ref()
            .map(|hold| hold.until)
            .filter(|until| *until > now)
    }
}

/// Why the loop could not go on with a command (it comes back later).
#[derive(Debug, thiserror::Error)]
enum LoopError {
    #[error(transparent)]
    Log(#[from] EventStoreError),
    #[error("{0}")]
    Command(String),
}

impl<E: std::error::Error> From<AggregateError<E>> for LoopError {
    fn from(err: AggregateError<E>) -> Self {
        Self::Command(err.to_string())
    }
}

/// The aggregates the loop reads for every message, kept while they do not
/// change (see [`Changes`]).
#[derive(Default)]
struct Known {
    campaigns: HashMap<CampaignId, Kept<Campaign>>,
    session: Option<Kept<Session>>,
    schedule: Option<Kept<Schedule>>,
    wallet: Option<Kept<Wallet>>,
    /// The session's day counter of the day last asked, which only this
    /// loop writes.
    day: Option<(AggregateKey, Loaded<SessionDay>)>,
}

impl Known {
    /// Campaigns kept at most (a session sends for a few at a time).
    const CAMPAIGNS: usize = 64;
}

/// What a session's loop and its sends under way share.
struct Sender {
    context: SendContext,
    tenant: TenantId,
    session: SessionId,
    driver: Arc<dyn Driver>,
    stop: CancellationToken,
    /// Failed sends in a row, as reported to the campaign.
    failures_in_a_row: AtomicU32,
    /// The last outcomes of this sender's sends, per campaign (at most
    /// [`SendSignals::WINDOW`] each): what slows a campaign down.
    outcomes: Mutex<HashMap<CampaignId, VecDeque<SendOutcome>>>,
}

/// A message given a slot: its delivery may start.
struct Admitted {
    command: SendCommand,
    message_key: AggregateKey,
    campaign_key: AggregateKey,
    /// The message as loaded: while the loop holds its command, it is the
    /// message's only writer.
    known_message: Option<Loaded<Message>>,
    message: Message,
    campaign: Campaign,
    /// When the slot was granted.
    now: DateTime<Utc>,
}

/// How a wait of the send loop ended.
enum Waited {
    /// Its time came.
    Reached,
    /// What it depends on may have changed: decide again.
    Changed,
    /// The loop was stopped.
    Stopped,
}

/// What admission made of a command.
enum Admission {
    /// Send it.
    Send(Box<Admitted>),
    /// Done with it, or not now.
    Answer(Answer),
}

/// One session's send loop.
pub struct SendLoop {
    sender: Arc<Sender>,
    status: watch::Receiver<SessionStatus>,
    rng: StdRng,
    next_send_at: Option<DateTime<Utc>>,
    /// Commands admitted one by one (paced) since the loop started.
    admitted: u64,
    known: Known,
    /// Deliveries under way.
    under_way: JoinSet<()>,
    /// The message of each delivery under way (a delivery that panicked is
    /// known by its task only).
    delivering: HashMap<tokio::task::Id, MessageId>,
    /// Why the loop last said it waits, until it says it sends again.
    waiting: Option<(WaitReason, Option<DateTime<Utc>>)>,
}

impl SendLoop {
    /// The loop of `session`, sending through `driver` while `status` says
    /// the session is ready, until `stop`.
    pub fn new(
        context: SendContext,
        tenant: TenantId,
        session: SessionId,
        driver: Arc<dyn Driver>,
        status: watch::Receiver<SessionStatus>,
        stop: CancellationToken,
    ) -> Self {
        Self {
            sender: Arc::new(Sender {
                context,
                tenant,
                session,
                driver,
                stop,
                failures_in_a_row: AtomicU32::new(0),
                outcomes: Mutex::default(),
            }),
            status,
            rng: StdRng::from_os_rng(),
            next_send_at: None,
            admitted: 0,
            known: Known::default(),
            under_way: JoinSet::new(),
            delivering: HashMap::new(),
            waiting: None,
        }
    }

    /// Runs until stopped. A command in hand when it stops goes back to the
    /// queue at once (unless it is being sent: that finishes first).
    pub async fn run(mut self) {
        let stop = self.sender.stop.clone();
        loop {
            if !self.until_ready().await {
                return;
            }
            // Back from `consume`: stopped, or the session left `ready`
            // (it sends again once it is back), or the queue failed.
            if let Err(err) = self.consume().await {
                warn!(error = %wablast_eventstore::report::Chain(&err), session = %self.sender.session, "send loop interrupted; starting again");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            if stop.is_cancelled() {
                return;
            }
        }
    }

    /// Waits until the session is ready; `false` when stopped first.
    async fn until_ready(&mut self) -> bool {
        loop {
            if *self.status.borrow_and_update() == SessionStatus::Ready {
                return true;
            }
            tokio::select! {
                () = self.sender.stop.cancelled() => return false,
                changed = self.status.changed() => if changed.is_err() { return false },
            }
        }
    }

    /// Takes commands until stopped or interrupted, then lets the sends
    /// under way finish: a message that may have left is recorded.
    async fn consume(&mut self) -> Result<(), LoopError> {
        let taken = self.take_commands().await;
        while let Some(done) = self.under_way.join_next_with_id().await {
            self.delivered(done);
        }
        taken
    }

    /// A delivery finished.
    fn delivered(&mut self, done: Result<(tokio::task::Id, ()), tokio::task::JoinError>) {
        let task = match done {
            Ok((task, ())) => task,
            Err(err) => err.id(),
        };
        self.delivering.remove(&task);
    }

    async fn take_commands(&mut self) -> Result<(), LoopError> {
        let sender = self.sender.clone();
        let consumer = sender
            .context
            .queue
            .consumer(sender.tenant, sender.session)
            .await?;
        let mut commands = consumer
            .stream()
            // A queue message carries up to 16 commands: two at a time keep
            // the loop fed.
            .max_messages_per_batch(2)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(EventStoreError::nats)?;
        let in_flight = sender
            .context
            .config
            .in_flight
            .clamp(1, SendQueue::MAX_TAKEN - TAKEN_TOGETHER);
        // Commands of the queue messages taken, not yet in hand.
        let mut taken: VecDeque<(Taken, SendCommand)> = VecDeque::new();
        info!(session = %sender.session, "sending");
        loop {
            while let Some(done) = self.under_way.try_join_next_with_id() {
                self.delivered(done);
            }
            if !sender.context.hold.is_held() {
                // NATS did not answer the lease's renewals for a while, or
                // this process was paused: another engine may take the
                // session now, so nothing more is sent until a renewal
                // says the lease is still this engine's.
                give_back(std::mem::take(&mut taken)).await;
                warn!(session = %sender.session, "the session's lease is not surely held: sending waits for its renewal");
                let mut hold = sender.context.hold.clone();
                tokio::select! {
                    () = sender.stop.cancelled() => return Ok(()),
                    held = hold.held() => if !held { return Ok(()) },
                }
                info!(session = %sender.session, "the session's lease is held again: sending");
                continue;
            }
            if self.under_way.len() >= in_flight {
                tokio::select! {
                    () = sender.stop.cancelled() => {
                        give_back(taken).await;
                        return Ok(());
                    }
                    Some(done) = self.under_way.join_next_with_id() => {
                        self.delivered(done);
                        continue;
                    }
                }
            }
            if taken.is_empty() {
                let message = tokio::select! {
                    () = sender.stop.cancelled() => return Ok(()),
                    message = commands.next() => message,
                };
                match message {
                    Some(Ok(message)) => taken.extend(Taken::split(message).await),
                    Some(Err(err)) => return Err(EventStoreError::nats(err).into()),
                    None => return Err(LoopError::Command("the queue closed".into())),
                }
            }
            if let Some(until) = sender.context.engine_held_until() {
                // Too many of the engine's sessions failed at once: nothing
                // is sent until the hold ends (or is lifted), and the
                // session says why it waits.
                give_back(std::mem::take(&mut taken)).await;
                let now = sender.context.clock.now();
                self.report_waiting(Some(WaitReason::FailureStorm), Some(until), now)
                    .await;
                warn!(session = %sender.session, %until, "the engine holds every send (failure storm): waiting");
                let mut hold = sender.context.engine_hold.clone();
                hold.borrow_and_update();
                let left = (until - Utc::now()).to_std().unwrap_or_default();
                tokio::select! {
                    () = sender.stop.cancelled() => return Ok(()),
                    () = tokio::time::sleep(left) => {}
                    changed = hold.changed() => if changed.is_err() { return Ok(()) },
                }
                continue;
            }
            // In hand: what was taken, and what came with it, up to the
            // room left.
            let room = (in_flight - self.under_way.len()).min(TAKEN_TOGETHER);
            let mut held: Vec<(Taken, SendCommand)> = Vec::with_capacity(room);
            while held.len() < room {
                let Some((share, command)) = taken.pop_front() else {
                    match commands.next().now_or_never() {
                        Some(Some(Ok(message))) => {
                            taken.extend(Taken::split(message).await);
                            continue;
                        }
                        // Nothing more now; a failed queue shows next time.
                        _ => break,
                    }
                };
                // A redelivery of a command in hand here, or whose send is
                // under way (it waited too long in the queue's buffer): the
                // one in hand answers for both. A send that ended while the
                // loop waited for the queue is not under way any more (its
                // answer may be what brought the command back).
                while let Some(done) = self.under_way.try_join_next_with_id() {
                    self.delivered(done);
                }
                if self.delivering.values().any(|m| *m == command.message_id)
                    || held.iter().any(|(_, c)| c.message_id == command.message_id)
                {
                    debug!(message = %command.message_id, "command redelivered while its send is under way; left to it");
                    continue;
                }
                held.push((share, command));
            }
            self.take_together(&mut held).await;
            if self.take_each(held).await {
                give_back(taken).await;
                return Ok(());
            }
        }
    }

    /// Admits the first commands in hand together when none of them has
    /// to wait: the session ready, each message queued, its campaign
    /// running at a zero throttle with this session among its senders.
    /// Their slots are asked for in one commit of the day counter, and
    /// their deliveries started. The commands it does not admit stay in
    /// `held`, in order, for [`SendLoop::take_each`] (which reads them
    /// again and says why they wait).
    async fn take_together(&mut self, held: &mut Vec<(Taken, SendCommand)>) {
        let sender = self.sender.clone();
        if held.len() < 2
            || sender.stop.is_cancelled()
            || *self.status.borrow() != SessionStatus::Ready
        {
            return;
        }
        let now = sender.context.clock.now();
        if self.next_send_at.is_some_and(|at| at > now) {
            return;
        }
        let loads = held
            .iter()
            .map(|(share, command)| sender.queued_message(share, command));
        let loaded = futures::future::join_all(loads).await;
        let mut ready = Vec::with_capacity(held.len());
        for ((_, command), loaded) in held.iter().zip(loaded) {
            let Ok(known_message) = loaded else { break };
            if known_message.aggregate.status() != Some(MessageStatus::Queued) {
                break;
            }
            let Ok(campaign) = self.campaign(command.campaign_id).await else {
                break;
            };
            let Ok(throttle) = self.throttle_of(&campaign).await else {
                break;
            };
            if !campaign.is_running()
                || throttle.max_delay_ms() > 0
                || !campaign.senders().contains(&sender.session)
            {
                break;
            }
            ready.push((known_message, campaign));
        }
        if ready.len() < 2 {
            return;
        }
        // A number held to more than its daily limit asks one by one: each
        // send's recipient and text are looked at.
        match self.governor_limits(now).await {
            Ok(limits) if !limits.needs_new_contact() && !limits.needs_text() => {}
            _ => return,
        }
        let requests: Vec<_> = held[..ready.len()]
            .iter()
            .zip(&ready)
            .map(|((_, command), (_, campaign))| (command, campaign.is_running(), (false, None)))
            .collect();
        // Refused or failed: one by one, each learns why.
        let accepted = match self.request_slots(&requests, now).await {
            Ok(Ok((accepted, _))) => {
                if accepted > 0 && self.waiting.is_some() {
                    self.report_waiting(None, None, now).await;
                }
                accepted
            }
            Ok(Err(refusal)) => {
                debug!(%refusal, session = %sender.session, "slots not granted together");
                0
            }
            Err(err) => {
                debug!(error = %wablast_eventstore::report::Chain(&err), session = %sender.session, "slots not granted together");
                0
            }
        };
        if accepted > 0 {
            self.next_send_at = Some(now);
        }
        let admitted: Vec<_> = held.drain(..accepted).zip(ready).collect();
        for ((share, command), (known_message, campaign)) in admitted {
            let admitted = Admitted {
                message_key: key(sender.tenant, command.message_id),
                campaign_key: key(sender.tenant, command.campaign_id),
                command,
                message: known_message.aggregate.clone(),
                known_message: Some(known_message),
                campaign,
                now,
            };
            self.start_delivery(share, admitted);
        }
    }

    /// Admits the commands in hand one by one, in order, and starts the
    /// deliveries of those admitted. `true`: the loop stops (the commands
    /// left were given back).
    async fn take_each(&mut self, held: Vec<(Taken, SendCommand)>) -> bool {
        let mut held = held.into_iter();
        while let Some((share, command)) = held.next() {
            let message_id = command.message_id;
            let step = match self.admit(&share, command).await {
                Ok(Admission::Send(admitted)) => {
                    self.start_delivery(share, *admitted);
                    continue;
                }
                Ok(Admission::Answer(step)) => step,
                Err(err) => {
                    warn!(error = %wablast_eventstore::report::Chain(&err), message = %message_id, "send not admitted; the command comes back");
                    Answer::Later(Duration::from_secs(1))
                }
            };
            let stopped = matches!(step, Answer::Stopped);
            share.answer(step).await;
            if stopped {
                give_back(held).await;
                return true;
            }
        }
        false
    }

    /// The delivery of an admitted message, side by side with the others;
    /// it answers the queue when done.
    fn start_delivery(&mut self, share: Taken, admitted: Admitted) {
        let sender = self.sender.clone();
        let message_id = admitted.command.message_id;
        let task = self.under_way.spawn(async move {
            let step = match sender.deliver(&share, admitted).await {
                Ok(step) => step,
                Err(err) => {
                    warn!(error = %wablast_eventstore::report::Chain(&err), message = %message_id, "send not finished; the command comes back");
                    Answer::Later(Duration::from_secs(1))
                }
            };
            share.answer(step).await;
        });
        self.delivering.insert(task.id(), message_id);
    }

    /// Decides whether the command's message may be sent now, and if so,
    /// gets it a slot. Gives the command back, or waits, as the aggregates
    /// say.
    async fn admit(&mut self, held: &Taken, command: SendCommand) -> Result<Admission, LoopError> {
        let sender = self.sender.clone();
        let aggregates = &sender.context.aggregates;
        let message_key = key(sender.tenant, command.message_id);
        let campaign_key = key(sender.tenant, command.campaign_id);
        loop {
            if sender.stop.is_cancelled() {
                return Ok(Admission::Answer(Answer::Stopped));
            }
            // Noted before anything is read: a wait below ends as soon as
            // the tenant's campaigns, sessions, schedule or wallet change.
            let seen = sender.context.changes.seen(sender.tenant);
            // 1. Does the message still wait, and may its campaign send?
            let known_message = sender.queued_message(held, &command).await?;
            let message = known_message.aggregate.clone();
            match message.status() {
                Some(MessageStatus::Queued) => {}
                Some(MessageStatus::Failed) if message.is_retryable() => {}
                Some(MessageStatus::Sending) => {
                    // Taken by a sender that never said how it went: the
                    // peer is asked. Cut off by our own infrastructure (an
                    // engine died, a lease moved, an answer lost): not the
                    // recipient's failure, so whatever the peer says does
                    // not count toward the campaign's auto-pause.
                    let ready = *self.status.borrow() == SessionStatus::Ready;
                    let step = sender
                        .reconcile(&message_key, known_message, ready, held.deliveries())
                        .await?;
                    return Ok(Admission::Answer(step));
                }
                None => {
                    warn!(message = %command.message_id, "send command of an unknown message dropped");
                    return Ok(Admission::Answer(Answer::Done));
                }
                Some(_) => return Ok(Admission::Answer(Answer::Done)),
            }
            let campaign = self.campaign(command.campaign_id).await?;
            match campaign.status() {
                Some(CampaignStatus::Running) => {}
                Some(CampaignStatus::Paused) => match self.paused(&campaign, held, seen).await? {
                    Some(step) => return Ok(Admission::Answer(step)),
                    None => continue,
                },
                Some(CampaignStatus::Cancelled | CampaignStatus::Completed) => {
                    let cancel = MessageCommand::CancelMessage {
                        at: sender.context.clock.now(),
                    };
                    aggregates
                        .messages
                        .execute(
                            &message_key,
                            for_message(&command, &mut None, cancel),
                            &sender.metadata(),
                        )
                        .await?;
                    return Ok(Admission::Answer(Answer::Done));
                }
                _ => return Ok(Admission::Answer(Answer::Later(Duration::from_secs(5)))),
            }
            if !campaign.senders().contains(&sender.session) {
                return sender
                    .hand_over(&campaign, command)
                    .await
                    .map(Admission::Answer);
            }

            // 2. The throttle.
            if let Some(at) = self.next_send_at
                && !sender.wait_until(at, held).await
            {
                return Ok(Admission::Answer(Answer::Stopped));
            }
            if *self.status.borrow() != SessionStatus::Ready {
                // Not ready any more: the command goes back, the loop waits.
                return Ok(Admission::Answer(Answer::Stopped));
            }

            // 3. A slot.
            let now = sender.context.clock.now();
            match self
                .request_slot(&command, &message, &campaign, now)
                .await?
            {
                Ok(()) => {
                    if self.waiting.is_some() {
                        self.report_waiting(None, None, now).await;
                    }
                }
                Err(SessionDayError::SenderRestricted {
                    scope: RestrictionScope::NewContacts,
                    until,
                }) if campaign.senders().len() > 1 => {
                    // Restricted for new contacts: another sender of the
                    // campaign with room takes it, or it waits here.
                    match restricted_sends::move_new_contact_send(
                        &sender.context.aggregates,
                        &sender.context.queue,
                        &campaign,
                        sender.session,
                        command.clone(),
                        now,
                    )
                    .await
                    {
                        Ok(Moved::To(_)) => return Ok(Admission::Answer(Answer::Done)),
                        Ok(Moved::NoRoom) => {}
                        Err(err) => {
                            warn!(error = %wablast_eventstore::report::Chain(&err), message = %command.message_id, "a restricted sender's send not moved; it waits");
                        }
                    }
                    let refusal = SessionDayError::SenderRestricted {
                        scope: RestrictionScope::NewContacts,
                        until,
                    };
                    match self
                        .refused(refusal, &campaign_key, now, held, seen)
                        .await?
                    {
                        Some(step) => return Ok(Admission::Answer(step)),
                        None => continue,
                    }
                }
                Err(refusal) => match self
                    .refused(refusal, &campaign_key, now, held, seen)
                    .await?
                {
                    Some(step) => return Ok(Admission::Answer(step)),
                    None => continue,
                },
            }
            let throttle = self.throttle_of(&campaign).await?;
            // The pause before the next send, and every so many sends (the
            // session's own pacing says how many, or the engine's) a
            // longer break, as a person takes them.
            self.admitted += 1;
            let mut pause = throttle.delay(&mut self.rng);
            let mut pacing = sender.context.config.pacing;
            if let Some(every) = self.session_now().await?.pacing().break_every {
                pacing.every = every;
            }
            if let Some(rest) = pacing.break_after(self.admitted, &throttle, &mut self.rng) {
                debug!(session = %sender.session, ?rest, "a break after {} sends", self.admitted);
                pause += rest;
            }
            self.next_send_at = Some(now + TimeDelta::from_std(pause).unwrap_or_default());
            return Ok(Admission::Send(Box::new(Admitted {
                command,
                message_key,
                campaign_key,
                known_message: Some(known_message),
                message,
                campaign,
                now,
            })));
        }
    }

    /// The pause after a send of `campaign`'s: a broadcast's own, or, for
    /// single sends (a direct campaign), the session's as it is now.
    async fn throttle_of(&mut self, campaign: &Campaign) -> Result<Throttle, LoopError> {
        if campaign.kind() == CampaignKind::Broadcast {
            return Ok(campaign.paced(campaign.throttle()));
        }
        let sender = self.sender.clone();
        let session = sender
            .context
            .changes
            .current(
                &sender.context.aggregates.sessions,
                sender.tenant,
                &key(sender.tenant, sender.session),
                &mut self.known.session,
            )
            .await?;
        Ok(campaign.paced(session.throttle()))
    }

    /// The campaign as it is now.
    async fn campaign(&mut self, id: CampaignId) -> Result<Campaign, LoopError> {
        let sender = &self.sender;
        let mut slot = self.known.campaigns.remove(&id);
        let campaign = sender
            .context
            .changes
            .current(
                &sender.context.aggregates.campaigns,
                sender.tenant,
                &key(sender.tenant, id),
                &mut slot,
            )
            .await?;
        if self.known.campaigns.len() >= Known::CAMPAIGNS {
            self.known.campaigns.clear();
        }
        if let Some(kept) = slot {
            self.known.campaigns.insert(id, kept);
        }
        Ok(campaign)
    }

    /// A paused campaign: resumes it when its pause was the engine's and
    /// its time has come (`None`: look again), or gives the command back.
    async fn paused(
        &mut self,
        campaign: &Campaign,
        held: &Taken,
        seen: u64,
    ) -> Result<Option<Answer>, LoopError> {
        let sender = self.sender.clone();
        let resume_at = match campaign.pause_reason() {
            Some(PauseReason::AutoConsecutiveFailures { .. }) => campaign
                .resume_at()
                .unwrap_or_else(|| sender.context.clock.now()),
            Some(PauseReason::OutsideActiveHours) => {
                let schedule = sender
                    .context
                    .changes
                    .current(
                        &sender.context.aggregates.schedules,
                        sender.tenant,
                        &tenant_key(sender.tenant),
                        &mut self.known.schedule,
                    )
                    .await?;
                let now = sender.context.clock.now();
                let hours = schedule.active_hours();
                if hours.is_open(now) {
                    now
                } else {
                    hours
                        .next_opening(now)
                        .unwrap_or(now + TimeDelta::minutes(1))
                }
            }
            // Paused by a person, or no sender left: the command waits.
            _ => return Ok(Some(Answer::Later(Duration::from_secs(5)))),
        };
        match sender.wait_or_change(resume_at, held, seen).await {
            Waited::Reached => {}
            // Resumed, cancelled, the schedule or the override changed:
            // decide again.
            Waited::Changed => return Ok(None),
            Waited::Stopped => return Ok(Some(Answer::Stopped)),
        }
        let campaign_id = campaign.id().expect("a paused campaign exists");
        let resumed = sender
            .context
            .aggregates
            .campaigns
            .execute(
                &key(sender.tenant, campaign_id),
                CampaignCommand::ResumeCampaign {
                    at: sender.context.clock.now(),
                },
                &sender.metadata(),
            )
            .await;
        match resumed {
            Ok(committed) if !committed.events.is_empty() => {
                info!(campaign = %campaign_id, "campaign resumed by the engine");
            }
            Ok(_) => {}
            Err(err) => {
                debug!(error = %wablast_eventstore::report::Chain(&err), campaign = %campaign_id, "not resumed")
            }
        }
        Ok(None)
    }

    /// Asks the session's day counter for a slot.
    async fn request_slot(
        &mut self,
        command: &SendCommand,
        message: &Message,
        campaign: &Campaign,
        now: DateTime<Utc>,
    ) -> Result<Result<(), SessionDayError>, LoopError> {
        let limits = self.governor_limits(now).await?;
        let new_contact = match message.phone() {
            Some(phone) if limits.needs_new_contact() => {
                let sender = &self.sender;
                !wablast_projections::queries::chats::has_exchanged(
                    &sender.context.db,
                    sender.tenant,
                    sender.session,
                    phone.as_str(),
                )
                .await
                .map_err(|err| LoopError::Command(format!("new contact not known: {err}")))?
            }
            _ => false,
        };
        let text_hash = if limits.needs_text() {
            render(message, campaign, command).ok().map(|text| {
                use std::hash::{Hash, Hasher};
                // SipHash with fixed keys: the same text hashes the same in
                // every engine.
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                text.hash(&mut hasher);
                hasher.finish()
            })
        } else {
            None
        };
        let granted = self
            .request_slots(
                &[(command, campaign.is_running(), (new_contact, text_hash))],
                now,
            )
            .await?;
        Ok(granted.map(|_| ()))
    }

    /// The sender governor's caps for a send at `now`, from the session as
    /// it is now.
    async fn governor_limits(&mut self, now: DateTime<Utc>) -> Result<GovernorLimits, LoopError> {
        Ok(self.session_now().await?.governor_limits(now))
    }

    /// The session as it is now.
    async fn session_now(&mut self) -> Result<Session, LoopError> {
        let sender = self.sender.clone();
        Ok(sender
            .context
            .changes
            .current(
                &sender.context.aggregates.sessions,
                sender.tenant,
                &key(sender.tenant, sender.session),
                &mut self.known.session,
            )
            .await?)
    }

    /// Before the first send of a local day: tells the session when it
    /// last sent (the latest grant of this day and the three before), so
    /// that it starts warm-up at its first send or after 72 hours idle; and
    /// records the governor's state when it changed.
    async fn observe_sending(
        &mut self,
        session: &Session,
        day: chrono::NaiveDate,
        now: DateTime<Utc>,
    ) {
        let sender = self.sender.clone();
        let (state, _) = session.governor_state(now);
        let mut reports = Vec::new();
        if session.governor().warm_up {
            let mut last_sent_at = None;
            for back in 0..4 {
                let Some(date) = day.checked_sub_days(chrono::Days::new(back)) else {
                    break;
                };
                let loaded = sender
                    .context
                    .aggregates
                    .session_days
                    .load(&commands::day_key(
                        sender.tenant,
                        &session_day::aggregate_id(sender.session, date),
                    ))
                    .await;
                if let Ok(loaded) = loaded
                    && let Some(at) = loaded.aggregate.last_at()
                {
                    last_sent_at = Some(at);
                    break;
                }
            }
            reports.push(SessionCommand::ObserveSending {
                last_sent_at,
                at: now,
            });
        }
        if state != session.governor().recorded_state {
            reports.push(SessionCommand::ReportGovernorState { at: now });
        }
        for report in reports {
            let reported = sender
                .context
                .aggregates
                .sessions
                .execute(
                    &key(sender.tenant, sender.session),
                    SessionCommand::FromHolder {
                        fence: sender.context.hold.fence(),
                        report: Box::new(report),
                    },
                    &sender.metadata(),
                )
                .await;
            if let Err(err) = reported {
                debug!(error = %wablast_eventstore::report::Chain(&err), session = %sender.session, "governor observation not recorded");
            }
        }
    }

    /// Asks the session's day counter for a slot for each of `requests`
    /// (a command, and whether its campaign runs), in order and in one
    /// commit. How many were granted (from the first), and why the next
    /// was refused; the inner `Err` when the first was refused.
    /// Each request also says whether its recipient is a new contact and
    /// the hash of its text, where the governor's caps need them.
    #[allow(clippy::type_complexity)]
    async fn request_slots(
        &mut self,
        requests: &[(&SendCommand, bool, (bool, Option<u64>))],
        now: DateTime<Utc>,
    ) -> Result<Result<(usize, Option<SessionDayError>), SessionDayError>, LoopError> {
        let sender = self.sender.clone();
        let (aggregates, changes) = (&sender.context.aggregates, &sender.context.changes);
        let tenant = tenant_key(sender.tenant);
        let session = changes
            .current(
                &aggregates.sessions,
                sender.tenant,
                &key(sender.tenant, sender.session),
                &mut self.known.session,
            )
            .await?;
        let schedule = changes
            .current(
                &aggregates.schedules,
                sender.tenant,
                &tenant,
                &mut self.known.schedule,
            )
            .await?;
        let wallet = changes
            .current(
                &aggregates.wallets,
                sender.tenant,
                &tenant,
                &mut self.known.wallet,
            )
            .await?;
        // A suspended tenant sends nothing: the wallet says so before the
        // counter is asked.
        if let Err(WalletError::Suspended { .. }) = wallet.can_send_at(now) {
            return Ok(Err(SessionDayError::TenantSuspended));
        }
        let hours = schedule.active_hours().clone();
        let day = hours.timezone().local_date(now);
        let limits = session.governor_limits(now);
        // An established number is held to its daily limit alone: its
        // grants carry nothing more (as before the governor).
        let governed = limits != GovernorLimits::daily_only(session.daily_limit());
        let commands = requests
            .iter()
            .map(|(command, campaign_running, (new_contact, text_hash))| {
                SessionDayCommand::RequestSlot {
                    session_id: sender.session,
                    day,
                    message_id: command.message_id,
                    campaign_id: command.campaign_id,
                    at: now,
                    facts: SendFacts {
                        session_status_ready: session.is_ready(),
                        asked_by_holder: session
                            .holder()
                            .is_some_and(|h| h.fence == sender.context.hold.fence()),
                        daily_limit: session.daily_limit(),
                        active_hours: hours.clone(),
                        // The end of the period plus the plan's grace.
                        plan_expires_at: wallet.sending_until(),
                        campaign_running: *campaign_running,
                        governor: governed.then_some(GovernorAsk {
                            limits,
                            new_contact: *new_contact,
                            text_hash: *text_hash,
                        }),
                    },
                }
            })
            .collect();
        let day_key = commands::day_key(
            sender.tenant,
            &session_day::aggregate_id(sender.session, day),
        );
        let known_day = self.known.day.take();
        if known_day
            .as_ref()
            .is_none_or(|(known, _)| *known != day_key)
        {
            // The loop's first send of the day.
            let session = session.clone();
            self.observe_sending(&session, day, now).await;
        } else if limits.state != session.governor().recorded_state {
            let session = session.clone();
            self.observe_sending(&session, day, now).await;
        }
        let mut counter = known_day
            .filter(|(known, _)| *known == day_key)
            .map(|(_, loaded)| loaded);
        let granted = aggregates
            .session_days
            .execute_each_on(&day_key, &mut counter, commands, &sender.metadata())
            .await;
        if let Some(counter) = counter {
            self.known.day = Some((day_key, counter));
        }
        match granted {
            Ok(decided) => Ok(Ok((decided.accepted, decided.refusal))),
            Err(AggregateError::UserError(refusal)) => Ok(Err(refusal)),
            Err(err) => Err(err.into()),
        }
    }

    /// A refused slot: waits as the refusal says (`None`: look again), or
    /// gives the command back.
    async fn refused(
        &mut self,
        refusal: SessionDayError,
        campaign_key: &AggregateKey,
        now: DateTime<Utc>,
        held: &Taken,
        seen: u64,
    ) -> Result<Option<Answer>, LoopError> {
        let sender = self.sender.clone();
        let waiting = match &refusal {
            SessionDayError::DailyLimitReached { retry_at } => {
                Some((WaitReason::DailyLimitReached, Some(*retry_at)))
            }
            SessionDayError::OutsideActiveHours { retry_at } => {
                Some((WaitReason::OutsideActiveHours, *retry_at))
            }
            SessionDayError::Paused => Some((WaitReason::SendingPaused, None)),
            SessionDayError::PlanExpired => Some((WaitReason::PlanExpired, None)),
            SessionDayError::TenantSuspended => Some((WaitReason::TenantSuspended, None)),
            SessionDayError::WarmUpAllowanceReached { retry_at, .. } => {
                Some((WaitReason::WarmUpAllowanceReached, Some(*retry_at)))
            }
            SessionDayError::SenderRestricted { until, .. } => {
                Some((WaitReason::SenderRestricted, Some(*until)))
            }
            SessionDayError::CapReached { retry_at, .. } => {
                Some((WaitReason::SendCapReached, Some(*retry_at)))
            }
            _ => None,
        };
        if let Some((reason, until)) = waiting {
            // The session (and so its campaigns) says why nothing moves.
            self.report_waiting(Some(reason), until, now).await;
        }
        let wait_until = match &refusal {
            SessionDayError::DailyLimitReached { retry_at } => {
                info!(session = %sender.session, %retry_at, "daily limit reached: waiting for the next local day");
                *retry_at
            }
            SessionDayError::OutsideActiveHours { retry_at } => {
                // The campaign says why it does not send.
                let paused = sender
                    .context
                    .aggregates
                    .campaigns
                    .execute(
                        campaign_key,
                        CampaignCommand::PauseCampaign {
                            reason: PauseReason::OutsideActiveHours,
                            at: now,
                        },
                        &sender.metadata(),
                    )
                    .await;
                if let Err(err) = paused {
                    debug!(error = %wablast_eventstore::report::Chain(&err), "campaign not paused for the closed window");
                }
                retry_at.unwrap_or(now + TimeDelta::minutes(1))
            }
            SessionDayError::Paused => now + TimeDelta::minutes(1),
            SessionDayError::WarmUpAllowanceReached { retry_at, .. }
            | SessionDayError::SenderRestricted {
                until: retry_at, ..
            }
            | SessionDayError::CapReached { retry_at, .. } => {
                info!(session = %sender.session, %refusal, "held back by the sender governor");
                *retry_at
            }
            SessionDayError::SessionNotReady => {
                // The driver said ready before the log did, or the other
                // way round: look again shortly.
                tokio::time::sleep(Duration::from_millis(500)).await;
                return Ok(None);
            }
            SessionDayError::PlanExpired => {
                warn!(session = %sender.session, tenant = %sender.tenant, "the plan expired: sending waits for a renewal");
                now + TimeDelta::minutes(1)
            }
            SessionDayError::TenantSuspended => {
                warn!(session = %sender.session, tenant = %sender.tenant, "the tenant is suspended: sending waits for its reactivation");
                now + TimeDelta::minutes(1)
            }
            SessionDayError::CampaignNotRunning => return Ok(None),
            SessionDayError::NotHolder => {
                // Another engine took the session: this one finds out at
                // its next renewal and stops the loop.
                warn!(session = %sender.session, "slot refused: another engine holds the session");
                return Ok(Some(Answer::Stopped));
            }
            SessionDayError::WrongDay { .. } | SessionDayError::WrongSession { .. } => {
                warn!(error = %refusal, "slot refused as asked wrongly");
                return Ok(Some(Answer::Later(Duration::from_secs(1))));
            }
        };
        // A schedule or override change, a raised daily limit, a renewed
        // plan or a resumed campaign ends the wait at once.
        match sender.wait_or_change(wait_until, held, seen).await {
            Waited::Reached | Waited::Changed => Ok(None),
            Waited::Stopped => Ok(Some(Answer::Stopped)),
        }
    }

    /// Records on the session why the loop waits (`Some`), or that it
    /// sends again (`None`), when that is news.
    async fn report_waiting(
        &mut self,
        reason: Option<WaitReason>,
        until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) {
        let waiting = reason.map(|r| (r, until));
        if waiting == self.waiting {
            return;
        }
        let sender = &self.sender;
        let reported = sender
            .context
            .aggregates
            .sessions
            .execute(
                &key(sender.tenant, sender.session),
                SessionCommand::FromHolder {
                    fence: sender.context.hold.fence(),
                    report: Box::new(SessionCommand::ReportWaiting {
                        reason,
                        until,
                        at: now,
                    }),
                },
                &sender.metadata(),
            )
            .await;
        match reported {
            Ok(_) => self.waiting = waiting,
            Err(err) => {
                debug!(error = %wablast_eventstore::report::Chain(&err), session = %sender.session, "wait not recorded")
            }
        }
    }
}

/// `command` to the message of `send`, as it goes to the aggregate. A
/// message queued in a batch may have no history yet: the command goes
/// with the message as its batch queued it, for its first commit
/// ([`MessageCommand::FromBatch`]). A `known` state at sequence 0 is the
/// queued message as the batch says ([`SendLoop`] reads it so), which the
/// aggregate only becomes with that first commit: it is decided on no
/// history.
fn for_message(
    send: &SendCommand,
    known: &mut Option<Loaded<Message>>,
    command: MessageCommand,
) -> MessageCommand {
    let Some(queued) = &send.queued else {
        return command;
    };
    if let Some(known) = known
        && known.sequence == 0
    {
        known.aggregate = Message::default();
    }
    MessageCommand::FromBatch {
        queued: queued.clone(),
        command: Box::new(command),
    }
}

/// The text of a message: what its sender wrote (a single send; empty for
/// an attachment without a caption), or its campaign's template rendered
/// with the recipient's values, spintax seeded by the message id (so a
/// retry reads the same); why not, when it cannot be.
fn render(message: &Message, campaign: &Campaign, command: &SendCommand) -> Result<String, String> {
    if let Some(content) = message.content() {
        return Ok(content.text.clone().unwrap_or_default());
    }
    let phone = message
        .phone()
        .ok_or_else(|| "the message has no recipient".to_owned())?;
    let template = campaign
        .template()
        .ok_or_else(|| "the campaign has no template".to_owned())?;
    let values = Campaign::template_values(phone.as_str(), message.name(), message.variables());
    let seed = command.message_id.as_uuid().as_u64_pair().1;
    template
        .render(&values, seed)
        .map_err(|err| format!("template: {err}"))
}

/// The WhatsApp template a message sends, if any: a single send's own,
/// or, from a sender that sends templates (the Cloud API), its campaign's
/// with the parameters rendered like the text; why not, when it cannot be.
fn template_of(
    message: &Message,
    campaign: &Campaign,
    command: &SendCommand,
    sends_templates: bool,
) -> Result<Option<TemplateMessage>, String> {
    if let Some(content) = message.content() {
        return match &content.template {
            Some(_) if !sends_templates => {
                Err("this session's driver sends no WhatsApp templates".to_owned())
            }
            template => Ok(template.as_deref().cloned()),
        };
    }
    let Some(whatsapp) = campaign.whatsapp_template().filter(|_| sends_templates) else {
        return Ok(None);
    };
    let phone = message
        .phone()
        .ok_or_else(|| "the message has no recipient".to_owned())?;
    let values = Campaign::template_values(phone.as_str(), message.name(), message.variables());
    let seed = command.message_id.as_uuid().as_u64_pair().1;
    whatsapp
        .render(&values, seed)
        .map(Some)
        .map_err(|err| format!("whatsapp template parameter: {err}"))
}

/// Gives commands in hand back to the queue at once, in order.
async fn give_back(held: impl IntoIterator<Item = (Taken, SendCommand)>) {
    for (share, _) in held {
        share.answer(Answer::Stopped).await;
    }
}

impl Sender {
    fn metadata(&self) -> CommandMetadata {
        CommandMetadata::new(self.context.actor.clone())
    }

    /// The message of a command. One queued in a batch and delivered for
    /// the first time has no history yet: it is as its batch queued it,
    /// and nothing is read. One queued alone and delivered for the first
    /// time is read where the fan-out queued it; one that came back reads
    /// the log. A batch-queued message without a history reads as queued,
    /// at sequence 0 (see [`for_message`], which its commands go through).
    /// A state that turns out stale costs a conflict on the first append,
    /// decided again on a fresh load.
    async fn queued_message(
        &self,
        held: &Taken,
        command: &SendCommand,
    ) -> Result<Loaded<Message>, LoopError> {
        let messages = &self.context.aggregates.messages;
        let message_key = key(self.tenant, command.message_id);
        let mut loaded = match (&command.queued, command.queued_at) {
            (Some(_), _) if held.first_delivery() => Loaded {
                aggregate: Message::default(),
                sequence: 0,
                stream_sequence: 0,
            },
            (None, Some(at)) if held.first_delivery() => {
                messages.load_created_at(&message_key, at).await?
            }
            _ => messages.load(&message_key).await?,
        };
        if let Some(queued) = &command.queued
            && loaded.sequence == 0
        {
            loaded.aggregate = Message::queued_in_batch(queued);
        }
        Ok(loaded)
    }

    /// Waits until the clock reaches `at`, telling the queue the command is
    /// still being worked on; `false` when stopped first.
    async fn wait_until(&self, at: DateTime<Utc>, held: &Taken) -> bool {
        let clock = self.context.clock.clone();
        let reached = clock.sleep_until(at);
        tokio::pin!(reached);
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return false,
                () = &mut reached => return true,
                () = tokio::time::sleep(SendQueue::ACK_WAIT / 3) => {
                    held.progress().await;
                }
            }
        }
    }

    /// Waits like [`Sender::wait_until`], ending early when one of the
    /// tenant's campaigns, sessions, schedule or wallet changed after
    /// `seen` ([`Changes::seen`]).
    async fn wait_or_change(&self, at: DateTime<Utc>, held: &Taken, seen: u64) -> Waited {
        let changes = self.context.changes.clone();
        let tenant = self.tenant;
        let reached = async {
            // `false` (stopped) is told apart below.
            let _ = self.wait_until(at, held).await;
        };
        let woken = changes.wait_until(tenant, seen, reached);
        match woken.await {
            Woken::Changed => Waited::Changed,
            Woken::Reached if self.stop.is_cancelled() => Waited::Stopped,
            Woken::Reached => Waited::Reached,
        }
    }

    /// Sends an admitted message and records what happened.
    async fn deliver(&self, held: &Taken, admitted: Admitted) -> Result<Answer, LoopError> {
        let Admitted {
            command,
            message_key,
            campaign_key,
            mut known_message,
            message,
            campaign,
            now,
        } = admitted;
        // 4. Send: the text is rendered first, so that the attempt records
        // what it sends.
        let attempt = message.attempt() + 1;
        if !self.context.hold.is_held() {
            // The lease ran out while it waited its turn: not this
            // engine's to send any more, unless a renewal says so.
            return Ok(Answer::Later(Duration::ZERO));
        }
        let template = template_of(&message, &campaign, &command, self.driver.sends_templates());
        // A template's attempt records what it sends in words.
        let text = match &template {
            Ok(Some(template)) => Ok(template.describe()),
            Ok(None) => render(&message, &campaign, &command),
            Err(reason) => Err(reason.clone()),
        };
        // Our id for the send, before it goes out: a send whose answer is
        // lost is looked up by it.
        let with_media = match &template {
            Ok(Some(template)) => template
                .header
                .as_ref()
                .and_then(TemplateHeader::media_id)
                .is_some(),
            _ => message
                .content()
                .map_or(campaign.media_id(), |content| content.media_id)
                .is_some(),
        };
        let chosen = match self
            .driver
            .choose_message_id(*command.message_id.as_uuid(), with_media)
            .await
        {
            Ok(chosen) => chosen,
            Err(err) => {
                warn!(error = %err, message = %command.message_id, "no provider id chosen: should its answer be lost, the send cannot be looked up");
                None
            }
        };
        let start = MessageCommand::StartSending {
            session_id: self.session,
            attempt,
            text: text.as_ref().ok().cloned(),
            provider_message_id: chosen.clone(),
            at: now,
        };
        let start = for_message(&command, &mut known_message, start);
        let taken = self
            .context
            .aggregates
            .messages
            .execute_on(&message_key, &mut known_message, start, &self.metadata())
            .await;
        if let Err(err) = taken {
            // Changed meanwhile (cancelled, say): admission looks again.
            debug!(error = %wablast_eventstore::report::Chain(&err), message = %command.message_id, "not taken; looking again");
            return Ok(Answer::Later(Duration::ZERO));
        }
        let outgoing = match (text, template) {
            (Ok(text), Ok(template)) => {
                self.outgoing(&message, &campaign, &command, text, template)
                    .await
            }
            (Err(reason), _) | (_, Err(reason)) => Err(reason),
        };
        let outcome = match outgoing {
            Ok(outgoing) => self.sending(&outgoing, chosen.as_deref(), held).await,
            Err(reason) => Err(SendError::Permanent(reason)),
        };

        // 5. Record what happened.
        let at = self.context.clock.now();
        match outcome {
            Ok(sent) => {
                self.record(
                    &message_key,
                    &mut known_message,
                    MessageCommand::RecordSent {
                        attempt,
                        provider_message_id: Some(sent.provider_message_id.clone()),
                        cost: Points::PER_MESSAGE,
                        at,
                    },
                )
                .await?;
                // Once the send is recorded, so that its receipts find it
                // sent.
                if let Err(err) = self
                    .context
                    .provider_ids
                    .remember(
                        self.session,
                        &sent.provider_message_id,
                        command.message_id,
                        known_message.take(),
                    )
                    .await
                {
                    warn!(error = %wablast_eventstore::report::Chain(&err), message = %command.message_id, "provider id not kept: its receipts will be missed");
                }
                self.failures_in_a_row.store(0, Ordering::Relaxed);
                self.signal(&campaign_key, &campaign, SendOutcome::Sent)
                    .await;
                Ok(Answer::Done)
            }
            Err(SendError::Transient(reason)) if attempt < self.context.config.max_attempts => {
                debug!(message = %command.message_id, attempt, %reason, "send failed; trying again");
                self.record_failure(&message_key, &mut known_message, attempt, reason, true, at)
                    .await?;
                let backoff = self.context.config.retry.after(u64::from(attempt));
                let again = at + TimeDelta::from_std(backoff).unwrap_or_default();
                if !self.wait_until(again, held).await {
                    return Ok(Answer::Stopped);
                }
                // Admitted again: a new slot, in the queue's order.
                Ok(Answer::Later(Duration::ZERO))
            }
            Err(SendError::SessionUnavailable(reason))
                if attempt < self.context.config.max_attempts =>
            {
                // Not the message's fault: it waits for a sender that can
                // (this one once it is back, or another the campaign
                // moves it to), and the failure is not counted as the
                // campaign's. Bounded like transient errors, should the
                // session keep saying it is ready.
                info!(message = %command.message_id, attempt, %reason, "the session cannot send; the message waits");
                self.record_failure(&message_key, &mut known_message, attempt, reason, true, at)
                    .await?;
                Ok(Answer::Later(Duration::from_secs(1)))
            }
            Err(SendError::Restricted {
                kind,
                until,
                reason,
            }) => {
                // WhatsApp's signal: recorded on the session, whose
                // governor holds the sender to it from the next slot on;
                // the message was not sent and waits (its next slot says
                // until when).
                warn!(message = %command.message_id, session = %self.session, ?kind, ?until, %reason, "the sender is restricted");
                let reported = self
                    .context
                    .aggregates
                    .sessions
                    .execute(
                        &key(self.tenant, self.session),
                        SessionCommand::FromHolder {
                            fence: self.context.hold.fence(),
                            report: Box::new(SessionCommand::ReportRestriction { kind, until, at }),
                        },
                        &self.metadata(),
                    )
                    .await;
                if let Err(err) = reported {
                    warn!(error = %wablast_eventstore::report::Chain(&err), session = %self.session, "restriction not recorded");
                }
                self.record_failure(&message_key, &mut known_message, attempt, reason, true, at)
                    .await?;
                // Not counted toward the campaign's pace: the governor
                // holds the restricted sender back (and moves its new
                // contacts) already.
                Ok(Answer::Later(Duration::from_secs(1)))
            }
            Err(SendError::Paused { reason, pause }) => {
                // WhatsApp holds the number back for a while: not the
                // message's fault, so its attempts are not bounded by it;
                // it waits out the pause (the driver answers the session's
                // other sends the same until the pause is over).
                info!(message = %command.message_id, attempt, %reason, ?pause, "the session is paused; the message waits");
                self.record_failure(&message_key, &mut known_message, attempt, reason, true, at)
                    .await?;
                self.signal(&campaign_key, &campaign, SendOutcome::Blocked)
                    .await;
                Ok(Answer::Later(pause))
            }
            Err(SendError::Transient(reason) | SendError::Permanent(reason)) => {
                info!(message = %command.message_id, attempt, %reason, "send failed");
                self.record_failure(&message_key, &mut known_message, attempt, reason, false, at)
                    .await?;
                self.failed(&campaign_key).await;
                self.signal(&campaign_key, &campaign, SendOutcome::Failed)
                    .await;
                Ok(Answer::Done)
            }
            Err(SendError::SessionUnavailable(reason)) => {
                // Not the recipients' failure: it does not count toward
                // the campaign's pace.
                info!(message = %command.message_id, attempt, %reason, "send failed");
                self.record_failure(&message_key, &mut known_message, attempt, reason, false, at)
                    .await?;
                self.failed(&campaign_key).await;
                Ok(Answer::Done)
            }
            Err(SendError::Unknown(reason)) if chosen.is_some() => {
                // The answer was lost, the send may still be on its way: it
                // stays `sending`, and once it comes back (a while later,
                // or to another engine) the peer is asked by its id.
                warn!(message = %command.message_id, attempt, %reason, "send outcome unknown: looked up later, not sent again");
                Ok(Answer::Later(LOOK_UP_AFTER))
            }
            Err(SendError::Unknown(reason)) => {
                warn!(message = %command.message_id, attempt, %reason, "send outcome unknown: marked unknown, not sent again");
                self.record(
                    &message_key,
                    &mut known_message,
                    MessageCommand::MarkUnknown { attempt, at },
                )
                .await?;
                // The connection dropped mid-send: the connection's
                // failure, not the recipient's; it does not count toward
                // the campaign's auto-pause.
                Ok(Answer::Done)
            }
        }
    }
    /// The driver's send, telling the queue the command is being worked on
    /// while it takes. Never cut short: once a message may have left, its
    /// outcome is waited for and recorded.
    async fn sending(
        &self,
        outgoing: &OutgoingMessage,
        provider_message_id: Option<&str>,
        held: &Taken,
    ) -> Result<crate::driver::SentMessage, SendError> {
        let send = self.driver.send_as(outgoing, provider_message_id);
        tokio::pin!(send);
        loop {
            tokio::select! {
                outcome = &mut send => return outcome,
                () = tokio::time::sleep(SendQueue::ACK_WAIT / 3) => {
                    held.progress().await;
                }
            }
        }
    }

    /// Asks the peer what became of a message found `sending` (its send
    /// was cut off before its outcome was recorded) by the id chosen
    /// before it went out, and records the answer: sent (charged, with the
    /// receipts the peer knows of), failed for good (never sent again), or
    /// unknown when the peer cannot tell. A lookup that fails is tried
    /// again while the session is not `ready`, and a few times
    /// ([`LOOK_UPS`], counted by the command's `deliveries`) once it is.
    async fn reconcile(
        &self,
        message_key: &AggregateKey,
        known_message: Loaded<Message>,
        ready: bool,
        deliveries: u64,
    ) -> Result<Answer, LoopError> {
        let message = known_message.aggregate.clone();
        let message_id = message.id();
        // Only the sender that sent it can ask about it (another session's
        // chats do not have it).
        let asked = match (message.provider_message_id(), message.to()) {
            (Some(id), Some(to)) if message.session_id() == self.session => {
                Some((id.to_owned(), self.driver.look_up(to, id).await))
            }
            _ => None,
        };
        let (provider_message_id, outcome) = match asked {
            Some((id, Ok(outcome))) => (Some(id), outcome),
            Some((_, Err(err))) if !ready || deliveries < LOOK_UPS => {
                debug!(error = %err, message = ?message_id, ready, deliveries, "lookup failed; tried again");
                return Ok(Answer::Later(Duration::from_secs(2)));
            }
            Some((id, Err(err))) => {
                warn!(error = %err, message = ?message_id, "lookup failed: the outcome stays unknown");
                (Some(id), LookedUp::CannotTell)
            }
            None => (None, LookedUp::CannotTell),
        };
        info!(message = ?message_id, attempt = message.attempt(), ?outcome, "the outcome of a send cut off, as the peer tells it");
        let command = MessageCommand::Reconcile {
            attempt: message.attempt(),
            outcome: outcome.clone(),
            at: self.context.clock.now(),
        };
        let mut known = Some(known_message);
        self.record(message_key, &mut known, command).await?;
        if let (LookedUp::WentOut { .. }, Some(id), Some(message_id)) =
            (&outcome, provider_message_id, message_id)
            && let Err(err) = self
                .context
                .provider_ids
                .remember(self.session, &id, message_id, known.take())
                .await
        {
            warn!(error = %wablast_eventstore::report::Chain(&err), message = %message_id, "provider id not kept: its receipts will be missed");
        }
        Ok(Answer::Done)
    }

    /// Records a failed attempt; `retryable`: the message may be sent again.
    async fn record_failure(
        &self,
        message_key: &AggregateKey,
        known: &mut Option<Loaded<Message>>,
        attempt: u32,
        reason: String,
        retryable: bool,
        at: DateTime<Utc>,
    ) -> Result<(), LoopError> {
        let command = MessageCommand::RecordFailed {
            attempt,
            reason,
            retryable,
            at,
        };
        self.record(message_key, known, command).await
    }

    /// Records an outcome, insisting a little: the message left, so losing
    /// its record would leave it `sending` (then `unknown`).
    async fn record(
        &self,
        message_key: &AggregateKey,
        known: &mut Option<Loaded<Message>>,
        command: MessageCommand,
    ) -> Result<(), LoopError> {
        let metadata = self.metadata();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            match self
                .context
                .aggregates
                .messages
                .execute_on(message_key, known, command.clone(), &metadata)
                .await
            {
                Ok(_) => return Ok(()),
                Err(AggregateError::UserError(refusal)) => {
                    debug!(error = %refusal, key = %message_key, "outcome not recorded: refused");
                    return Ok(());
                }
                Err(err) if attempt < 5 => {
                    warn!(error = %wablast_eventstore::report::Chain(&err), key = %message_key, attempt, "outcome not recorded yet; trying again");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// The session is no longer one of the campaign's senders: the command
    /// goes to one that is.
    async fn hand_over(
        &self,
        campaign: &Campaign,
        command: SendCommand,
    ) -> Result<Answer, LoopError> {
        let senders = campaign.senders();
        if senders.is_empty() {
            return Ok(Answer::Later(Duration::from_secs(30)));
        }
        let pick = (command.message_id.as_uuid().as_u128() % senders.len() as u128) as usize;
        self.context
            .queue
            .publish(senders[pick], &[command.moved()])
            .await?
            .await
            .map_err(EventStoreError::nats)?;
        Ok(Answer::Done)
    }

    /// Notes how a send of `campaign`'s ended, and reports the sender's
    /// last outcomes to the campaign when they change its pace (the
    /// campaign decides: [`Campaign::pace_change`] only spares the
    /// command when they would not).
    async fn signal(&self, campaign_key: &AggregateKey, campaign: &Campaign, outcome: SendOutcome) {
        let Some(campaign_id) = campaign.id() else {
            return;
        };
        let signals = {
            let mut outcomes = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
            if outcomes.len() >= Known::CAMPAIGNS && !outcomes.contains_key(&campaign_id) {
                outcomes.clear();
            }
            let window = outcomes.entry(campaign_id).or_default();
            window.push_back(outcome);
            while window.len() > SendSignals::WINDOW {
                window.pop_front();
            }
            SendSignals::of(window.iter())
        };
        let now = self.context.clock.now();
        if campaign.pace_change(self.session, signals, now).is_none() {
            return;
        }
        let reported = self
            .context
            .aggregates
            .campaigns
            .execute(
                campaign_key,
                CampaignCommand::ReportSendSignals {
                    session_id: self.session,
                    signals,
                    at: now,
                },
                &self.metadata(),
            )
            .await;
        match reported {
            Ok(committed) => {
                for event in &committed.events {
                    match &event.payload {
                        CampaignEvent::CampaignSlowedDown { throttle, .. } => {
                            warn!(campaign = %campaign_id, session = %self.session, ?signals, ?throttle, "campaign slowed down: failures climbing");
                        }
                        CampaignEvent::CampaignSpeedRestored { .. } => {
                            info!(campaign = %campaign_id, session = %self.session, ?signals, "campaign back to its own pace");
                        }
                        _ => {}
                    }
                }
            }
            Err(err) => {
                debug!(error = %wablast_eventstore::report::Chain(&err), "send signals not reported")
            }
        }
    }

    /// Counts a failed send and tells the campaign, which auto-pauses from
    /// its threshold on.
    async fn failed(&self, campaign_key: &AggregateKey) {
        let failures = self.failures_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        let reported = self
            .context
            .aggregates
            .campaigns
            .execute(
                campaign_key,
                CampaignCommand::ReportConsecutiveFailures {
                    session_id: self.session,
                    failures,
                    at: self.context.clock.now(),
                },
                &self.metadata(),
            )
            .await;
        match reported {
            Ok(committed) => {
                if committed
                    .events
                    .iter()
                    .any(|e| matches!(e.payload, CampaignEvent::CampaignAutoPaused { .. }))
                {
                    warn!(session = %self.session, failures, "campaign auto-paused after failures in a row");
                    self.failures_in_a_row.store(0, Ordering::Relaxed);
                }
            }
            Err(err) => {
                debug!(error = %wablast_eventstore::report::Chain(&err), "failures not reported")
            }
        }
    }

    /// The message as the driver sends it, with its rendered `text` (or
    /// its `template`, whose attachment is its header's).
    async fn outgoing(
        &self,
        message: &Message,
        campaign: &Campaign,
        command: &SendCommand,
        text: String,
        template: Option<TemplateMessage>,
    ) -> Result<OutgoingMessage, String> {
        let to = message
            .to()
            .cloned()
            .ok_or_else(|| "the message has no recipient".to_owned())?;
        // A template's header attachment; or a single send's own
        // attachment, or its campaign's.
        let media_id = match (&template, message.content()) {
            (Some(template), _) => template.header.as_ref().and_then(TemplateHeader::media_id),
            (None, Some(content)) => content.media_id,
            (None, None) => campaign.media_id(),
        };
        let media = match media_id {
            Some(media) => Some(self.media(media).await?),
            None => None,
        };
        Ok(OutgoingMessage {
            message_id: *command.message_id.as_uuid(),
            to,
            text,
            media,
            reply_to: message.content().and_then(|c| c.reply_to.clone()),
            template,
        })
    }

    /// A campaign's attachment, from the media store.
    async fn media(&self, media: MediaId) -> Result<OutgoingMedia, String> {
        let Some(dir) = &self.context.config.media_dir else {
            return Err("this engine has no media store".to_owned());
        };
        let row: Option<(String, String, String)> = sqlx::query_as(
            "select filename, mime_type, storage_key from media where tenant_id = $1 and id = $2",
        )
        .bind(self.tenant.as_uuid())
        .bind(media.as_uuid())
        .fetch_optional(&self.context.db)
        .await
        .map_err(|err| format!("media: {err}"))?;
        let Some((filename, mime_type, storage_key)) = row else {
            return Err("the message's media was deleted".to_owned());
        };
        // Keys are ids: nothing outside the store is ever read.
        if storage_key.parse::<uuid::Uuid>().is_err() {
            return Err("the media's storage key is not an id".to_owned());
        }
        let bytes = tokio::fs::read(dir.join(&storage_key))
            .await
            .map_err(|err| format!("media file: {err}"))?;
        Ok(OutgoingMedia {
            mime_type,
            filename,
            bytes: bytes.into(),
        })
    }
}
