//! Configuration from environment variables (or the matching flags), with
//! defaults that work on a laptop running PostgreSQL and NATS locally.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use wablast_eventstore::{EventLogConfig, EventStoreError, Prefix, Replicas};

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    Pretty,
    /// One JSON object per line, for a log collector.
    Json,
}

/// Settings shared by every subcommand.
#[derive(Clone, Debug, clap::Args)]
pub struct Settings {
    /// PostgreSQL holding the query tables; the database is created if
    /// missing.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/wablast?sslmode=disable"
    )]
    pub database_url: String,

    /// NATS server with JetStream enabled; the servers of a cluster
    /// comma-separated (`nats://n1:4222,nats://n2:4222,nats://n3:4222`):
    /// the client connects to any and moves to another when it goes away.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// Copies of every stream and KV bucket wablast creates: 1 (a single
    /// nats-server) or 3 (a 3-node cluster). Raising it on an existing
    /// installation raises its streams at the next start-up.
    #[arg(long, env = "WABLAST_NATS_REPLICAS", default_value = "1",
          value_parser = Replicas::parse)]
    pub nats_replicas: Replicas,

    /// Prefix of every stream, subject and KV bucket name, so several
    /// installations or test runs can share one NATS server.
    #[arg(long, env = "WABLAST_NATS_PREFIX", default_value = "wablast")]
    pub nats_prefix: String,

    /// Address the HTTP API listens on.
    #[arg(long, env = "WABLAST_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Where WhatsApp drivers' servers (WAHA, the Cloud API) reach this
    /// installation's HTTP API, for their webhooks
    /// (`<public url>/hooks/waha/<session id>`). Unset:
    /// `http://<WABLAST_LISTEN>`.
    #[arg(long, env = "WABLAST_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Log format.
    #[arg(long, env = "WABLAST_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,

    /// Days message events (which hold message content) are kept in the log.
    #[arg(long, env = "WABLAST_MESSAGE_RETENTION_DAYS", default_value_t = 14,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub message_retention_days: u32,

    /// `/readyz` says not ready while a projection is more than this many
    /// commits behind the log.
    #[arg(long, env = "WABLAST_READY_MAX_LAG", default_value_t = 10_000)]
    pub ready_max_lag: u64,

    /// `/readyz` says not ready while the oldest commit a projection has not
    /// applied is older than this many seconds.
    #[arg(long, env = "WABLAST_READY_MAX_LAG_SECONDS", default_value_t = 30)]
    pub ready_max_lag_seconds: u64,

    /// Secret signing access tokens (HS256). Unset: a random one per
    /// process, so tokens do not survive a restart and several API
    /// processes do not accept each other's tokens.
    #[arg(long, env = "WABLAST_JWT_SECRET", hide_env_values = true, value_parser = secret)]
    pub jwt_secret: Option<SecretString>,

    /// How long an access token is valid, in seconds.
    #[arg(long, env = "WABLAST_JWT_TTL_SECONDS", default_value_t = 24 * 3600,
          value_parser = clap::value_parser!(u64).range(60..))]
    pub jwt_ttl_seconds: u64,

    /// The platform admin's email: created (or its password reset) at
    /// start-up together with WABLAST_ADMIN_PASSWORD.
    #[arg(long, env = "WABLAST_ADMIN_EMAIL")]
    pub admin_email: Option<String>,

    /// The platform admin's password.
    #[arg(long, env = "WABLAST_ADMIN_PASSWORD", hide_env_values = true, value_parser = secret)]
    pub admin_password: Option<SecretString>,

    /// Where uploaded media and other local state live.
    #[arg(long, env = "WABLAST_DATA_DIR", default_value = "data")]
    pub data_dir: std::path::PathBuf,

    /// Key encrypting stored driver credentials (AES-256-GCM): 32 bytes as
    /// 64 hex digits or in base64 (`openssl rand -base64 32`). Unset: one is
    /// generated and kept in the data directory (`secret.key`).
    #[arg(long, env = "WABLAST_SECRET_KEY", hide_env_values = true, value_parser = secret)]
    pub secret_key: Option<SecretString>,

    /// Origins allowed to call the API from a browser, comma-separated
    /// (`*` for any). Unset: no CORS headers.
    #[arg(long, env = "WABLAST_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Requests per minute one API key or user may make.
    #[arg(long, env = "WABLAST_RATE_LIMIT_PER_KEY", default_value_t = 1200,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_per_key: u32,

    /// Requests per minute one client address may make.
    #[arg(long, env = "WABLAST_RATE_LIMIT_PER_IP", default_value_t = 3000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_per_ip: u32,

    /// This session engine's id among the installation's engines (default:
    /// a new one per process).
    #[arg(long, env = "WABLAST_ENGINE_ID")]
    pub engine_id: Option<String>,

    /// Seconds a session lease lives without renewal: the longest a dead
    /// engine's sessions wait for another engine to take them over.
    #[arg(long, env = "WABLAST_LEASE_TTL_SECONDS",
          default_value_t = wablast_session_engine::engine::DEFAULT_LEASE_TTL_SECONDS,
          value_parser = clap::value_parser!(u64).range(2..))]
    pub lease_ttl_seconds: u64,

    /// Seconds a stopping engine (SIGTERM) spends handing its sessions to
    /// the other engines before it lets the rest go (0: at once; their
    /// leases are released, and another engine takes them at its next
    /// look). Keep it under the lease TTL.
    #[arg(long, env = "WABLAST_ENGINE_DRAIN_SECONDS", default_value_t = 5)]
    pub engine_drain_seconds: u64,

    /// Milliseconds between two checks of whether a number is on WhatsApp
    /// by one session (plus up to half as long at random), apart from its
    /// sends: bulk checks get numbers banned.
    #[arg(long, env = "WABLAST_NUMBER_CHECK_INTERVAL_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub number_check_interval_ms: u64,

    /// Seconds a ready session may report nothing before the engine
    /// probes it (a stuck connection is restarted).
    #[arg(long, env = "WABLAST_PROBE_AFTER_SECONDS", default_value_t = 180,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub probe_after_seconds: u64,

    /// Seconds a session has to answer the engine's probe.
    #[arg(long, env = "WABLAST_PROBE_TIMEOUT_SECONDS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub probe_timeout_seconds: u64,

    /// The window (seconds) in which an engine counts its sessions'
    /// failures for a failure storm.
    #[arg(long, env = "WABLAST_STORM_WINDOW_SECONDS", default_value_t = 180,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub storm_window_seconds: u64,

    /// A failure storm: more than this share (0–1) of an engine's sessions
    /// failing within the window ...
    #[arg(long, env = "WABLAST_STORM_SHARE", default_value_t = 0.3, value_parser = share)]
    pub storm_share: f64,

    /// ... and at least this many of them.
    #[arg(long, env = "WABLAST_STORM_SESSIONS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub storm_sessions: u64,

    /// Seconds a failure storm holds every send of the engine's sessions.
    #[arg(long, env = "WABLAST_STORM_HOLD_SECONDS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub storm_hold_seconds: u64,

    /// Simulator: a session waiting for a scan links by itself after this
    /// many seconds (unset: only the simulator scan endpoint links it).
    #[arg(long, env = "WABLAST_SIMULATOR_AUTO_SCAN_SECONDS")]
    pub simulator_auto_scan_seconds: Option<u64>,

    /// Simulator: the seed of every simulated outcome.
    #[arg(long, env = "WABLAST_SIMULATOR_SEED", default_value_t = 0)]
    pub simulator_seed: u64,

    /// The Graph API version Cloud API numbers are driven with, unless a
    /// number's `api_base` names its own (`v23.0`).
    #[arg(long, env = "WABLAST_CLOUD_API_VERSION",
          default_value = wablast_session_engine::cloud::DEFAULT_VERSION,
          value_parser = graph_api_version)]
    pub cloud_api_version: String,

    /// Native sessions: the WhatsApp Web websocket they connect to. Only
    /// tests change it (a fake WhatsApp server on this machine); a build
    /// for tests, which skips the check of WhatsApp's certificates,
    /// connects native sessions to a loopback address only.
    #[arg(long, env = "WABLAST_NATIVE_WS_URL",
          default_value = wablast_session_engine::native::driver::WHATSAPP_WEB_WS_URL,
          value_parser = websocket_url)]
    pub native_ws_url: String,

    /// Native sessions: the WhatsApp Web version they announce
    /// (`2.3000.1023456789`); unset: the current one, asked of WhatsApp at
    /// each start.
    #[arg(long, env = "WABLAST_NATIVE_WA_VERSION", value_parser = whatsapp_web_version)]
    pub native_wa_version: Option<(u32, u32, u32)>,

    /// Webhook receivers may be `http` and on loopback or private
    /// addresses (development, tests, an integration inside the same
    /// network). Unset: only `https` receivers on public addresses, so that
    /// a tenant cannot make wablast probe the internal network.
    #[arg(long, env = "WABLAST_WEBHOOK_ALLOW_PRIVATE", default_value_t = false)]
    pub webhook_allow_private: bool,

    /// Seconds a webhook delivery is retried for after its first failure
    /// before it becomes a dead letter.
    #[arg(long, env = "WABLAST_WEBHOOK_RETRY_SECONDS", default_value_t = 24 * 3600,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_retry_seconds: u64,

    /// Milliseconds before the first retry of a failed webhook delivery
    /// (doubling after each further failure, at most an hour, with jitter).
    #[arg(long, env = "WABLAST_WEBHOOK_FIRST_RETRY_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_first_retry_ms: u64,

    /// Milliseconds one webhook attempt may take in all (connecting takes
    /// at most half of it, and at most 5 s).
    #[arg(long, env = "WABLAST_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_timeout_ms: u64,

    /// Midtrans' server key: payments through Midtrans Snap are on when it
    /// is set (checkout answers 422 `payments_not_configured` otherwise).
    /// Signs requests to Midtrans and its notifications; never logged.
    #[arg(long, env = "WABLAST_MIDTRANS_SERVER_KEY", hide_env_values = true, value_parser = secret)]
    pub midtrans_server_key: Option<SecretString>,

    /// Midtrans' client key (for Snap's JavaScript in a browser).
    #[arg(long, env = "WABLAST_MIDTRANS_CLIENT_KEY")]
    pub midtrans_client_key: Option<String>,

    /// Midtrans' production environment; unset or false: the sandbox.
    #[arg(long, env = "WABLAST_MIDTRANS_PRODUCTION", default_value_t = false)]
    pub midtrans_production: bool,

    /// Snap's base URL, overriding the sandbox's or production's (a local
    /// test server).
    #[arg(long, env = "WABLAST_MIDTRANS_SNAP_URL")]
    pub midtrans_snap_url: Option<String>,

    /// The Core API's base URL (the status API), overriding the sandbox's
    /// or production's.
    #[arg(long, env = "WABLAST_MIDTRANS_API_URL")]
    pub midtrans_api_url: Option<String>,

    /// Rupiah one point costs at checkout.
    #[arg(long, env = "WABLAST_TOPUP_PRICE_PER_POINT", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub topup_price_per_point: u64,

    /// Seconds between two looks at the orders still waiting for their
    /// payment (each is looked up at Midtrans once it waited 5 minutes).
    #[arg(long, env = "WABLAST_PAYMENTS_RECHECK_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub payments_recheck_seconds: u64,

    /// The seller receipts name.
    #[arg(long, env = "WABLAST_SELLER_NAME", default_value = "wablast")]
    pub seller_name: String,

    /// A line under the seller's name on receipts (address, tax id).
    #[arg(long, env = "WABLAST_SELLER_DETAILS", default_value = "")]
    pub seller_details: String,

    /// The tax included in prices, in percent (receipts show its share).
    #[arg(long, env = "WABLAST_TAX_PERCENT", default_value_t = 11,
          value_parser = clap::value_parser!(u32).range(0..=100))]
    pub tax_percent: u32,

    /// Seconds a webhook's receiver may fail every delivery before the
    /// subscription is disabled.
    #[arg(long, env = "WABLAST_WEBHOOK_DISABLE_AFTER_SECONDS", default_value_t = 3 * 24 * 3600,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_disable_after_seconds: u64,
}

impl Settings {
    /// How webhooks are delivered.
    pub fn webhooks(&self) -> wablast_workflows::webhooks::WebhookOptions {
        let defaults = wablast_workflows::webhooks::WebhookOptions::default();
        let timeout = Duration::from_millis(self.webhook_timeout_ms);
        let seconds =
            |s: u64| chrono::TimeDelta::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000));
        wablast_workflows::webhooks::WebhookOptions {
            allow_private: self.webhook_allow_private,
            timeout,
            connect_timeout: defaults.connect_timeout.min(timeout / 2),
            retry: wablast_eventstore::Backoff::new(
                Duration::from_millis(self.webhook_first_retry_ms),
                Duration::from_secs(3600).max(Duration::from_millis(self.webhook_first_retry_ms)),
            ),
            give_up_after: seconds(self.webhook_retry_seconds),
            disable_after: seconds(self.webhook_disable_after_seconds),
            ..defaults
        }
    }

    /// The API's settings. Reads (or creates) the data directory's key when
    /// `WABLAST_SECRET_KEY` is unset.
    pub fn api(&self) -> anyhow::Result<wablast_api::ApiConfig> {
        let mut config = wablast_api::ApiConfig::for_data_dir(&self.data_dir);
        config.secret_key = self.credentials_key()?;
        config.token_ttl = Duration::from_secs(self.jwt_ttl_seconds);
        config.cors_origins = self
            .cors_origins
            .iter()
            .map(|o| o.trim().to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        config.rate_limit_per_key = self.rate_limit_per_key;
        config.rate_limit_per_ip = self.rate_limit_per_ip;
        config.webhooks = self.webhooks();
        config.public_url = Some(self.public_url()?);
        config.midtrans = self.midtrans()?;
        config.topup_pricing = wablast_workflows::payments::TopUpPricing {
            price_per_point: self.topup_price_per_point,
            ..Default::default()
        };
        config.payments_recheck = wablast_workflows::payments::RecheckOptions {
            every: Duration::from_secs(self.payments_recheck_seconds),
            ..Default::default()
        };
        config.seller = wablast_api::receipt::Seller {
            name: self.seller_name.clone(),
            details: self.seller_details.clone(),
            tax_percent: self.tax_percent,
        };
        Ok(config)
    }

    /// Midtrans, when its server key is set: the sandbox's or production's
    /// URLs unless overridden, notifications to
    /// `<public url>/hooks/midtrans`.
    pub fn midtrans(
        &self,
    ) -> anyhow::Result<Option<wablast_workflows::payments::midtrans::MidtransConfig>> {
        let Some(server_key) = &self.midtrans_server_key else {
            return Ok(None);
        };
        anyhow::ensure!(
            !server_key.expose_secret().trim().is_empty(),
            "WABLAST_MIDTRANS_SERVER_KEY is empty"
        );
        let mut config = wablast_workflows::payments::midtrans::MidtransConfig::new(
            server_key.clone(),
            self.midtrans_production,
        );
        config.client_key = self.midtrans_client_key.clone();
        let base = |name: &str, text: &str| -> anyhow::Result<url::Url> {
            let url = url::Url::parse(text.trim())
                .map_err(|e| anyhow::anyhow!("{name} is not a URL ({e}): {text:?}"))?;
            anyhow::ensure!(
                matches!(url.scheme(), "http" | "https") && url.host_str().is_some(),
                "{name} must be an http or https URL with a host: {text:?}"
            );
            Ok(url)
        };
        if let Some(url) = &self.midtrans_snap_url {
            config.snap_url = base("WABLAST_MIDTRANS_SNAP_URL", url)?;
        }
        if let Some(url) = &self.midtrans_api_url {
            config.api_url = base("WABLAST_MIDTRANS_API_URL", url)?;
        }
        let public_url = self.public_url()?;
        config.notification_url = Some(format!("{public_url}/hooks/midtrans"));
        config.finish_url = Some(format!("{public_url}/wallet"));
        Ok(Some(config))
    }

    /// The key sealing stored driver credentials: `WABLAST_SECRET_KEY`, or
    /// the data directory's (created when missing). The API seals with it,
    /// the engine opens with it.
    pub fn credentials_key(&self) -> anyhow::Result<[u8; 32]> {
        use anyhow::Context;
        match &self.secret_key {
            Some(text) => parse_key(text.expose_secret()).context(
                "WABLAST_SECRET_KEY must be a 32-byte key: 64 hex digits, or base64 (`openssl rand -base64 32`)",
            ),
            None => data_dir_key(&self.data_dir),
        }
    }

    /// Where the drivers' servers reach the HTTP API: `WABLAST_PUBLIC_URL`,
    /// else `http://<WABLAST_LISTEN>`.
    pub fn public_url(&self) -> anyhow::Result<String> {
        match &self.public_url {
            Some(url) => {
                let parsed = url::Url::parse(url.trim()).map_err(|e| {
                    anyhow::anyhow!("WABLAST_PUBLIC_URL is not a URL ({e}): {url:?}")
                })?;
                anyhow::ensure!(
                    matches!(parsed.scheme(), "http" | "https") && parsed.host_str().is_some(),
                    "WABLAST_PUBLIC_URL must be an http or https URL with a host: {url:?}"
                );
                Ok(parsed.as_str().trim_end_matches('/').to_owned())
            }
            None => Ok(format!("http://{}", self.listen)),
        }
    }

    /// The session engine's settings (the credentials key read or created
    /// as for the API).
    pub fn engine(&self) -> anyhow::Result<wablast_session_engine::engine::EngineConfig> {
        let id = self
            .engine_id
            .clone()
            .unwrap_or_else(|| format!("engine-{}", uuid::Uuid::now_v7().simple()));
        let mut config = wablast_session_engine::engine::EngineConfig::new(id);
        config.lease_ttl = Duration::from_secs(self.lease_ttl_seconds);
        config.drain_timeout = Duration::from_secs(self.engine_drain_seconds);
        // A session whose engine died is looked for at least twice per TTL.
        config.reconcile_every = config.reconcile_every.min(config.lease_ttl / 2);
        config.simulator.seed = self.simulator_seed;
        config.simulator.auto_scan_after =
            self.simulator_auto_scan_seconds.map(Duration::from_secs);
        // Where the API keeps uploads (its `LocalStorage`): campaigns'
        // attachments are read from there.
        config.send.media_dir = Some(self.data_dir.join("media"));
        config.secret_key = Some(wablast_workflows::credentials::SecretKey::new(
            self.credentials_key()?,
        ));
        config.public_url = self.public_url()?;
        config.cloud_api_version = self.cloud_api_version.clone();
        config.native.url = self.native_ws_url.clone();
        config.native.version = self.native_wa_version;
        config.number_check_every = Duration::from_millis(self.number_check_interval_ms);
        config.health = wablast_session_engine::engine::HealthConfig {
            probe_after: Duration::from_secs(self.probe_after_seconds),
            probe_timeout: Duration::from_secs(self.probe_timeout_seconds),
            storm_window: Duration::from_secs(self.storm_window_seconds),
            storm_share: self.storm_share,
            storm_sessions: usize::try_from(self.storm_sessions).unwrap_or(usize::MAX),
            storm_hold: Duration::from_secs(self.storm_hold_seconds),
        };
        config.webhooks = self.webhooks();
        Ok(config)
    }

    /// The token signing secret: configured, or random for this process.
    pub fn jwt_secret(&self) -> Vec<u8> {
        match &self.jwt_secret {
            Some(secret) => secret.expose_secret().as_bytes().to_vec(),
            None => {
                tracing::warn!(
                    "WABLAST_JWT_SECRET is not set: tokens are signed with a random secret and do not survive a restart"
                );
                let mut secret = vec![0u8; 32];
                rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut secret)
                    .expect("the OS random source works");
                secret
            }
        }
    }

    /// The NATS servers of [`Settings::nats_url`], one URL each.
    pub fn nats_servers(&self) -> Vec<String> {
        self.nats_url
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// How the event log is laid out on the NATS server.
    pub fn event_log(&self) -> Result<EventLogConfig, EventStoreError> {
        let retention = Duration::from_secs(u64::from(self.message_retention_days) * 24 * 3600);
        Ok(wablast_workflows::layout::log_config(
            Prefix::parse(&self.nats_prefix)?.with_replicas(self.nats_replicas),
            retention,
        ))
    }
}

/// A Graph API version: `v` and a version number (`v23.0`).
/// A `ws://` or `wss://` URL.
fn websocket_url(text: &str) -> Result<String, String> {
    match url::Url::parse(text.trim()) {
        Ok(url) if matches!(url.scheme(), "ws" | "wss") && url.host().is_some() => {
            Ok(text.trim().to_owned())
        }
        _ => Err(format!("not a ws:// or wss:// URL: {text:?}")),
    }
}

/// A WhatsApp Web version: three numbers joined by dots.
fn whatsapp_web_version(text: &str) -> Result<(u32, u32, u32), String> {
    let parts: Vec<Option<u32>> = text.trim().split('.').map(|p| p.parse().ok()).collect();
    match parts[..] {
        [Some(major), Some(minor), Some(patch)] => Ok((major, minor, patch)),
        _ => Err(format!(
            "not a WhatsApp Web version (like 2.3000.1023456789): {text:?}"
        )),
    }
}

fn graph_api_version(text: &str) -> Result<String, String> {
    let version = text.trim();
    let well_formed = version.strip_prefix('v').is_some_and(|number| {
        number.split_once('.').is_some_and(|(major, minor)| {
            [major, minor]
                .iter()
                .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
        })
    });
    if well_formed {
        Ok(version.to_owned())
    } else {
        Err(format!("not a Graph API version (like v23.0): {text:?}"))
    }
}

/// A secret from the command line or the environment: kept so that `Debug`
/// (of the settings, in a log or a panic) prints `[REDACTED]`.
fn secret(text: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(text))
}

/// A 32-byte key, written as 64 hex digits or in base64 (the standard
/// alphabet, padded or not: what `openssl rand -base64 32` prints). An even
/// number of hex digits is read as hex.
fn parse_key(text: &str) -> anyhow::Result<[u8; 32]> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const BASE64: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let text = text.trim();
    let bytes = if text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).map_err(|e| anyhow::anyhow!("not hex: {e}"))?
    } else {
        BASE64
            .decode(text)
            .map_err(|e| anyhow::anyhow!("neither 64 hex digits nor base64: {e}"))?
    };
    bytes
        .try_into()
        .map_err(|bytes: Vec<u8>| anyhow::anyhow!("the key is {} bytes, not 32", bytes.len()))
}

/// The key kept in `<data_dir>/secret.key`, created on first use (readable
/// by the owner only).
fn data_dir_key(data_dir: &std::path::Path) -> anyhow::Result<[u8; 32]> {
    use anyhow::Context;
    let path = data_dir.join("secret.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_key(&text).with_context(|| {
            format!(
                "{} is not a 32-byte key (64 hex digits, or base64)",
                path.display()
            )
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("cannot create {}", data_dir.display()))?;
            let mut key = [0u8; 32];
            rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut key)
                .expect("the OS random source works");
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(&path) {
                Ok(mut file) => {
                    std::io::Write::write_all(&mut file, hex::encode(key).as_bytes())?;
                    tracing::info!(path = %path.display(), "generated the key for stored credentials");
                    Ok(key)
                }
                // Another process wrote it first: use theirs.
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                    data_dir_key(data_dir)
                }
                Err(err) => Err(err).with_context(|| format!("cannot write {}", path.display())),
            }
        }
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// A share between 0 and 1.
fn share(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!("a share between 0 and 1, not {value:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes 0, 1, ..., 31.
    fn key() -> [u8; 32] {
        std::array::from_fn(|i| u8::try_from(i).unwrap())
    }

    #[test]
    fn the_graph_api_version_is_v_and_a_version_number() {
        assert_eq!(graph_api_version(" v23.0 "), Ok("v23.0".to_owned()));
        assert_eq!(graph_api_version("v24.1"), Ok("v24.1".to_owned()));
        for wrong in ["23.0", "v23", "v23.", "latest", "v2x.0", ""] {
            assert!(graph_api_version(wrong).is_err(), "{wrong:?}");
        }
    }

    #[test]
    fn debug_never_prints_a_configured_secret() {
        #[derive(clap::Parser)]
        struct Args {
            #[command(flatten)]
            settings: Settings,
        }
        let args = <Args as clap::Parser>::try_parse_from([
            "wablast",
            "--jwt-secret",
            "jwt-secret-value",
            "--admin-password",
            "admin-password-value",
            "--secret-key",
            &hex::encode(key()),
            "--midtrans-server-key",
            "midtrans-server-key-value",
        ])
        .unwrap();
        let printed = format!("{:?}", args.settings);
        let midtrans = format!("{:?}", args.settings.midtrans().unwrap());
        assert!(
            !midtrans.contains("midtrans-server-key-value"),
            "{midtrans}"
        );
        for secret in [
            "midtrans-server-key-value",
            "jwt-secret-value",
            "admin-password-value",
            &hex::encode(key()),
        ] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert_eq!(args.settings.credentials_key().unwrap(), key());
        assert_eq!(args.settings.jwt_secret(), b"jwt-secret-value");
    }

    /// The whole message of an error, its context chain included.
    fn message(err: anyhow::Error) -> String {
        format!("{err:#}")
    }

    #[test]
    fn a_key_is_read_from_64_hex_digits() {
        let hex = hex::encode(key());
        assert_eq!(parse_key(&hex).unwrap(), key());
        assert_eq!(parse_key(&hex.to_uppercase()).unwrap(), key());
        assert_eq!(parse_key(&format!(" {hex}\n")).unwrap(), key());
    }

    #[test]
    fn a_key_is_read_from_base64_with_or_without_padding() {
        use base64::Engine as _;
        let padded = base64::engine::general_purpose::STANDARD.encode(key());
        assert!(padded.ends_with('='), "{padded}");
        assert_eq!(parse_key(&padded).unwrap(), key());
        assert_eq!(parse_key(padded.trim_end_matches('=')).unwrap(), key());
        // As `openssl rand -base64 32` prints it: with a newline.
        assert_eq!(parse_key(&format!("{padded}\n")).unwrap(), key());
        // A key with `+` and `/`, the standard alphabet's own.
        let mut symbols = [0xfb_u8; 32];
        symbols[0] = 0xff;
        let encoded = base64::engine::general_purpose::STANDARD.encode(symbols);
        assert!(encoded.contains('+') || encoded.contains('/'), "{encoded}");
        assert_eq!(parse_key(&encoded).unwrap(), symbols);
    }

    #[test]
    fn a_key_of_31_or_33_bytes_is_refused_naming_its_length() {
        use base64::Engine as _;
        for bytes in [31, 33] {
            let key = vec![7u8; bytes];
            for text in [
                hex::encode(&key),
                base64::engine::general_purpose::STANDARD.encode(&key),
            ] {
                let err = message(parse_key(&text).unwrap_err());
                assert!(
                    err.contains(&format!("{bytes} bytes, not 32")),
                    "{text}: {err}"
                );
            }
        }
    }

    #[test]
    fn text_that_is_neither_hex_nor_base64_is_refused() {
        for text in ["", "not a key!", "abc"] {
            assert!(parse_key(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn a_configured_key_that_is_wrong_says_what_it_must_be() {
        #[derive(clap::Parser)]
        struct Args {
            #[command(flatten)]
            settings: Settings,
        }
        let short = hex::encode([7u8; 31]);
        let settings =
            <Args as clap::Parser>::parse_from(["wablast", "--secret-key", &short]).settings;
        let err = message(settings.credentials_key().unwrap_err());
        assert!(
            err.contains("WABLAST_SECRET_KEY must be a 32-byte key"),
            "{err}"
        );
        assert!(err.contains("base64"), "{err}");
        assert!(err.contains("31 bytes, not 32"), "{err}");
    }
}
