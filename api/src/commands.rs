//! The command side as handlers see it: one [`CommandHandler`] per
//! aggregate type, and the mapping of an aggregate's refusal to the API's
//! error shape.
//!
//! Handlers never decide a business rule: they gather the facts a command
//! needs (the tenant's plan, a list's size), send it, and answer what the
//! aggregate decided. A refusal's stable code (`insufficient_points`,
//! `invalid_state`, ...) becomes the error code ([`ErrorCode`]'s
//! `From<RefusalCode>`); its status follows from the code
//! ([`ErrorCode::status`]).

use cqrs_es::{Aggregate, AggregateError};
use wablast_domain::RefusalCode;
use wablast_domain::campaign::CampaignError;
use wablast_domain::inbound::InboundError;
use wablast_domain::list_check::ListCheckError;
use wablast_domain::message::MessageError;
use wablast_domain::order::OrderError;
use wablast_domain::plan::PlanError;
use wablast_domain::schedule::ScheduleError;
use wablast_domain::session::SessionError;
use wablast_domain::session_day::SessionDayError;
use wablast_domain::team::TeamError;
use wablast_domain::types::TenantId;
use wablast_domain::wallet::WalletError;
use wablast_eventstore::{
    AggregateKey, CommandHandler, CommandMetadata, Committed, PLATFORM_TENANT,
};

use crate::{ApiError, ErrorCode};

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
    A: Aggregate + Clone,
    A::Command: Clone,
    A::Error: Refusal,
{
    handler
        .execute(key, command, metadata)
        .await
        .map_err(ApiError::from)
}

pub use wablast_workflows::commands::position;

/// An aggregate's refusal: a business reason with a stable code.
pub trait Refusal: std::error::Error {
    /// The stable code of the error body.
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
    ListCheckError,
    MessageError,
    OrderError,
    PlanError,
    ScheduleError,
    SessionError,
    SessionDayError,
    TeamError,
    WalletError,
);

/// Nothing is refused to a webhook subscription.
impl Refusal for wablast_domain::webhook::WebhookError {
    fn code(&self) -> RefusalCode {
        match *self {}
    }
}

impl<E: Refusal> From<AggregateError<E>> for ApiError {
    fn from(err: AggregateError<E>) -> Self {
        match err {
            AggregateError::UserError(refusal) => {
                ApiError::new(refusal.code().into(), refusal.to_string())
            }
            AggregateError::AggregateConflict => ApiError::new(
                ErrorCode::Conflict,
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
        use axum::http::StatusCode;

        // The documented table: the status each refusal code is answered with.
        let documented = |code: RefusalCode| match code {
            RefusalCode::NotFound => StatusCode::NOT_FOUND,
            RefusalCode::ValidationFailed | RefusalCode::InvalidPhone => StatusCode::BAD_REQUEST,
            RefusalCode::Forbidden | RefusalCode::TenantSuspended => StatusCode::FORBIDDEN,
            RefusalCode::Conflict | RefusalCode::InvalidState => StatusCode::CONFLICT,
            // A business rule said no.
            RefusalCode::PlanLimitExceeded
            | RefusalCode::PlanExpired
            | RefusalCode::InsufficientPoints
            | RefusalCode::SenderRestricted
            | RefusalCode::SendCapReached
            | RefusalCode::RecipientCapExceeded
            | RefusalCode::TemplateVariablesMissing
            | RefusalCode::SessionNotReady
            | RefusalCode::DailyLimitReached
            | RefusalCode::CampaignNotRunning
            | RefusalCode::OutsideActiveHours
            | RefusalCode::TemplateNotFound
            | RefusalCode::TemplateNotApproved
            | RefusalCode::TemplateParameterMismatch
            | RefusalCode::TemplateNotSupported
            | RefusalCode::TemplateRequired
            | RefusalCode::MediaNotSupported
            | RefusalCode::OutsideCustomerServiceWindow
            | RefusalCode::FeatureNotInPlan
            | RefusalCode::LastOwner => StatusCode::UNPROCESSABLE_ENTITY,
        };
        for &code in RefusalCode::ALL {
            assert_eq!(ErrorCode::from(code).status(), documented(code), "{code}");
        }
    }

    #[test]
    fn a_refusal_is_answered_with_its_code_and_message() {
        let error = ApiError::from(AggregateError::UserError(WalletError::NoPlan));
        assert_eq!(error.code(), ErrorCode::InvalidState);
        assert_eq!(error.status(), axum::http::StatusCode::CONFLICT);
        let lost = ApiError::from(AggregateError::<WalletError>::AggregateConflict);
        assert_eq!(lost.code(), ErrorCode::Conflict);
    }
}
