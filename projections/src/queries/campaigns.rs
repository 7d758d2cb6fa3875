//! Campaigns with their message counts: `GET /api/v1/campaigns[/{id}]`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;
use wablast_domain::campaign::CampaignStatus;
use wablast_domain::types::{CampaignId, SessionId, TenantId};

use super::{Page, Paged};

/// A campaign as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CampaignView {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// `draft | scheduled | running | paused | completed | cancelled`.
    pub status: String,
    /// The contact list it sends to.
    pub contact_list_id: Uuid,
    /// The template as written (`{{name|Kak}}`, spintax).
    pub template: String,
    /// The media sent with it.
    pub media_id: Option<Uuid>,
    /// Senders in rotation order.
    pub sender_session_ids: Vec<Uuid>,
    /// Delay between two sends of a sender.
    pub throttle: ThrottleView,
    /// When it starts on its own.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Whether it leaves out contacts found not on WhatsApp.
    pub skip_not_on_whatsapp: bool,
    /// How many its start left out so.
    pub skipped_not_on_whatsapp: i64,
    /// Its engagement guard: messages sent without a reply from which a
    /// contact is left out (0: off).
    pub skip_unanswered_after: i32,
    /// How many its start left out as never replying.
    pub skipped_never_replied: i64,
    /// Its slow-down while failures climb (`{reason, session_id, throttle,
    /// since}`); null at its own pace.
    pub slow_down: Option<serde_json::Value>,
    /// Its recipients who replied after their message was sent (`None` in
    /// lists: counted for one campaign at a time).
    pub replied: Option<i64>,
    /// The WhatsApp template its Cloud API senders send
    /// (`{name, language, parameters}`).
    pub whatsapp_template: Option<serde_json::Value>,
    /// Its messages by status.
    pub counts: CampaignCounts,
    /// Points held for it.
    pub points_reserved: i64,
    /// Points its sent messages cost (the final figure once completed).
    pub points_spent: i64,
    /// Why it is paused (`{"kind": "manual"}`, ...); null unless paused.
    pub pause_reason: Option<serde_json::Value>,
    /// When an auto-paused campaign may resume.
    pub resume_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it completed or was cancelled.
    pub finished_at: Option<DateTime<Utc>>,
    /// Time of the last event applied.
    pub updated_at: DateTime<Utc>,
    /// Why its scheduled start was refused (`{code, message, at}`): it is a
    /// draft again until started or scheduled anew.
    pub start_refusal: Option<serde_json::Value>,
    /// Why a running campaign sends nothing for now: every sender waits
    /// (`session_not_ready`, `daily_limit_reached`, `outside_active_hours`,
    /// `sending_paused`, `plan_expired`).
    pub waiting_reason: Option<String>,
    /// ... and until when the soonest of them waits, where known.
    pub waiting_until: Option<DateTime<Utc>>,
}

/// `{min_delay_ms, max_delay_ms}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ThrottleView {
    /// Shortest delay.
    pub min_delay_ms: i32,
    /// Longest delay.
    pub max_delay_ms: i32,
}

/// A campaign's messages by their current status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CampaignCounts {
    /// Recipients frozen at start; before, the messages counted.
    pub total: i64,
    /// Waiting for a send.
    pub queued: i64,
    /// Being sent.
    pub sending: i64,
    /// Sent (not known delivered yet).
    pub sent: i64,
    /// Delivered (not read yet).
    pub delivered: i64,
    /// Read.
    pub read: i64,
    /// Failed for good.
    pub failed: i64,
    /// Cancelled before sending.
    pub cancelled: i64,
    /// Outcome unknown (the send may or may not have happened).
    pub unknown: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    name: String,
    status: String,
    contact_list_id: Uuid,
    template: String,
    media_id: Option<Uuid>,
    sender_session_ids: Vec<Uuid>,
    throttle_min_ms: i32,
    throttle_max_ms: i32,
    scheduled_at: Option<DateTime<Utc>>,
    skip_not_on_whatsapp: bool,
    skipped_not_on_whatsapp: i64,
    skip_unanswered_after: i32,
    skipped_never_replied: i64,
    slow_down: Option<serde_json::Value>,
    whatsapp_template: Option<serde_json::Value>,
    total: i64,
    queued: i64,
    sending: i64,
    sent: i64,
    delivered: i64,
    read: i64,
    failed: i64,
    cancelled: i64,
    unknown: i64,
    points_reserved: i64,
    points_spent: i64,
    pause_reason: Option<serde_json::Value>,
    resume_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
    start_refusal: Option<serde_json::Value>,
    waiting_reason: Option<String>,
    waiting_until: Option<DateTime<Utc>>,
}

impl From<Row> for CampaignView {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            name: r.name,
            status: r.status,
            contact_list_id: r.contact_list_id,
            template: r.template,
            media_id: r.media_id,
            sender_session_ids: r.sender_session_ids,
            throttle: ThrottleView {
                min_delay_ms: r.throttle_min_ms,
                max_delay_ms: r.throttle_max_ms,
            },
            scheduled_at: r.scheduled_at,
            skip_not_on_whatsapp: r.skip_not_on_whatsapp,
            skipped_not_on_whatsapp: r.skipped_not_on_whatsapp,
            skip_unanswered_after: r.skip_unanswered_after,
            skipped_never_replied: r.skipped_never_replied,
            slow_down: r.slow_down,
            replied: None,
            whatsapp_template: r.whatsapp_template,
            counts: CampaignCounts {
                total: r.total,
                queued: r.queued,
                sending: r.sending,
                sent: r.sent,
                delivered: r.delivered,
                read: r.read,
                failed: r.failed,
                cancelled: r.cancelled,
                unknown: r.unknown,
            },
            points_reserved: r.points_reserved,
            points_spent: r.points_spent,
            pause_reason: r.pause_reason,
            resume_at: r.resume_at,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            updated_at: r.updated_at,
            start_refusal: r.start_refusal,
            waiting_reason: r.waiting_reason,
            waiting_until: r.waiting_until,
        }
    }
}

/// `campaigns` with `campaign_message_counts` (zeros without a row). Ends
/// before the `where`.
const SELECT: &str = "\
    select c.id, c.name, c.status, c.contact_list_id, c.template, c.media_id, \
           c.sender_session_ids, c.throttle_min_ms, c.throttle_max_ms, c.scheduled_at, \
           c.skip_not_on_whatsapp, c.skipped_not_on_whatsapp, c.skip_unanswered_after, \
           c.skipped_never_replied, c.slow_down, c.whatsapp_template, \
           case when c.started_at is not null then c.recipients \
                else coalesce(m.queued + m.sending + m.sent + m.delivered + m.read \
                              + m.failed + m.cancelled + m.unknown, 0) \
           end as total, \
           coalesce(m.queued, 0) as queued, coalesce(m.sending, 0) as sending, \
           coalesce(m.sent, 0) as sent, coalesce(m.delivered, 0) as delivered, \
           coalesce(m.read, 0) as read, coalesce(m.failed, 0) as failed, \
           coalesce(m.cancelled, 0) as cancelled, coalesce(m.unknown, 0) as unknown, \
           c.points_reserved, coalesce(c.points_spent, m.points_spent, 0) as points_spent, \
           c.pause_reason, c.resume_at, c.created_at, c.started_at, c.finished_at, c.updated_at, \
           c.start_refusal, \
           case when w.all_waiting then w.waiting_reason end as waiting_reason, \
           case when w.all_waiting then w.waiting_until end as waiting_until \
    from campaigns c \
    left join campaign_message_counts m on m.campaign_id = c.id and m.tenant_id = c.tenant_id \
    left join lateral ( \
        select bool_and(x.reason is not null) as all_waiting, min(x.reason) as waiting_reason, \
               min(x.until) as waiting_until \
        from (select case when s.status <> 'ready' then 'session_not_ready' \
                          else s.waiting_reason end as reason, \
                     s.waiting_until as until \
              from sessions s \
              where s.tenant_id = c.tenant_id and s.id = any(c.sender_session_ids)) x \
    ) w on c.status = 'running' ";

/// The tenant's campaigns (broadcasts: single sends' direct campaigns are
/// not listed), by id (creation order), only those in `status` when given.
pub async fn list(
    pool: &PgPool,
    tenant: TenantId,
    page: &Page,
    status: Option<&str>,
) -> Result<Paged<CampaignView>, sqlx::Error> {
    let mut q = QueryBuilder::<Postgres>::new(SELECT);
    q.push("where c.kind = 'broadcast' and c.tenant_id = ")
        .push_bind(*tenant.as_uuid());
    if let Some(status) = status {
        q.push(" and c.status = ").push_bind(status.to_owned());
    }
    if let Some(after) = page.cursor() {
        q.push(" and c.id > ").push_bind(*after);
    }
    q.push(" order by c.id limit ").push_bind(page.fetch());
    let rows = q.build_query_as::<Row>().fetch_all(pool).await?;
    Ok(Paged::from_rows(rows, page, |row| row.id).map(CampaignView::from))
}

/// One of the tenant's campaigns; `None` if there is none with this id, it
/// belongs to another tenant, or it is a direct campaign (single sends).
pub async fn get(
    pool: &PgPool,
    tenant: TenantId,
    id: CampaignId,
) -> Result<Option<CampaignView>, sqlx::Error> {
    let mut q = QueryBuilder::<Postgres>::new(SELECT);
    q.push("where c.kind = 'broadcast' and c.tenant_id = ")
        .push_bind(*tenant.as_uuid())
        .push(" and c.id = ")
        .push_bind(*id.as_uuid());
    let Some(row) = q.build_query_as::<Row>().fetch_optional(pool).await? else {
        return Ok(None);
    };
    let mut view = CampaignView::from(row);
    view.replied = Some(replied(pool, tenant, id).await?);
    Ok(Some(view))
}

/// How many of the campaign's recipients replied (to any of the tenant's
/// sessions) after their message was sent.
pub async fn replied(pool: &PgPool, tenant: TenantId, id: CampaignId) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "select count(*) from messages m
         join contact_replies r on r.tenant_id = m.tenant_id and r.phone = m.phone
         where m.tenant_id = $1 and m.campaign_id = $2
           and m.sent_at is not null and r.last_reply_at >= m.sent_at",
    )
    .bind(*tenant.as_uuid())
    .bind(*id.as_uuid())
    .fetch_one(pool)
    .await
}

/// Whether the tenant has a campaign with this id.
pub async fn exists(pool: &PgPool, tenant: TenantId, id: CampaignId) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists (select 1 from campaigns where tenant_id = $1 and id = $2 and kind = 'broadcast')",
    )
        .bind(*tenant.as_uuid())
        .bind(*id.as_uuid())
        .fetch_one(pool)
        .await
}

/// Scheduled campaigns whose time has come (`scheduled_at` at or before
/// `now`), the earliest first, at most `limit`, of every tenant.
pub async fn due_scheduled(
    pool: &PgPool,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<(TenantId, CampaignId)>, sqlx::Error> {
    let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "select tenant_id, id from campaigns
         where status = $1 and scheduled_at <= $2
         order by scheduled_at limit $3",
    )
    .bind(CampaignStatus::Scheduled.as_str())
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(tenant, id)| (TenantId::from_uuid(tenant), CampaignId::from_uuid(id)))
        .collect())
}

/// The tenant's campaigns in one of `statuses` that send from `session`.
pub async fn sending_from(
    pool: &PgPool,
    tenant: TenantId,
    session: SessionId,
    statuses: &[CampaignStatus],
) -> Result<Vec<CampaignId>, sqlx::Error> {
    let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "select id from campaigns
         where tenant_id = $1 and $2 = any(sender_session_ids) and status = any($3)",
    )
    .bind(tenant.as_uuid())
    .bind(session.as_uuid())
    .bind(statuses)
    .fetch_all(pool)
    .await?;
    Ok(ids.into_iter().map(CampaignId::from_uuid).collect())
}
