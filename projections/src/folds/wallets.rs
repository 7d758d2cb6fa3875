//! `wallets`: each tenant's points and plan (`wallets`) and the history of
//! what moved them (`wallet_transactions`). Every wallet event carries the
//! totals after it, so a wallet row is one assignment per event.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;
use wablast_domain::types::Points;
use wablast_domain::wallet::{LOW_BALANCE_DIVISOR, Wallet, WalletEvent};
use wablast_eventstore::RecordedEvent;

use super::{decode, missing_row, tenant_of};
use crate::rows::{Row, RowSet};
use crate::{LogStream, Projection, ProjectionError};

const NAME: &str = "wallets";

/// The `wallets` projection.
pub(crate) struct Wallets;

/// A row of `wallets`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WalletRow {
    tenant_id: Uuid,
    balance: i64,
    reserved: i64,
    available: i64,
    plan_id: Option<Uuid>,
    plan_name: Option<String>,
    plan_period_days: Option<i32>,
    max_sessions: Option<i32>,
    max_recipients_per_campaign: Option<i32>,
    max_daily_limit: Option<i32>,
    plan_expires_at: Option<DateTime<Utc>>,
    plan_expired: bool,
    updated_at: DateTime<Utc>,
    plan_version: Option<i32>,
    plan_points: Option<i64>,
    grace_days: Option<i32>,
    sending_until: Option<DateTime<Utc>>,
    feature_auto_replies: Option<bool>,
    feature_webhooks: Option<bool>,
    feature_official_mode: Option<bool>,
    expiry_warned_days: Option<i32>,
    renewal_reminded: bool,
    low_balance_warned: bool,
    suspended_reason: Option<String>,
    suspended_at: Option<DateTime<Utc>>,
}

impl Row for WalletRow {
    const TABLE: &'static str = "wallets";
    const KEY: &'static str = "tenant_id";
    const COLUMNS: &'static [&'static str] = &[
        "tenant_id",
        "balance",
        "reserved",
        "available",
        "plan_id",
        "plan_name",
        "plan_period_days",
        "max_sessions",
        "max_recipients_per_campaign",
        "max_daily_limit",
        "plan_expires_at",
        "plan_expired",
        "updated_at",
        "plan_version",
        "plan_points",
        "grace_days",
        "sending_until",
        "feature_auto_replies",
        "feature_webhooks",
        "feature_official_mode",
        "expiry_warned_days",
        "renewal_reminded",
        "low_balance_warned",
        "suspended_reason",
        "suspended_at",
    ];

    fn key(&self) -> Uuid {
        self.tenant_id
    }
}

/// A row of `wallet_transactions`.
#[derive(Debug, Serialize)]
struct TransactionRow {
    id: Uuid,
    tenant_id: Uuid,
    kind: &'static str,
    points: i64,
    reference: Option<String>,
    campaign_id: Option<Uuid>,
    balance_after: i64,
    reserved_after: i64,
    available_after: i64,
    created_at: DateTime<Utc>,
    stream_sequence: u64,
    event_sequence: u64,
}

fn points(p: Points) -> i64 {
    i64::try_from(p.value()).unwrap_or(i64::MAX)
}

#[async_trait]
impl Projection for Wallets {
    fn name(&self) -> &'static str {
        NAME
    }

    fn streams(&self) -> &'static [LogStream] {
        &[LogStream::Events]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Wallet::TYPE])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["wallets", "wallet_transactions"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        _stream: LogStream,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut wallets = RowSet::<WalletRow>::default();
        let tenants = events
            .iter()
            .map(|e| tenant_of(NAME, e))
            .collect::<Result<Vec<_>, _>>()?;
        wallets.load(conn, tenants).await?;
        let mut transactions = Vec::with_capacity(events.len());

        for event in events {
            let tenant_id = tenant_of(NAME, event)?;
            let decoded: WalletEvent = decode(NAME, event)?;
            let kind = decoded.transaction_kind().map(|k| k.as_str());
            let moved = points(decoded.points());
            if !wallets.contains(tenant_id) {
                // A wallet comes into being with its first event, whatever
                // it is (a top-up before any plan, say).
                wallets.put(WalletRow {
                    tenant_id,
                    balance: 0,
                    reserved: 0,
                    available: 0,
                    plan_id: None,
                    plan_name: None,
                    plan_period_days: None,
                    max_sessions: None,
                    max_recipients_per_campaign: None,
                    max_daily_limit: None,
                    plan_expires_at: None,
                    plan_expired: false,
                    updated_at: event.occurred_at,
                    plan_version: None,
                    plan_points: None,
                    grace_days: None,
                    sending_until: None,
                    feature_auto_replies: None,
                    feature_webhooks: None,
                    feature_official_mode: None,
                    expiry_warned_days: None,
                    renewal_reminded: false,
                    low_balance_warned: false,
                    suspended_reason: None,
                    suspended_at: None,
                });
            }
            let row = wallets
                .get_mut(tenant_id)
                .ok_or_else(|| missing_row(NAME, event))?;
            let (reference, campaign_id, totals, at) = match decoded {
                WalletEvent::PlanSubscribed {
                    terms,
                    expires_at,
                    reference,
                    balance_after,
                    reserved_after,
                    available_after,
                    at,
                    ..
                } => {
                    row.plan_id = Some(*terms.plan_id.as_uuid());
                    row.plan_name = Some(terms.name);
                    row.plan_period_days = Some(terms.period_days.days() as i32);
                    row.max_sessions = Some(terms.max_sessions as i32);
                    row.max_recipients_per_campaign =
                        Some(terms.max_recipients_per_campaign as i32);
                    row.max_daily_limit = Some(terms.max_daily_limit.value() as i32);
                    row.plan_expires_at = Some(expires_at);
                    row.plan_expired = false;
                    row.plan_version = Some(terms.version as i32);
                    row.plan_points = Some(points(terms.points));
                    row.grace_days = Some(terms.grace_days as i32);
                    row.sending_until = Some(
                        expires_at
                            .checked_add_signed(chrono::TimeDelta::days(i64::from(
                                terms.grace_days,
                            )))
                            .unwrap_or(expires_at),
                    );
                    row.feature_auto_replies = Some(terms.features.auto_replies);
                    row.feature_webhooks = Some(terms.features.webhooks);
                    row.feature_official_mode = Some(terms.features.official_mode);
                    row.expiry_warned_days = None;
                    row.renewal_reminded = false;
                    (
                        Some(reference),
                        None,
                        Some((balance_after, reserved_after, available_after)),
                        at,
                    )
                }
                WalletEvent::PointsToppedUp {
                    reference,
                    balance_after,
                    reserved_after,
                    available_after,
                    at,
                    ..
                }
                | WalletEvent::PointsGranted {
                    reference,
                    balance_after,
                    reserved_after,
                    available_after,
                    at,
                    ..
                } => (
                    Some(reference),
                    None,
                    Some((balance_after, reserved_after, available_after)),
                    at,
                ),
                WalletEvent::PointsReserved {
                    campaign_id,
                    balance_after,
                    reserved_after,
                    available_after,
                    at,
                    ..
                }
                | WalletEvent::PointsCaptured {
                    campaign_id,
                    balance_after,
                    reserved_after,
                    available_after,
                    at,
                    ..
                }
                | WalletEvent::ReservationReleased {
                    campaign_id,
                    balance_after,
                    reserved_after,
                    available_after,
                    at,
                    ..
                }
                | WalletEvent::ReservationCancelled {
                    campaign_id,
                    balance_after,
                    reserved_after,
                    available_after,
                    at,
                    ..
                } => (
                    Some(campaign_id.to_string()),
                    Some(*campaign_id.as_uuid()),
                    Some((balance_after, reserved_after, available_after)),
                    at,
                ),
                WalletEvent::PointsTakenBack {
                    reference,
                    balance_after,
                    reserved_after,
                    available_after,
                    at,
                    ..
                } => (
                    Some(reference),
                    None,
                    Some((balance_after, reserved_after, available_after)),
                    at,
                ),
                WalletEvent::PlanExpired { plan_id, at, .. } => {
                    row.plan_expired = true;
                    (Some(plan_id.to_string()), None, None, at)
                }
                WalletEvent::PlanExpiryWarned {
                    days_before, at, ..
                } => {
                    row.expiry_warned_days = Some(days_before as i32);
                    (None, None, None, at)
                }
                WalletEvent::PlanRenewalDue { at, .. } => {
                    row.renewal_reminded = true;
                    (None, None, None, at)
                }
                WalletEvent::BalanceLowWarned { at, .. } => {
                    row.low_balance_warned = true;
                    (None, None, None, at)
                }
                WalletEvent::TenantSuspended { reason, at, .. } => {
                    row.suspended_reason = Some(reason);
                    row.suspended_at = Some(at);
                    (None, None, None, at)
                }
                WalletEvent::TenantReactivated { at, .. } => {
                    row.suspended_reason = None;
                    row.suspended_at = None;
                    (None, None, None, at)
                }
            };
            if let Some((balance, reserved, available)) = totals {
                row.balance = points(balance);
                row.reserved = points(reserved);
                row.available = points(available);
                // As the aggregate: warned again once above a tenth.
                if let Some(plan_points) = row.plan_points
                    && row.available >= (plan_points / LOW_BALANCE_DIVISOR as i64).max(1)
                {
                    row.low_balance_warned = false;
                }
            }
            row.updated_at = at;
            let Some(kind) = kind else {
                continue;
            };
            transactions.push(TransactionRow {
                id: event.event_id,
                tenant_id,
                kind,
                points: moved,
                reference,
                campaign_id,
                balance_after: row.balance,
                reserved_after: row.reserved,
                available_after: row.available,
                created_at: at,
                stream_sequence: event.stream_sequence,
                event_sequence: event.sequence,
            });
        }

        wallets.flush(conn).await?;
        if !transactions.is_empty() {
            sqlx::query(
                "insert into wallet_transactions \
                     (id, tenant_id, kind, points, reference, campaign_id, balance_after, \
                      reserved_after, available_after, created_at, stream_sequence, event_sequence) \
                 select id, tenant_id, kind, points, reference, campaign_id, balance_after, \
                      reserved_after, available_after, created_at, stream_sequence, event_sequence \
                 from jsonb_populate_recordset(null::wallet_transactions, $1)",
            )
            .bind(Json(&transactions))
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}
