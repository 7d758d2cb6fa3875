//! Campaign completion and settlement, and the clean-up of cancelled
//! campaigns: a process that looks, every few seconds, for campaigns whose
//! messages are all final.
//!
//! - A running or paused campaign whose every message is final (sent,
//!   delivered, read, failed for good, cancelled or unknown) completes, with
//!   its counts.
//! - A cancelled campaign's messages still waiting are cancelled (the send
//!   loop does the same when it meets them; a sender that is gone never
//!   will).
//! - A completed or cancelled campaign whose points are still reserved is
//!   settled: the wallet captures 2 points per message sent and releases
//!   the rest.
//!
//! - A direct campaign (a session's single sends of one local day) takes
//!   messages all day: it completes once its day is over (an hour past
//!   its local midnight, in the tenant's time zone) and its every message
//!   is final. Its messages still waiting then are put on their session's
//!   queue again, once per process: a single send whose command was lost
//!   between its admission and its queueing goes out instead of holding
//!   the campaign's points for good (a repeated command finds its message
//!   moved on and is dropped).
//!
//! Counts come from the `messages` projection, read only once it has caught
//! up with the log (its checkpoint at the messages stream's last sequence)
//! and once the fan-out has passed the campaign (its consumer's
//! acknowledgements at the campaign's last commit), so a count is never
//! taken while messages are still on their way. The commands are decided
//! by the aggregates, so two engines running this at once record each
//! completion and settlement once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{NaiveDate, TimeDelta, Utc};
use cqrs_es::Aggregate;
use sqlx::PgPool;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use uuid::Uuid;
use wablast_domain::campaign::{CampaignCommand, CampaignKind, CampaignStatus};
use wablast_domain::message::{Message, MessageCommand, MessageStatus, QueuedMessage};
use wablast_domain::recipient_batch;
use wablast_domain::types::{CampaignId, MessageId, SessionId, TenantId};
use wablast_domain::wallet::WalletCommand;
use wablast_eventstore::{Actor, CommandMetadata, EventLog, EventStoreError};
use wablast_projections::checkpoint;

use crate::clock::Clock;
use crate::commands::{Commands, key, tenant_key};
use crate::sends::{SendCommand, SendQueue};

/// Why a pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum SettlementError {
    /// The log.
    #[error(transparent)]
    Log(#[from] EventStoreError),
    /// The query database.
    #[error("postgres: {0}")]
    Database(#[from] sqlx::Error),
    /// A command failed other than by a refusal.
    #[error("{0}")]
    Command(String),
}

impl<E: std::error::Error> From<cqrs_es::AggregateError<E>> for SettlementError {
    fn from(err: cqrs_es::AggregateError<E>) -> Self {
        Self::Command(err.to_string())
    }
}

/// The completion and settlement process.
#[derive(Clone)]
pub struct Settlement {
    log: EventLog,
    db: PgPool,
    aggregates: Commands,
    clock: Arc<dyn Clock>,
    actor: Actor,
    fanout_consumer: String,
    queue: Arc<OnceCell<SendQueue>>,
    /// Direct campaigns whose waiting messages this process queued again.
    requeued: Arc<Mutex<HashSet<CampaignId>>>,
}

/// A campaign's messages by status, as projected.
#[derive(Debug, Default, Clone, Copy, sqlx::FromRow)]
struct Counts {
    queued: i64,
    sending: i64,
    sent: i64,
    delivered: i64,
    read: i64,
    failed: i64,
    cancelled: i64,
    unknown: i64,
}

impl Counts {
    fn total(&self) -> i64 {
        self.queued
            + self.sending
            + self.sent
            + self.delivered
            + self.read
            + self.failed
            + self.cancelled
            + self.unknown
    }

    fn sent(&self) -> u64 {
        u64::try_from(self.sent + self.delivered + self.read).unwrap_or(0)
    }
}

impl Settlement {
    /// The process; `fanout_consumer` is the fan-out's durable consumer.
    pub fn new(
        log: EventLog,
        db: PgPool,
        aggregates: Commands,
        clock: Arc<dyn Clock>,
        actor: Actor,
        fanout_consumer: String,
    ) -> Self {
        Self {
            log,
            db,
            aggregates,
            clock,
            actor,
            fanout_consumer,
            queue: Arc::default(),
            requeued: Arc::default(),
        }
    }

    /// Runs a pass every `every` until `shutdown`.
    pub async fn run(self, every: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(err) = self.pass().await {
                warn!(error = %wablast_eventstore::report::Chain(&err), "campaign settlement pass failed; trying again");
            }
        }
    }

    fn metadata(&self) -> CommandMetadata {
        CommandMetadata::new(self.actor.clone())
    }

    /// One look at every campaign that may need completing, cleaning up or
    /// settling.
    pub async fn pass(&self) -> Result<(), SettlementError> {
        // A direct campaign's day is over somewhere only once its date is
        // before today's in UTC; the tenant's time zone decides below.
        let candidates: Vec<(Uuid, Uuid, String, i64)> = sqlx::query_as(
            "select c.id, c.tenant_id, c.status, c.recipients
             from campaigns c
             where (c.points_reserved > 0 or c.kind = 'direct')
               and ((c.status in ('running', 'paused')
                     and (c.kind <> 'direct' or c.direct_day < ($1 at time zone 'utc')::date))
                    or (c.status in ('completed', 'cancelled')
                        and not exists (
                            select 1 from wallet_transactions t
                            where t.campaign_id = c.id and t.kind in ('capture', 'release'))))
             order by c.id",
        )
        .bind(self.clock.now())
        .fetch_all(&self.db)
        .await?;
        if candidates.is_empty() {
            return Ok(());
        }
        if !self.messages_caught_up().await? {
            debug!("messages projection behind the log; settling later");
            return Ok(());
        }
        let fanned_out_to = self.fanned_out_to().await?;
        for (campaign, tenant, status, recipients) in candidates {
            let tenant = TenantId::from_uuid(tenant);
            let campaign = CampaignId::from_uuid(campaign);
            if let Err(err) = self
                .campaign(tenant, campaign, &status, recipients, fanned_out_to)
                .await
            {
                warn!(error = %wablast_eventstore::report::Chain(&err), %campaign, "campaign not settled; trying again");
            }
        }
        Ok(())
    }

    #[tracing::instrument(name = "completion", skip(self, status, recipients, fanned_out_to))]
    async fn campaign(
        &self,
        tenant: TenantId,
        campaign_id: CampaignId,
        status: &str,
        recipients: i64,
        fanned_out_to: u64,
    ) -> Result<(), SettlementError> {
        let campaign_key = key(tenant, campaign_id);
        let loaded = self.aggregates.campaigns.load(&campaign_key).await?;
        if loaded.stream_sequence > fanned_out_to {
            // The fan-out has not seen the campaign's latest commit: its
            // messages may still be coming.
            return Ok(());
        }
        let campaign = loaded.aggregate;
        let counts = self.counts(tenant, campaign_id).await?;
        match (status, campaign.status()) {
            (_, Some(CampaignStatus::Running | CampaignStatus::Paused)) => {
                if let CampaignKind::Direct { session_id, day } = campaign.kind() {
                    if !self.day_over(tenant, day).await? {
                        return Ok(());
                    }
                    if counts.queued > 0 {
                        self.queue_waiting_once(tenant, campaign_id, session_id)
                            .await?;
                    }
                }
                if counts.total() < recipients
                    || counts.queued > 0
                    || counts.sending > 0
                    || self.any_failure_retried(tenant, campaign_id).await?
                {
                    return Ok(());
                }
                let committed = self
                    .aggregates
                    .campaigns
                    .execute(
                        &campaign_key,
                        CampaignCommand::CompleteCampaign {
                            sent: counts.sent(),
                            failed: u64::try_from(counts.failed + counts.unknown).unwrap_or(0),
                            cancelled: u64::try_from(counts.cancelled).unwrap_or(0),
                            at: self.clock.now(),
                        },
                        &self.metadata(),
                    )
                    .await?;
                if !committed.events.is_empty() {
                    info!(campaign = %campaign_id, %tenant, sent = counts.sent(), "campaign completed");
                }
                self.settle(tenant, campaign_id, counts.sent()).await
            }
            (_, Some(CampaignStatus::Cancelled)) => {
                if counts.queued > 0 || counts.failed > 0 {
                    self.cancel_waiting(tenant, campaign_id, recipients).await?;
                }
                if counts.queued > 0 || counts.sending > 0 {
                    // Settled once those are cancelled or their outcome
                    // is in.
                    return Ok(());
                }
                self.settle(tenant, campaign_id, counts.sent()).await
            }
            (_, Some(CampaignStatus::Completed)) => {
                self.settle(tenant, campaign_id, counts.sent()).await
            }
            _ => Ok(()),
        }
    }

    /// Captures what was sent and releases the rest (nothing when settled
    /// already).
    #[tracing::instrument(name = "settlement", skip(self))]
    async fn settle(
        &self,
        tenant: TenantId,
        campaign_id: CampaignId,
        messages_sent: u64,
    ) -> Result<(), SettlementError> {
        let wallet = self
            .aggregates
            .wallets
            .load(&tenant_key(tenant))
            .await?
            .aggregate;
        if wallet.reservation(campaign_id).is_none() {
            return Ok(());
        }
        let committed = self
            .aggregates
            .wallets
            .execute(
                &tenant_key(tenant),
                WalletCommand::Settle {
                    campaign_id,
                    messages_sent,
                    at: Utc::now(),
                },
                &self.metadata(),
            )
            .await?;
        if !committed.events.is_empty() {
            info!(campaign = %campaign_id, %tenant, messages_sent, "campaign settled");
        }
        Ok(())
    }

    /// Whether the tenant's local day `day` ended over an hour ago.
    async fn day_over(&self, tenant: TenantId, day: NaiveDate) -> Result<bool, SettlementError> {
        let schedule = self
            .aggregates
            .schedules
            .load(&tenant_key(tenant))
            .await?
            .aggregate;
        let an_hour_ago = self.clock.now() - TimeDelta::hours(1);
        Ok(schedule.active_hours().local_date(an_hour_ago) > day)
    }

    /// Puts a direct campaign's messages still queued on their session's
    /// queue again, the first time this process sees them waiting.
    async fn queue_waiting_once(
        &self,
        tenant: TenantId,
        campaign_id: CampaignId,
        session_id: SessionId,
    ) -> Result<(), SettlementError> {
        if !self
            .requeued
            .lock()
            .expect("requeued lock")
            .insert(campaign_id)
        {
            return Ok(());
        }
        let mut in_batches = self.batch_messages(tenant, campaign_id, u32::MAX).await?;
        let waiting: Vec<Uuid> = sqlx::query_scalar(
            "select id from messages
             where tenant_id = $1 and campaign_id = $2 and status = 'queued'",
        )
        .bind(tenant.as_uuid())
        .bind(campaign_id.as_uuid())
        .fetch_all(&self.db)
        .await?;
        let commands: Vec<SendCommand> = waiting
            .into_iter()
            .map(MessageId::from_uuid)
            .map(|message_id| SendCommand {
                tenant_id: tenant,
                campaign_id,
                message_id,
                queued_at: None,
                queued: in_batches.remove(&message_id).map(Box::new),
            })
            .collect();
        let queue = self
            .queue
            .get_or_try_init(|| SendQueue::open(self.log.jetstream(), self.log.prefix()))
            .await?;
        for chunk in commands.chunks(SendQueue::COMMANDS_PER_MESSAGE) {
            queue
                .publish(session_id, chunk)
                .await?
                .await
                .map_err(EventStoreError::nats)?;
        }
        if !commands.is_empty() {
            info!(campaign = %campaign_id, %tenant, messages = commands.len(), "single sends still waiting queued again");
        }
        Ok(())
    }

    /// The messages of a campaign's first `batches` recipient batches (up
    /// to the first that holds none), as their batches queued them.
    async fn batch_messages(
        &self,
        tenant: TenantId,
        campaign_id: CampaignId,
        batches: u32,
    ) -> Result<HashMap<MessageId, QueuedMessage>, SettlementError> {
        let mut in_batches = HashMap::new();
        for index in 0..batches {
            let batch = self
                .aggregates
                .recipient_batches
                .load(&key(tenant, recipient_batch::batch_id(campaign_id, index)))
                .await?
                .aggregate;
            if batch.campaign_id().is_none() {
                // Queued alone (before batches), or not queued at all.
                break;
            }
            in_batches.extend(batch.messages().map(|m| (m.message_id, m)));
        }
        Ok(in_batches)
    }

    /// Cancels a cancelled campaign's messages that still wait (a failure
    /// that would have been retried included). A message queued in a
    /// recipient batch and never sent has no history yet: its cancellation
    /// is its first commit, with the `MessageQueued` its batch says.
    async fn cancel_waiting(
        &self,
        tenant: TenantId,
        campaign_id: CampaignId,
        recipients: i64,
    ) -> Result<(), SettlementError> {
        // A direct campaign's batches are not counted by its recipients.
        let batches = match u32::try_from(
            usize::try_from(recipients)
                .unwrap_or(0)
                .div_ceil(recipient_batch::BATCH_SIZE),
        ) {
            Ok(0) | Err(_) => u32::MAX,
            Ok(batches) => batches,
        };
        let mut in_batches = self.batch_messages(tenant, campaign_id, batches).await?;
        let waiting: Vec<Uuid> = sqlx::query_scalar(
            "select id from messages
             where tenant_id = $1 and campaign_id = $2 and status in ('queued', 'failed')",
        )
        .bind(tenant.as_uuid())
        .bind(campaign_id.as_uuid())
        .fetch_all(&self.db)
        .await?;
        for id in waiting {
            let message = MessageId::from_uuid(id);
            let cancel = MessageCommand::CancelMessage {
                at: self.clock.now(),
            };
            let cancel = match in_batches.remove(&message) {
                Some(queued) => MessageCommand::FromBatch {
                    queued: Box::new(queued),
                    command: Box::new(cancel),
                },
                None => cancel,
            };
            if let Err(err) = self
                .aggregates
                .messages
                .execute(&key(tenant, message), cancel, &self.metadata())
                .await
            {
                debug!(error = %wablast_eventstore::report::Chain(&err), %message, "message not cancelled");
            }
        }
        Ok(())
    }

    /// Whether a failed message of the campaign is to be tried again.
    async fn any_failure_retried(
        &self,
        tenant: TenantId,
        campaign_id: CampaignId,
    ) -> Result<bool, SettlementError> {
        let failed: Vec<Uuid> = sqlx::query_scalar(
            "select id from messages
             where tenant_id = $1 and campaign_id = $2 and status = 'failed'",
        )
        .bind(tenant.as_uuid())
        .bind(campaign_id.as_uuid())
        .fetch_all(&self.db)
        .await?;
        for id in failed {
            let message = self
                .aggregates
                .messages
                .load(&key(tenant, MessageId::from_uuid(id)))
                .await?
                .aggregate;
            if message.status() == Some(MessageStatus::Failed) && message.is_retryable() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn counts(
        &self,
        tenant: TenantId,
        campaign_id: CampaignId,
    ) -> Result<Counts, SettlementError> {
        let counts: Option<Counts> = sqlx::query_as(
            "select queued, sending, sent, delivered, read, failed, cancelled, unknown
             from campaign_message_counts where tenant_id = $1 and campaign_id = $2",
        )
        .bind(tenant.as_uuid())
        .bind(campaign_id.as_uuid())
        .fetch_optional(&self.db)
        .await?;
        Ok(counts.unwrap_or_default())
    }

    /// Whether the `messages` projection has applied the whole messages
    /// stream as it is now.
    async fn messages_caught_up(&self) -> Result<bool, SettlementError> {
        let end = crate::layout::end_of_stream(&self.log, Message::TYPE).await?;
        let checkpoint = checkpoint::read(&self.db, "messages", end.stream).await?;
        Ok(checkpoint >= end.sequence)
    }

    /// The stream sequence up to which the fan-out has handled campaign
    /// commits.
    async fn fanned_out_to(&self) -> Result<u64, SettlementError> {
        let name = self
            .log
            .stream_name_of(wablast_domain::campaign::Campaign::TYPE)?;
        let mut consumer: async_nats::jetstream::consumer::PullConsumer = match self
            .log
            .stream(name)?
            .get_consumer(&self.fanout_consumer)
            .await
        {
            Ok(consumer) => consumer,
            Err(err) => {
                debug!(error = %err, "no fan-out consumer yet");
                return Ok(0);
            }
        };
        let info = consumer.info().await.map_err(EventStoreError::nats)?;
        Ok(info.ack_floor.stream_sequence)
    }
}
