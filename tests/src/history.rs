//! Realistic event histories for projection tests and benchmarks.
//!
//! [`History::generate`] builds commits straight from the domain's event
//! enums (not through the aggregates: that would be too slow for a million
//! events), but every history is one the aggregates could have produced:
//! the generator simulates each tenant's timeline (active hours, daily
//! limits, points, the campaign lifecycle, the attempts of each message) and
//! records the facts the aggregates would have recorded. Figures add up
//! (wallet `*_after` totals, captured = 2 × sent, `count_after` per session
//! and local day, the counts of `CampaignCompleted`), message statuses never
//! go backwards and attempts count up. The tests below prove it two ways:
//! `wablast_domain::verify::Verifier` finds no violation, and replaying
//! every commit, in log order, as the command that would have caused it
//! (with the facts the log holds at that point: the session's status and
//! limit, the tenant's hours and plan, the campaign's status, the messages'
//! states) makes the aggregate decide exactly the recorded events.
//!
//! Everything is derived from the seed: ids (UUID v7 shaped, with the
//! instant of the fact they name), event and command ids, times (a fixed
//! start plus offsets), names and numbers.
//!
//! # What a history holds
//!
//! - Platform: two or three plans defined at the start (`PlanDefined`), the
//!   oldest one retired at the end (`PlanRetired`).
//! - Per tenant: its schedule (`ActiveHoursSet`, sometimes `OverrideSet`
//!   "activate" around one campaign, or "pause" at the end); its wallet
//!   (`PlanSubscribed`, renewals before the plan runs out, sometimes
//!   `PointsGranted`, `PointsToppedUp` whenever a campaign needs more
//!   points, `PlanExpired` at the end for some); its sessions
//!   (`SessionCreated` → `SessionStartRequested` → `SessionStatusChanged`
//!   through qr or pairing to ready, with the phone; some settings changes
//!   and trust levels raised before the first campaign; disconnects and
//!   reconnects, stops and restarts between campaigns; one session that
//!   never links, `failed` then deleted; `SessionLoggedOut` or
//!   `SessionDeleted` for some at the end); its campaigns, run one after
//!   the other: `CampaignCreated` (sometimes `CampaignScheduled`),
//!   `PointsReserved` (rarely cancelled and reserved again) and
//!   `CampaignStarted`, one message aggregate per recipient
//!   (`MessageQueued`, alone or, for about half the campaigns, after a
//!   `RecipientsQueued` batch and in one commit with the message's first
//!   command; per attempt a `SlotGranted` on the sender's day
//!   counter, `MessageSendingStarted`, then `MessageSent` and receipts,
//!   `MessageFailed` retryable then a second attempt, failed for good, or
//!   `MessageMarkedUnknown`), manual pauses, pauses outside active hours,
//!   auto-pauses after three failures in a row; most end with
//!   `CampaignCompleted` and the wallet's settlement (`PointsCaptured` and
//!   `ReservationReleased` in one commit), some with `CampaignCancelled`
//!   (the remaining messages `MessageCancelled`, then the settlement), and
//!   exactly one (the first tenant's last) is left running; a few drafts
//!   are never started, or scheduled and cancelled. Some recipients write
//!   back after a receipt: one inbound aggregate per reply
//!   (`InboundMessageReceived`, in the messages stream), from the number, or
//!   from a `@lid` id the driver could not resolve.
//!
//! # Waves
//!
//! The commits are grouped in waves: a wave holds commits of distinct
//! aggregates whose causes are all in earlier waves. Appending wave after
//! wave, each one pipelined ([`History::append_to`]), gives a log whose
//! order is causal (a grant after the message it grants, a settlement
//! after the messages it counts, a schedule change after the grants it
//! must not cover) while most commits travel in parallel.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone as _, Utc};
use cqrs_es::{Aggregate, DomainEvent};
use futures::{StreamExt, TryStreamExt};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use uuid::Uuid;
use wablast_domain::campaign::{Campaign, CampaignEvent, PauseReason, SenderUnavailableReason};
use wablast_domain::inbound::{self, Inbound, InboundEvent};
use wablast_domain::layout::LogStream;
use wablast_domain::message::{Message, MessageEvent};
use wablast_domain::plan::{Plan, PlanEvent, PlanPeriod, PlanTerms};
use wablast_domain::recipient_batch::{self, BatchRecipient, RecipientBatch, RecipientBatchEvent};
use wablast_domain::schedule::{Schedule, ScheduleEvent};
use wablast_domain::session::{
    Driver, LoginMethod, Session, SessionEvent, SessionName, SessionStatus,
};
use wablast_domain::session_day::{self, SessionDay, SessionDayEvent};
use wablast_domain::types::phone::{Phone, Region};
use wablast_domain::types::template::Template;
use wablast_domain::types::{
    ActiveHours, CampaignId, ContactListId, DailyLimit, MediaId, MessageId, Override, PlanId,
    Points, SessionId, TenantId, Throttle, TimeZone, TrustLevel, UserId, Weekday, Window,
};
use wablast_domain::wallet::{Wallet, WalletEvent};
use wablast_eventstore::{
    Actor, Commit, CommittedEvent, EventLog, EventLogConfig, EventStoreError, PLATFORM_TENANT,
    Prefix, StreamSpec,
};

// ---------------------------------------------------------------------------
// The public face.
// ---------------------------------------------------------------------------

/// How big a history is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistorySpec {
    /// Tenants.
    pub tenants: usize,
    /// Sessions that get linked, per tenant (one more that never links is
    /// added to some tenants).
    pub sessions_per_tenant: usize,
    /// Campaigns that start, per tenant (drafts never started come on top).
    pub campaigns_per_tenant: usize,
    /// Recipients (message aggregates) per campaign.
    pub recipients_per_campaign: usize,
    /// Everything is derived from it.
    pub seed: u64,
}

impl HistorySpec {
    /// A few thousand events over four tenants, every kind of event
    /// included (the rarer features are forced on one tenant each).
    pub fn small(seed: u64) -> Self {
        Self {
            tenants: 4,
            sessions_per_tenant: 3,
            campaigns_per_tenant: 3,
            recipients_per_campaign: 40,
            seed,
        }
    }

    /// About `target_events` events: campaigns of up to 200 recipients,
    /// five per tenant, as many tenants as it takes (calibrated on the
    /// first tenants of this seed; tenants differ, so expect a few percent
    /// off). Each recipient is an aggregate of about five events, so there
    /// are about `target_events / 5` aggregates.
    pub fn for_events(target_events: usize, seed: u64) -> Self {
        const PROBE: usize = 9;
        let spec = |tenants| Self {
            tenants,
            sessions_per_tenant: 3,
            campaigns_per_tenant: 5,
            recipients_per_campaign: (target_events / 100).clamp(10, 200),
            seed,
        };
        // The first tenant is special (it leaves a campaign running).
        let first = History::generate(&spec(1)).events() as f64;
        let probe = History::generate(&spec(PROBE)).events() as f64;
        let per_tenant = ((probe - first) / (PROBE - 1) as f64).max(1.0);
        let more = ((target_events as f64 - first) / per_tenant)
            .round()
            .max(0.0);
        spec(1 + more as usize)
    }
}

/// A generated history: commits in waves (see the module docs).
pub struct History {
    key: u64,
    tenants: Vec<TenantId>,
    /// Each tenant's contacts (what its messages are sent to).
    contacts: Vec<Vec<Contact>>,
    aggregates: Vec<AggMeta>,
    /// How many of them have a history (a message queued in a batch and
    /// never sent has none).
    with_history: usize,
    waves: Vec<Vec<Pending>>,
    events: usize,
    commits: usize,
}

impl History {
    /// Generates the history a spec describes.
    pub fn generate(spec: &HistorySpec) -> Self {
        let mut rng = StdRng::seed_from_u64(spec.seed);
        let mut b = Builder::new(rng.random());
        let start = start();
        let plans = define_plans(&mut b, &mut rng, spec, start - TimeDelta::days(30));
        let mut tenants = Vec::with_capacity(spec.tenants);
        let mut contacts = Vec::with_capacity(spec.tenants);
        let mut end = start;
        let mut phones = PhoneBook::default();
        for idx in 0..spec.tenants {
            let tenant_rng = StdRng::seed_from_u64(rng.random());
            let (tenant, last, tenant_contacts) =
                TenantSim::run(&mut b, tenant_rng, idx as u32, spec, &plans, &mut phones);
            tenants.push(tenant);
            contacts.push(tenant_contacts);
            end = end.max(last);
        }
        // The oldest plan goes off offer once everyone who took it has.
        let retired = &plans[0];
        let after = b.max_wave;
        b.commit(
            retired.agg,
            after,
            end + TimeDelta::days(1),
            Who::Admin,
            None,
            vec![Event::Plan(Box::new(PlanEvent::PlanRetired {
                plan_id: retired.terms.plan_id,
                at: end + TimeDelta::days(1),
            }))],
        );
        Self {
            key: b.key,
            tenants,
            contacts,
            with_history: b.states.iter().filter(|s| s.seq > 0).count(),
            aggregates: b.aggregates,
            waves: b.waves,
            events: b.events,
            commits: b.commits,
        }
    }

    /// How many events.
    pub fn events(&self) -> usize {
        self.events
    }

    /// How many commits.
    pub fn commits(&self) -> usize {
        self.commits
    }

    /// How many aggregates have a history (a message queued in a batch
    /// and never sent has none: only its batch's row).
    pub fn aggregates(&self) -> usize {
        self.with_history
    }

    /// How many waves.
    pub fn waves(&self) -> usize {
        self.waves.len()
    }

    /// The tenants, in the order they were generated.
    pub fn tenants(&self) -> Vec<TenantId> {
        self.tenants.clone()
    }

    /// The commits, wave by wave (each wave built when it is reached).
    pub fn commit_waves(&self) -> impl Iterator<Item = Vec<Commit>> + '_ {
        self.waves
            .iter()
            .map(|wave| wave.iter().map(|p| self.commit(p)).collect())
    }

    /// Appends every commit to the log: waves in order, each wave with up
    /// to `in_flight` appends outstanding. Each append names as expected
    /// the stream sequence the aggregate's previous commit got (0 for its
    /// first).
    pub async fn append_to(&self, log: &EventLog, in_flight: usize) -> Result<(), EventStoreError> {
        let mut expected = vec![0u64; self.aggregates.len()];
        for wave in &self.waves {
            let written: Vec<(u32, u64)> = {
                let expected = &expected;
                futures::stream::iter(wave.iter().map(|pending| {
                    let commit = self.commit(pending);
                    let last = expected[pending.agg as usize];
                    let agg = pending.agg;
                    async move { log.append(last, &commit).await.map(|seq| (agg, seq)) }
                }))
                .buffer_unordered(in_flight.max(1))
                .try_collect()
                .await?
            };
            for (agg, seq) in written {
                expected[agg as usize] = seq;
            }
        }
        Ok(())
    }

    fn commit(&self, p: &Pending) -> Commit {
        let meta = &self.aggregates[p.agg as usize];
        let tenant_contacts: &[Contact] = match meta.tenant {
            PLATFORM => &[],
            t => &self.contacts[t as usize],
        };
        let tenant = match meta.tenant {
            PLATFORM => PLATFORM_TENANT.to_owned(),
            t => self.tenants[t as usize].to_string(),
        };
        let ms = p.at.timestamp_millis();
        let command_id = derived_id(self.key, SALT_COMMAND, ms, p.agg, p.first_seq);
        let correlation_id = p.root.map_or(command_id, |r| {
            derived_id(self.key, SALT_COMMAND, r.ms, r.agg, r.seq)
        });
        let causation_id = p
            .cause
            .map(|r| derived_id(self.key, SALT_EVENT, r.ms, r.agg, r.seq));
        let events = p
            .events
            .iter()
            .enumerate()
            .map(|(i, event)| {
                let seq = p.first_seq + i as u32;
                let (event_type, event_version, payload) = event.stored(tenant_contacts);
                CommittedEvent {
                    event_id: derived_id(self.key, SALT_EVENT, ms, p.agg, seq),
                    sequence: u64::from(seq),
                    event_type,
                    event_version,
                    payload,
                }
            })
            .collect();
        Commit {
            tenant,
            aggregate_type: meta.kind.type_name().to_owned(),
            aggregate_id: meta.id(),
            command_id,
            correlation_id,
            causation_id,
            actor: p.who.actor(self.key),
            occurred_at: p.at,
            events,
        }
    }
}

/// The log layout wablast uses (the domain's [`LogStream`]s): long-lived
/// aggregates in `events`, message, inbound and batch aggregates in
/// `messages` (kept 14 days).
pub fn log_config(prefix: &str) -> Result<EventLogConfig, EventStoreError> {
    let streams = LogStream::ALL
        .into_iter()
        .map(|stream| {
            if stream.kept_forever() {
                StreamSpec::kept_forever(stream.name(), stream.aggregate_types())
            } else {
                StreamSpec::with_retention(
                    stream.name(),
                    stream.aggregate_types(),
                    Duration::from_secs(14 * 24 * 3600),
                )
            }
        })
        .collect();
    Ok(EventLogConfig::new(Prefix::parse(prefix)?, streams))
}

/// Opens (creating its streams) the log of [`log_config`] on a server.
pub async fn open_log(nats_url: &str, prefix: &str) -> Result<EventLog, EventStoreError> {
    let client = async_nats::connect(nats_url)
        .await
        .map_err(|e| EventStoreError::Nats(format!("connect to {nats_url}: {e}").into()))?;
    EventLog::open(client, log_config(prefix)?).await
}

// ---------------------------------------------------------------------------
// What is stored per commit: the domain events themselves and small
// references; commits are built when appended.
// ---------------------------------------------------------------------------

const PLATFORM: u32 = u32::MAX;
const SALT_EVENT: u64 = 0x6576_656e_7400_0001;
const SALT_COMMAND: u64 = 0x636f_6d6d_616e_6402;
const SALT_USER: u64 = 0x7573_6572_0000_0003;
const SALT_API_KEY: u64 = 0x6170_696b_6579_0004;
const SALT_REPLY: u64 = 0x7265_706c_7900_0005;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 1, 0, 0)
        .single()
        .expect("a valid instant")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Plan,
    Schedule,
    Wallet,
    Session,
    SessionDay,
    Campaign,
    Message,
    RecipientBatch,
    Inbound,
}

impl Kind {
    fn type_name(self) -> &'static str {
        match self {
            Self::Plan => Plan::TYPE,
            Self::Schedule => Schedule::TYPE,
            Self::Wallet => Wallet::TYPE,
            Self::Session => Session::TYPE,
            Self::SessionDay => SessionDay::TYPE,
            Self::Campaign => Campaign::TYPE,
            Self::Message => Message::TYPE,
            Self::RecipientBatch => RecipientBatch::TYPE,
            Self::Inbound => Inbound::TYPE,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum AggId {
    Uuid(Uuid),
    Day(SessionId, NaiveDate),
}

struct AggMeta {
    tenant: u32,
    kind: Kind,
    id: AggId,
}

impl AggMeta {
    fn id(&self) -> String {
        match self.id {
            AggId::Uuid(id) => id.to_string(),
            AggId::Day(session, date) => session_day::aggregate_id(session, date),
        }
    }
}

/// An event as generated. The big, rare ones are boxed so that the
/// frequent message and grant events set the size.
enum Event {
    Plan(Box<PlanEvent>),
    Schedule(Box<ScheduleEvent>),
    Wallet(Box<WalletEvent>),
    Session(Box<SessionEvent>),
    Campaign(Box<CampaignEvent>),
    Day(SessionDayEvent),
    Message(Mev),
    Batch(Box<Batch>),
    Inbound(Box<InboundEvent>),
}

/// A recipient batch, compact: each recipient's message id, sender and
/// contact (an index into its tenant's contacts).
struct Batch {
    campaign_id: CampaignId,
    index: u32,
    at: DateTime<Utc>,
    recipients: Vec<(MessageId, SessionId, u32)>,
}

impl Batch {
    fn event(&self, contacts: &[Contact]) -> RecipientBatchEvent {
        RecipientBatchEvent::RecipientsQueued {
            campaign_id: self.campaign_id,
            index: self.index,
            recipients: self
                .recipients
                .iter()
                .map(|&(message_id, session_id, contact)| {
                    let contact = &contacts[contact as usize];
                    BatchRecipient {
                        message_id,
                        session_id,
                        to: contact.phone.clone().into(),
                        name: contact.name.clone(),
                        variables: contact.variables.clone(),
                        content: None,
                    }
                })
                .collect(),
            at: self.at,
        }
    }
}

/// A message event, compact: the recipient is an index into its tenant's
/// contacts, WhatsApp's id a number. [`Mev::event`] gives the domain event.
struct Mev {
    campaign_id: CampaignId,
    at: DateTime<Utc>,
    what: What,
}

enum What {
    Queued {
        message_id: MessageId,
        session_id: SessionId,
        contact: u32,
    },
    Started {
        session_id: SessionId,
        attempt: u32,
    },
    Sent {
        session_id: SessionId,
        attempt: u32,
        provider: Option<u64>,
        contact: u32,
    },
    Failed {
        session_id: SessionId,
        attempt: u32,
        reason: &'static str,
        retryable: bool,
    },
    Delivered,
    Read,
    Cancelled,
    Unknown {
        session_id: SessionId,
        attempt: u32,
    },
}

impl Mev {
    fn event(&self, contacts: &[Contact]) -> MessageEvent {
        let (campaign_id, at) = (self.campaign_id, self.at);
        match self.what {
            What::Queued {
                message_id,
                session_id,
                contact,
            } => {
                let contact = &contacts[contact as usize];
                MessageEvent::MessageQueued {
                    message_id,
                    campaign_id,
                    session_id,
                    to: contact.phone.clone().into(),
                    name: contact.name.clone(),
                    variables: contact.variables.clone(),
                    content: None,
                    at,
                }
            }
            What::Started {
                session_id,
                attempt,
            } => MessageEvent::MessageSendingStarted {
                campaign_id,
                session_id,
                attempt,
                text: None,
                provider_message_id: None,
                at,
            },
            What::Sent {
                session_id,
                attempt,
                provider,
                contact,
            } => MessageEvent::MessageSent {
                campaign_id,
                session_id,
                attempt,
                provider_message_id: provider.map(|p| format!("3EB0{p:016X}")),
                cost: Points::PER_MESSAGE,
                to: Some(contacts[contact as usize].phone.clone().into()),
                at,
            },
            What::Failed {
                session_id,
                attempt,
                reason,
                retryable,
            } => MessageEvent::MessageFailed {
                campaign_id,
                session_id,
                attempt,
                reason: reason.to_owned(),
                retryable,
                at,
            },
            What::Delivered => MessageEvent::MessageDelivered { campaign_id, at },
            What::Read => MessageEvent::MessageRead { campaign_id, at },
            What::Cancelled => MessageEvent::MessageCancelled { campaign_id, at },
            What::Unknown {
                session_id,
                attempt,
            } => MessageEvent::MessageMarkedUnknown {
                campaign_id,
                session_id,
                attempt,
                at,
            },
        }
    }
}

impl Event {
    /// Type, version and payload as stored (the enum serialized externally
    /// tagged).
    fn message(campaign_id: CampaignId, at: DateTime<Utc>, what: What) -> Self {
        Self::Message(Mev {
            campaign_id,
            at,
            what,
        })
    }

    /// Type, version and payload as stored; `contacts` are the tenant's.
    fn stored(&self, contacts: &[Contact]) -> (String, String, serde_json::Value) {
        fn parts<E: DomainEvent>(e: &E) -> (String, String, serde_json::Value) {
            let payload = serde_json::to_value(e).expect("domain events serialize");
            (e.event_type(), e.event_version(), payload)
        }
        match self {
            Self::Plan(e) => parts(e.as_ref()),
            Self::Schedule(e) => parts(e.as_ref()),
            Self::Wallet(e) => parts(e.as_ref()),
            Self::Session(e) => parts(e.as_ref()),
            Self::Campaign(e) => parts(e.as_ref()),
            Self::Day(e) => parts(e),
            Self::Message(e) => parts(&e.event(contacts)),
            Self::Batch(e) => parts(&e.event(contacts)),
            Self::Inbound(e) => parts(e.as_ref()),
        }
    }
}

/// Who issued a command.
#[derive(Clone, Copy, Debug)]
enum Who {
    /// The tenant's owner.
    User(u32),
    /// The tenant's integration.
    ApiKey(u32),
    /// A session engine.
    Engine(u32),
    /// A platform admin.
    Admin,
    /// wablast itself (process managers, schedulers, payments).
    System,
}

impl Who {
    fn actor(self, key: u64) -> Actor {
        match self {
            Self::User(t) => Actor::User(user_id(key, t)),
            Self::ApiKey(t) => Actor::ApiKey(derived_id(key, SALT_API_KEY, 0, t, 0)),
            Self::Engine(n) => Actor::Engine(format!("engine-{n}")),
            Self::Admin => Actor::User(user_id(key, PLATFORM)),
            Self::System => Actor::System,
        }
    }
}

fn user_id(key: u64, tenant: u32) -> Uuid {
    derived_id(key, SALT_USER, 0, tenant, 0)
}

/// One event, by where it is: its aggregate, its sequence and its commit's
/// instant (which its id is derived from).
#[derive(Clone, Copy, Debug)]
struct Ref {
    agg: u32,
    seq: u32,
    ms: i64,
}

struct Pending {
    agg: u32,
    first_seq: u32,
    at: DateTime<Utc>,
    who: Who,
    /// The first commit of the correlation (`None`: this one).
    root: Option<Ref>,
    /// The event that caused the command.
    cause: Option<Ref>,
    events: Vec<Event>,
}

/// A recorded commit, as later commits refer to it.
#[derive(Clone, Copy, Debug)]
struct Done {
    wave: u32,
    last: Ref,
    root: Ref,
}

/// splitmix64: a bijection of u64 with good mixing.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A UUID v7 at `ms` whose random part is derived from the history's key,
/// a salt and (aggregate, sequence): distinct for distinct inputs of one
/// salt, the same in every run.
fn derived_id(key: u64, salt: u64, ms: i64, agg: u32, seq: u32) -> Uuid {
    let a = mix(mix(key ^ salt) ^ ((u64::from(agg) << 32) | u64::from(seq)));
    let b = mix(a ^ salt);
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&a.to_le_bytes());
    random[8..].copy_from_slice(&b.to_le_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(ms.max(0) as u64, &random).into_uuid()
}

/// A fresh v7 id at `at`, random part from the generator.
fn new_id(rng: &mut StdRng, at: DateTime<Utc>) -> Uuid {
    let random: [u8; 10] = rng.random();
    uuid::Builder::from_unix_timestamp_millis(at.timestamp_millis().max(0) as u64, &random)
        .into_uuid()
}

struct AggState {
    seq: u32,
    wave: u32,
    /// The event its next commit starts with: a batch-queued message's
    /// `MessageQueued`, recorded with its first command's events.
    first: Option<Event>,
}

struct Builder {
    key: u64,
    aggregates: Vec<AggMeta>,
    states: Vec<AggState>,
    waves: Vec<Vec<Pending>>,
    max_wave: u32,
    events: usize,
    commits: usize,
}

impl Builder {
    fn new(key: u64) -> Self {
        Self {
            key,
            aggregates: Vec::new(),
            states: Vec::new(),
            waves: Vec::new(),
            max_wave: 0,
            events: 0,
            commits: 0,
        }
    }

    fn aggregate(&mut self, tenant: u32, kind: Kind, id: AggId) -> u32 {
        self.aggregates.push(AggMeta { tenant, kind, id });
        self.states.push(AggState {
            seq: 0,
            wave: 0,
            first: None,
        });
        (self.aggregates.len() - 1) as u32
    }

    /// Queues a message in a batch committed in `wave`: its
    /// `MessageQueued` starts its first commit, which comes after the
    /// batch.
    fn queue_in_batch(&mut self, agg: u32, wave: u32, queued: Event) {
        let state = &mut self.states[agg as usize];
        debug_assert!(state.seq == 0 && state.first.is_none());
        state.wave = state.wave.max(wave);
        state.first = Some(queued);
    }

    /// The wave of an aggregate's last commit (0: none yet).
    fn wave_of(&self, agg: u32) -> u32 {
        self.states[agg as usize].wave
    }

    /// Records a commit in the first wave after the aggregate's previous
    /// commit and after wave `after` (its causes).
    fn commit(
        &mut self,
        agg: u32,
        after: u32,
        at: DateTime<Utc>,
        who: Who,
        cause: Option<Done>,
        mut events: Vec<Event>,
    ) -> Done {
        debug_assert!(!events.is_empty());
        let state = &mut self.states[agg as usize];
        if let Some(first) = state.first.take() {
            events.insert(0, first);
        }
        let wave = state.wave.max(after) + 1;
        let first_seq = state.seq + 1;
        state.seq += events.len() as u32;
        state.wave = wave;
        let ms = at.timestamp_millis();
        let me = Ref {
            agg,
            seq: first_seq,
            ms,
        };
        let last = Ref {
            agg,
            seq: state.seq,
            ms,
        };
        self.events += events.len();
        self.commits += 1;
        self.max_wave = self.max_wave.max(wave);
        let index = wave as usize - 1;
        if self.waves.len() <= index {
            self.waves.resize_with(index + 1, Vec::new);
        }
        let root = cause.map(|c| c.root);
        self.waves[index].push(Pending {
            agg,
            first_seq,
            at,
            who,
            root,
            cause: cause.map(|c| c.last),
            events,
        });
        Done {
            wave,
            last,
            root: root.unwrap_or(me),
        }
    }
}

// ---------------------------------------------------------------------------
// The platform's plans.
// ---------------------------------------------------------------------------

struct PlanInfo {
    agg: u32,
    terms: PlanTerms,
    wave: u32,
}

fn define_plans(
    b: &mut Builder,
    rng: &mut StdRng,
    spec: &HistorySpec,
    at: DateTime<Utc>,
) -> Vec<PlanInfo> {
    let sessions = spec.sessions_per_tenant as u32 + 1;
    let recipients = spec.recipients_per_campaign as u32;
    let limit = |n: u64| DailyLimit::parse(n).expect("a valid daily limit");
    let mut offers = vec![
        (
            "Starter",
            PlanPeriod::Days15,
            1_000,
            sessions,
            recipients.max(200),
            limit(200),
            49_000,
        ),
        (
            "Basic",
            PlanPeriod::Days30,
            5_000,
            sessions + 2,
            recipients.max(1_000),
            limit(500),
            99_000,
        ),
        (
            "Pro",
            PlanPeriod::Days30,
            20_000,
            sessions + 10,
            recipients.max(5_000),
            limit(1_000),
            249_000,
        ),
    ];
    if rng.random_bool(0.3) {
        offers.remove(1);
    }
    offers
        .into_iter()
        .enumerate()
        .map(
            |(i, (name, period_days, points, max_sessions, max_recipients, max_daily, price))| {
                let at = at + TimeDelta::minutes(i as i64);
                let plan_id = PlanId::from_uuid(new_id(rng, at));
                let agg = b.aggregate(PLATFORM, Kind::Plan, AggId::Uuid(*plan_id.as_uuid()));
                let terms = PlanTerms {
                    plan_id,
                    name: name.to_owned(),
                    period_days,
                    points: Points::new(points),
                    max_sessions,
                    max_recipients_per_campaign: max_recipients,
                    max_daily_limit: max_daily,
                    features: wablast_domain::plan::PlanFeatures::default(),
                    grace_days: 0,
                    version: 1,
                };
                let done = b.commit(
                    agg,
                    0,
                    at,
                    Who::Admin,
                    None,
                    vec![Event::Plan(Box::new(PlanEvent::PlanDefined {
                        plan_id,
                        name: terms.name.clone(),
                        period_days,
                        points: terms.points,
                        max_sessions,
                        max_recipients_per_campaign: max_recipients,
                        max_daily_limit: max_daily,
                        price,
                        features: wablast_domain::plan::PlanFeatures::default(),
                        grace_days: 0,
                        on_sale: true,
                        at,
                    }))],
                );
                PlanInfo {
                    agg,
                    terms,
                    wave: done.wave,
                }
            },
        )
        .collect()
}

// ---------------------------------------------------------------------------
// Recipients.
// ---------------------------------------------------------------------------

/// Hands out distinct Indonesian mobile numbers.
#[derive(Default)]
struct PhoneBook {
    next: u64,
}

/// Telkomsel, Indosat and XL prefixes; each takes 8 more digits.
const PREFIXES: [&str; 8] = ["812", "813", "821", "822", "852", "853", "857", "878"];

impl PhoneBook {
    fn next(&mut self) -> Phone {
        let n = self.next;
        self.next += 1;
        let prefix = PREFIXES[(n % PREFIXES.len() as u64) as usize];
        // Spread over the range so that numbers do not look sequential.
        let rest = (n / PREFIXES.len() as u64).wrapping_mul(7_919) % 90_000_000 + 10_000_000;
        Phone::parse(&format!("+62{prefix}{rest:08}"), Region::ID)
            .expect("a valid Indonesian mobile number")
    }
}

struct Contact {
    phone: Phone,
    name: Option<String>,
    variables: BTreeMap<String, String>,
}

const FIRST_NAMES: [&str; 16] = [
    "Budi", "Siti", "Agus", "Dewi", "Rina", "Andi", "Putri", "Rizky", "Ayu", "Fajar", "Indah",
    "Joko", "Sri", "Wahyu", "Nur", "Yusuf",
];
const LAST_NAMES: [&str; 8] = [
    "Santoso", "Wijaya", "Saputra", "Lestari", "Pratama", "Hidayat", "Kusuma", "Siregar",
];
const PRODUCTS: [&str; 6] = [
    "Kopi Susu Gula Aren",
    "Kaos Polos Premium",
    "Hijab Voal",
    "Sambal Bawang",
    "Keripik Pedas",
    "Madu Hutan",
];
const CITIES: [&str; 8] = [
    "Jakarta",
    "Bandung",
    "Surabaya",
    "Medan",
    "Makassar",
    "Yogyakarta",
    "Semarang",
    "Denpasar",
];
const TEMPLATES: [&str; 4] = [
    "Halo {{name|Kak}}, {promo|diskon} {{produk}} hari ini saja! Balas STOP untuk berhenti.",
    "{Hai|Halo} {{name|Kak}} di {{kota}}, {{produk}} sudah restock. Pesan sekarang ya!",
    "Assalamualaikum {{name|Kak}}, ada voucher ongkir untuk {{produk}}. Cek katalog kami.",
    "Hi {{ name }}, pembayaran pesanan {{produk}} belum kami terima. Abaikan jika sudah bayar.",
];
const CAMPAIGN_NAMES: [&str; 8] = [
    "Promo Gajian",
    "Flash Sale",
    "Diskon Akhir Pekan",
    "Info Restock",
    "Promo Ramadan",
    "Gratis Ongkir",
    "Voucher Member",
    "Pengingat Pembayaran",
];
const SESSION_NAMES: [&str; 6] = [
    "CS Jakarta",
    "Admin Toko",
    "Marketing",
    "Reseller",
    "Order Online",
    "Customer Care",
];
const RETRYABLE: [&str; 3] = [
    "timeout waiting for the WhatsApp server",
    "rate limited by WhatsApp, retry later",
    "connection reset while sending",
];
/// What recipients write back (`None`: a sticker or a photo, no text).
const REPLIES: [Option<&str>; 6] = [
    Some("Kak, masih ada stok?"),
    Some("INFO harga"),
    Some("STOP"),
    Some("Bisa COD ke Bekasi?"),
    Some("Terima kasih 🙏"),
    None,
];
const FOR_GOOD: [&str; 3] = [
    "number is not on WhatsApp",
    "recipient blocked this number",
    "media rejected: file too large",
];

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn pick_str(rng: &mut StdRng, items: &[&'static str]) -> &'static str {
    items[rng.random_range(0..items.len())]
}

fn seconds(rng: &mut StdRng, from: i64, to: i64) -> TimeDelta {
    TimeDelta::seconds(rng.random_range(from..=to))
}

// ---------------------------------------------------------------------------
// One tenant's timeline.
// ---------------------------------------------------------------------------

struct Sess {
    id: SessionId,
    agg: u32,
    name: SessionName,
    status: SessionStatus,
    /// Its own number; known to the aggregate once `phone_known`.
    phone: Phone,
    phone_known: bool,
    last_error: Option<String>,
    daily_limit: DailyLimit,
    follows: bool,
    trust: TrustLevel,
    auto_start: bool,
    deleted: bool,
    /// Whether campaigns may use it (it got linked).
    sender: bool,
    /// Its grants come after this wave (ready again, limit raised).
    gate_wave: u32,
    /// Its latest grant's wave.
    last_grant_wave: u32,
}

struct Day {
    agg: u32,
    count: u32,
}

/// Where one message is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Queued,
    Retry,
    Final,
}

struct Msg {
    id: MessageId,
    agg: u32,
    /// Its recipient (an index into the tenant's contacts).
    contact: u32,
    /// The sender it was queued for (an index into the tenant's sessions).
    sender: usize,
    attempt: u32,
    /// The day counters that granted it: (session, local date).
    granted: Vec<(usize, NaiveDate)>,
    fate: Fate,
}

/// A campaign being sent.
struct Run {
    id: CampaignId,
    agg: u32,
    senders: Vec<usize>,
    throttle: Throttle,
    reserved: u64,
    /// Grants come after this wave (started, resumed).
    state_wave: u32,
    /// The latest grant's wave.
    grant_wave: u32,
    /// The latest final message status's wave.
    final_wave: u32,
    last_final_at: DateTime<Utc>,
    auto_pauses: u32,
    consecutive: Vec<u32>,
    /// Sends forced to fail on one sender (to trip an auto-pause).
    force: Option<(usize, u32)>,
    sent: u64,
    failed: u64,
    cancelled: u64,
}

/// The campaign left running at the end, for senders leaving it.
struct Running {
    agg: u32,
    senders: Vec<usize>,
    wave: u32,
}

struct TenantSim<'a> {
    b: &'a mut Builder,
    rng: StdRng,
    idx: u32,
    id: TenantId,
    spec: &'a HistorySpec,
    clock: DateTime<Utc>,
    hours: ActiveHours,
    schedule: u32,
    schedule_wave: u32,
    pause_for_hours: bool,
    wallet: u32,
    balance: u64,
    reserved: u64,
    plan: PlanTerms,
    expires_at: DateTime<Utc>,
    plan_wave: u32,
    subscriptions: u32,
    references: u32,
    sessions: Vec<Sess>,
    days: HashMap<(usize, NaiveDate), Day>,
    contacts: Vec<Contact>,
    contact_list: ContactListId,
    setup_wave: u32,
    last_grant_wave: u32,
    max_wave: u32,
    engine: u32,
    running: Option<Running>,
}

impl<'a> TenantSim<'a> {
    /// Generates one tenant; returns its id, its last instant and its
    /// contacts.
    fn run(
        b: &'a mut Builder,
        mut rng: StdRng,
        idx: u32,
        spec: &'a HistorySpec,
        plans: &[PlanInfo],
        phones: &mut PhoneBook,
    ) -> (TenantId, DateTime<Utc>, Vec<Contact>) {
        let clock = start() + seconds(&mut rng, 0, 7 * 24 * 3600);
        let id = TenantId::from_uuid(new_id(&mut rng, clock));
        let tenant_uuid = *id.as_uuid();
        let schedule = b.aggregate(idx, Kind::Schedule, AggId::Uuid(tenant_uuid));
        let wallet = b.aggregate(idx, Kind::Wallet, AggId::Uuid(tenant_uuid));
        let plan = pick(&mut rng, plans);
        let (plan_terms, plan_wave) = (plan.terms.clone(), plan.wave);
        let contact_list = ContactListId::from_uuid(new_id(&mut rng, clock));
        let mut sim = TenantSim {
            b,
            rng,
            idx,
            id,
            spec,
            clock,
            hours: ActiveHours::always_open(TimeZone::JAKARTA),
            schedule,
            schedule_wave: 0,
            pause_for_hours: false,
            wallet,
            balance: 0,
            reserved: 0,
            plan: plan_terms,
            expires_at: clock,
            plan_wave,
            subscriptions: 0,
            references: 0,
            sessions: Vec::new(),
            days: HashMap::new(),
            contacts: Vec::new(),
            contact_list,
            setup_wave: 0,
            last_grant_wave: 0,
            max_wave: 0,
            engine: idx % 3 + 1,
            running: None,
        };
        sim.contacts(phones);
        sim.setup(phones);
        let campaigns = spec.campaigns_per_tenant;
        for c in 0..campaigns {
            if c > 0 {
                sim.between_campaigns(c);
            }
            let last = c + 1 == campaigns;
            let activate = (c == 1 && sim.must(0)) || sim.rng.random_bool(0.05);
            if activate {
                sim.set_override(Override::Activate);
            }
            sim.campaign(c, idx == 0 && last);
            if activate {
                sim.set_override(Override::None);
            }
            sim.clock += seconds(&mut sim.rng, 2 * 3600, 2 * 24 * 3600);
        }
        sim.drafts();
        sim.end();
        (sim.id, sim.clock, std::mem::take(&mut sim.contacts))
    }

    /// Whether a rarer feature is forced on this tenant (tenants take turns,
    /// so that a small history has each of them).
    fn must(&self, turn: u32) -> bool {
        self.idx % 4 == turn
    }

    fn commit(
        &mut self,
        agg: u32,
        after: u32,
        at: DateTime<Utc>,
        who: Who,
        cause: Option<Done>,
        events: Vec<Event>,
    ) -> Done {
        let done = self.b.commit(agg, after, at, who, cause, events);
        self.max_wave = self.max_wave.max(done.wave);
        done
    }

    fn user(&mut self) -> Who {
        if self.rng.random_bool(0.25) {
            Who::ApiKey(self.idx)
        } else {
            Who::User(self.idx)
        }
    }

    fn reference(&mut self, kind: &str) -> String {
        self.references += 1;
        format!("{kind}-{:05}-{:04}", self.idx, self.references)
    }

    fn contacts(&mut self, phones: &mut PhoneBook) {
        let size = self.spec.recipients_per_campaign * 3 / 2 + 1;
        self.contacts = (0..size)
            .map(|_| {
                let name = self.rng.random_bool(0.8).then(|| {
                    format!(
                        "{} {}",
                        pick(&mut self.rng, &FIRST_NAMES),
                        pick(&mut self.rng, &LAST_NAMES)
                    )
                });
                let variables = BTreeMap::from([
                    (
                        "produk".to_owned(),
                        (*pick(&mut self.rng, &PRODUCTS)).to_owned(),
                    ),
                    (
                        "kota".to_owned(),
                        (*pick(&mut self.rng, &CITIES)).to_owned(),
                    ),
                ]);
                Contact {
                    phone: phones.next(),
                    name,
                    variables,
                }
            })
            .collect();
    }

    // -- setup ------------------------------------------------------------

    fn setup(&mut self, phones: &mut PhoneBook) {
        // Schedule.
        let timezone = *pick(
            &mut self.rng,
            &[
                TimeZone::JAKARTA,
                TimeZone::JAKARTA,
                TimeZone::JAKARTA,
                TimeZone::parse("Asia/Makassar").expect("a time zone"),
                TimeZone::parse("Asia/Jayapura").expect("a time zone"),
            ],
        );
        let window = |days: &[Weekday], from: &str, to: &str| {
            Window::parse(days.iter().copied(), from, to).expect("a valid window")
        };
        use Weekday::{Fri, Mon, Sat, Sun, Thu, Tue, Wed};
        let windows = match self.rng.random_range(0..4) {
            0 => Vec::new(),
            1 => vec![window(&[Mon, Tue, Wed, Thu, Fri, Sat], "08:00", "20:00")],
            2 => vec![
                window(&[Mon, Tue, Wed, Thu, Fri], "08:00", "17:00"),
                window(&[Sat], "09:00", "14:00"),
            ],
            _ => vec![window(&Weekday::ALL, "07:00", "21:00")],
        };
        let windows = if windows.is_empty() && self.must(1) {
            vec![window(
                &[Mon, Tue, Wed, Thu, Fri, Sat, Sun],
                "08:00",
                "20:00",
            )]
        } else {
            windows
        };
        self.hours = ActiveHours::new(timezone, windows.clone(), Override::None)
            .expect("valid active hours");
        self.pause_for_hours = self.must(2) || self.rng.random_bool(0.5);
        let who = Who::User(self.idx);
        // Always open in Jakarta is where a schedule starts: such a tenant
        // tried windows first, then went back to "24 hours".
        let mut steps = vec![windows];
        if steps[0].is_empty() && timezone == TimeZone::JAKARTA {
            steps.insert(
                0,
                vec![window(&[Mon, Tue, Wed, Thu, Fri], "09:00", "17:00")],
            );
        }
        for windows in steps {
            let at = self.clock;
            let done = self.commit(
                self.schedule,
                0,
                at,
                who,
                None,
                vec![Event::Schedule(Box::new(ScheduleEvent::ActiveHoursSet {
                    timezone,
                    windows,
                    at,
                }))],
            );
            self.schedule_wave = done.wave;
            self.clock += TimeDelta::minutes(1);
        }
        if self.must(3) || self.rng.random_bool(0.1) {
            // "Pause all" tried out, then lifted, before anything is sent.
            for (mode, after) in [(Override::Pause, 1), (Override::None, 2)] {
                let at = self.clock + TimeDelta::minutes(after);
                let done = self.commit(
                    self.schedule,
                    0,
                    at,
                    who,
                    None,
                    vec![Event::Schedule(Box::new(ScheduleEvent::OverrideSet {
                        mode,
                        at,
                    }))],
                );
                self.schedule_wave = done.wave;
            }
        }

        // Wallet.
        self.clock += TimeDelta::minutes(5);
        self.subscribe(self.clock);
        if self.must(0) || self.rng.random_bool(0.3) {
            self.clock += TimeDelta::minutes(3);
            let points = 500 * self.rng.random_range(1..=4);
            self.balance += points;
            let reference = self.reference("GRANT");
            let at = self.clock;
            self.commit(
                self.wallet,
                0,
                at,
                Who::Admin,
                None,
                vec![Event::Wallet(Box::new(WalletEvent::PointsGranted {
                    points: Points::new(points),
                    by: UserId::from_uuid(user_id(self.b.key, PLATFORM)),
                    reason: "Bonus pelanggan baru".to_owned(),
                    reference,
                    balance_after: Points::new(self.balance),
                    reserved_after: Points::new(self.reserved),
                    available_after: Points::new(self.balance - self.reserved),
                    at,
                }))],
            );
        }

        if self.must(1) || self.rng.random_bool(0.2) {
            self.clock += TimeDelta::minutes(4);
            let points = 1_000 * self.rng.random_range(1..=5);
            self.top_up(points);
        }

        // Sessions.
        for s in 0..self.spec.sessions_per_tenant {
            self.clock += seconds(&mut self.rng, 60, 600);
            self.create_session(s, phones, true);
        }
        if self.must(3) || self.rng.random_bool(0.2) {
            self.clock += seconds(&mut self.rng, 60, 600);
            let s = self.spec.sessions_per_tenant;
            self.create_session(s, phones, false);
        }
        // Settings and trust levels, before anything is sent.
        for s in 0..self.sessions.len() {
            if !self.sessions[s].sender {
                continue;
            }
            if (s == 0 && self.must(1)) || self.rng.random_bool(0.25) {
                self.clock += seconds(&mut self.rng, 60, 3600);
                self.update_settings(s, true);
            }
            if (s == 0 && self.must(2)) || self.rng.random_bool(0.2) {
                self.clock += seconds(&mut self.rng, 60, 3600);
                self.raise_trust(s);
            }
        }
        self.setup_wave = self.max_wave;
    }

    fn subscribe(&mut self, at: DateTime<Utc>) {
        // A renewal while the plan runs extends it.
        let renewal = self.subscriptions > 0;
        self.subscriptions += 1;
        let starts_at = if renewal && self.expires_at > at {
            self.expires_at
        } else {
            at
        };
        self.expires_at = starts_at + self.plan.period_days.duration();
        self.balance += self.plan.points.value();
        let reference = self.reference("INV");
        // Renewals are paid automatically.
        let who = if renewal {
            Who::System
        } else {
            Who::User(self.idx)
        };
        let done = self.commit(
            self.wallet,
            self.plan_wave,
            at,
            who,
            None,
            vec![Event::Wallet(Box::new(WalletEvent::PlanSubscribed {
                terms: self.plan.clone(),
                points: self.plan.points,
                expires_at: self.expires_at,
                reference,
                balance_after: Points::new(self.balance),
                reserved_after: Points::new(self.reserved),
                available_after: Points::new(self.balance - self.reserved),
                at,
            }))],
        );
        self.plan_wave = done.wave;
    }

    /// Renews the plan (paid automatically) when it is about to run out.
    fn keep_plan(&mut self) {
        if self.clock + TimeDelta::days(2) >= self.expires_at {
            self.subscribe(self.clock);
        }
    }

    fn create_session(&mut self, s: usize, phones: &mut PhoneBook, links: bool) {
        let at = self.clock;
        let id = SessionId::from_uuid(new_id(&mut self.rng, at));
        let agg = self
            .b
            .aggregate(self.idx, Kind::Session, AggId::Uuid(*id.as_uuid()));
        let name = SessionName::parse(&format!(
            "{} {}",
            pick(&mut self.rng, &SESSION_NAMES),
            s + 1
        ))
        .expect("a valid session name");
        let driver = *pick(
            &mut self.rng,
            &[
                Driver::Simulator,
                Driver::Simulator,
                Driver::Simulator,
                Driver::Native,
                Driver::Waha,
                Driver::Cloud,
            ],
        );
        let login = if self.rng.random_bool(0.2) {
            LoginMethod::Pairing
        } else {
            LoginMethod::Qr
        };
        let phone = phones.next();
        let plan_max = self.plan.max_daily_limit;
        let (daily_limit, follows) = if self.rng.random_bool(0.5) {
            (TrustLevel::NEW.default_daily_limit().min(plan_max), true)
        } else {
            let asked = *pick(&mut self.rng, &[20u64, 30, 80, 150, 250]);
            (
                DailyLimit::parse(asked)
                    .expect("a valid limit")
                    .min(plan_max),
                false,
            )
        };
        let auto_start = self.rng.random_bool(0.5);
        let user = Who::User(self.idx);
        // Created under the tenant's plan (its limits are checked).
        let created = self.commit(
            agg,
            self.plan_wave,
            at,
            user,
            None,
            vec![Event::Session(Box::new(SessionEvent::SessionCreated {
                session_id: id,
                name: name.clone(),
                driver,
                login,
                phone_number: (login == LoginMethod::Pairing).then(|| phone.clone()),
                daily_limit,
                daily_limit_follows_trust_level: follows,
                trust_level: TrustLevel::NEW,
                auto_start,
                warm_up: false,
                at,
            }))],
        );
        self.sessions.push(Sess {
            id,
            agg,
            name,
            status: SessionStatus::Idle,
            phone,
            phone_known: login == LoginMethod::Pairing,
            last_error: None,
            daily_limit,
            follows,
            trust: TrustLevel::NEW,
            auto_start,
            deleted: false,
            sender: false,
            gate_wave: 0,
            last_grant_wave: 0,
        });
        let s = self.sessions.len() - 1;
        self.clock += seconds(&mut self.rng, 2, 30);
        self.start_session(s, created.wave);
        let waiting = match login {
            LoginMethod::Qr => SessionStatus::Qr,
            LoginMethod::Pairing => SessionStatus::Pairing,
        };
        self.clock += seconds(&mut self.rng, 2, 10);
        self.report(s, waiting, None);
        if !links {
            self.clock += seconds(&mut self.rng, 60, 180);
            self.report(
                s,
                SessionStatus::Failed,
                Some("QR code expired before it was scanned"),
            );
            return;
        }
        self.clock += seconds(&mut self.rng, 15, 120);
        if self.rng.random_bool(0.4) {
            self.report(s, SessionStatus::Authenticated, None);
            self.clock += seconds(&mut self.rng, 5, 60);
        }
        let ready = self.report(s, SessionStatus::Ready, None);
        let sess = &mut self.sessions[s];
        sess.sender = true;
        sess.gate_wave = ready.wave;
    }

    fn start_session(&mut self, s: usize, after: u32) -> Done {
        let at = self.clock;
        let sess = &mut self.sessions[s];
        let from = sess.status;
        sess.status = SessionStatus::Starting;
        let agg = sess.agg;
        self.commit(
            agg,
            after,
            at,
            Who::User(self.idx),
            None,
            vec![Event::Session(Box::new(
                SessionEvent::SessionStartRequested { from, at },
            ))],
        )
    }

    /// The engine reports a status (the error as the aggregate keeps it).
    fn report(&mut self, s: usize, to: SessionStatus, reason: Option<&str>) -> Done {
        let at = self.clock;
        let sess = &mut self.sessions[s];
        let from = sess.status;
        if to == SessionStatus::Ready {
            sess.phone_known = true;
        }
        let error = match to {
            SessionStatus::Ready => None,
            SessionStatus::Failed | SessionStatus::LoggedOut => Some(
                reason
                    .unwrap_or("the driver failed without giving a reason")
                    .to_owned(),
            ),
            _ => reason
                .map(str::to_owned)
                .or_else(|| sess.last_error.clone()),
        };
        sess.last_error = error.clone();
        sess.status = to;
        let phone_number = sess.phone_known.then(|| sess.phone.clone());
        let (agg, after) = (sess.agg, sess.last_grant_wave);
        self.commit(
            agg,
            after,
            at,
            Who::Engine(self.engine),
            None,
            vec![Event::Session(Box::new(
                SessionEvent::SessionStatusChanged {
                    from,
                    to,
                    phone_number,
                    error,
                    reason: None,
                    at,
                },
            ))],
        )
    }

    /// A settings change that changes something; `raise` only ever raises
    /// the daily limit (grants later in the log rely on it).
    fn update_settings(&mut self, s: usize, raise: bool) {
        let at = self.clock;
        let plan_max = self.plan.max_daily_limit;
        let roll = self.rng.random_range(0..3);
        let sess = &mut self.sessions[s];
        let mut name = sess.name.clone();
        let mut limit = sess.daily_limit;
        let mut follows = sess.follows;
        let mut auto_start = sess.auto_start;
        let higher = DailyLimit::parse(u64::from(sess.daily_limit.value()) + 50)
            .expect("a valid limit")
            .min(plan_max);
        let lower = DailyLimit::parse(u64::from(sess.daily_limit.value() / 2).max(1))
            .expect("a valid limit");
        match roll {
            0 if raise && higher != sess.daily_limit => {
                limit = higher;
                follows = false;
            }
            0 if !raise => {
                limit = lower;
                follows = false;
            }
            1 => auto_start = !auto_start,
            _ => {
                let number = self.rng.random_range(10..100);
                let base = *pick(&mut self.rng, &SESSION_NAMES);
                name =
                    SessionName::parse(&format!("{base} {number}")).expect("a valid session name");
            }
        }
        if name == sess.name
            && limit == sess.daily_limit
            && follows == sess.follows
            && auto_start == sess.auto_start
        {
            auto_start = !auto_start;
        }
        sess.name = name.clone();
        sess.daily_limit = limit;
        sess.follows = follows;
        sess.auto_start = auto_start;
        let (agg, after) = (sess.agg, sess.last_grant_wave);
        let done = self.commit(
            agg,
            after,
            at,
            Who::User(self.idx),
            None,
            vec![Event::Session(Box::new(
                SessionEvent::SessionSettingsUpdated {
                    name,
                    daily_limit: limit,
                    daily_limit_follows_trust_level: follows,
                    auto_start,
                    throttle: wablast_domain::types::Throttle::DEFAULT,
                    pacing: wablast_domain::governor::SenderPacing::NONE,
                    at,
                },
            ))],
        );
        let sess = &mut self.sessions[s];
        sess.gate_wave = sess.gate_wave.max(done.wave);
    }

    /// An admin raises the trust level by one (never lowers the limit).
    fn raise_trust(&mut self, s: usize) {
        let at = self.clock;
        let plan_max = self.plan.max_daily_limit;
        let sess = &mut self.sessions[s];
        let Ok(to) = TrustLevel::parse(u64::from(sess.trust.value()) + 1) else {
            return;
        };
        let daily_limit = if sess.follows {
            to.default_daily_limit().min(plan_max)
        } else {
            sess.daily_limit
        };
        let from = sess.trust;
        sess.trust = to;
        sess.daily_limit = daily_limit;
        let (agg, after) = (sess.agg, sess.last_grant_wave);
        let done = self.commit(
            agg,
            after,
            at,
            Who::Admin,
            None,
            vec![Event::Session(Box::new(SessionEvent::TrustLevelChanged {
                from,
                to,
                daily_limit,
                at,
            }))],
        );
        let sess = &mut self.sessions[s];
        sess.gate_wave = sess.gate_wave.max(done.wave);
    }

    fn set_override(&mut self, mode: Override) {
        self.clock += seconds(&mut self.rng, 60, 600);
        let at = self.clock;
        self.hours = self.hours.clone().with_override(mode);
        let done = self.commit(
            self.schedule,
            self.last_grant_wave,
            at,
            Who::User(self.idx),
            None,
            vec![Event::Schedule(Box::new(ScheduleEvent::OverrideSet {
                mode,
                at,
            }))],
        );
        self.schedule_wave = done.wave;
    }

    // -- between campaigns ------------------------------------------------

    fn between_campaigns(&mut self, c: usize) {
        let senders: Vec<usize> = (0..self.sessions.len())
            .filter(|&s| self.sessions[s].sender)
            .collect();
        if senders.is_empty() {
            return;
        }
        if (c == 1 && self.must(3)) || self.rng.random_bool(0.3) {
            // The connection drops and comes back.
            let s = *pick(&mut self.rng, &senders);
            self.report(
                s,
                SessionStatus::Disconnected,
                Some("connection lost: stream closed"),
            );
            self.clock += seconds(&mut self.rng, 20, 900);
            if self.rng.random_bool(0.5) {
                self.report(s, SessionStatus::Authenticated, None);
                self.clock += seconds(&mut self.rng, 5, 60);
            }
            let ready = self.report(s, SessionStatus::Ready, None);
            self.sessions[s].gate_wave = ready.wave;
        }
        if (c == 1 && self.must(1)) || self.rng.random_bool(0.15) {
            // Stopped by the user, started again: restores without a QR.
            let s = *pick(&mut self.rng, &senders);
            let at = self.clock;
            let (agg, after) = (self.sessions[s].agg, self.sessions[s].last_grant_wave);
            self.sessions[s].status = SessionStatus::Idle;
            let stopped = self.commit(
                agg,
                after,
                at,
                Who::User(self.idx),
                None,
                vec![Event::Session(Box::new(
                    SessionEvent::SessionStopRequested {
                        from: SessionStatus::Ready,
                        at,
                    },
                ))],
            );
            self.clock += seconds(&mut self.rng, 60, 4 * 3600);
            self.start_session(s, stopped.wave);
            self.clock += seconds(&mut self.rng, 2, 20);
            self.report(s, SessionStatus::Authenticated, None);
            self.clock += seconds(&mut self.rng, 2, 20);
            let ready = self.report(s, SessionStatus::Ready, None);
            self.sessions[s].gate_wave = ready.wave;
        }
        if self.rng.random_bool(0.1) {
            let s = *pick(&mut self.rng, &senders);
            self.update_settings(s, true);
        }
        if self.rng.random_bool(0.05) {
            let s = *pick(&mut self.rng, &senders);
            self.raise_trust(s);
        }
    }

    // -- a campaign -------------------------------------------------------

    fn campaign(&mut self, c: usize, left_running: bool) {
        let ready: Vec<usize> = (0..self.sessions.len())
            .filter(|&s| self.sessions[s].sender && self.sessions[s].status == SessionStatus::Ready)
            .collect();
        let mut senders = ready.clone();
        senders.shuffle(&mut self.rng);
        senders.truncate(self.rng.random_range(1..=ready.len().min(3)));

        let created_at = self.clock;
        let id = CampaignId::from_uuid(new_id(&mut self.rng, created_at));
        let agg = self
            .b
            .aggregate(self.idx, Kind::Campaign, AggId::Uuid(*id.as_uuid()));
        let template =
            Template::parse(pick_str(&mut self.rng, &TEMPLATES)).expect("a valid template");
        let min_delay = self.rng.random_range(1..=4) * 1_000;
        let throttle = Throttle::new(min_delay, min_delay + self.rng.random_range(1..=8) * 1_000)
            .expect("a valid throttle");
        let scheduled_at = self
            .rng
            .random_bool(0.1)
            .then(|| created_at + seconds(&mut self.rng, 600, 6 * 3600));
        let who = self.user();
        let name = format!("{} #{}", pick(&mut self.rng, &CAMPAIGN_NAMES), c + 1);
        let media_id = self
            .rng
            .random_bool(0.3)
            .then(|| MediaId::from_uuid(new_id(&mut self.rng, created_at)));
        let created = self.commit(
            agg,
            self.setup_wave,
            created_at,
            who,
            None,
            vec![Event::Campaign(Box::new(CampaignEvent::CampaignCreated {
                skip_not_on_whatsapp: false,
                skip_unanswered_after: wablast_domain::types::EngagementGuard::OFF,
                campaign_id: id,
                name,
                contact_list_id: self.contact_list,
                template,
                media_id,
                whatsapp_template: None,
                sender_session_ids: senders.iter().map(|&s| self.sessions[s].id).collect(),
                throttle,
                scheduled_at,
                at: created_at,
            }))],
        );

        // When and by whom it starts.
        let (start_at, starter) = if let Some(at) = scheduled_at {
            (at, Who::System)
        } else if (c == 0 && self.must(3)) || self.rng.random_bool(0.2) {
            self.clock += seconds(&mut self.rng, 30, 600);
            let at_time = self.clock + seconds(&mut self.rng, 1800, 12 * 3600);
            let at = self.clock;
            self.commit(
                agg,
                0,
                at,
                who,
                None,
                vec![Event::Campaign(Box::new(
                    CampaignEvent::CampaignScheduled { at_time, at },
                ))],
            );
            (at_time, Who::System)
        } else {
            (self.clock + seconds(&mut self.rng, 60, 1800), who)
        };
        self.clock = start_at;

        let n = self.spec.recipients_per_campaign.min(self.contacts.len());
        let required = 2 * n as u64;
        self.keep_plan();
        self.ensure_points(required);
        let mut reserved = self.reserve(id, required, created.wave, starter);
        if (c == 0 && self.must(2)) || self.rng.random_bool(0.03) {
            // The start failed after the reservation: it is given back and
            // the campaign reserves again on the next try.
            self.clock += seconds(&mut self.rng, 1, 5);
            let at = self.clock;
            self.reserved -= required;
            self.commit(
                self.wallet,
                0,
                at,
                Who::System,
                None,
                vec![Event::Wallet(Box::new(WalletEvent::ReservationCancelled {
                    campaign_id: id,
                    points: Points::new(required),
                    balance_after: Points::new(self.balance),
                    reserved_after: Points::new(self.reserved),
                    available_after: Points::new(self.balance - self.reserved),
                    at,
                }))],
            );
            self.clock += seconds(&mut self.rng, 30, 600);
            reserved = self.reserve(id, required, created.wave, starter);
        }
        let at = self.clock;
        let started = self.commit(
            agg,
            reserved.wave,
            at,
            starter,
            Some(reserved),
            vec![Event::Campaign(Box::new(CampaignEvent::CampaignStarted {
                skipped_not_on_whatsapp: 0,
                skipped_never_replied: 0,
                recipients: n as u64,
                points_reserved: Points::new(required),
                at,
            }))],
        );

        // One message aggregate per recipient, queued at once: each alone
        // (as before recipient batches), or, for about half the campaigns,
        // in batches whose messages get their history at their first
        // command.
        let batched = id.as_uuid().as_u128() & 1 == 1;
        let first = self.rng.random_range(0..self.contacts.len());
        let mut messages: Vec<Msg> = (0..n)
            .map(|i| {
                let at = started.last_at() + TimeDelta::milliseconds(i as i64);
                let contact = ((first + i) % self.contacts.len()) as u32;
                let message_id = MessageId::from_uuid(new_id(&mut self.rng, at));
                let agg =
                    self.b
                        .aggregate(self.idx, Kind::Message, AggId::Uuid(*message_id.as_uuid()));
                let sender = senders[i % senders.len()];
                if !batched {
                    let event = Event::message(
                        id,
                        at,
                        What::Queued {
                            message_id,
                            session_id: self.sessions[sender].id,
                            contact,
                        },
                    );
                    self.commit(
                        agg,
                        started.wave,
                        at,
                        Who::System,
                        Some(started),
                        vec![event],
                    );
                }
                Msg {
                    id: message_id,
                    agg,
                    contact,
                    sender,
                    attempt: 0,
                    granted: Vec::new(),
                    fate: Fate::Queued,
                }
            })
            .collect();
        if batched {
            let at = started.last_at();
            for (index, chunk) in messages.chunks(recipient_batch::BATCH_SIZE).enumerate() {
                let index = index as u32;
                let batch = self.b.aggregate(
                    self.idx,
                    Kind::RecipientBatch,
                    AggId::Uuid(*recipient_batch::batch_id(id, index).as_uuid()),
                );
                let recipients: Vec<(MessageId, SessionId, u32)> = chunk
                    .iter()
                    .map(|m| (m.id, self.sessions[m.sender].id, m.contact))
                    .collect();
                let done = self.commit(
                    batch,
                    started.wave,
                    at,
                    Who::System,
                    Some(started),
                    vec![Event::Batch(Box::new(Batch {
                        campaign_id: id,
                        index,
                        at,
                        recipients,
                    }))],
                );
                for m in chunk {
                    let queued = Event::message(
                        id,
                        at,
                        What::Queued {
                            message_id: m.id,
                            session_id: self.sessions[m.sender].id,
                            contact: m.contact,
                        },
                    );
                    self.b.queue_in_batch(m.agg, done.wave, queued);
                }
            }
        }
        self.clock += TimeDelta::milliseconds(n as i64) + TimeDelta::seconds(1);

        let mut run = Run {
            id,
            agg,
            senders,
            throttle,
            reserved: required,
            state_wave: started.wave,
            grant_wave: 0,
            final_wave: 0,
            last_final_at: self.clock,
            auto_pauses: 0,
            consecutive: vec![0; self.sessions.len()],
            force: None,
            sent: 0,
            failed: 0,
            cancelled: 0,
        };
        let percent =
            |rng: &mut StdRng, from: usize, to: usize| n * rng.random_range(from..to) / 100;
        let stop_at = left_running.then_some(n * 6 / 10);
        let cancel_at = (!left_running && ((c == 0 && self.must(1)) || self.rng.random_bool(0.1)))
            .then(|| percent(&mut self.rng, 30, 70));
        let pause_at = ((c == 0 && self.must(0)) || self.rng.random_bool(0.2))
            .then(|| percent(&mut self.rng, 10, 90));
        let trip_at = ((c == 0 && self.must(2)) || self.rng.random_bool(0.15))
            .then(|| percent(&mut self.rng, 5, 50));

        let mut queue: std::collections::VecDeque<usize> = (0..n).collect();
        let mut attempts = 0usize;
        loop {
            if stop_at == Some(attempts) {
                // Left running: one message is being sent right now.
                if let Some(m) = queue.pop_front() {
                    self.start_attempt(&mut run, &mut messages[m]);
                }
                self.running = Some(Running {
                    agg,
                    senders: run.senders.clone(),
                    wave: run.state_wave.max(run.grant_wave),
                });
                return;
            }
            if cancel_at == Some(attempts) {
                self.cancel(&mut run, &mut messages);
                return;
            }
            if pause_at == Some(attempts) {
                let pause = seconds(&mut self.rng, 600, 3 * 3600);
                self.pause(&mut run, PauseReason::Manual, pause);
            }
            if trip_at == Some(attempts) {
                let s = *pick(&mut self.rng, &run.senders);
                run.force = Some((s, Campaign::AUTO_PAUSE_THRESHOLD));
            }
            let Some(m) = queue.pop_front() else {
                break;
            };
            attempts += 1;
            if self.send(&mut run, &mut messages[m]) {
                queue.push_back(m);
            }
        }
        self.complete(&mut run);
    }

    fn ensure_points(&mut self, required: u64) {
        let available = self.balance - self.reserved;
        if available >= required {
            return;
        }
        self.top_up((required - available).div_ceil(1_000) * 1_000 + 1_000);
    }

    /// Points bought (the payment gateway's callback credits them).
    fn top_up(&mut self, points: u64) {
        self.balance += points;
        let reference = self.reference("TOPUP");
        let at = self.clock;
        self.commit(
            self.wallet,
            0,
            at,
            Who::System,
            None,
            vec![Event::Wallet(Box::new(WalletEvent::PointsToppedUp {
                points: Points::new(points),
                reference,
                balance_after: Points::new(self.balance),
                reserved_after: Points::new(self.reserved),
                available_after: Points::new(self.balance - self.reserved),
                at,
            }))],
        );
        self.clock += TimeDelta::seconds(1);
    }

    fn reserve(&mut self, campaign_id: CampaignId, points: u64, after: u32, who: Who) -> Done {
        self.reserved += points;
        let at = self.clock;
        let done = self.commit(
            self.wallet,
            after,
            at,
            who,
            None,
            vec![Event::Wallet(Box::new(WalletEvent::PointsReserved {
                campaign_id,
                points: Points::new(points),
                balance_after: Points::new(self.balance),
                reserved_after: Points::new(self.reserved),
                available_after: Points::new(self.balance - self.reserved),
                at,
            }))],
        );
        self.clock += TimeDelta::milliseconds(200);
        done
    }

    fn campaign_event(
        &mut self,
        run: &Run,
        after: u32,
        who: Who,
        cause: Option<Done>,
        event: CampaignEvent,
    ) -> Done {
        let at = match &event {
            CampaignEvent::CampaignPaused { at, .. }
            | CampaignEvent::CampaignAutoPaused { at, .. }
            | CampaignEvent::CampaignResumed { at }
            | CampaignEvent::CampaignCancelled { at, .. }
            | CampaignEvent::CampaignCompleted { at, .. } => *at,
            _ => self.clock,
        };
        self.commit(
            run.agg,
            after,
            at,
            who,
            cause,
            vec![Event::Campaign(Box::new(event))],
        )
    }

    /// Paused now, resumed after `pause`; grants after the resume only.
    fn pause(&mut self, run: &mut Run, reason: PauseReason, pause: TimeDelta) {
        let who = if reason == PauseReason::Manual {
            self.user()
        } else {
            Who::System
        };
        let after = run.state_wave.max(run.grant_wave);
        let at = self.clock;
        self.campaign_event(
            run,
            after,
            who,
            None,
            CampaignEvent::CampaignPaused { reason, at },
        );
        self.clock += pause;
        let at = self.clock;
        let resumed = self.campaign_event(run, 0, who, None, CampaignEvent::CampaignResumed { at });
        run.state_wave = resumed.wave;
    }

    /// Waits until a sender may send: active hours open, a sender with room
    /// left today. Prefers `preferred`.
    fn wait_for_slot(&mut self, run: &mut Run, preferred: usize) -> (usize, NaiveDate) {
        for _ in 0..10_000 {
            if !self.hours.is_open(self.clock) {
                let next = self
                    .hours
                    .next_opening(self.clock)
                    .expect("every schedule opens within a week");
                let jitter = seconds(&mut self.rng, 0, 120);
                if self.pause_for_hours {
                    let pause = next - self.clock + jitter;
                    self.pause(run, PauseReason::OutsideActiveHours, pause);
                } else {
                    self.clock = next + jitter;
                }
                continue;
            }
            let date = self.hours.local_date(self.clock);
            let found = std::iter::once(preferred)
                .chain(run.senders.iter().copied().filter(|&s| s != preferred))
                .find(|&s| self.has_room(s, date));
            if let Some(s) = found {
                return (s, date);
            }
            self.clock = self.hours.next_local_midnight(self.clock) + seconds(&mut self.rng, 0, 60);
        }
        panic!("no sender could send for 10,000 tries: the generator is wrong");
    }

    fn has_room(&self, s: usize, date: NaiveDate) -> bool {
        let sess = &self.sessions[s];
        sess.status == SessionStatus::Ready
            && !sess.deleted
            && self.days.get(&(s, date)).map_or(0, |d| d.count) < sess.daily_limit.value()
    }

    /// A slot (unless this day counter granted the message already) and the
    /// attempt's start. Returns the sender and the start.
    fn start_attempt(&mut self, run: &mut Run, msg: &mut Msg) -> (usize, Done) {
        self.clock += TimeDelta::milliseconds(
            (run.throttle.delay(&mut self.rng).as_millis() as i64) / run.senders.len() as i64,
        );
        let preferred = run.force.map_or(msg.sender, |(s, _)| s);
        let (s, date) = self.wait_for_slot(run, preferred);
        self.keep_plan();
        let gate = run
            .state_wave
            .max(self.sessions[s].gate_wave)
            .max(self.schedule_wave)
            .max(self.plan_wave)
            .max(self.b.wave_of(msg.agg));
        let at = self.clock;
        let session_id = self.sessions[s].id;
        let mut after = gate;
        if !msg.granted.contains(&(s, date)) {
            let day_agg = match self.days.get(&(s, date)) {
                Some(day) => day.agg,
                None => {
                    let agg =
                        self.b
                            .aggregate(self.idx, Kind::SessionDay, AggId::Day(session_id, date));
                    self.days.insert((s, date), Day { agg, count: 0 });
                    agg
                }
            };
            let day = self.days.get_mut(&(s, date)).expect("just made");
            day.count += 1;
            let count_after = day.count;
            let granted = self.commit(
                day_agg,
                gate,
                at,
                Who::Engine(self.engine),
                None,
                vec![Event::Day(SessionDayEvent::SlotGranted {
                    session_id,
                    message_id: msg.id,
                    campaign_id: run.id,
                    at,
                    local_date: date,
                    count_after,
                    governed: None,
                })],
            );
            msg.granted.push((s, date));
            after = granted.wave;
            self.sessions[s].last_grant_wave = self.sessions[s].last_grant_wave.max(granted.wave);
            self.last_grant_wave = self.last_grant_wave.max(granted.wave);
            run.grant_wave = run.grant_wave.max(granted.wave);
        }
        msg.attempt += 1;
        let started = self.commit(
            msg.agg,
            after,
            at,
            Who::Engine(self.engine),
            None,
            vec![Event::message(
                run.id,
                at,
                What::Started {
                    session_id,
                    attempt: msg.attempt,
                },
            )],
        );
        (s, started)
    }

    /// One attempt of one message. Returns whether it is to be retried.
    fn send(&mut self, run: &mut Run, msg: &mut Msg) -> bool {
        let (s, _) = self.start_attempt(run, msg);
        let session_id = self.sessions[s].id;
        let campaign_id = run.id;
        let attempt = msg.attempt;
        let engine = Who::Engine(self.engine);
        let at = self.clock + seconds(&mut self.rng, 1, 4);
        let forced = matches!(run.force, Some((f, left)) if f == s && left > 0);
        let roll: f64 = self.rng.random();
        enum Outcome {
            Sent,
            Retry(&'static str),
            ForGood(&'static str),
            Unknown,
        }
        let outcome = if forced {
            if let Some((_, left)) = run.force.as_mut() {
                *left -= 1;
            }
            Outcome::Retry("connection reset while sending")
        } else if attempt == 1 {
            match roll {
                r if r < 0.85 => Outcome::Sent,
                r if r < 0.92 => Outcome::Retry(pick_str(&mut self.rng, &RETRYABLE)),
                r if r < 0.985 => Outcome::ForGood(pick_str(&mut self.rng, &FOR_GOOD)),
                _ => Outcome::Unknown,
            }
        } else if roll < 0.75 {
            Outcome::Sent
        } else {
            Outcome::ForGood(pick_str(&mut self.rng, &RETRYABLE))
        };
        match outcome {
            Outcome::Sent => {
                run.consecutive[s] = 0;
                run.sent += 1;
                // Mostly the driver answers with WhatsApp's id; sometimes a
                // receipt beats it and proves the send (no id).
                let receipt_first = self.rng.random_bool(0.02);
                let provider = (!receipt_first).then(|| self.rng.random::<u64>());
                let mut events = vec![Event::message(
                    campaign_id,
                    at,
                    What::Sent {
                        session_id,
                        attempt,
                        provider,
                        contact: msg.contact,
                    },
                )];
                if receipt_first {
                    events.push(Event::message(campaign_id, at, What::Delivered));
                    if self.rng.random_bool(0.5) {
                        events.push(Event::message(campaign_id, at, What::Read));
                    }
                }
                let done = self.commit(msg.agg, 0, at, engine, None, events);
                if !receipt_first {
                    self.receipts(msg, campaign_id, at);
                }
                self.reply(msg, session_id, done, at);
                self.finalize(run, msg, done, at);
                false
            }
            Outcome::Retry(reason) | Outcome::ForGood(reason) => {
                let retryable = matches!(outcome, Outcome::Retry(_));
                let done = self.commit(
                    msg.agg,
                    0,
                    at,
                    engine,
                    None,
                    vec![Event::message(
                        campaign_id,
                        at,
                        What::Failed {
                            session_id,
                            attempt,
                            reason,
                            retryable,
                        },
                    )],
                );
                run.consecutive[s] += 1;
                if retryable {
                    msg.fate = Fate::Retry;
                } else {
                    run.failed += 1;
                    self.finalize(run, msg, done, at);
                }
                if run.consecutive[s] >= Campaign::AUTO_PAUSE_THRESHOLD {
                    self.auto_pause(run, s, done, at);
                }
                retryable
            }
            Outcome::Unknown => {
                let at = at + seconds(&mut self.rng, 60, 300);
                let done = self.commit(
                    msg.agg,
                    0,
                    at,
                    Who::System,
                    None,
                    vec![Event::message(
                        campaign_id,
                        at,
                        What::Unknown {
                            session_id,
                            attempt,
                        },
                    )],
                );
                run.failed += 1;
                self.finalize(run, msg, done, at);
                false
            }
        }
    }

    fn finalize(&mut self, run: &mut Run, msg: &mut Msg, done: Done, at: DateTime<Utc>) {
        msg.fate = Fate::Final;
        run.final_wave = run.final_wave.max(done.wave);
        run.last_final_at = run.last_final_at.max(at);
    }

    /// Delivery and read receipts of a sent message.
    fn receipts(&mut self, msg: &Msg, campaign_id: CampaignId, sent_at: DateTime<Utc>) {
        if !self.rng.random_bool(0.9) {
            return;
        }
        let engine = Who::Engine(self.engine);
        let delivered_at = sent_at + seconds(&mut self.rng, 2, 90);
        if self.rng.random_bool(0.05) {
            // Read with no delivery receipt first: the aggregate records both.
            self.commit(
                msg.agg,
                0,
                delivered_at,
                engine,
                None,
                vec![
                    Event::message(campaign_id, delivered_at, What::Delivered),
                    Event::message(campaign_id, delivered_at, What::Read),
                ],
            );
            return;
        }
        self.commit(
            msg.agg,
            0,
            delivered_at,
            engine,
            None,
            vec![Event::message(campaign_id, delivered_at, What::Delivered)],
        );
        if self.rng.random_bool(0.6) {
            let read_at = delivered_at + seconds(&mut self.rng, 30, 8 * 3600);
            self.commit(
                msg.agg,
                0,
                read_at,
                engine,
                None,
                vec![Event::message(campaign_id, read_at, What::Read)],
            );
        }
    }

    /// Some recipients write back (about one in twelve): an inbound
    /// message to the session that sent, after its send. Decided from the
    /// message's id, not the generator, so the rest of the history is the
    /// same with or without replies.
    fn reply(&mut self, msg: &Msg, session_id: SessionId, sent: Done, sent_at: DateTime<Utc>) {
        let roll = mix(msg.id.as_uuid().as_u64_pair().1 ^ SALT_REPLY);
        if !roll.is_multiple_of(12) {
            return;
        }
        let contact = &self.contacts[msg.contact as usize];
        let provider_message_id = format!(
            "false_{}_3EB0{:016X}",
            contact.phone.whatsapp_chat_id(),
            mix(roll)
        );
        // A quarter come from a `@lid` id the driver could not resolve.
        let (from, from_raw) = if (roll >> 8).is_multiple_of(4) {
            (
                None,
                format!(
                    "{}@lid",
                    100_000_000_000_000 + (roll >> 16) % 900_000_000_000_000
                ),
            )
        } else {
            (
                Some(contact.phone.clone()),
                contact.phone.whatsapp_chat_id(),
            )
        };
        let text = REPLIES[((roll >> 32) % REPLIES.len() as u64) as usize].map(str::to_owned);
        let at = sent_at + TimeDelta::seconds(30 + ((roll >> 40) % 3_600) as i64);
        let inbound_id = inbound::inbound_id(session_id, &provider_message_id);
        let agg = self
            .b
            .aggregate(self.idx, Kind::Inbound, AggId::Uuid(*inbound_id.as_uuid()));
        self.commit(
            agg,
            sent.wave,
            at,
            Who::Engine(self.engine),
            None,
            vec![Event::Inbound(Box::new(
                InboundEvent::InboundMessageReceived {
                    inbound_id,
                    session_id,
                    from,
                    from_raw,
                    kind: Some(if text.is_some() {
                        wablast_domain::inbound::InboundKind::Text
                    } else {
                        wablast_domain::inbound::InboundKind::Image
                    }),
                    text,
                    provider_message_id,
                    at,
                },
            ))],
        );
    }

    fn auto_pause(&mut self, run: &mut Run, s: usize, failure: Done, at: DateTime<Utc>) {
        let failures = run.consecutive[s];
        run.consecutive[s] = 0;
        run.force = None;
        run.auto_pauses += 1;
        let resume_at = at + Campaign::auto_pause_backoff(run.auto_pauses);
        let after = run.state_wave.max(run.grant_wave).max(failure.wave);
        let session_id = self.sessions[s].id;
        self.campaign_event(
            run,
            after,
            Who::System,
            Some(failure),
            CampaignEvent::CampaignAutoPaused {
                session_id,
                failures,
                pause_number: run.auto_pauses,
                resume_at,
                at,
            },
        );
        self.clock = resume_at + seconds(&mut self.rng, 0, 30);
        let at = self.clock;
        let resumed = self.campaign_event(
            run,
            0,
            Who::System,
            None,
            CampaignEvent::CampaignResumed { at },
        );
        run.state_wave = resumed.wave;
    }

    fn complete(&mut self, run: &mut Run) {
        let at = run.last_final_at.max(self.clock) + TimeDelta::seconds(1);
        self.clock = at;
        let completed = self.campaign_event(
            run,
            run.final_wave.max(run.grant_wave),
            Who::System,
            None,
            CampaignEvent::CampaignCompleted {
                sent: run.sent,
                failed: run.failed,
                cancelled: run.cancelled,
                points_reserved: Points::new(run.reserved),
                points_spent: Points::new(2 * run.sent),
                at,
            },
        );
        self.clock += TimeDelta::seconds(1);
        self.settle(run, completed, completed.wave);
    }

    fn cancel(&mut self, run: &mut Run, messages: &mut [Msg]) {
        let at = self.clock + seconds(&mut self.rng, 1, 60);
        self.clock = at;
        let who = self.user();
        let cancelled = self.campaign_event(
            run,
            run.state_wave.max(run.grant_wave),
            who,
            None,
            CampaignEvent::CampaignCancelled {
                points_reserved: Points::new(run.reserved),
                at,
            },
        );
        let mut last = cancelled.wave.max(run.final_wave);
        for (i, msg) in messages.iter_mut().enumerate() {
            if msg.fate == Fate::Final {
                continue;
            }
            let at = at + TimeDelta::milliseconds(10 * i as i64 + 10);
            let done = self.commit(
                msg.agg,
                cancelled.wave,
                at,
                Who::System,
                Some(cancelled),
                vec![Event::message(run.id, at, What::Cancelled)],
            );
            msg.fate = Fate::Final;
            run.cancelled += 1;
            last = last.max(done.wave);
            self.clock = self.clock.max(at);
        }
        self.clock += TimeDelta::seconds(2);
        self.settle(run, cancelled, last);
    }

    /// The wallet captures what was sent and releases the rest, in one
    /// commit (as `WalletCommand::Settle` records it).
    fn settle(&mut self, run: &Run, cause: Done, after: u32) {
        let at = self.clock;
        let captured = 2 * run.sent;
        let released = run.reserved - captured;
        let mut events = Vec::new();
        if captured > 0 {
            self.balance -= captured;
            self.reserved -= captured;
            events.push(Event::Wallet(Box::new(WalletEvent::PointsCaptured {
                campaign_id: run.id,
                points: Points::new(captured),
                messages_sent: run.sent,
                campaign_reserved_after: Points::new(released),
                balance_after: Points::new(self.balance),
                reserved_after: Points::new(self.reserved),
                available_after: Points::new(self.balance - self.reserved),
                at,
            })));
        }
        if released > 0 || captured == 0 {
            self.reserved -= released;
            events.push(Event::Wallet(Box::new(WalletEvent::ReservationReleased {
                campaign_id: run.id,
                points: Points::new(released),
                balance_after: Points::new(self.balance),
                reserved_after: Points::new(self.reserved),
                available_after: Points::new(self.balance - self.reserved),
                at,
            })));
        }
        self.commit(self.wallet, after, at, Who::System, Some(cause), events);
    }

    // -- drafts and the end -------------------------------------------------

    fn drafts(&mut self) {
        let senders: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|s| s.sender)
            .map(|s| s.id)
            .collect();
        for (kind, forced, p) in [(0, 3, 0.3), (1, 2, 0.2)] {
            if !(self.must(forced) || self.rng.random_bool(p)) {
                continue;
            }
            self.clock += seconds(&mut self.rng, 600, 24 * 3600);
            let at = self.clock;
            let id = CampaignId::from_uuid(new_id(&mut self.rng, at));
            let agg = self
                .b
                .aggregate(self.idx, Kind::Campaign, AggId::Uuid(*id.as_uuid()));
            let who = self.user();
            let name = format!("Draft {}", pick(&mut self.rng, &CAMPAIGN_NAMES));
            let template =
                Template::parse(pick_str(&mut self.rng, &TEMPLATES)).expect("a template");
            self.commit(
                agg,
                self.setup_wave,
                at,
                who,
                None,
                vec![Event::Campaign(Box::new(CampaignEvent::CampaignCreated {
                    skip_not_on_whatsapp: false,
                    skip_unanswered_after: wablast_domain::types::EngagementGuard::OFF,
                    campaign_id: id,
                    name,
                    contact_list_id: self.contact_list,
                    template,
                    media_id: None,
                    whatsapp_template: None,
                    sender_session_ids: senders.clone(),
                    throttle: Throttle::DEFAULT,
                    scheduled_at: None,
                    at,
                }))],
            );
            if kind == 1 {
                // Scheduled, then called off before it started.
                self.clock += seconds(&mut self.rng, 60, 3600);
                let at = self.clock;
                let at_time = at + TimeDelta::days(3);
                self.commit(
                    agg,
                    0,
                    at,
                    who,
                    None,
                    vec![Event::Campaign(Box::new(
                        CampaignEvent::CampaignScheduled { at_time, at },
                    ))],
                );
                self.clock += seconds(&mut self.rng, 60, 3600);
                let at = self.clock;
                self.commit(
                    agg,
                    0,
                    at,
                    who,
                    None,
                    vec![Event::Campaign(Box::new(
                        CampaignEvent::CampaignCancelled {
                            points_reserved: Points::ZERO,
                            at,
                        },
                    ))],
                );
            }
        }
    }

    fn end(&mut self) {
        self.clock += seconds(&mut self.rng, 3600, 3 * 24 * 3600);
        let after = self.max_wave;
        let linked: Vec<usize> = (0..self.sessions.len())
            .filter(|&s| self.sessions[s].sender)
            .collect();
        if linked.len() > 1 && self.rng.random_bool(0.3) {
            let s = *pick(&mut self.rng, &linked);
            self.update_settings(s, false);
        }
        if let Some(running) = &self.running {
            // A sender of the campaign still running is unlinked from the
            // phone: the campaign goes on with the others.
            let s = running.senders[0];
            self.leave(s, after, false);
        } else if self.must(2) || self.rng.random_bool(0.3) {
            let s = *pick(&mut self.rng, &linked);
            self.leave(s, after, false);
        }
        if self.must(3) || self.rng.random_bool(0.15) {
            let s = *pick(&mut self.rng, &linked);
            if !self.sessions[s].deleted {
                self.leave(s, after, true);
            }
        }
        // The session that never linked goes away.
        for s in 0..self.sessions.len() {
            if !self.sessions[s].sender && !self.sessions[s].deleted {
                self.clock += seconds(&mut self.rng, 60, 3600);
                self.leave(s, after, true);
            }
        }
        if self.must(3) || self.rng.random_bool(0.15) {
            let at = self.clock + TimeDelta::minutes(5);
            self.clock = at;
            self.hours = self.hours.clone().with_override(Override::Pause);
            self.commit(
                self.schedule,
                after,
                at,
                Who::User(self.idx),
                None,
                vec![Event::Schedule(Box::new(ScheduleEvent::OverrideSet {
                    mode: Override::Pause,
                    at,
                }))],
            );
        }
        if self.running.is_none() && (self.must(1) || self.rng.random_bool(0.15)) {
            let at = self.clock.max(self.expires_at) + TimeDelta::hours(1);
            self.clock = at;
            self.commit(
                self.wallet,
                after,
                at,
                Who::System,
                None,
                vec![Event::Wallet(Box::new(WalletEvent::PlanExpired {
                    plan_id: self.plan.plan_id,
                    expires_at: self.expires_at,
                    at,
                }))],
            );
        }
    }

    /// Logs a session out, or deletes it; a campaign still running loses
    /// it as a sender.
    fn leave(&mut self, s: usize, after: u32, delete: bool) {
        self.clock += seconds(&mut self.rng, 60, 3600);
        let at = self.clock;
        let sess = &mut self.sessions[s];
        let from = sess.status;
        let event = if delete {
            sess.deleted = true;
            SessionEvent::SessionDeleted { from, at }
        } else if from == SessionStatus::LoggedOut {
            return;
        } else {
            sess.status = SessionStatus::LoggedOut;
            SessionEvent::SessionLoggedOut { from, at }
        };
        let (agg, id) = (sess.agg, sess.id);
        let left = self.commit(
            agg,
            after,
            at,
            Who::User(self.idx),
            None,
            vec![Event::Session(Box::new(event))],
        );
        let Some(running) = self.running.as_mut() else {
            return;
        };
        if !running.senders.contains(&s) {
            return;
        }
        running.senders.retain(|&r| r != s);
        let reason = if delete {
            SenderUnavailableReason::Deleted
        } else {
            SenderUnavailableReason::LoggedOut
        };
        let remaining: Vec<SessionId> = running
            .senders
            .iter()
            .map(|&r| self.sessions[r].id)
            .collect();
        let stranded = remaining.is_empty();
        let at = at + TimeDelta::seconds(1);
        let mut events = vec![Event::Campaign(Box::new(
            CampaignEvent::CampaignSenderRemoved {
                session_id: id,
                reason,
                remaining_senders: remaining,
                at,
            },
        ))];
        if stranded {
            events.push(Event::Campaign(Box::new(CampaignEvent::CampaignPaused {
                reason: PauseReason::SenderUnavailable {
                    session_id: id,
                    why: reason,
                },
                at,
            })));
        }
        let (campaign_agg, campaign_wave) = (running.agg, running.wave);
        let done = self.commit(
            campaign_agg,
            campaign_wave.max(left.wave),
            at,
            Who::System,
            Some(left),
            events,
        );
        if let Some(running) = self.running.as_mut() {
            running.wave = done.wave;
        }
    }
}

impl Done {
    fn last_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.last.ms).expect("a valid instant")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashMap};

    use futures::TryStreamExt;
    use wablast_domain::verify::{LoggedEvent, Report, Rule, Verifier};

    use super::*;
    use crate::{delete_streams, nats_url, unique_prefix};

    fn commits(history: &History) -> Vec<Commit> {
        history.commit_waves().flatten().collect()
    }

    /// The events as `wablast verify` would read them from a log written
    /// wave by wave (in each wave, in the order generated).
    fn logged(commits: &[Commit]) -> Vec<LoggedEvent> {
        let mut positions: HashMap<&'static str, u64> = HashMap::new();
        let mut events = Vec::new();
        for commit in commits {
            let stream = if [Message::TYPE, Inbound::TYPE, RecipientBatch::TYPE]
                .contains(&commit.aggregate_type.as_str())
            {
                "h_MESSAGES"
            } else {
                "h_EVENTS"
            };
            let position = positions.entry(stream).or_default();
            *position += 1;
            for event in &commit.events {
                events.push(LoggedEvent {
                    stream: stream.to_owned(),
                    stream_sequence: *position,
                    aggregate_type: commit.aggregate_type.clone(),
                    tenant: commit.tenant.clone(),
                    aggregate_id: commit.aggregate_id.clone(),
                    sequence: event.sequence,
                    event_type: event.event_type.clone(),
                    occurred_at: commit.occurred_at,
                    payload: event.payload.clone(),
                });
            }
        }
        events
    }

    /// Stream by stream, each in log order, as `wablast verify` reads them.
    fn verify(events: &[LoggedEvent]) -> Report {
        let mut verifier = Verifier::default();
        let mut streams: Vec<&str> = events.iter().map(|e| e.stream.as_str()).collect();
        streams.sort();
        streams.dedup();
        for stream in streams {
            for event in events.iter().filter(|e| e.stream == stream) {
                verifier.observe(event);
            }
        }
        verifier.finish()
    }

    #[test]
    fn the_same_seed_gives_the_same_history_ids_included() {
        let spec = HistorySpec::small(7);

        let a = History::generate(&spec);
        let b = History::generate(&spec);
        let other = History::generate(&HistorySpec::small(8));

        assert_eq!(a.events(), b.events());
        assert_eq!(a.tenants(), b.tenants());
        assert_eq!(commits(&a), commits(&b));
        assert_ne!(commits(&a), commits(&other));
        assert_ne!(a.tenants(), other.tenants());
    }

    #[test]
    fn aggregates_count_their_events_from_one_and_a_wave_holds_an_aggregate_once() {
        let history = History::generate(&HistorySpec::small(1));
        let mut last: HashMap<(String, String, String), u64> = HashMap::new();
        let mut event_ids = BTreeSet::new();
        let mut command_ids = BTreeSet::new();
        let (mut events, mut commit_count) = (0, 0);

        for wave in history.commit_waves() {
            let mut in_wave = BTreeSet::new();
            for commit in wave {
                let key = (
                    commit.tenant.clone(),
                    commit.aggregate_type.clone(),
                    commit.aggregate_id.clone(),
                );
                assert!(in_wave.insert(key.clone()), "{key:?} twice in one wave");
                let seen = last.entry(key.clone()).or_default();
                for event in &commit.events {
                    assert_eq!(event.sequence, *seen + 1, "{key:?}");
                    *seen = event.sequence;
                    assert!(event_ids.insert(event.event_id), "event id reused");
                    assert_eq!(event.event_id.get_version_num(), 7);
                }
                assert!(command_ids.insert(commit.command_id), "command id reused");
                events += commit.events.len();
                commit_count += 1;
            }
        }

        assert_eq!(events, history.events());
        assert_eq!(commit_count, history.commits());
        assert_eq!(last.len(), history.aggregates());
    }

    #[test]
    fn the_verifier_finds_no_violation() {
        for seed in [1, 2, 3, 42] {
            let history = History::generate(&HistorySpec::small(seed));
            let events = logged(&commits(&history));

            let report = verify(&events);

            assert!(
                report.holds(),
                "seed {seed}: {} violation(s), first ones: {:#?}",
                report.violations.len(),
                &report.violations[..report.violations.len().min(5)]
            );
            assert_eq!(report.events as usize, history.events());
            assert_eq!(report.aggregates as usize, history.aggregates());
            for rule in [
                Rule::WalletNeverNegative,
                Rule::WalletFiguresAddUp,
                Rule::CapturedTwicePerSent,
                Rule::DailyLimit,
                Rule::ActiveHours,
                Rule::SentWithASlot,
                Rule::StatusNeverRegresses,
                Rule::Readable,
            ] {
                assert!(
                    report.checked.get(&rule).copied().unwrap_or(0) > 0,
                    "{rule} not checked"
                );
            }
        }
    }

    #[test]
    fn a_small_history_has_a_few_thousand_events_of_every_kind() {
        let history = History::generate(&HistorySpec::small(1));
        let mut types: BTreeMap<String, usize> = BTreeMap::new();
        for commit in commits(&history) {
            for event in commit.events {
                *types.entry(event.event_type).or_default() += 1;
            }
        }

        assert!(history.tenants().len() >= 3);
        assert!(
            (2_000..10_000).contains(&history.events()),
            "{} events",
            history.events()
        );
        for expected in [
            "PlanDefined",
            "PlanRetired",
            "ActiveHoursSet",
            "OverrideSet",
            "PlanSubscribed",
            "PointsToppedUp",
            "PointsGranted",
            "PointsReserved",
            "PointsCaptured",
            "ReservationReleased",
            "ReservationCancelled",
            "PlanExpired",
            "SessionCreated",
            "SessionStartRequested",
            "SessionStopRequested",
            "SessionStatusChanged",
            "SessionSettingsUpdated",
            "TrustLevelChanged",
            "SessionLoggedOut",
            "SessionDeleted",
            "CampaignCreated",
            "CampaignScheduled",
            "CampaignStarted",
            "CampaignPaused",
            "CampaignAutoPaused",
            "CampaignResumed",
            "CampaignSenderRemoved",
            "CampaignCancelled",
            "CampaignCompleted",
            "SlotGranted",
            "MessageQueued",
            "MessageSendingStarted",
            "MessageSent",
            "MessageFailed",
            "MessageDelivered",
            "MessageRead",
            "MessageCancelled",
            "MessageMarkedUnknown",
            "RecipientsQueued",
            "InboundMessageReceived",
        ] {
            assert!(types.contains_key(expected), "no {expected} in {types:#?}");
        }
    }

    /// What the verifier does not check: a campaign's counts, its
    /// recipients and its settlement against its messages' final statuses.
    #[test]
    fn campaign_figures_match_their_messages() {
        #[derive(Default, Debug, PartialEq)]
        struct Tally {
            queued: u64,
            sent: u64,
            failed: u64,
            cancelled: u64,
            open: u64,
        }
        let history = History::generate(&HistorySpec::small(5));
        let commits = commits(&history);
        let mut finals: HashMap<String, (CampaignId, &'static str)> = HashMap::new();
        let mut campaigns: HashMap<CampaignId, (Option<u64>, Option<Tally>)> = HashMap::new();
        let mut settled: HashMap<CampaignId, u64> = HashMap::new();
        let mut campaign_ids: HashMap<String, CampaignId> = HashMap::new();
        for commit in &commits {
            for event in &commit.events {
                let payload = event.payload.clone();
                match commit.aggregate_type.as_str() {
                    "message" => {
                        let e: MessageEvent = serde_json::from_value(payload).unwrap();
                        let (campaign, status) = match e {
                            MessageEvent::MessageQueued { campaign_id, .. } => {
                                (campaign_id, "open")
                            }
                            MessageEvent::MessageSendingStarted { campaign_id, .. } => {
                                (campaign_id, "open")
                            }
                            MessageEvent::MessageSent { campaign_id, .. }
                            | MessageEvent::MessageDelivered { campaign_id, .. }
                            | MessageEvent::MessageRead { campaign_id, .. } => {
                                (campaign_id, "sent")
                            }
                            MessageEvent::MessageFailed {
                                campaign_id,
                                retryable,
                                ..
                            } => (campaign_id, if retryable { "open" } else { "failed" }),
                            MessageEvent::MessageMarkedUnknown { campaign_id, .. } => {
                                (campaign_id, "failed")
                            }
                            MessageEvent::MessageCancelled { campaign_id, .. } => {
                                (campaign_id, "cancelled")
                            }
                        };
                        finals.insert(commit.aggregate_id.clone(), (campaign, status));
                    }
                    "recipient_batch" => {
                        let RecipientBatchEvent::RecipientsQueued {
                            campaign_id,
                            recipients,
                            ..
                        } = serde_json::from_value(payload).unwrap()
                        else {
                            panic!("generated histories queue whole batches, no single sends");
                        };
                        for recipient in recipients {
                            finals
                                .entry(recipient.message_id.to_string())
                                .or_insert((campaign_id, "open"));
                        }
                    }
                    "campaign" => {
                        let e: CampaignEvent = serde_json::from_value(payload).unwrap();
                        match e {
                            CampaignEvent::CampaignCreated { campaign_id, .. } => {
                                campaign_ids.insert(commit.aggregate_id.clone(), campaign_id);
                            }
                            CampaignEvent::CampaignStarted {
                                recipients,
                                points_reserved,
                                ..
                            } => {
                                assert_eq!(points_reserved.value(), 2 * recipients);
                                campaigns
                                    .entry(campaign_ids[&commit.aggregate_id])
                                    .or_default()
                                    .0 = Some(recipients);
                            }
                            CampaignEvent::CampaignCompleted {
                                sent,
                                failed,
                                cancelled,
                                points_reserved,
                                points_spent,
                                ..
                            } => {
                                assert_eq!(points_spent.value(), 2 * sent);
                                assert_eq!(
                                    points_reserved.value(),
                                    2 * (sent + failed + cancelled)
                                );
                                campaigns
                                    .entry(campaign_ids[&commit.aggregate_id])
                                    .or_default()
                                    .1 = Some(Tally {
                                    queued: sent + failed + cancelled,
                                    sent,
                                    failed,
                                    cancelled,
                                    open: 0,
                                });
                            }
                            _ => {}
                        }
                    }
                    "wallet" => {
                        if let Ok(WalletEvent::PointsCaptured {
                            campaign_id,
                            messages_sent,
                            ..
                        }) = serde_json::from_value(payload)
                        {
                            settled.insert(campaign_id, messages_sent);
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut tallies: HashMap<CampaignId, Tally> = HashMap::new();
        for (campaign, status) in finals.values() {
            let tally = tallies.entry(*campaign).or_default();
            tally.queued += 1;
            match *status {
                "sent" => tally.sent += 1,
                "failed" => tally.failed += 1,
                "cancelled" => tally.cancelled += 1,
                _ => tally.open += 1,
            }
        }
        let mut completed = 0;
        let mut running = 0;
        for (campaign, (recipients, recorded)) in &campaigns {
            let tally = &tallies[campaign];
            assert_eq!(Some(tally.queued), *recipients, "{campaign}");
            if tally.sent > 0 && tally.open == 0 {
                assert_eq!(settled.get(campaign), Some(&tally.sent), "{campaign}");
            }
            match recorded {
                Some(recorded) => {
                    completed += 1;
                    assert_eq!(recorded, tally, "{campaign}");
                }
                None if tally.open > 0 => running += 1,
                None => assert!(
                    tally.cancelled > 0,
                    "{campaign} neither completed nor cancelled"
                ),
            }
        }
        assert!(completed > 0);
        assert_eq!(running, 1, "exactly one campaign is left running");
    }

    #[test]
    fn for_events_comes_near_its_target() {
        let spec = HistorySpec::for_events(20_000, 3);

        let history = History::generate(&spec);

        let events = history.events() as f64;
        assert!(
            (17_000.0..23_000.0).contains(&events),
            "{events} events for {spec:?}"
        );
        assert!(history.aggregates() > history.events() / 10);
    }

    /// The aggregates' states as the log is read, for
    /// [`every_commit_is_what_its_aggregate_decides`].
    #[derive(Default)]
    struct World {
        plans: HashMap<String, Plan>,
        schedules: HashMap<String, Schedule>,
        wallets: HashMap<String, Wallet>,
        sessions: HashMap<(String, String), Session>,
        days: HashMap<(String, String), SessionDay>,
        campaigns: HashMap<String, Campaign>,
        messages: HashMap<(String, String), Message>,
        batches: HashMap<(String, String), RecipientBatch>,
        /// Messages queued in a batch, until their first commit.
        in_batches: HashMap<(String, String), wablast_domain::message::QueuedMessage>,
        inbound: HashMap<(String, String), Inbound>,
        /// Message keys by campaign.
        fan_out: HashMap<CampaignId, Vec<(String, String)>>,
        /// `MessageSent` seen per campaign.
        sent: HashMap<CampaignId, u64>,
    }

    /// Runs the command on the aggregate and requires exactly the recorded
    /// events; the aggregate then has them applied.
    fn decide<A>(state: &mut A, command: A::Command, recorded: Vec<A::Event>, at: &str)
    where
        A: Aggregate<Services = ()> + Clone,
        A::Command: std::fmt::Debug + Clone,
        A::Event: std::fmt::Debug + PartialEq,
        A::Error: std::fmt::Debug,
    {
        let mut next = state.clone();
        let sink = cqrs_es::event_sink::EventSink::default();
        if let Err(err) = futures::executor::block_on(next.handle(command.clone(), &(), &sink)) {
            panic!("{at}: {command:?} refused: {err:?}");
        }
        let decided = futures::executor::block_on(sink.collect());
        assert_eq!(decided, recorded, "{at}: {command:?}");
        *state = next;
    }

    fn decode<E: DomainEvent>(commit: &Commit) -> Vec<E> {
        commit
            .events
            .iter()
            .map(|e| serde_json::from_value(e.payload.clone()).expect("decodes"))
            .collect()
    }

    impl World {
        fn wallet(&self, tenant: &str) -> &Wallet {
            &self.wallets[tenant]
        }

        fn plan_terms(&self, tenant: &str) -> PlanTerms {
            self.wallet(tenant).plan().expect("a plan").clone()
        }

        fn replay(&mut self, commit: &Commit) {
            let tenant = commit.tenant.clone();
            let key = (tenant.clone(), commit.aggregate_id.clone());
            let at = format!(
                "{} {}.{} @{}",
                commit.aggregate_type,
                tenant,
                commit.aggregate_id,
                commit.first_sequence()
            );
            match commit.aggregate_type.as_str() {
                "plan" => self.plan(commit, &at),
                "schedule" => self.schedule(commit, &at),
                "wallet" => self.wallet_commit(commit, &at),
                "session" => self.session(commit, key, &at),
                "session_day" => self.day(commit, key, &at),
                "campaign" => self.campaign(commit, &at),
                "message" => self.message(commit, key, &at),
                "recipient_batch" => self.batch(commit, key, &at),
                "inbound" => self.inbound(commit, key, &at),
                other => panic!("unknown aggregate type {other}"),
            }
        }

        fn plan(&mut self, commit: &Commit, at: &str) {
            use wablast_domain::plan::PlanCommand;
            let events: Vec<PlanEvent> = decode(commit);
            let command = match events[0].clone() {
                PlanEvent::PlanDefined {
                    plan_id,
                    name,
                    period_days,
                    points,
                    max_sessions,
                    max_recipients_per_campaign,
                    max_daily_limit,
                    price,
                    features,
                    grace_days,
                    on_sale,
                    at,
                } => PlanCommand::DefinePlan {
                    plan_id,
                    name,
                    period_days,
                    points,
                    max_sessions,
                    max_recipients_per_campaign,
                    max_daily_limit,
                    price,
                    features,
                    grace_days,
                    on_sale,
                    at,
                },
                PlanEvent::PlanEdited {
                    name,
                    period_days,
                    points,
                    max_sessions,
                    max_recipients_per_campaign,
                    max_daily_limit,
                    price,
                    features,
                    grace_days,
                    on_sale,
                    at,
                    ..
                } => PlanCommand::EditPlan {
                    changes: wablast_domain::plan::PlanChanges {
                        name: Some(name),
                        period_days: Some(period_days),
                        points: Some(points),
                        max_sessions: Some(max_sessions),
                        max_recipients_per_campaign: Some(max_recipients_per_campaign),
                        max_daily_limit: Some(max_daily_limit),
                        price: Some(price),
                        features: Some(features),
                        grace_days: Some(grace_days),
                        on_sale: Some(on_sale),
                    },
                    at,
                },
                PlanEvent::PlanRetired { at, .. } => PlanCommand::RetirePlan { at },
            };
            let plan = self.plans.entry(commit.aggregate_id.clone()).or_default();
            decide(plan, command, events, at);
        }

        fn schedule(&mut self, commit: &Commit, at: &str) {
            use wablast_domain::schedule::ScheduleCommand;
            let events: Vec<ScheduleEvent> = decode(commit);
            let command = match events[0].clone() {
                ScheduleEvent::ActiveHoursSet {
                    timezone,
                    windows,
                    at,
                } => ScheduleCommand::SetActiveHours {
                    timezone,
                    windows,
                    at,
                },
                ScheduleEvent::OverrideSet { mode, at } => {
                    ScheduleCommand::SetOverride { mode, at }
                }
            };
            let schedule = self.schedules.entry(commit.tenant.clone()).or_default();
            decide(schedule, command, events, at);
        }

        fn wallet_commit(&mut self, commit: &Commit, at: &str) {
            use wablast_domain::wallet::WalletCommand;
            let events: Vec<WalletEvent> = decode(commit);
            let command = match events[0].clone() {
                WalletEvent::PlanSubscribed {
                    terms,
                    reference,
                    at,
                    ..
                } => {
                    // The API takes the terms from the plan, which refuses
                    // retired and unknown plans.
                    let plan = &self.plans[&terms.plan_id.to_string()];
                    assert_eq!(plan.subscription_terms().as_ref(), Ok(&terms), "{at}");
                    WalletCommand::Subscribe {
                        terms,
                        reference,
                        at,
                    }
                }
                WalletEvent::PointsToppedUp {
                    points,
                    reference,
                    at,
                    ..
                } => WalletCommand::TopUp {
                    points,
                    reference,
                    at,
                },
                WalletEvent::PointsGranted {
                    points,
                    by,
                    reason,
                    reference,
                    at,
                    ..
                } => WalletCommand::Grant {
                    points,
                    by,
                    reason,
                    reference,
                    at,
                },
                WalletEvent::PointsReserved {
                    campaign_id,
                    points,
                    at,
                    ..
                } => WalletCommand::Reserve {
                    campaign_id,
                    recipients: points.value() / 2,
                    at,
                },
                WalletEvent::PointsCaptured {
                    campaign_id,
                    messages_sent,
                    at,
                    ..
                } => WalletCommand::Settle {
                    campaign_id,
                    messages_sent,
                    at,
                },
                WalletEvent::ReservationReleased {
                    campaign_id, at, ..
                } => WalletCommand::Settle {
                    campaign_id,
                    messages_sent: 0,
                    at,
                },
                WalletEvent::ReservationCancelled {
                    campaign_id, at, ..
                } => WalletCommand::CancelReservation { campaign_id, at },
                WalletEvent::PlanExpired { at, .. } => WalletCommand::ExpirePlan { at },
                WalletEvent::PlanExpiryWarned { at, .. }
                | WalletEvent::PlanRenewalDue { at, .. }
                | WalletEvent::BalanceLowWarned { at, .. } => WalletCommand::Notify { at },
                WalletEvent::TenantSuspended { reason, by, at } => {
                    WalletCommand::Suspend { reason, by, at }
                }
                WalletEvent::TenantReactivated { by, at } => WalletCommand::Reactivate { by, at },
                WalletEvent::PointsTakenBack {
                    points,
                    reference,
                    at,
                    ..
                } => WalletCommand::TakeBack {
                    points,
                    reference,
                    at,
                },
            };
            if let WalletCommand::Settle {
                campaign_id,
                messages_sent,
                ..
            } = &command
            {
                // Settled once every message is final, for what was sent.
                let final_all = self.fan_out[campaign_id]
                    .iter()
                    .all(|m| self.messages.get(m).is_some_and(Message::is_final));
                assert!(final_all, "{at}: settled before its messages are final");
                assert_eq!(
                    self.sent.get(campaign_id).copied().unwrap_or(0),
                    *messages_sent,
                    "{at}"
                );
            }
            let wallet = self.wallets.entry(commit.tenant.clone()).or_default();
            decide(wallet, command, events, at);
        }

        fn session(&mut self, commit: &Commit, key: (String, String), at: &str) {
            use wablast_domain::session::SessionCommand;
            let events: Vec<SessionEvent> = decode(commit);
            let terms = self
                .wallets
                .get(&commit.tenant)
                .and_then(|w| w.plan().cloned());
            let plan_max = || terms.as_ref().expect("a plan").max_daily_limit;
            let command = match events[0].clone() {
                SessionEvent::SessionCreated {
                    session_id,
                    name,
                    driver,
                    login,
                    phone_number,
                    daily_limit,
                    daily_limit_follows_trust_level,
                    auto_start,
                    warm_up,
                    at,
                    ..
                } => {
                    let in_use = self
                        .sessions
                        .iter()
                        .filter(|((t, _), s)| *t == commit.tenant && !s.is_deleted())
                        .count() as u32;
                    SessionCommand::CreateSession {
                        session_id,
                        name,
                        driver,
                        login,
                        phone_number,
                        daily_limit: (!daily_limit_follows_trust_level).then_some(daily_limit),
                        auto_start,
                        warm_up: Some(warm_up),
                        sessions_in_use: in_use,
                        plan_max_sessions: terms.as_ref().expect("a plan").max_sessions,
                        plan_max_daily_limit: plan_max(),
                        at,
                    }
                }
                SessionEvent::SessionStartRequested { at, .. } => {
                    SessionCommand::StartSession { at }
                }
                SessionEvent::SessionStopRequested { at, .. } => SessionCommand::StopSession { at },
                SessionEvent::SessionWaiting { reason, until, at } => {
                    SessionCommand::ReportWaiting { reason, until, at }
                }
                SessionEvent::SessionHeld { engine, fence, at } => {
                    SessionCommand::HoldSession { engine, fence, at }
                }
                SessionEvent::SessionReconnectScheduled {
                    attempt,
                    next_try_at,
                    error,
                    at,
                } => SessionCommand::ReportReconnect {
                    attempt,
                    next_try_at,
                    error,
                    at,
                },
                SessionEvent::SessionLoggedOut { at, .. } => SessionCommand::LogoutSession { at },
                SessionEvent::SessionDeleted { at, .. } => SessionCommand::DeleteSession { at },
                SessionEvent::SessionStatusChanged {
                    to,
                    phone_number,
                    error,
                    reason,
                    at,
                    ..
                } => SessionCommand::ReportStatus {
                    status: to,
                    phone_number,
                    error,
                    reason,
                    at,
                },
                SessionEvent::SessionSettingsUpdated {
                    name,
                    daily_limit,
                    daily_limit_follows_trust_level,
                    auto_start,
                    throttle,
                    pacing,
                    at,
                } => SessionCommand::UpdateSettings {
                    name: Some(name),
                    daily_limit: (!daily_limit_follows_trust_level).then_some(daily_limit),
                    auto_start: Some(auto_start),
                    throttle: Some(throttle),
                    pacing: Some(pacing),
                    plan_max_daily_limit: plan_max(),
                    at,
                },
                SessionEvent::TrustLevelChanged { to, at, .. } => SessionCommand::SetTrustLevel {
                    level: to,
                    by_admin: true,
                    plan_max_daily_limit: plan_max(),
                    at,
                },
                SessionEvent::WarmUpStarted { since, .. } => SessionCommand::ObserveSending {
                    last_sent_at: None,
                    at: since,
                },
                SessionEvent::SenderRestricted { restriction } => {
                    SessionCommand::ReportRestriction {
                        kind: restriction.kind,
                        until: Some(restriction.until),
                        at: restriction.since,
                    }
                }
                SessionEvent::GovernorStateChanged { at, .. } => {
                    SessionCommand::ReportGovernorState { at }
                }
            };
            let session = self.sessions.entry(key).or_default();
            decide(session, command, events, at);
        }

        fn day(&mut self, commit: &Commit, key: (String, String), at: &str) {
            use wablast_domain::session_day::{SendFacts, SessionDayCommand};
            let events: Vec<SessionDayEvent> = decode(commit);
            let SessionDayEvent::SlotGranted {
                session_id,
                message_id,
                campaign_id,
                at: granted_at,
                local_date,
                ..
            } = events[0].clone();
            let session = &self.sessions[&(commit.tenant.clone(), session_id.to_string())];
            let facts = SendFacts {
                session_status_ready: session.is_ready(),
                asked_by_holder: true,
                daily_limit: session.daily_limit(),
                active_hours: self
                    .schedules
                    .get(&commit.tenant)
                    .map(|s| s.active_hours().clone())
                    .unwrap_or_default(),
                plan_expires_at: self.wallet(&commit.tenant).plan_expires_at(),
                campaign_running: self.campaigns[&campaign_id.to_string()].is_running(),
                governor: None,
            };
            let command = SessionDayCommand::RequestSlot {
                session_id,
                day: local_date,
                message_id,
                campaign_id,
                at: granted_at,
                facts,
            };
            let day = self.days.entry(key).or_default();
            decide(day, command, events, at);
        }

        fn campaign(&mut self, commit: &Commit, at: &str) {
            use wablast_domain::campaign::CampaignCommand;
            let events: Vec<CampaignEvent> = decode(commit);
            let command = match events[0].clone() {
                CampaignEvent::CampaignCreated {
                    campaign_id,
                    name,
                    contact_list_id,
                    template,
                    media_id,
                    whatsapp_template,
                    sender_session_ids,
                    throttle,
                    scheduled_at,
                    skip_not_on_whatsapp,
                    skip_unanswered_after,
                    at,
                } => CampaignCommand::CreateCampaign {
                    campaign_id,
                    name,
                    contact_list_id,
                    template,
                    media_id,
                    text_only_senders: Default::default(),
                    cloud_senders: match &whatsapp_template {
                        Some(_) => sender_session_ids.iter().copied().collect(),
                        None => Default::default(),
                    },
                    whatsapp_template,
                    sender_session_ids,
                    throttle,
                    scheduled_at,
                    list_columns: ["produk", "kota"].map(str::to_owned).into(),
                    missing_values: Default::default(),
                    skip_not_on_whatsapp,
                    skip_unanswered_after,
                    at,
                },
                CampaignEvent::DirectCampaignOpened {
                    campaign_id,
                    session_id,
                    day,
                    throttle,
                    at,
                } => CampaignCommand::OpenDirect {
                    campaign_id,
                    session_id,
                    day,
                    throttle,
                    at,
                },
                CampaignEvent::CampaignScheduled { at_time, at } => {
                    CampaignCommand::ScheduleCampaign { at_time, at }
                }
                CampaignEvent::ScheduledStartRefused { refusal, at } => {
                    CampaignCommand::RefuseScheduledStart { refusal, at }
                }
                CampaignEvent::CampaignStarted {
                    recipients,
                    points_reserved,
                    skipped_not_on_whatsapp,
                    skipped_never_replied,
                    at,
                } => {
                    let id: CampaignId = commit.aggregate_id.parse().unwrap();
                    let wallet = self.wallet(&commit.tenant);
                    assert_eq!(wallet.reservation(id), Some(points_reserved), "{at}");
                    CampaignCommand::StartCampaign {
                        recipients,
                        missing_values: Default::default(),
                        plan_max_recipients: u64::from(
                            self.plan_terms(&commit.tenant).max_recipients_per_campaign,
                        ),
                        points_reserved,
                        sendable_today: None,
                        skipped_not_on_whatsapp,
                        skipped_never_replied,
                        at,
                    }
                }
                CampaignEvent::CampaignPaused { reason, at } => {
                    CampaignCommand::PauseCampaign { reason, at }
                }
                CampaignEvent::CampaignAutoPaused {
                    session_id,
                    failures,
                    at,
                    ..
                } => CampaignCommand::ReportConsecutiveFailures {
                    session_id,
                    failures,
                    at,
                },
                CampaignEvent::CampaignResumed { at } => CampaignCommand::ResumeCampaign { at },
                CampaignEvent::CampaignSlowedDown {
                    session_id,
                    signals,
                    at,
                    ..
                }
                | CampaignEvent::CampaignSpeedRestored {
                    session_id,
                    signals,
                    at,
                    ..
                } => CampaignCommand::ReportSendSignals {
                    session_id,
                    signals,
                    at,
                },
                CampaignEvent::CampaignSenderRemoved {
                    session_id,
                    reason,
                    at,
                    ..
                } => CampaignCommand::ReportSenderUnavailable {
                    session_id,
                    reason,
                    at,
                },
                CampaignEvent::CampaignCancelled { at, .. } => {
                    CampaignCommand::CancelCampaign { at }
                }
                CampaignEvent::CampaignCompleted {
                    sent,
                    failed,
                    cancelled,
                    at,
                    ..
                } => {
                    let id: CampaignId = commit.aggregate_id.parse().unwrap();
                    let messages = &self.fan_out[&id];
                    assert!(
                        messages
                            .iter()
                            .all(|m| self.messages.get(m).is_some_and(Message::is_final)),
                        "{at}: completed before its messages are final"
                    );
                    assert_eq!(self.sent.get(&id).copied().unwrap_or(0), sent, "{at}");
                    CampaignCommand::CompleteCampaign {
                        sent,
                        failed,
                        cancelled,
                        at,
                    }
                }
            };
            let campaign = self
                .campaigns
                .entry(commit.aggregate_id.clone())
                .or_default();
            decide(campaign, command, events, at);
        }

        fn message(&mut self, commit: &Commit, key: (String, String), at: &str) {
            use wablast_domain::message::{MessageCommand, Receipt};
            let events: Vec<MessageEvent> = decode(commit);
            let read = events
                .iter()
                .any(|e| matches!(e, MessageEvent::MessageRead { .. }));
            let receipt = if read {
                Receipt::Read
            } else {
                Receipt::Delivered
            };
            // A batch-queued message's first commit: its `MessageQueued`
            // as the batch said, then its first command's events.
            let queued = match events.first() {
                Some(MessageEvent::MessageQueued { .. }) if events.len() > 1 => {
                    self.in_batches.remove(&key)
                }
                _ => None,
            };
            let events_of_command = if queued.is_some() {
                &events[1..]
            } else {
                &events[..]
            };
            let command = match events_of_command[0].clone() {
                MessageEvent::MessageQueued {
                    message_id,
                    campaign_id,
                    session_id,
                    to,
                    name,
                    variables,
                    content: _,
                    at,
                } => {
                    let phone = to
                        .phone()
                        .cloned()
                        .expect("a campaign's message goes to a person");
                    let campaign = &self.campaigns[&campaign_id.to_string()];
                    assert!(
                        campaign.is_running()
                            || campaign.status()
                                == Some(wablast_domain::campaign::CampaignStatus::Paused),
                        "{at}: queued for a campaign that is not under way"
                    );
                    self.fan_out
                        .entry(campaign_id)
                        .or_default()
                        .push(key.clone());
                    MessageCommand::QueueMessage {
                        message_id,
                        campaign_id,
                        session_id,
                        phone,
                        name,
                        variables,
                        at,
                    }
                }
                MessageEvent::MessageSendingStarted {
                    session_id,
                    attempt,
                    text,
                    provider_message_id,
                    at,
                    ..
                } => MessageCommand::StartSending {
                    session_id,
                    attempt,
                    text,
                    provider_message_id,
                    at,
                },
                MessageEvent::MessageSent { at, .. } if events_of_command.len() > 1 => {
                    MessageCommand::RecordReceipt { receipt, at }
                }
                MessageEvent::MessageSent {
                    attempt,
                    provider_message_id,
                    cost,
                    at,
                    ..
                } => MessageCommand::RecordSent {
                    attempt,
                    provider_message_id,
                    cost,
                    at,
                },
                MessageEvent::MessageFailed {
                    attempt,
                    reason,
                    retryable,
                    at,
                    ..
                } => MessageCommand::RecordFailed {
                    attempt,
                    reason,
                    retryable,
                    at,
                },
                MessageEvent::MessageDelivered { at, .. }
                | MessageEvent::MessageRead { at, .. } => {
                    MessageCommand::RecordReceipt { receipt, at }
                }
                MessageEvent::MessageCancelled { at, .. } => MessageCommand::CancelMessage { at },
                MessageEvent::MessageMarkedUnknown { attempt, at, .. } => {
                    MessageCommand::MarkUnknown { attempt, at }
                }
            };
            if let Some(MessageEvent::MessageSent { campaign_id, .. }) = events_of_command.first() {
                *self.sent.entry(*campaign_id).or_default() += 1;
            }
            let command = match queued {
                Some(queued) => MessageCommand::FromBatch {
                    queued: Box::new(queued),
                    command: Box::new(command),
                },
                None => command,
            };
            let message = self.messages.entry(key).or_default();
            decide(message, command, events, at);
        }

        fn batch(&mut self, commit: &Commit, key: (String, String), at: &str) {
            use wablast_domain::recipient_batch::RecipientBatchCommand;
            let events: Vec<RecipientBatchEvent> = decode(commit);
            let RecipientBatchEvent::RecipientsQueued {
                campaign_id,
                index,
                recipients,
                at: queued_at,
            } = events[0].clone()
            else {
                panic!("{at}: generated histories queue whole batches, no single sends");
            };
            let campaign = &self.campaigns[&campaign_id.to_string()];
            assert!(
                campaign.is_running()
                    || campaign.status() == Some(wablast_domain::campaign::CampaignStatus::Paused),
                "{at}: a batch queued for a campaign that is not under way"
            );
            assert_eq!(
                key.1,
                recipient_batch::batch_id(campaign_id, index).to_string(),
                "{at}: the batch's id"
            );
            for recipient in &recipients {
                let message = (key.0.clone(), recipient.message_id.to_string());
                self.fan_out
                    .entry(campaign_id)
                    .or_default()
                    .push(message.clone());
                self.in_batches.insert(
                    message,
                    recipient.clone().into_queued(campaign_id, queued_at),
                );
            }
            let command = RecipientBatchCommand::QueueRecipients {
                campaign_id,
                index,
                recipients,
                at: queued_at,
            };
            let batch = self.batches.entry(key).or_default();
            decide(batch, command, events, at);
        }
    }

    impl World {
        fn inbound(&mut self, commit: &Commit, key: (String, String), at: &str) {
            use wablast_domain::inbound::InboundCommand;
            let events: Vec<InboundEvent> = decode(commit);
            let InboundEvent::InboundMessageReceived {
                inbound_id,
                session_id,
                from,
                from_raw,
                text,
                provider_message_id,
                kind,
                at: received_at,
            } = events[0].clone();
            assert_eq!(key.1, inbound_id.to_string(), "{at}: the aggregate's id");
            let command = InboundCommand::ReceiveInbound {
                inbound_id,
                session_id,
                from,
                from_raw,
                text,
                provider_message_id,
                kind: kind.expect("generated histories keep the kind"),
                at: received_at,
            };
            let inbound = self.inbound.entry(key).or_default();
            decide(inbound, command, events, at);
        }
    }

    /// Stronger than the verifier: each commit is replayed, in log order,
    /// as the command that caused it, with the facts the log holds at that
    /// point (the session's status and limit, the tenant's hours and plan,
    /// the campaign's status, the messages' states); the aggregate must
    /// decide exactly the recorded events.
    #[test]
    fn every_commit_is_what_its_aggregate_decides() {
        for seed in [1, 2, 3, 42] {
            let history = History::generate(&HistorySpec::small(seed));
            let mut world = World::default();
            for commit in commits(&history) {
                world.replay(&commit);
            }
        }
    }

    /// Deletes a test's streams when it ends, passed or not.
    struct Streams(String);

    impl Drop for Streams {
        fn drop(&mut self) {
            delete_streams(&nats_url(), &self.0);
        }
    }

    #[tokio::test]
    async fn a_small_history_appended_to_jetstream_reads_back_whole_and_verifies() {
        let prefix = unique_prefix();
        let _streams = Streams(prefix.clone());
        let log = open_log(&nats_url(), &prefix).await.unwrap();
        let history = History::generate(&HistorySpec::small(11));

        history.append_to(&log, 64).await.unwrap();

        let mut events = Vec::new();
        let mut by_stream = BTreeMap::new();
        for aggregate_type in [Session::TYPE, Message::TYPE] {
            let stream = log.stream_name_of(aggregate_type).unwrap().to_owned();
            let mut replay = log.replay(&stream, None, 0).await.unwrap();
            while let Some(event) = replay.try_next().await.unwrap() {
                *by_stream.entry(stream.clone()).or_insert(0usize) += 1;
                events.push(LoggedEvent {
                    stream: stream.clone(),
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
        assert_eq!(events.len(), history.events(), "{by_stream:?}");
        let report = verify(&events);
        assert!(report.holds(), "{:#?}", report.violations);
        assert_eq!(report.aggregates as usize, history.aggregates());
    }
}
