//! Generated histories: random operations driven through the real
//! aggregates, the way the API and the session engine drive them (facts
//! gathered from the other aggregates, a slot asked before every send).
//! Whatever the aggregates accept must pass the verifier, whose bookkeeping
//! is its own: the aggregates enforce the rules and the verifier agrees.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use proptest::prelude::*;
use wablast_domain::message::{LookedUp, Message, MessageCommand, Receipt};
use wablast_domain::plan::{PlanPeriod, PlanTerms};
use wablast_domain::schedule::{Schedule, ScheduleCommand};
use wablast_domain::session::{
    Driver, LoginMethod, Session, SessionCommand, SessionName, SessionStatus,
};
use wablast_domain::session_day::{self, SendFacts, SessionDay, SessionDayCommand};
use wablast_domain::types::phone::{Phone, Region};
use wablast_domain::types::{
    CampaignId, DailyLimit, MessageId, Override, PlanId, Points, SessionId, TimeZone, Weekday,
    Window,
};
use wablast_domain::verify::{LoggedEvent, Verifier};
use wablast_domain::wallet::{Wallet, WalletCommand};

#[derive(Debug, Clone)]
enum Op {
    /// Time passes.
    Wait { minutes: i64 },
    /// A campaign of `recipients` starts (points reserved, messages queued).
    StartCampaign { recipients: u8 },
    /// The engine tries to send message `pick` (modulo those queued);
    /// `cut_off`: its outcome was lost (a crash) and the peer, looked up,
    /// says it went out (0, 1 with its read receipt), it never left (2) or
    /// cannot tell (3).
    Send {
        pick: usize,
        fails: bool,
        cut_off: Option<u8>,
    },
    /// A receipt for message `pick`.
    Receipt { pick: usize, read: bool },
    /// Campaign `pick` is settled (completed or cancelled).
    Settle { pick: usize },
    /// Points are bought.
    TopUp { points: u16 },
    /// The tenant changes its active hours.
    Hours { start: u32, end: u32 },
    /// The tenant pauses, activates or clears the override.
    Override { mode: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1i64..=600).prop_map(|minutes| Op::Wait { minutes }),
        1 => (1u8..=6).prop_map(|recipients| Op::StartCampaign { recipients }),
        6 => (any::<usize>(), prop::bool::weighted(0.2), prop::option::weighted(0.2, 0u8..4))
            .prop_map(|(pick, fails, cut_off)| Op::Send { pick, fails, cut_off }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(pick, read)| Op::Receipt { pick, read }),
        1 => any::<usize>().prop_map(|pick| Op::Settle { pick }),
        1 => (1u16..=40).prop_map(|points| Op::TopUp { points }),
        1 => (0u32..24, 0u32..24).prop_map(|(start, end)| Op::Hours { start, end }),
        1 => (0u8..3).prop_map(|mode| Op::Override { mode }),
    ]
}

/// One aggregate's state and history.
struct Instance<A: Aggregate> {
    state: A,
    events: Vec<A::Event>,
}

impl<A: Aggregate> Default for Instance<A> {
    fn default() -> Self {
        Self {
            state: A::default(),
            events: Vec::new(),
        }
    }
}

/// Runs a command against an instance. A refused command leaves nothing:
/// the state is rebuilt from the accepted events.
fn execute<A: Aggregate<Services = ()>>(
    runtime: &tokio::runtime::Runtime,
    instance: &mut Instance<A>,
    command: A::Command,
) -> Option<Vec<A::Event>> {
    let sink = EventSink::default();
    let outcome = runtime.block_on(instance.state.handle(command, &(), &sink));
    let events = runtime.block_on(sink.collect());
    match outcome {
        Ok(()) => {
            instance.events.extend(events.iter().cloned());
            Some(events)
        }
        Err(_) => {
            let mut state = A::default();
            for event in instance.events.iter().cloned() {
                state.apply(event);
            }
            instance.state = state;
            None
        }
    }
}

/// The log as the event store would hold it.
#[derive(Default)]
struct Recorder {
    log: Vec<LoggedEvent>,
    sequences: HashMap<String, u64>,
    streams: HashMap<&'static str, u64>,
}

impl Recorder {
    fn record<A: Aggregate>(&mut self, id: &str, events: &[A::Event], at: DateTime<Utc>) {
        if events.is_empty() {
            return;
        }
        let stream = if A::TYPE == "message" {
            "t_MESSAGES"
        } else {
            "t_EVENTS"
        };
        let stream_sequence = {
            let seq = self.streams.entry(stream).or_default();
            *seq += 1;
            *seq
        };
        for event in events {
            let sequence = self
                .sequences
                .entry(format!("{}.{id}", A::TYPE))
                .or_default();
            *sequence += 1;
            self.log.push(LoggedEvent {
                stream: stream.into(),
                stream_sequence,
                aggregate_type: A::TYPE.into(),
                tenant: "t".into(),
                aggregate_id: id.into(),
                sequence: *sequence,
                event_type: event.event_type(),
                occurred_at: at,
                payload: serde_json::to_value(event).unwrap(),
            });
        }
    }
}

struct World {
    runtime: tokio::runtime::Runtime,
    now: DateTime<Utc>,
    recorder: Recorder,
    session_id: SessionId,
    session: Instance<Session>,
    schedule: Instance<Schedule>,
    wallet: Instance<Wallet>,
    days: HashMap<String, Instance<SessionDay>>,
    messages: Vec<(MessageId, CampaignId, Instance<Message>)>,
    campaigns: Vec<(CampaignId, bool)>,
    attempts: u64,
}

macro_rules! run {
    ($world:expr, $field:ident: $aggregate:ty, $id:expr, $command:expr) => {{
        let events = execute(&$world.runtime, &mut $world.$field, $command);
        if let Some(events) = &events {
            $world
                .recorder
                .record::<$aggregate>($id, events, $world.now);
        }
        events.is_some()
    }};
}

impl World {
    fn new(timezone: TimeZone, daily_limit: u64, start: DateTime<Utc>) -> Self {
        let mut world = Self {
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
            now: start,
            recorder: Recorder::default(),
            session_id: SessionId::new(),
            session: Instance::default(),
            schedule: Instance::default(),
            wallet: Instance::default(),
            days: HashMap::new(),
            messages: Vec::new(),
            campaigns: Vec::new(),
            attempts: 0,
        };
        let (session_id, at) = (world.session_id, world.now);
        let sid = session_id.to_string();
        let created = run!(world, session: Session, &sid, SessionCommand::CreateSession {
            session_id,
            name: SessionName::parse("CS").unwrap(),
            driver: Driver::Simulator,
            login: LoginMethod::Qr,
            phone_number: None,
            daily_limit: Some(DailyLimit::parse(daily_limit).unwrap()),
            auto_start: false,
            warm_up: None,
            sessions_in_use: 0,
            plan_max_sessions: 1,
            plan_max_daily_limit: DailyLimit::parse(500).unwrap(),
            at,
        });
        assert!(created);
        assert!(run!(world, session: Session, &sid, SessionCommand::StartSession { at }));
        assert!(
            run!(world, session: Session, &sid, SessionCommand::ReportStatus {
                status: SessionStatus::Ready,
                phone_number: Some(Phone::parse("0812-3456-7890", Region::ID).unwrap()),
                error: None,
                reason: None,
                at,
            })
        );
        let _ = run!(world, schedule: Schedule, "t", ScheduleCommand::SetActiveHours { timezone, windows: vec![], at });
        let terms = PlanTerms {
            plan_id: PlanId::new(),
            name: "Basic".into(),
            period_days: PlanPeriod::Days15,
            points: Points::new(30),
            max_sessions: 1,
            max_recipients_per_campaign: 200,
            max_daily_limit: DailyLimit::parse(500).unwrap(),
            features: wablast_domain::plan::PlanFeatures::default(),
            grace_days: 0,
            version: 1,
        };
        assert!(
            run!(world, wallet: Wallet, "t", WalletCommand::Subscribe { terms, reference: "r0".into(), at })
        );
        world
    }

    fn apply(&mut self, op: Op) {
        let at = self.now;
        match op {
            Op::Wait { minutes } => self.now += Duration::minutes(minutes),
            Op::TopUp { points } => {
                let reference = format!("r{}", self.recorder.log.len());
                let _ = run!(self, wallet: Wallet, "t", WalletCommand::TopUp { points: Points::new(points.into()), reference, at });
            }
            Op::StartCampaign { recipients } => {
                let campaign_id = CampaignId::new();
                let reserved = run!(self, wallet: Wallet, "t", WalletCommand::Reserve {
                    campaign_id,
                    recipients: recipients.into(),
                    at,
                });
                if reserved {
                    self.campaigns.push((campaign_id, true));
                    for _ in 0..recipients {
                        let message_id = MessageId::new();
                        let mut instance = Instance::default();
                        let events = execute(
                            &self.runtime,
                            &mut instance,
                            MessageCommand::QueueMessage {
                                message_id,
                                campaign_id,
                                session_id: self.session_id,
                                phone: Phone::parse("0812-3456-7890", Region::ID).unwrap(),
                                name: None,
                                variables: BTreeMap::new(),
                                at,
                            },
                        )
                        .expect("queued");
                        self.recorder
                            .record::<Message>(&message_id.to_string(), &events, at);
                        self.messages.push((message_id, campaign_id, instance));
                    }
                }
            }
            Op::Send {
                pick,
                fails,
                cut_off,
            } => {
                if self.messages.is_empty() {
                    return;
                }
                let index = pick % self.messages.len();
                let (message_id, campaign_id) = (self.messages[index].0, self.messages[index].1);
                let running = self
                    .campaigns
                    .iter()
                    .any(|(c, running)| *c == campaign_id && *running);
                let hours = self.schedule.state.active_hours().clone();
                let facts = SendFacts {
                    session_status_ready: self.session.state.is_ready(),
                    asked_by_holder: true,
                    daily_limit: self.session.state.daily_limit(),
                    active_hours: hours.clone(),
                    plan_expires_at: self.wallet.state.plan_expires_at(),
                    campaign_running: running,
                    governor: None,
                };
                let day_id = session_day::aggregate_id_at(self.session_id, at, hours.timezone());
                let day = self.days.entry(day_id.clone()).or_default();
                let granted = execute(
                    &self.runtime,
                    day,
                    SessionDayCommand::RequestSlot {
                        session_id: self.session_id,
                        day: hours.local_date(at),
                        message_id,
                        campaign_id,
                        at,
                        facts,
                    },
                );
                let Some(events) = granted else { return };
                self.recorder.record::<SessionDay>(&day_id, &events, at);
                self.attempts += 1;
                let attempt = self.messages[index].2.state.attempt() + 1;
                let id = message_id.to_string();
                let session_id = self.session_id;
                let outcome = if let Some(looked_up) = cut_off {
                    MessageCommand::Reconcile {
                        attempt,
                        outcome: match looked_up {
                            0 => LookedUp::WentOut { receipt: None },
                            1 => LookedUp::WentOut {
                                receipt: Some(Receipt::Read),
                            },
                            2 => LookedUp::NeverLeft,
                            _ => LookedUp::CannotTell,
                        },
                        at,
                    }
                } else if fails {
                    MessageCommand::RecordFailed {
                        attempt: 1,
                        reason: "boom".into(),
                        retryable: false,
                        at,
                    }
                } else {
                    MessageCommand::RecordSent {
                        attempt: 1,
                        provider_message_id: None,
                        cost: Points::PER_MESSAGE,
                        at,
                    }
                };
                for command in [
                    MessageCommand::StartSending {
                        session_id,
                        attempt,
                        text: None,
                        provider_message_id: Some(format!("sim-{id}")),
                        at,
                    },
                    outcome,
                ] {
                    let instance = &mut self.messages[index].2;
                    match execute(&self.runtime, instance, command) {
                        Some(events) => self.recorder.record::<Message>(&id, &events, at),
                        None => break,
                    }
                }
            }
            Op::Receipt { pick, read } => {
                if self.messages.is_empty() {
                    return;
                }
                let index = pick % self.messages.len();
                let id = self.messages[index].0.to_string();
                let receipt = if read {
                    Receipt::Read
                } else {
                    Receipt::Delivered
                };
                if let Some(events) = execute(
                    &self.runtime,
                    &mut self.messages[index].2,
                    MessageCommand::RecordReceipt { receipt, at },
                ) {
                    self.recorder.record::<Message>(&id, &events, at);
                }
            }
            Op::Settle { pick } => {
                if self.campaigns.is_empty() {
                    return;
                }
                let index = pick % self.campaigns.len();
                let campaign_id = self.campaigns[index].0;
                // What the process manager counts: messages sent (or later).
                let sent = self
                    .messages
                    .iter()
                    .filter(|(_, c, m)| *c == campaign_id && m.state.cost() > Points::ZERO)
                    .count() as u64;
                if run!(self, wallet: Wallet, "t", WalletCommand::Settle { campaign_id, messages_sent: sent, at })
                {
                    self.campaigns[index].1 = false;
                }
            }
            Op::Hours { start, end } => {
                let window = Window::new(
                    Weekday::ALL,
                    NaiveTime::from_hms_opt(start, 0, 0).unwrap(),
                    NaiveTime::from_hms_opt(end, 0, 0).unwrap(),
                )
                .unwrap();
                let timezone = self.schedule.state.active_hours().timezone();
                let _ = run!(self, schedule: Schedule, "t", ScheduleCommand::SetActiveHours { timezone, windows: vec![window], at });
            }
            Op::Override { mode } => {
                let mode = [Override::None, Override::Pause, Override::Activate][mode as usize];
                let _ =
                    run!(self, schedule: Schedule, "t", ScheduleCommand::SetOverride { mode, at });
            }
        }
    }
}

fn verify(log: &[LoggedEvent]) -> wablast_domain::verify::Report {
    let mut verifier = Verifier::default();
    for stream in ["t_EVENTS", "t_MESSAGES"] {
        for event in log.iter().filter(|e| e.stream == stream) {
            verifier.observe(event);
        }
    }
    verifier.finish()
}

/// The harness does send (it is not the verifier agreeing with an empty
/// log), and a history tampered with after the fact fails.
#[test]
fn a_fixed_history_sends_within_the_limit_and_tampering_with_it_is_caught() {
    let start = "2026-03-27T02:00:00Z".parse().unwrap(); // 09:00 in Jakarta
    let mut world = World::new(TimeZone::default(), 2, start);
    world.apply(Op::StartCampaign { recipients: 3 });
    for pick in 0..3 {
        world.apply(Op::Send {
            pick,
            fails: false,
            cut_off: None,
        });
    }
    world.apply(Op::Settle { pick: 0 });
    let count = |kind: &str| {
        world
            .recorder
            .log
            .iter()
            .filter(|e| e.event_type == kind)
            .count()
    };
    assert_eq!(
        count("SlotGranted"),
        2,
        "the third send waits for the next day"
    );
    assert_eq!(count("MessageSent"), 2);
    assert_eq!(count("PointsCaptured"), 1);
    assert!(verify(&world.recorder.log).holds());

    // The third message sent anyway, bypassing the allowance.
    let mut tampered = world.recorder.log.clone();
    let sent = tampered
        .iter()
        .find(|e| e.event_type == "MessageSent")
        .unwrap()
        .clone();
    let third = world.messages[2].0.to_string();
    tampered.push(LoggedEvent {
        aggregate_id: third,
        stream_sequence: 99,
        sequence: 2,
        ..sent
    });

    let report = verify(&tampered);
    assert!(!report.holds());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn whatever_the_aggregates_accept_passes_the_verifier(
        berlin in any::<bool>(),
        daily_limit in 1u64..=4,
        start_offset_hours in 0i64..72,
        ops in prop::collection::vec(op(), 1..120),
    ) {
        // Around the spring clock change in Berlin (2026-03-29).
        let timezone = TimeZone::parse(if berlin { "Europe/Berlin" } else { "Asia/Jakarta" }).unwrap();
        let start: DateTime<Utc> = "2026-03-27T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
            + Duration::hours(start_offset_hours);
        let mut world = World::new(timezone, daily_limit, start);
        for op in ops {
            world.apply(op);
        }
        let report = verify(&world.recorder.log);
        prop_assert!(report.holds(), "{:#?}", report.violations);
    }
}
