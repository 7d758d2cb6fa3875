//! `wablast verify`: replays the whole log through the domain's
//! [`Verifier`], which checks the rules held using its own arithmetic, not
//! the aggregates' code. Prints a report; violations name their events.

use std::fmt::Write as _;

use futures::TryStreamExt;
use wablast_domain::verify::{LoggedEvent, Report, Verifier};
use wablast_eventstore::EventLog;

/// Replays every stream of the log (dead letters aside) from its start.
pub async fn run(log: &EventLog) -> anyhow::Result<Report> {
    let mut verifier = Verifier::default();
    let mut streams: Vec<&str> = log
        .stream_names()
        .filter(|s| *s != log.dead_letter_stream_name())
        .collect();
    // Long-lived aggregates first, then messages: within a stream, log order.
    streams.sort();
    for stream in streams {
        let mut events = log.replay(stream, None, 0).await?;
        while let Some(event) = events.try_next().await? {
            verifier.observe(&LoggedEvent {
                stream: stream.to_owned(),
                stream_sequence: event.stream_sequence,
                aggregate_type: event.aggregate_type,
                tenant: event.tenant,
                aggregate_id: event.aggregate_id,
                sequence: event.sequence,
                event_type: event.event_type,
                occurred_at: event.occurred_at,
                payload: event.payload,
            });
        }
    }
    Ok(verifier.finish())
}

/// The report as an operator reads it.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "verified {} event(s) of {} aggregate(s)",
        report.events, report.aggregates
    );
    for (rule, checked) in &report.checked {
        let _ = writeln!(out, "  {rule}: {checked} checked");
    }
    if report.violations.is_empty() {
        let _ = writeln!(out, "no violations");
    } else {
        let _ = writeln!(out, "{} violation(s):", report.violations.len());
        for violation in &report.violations {
            let _ = writeln!(out, "  {violation}");
        }
    }
    out
}
