//! `GET /api/v1/events`: a tenant's events as Server-Sent Events, read from
//! the log; resumable on both streams with `Last-Event-ID`.
//!
//! Events are caused through the aggregates' command handlers directly, as
//! the API's own endpoints will.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::Value;
use wablast_domain::message::{Message, MessageCommand, Receipt};
use wablast_domain::session::{Driver, LoginMethod, Session, SessionCommand, SessionName};
use wablast_domain::types::phone::{Phone, Region};
use wablast_domain::types::{CampaignId, DailyLimit, MessageId, SessionId, TenantId};
use wablast_eventstore::{Actor, AggregateKey, CommandHandler, CommandMetadata, EventLog};

use crate::app::{Auth, Client, TestApp, code};

/// How long a test waits for an event that should come.
const PATIENCE: Duration = Duration::from_secs(10);

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: String,
    pub event: String,
    pub data: Value,
}

impl SseEvent {
    fn stream(&self) -> &str {
        self.data["stream"].as_str().unwrap_or_default()
    }

    fn aggregate_id(&self) -> &str {
        self.data["aggregate_id"].as_str().unwrap_or_default()
    }
}

/// Reads an open `text/event-stream` answer event by event.
pub struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped); `None` when the stream ended.
    /// Panics when none comes within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        tokio::time::timeout(timeout, self.next_event())
            .await
            .unwrap_or_else(|_| panic!("no event within {timeout:?}"))
    }

    /// Whether an event comes within `wait` (for "nothing more comes").
    pub async fn quiet_for(&mut self, wait: Duration) -> Result<(), SseEvent> {
        match tokio::time::timeout(wait, self.next_event()).await {
            Ok(Some(event)) => Err(event),
            Ok(None) | Err(_) => Ok(()),
        }
    }

    async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_block(&block) {
                    return Some(event);
                }
                continue;
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self
                    .buffer
                    .push_str(std::str::from_utf8(&bytes).expect("UTF-8 stream")),
                Ok(None) | Err(_) => return None,
            }
        }
    }
}

/// An event block's fields; `None` for a comment-only block.
fn parse_block(block: &str) -> Option<SseEvent> {
    let (mut id, mut event, mut data) = (None, None, Vec::new());
    for line in block.lines() {
        if line.starts_with(':') || line.is_empty() {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => id = Some(value.to_owned()),
            "event" => event = Some(value.to_owned()),
            "data" => data.push(value),
            other => panic!("unexpected SSE field {other:?} in {block:?}"),
        }
    }
    if data.is_empty() {
        return None;
    }
    Some(SseEvent {
        id: id.expect("every event has an id"),
        event: event.expect("every event has a type"),
        data: serde_json::from_str(&data.join("\n")).expect("JSON data"),
    })
}

/// Opens the event stream as `client`: `query` after `?`, `last_id` as
/// `Last-Event-ID`.
pub async fn subscribe(client: &Client, query: &str, last_id: Option<&str>) -> reqwest::Response {
    let path = if query.is_empty() {
        "/api/v1/events".to_owned()
    } else {
        format!("/api/v1/events?{query}")
    };
    let mut request = client.request(reqwest::Method::GET, &path);
    if let Some(id) = last_id {
        request = request.header("last-event-id", id);
    }
    request.send().await.expect("request sent")
}

/// Opens the event stream and checks it is one.
async fn open(client: &Client, query: &str, last_id: Option<&str>) -> SseReader {
    let response = subscribe(client, query, last_id).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    SseReader::new(response)
}

/// The next `n` events.
async fn take(reader: &mut SseReader, n: usize) -> Vec<SseEvent> {
    let mut events = Vec::with_capacity(n);
    for _ in 0..n {
        events.push(reader.next(PATIENCE).await.expect("the stream goes on"));
    }
    events
}

fn tenant(client: &Client) -> TenantId {
    TenantId::from_uuid(client.tenant_id.parse().expect("tenant id"))
}

fn metadata() -> CommandMetadata {
    CommandMetadata::new(Actor::System)
}

/// Creates a session of `tenant` through its aggregate.
///
/// # Returns
/// The session's id and the stream sequence of its commit.
pub async fn create_session(log: &EventLog, tenant: TenantId) -> (SessionId, u64) {
    let session_id = SessionId::new();
    let key = AggregateKey::new(tenant, session_id).unwrap();
    let committed = CommandHandler::<Session>::new(log.clone(), ())
        .execute(
            &key,
            SessionCommand::CreateSession {
                session_id,
                name: SessionName::parse("CS").unwrap(),
                driver: Driver::Simulator,
                login: LoginMethod::Qr,
                phone_number: None,
                daily_limit: Some(DailyLimit::parse(10).unwrap()),
                auto_start: false,
                warm_up: None,
                sessions_in_use: 0,
                plan_max_sessions: 100,
                plan_max_daily_limit: DailyLimit::parse(500).unwrap(),
                at: Utc::now(),
            },
            &metadata(),
        )
        .await
        .expect("the session is created");
    (session_id, committed.stream_sequence)
}

/// A message of `tenant`, queued: one commit of one event in the
/// `messages` stream.
async fn queue_message(log: &EventLog, tenant: TenantId, session: SessionId) -> MessageId {
    let message_id = MessageId::new();
    CommandHandler::<Message>::new(log.clone(), ())
        .execute(
            &AggregateKey::new(tenant, message_id).unwrap(),
            MessageCommand::QueueMessage {
                message_id,
                campaign_id: CampaignId::new(),
                session_id: session,
                phone: Phone::parse("0812-3456-7890", Region::ID).unwrap(),
                name: Some("Budi".into()),
                variables: BTreeMap::new(),
                at: Utc::now(),
            },
            &metadata(),
        )
        .await
        .expect("the message is queued");
    message_id
}

/// Takes a queued message through sending to read: a commit of one event
/// (`MessageSendingStarted`), then a read receipt before any answer from
/// the driver: one commit of three events (`MessageSent`,
/// `MessageDelivered`, `MessageRead`).
async fn send_and_read(log: &EventLog, tenant: TenantId, session: SessionId, message: MessageId) {
    let handler = CommandHandler::<Message>::new(log.clone(), ());
    let key = AggregateKey::new(tenant, message).unwrap();
    handler
        .execute(
            &key,
            MessageCommand::StartSending {
                session_id: session,
                attempt: 1,
                text: None,
                provider_message_id: None,
                at: Utc::now(),
            },
            &metadata(),
        )
        .await
        .expect("sending starts");
    let committed = handler
        .execute(
            &key,
            MessageCommand::RecordReceipt {
                receipt: Receipt::Read,
                at: Utc::now(),
            },
            &metadata(),
        )
        .await
        .expect("the receipt is recorded");
    assert_eq!(committed.events.len(), 3, "one commit of three events");
}

/// `(event type, aggregate id)` of each event.
fn summary(events: &[SseEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| (e.event.clone(), e.aggregate_id().to_owned()))
        .collect()
}

fn created(ids: &[SessionId]) -> Vec<(String, String)> {
    ids.iter()
        .map(|id| ("SessionCreated".to_owned(), id.to_string()))
        .collect()
}

/// The events of one stream, in the order received.
fn of_stream<'a>(events: &'a [SseEvent], stream: &str) -> Vec<&'a SseEvent> {
    events.iter().filter(|e| e.stream() == stream).collect()
}

#[tokio::test]
async fn a_tenant_receives_exactly_its_own_events_in_order_and_resumes_after_a_disconnect() {
    // Arrange
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant("Toko A").await, app.tenant("Toko B").await);
    let log = wablast::open_event_log(&app.settings).await.unwrap();
    let mut stream = open(&a, "", None).await;

    // Act: A's and B's events interleaved.
    let (a1, _) = create_session(&log, tenant(&a)).await;
    create_session(&log, tenant(&b)).await;
    let (a2, _) = create_session(&log, tenant(&a)).await;
    create_session(&log, tenant(&b)).await;
    let (a3, _) = create_session(&log, tenant(&a)).await;

    // Assert: A's, in order (a leak of B's would come before a2 or a3).
    let first = take(&mut stream, 3).await;
    assert_eq!(summary(&first), created(&[a1, a2, a3]));
    for event in &first {
        assert_eq!(event.stream(), "events");
        assert_eq!(event.data["type"], event.event.as_str());
        assert_eq!(event.data["aggregate_type"], "session");
        assert_eq!(event.data["sequence"], 1);
        assert_eq!(event.data["index"], 0);
        assert_eq!(event.data["version"], "1.0");
        assert_eq!(event.data["payload"]["SessionCreated"]["name"], "CS");
        let position = format!("events:{}", event.data["stream_sequence"]);
        assert!(
            event.id.starts_with(&format!("{position},messages:")),
            "{} is the position after {position}",
            event.id
        );
    }
    let last_id = first[2].id.clone();

    // Act: the client goes away; more happens, in both streams.
    drop(stream);
    let (a4, _) = create_session(&log, tenant(&a)).await;
    let message = queue_message(&log, tenant(&a), a4).await;
    create_session(&log, tenant(&b)).await;
    queue_message(&log, tenant(&b), SessionId::new()).await;
    send_and_read(&log, tenant(&a), a4, message).await;
    let (a5, _) = create_session(&log, tenant(&a)).await;
    let mut resumed = open(&a, "", Some(&last_id)).await;

    // Assert: exactly what was missed, each stream in order.
    let missed = take(&mut resumed, 7).await;
    let sessions: Vec<SseEvent> = of_stream(&missed, "events").into_iter().cloned().collect();
    assert_eq!(summary(&sessions), created(&[a4, a5]));
    let messages = of_stream(&missed, "messages");
    let types: Vec<&str> = messages.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        types,
        [
            "MessageQueued",
            "MessageSendingStarted",
            "MessageSent",
            "MessageDelivered",
            "MessageRead"
        ]
    );
    assert!(
        messages
            .iter()
            .all(|e| e.aggregate_id() == message.to_string())
    );
    let read_commit = &messages[2..];
    let indexes: Vec<&Value> = read_commit.iter().map(|e| &e.data["index"]).collect();
    assert_eq!(indexes, [0, 1, 2]);
    let commit = read_commit[0].data["stream_sequence"].clone();
    assert!(
        read_commit
            .iter()
            .all(|e| e.data["stream_sequence"] == commit)
    );
    assert!(read_commit[0].id.contains(&format!("messages:{commit}.1")));
    assert!(read_commit[1].id.contains(&format!("messages:{commit}.2")));
    assert!(read_commit[2].id.ends_with(&format!("messages:{commit}")));
    let ids: std::collections::HashSet<&str> = missed.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), missed.len(), "every id is unique");
    // Nothing twice: the next event is the next one caused.
    let (a6, _) = create_session(&log, tenant(&a)).await;
    let next = resumed.next(PATIENCE).await.unwrap();
    assert_eq!(summary(std::slice::from_ref(&next)), created(&[a6]));
    drop(resumed);

    // Act: resume in the middle of the commit of three events.
    let mut all = missed.clone();
    all.push(next);
    let middle = all
        .iter()
        .position(|e| e.event == "MessageSent")
        .expect("MessageSent was received");
    let mut mid_commit = open(&a, "", Some(&all[middle].id)).await;

    // Assert: the rest of that commit and what followed, per stream.
    let expected = &all[middle + 1..];
    let got = take(&mut mid_commit, expected.len()).await;
    for stream in ["events", "messages"] {
        let want: Vec<_> = of_stream(expected, stream)
            .into_iter()
            .map(|e| (&e.event, &e.data["event_id"]))
            .collect();
        let have: Vec<_> = of_stream(&got, stream)
            .into_iter()
            .map(|e| (&e.event, &e.data["event_id"]))
            .collect();
        assert_eq!(have, want, "{stream}");
    }
    assert!(
        mid_commit
            .quiet_for(Duration::from_millis(500))
            .await
            .is_ok(),
        "nothing more"
    );
}

#[tokio::test]
async fn from_the_beginning_a_tenant_catches_up_on_its_own_history_only() {
    // Arrange: history of two tenants, before anyone listens.
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant("Toko A").await, app.tenant("Toko B").await);
    let log = wablast::open_event_log(&app.settings).await.unwrap();
    let (a1, _) = create_session(&log, tenant(&a)).await;
    let (b1, _) = create_session(&log, tenant(&b)).await;
    let (a2, _) = create_session(&log, tenant(&a)).await;
    let b_message = queue_message(&log, tenant(&b), b1).await;
    queue_message(&log, tenant(&a), a1).await;

    // Act
    let mut stream = open(&b, "from=events:0,messages:0", None).await;

    // Assert: B's history, then B's live events; never A's.
    let history = take(&mut stream, 2).await;
    assert_eq!(
        of_stream(&history, "events")
            .iter()
            .map(|e| e.aggregate_id())
            .collect::<Vec<_>>(),
        [b1.to_string()]
    );
    assert_eq!(
        of_stream(&history, "messages")
            .iter()
            .map(|e| (e.event.as_str(), e.aggregate_id()))
            .collect::<Vec<_>>(),
        [("MessageQueued", b_message.to_string().as_str())]
    );
    create_session(&log, tenant(&a)).await;
    let (b2, _) = create_session(&log, tenant(&b)).await;
    let live = stream.next(PATIENCE).await.unwrap();
    assert_eq!(summary(&[live]), created(&[b2]));
    let a_ids = [a1.to_string(), a2.to_string()];
    assert!(
        history
            .iter()
            .all(|e| !a_ids.contains(&e.aggregate_id().to_owned()))
    );
}

#[tokio::test]
async fn types_narrow_the_stream_to_the_named_event_types() {
    // Arrange
    let app = TestApp::spawn().await;
    let a = app.tenant("Toko A").await;
    let log = wablast::open_event_log(&app.settings).await.unwrap();
    let mut stream = open(&a, "types=MessageQueued,NoSuchEvent", None).await;

    // Act
    let (session, _) = create_session(&log, tenant(&a)).await;
    let first = queue_message(&log, tenant(&a), session).await;
    create_session(&log, tenant(&a)).await;
    let second = queue_message(&log, tenant(&a), session).await;

    // Assert: only the messages queued.
    let events = take(&mut stream, 2).await;
    assert_eq!(
        summary(&events),
        [
            ("MessageQueued".to_owned(), first.to_string()),
            ("MessageQueued".to_owned(), second.to_string())
        ]
    );
    // The id still covers the session events skipped: resuming from it
    // does not bring them back.
    let (later, _) = create_session(&log, tenant(&a)).await;
    drop(stream);
    let mut resumed = open(&a, "", Some(&events[1].id)).await;
    let next = resumed.next(PATIENCE).await.unwrap();
    assert_eq!(summary(&[next]), created(&[later]));
}

#[tokio::test]
async fn the_stream_takes_either_credential_and_refuses_none_or_malformed_positions() {
    let app = TestApp::spawn().await;
    let a = app.tenant("Toko A").await;

    let (status, key) = a
        .post("/api/v1/api-keys", serde_json::json!({"name": "sse"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let with_key = a.with_auth(Auth::ApiKey(key["key"].as_str().unwrap().to_owned()));
    open(&with_key, "", None).await;
    let anonymous = subscribe(&a.with_auth(Auth::None), "", None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(code(&body), "unauthenticated");

    for bad in [
        "garbage",
        "events:",
        "events:-1",
        "events:1.0",
        "events:1,events:2",
        "orders:1",
        "events:1;messages:1",
    ] {
        let response = subscribe(&a, "", Some(bad)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(code(&body), "validation_failed", "{bad:?}");
        assert_eq!(
            body["error"]["details"]["field"], "Last-Event-ID",
            "{bad:?}"
        );
    }
    let beyond = subscribe(&a, "", Some("events:0,messages:999999")).await;
    assert_eq!(beyond.status(), StatusCode::BAD_REQUEST);
    let body: Value = beyond.json().await.unwrap();
    assert_eq!(code(&body), "validation_failed");

    for (query, field) in [
        ("from=events:x", "from"),
        ("from=events:999999", "from"),
        ("types=", "types"),
        ("types=Session.Created", "types"),
    ] {
        let response = subscribe(&a, query, None).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["details"]["field"], field, "{query}");
    }
}

/// The ephemeral consumers on the log's streams: the ones event streams
/// open (the projector's durable ones come and stay on their own time).
///
/// A listing taken while a consumer is being deleted can come back in a
/// shape the client does not read: it is taken again.
async fn consumer_count(app: &TestApp) -> usize {
    let client = async_nats::connect(&app.settings.nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut total = 0;
    for name in ["EVENTS", "MESSAGES"] {
        let stream = js
            .get_stream(format!("{}_{name}", app.prefix))
            .await
            .unwrap();
        total += ephemeral_consumers(&stream).await;
    }
    total
}

/// How many of `stream`'s consumers have no durable name, listing again
/// (up to 10 times) when a listing does not decode.
async fn ephemeral_consumers(stream: &async_nats::jetstream::stream::Stream) -> usize {
    use futures::TryStreamExt;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match stream.consumers().try_collect::<Vec<_>>().await {
            Ok(consumers) => {
                return consumers
                    .iter()
                    .filter(|c| c.config.durable_name.is_none())
                    .count();
            }
            Err(err) if attempt < 10 => {
                eprintln!("listing consumers again: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("consumers not listed: {err}"),
        }
    }
}

#[tokio::test]
async fn a_client_going_away_leaves_no_consumer_behind() {
    // Arrange
    let app = TestApp::spawn().await;
    let a = app.tenant("Toko A").await;
    let log = wablast::open_event_log(&app.settings).await.unwrap();
    let before = consumer_count(&app).await;

    // Act
    let mut stream = open(&a, "", None).await;
    let (session, _) = create_session(&log, tenant(&a)).await;
    let event = stream.next(PATIENCE).await.unwrap();
    assert_eq!(event.aggregate_id(), session.to_string());
    let during = consumer_count(&app).await;
    drop(stream);

    // Assert
    assert!(during > before, "the stream has its consumers");
    wablast_tests::wait_for(
        "the stream's consumers to be deleted",
        Duration::from_secs(20),
        || async { (consumer_count(&app).await == before).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn shutting_down_ends_open_streams() {
    let app = TestApp::spawn().await;
    let a = app.tenant("Toko A").await;
    let mut stream = open(&a, "", None).await;

    let stopped = tokio::time::timeout(Duration::from_secs(10), app.stop()).await;

    stopped.expect("stops in time").expect("stops cleanly");
    assert!(stream.next(PATIENCE).await.is_none(), "the stream ended");
}

#[tokio::test]
async fn an_id_of_the_stream_is_a_position_readable_as_from() {
    // Arrange: an id received on one connection...
    let app = TestApp::spawn().await;
    let a = app.tenant("Toko A").await;
    let log = wablast::open_event_log(&app.settings).await.unwrap();
    let mut stream = open(&a, "", None).await;
    create_session(&log, tenant(&a)).await;
    let seen = stream.next(PATIENCE).await.unwrap();
    drop(stream);
    let (next, _) = create_session(&log, tenant(&a)).await;

    // Act: ...given as ?from= (what a client without EventSource does).
    let mut resumed = open(&a, &format!("from={}", seen.id), None).await;

    // Assert
    let event = resumed.next(PATIENCE).await.unwrap();
    assert_eq!(summary(&[event]), created(&[next]));
}
