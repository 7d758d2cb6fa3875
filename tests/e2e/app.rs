//! `TestApp`: one isolated wablast per test, and a client that speaks its
//! API as a tenant would.

use std::net::SocketAddr;

use clap::Parser;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wablast::Application;
use wablast::config::Settings;
use wablast_tests::{TestDatabase, delete_streams, nats_url, unique_prefix};

/// Settings as the binary would read them, from flags.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    settings: Settings,
}

/// The key every [`TestApp::spawn`]ed application seals credentials with
/// (`WABLAST_SECRET_KEY`).
pub const SECRET_KEY: &str = "0707070707070707070707070707070707070707070707070707070707070707";

/// The admin every [`TestApp::spawn`]ed application bootstraps.
pub const ADMIN_EMAIL: &str = "admin@wablast.test";
/// Its password.
pub const ADMIN_PASSWORD: &str = "admin-password";

pub fn settings(database_url: &str, nats_url: &str, prefix: &str) -> Settings {
    let data_dir = std::env::temp_dir().join(format!("wablast-e2e-{prefix}"));
    Args::parse_from([
        "wablast",
        "--database-url",
        database_url,
        "--nats-url",
        nats_url,
        "--nats-prefix",
        prefix,
        "--listen",
        "127.0.0.1:0",
        "--jwt-secret",
        "e2e secret",
        "--data-dir",
        data_dir.to_str().expect("UTF-8 temp dir"),
        "--secret-key",
        SECRET_KEY,
        "--admin-email",
        ADMIN_EMAIL,
        "--admin-password",
        ADMIN_PASSWORD,
        // Receivers in tests are on localhost.
        "--webhook-allow-private",
    ])
    .settings
}

pub struct TestApp {
    pub address: SocketAddr,
    pub http: reqwest::Client,
    pub prefix: String,
    pub settings: Settings,
    nats_url: String,
    shutdown: CancellationToken,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    _db: Option<TestDatabase>,
}

impl TestApp {
    /// The whole system as `wablast all` runs it (API and projector, admin
    /// bootstrapped) on a migrated database, the shared NATS server and a
    /// unique prefix.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// [`TestApp::spawn`] with settings changed by `configure` first.
    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> Self {
        Self::launch(configure, false).await
    }

    /// Everything `wablast all` runs, the session engine included (with the
    /// simulator as its driver and short leases).
    pub async fn spawn_with_engine() -> Self {
        Self::launch(|settings| settings.lease_ttl_seconds = 5, true).await
    }

    /// [`TestApp::spawn_with_engine`] with settings changed by `configure`.
    pub async fn spawn_engine_with(configure: impl FnOnce(&mut Settings)) -> Self {
        Self::launch(
            |settings| {
                settings.lease_ttl_seconds = 5;
                configure(settings);
            },
            true,
        )
        .await
    }

    async fn launch(configure: impl FnOnce(&mut Settings), engine: bool) -> Self {
        let db = TestDatabase::create().await;
        let prefix = unique_prefix();
        let mut settings = settings(&db.url, &nats_url(), &prefix);
        configure(&mut settings);
        wablast::migrate(&settings).await.expect("migrations apply");
        wablast::bootstrap_admin(&settings, true)
            .await
            .expect("admin bootstrapped");
        let app = Application::build(&settings)
            .await
            .expect("application builds");
        let shutdown = CancellationToken::new();
        let engine = engine.then(|| settings.engine().expect("engine settings"));
        Self::running(app, settings, Some(db), shutdown.clone(), |app| {
            tokio::spawn(app.run_all(engine, shutdown))
        })
    }

    /// The API alone with these settings (database managed by the caller).
    pub async fn start(settings: Settings, db: Option<TestDatabase>) -> Self {
        let app = Application::build(&settings)
            .await
            .expect("application builds");
        let shutdown = CancellationToken::new();
        Self::running(app, settings, db, shutdown.clone(), |app| {
            tokio::spawn(app.run_until_stopped(shutdown))
        })
    }

    fn running(
        app: Application,
        settings: Settings,
        db: Option<TestDatabase>,
        shutdown: CancellationToken,
        run: impl FnOnce(Application) -> JoinHandle<anyhow::Result<()>>,
    ) -> Self {
        let address = app.address();
        let server = run(app);
        Self {
            address,
            http: reqwest::Client::new(),
            prefix: settings.nats_prefix.clone(),
            nats_url: settings.nats_url.clone(),
            settings,
            shutdown,
            server: Some(server),
            _db: db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// Registers a new tenant (its owner) and returns a client acting as it.
    pub async fn tenant(&self, name: &str) -> Client {
        let email = format!(
            "{}-{}@example.test",
            name.to_lowercase().replace(' ', "-"),
            uuid::Uuid::now_v7().simple()
        );
        let response = self
            .http
            .post(self.url("/api/v1/auth/register"))
            .json(&json!({"email": email, "password": "password-of-{name}", "organization": name}))
            .send()
            .await
            .expect("request sent");
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "registration of {name}"
        );
        let body: Value = response.json().await.expect("JSON");
        Client {
            base: format!("http://{}", self.address),
            http: self.http.clone(),
            auth: Auth::Bearer(body["access_token"].as_str().expect("token").to_owned()),
            tenant_id: body["tenant"]["id"].as_str().expect("tenant id").to_owned(),
            email,
            position: Default::default(),
        }
    }

    /// A client acting as the platform admin.
    pub async fn admin(&self) -> Client {
        let response = self
            .http
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), StatusCode::OK, "admin login");
        let body: Value = response.json().await.expect("JSON");
        let mut client = Client {
            base: format!("http://{}", self.address),
            http: self.http.clone(),
            auth: Auth::Bearer(body["access_token"].as_str().expect("token").to_owned()),
            tenant_id: String::new(),
            email: ADMIN_EMAIL.to_owned(),
            position: Default::default(),
        };
        let (status, me) = client.get("/api/v1/me").await;
        assert_eq!(status, StatusCode::OK);
        client.tenant_id = me["tenant"]["id"].as_str().expect("tenant id").to_owned();
        client
    }

    /// Stops the whole system gracefully and starts it again, engine
    /// included, on the same database and log (a new address: clients
    /// need [`Client::at`]).
    pub async fn restart_with_engine(&mut self) {
        self.shutdown.cancel();
        self.server
            .take()
            .expect("running")
            .await
            .expect("server task")
            .expect("stopped cleanly");
        let app = Application::build(&self.settings)
            .await
            .expect("application builds");
        self.address = app.address();
        self.shutdown = CancellationToken::new();
        let engine = Some(self.settings.engine().expect("engine settings"));
        self.server = Some(tokio::spawn(app.run_all(engine, self.shutdown.clone())));
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.server
            .take()
            .expect("running")
            .await
            .expect("server task")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        delete_streams(&self.nats_url, &self.prefix);
        let _ = std::fs::remove_dir_all(&self.settings.data_dir);
    }
}

/// How a [`Client`] authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `X-Api-Key: <key>`.
    ApiKey(String),
    /// Nothing.
    None,
}

/// A tenant's (or the admin's) view of the API: JSON in, status and JSON
/// out. Like a careful client, it remembers the last `X-Wablast-Position`
/// a write answered and sends it with its reads, so they see its writes.
#[derive(Clone, Debug)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
    pub auth: Auth,
    pub tenant_id: String,
    pub email: String,
    pub position: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl Client {
    /// The same caller talking to `app` (after a restart moved it).
    pub fn at(&self, app: &TestApp) -> Self {
        Self {
            base: format!("http://{}", app.address),
            ..self.clone()
        }
    }

    /// The same caller authenticating another way.
    pub fn with_auth(&self, auth: Auth) -> Self {
        Self {
            auth,
            ..self.clone()
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with this client's credentials.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, self.url(path));
        match &self.auth {
            Auth::Bearer(token) => builder.bearer_auth(token),
            Auth::ApiKey(key) => builder.header("x-api-key", key),
            Auth::None => builder,
        }
    }

    /// Sends and reads the answer as JSON (`Value::Null` when empty);
    /// remembers the position a write answered.
    pub async fn send(&self, builder: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = builder.send().await.expect("request sent");
        let status = response.status();
        if let Some(position) = response.headers().get("x-wablast-position") {
            let position = position.to_str().expect("ASCII position").to_owned();
            if position.starts_with("events:") {
                *self.position.lock().unwrap() = Some(position);
            }
        }
        let bytes = response.bytes().await.expect("body read");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, body)
    }

    /// A read that sees this client's earlier writes.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let mut request = self.request(reqwest::Method::GET, path);
        let position = self.position.lock().unwrap().clone();
        if let Some(position) = position {
            request = request.header("x-wablast-position", position);
        }
        self.send(request).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.request(reqwest::Method::POST, path).json(&body))
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.request(reqwest::Method::PUT, path).json(&body))
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.request(reqwest::Method::PATCH, path).json(&body))
            .await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.request(reqwest::Method::DELETE, path)).await
    }

    /// A read that waits (bounded) until the projections reached `position`
    /// (an earlier answer's `X-Wablast-Position`).
    pub async fn get_after(&self, path: &str, position: &str) -> (StatusCode, Value) {
        self.send(
            self.request(reqwest::Method::GET, path)
                .header("x-wablast-position", position),
        )
        .await
    }
}

/// The error code of an error answer.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}
