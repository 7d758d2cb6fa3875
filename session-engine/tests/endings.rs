//! A logout or delete reaches the session's driver's server even when no
//! engine runs the session: an engine on the real JetStream and PostgreSQL,
//! a WAHA session stopped before, a local WAHA server.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wablast_domain::session::{Driver, LoginMethod, SessionCommand, SessionName};
use wablast_domain::types::{DailyLimit, SessionId, TenantId};
use wablast_eventstore::{Actor, CommandMetadata, EventLog, Prefix};
use wablast_session_engine::engine::{Engine, EngineConfig};
use wablast_tests::{TestDatabase, delete_streams, nats_url, unique_prefix, wait_for};
use wablast_workflows::commands::{Commands, key};
use wablast_workflows::credentials::{self, DriverCredentials, SecretKey, WahaCredentials};

use crate::support::{Peer, Reply};

const WAHA_SESSION: &str = "toko-andi";
const API_KEY: &str = "waha-secret-key";

/// An engine running on its own prefix and database.
struct World {
    prefix: String,
    db: PgPool,
    _database: TestDatabase,
    commands: Commands,
    key: SecretKey,
    tenant: TenantId,
    shutdown: CancellationToken,
    engine: tokio::task::JoinHandle<()>,
}

impl World {
    async fn start() -> Self {
        let database = TestDatabase::create().await;
        let db = PgPool::connect(&database.url).await.expect("PostgreSQL");
        wablast_migrations::run(&db).await.expect("migrations");
        let prefix = unique_prefix();
        let client = async_nats::connect(nats_url()).await.expect("NATS is up");
        let log = EventLog::open(
            client.clone(),
            wablast_workflows::layout::log_config(
                Prefix::parse(&prefix).unwrap(),
                Duration::from_secs(3600),
            ),
        )
        .await
        .expect("the event log");
        let key = SecretKey::new([7; 32]);
        let mut config = EngineConfig::new("engine-endings");
        config.lease_ttl = Duration::from_secs(3);
        config.secret_key = Some(key.clone());
        let engine = Engine::new(config, client, log.clone(), db.clone())
            .await
            .expect("an engine");
        let shutdown = CancellationToken::new();
        let running = engine.run(shutdown.clone());
        let engine = tokio::spawn(async move {
            running.await.expect("the engine runs");
        });
        let world = Self {
            prefix,
            db,
            _database: database,
            commands: Commands::new(&log),
            key,
            tenant: TenantId::new(),
            shutdown,
            engine,
        };
        world.endings_listen(&log).await;
        world
    }

    /// Waits until the endings' consumer exists: it takes what comes after.
    async fn endings_listen(&self, log: &EventLog) {
        let stream = log
            .stream(log.stream_name_of("session").unwrap())
            .unwrap()
            .clone();
        wait_for(
            "the endings' consumer",
            Duration::from_secs(20),
            async || stream.consumer_info("session-endings").await.ok(),
        )
        .await;
    }

    /// A WAHA session on `waha`, stopped: no engine runs it.
    async fn stopped_waha_session(&self, waha: &Peer) -> SessionId {
        let session = SessionId::new();
        credentials::store(
            &self.db,
            &self.key,
            self.tenant,
            session,
            &DriverCredentials::Waha(WahaCredentials {
                base_url: waha.base_url.parse().unwrap(),
                api_key: API_KEY.into(),
                session_name: Some(WAHA_SESSION.into()),
            }),
        )
        .await
        .unwrap();
        self.command(
            session,
            SessionCommand::CreateSession {
                session_id: session,
                name: SessionName::parse("CS WAHA").unwrap(),
                driver: Driver::Waha,
                login: LoginMethod::Qr,
                phone_number: None,
                daily_limit: None,
                auto_start: false,
                warm_up: None,
                sessions_in_use: 0,
                plan_max_sessions: 3,
                plan_max_daily_limit: DailyLimit::parse(500).unwrap(),
                at: Utc::now(),
            },
        )
        .await;
        session
    }

    async fn command(&self, session: SessionId, command: SessionCommand) {
        self.commands
            .sessions
            .execute(
                &key(self.tenant, session),
                command,
                &CommandMetadata::new(Actor::System),
            )
            .await
            .expect("the session takes the command");
    }

    async fn stored_credentials(&self, session: SessionId) -> bool {
        credentials::load(&self.db, &self.key, self.tenant, session)
            .await
            .unwrap()
            .is_some()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.engine.abort();
        delete_streams(&nats_url(), &self.prefix);
    }
}

/// A WAHA server that knows the session and answers every request.
async fn waha() -> Peer {
    Peer::start(|request| {
        if request.header("x-api-key") != Some(API_KEY) {
            return Reply::json(401, json!({"message": "Unauthorized"}));
        }
        Reply::json(201, json!({"name": WAHA_SESSION, "status": "STOPPED"}))
    })
    .await
}

#[tokio::test]
async fn a_session_no_engine_runs_is_logged_out_and_deleted_on_its_waha_server() {
    // Arrange: a WAHA session that is not running anywhere.
    let world = World::start().await;
    let server = waha().await;
    let session = world.stopped_waha_session(&server).await;

    // Act: logged out.
    world
        .command(session, SessionCommand::LogoutSession { at: Utc::now() })
        .await;

    // Assert: WAHA stopped and logged it out.
    let logout = [
        "POST /api/sessions/toko-andi/stop",
        "POST /api/sessions/toko-andi/logout",
    ];
    wait_for("WAHA's logout", Duration::from_secs(20), async || {
        (server.routes() == logout).then_some(())
    })
    .await;
    assert!(
        world.stored_credentials(session).await,
        "kept: the session is not deleted"
    );

    // Act: deleted.
    world
        .command(session, SessionCommand::DeleteSession { at: Utc::now() })
        .await;

    // Assert: WAHA forgot it, then so did wablast.
    wait_for("WAHA's delete", Duration::from_secs(20), async || {
        let routes = server.routes();
        (routes.last().map(String::as_str) == Some("DELETE /api/sessions/toko-andi")).then_some(())
    })
    .await;
    wait_for(
        "the credentials gone",
        Duration::from_secs(10),
        async || (!world.stored_credentials(session).await).then_some(()),
    )
    .await;
    assert_eq!(server.routes().len(), 3, "{:?}", server.routes());
}
