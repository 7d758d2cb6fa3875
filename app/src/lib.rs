//! The `wablast` binary's library: command line, configuration, telemetry,
//! and the [`Application`] that wires the API (and, as they arrive, the
//! projector and the session engine) to NATS and PostgreSQL.
//!
//! # Layout
//!
//! - [`cli`]: the subcommands.
//! - [`config`]: [`config::Settings`] from environment variables.
//! - [`telemetry`]: tracing set-up.
//! - [`shutdown`]: SIGINT/SIGTERM to a cancellation token.
//! - [`audit`], [`verify`]: the operators' tools over the log.
//! - [`replay`]: `wablast replay`, projections rebuilt with a progress bar.

pub mod audit;
pub mod cli;
pub mod config;
pub mod replay;
pub mod shutdown;
pub mod telemetry;
pub mod verify;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;
use wablast_api::{AppState, Readiness};
use wablast_eventstore::EventLog;
use wablast_session_engine::engine::{Engine, EngineConfig};

use crate::config::Settings;

/// The oldest nats-server wablast is tested with (2.9's KV compare-and-set
/// is not safe after a crash and restart).
const OLDEST_NATS_SERVER: (u64, u64, u64) = (2, 10, 0);

/// Connects to NATS and opens the event log, creating or updating its
/// streams. Refuses a nats-server older than [`OLDEST_NATS_SERVER`].
pub async fn open_event_log(settings: &Settings) -> anyhow::Result<EventLog> {
    let servers = settings.nats_servers();
    anyhow::ensure!(!servers.is_empty(), "NATS_URL names no server");
    let client = async_nats::ConnectOptions::new()
        .name("wablast")
        .connect(servers)
        .await
        .with_context(|| format!("cannot connect to NATS at {}", settings.nats_url))?;
    let version = client.server_info().version;
    if !nats_server_supported(&version) {
        let (major, minor, patch) = OLDEST_NATS_SERVER;
        anyhow::bail!(
            "nats-server {version} (at {}) is older than {major}.{minor}.{patch}, the oldest \
             wablast is tested with; see README",
            settings.nats_url
        );
    }
    EventLog::open(client, settings.event_log()?)
        .await
        .with_context(|| {
            format!(
                "cannot open the event log on {} (is JetStream enabled?)",
                settings.nats_url
            )
        })
}

/// Whether a nats-server of `version` (as its INFO says) is one wablast
/// runs on: [`OLDEST_NATS_SERVER`] or newer.
fn nats_server_supported(version: &str) -> bool {
    parse_version(version).is_some_and(|v| v >= OLDEST_NATS_SERVER)
}

/// `(major, minor, patch)` of `2.10.3`, `v2.11.0-beta.2` (suffixes ignored;
/// a missing minor or patch is 0).
fn parse_version(version: &str) -> Option<(u64, u64, u64)> {
    let mut parts = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .map(|part| {
            let end = part
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(part.len());
            part[..end].parse::<u64>().ok()
        });
    let major = parts.next()??;
    let minor = parts.next().unwrap_or(Some(0))?;
    let patch = parts.next().unwrap_or(Some(0))?;
    Some((major, minor, patch))
}

/// A pool for the query tables. Connections are made on demand, so the API
/// starts (and says it is not ready) while PostgreSQL is away.
pub fn database_pool(settings: &Settings) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(&settings.database_url)
        .context("invalid DATABASE_URL")
}

/// Creates the database if missing and applies pending migrations.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    if wablast_migrations::ensure_database(&settings.database_url)
        .await
        .context("cannot reach PostgreSQL to create the database")?
    {
        info!("database created");
    }
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&settings.database_url)
        .await
        .context("cannot connect to PostgreSQL")?;
    wablast_migrations::run(&pool)
        .await
        .context("migrations failed")?;
    pool.close().await;
    info!("migrations applied");
    Ok(())
}

/// Runs a session engine until `shutdown` (`wablast engine`).
pub async fn run_engine(settings: &Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    run_engine_with(settings, settings.engine()?, shutdown).await
}

/// Runs a session engine configured as `config` until `shutdown`.
pub async fn run_engine_with(
    settings: &Settings,
    config: EngineConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let log = open_event_log(settings).await?;
    let db = database_pool(settings)?;
    let engine = Engine::new(config, log.jetstream().client(), log, db.clone())
        .await
        .context("the session engine cannot start")?;
    let result = engine.run(shutdown).await;
    db.close().await;
    result.context("session engine stopped")
}

/// Creates the platform admin from `WABLAST_ADMIN_EMAIL` /
/// `WABLAST_ADMIN_PASSWORD` when both are set (its password is reset to the
/// configured one when it exists).
pub async fn bootstrap_admin(settings: &Settings, required: bool) -> anyhow::Result<()> {
    let (Some(email), Some(password)) = (&settings.admin_email, &settings.admin_password) else {
        anyhow::ensure!(
            !required,
            "set WABLAST_ADMIN_EMAIL and WABLAST_ADMIN_PASSWORD (or --admin-email and --admin-password)"
        );
        return Ok(());
    };
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&settings.database_url)
        .await
        .context("cannot connect to PostgreSQL")?;
    let done = wablast_api::auth::accounts::ensure_admin(
        &pool,
        email,
        secrecy::ExposeSecret::expose_secret(password),
    )
    .await;
    pool.close().await;
    match done? {
        wablast_api::auth::accounts::AdminBootstrap::Created => {
            info!(%email, "platform admin created")
        }
        wablast_api::auth::accounts::AdminBootstrap::PasswordUpdated => {
            info!(%email, "platform admin exists; password set from configuration")
        }
    }
    Ok(())
}

/// A running wablast: the HTTP API bound to its listener.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Connects to NATS and PostgreSQL and binds the listener (port 0 picks
    /// a free port: see [`Application::address`]).
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let log = open_event_log(settings).await?;
        let db = database_pool(settings)?;
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let mut api = settings.api()?;
        if settings.public_url.is_none() {
            // Port 0 picked a free port: that is where drivers reach us.
            api.public_url = Some(format!("http://{}", listener.local_addr()?));
        }
        let mut state = AppState::new(db, log, api, &settings.jwt_secret());
        state.readiness = Readiness {
            max_lag: settings.ready_max_lag,
            max_lag_age: Duration::from_secs(settings.ready_max_lag_seconds),
        };
        Ok(Self { listener, state })
    }

    /// Where the API listens.
    pub fn address(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// The query tables' pool.
    pub fn database(&self) -> &PgPool {
        &self.state.db
    }

    /// The event log.
    pub fn event_log(&self) -> &EventLog {
        &self.state.log
    }

    /// Serves the API and runs every projection until `shutdown` is
    /// cancelled. A projection that cannot go on stops the whole process
    /// (loudly, with the event it stopped at) rather than serve reads that
    /// silently stopped moving.
    pub async fn run_with_projector(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.run_all(None, shutdown).await
    }

    /// Serves the API and runs every projection and, given its
    /// configuration, a session engine, until `shutdown` is cancelled
    /// (`wablast all`). A projection or an engine that cannot go on stops
    /// the whole process.
    pub async fn run_all(
        self,
        engine: Option<EngineConfig>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let db = self.state.db.clone();
        let projector = wablast_projections::Projector::new(db.clone(), self.state.log.clone());
        let stop = shutdown.clone();
        let projecting = tokio::spawn(async move {
            let result = projector.run(stop.clone()).await;
            if result.is_err() {
                stop.cancel();
            }
            result
        });
        let engine = match engine {
            Some(config) => {
                let log = self.state.log.clone();
                let client = log.jetstream().client();
                let engine = Engine::new(config, client, log, db.clone())
                    .await
                    .context("the session engine cannot start")?;
                let stop = shutdown.clone();
                Some(tokio::spawn(async move {
                    let result = engine.run(stop.clone()).await;
                    if result.is_err() {
                        stop.cancel();
                    }
                    result
                }))
            }
            None => None,
        };
        let serving = self.serve(shutdown).await;
        let projected = projecting.await.context("projector task failed")?;
        let engined = match engine {
            Some(task) => task
                .await
                .context("engine task failed")?
                .map_err(anyhow::Error::from),
            None => Ok(()),
        };
        db.close().await;
        projected.context("projector stopped")?;
        engined.context("session engine stopped")?;
        serving?;
        info!("stopped");
        Ok(())
    }

    /// Serves until `shutdown` is cancelled, then finishes the requests in
    /// flight.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let db = self.state.db.clone();
        self.serve(shutdown).await?;
        db.close().await;
        info!("stopped");
        Ok(())
    }

    async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        info!(address = %self.address(), "API listening");
        let mut state = self.state;
        state.shutdown = shutdown.clone();
        // Orders left waiting for their payment are looked up again at
        // Midtrans (a no-op without Midtrans), by one API process of the
        // fleet at a time (an advisory lock); the others stand by. Who may
        // act is loaded and followed from the log before the first request
        // needs it.
        state.access.start();
        tokio::spawn(
            state
                .payments
                .as_ref()
                .clone()
                .run(state.config.payments_recheck, shutdown.clone()),
        );
        // The peer address reaches the handlers: rate limits per client.
        let app = wablast_api::router(state).into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .context("HTTP server failed")
    }
}

#[cfg(test)]
mod tests {
    use super::{nats_server_supported, parse_version};

    #[test]
    fn versions_parse_to_major_minor_patch() {
        assert_eq!(parse_version("2.9.10"), Some((2, 9, 10)));
        assert_eq!(parse_version("2.15.1"), Some((2, 15, 1)));
        assert_eq!(parse_version("v2.10.0"), Some((2, 10, 0)));
        assert_eq!(parse_version("2.11.0-beta.2"), Some((2, 11, 0)));
        assert_eq!(parse_version("2.12-RC"), Some((2, 12, 0)));
        assert_eq!(parse_version("3"), Some((3, 0, 0)));
        assert_eq!(parse_version(""), None);
        assert_eq!(parse_version("dev"), None);
        assert_eq!(parse_version("2.x.1"), None);
    }

    #[test]
    fn nats_server_older_than_2_10_is_refused() {
        assert!(!nats_server_supported("2.9.10"));
        assert!(!nats_server_supported("2.9.25"));
        assert!(!nats_server_supported("1.4.1"));
        assert!(!nats_server_supported(""));
        assert!(nats_server_supported("2.10.0"));
        assert!(nats_server_supported("2.10.0-beta.1"));
        assert!(nats_server_supported("2.15.1"));
        assert!(nats_server_supported("3.0.0"));
    }
}
