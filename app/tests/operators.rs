//! `wablast verify` and `wablast audit` on a real JetStream log, written
//! through the aggregates as the API and engine will write it.

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde_json::json;
use wablast_domain::inbound::{self, Inbound, InboundCommand};
use wablast_domain::message::{Message, MessageCommand, Receipt};
use wablast_domain::plan::{PlanPeriod, PlanTerms};
use wablast_domain::session::{
    Driver, LoginMethod, Session, SessionCommand, SessionName, SessionStatus,
};
use wablast_domain::session_day::{self, SendFacts, SessionDay, SessionDayCommand};
use wablast_domain::types::phone::{Phone, Region};
use wablast_domain::types::{
    ActiveHours, CampaignId, DailyLimit, InboundId, MessageId, PlanId, Points, SessionId, TenantId,
    TimeZone,
};
use wablast_domain::wallet::{Wallet, WalletCommand};
use wablast_eventstore::{
    Actor, AggregateKey, CommandHandler, CommandMetadata, Commit, EventLog, Prefix,
};
use wablast_tests::{delete_streams, nats_url, unique_prefix};

fn wablast(prefix: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wablast"))
        .args(args)
        .env("NATS_URL", nats_url())
        .env("WABLAST_NATS_PREFIX", prefix)
        .env("WABLAST_LOG_FORMAT", "json")
        .env("RUST_LOG", "error")
        .output()
        .expect("wablast runs")
}

fn meta() -> CommandMetadata {
    CommandMetadata::new(Actor::System)
}

async fn open(prefix: &str) -> EventLog {
    let client = async_nats::connect(nats_url()).await.unwrap();
    EventLog::open(
        client,
        wablast_workflows::layout::log_config(
            Prefix::parse(prefix).unwrap(),
            Duration::from_secs(3600),
        ),
    )
    .await
    .unwrap()
}

/// One tenant, one ready session, 100 points, a message received (the
/// messages stream's first commit), a campaign of two messages granted,
/// sent, read and settled.
struct World {
    tenant: TenantId,
    messages: Vec<MessageId>,
    inbound: InboundId,
}

async fn write_history(log: &EventLog, now: DateTime<Utc>) -> World {
    let tenant = TenantId::new();
    let key = |id: &dyn std::fmt::Display| AggregateKey::new(tenant, id).unwrap();
    let session_id = SessionId::new();
    let campaign_id = CampaignId::new();
    let sessions = CommandHandler::<Session>::new(log.clone(), ());
    let wallets = CommandHandler::<Wallet>::new(log.clone(), ());
    let days = CommandHandler::<SessionDay>::new(log.clone(), ());
    let messages = CommandHandler::<Message>::new(log.clone(), ());
    let inbounds = CommandHandler::<Inbound>::new(log.clone(), ());
    let phone = Phone::parse("0812-3456-7890", Region::ID).unwrap();

    sessions
        .execute(
            &key(&session_id),
            SessionCommand::CreateSession {
                session_id,
                name: SessionName::parse("CS 1").unwrap(),
                driver: Driver::Simulator,
                login: LoginMethod::Qr,
                phone_number: None,
                daily_limit: Some(DailyLimit::parse(10).unwrap()),
                auto_start: false,
                warm_up: None,
                sessions_in_use: 0,
                plan_max_sessions: 3,
                plan_max_daily_limit: DailyLimit::parse(500).unwrap(),
                at: now,
            },
            &meta(),
        )
        .await
        .unwrap();
    // A customer writes first (before the session was even started: the
    // driver delivered it late).
    let inbound_id = inbound::inbound_id(session_id, "false_6281234567890@c.us_3EB0AA");
    inbounds
        .execute(
            &key(&inbound_id),
            InboundCommand::ReceiveInbound {
                inbound_id,
                session_id,
                from: Some(phone.clone()),
                from_raw: "6281234567890@c.us".to_owned(),
                text: Some("Kak, masih ada stok?".to_owned()),
                provider_message_id: "false_6281234567890@c.us_3EB0AA".to_owned(),
                kind: inbound::InboundKind::Text,
                at: now,
            },
            &meta(),
        )
        .await
        .unwrap();
    sessions
        .execute(
            &key(&session_id),
            SessionCommand::StartSession { at: now },
            &meta(),
        )
        .await
        .unwrap();
    sessions
        .execute(
            &key(&session_id),
            SessionCommand::ReportStatus {
                status: SessionStatus::Ready,
                phone_number: Some(phone.clone()),
                error: None,
                reason: None,
                at: now,
            },
            &meta(),
        )
        .await
        .unwrap();
    let terms = PlanTerms {
        plan_id: PlanId::new(),
        name: "Basic".into(),
        period_days: PlanPeriod::Days30,
        points: Points::new(100),
        max_sessions: 3,
        max_recipients_per_campaign: 200,
        max_daily_limit: DailyLimit::parse(500).unwrap(),
        features: wablast_domain::plan::PlanFeatures::default(),
        grace_days: 0,
        version: 1,
    };
    let wallet = key(&tenant);
    wallets
        .execute(
            &wallet,
            WalletCommand::Subscribe {
                terms,
                reference: "order-1".into(),
                at: now,
            },
            &meta(),
        )
        .await
        .unwrap();
    wallets
        .execute(
            &wallet,
            WalletCommand::Reserve {
                campaign_id,
                recipients: 2,
                at: now,
            },
            &meta(),
        )
        .await
        .unwrap();
    let hours = ActiveHours::always_open(TimeZone::default());
    let mut ids = Vec::new();
    for _ in 0..2 {
        let message_id = MessageId::new();
        ids.push(message_id);
        let message = key(&message_id);
        messages
            .execute(
                &message,
                MessageCommand::QueueMessage {
                    message_id,
                    campaign_id,
                    session_id,
                    phone: phone.clone(),
                    name: Some("Budi".into()),
                    variables: BTreeMap::new(),
                    at: now,
                },
                &meta(),
            )
            .await
            .unwrap();
        let day = key(&session_day::aggregate_id_at(
            session_id,
            now,
            TimeZone::default(),
        ));
        let facts = SendFacts {
            session_status_ready: true,
            asked_by_holder: true,
            daily_limit: DailyLimit::parse(10).unwrap(),
            active_hours: hours.clone(),
            plan_expires_at: Some(now + chrono::Duration::days(30)),
            campaign_running: true,
            governor: None,
        };
        days.execute(
            &day,
            SessionDayCommand::RequestSlot {
                session_id,
                day: TimeZone::default().local_date(now),
                message_id,
                campaign_id,
                at: now,
                facts,
            },
            &meta(),
        )
        .await
        .unwrap();
        messages
            .execute(
                &message,
                MessageCommand::StartSending {
                    session_id,
                    attempt: 1,
                    text: None,
                    provider_message_id: None,
                    at: now,
                },
                &meta(),
            )
            .await
            .unwrap();
        messages
            .execute(
                &message,
                MessageCommand::RecordSent {
                    attempt: 1,
                    provider_message_id: None,
                    cost: Points::PER_MESSAGE,
                    at: now,
                },
                &meta(),
            )
            .await
            .unwrap();
        messages
            .execute(
                &message,
                MessageCommand::RecordReceipt {
                    receipt: Receipt::Read,
                    at: now,
                },
                &meta(),
            )
            .await
            .unwrap();
    }
    wallets
        .execute(
            &wallet,
            WalletCommand::Settle {
                campaign_id,
                messages_sent: 2,
                at: now,
            },
            &meta(),
        )
        .await
        .unwrap();
    World {
        tenant,
        messages: ids,
        inbound: inbound_id,
    }
}

#[tokio::test]
async fn verify_passes_a_log_written_through_the_aggregates_and_finds_a_planted_violation() {
    let prefix = unique_prefix();
    let log = open(&prefix).await;
    let world = write_history(&log, Utc::now()).await;

    let clean = wablast(&prefix, &["verify"]);

    let stdout = String::from_utf8_lossy(&clean.stdout);
    assert!(
        clean.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    assert!(stdout.contains("no violations"), "{stdout}");
    assert!(stdout.contains("no message status regression"), "{stdout}");

    // Plant a receipt going backwards (the aggregate would refuse it).
    let victim = world.messages[0];
    let key = AggregateKey::new(world.tenant, victim).unwrap();
    let history = log.load(Message::TYPE, &key).await.unwrap();
    let mut planted = Commit::new(Message::TYPE, &key, &meta());
    planted.push(
        history.last_sequence() + 1,
        "MessageDelivered".into(),
        "1.0".into(),
        json!({"MessageDelivered": {"campaign_id": history.commits[0].1.events[0].payload["MessageQueued"]["campaign_id"], "at": Utc::now()}}),
    );
    let planted_at = log
        .append(history.last_stream_sequence, &planted)
        .await
        .unwrap();

    let dirty = wablast(&prefix, &["verify"]);

    let stdout = String::from_utf8_lossy(&dirty.stdout);
    assert!(
        !dirty.status.success(),
        "a violation must fail verify: {stdout}"
    );
    assert!(stdout.contains("1 violation(s)"), "{stdout}");
    assert!(
        stdout.contains(&format!("_MESSAGES#{planted_at}")),
        "names the event: {stdout}"
    );
    assert!(stdout.contains(&victim.to_string()), "{stdout}");
    assert!(stdout.contains("Delivered after Read"), "{stdout}");
    delete_streams(&nats_url(), &prefix);
}

#[tokio::test]
async fn audit_prints_the_history_with_its_metadata_and_the_state_as_of_a_sequence() {
    let prefix = unique_prefix();
    let log = open(&prefix).await;
    let world = write_history(&log, Utc::now()).await;
    let wallet = world.tenant.to_string();

    let now = wablast(&prefix, &["audit", "wallet", &wallet]);
    let then = wablast(&prefix, &["audit", "wallet", &wallet, "--at-sequence", "1"]);
    let before = wablast(
        &prefix,
        &[
            "audit",
            "wallet",
            &wallet,
            "--at-time",
            "2000-01-01T00:00:00Z",
        ],
    );
    let missing = wablast(&prefix, &["audit", "wallet", &TenantId::new().to_string()]);

    let now = String::from_utf8_lossy(&now.stdout).to_string();
    for expected in [
        "PlanSubscribed",
        "PointsReserved",
        "PointsCaptured",
        "by system",
        "command ",
    ] {
        assert!(now.contains(expected), "{expected} in {now}");
    }
    assert!(now.contains("\"balance\": 96"), "{now}");
    let then = String::from_utf8_lossy(&then.stdout).to_string();
    assert!(then.contains("state as of sequence 1"), "{then}");
    assert!(then.contains("\"balance\": 100"), "{then}");
    let before = String::from_utf8_lossy(&before.stdout).to_string();
    assert!(
        before.contains("state as of before its first event"),
        "{before}"
    );
    assert!(before.contains("\"balance\": 0"), "{before}");
    // When each commit happened is printed with it.
    assert!(
        now.lines()
            .any(|l| l.starts_with('#') && l.contains("T") && l.contains("by system")),
        "{now}"
    );
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no wallet"));

    // A received message is audited like any aggregate.
    let inbound = wablast(&prefix, &["audit", "inbound", &world.inbound.to_string()]);
    let inbound = String::from_utf8_lossy(&inbound.stdout).to_string();
    for expected in [
        "InboundMessageReceived",
        "\"from\": \"+6281234567890\"",
        "\"from_raw\": \"6281234567890@c.us\"",
        "\"text\": \"Kak, masih ada stok?\"",
    ] {
        assert!(inbound.contains(expected), "{expected} in {inbound}");
    }
    delete_streams(&nats_url(), &prefix);
}
