//! `TestApp`: one isolated wablast per test.

use std::net::SocketAddr;

use clap::Parser;
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

pub fn settings(database_url: &str, nats_url: &str, prefix: &str) -> Settings {
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
    ])
    .settings
}

pub struct TestApp {
    pub address: SocketAddr,
    pub http: reqwest::Client,
    pub prefix: String,
    nats_url: String,
    shutdown: CancellationToken,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    _db: Option<TestDatabase>,
}

impl TestApp {
    /// A migrated database, the shared NATS server, a unique prefix.
    pub async fn spawn() -> Self {
        let db = TestDatabase::create().await;
        let prefix = unique_prefix();
        let settings = settings(&db.url, &nats_url(), &prefix);
        wablast::migrate(&settings).await.expect("migrations apply");
        Self::start(settings, Some(db)).await
    }

    /// An application with these settings (database managed by the caller).
    pub async fn start(settings: Settings, db: Option<TestDatabase>) -> Self {
        let app = Application::build(&settings)
            .await
            .expect("application builds");
        let address = app.address();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Self {
            address,
            http: reqwest::Client::new(),
            prefix: settings.nats_prefix.clone(),
            nats_url: settings.nats_url.clone(),
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
    }
}
