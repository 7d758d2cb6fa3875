//! The projector against real JetStream and PostgreSQL: generated histories
//! of thousands of events across tenants, crashes between applying and
//! acknowledging, redeliveries, rebuilds, unknown event versions, two
//! writers, read-your-writes.

use std::time::Duration;

use cqrs_es::Aggregate;
use futures::TryStreamExt;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool};
use tokio_util::sync::CancellationToken;
use wablast_domain::{campaign, inbound, message, plan, schedule, session, session_day, wallet};
use wablast_eventstore::{
    Actor, AggregateKey, CommandHandler, CommandMetadata, Commit, EventLog, EventLogConfig, Prefix,
    StreamSpec,
};
use wablast_projections::wait::{Position, until_projected};
use wablast_projections::{
    LogStream, ProjectionError, Projector, RunnerOptions, StreamName, checkpoint,
};
use wablast_tests::history::{History, HistorySpec};
use wablast_tests::{TestDatabase, delete_streams, nats_url, unique_prefix};

/// A test's own event log (unique prefix, streams deleted on drop) and
/// database (migrated, dropped on drop).
struct World {
    prefix: String,
    log: EventLog,
    pool: PgPool,
    db: TestDatabase,
}

impl Drop for World {
    fn drop(&mut self) {
        delete_streams(&nats_url(), &self.prefix);
    }
}

async fn open_log(prefix: &str) -> EventLog {
    let client = async_nats::connect(nats_url()).await.unwrap();
    EventLog::open(
        client,
        EventLogConfig::new(
            Prefix::parse(prefix).unwrap(),
            vec![
                StreamSpec::kept_forever(
                    "events",
                    &[
                        session::Session::TYPE,
                        session_day::SessionDay::TYPE,
                        schedule::Schedule::TYPE,
                        plan::Plan::TYPE,
                        wallet::Wallet::TYPE,
                        campaign::Campaign::TYPE,
                    ],
                ),
                StreamSpec::with_retention(
                    "messages",
                    &[
                        message::Message::TYPE,
                        inbound::Inbound::TYPE,
                        wablast_domain::recipient_batch::RecipientBatch::TYPE,
                    ],
                    Duration::from_secs(24 * 3600),
                ),
            ],
        ),
    )
    .await
    .unwrap()
}

async fn migrated(db: &TestDatabase) -> PgPool {
    let pool = PgPoolOptions::new()
        .max_connections(12)
        .connect(&db.url)
        .await
        .unwrap();
    wablast_migrations::run(&pool).await.unwrap();
    pool
}

async fn world() -> World {
    let prefix = unique_prefix();
    let log = open_log(&prefix).await;
    let db = TestDatabase::create().await;
    let pool = migrated(&db).await;
    World {
        prefix,
        log,
        pool,
        db,
    }
}

/// Every projection table, each row as JSON text, sorted: two dumps are
/// equal when the tables hold the very same values.
async fn dump(pool: &PgPool) -> Vec<(String, Vec<String>)> {
    let mut tables = Vec::new();
    for projection in wablast_projections::all() {
        for table in projection.tables() {
            let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
                "select to_jsonb(t)::text from {table} t order by 1"
            )))
            .fetch_all(pool)
            .await
            .unwrap();
            tables.push(((*table).to_owned(), rows));
        }
    }
    tables
}

fn assert_same(left: &[(String, Vec<String>)], right: &[(String, Vec<String>)]) {
    assert_eq!(left.len(), right.len());
    for ((table, a), (_, b)) in left.iter().zip(right) {
        assert_eq!(a.len(), b.len(), "{table}: row counts differ");
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x, y, "{table}: rows differ");
        }
    }
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn generated(world: &World, seed: u64) -> History {
    let history = History::generate(&HistorySpec::small(seed));
    history.append_to(&world.log, 256).await.unwrap();
    history
}

#[tokio::test]
async fn a_generated_history_is_projected_and_its_figures_add_up() {
    let world = world().await;
    let history = generated(&world, 1).await;
    assert!(history.events() >= 2_000, "{} events", history.events());

    let applied = Projector::new(world.pool.clone(), world.log.clone())
        .catch_up()
        .await
        .unwrap();
    assert!(
        applied > history.events() as u64,
        "every projection applied its share"
    );

    // Every event is indexed once.
    assert_eq!(
        count(&world.pool, "select count(*) from event_index").await,
        history.events() as i64
    );
    // Every reply is an inbound row, beside the messages in their stream
    // and not among them.
    let inbound = count(
        &world.pool,
        "select count(*) from event_index where aggregate_type = 'inbound'",
    )
    .await;
    assert!(inbound > 0);
    assert_eq!(
        count(&world.pool, "select count(*) from inbound_messages").await,
        inbound
    );
    assert_eq!(
        count(
            &world.pool,
            "select count(*) from messages m join inbound_messages i using (id)"
        )
        .await,
        0
    );
    // A message per queued recipient, counted once in its campaign by
    // its current status.
    let messages = count(&world.pool, "select count(*) from messages").await;
    assert!(messages > 0);
    assert_eq!(
        count(
            &world.pool,
            "select coalesce(sum(queued + sending + sent + delivered + read + failed + cancelled + unknown), 0)::int8 \
             from campaign_message_counts"
        )
        .await,
        messages
    );
    assert_eq!(
        count(
            &world.pool,
            "select count(*) from campaign_message_counts c where \
             c.read <> (select count(*) from messages m where m.campaign_id = c.campaign_id and m.status = 'read') \
             or c.failed <> (select count(*) from messages m where m.campaign_id = c.campaign_id and m.status = 'failed') \
             or c.points_spent <> (select coalesce(sum(cost), 0) from messages m where m.campaign_id = c.campaign_id)"
        )
        .await,
        0,
        "counts agree with the message rows"
    );
    // Points spent are twice the messages that went out.
    assert_eq!(
        count(
            &world.pool,
            "select count(*) from messages where sent_at is not null and cost <> 2"
        )
        .await,
        0
    );
    // Completed campaigns spent what their messages cost.
    assert_eq!(
        count(
            &world.pool,
            "select count(*) from campaigns c join campaign_message_counts m on m.campaign_id = c.id \
             where c.status = 'completed' and c.points_spent <> m.points_spent"
        )
        .await,
        0
    );
    // A wallet's totals are its last transaction's.
    assert_eq!(
        count(
            &world.pool,
            "select count(*) from wallets w where (w.balance, w.reserved, w.available) is distinct from \
             (select (t.balance_after, t.reserved_after, t.available_after) from wallet_transactions t \
              where t.tenant_id = w.tenant_id and t.kind <> 'expire' \
              order by t.stream_sequence desc, t.event_sequence desc limit 1)"
        )
        .await,
        0
    );
    assert_eq!(
        count(&world.pool, "select count(distinct tenant_id) from wallets").await,
        history.tenants().len() as i64
    );
    // Sessions: slots counted per local day, never above the limit.
    assert!(count(&world.pool, "select count(*) from session_days").await > 0);
    assert_eq!(
        count(
            &world.pool,
            "select count(*) from session_days d join sessions s on s.id = d.session_id \
             where d.sent > s.daily_limit and not s.daily_limit_follows_trust_level"
        )
        .await,
        0
    );
    // Checkpoints reached the end of both streams.
    for stream in LogStream::ALL {
        let last = world
            .log
            .stream(&stream.full_name(world.log.prefix()))
            .unwrap()
            .get_info()
            .await
            .unwrap()
            .state
            .last_sequence;
        for projection in wablast_projections::all() {
            if projection.streams().contains(&stream) {
                assert_eq!(
                    checkpoint::read(&world.pool, projection.name(), stream)
                        .await
                        .unwrap(),
                    last,
                    "{} on {}",
                    projection.name(),
                    stream.name()
                );
            }
        }
    }
}

#[tokio::test]
async fn a_crash_between_applying_and_acknowledging_leaves_the_rows_exactly_right() {
    let world = world().await;
    generated(&world, 2).await;
    let projector = Projector::new(world.pool.clone(), world.log.clone());
    projector.catch_up().await.unwrap();
    let clean = dump(&world.pool).await;

    // What a crash after every commit and before every ack leaves behind:
    // the rows and checkpoints written, nothing acknowledged. Every message
    // comes back on restart.
    for stream in LogStream::ALL {
        let js = world
            .log
            .stream(&stream.full_name(world.log.prefix()))
            .unwrap();
        // The projector's durable consumers: one per stream.
        let durables: Vec<String> = js.consumer_names().try_collect().await.unwrap();
        assert_eq!(durables.len(), 1, "{durables:?}");
        for durable in durables {
            js.delete_consumer(&durable).await.unwrap();
            let _: async_nats::jetstream::consumer::PullConsumer = js
                .create_consumer(async_nats::jetstream::consumer::pull::Config {
                    durable_name: Some(durable.clone()),
                    ack_policy: async_nats::jetstream::consumer::AckPolicy::All,
                    ..Default::default()
                })
                .await
                .unwrap();
        }
    }
    let applied = projector.catch_up().await.unwrap();
    assert_eq!(
        applied, 0,
        "every redelivered commit was at or below its checkpoint"
    );
    assert_same(&clean, &dump(&world.pool).await);
}

#[tokio::test]
async fn the_consumers_of_the_one_per_projection_layout_are_removed() {
    let world = world().await;
    generated(&world, 7).await;
    let events = world
        .log
        .stream(&LogStream::Events.full_name(world.log.prefix()))
        .unwrap();
    // What a projector that read each projection through its own consumer
    // left behind.
    for former in ["projection_sessions", "projection_event_index"] {
        let _: async_nats::jetstream::consumer::PullConsumer = events
            .create_consumer(async_nats::jetstream::consumer::pull::Config {
                durable_name: Some(former.to_owned()),
                ack_policy: async_nats::jetstream::consumer::AckPolicy::All,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    Projector::new(world.pool.clone(), world.log.clone())
        .catch_up()
        .await
        .unwrap();
    let consumers: Vec<String> = events.consumer_names().try_collect().await.unwrap();
    assert_eq!(
        consumers,
        [
            "projection_sessions-campaigns-wallets-schedules-plans-list_checks-orders-members-event_index-webhook_outbox"
        ]
    );
}

#[tokio::test]
async fn a_projector_killed_at_random_moments_ends_with_the_same_rows_as_a_clean_run() {
    let world = world().await;
    generated(&world, 3).await;
    let small_batches = RunnerOptions {
        batch_size: 50,
        ..RunnerOptions::default()
    };

    // Killed again and again, wherever it is: mid-transaction, between the
    // commit and the ack, while acknowledging. Its connections die with it,
    // as a killed process's do (one dropped in the middle of a `COPY` is
    // out of step with the server and of no use to anyone after).
    let mut delay = 3u64;
    for _ in 0..12 {
        let pool = PgPoolOptions::new()
            .max_connections(12)
            .connect(&world.db.url)
            .await
            .unwrap();
        let projector =
            Projector::new(pool.clone(), world.log.clone()).with_options(small_batches.clone());
        let running = tokio::spawn(async move { projector.run(CancellationToken::new()).await });
        tokio::time::sleep(Duration::from_millis(delay)).await;
        running.abort();
        let _ = running.await;
        pool.close().await;
        delay = delay * 7 % 61 + 5;
    }
    Projector::new(world.pool.clone(), world.log.clone())
        .catch_up()
        .await
        .unwrap();
    let survived = dump(&world.pool).await;

    // The same history projected once, cleanly, in another database.
    let db = TestDatabase::create().await;
    let pool = migrated(&db).await;
    Projector::new(pool.clone(), world.log.clone())
        .with_options(RunnerOptions {
            consumer_prefix: "clean".into(),
            ..RunnerOptions::default()
        })
        .catch_up()
        .await
        .unwrap();
    assert_same(&dump(&pool).await, &survived);
}

#[tokio::test]
async fn rebuilding_from_zero_gives_the_same_rows_as_the_live_projection() {
    let world = world().await;
    let history = generated(&world, 4).await;
    let projector = Projector::new(world.pool.clone(), world.log.clone());
    projector.catch_up().await.unwrap();
    let live = dump(&world.pool).await;

    let report = wablast_projections::rebuild::rebuild(
        &world.pool,
        &world.log,
        wablast_projections::NAMES,
        None,
    )
    .await
    .unwrap();
    assert!(report.events() >= history.events() as u64);
    assert_same(&live, &dump(&world.pool).await);

    // The swapped-in tables kept the live ones' indexes, names and all.
    let indexes: Vec<String> = sqlx::query_scalar(
        "select indexname::text from pg_indexes where schemaname = 'public' order by 1",
    )
    .fetch_all(&world.pool)
    .await
    .unwrap();
    for name in [
        "messages_pkey",
        "messages_by_campaign_status",
        "sessions_by_tenant",
        "event_index_by_aggregate",
        "wallet_transactions_by_tenant",
    ] {
        assert!(indexes.iter().any(|i| i == name), "{name} in {indexes:?}");
    }
    let leftovers: i64 = sqlx::query_scalar(
        "select count(*) from information_schema.schemata where schema_name like 'rebuild_%'",
    )
    .fetch_one(&world.pool)
    .await
    .unwrap();
    assert_eq!(leftovers, 0);
}

#[tokio::test]
async fn a_rebuild_while_the_live_projector_runs_and_commits_keep_coming_loses_nothing() {
    let world = world().await;
    generated(&world, 5).await;
    let shutdown = CancellationToken::new();
    let live = {
        let projector = Projector::new(world.pool.clone(), world.log.clone());
        let shutdown = shutdown.clone();
        tokio::spawn(async move { projector.run(shutdown).await })
    };
    let more = History::generate(&HistorySpec::small(55));
    let (rebuilt, appended) = tokio::join!(
        wablast_projections::rebuild::rebuild(
            &world.pool,
            &world.log,
            &["messages", "sessions", "wallets"],
            None
        ),
        more.append_to(&world.log, 64)
    );
    rebuilt.unwrap();
    appended.unwrap();
    // Let the live projector finish what is left, then stop it.
    Projector::new(world.pool.clone(), world.log.clone())
        .catch_up()
        .await
        .unwrap();
    shutdown.cancel();
    live.await.unwrap().unwrap();
    let after = dump(&world.pool).await;

    let db = TestDatabase::create().await;
    let pool = migrated(&db).await;
    Projector::new(pool.clone(), world.log.clone())
        .with_options(RunnerOptions {
            consumer_prefix: "clean".into(),
            ..RunnerOptions::default()
        })
        .catch_up()
        .await
        .unwrap();
    assert_same(&dump(&pool).await, &after);
}

#[tokio::test]
async fn two_projectors_at_once_write_what_one_would() {
    let world = world().await;
    generated(&world, 6).await;
    let a = Projector::new(world.pool.clone(), world.log.clone());
    let b = Projector::new(world.pool.clone(), world.log.clone());
    let (x, y) = tokio::join!(a.catch_up(), b.catch_up());
    x.unwrap();
    y.unwrap();
    let both = dump(&world.pool).await;

    let db = TestDatabase::create().await;
    let pool = migrated(&db).await;
    Projector::new(pool.clone(), world.log.clone())
        .with_options(RunnerOptions {
            consumer_prefix: "single".into(),
            ..RunnerOptions::default()
        })
        .catch_up()
        .await
        .unwrap();
    assert_same(&dump(&pool).await, &both);
}

fn session_commit(tenant: &str, id: uuid::Uuid, version: &str) -> Commit {
    let key = AggregateKey::new(tenant, id).unwrap();
    let mut commit = Commit::new(
        session::Session::TYPE,
        &key,
        &CommandMetadata::new(Actor::System),
    );
    let event = session::SessionEvent::SessionCreated {
        session_id: id.into(),
        name: session::SessionName::parse("CS").unwrap(),
        driver: session::Driver::Simulator,
        login: session::LoginMethod::Qr,
        phone_number: None,
        daily_limit: wablast_domain::types::DailyLimit::parse(50).unwrap(),
        daily_limit_follows_trust_level: true,
        trust_level: wablast_domain::types::TrustLevel::NEW,
        auto_start: false,
        warm_up: false,
        at: chrono::Utc::now(),
    };
    commit.push(
        1,
        cqrs_es::DomainEvent::event_type(&event),
        version.to_owned(),
        serde_json::to_value(&event).unwrap(),
    );
    commit
}

#[tokio::test]
async fn an_event_of_an_unknown_version_stops_the_projection_at_it_and_skips_nothing() {
    let world = world().await;
    let tenant = uuid::Uuid::now_v7().to_string();
    let known = uuid::Uuid::now_v7();
    let newer = uuid::Uuid::now_v7();
    let after = uuid::Uuid::now_v7();
    world
        .log
        .append(0, &session_commit(&tenant, known, "1.0"))
        .await
        .unwrap();
    let stuck_at = world
        .log
        .append(0, &session_commit(&tenant, newer, "2.0"))
        .await
        .unwrap();
    world
        .log
        .append(0, &session_commit(&tenant, after, "1.0"))
        .await
        .unwrap();

    let err = Projector::new(world.pool.clone(), world.log.clone())
        .with_projections(vec![wablast_projections::by_name("sessions").unwrap()])
        .catch_up()
        .await
        .unwrap_err();
    match &err {
        ProjectionError::Event {
            projection,
            stream_sequence,
            event_version,
            ..
        } => {
            assert_eq!(*projection, "sessions");
            assert_eq!(*stream_sequence, stuck_at);
            assert_eq!(event_version, "2.0");
        }
        other => panic!("expected the event to be named, got {other}"),
    }
    assert!(err.to_string().contains("2.0"), "{err}");
    // What came before is projected; nothing at or after it is.
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("select id from sessions")
        .fetch_all(&world.pool)
        .await
        .unwrap();
    assert_eq!(ids, vec![known]);
    assert!(
        checkpoint::read(&world.pool, "sessions", LogStream::Events)
            .await
            .unwrap()
            < stuck_at
    );

    // Every projection at once (one batch for all, first tried in one
    // transaction): the same stop, and the others fold the batch.
    let err = Projector::new(world.pool.clone(), world.log.clone())
        .catch_up()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProjectionError::Event { projection: "sessions", stream_sequence, .. }
            if *stream_sequence == stuck_at),
        "{err}"
    );
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("select id from sessions")
        .fetch_all(&world.pool)
        .await
        .unwrap();
    assert_eq!(ids, vec![known]);
    let indexed: i64 = sqlx::query_scalar("select count(*) from event_index")
        .fetch_one(&world.pool)
        .await
        .unwrap();
    assert_eq!(indexed, 3);
}

#[tokio::test]
async fn a_read_can_wait_until_the_projections_reach_a_write() {
    let world = world().await;
    let tenant = uuid::Uuid::now_v7().to_string();
    let id = uuid::Uuid::now_v7();
    let written = world
        .log
        .append(0, &session_commit(&tenant, id, "1.0"))
        .await
        .unwrap();
    let position = Position {
        stream: LogStream::Events,
        sequence: written,
    };

    // Nobody projects: the wait gives up, bounded.
    let started = std::time::Instant::now();
    assert!(
        !until_projected(
            &world.pool,
            &["sessions"],
            position,
            Duration::from_millis(300)
        )
        .await
        .unwrap()
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    let shutdown = CancellationToken::new();
    let projector = Projector::new(world.pool.clone(), world.log.clone());
    let running = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move { projector.run(shutdown).await })
    };
    assert!(
        until_projected(
            &world.pool,
            &["sessions"],
            position,
            Duration::from_secs(10)
        )
        .await
        .unwrap()
    );
    let found: i64 = sqlx::query_scalar("select count(*) from sessions where id = $1")
        .bind(id)
        .fetch_one(&world.pool)
        .await
        .unwrap();
    assert_eq!(found, 1, "the write is visible once the wait returns");
    shutdown.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn lag_is_measured_per_projection_and_stream() {
    let world = world().await;
    let tenant = uuid::Uuid::now_v7().to_string();
    world
        .log
        .append(0, &session_commit(&tenant, uuid::Uuid::now_v7(), "1.0"))
        .await
        .unwrap();
    let projections = wablast_projections::all();
    let lags = wablast_projections::lag::measure(&world.pool, &world.log, &projections)
        .await
        .unwrap();
    let sessions = lags
        .iter()
        .find(|l| l.projection == "sessions" && l.stream == LogStream::Events)
        .unwrap();
    assert_eq!(sessions.behind(), 1);
    assert!(sessions.oldest_unprojected_at.is_some());
    assert_eq!(
        lags.iter()
            .filter(|l| l.projection == "event_index")
            .count(),
        2
    );

    Projector::new(world.pool.clone(), world.log.clone())
        .catch_up()
        .await
        .unwrap();
    let lags = wablast_projections::lag::measure(&world.pool, &world.log, &projections)
        .await
        .unwrap();
    assert!(
        lags.iter()
            .all(|l| l.behind() == 0 && l.oldest_unprojected_at.is_none()),
        "{lags:?}"
    );
}

#[tokio::test]
async fn an_event_of_an_older_version_is_upcast_then_folded() {
    use cqrs_es::persist::{EventUpcaster, SemanticVersionEventUpcaster};

    let world = world().await;
    let tenant = uuid::Uuid::now_v7().to_string();
    let id = uuid::Uuid::now_v7();
    // Version 0.9 called the session's name `label`.
    let mut commit = session_commit(&tenant, id, "0.9");
    let payload = &mut commit.events[0].payload["SessionCreated"];
    let name = payload["name"].take();
    payload.as_object_mut().unwrap().remove("name");
    payload["label"] = name;
    world.log.append(0, &commit).await.unwrap();

    // Without an upcaster the projection refuses to guess.
    let err = Projector::new(world.pool.clone(), world.log.clone())
        .with_projections(vec![wablast_projections::by_name("sessions").unwrap()])
        .catch_up()
        .await
        .unwrap_err();
    assert!(matches!(err, ProjectionError::Event { .. }), "{err}");

    fn rename(mut payload: serde_json::Value) -> serde_json::Value {
        let created = payload["SessionCreated"].as_object_mut().unwrap();
        let label = created.remove("label").unwrap();
        created.insert("name".into(), label);
        payload
    }
    let upcasters: Vec<Box<dyn EventUpcaster>> = vec![Box::new(SemanticVersionEventUpcaster::new(
        "SessionCreated",
        "1.0",
        Box::new(rename),
    ))];
    Projector::new(world.pool.clone(), world.log.clone())
        .with_projections(vec![wablast_projections::by_name("sessions").unwrap()])
        .with_upcasters(upcasters)
        .catch_up()
        .await
        .unwrap();
    let name: String = sqlx::query_scalar("select name from sessions where id = $1")
        .bind(id)
        .fetch_one(&world.pool)
        .await
        .unwrap();
    assert_eq!(name, "CS");
}

#[tokio::test]
async fn inbound_messages_are_projected_once_however_often_delivered_and_rebuilt_the_same() {
    use inbound::{InboundCommand, inbound_id};
    use wablast_domain::types::SessionId;
    use wablast_domain::types::phone::{Phone, Region};

    // Arrange: a customer writes twice to one session; the driver delivers
    // the first webhook twice and cannot resolve the second sender.
    let world = world().await;
    let tenant = uuid::Uuid::now_v7();
    let session_id = SessionId::new();
    let handler = CommandHandler::<inbound::Inbound>::new(world.log.clone(), ());
    let at = chrono::DateTime::parse_from_rfc3339("2026-03-02T03:04:05Z")
        .unwrap()
        .to_utc();
    let receive = |provider: &str, from: Option<Phone>, from_raw: &str, text: Option<&str>| {
        InboundCommand::ReceiveInbound {
            inbound_id: inbound_id(session_id, provider),
            session_id,
            from,
            from_raw: from_raw.to_owned(),
            kind: if text.is_some() {
                inbound::InboundKind::Text
            } else {
                inbound::InboundKind::Reaction
            },
            text: text.map(str::to_owned),
            provider_message_id: provider.to_owned(),
            at,
        }
    };
    let phone = Phone::parse("0812-3456-7890", Region::ID).unwrap();
    let first = receive(
        "false_6281234567890@c.us_3EB0A1",
        Some(phone),
        "6281234567890@c.us",
        Some("Kak, masih ada stok?"),
    );
    let second = receive("false_99887766@lid_3EB0B2", None, "99887766@lid", None);
    let meta = CommandMetadata::new(Actor::Engine("engine-1".into()));
    for command in [first.clone(), first, second] {
        let InboundCommand::ReceiveInbound { inbound_id, .. } = &command;
        let key = AggregateKey::new(tenant, inbound_id).unwrap();
        handler.execute(&key, command, &meta).await.unwrap();
    }

    // Act
    Projector::new(world.pool.clone(), world.log.clone())
        .catch_up()
        .await
        .unwrap();

    // Assert
    let rows: Vec<serde_json::Value> =
        sqlx::query_scalar("select to_jsonb(t) from inbound_messages t order by from_raw")
            .fetch_all(&world.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 2, "a redelivered webhook is one row: {rows:?}");
    assert_eq!(
        rows[0],
        serde_json::json!({
            "id": inbound_id(session_id, "false_6281234567890@c.us_3EB0A1"),
            "tenant_id": tenant,
            "session_id": session_id,
            "from_phone": "+6281234567890",
            "from_raw": "6281234567890@c.us",
            "text": "Kak, masih ada stok?",
            "provider_message_id": "false_6281234567890@c.us_3EB0A1",
            "received_at": "2026-03-02T03:04:05+00:00",
            "kind": "text",
        })
    );
    assert_eq!(
        rows[1]["from_phone"],
        serde_json::Value::Null,
        "an unresolved sender has no number"
    );
    assert_eq!(rows[1]["from_raw"], "99887766@lid", "but keeps its raw id");
    assert_eq!(rows[1]["text"], serde_json::Value::Null);
    assert_eq!(
        rows[1]["kind"], "reaction",
        "a message without text keeps its kind"
    );
    assert_eq!(
        count(
            &world.pool,
            "select count(*) from event_index where aggregate_type = 'inbound'"
        )
        .await,
        2
    );
    assert_eq!(count(&world.pool, "select count(*) from messages").await, 0);

    // Rebuilt from zero: the very same rows, its indexes in place.
    let live = dump(&world.pool).await;
    wablast_projections::rebuild::rebuild(&world.pool, &world.log, &["inbound"], None)
        .await
        .unwrap();
    assert_same(&live, &dump(&world.pool).await);
    let indexes: Vec<String> = sqlx::query_scalar(
        "select indexname::text from pg_indexes where tablename = 'inbound_messages' order by 1",
    )
    .fetch_all(&world.pool)
    .await
    .unwrap();
    assert_eq!(
        indexes,
        [
            "inbound_messages_by_peer",
            "inbound_messages_by_session",
            "inbound_messages_by_tenant",
            "inbound_messages_pkey"
        ]
    );
}

#[tokio::test]
async fn recipients_queued_in_a_batch_have_rows_before_their_messages_have_a_history() {
    use message::{Message, MessageCommand, QueuedMessage};
    use wablast_domain::recipient_batch::{
        BatchRecipient, RecipientBatch, RecipientBatchCommand, batch_id,
    };
    use wablast_domain::types::{CampaignId, MessageId, Points, SessionId};

    // Arrange: a campaign's recipient 4 was queued alone (a fan-out cut off
    // before batches); then its two batches: 1-3, and 4-5.
    let world = world().await;
    let tenant = uuid::Uuid::now_v7();
    let campaign = CampaignId::new();
    let session = SessionId::new();
    let at = chrono::DateTime::parse_from_rfc3339("2026-03-02T03:04:05Z")
        .unwrap()
        .to_utc();
    // Each command its own id (the log commits a command id once).
    let meta = || CommandMetadata::new(Actor::Engine("engine-1".into()));
    let batches = CommandHandler::<RecipientBatch>::new(world.log.clone(), ());
    let messages = CommandHandler::<Message>::new(world.log.clone(), ());
    let ids: Vec<MessageId> = (0..5).map(|_| MessageId::new()).collect();
    let recipient = |n: usize| BatchRecipient {
        message_id: ids[n],
        session_id: session,
        to: format!("+62812000000{n}").parse().unwrap(),
        name: Some(format!("Pelanggan {n}")),
        variables: [("kota".to_owned(), "Bandung".to_owned())].into(),
        content: None,
    };
    let message_key = |n: usize| AggregateKey::new(tenant, ids[n]).unwrap();
    messages
        .create(
            &message_key(3),
            MessageCommand::QueueMessage {
                message_id: ids[3],
                campaign_id: campaign,
                session_id: session,
                phone: recipient(3).to.phone().cloned().unwrap(),
                name: Some("Queued alone".to_owned()),
                variables: Default::default(),
                at,
            },
            &meta(),
        )
        .await
        .unwrap()
        .expect("queued");
    for (index, recipients) in [(0, vec![0, 1, 2]), (1, vec![3, 4])] {
        batches
            .create(
                &AggregateKey::new(tenant, batch_id(campaign, index)).unwrap(),
                RecipientBatchCommand::QueueRecipients {
                    campaign_id: campaign,
                    index,
                    recipients: recipients.into_iter().map(recipient).collect(),
                    at,
                },
                &meta(),
            )
            .await
            .unwrap()
            .expect("queued");
    }
    let projector = Projector::new(world.pool.clone(), world.log.clone());
    projector.catch_up().await.unwrap();
    let statuses = async || -> Vec<(String, String, String)> {
        sqlx::query_as(
            "select phone, coalesce(name, ''), status from messages where campaign_id = $1 order by phone",
        )
        .bind(campaign.as_uuid())
        .fetch_all(&world.pool)
        .await
        .unwrap()
    };
    let counts = async || -> (i64, i64, i64, i64) {
        sqlx::query_as(
            "select queued, sent, cancelled, points_spent from campaign_message_counts where campaign_id = $1",
        )
        .bind(campaign.as_uuid())
        .fetch_one(&world.pool)
        .await
        .unwrap()
    };
    assert_eq!(
        statuses()
            .await
            .iter()
            .map(|(_, _, s)| s.as_str())
            .collect::<Vec<_>>(),
        ["queued"; 5],
        "a row per recipient before any message has a history of its own"
    );
    assert_eq!(
        statuses().await[3].1,
        "Queued alone",
        "a message queued alone keeps its row"
    );
    assert_eq!(counts().await, (5, 0, 0, 0), "each recipient counted once");

    // Act: recipient 0 sent (its first commit with its start), recipient 1
    // cancelled (its first commit), recipient 4 started.
    let batch = batches
        .load(&AggregateKey::new(tenant, batch_id(campaign, 0)).unwrap())
        .await
        .unwrap()
        .aggregate;
    let queued: Vec<QueuedMessage> = batch.messages().collect();
    let from_batch = |n: usize, command| MessageCommand::FromBatch {
        queued: Box::new(queued[n].clone()),
        command: Box::new(command),
    };
    let start = MessageCommand::StartSending {
        session_id: session,
        attempt: 1,
        text: None,
        provider_message_id: None,
        at,
    };
    let start_with_text = MessageCommand::StartSending {
        session_id: session,
        attempt: 1,
        text: Some("Halo Budi, promo!".to_owned()),
        provider_message_id: None,
        at,
    };
    messages
        .execute(&message_key(0), from_batch(0, start_with_text), &meta())
        .await
        .unwrap();
    messages
        .execute(
            &message_key(0),
            MessageCommand::RecordSent {
                attempt: 1,
                provider_message_id: Some("wamid.1".to_owned()),
                cost: Points::PER_MESSAGE,
                at,
            },
            &meta(),
        )
        .await
        .unwrap();
    messages
        .execute(
            &message_key(1),
            from_batch(1, MessageCommand::CancelMessage { at }),
            &meta(),
        )
        .await
        .unwrap();
    let second = batches
        .load(&AggregateKey::new(tenant, batch_id(campaign, 1)).unwrap())
        .await
        .unwrap()
        .aggregate;
    let last = second.messages().nth(1).unwrap();
    messages
        .execute(
            &message_key(4),
            MessageCommand::FromBatch {
                queued: Box::new(last),
                command: Box::new(start),
            },
            &meta(),
        )
        .await
        .unwrap();
    projector.catch_up().await.unwrap();

    // Assert
    let rows = statuses().await;
    let status: Vec<&str> = rows.iter().map(|(_, _, s)| s.as_str()).collect();
    assert_eq!(status, ["sent", "cancelled", "queued", "queued", "sending"]);
    assert_eq!(counts().await, (2, 1, 1, 2));
    let texts: Vec<Option<String>> =
        sqlx::query_scalar("select text from messages where campaign_id = $1 order by phone")
            .bind(campaign.as_uuid())
            .fetch_all(&world.pool)
            .await
            .unwrap();
    assert_eq!(
        texts.iter().filter(|t| t.is_some()).collect::<Vec<_>>(),
        [&Some("Halo Budi, promo!".to_owned())],
        "the attempt's text is on its message, and only there"
    );
    assert_eq!(
        messages
            .load(&message_key(0))
            .await
            .unwrap()
            .aggregate
            .phone()
            .map(|p| p.as_str().to_owned()),
        Some(recipient(0).to.as_str().to_owned()),
        "the message's history starts with what its batch queued"
    );

    // Rebuilt from zero (each batch and the first commits of its messages
    // in one pass): the very same rows.
    let live = dump(&world.pool).await;
    wablast_projections::rebuild::rebuild(&world.pool, &world.log, &["messages"], None)
        .await
        .unwrap();
    assert_same(&live, &dump(&world.pool).await);
}
