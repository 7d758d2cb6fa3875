//! Conversations, one per session and peer, the latest first:
//! `GET /api/v1/chats`, and marking one read.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;
use wablast_domain::types::{SessionId, TenantId};

use super::history::{HistoryCursor, push_before};
use super::{Page, Paged};

/// A chat as the inbox shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ChatView {
    /// Its id.
    pub id: Uuid,
    /// The session.
    pub session_id: Uuid,
    /// The other side: E.164, or the driver's chat id.
    pub peer: String,
    /// The latest message's text (or caption), sent or received.
    pub last_message: Option<String>,
    /// Its id.
    pub last_message_id: Uuid,
    /// `in` or `out`.
    pub last_direction: String,
    /// When it was queued or received.
    pub last_at: DateTime<Utc>,
    /// Messages received since the chat was last read.
    pub unread: i64,
}

/// The tenant's chats (one session's, with one peer, when given), the
/// latest first.
pub async fn list(
    pool: &PgPool,
    tenant: TenantId,
    session: Option<SessionId>,
    peer: Option<&str>,
    page: &Page<HistoryCursor>,
) -> Result<Paged<ChatView>, sqlx::Error> {
    let mut q = QueryBuilder::<Postgres>::new(
        "select c.id, c.session_id, c.peer, coalesce(m.text, i.text) as last_message, \
                c.last_message_id, c.last_direction, c.last_at, \
                (select count(*) from inbound_messages x \
                 where x.tenant_id = c.tenant_id and x.session_id = c.session_id \
                   and coalesce(x.from_phone, x.from_raw) = c.peer \
                   and x.received_at > coalesce(r.read_at, '-infinity')) as unread \
         from chats c \
         left join chat_reads r on r.chat_id = c.id and r.tenant_id = c.tenant_id \
         left join messages m on c.last_direction = 'out' and m.id = c.last_message_id \
         left join inbound_messages i on c.last_direction = 'in' and i.id = c.last_message_id \
         where c.tenant_id = ",
    );
    q.push_bind(*tenant.as_uuid());
    if let Some(session) = session {
        q.push(" and c.session_id = ").push_bind(*session.as_uuid());
    }
    if let Some(peer) = peer {
        q.push(" and c.peer = ").push_bind(peer.to_owned());
    }
    if let Some(cursor) = page.cursor() {
        push_before(&mut q, "c.last_at", "c.id", cursor);
    }
    q.push(" order by c.last_at desc, c.id desc limit ")
        .push_bind(page.fetch());
    let rows = q.build_query_as::<ChatView>().fetch_all(pool).await?;
    Ok(Paged::from_rows(rows, page, |row| HistoryCursor {
        at_micros: row.last_at.timestamp_micros(),
        id: row.id,
    }))
}

/// Marks the tenant's chat read up to now (or its latest message, when
/// that is later); `false` when the tenant has no such chat.
pub async fn mark_read(
    pool: &PgPool,
    tenant: TenantId,
    chat: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let marked = sqlx::query(
        "insert into chat_reads (chat_id, tenant_id, read_at) \
         select c.id, c.tenant_id, greatest($3, c.last_at) from chats c \
         where c.tenant_id = $1 and c.id = $2 \
         on conflict (chat_id) do update \
             set read_at = greatest(chat_reads.read_at, excluded.read_at)",
    )
    .bind(*tenant.as_uuid())
    .bind(chat)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(marked.rows_affected() > 0)
}

/// When `peer` (E.164) last wrote to the tenant's `session`, if ever: what
/// the Cloud API's 24-hour customer-service window runs from.
pub async fn last_inbound_at(
    pool: &PgPool,
    tenant: TenantId,
    session: SessionId,
    peer: &str,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "select max(received_at) from inbound_messages \
         where tenant_id = $1 and session_id = $2 and coalesce(from_phone, from_raw) = $3",
    )
    .bind(tenant.as_uuid())
    .bind(session.as_uuid())
    .bind(peer)
    .fetch_one(pool)
    .await
}

/// Whether the tenant's `session` ever exchanged messages with `peer`
/// (E.164): sent one to them, or received one from them. A peer it never
/// did is a new contact for the sender governor.
pub async fn has_exchanged(
    pool: &PgPool,
    tenant: TenantId,
    session: SessionId,
    peer: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists (select 1 from messages \
             where session_id = $2 and phone = $3 and sent_at is not null and tenant_id = $1) \
         or exists (select 1 from inbound_messages \
             where tenant_id = $1 and session_id = $2 and coalesce(from_phone, from_raw) = $3)",
    )
    .bind(tenant.as_uuid())
    .bind(session.as_uuid())
    .bind(peer)
    .fetch_one(pool)
    .await
}
