//! Cancelling a campaign: the campaign says cancelled, its messages not
//! yet sent are cancelled by the send loops and the settlement process
//! settles the wallet (captures what was sent, releases the rest). A
//! campaign that started but never had a single message is settled here at
//! once, so a tenant's points are not held by a campaign that never sent.

use std::time::Duration;

use chrono::Utc;
use cqrs_es::{Aggregate, AggregateError};
use sqlx::PgPool;
use tracing::{info, instrument};
use wablast_domain::campaign::{CampaignCommand, CampaignError};
use wablast_domain::message::Message;
use wablast_domain::types::{CampaignId, Points, TenantId};
use wablast_domain::wallet::{WalletCommand, WalletError, WalletEvent};
use wablast_eventstore::{CommandMetadata, EventLog, EventStoreError};
use wablast_projections::queries::messages;
use wablast_projections::wait::{self, Position};

use crate::commands::{Commands, follow_up, key, position, tenant_key};
use crate::layout::end_of_stream;

/// A campaign cancelled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cancelled {
    /// Where the last write of the cancellation is.
    pub written: Position,
    /// The points released at once, when the campaign had no message and
    /// was settled here.
    pub points_released: Option<u64>,
}

/// Why a campaign was not cancelled (or not settled).
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    /// The campaign refused (completed already, none such) or could not be
    /// read or written.
    #[error(transparent)]
    Campaign(#[from] AggregateError<CampaignError>),
    /// The wallet could not be read or settled.
    #[error(transparent)]
    Wallet(#[from] AggregateError<WalletError>),
    /// The log's end could not be read.
    #[error(transparent)]
    Log(#[from] EventStoreError),
    /// The query tables could not be read.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Waiting for the projections failed.
    #[error(transparent)]
    Projection(#[from] wablast_projections::ProjectionError),
}

/// Cancels one of `tenant`'s campaigns; settles it at once when it never
/// had a message. `wait_at_most` bounds the wait for the messages
/// projection to show whether it had any (the settlement process settles
/// when that cannot be established in time).
#[instrument(skip(commands, log, db, metadata), fields(correlation = %metadata.correlation_id))]
pub async fn cancel(
    commands: &Commands,
    log: &EventLog,
    db: &PgPool,
    tenant: TenantId,
    campaign_id: CampaignId,
    metadata: &CommandMetadata,
    wait_at_most: Duration,
) -> Result<Cancelled, CancelError> {
    let key = key(tenant, campaign_id);
    let committed = commands
        .campaigns
        .execute(
            &key,
            CampaignCommand::CancelCampaign { at: Utc::now() },
            metadata,
        )
        .await?;
    let mut cancelled = Cancelled {
        written: position(&committed),
        points_released: None,
    };
    // Also when the cancel was a retry (nothing recorded): the first try
    // may have failed before it settled.
    let reserved = commands
        .campaigns
        .load(&key)
        .await?
        .aggregate
        .points_reserved();
    if reserved != Points::ZERO
        && let Some((at, released)) = settle_if_nothing_sent(
            commands,
            log,
            db,
            tenant,
            campaign_id,
            metadata,
            wait_at_most,
        )
        .await?
    {
        cancelled.written = at;
        cancelled.points_released = Some(released);
    }
    Ok(cancelled)
}

/// Settles a cancelled campaign with nothing sent, if it has no message at
/// all: releases its whole reservation.
///
/// Settling is the settlement process's job (it counts the messages sent);
/// this only takes a case off its hands that needs no counting. No message
/// in the log after the cancellation was committed means none can be sent
/// any more (a message is queued before it is sent, and nothing is queued
/// for a cancelled campaign), so both settlements agree and whichever comes
/// second records nothing.
///
/// # Returns
/// Where the settlement was written and the points released.
async fn settle_if_nothing_sent(
    commands: &Commands,
    log: &EventLog,
    db: &PgPool,
    tenant: TenantId,
    campaign_id: CampaignId,
    metadata: &CommandMetadata,
    wait_at_most: Duration,
) -> Result<Option<(Position, u64)>, CancelError> {
    let wallet = commands.wallets.load(&tenant_key(tenant)).await?.aggregate;
    if wallet.reservation(campaign_id).is_none() {
        return Ok(None);
    }
    let end = end_of_stream(log, Message::TYPE).await?;
    let caught_up =
        end.sequence == 0 || wait::until_projected(db, &["messages"], end, wait_at_most).await?;
    if !caught_up || messages::any_for_campaign(db, tenant, campaign_id).await? {
        return Ok(None);
    }
    let committed = commands
        .wallets
        .execute(
            &tenant_key(tenant),
            WalletCommand::Settle {
                campaign_id,
                messages_sent: 0,
                at: Utc::now(),
            },
            &follow_up(metadata),
        )
        .await?;
    let released = committed
        .events
        .iter()
        .map(|e| match &e.payload {
            WalletEvent::ReservationReleased { points, .. } => points.value(),
            _ => 0,
        })
        .sum();
    info!(campaign = %campaign_id, %tenant, released, "cancelled campaign settled, nothing sent");
    Ok(Some((position(&committed), released)))
}
