//! The command handlers, one per aggregate type, sharing one event log: the
//! engine and its processes use them, and the API (as its `Commands`).

use cqrs_es::Aggregate;
use wablast_domain::auto_reply::{AutoReplyRuleHour, AutoReplyThread};
use wablast_domain::campaign::Campaign;
use wablast_domain::inbound::Inbound;
use wablast_domain::layout::LogStream;
use wablast_domain::list_check::ListCheck;
use wablast_domain::message::Message;
use wablast_domain::order::Order;
use wablast_domain::plan::Plan;
use wablast_domain::recipient_batch::RecipientBatch;
use wablast_domain::schedule::Schedule;
use wablast_domain::session::Session;
use wablast_domain::session_day::SessionDay;
use wablast_domain::team::Team;
use wablast_domain::types::TenantId;
use wablast_domain::wallet::Wallet;
use wablast_domain::webhook::WebhookSubscription;
use wablast_eventstore::command::SnapshotPolicy;
use wablast_eventstore::{AggregateKey, CommandHandler, CommandMetadata, Committed, EventLog};
use wablast_projections::wait::Position;

/// A handler per aggregate type.
#[derive(Clone)]
pub struct Commands {
    /// Linked numbers.
    pub sessions: CommandHandler<Session>,
    /// Send allowances per session and local day.
    pub session_days: CommandHandler<SessionDay>,
    /// Tenants' active hours.
    pub schedules: CommandHandler<Schedule>,
    /// Subscription plans (platform-wide).
    pub plans: CommandHandler<Plan>,
    /// Tenants' points and plans.
    pub wallets: CommandHandler<Wallet>,
    /// Broadcasts.
    pub campaigns: CommandHandler<Campaign>,
    /// Per-recipient messages.
    pub messages: CommandHandler<Message>,
    /// Campaigns' recipients, queued in batches.
    pub recipient_batches: CommandHandler<RecipientBatch>,
    /// Messages received.
    pub inbound: CommandHandler<Inbound>,
    /// The auto-responder's decisions, per contact and session.
    pub auto_reply_threads: CommandHandler<AutoReplyThread>,
    /// Auto-reply rules' answers per hour.
    pub auto_reply_rule_hours: CommandHandler<AutoReplyRuleHour>,
    /// Webhook subscriptions turned off and on.
    pub webhooks: CommandHandler<WebhookSubscription>,
    /// Checks of contact lists' numbers.
    pub list_checks: CommandHandler<ListCheck>,
    /// Orders paid through the payment gateway.
    pub orders: CommandHandler<Order>,
    /// Tenants' members and invitations.
    pub teams: CommandHandler<Team>,
}

impl Commands {
    /// Handlers on `log`, reading older events through the domain's
    /// upcasters.
    pub fn new(log: &EventLog) -> Self {
        fn handler<A: Aggregate<Services = ()> + Clone>(log: &EventLog) -> CommandHandler<A> {
            CommandHandler::new(log.clone(), ()).with_upcasters(wablast_domain::upcasters())
        }
        Self {
            sessions: handler(log),
            // A day counter's state grows with its grants (the messages it
            // granted, up to the daily limit), so a snapshot every 50
            // would write the whole set again and again: 200 snapshots of
            // up to 370 KB for a day of 10,000. The send loop keeps its
            // counter in memory; only a takeover reads up to 1,000 events.
            session_days: handler(log).with_snapshots(SnapshotPolicy {
                every: 1_000,
                ..SnapshotPolicy::default()
            }),
            schedules: handler(log),
            plans: handler(log),
            wallets: handler(log),
            campaigns: handler(log),
            messages: handler(log),
            recipient_batches: handler(log),
            inbound: handler(log),
            auto_reply_threads: handler(log),
            auto_reply_rule_hours: handler(log),
            webhooks: handler(log),
            list_checks: handler(log),
            orders: handler(log),
            teams: handler(log),
        }
    }
}

/// The key of a tenant's aggregate whose id is a UUID (every one but the
/// day counters: [`day_key`]).
pub fn key(tenant: TenantId, id: impl Into<uuid::Uuid>) -> AggregateKey {
    AggregateKey::from_uuids(tenant.into(), id.into())
}

/// The key of a session's day counter (its id is the session and the
/// local date, `session_day::aggregate_id`).
pub fn day_key(tenant: TenantId, day_id: &str) -> AggregateKey {
    AggregateKey::new(tenant, day_id).expect("a session day id is a subject token")
}

/// The key of a tenant's own aggregates (wallet, schedule).
pub fn tenant_key(tenant: TenantId) -> AggregateKey {
    key(tenant, tenant)
}

/// Where a command of aggregate `A` was written: the position a reader
/// waits for to see it (`X-Wablast-Position`).
pub fn position<A: Aggregate>(committed: &Committed<A>) -> Position {
    Position {
        stream: LogStream::of(A::TYPE).unwrap_or(LogStream::Events),
        sequence: committed.stream_sequence,
    }
}

/// Metadata for a command that follows another in the same workflow: its
/// own id, the same correlation (and so the same request).
pub fn follow_up(metadata: &CommandMetadata) -> CommandMetadata {
    CommandMetadata {
        command_id: uuid::Uuid::now_v7(),
        ..metadata.clone()
    }
}
