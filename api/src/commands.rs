//! The command side as handlers see it: one [`CommandHandler`] per
//! aggregate type, and the mapping of an aggregate's refusal to the API's
//! error shape.
//!
//! Handlers never decide a business rule: they gather the facts a command
//! needs (the tenant's plan, a list's size), send it, and answer what the
//! aggregate decided. A refusal's stable code (`insufficient_points`,
//! `invalid_state`, ...) becomes the error code; its status follows from the
//! code ([`status_of`]).

use axum::http::StatusCode;
use cqrs_es::{Aggregate, AggregateError};
use wablast_domain::RefusalCode;
use wablast_domain::campaign::CampaignError;
use wablast_domain::inbound::InboundError;
use wablast_domain::message::MessageError;
use wablast_domain::plan::PlanError;
use wablast_domain::schedule::ScheduleError;
use wablast_domain::session::SessionError;
use wablast_domain::session_day::SessionDayError;
use wablast_domain::types::TenantId;
use wablast_domain::wallet::WalletError;
use wablast_eventstore::{
    AggregateKey, CommandHandler, CommandMetadata, Committed, PLATFORM_TENANT,
};
use wablast_projections::LogStream;

use crate::ApiError;

/// A handler per aggregate type, sharing one event log: the same set the
/// session engine uses.
pub use wablast_workflows::commands::Commands;

/// The key of a tenant's aggregate.
pub fn tenant_key(tenant: TenantId, id: impl Into<uuid::Uuid>) -> AggregateKey {
    wablast_workflows::commands::key(tenant, id)
}

/// The key of a platform aggregate (plans).
pub fn platform_key(id: impl std::fmt::Display) -> AggregateKey {
    AggregateKey::new(PLATFORM_TENANT, id)
        .expect("the platform tenant and UUIDs are subject tokens")
}

/// Runs `command` and maps a refusal to the API's error.
pub async fn execute<A>(
    handler: &CommandHandler<A>,
    key: &AggregateKey,
    command: A::Command,
    metadata: &CommandMetadata,
) -> Result<Committed<A>, ApiError>
where
    A: Aggregate,
    A::Command: Clone,
    A::Error: Refusal,
{
    handler
        .execute(key, command, metadata)
        .await
        .map_err(ApiError::from)
}

pub use wablast_workflows::commands::position;

/// The stream an aggregate type's events are in (the domain's layout);
/// a type it does not name is in `events`.
pub fn stream_of(aggregate_type: &str) -> LogStream {
    LogStream::of(aggregate_type).unwrap_or(LogStream::Events)
}

/// An aggregate's refusal: a business reason with a stable code.
pub trait Refusal: std::error::Error {
    /// The stable code (API.md).
    fn code(&self) -> RefusalCode;
}

macro_rules! refusal {
    ($($error:ty),* $(,)?) => {
        $(impl Refusal for $error {
            fn code(&self) -> RefusalCode {
                <$error>::code(self)
            }
        })*
    };
}

refusal!(
    CampaignError,
    InboundError,
    MessageError,
    PlanError,
    ScheduleError,
    SessionError,
    SessionDayError,
    WalletError,
);

/// The status a refusal's code is answered with.
pub fn status_of(code: &str) -> StatusCode {
    match code {
        "not_found" => StatusCode::NOT_FOUND,
        "validation_failed" | "invalid_phone" => StatusCode::BAD_REQUEST,
        "forbidden" => StatusCode::FORBIDDEN,
        "conflict" | "invalid_state" | "session_busy" => StatusCode::CONFLICT,
        // insufficient_points, plan_expired, recipient_cap_exceeded,
        // daily_limit_reached, plan_limit_exceeded, ...: a rule said no.
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

impl<E: Refusal> From<AggregateError<E>> for ApiError {
    fn from(err: AggregateError<E>) -> Self {
        match err {
            AggregateError::UserError(refusal) => {
                let code = refusal.code().as_str();
                ApiError::new(status_of(code), code, refusal.to_string())
            }
            AggregateError::AggregateConflict => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "another change to the same resource won the race, twice; try again",
            ),
            other => ApiError::internal(other),
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn refusal_codes_map_to_the_documented_statuses() {
        assert_eq!(status_of("not_found"), StatusCode::NOT_FOUND);
        assert_eq!(status_of("validation_failed"), StatusCode::BAD_REQUEST);
        assert_eq!(status_of("invalid_state"), StatusCode::CONFLICT);
        assert_eq!(status_of("forbidden"), StatusCode::FORBIDDEN);
        for code in [
            "insufficient_points",
            "plan_expired",
            "recipient_cap_exceeded",
            "daily_limit_reached",
            "plan_limit_exceeded",
        ] {
            assert_eq!(status_of(code), StatusCode::UNPROCESSABLE_ENTITY, "{code}");
        }
    }
}
