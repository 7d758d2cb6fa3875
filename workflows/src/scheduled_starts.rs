//! Scheduled starts: a campaign with a start time starts at it, by the
//! same [`campaign_start`](crate::campaign_start) a start by hand runs.
//!
//! Every engine looks for the due campaigns every second (the
//! `campaigns` query table, through a partial index of the scheduled
//! ones), so a start is at most about a second late, and a restart loses
//! nothing: the schedule is in the log. Two engines starting one campaign
//! meet in the aggregates (a start and a reservation are each made once).
//! A start the wallet or the campaign refuses at its time (no points, an
//! expired plan, no sender left) makes the campaign a draft again, saying
//! why (`ScheduledStartRefused`), rather than trying again every second.
//! A campaign cancelled or moved to a later time before its time is simply
//! no longer due.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_es::AggregateError;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use wablast_domain::RefusalCode;
use wablast_domain::campaign::{CampaignCommand, CampaignError, StartRefusal};
use wablast_domain::types::{CampaignId, TenantId};
use wablast_eventstore::{Actor, CommandMetadata};
use wablast_projections::queries::campaigns;

use crate::campaign_start::{self, StartError};
use crate::clock::Clock;
use crate::commands::{Commands, follow_up, key};

/// The most due campaigns started in one look.
const BATCH: i64 = 100;

/// What one look did with a due campaign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It started (or an earlier try or another engine had started it).
    Started,
    /// Its start was refused: it is a draft again, saying why.
    Refused(StartRefusal),
    /// It could not be started now (the log or the database did not
    /// answer, or it changed meanwhile): the next look tries again.
    Later,
}

/// The scheduled starts of every tenant.
#[derive(Clone)]
pub struct ScheduledStarts {
    commands: Commands,
    db: PgPool,
    clock: Arc<dyn Clock>,
    every: Duration,
}

impl ScheduledStarts {
    /// Scheduled starts looking every `every`.
    pub fn new(commands: Commands, db: PgPool, clock: Arc<dyn Clock>, every: Duration) -> Self {
        Self {
            commands,
            db,
            clock,
            every,
        }
    }

    /// Starts the due campaigns every `every` until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(err) = self.start_due().await {
                warn!(error = %wablast_eventstore::report::Chain(&err), "cannot look for due scheduled campaigns");
            }
        }
    }

    /// Starts every campaign due now (up to a batch).
    ///
    /// # Returns
    /// Each due campaign with what became of it.
    pub async fn start_due(&self) -> Result<Vec<(CampaignId, Outcome)>, sqlx::Error> {
        let now = self.clock.now();
        let due = campaigns::due_scheduled(&self.db, now, BATCH).await?;
        let mut outcomes = Vec::with_capacity(due.len());
        for (tenant, campaign) in due {
            let outcome = self.start_one(tenant, campaign, now).await;
            outcomes.push((campaign, outcome));
        }
        Ok(outcomes)
    }

    #[tracing::instrument(name = "scheduled start", skip(self, now))]
    async fn start_one(
        &self,
        tenant: TenantId,
        campaign: CampaignId,
        now: DateTime<Utc>,
    ) -> Outcome {
        let metadata = CommandMetadata::new(Actor::System);
        let started =
            campaign_start::start(&self.commands, &self.db, tenant, campaign, &metadata, now).await;
        let refusal = match started {
            Ok(started) => {
                info!(%campaign, %tenant, recipients = started.recipients, "scheduled campaign started");
                return Outcome::Started;
            }
            Err(err) => match refusal_of(&err) {
                Some(refusal) => refusal,
                None => {
                    warn!(%campaign, %tenant, error = %wablast_eventstore::report::Chain(&err), "scheduled campaign not started yet");
                    return Outcome::Later;
                }
            },
        };
        let refused = self
            .commands
            .campaigns
            .execute(
                &key(tenant, campaign),
                CampaignCommand::RefuseScheduledStart {
                    refusal: refusal.clone(),
                    at: now,
                },
                &follow_up(&metadata),
            )
            .await;
        match refused {
            Ok(_) => {
                info!(%campaign, %tenant, code = %refusal.code, "scheduled start refused: the campaign is a draft again");
                Outcome::Refused(refusal)
            }
            Err(err) => {
                // Started, cancelled or moved meanwhile: the next look sees.
                warn!(%campaign, %tenant, error = %wablast_eventstore::report::Chain(&err), "cannot record the refused scheduled start");
                Outcome::Later
            }
        }
    }
}

/// The business refusal in a failed start, if it is one (not the log or
/// the database failing).
fn refusal_of(err: &StartError) -> Option<StartRefusal> {
    let (code, message) = match err {
        StartError::Wallet(AggregateError::UserError(refusal)) => {
            (refusal.code(), refusal.to_string())
        }
        StartError::Campaign {
            refusal: AggregateError::UserError(refusal),
            ..
        } => {
            if matches!(refusal, CampaignError::InvalidState { .. }) {
                // Started, cancelled or moved by someone else meanwhile.
                return None;
            }
            (refusal.code(), refusal.to_string())
        }
        StartError::ListDeleted { .. } => (RefusalCode::Conflict, err.to_string()),
        StartError::TooManyRecipients => (RefusalCode::ValidationFailed, err.to_string()),
        _ => return None,
    };
    Some(StartRefusal {
        code: code.as_str().to_owned(),
        message,
    })
}
