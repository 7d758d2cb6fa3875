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
//! Every step may be repeated: the campaign opens once, a message id is
//! admitted once, and a command delivered twice finds its message sent.
//! A message id derived from the caller's idempotency key makes a retried
//! request land on the same message.
//!
//! The wallet is touched once per block, not per message; the campaign
//! once a day. Admissions to one campaign are made one at a time in a
//! process (they share a batch), so its batch sees no conflicting writer
//! but another process's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::AggregateError;
use tokio::sync::OnceCell;
use tracing::{debug, instrument};
use wablast_domain::campaign::{CampaignCommand, CampaignError, direct_campaign_id};
use wablast_domain::message::QueuedMessage;
use wablast_domain::recipient_batch::{
    BatchRecipient, RecipientBatchCommand, RecipientBatchError, batch_id,
};
use wablast_domain::session::SessionStatus;
use wablast_domain::session_day;
use wablast_domain::types::phone::Phone;
use wablast_domain::types::{
    CampaignId, MessageContent, MessageId, Points, SessionId, TenantId, Throttle,
};
use wablast_domain::wallet::{WalletCommand, WalletError};
use wablast_eventstore::{CommandMetadata, EventLog, EventStoreError};
use wablast_projections::wait::Position;

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
    /// The recipient.
    pub to: Phone,
    /// What it says.
    pub content: MessageContent,
    /// What to do when the active hours are closed now.
    pub outside_active_hours: OutsideActiveHours,
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
#[derive(Debug, thiserror::Error)]
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
    /// The event log could not be read or written: try again (with the
    /// same idempotency key, the same message).
    #[error("the event log: {0}")]
    Log(String),
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

type Blocks = tokio::sync::Mutex<Option<Block>>;

/// Single sends of an API process.
pub struct DirectSends {
    commands: Commands,
    log: EventLog,
    queue: OnceCell<SendQueue>,
    /// Per direct campaign: the batch it admits to, known to this process
    /// (admissions to one campaign wait for each other here).
    blocks: Mutex<HashMap<CampaignId, Arc<Blocks>>>,
    /// Per tenant: its sessions' blocks are reserved one at a time here,
    /// so that sessions opening blocks at once do not race on the wallet.
    reserving: Mutex<HashMap<TenantId, Arc<tokio::sync::Mutex<()>>>>,
}

impl DirectSends {
    /// Single sends over `log`.
    pub fn new(commands: Commands, log: EventLog) -> Self {
        Self {
            commands,
            log,
            queue: OnceCell::new(),
            blocks: Mutex::default(),
            reserving: Mutex::default(),
        }
    }

    async fn queue(&self) -> Result<&SendQueue, DirectSendError> {
        self.queue
            .get_or_try_init(|| SendQueue::open(self.log.jetstream(), self.log.prefix()))
            .await
            .map_err(DirectSendError::from)
    }

    /// Admits and queues one single send of `tenant` at `now`.
    #[instrument(skip(self, send, metadata), fields(session = %send.session_id, message = %send.message_id))]
    pub async fn send(
        &self,
        tenant: TenantId,
        send: DirectSend,
        metadata: &CommandMetadata,
        now: DateTime<Utc>,
    ) -> Result<Queued, DirectSendError> {
        let commands = &self.commands;
        // 1. What refuses it anyway: the session, the wallet and the
        // schedule read side by side, then the day's counter.
        let (session_key, tenant_key) = (key(tenant, send.session_id), tenant_key(tenant));
        let (session, wallet, schedule) = tokio::join!(
            commands.sessions.load(&session_key),
            commands.wallets.load(&tenant_key),
            commands.schedules.load(&tenant_key),
        );
        let (session, wallet, schedule) =
            (session?.aggregate, wallet?.aggregate, schedule?.aggregate);
        if !session.exists() || session.is_deleted() {
            return Err(DirectSendError::SessionNotFound);
        }
        if !session.is_ready() {
            return Err(DirectSendError::SessionNotReady {
                status: session.status(),
            });
        }
        if let Err(WalletError::PlanExpired { expired_at }) = wallet.can_send_at(now) {
            return Err(DirectSendError::PlanExpired { expired_at });
        }
        let hours = schedule.active_hours();
        let day = hours.local_date(now);
        let counter = commands
            .session_days
            .load(&day_key(
                tenant,
                &session_day::aggregate_id(send.session_id, day),
            ))
            .await?
            .aggregate;
        let limit = session.daily_limit().value();
        if counter.count() >= limit {
            return Err(DirectSendError::DailyLimitReached {
                limit,
                retry_at: hours.next_local_midnight(now),
            });
        }
        if send.outside_active_hours == OutsideActiveHours::Refuse && !hours.is_open(now) {
            return Err(DirectSendError::OutsideActiveHours {
                opens_at: hours.next_opening(now),
            });
        }

        // 2. The day's direct campaign.
        let campaign_id = direct_campaign_id(send.session_id, day);
        let blocks = self.blocks_of(campaign_id);
        let mut block = blocks.lock().await;
        if block.is_none() {
            self.open(
                tenant,
                (send.session_id, session.throttle()),
                day,
                campaign_id,
                metadata,
                now,
            )
            .await?;
        }

        // 3. Admitted to a batch its points were reserved for.
        let queued = QueuedMessage {
            message_id: send.message_id,
            campaign_id,
            session_id: send.session_id,
            phone: send.to.clone(),
            name: None,
            variables: Default::default(),
            content: Some(send.content.clone()),
            at: now,
        };
        let recipient = BatchRecipient {
            message_id: send.message_id,
            session_id: send.session_id,
            phone: send.to,
            name: None,
            variables: Default::default(),
            content: Some(send.content),
        };
        let written = loop {
            let current = match *block {
                Some(current) => current,
                None => {
                    self.current_block(tenant, campaign_id, metadata, now)
                        .await?
                }
            };
            *block = Some(current);
            let admitted = commands
                .recipient_batches
                .execute(
                    &key(tenant, batch_id(campaign_id, current.index)),
                    RecipientBatchCommand::AdmitRecipient {
                        campaign_id,
                        index: current.index,
                        first: current.first,
                        capacity: current.capacity,
                        recipient: recipient.clone(),
                        at: now,
                    },
                    &follow_up(metadata),
                )
                .await;
            match admitted {
                Ok(committed) => break position(&committed),
                Err(AggregateError::UserError(RecipientBatchError::Full { capacity })) => {
                    // The next batch starts where this one ends.
                    *block = Some(
                        self.next_block(
                            tenant,
                            campaign_id,
                            current.index + 1,
                            current.first + u64::from(capacity),
                            metadata,
                            now,
                        )
                        .await?,
                    );
                }
                Err(err) => {
                    // What this process knew may be stale: read it again.
                    *block = None;
                    return Err(err.into());
                }
            }
        };
        drop(block);

        // 4. On the session's queue.
        let command = SendCommand {
            tenant_id: tenant,
            campaign_id,
            message_id: send.message_id,
            queued_at: None,
            queued: Some(Box::new(queued)),
        };
        self.queue()
            .await?
            .publish(send.session_id, &[command])
            .await?
            .await
            .map_err(|err| DirectSendError::Log(err.to_string()))?;
        Ok(Queued {
            message_id: send.message_id,
            campaign_id,
            queued_at: now,
            written,
        })
    }

    fn blocks_of(&self, campaign_id: CampaignId) -> Arc<Blocks> {
        let mut blocks = self.blocks.lock().expect("blocks lock");
        // Yesterday's campaigns take no more admissions here.
        if blocks.len() > 10_000 {
            blocks.retain(|_, block| Arc::strong_count(block) > 1);
        }
        blocks.entry(campaign_id).or_default().clone()
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
            Err(err) => Err(err.into()),
        }
    }
}
