//! An event as integrators receive it, on the event stream (SSE) and in
//! webhooks alike.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;
use wablast_eventstore::RecordedEvent;

use crate::LogStream;

/// One event of the log, upcast to its current version.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventData {
    /// The event's id.
    pub event_id: Uuid,
    /// Its type (also the SSE `event` field).
    #[serde(rename = "type")]
    #[schema(example = "SessionCreated")]
    pub event_type: String,
    /// Its version: the current one (older events are upcast).
    #[schema(example = "1.0")]
    pub version: String,
    /// The type of aggregate it belongs to (`session`, `campaign`,
    /// `message`, ...).
    #[schema(example = "session")]
    pub aggregate_type: String,
    /// That aggregate's id.
    pub aggregate_id: String,
    /// Its place in the aggregate's history, from 1.
    pub sequence: u64,
    /// The log stream it is in: `events` or `messages`.
    #[schema(example = "events")]
    pub stream: &'static str,
    /// Sequence of its commit in that stream (events of one commit share
    /// it).
    pub stream_sequence: u64,
    /// Its place in its commit, from 0.
    pub index: usize,
    /// When it was committed.
    pub occurred_at: DateTime<Utc>,
    /// The command that produced it.
    pub command_id: Uuid,
    /// What one original request set off.
    pub correlation_id: Uuid,
    /// The event or request that caused the command, if any.
    pub causation_id: Option<Uuid>,
    /// Who issued the command (`user:<id>`, `api_key:<id>`,
    /// `engine:<id>`, `system`).
    pub actor: String,
    /// The event itself, `{"<type>": {...its fields}}` (one of the
    /// schemas of [`EventPayload`]).
    #[schema(value_type = EventPayload)]
    pub payload: Value,
}

/// Every event type, by the aggregate it belongs to: an event is
/// `{"<type>": {...its fields}}`, as each schema below says.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(
    dead_code,
    reason = "the OpenAPI schema of `EventData.payload`, never built"
)]
pub enum EventPayload {
    /// A linked number (`session`).
    Session(wablast_domain::session::SessionEvent),
    /// A number's sends of one local day (`session_day`).
    SessionDay(wablast_domain::session_day::SessionDayEvent),
    /// Active hours (`schedule`).
    Schedule(wablast_domain::schedule::ScheduleEvent),
    /// A plan on offer (`plan`).
    Plan(wablast_domain::plan::PlanEvent),
    /// Points and plan (`wallet`).
    Wallet(wablast_domain::wallet::WalletEvent),
    /// A tenant's members and invitations (`team`).
    Team(wablast_domain::team::TeamEvent),
    /// An order paid through Midtrans (`order`).
    Order(wablast_domain::order::OrderEvent),
    /// A broadcast (`campaign`).
    Campaign(wablast_domain::campaign::CampaignEvent),
    /// A webhook subscription (`webhook`).
    Webhook(wablast_domain::webhook::WebhookEvent),
    /// A check of a contact list's numbers (`list_check`).
    ListCheck(wablast_domain::list_check::ListCheckEvent),
    /// One message to one recipient (`message`).
    Message(wablast_domain::message::MessageEvent),
    /// A message received (`inbound`).
    Inbound(wablast_domain::inbound::InboundEvent),
    /// A campaign's recipients, queued (`recipient_batch`).
    RecipientBatch(wablast_domain::recipient_batch::RecipientBatchEvent),
    /// The auto-responder's decisions for one contact (`auto_reply_thread`).
    AutoReplyThread(wablast_domain::auto_reply::AutoReplyEvent),
    /// A rule's answers in one hour (`auto_reply_rule_hour`).
    AutoReplyRuleHour(wablast_domain::auto_reply::RuleHourEvent),
}

impl EventData {
    /// The event at `index` of its commit in `stream` (already upcast).
    pub fn new(stream: LogStream, index: usize, event: RecordedEvent) -> Self {
        Self {
            event_id: event.event_id,
            event_type: event.event_type,
            version: event.event_version,
            aggregate_type: event.aggregate_type,
            aggregate_id: event.aggregate_id,
            sequence: event.sequence,
            stream: stream.name(),
            stream_sequence: event.stream_sequence,
            index,
            occurred_at: event.occurred_at,
            command_id: event.command_id,
            correlation_id: event.correlation_id,
            causation_id: event.causation_id,
            actor: event.actor.to_string(),
            payload: event.payload,
        }
    }
}

/// The position in `stream` right after the event at `index` of a commit
/// of `count` events: `events:123` once the whole commit is read,
/// `events:123.2` after its first two events. As in the event stream's
/// ids, so a webhook's `id` is also where a replay goes on from.
pub fn position_after(stream: LogStream, sequence: u64, index: usize, count: usize) -> String {
    if index + 1 < count {
        format!("{}:{sequence}.{}", stream.name(), index + 1)
    } else {
        format!("{}:{sequence}", stream.name())
    }
}

/// A webhook's body: the event wrapped with what every receiver reads
/// first.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookBody {
    /// The event's position in the log ([`position_after`]): unique per
    /// event and stable across retries and replays; deduplicate on it.
    #[schema(example = "messages:1042")]
    pub id: String,
    /// The event's type.
    #[serde(rename = "type")]
    #[schema(example = "MessageDelivered")]
    pub event_type: String,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// The tenant it belongs to.
    pub tenant_id: Uuid,
    /// The event, as on the event stream.
    pub data: EventData,
}

impl WebhookBody {
    /// The body of the event at `index` of a commit of `count` events in
    /// `stream` (already upcast), as the bytes POSTed: its position (the
    /// `id`) and its JSON.
    pub fn render(
        stream: LogStream,
        index: usize,
        count: usize,
        tenant_id: Uuid,
        event: RecordedEvent,
    ) -> Result<(String, String), serde_json::Error> {
        let position = position_after(stream, event.stream_sequence, index, count);
        let body = Self {
            id: position.clone(),
            event_type: event.event_type.clone(),
            occurred_at: event.occurred_at,
            tenant_id,
            data: EventData::new(stream, index, event),
        };
        Ok((position, serde_json::to_string(&body)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_name_the_commit_and_how_much_of_it_was_read() {
        assert_eq!(position_after(LogStream::Events, 7, 0, 1), "events:7");
        assert_eq!(position_after(LogStream::Messages, 9, 0, 3), "messages:9.1");
        assert_eq!(position_after(LogStream::Messages, 9, 1, 3), "messages:9.2");
        assert_eq!(position_after(LogStream::Messages, 9, 2, 3), "messages:9");
    }
}
