//! Sender removal: a session that can no longer send (banned, logged out,
//! deleted) leaves the rotation of every campaign it sends for; their
//! waiting sends move to the remaining senders (see [`crate::fanout`]),
//! and a campaign left with none pauses, saying why.

use std::time::Duration;

use chrono::Utc;
use cqrs_es::Aggregate;
use sqlx::PgPool;
use tracing::{debug, info, instrument, warn};
use wablast_domain::campaign::{
    Campaign, CampaignCommand, CampaignStatus, SenderUnavailableReason,
};
use wablast_domain::types::{SessionId, TenantId};
use wablast_eventstore::{Actor, CommandMetadata, EventLog};
use wablast_projections::queries::campaigns;
use wablast_projections::wait;

use crate::commands::{Commands, key};
use crate::layout::end_of_stream;

/// The longest the campaigns projection is waited for, so that a campaign
/// started moments before the sender went is seen.
const PROJECTION_WAIT: Duration = Duration::from_secs(10);

/// Removes `session` from the rotation of its tenant's running and paused
/// campaigns, for `reason`.
#[instrument(skip(commands, log, db, actor))]
pub async fn remove_sender(
    commands: &Commands,
    log: &EventLog,
    db: &PgPool,
    tenant: TenantId,
    session: SessionId,
    reason: SenderUnavailableReason,
    actor: Actor,
) {
    // Its campaigns are read from the projection, which may not have them
    // yet: a number banned within moments of a start.
    campaigns_projected(log, db).await;
    let sending = campaigns::sending_from(
        db,
        tenant,
        session,
        &[CampaignStatus::Running, CampaignStatus::Paused],
    )
    .await;
    let campaigns = match sending {
        Ok(campaigns) => campaigns,
        Err(err) => {
            warn!(error = %wablast_eventstore::report::Chain(&err), %session, "campaigns of a gone sender not read");
            return;
        }
    };
    let metadata = CommandMetadata::new(actor);
    for campaign in campaigns {
        let reported = commands
            .campaigns
            .execute(
                &key(tenant, campaign),
                CampaignCommand::ReportSenderUnavailable {
                    session_id: session,
                    reason,
                    at: Utc::now(),
                },
                &metadata,
            )
            .await;
        match reported {
            Ok(committed) if !committed.events.is_empty() => {
                info!(%campaign, %session, ?reason, "sender left the campaign");
            }
            Ok(_) => {}
            Err(err) => {
                debug!(error = %wablast_eventstore::report::Chain(&err), %campaign, "sender removal not recorded")
            }
        }
    }
}

/// Waits, bounded, until the `campaigns` projection has applied the
/// campaigns' stream as it is now (so every campaign started before this
/// moment is in it).
async fn campaigns_projected(log: &EventLog, db: &PgPool) {
    let reached = match end_of_stream(log, Campaign::TYPE).await {
        Ok(end) => wait::until_projected(db, &["campaigns"], end, PROJECTION_WAIT)
            .await
            .map_err(|err| err.to_string()),
        Err(err) => Err(err.to_string()),
    };
    match reached {
        Ok(true) => {}
        Ok(false) => {
            warn!("the campaigns projection is behind; a gone sender's campaigns may be missed")
        }
        Err(err) => {
            warn!(error = %err, "the campaigns projection's progress not read; a gone sender's campaigns may be missed")
        }
    }
}
