//! `GET /api/v1/events`: the caller's tenant's events as Server-Sent Events,
//! read straight from the event log (JetStream), not from Postgres.
//!
//! # How a connection reads the log
//!
//! The log has two streams, `events` (sessions, campaigns, wallets, ...) and
//! `messages` (one aggregate per recipient), each with its own sequence. For
//! each stream a [`Reader`] hands out the tenant's commits in stream order:
//!
//! - it reads them through one ephemeral ordered push consumer on the
//!   stream, filtered on the tenant's subjects of each aggregate type the
//!   stream holds (`<prefix>.ev.<tenant>.<type>.*`, one filter subject per
//!   type: a filter must lie within one of the stream's subjects,
//!   `<prefix>.ev.*.<type>.*`). The server delivers them in stream order
//!   from the cursor on and goes on with new ones, so another tenant's
//!   commit never leaves NATS for this connection;
//! - an ordered consumer that misses a delivery (a dropped message, a
//!   reconnect) recreates itself after the last sequence it delivered, so
//!   the connection neither skips nor repeats a commit.
//!
//! The two readers are merged; every event sent carries the position of
//! both streams in its `id`, so a client reconnecting with `Last-Event-ID`
//! resumes each stream where it stopped. The consumers are deleted when the
//! client goes away (and, were that to fail, expire on the server after
//! 30 s without a subscriber).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::push::OrderedConfig;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use cqrs_es::persist::EventUpcaster;
use futures::stream::{BoxStream, Stream, StreamExt};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wablast_eventstore::{Commit, EventLog, RecordedEvent};
use wablast_projections::event_data::EventData;
use wablast_projections::queries::events::tenant_token;
use wablast_projections::{LogStream, StreamName, tenant_filter};

use crate::error::ErrorBody;
use crate::extract::Query;
use crate::{ApiError, AppState, Caller, ErrorCode};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream_events))
}

/// How often a comment is sent on a quiet stream, so that proxies keep the
/// connection open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The longest `?types=` list accepted.
const MAX_TYPES: usize = 100;

/// The longest position accepted in `Last-Event-ID` or `?from=`.
const MAX_POSITION_LENGTH: usize = 200;

/// Which events to stream and from where.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsParams {
    /// Event types to receive, comma separated
    /// (`SessionCreated,CampaignStarted`); every type when absent. A name
    /// no event has simply never matches.
    #[param(example = "SessionCreated,MessageSent")]
    pub types: Option<String>,
    /// Where to start when the request carries no `Last-Event-ID`: a
    /// position written like the events' ids (`events:120,messages:45`;
    /// `events:0,messages:0` is the beginning of the log). A stream it does
    /// not name starts from now. Without either, the stream starts from now:
    /// only events committed after the request.
    #[param(example = "events:0,messages:0")]
    pub from: Option<String>,
}

/// The tenant's events, live, as Server-Sent Events.
///
/// One SSE event per domain event, only the caller's tenant's:
///
/// - `event`: the event type (`SessionCreated`, `MessageSent`, ...);
/// - `data`: the event as JSON (`EventData`);
/// - `id`: the position in the log after this event, for both streams of
///   the log: `events:<seq>[.<k>],messages:<seq>[.<k>]`. `<seq>` is the
///   stream sequence of the last commit read in that stream; `.<k>` (k ≥ 1)
///   says only its first `k` events were delivered (a commit, one command's
///   events, may hold several), no suffix that all were. Example:
///   `events:123.1,messages:45`.
///
/// Reconnecting with `Last-Event-ID: <the last id received>` (browsers'
/// `EventSource` does it by itself) resumes both streams right after it:
/// nothing missed, nothing twice. Messages older than the log's retention
/// are gone and skipped. Without `Last-Event-ID`, `?from=` or else "now"
/// decides where it starts. A position that is not one, or lies beyond the
/// end of the log, is a 400. A comment is sent every 15 s on a quiet
/// stream. The stream ends when the client goes away or the server shuts
/// down.
#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    security(("bearer" = []), ("api_key" = [])),
    params(
        EventsParams,
        ("Last-Event-ID" = Option<String>, Header,
            description = "The id of the last event received: resume right after it (wins over `?from=`)",
            example = "events:123.1,messages:45"),
    ),
    responses(
        (status = 200, description = "An endless `text/event-stream`; each event's `data` is an EventData", content_type = "text/event-stream", body = EventData),
        (status = 400, description = "Malformed `Last-Event-ID`, `from` or `types`, or a position beyond the end of the log", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 503, description = "The event log is not reachable", body = ErrorBody),
    ))]
#[tracing::instrument(name = "events stream", skip_all, fields(tenant = %caller.tenant_id))]
async fn stream_events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(params): Query<EventsParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let types = parse_types(params.types.as_deref())?;
    let (field, start) = match headers.get("last-event-id") {
        Some(value) if !value.is_empty() => {
            let text = value.to_str().unwrap_or("\u{fffd}");
            ("Last-Event-ID", parse_position("Last-Event-ID", text)?)
        }
        _ => match params.from.as_deref() {
            Some(text) if !text.is_empty() => ("from", parse_position("from", text)?),
            _ => ("from", Position::default()),
        },
    };
    let tenant = tenant_token(caller.tenant_id);
    let upcasters: Arc<[Box<dyn EventUpcaster>]> = wablast_domain::upcasters().into();

    let mut readers = Vec::with_capacity(LogStream::ALL.len());
    let mut cursors = Cursors::default();
    for stream in LogStream::ALL {
        let reader = Reader::open(&state.log, stream, &tenant, start.get(stream))
            .await?
            .map_err(|last| {
                ApiError::invalid_field(
                    field,
                    format!(
                        "{field} is beyond the end of the log, which is at {}:{last}",
                        stream.name()
                    ),
                )
            })?;
        cursors.set(stream, reader.start);
        readers.push(reader.into_stream());
    }
    tracing::debug!(position = %cursors, "events stream opened");

    let events = futures::stream::select_all(readers)
        .scan(cursors, move |cursors, item| {
            let event = match item {
                Ok(item) => {
                    cursors.set(item.stream, item.cursor_after());
                    let wanted = types
                        .as_ref()
                        .is_none_or(|types| types.contains(&item.event.event_type));
                    Some(wanted.then(|| item.into_sse(cursors, &upcasters)))
                }
                Err(err) => {
                    // The client reconnects with its last id and misses
                    // nothing; an error event would tell it no more.
                    tracing::warn!(error.message = %err, "events stream ended by an error");
                    None
                }
            };
            futures::future::ready(event)
        })
        .filter_map(futures::future::ready)
        .map(Ok)
        .take_until(state.shutdown.clone().cancelled_owned());
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// `?types=`: `None` for every type.
fn parse_types(text: Option<&str>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let types: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if types.is_empty() {
        return Err(ApiError::invalid_field(
            "types",
            "types names at least one event type (`SessionCreated,MessageSent`); leave it out for every type",
        ));
    }
    if types.len() > MAX_TYPES {
        return Err(ApiError::invalid_field(
            "types",
            format!("types names at most {MAX_TYPES} event types"),
        ));
    }
    if let Some(bad) = types.iter().find(|t| !is_type_name(t)) {
        return Err(ApiError::invalid_field(
            "types",
            format!("{bad:?} is not an event type name (letters, digits and `_`)"),
        ));
    }
    Ok(Some(types))
}

/// An event type name: a letter, then letters, digits or `_`.
pub(crate) fn is_type_name(name: &str) -> bool {
    name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn parse_position(field: &str, text: &str) -> Result<Position, ApiError> {
    if text.len() > MAX_POSITION_LENGTH {
        return Err(ApiError::invalid_field(
            field,
            format!("{field} is too long to be a position"),
        ));
    }
    text.parse::<Position>()
        .map_err(|err| ApiError::invalid_field(field, format!("{field}: {err}")))
}

/// How far a client got in one stream of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamCursor {
    /// Stream sequence of the last commit read (0: none).
    pub sequence: u64,
    /// How many of that commit's events were delivered; `None`: all.
    pub delivered: Option<usize>,
}

impl StreamCursor {
    /// The whole commit at `sequence` (and everything before) was read.
    pub fn after(sequence: u64) -> Self {
        Self {
            sequence,
            delivered: None,
        }
    }

    /// Where reading goes on: the stream sequence to read from, and how
    /// many events of the commit there to skip.
    pub fn resume(self) -> (u64, usize) {
        match self.delivered {
            None => (self.sequence.saturating_add(1), 0),
            Some(delivered) => (self.sequence, delivered),
        }
    }
}

impl fmt::Display for StreamCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.delivered {
            None => write!(f, "{}", self.sequence),
            Some(k) => write!(f, "{}.{k}", self.sequence),
        }
    }
}

/// A position in both streams, as written in an event's `id`
/// (`events:123.1,messages:45`); a stream may be left out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    cursors: [Option<StreamCursor>; LogStream::ALL.len()],
}

impl Position {
    /// Where it is in `stream`, if it says.
    pub fn get(&self, stream: LogStream) -> Option<StreamCursor> {
        self.cursors[slot(stream)]
    }
}

fn slot(stream: LogStream) -> usize {
    LogStream::ALL
        .iter()
        .position(|s| *s == stream)
        .expect("every stream is in ALL")
}

/// A text that is not a position.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "a position is `events:<sequence>[.<k>],messages:<sequence>[.<k>]` as an event's id gives it, not {0:?}"
)]
pub struct PositionError(String);

impl FromStr for Position {
    type Err = PositionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || PositionError(text.chars().take(64).collect());
        let mut position = Self::default();
        for part in text.split(',') {
            let (name, cursor) = part.trim().split_once(':').ok_or_else(bad)?;
            let stream = LogStream::parse(name).ok_or_else(bad)?;
            let (sequence, delivered) = match cursor.split_once('.') {
                None => (cursor, None),
                Some((sequence, k)) => (sequence, Some(k)),
            };
            let number = |digits: &str| -> Result<u64, PositionError> {
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                digits.parse().map_err(|_| bad())
            };
            let sequence = number(sequence)?;
            let delivered = match delivered {
                None => None,
                // No commit 0 to have read a part of.
                Some(_) if sequence == 0 => return Err(bad()),
                Some(k) => match number(k)? {
                    0 => return Err(bad()),
                    k => Some(usize::try_from(k).map_err(|_| bad())?),
                },
            };
            let entry = &mut position.cursors[slot(stream)];
            if entry.is_some() {
                return Err(bad());
            }
            *entry = Some(StreamCursor {
                sequence,
                delivered,
            });
        }
        Ok(position)
    }
}

/// Where a connection is in every stream: what each event's id says.
#[derive(Clone, Copy, Debug, Default)]
struct Cursors([StreamCursor; LogStream::ALL.len()]);

impl Cursors {
    fn set(&mut self, stream: LogStream, cursor: StreamCursor) {
        self.0[slot(stream)] = cursor;
    }
}

impl Default for StreamCursor {
    fn default() -> Self {
        Self::after(0)
    }
}

impl fmt::Display for Cursors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (stream, cursor)) in LogStream::ALL.iter().zip(&self.0).enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}:{cursor}", stream.name())?;
        }
        Ok(())
    }
}

/// One event read from a stream, with its place in its commit.
struct Item {
    stream: LogStream,
    /// Its place in its commit, from 0.
    index: usize,
    /// How many events the commit holds.
    count: usize,
    event: RecordedEvent,
}

impl Item {
    /// The stream's cursor once this event is delivered.
    fn cursor_after(&self) -> StreamCursor {
        StreamCursor {
            sequence: self.event.stream_sequence,
            delivered: (self.index + 1 < self.count).then_some(self.index + 1),
        }
    }

    fn into_sse(self, cursors: &Cursors, upcasters: &[Box<dyn EventUpcaster>]) -> Event {
        let event = self.event.upcast(upcasters);
        let sse = Event::default()
            .id(cursors.to_string())
            .event(&event.event_type);
        let data = EventData::new(self.stream, self.index, event);
        sse.json_data(&data)
            .expect("an event's data serializes to JSON")
    }
}

/// Reads one tenant's commits of one stream in stream order, from a
/// cursor on, and goes on with new ones as they are committed (see the
/// module docs).
struct Reader {
    stream: LogStream,
    /// Where the connection starts in this stream.
    start: StreamCursor,
    tenant: String,
    /// The tenant's commits, in stream order, from where the cursor says.
    commits: BoxStream<'static, jetstream::Message>,
    /// The stream sequence the first commit is expected at, and how many
    /// of its events were delivered already.
    resume: (u64, usize),
    /// Events of the commit read last, not handed out yet.
    pending: VecDeque<Item>,
    _consumer: ConsumerCleanup,
}

impl Reader {
    /// Opens a reader at `cursor` (now when `None`); `Err(last)` when the
    /// cursor lies beyond the stream's last sequence.
    async fn open(
        log: &EventLog,
        stream: LogStream,
        tenant: &str,
        cursor: Option<StreamCursor>,
    ) -> Result<Result<Self, u64>, ApiError> {
        let unavailable = |err: &dyn fmt::Display| {
            tracing::warn!(error.message = %err, stream = stream.name(), "event log unavailable");
            ApiError::new(
                ErrorCode::Unavailable,
                "the event log cannot be reached right now; try again",
            )
        };
        let js = log
            .jetstream()
            .get_stream(stream.full_name(log.prefix()))
            .await
            .map_err(|err| unavailable(&err))?;
        let info = js.cached_info();
        let last = info.state.last_sequence;
        let start = match cursor {
            Some(cursor) if cursor.sequence > last => return Ok(Err(last)),
            Some(cursor) => cursor,
            None => StreamCursor::after(last),
        };
        let resume = start.resume();
        let filters: Vec<String> = info
            .config
            .subjects
            .iter()
            .filter_map(|subjects| tenant_filter(subjects, tenant))
            .collect();
        let mut cleanup = ConsumerCleanup {
            stream: js.clone(),
            name: None,
        };
        let commits = if filters.is_empty() {
            // No aggregate type to read: nothing will come, but the
            // stream stays open like any other.
            futures::stream::pending().boxed()
        } else {
            let consumer = js
                .create_consumer(OrderedConfig {
                    deliver_subject: log.jetstream().client().new_inbox(),
                    filter_subjects: filters,
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: resume.0,
                    },
                    ..Default::default()
                })
                .await
                .map_err(|err| unavailable(&err))?;
            cleanup.name = Some(consumer.cached_info().name.clone());
            consumer
                .messages()
                .await
                .map_err(|err| unavailable(&err))?
                .filter_map(|message| async move {
                    match message {
                        Ok(message) => Some(message),
                        // A missed heartbeat or delivery: the ordered
                        // consumer recreates itself after the last
                        // sequence it delivered and goes on.
                        Err(err) => {
                            tracing::debug!(error.message = %err, "events consumer hiccup");
                            None
                        }
                    }
                })
                .boxed()
        };
        Ok(Ok(Self {
            stream,
            start,
            tenant: tenant.to_owned(),
            commits,
            resume,
            pending: VecDeque::new(),
            _consumer: cleanup,
        }))
    }

    fn into_stream(self) -> BoxStream<'static, Result<Item, String>> {
        futures::stream::unfold(self, |mut reader| async move {
            let item = reader.next_item().await?;
            Some((item, reader))
        })
        .boxed()
    }

    /// The next event; `None` when the consumer stopped (the connection to
    /// NATS is gone for good).
    async fn next_item(&mut self) -> Option<Result<Item, String>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(Ok(item));
            }
            let message = self.commits.next().await?;
            let sequence = match message.info() {
                Ok(info) => info.stream_sequence,
                Err(err) => return Some(Err(format!("a delivery without its place: {err}"))),
            };
            let skip = if sequence == self.resume.0 {
                self.resume.1
            } else {
                0
            };
            let commit: Commit = match serde_json::from_slice(&message.payload) {
                Ok(commit) => commit,
                Err(err) => {
                    return Some(Err(format!("commit {sequence} is malformed: {err}")));
                }
            };
            // The subject filter already guarantees it; a commit whose body
            // disagrees with its subject is not handed out.
            if commit.tenant != self.tenant {
                tracing::error!(sequence, "a commit's tenant differs from its subject's");
                continue;
            }
            let count = commit.events.len();
            self.pending
                .extend(commit.into_recorded(sequence).enumerate().skip(skip).map(
                    |(index, event)| Item {
                        stream: self.stream,
                        index,
                        count,
                        event,
                    },
                ));
        }
    }
}

/// Deletes a connection's consumer when it ends.
struct ConsumerCleanup {
    stream: jetstream::stream::Stream,
    name: Option<String>,
}

impl Drop for ConsumerCleanup {
    fn drop(&mut self) {
        let Some(name) = self.name.take() else {
            return;
        };
        let stream = self.stream.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(err) = stream.delete_consumer(&name).await {
                    // It expires on the server by itself.
                    tracing::debug!(consumer = %name, error = %wablast_eventstore::report::Chain(&err), "events consumer not deleted");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_through_their_text() {
        let position: Position = "events:123.2,messages:45".parse().unwrap();
        assert_eq!(
            position.get(LogStream::Events),
            Some(StreamCursor {
                sequence: 123,
                delivered: Some(2)
            })
        );
        assert_eq!(
            position.get(LogStream::Messages),
            Some(StreamCursor::after(45))
        );
        let mut cursors = Cursors::default();
        cursors.set(LogStream::Events, position.get(LogStream::Events).unwrap());
        cursors.set(
            LogStream::Messages,
            position.get(LogStream::Messages).unwrap(),
        );
        assert_eq!(cursors.to_string(), "events:123.2,messages:45");
    }

    #[test]
    fn a_position_may_name_one_stream_in_any_order() {
        let position: Position = "messages:7".parse().unwrap();
        assert_eq!(position.get(LogStream::Events), None);
        assert_eq!(
            position.get(LogStream::Messages),
            Some(StreamCursor::after(7))
        );
        let swapped: Position = "messages:1, events:2".parse().unwrap();
        assert_eq!(swapped.get(LogStream::Events), Some(StreamCursor::after(2)));
    }

    #[test]
    fn malformed_positions_are_refused() {
        for bad in [
            "",
            "events",
            "events:",
            "events:x",
            "events:-1",
            "events:+1",
            "events:1.",
            "events:1.0",
            "events:1.2.3",
            "events:1,events:2",
            "orders:1",
            "events:1;messages:2",
            "events:99999999999999999999999",
            "events:1,",
            "events:0.1",
        ] {
            assert!(bad.parse::<Position>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cursors_resume_after_whole_commits_or_inside_one() {
        assert_eq!(StreamCursor::after(0).resume(), (1, 0));
        assert_eq!(StreamCursor::after(9).resume(), (10, 0));
        let inside = StreamCursor {
            sequence: 9,
            delivered: Some(2),
        };
        assert_eq!(inside.resume(), (9, 2));
    }

    #[test]
    fn types_are_event_type_names() {
        assert_eq!(parse_types(None).unwrap(), None);
        assert_eq!(
            parse_types(Some("SessionCreated, MessageSent")).unwrap(),
            Some(vec!["SessionCreated".to_owned(), "MessageSent".to_owned()])
        );
        assert!(parse_types(Some("")).is_err());
        assert!(parse_types(Some(" , ")).is_err());
        assert!(parse_types(Some("Session.Created")).is_err());
        assert!(parse_types(Some("1Session")).is_err());
    }
}
