//! The `wablast` command line.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing::error;

use crate::config::Settings;
use crate::{Application, migrate, shutdown, telemetry};

/// wablast: multi-tenant WhatsApp broadcast backend.
#[derive(Debug, Parser)]
#[command(name = "wablast", version, about)]
pub struct Cli {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Everything in one process (API, projector, engine), for a laptop;
    /// applies pending migrations and creates streams first.
    All,
    /// The HTTP API.
    Api,
    /// The projections: event log into PostgreSQL query tables.
    Projector,
    /// The session engine: drivers and send loops.
    Engine,
    /// Creates the database if missing and applies pending migrations.
    Migrate,
    /// Rebuilds projections from the start of the log.
    Replay {
        /// Every projection.
        #[arg(long, conflicts_with = "projection")]
        all: bool,
        /// One projection by name.
        #[arg(long)]
        projection: Option<String>,
    },
    /// Replays the whole log through the aggregates and checks the rules held.
    Verify,
    /// An aggregate's full history with metadata, and its state.
    Audit {
        /// Aggregate type (`session`, `session_day`, `schedule`, `plan`,
        /// `wallet`, `campaign`, `message`, `inbound`).
        aggregate_type: String,
        /// Aggregate id, or `TENANT.ID` when the id exists under several
        /// tenants.
        id: String,
        /// The state as of this aggregate sequence.
        #[arg(long)]
        at_sequence: Option<u64>,
        /// The state as of this instant (RFC 3339).
        #[arg(long)]
        at_time: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Platform administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Creates the platform admin.
    Create,
}

impl Cli {
    /// Runs the chosen subcommand.
    pub async fn run(self) -> ExitCode {
        telemetry::init(self.settings.log_format);
        let settings = self.settings;
        let result = match self.command {
            Command::All => {
                async {
                    migrate(&settings).await?;
                    crate::bootstrap_admin(&settings, false).await?;
                    let app = Application::build(&settings).await?;
                    app.run_all(Some(settings.engine()?), shutdown::on_signal())
                        .await
                }
                .await
            }
            Command::Api => {
                async {
                    crate::bootstrap_admin(&settings, false).await?;
                    let app = Application::build(&settings).await?;
                    app.run_until_stopped(shutdown::on_signal()).await
                }
                .await
            }
            Command::Migrate => migrate(&settings).await,
            Command::Projector => {
                async {
                    migrate(&settings).await?;
                    let log = crate::open_event_log(&settings).await?;
                    let db = crate::database_pool(&settings)?;
                    wablast_projections::Projector::new(db, log)
                        .run(shutdown::on_signal())
                        .await
                        .context("projector stopped")
                }
                .await
            }
            Command::Replay { all, projection } => {
                async {
                    let names: Vec<String> = match (all, projection) {
                        (true, _) => wablast_projections::NAMES
                            .iter()
                            .map(|n| (*n).to_owned())
                            .collect(),
                        (false, Some(name)) => vec![name],
                        (false, None) => anyhow::bail!(
                            "say which: --all or --projection NAME (one of {})",
                            wablast_projections::NAMES.join(", ")
                        ),
                    };
                    migrate(&settings).await?;
                    let log = crate::open_event_log(&settings).await?;
                    let db = crate::database_pool(&settings)?;
                    crate::replay::run(&db, &log, &names).await
                }
                .await
            }
            Command::Engine => {
                async {
                    migrate(&settings).await?;
                    crate::run_engine(&settings, shutdown::on_signal()).await
                }
                .await
            }
            Command::Verify => {
                async {
                    let log = crate::open_event_log(&settings).await?;
                    let report = crate::verify::run(&log).await?;
                    print!("{}", crate::verify::render(&report));
                    anyhow::ensure!(
                        report.holds(),
                        "{} rule violation(s) in the log",
                        report.violations.len()
                    );
                    Ok(())
                }
                .await
            }
            Command::Audit {
                aggregate_type,
                id,
                at_sequence,
                at_time,
            } => {
                async {
                    let log = crate::open_event_log(&settings).await?;
                    let key = crate::audit::resolve(&log, &aggregate_type, &id).await?;
                    let as_of = crate::audit::AsOf {
                        sequence: at_sequence,
                        time: at_time,
                    };
                    print!(
                        "{}",
                        crate::audit::report(&log, &aggregate_type, &key, as_of).await?
                    );
                    Ok(())
                }
                .await
            }
            Command::Admin {
                command: AdminCommand::Create,
            } => {
                async {
                    migrate(&settings).await?;
                    crate::bootstrap_admin(&settings, true).await
                }
                .await
            }
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                error!(error.message = %format!("{err:#}"), "wablast failed");
                eprintln!("wablast: {err:#}");
                ExitCode::FAILURE
            }
        }
    }
}
