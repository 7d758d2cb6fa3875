//! Helpers shared by the tests that run against the real services: a fresh
//! PostgreSQL database per test, a unique NATS prefix per test (and clean-up
//! of its streams), a private nats-server for tests that stop it,
//! polling for eventually consistent answers, and a local HTTP server
//! standing in for a driver's peer ([`peer`]: WAHA, the Cloud API), and
//! a local Midtrans ([`midtrans`]), a fake WhatsApp server for the native
//! driver ([`native_fake`]).
//!
//! The end-to-end tests themselves are in `tests/e2e/`.

pub mod history;
pub mod midtrans;
pub mod native_fake;
pub mod peer;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection};

/// The URL of `database` on the PostgreSQL server the tests use: that of
/// `DATABASE_URL` (default the local one, without TLS), its query
/// (`sslmode` and such) kept.
pub fn postgres_url(database: &str) -> String {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        "postgres://postgres@127.0.0.1:5432/wablast?sslmode=disable".to_owned()
    });
    let (without_query, query) = match url.split_once('?') {
        Some((url, query)) => (url, format!("?{query}")),
        None => (url.as_str(), String::new()),
    };
    // The server: the URL without its database name.
    let server = match without_query.rfind('/') {
        Some(slash) if slash > "postgres://".len() => &without_query[..slash],
        _ => without_query,
    };
    format!("{server}/{database}{query}")
}

/// The NATS server the tests use (`NATS_URL`, default the local one).
pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// A prefix no other test uses (`WABLAST_NATS_PREFIX`).
pub fn unique_prefix() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
}

/// A database of the test's own, dropped with it.
pub struct TestDatabase {
    /// Its URL.
    pub url: String,
    name: String,
}

impl TestDatabase {
    /// A name and URL for a database that does not exist yet (for tests of
    /// the code that creates it).
    pub fn planned() -> Self {
        let name = format!("wablast_test_{}", uuid::Uuid::new_v4().simple());
        Self {
            url: postgres_url(&name),
            name,
        }
    }

    /// A new, empty database.
    pub async fn create() -> Self {
        let db = Self::planned();
        let mut admin = admin_connection().await;
        // The name is ours: `wablast_test_` and hex digits.
        sqlx::raw_sql(AssertSqlSafe(format!("create database {}", db.name)))
            .execute(&mut admin)
            .await
            .expect("test database created");
        db
    }
}

async fn admin_connection() -> PgConnection {
    PgConnection::connect(&postgres_url("postgres"))
        .await
        .expect("PostgreSQL reachable (run scripts/services.sh)")
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        block_on_own_runtime(async move {
            let mut admin = admin_connection().await;
            let _ = sqlx::raw_sql(AssertSqlSafe(format!(
                "drop database if exists {name} with (force)"
            )))
            .execute(&mut admin)
            .await;
        });
    }
}

/// Deletes every stream whose name starts with `<prefix>_`, and the KV
/// buckets `<prefix>_*` (what a test's event log created). Blocking: for
/// `Drop`.
pub fn delete_streams(nats_url: &str, prefix: &str) {
    let url = nats_url.to_owned();
    let start = format!("{prefix}_");
    let kv_start = format!("KV_{prefix}_");
    block_on_own_runtime(async move {
        use futures::StreamExt;
        let Ok(client) = async_nats::connect(&url).await else {
            return;
        };
        let js = async_nats::jetstream::new(client);
        let names: Vec<String> = js
            .stream_names()
            .filter_map(|n| async move { n.ok() })
            .collect()
            .await;
        for name in names
            .into_iter()
            .filter(|n| n.starts_with(&start) || n.starts_with(&kv_start))
        {
            let _ = js.delete_stream(&name).await;
        }
    });
}

/// Runs a future to completion on a runtime of its own, in a thread of its
/// own, so it can be called from `Drop` inside or outside a runtime.
fn block_on_own_runtime(future: impl Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(future);
    })
    .join();
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A nats-server with JetStream of the test's own, storing in `store`, on
/// `port` (or a free one). Killed on drop.
pub struct PrivateNats {
    child: Child,
    /// Its port.
    pub port: u16,
}

impl PrivateNats {
    /// Starts it and waits until it listens.
    pub fn start(store: &Path, port: Option<u16>) -> Self {
        let port = port.unwrap_or_else(free_port);
        let child = Command::new(nats_server_binary())
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        wait_listening(port);
        Self { child, port }
    }
}

/// A current nats-server (2.10 or newer): the one scripts/test.sh passes
/// (`WABLAST_NATS_SERVER`), else the one scripts/services.sh pip-installs
/// into .data/nats-venv, else the system's.
pub fn nats_server_binary() -> String {
    std::env::var("WABLAST_NATS_SERVER")
        .into_iter()
        .filter(|b| !b.is_empty())
        .chain(
            [
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../.data/nats-venv/bin/nats-server"
                ),
                "nats-server",
                "/usr/sbin/nats-server",
                "/usr/bin/nats-server",
            ]
            .map(String::from),
        )
        .find(|b| Command::new(b).arg("--version").output().is_ok())
        .expect("nats-server installed (scripts/services.sh installs it)")
}

fn wait_listening(port: u16) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nats-server did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A cluster of three nats-servers with JetStream of the test's own, on
/// loopback ports, routed to each other, each storing under `store`. Each
/// node can be killed (kill -9) and started again on its port and store.
/// Killed on drop.
pub struct NatsCluster {
    store: std::path::PathBuf,
    name: String,
    /// Client port and cluster (route) port of each node.
    ports: Vec<(u16, u16)>,
    nodes: Vec<Option<Child>>,
}

impl NatsCluster {
    /// Starts the three nodes and waits until each listens.
    pub fn start(store: &Path) -> Self {
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let mut cluster = Self {
            store: store.to_owned(),
            name: format!("c{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            ports,
            nodes: vec![None, None, None],
        };
        for node in 0..3 {
            cluster.start_node(node);
        }
        cluster
    }

    /// Starts node `node` (again), on its ports and store.
    pub fn start_node(&mut self, node: usize) {
        assert!(self.nodes[node].is_none(), "node {node} runs already");
        let (port, cluster_port) = self.ports[node];
        let routes = self
            .ports
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != node)
            .map(|(_, (_, route))| format!("nats://127.0.0.1:{route}"))
            .collect::<Vec<_>>()
            .join(",");
        let child = Command::new(nats_server_binary())
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js"])
            .args(["-n", &format!("{}-n{node}", self.name)])
            .args(["--cluster_name", &self.name])
            .args(["--cluster", &format!("nats://127.0.0.1:{cluster_port}")])
            .args(["--routes", &routes])
            .arg("-sd")
            .arg(self.store.join(format!("n{node}")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.nodes[node] = Some(child);
        wait_listening(port);
    }

    /// Kills node `node` (kill -9).
    pub fn kill_node(&mut self, node: usize) {
        if let Some(mut child) = self.nodes[node].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Every node's URL, comma-separated (as `NATS_URL` takes them).
    pub fn urls(&self) -> String {
        (0..3).map(|n| self.url(n)).collect::<Vec<_>>().join(",")
    }

    /// One node's URL.
    pub fn url(&self, node: usize) -> String {
        format!("nats://127.0.0.1:{}", self.ports[node].0)
    }

    /// Waits until the cluster has a JetStream meta leader (streams can be
    /// created).
    pub async fn ready(&self) {
        let client = async_nats::connect(self.url(0))
            .await
            .expect("node 0 answers");
        let js = async_nats::jetstream::new(client);
        let started = Instant::now();
        loop {
            if js.query_account().await.is_ok() {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the NATS cluster elected no JetStream leader"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in 0..3 {
            self.kill_node(node);
        }
    }
}

impl PrivateNats {
    /// Its URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Freezes it (SIGSTOP): its connections stay open and nothing is
    /// answered, as a server that is slow to answer.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Wakes it after [`PrivateNats::pause`] (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill {signal} nats-server");
    }

    /// Stops it; returns its port, to start it again on the same one.
    pub fn stop(mut self) -> u16 {
        self.kill();
        self.port
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` until it returns `Some`, or panics after `timeout`.
pub async fn wait_for<T>(
    what: &str,
    timeout: Duration,
    check: impl AsyncFnMut() -> Option<T>,
) -> T {
    poll_until(what, timeout, Duration::from_millis(50), check).await
}

/// [`wait_for`], asking every `every` (a benchmark timing what it waits
/// for asks often).
pub async fn poll_until<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(every).await;
    }
}
