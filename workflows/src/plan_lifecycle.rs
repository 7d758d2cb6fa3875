//! Plan lifecycle: the notices before and at the end of a tenant's plan,
//! and its expiry.
//!
//! Every engine looks every few seconds (by the [`Clock`], so a test drives
//! it) for wallets with something due, as the `wallets` table knows
//! ([`wallet::due_for_notice`]): the period ends within 3 days (then 1) and
//! that warning is not given, the period ended without its renewal
//! reminder, sending stopped (the end plus the plan's grace days) without
//! the expiry recorded, or fewer points are available than a tenth of the
//! plan's. For each it asks the wallet ([`WalletCommand::Notify`], then
//! [`WalletCommand::ExpirePlan`]): the aggregate decides what is due and
//! records each notice once per period, so two engines looking at once
//! record it once. The notices are wallet events: the event stream,
//! webhooks and the console show them.
//!
//! Sending itself never waits for this: the send loop and the wallet look
//! at the expiry instant ([`Wallet::can_send_at`]), so a campaign running
//! past it waits with `plan_expired` even before the expiry is recorded.
//!
//! Auto-renewal would need a saved means of payment, which wablast does
//! not keep: the renewal reminder (`PlanRenewalDue`) is what the tenant
//! gets instead.
//!
//! [`Wallet::can_send_at`]: wablast_domain::wallet::Wallet::can_send_at

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_es::AggregateError;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use wablast_domain::types::TenantId;
use wablast_domain::wallet::{
    EXPIRY_WARNING_DAYS, LOW_BALANCE_DIVISOR, WalletCommand, WalletError,
};
use wablast_eventstore::{Actor, CommandMetadata};
use wablast_projections::queries::wallet;

use crate::clock::Clock;
use crate::commands::{Commands, tenant_key};

/// The most wallets looked at in one look.
const BATCH: i64 = 200;

/// What one look did for one wallet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The tenant.
    pub tenant: TenantId,
    /// How many notices were recorded.
    pub notices: usize,
    /// Whether the plan's expiry was recorded.
    pub expired: bool,
}

/// The plan lifecycle of every tenant.
#[derive(Clone)]
pub struct PlanLifecycle {
    commands: Commands,
    db: PgPool,
    clock: Arc<dyn Clock>,
    every: Duration,
}

impl PlanLifecycle {
    /// Looking every `every`.
    pub fn new(commands: Commands, db: PgPool, clock: Arc<dyn Clock>, every: Duration) -> Self {
        Self {
            commands,
            db,
            clock,
            every,
        }
    }

    /// Looks every `every` until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(err) = self.look().await {
                warn!(error = %wablast_eventstore::report::Chain(&err), "cannot look for plans due a notice or their expiry");
            }
        }
    }

    /// Records what is due now, for every wallet with something due (up to
    /// a batch).
    pub async fn look(&self) -> Result<Vec<Outcome>, sqlx::Error> {
        let now = self.clock.now();
        let due = wallet::due_for_notice(
            &self.db,
            now,
            &EXPIRY_WARNING_DAYS,
            LOW_BALANCE_DIVISOR,
            BATCH,
        )
        .await?;
        let mut outcomes = Vec::with_capacity(due.len());
        for tenant in due {
            outcomes.push(self.one(tenant, now).await);
        }
        Ok(outcomes)
    }

    #[tracing::instrument(name = "plan lifecycle", skip(self, now))]
    async fn one(&self, tenant: TenantId, now: DateTime<Utc>) -> Outcome {
        let key = tenant_key(tenant);
        let metadata = CommandMetadata::new(Actor::System);
        let mut outcome = Outcome {
            tenant,
            notices: 0,
            expired: false,
        };
        match self
            .commands
            .wallets
            .execute(&key, WalletCommand::Notify { at: now }, &metadata)
            .await
        {
            Ok(committed) => {
                outcome.notices = committed.events.len();
                for event in &committed.events {
                    info!(%tenant, event = %cqrs_es::DomainEvent::event_type(&event.payload), "plan notice");
                }
            }
            Err(err) => {
                warn!(%tenant, error = %wablast_eventstore::report::Chain(&err), "cannot record the plan's notices");
            }
        }
        match self
            .commands
            .wallets
            .execute(&key, WalletCommand::ExpirePlan { at: now }, &metadata)
            .await
        {
            Ok(committed) => {
                outcome.expired = !committed.events.is_empty();
                if outcome.expired {
                    info!(%tenant, "plan expired");
                }
            }
            // Still in its period or grace (or renewed meanwhile), or no
            // plan: nothing to expire.
            Err(AggregateError::UserError(
                WalletError::PlanStillRunning { .. } | WalletError::NoPlan,
            )) => {}
            Err(err) => {
                warn!(%tenant, error = %wablast_eventstore::report::Chain(&err), "cannot record the plan's expiry");
            }
        }
        outcome
    }
}
