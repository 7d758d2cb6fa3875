//! `wablast audit TYPE ID`: an aggregate's full history with who did what,
//! when and by which command, and its state as of a sequence or a time.

use std::fmt::Write as _;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use wablast_eventstore::{AggregateKey, EventLog, RecordedEvent};

/// Up to where the state is folded.
#[derive(Clone, Copy, Debug, Default)]
pub struct AsOf {
    /// Only events up to this aggregate sequence.
    pub sequence: Option<u64>,
    /// Only events that occurred at or before this instant.
    pub time: Option<DateTime<Utc>>,
}

impl AsOf {
    fn includes(&self, event: &RecordedEvent) -> bool {
        self.sequence.is_none_or(|s| event.sequence <= s)
            && self.time.is_none_or(|t| event.occurred_at <= t)
    }
}

/// Finds the aggregate: `TENANT.ID`, or a bare `ID` looked up across
/// tenants.
pub async fn resolve(
    log: &EventLog,
    aggregate_type: &str,
    id: &str,
) -> anyhow::Result<AggregateKey> {
    if id.contains('.') {
        return AggregateKey::from_framework_id(id).context("invalid aggregate id");
    }
    let mut keys = log.find_aggregate(aggregate_type, id).await?;
    match keys.len() {
        0 => bail!("no {aggregate_type} {id} in the log"),
        1 => Ok(keys.remove(0)),
        _ => bail!(
            "{aggregate_type} {id} exists under several tenants ({}); name one as TENANT.ID",
            keys.iter()
                .map(|k| k.tenant())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The report: the history, then the state as of `as_of`.
pub async fn report(
    log: &EventLog,
    aggregate_type: &str,
    key: &AggregateKey,
    as_of: AsOf,
) -> anyhow::Result<String> {
    let history = log.load(aggregate_type, key).await?;
    if history.commits.is_empty() {
        bail!("no {aggregate_type} {key} in the log");
    }
    let mut out = String::new();
    writeln!(
        out,
        "{aggregate_type} {key}: {} commit(s), {} event(s)",
        history.commits.len(),
        history.last_sequence()
    )?;
    let events: Vec<RecordedEvent> = history.into_events().collect();
    let mut last_commit = None;
    for event in &events {
        if last_commit != Some(event.stream_sequence) {
            last_commit = Some(event.stream_sequence);
            writeln!(
                out,
                "\n#{} {} by {} command {} correlation {}{}",
                event.stream_sequence,
                event.occurred_at.to_rfc3339(),
                event.actor,
                event.command_id,
                event.correlation_id,
                event
                    .causation_id
                    .map(|c| format!(" caused by {c}"))
                    .unwrap_or_default(),
            )?;
        }
        writeln!(
            out,
            "  {:>4} {} v{} {}",
            event.sequence,
            event.event_type,
            event.event_version,
            serde_json::to_string(&event.payload)?
        )?;
    }
    let upto: Vec<RecordedEvent> = events.into_iter().filter(|e| as_of.includes(e)).collect();
    let state = state_of(aggregate_type, &upto)?;
    let position = match upto.last() {
        Some(e) => format!("sequence {} ({})", e.sequence, e.occurred_at.to_rfc3339()),
        None => "before its first event".to_owned(),
    };
    writeln!(
        out,
        "\nstate as of {position}:\n{}",
        serde_json::to_string_pretty(&state)?
    )?;
    Ok(out)
}

/// Folds events with the domain's aggregate of that type.
pub fn state_of(
    aggregate_type: &str,
    events: &[RecordedEvent],
) -> anyhow::Result<serde_json::Value> {
    use wablast_domain::{
        campaign, inbound, message, plan, recipient_batch, schedule, session, session_day, wallet,
    };
    let state = match aggregate_type {
        session::Session::TYPE => serde_json::to_value(fold::<session::Session>(events)?),
        session_day::SessionDay::TYPE => {
            serde_json::to_value(fold::<session_day::SessionDay>(events)?)
        }
        schedule::Schedule::TYPE => serde_json::to_value(fold::<schedule::Schedule>(events)?),
        plan::Plan::TYPE => serde_json::to_value(fold::<plan::Plan>(events)?),
        wallet::Wallet::TYPE => serde_json::to_value(fold::<wallet::Wallet>(events)?),
        campaign::Campaign::TYPE => serde_json::to_value(fold::<campaign::Campaign>(events)?),
        message::Message::TYPE => serde_json::to_value(fold::<message::Message>(events)?),
        inbound::Inbound::TYPE => serde_json::to_value(fold::<inbound::Inbound>(events)?),
        recipient_batch::RecipientBatch::TYPE => {
            serde_json::to_value(fold::<recipient_batch::RecipientBatch>(events)?)
        }
        other => bail!("unknown aggregate type {other:?}"),
    };
    Ok(state?)
}

/// Folds events into `A`, as the command side does.
pub fn fold<A: Aggregate>(events: &[RecordedEvent]) -> anyhow::Result<A> {
    let mut aggregate = A::default();
    for event in events {
        let payload = serde_json::from_value(event.payload.clone()).with_context(|| {
            format!(
                "event {} ({} v{}) of {} does not decode",
                event.sequence,
                event.event_type,
                event.event_version,
                A::TYPE
            )
        })?;
        aggregate.apply(payload);
    }
    Ok(aggregate)
}
