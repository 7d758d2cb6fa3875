//! Receipts: WhatsApp reports a message it delivered or the recipient read
//! by its own id (the provider's), so the engine keeps which message each
//! provider id belongs to, and turns receipts into message events.
//!
//! The map lives in a JetStream KV bucket (`<prefix>_provider_ids`) whose
//! entries expire with the message retention, so a receipt that reaches
//! another engine (after a takeover, or a webhook routed elsewhere) still
//! finds its message.

use std::time::Duration;

use async_nats::jetstream::{self as js, kv};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tracing::{debug, warn};
use wablast_domain::message::{MessageCommand, Receipt as MessageReceipt};
use wablast_domain::types::{MessageId, SessionId, TenantId};
use wablast_eventstore::{Actor, CommandMetadata, EventStoreError, Prefix};

use crate::aggregates::{Aggregates, key};
use crate::driver::{Receipt, ReceiptKind};

/// Which message each provider message id belongs to.
#[derive(Clone, Debug)]
pub struct ProviderIds {
    bucket: kv::Store,
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
        )
        .await?;
        Ok(Self { bucket })
    }

    fn entry(session: SessionId, provider_message_id: &str) -> String {
        format!(
            "{session}.{}",
            URL_SAFE_NO_PAD.encode(provider_message_id.as_bytes())
        )
    }

    /// Remembers that `session` sent `message` as `provider_message_id`.
    pub async fn remember(
        &self,
        session: SessionId,
        provider_message_id: &str,
        message: MessageId,
    ) -> Result<(), EventStoreError> {
        self.bucket
            .put(
                Self::entry(session, provider_message_id),
                message.to_string().into(),
            )
            .await
            .map(|_| ())
            .map_err(EventStoreError::nats)
    }

    /// The message `session` sent as `provider_message_id`, if known.
    pub async fn find(
        &self,
        session: SessionId,
        provider_message_id: &str,
    ) -> Result<Option<MessageId>, EventStoreError> {
        let value = self
            .bucket
            .get(Self::entry(session, provider_message_id))
            .await
            .map_err(EventStoreError::nats)?;
        Ok(value.and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok()))
    }
}

/// How long a receipt waits for its message's id to be known (a receipt
/// can overtake the send's own bookkeeping).
const FIND_ATTEMPTS: u32 = 20;
const FIND_PAUSE: Duration = Duration::from_millis(100);

/// Records a receipt of `session`'s driver on its message: delivered and
/// read move the message on (never backwards: the aggregate sees to that).
pub async fn record(
    aggregates: &Aggregates,
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
    let message = loop {
        attempt += 1;
        match ids.find(session, &receipt.provider_message_id).await? {
            Some(message) => break message,
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
    if let Err(err) = aggregates
        .messages
        .execute(&key(tenant, message), command, &CommandMetadata::new(actor))
        .await
    {
        debug!(error = %err, %message, "receipt not recorded");
    }
    Ok(())
}
