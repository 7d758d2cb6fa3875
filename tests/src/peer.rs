//! A local HTTP peer standing in for a driver's server (WAHA, the Cloud
//! API): records every request and answers as the test says.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// A request the peer received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `GET`, `POST`, ...
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The query's parameters.
    pub query: HashMap<String, String>,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

impl Recorded {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `"POST /api/sendText"`.
    pub fn route(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// What the peer answers.
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// A JSON body, if any.
    pub body: Option<Value>,
    /// How long to wait before answering.
    pub delay: Duration,
}

impl Reply {
    /// `status` with a JSON body.
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status: StatusCode::from_u16(status).expect("a status"),
            body: Some(body),
            delay: Duration::ZERO,
        }
    }

    /// `status` with no body.
    pub fn empty(status: u16) -> Self {
        Self {
            status: StatusCode::from_u16(status).expect("a status"),
            body: None,
            delay: Duration::ZERO,
        }
    }

    /// Never answers (in test time).
    pub fn hang() -> Self {
        Self {
            delay: Duration::from_secs(3600),
            ..Self::empty(200)
        }
    }
}

type Responder = dyn Fn(&Recorded) -> Reply + Send + Sync;

#[derive(Clone)]
struct PeerState {
    recorded: Arc<Mutex<Vec<Recorded>>>,
    responder: Arc<Responder>,
}

/// A peer listening on 127.0.0.1.
pub struct Peer {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    recorded: Arc<Mutex<Vec<Recorded>>>,
}

impl Peer {
    /// Listens on a free port, answering every request with `responder`.
    pub async fn start(responder: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_at("127.0.0.1:0", responder).await
    }

    /// Listens on `address` (`127.0.0.1:<port>`: a server coming back on
    /// the port it had), answering every request with `responder`.
    pub async fn start_at(
        address: &str,
        responder: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let state = PeerState {
            recorded: Arc::default(),
            responder: Arc::new(responder),
        };
        let recorded = state.recorded.clone();
        let app = Router::new().fallback(answer).with_state(state);
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .expect("a port");
        let base_url = format!("http://{}", listener.local_addr().expect("an address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base_url, recorded }
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().unwrap().clone()
    }

    /// Every request so far as `"METHOD /path"`.
    pub fn routes(&self) -> Vec<String> {
        self.requests().iter().map(Recorded::route).collect()
    }
}

async fn answer(
    State(state): State<PeerState>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20).await.expect("a body");
    let recorded = Recorded {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query,
        headers: parts.headers,
        body,
    };
    let reply = (state.responder)(&recorded);
    state.recorded.lock().unwrap().push(recorded);
    tokio::time::sleep(reply.delay).await;
    match reply.body {
        Some(body) => (reply.status, axum::Json(body)).into_response(),
        None => reply.status.into_response(),
    }
}

/// An address nothing listens on.
pub async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}
