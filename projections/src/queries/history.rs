//! Every message a tenant's sessions sent or received, newest first:
//! `GET /api/v1/messages[/{id}]`.
//!
//! Sent messages are the `messages` rows (campaigns' and single sends');
//! received ones the `inbound_messages` rows. Both are read through their
//! `(tenant, time desc, id desc)` indexes and merged, so a page costs the
//! same wherever it is.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;
use wablast_domain::types::{CampaignId, SessionId, TenantId};

use super::{Cursor, Page, Paged, hex16, parse_hex16};

/// Which way a message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Received by a session.
    In,
    /// Sent by a session.
    Out,
}

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct HistoryFilter {
    /// One session's.
    pub session_id: Option<SessionId>,
    /// One campaign's (sent messages only).
    pub campaign_id: Option<CampaignId>,
    /// One way only.
    pub direction: Option<Direction>,
    /// To or from this peer (E.164, or a chat id the driver named).
    pub peer: Option<String>,
    /// In this status (`received` for received messages).
    pub status: Option<String>,
    /// At or after this instant (queued or received).
    pub from: Option<DateTime<Utc>>,
    /// Before this instant.
    pub to: Option<DateTime<Utc>>,
}

/// A message as the history shows it.
#[derive(Clone, Debug, PartialEq, Serialize, sqlx::FromRow)]
pub struct HistoryView {
    /// Its id.
    pub id: Uuid,
    /// `in` or `out`.
    pub direction: String,
    /// The session that sent or received it.
    pub session_id: Uuid,
    /// The campaign it belongs to (a broadcast; none for a single send or
    /// a received message).
    pub campaign_id: Option<Uuid>,
    /// The other side: E.164, or the driver's chat id when it could not
    /// tell the number.
    pub peer: String,
    /// A sent message: `text`, `image`, `video`, `audio` or `document`
    /// (from its attachment's type). A received one: as its driver said
    /// (also `sticker`, `location`, `contact`, `reaction`, `interactive`,
    /// `other`); `unknown` for one without text recorded before kinds were
    /// kept.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text or caption: as sent (rendered from a template, or written
    /// for a single send) or received.
    pub text: Option<String>,
    /// A sent message's attachment.
    pub media_id: Option<Uuid>,
    /// `queued | sending | sent | delivered | read | failed | cancelled |
    /// unknown`, or `received`.
    pub status: String,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// When it was queued (sent messages).
    pub queued_at: Option<DateTime<Utc>>,
    /// When it was sent.
    pub sent_at: Option<DateTime<Utc>>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When it was read.
    pub read_at: Option<DateTime<Utc>>,
    /// When it was received (received messages).
    pub received_at: Option<DateTime<Utc>>,
    /// WhatsApp's id of the message, once known.
    pub provider_message_id: Option<String>,
    /// A single send's quoted message (WhatsApp's id).
    pub reply_to: Option<String>,
    /// Its place in the history (queued or received), the sort key.
    #[serde(skip)]
    pub at: DateTime<Utc>,
}

/// The history's sort key: the instant (µs) and the id, newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryCursor {
    /// Microseconds since the Unix epoch.
    pub at_micros: i64,
    /// The message's id.
    pub id: Uuid,
}

impl Cursor for HistoryCursor {
    const TAG: char = 'h';

    fn payload(&self) -> String {
        let mut text = String::with_capacity(48);
        hex16(&mut text, self.at_micros);
        text.push_str(&self.id.simple().to_string());
        text
    }

    fn from_payload(payload: &str) -> Option<Self> {
        if payload.len() != 48 || !payload.is_ascii() {
            return None;
        }
        let (at, id) = payload.split_at(16);
        Some(Self {
            at_micros: parse_hex16(at)?,
            id: Uuid::try_parse(id).ok()?,
        })
    }
}

impl HistoryCursor {
    fn of(row: &HistoryView) -> Self {
        Self {
            at_micros: row.at.timestamp_micros(),
            id: row.id,
        }
    }

    fn at(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_micros(self.at_micros)
    }
}

/// The statuses a sent message has.
pub const OUT_STATUSES: [&str; 8] = [
    "queued",
    "sending",
    "sent",
    "delivered",
    "read",
    "failed",
    "cancelled",
    "unknown",
];

/// The status every received message has.
pub const RECEIVED: &str = "received";

const OUT: &str = "\
    select m.id, 'out' as direction, m.session_id, \
           case when c.kind = 'broadcast' then m.campaign_id end as campaign_id, \
           m.phone as peer, \
           case when coalesce(m.media_id, c.media_id) is null then 'text' \
                when md.mime_type like 'image/%' then 'image' \
                when md.mime_type like 'video/%' then 'video' \
                when md.mime_type like 'audio/%' then 'audio' \
                else 'document' end as kind, \
           m.text, coalesce(m.media_id, c.media_id) as media_id, m.status, m.error, \
           m.queued_at, m.sent_at, m.delivered_at, m.read_at, null::timestamptz as received_at, \
           m.provider_message_id, m.reply_to, m.queued_at as at \
    from messages m \
    left join campaigns c on c.id = m.campaign_id and c.tenant_id = m.tenant_id \
    left join media md on md.id = coalesce(m.media_id, c.media_id) and md.tenant_id = m.tenant_id \
    where m.tenant_id = ";

const IN: &str = "\
    select i.id, 'in' as direction, i.session_id, null::uuid as campaign_id, \
           coalesce(i.from_phone, i.from_raw) as peer, \
           coalesce(i.kind, case when i.text is null then 'unknown' else 'text' end) as kind, \
           i.text, null::uuid as media_id, 'received' as status, null::text as error, \
           null::timestamptz as queued_at, null::timestamptz as sent_at, \
           null::timestamptz as delivered_at, null::timestamptz as read_at, \
           i.received_at, i.provider_message_id, null::text as reply_to, i.received_at as at \
    from inbound_messages i \
    where i.tenant_id = ";

/// The tenant's messages matching `filter`, newest first.
pub async fn list(
    pool: &PgPool,
    tenant: TenantId,
    filter: &HistoryFilter,
    page: &Page<HistoryCursor>,
) -> Result<Paged<HistoryView>, sqlx::Error> {
    let status_in = filter.status.as_deref().is_none_or(|s| s == RECEIVED);
    let status_out = filter.status.as_deref() != Some(RECEIVED);
    let out = filter.direction != Some(Direction::In) && status_out;
    let inbound =
        filter.direction != Some(Direction::Out) && filter.campaign_id.is_none() && status_in;
    let mut q = QueryBuilder::<Postgres>::new("select * from (");
    let mut any = false;
    if out {
        q.push("(").push(OUT).push_bind(*tenant.as_uuid());
        if let Some(session) = filter.session_id {
            q.push(" and m.session_id = ").push_bind(*session.as_uuid());
        }
        if let Some(campaign) = filter.campaign_id {
            q.push(" and m.campaign_id = ")
                .push_bind(*campaign.as_uuid())
                .push(" and c.kind = 'broadcast'");
        }
        if let Some(peer) = &filter.peer {
            q.push(" and m.phone = ").push_bind(peer.clone());
        }
        if let Some(status) = &filter.status {
            q.push(" and m.status = ").push_bind(status.clone());
        }
        bounds(&mut q, "m.queued_at", "m.id", filter, page);
        q.push(" order by m.queued_at desc, m.id desc limit ")
            .push_bind(page.fetch())
            .push(")");
        any = true;
    }
    if inbound {
        if any {
            q.push(" union all ");
        }
        q.push("(").push(IN).push_bind(*tenant.as_uuid());
        if let Some(session) = filter.session_id {
            q.push(" and i.session_id = ").push_bind(*session.as_uuid());
        }
        if let Some(peer) = &filter.peer {
            q.push(" and (i.from_phone = ")
                .push_bind(peer.clone())
                .push(" or i.from_raw = ")
                .push_bind(peer.clone())
                .push(")");
        }
        bounds(&mut q, "i.received_at", "i.id", filter, page);
        q.push(" order by i.received_at desc, i.id desc limit ")
            .push_bind(page.fetch())
            .push(")");
        any = true;
    }
    if !any {
        return Ok(Paged {
            items: Vec::new(),
            next_cursor: None,
        });
    }
    q.push(") h order by h.at desc, h.id desc limit ")
        .push_bind(page.fetch());
    let rows = q.build_query_as::<HistoryView>().fetch_all(pool).await?;
    Ok(Paged::from_rows(rows, page, HistoryCursor::of))
}

/// The time range and the cursor, on one branch's `at` and `id` columns.
fn bounds(
    q: &mut QueryBuilder<Postgres>,
    at: &str,
    id: &str,
    filter: &HistoryFilter,
    page: &Page<HistoryCursor>,
) {
    if let Some(from) = filter.from {
        q.push(format!(" and {at} >= ")).push_bind(from);
    }
    if let Some(to) = filter.to {
        q.push(format!(" and {at} < ")).push_bind(to);
    }
    if let Some(cursor) = page.cursor() {
        push_before(q, at, id, cursor);
    }
}

/// ` and (<at>, <id>) < (<cursor>)`: the rows after `cursor` in a list
/// ordered by `<at> desc, <id> desc`.
pub(crate) fn push_before(
    q: &mut QueryBuilder<Postgres>,
    at: &str,
    id: &str,
    cursor: &HistoryCursor,
) {
    match cursor.at() {
        Some(before) => {
            q.push(format!(" and ({at}, {id}) < ("))
                .push_bind(before)
                .push(", ")
                .push_bind(cursor.id)
                .push(")");
        }
        None => {
            q.push(" and false");
        }
    }
}

/// One of the tenant's messages, sent or received; `None` when it has no
/// message with this id.
pub async fn get(
    pool: &PgPool,
    tenant: TenantId,
    id: Uuid,
) -> Result<Option<HistoryView>, sqlx::Error> {
    let mut q = QueryBuilder::<Postgres>::new("(");
    q.push(OUT)
        .push_bind(*tenant.as_uuid())
        .push(" and m.id = ")
        .push_bind(id)
        .push(") union all (")
        .push(IN)
        .push_bind(*tenant.as_uuid())
        .push(" and i.id = ")
        .push_bind(id)
        .push(") limit 1");
    q.build_query_as::<HistoryView>().fetch_optional(pool).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_cursors_round_trip_and_are_their_own() {
        let cursor = HistoryCursor {
            at_micros: 1_765_000_000_123_456,
            id: Uuid::now_v7(),
        };
        let text = cursor.encode();
        assert!(text.starts_with('h'));
        assert_eq!(HistoryCursor::decode(&text), Ok(cursor));
        assert!(HistoryCursor::decode(&Uuid::now_v7().encode()).is_err());
        assert!(HistoryCursor::decode("hzz").is_err());
    }
}
