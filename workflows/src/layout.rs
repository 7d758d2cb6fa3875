//! The event log wablast opens: its streams as the domain lays them out
//! ([`LogStream`]), and where each ends.

use std::time::Duration;

use wablast_domain::layout::LogStream;
use wablast_eventstore::{EventLog, EventLogConfig, EventStoreError, Prefix, StreamSpec};
use wablast_projections::wait::Position;

/// The log's configuration under `prefix`: long-lived aggregates kept
/// forever, per-message aggregates kept for `message_retention`.
pub fn log_config(prefix: Prefix, message_retention: Duration) -> EventLogConfig {
    let streams = LogStream::ALL
        .into_iter()
        .map(|stream| {
            if stream.kept_forever() {
                StreamSpec::kept_forever(stream.name(), stream.aggregate_types())
            } else {
                StreamSpec::with_retention(
                    stream.name(),
                    stream.aggregate_types(),
                    message_retention,
                )
            }
        })
        .collect();
    EventLogConfig::new(prefix, streams)
}

/// The stream an aggregate type's events are in.
///
/// # Errors
/// [`EventStoreError::UnknownAggregateType`] for a type the layout does
/// not name.
pub fn stream_of(aggregate_type: &str) -> Result<LogStream, EventStoreError> {
    LogStream::of(aggregate_type)
        .ok_or_else(|| EventStoreError::UnknownAggregateType(aggregate_type.to_owned()))
}

/// Where the stream holding `aggregate_type` ends now: a projection at
/// this position has applied every commit of that type made so far.
pub async fn end_of_stream(
    log: &EventLog,
    aggregate_type: &str,
) -> Result<Position, EventStoreError> {
    let stream = stream_of(aggregate_type)?;
    let mut handle = log.stream(log.stream_name_of(aggregate_type)?)?.clone();
    let info = handle.info().await.map_err(EventStoreError::nats)?;
    Ok(Position {
        stream,
        sequence: info.state.last_sequence,
    })
}
