//! The reads of `wablast_projections::queries` against a real PostgreSQL:
//! rows of two tenants written with plain SQL, and every read proved to
//! answer only the caller's rows, to page through them exactly once, and to
//! fill in what the tables leave out (counts, defaults, `sent_today`).

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use futures::TryStreamExt;
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;
use wablast_domain::types::{CampaignId, ContactListId, PlanId, SessionId, TenantId};
use wablast_projections::queries::messages::{self, CSV_LINE_BREAK, EXPORT_HEADER, csv_line};
use wablast_projections::queries::{
    Cursor, CursorError, Page, Paged, TransactionCursor, campaigns, contact_lists, events, plans,
    schedule, sessions, wallet,
};
use wablast_projections::{LogStream, wait::Position};
use wablast_tests::TestDatabase;

/// A migrated database of the test's own (dropped with it).
struct Db {
    pool: PgPool,
    _db: TestDatabase,
}

async fn db() -> Db {
    let db = TestDatabase::create().await;
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&db.url)
        .await
        .expect("test database reachable");
    wablast_migrations::MIGRATOR
        .run(&pool)
        .await
        .expect("migrations applied");
    Db { pool, _db: db }
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

/// `n` new ids, sorted (the order of the lists).
fn ids(n: usize) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
    ids.sort();
    ids
}

/// Reads every page of a list with `limit` 2 and checks each id comes
/// exactly once, in order.
async fn walk<T, C, F, Fut>(mut read: F, id: impl Fn(&T) -> C) -> Vec<C>
where
    C: Cursor + Clone,
    F: FnMut(Page<C>) -> Fut,
    Fut: Future<Output = Paged<T>>,
{
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = Page::<C>::parse(Some(2), cursor.as_deref()).expect("our own cursor");
        let got = read(page).await;
        pages += 1;
        assert!(got.items.len() <= 2);
        seen.extend(got.items.iter().map(&id));
        match got.next_cursor {
            Some(next) => {
                assert_eq!(got.items.len(), 2, "a full page before a next one");
                cursor = Some(next);
            }
            None => break,
        }
        assert!(pages < 100, "pagination does not end");
    }
    seen
}

// ------------------------------------------------------------------ rows

async fn insert_session(pool: &PgPool, tenant: TenantId, id: Uuid, name: &str) {
    sqlx::query(
        "insert into sessions (id, tenant_id, name, driver, login, status, phone_number, \
             daily_limit, daily_limit_follows_trust_level, trust_level, auto_start, last_error, \
             created_at, updated_at) \
         values ($1, $2, $3, 'simulator', 'qr', 'ready', '+6281234567890', 100, true, 1, false, \
             null, $4, $4)",
    )
    .bind(id)
    .bind(tenant.as_uuid())
    .bind(name)
    .bind(at(2025, 1, 1, 0, 0))
    .execute(pool)
    .await
    .unwrap();
}

async fn insert_session_day(
    pool: &PgPool,
    tenant: TenantId,
    session: Uuid,
    date: NaiveDate,
    sent: i32,
) {
    sqlx::query("insert into session_days (session_id, local_date, tenant_id, sent) values ($1, $2, $3, $4)")
        .bind(session)
        .bind(date)
        .bind(tenant.as_uuid())
        .bind(sent)
        .execute(pool)
        .await
        .unwrap();
}

async fn insert_schedule(pool: &PgPool, tenant: TenantId, timezone: &str) {
    sqlx::query(
        "insert into schedules (tenant_id, timezone, windows, override, updated_at) \
         values ($1, $2, $3, 'pause', $4)",
    )
    .bind(tenant.as_uuid())
    .bind(timezone)
    .bind(json!([{"days": ["mon", "tue"], "start": "09:00", "end": "18:00"}]))
    .bind(at(2025, 1, 1, 0, 0))
    .execute(pool)
    .await
    .unwrap();
}

struct CampaignRow<'a> {
    id: Uuid,
    status: &'a str,
    recipients: i64,
    started: bool,
    points_spent: Option<i64>,
}

async fn insert_campaign(pool: &PgPool, tenant: TenantId, c: CampaignRow<'_>) {
    sqlx::query(
        "insert into campaigns (id, tenant_id, name, contact_list_id, template, media_id, \
             sender_session_ids, throttle_min_ms, throttle_max_ms, status, pause_reason, \
             resume_at, scheduled_at, recipients, points_reserved, points_spent, created_at, \
             started_at, finished_at, updated_at) \
         values ($1, $2, 'promo', $3, 'Halo {{name|Kak}}', null, $4, 1000, 5000, $5, $6, null, \
             null, $7, $8, $9, $10, $11, null, $10)",
    )
    .bind(c.id)
    .bind(tenant.as_uuid())
    .bind(Uuid::now_v7())
    .bind(vec![Uuid::now_v7()])
    .bind(c.status)
    .bind((c.status == "paused").then(|| json!({"kind": "manual"})))
    .bind(c.recipients)
    .bind(c.recipients * 2)
    .bind(c.points_spent)
    .bind(at(2025, 1, 1, 0, 0))
    .bind(c.started.then(|| at(2025, 1, 2, 0, 0)))
    .execute(pool)
    .await
    .unwrap();
}

/// queued, sending, sent, delivered, read, failed, cancelled, unknown,
/// points_spent.
async fn insert_counts(pool: &PgPool, tenant: TenantId, campaign: Uuid, c: [i64; 9]) {
    sqlx::query(
        "insert into campaign_message_counts (campaign_id, tenant_id, queued, sending, sent, \
             delivered, read, failed, cancelled, unknown, points_spent) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(campaign)
    .bind(tenant.as_uuid())
    .bind(c[0])
    .bind(c[1])
    .bind(c[2])
    .bind(c[3])
    .bind(c[4])
    .bind(c[5])
    .bind(c[6])
    .bind(c[7])
    .bind(c[8])
    .execute(pool)
    .await
    .unwrap();
}

#[allow(clippy::too_many_arguments)]
async fn insert_message(
    pool: &PgPool,
    tenant: TenantId,
    campaign: Uuid,
    id: Uuid,
    phone: &str,
    name: Option<&str>,
    status: &str,
    error: Option<&str>,
) {
    sqlx::query(
        "insert into messages (id, tenant_id, campaign_id, session_id, phone, name, status, \
             error, attempts, cost, queued_at, sent_at, updated_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, 1, 2, $9, $10, $9)",
    )
    .bind(id)
    .bind(tenant.as_uuid())
    .bind(campaign)
    .bind(Uuid::now_v7())
    .bind(phone)
    .bind(name)
    .bind(status)
    .bind(error)
    .bind(at(2025, 1, 2, 0, 0))
    .bind((status != "queued").then(|| at(2025, 1, 2, 0, 5)))
    .execute(pool)
    .await
    .unwrap();
}

async fn insert_transaction(
    pool: &PgPool,
    tenant: TenantId,
    stream_sequence: i64,
    event_sequence: i64,
) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "insert into wallet_transactions (id, tenant_id, kind, points, reference, campaign_id, \
             balance_after, reserved_after, available_after, created_at, stream_sequence, \
             event_sequence) \
         values ($1, $2, 'topup', 100, 'grant-1', null, 100, 0, 100, $3, $4, $5)",
    )
    .bind(id)
    .bind(tenant.as_uuid())
    .bind(at(2025, 1, 1, 0, 0))
    .bind(stream_sequence)
    .bind(event_sequence)
    .execute(pool)
    .await
    .unwrap();
    id
}

async fn insert_event(
    pool: &PgPool,
    tenant: &str,
    aggregate_type: &str,
    aggregate_id: &str,
    seq: i64,
    stream_sequence: i64,
) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "insert into event_index (event_id, stream, stream_sequence, tenant, aggregate_type, \
             aggregate_id, aggregate_sequence, event_type, event_version, occurred_at) \
         values ($1, 'events', $2, $3, $4, $5, $6, 'Something', '1', $7)",
    )
    .bind(id)
    .bind(stream_sequence)
    .bind(tenant)
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(seq)
    .bind(at(2025, 1, 1, 0, 0))
    .execute(pool)
    .await
    .unwrap();
    id
}

// ----------------------------------------------------------------- tests

#[test]
fn junk_cursors_are_refused() {
    for junk in [
        "nope",
        "i12",
        "i0190f5a0-c0d0-7a3b-8e1f-2a3b4c5d6e7f",
        "%00",
        "w",
    ] {
        assert!(matches!(
            Page::<Uuid>::parse(None, Some(junk)),
            Err(CursorError::Malformed(_))
        ));
        assert!(Page::<TransactionCursor>::parse(None, Some(junk)).is_err());
    }
    // A cursor of one list handed to another.
    let tx = TransactionCursor {
        stream_sequence: 3,
        event_sequence: 0,
    }
    .encode();
    assert!(matches!(
        Page::<Uuid>::parse(None, Some(&tx)),
        Err(CursorError::OtherList(_))
    ));
    assert!(matches!(
        Page::<TransactionCursor>::parse(None, Some(&Uuid::now_v7().encode())),
        Err(CursorError::OtherList(_))
    ));
    // Limits held to 1..=500, 50 by default.
    assert_eq!(Page::<Uuid>::parse(None, None).unwrap().limit(), 50);
    assert_eq!(Page::<Uuid>::parse(Some(0), None).unwrap().limit(), 1);
    assert_eq!(
        Page::<Uuid>::parse(Some(10_000), None).unwrap().limit(),
        500
    );
}

#[tokio::test]
async fn sessions_are_the_callers_only_and_page_exactly_once() {
    let db = db().await;
    let pool = &db.pool;
    let (a, b) = (TenantId::new(), TenantId::new());
    // Interleaved: b's ids fall between a's.
    let all = ids(8);
    let (mut mine, mut theirs) = (Vec::new(), Vec::new());
    for (i, id) in all.iter().enumerate() {
        if i % 3 == 1 {
            insert_session(pool, b, *id, "theirs").await;
            theirs.push(*id);
        } else {
            insert_session(pool, a, *id, "mine").await;
            mine.push(*id);
        }
    }
    let now = at(2025, 3, 10, 12, 0);

    let seen = walk(
        |page| async move { sessions::list(pool, a, &page, now).await.unwrap() },
        |s| s.id,
    )
    .await;
    assert_eq!(seen, mine);
    let seen = walk(
        |page| async move { sessions::list(pool, b, &page, now).await.unwrap() },
        |s| s.id,
    )
    .await;
    assert_eq!(seen, theirs);

    // One page holds everything: no next cursor.
    let page = sessions::list(pool, a, &Page::first(None), now)
        .await
        .unwrap();
    assert_eq!(page.items.len(), mine.len());
    assert_eq!(page.next_cursor, None);
    assert!(page.items.iter().all(|s| s.name == "mine"));

    // A get of another tenant's session is nothing.
    let their = SessionId::from_uuid(theirs[0]);
    assert_eq!(sessions::get(pool, a, their, now).await.unwrap(), None);
    let got = sessions::get(pool, b, their, now).await.unwrap().unwrap();
    assert_eq!(got.id, theirs[0]);
    assert_eq!(got.sent_today, 0);
    assert!(
        sessions::get(pool, a, SessionId::new(), now)
            .await
            .unwrap()
            .is_none()
    );

    assert_eq!(
        sessions::count_active(pool, a).await.unwrap(),
        mine.len() as i64
    );
    assert_eq!(
        sessions::count_active(pool, b).await.unwrap(),
        theirs.len() as i64
    );
    assert_eq!(
        sessions::count_active(pool, TenantId::new()).await.unwrap(),
        0
    );

    // The fields, as the API names them.
    let value = serde_json::to_value(&got).unwrap();
    for field in [
        "id",
        "name",
        "driver",
        "status",
        "phone_number",
        "daily_limit",
        "sent_today",
        "trust_level",
        "auto_start",
        "last_error",
        "updated_at",
        "created_at",
        "login",
    ] {
        assert!(value.get(field).is_some(), "{field} in {value}");
    }
    let paged = serde_json::to_value(&page).unwrap();
    assert!(paged["items"].is_array());
    assert!(paged["next_cursor"].is_null());
}

#[tokio::test]
async fn sent_today_is_the_row_of_the_tenants_local_date() {
    let db = db().await;
    let pool = &db.pool;
    let date = |d| NaiveDate::from_ymd_opt(2025, 3, d).unwrap();
    // 20:00 UTC on 10 March: 11 March in Jakarta (UTC+7), still 10 March in
    // New York (UTC-4 since 9 March).
    let now = at(2025, 3, 10, 20, 0);

    // No schedule: Asia/Jakarta.
    let jakarta = TenantId::new();
    let s1 = Uuid::now_v7();
    insert_session(pool, jakarta, s1, "s1").await;
    insert_session_day(pool, jakarta, s1, date(10), 7).await;
    insert_session_day(pool, jakarta, s1, date(11), 3).await;

    let new_york = TenantId::new();
    insert_schedule(pool, new_york, "America/New_York").await;
    let s2 = Uuid::now_v7();
    insert_session(pool, new_york, s2, "s2").await;
    insert_session_day(pool, new_york, s2, date(10), 5).await;
    insert_session_day(pool, new_york, s2, date(11), 9).await;

    // Only yesterday's row.
    let idle = TenantId::new();
    insert_schedule(pool, idle, "Asia/Jakarta").await;
    let s3 = Uuid::now_v7();
    insert_session(pool, idle, s3, "s3").await;
    insert_session_day(pool, idle, s3, date(10), 4).await;

    let sent = |tenant, id| async move {
        sessions::get(pool, tenant, SessionId::from_uuid(id), now)
            .await
            .unwrap()
            .unwrap()
            .sent_today
    };
    assert_eq!(sent(jakarta, s1).await, 3);
    assert_eq!(sent(new_york, s2).await, 5);
    assert_eq!(sent(idle, s3).await, 0);

    assert_eq!(
        sessions::local_date(pool, jakarta, now).await.unwrap(),
        date(11)
    );
    assert_eq!(
        sessions::local_date(pool, new_york, now).await.unwrap(),
        date(10)
    );

    // A time zone the domain does not know (never written by the folds):
    // days counted in Jakarta rather than an error.
    let odd = TenantId::new();
    insert_schedule(pool, odd, "Mars/Olympus_Mons").await;
    let s4 = Uuid::now_v7();
    insert_session(pool, odd, s4, "s4").await;
    insert_session_day(pool, odd, s4, date(11), 2).await;
    assert_eq!(sent(odd, s4).await, 2);

    // Lists say the same; a day later in Jakarta, nothing sent yet.
    let listed = sessions::list(pool, jakarta, &Page::default(), now)
        .await
        .unwrap();
    assert_eq!(listed.items[0].sent_today, 3);
    let later = at(2025, 3, 11, 17, 0); // 12 March 00:00 in Jakarta.
    let listed = sessions::list(pool, jakarta, &Page::default(), later)
        .await
        .unwrap();
    assert_eq!(listed.items[0].sent_today, 0);
    let earlier = at(2025, 3, 10, 16, 59); // 10 March 23:59 in Jakarta.
    assert_eq!(
        sessions::get(pool, jakarta, SessionId::from_uuid(s1), earlier)
            .await
            .unwrap()
            .unwrap()
            .sent_today,
        7
    );
}

#[tokio::test]
async fn campaigns_carry_their_counts_and_stay_with_their_tenant() {
    let db = db().await;
    let pool = &db.pool;
    let (a, b) = (TenantId::new(), TenantId::new());
    let [draft, running, completed, scheduled, theirs] = ids(5).try_into().unwrap();
    let campaign = |id, status, recipients, started, points_spent| CampaignRow {
        id,
        status,
        recipients,
        started,
        points_spent,
    };
    insert_campaign(pool, a, campaign(draft, "draft", 0, false, None)).await;
    insert_campaign(pool, a, campaign(running, "running", 10, true, None)).await;
    insert_counts(pool, a, running, [4, 0, 3, 2, 0, 1, 0, 0, 6]).await;
    insert_campaign(pool, a, campaign(completed, "completed", 5, true, Some(20))).await;
    insert_counts(pool, a, completed, [0, 0, 0, 2, 2, 1, 0, 0, 18]).await;
    insert_campaign(pool, a, campaign(scheduled, "scheduled", 0, false, None)).await;
    insert_counts(pool, a, scheduled, [2, 0, 0, 0, 0, 0, 1, 0, 0]).await;
    insert_campaign(pool, b, campaign(theirs, "running", 3, true, None)).await;
    insert_counts(pool, b, theirs, [3, 0, 0, 0, 0, 0, 0, 0, 0]).await;

    let get = |tenant, id| async move {
        campaigns::get(pool, tenant, CampaignId::from_uuid(id))
            .await
            .unwrap()
    };

    // No counts row: zeros.
    let c = get(a, draft).await.unwrap();
    assert_eq!(c.counts, campaigns::CampaignCounts::default());
    assert_eq!((c.points_reserved, c.points_spent), (0, 0));
    assert_eq!(c.pause_reason, None);

    // Started: the recipients frozen at start; live spending.
    let c = get(a, running).await.unwrap();
    assert_eq!(c.counts.total, 10);
    assert_eq!(
        (
            c.counts.queued,
            c.counts.sent,
            c.counts.delivered,
            c.counts.failed
        ),
        (4, 3, 2, 1)
    );
    assert_eq!((c.points_reserved, c.points_spent), (20, 6));
    assert_eq!(
        (c.throttle.min_delay_ms, c.throttle.max_delay_ms),
        (1000, 5000)
    );

    // Completed: the final figure.
    let c = get(a, completed).await.unwrap();
    assert_eq!((c.counts.total, c.points_spent), (5, 20));

    // Not started: the messages counted.
    let c = get(a, scheduled).await.unwrap();
    assert_eq!(
        (c.counts.total, c.counts.queued, c.counts.cancelled),
        (3, 2, 1)
    );

    // Another tenant's: nothing.
    assert!(get(a, theirs).await.is_none());
    assert_eq!(get(b, theirs).await.unwrap().counts.total, 3);
    assert!(
        campaigns::exists(pool, b, CampaignId::from_uuid(theirs))
            .await
            .unwrap()
    );
    assert!(
        !campaigns::exists(pool, a, CampaignId::from_uuid(theirs))
            .await
            .unwrap()
    );

    // Lists.
    let seen = walk(
        |page| async move { campaigns::list(pool, a, &page, None).await.unwrap() },
        |c| c.id,
    )
    .await;
    assert_eq!(seen, vec![draft, running, completed, scheduled]);
    let running_only = campaigns::list(pool, a, &Page::default(), Some("running"))
        .await
        .unwrap();
    assert_eq!(
        running_only.items.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![running]
    );
    let seen = walk(
        |page| async move { campaigns::list(pool, b, &page, None).await.unwrap() },
        |c| c.id,
    )
    .await;
    assert_eq!(seen, vec![theirs]);
    let none = campaigns::list(pool, a, &Page::default(), Some("paused"))
        .await
        .unwrap();
    assert!(none.items.is_empty() && none.next_cursor.is_none());

    // The fields, as the API names them.
    let value = serde_json::to_value(get(a, running).await.unwrap()).unwrap();
    for field in [
        "id",
        "name",
        "status",
        "contact_list_id",
        "template",
        "media_id",
        "sender_session_ids",
        "throttle",
        "scheduled_at",
        "counts",
        "points_reserved",
        "points_spent",
        "pause_reason",
        "resume_at",
        "created_at",
        "started_at",
        "finished_at",
        "updated_at",
    ] {
        assert!(value.get(field).is_some(), "{field} in {value}");
    }
    for count in [
        "total",
        "queued",
        "sending",
        "sent",
        "delivered",
        "read",
        "failed",
        "cancelled",
        "unknown",
    ] {
        assert!(value["counts"][count].is_i64(), "counts.{count} in {value}");
    }
    assert_eq!(
        value["throttle"],
        json!({"min_delay_ms": 1000, "max_delay_ms": 5000})
    );
}

#[tokio::test]
async fn messages_and_their_export_stay_with_their_tenant() {
    let db = db().await;
    let pool = &db.pool;
    let (a, b) = (TenantId::new(), TenantId::new());
    let [mine, theirs] = ids(2).try_into().unwrap();
    for (tenant, id) in [(a, mine), (b, theirs)] {
        insert_campaign(
            pool,
            tenant,
            CampaignRow {
                id,
                status: "running",
                recipients: 5,
                started: true,
                points_spent: None,
            },
        )
        .await;
    }
    let m = ids(8);
    insert_message(
        pool,
        a,
        mine,
        m[0],
        "+6281000000001",
        Some("Budi"),
        "read",
        None,
    )
    .await;
    insert_message(
        pool,
        a,
        mine,
        m[1],
        "+6281000000002",
        Some("=cmd|' /C calc'!A0"),
        "failed",
        Some("not on WhatsApp, sorry"),
    )
    .await;
    // Another tenant's message, even one naming our campaign, is not ours.
    insert_message(
        pool,
        b,
        mine,
        m[2],
        "+6281000000009",
        Some("intruder"),
        "sent",
        None,
    )
    .await;
    insert_message(pool, a, mine, m[3], "+6281000000003", None, "queued", None).await;
    insert_message(
        pool,
        a,
        mine,
        m[4],
        "+6281000000004",
        Some("Sari, S.E."),
        "failed",
        Some("said \"blocked\""),
    )
    .await;
    insert_message(
        pool,
        b,
        theirs,
        m[5],
        "+6281000000008",
        Some("theirs"),
        "sent",
        None,
    )
    .await;
    insert_message(
        pool,
        a,
        mine,
        m[6],
        "+6281000000005",
        Some("Ani"),
        "sent",
        None,
    )
    .await;
    let mine_ids = vec![m[0], m[1], m[3], m[4], m[6]];
    let campaign = CampaignId::from_uuid(mine);
    let their_campaign = CampaignId::from_uuid(theirs);

    let seen = walk(
        |page| async move {
            messages::list_for_campaign(pool, a, campaign, None, &page)
                .await
                .unwrap()
                .unwrap()
        },
        |m| m.id,
    )
    .await;
    assert_eq!(seen, mine_ids);
    let failed = messages::list_for_campaign(pool, a, campaign, Some("failed"), &Page::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        failed.items.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![m[1], m[4]]
    );
    assert_eq!(
        failed.items[0].error.as_deref(),
        Some("not on WhatsApp, sorry")
    );
    assert_eq!(failed.items[0].attempts, 1);
    let value = serde_json::to_value(&failed.items[0]).unwrap();
    for field in [
        "id",
        "phone",
        "name",
        "status",
        "error",
        "attempts",
        "sent_at",
        "delivered_at",
        "read_at",
        "session_id",
        "text",
    ] {
        assert!(value.get(field).is_some(), "{field} in {value}");
    }

    // Another tenant's campaign: nothing (a 404), list or export.
    assert!(
        messages::list_for_campaign(pool, a, their_campaign, None, &Page::default())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        messages::export(pool, a, their_campaign)
            .await
            .unwrap()
            .is_none()
    );
    let theirs_listed =
        messages::list_for_campaign(pool, b, their_campaign, None, &Page::default())
            .await
            .unwrap()
            .unwrap();
    assert_eq!(theirs_listed.items.len(), 1);

    // The export: our rows, by id, streamed.
    let rows: Vec<messages::ExportRow> = messages::export(pool, a, campaign)
        .await
        .unwrap()
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let phones: Vec<&str> = rows.iter().map(|r| r.phone.as_str()).collect();
    assert_eq!(
        phones,
        [
            "+6281000000001",
            "+6281000000002",
            "+6281000000003",
            "+6281000000004",
            "+6281000000005"
        ]
    );
    let mut csv = String::from(EXPORT_HEADER);
    for row in &rows {
        csv.push_str(CSV_LINE_BREAK);
        csv.push_str(&csv_line(row));
    }
    assert_eq!(
        csv,
        [
            "phone,name,status,error,sent_at,delivered_at,read_at,text",
            "+6281000000001,Budi,read,,2025-01-02T00:05:00Z,,,",
            "+6281000000002,'=cmd|' /C calc'!A0,failed,\"not on WhatsApp, sorry\",2025-01-02T00:05:00Z,,,",
            "+6281000000003,,queued,,,,,",
            "+6281000000004,\"Sari, S.E.\",failed,\"said \"\"blocked\"\"\",2025-01-02T00:05:00Z,,,",
            "+6281000000005,Ani,sent,,2025-01-02T00:05:00Z,,,",
        ]
        .join("\r\n")
    );

    // The stream owns what it needs: it outlives the borrow of the pool.
    let stream = {
        let pool = pool.clone();
        messages::export(&pool, a, campaign).await.unwrap().unwrap()
    };
    let rows: Vec<_> = tokio::spawn(stream.try_collect::<Vec<_>>())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rows.len(), 5);
}

#[tokio::test]
async fn wallets_and_their_history_stay_with_their_tenant() {
    let db = db().await;
    let pool = &db.pool;
    let (a, b) = (TenantId::new(), TenantId::new());

    // No wallet yet: zeros, no plan.
    let empty = wallet::get(pool, a).await.unwrap();
    assert_eq!(empty, wallet::WalletView::default());
    assert_eq!(
        serde_json::to_value(&empty).unwrap(),
        json!({"balance": 0, "reserved": 0, "available": 0, "plan": null,
               "plan_expires_at": null, "plan_expired": false, "sending_until": null,
               "suspended_reason": null, "low_balance": false})
    );

    let plan = Uuid::now_v7();
    sqlx::query(
        "insert into wallets (tenant_id, balance, reserved, available, plan_id, plan_name, \
             plan_period_days, max_sessions, max_recipients_per_campaign, max_daily_limit, \
             plan_expires_at, plan_expired, updated_at) \
         values ($1, 1000, 200, 800, $2, 'Basic', 30, 3, 200, 500, $3, false, $3)",
    )
    .bind(b.as_uuid())
    .bind(plan)
    .bind(at(2025, 2, 1, 0, 0))
    .execute(pool)
    .await
    .unwrap();
    let w = wallet::get(pool, b).await.unwrap();
    assert_eq!((w.balance, w.reserved, w.available), (1000, 200, 800));
    let p = w.plan.clone().unwrap();
    assert_eq!((p.id, p.name.as_str(), p.period_days), (plan, "Basic", 30));
    assert_eq!(p.max_sessions, Some(3));
    assert_eq!(w.plan_expires_at, Some(at(2025, 2, 1, 0, 0)));
    let value = serde_json::to_value(&w).unwrap();
    assert_eq!(value["plan"]["id"], json!(plan));
    assert_eq!(value["plan"]["period_days"], json!(30));
    // Still nothing for the other tenant.
    assert_eq!(
        wallet::get(pool, a).await.unwrap(),
        wallet::WalletView::default()
    );

    // History: newest first, by log position, interleaved with the other
    // tenant's.
    let positions = [
        (10, 0),
        (10, 1),
        (11, 0),
        (12, 0),
        (12, 1),
        (13, 0),
        (14, 2),
    ];
    let mut mine = Vec::new();
    for (i, (s, e)) in positions.into_iter().enumerate() {
        let tenant = if i % 3 == 2 { b } else { a };
        let id = insert_transaction(pool, tenant, s, e).await;
        if tenant == a {
            mine.push((s, e, id));
        }
    }
    mine.reverse();
    let seen = walk(
        |page| async move { wallet::transactions(pool, a, &page).await.unwrap() },
        |t| TransactionCursor {
            stream_sequence: t.stream_sequence,
            event_sequence: t.event_sequence,
        },
    )
    .await;
    let expected: Vec<_> = mine
        .iter()
        .map(|&(s, e, _)| TransactionCursor {
            stream_sequence: s,
            event_sequence: e,
        })
        .collect();
    assert_eq!(seen, expected);
    let all = wallet::transactions(pool, a, &Page::default())
        .await
        .unwrap();
    assert_eq!(
        all.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        mine.iter().map(|&(_, _, id)| id).collect::<Vec<_>>()
    );
    let theirs = wallet::transactions(pool, b, &Page::default())
        .await
        .unwrap();
    assert_eq!(theirs.items.len(), 2);
    let value = serde_json::to_value(&all.items[0]).unwrap();
    let mut keys: Vec<&String> = value.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "available_after",
            "balance_after",
            "campaign_id",
            "created_at",
            "id",
            "kind",
            "points",
            "reference",
            "reserved_after",
        ]
    );
    assert_eq!(value["kind"], "topup");
    assert_eq!(value["reference"], "grant-1");
}

#[tokio::test]
async fn schedules_default_to_jakarta_always_on() {
    let db = db().await;
    let pool = &db.pool;
    let (a, b) = (TenantId::new(), TenantId::new());
    insert_schedule(pool, b, "Europe/Berlin").await;

    assert_eq!(
        schedule::DEFAULT_TIMEZONE,
        wablast_domain::types::TimeZone::JAKARTA.name()
    );
    let s = schedule::get(pool, a).await.unwrap();
    assert_eq!(
        serde_json::to_value(&s).unwrap(),
        json!({"timezone": "Asia/Jakarta", "windows": [], "override": "none"})
    );
    let s = schedule::get(pool, b).await.unwrap();
    assert_eq!(
        serde_json::to_value(&s).unwrap(),
        json!({"timezone": "Europe/Berlin",
               "windows": [{"days": ["mon", "tue"], "start": "09:00", "end": "18:00"}],
               "override": "pause"})
    );
}

#[tokio::test]
async fn plans_are_listed_without_the_retired_unless_asked() {
    let db = db().await;
    let pool = &db.pool;
    let [basic, old, pro] = ids(3).try_into().unwrap();
    for (id, name, retired) in [
        (basic, "Basic", None),
        (old, "Old", Some(at(2025, 1, 5, 0, 0))),
        (pro, "Pro", None),
    ] {
        sqlx::query(
            "insert into plans (id, name, period_days, points, max_sessions, \
                 max_recipients_per_campaign, max_daily_limit, price, created_at, retired_at) \
             values ($1, $2, 30, 1000, 3, 200, 500, 150000, $3, $4)",
        )
        .bind(id)
        .bind(name)
        .bind(at(2025, 1, 1, 0, 0))
        .bind(retired)
        .execute(pool)
        .await
        .unwrap();
    }
    let offered = plans::list(pool, plans::PlanFilter::OnSale).await.unwrap();
    assert_eq!(
        offered.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![basic, pro]
    );
    let every = plans::list(pool, plans::PlanFilter::All).await.unwrap();
    assert_eq!(
        every.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![basic, old, pro]
    );
    let p = plans::get(pool, PlanId::from_uuid(old))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (p.name.as_str(), p.retired_at),
        ("Old", Some(at(2025, 1, 5, 0, 0)))
    );
    assert_eq!((p.period_days, p.points, p.price), (30, 1000, 150_000));
    assert!(plans::get(pool, PlanId::new()).await.unwrap().is_none());
}

#[tokio::test]
async fn event_history_stays_with_its_tenant() {
    let db = db().await;
    let pool = &db.pool;
    let (a, b) = (TenantId::new(), TenantId::new());
    let (ta, tb) = (events::tenant_token(a), events::tenant_token(b));
    assert_eq!(ta, a.to_string());
    let aggregate = Uuid::now_v7().to_string();
    // Written out of order; the same aggregate id under another tenant.
    let e2 = insert_event(pool, &ta, "campaign", &aggregate, 2, 20).await;
    let e1 = insert_event(pool, &ta, "campaign", &aggregate, 1, 10).await;
    let e3 = insert_event(pool, &ta, "campaign", &aggregate, 3, 30).await;
    let other = insert_event(pool, &tb, "campaign", &aggregate, 1, 11).await;
    insert_event(pool, &ta, "session", &aggregate, 1, 12).await;
    let plan = insert_event(pool, events::PLATFORM, "plan", &aggregate, 1, 5).await;

    let history = events::history(pool, &ta, "campaign", &aggregate)
        .await
        .unwrap();
    assert_eq!(
        history.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        vec![e1, e2, e3]
    );
    assert!(
        history
            .iter()
            .all(|e| e.tenant == ta && e.aggregate_type == "campaign")
    );
    let history = events::history(pool, &tb, "campaign", &aggregate)
        .await
        .unwrap();
    assert_eq!(
        history.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        vec![other]
    );
    let history = events::history(pool, events::PLATFORM, "plan", &aggregate)
        .await
        .unwrap();
    assert_eq!(
        history.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        vec![plan]
    );
    assert!(
        events::history(pool, &tb, "session", &aggregate)
            .await
            .unwrap()
            .is_empty()
    );

    let found = events::position_of(pool, &ta, e2).await.unwrap().unwrap();
    assert_eq!(
        found.position(),
        Some(Position {
            stream: LogStream::Events,
            sequence: 20
        })
    );
    assert!(events::position_of(pool, &tb, e2).await.unwrap().is_none());
    assert!(
        events::position_of(pool, &ta, Uuid::now_v7())
            .await
            .unwrap()
            .is_none()
    );
}

/// Inserts a tenant and a list of contacts `(phone, name, variables)`.
async fn contact_list(
    pool: &PgPool,
    tenant: Uuid,
    contacts: &[(&str, Option<&str>, serde_json::Value)],
) -> Uuid {
    sqlx::query("insert into tenants (id, name, created_at) values ($1, 'Toko', now()) on conflict do nothing")
        .bind(tenant)
        .execute(pool)
        .await
        .unwrap();
    let list = Uuid::now_v7();
    sqlx::query(
        "insert into contact_lists (id, tenant_id, name, columns, total_rows, accepted, rejected, source_format, created_at)
         values ($1, $2, 'Pelanggan', '{kota,Diskon}', $3, $3, 0, 'csv', now())",
    )
    .bind(list)
    .bind(tenant)
    .bind(contacts.len() as i32)
    .execute(pool)
    .await
    .unwrap();
    for (row, (phone, name, variables)) in contacts.iter().enumerate() {
        sqlx::query(
            "insert into contacts (list_id, row_number, tenant_id, phone, name, variables)
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(list)
        .bind(row as i32 + 1)
        .bind(tenant)
        .bind(phone)
        .bind(name)
        .bind(variables)
        .execute(pool)
        .await
        .unwrap();
    }
    list
}

#[tokio::test]
async fn missing_values_count_absent_and_blank_values_as_the_domain_does() {
    let db = db().await;
    let pool = &db.pool;
    let (ta, tb) = (Uuid::now_v7(), Uuid::now_v7());
    let blanks = ["", " ", "\t\n", "\u{a0}", "\u{3000} "];
    let mut contacts = vec![
        (
            "+628111",
            Some("Budi"),
            json!({"kota": "Bandung", "Diskon": "10"}),
        ),
        ("+628112", None, json!({"kota": "Solo"})),
        ("+628113", Some(" "), json!({"Diskon": "5"})),
    ];
    for (i, blank) in blanks.iter().enumerate() {
        assert!(!wablast_domain::types::template::has_value(blank));
        contacts.push((
            ["+628120", "+628121", "+628122", "+628123", "+628124"][i],
            Some("Siti"),
            json!({"kota": blank, "Diskon": " 1 "}),
        ));
    }
    let list = contact_list(pool, ta, &contacts).await;
    let other = contact_list(pool, tb, &contacts[..1]).await;
    let variables = ["name", "phone", "kota", "Diskon", "alamat"]
        .map(str::to_owned)
        .into();
    let tenant = TenantId::from_uuid(ta);
    let list_id = ContactListId::from_uuid(list);

    let missing = contact_lists::missing_values(pool, tenant, list_id, &variables, false, None)
        .await
        .unwrap();

    assert_eq!(
        missing,
        [
            ("name", 2),
            ("phone", 0),
            ("kota", 6),
            ("Diskon", 1),
            ("alamat", 8)
        ]
        .map(|(k, n)| (k.to_owned(), n))
        .into()
    );
    // Another tenant's list counts nothing.
    let theirs = contact_lists::missing_values(
        pool,
        tenant,
        ContactListId::from_uuid(other),
        &variables,
        false,
        None,
    )
    .await
    .unwrap();
    assert!(theirs.values().all(|n| *n == 0), "{theirs:?}");

    let sample = contact_lists::sample(pool, tenant, list_id, 2)
        .await
        .unwrap();
    assert_eq!(
        sample
            .iter()
            .map(|c| (c.phone.as_str(), c.name.as_deref()))
            .collect::<Vec<_>>(),
        [("+628111", Some("Budi")), ("+628112", None)]
    );
    assert_eq!(
        sample[1].variables.0,
        [("kota".to_owned(), "Solo".to_owned())].into()
    );
    assert!(
        contact_lists::sample(pool, tenant, ContactListId::from_uuid(other), 5)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn contacts_found_not_on_whatsapp_are_left_out_of_a_campaign_that_skips_them() {
    let db = db().await;
    let pool = &db.pool;
    let (ta, tb) = (Uuid::now_v7(), Uuid::now_v7());
    let list = contact_list(
        pool,
        ta,
        &[
            ("+628111", Some("Budi"), json!({"kota": "Bandung"})),
            ("+628112", None, json!({})),
            ("+628113", None, json!({"kota": "Solo"})),
            ("+628114", Some("Siti"), json!({"kota": "Medan"})),
        ],
    )
    .await;
    // The tenant found +628112 off WhatsApp and +628111 on it; another
    // tenant found +628113 off, which is none of this tenant's business.
    for (tenant, phone, on) in [
        (ta, "+628112", false),
        (ta, "+628111", true),
        (tb, "+628113", false),
    ] {
        sqlx::query(
            "insert into number_checks (tenant_id, phone, on_whatsapp, session_id, checked_at)
             values ($1, $2, $3, $4, now())",
        )
        .bind(tenant)
        .bind(phone)
        .bind(on)
        .bind(Uuid::now_v7())
        .execute(pool)
        .await
        .unwrap();
    }
    let tenant = TenantId::from_uuid(ta);
    let list_id = ContactListId::from_uuid(list);
    let variables = ["name", "kota"].map(str::to_owned).into();

    let all = contact_lists::missing_values(pool, tenant, list_id, &variables, false, None)
        .await
        .unwrap();
    let skipping = contact_lists::missing_values(pool, tenant, list_id, &variables, true, None)
        .await
        .unwrap();
    assert_eq!(
        all,
        [("name", 2), ("kota", 1)]
            .map(|(k, n)| (k.to_owned(), n))
            .into()
    );
    assert_eq!(
        skipping,
        [("name", 1), ("kota", 0)]
            .map(|(k, n)| (k.to_owned(), n))
            .into()
    );

    let campaign = wablast_domain::types::CampaignId::new();
    for _ in 0..2 {
        // A start tried again records the same, not twice as much.
        let skipped = contact_lists::skip_not_on_whatsapp(pool, tenant, campaign, list_id)
            .await
            .unwrap();
        assert_eq!(skipped, 1);
    }
    let rows: Vec<i32> = sqlx::query_scalar(
        "select row_number from campaign_skipped_contacts where campaign_id = $1",
    )
    .bind(campaign.as_uuid())
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(rows, [2]);
}
