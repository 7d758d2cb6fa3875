//! Proof that the rules held: a replay of the whole log that checks the
//! invariants with its own bookkeeping, not with the aggregates' code.
//!
//! The aggregates refuse what breaks a rule; this module assumes nothing
//! about them. It reads the events as they were recorded and recomputes:
//!
//! - [`Rule::WalletNeverNegative`]: each wallet's balance, reservations and
//!   available points, summed from the movements, never go below zero;
//! - [`Rule::WalletFiguresAddUp`]: the figures each wallet event recorded
//!   (`balance_after`, ...) equal that sum;
//! - [`Rule::CapturedTwicePerSent`]: for each settled campaign, the points
//!   captured are 2 × the `MessageSent` events of its messages, and each
//!   message cost 2 points;
//! - [`Rule::DailyLimit`]: no session was granted more sends in one local
//!   day (in the tenant's time zone in force) than the daily limit in force;
//! - [`Rule::ActiveHours`]: every grant fell inside the active hours in
//!   force (override `activate` included, `pause` excluded);
//! - [`Rule::GovernorCaps`]: every grant the sender governor held
//!   (`governed`) kept the caps it recorded: the day's warm-up allowance,
//!   sends in any 60 seconds and in any hour, new contacts that day, the
//!   same text in any hour (windows within the grant's local day, as the
//!   day counter counts them);
//! - [`Rule::NoNewContactWhileRestricted`]: no grant to a new contact while
//!   a restriction reported on the session (`SenderRestricted`) held, no
//!   grant at all while one of all sending held, and no grant that skipped
//!   the governor while any held;
//! - [`Rule::SentWithASlot`]: every message sent had a slot granted;
//! - [`Rule::StatusNeverRegresses`]: no message status went backwards, and
//!   no message was sent twice;
//! - [`Rule::NoSendWhileSuspended`]: no slot was granted to a session of
//!   a tenant the platform operator had suspended then;
//! - [`Rule::CreditedOncePerOrder`]: a wallet credit that names an order
//!   (reference `order:<id>`) follows that order's payment, credits the
//!   order's points for its tenant, and no order is credited twice;
//! - [`Rule::PlanBackedByPayment`]: every plan subscription comes from a
//!   paid order of that plan, or is an operator's grant (a reference that
//!   names no order);
//! - [`Rule::Readable`]: every event decodes as its aggregate's event
//!   (the only rule for aggregates with no invariant checked here: plans,
//!   campaigns, inbound messages).
//!
//! Feed it events stream by stream in log order ([`Verifier::observe`]),
//! then [`Verifier::finish`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::de::DeserializeOwned;

use crate::governor::{Restriction, RestrictionScope};
use crate::message::MessageEvent;
use crate::order::{OrderEvent, OrderItem};
use crate::schedule::ScheduleEvent;
use crate::session::SessionEvent;
use crate::session_day::{Governed, SessionDayEvent};
use crate::types::active_hours::{ActiveHours, Override, TimeZone, Window};
use crate::types::{CampaignId, DailyLimit, MessageId, PlanId, Points, SessionId};
use crate::wallet::WalletEvent;

/// One event as recorded in the log, with where it is.
#[derive(Debug, Clone)]
pub struct LoggedEvent {
    /// The stream holding it.
    pub stream: String,
    /// Its commit's position in that stream.
    pub stream_sequence: u64,
    /// Its aggregate's type.
    pub aggregate_type: String,
    /// Its aggregate's tenant.
    pub tenant: String,
    /// Its aggregate's id.
    pub aggregate_id: String,
    /// Its position in its aggregate's history.
    pub sequence: u64,
    /// Its type.
    pub event_type: String,
    /// When it was committed.
    pub occurred_at: DateTime<Utc>,
    /// The event.
    pub payload: serde_json::Value,
}

/// The rules checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// Balance, reservations and available points never negative.
    WalletNeverNegative,
    /// Recorded wallet figures equal the sum of the movements.
    WalletFiguresAddUp,
    /// Captured points = 2 × messages sent, per settled campaign.
    CapturedTwicePerSent,
    /// No session over its daily limit on any local day.
    DailyLimit,
    /// No send outside active hours.
    ActiveHours,
    /// No sender over a governor cap in any window.
    GovernorCaps,
    /// No send to a new contact (or at all) while restricted.
    NoNewContactWhileRestricted,
    /// No message sent without a granted slot.
    SentWithASlot,
    /// No message status regression, no message sent twice.
    StatusNeverRegresses,
    /// No send while the tenant is suspended.
    NoSendWhileSuspended,
    /// No order credited twice, nor before it was paid.
    CreditedOncePerOrder,
    /// A plan subscribed only after its payment, or by a grant.
    PlanBackedByPayment,
    /// Every event decodes.
    Readable,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::WalletNeverNegative => "wallet never negative",
            Self::WalletFiguresAddUp => "wallet figures add up",
            Self::CapturedTwicePerSent => "points captured = 2 x messages sent",
            Self::DailyLimit => "no session over its daily limit",
            Self::ActiveHours => "no send outside active hours",
            Self::GovernorCaps => "no sender over a governor cap",
            Self::NoNewContactWhileRestricted => "no new contact while restricted",
            Self::SentWithASlot => "no send without a slot",
            Self::StatusNeverRegresses => "no message status regression",
            Self::NoSendWhileSuspended => "no send while the tenant is suspended",
            Self::CreditedOncePerOrder => "no point credited twice for one order",
            Self::PlanBackedByPayment => "a plan only after a confirmed payment or a grant",
            Self::Readable => "every event readable",
        })
    }
}

/// A rule broken, and the event that broke it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule.
    pub rule: Rule,
    /// `<stream>#<stream sequence>`: where the event is.
    pub position: String,
    /// `<type> <tenant>.<id> @<sequence>`: whose event it is.
    pub aggregate: String,
    /// What is wrong.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] {} {}: {}",
            self.rule, self.position, self.aggregate, self.detail
        )
    }
}

/// What the replay found.
#[derive(Debug, Default)]
pub struct Report {
    /// Events read.
    pub events: u64,
    /// Distinct aggregates seen.
    pub aggregates: u64,
    /// How many times each rule was checked.
    pub checked: BTreeMap<Rule, u64>,
    /// The rules broken.
    pub violations: Vec<Violation>,
}

impl Report {
    /// Whether every rule held.
    pub fn holds(&self) -> bool {
        self.violations.is_empty()
    }
}

#[derive(Default)]
struct WalletBook {
    balance: i128,
    reserved: HashMap<CampaignId, i128>,
}

impl WalletBook {
    fn reserved_total(&self) -> i128 {
        self.reserved.values().sum()
    }
}

/// An order as the log told it so far.
struct OrderBook {
    tenant: String,
    item: OrderItem,
    paid: bool,
    credited: bool,
}

/// Where a campaign's settlement was recorded, and what it claimed.
struct Settlement {
    captured: u64,
    claimed_sent: u64,
    at: DateTime<Utc>,
    position: String,
    aggregate: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Queued,
    Sending,
    Sent,
    Delivered,
    Read,
    Failed { retryable: bool },
    Cancelled,
    Unknown,
}

impl Status {
    /// Position along queued → sending → sent → delivered → read.
    fn rank(self) -> Option<u8> {
        match self {
            Self::Queued => Some(0),
            Self::Sending => Some(1),
            Self::Sent => Some(2),
            Self::Delivered => Some(3),
            Self::Read => Some(4),
            _ => None,
        }
    }
}

struct MessageBook {
    status: Status,
    campaign: CampaignId,
    sends: u32,
}

struct Schedule {
    timezone: TimeZone,
    windows: Vec<Window>,
    override_mode: Override,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            timezone: TimeZone::default(),
            windows: Vec::new(),
            override_mode: Override::None,
        }
    }
}

/// A grant of a session's day: instant, text hash, new contact.
type DayGrant = (DateTime<Utc>, Option<u64>, bool);

/// A grant to check against the restrictions: session, instant, new
/// contact (`None`: not governed), position, aggregate.
type RestrictedCheck = (SessionId, DateTime<Utc>, Option<bool>, String, String);

/// The replay's bookkeeping. See the module docs.
#[derive(Default)]
pub struct Verifier {
    report: Report,
    aggregates: HashSet<(String, String, String)>,
    wallets: HashMap<String, WalletBook>,
    settlements: HashMap<CampaignId, Settlement>,
    reserved_at: HashMap<CampaignId, DateTime<Utc>>,
    messages: HashMap<String, MessageBook>,
    sent_per_campaign: HashMap<CampaignId, u64>,
    sent_messages: Vec<(MessageId, String, String)>,
    /// When the oldest message event still in the log was recorded, if the
    /// messages stream has lost older ones to its retention.
    messages_expired_before: Option<DateTime<Utc>>,
    messages_seen: bool,
    /// Each stream's first event read: its stream sequence and time. A
    /// first sequence above 1 means the retention took what came before.
    stream_starts: HashMap<String, (u64, DateTime<Utc>)>,
    daily_limits: HashMap<SessionId, DailyLimit>,
    schedules: HashMap<String, Schedule>,
    grants: HashMap<(SessionId, NaiveDate), u32>,
    granted: HashSet<MessageId>,
    /// Since when each suspended tenant is suspended.
    suspended: HashMap<String, DateTime<Utc>>,
    /// Each session's grants of each local day: instant, text hash, new
    /// contact.
    day_grants: HashMap<(SessionId, NaiveDate), Vec<DayGrant>>,
    /// The restrictions reported on each session.
    restrictions: HashMap<SessionId, Vec<Restriction>>,
    /// Every grant, for the restriction check at the end (the sessions'
    /// events may come after their day counters'): session, instant,
    /// new contact (`None`: not governed), where.
    restricted_checks: Vec<RestrictedCheck>,
    orders: HashMap<String, OrderBook>,
}

impl Verifier {
    /// Checks one event against everything seen before it.
    pub fn observe(&mut self, event: &LoggedEvent) {
        self.report.events += 1;
        self.aggregates.insert((
            event.aggregate_type.clone(),
            event.tenant.clone(),
            event.aggregate_id.clone(),
        ));
        if !self.stream_starts.contains_key(&event.stream) {
            self.stream_starts.insert(
                event.stream.clone(),
                (event.stream_sequence, event.occurred_at),
            );
        }
        match event.aggregate_type.as_str() {
            "wallet" => {
                if let Some(e) = self.decode::<WalletEvent>(event) {
                    self.wallet(event, e);
                }
            }
            "message" => {
                if let Some(e) = self.decode::<MessageEvent>(event) {
                    self.message(event, e);
                }
            }
            "session" => {
                if let Some(e) = self.decode::<SessionEvent>(event) {
                    self.session(event, e);
                }
            }
            "schedule" => {
                if let Some(e) = self.decode::<ScheduleEvent>(event) {
                    self.schedule(event, e);
                }
            }
            "session_day" => {
                if let Some(SessionDayEvent::SlotGranted {
                    session_id,
                    message_id,
                    at,
                    local_date,
                    count_after,
                    governed,
                    ..
                }) = self.decode::<SessionDayEvent>(event)
                {
                    self.grant(event, session_id, message_id, at, local_date, count_after);
                    self.governed(event, session_id, at, governed.as_ref());
                }
            }
            // Aggregates with no invariant checked here (plans, campaigns,
            // inbound messages, recipient batches) still have to be readable.
            "plan" => {
                self.decode::<crate::plan::PlanEvent>(event);
            }
            "team" => {
                self.decode::<crate::team::TeamEvent>(event);
            }
            "order" => {
                if let Some(e) = self.decode::<OrderEvent>(event) {
                    self.order(event, e);
                }
            }
            "campaign" => {
                self.decode::<crate::campaign::CampaignEvent>(event);
            }
            "inbound" => {
                self.decode::<crate::inbound::InboundEvent>(event);
            }
            "recipient_batch" => {
                self.decode::<crate::recipient_batch::RecipientBatchEvent>(event);
            }
            "auto_reply_thread" => {
                self.decode::<crate::auto_reply::AutoReplyEvent>(event);
            }
            "auto_reply_rule_hour" => {
                self.decode::<crate::auto_reply::RuleHourEvent>(event);
            }
            "webhook" => {
                self.decode::<crate::webhook::WebhookEvent>(event);
            }
            "list_check" => {
                self.decode::<crate::list_check::ListCheckEvent>(event);
            }
            _ => {}
        }
    }

    /// Checks what can only be checked once everything was read, and
    /// returns the report.
    pub fn finish(mut self) -> Report {
        for (session_id, at, new_contact, position, aggregate) in
            std::mem::take(&mut self.restricted_checks)
        {
            self.count(Rule::NoNewContactWhileRestricted);
            let holding = self
                .restrictions
                .get(&session_id)
                .into_iter()
                .flatten()
                .find(|r| {
                    r.holds_at(at)
                        && (r.kind.scope() == RestrictionScope::All || new_contact != Some(false))
                })
                .copied();
            if let Some(r) = holding {
                let what = match new_contact {
                    Some(true) => "to a new contact",
                    Some(false) => "at all",
                    None => "without the governor",
                };
                self.violations(Violation {
                    rule: Rule::NoNewContactWhileRestricted,
                    position,
                    aggregate,
                    detail: format!(
                        "session {session_id} was granted a send {what} at {at}, restricted ({}) from {} until {}",
                        r.kind.as_str(),
                        r.since,
                        r.until
                    ),
                });
            }
        }
        for (message_id, position, aggregate) in std::mem::take(&mut self.sent_messages) {
            self.count(Rule::SentWithASlot);
            if !self.granted.contains(&message_id) {
                self.violations(Violation {
                    rule: Rule::SentWithASlot,
                    position,
                    aggregate,
                    detail: format!(
                        "message {message_id} was sent but no slot was ever granted for it"
                    ),
                });
            }
        }
        let mut settlements: Vec<_> = std::mem::take(&mut self.settlements).into_iter().collect();
        settlements.sort_by(|a, b| a.1.position.cmp(&b.1.position));
        for (campaign, settlement) in settlements {
            let started = self
                .reserved_at
                .get(&campaign)
                .copied()
                .unwrap_or(settlement.at);
            if self.messages_expired_before.is_some_and(|t| started < t) {
                // Some of its messages may have left the log with the
                // retention: their sends can no longer be counted.
                continue;
            }
            self.count(Rule::CapturedTwicePerSent);
            let sent = self.sent_per_campaign.get(&campaign).copied().unwrap_or(0);
            let expected = Points::for_messages(sent).map_or(u64::MAX, Points::value);
            if settlement.captured != expected || settlement.claimed_sent != sent {
                self.violations(Violation {
                    rule: Rule::CapturedTwicePerSent,
                    position: settlement.position,
                    aggregate: settlement.aggregate,
                    detail: format!(
                        "campaign {campaign}: captured {} points for {} messages claimed, but the log holds {sent} MessageSent ({expected} points)",
                        settlement.captured, settlement.claimed_sent
                    ),
                });
            }
        }
        self.report.aggregates = self.aggregates.len() as u64;
        self.report
    }

    fn decode<E: DeserializeOwned>(&mut self, event: &LoggedEvent) -> Option<E> {
        self.count(Rule::Readable);
        match serde_json::from_value(event.payload.clone()) {
            Ok(decoded) => Some(decoded),
            Err(err) => {
                self.violation(
                    Rule::Readable,
                    event,
                    format!("{} does not decode: {err}", event.event_type),
                );
                None
            }
        }
    }

    fn count(&mut self, rule: Rule) {
        *self.report.checked.entry(rule).or_default() += 1;
    }

    fn violations(&mut self, violation: Violation) {
        self.report.violations.push(violation);
    }

    fn violation(&mut self, rule: Rule, event: &LoggedEvent, detail: String) {
        self.violations(Violation {
            rule,
            position: position(event),
            aggregate: aggregate(event),
            detail,
        });
    }

    fn order(&mut self, event: &LoggedEvent, e: OrderEvent) {
        match e {
            OrderEvent::OrderCreated { order_id, item, .. } => {
                self.orders.insert(
                    order_id.to_string(),
                    OrderBook {
                        tenant: event.tenant.clone(),
                        item,
                        paid: false,
                        credited: false,
                    },
                );
            }
            OrderEvent::OrderPaid { .. } => {
                if let Some(order) = self.orders.get_mut(&event.aggregate_id) {
                    order.paid = true;
                }
            }
            _ => {}
        }
    }

    /// Checks a wallet credit against the orders: one that names an order
    /// must follow its payment, credit its item, once; a plan that names
    /// none is a grant.
    fn credit(
        &mut self,
        event: &LoggedEvent,
        reference: &str,
        plan: Option<PlanId>,
        points: Points,
    ) {
        let order_id = reference
            .strip_prefix("order:")
            .filter(|rest| !rest.contains(':'));
        if plan.is_some() {
            self.count(Rule::PlanBackedByPayment);
        }
        let Some(order_id) = order_id else {
            // An operator's grant (`POST /admin/tenants/{id}/grant`).
            return;
        };
        self.count(Rule::CreditedOncePerOrder);
        let problem = match self.orders.get_mut(order_id) {
            None => Some((
                Rule::CreditedOncePerOrder,
                format!("credit for order {order_id}, which the log does not hold"),
            )),
            Some(order) if order.tenant != event.tenant => Some((
                Rule::CreditedOncePerOrder,
                format!(
                    "order {order_id} of tenant {} credited to another wallet",
                    order.tenant
                ),
            )),
            Some(order) if order.credited => Some((
                Rule::CreditedOncePerOrder,
                format!("order {order_id} credited a second time"),
            )),
            Some(order) if !order.paid => {
                order.credited = true;
                Some((
                    if plan.is_some() {
                        Rule::PlanBackedByPayment
                    } else {
                        Rule::CreditedOncePerOrder
                    },
                    format!("order {order_id} credited before any confirmed payment"),
                ))
            }
            Some(order) => {
                order.credited = true;
                let expected_plan = match &order.item {
                    OrderItem::Plan { terms } => Some(terms.plan_id),
                    OrderItem::TopUp { .. } => None,
                };
                if expected_plan != plan || order.item.points() != points {
                    Some((
                        if plan.is_some() {
                            Rule::PlanBackedByPayment
                        } else {
                            Rule::CreditedOncePerOrder
                        },
                        format!(
                            "order {order_id} credited with something else than what was bought ({points} points)"
                        ),
                    ))
                } else {
                    None
                }
            }
        };
        if let Some((rule, detail)) = problem {
            self.violation(rule, event, detail);
        }
    }

    fn wallet(&mut self, event: &LoggedEvent, e: WalletEvent) {
        match &e {
            WalletEvent::PlanSubscribed {
                terms,
                points,
                reference,
                ..
            } => self.credit(event, reference, Some(terms.plan_id), *points),
            WalletEvent::PointsToppedUp {
                points, reference, ..
            }
            | WalletEvent::PointsGranted {
                points, reference, ..
            } => self.credit(event, reference, None, *points),
            _ => {}
        }
        let book = self
            .wallets
            .entry(format!("{}.{}", event.tenant, event.aggregate_id))
            .or_default();
        let points = |p: Points| i128::from(p.value());
        let recorded = match &e {
            WalletEvent::PlanSubscribed {
                points: p,
                balance_after,
                reserved_after,
                available_after,
                ..
            }
            | WalletEvent::PointsToppedUp {
                points: p,
                balance_after,
                reserved_after,
                available_after,
                ..
            }
            | WalletEvent::PointsGranted {
                points: p,
                balance_after,
                reserved_after,
                available_after,
                ..
            } => {
                book.balance += points(*p);
                Some((*balance_after, *reserved_after, *available_after))
            }
            WalletEvent::PointsReserved {
                campaign_id,
                points: p,
                balance_after,
                reserved_after,
                available_after,
                at,
                ..
            } => {
                *book.reserved.entry(*campaign_id).or_default() += points(*p);
                self.reserved_at.entry(*campaign_id).or_insert(*at);
                Some((*balance_after, *reserved_after, *available_after))
            }
            WalletEvent::PointsCaptured {
                campaign_id,
                points: p,
                messages_sent,
                balance_after,
                reserved_after,
                available_after,
                at,
                ..
            } => {
                book.balance -= points(*p);
                *book.reserved.entry(*campaign_id).or_default() -= points(*p);
                self.settlements.insert(
                    *campaign_id,
                    Settlement {
                        captured: p.value(),
                        claimed_sent: *messages_sent,
                        at: *at,
                        position: position(event),
                        aggregate: aggregate(event),
                    },
                );
                Some((*balance_after, *reserved_after, *available_after))
            }
            WalletEvent::ReservationReleased {
                campaign_id,
                points: p,
                balance_after,
                reserved_after,
                available_after,
                at,
                ..
            } => {
                *book.reserved.entry(*campaign_id).or_default() -= points(*p);
                // Settled with nothing captured: still a settlement to check
                // against the messages sent.
                if !self.settlements.contains_key(campaign_id) {
                    self.settlements.insert(
                        *campaign_id,
                        Settlement {
                            captured: 0,
                            claimed_sent: 0,
                            at: *at,
                            position: position(event),
                            aggregate: aggregate(event),
                        },
                    );
                }
                Some((*balance_after, *reserved_after, *available_after))
            }
            WalletEvent::ReservationCancelled {
                campaign_id,
                points: p,
                balance_after,
                reserved_after,
                available_after,
                ..
            } => {
                *book.reserved.entry(*campaign_id).or_default() -= points(*p);
                Some((*balance_after, *reserved_after, *available_after))
            }
            WalletEvent::TenantSuspended { at, .. } => {
                self.suspended.insert(event.tenant.clone(), *at);
                None
            }
            WalletEvent::TenantReactivated { .. } => {
                self.suspended.remove(&event.tenant);
                None
            }
            WalletEvent::PlanExpired { .. }
            | WalletEvent::PlanExpiryWarned { .. }
            | WalletEvent::PlanRenewalDue { .. }
            | WalletEvent::BalanceLowWarned { .. } => None,
            WalletEvent::PointsTakenBack {
                taken,
                balance_after,
                reserved_after,
                available_after,
                ..
            } => {
                book.balance -= points(*taken);
                Some((*balance_after, *reserved_after, *available_after))
            }
        };
        let (balance, reserved) = (book.balance, book.reserved_total());
        let negative_reservation = book
            .reserved
            .iter()
            .find(|(_, r)| **r < 0)
            .map(|(c, r)| (*c, *r));
        self.count(Rule::WalletNeverNegative);
        if balance < 0 || balance - reserved < 0 {
            self.violation(
                Rule::WalletNeverNegative,
                event,
                format!(
                    "balance {balance}, reserved {reserved}, available {}",
                    balance - reserved
                ),
            );
        }
        if let Some((campaign, r)) = negative_reservation {
            self.violation(
                Rule::WalletNeverNegative,
                event,
                format!("reservation of campaign {campaign} at {r}"),
            );
        }
        if let Some((b, r, a)) = recorded {
            self.count(Rule::WalletFiguresAddUp);
            if (points(b), points(r), points(a)) != (balance, reserved, balance - reserved) {
                self.violation(
                    Rule::WalletFiguresAddUp,
                    event,
                    format!(
                        "recorded balance/reserved/available {}/{}/{}, movements sum to {balance}/{reserved}/{}",
                        b.value(),
                        r.value(),
                        a.value(),
                        balance - reserved
                    ),
                );
            }
        }
    }

    fn message(&mut self, event: &LoggedEvent, e: MessageEvent) {
        if !self.messages_seen {
            self.messages_seen = true;
            // The stream's first event, not this one: inbound messages
            // share the stream, and one may come before the first message.
            if let Some(&(first, at)) = self.stream_starts.get(&event.stream)
                && first > 1
            {
                self.messages_expired_before = Some(at);
            }
        }
        let key = format!("{}.{}", event.tenant, event.aggregate_id);
        self.count(Rule::StatusNeverRegresses);
        let current = self.messages.get(&key).map(|m| m.status);
        let (next, problem) = match (&e, current) {
            (MessageEvent::MessageQueued { campaign_id, .. }, None) => {
                self.messages.insert(
                    key.clone(),
                    MessageBook {
                        status: Status::Queued,
                        campaign: *campaign_id,
                        sends: 0,
                    },
                );
                return;
            }
            (MessageEvent::MessageQueued { .. }, Some(s)) => {
                (s, Some(format!("queued again while {s:?}")))
            }
            (_, None) if self.messages_expired_before.is_some() => return, // its start expired
            (_, None) => {
                self.violation(
                    Rule::StatusNeverRegresses,
                    event,
                    format!("{} before MessageQueued", event.event_type),
                );
                return;
            }
            (MessageEvent::MessageSendingStarted { .. }, Some(s)) => (
                Status::Sending,
                (!matches!(s, Status::Queued | Status::Failed { retryable: true }))
                    .then(|| format!("sending again while {s:?}")),
            ),
            (MessageEvent::MessageSent { cost, .. }, Some(s)) => {
                self.count(Rule::CapturedTwicePerSent);
                if *cost != Points::PER_MESSAGE {
                    self.violation(
                        Rule::CapturedTwicePerSent,
                        event,
                        format!("a message cost {cost}, not 2 points"),
                    );
                }
                (
                    Status::Sent,
                    (s != Status::Sending).then(|| format!("sent while {s:?}")),
                )
            }
            (MessageEvent::MessageFailed { retryable, .. }, Some(s)) => (
                Status::Failed {
                    retryable: *retryable,
                },
                (s != Status::Sending).then(|| format!("failed while {s:?}")),
            ),
            (MessageEvent::MessageDelivered { .. }, Some(s)) => {
                (Status::Delivered, receipt_problem(s, Status::Delivered))
            }
            (MessageEvent::MessageRead { .. }, Some(s)) => {
                (Status::Read, receipt_problem(s, Status::Read))
            }
            (MessageEvent::MessageCancelled { .. }, Some(s)) => (
                Status::Cancelled,
                (!matches!(s, Status::Queued | Status::Failed { retryable: true }))
                    .then(|| format!("cancelled while {s:?}")),
            ),
            (MessageEvent::MessageMarkedUnknown { .. }, Some(s)) => (
                Status::Unknown,
                (s != Status::Sending).then(|| format!("marked unknown while {s:?}")),
            ),
        };
        if let Some(problem) = problem {
            self.violation(Rule::StatusNeverRegresses, event, problem);
        }
        let book = self.messages.get_mut(&key).expect("known message");
        book.status = next;
        if matches!(e, MessageEvent::MessageSent { .. }) {
            book.sends += 1;
            let (campaign, sends) = (book.campaign, book.sends);
            *self.sent_per_campaign.entry(campaign).or_default() += 1;
            if sends > 1 {
                self.violation(
                    Rule::StatusNeverRegresses,
                    event,
                    format!("sent {sends} times"),
                );
            }
            if let Ok(message_id) = event.aggregate_id.parse() {
                self.sent_messages
                    .push((message_id, position(event), aggregate(event)));
            }
        }
    }

    fn session(&mut self, event: &LoggedEvent, e: SessionEvent) {
        let Ok(session_id) = event.aggregate_id.parse::<SessionId>() else {
            return;
        };
        match e {
            SessionEvent::SessionCreated { daily_limit, .. }
            | SessionEvent::SessionSettingsUpdated { daily_limit, .. }
            | SessionEvent::TrustLevelChanged { daily_limit, .. } => {
                self.daily_limits.insert(session_id, daily_limit);
            }
            SessionEvent::SenderRestricted { restriction } => {
                self.restrictions
                    .entry(session_id)
                    .or_default()
                    .push(restriction);
            }
            _ => {}
        }
    }

    fn schedule(&mut self, event: &LoggedEvent, e: ScheduleEvent) {
        let schedule = self.schedules.entry(event.tenant.clone()).or_default();
        match e {
            ScheduleEvent::ActiveHoursSet {
                timezone, windows, ..
            } => {
                schedule.timezone = timezone;
                schedule.windows = windows;
            }
            ScheduleEvent::OverrideSet { mode, .. } => schedule.override_mode = mode,
        }
    }

    /// Checks a grant against the governor's caps it recorded, and notes
    /// it for the restriction check.
    fn governed(
        &mut self,
        event: &LoggedEvent,
        session_id: SessionId,
        at: DateTime<Utc>,
        governed: Option<&Governed>,
    ) {
        self.restricted_checks.push((
            session_id,
            at,
            governed.map(|g| g.new_contact),
            position(event),
            aggregate(event),
        ));
        let timezone = self
            .schedules
            .get(&event.tenant)
            .map_or_else(TimeZone::default, |s| s.timezone);
        let local_date = timezone.local_date(at);
        let grants = self.day_grants.entry((session_id, local_date)).or_default();
        let hash = governed.and_then(|g| g.text_hash);
        grants.push((at, hash, governed.is_some_and(|g| g.new_contact)));
        let Some(governed) = governed else { return };
        let limits = governed.limits;
        let in_window = |length: chrono::Duration, same: Option<u64>| {
            grants
                .iter()
                .filter(|(t, h, _)| *t > at - length && *t <= at && (same.is_none() || *h == same))
                .count() as u32
        };
        let count = grants.len() as u32;
        let new_contacts = grants.iter().filter(|(_, _, new)| *new).count() as u32;
        let mut broken = Vec::new();
        if count > limits.allowance {
            broken.push(format!(
                "send {count} of {local_date} over an allowance of {}",
                limits.allowance
            ));
        }
        let minute = in_window(chrono::Duration::seconds(60), None);
        if let Some(max) = limits.per_minute.filter(|max| minute > *max) {
            broken.push(format!("{minute} sends in 60 seconds, cap {max}"));
        }
        let hour = in_window(chrono::Duration::hours(1), None);
        if let Some(max) = limits.per_hour.filter(|max| hour > *max) {
            broken.push(format!("{hour} sends in an hour, cap {max}"));
        }
        if let Some(max) = limits
            .new_contacts_per_day
            .filter(|max| governed.new_contact && new_contacts > *max)
        {
            broken.push(format!(
                "{new_contacts} new contacts on {local_date}, cap {max}"
            ));
        }
        if let Some(hash) = hash {
            let same = in_window(chrono::Duration::hours(1), Some(hash));
            if let Some(max) = limits.identical_texts_per_hour.filter(|max| same > *max) {
                broken.push(format!("{same} identical texts in an hour, cap {max}"));
            }
        }
        self.count(Rule::GovernorCaps);
        for detail in broken {
            self.violation(
                Rule::GovernorCaps,
                event,
                format!("session {session_id} at {at}: {detail}"),
            );
        }
    }

    fn grant(
        &mut self,
        event: &LoggedEvent,
        session_id: SessionId,
        message_id: MessageId,
        at: DateTime<Utc>,
        recorded_date: NaiveDate,
        recorded_count: u32,
    ) {
        self.granted.insert(message_id);
        self.count(Rule::NoSendWhileSuspended);
        if let Some(since) = self.suspended.get(&event.tenant)
            && *since <= at
        {
            let since = *since;
            self.violation(
                Rule::NoSendWhileSuspended,
                event,
                format!("slot granted at {at}, the tenant suspended since {since}"),
            );
        }
        let (timezone, open) = {
            let default = Schedule::default();
            let schedule = self.schedules.get(&event.tenant).unwrap_or(&default);
            let hours = ActiveHours::new(
                schedule.timezone,
                schedule.windows.clone(),
                schedule.override_mode,
            );
            (schedule.timezone, hours.map(|hours| hours.is_open(at)))
        };
        let local_date = timezone.local_date(at);
        self.count(Rule::ActiveHours);
        if open != Ok(true) {
            self.violation(
                Rule::ActiveHours,
                event,
                format!(
                    "slot for message {message_id} granted at {at} ({} local), outside the active hours in force",
                    timezone.local_datetime(at)
                ),
            );
        }
        let count = self.grants.entry((session_id, local_date)).or_default();
        *count += 1;
        let count = *count;
        self.count(Rule::DailyLimit);
        match self.daily_limits.get(&session_id) {
            Some(limit) if count > limit.value() => self.violation(
                Rule::DailyLimit,
                event,
                format!(
                    "session {session_id} granted {count} sends on {local_date}, daily limit {}",
                    limit.value()
                ),
            ),
            None => self.violation(
                Rule::DailyLimit,
                event,
                format!(
                    "slot granted to session {session_id}, which has no daily limit in the log"
                ),
            ),
            _ => {}
        }
        if (recorded_date, recorded_count) != (local_date, count) {
            self.violation(
                Rule::DailyLimit,
                event,
                format!("recorded as send {recorded_count} of {recorded_date}; the log makes it send {count} of {local_date}"),
            );
        }
    }
}

/// A receipt follows a send and moves forward: delivered after sent, read
/// after sent or delivered; never for a message that was not sent.
fn receipt_problem(current: Status, receipt: Status) -> Option<String> {
    match (current.rank(), receipt.rank()) {
        (Some(now), Some(new)) if now >= 2 && new > now => None,
        (Some(now), Some(new)) if now >= 2 && new <= now => {
            Some(format!("{receipt:?} after {current:?}"))
        }
        _ => Some(format!(
            "{receipt:?} for a message that is {current:?}, not sent"
        )),
    }
}

fn position(event: &LoggedEvent) -> String {
    format!("{}#{}", event.stream, event.stream_sequence)
}

fn aggregate(event: &LoggedEvent) -> String {
    format!(
        "{} {}.{} @{}",
        event.aggregate_type, event.tenant, event.aggregate_id, event.sequence
    )
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const TENANT: &str = "0193a000-0000-7000-8000-000000000001";
    const SESSION: &str = "0193a000-0000-7000-8000-00000000000a";
    const CAMPAIGN: &str = "0193a000-0000-7000-8000-00000000000c";
    const WALLET: &str = TENANT;

    fn message_id(n: u8) -> String {
        format!("0193a000-0000-7000-8000-0000000001{n:02}")
    }

    /// A history under construction: events get consecutive stream and
    /// aggregate sequences.
    #[derive(Clone, Default)]
    struct History {
        events: Vec<LoggedEvent>,
        sequences: HashMap<String, u64>,
    }

    impl History {
        fn push(&mut self, aggregate_type: &str, id: &str, payload: Value) -> &mut Self {
            let stream = if matches!(
                aggregate_type,
                "message" | "inbound" | "auto_reply_thread" | "auto_reply_rule_hour"
            ) {
                "t_MESSAGES"
            } else {
                "t_EVENTS"
            };
            let stream_sequence =
                self.events.iter().filter(|e| e.stream == stream).count() as u64 + 1;
            let sequence = self
                .sequences
                .entry(format!("{aggregate_type}.{id}"))
                .or_default();
            *sequence += 1;
            let event_type = payload.as_object().unwrap().keys().next().unwrap().clone();
            self.events.push(LoggedEvent {
                stream: stream.into(),
                stream_sequence,
                aggregate_type: aggregate_type.into(),
                tenant: TENANT.into(),
                aggregate_id: id.into(),
                sequence: *sequence,
                event_type,
                occurred_at: "2026-11-23T03:00:00Z".parse().unwrap(),
                payload,
            });
            self
        }

        fn verify(&self) -> Report {
            let mut verifier = Verifier::default();
            // Stream by stream, as `wablast verify` reads them.
            for stream in ["t_EVENTS", "t_MESSAGES"] {
                for event in self.events.iter().filter(|e| e.stream == stream) {
                    verifier.observe(event);
                }
            }
            verifier.finish()
        }
    }

    fn wallet(kind: &str, fields: Value) -> Value {
        json!({ kind: fields })
    }

    fn figures(balance: u64, reserved: u64) -> Value {
        json!({"balance_after": balance, "reserved_after": reserved, "available_after": balance - reserved,
               "at": "2026-11-23T00:00:00Z"})
    }

    fn merge(mut a: Value, b: Value) -> Value {
        a.as_object_mut()
            .unwrap()
            .extend(b.as_object().unwrap().clone());
        a
    }

    /// Monday 2026-11-23 in Jakarta (UTC+7), 08:00–20:00 every day; a
    /// session with a daily limit of 2; 100 points; a campaign of two
    /// messages, both granted at 10:00 local, sent, delivered, settled.
    fn valid_history() -> History {
        let mut h = History::default();
        h.push("schedule", TENANT, json!({"ActiveHoursSet": {"timezone": "Asia/Jakarta",
            "windows": [{"days": ["mon","tue","wed","thu","fri","sat","sun"], "start": "08:00", "end": "20:00"}],
            "at": "2026-11-22T00:00:00Z"}}));
        h.push(
            "session",
            SESSION,
            json!({"SessionCreated": {"session_id": SESSION, "name": "CS 1",
            "driver": "simulator", "login": "qr", "phone_number": null, "daily_limit": 2,
            "daily_limit_follows_trust_level": false, "trust_level": 1, "auto_start": false,
            "at": "2026-11-22T00:00:00Z"}}),
        );
        h.push("wallet", WALLET, wallet("PlanSubscribed", merge(json!({"terms": {
            "plan_id": "0193a000-0000-7000-8000-0000000000ff", "name": "Basic", "period_days": 30,
            "points": 100, "max_sessions": 1, "max_recipients_per_campaign": 200, "max_daily_limit": 500},
            "points": 100, "expires_at": "2026-12-22T00:00:00Z", "reference": "r1"}), figures(100, 0))));
        h.push(
            "wallet",
            WALLET,
            wallet(
                "PointsReserved",
                merge(
                    json!({"campaign_id": CAMPAIGN, "points": 4}),
                    figures(100, 4),
                ),
            ),
        );
        for n in 1..=2u8 {
            let day = format!("{SESSION}-20261123");
            h.push(
                "session_day",
                &day,
                slot(message_id(n), "2026-11-23T03:00:00Z", "2026-11-23", n),
            );
        }
        h.push(
            "wallet",
            WALLET,
            wallet(
                "PointsCaptured",
                merge(
                    json!({"campaign_id": CAMPAIGN, "points": 4,
            "messages_sent": 2, "campaign_reserved_after": 0}),
                    figures(96, 0),
                ),
            ),
        );
        for n in 1..=2u8 {
            let id = message_id(n);
            h.push("message", &id, json!({"MessageQueued": {"message_id": id, "campaign_id": CAMPAIGN,
                "session_id": SESSION, "phone": "+6281234567890", "name": null, "variables": {}, "at": "2026-11-23T02:00:00Z"}}));
            h.push(
                "message",
                &id,
                json!({"MessageSendingStarted": {"campaign_id": CAMPAIGN, "session_id": SESSION,
                "attempt": 1, "at": "2026-11-23T03:00:00Z"}}),
            );
            h.push("message", &id, sent());
            h.push("message", &id, json!({"MessageDelivered": {"campaign_id": CAMPAIGN, "at": "2026-11-23T03:00:05Z"}}));
        }
        h
    }

    /// The session's daily limit goes up to 10 (so a third send is not
    /// over the limit).
    fn raise_daily_limit_to_ten(h: &mut History) {
        h.push(
            "session",
            SESSION,
            json!({"SessionSettingsUpdated": {"name": "CS 1", "daily_limit": 10,
                "daily_limit_follows_trust_level": false, "auto_start": false,
                "at": "2026-11-23T00:00:00Z"}}),
        );
    }

    /// A `SlotGranted` for message `message_id` of the campaign.
    fn slot(
        message_id: String,
        at: &str,
        local_date: &str,
        count_after: impl Into<Value>,
    ) -> Value {
        json!({"SlotGranted": {"session_id": SESSION, "message_id": message_id,
            "campaign_id": CAMPAIGN, "at": at, "local_date": local_date,
            "count_after": count_after.into()}})
    }

    fn sent() -> Value {
        json!({"MessageSent": {"campaign_id": CAMPAIGN, "session_id": SESSION, "attempt": 1,
            "provider_message_id": null, "cost": 2, "at": "2026-11-23T03:00:01Z"}})
    }

    fn rules(report: &Report) -> Vec<Rule> {
        report.violations.iter().map(|v| v.rule).collect()
    }

    #[test]
    fn a_history_that_kept_every_rule_verifies_clean() {
        let report = valid_history().verify();

        assert!(report.holds(), "{:#?}", report.violations);
        assert_eq!(report.events, 15);
        for rule in [
            Rule::WalletNeverNegative,
            Rule::CapturedTwicePerSent,
            Rule::DailyLimit,
            Rule::ActiveHours,
            Rule::SentWithASlot,
            Rule::StatusNeverRegresses,
        ] {
            assert!(
                report.checked.get(&rule).copied().unwrap_or(0) > 0,
                "{rule} was not checked"
            );
        }
    }

    const ORDER: &str = "0193a000-0000-7000-8000-0000000000aa";

    /// A paid order of 500 points (a top-up), credited once.
    fn paid_top_up(h: &mut History, paid: bool) {
        h.push(
            "order",
            ORDER,
            json!({"OrderCreated": {"order_id": ORDER, "tenant_id": TENANT,
            "item": {"top_up": {"points": 500}}, "amount": 50000, "at": "2026-11-23T00:00:00Z"}}),
        );
        if paid {
            h.push(
                "order",
                ORDER,
                json!({"OrderPaid": {"transaction_id": "tx-1", "amount": 50000,
                "paid_at": "2026-11-23T00:00:00Z", "at": "2026-11-23T00:00:00Z"}}),
            );
        }
    }

    fn order_credit(balance: u64) -> Value {
        wallet(
            "PointsToppedUp",
            merge(
                json!({"points": 500, "reference": format!("order:{ORDER}")}),
                figures(balance, 0),
            ),
        )
    }

    #[test]
    fn an_order_paid_and_credited_once_verifies_clean() {
        let mut h = valid_history();
        paid_top_up(&mut h, true);
        h.push("wallet", WALLET, order_credit(596));
        h.push(
            "wallet",
            WALLET,
            wallet(
                "PointsTakenBack",
                merge(
                    json!({"points": 500,
            "taken": 500, "owed": 0, "reference": format!("order:{ORDER}:refund:50000")}),
                    figures(96, 0),
                ),
            ),
        );

        let report = h.verify();

        assert!(report.holds(), "{:#?}", report.violations);
        assert_eq!(report.checked.get(&Rule::CreditedOncePerOrder), Some(&1));
        assert_eq!(report.checked.get(&Rule::PlanBackedByPayment), Some(&1));
    }

    #[test]
    fn an_order_credited_twice_is_found() {
        let mut h = valid_history();
        paid_top_up(&mut h, true);
        h.push("wallet", WALLET, order_credit(596));
        h.push("wallet", WALLET, order_credit(1096));

        let report = h.verify();

        assert_eq!(rules(&report), vec![Rule::CreditedOncePerOrder]);
        assert!(report.violations[0].detail.contains("second time"));
    }

    #[test]
    fn an_order_credited_before_its_payment_is_found() {
        let mut h = valid_history();
        paid_top_up(&mut h, false);
        h.push("wallet", WALLET, order_credit(596));

        let report = h.verify();

        assert_eq!(rules(&report), vec![Rule::CreditedOncePerOrder]);
    }

    #[test]
    fn a_plan_from_an_order_never_paid_is_found() {
        let mut h = valid_history();
        h.push("order", ORDER, json!({"OrderCreated": {"order_id": ORDER, "tenant_id": TENANT,
            "item": {"plan": {"terms": {"plan_id": "0193a000-0000-7000-8000-0000000000ff", "name": "Basic",
            "period_days": 30, "points": 100, "max_sessions": 1, "max_recipients_per_campaign": 200,
            "max_daily_limit": 500}}}, "amount": 50000, "at": "2026-11-23T00:00:00Z"}}));
        h.push("wallet", WALLET, wallet("PlanSubscribed", merge(json!({"terms": {
            "plan_id": "0193a000-0000-7000-8000-0000000000ff", "name": "Basic", "period_days": 30,
            "points": 100, "max_sessions": 1, "max_recipients_per_campaign": 200, "max_daily_limit": 500},
            "points": 100, "expires_at": "2026-12-22T00:00:00Z", "reference": format!("order:{ORDER}")}),
            figures(196, 0))));

        let report = h.verify();

        assert_eq!(rules(&report), vec![Rule::PlanBackedByPayment]);
    }

    #[test]
    fn a_wallet_going_negative_is_found_and_named() {
        let mut h = valid_history();
        h.push(
            "wallet",
            WALLET,
            wallet(
                "PointsCaptured",
                merge(
                    json!({"campaign_id": "0193a000-0000-7000-8000-0000000000cd",
            "points": 500, "messages_sent": 250, "campaign_reserved_after": 0}),
                    figures(0, 0),
                ),
            ),
        );

        let report = h.verify();

        assert!(
            rules(&report).contains(&Rule::WalletNeverNegative),
            "{:#?}",
            report.violations
        );
        let violation = report
            .violations
            .iter()
            .find(|v| v.rule == Rule::WalletNeverNegative)
            .unwrap();
        assert_eq!(violation.position, "t_EVENTS#8");
        assert!(violation.aggregate.starts_with("wallet "));
    }

    #[test]
    fn recorded_wallet_figures_that_do_not_add_up_are_found() {
        let mut h = valid_history();
        h.push(
            "wallet",
            WALLET,
            wallet(
                "PointsToppedUp",
                merge(json!({"points": 10, "reference": "r2"}), figures(200, 0)),
            ),
        );

        assert_eq!(rules(&h.verify()), vec![Rule::WalletFiguresAddUp]);
    }

    #[test]
    fn a_send_while_the_tenant_is_suspended_is_found_and_reactivation_allows_it() {
        let late = slot(message_id(3), "2026-11-23T04:00:00Z", "2026-11-23", 3);
        let mut h = valid_history();
        raise_daily_limit_to_ten(&mut h);
        h.push(
            "wallet",
            TENANT,
            json!({"TenantSuspended": {"reason": "spam", "by": "00000000-0000-0000-0000-000000000009", "at": "2026-11-23T03:00:00Z"}}),
        );
        let mut suspended = h.clone();
        suspended.push("session_day", &format!("{SESSION}-20261123"), late.clone());
        assert_eq!(rules(&suspended.verify()), vec![Rule::NoSendWhileSuspended]);

        h.push(
            "wallet",
            TENANT,
            json!({"TenantReactivated": {"by": "00000000-0000-0000-0000-000000000009", "at": "2026-11-23T03:30:00Z"}}),
        );
        h.push("session_day", &format!("{SESSION}-20261123"), late);
        assert!(h.verify().holds());
    }

    #[test]
    fn a_third_send_on_a_day_limited_to_two_is_found() {
        let mut h = valid_history();
        h.push(
            "session_day",
            &format!("{SESSION}-20261123"),
            slot(message_id(3), "2026-11-23T04:00:00Z", "2026-11-23", 3),
        );

        assert_eq!(rules(&h.verify()), vec![Rule::DailyLimit]);
    }

    #[test]
    fn a_send_the_next_local_day_counts_afresh() {
        let mut h = valid_history();
        // 17:30 UTC on the 23rd is 00:30 on the 24th in Jakarta: a new day,
        // but outside 08:00–20:00.
        h.push(
            "session_day",
            &format!("{SESSION}-20261124"),
            slot(message_id(3), "2026-11-24T01:30:00Z", "2026-11-24", 1),
        );

        assert!(h.verify().holds());
    }

    #[test]
    fn a_send_outside_active_hours_is_found_and_an_activate_override_allows_it() {
        let late = slot(message_id(3), "2026-11-23T14:00:00Z", "2026-11-23", 3);
        let mut h = valid_history();
        raise_daily_limit_to_ten(&mut h);
        h.push("session_day", &format!("{SESSION}-20261123"), late.clone());
        assert_eq!(rules(&h.verify()), vec![Rule::ActiveHours]);

        let mut h = valid_history();
        raise_daily_limit_to_ten(&mut h);
        h.push(
            "schedule",
            TENANT,
            json!({"OverrideSet": {"mode": "activate", "at": "2026-11-23T13:00:00Z"}}),
        );
        h.push("session_day", &format!("{SESSION}-20261123"), late);
        assert!(h.verify().holds());
    }

    #[test]
    fn a_send_while_the_tenant_paused_everything_is_found() {
        let mut h = valid_history();
        h.push(
            "schedule",
            TENANT,
            json!({"OverrideSet": {"mode": "pause", "at": "2026-11-23T03:30:00Z"}}),
        );
        raise_daily_limit_to_ten(&mut h);
        // 11:00 in Jakarta: inside the windows, but everything is paused.
        h.push(
            "session_day",
            &format!("{SESSION}-20261123"),
            slot(message_id(3), "2026-11-23T04:00:00Z", "2026-11-23", 3),
        );

        assert_eq!(rules(&h.verify()), vec![Rule::ActiveHours]);
    }

    #[test]
    fn a_status_going_backwards_is_found() {
        let mut h = valid_history();
        let id = message_id(1);
        h.push(
            "message",
            &id,
            json!({"MessageRead": {"campaign_id": CAMPAIGN, "at": "2026-11-23T03:01:00Z"}}),
        );
        h.push(
            "message",
            &id,
            json!({"MessageDelivered": {"campaign_id": CAMPAIGN, "at": "2026-11-23T03:02:00Z"}}),
        );

        let report = h.verify();

        assert_eq!(rules(&report), vec![Rule::StatusNeverRegresses]);
        assert!(report.violations[0].detail.contains("Delivered after Read"));
    }

    #[test]
    fn a_message_sent_twice_or_without_a_slot_is_found() {
        let mut h = valid_history();
        let id = message_id(9);
        h.push("message", &id, json!({"MessageQueued": {"message_id": id, "campaign_id": "0193a000-0000-7000-8000-0000000000cd",
            "session_id": SESSION, "phone": "+6281234567890", "name": null, "variables": {}, "at": "2026-11-23T02:00:00Z"}}));
        h.push(
            "message",
            &id,
            json!({"MessageSendingStarted": {"campaign_id": CAMPAIGN, "session_id": SESSION,
            "attempt": 1, "at": "2026-11-23T03:00:00Z"}}),
        );
        h.push("message", &id, sent());
        h.push("message", &id, sent());

        let found = rules(&h.verify());

        assert!(found.contains(&Rule::SentWithASlot), "{found:?}");
        assert!(found.contains(&Rule::StatusNeverRegresses), "{found:?}");
    }

    #[test]
    fn captured_points_that_are_not_twice_the_sends_are_found() {
        let mut h = valid_history();
        // A third message of the campaign was sent after the settlement.
        let id = message_id(3);
        h.push(
            "session_day",
            &format!("{SESSION}-20261123"),
            slot(id.clone(), "2026-11-23T03:00:00Z", "2026-11-23", 3),
        );
        raise_daily_limit_to_ten(&mut h);
        h.push("message", &id, json!({"MessageQueued": {"message_id": id, "campaign_id": CAMPAIGN,
            "session_id": SESSION, "phone": "+6281234567890", "name": null, "variables": {}, "at": "2026-11-23T02:00:00Z"}}));
        h.push(
            "message",
            &id,
            json!({"MessageSendingStarted": {"campaign_id": CAMPAIGN, "session_id": SESSION,
            "attempt": 1, "at": "2026-11-23T03:00:00Z"}}),
        );
        h.push("message", &id, sent());

        let report = h.verify();

        // (The limit raised after the third grant does not excuse it.)
        assert!(
            rules(&report).contains(&Rule::CapturedTwicePerSent),
            "{:#?}",
            report.violations
        );
    }

    #[test]
    fn a_campaign_settled_by_releasing_everything_although_it_sent_is_found() {
        let mut h = valid_history();
        // Drop the capture: the reservation is released whole instead.
        h.events.retain(|e| e.event_type != "PointsCaptured");
        let released = json!({"campaign_id": CAMPAIGN, "points": 4});
        h.push(
            "wallet",
            WALLET,
            wallet("ReservationReleased", merge(released, figures(100, 0))),
        );

        let report = h.verify();

        assert_eq!(
            rules(&report),
            vec![Rule::CapturedTwicePerSent],
            "{:#?}",
            report.violations
        );
        assert!(report.violations[0].detail.contains("captured 0 points"));
    }

    #[test]
    fn an_unreadable_event_is_reported_not_skipped() {
        let mut h = valid_history();
        h.push("wallet", WALLET, json!({"PointsVanished": {"points": 3}}));

        assert_eq!(rules(&h.verify()), vec![Rule::Readable]);
    }

    fn inbound(id: &str, text: &str) -> Value {
        json!({"InboundMessageReceived": {"inbound_id": id, "session_id": SESSION,
            "from": "+6281234567890", "from_raw": "6281234567890@c.us", "text": text,
            "provider_message_id": "wamid.1", "at": "2026-11-23T01:00:00Z"}})
    }

    #[test]
    fn inbound_messages_are_read_and_an_unreadable_one_is_reported() {
        let mut h = valid_history();
        let id = "0193a000-0000-7000-8000-0000000002aa";
        h.push("inbound", id, inbound(id, "INFO"));

        let report = h.verify();

        assert!(report.holds(), "{:#?}", report.violations);
        assert_eq!(report.events, 16);

        h.push(
            "inbound",
            "0193a000-0000-7000-8000-0000000002ab",
            json!({"InboundMessageReceived": {"text": "no sender"}}),
        );
        let report = h.verify();
        assert_eq!(rules(&report), vec![Rule::Readable]);
        assert!(report.violations[0].aggregate.starts_with("inbound "));
    }

    #[test]
    fn an_inbound_message_first_in_the_stream_is_not_mistaken_for_expired_messages() {
        let mut h = History::default();
        let id = "0193a000-0000-7000-8000-0000000002aa";
        h.push("inbound", id, inbound(id, "halo"));
        // A message whose queueing is not in the log, though nothing
        // expired: the inbound message holds the stream's sequence 1.
        h.push("message", &message_id(1), sent());

        let report = h.verify();

        assert_eq!(rules(&report), vec![Rule::StatusNeverRegresses]);
        assert!(report.violations[0].detail.contains("before MessageQueued"));
    }

    #[test]
    fn messages_whose_start_left_with_the_retention_are_not_blamed() {
        let mut h = History::default();
        let id = "0193a000-0000-7000-8000-0000000002aa";
        h.push("inbound", id, inbound(id, "halo"));
        h.push("message", &message_id(1), sent());
        // The stream has lost its first 40 commits to the retention.
        for event in &mut h.events {
            event.stream_sequence += 40;
        }

        assert!(h.verify().holds());
    }

    /// A governed `SlotGranted`: per minute cap 1, a new contact or not.
    fn governed_slot(message_id: String, at: &str, count_after: u32, new_contact: bool) -> Value {
        let mut slot = slot(message_id, at, "2026-11-23", count_after);
        slot["SlotGranted"]["governed"] = json!({
            "limits": {"state": "warming_up", "allowance": 20, "per_minute": 1,
                "per_hour": 40, "new_contacts_per_day": 5, "identical_texts_per_hour": 5,
                "new_contacts_blocked_until": null, "all_blocked_until": null,
                "grows_at": null},
            "new_contact": new_contact,
            "new_contacts_after": u32::from(new_contact),
        });
        slot
    }

    #[test]
    fn a_second_send_within_the_minute_of_a_cap_of_one_is_found() {
        let mut h = valid_history();
        raise_daily_limit_to_ten(&mut h);
        let day = format!("{SESSION}-20261123");
        h.push(
            "session_day",
            &day,
            governed_slot(message_id(3), "2026-11-23T05:00:00Z", 3, false),
        );
        assert!(h.verify().holds(), "{:#?}", h.verify().violations);
        h.push(
            "session_day",
            &day,
            governed_slot(message_id(4), "2026-11-23T05:00:30Z", 4, false),
        );

        assert_eq!(rules(&h.verify()), vec![Rule::GovernorCaps]);
    }

    #[test]
    fn a_send_to_a_new_contact_while_timelocked_is_found_but_a_known_one_is_not() {
        let mut h = valid_history();
        raise_daily_limit_to_ten(&mut h);
        h.push(
            "session",
            SESSION,
            json!({"SenderRestricted": {"restriction": {"kind": "reachout_timelock",
                "since": "2026-11-23T04:30:00Z", "until": "2026-11-23T10:00:00Z"}}}),
        );
        let day = format!("{SESSION}-20261123");
        h.push(
            "session_day",
            &day,
            governed_slot(message_id(3), "2026-11-23T05:00:00Z", 3, false),
        );
        let report = h.verify();
        assert!(report.holds(), "{:#?}", report.violations);
        assert!(report.checked[&Rule::NoNewContactWhileRestricted] > 0);
        h.push(
            "session_day",
            &day,
            governed_slot(message_id(4), "2026-11-23T05:05:00Z", 4, true),
        );

        assert_eq!(rules(&h.verify()), vec![Rule::NoNewContactWhileRestricted]);
    }
}
