//! Receipts: WhatsApp reports a message it delivered or the recipient read
//! by its own id (the provider's), so the engine keeps which message each
//! provider id belongs to, and turns receipts into message events.
//!
//! The map lives in a JetStream KV bucket (`<prefix>_provider_ids`) whose
//! entries expire with the message retention, so a receipt that reaches
//! another engine (after a takeover, or a webhook routed elsewhere) still
//! finds its message. The engine also remembers the ids of its own latest
//! sends, so the receipts that follow a send at once need no lookup.
//!
//! A session's receipts are recorded as they come ([`record_all`]): those
//! that arrived together are folded per message first (a read receipt says
//! delivered too), and several messages are recorded side by side.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self as js, kv};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::{Stream, StreamExt};
use tracing::{debug, warn};
use wablast_domain::message::{Message, MessageCommand, Receipt as MessageReceipt};
use wablast_domain::types::{MessageId, SessionId, TenantId};
use wablast_eventstore::{Actor, CommandMetadata, EventStoreError, Loaded, Prefix};

use crate::driver::{Receipt, ReceiptKind};
use wablast_workflows::commands::{Commands, key};

/// Which message each provider message id belongs to.
#[derive(Clone, Debug)]
pub struct ProviderIds {
    bucket: kv::Store,
    recent: Arc<Mutex<Recent>>,
}

/// The latest ids remembered by this engine, oldest forgotten first, with
/// the state of their messages as the send left them.
#[derive(Debug, Default)]
struct Recent {
    ids: HashMap<String, (MessageId, Option<Loaded<Message>>)>,
    order: VecDeque<String>,
}

impl Recent {
    /// Ids kept in memory at most.
    const CAPACITY: usize = 20_000;

    fn insert(&mut self, entry: String, message: MessageId, state: Option<Loaded<Message>>) {
        if self.ids.insert(entry.clone(), (message, state)).is_none() {
            self.order.push_back(entry);
            while self.order.len() > Self::CAPACITY {
                if let Some(oldest) = self.order.pop_front() {
                    self.ids.remove(&oldest);
                }
            }
        }
    }
}

impl ProviderIds {
    /// How long a provider id is remembered: as long as message events are
    /// kept by default.
    pub const KEEP: Duration = Duration::from_secs(14 * 24 * 3600);

    /// Opens the map, creating its bucket if needed.
    pub async fn open(jetstream: &js::Context, prefix: &Prefix) -> Result<Self, EventStoreError> {
        let bucket = wablast_eventstore::ensure_expiring_key_value(
            jetstream,
            &format!("{prefix}_provider_ids"),
            "which message a WhatsApp message id belongs to, per session",
            Self::KEEP,
            prefix.replicas(),
        )
        .await?;
        Ok(Self {
            bucket,
            recent: Arc::default(),
        })
    }

    fn entry(session: SessionId, provider_message_id: &str) -> String {
        format!(
            "{session}.{}",
            URL_SAFE_NO_PAD.encode(provider_message_id.as_bytes())
        )
    }

    /// Remembers that `session` sent `message` as `provider_message_id`;
    /// `state`: the message as the send left it, so that its first receipt
    /// decides on it without reading the log.
    pub async fn remember(
        &self,
        session: SessionId,
        provider_message_id: &str,
        message: MessageId,
        state: Option<Loaded<Message>>,
    ) -> Result<(), EventStoreError> {
        let entry = Self::entry(session, provider_message_id);
        self.recent
            .lock()
            .expect("provider ids lock")
            .insert(entry.clone(), message, state);
        self.bucket
            .put(entry, message.to_string().into())
            .await
            .map(|_| ())
            .map_err(EventStoreError::nats)
    }

    /// The message `session` sent as `provider_message_id`, as this engine
    /// remembers it (with the state it kept, taken out), if it does.
    fn recalled(
        &self,
        session: SessionId,
        provider_message_id: &str,
    ) -> Option<(MessageId, Option<Loaded<Message>>)> {
        let mut recent = self.recent.lock().expect("provider ids lock");
        let (message, state) = recent
            .ids
            .get_mut(&Self::entry(session, provider_message_id))?;
        Some((*message, state.take()))
    }

    /// Keeps a message's state after a receipt, for the next one.
    fn keep(&self, session: SessionId, provider_message_id: &str, state: Loaded<Message>) {
        let mut recent = self.recent.lock().expect("provider ids lock");
        if let Some((_, kept)) = recent
            .ids
            .get_mut(&Self::entry(session, provider_message_id))
        {
            *kept = Some(state);
        }
    }

    /// The message `session` sent as `provider_message_id`, if known.
    pub async fn find(
        &self,
        session: SessionId,
        provider_message_id: &str,
    ) -> Result<Option<MessageId>, EventStoreError> {
        let entry = Self::entry(session, provider_message_id);
        if let Some((message, _)) = self
            .recent
            .lock()
            .expect("provider ids lock")
            .ids
            .get(&entry)
        {
            return Ok(Some(*message));
        }
        let value = self
            .bucket
            .get(entry)
            .await
            .map_err(EventStoreError::nats)?;
        Ok(value.and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok()))
    }
}

/// How long a receipt waits for its message's id to be known (a receipt
/// can overtake the send's own bookkeeping).
const FIND_ATTEMPTS: u32 = 40;
const FIND_PAUSE: Duration = Duration::from_millis(50);
/// Attempts that only look in this engine's memory: a receipt that follows
/// a send at once is found there as soon as the send is recorded.
const FIND_LOCAL: u32 = 5;

/// Messages whose receipts are recorded side by side, per session.
const RECORDING_AT_ONCE: usize = 32;

/// Records `session`'s receipts as they come, until the stream ends: those
/// that arrived together are folded per message (the furthest kept: a read
/// receipt records delivered too), and up to [`RECORDING_AT_ONCE`] messages
/// are recorded side by side.
pub async fn record_all(
    aggregates: &Commands,
    ids: &ProviderIds,
    tenant: TenantId,
    session: SessionId,
    receipts: impl Stream<Item = Receipt>,
    actor: Actor,
) {
    receipts
        .ready_chunks(256)
        .flat_map(|arrived| futures::stream::iter(fold(arrived)))
        .for_each_concurrent(RECORDING_AT_ONCE, |receipt| {
            let actor = actor.clone();
            async move {
                if let Err(err) = record(aggregates, ids, tenant, session, receipt, actor).await {
                    warn!(error = %wablast_eventstore::report::Chain(&err), %session, "receipt not recorded");
                }
            }
        })
        .await;
}

/// Receipts that arrived together, one per provider message id: the
/// furthest of each (read over delivered; a failure report kept apart).
fn fold(arrived: Vec<Receipt>) -> Vec<Receipt> {
    let rank = |kind: &ReceiptKind| match kind {
        ReceiptKind::Failed { .. } => 0,
        ReceiptKind::Delivered => 1,
        ReceiptKind::Read => 2,
    };
    let mut folded: Vec<Receipt> = Vec::with_capacity(arrived.len());
    let mut at: HashMap<String, usize> = HashMap::with_capacity(arrived.len());
    for receipt in arrived {
        if matches!(receipt.kind, ReceiptKind::Failed { .. }) {
            folded.push(receipt);
            continue;
        }
        match at.get(&receipt.provider_message_id) {
            Some(&i) if rank(&folded[i].kind) >= rank(&receipt.kind) => {}
            Some(&i) => folded[i] = receipt,
            None => {
                at.insert(receipt.provider_message_id.clone(), folded.len());
                folded.push(receipt);
            }
        }
    }
    folded
}

/// Records a receipt of `session`'s driver on its message: delivered and
/// read move the message on (never backwards: the aggregate sees to that).
pub async fn record(
    aggregates: &Commands,
    ids: &ProviderIds,
    tenant: TenantId,
    session: SessionId,
    receipt: Receipt,
    actor: Actor,
) -> Result<(), EventStoreError> {
    let kind = match receipt.kind {
        ReceiptKind::Delivered => MessageReceipt::Delivered,
        ReceiptKind::Read => MessageReceipt::Read,
        ReceiptKind::Failed { reason } => {
            // WhatsApp took the message and could not deliver it later: the
            // message stays sent (it was paid for when it left).
            warn!(%session, id = %receipt.provider_message_id, %reason, "a sent message was not delivered");
            return Ok(());
        }
    };
    let mut attempt = 0;
    let (message, mut known) = loop {
        attempt += 1;
        let found = match ids.recalled(session, &receipt.provider_message_id) {
            Some(found) => Some(found),
            None if attempt > FIND_LOCAL => ids
                .find(session, &receipt.provider_message_id)
                .await?
                .map(|message| (message, None)),
            None => None,
        };
        match found {
            Some(found) => break found,
            None if attempt < FIND_ATTEMPTS => tokio::time::sleep(FIND_PAUSE).await,
            None => {
                debug!(%session, id = %receipt.provider_message_id, "receipt of a message not sent by wablast");
                return Ok(());
            }
        }
    };
    let command = MessageCommand::RecordReceipt {
        receipt: kind,
        at: receipt.at,
    };
    // On the state the send left when this engine sent it (the log is read
    // only if the message changed since), else as the log has it.
    match aggregates
        .messages
        .execute_on(
            &key(tenant, message),
            &mut known,
            command,
            &CommandMetadata::new(actor),
        )
        .await
    {
        Ok(_) => {
            if let Some(state) = known {
                ids.keep(session, &receipt.provider_message_id, state);
            }
        }
        Err(err) => {
            debug!(error = %wablast_eventstore::report::Chain(&err), %message, "receipt not recorded")
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(id: &str, kind: ReceiptKind) -> Receipt {
        Receipt {
            provider_message_id: id.to_owned(),
            kind,
            at: chrono::Utc::now(),
        }
    }

    #[test]
    fn receipts_that_arrived_together_are_folded_per_message() {
        let folded = fold(vec![
            receipt("a", ReceiptKind::Delivered),
            receipt("b", ReceiptKind::Delivered),
            receipt("a", ReceiptKind::Read),
            receipt("c", ReceiptKind::Read),
            receipt("c", ReceiptKind::Delivered),
            receipt(
                "b",
                ReceiptKind::Failed {
                    reason: "gone".to_owned(),
                },
            ),
        ]);
        let seen: Vec<(&str, &ReceiptKind)> = folded
            .iter()
            .map(|r| (r.provider_message_id.as_str(), &r.kind))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("a", &ReceiptKind::Read),
                ("b", &ReceiptKind::Delivered),
                ("c", &ReceiptKind::Read),
                (
                    "b",
                    &ReceiptKind::Failed {
                        reason: "gone".to_owned()
                    }
                ),
            ]
        );
    }
}
