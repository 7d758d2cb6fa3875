//! Starting a campaign: the wallet reserves `recipients × 2` points first,
//! then the campaign starts on that reservation; a start the campaign
//! refuses gives the reservation back before the refusal is answered.
//!
//! Safe to retry: the reservation and the start are each made once, and a
//! start of a campaign already running with the same figures answers
//! started again. When whether the start was written is unknown (the log
//! did not answer), the reservation stays, and a retry either finds the
//! campaign started or starts it on the same reservation.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::AggregateError;
use sqlx::PgPool;
use tracing::{info, instrument};
use wablast_domain::campaign::{Campaign, CampaignCommand, CampaignError, CampaignStatus};
use wablast_domain::types::{CampaignId, ContactListId, Points, TenantId};
use wablast_domain::wallet::{WalletCommand, WalletError};
use wablast_eventstore::CommandMetadata;
use wablast_projections::queries::contact_lists;
use wablast_projections::wait::Position;

use crate::capacity;
use crate::commands::{Commands, follow_up, key, position, tenant_key};
use crate::limits::TenantLimits;

/// A campaign started (or found started by an earlier try).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    /// Its status now: running, or whatever it became since an earlier
    /// try started it.
    pub status: CampaignStatus,
    /// Its recipients.
    pub recipients: u64,
    /// The points reserved for it.
    pub points_reserved: Points,
    /// Where the start was written.
    pub written: Position,
}

/// Why a campaign did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The tenant has no such campaign.
    #[error("no such campaign")]
    NotFound,
    /// Its contact list was deleted since it was created.
    #[error("the campaign's contact list was deleted")]
    ListDeleted {
        /// The list.
        list_id: ContactListId,
    },
    /// More recipients than points can count.
    #[error("too many recipients")]
    TooManyRecipients,
    /// The wallet refused the reservation (insufficient points, an expired
    /// plan, no recipients), or could not be read or written.
    #[error(transparent)]
    Wallet(AggregateError<WalletError>),
    /// The campaign refused to start (or could not be read or written).
    /// A refused start's reservation was given back first, written at
    /// `given_back`.
    #[error("{refusal}")]
    Campaign {
        /// The campaign's answer.
        refusal: AggregateError<CampaignError>,
        /// Where the reservation's release was written, if one was.
        given_back: Option<Position>,
    },
    /// The contact list could not be read.
    #[error("reading the contact list: {0}")]
    Database(#[from] sqlx::Error),
    /// What the senders may still send today could not be read.
    #[error("reading the senders' capacity: {0}")]
    Capacity(#[from] capacity::CapacityError),
}

impl From<AggregateError<CampaignError>> for StartError {
    fn from(refusal: AggregateError<CampaignError>) -> Self {
        Self::Campaign {
            refusal,
            given_back: None,
        }
    }
}

impl From<AggregateError<WalletError>> for StartError {
    fn from(err: AggregateError<WalletError>) -> Self {
        Self::Wallet(err)
    }
}

/// Starts a draft or scheduled campaign of `tenant` on a reservation of
/// its points; a running or paused one answers as started when the start
/// is a retry with its figures.
#[instrument(skip(commands, db, metadata), fields(correlation = %metadata.correlation_id))]
pub async fn start(
    commands: &Commands,
    db: &PgPool,
    tenant: TenantId,
    campaign_id: CampaignId,
    metadata: &CommandMetadata,
    at: DateTime<Utc>,
) -> Result<Started, StartError> {
    let key = key(tenant, campaign_id);
    let campaign = commands.campaigns.load(&key).await?.aggregate;
    let status = campaign.status().ok_or(StartError::NotFound)?;
    let plan_max_recipients = TenantLimits::of(&commands.wallets, tenant)
        .await?
        .max_recipients_per_campaign;

    if !matches!(status, CampaignStatus::Draft | CampaignStatus::Scheduled) {
        // Started or finished: there is nothing to reserve. With the figures
        // it started with, a running or paused campaign takes this as the
        // retry it is; any other is refused.
        let committed = commands
            .campaigns
            .execute(
                &key,
                CampaignCommand::StartCampaign {
                    recipients: campaign.recipients(),
                    missing_values: BTreeMap::new(),
                    plan_max_recipients,
                    points_reserved: campaign.points_reserved(),
                    sendable_today: None,
                    skipped_not_on_whatsapp: campaign.skipped_not_on_whatsapp(),
                    skipped_never_replied: campaign.skipped_never_replied(),
                    at,
                },
                metadata,
            )
            .await?;
        return Ok(Started {
            status,
            recipients: campaign.recipients(),
            points_reserved: campaign.points_reserved(),
            written: position(&committed),
        });
    }

    let list_id = campaign
        .contact_list_id()
        .expect("a created campaign has a contact list");
    let list = contact_lists::facts(db, tenant, list_id)
        .await?
        .ok_or(StartError::ListDeleted { list_id })?;
    // Those a check found not on WhatsApp, and those the tenant sent the
    // campaign's guard of messages who never replied, are left out: decided
    // here, once, for its reservation and its fan-out.
    let skipped = contact_lists::skip_contacts(
        db,
        tenant,
        campaign_id,
        list_id,
        campaign.skips_not_on_whatsapp(),
        campaign.skip_unanswered_after().after(),
    )
    .await?;
    // Every stored contact is consented (the import keeps no other).
    let recipients = u64::try_from(list.accepted)
        .unwrap_or(0)
        .saturating_sub(skipped.total());
    // The list may have changed since the campaign was created: its
    // contacts' values are counted again for the campaign to judge, those
    // left out aside.
    let missing_values = match campaign.template() {
        Some(template) => {
            let variables = Campaign::template_variables(template, list.columns);
            contact_lists::missing_values(db, tenant, list_id, &variables, false, Some(campaign_id))
                .await?
        }
        None => BTreeMap::new(),
    };
    let points_reserved = Points::for_messages(recipients).ok_or(StartError::TooManyRecipients)?;
    // What its senders may still send today, together: none refuses.
    let sendable_today = capacity::remaining_today(commands, tenant, campaign.senders(), at)
        .await?
        .into_iter()
        .sum::<u64>();

    // The wallet first: a start never runs on points it does not hold.
    commands
        .wallets
        .execute(
            &tenant_key(tenant),
            WalletCommand::Reserve {
                campaign_id,
                recipients,
                at,
            },
            metadata,
        )
        .await?;
    let started = commands
        .campaigns
        .execute(
            &key,
            CampaignCommand::StartCampaign {
                recipients,
                missing_values,
                plan_max_recipients,
                points_reserved,
                sendable_today: Some(sendable_today),
                skipped_not_on_whatsapp: skipped.not_on_whatsapp,
                skipped_never_replied: skipped.never_replied,
                at,
            },
            &follow_up(metadata),
        )
        .await;
    match started {
        Ok(committed) => {
            let status = if committed.events.is_empty() {
                // Started meanwhile by a retry of this request.
                commands
                    .campaigns
                    .load(&key)
                    .await?
                    .aggregate
                    .status()
                    .unwrap_or(status)
            } else {
                CampaignStatus::Running
            };
            info!(campaign = %campaign_id, %tenant, recipients, skipped_not_on_whatsapp = skipped.not_on_whatsapp, skipped_never_replied = skipped.never_replied, "campaign started");
            Ok(Started {
                status,
                recipients,
                points_reserved,
                written: position(&committed),
            })
        }
        Err(refusal @ AggregateError::UserError(_)) => {
            let given_back = give_back(commands, tenant, campaign_id, metadata).await?;
            Err(StartError::Campaign {
                refusal,
                given_back,
            })
        }
        Err(other) => Err(other.into()),
    }
}

/// Gives back the reservation of a campaign whose start was refused, if
/// the campaign never started (a campaign that did start owns its
/// reservation until it is settled, whatever this request did).
///
/// # Returns
/// Where the release was written, if there was one.
async fn give_back(
    commands: &Commands,
    tenant: TenantId,
    campaign_id: CampaignId,
    metadata: &CommandMetadata,
) -> Result<Option<Position>, StartError> {
    let campaign = commands
        .campaigns
        .load(&key(tenant, campaign_id))
        .await?
        .aggregate;
    if campaign.points_reserved() != Points::ZERO {
        return Ok(None);
    }
    let committed = commands
        .wallets
        .execute(
            &tenant_key(tenant),
            WalletCommand::CancelReservation {
                campaign_id,
                at: Utc::now(),
            },
            &follow_up(metadata),
        )
        .await?;
    Ok((!committed.events.is_empty()).then(|| position(&committed)))
}
