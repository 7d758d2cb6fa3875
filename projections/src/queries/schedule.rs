//! A tenant's active hours: `GET /api/v1/schedule`.

use serde::Serialize;
use sqlx::PgPool;
use wablast_domain::types::TenantId;

/// The time zone of a tenant without a schedule.
pub const DEFAULT_TIMEZONE: &str = "Asia/Jakarta";

/// Active hours as the API shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ScheduleView {
    /// IANA time zone.
    pub timezone: String,
    /// `[{"days": ["mon", ...], "start": "09:00", "end": "18:00"}]`; empty:
    /// always on.
    pub windows: serde_json::Value,
    /// `none | pause | activate`.
    #[serde(rename = "override")]
    #[sqlx(rename = "override")]
    pub override_mode: String,
}

impl Default for ScheduleView {
    /// Asia/Jakarta, always on, no override.
    fn default() -> Self {
        Self {
            timezone: DEFAULT_TIMEZONE.to_owned(),
            windows: serde_json::Value::Array(Vec::new()),
            override_mode: "none".to_owned(),
        }
    }
}

/// The tenant's active hours: the default ([`ScheduleView::default`]) if it
/// never set any.
pub async fn get(pool: &PgPool, tenant: TenantId) -> Result<ScheduleView, sqlx::Error> {
    let row: Option<ScheduleView> =
        sqlx::query_as("select timezone, windows, override from schedules where tenant_id = $1")
            .bind(*tenant.as_uuid())
            .fetch_optional(pool)
            .await?;
    Ok(row.unwrap_or_default())
}
