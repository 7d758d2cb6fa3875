//! What the end-to-end benches share: the settings of an installation of
//! their own, a tenant on a plan large enough, and timing helpers.

#![allow(dead_code)]

use std::time::Duration;

use chrono::Utc;
use clap::Parser;
use futures::StreamExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;
use wablast::config::Settings;
use wablast_domain::governor::SenderPacing;
use wablast_domain::plan::{PlanPeriod, PlanTerms};
use wablast_domain::session::{Driver, LoginMethod, Session, SessionCommand, SessionName};
use wablast_domain::types::{DailyLimit, PlanId, Points, SessionId, TenantId, Throttle};
use wablast_domain::wallet::{Wallet, WalletCommand};
use wablast_eventstore::{Actor, AggregateKey, CommandHandler, CommandMetadata, EventLog};
use wablast_tests::{TestDatabase, nats_url, poll_until};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    settings: Settings,
}

/// A number from the environment, or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether this is a quick smoke pass: `cargo test --all-targets` runs
/// benches without `--bench`; `BENCH_QUICK=0` asks for the full run.
pub fn quick() -> bool {
    match std::env::var("BENCH_QUICK") {
        Ok(v) => v != "0",
        Err(_) => !std::env::args().any(|arg| arg == "--bench"),
    }
}

/// The settings of an installation on `db` and `prefix`, then `extra`
/// flags.
pub fn settings(
    db: &TestDatabase,
    prefix: &str,
    data_dir: &std::path::Path,
    extra: &[&str],
) -> Settings {
    let mut args = vec![
        "wablast",
        "--database-url",
        &db.url,
        "--nats-prefix",
        prefix,
        "--listen",
        "127.0.0.1:0",
        "--jwt-secret",
        "bench secret",
        "--data-dir",
        data_dir.to_str().expect("UTF-8 temp dir"),
        "--secret-key",
        "0707070707070707070707070707070707070707070707070707070707070707",
    ];
    let nats = nats_url();
    args.extend(["--nats-url", nats.as_str()]);
    args.extend_from_slice(extra);
    Args::parse_from(args).settings
}

/// A tenant registered through the API (so its row exists), subscribed to
/// a plan of points for `messages` messages and up to `max_recipients` per
/// campaign; and its access token.
pub async fn tenant(
    base: &str,
    log: &EventLog,
    email: &str,
    messages: u64,
    max_recipients: u64,
) -> (TenantId, String) {
    let http = reqwest::Client::new();
    let registered: Value = http
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({"email": email, "password": "bench-password", "organization": "Bench"}))
        .send()
        .await
        .expect("register sent")
        .json()
        .await
        .expect("register answer");
    let tenant: TenantId = registered["tenant"]["id"]
        .as_str()
        .expect("tenant")
        .parse()
        .expect("tenant id");
    let token = registered["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    CommandHandler::<Wallet>::new(log.clone(), ())
        .execute(
            &AggregateKey::new(tenant, tenant).unwrap(),
            WalletCommand::Subscribe {
                terms: PlanTerms {
                    plan_id: PlanId::new(),
                    name: "Bench".to_owned(),
                    period_days: PlanPeriod::Days30,
                    points: Points::for_messages(messages).unwrap(),
                    max_sessions: 2_000,
                    max_recipients_per_campaign: u32::try_from(max_recipients)
                        .unwrap_or(u32::MAX)
                        .max(1),
                    max_daily_limit: DailyLimit::parse(DailyLimit::MAX.into()).unwrap(),
                    features: wablast_domain::plan::PlanFeatures::default(),
                    grace_days: 0,
                    version: 1,
                },
                reference: "bench".to_owned(),
                at: Utc::now(),
            },
            &CommandMetadata::new(Actor::System),
        )
        .await
        .expect("subscribed");
    (tenant, token)
}

/// Polls often: what is waited for is timed.
pub async fn until<T>(what: &str, timeout: Duration, check: impl AsyncFnMut() -> Option<T>) -> T {
    poll_until(what, timeout, Duration::from_millis(20), check).await
}

/// `n` per second over `elapsed`.
pub fn rate(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

/// Creates and starts `n` simulator sessions sending up to `daily_limit` a
/// day, each pausing as `throttle` says between its single sends when
/// given, and held to `pacing` when given (the engine links them by
/// itself: auto-scan).
pub async fn sessions(
    log: &EventLog,
    tenant: TenantId,
    n: u64,
    daily_limit: u64,
    throttle: Option<Throttle>,
    pacing: Option<SenderPacing>,
) -> Vec<SessionId> {
    let handler = CommandHandler::<Session>::new(log.clone(), ());
    let ids: Vec<SessionId> = (0..n).map(|_| SessionId::new()).collect();
    let plan_max = || DailyLimit::parse(DailyLimit::MAX.into()).unwrap();
    futures::stream::iter(ids.iter().enumerate())
        .for_each_concurrent(64, |(i, &id)| {
            let handler = handler.clone();
            async move {
                let key = AggregateKey::new(tenant, id).unwrap();
                let mut commands = vec![SessionCommand::CreateSession {
                    session_id: id,
                    name: SessionName::parse(&format!("Bench {i}")).unwrap(),
                    driver: Driver::Simulator,
                    login: LoginMethod::Qr,
                    phone_number: None,
                    daily_limit: Some(DailyLimit::parse(daily_limit).unwrap()),
                    auto_start: false,
                    warm_up: None,
                    sessions_in_use: 0,
                    plan_max_sessions: 2_000,
                    plan_max_daily_limit: plan_max(),
                    at: Utc::now(),
                }];
                if throttle.is_some() || pacing.is_some() {
                    commands.push(SessionCommand::UpdateSettings {
                        name: None,
                        daily_limit: None,
                        auto_start: None,
                        throttle,
                        pacing,
                        plan_max_daily_limit: plan_max(),
                        at: Utc::now(),
                    });
                }
                commands.push(SessionCommand::StartSession { at: Utc::now() });
                for command in commands {
                    // Each command its own id: a repeated id is a retry.
                    handler
                        .execute(&key, command, &CommandMetadata::new(Actor::System))
                        .await
                        .expect("session set up");
                }
            }
        })
        .await;
    ids
}

/// Waits until `n` of the tenant's sessions are ready (as projected).
pub async fn ready(db: &PgPool, tenant: TenantId, n: u64) {
    until("every session ready", Duration::from_secs(60), async || {
        let ready: i64 = sqlx::query_scalar(
            "select count(*) from sessions where tenant_id = $1 and status = 'ready'",
        )
        .bind(tenant.as_uuid())
        .fetch_one(db)
        .await
        .unwrap();
        (ready as u64 == n).then_some(())
    })
    .await;
}

/// A contact list of `n` consented contacts (`+62812…`, a `kota` column),
/// stored as an import stores it.
pub async fn contact_list(db: &PgPool, tenant: TenantId, n: u64) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "insert into contact_lists
             (id, tenant_id, name, columns, total_rows, accepted, rejected, source_format, created_at)
         values ($1, $2, 'Bench', '{kota}', $3, $3, 0, 'csv', now())",
    )
    .bind(id)
    .bind(tenant.as_uuid())
    .bind(n as i32)
    .execute(db)
    .await
    .expect("list");
    sqlx::query(
        "insert into contacts (list_id, row_number, tenant_id, phone, name, variables)
         select $1, r, $2, '+62812' || lpad(r::text, 8, '0'), 'Pelanggan ' || r,
                jsonb_build_object('kota', 'Kota ' || (r % 50))
         from generate_series(1, $3) r",
    )
    .bind(id)
    .bind(tenant.as_uuid())
    .bind(n as i32)
    .execute(db)
    .await
    .expect("contacts");
    id
}
