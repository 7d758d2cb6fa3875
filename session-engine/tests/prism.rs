//! Validating mocks of the drivers' peers, generated from the peers' own
//! published API descriptions (`../shared/peers/` beside the repository)
//! by Stoplight Prism (`prism mock --errors`, installed in `tests/peers/`
//! by `npm ci`).
//!
//! One Prism runs per document for the whole test binary. Each test talks
//! to a [`ValidatingPeer`] of its own: a local proxy that records the
//! request, has Prism validate it against the document, and answers with
//! Prism's answer (generated from the document's schemas) or, where the
//! test needs a particular one (an error, a session that exists), with the
//! test's own. A request that violates the document fails the test: the
//! peer panics when dropped with any violation seen, and
//! [`ValidatingPeer::assert_valid`] says so at once.
//!
//! Without Prism or the documents the tests are skipped, saying so, except
//! under `CI=true`, where they fail.

use std::collections::HashMap;
use std::io::Read as _;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub use crate::support::{Recorded, Reply};

/// A peer's published API description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Document {
    /// WAHA 2026.7.1 (its webhook `events` as strings, as WAHA sends them).
    Waha,
    /// Meta's WhatsApp Business Platform, Graph v23.0.
    Cloud,
}

impl Document {
    fn file(self) -> &'static str {
        match self {
            Self::Waha => "waha-openapi-2026.7.1.events-as-strings.json",
            Self::Cloud => "meta-whatsapp-cloud-api-v23.0.yaml",
        }
    }
}

/// The repository's root (the crate's parent).
fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate is in the repository")
        .to_path_buf()
}

/// Where the peers' documents are: `../shared/peers` beside the
/// repository.
fn documents() -> PathBuf {
    repository().join("../shared/peers")
}

/// Whether a test must fail rather than skip when what it needs is
/// missing.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|ci| ci == "true")
}

/// The text of one of the peers' documents; `None` (the test is skipped,
/// saying so) when it is not there, except under `CI=true`.
pub fn document_text(file: &str) -> Option<String> {
    let path = documents().join(file);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if in_ci() => panic!("cannot read {}: {e}", path.display()),
        Err(e) => {
            eprintln!("SKIPPED: cannot read {}: {e}", path.display());
            None
        }
    }
}

/// The Prism the tests installed (`npm ci` in `tests/peers`).
fn prism_binary() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/node_modules/.bin/prism")
}

/// A running Prism: its address and its log.
struct Prism {
    base_url: String,
    log: PathBuf,
    /// Prism dies with the test binary: the shell around it waits for its
    /// standard input, which closes when this process ends, then kills it.
    process: Child,
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

impl Prism {
    fn start(document: Document) -> Result<Self, String> {
        let binary = prism_binary();
        let file = documents().join(document.file());
        if !binary.exists() {
            return Err(format!(
                "no Prism at {} (run `npm ci` in session-engine/tests/peers)",
                binary.display()
            ));
        }
        if !file.exists() {
            return Err(format!(
                "no {} (../shared/peers beside the repository)",
                file.display()
            ));
        }
        let port = free_port();
        let log = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("prism-{document:?}-{}.log", std::process::id()));
        let output = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let errors = output.try_clone().map_err(|e| e.to_string())?;
        let process = Command::new("sh")
            .arg("-c")
            .arg(r#""$@" & prism=$!; cat > /dev/null; kill "$prism" 2> /dev/null"#)
            .arg("sh")
            .arg(&binary)
            .args(["mock", "--errors", "--dynamic", "--seed", "wablast"])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg(&file)
            .stdin(Stdio::piped())
            .stdout(output)
            .stderr(errors)
            .spawn()
            .map_err(|e| format!("cannot run Prism: {e}"))?;
        let mut prism = Self {
            base_url: format!("http://127.0.0.1:{port}"),
            log,
            process,
        };
        prism.wait_until_it_answers(port)?;
        Ok(prism)
    }

    fn wait_until_it_answers(&mut self, port: u16) -> Result<(), String> {
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let give_up = Instant::now() + Duration::from_secs(120);
        while Instant::now() < give_up {
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.process.try_wait() {
                return Err(format!("Prism exited ({status}):\n{}", tail(&self.log)));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "Prism did not answer in 120 s:\n{}",
            tail(&self.log)
        ))
    }
}

static WAHA: OnceLock<Result<Prism, String>> = OnceLock::new();
static CLOUD: OnceLock<Result<Prism, String>> = OnceLock::new();

/// The Prism of `document`, started on first use; `None` (the test is
/// skipped) when it cannot run, except under `CI=true`.
fn prism(document: Document) -> Option<&'static Prism> {
    let cell = match document {
        Document::Waha => &WAHA,
        Document::Cloud => &CLOUD,
    };
    match cell.get_or_init(|| Prism::start(document)) {
        Ok(prism) => Some(prism),
        Err(why) if in_ci() => {
            panic!("the {document:?} document's validating mock cannot run: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED: the {document:?} document's validating mock cannot run: {why}");
            None
        }
    }
}

type Answer = dyn Fn(&Recorded) -> Option<Reply> + Send + Sync;

#[derive(Clone)]
struct ProxyState {
    prism: String,
    client: reqwest::Client,
    answer: Arc<Answer>,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    violations: Arc<Mutex<Vec<String>>>,
}

/// A peer answering as its document says, failing the test on a request
/// the document does not allow.
pub struct ValidatingPeer {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    violations: Arc<Mutex<Vec<String>>>,
}

impl ValidatingPeer {
    /// A peer of `document` answering what Prism generates from it, or
    /// `answer`'s reply where it gives one. `None`: Prism cannot run here
    /// (outside CI): skip the test.
    pub async fn start(
        document: Document,
        answer: impl Fn(&Recorded) -> Option<Reply> + Send + Sync + 'static,
    ) -> Option<Self> {
        let prism = prism(document)?;
        let state = ProxyState {
            prism: prism.base_url.clone(),
            client: reqwest::Client::new(),
            answer: Arc::new(answer),
            recorded: Arc::default(),
            violations: Arc::default(),
        };
        let recorded = state.recorded.clone();
        let violations = state.violations.clone();
        let app = Router::new().fallback(proxy).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let base_url = format!("http://{}", listener.local_addr().expect("an address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Some(Self {
            base_url,
            recorded,
            violations,
        })
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().unwrap().clone()
    }

    /// Every request so far as `"METHOD /path"`.
    pub fn routes(&self) -> Vec<String> {
        self.requests().iter().map(Recorded::route).collect()
    }

    /// What the document refused so far.
    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }

    /// What the document refused so far, forgotten (a test of the peer
    /// itself).
    pub fn take_violations(&self) -> Vec<String> {
        std::mem::take(&mut *self.violations.lock().unwrap())
    }

    /// Fails the test if any request so far violated the document.
    pub fn assert_valid(&self) {
        let violations = self.violations();
        assert!(
            violations.is_empty(),
            "requests the peer's document does not allow:\n{}",
            violations.join("\n")
        );
    }
}

impl Drop for ValidatingPeer {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.assert_valid();
        } else if !self.violations().is_empty() {
            // The test failed on what the driver made of the refusal: say
            // what was refused.
            eprintln!(
                "requests the peer's document does not allow:\n{}",
                self.violations().join("\n")
            );
        }
    }
}

/// What Prism's answer says of the request.
enum Verdict {
    /// The document allows it.
    Valid,
    /// The document does not allow it: why.
    Refused(String),
    /// The request is fine, but the answer Prism generated broke the
    /// document itself: asked again.
    AnswerInvalid,
}

fn verdict(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Verdict {
    // A documented answer to a refused request carries the violations in
    // this header (`location` starting with "request").
    if let Some(violations) = headers
        .get("sl-violations")
        .and_then(|v| serde_json::from_slice::<Vec<Value>>(v.as_bytes()).ok())
    {
        let refused: Vec<&Value> = violations
            .iter()
            .filter(|v| v.pointer("/location/0").and_then(Value::as_str) == Some("request"))
            .collect();
        if !refused.is_empty() {
            return Verdict::Refused(format!(
                "{status}: {}",
                Value::Array(refused.into_iter().cloned().collect())
            ));
        }
    }
    let problem = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json"));
    if !problem {
        return Verdict::Valid;
    }
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let kind = body.get("type").and_then(Value::as_str).unwrap_or_default();
    let Some(kind) = kind.strip_prefix("https://stoplight.io/prism/errors#") else {
        return Verdict::Valid;
    };
    if kind == "VIOLATIONS" {
        let about_request = body
            .get("validation")
            .and_then(Value::as_array)
            .is_some_and(|all| {
                all.iter()
                    .any(|v| v.pointer("/location/0").and_then(Value::as_str) == Some("request"))
            });
        if !about_request {
            return Verdict::AnswerInvalid;
        }
    }
    Verdict::Refused(format!("{status} {kind}: {body}"))
}

async fn proxy(
    State(state): State<ProxyState>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20).await.expect("a body");
    let recorded = Recorded {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query,
        headers: parts.headers.clone(),
        body: body.clone(),
    };
    let target = format!(
        "{}{}",
        state.prism,
        parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path(), |p| p.as_str())
    );
    let mut headers = parts.headers.clone();
    headers.remove(header::HOST);
    headers.remove(header::CONTENT_LENGTH);
    // Prism generates a new answer each time: one that broke the document
    // itself is asked for again.
    let mut prism_answer = None;
    for _ in 0..5 {
        let sent = state
            .client
            .request(parts.method.clone(), &target)
            .headers(headers.clone())
            .body(body.clone())
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                state
                    .violations
                    .lock()
                    .unwrap()
                    .push(format!("{}: Prism did not answer: {e}", recorded.route()));
                break;
            }
        };
        let status = response.status();
        let answer_headers = response.headers().clone();
        let answer_body = response.bytes().await.unwrap_or_default();
        match verdict(status, &answer_headers, &answer_body) {
            Verdict::AnswerInvalid => continue,
            Verdict::Refused(why) => {
                state
                    .violations
                    .lock()
                    .unwrap()
                    .push(format!("{}: {why}", recorded.route()));
                prism_answer = Some((status, answer_headers, answer_body));
                break;
            }
            Verdict::Valid => {
                prism_answer = Some((status, answer_headers, answer_body));
                break;
            }
        }
    }
    let own = (state.answer)(&recorded);
    state.recorded.lock().unwrap().push(recorded);
    match (own, prism_answer) {
        (Some(reply), _) => {
            tokio::time::sleep(reply.delay).await;
            match reply.body {
                Some(body) => (reply.status, axum::Json(body)).into_response(),
                None => reply.status.into_response(),
            }
        }
        (None, Some((status, headers, body))) => {
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            if let Some(kind) = headers.get(header::CONTENT_TYPE) {
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, kind.clone());
            }
            response
        }
        (None, None) => (
            StatusCode::BAD_GATEWAY,
            [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
            Bytes::from_static(b"Prism gave no valid answer"),
        )
            .into_response(),
    }
}
