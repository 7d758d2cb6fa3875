//! What the end-to-end benches share: the settings of an installation of
//! their own, a tenant on a plan large enough, and timing helpers.

#![allow(dead_code)]

use std::time::Duration;

use chrono::Utc;
use clap::Parser;
use serde_json::{Value, json};
use wablast::config::Settings;
use wablast_domain::plan::{PlanPeriod, PlanTerms};
use wablast_domain::types::{DailyLimit, PlanId, Points, TenantId};
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
