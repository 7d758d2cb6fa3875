//! The `wablast` binary as an operator runs it.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use wablast_tests::{TestDatabase, delete_streams, free_port, nats_url, unique_prefix};

fn wablast(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wablast"));
    command
        .args(args)
        .env("NATS_URL", nats_url())
        .env("WABLAST_LOG_FORMAT", "json")
        .env(
            "WABLAST_DATA_DIR",
            std::env::temp_dir().join("wablast-cli-tests"),
        )
        .env_remove("RUST_BACKTRACE");
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    wablast(args, env).output().expect("wablast runs")
}

/// Sends SIGTERM and waits (at most 10 s) for the process to exit.
async fn terminate(child: &mut std::process::Child, what: &str) -> std::process::ExitStatus {
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("{what} did not stop within 10 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn migrate_creates_the_database_and_is_idempotent() {
    let db = TestDatabase::planned();

    let first = run(&["migrate"], &[("DATABASE_URL", &db.url)]);
    let second = run(&["migrate"], &[("DATABASE_URL", &db.url)]);

    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let applied: i64 = sqlx::query_scalar("select count(*) from _sqlx_migrations where success")
        .fetch_one(&pool)
        .await
        .unwrap();
    let migrations = wablast_migrations::MIGRATOR.iter().count() as i64;
    assert_eq!(applied, migrations);
    let checkpoints: i64 = sqlx::query_scalar("select count(*) from projection_checkpoint")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(checkpoints, 0);
    pool.close().await;
}

#[tokio::test]
async fn admin_create_makes_the_platform_admin_and_resets_its_password() {
    let db = TestDatabase::planned();
    let create = |password: &str| {
        run(
            &["admin", "create"],
            &[
                ("DATABASE_URL", &db.url),
                ("WABLAST_ADMIN_EMAIL", " Ops@Wablast.Example "),
                ("WABLAST_ADMIN_PASSWORD", password),
            ],
        )
    };

    let created = create("first-password");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let again = create("second-password");
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let admins: Vec<(String, String, String)> =
        sqlx::query_as("select email, role, password_hash from users")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert_eq!(admins.len(), 1, "one admin, not two");
    assert_eq!(
        (admins[0].0.as_str(), admins[0].1.as_str()),
        ("ops@wablast.example", "admin")
    );
    assert!(
        admins[0].2.starts_with("$argon2id$"),
        "stored as Argon2id, never in clear"
    );

    let missing = run(&["admin", "create"], &[("DATABASE_URL", &db.url)]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("WABLAST_ADMIN_EMAIL"));
    let short = run(
        &["admin", "create"],
        &[
            ("DATABASE_URL", &db.url),
            ("WABLAST_ADMIN_EMAIL", "x@y.id"),
            ("WABLAST_ADMIN_PASSWORD", "short"),
        ],
    );
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 8 characters"));
}

#[tokio::test]
async fn engine_announces_itself_runs_until_sigterm_and_leaves() {
    let db = TestDatabase::planned();
    let prefix = unique_prefix();
    let mut child = wablast(
        &["engine"],
        &[
            ("DATABASE_URL", &db.url),
            ("WABLAST_NATS_PREFIX", &prefix),
            ("WABLAST_ENGINE_ID", "engine-cli-test"),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let client = async_nats::connect(nats_url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let bucket = format!("{prefix}_ENGINES");
    let heartbeat = || async {
        match js.get_key_value(&bucket).await {
            Ok(store) => store.get("engine-cli-test").await.ok().flatten(),
            Err(_) => None,
        }
    };

    // Up once its heartbeat is in the registry.
    let started = Instant::now();
    while heartbeat().await.is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "wablast engine did not announce itself"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = terminate(&mut child, "wablast engine").await;
    assert!(status.success(), "{status:?}");
    assert!(
        heartbeat().await.is_none(),
        "a clean stop leaves the registry"
    );
    delete_streams(&nats_url(), &prefix);
}

#[test]
fn bad_configuration_is_refused_with_a_clear_message() {
    let bad_prefix = run(&["api"], &[("WABLAST_NATS_PREFIX", "wa.blast")]);
    let bad_listen = run(&["api"], &[("WABLAST_LISTEN", "not-an-address")]);
    let no_nats = run(
        &["api"],
        &[("NATS_URL", &format!("nats://127.0.0.1:{}", free_port()))],
    );

    for (output, expected) in [
        (bad_prefix, "invalid prefix"),
        (bad_listen, "invalid value 'not-an-address'"),
        (no_nats, "cannot connect to NATS"),
    ] {
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in: {stderr}"
        );
    }
}

#[tokio::test]
async fn all_migrates_serves_and_stops_gracefully_on_sigterm() {
    let db = TestDatabase::planned();
    let prefix = unique_prefix();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = wablast(
        &["all"],
        &[
            ("DATABASE_URL", &db.url),
            ("WABLAST_NATS_PREFIX", &prefix),
            ("WABLAST_LISTEN", &listen),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let http = reqwest::Client::new();

    let started = Instant::now();
    let ready = loop {
        if let Ok(response) = http.get(format!("http://{listen}/readyz")).send().await {
            break response;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "wablast all did not come up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ready.status(), 200, "ready on a fresh database and prefix");
    let status = terminate(&mut child, "wablast all").await;

    assert!(status.success(), "graceful stop exits 0, got {status}");
    delete_streams(&nats_url(), &prefix);
}

#[test]
fn replay_needs_to_be_told_which_projections() {
    let neither = run(&["replay"], &[]);
    let unknown = run(&["replay", "--projection", "nope"], &[]);

    assert!(!neither.status.success());
    assert!(
        String::from_utf8_lossy(&neither.stderr).contains("--all or --projection"),
        "{}",
        String::from_utf8_lossy(&neither.stderr)
    );
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("\"nope\"") && stderr.contains("sessions"),
        "{stderr}"
    );
}

#[test]
fn replay_all_rebuilds_every_projection_and_says_what_it_did() {
    let db = TestDatabase::planned();
    let prefix = unique_prefix();

    let output = run(
        &["replay", "--all"],
        &[("DATABASE_URL", &db.url), ("WABLAST_NATS_PREFIX", &prefix)],
    );
    delete_streams(&nats_url(), &prefix);

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    for name in wablast_projections::NAMES {
        assert!(
            stdout.contains(&format!("{name}: 0 events")),
            "{name} in {stdout}"
        );
    }
}

#[tokio::test]
async fn projector_runs_until_sigterm_and_exits_cleanly() {
    let db = TestDatabase::planned();
    let prefix = unique_prefix();
    let mut child = wablast(
        &["projector"],
        &[("DATABASE_URL", &db.url), ("WABLAST_NATS_PREFIX", &prefix)],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();

    // Up once it has migrated and taken its checkpoints.
    let started = Instant::now();
    loop {
        let pool = sqlx::PgPool::connect(&db.url).await;
        if let Ok(pool) = pool {
            let checkpoints: Result<i64, _> =
                sqlx::query_scalar("select count(*) from projection_checkpoint")
                    .fetch_one(&pool)
                    .await;
            pool.close().await;
            if checkpoints.is_ok_and(|n| n > 0) {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "wablast projector did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = terminate(&mut child, "wablast projector").await;
    delete_streams(&nats_url(), &prefix);
    assert!(status.success(), "graceful stop exits 0, got {status}");
}
