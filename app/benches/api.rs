//! API latency under a steady load: the real `wablast all` binary (API,
//! projector, session engine) on loopback against the local PostgreSQL and NATS, driven
//! open-loop at a fixed rate by a Rust client.
//!
//! `cargo bench -p wablast --bench api` prints, for a read endpoint
//! (`GET /api/v1/campaigns`) and a command endpoint (`POST
//! /api/v1/campaigns`): requests/s achieved, p50/p90/p99/max latency and
//! errors, against the API's latency targets (p99 < 10 ms for reads, < 25 ms
//! for commands at 200 requests/s).
//!
//! Open loop: request `i` is sent at `start + i / rate` whatever the
//! previous ones did, and its latency is counted from that planned instant,
//! so a stall shows up in the figures instead of silently lowering the
//! rate (no coordinated omission).
//!
//! Knobs: `BENCH_RATE` (requests/s, default 200), `BENCH_SECONDS` (per
//! endpoint, default 20).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use wablast_tests::{TestDatabase, delete_streams, free_port, nats_url, unique_prefix};

const ADMIN_EMAIL: &str = "bench-admin@wablast.test";
const ADMIN_PASSWORD: &str = "bench-admin-password";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct System {
    child: Child,
    base: String,
    prefix: String,
    data_dir: std::path::PathBuf,
    _db: TestDatabase,
}

impl Drop for System {
    fn drop(&mut self) {
        // SIGTERM for a graceful stop, then make sure.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        delete_streams(&nats_url(), &self.prefix);
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

async fn start_system() -> System {
    let db = TestDatabase::planned();
    let prefix = unique_prefix();
    let listen = format!("127.0.0.1:{}", free_port());
    let data_dir = std::env::temp_dir().join(format!("wablast-bench-{prefix}"));
    let child = Command::new(env!("CARGO_BIN_EXE_wablast"))
        .arg("all")
        .env("DATABASE_URL", &db.url)
        .env("NATS_URL", nats_url())
        .env("WABLAST_NATS_PREFIX", &prefix)
        .env("WABLAST_LISTEN", &listen)
        .env("WABLAST_DATA_DIR", &data_dir)
        .env("WABLAST_JWT_SECRET", "bench secret")
        .env("WABLAST_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("WABLAST_ADMIN_PASSWORD", ADMIN_PASSWORD)
        // The load is the point: no limiter in the way.
        .env("WABLAST_RATE_LIMIT_PER_KEY", "1000000")
        .env("WABLAST_RATE_LIMIT_PER_IP", "1000000")
        .env("RUST_LOG", "warn")
        .env("WABLAST_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("wablast starts");
    let system = System {
        child,
        base: format!("http://{listen}"),
        prefix,
        data_dir,
        _db: db,
    };
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(response) = http.get(format!("{}/readyz", system.base)).send().await
            && response.status() == StatusCode::OK
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "wablast all did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    system
}

/// A client of one tenant.
struct Tenant {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Tenant {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }
}

async fn login(http: &reqwest::Client, base: &str, email: &str, password: &str) -> String {
    let body: Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("login sent")
        .json()
        .await
        .expect("login answer");
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("login failed: {body}"))
        .to_owned()
}

/// A tenant with a plan, a session and a contact list: what creating a
/// campaign needs.
async fn prepare(system: &System) -> (Tenant, Value) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("client");
    let registered: Value = http
        .post(format!("{}/api/v1/auth/register", system.base))
        .json(&json!({"email": "bench@example.test", "password": "bench-password", "organization": "Bench"}))
        .send()
        .await
        .expect("register sent")
        .json()
        .await
        .expect("register answer");
    let tenant_id = registered["tenant"]["id"]
        .as_str()
        .expect("tenant")
        .to_owned();
    let tenant = Tenant {
        http: http.clone(),
        base: system.base.clone(),
        token: registered["access_token"]
            .as_str()
            .expect("token")
            .to_owned(),
    };
    let admin = Tenant {
        http: http.clone(),
        base: system.base.clone(),
        token: login(&http, &system.base, ADMIN_EMAIL, ADMIN_PASSWORD).await,
    };

    let (status, plan) = admin
        .call(
            reqwest::Method::POST,
            "/api/v1/admin/plans",
            Some(json!({"name": "Bench", "period_days": 30, "points": 10_000_000, "max_sessions": 10,
                        "max_recipients_per_campaign": 100_000, "max_daily_limit": 1000, "price": 0})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "plan: {plan}");
    let (status, granted) = admin
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/admin/tenants/{tenant_id}/grant"),
            Some(json!({"plan_id": plan["id"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "grant: {granted}");

    let (status, session) = tenant
        .call(
            reqwest::Method::POST,
            "/api/v1/sessions",
            Some(json!({"name": "Bench sender", "driver": "simulator"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "session: {session}");

    let mut csv = String::from("phone,name,consent\n");
    for i in 0..100 {
        csv.push_str(&format!("0812{:08},Pelanggan {i},yes\n", 10_000_000 + i));
    }
    let form = reqwest::multipart::Form::new()
        .text("name", "Bench list")
        .part(
            "file",
            reqwest::multipart::Part::bytes(csv.into_bytes())
                .file_name("bench.csv")
                .mime_str("text/csv")
                .expect("mime"),
        );
    let list: Value = http
        .post(format!("{}/api/v1/contact-lists/import", system.base))
        .bearer_auth(&tenant.token)
        .multipart(form)
        .send()
        .await
        .expect("import sent")
        .json()
        .await
        .expect("import answer");
    assert_eq!(list["accepted"], 100, "import: {list}");

    let campaign = json!({
        "name": "Promo",
        "contact_list_id": list["id"],
        "template": "{Halo|Hai} {{name|Kak}}, promo hari ini!",
        "sender_session_ids": [session["id"]],
    });
    (tenant, campaign)
}

struct Figures {
    sent: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Figures {
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * (self.latencies.len() - 1) as f64).round() as usize;
        self.latencies[rank]
    }

    fn print(&self, what: &str, target_p99: Duration) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let p99 = self.percentile(99.0);
        println!(
            "{what}: {} requests in {:.1} s = {:.0} req/s, errors {}; latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.sent,
            self.elapsed.as_secs_f64(),
            self.sent as f64 / self.elapsed.as_secs_f64(),
            self.errors,
            ms(self.percentile(50.0)),
            ms(self.percentile(90.0)),
            ms(p99),
            ms(self.latencies.last().copied().unwrap_or_default()),
        );
        println!(
            "  target p99 < {:.0} ms: {}",
            ms(target_p99),
            if p99 < target_p99 && self.errors == 0 {
                "PASS"
            } else {
                "MISS"
            }
        );
    }
}

/// Sends `rate × seconds` requests made by `make`, open-loop.
async fn drive<F, Fut>(rate: u64, seconds: u64, make: F) -> Figures
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let total = (rate * seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let planned = start + interval * i as u32;
        tokio::time::sleep_until(planned).await;
        let request = make(i);
        tasks.push(tokio::spawn(async move {
            let ok = request.await;
            (ok, planned.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut errors = 0;
    for task in tasks {
        let (ok, latency) = task.await.expect("request task");
        if !ok {
            errors += 1;
        }
        latencies.push(latency);
    }
    let elapsed = start.elapsed();
    latencies.sort();
    Figures {
        sent: total,
        errors,
        elapsed,
        latencies,
    }
}

// The binary's allocator, so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let rate = env_number("BENCH_RATE", 200).max(1);
    let seconds = env_number("BENCH_SECONDS", 20).max(1);
    println!(
        "-- API latency: `wablast all` on loopback, open loop at {rate} requests/s for {seconds} s per endpoint --"
    );
    let system = start_system().await;
    let (tenant, campaign) = prepare(&system).await;
    let tenant = std::sync::Arc::new(tenant);

    // Warm-up (connections, caches), not counted.
    for _ in 0..50 {
        tenant
            .call(
                reqwest::Method::POST,
                "/api/v1/campaigns",
                Some(campaign.clone()),
            )
            .await;
        tenant
            .call(reqwest::Method::GET, "/api/v1/campaigns?limit=50", None)
            .await;
    }

    let commands = {
        let tenant = tenant.clone();
        drive(rate, seconds, move |_| {
            let tenant = tenant.clone();
            let campaign = campaign.clone();
            async move {
                let (status, _) = tenant
                    .call(reqwest::Method::POST, "/api/v1/campaigns", Some(campaign))
                    .await;
                status == StatusCode::CREATED
            }
        })
        .await
    };
    let reads = {
        let tenant = tenant.clone();
        drive(rate, seconds, move |_| {
            let tenant = tenant.clone();
            async move {
                let (status, body) = tenant
                    .call(reqwest::Method::GET, "/api/v1/campaigns?limit=50", None)
                    .await;
                status == StatusCode::OK
                    && body["items"]
                        .as_array()
                        .is_some_and(|items| items.len() == 50)
            }
        })
        .await
    };

    reads.print(
        "read    GET  /api/v1/campaigns?limit=50",
        Duration::from_millis(10),
    );
    commands.print("command POST /api/v1/campaigns", Duration::from_millis(25));
    println!("  (the projector runs in the same process; no session engine runs)");
    drop(system);
}
