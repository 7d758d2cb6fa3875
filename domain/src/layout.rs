//! The event log's layout: which aggregate type lives in which stream.
//!
//! Declared here once; the application opens its log from it, the API
//! names the stream of a write from it, and the tests and the history
//! generator lay out their logs by it.

use cqrs_es::Aggregate;

use crate::auto_reply::{AutoReplyRuleHour, AutoReplyThread};
use crate::campaign::Campaign;
use crate::inbound::Inbound;
use crate::list_check::ListCheck;
use crate::message::Message;
use crate::order::Order;
use crate::plan::Plan;
use crate::recipient_batch::RecipientBatch;
use crate::schedule::Schedule;
use crate::session::Session;
use crate::session_day::SessionDay;
use crate::team::Team;
use crate::wallet::Wallet;
use crate::webhook::WebhookSubscription;

/// A stream of the event log, by the logical name the checkpoints keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogStream {
    /// Long-lived aggregates (sessions, campaigns, wallets, ...), kept
    /// forever.
    Events,
    /// Per-message aggregates (sent to one recipient, received by a
    /// session, queued in a batch), kept for the message retention.
    Messages,
}

impl LogStream {
    /// Both streams.
    pub const ALL: [Self; 2] = [Self::Events, Self::Messages];

    /// The logical name (`events`, `messages`): the one in the event log's
    /// configuration and in `projection_checkpoint.stream`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Messages => "messages",
        }
    }

    /// The stream of a logical name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The aggregate types whose events it holds.
    pub const fn aggregate_types(self) -> &'static [&'static str] {
        match self {
            Self::Events => &[
                Session::TYPE,
                SessionDay::TYPE,
                Schedule::TYPE,
                Plan::TYPE,
                Wallet::TYPE,
                Campaign::TYPE,
                WebhookSubscription::TYPE,
                ListCheck::TYPE,
                Order::TYPE,
                Team::TYPE,
            ],
            Self::Messages => &[
                Message::TYPE,
                Inbound::TYPE,
                RecipientBatch::TYPE,
                AutoReplyThread::TYPE,
                AutoReplyRuleHour::TYPE,
            ],
        }
    }

    /// Whether its events are kept forever (`false`: for the message
    /// retention only).
    pub const fn kept_forever(self) -> bool {
        matches!(self, Self::Events)
    }

    /// The stream holding an aggregate type's events, if it is one of
    /// wablast's.
    pub fn of(aggregate_type: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.aggregate_types().contains(&aggregate_type))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_aggregate_type_is_in_exactly_one_stream() {
        let all: Vec<&str> = LogStream::ALL
            .iter()
            .flat_map(|s| s.aggregate_types().iter().copied())
            .collect();
        let mut unique = all.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(all.len(), unique.len(), "a type in two streams: {all:?}");
        assert_eq!(LogStream::of(Message::TYPE), Some(LogStream::Messages));
        assert_eq!(LogStream::of(Campaign::TYPE), Some(LogStream::Events));
        assert_eq!(LogStream::of("counter"), None);
    }

    #[test]
    fn names_parse_back() {
        for stream in LogStream::ALL {
            assert_eq!(LogStream::parse(stream.name()), Some(stream));
        }
    }
}
