//! Campaign fan-out: when a campaign starts, its recipients (the contact
//! list's contacts, frozen by the start) each get a queued message and a
//! send command on the queue of one of the campaign's senders, spread by
//! what each sender can still send today.
//!
//! Recipients are queued in batches ([`BATCH_SIZE`] to a
//! [`RecipientBatch`](wablast_domain::recipient_batch::RecipientBatch)
//! commit), and each send command carries its message as the batch queued
//! it: the message's own history starts at its first send (or its
//! cancellation), in one commit with it. Every batch is queued first,
//! then the send commands go out, [`SendQueue::COMMANDS_PER_MESSAGE`] to
//! a queue message: the campaign is whole (every recipient counted,
//! cancellable, settled against) before its first send.
//!
//! A durable consumer of campaign events drives it, so a fan-out cut off by
//! a crash runs again from the redelivered `CampaignStarted`: a batch's id
//! is derived from the campaign and its place, and a message's from the
//! campaign and the contact's row; a batch is committed only if it does
//! not exist yet ([`CommandHandler::create`]). One that does is taken as
//! the earlier run queued it, and each of its messages that still waits
//! (no history yet, or queued) gets its send command again (deduplicated
//! by the queue, or dropped by the send loop once the message moved on).
//! Nothing is lost, nothing doubled.
//!
//! When a sender leaves a campaign for good (`CampaignSenderRemoved`), the
//! commands waiting on its queue move to the campaign's remaining senders.
//!
//! [`CommandHandler::create`]: wablast_eventstore::CommandHandler::create

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::AckKind;
use cqrs_es::{Aggregate, AggregateError};
use futures::{StreamExt, TryStreamExt};
use sqlx::PgPool;
use sqlx::types::Json;
use tracing::{debug, info, warn};
use uuid::Uuid;
use wablast_domain::campaign::{Campaign, CampaignEvent, CampaignStatus};
use wablast_domain::message::{MessageStatus, QueuedMessage};
use wablast_domain::recipient_batch::{
    BATCH_SIZE, BatchRecipient, RecipientBatchCommand, batch_id,
};
use wablast_domain::types::phone::Phone;
use wablast_domain::types::{CampaignId, MessageId, SessionId, TenantId};
use wablast_eventstore::{
    Actor, CommandMetadata, ConsumerSpec, Delivery, EventLog, RecordedEvent, WorkError, Worker,
};

use crate::capacity;
use crate::clock::Clock;
use crate::commands::{Commands, key};
use crate::sends::{SendCommand, SendQueue};

/// How many send commands are published (or, in a fan-out run again,
/// messages read) at once.
const CONCURRENCY: usize = 256;

/// How many recipient batches are queued at once.
const BATCHES_AT_ONCE: usize = 8;

/// The id of the message to the contact in `row` of a campaign's list:
/// the same every time the fan-out runs.
pub fn message_id(campaign: CampaignId, row: i32) -> MessageId {
    MessageId::from_uuid(Uuid::new_v5(campaign.as_uuid(), &row.to_be_bytes()))
}

/// The campaign process: fan-out on start, moving a removed sender's work.
#[derive(Clone)]
pub struct FanOut {
    db: PgPool,
    aggregates: Commands,
    queue: SendQueue,
    clock: Arc<dyn Clock>,
    actor: Actor,
}

/// One recipient as the contact list holds it.
#[derive(sqlx::FromRow)]
struct Contact {
    row_number: i32,
    phone: String,
    name: Option<String>,
    variables: Json<BTreeMap<String, String>>,
}

impl FanOut {
    /// The process, acting as `actor` (the engine running it).
    pub fn new(
        db: PgPool,
        aggregates: Commands,
        queue: SendQueue,
        clock: Arc<dyn Clock>,
        actor: Actor,
    ) -> Self {
        Self {
            db,
            aggregates,
            queue,
            clock,
            actor,
        }
    }

    /// Its durable consumer: every campaign commit, in order.
    pub fn consumer(log: &EventLog) -> Result<ConsumerSpec, wablast_eventstore::EventStoreError> {
        let mut spec = ConsumerSpec::new("campaign-fanout", log.stream_name_of(Campaign::TYPE)?);
        spec.filter_subject = log.prefix().aggregate_type_subjects(Campaign::TYPE);
        spec.max_ack_pending = 1;
        spec.batch = 10;
        // A fan-out of a large list takes a while; an engine that dies
        // mid-way hands it over after this.
        spec.ack_wait = Duration::from_secs(300);
        spec.max_deliveries = 20;
        Ok(spec)
    }

    /// Queues every recipient of the campaign that started at `started`.
    #[tracing::instrument(name = "fan-out", skip_all, fields(campaign = %started.aggregate_id, correlation = %started.correlation_id))]
    async fn fan_out(&self, started: &RecordedEvent) -> Result<(), WorkError> {
        let (tenant, campaign_id) = ids(started)?;
        let campaign = self
            .aggregates
            .campaigns
            .load(&key(tenant, campaign_id))
            .await
            .map_err(WorkError::retryable)?
            .aggregate;
        match campaign.status() {
            Some(CampaignStatus::Running | CampaignStatus::Paused) => {}
            // Cancelled before its messages were queued: nothing will be
            // sent, and the cancellation settled it.
            other => {
                debug!(campaign = %campaign_id, status = ?other, "not fanned out: no longer sending");
                return Ok(());
            }
        }
        let Some(list) = campaign.contact_list_id() else {
            return Err(WorkError::fatal("a started campaign has no contact list"));
        };
        let senders = campaign.senders().to_vec();
        let capacities =
            capacity::remaining_today(&self.aggregates, tenant, &senders, self.clock.now())
                .await
                .map_err(WorkError::retryable)?;
        let mut rotation = Rotation::new(capacities);
        let at = self.clock.now();
        let recipients = i64::try_from(campaign.recipients()).unwrap_or(i64::MAX);
        let started_at = std::time::Instant::now();
        // Batches of the list's contacts in its order, each recipient's
        // sender picked as the contacts come; queued a few at a time, and
        // their commands kept in that order.
        let queued: Vec<(usize, Vec<(SessionId, SendCommand)>)> = sqlx::query_as::<_, Contact>(
            "select row_number, phone, name, variables from contacts c
             where list_id = $1 and tenant_id = $2
               and not exists (
                   select 1 from campaign_skipped_contacts s
                   where s.campaign_id = $4 and s.row_number = c.row_number)
             order by row_number
             limit $3",
        )
        .bind(list.as_uuid())
        .bind(tenant.as_uuid())
        .bind(recipients)
        .bind(campaign_id.as_uuid())
        .fetch(&self.db)
        .map_err(WorkError::retryable)
        .and_then(|contact| {
            let sender = rotation.next().map(|i| senders[i]);
            std::future::ready(recipient(campaign_id, contact, sender))
        })
        .try_chunks(BATCH_SIZE)
        .map_err(|err| err.1)
        .enumerate()
        .map(|(index, batch)| async move {
            let index = u32::try_from(index)
                .map_err(|_| WorkError::fatal("a campaign of more than 2^32 batches"))?;
            let batch = batch?;
            let contacts = batch.len();
            let commands = self
                .queue_batch(started, tenant, campaign_id, index, batch, at)
                .await?;
            Ok::<_, WorkError>((contacts, commands))
        })
        .buffered(BATCHES_AT_ONCE)
        .try_collect()
        .await?;
        // Each sender's commands in groups, in the list's order.
        let mut groups: HashMap<SessionId, Vec<SendCommand>> = HashMap::new();
        let mut full = Vec::new();
        let contacts: usize = queued.iter().map(|(contacts, _)| contacts).sum();
        if contacts as u64 != campaign.recipients() {
            warn!(campaign = %campaign_id, contacts, recipients = campaign.recipients(), "the list holds another number of contacts than the campaign froze");
        }
        let mut commands = 0u64;
        for (sender, command) in queued.into_iter().flat_map(|(_, commands)| commands) {
            commands += 1;
            let group = groups.entry(sender).or_default();
            group.push(command);
            if group.len() == SendQueue::COMMANDS_PER_MESSAGE {
                full.push((sender, std::mem::take(group)));
            }
        }
        full.extend(groups.into_iter().filter(|(_, group)| !group.is_empty()));
        futures::stream::iter(full)
            .map(|(sender, group)| async move {
                self.queue
                    .publish(sender, &group)
                    .await
                    .map_err(WorkError::retryable)?
                    .await
                    .map_err(WorkError::retryable)
            })
            .buffered(CONCURRENCY)
            .try_for_each(|_| async { Ok(()) })
            .await?;
        info!(campaign = %campaign_id, %tenant, commands, elapsed_ms = started_at.elapsed().as_millis() as u64, "campaign fanned out");
        Ok(())
    }

    /// Queues a campaign's `index`-th batch of recipients; the send
    /// command of each, for the sender it is queued for, unless it no
    /// longer waits. A batch an earlier run queued is taken as it queued
    /// it (its senders, its instant), whatever `recipients` say now.
    async fn queue_batch(
        &self,
        started: &RecordedEvent,
        tenant: TenantId,
        campaign_id: CampaignId,
        index: u32,
        recipients: Vec<BatchRecipient>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<(SessionId, SendCommand)>, WorkError> {
        let batch_key = key(tenant, batch_id(campaign_id, index));
        let metadata = CommandMetadata::caused_by(
            started,
            &format!("queue batch {index} of {campaign_id}"),
            self.actor.clone(),
        );
        let created = self
            .aggregates
            .recipient_batches
            .create(
                &batch_key,
                RecipientBatchCommand::QueueRecipients {
                    campaign_id,
                    index,
                    recipients: recipients.clone(),
                    at,
                },
                &metadata,
            )
            .await
            .map_err(|err| match err {
                AggregateError::UserError(refusal) => WorkError::fatal(refusal),
                err => WorkError::retryable(err),
            })?;
        let command = |queued: QueuedMessage| {
            (
                queued.session_id,
                SendCommand {
                    tenant_id: tenant,
                    campaign_id,
                    message_id: queued.message_id,
                    queued_at: None,
                    queued: Some(Box::new(queued)),
                },
            )
        };
        if created.is_some() {
            return Ok(recipients
                .into_iter()
                .map(|r| command(r.into_queued(campaign_id, at)))
                .collect());
        }
        // Queued by an earlier run: as it queued it, and a recipient's
        // command goes again if its message still waits (no history yet,
        // or queued).
        let batch = self
            .aggregates
            .recipient_batches
            .load(&batch_key)
            .await
            .map_err(WorkError::retryable)?
            .aggregate;
        let waiting = futures::stream::iter(batch.messages())
            .map(|queued| async move {
                let message = self
                    .aggregates
                    .messages
                    .load(&key(tenant, queued.message_id))
                    .await
                    .map_err(WorkError::retryable)?
                    .aggregate;
                Ok::<_, WorkError>(
                    matches!(message.status(), None | Some(MessageStatus::Queued))
                        .then(|| command(queued)),
                )
            })
            .buffered(CONCURRENCY)
            .try_filter_map(|waiting| async move { Ok(waiting) })
            .try_collect()
            .await?;
        Ok(waiting)
    }

    /// Moves the commands waiting on a removed sender's queue to the
    /// remaining senders of their campaigns. Commands of a campaign with no
    /// sender left stay where they are (the campaign is paused, saying
    /// why; cancelling it cancels them).
    #[tracing::instrument(name = "sends moved", skip(self))]
    async fn move_sends(&self, tenant: TenantId, removed: SessionId) -> Result<(), WorkError> {
        self.queue
            .remove_consumer(removed)
            .await
            .map_err(WorkError::retryable)?;
        let drain = self
            .queue
            .drain_consumer(tenant, removed)
            .await
            .map_err(WorkError::retryable)?;
        let mut rotations: HashMap<CampaignId, (Vec<SessionId>, usize)> = HashMap::new();
        let mut moved = 0u64;
        loop {
            let mut batch = drain
                .fetch()
                .max_messages(500)
                .expires(Duration::from_millis(500))
                .messages()
                .await
                .map_err(WorkError::retryable)?;
            let mut seen = 0;
            while let Some(message) = batch.next().await {
                let message = message.map_err(WorkError::retryable)?;
                seen += 1;
                let Some(commands) = SendQueue::commands_in(&message).await else {
                    continue;
                };
                let mut to: HashMap<SessionId, Vec<SendCommand>> = HashMap::new();
                for command in commands {
                    let (senders, next) = match rotations.entry(command.campaign_id) {
                        Entry::Occupied(rotation) => rotation.into_mut(),
                        Entry::Vacant(rotation) => {
                            let campaign = self
                                .aggregates
                                .campaigns
                                .load(&key(tenant, command.campaign_id))
                                .await
                                .map_err(WorkError::retryable)?
                                .aggregate;
                            let senders: Vec<SessionId> = campaign
                                .senders()
                                .iter()
                                .copied()
                                .filter(|s| *s != removed)
                                .collect();
                            rotation.insert((senders, 0))
                        }
                    };
                    if senders.is_empty() {
                        // Left in place: it comes back when this consumer
                        // goes (its campaign has no sender: it pauses).
                        to.clear();
                        break;
                    }
                    to.entry(senders[*next % senders.len()])
                        .or_default()
                        .push(command.moved());
                    *next += 1;
                }
                if to.is_empty() {
                    continue;
                }
                for (to, commands) in &to {
                    self.queue
                        .publish(*to, commands)
                        .await
                        .map_err(WorkError::retryable)?
                        .await
                        .map_err(WorkError::retryable)?;
                    moved += commands.len() as u64;
                }
                message
                    .double_ack_with(AckKind::Ack)
                    .await
                    .map_err(WorkError::retryable)?;
            }
            if seen == 0 {
                break;
            }
        }
        let _ = self
            .queue
            .remove_drain(drain)
            .await
            .inspect_err(|err| debug!(error = %wablast_eventstore::report::Chain(&err), "drain consumer not removed; it expires"));
        info!(session = %removed, %tenant, moved, "a removed sender's sends moved on");
        Ok(())
    }
}

impl Worker for FanOut {
    async fn handle(&self, delivery: &Delivery) -> Result<(), WorkError> {
        for recorded in delivery.events().map_err(WorkError::fatal)? {
            let event = self
                .aggregates
                .campaigns
                .decode(recorded.clone())
                .map_err(WorkError::fatal)?;
            match event {
                CampaignEvent::CampaignStarted { .. } => self.fan_out(&recorded).await?,
                CampaignEvent::CampaignSenderRemoved { session_id, .. } => {
                    let (tenant, _) = ids(&recorded)?;
                    self.move_sends(tenant, session_id).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The tenant and campaign of a campaign event.
fn ids(recorded: &RecordedEvent) -> Result<(TenantId, CampaignId), WorkError> {
    let key = recorded.key().map_err(WorkError::fatal)?;
    let tenant = key
        .tenant()
        .parse()
        .map_err(|_| WorkError::fatal("a campaign's tenant is a UUID"))?;
    let campaign = key
        .id()
        .parse()
        .map_err(|_| WorkError::fatal("a campaign's id is a UUID"))?;
    Ok((tenant, campaign))
}

/// A contact as its batch queues it, for `sender`.
fn recipient(
    campaign_id: CampaignId,
    contact: Contact,
    sender: Option<SessionId>,
) -> Result<BatchRecipient, WorkError> {
    let phone: Phone = serde_json::from_value(serde_json::Value::String(contact.phone))
        .map_err(|err| WorkError::fatal(format!("a stored contact's number: {err}")))?;
    Ok(BatchRecipient {
        message_id: message_id(campaign_id, contact.row_number),
        session_id: sender.ok_or_else(|| WorkError::fatal("the campaign has no sender"))?,
        to: phone.into(),
        name: contact.name,
        variables: contact.variables.0,
        content: None,
    })
}

/// Smooth weighted round robin: over any run of picks each sender gets its
/// share of the weights, interleaved (not in blocks), the same every time
/// for the same weights.
#[derive(Debug)]
struct Rotation {
    weights: Vec<i64>,
    current: Vec<i64>,
    total: i64,
}

impl Rotation {
    /// Weights from remaining capacities; when no sender has any left,
    /// equal shares (the messages wait for the next day either way).
    fn new(capacities: Vec<u64>) -> Self {
        let mut weights: Vec<i64> = capacities
            .iter()
            .map(|c| {
                i64::try_from(*c)
                    .unwrap_or(i64::MAX / 1024)
                    .min(i64::MAX / 1024)
            })
            .collect();
        if weights.iter().all(|w| *w == 0) {
            weights.iter_mut().for_each(|w| *w = 1);
        }
        let total = weights.iter().sum();
        Self {
            current: vec![0; weights.len()],
            weights,
            total,
        }
    }

    /// The index of the next sender; `None` without senders.
    fn next(&mut self) -> Option<usize> {
        if self.weights.is_empty() {
            return None;
        }
        for (current, weight) in self.current.iter_mut().zip(&self.weights) {
            *current += weight;
        }
        let (best, _) = self
            .current
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i)))?;
        self.current[best] -= self.total;
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picks(capacities: Vec<u64>, n: usize) -> Vec<usize> {
        let mut rotation = Rotation::new(capacities);
        (0..n).map(|_| rotation.next().unwrap()).collect()
    }

    #[test]
    fn senders_get_shares_by_remaining_capacity_interleaved() {
        let picked = picks(vec![300, 100], 8);
        assert_eq!(picked, vec![0, 0, 1, 0, 0, 0, 1, 0]);
        let counts = picks(vec![50, 150, 0], 200)
            .into_iter()
            .fold([0; 3], |mut c, i| {
                c[i] += 1;
                c
            });
        assert_eq!(
            counts,
            [50, 150, 0],
            "a sender with nothing left gets nothing"
        );
    }

    #[test]
    fn without_capacity_anywhere_the_shares_are_equal() {
        assert_eq!(picks(vec![0, 0], 4), vec![0, 1, 0, 1]);
        assert_eq!(Rotation::new(vec![]).next(), None);
    }

    #[test]
    fn message_ids_are_the_same_for_the_same_recipient() {
        let campaign = CampaignId::from_uuid(Uuid::from_u128(7));
        assert_eq!(message_id(campaign, 1), message_id(campaign, 1));
        assert_ne!(message_id(campaign, 1), message_id(campaign, 2));
        let other = CampaignId::from_uuid(Uuid::from_u128(8));
        assert_ne!(message_id(campaign, 1), message_id(other, 1));
    }
}
