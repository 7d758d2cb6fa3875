//! A tenant's statistics: `GET /api/v1/stats` (what was sent, delivered,
//! read, failed and replied, and the points spent, per period and per
//! session), served from the `stats` projection's day rows.

use axum::extract::State;
use chrono::{NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wablast_projections::queries::stats::{self, Granularity};

use crate::auth::Caller;
use crate::consistency::After;
use crate::error::ErrorBody;
use crate::extract::Query;
use crate::{ApiError, AppState};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(tenant_stats))
}

/// The longest range one report covers, in days.
const MAX_DAYS: i64 = 366;

/// The range of a report (UTC days, both included) and how it is grouped.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// The first day, `YYYY-MM-DD` (default: 29 days before `to`).
    pub from: Option<String>,
    /// The last day, `YYYY-MM-DD` (default: today, UTC).
    pub to: Option<String>,
    /// `day` (default), `week` (ISO, from Monday) or `month`.
    pub granularity: Option<String>,
}

impl StatsQuery {
    /// The days and grouping asked for; a bad one is a 400.
    pub fn range(&self) -> Result<(NaiveDate, NaiveDate, Granularity), ApiError> {
        let day = |field: &str, text: &str| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
                ApiError::invalid_field(field, format!("{field} must be a date, YYYY-MM-DD"))
            })
        };
        let to = match &self.to {
            Some(text) => day("to", text)?,
            None => Utc::now().date_naive(),
        };
        let from = match &self.from {
            Some(text) => day("from", text)?,
            None => to - TimeDelta::days(29),
        };
        if from > to {
            return Err(ApiError::invalid_field("from", "from must not be after to"));
        }
        if (to - from).num_days() >= MAX_DAYS {
            return Err(ApiError::invalid_field(
                "from",
                format!("a report covers at most {MAX_DAYS} days"),
            ));
        }
        let granularity = match self.granularity.as_deref() {
            None | Some("day") => Granularity::Day,
            Some("week") => Granularity::Week,
            Some("month") => Granularity::Month,
            Some(_) => {
                return Err(ApiError::invalid_field(
                    "granularity",
                    "granularity is day, week or month",
                ));
            }
        };
        Ok((from, to, granularity))
    }
}

/// What happened.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsCounts {
    /// Messages sent.
    pub sent: i64,
    /// Delivery receipts.
    pub delivered: i64,
    /// Read receipts.
    pub read: i64,
    /// Messages that failed for good.
    pub failed: i64,
    /// Inbound messages received (replies).
    pub replies: i64,
    /// `replies / sent` (0 when nothing was sent).
    pub reply_rate: f64,
    /// Points the messages sent cost.
    pub points_spent: i64,
}

impl From<stats::Counts> for StatsCounts {
    fn from(c: stats::Counts) -> Self {
        Self {
            reply_rate: if c.sent > 0 {
                c.replies as f64 / c.sent as f64
            } else {
                0.0
            },
            sent: c.sent,
            delivered: c.delivered,
            read: c.read,
            failed: c.failed,
            replies: c.replies,
            points_spent: c.points_spent,
        }
    }
}

/// One period.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsPeriod {
    /// Its first day.
    pub start: NaiveDate,
    /// Its counts.
    #[serde(flatten)]
    pub counts: StatsCounts,
}

impl From<stats::Period> for StatsPeriod {
    fn from(p: stats::Period) -> Self {
        Self {
            start: p.start,
            counts: p.counts.into(),
        }
    }
}

/// One session over the range.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionStats {
    /// The session; the nil UUID for receipts whose sender is not known.
    pub session_id: Uuid,
    /// Its counts.
    #[serde(flatten)]
    pub counts: StatsCounts,
}

/// Final failures with one reason.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailureCount {
    /// The reason.
    pub reason: String,
    /// How many.
    pub failed: i64,
}

impl From<stats::ReasonCount> for FailureCount {
    fn from(r: stats::ReasonCount) -> Self {
        Self {
            reason: r.reason,
            failed: r.failed,
        }
    }
}

/// A tenant's statistics over a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantStats {
    /// The first day (UTC) counted.
    pub from: NaiveDate,
    /// The last day counted.
    pub to: NaiveDate,
    /// `day`, `week` or `month`.
    pub granularity: String,
    /// Everything in the range.
    pub totals: StatsCounts,
    /// Per period (only periods with something in them).
    pub periods: Vec<StatsPeriod>,
    /// Per session.
    pub sessions: Vec<SessionStats>,
    /// Final failures by reason, most first.
    pub failures: Vec<FailureCount>,
}

/// The caller's statistics: messages sent, delivered, read, failed (with
/// reasons), replies and points spent, per period and per session. Days
/// are UTC days; an event counts on the day it happened.
#[utoipa::path(get, path = "/api/v1/stats", tag = "campaigns",
    security(("bearer" = []), ("api_key" = [])),
    params(StatsQuery),
    responses(
        (status = 200, description = "The statistics", body = TenantStats),
        (status = 400, description = "Bad from, to or granularity", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn tenant_stats(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Query(query): Query<StatsQuery>,
) -> Result<axum::Json<TenantStats>, ApiError> {
    let (from, to, granularity) = query.range()?;
    after.wait(&state.db, &["stats"]).await?;
    let report = stats::tenant(&state.db, caller.tenant_id, from, to, granularity).await?;
    Ok(axum::Json(TenantStats {
        from,
        to,
        granularity: match granularity {
            Granularity::Day => "day",
            Granularity::Week => "week",
            Granularity::Month => "month",
        }
        .to_owned(),
        totals: report.totals.into(),
        periods: report.periods.into_iter().map(Into::into).collect(),
        sessions: report
            .sessions
            .into_iter()
            .map(|s| SessionStats {
                session_id: s.session_id,
                counts: s.counts.into(),
            })
            .collect(),
        failures: report.failures.into_iter().map(Into::into).collect(),
    }))
}
