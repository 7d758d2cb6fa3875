//! `messages`: one row per recipient (`messages`), and each campaign's
//! messages counted by their current status (`campaign_message_counts`).
//!
//! A recipient's row is made by the first of: its recipient batch's
//! `RecipientsQueued`, or its message's own `MessageQueued` (a message
//! queued alone, as before batches). A batch-queued message's
//! `MessageQueued` comes later, in its first commit with the events of its
//! first command, and finds the row there: it changes nothing. A batch
//! holding a message queued alone before (a fan-out cut off before
//! batches, resumed with them) leaves that message's row as it is.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;
use wablast_domain::message::{Message, MessageEvent, MessageStatus};
use wablast_domain::recipient_batch::{RecipientBatch, RecipientBatchEvent};
use wablast_eventstore::RecordedEvent;

use super::{decode, id_of, missing_row, tenant_of};
use crate::copy::BinaryRows;
use crate::rows::{Row, RowSet, as_stored_from_json, upsert_sql};
use crate::{LogStream, Projection, ProjectionError};

const NAME: &str = "messages";

/// The `messages` projection.
pub(crate) struct Messages;

/// A row of `messages`.
#[derive(Debug, Serialize, Deserialize, sqlx::FromRow)]
pub(crate) struct MessageRow {
    id: Uuid,
    tenant_id: Uuid,
    campaign_id: Uuid,
    session_id: Uuid,
    phone: String,
    name: Option<String>,
    status: String,
    error: Option<String>,
    attempts: i32,
    provider_message_id: Option<String>,
    cost: i64,
    queued_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    read_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
    text: Option<String>,
    media_id: Option<Uuid>,
    reply_to: Option<String>,
}

impl Row for MessageRow {
    const TABLE: &'static str = "messages";
    const KEY: &'static str = "id";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "tenant_id",
        "campaign_id",
        "session_id",
        "phone",
        "name",
        "status",
        "error",
        "attempts",
        "provider_message_id",
        "cost",
        "queued_at",
        "sent_at",
        "delivered_at",
        "read_at",
        "updated_at",
        "text",
        "media_id",
        "reply_to",
    ];

    fn key(&self) -> Uuid {
        self.id
    }

    async fn fetch(conn: &mut PgConnection, keys: &[Uuid]) -> Result<Vec<Self>, sqlx::Error> {
        sqlx::query_as(
            "select id, tenant_id, campaign_id, session_id, phone, name, status, error, attempts, \
                 provider_message_id, cost, queued_at, sent_at, delivered_at, read_at, updated_at, \
                 text, media_id, reply_to \
             from messages where id = any($1)",
        )
        .bind(keys)
        .fetch_all(&mut *conn)
        .await
    }

    async fn insert(conn: &mut PgConnection, rows: &[&Self]) -> Result<(), sqlx::Error> {
        // New rows only: a binary `COPY`, PostgreSQL's fastest way in.
        let mut copy = BinaryRows::new(19, rows.len() * 300);
        let at = as_stored_from_json;
        for row in rows {
            copy.row();
            copy.uuid(row.id);
            copy.uuid(row.tenant_id);
            copy.uuid(row.campaign_id);
            copy.uuid(row.session_id);
            copy.text(&row.phone);
            copy.opt_text(row.name.as_deref());
            copy.text(&row.status);
            copy.opt_text(row.error.as_deref());
            copy.int4(row.attempts);
            copy.opt_text(row.provider_message_id.as_deref());
            copy.int8(row.cost);
            copy.timestamptz(at(row.queued_at));
            copy.opt_timestamptz(row.sent_at.map(at));
            copy.opt_timestamptz(row.delivered_at.map(at));
            copy.opt_timestamptz(row.read_at.map(at));
            copy.timestamptz(at(row.updated_at));
            copy.opt_text(row.text.as_deref());
            copy.opt_uuid(row.media_id);
            copy.opt_text(row.reply_to.as_deref());
        }
        copy.send(
            conn,
            "copy messages (id, tenant_id, campaign_id, session_id, phone, name, status, error, \
                 attempts, provider_message_id, cost, queued_at, sent_at, delivered_at, read_at, \
                 updated_at, text, media_id, reply_to) \
             from stdin (format binary)",
        )
        .await?;
        Ok(())
    }

    async fn upsert(conn: &mut PgConnection, rows: &[&Self]) -> Result<(), sqlx::Error> {
        // Column by column: typed arrays, no JSON built or parsed.
        let n = rows.len();
        let mut c = MessageColumns::with_capacity(n);
        for row in rows {
            c.push(row);
        }
        sqlx::query(upsert_messages_sql())
            .bind(&c.id)
            .bind(&c.tenant_id)
            .bind(&c.campaign_id)
            .bind(&c.session_id)
            .bind(&c.phone)
            .bind(&c.name)
            .bind(&c.status)
            .bind(&c.error)
            .bind(&c.attempts)
            .bind(&c.provider_message_id)
            .bind(&c.cost)
            .bind(&c.queued_at)
            .bind(&c.sent_at)
            .bind(&c.delivered_at)
            .bind(&c.read_at)
            .bind(&c.updated_at)
            .bind(&c.text)
            .bind(&c.media_id)
            .bind(&c.reply_to)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

fn upsert_messages_sql() -> AssertSqlSafe<&'static str> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        upsert_sql::<MessageRow>(
            "unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], \
                 $7::text[], $8::text[], $9::int4[], $10::text[], $11::int8[], $12::timestamptz[], \
                 $13::timestamptz[], $14::timestamptz[], $15::timestamptz[], $16::timestamptz[], \
                 $17::text[], $18::uuid[], $19::text[]) \
             as t(id, tenant_id, campaign_id, session_id, phone, name, status, error, attempts, \
                 provider_message_id, cost, queued_at, sent_at, delivered_at, read_at, updated_at, \
                 text, media_id, reply_to)",
        )
    });
    AssertSqlSafe(SQL.as_str())
}

/// Rows of `messages`, column by column, for one `unnest`. Instants are
/// stored as the JSON path stored them ([`as_stored_from_json`]).
struct MessageColumns<'a> {
    id: Vec<Uuid>,
    tenant_id: Vec<Uuid>,
    campaign_id: Vec<Uuid>,
    session_id: Vec<Uuid>,
    phone: Vec<&'a str>,
    name: Vec<Option<&'a str>>,
    status: Vec<&'a str>,
    error: Vec<Option<&'a str>>,
    attempts: Vec<i32>,
    provider_message_id: Vec<Option<&'a str>>,
    cost: Vec<i64>,
    queued_at: Vec<DateTime<Utc>>,
    sent_at: Vec<Option<DateTime<Utc>>>,
    delivered_at: Vec<Option<DateTime<Utc>>>,
    read_at: Vec<Option<DateTime<Utc>>>,
    updated_at: Vec<DateTime<Utc>>,
    text: Vec<Option<&'a str>>,
    media_id: Vec<Option<Uuid>>,
    reply_to: Vec<Option<&'a str>>,
}

impl<'a> MessageColumns<'a> {
    fn with_capacity(n: usize) -> Self {
        Self {
            id: Vec::with_capacity(n),
            tenant_id: Vec::with_capacity(n),
            campaign_id: Vec::with_capacity(n),
            session_id: Vec::with_capacity(n),
            phone: Vec::with_capacity(n),
            name: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            error: Vec::with_capacity(n),
            attempts: Vec::with_capacity(n),
            provider_message_id: Vec::with_capacity(n),
            cost: Vec::with_capacity(n),
            queued_at: Vec::with_capacity(n),
            sent_at: Vec::with_capacity(n),
            delivered_at: Vec::with_capacity(n),
            read_at: Vec::with_capacity(n),
            updated_at: Vec::with_capacity(n),
            text: Vec::with_capacity(n),
            media_id: Vec::with_capacity(n),
            reply_to: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, row: &'a MessageRow) {
        let at = as_stored_from_json;
        self.id.push(row.id);
        self.tenant_id.push(row.tenant_id);
        self.campaign_id.push(row.campaign_id);
        self.session_id.push(row.session_id);
        self.phone.push(&row.phone);
        self.name.push(row.name.as_deref());
        self.status.push(&row.status);
        self.error.push(row.error.as_deref());
        self.attempts.push(row.attempts);
        self.provider_message_id
            .push(row.provider_message_id.as_deref());
        self.cost.push(row.cost);
        self.queued_at.push(at(row.queued_at));
        self.sent_at.push(row.sent_at.map(at));
        self.delivered_at.push(row.delivered_at.map(at));
        self.read_at.push(row.read_at.map(at));
        self.updated_at.push(at(row.updated_at));
        self.text.push(row.text.as_deref());
        self.media_id.push(row.media_id);
        self.reply_to.push(row.reply_to.as_deref());
    }
}

/// Changes to one campaign's counts in a batch (added to the stored ones).
#[derive(Debug, Default, Serialize)]
struct CountChange {
    campaign_id: Uuid,
    tenant_id: Uuid,
    queued: i64,
    sending: i64,
    sent: i64,
    delivered: i64,
    read: i64,
    failed: i64,
    cancelled: i64,
    unknown: i64,
    points_spent: i64,
}

impl CountChange {
    fn slot(&mut self, status: &str) -> Option<&mut i64> {
        Some(match status {
            "queued" => &mut self.queued,
            "sending" => &mut self.sending,
            "sent" => &mut self.sent,
            "delivered" => &mut self.delivered,
            "read" => &mut self.read,
            "failed" => &mut self.failed,
            "cancelled" => &mut self.cancelled,
            "unknown" => &mut self.unknown,
            _ => return None,
        })
    }

    /// One message moved from `from` (none: it is new) to `to`.
    fn moved(&mut self, from: Option<&str>, to: &str) {
        if from == Some(to) {
            return;
        }
        if let Some(slot) = from.and_then(|from| self.slot(from)) {
            *slot -= 1;
        }
        if let Some(slot) = self.slot(to) {
            *slot += 1;
        }
    }
}

#[async_trait]
impl Projection for Messages {
    fn name(&self) -> &'static str {
        NAME
    }

    fn streams(&self) -> &'static [LogStream] {
        &[LogStream::Messages]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Message::TYPE, RecipientBatch::TYPE])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["messages", "campaign_message_counts"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        _stream: LogStream,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut messages = RowSet::<MessageRow>::default();
        // A message's first event creates it: only later ones need its row
        // (a batch-queued message's first commit holds a later one too).
        let mut existing = events
            .iter()
            .filter(|e| e.sequence > 1 && e.aggregate_type == Message::TYPE)
            .map(|e| id_of(NAME, e))
            .collect::<Result<Vec<_>, _>>()?;
        // A batch's recipients may have been queued alone already, by a
        // fan-out cut off before batches. Each batch is decoded once, here.
        let mut batches = Vec::new();
        for event in events {
            if event.aggregate_type == RecipientBatch::TYPE {
                let batch = match decode(NAME, event)? {
                    RecipientBatchEvent::RecipientsQueued {
                        campaign_id,
                        recipients,
                        at,
                        ..
                    } => (
                        campaign_id,
                        recipients.into_iter().map(|r| (r, at)).collect::<Vec<_>>(),
                    ),
                    RecipientBatchEvent::RecipientAdmitted {
                        campaign_id,
                        recipient,
                        at,
                        ..
                    } => (campaign_id, vec![(recipient, at)]),
                };
                existing.extend(batch.1.iter().map(|(r, _)| *r.message_id.as_uuid()));
                batches.push(batch);
            }
        }
        let mut batches = batches.into_iter();
        messages.load(conn, existing).await?;
        let mut counts: BTreeMap<Uuid, CountChange> = BTreeMap::new();

        for event in events {
            if event.aggregate_type == RecipientBatch::TYPE {
                let Some((campaign_id, recipients)) = batches.next() else {
                    unreachable!("every batch event was decoded above, in order");
                };
                let tenant_id = tenant_of(NAME, event)?;
                for (recipient, at) in recipients {
                    if messages.contains(*recipient.message_id.as_uuid()) {
                        continue;
                    }
                    let mut row = queued_row(
                        *recipient.message_id.as_uuid(),
                        tenant_id,
                        *campaign_id.as_uuid(),
                        *recipient.session_id.as_uuid(),
                        recipient.to.as_str().to_owned(),
                        recipient.name,
                        at,
                    );
                    if let Some(content) = recipient.content {
                        row.text = content.text;
                        row.media_id = content.media_id.map(|m| *m.as_uuid());
                        row.reply_to = content.reply_to;
                    }
                    change_of(&mut counts, &row).moved(None, &row.status);
                    messages.put(row);
                }
                continue;
            }
            let id = id_of(NAME, event)?;
            let decoded: MessageEvent = decode(NAME, event)?;
            if let MessageEvent::MessageQueued { .. } = decoded
                && messages.contains(id)
            {
                // Queued by its batch: the row is the batch's.
                continue;
            }
            if let MessageEvent::MessageQueued {
                campaign_id,
                session_id,
                to,
                name,
                at,
                ..
            } = decoded
            {
                let row = queued_row(
                    id,
                    tenant_of(NAME, event)?,
                    *campaign_id.as_uuid(),
                    *session_id.as_uuid(),
                    to.as_str().to_owned(),
                    name,
                    at,
                );
                change_of(&mut counts, &row).moved(None, &row.status);
                messages.put(row);
                continue;
            }
            let row = messages
                .get_mut(id)
                .ok_or_else(|| missing_row(NAME, event))?;
            let before = std::mem::take(&mut row.status);
            let mut spent = 0;
            let status = match decoded {
                MessageEvent::MessageQueued { .. } => unreachable!("handled above"),
                MessageEvent::MessageSendingStarted {
                    session_id,
                    attempt,
                    text,
                    at,
                    ..
                } => {
                    row.session_id = *session_id.as_uuid();
                    row.attempts = attempt as i32;
                    // An attempt that could not render its text keeps what
                    // an earlier one sent.
                    if text.is_some() {
                        row.text = text;
                    }
                    row.updated_at = at;
                    MessageStatus::Sending
                }
                MessageEvent::MessageSent {
                    session_id,
                    attempt,
                    provider_message_id,
                    cost,
                    at,
                    ..
                } => {
                    row.session_id = *session_id.as_uuid();
                    row.attempts = row.attempts.max(attempt as i32);
                    row.provider_message_id = provider_message_id;
                    row.cost = cost.value() as i64;
                    row.error = None;
                    row.sent_at = Some(at);
                    row.updated_at = at;
                    spent = row.cost;
                    MessageStatus::Sent
                }
                MessageEvent::MessageFailed {
                    attempt,
                    reason,
                    at,
                    ..
                } => {
                    row.attempts = row.attempts.max(attempt as i32);
                    row.error = Some(reason);
                    row.updated_at = at;
                    MessageStatus::Failed
                }
                MessageEvent::MessageDelivered { at, .. } => {
                    row.delivered_at = Some(at);
                    row.updated_at = at;
                    MessageStatus::Delivered
                }
                MessageEvent::MessageRead { at, .. } => {
                    row.read_at = Some(at);
                    row.updated_at = at;
                    MessageStatus::Read
                }
                MessageEvent::MessageCancelled { at, .. } => {
                    row.updated_at = at;
                    MessageStatus::Cancelled
                }
                MessageEvent::MessageMarkedUnknown { attempt, at, .. } => {
                    row.attempts = row.attempts.max(attempt as i32);
                    row.updated_at = at;
                    MessageStatus::Unknown
                }
            };
            row.status = status.as_str().to_owned();
            let change = change_of(&mut counts, row);
            change.moved(Some(&before), status.as_str());
            change.points_spent += spent;
        }

        messages.flush(conn).await?;
        if !counts.is_empty() {
            let counts: Vec<&CountChange> = counts.values().collect();
            sqlx::query(
                "insert into campaign_message_counts as c \
                     (campaign_id, tenant_id, queued, sending, sent, delivered, read, failed, cancelled, unknown, points_spent) \
                 select campaign_id, tenant_id, queued, sending, sent, delivered, read, failed, cancelled, unknown, points_spent \
                 from jsonb_populate_recordset(null::campaign_message_counts, $1) \
                 on conflict (campaign_id) do update set \
                     queued = c.queued + excluded.queued, \
                     sending = c.sending + excluded.sending, \
                     sent = c.sent + excluded.sent, \
                     delivered = c.delivered + excluded.delivered, \
                     read = c.read + excluded.read, \
                     failed = c.failed + excluded.failed, \
                     cancelled = c.cancelled + excluded.cancelled, \
                     unknown = c.unknown + excluded.unknown, \
                     points_spent = c.points_spent + excluded.points_spent",
            )
            .bind(Json(&counts))
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// The row of a message just queued.
fn queued_row(
    id: Uuid,
    tenant_id: Uuid,
    campaign_id: Uuid,
    session_id: Uuid,
    phone: String,
    name: Option<String>,
    at: DateTime<Utc>,
) -> MessageRow {
    MessageRow {
        id,
        tenant_id,
        campaign_id,
        session_id,
        phone,
        name,
        status: MessageStatus::Queued.as_str().to_owned(),
        error: None,
        attempts: 0,
        provider_message_id: None,
        cost: 0,
        queued_at: at,
        sent_at: None,
        delivered_at: None,
        read_at: None,
        updated_at: at,
        text: None,
        media_id: None,
        reply_to: None,
    }
}

fn change_of<'a>(
    counts: &'a mut BTreeMap<Uuid, CountChange>,
    row: &MessageRow,
) -> &'a mut CountChange {
    counts
        .entry(row.campaign_id)
        .or_insert_with(|| CountChange {
            campaign_id: row.campaign_id,
            tenant_id: row.tenant_id,
            ..CountChange::default()
        })
}
