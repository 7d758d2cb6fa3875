//! The web console: served by the binary beside the API without shadowing
//! it, and driven in a real browser (Debian's Chromium through
//! playwright-core, `console/e2e/*.mjs` with `harness.mjs`) against the whole system
//! with the simulator.
//!
//! The browser test needs Node.js, the console's `node_modules` (`npm ci`
//! in `console/`), Chromium (`/usr/bin/chromium` or `$CHROMIUM`) and a
//! binary built with the console (`npm run build` before `cargo test`);
//! `scripts/test.sh` provides them all. Without them it says so and skips,
//! except under `CI=true`, where it fails.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::app::{Auth, Client, TestApp};
use crate::campaigns::grant_plan;
use wablast::config::Settings;
use wablast_tests::wait_for as until;

pub fn console_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../console")
}

/// Skips the test (returns) with `why`, or fails it under `CI=true`.
pub fn missing(why: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "console browser test: {why} (CI=true: not skipped)"
    );
    eprintln!("console browser test skipped: {why}");
}

/// Whether `/` of `app` is the console (not the page of a binary built
/// without it).
pub async fn console_built(app: &TestApp) -> bool {
    let page = app.get("/").await.text().await.expect("a body");
    page.contains("id=\"root\"")
}

/// `/` is the console (or says how to build it), client routes get its
/// entry page, its files carry their types and cache policies, and the
/// API's paths keep their own answers.
#[tokio::test]
async fn the_console_is_served_beside_the_api_without_shadowing_it() {
    let app = TestApp::spawn().await;

    let root = app.get("/").await;
    assert_eq!(root.status(), StatusCode::OK);
    assert_eq!(
        root.headers()["content-type"],
        "text/html; charset=utf-8",
        "{root:?}"
    );
    assert_eq!(root.headers()["cache-control"], "no-cache");
    let page = root.text().await.unwrap();
    if page.contains("id=\"root\"") {
        // A client route is the same entry page.
        let numbers = app.get("/numbers").await;
        assert_eq!(numbers.status(), StatusCode::OK);
        assert_eq!(numbers.text().await.unwrap(), page);
        // Its script: hashed, immutable, gzipped for a browser.
        let script = page
            .split("src=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the entry page names its script");
        assert!(script.starts_with("/assets/"), "{script}");
        let js = app
            .http
            .get(app.url(script))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(js.status(), StatusCode::OK);
        assert_eq!(
            js.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            js.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(js.headers()["content-encoding"], "gzip");
    } else {
        assert!(page.contains("npm run build"), "{page}");
    }

    // The API's own answers are untouched.
    let unknown = app.get("/api/v1/no-such-thing").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(
        app.get("/assets/gone-0000.js").await.status(),
        StatusCode::NOT_FOUND
    );
    let openapi = app.get("/openapi.json").await;
    assert_eq!(openapi.status(), StatusCode::OK);
    assert!(
        openapi.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(app.get("/docs/").await.status(), StatusCode::OK);
    let (status, _) = app
        .tenant("Toko Budi")
        .await
        .post("/numbers", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "only reads get the console");
}

/// A new owner signs up in the browser, the admin grants a plan, the owner
/// adds a number by QR, the phone scans it (the simulator, through the
/// API) and the card turns ready live; the dashboard shows the number and
/// the points; contacts are uploaded, checked and imported from a group.
/// Screenshots of every page stay in `console/test-results/first-steps/`;
/// any console error of any page fails the test.
#[tokio::test]
async fn a_new_owner_links_a_number_in_the_browser_and_sees_it_ready_live() {
    // Arrange
    let Some((browser, app)) = Browser::with_app(|_| {}).await else {
        return;
    };
    let admin = app.admin().await;
    let email = format!("budi-{}@example.test", uuid::Uuid::now_v7().simple());
    let password = "rahasia-budi-123";
    let mut owner: Option<Client> = None;

    // Act + Assert: the journey, answering its steps.
    browser
        .run(
            &app,
            "first-steps.mjs",
            &[
                ("WABLAST_CONSOLE_EMAIL", &email),
                ("WABLAST_CONSOLE_PASSWORD", password),
            ],
            async |step, data| match step {
                "signed-up" => {
                    let tenant = sign_in(&app, &email, password).await;
                    let plan = plan(&admin).await;
                    grant_plan(&admin, &tenant, &plan).await;
                    owner = Some(tenant);
                }
                "qr-shown" => {
                    let owner = owner.as_ref().expect("signed up first");
                    let id = data["session_id"].as_str().expect("the session's id");
                    scan(owner, id, "+6281200000001").await;
                }
                other => panic!("unknown step {other}"),
            },
        )
        .await;
}

/// What a browser journey needs: Chromium, Node.js and the console's
/// `node_modules`.
pub struct Browser {
    chromium: String,
}

impl Browser {
    /// The browser, or `None` (the test skips; under `CI=true` it fails)
    /// when something it needs is missing.
    pub fn find() -> Option<Self> {
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
        if !std::path::Path::new(&chromium).exists() {
            missing(&format!(
                "no Chromium at {chromium} (apt-get install chromium)"
            ));
            return None;
        }
        if !console_dir().join("node_modules/playwright-core").is_dir() {
            missing("console/node_modules has no playwright-core (npm ci in console/)");
            return None;
        }
        let node_ok = std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success());
        if !node_ok {
            missing("no node on the PATH");
            return None;
        }
        Some(Self { chromium })
    }

    /// The browser and the whole system (its settings changed by
    /// `configure`) serving the console, or `None` (the test skips; under
    /// `CI=true` it fails) when either is missing.
    pub async fn with_app(configure: impl FnOnce(&mut Settings)) -> Option<(Self, TestApp)> {
        let browser = Self::find()?;
        let app = TestApp::spawn_engine_with(configure).await;
        if !console_built(&app).await {
            missing("this binary was built without the console (npm run build in console/)");
            return None;
        }
        Some((browser, app))
    }

    /// Runs the journey `script` (in `console/e2e/`) against `app` with
    /// `env`, answering each of its steps with `on_step` (after which the
    /// journey goes on), and fails unless it succeeds within 4 minutes.
    pub async fn run(
        &self,
        app: &TestApp,
        script: &str,
        env: &[(&str, &str)],
        mut on_step: impl AsyncFnMut(&str, Value),
    ) {
        let console = console_dir();
        let mut journey = Command::new("node");
        journey
            .arg(console.join("e2e").join(script))
            .current_dir(&console)
            .env("WABLAST_CONSOLE_URL", app.url(""))
            .env("CHROMIUM", &self.chromium)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        for (name, value) in env {
            journey.env(name, value);
        }
        let mut journey = journey.spawn().expect("node starts");
        let mut stdin = journey.stdin.take().expect("piped");
        let mut lines = BufReader::new(journey.stdout.take().expect("piped")).lines();
        let steps = async {
            while let Some(line) = lines.next_line().await.expect("the journey's output") {
                eprintln!("{script}: {line}");
                let Some(rest) = line.strip_prefix("@@ ") else {
                    continue;
                };
                let (step, data) = rest.split_once(' ').unwrap_or((rest, "{}"));
                let data: Value = serde_json::from_str(data).expect("a step's JSON");
                if step != "done" {
                    on_step(step, data).await;
                }
                stdin.write_all(b"ok\n").await.expect("the journey reads");
            }
        };
        tokio::time::timeout(Duration::from_secs(240), steps)
            .await
            .expect("the journey ends within 4 minutes");
        let status = journey.wait().await.expect("node ran");
        assert!(
            status.success(),
            "the browser journey {script} failed (see its output above and console/test-results/)"
        );
    }
}

/// The phone `phone` scans the QR code of the session `id` (the simulator,
/// through the API), as soon as the session shows one.
pub async fn scan(owner: &Client, id: &str, phone: &str) {
    let scan = format!("/api/v1/sessions/{id}/simulator/scan");
    until("the scan", Duration::from_secs(20), async || {
        let (status, _) = owner.post(&scan, json!({"phone_number": phone})).await;
        (status == StatusCode::ACCEPTED).then_some(())
    })
    .await;
}

/// A ready simulator number of `owner`'s named `name`, linked as `phone`.
pub async fn ready_number(owner: &Client, name: &str, phone: &str) -> String {
    let (status, session) = owner
        .post(
            "/api/v1/sessions",
            json!({"name": name, "driver": "simulator"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let id = session["id"].as_str().expect("the session's id").to_owned();
    let (status, body) = owner
        .post(&format!("/api/v1/sessions/{id}/start"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    scan(owner, &id, phone).await;
    let path = format!("/api/v1/sessions/{id}");
    until("the number ready", Duration::from_secs(20), async || {
        let (_, session) = owner.get(&path).await;
        (session["status"] == "ready").then_some(())
    })
    .await;
    id
}

/// A new owner of `organization`, registered with `password` for the
/// browser to sign in with, as an API client.
pub async fn register(app: &TestApp, email: &str, password: &str, organization: &str) -> Client {
    let response = app
        .http
        .post(app.url("/api/v1/auth/register"))
        .json(&json!({"email": email, "password": password, "organization": organization}))
        .send()
        .await
        .expect("request sent");
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "the owner registers"
    );
    sign_in(app, email, password).await
}

/// The owner the browser signed up, as an API client.
pub async fn sign_in(app: &TestApp, email: &str, password: &str) -> Client {
    let response = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), StatusCode::OK, "the owner signs in");
    let body: Value = response.json().await.expect("JSON");
    let mut client = Client {
        base: app.url(""),
        http: app.http.clone(),
        auth: Auth::Bearer(body["access_token"].as_str().expect("token").to_owned()),
        tenant_id: String::new(),
        email: email.to_owned(),
        position: Default::default(),
    };
    let (status, me) = client.get("/api/v1/me").await;
    assert_eq!(status, StatusCode::OK, "{me}");
    client.tenant_id = me["tenant"]["id"].as_str().expect("tenant id").to_owned();
    client
}

/// A plan of 1,000 points the journey looks for by name.
pub async fn plan(admin: &Client) -> String {
    let (status, plan) = admin
        .post(
            "/api/v1/admin/plans",
            json!({"name": "Paket Konsol", "period_days": 30, "points": 1000,
                   "max_sessions": 3, "max_recipients_per_campaign": 200, "price": 150000}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{plan}");
    plan["id"].as_str().unwrap().to_owned()
}
