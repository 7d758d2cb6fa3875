//! The one error shape of the API:
//! `{"error": {"code": "snake_case_code", "message": "human text", "details": {...}}}`.
//!
//! Handlers return `Result<T, ApiError>`; internal failures are logged here
//! and answered with a body that never carries their text.

use std::fmt;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use wablast_domain::RefusalCode;

/// Declares [`ErrorCode`] with its wire strings: the enum, the list of
/// every code, and `as_str`, from one list so they cannot drift apart.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident => $code:literal,)*) => {
        /// The stable, machine-readable code of an error
        /// (`not_found`, `validation_failed`, ...).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &[Self] = &[$(Self::$variant),*];

            /// The code as it is answered (`not_found`, ...).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)*
                }
            }
        }
    };
}

error_codes! {
    /// 400: a malformed body, a bad field, query parameter or header.
    ValidationFailed => "validation_failed",
    /// 400: a phone number that is not a valid mobile number.
    InvalidPhone => "invalid_phone",
    /// 400: an upload that is not a file of a kind we read.
    UnsupportedFile => "unsupported_file",
    /// 400: a client error the API's layers answered without a handler
    /// (see [`crate::hardening::error_shape`]).
    BadRequest => "bad_request",
    /// 401: no or bad credentials.
    Unauthenticated => "unauthenticated",
    /// 403: authenticated but not allowed (role, scope).
    Forbidden => "forbidden",
    /// 404: no such resource, or it belongs to another tenant.
    NotFound => "not_found",
    /// 405: the endpoint does not take this method.
    MethodNotAllowed => "method_not_allowed",
    /// 409: it exists already, or another change won the race.
    Conflict => "conflict",
    /// 409: not in a state that allows it.
    InvalidState => "invalid_state",
    /// 409: the session is busy with another request.
    SessionBusy => "session_busy",
    /// 409: the engine is drained (maintenance): it takes no session.
    EngineDraining => "engine_draining",
    /// 409: no live, undrained engine could take the sessions.
    NoEngineAvailable => "no_engine_available",
    /// 413: the body is too large.
    PayloadTooLarge => "payload_too_large",
    /// 415: the body is not JSON.
    UnsupportedMediaType => "unsupported_media_type",
    /// 422: an `Idempotency-Key` reused for a different request.
    IdempotencyKeyReused => "idempotency_key_reused",
    /// 422: beyond what the tenant's plan allows.
    PlanLimitExceeded => "plan_limit_exceeded",
    /// 422: the tenant's plan has ended.
    PlanExpired => "plan_expired",
    /// 422: not enough points.
    InsufficientPoints => "insufficient_points",
    /// 422: WhatsApp restricted the sending number for now.
    SenderRestricted => "sender_restricted",
    /// 422: a sender governor cap (a minute, an hour, new contacts,
    /// identical texts) is reached for now.
    SendCapReached => "send_cap_reached",
    /// 422: more recipients than the plan allows per campaign.
    RecipientCapExceeded => "recipient_cap_exceeded",
    /// 422: the template names variables the recipients do not have.
    TemplateVariablesMissing => "template_variables_missing",
    /// 422: no sender session is ready.
    SessionNotReady => "session_not_ready",
    /// 422: a session's daily limit is used up.
    DailyLimitReached => "daily_limit_reached",
    /// 422: the campaign is not running.
    CampaignNotRunning => "campaign_not_running",
    /// 422: outside the tenant's active hours (or sending is paused).
    OutsideActiveHours => "outside_active_hours",
    /// 422: no such WhatsApp template synced for the session.
    TemplateNotFound => "template_not_found",
    /// 422: the WhatsApp template is not approved by Meta.
    TemplateNotApproved => "template_not_approved",
    /// 422: not as many template parameters as its body's `{{n}}`.
    TemplateParameterMismatch => "template_parameter_mismatch",
    /// 422: a template on a session whose driver sends none, or one
    /// wablast cannot fill (a media header).
    TemplateNotSupported => "template_not_supported",
    /// 422: a message to a group from a session whose driver does not send
    /// to groups (a Cloud API number).
    GroupsNotSupported => "groups_not_supported",
    /// 422: an attachment from a session whose driver sends text only (a
    /// native session, for now).
    MediaNotSupported => "media_not_supported",
    /// 422: a Cloud API sender needs a template to start conversations.
    TemplateRequired => "template_required",
    /// 422: free text to a person outside the Cloud API number's 24-hour
    /// customer-service window: send a template.
    OutsideCustomerServiceWindow => "outside_customer_service_window",
    /// 422: the tenant's plan does not include the feature (auto-replies,
    /// webhooks, official mode); `details.feature` says which.
    FeatureNotInPlan => "feature_not_in_plan",
    /// 403: the platform operator suspended the tenant (`details.reason`).
    TenantSuspended => "tenant_suspended",
    /// 422: the team's last owner would be removed or demoted; make
    /// another member owner first.
    LastOwner => "last_owner",
    /// 422: the payment gateway reports a payment of another amount than
    /// the order's: refused, nothing credited.
    AmountMismatch => "amount_mismatch",
    /// 422: this installation sells nothing online (no payment gateway
    /// configured): plans and points come from the platform admin. A 4xx,
    /// not a 503: it is how the installation is set up, not an outage, and
    /// retrying changes nothing.
    PaymentsNotConfigured => "payments_not_configured",
    /// 429: rate limited (with `Retry-After`).
    RateLimited => "rate_limited",
    /// 500: our fault; the body never says more.
    Internal => "internal",
    /// 502: the session engine answered something unreadable.
    EngineError => "engine_error",
    /// 502: the WhatsApp driver (WAHA, Cloud API) failed.
    DriverFailed => "driver_failed",
    /// 503: a dependency (the event log, the QR codes) is away.
    Unavailable => "unavailable",
    /// 503: no session engine answered.
    EngineUnavailable => "engine_unavailable",
    /// 503: the change was applied, but its view is not ready yet.
    ProjectionLag => "projection_lag",
    /// 502: the payment gateway (Midtrans) refused or could not be
    /// reached.
    PaymentGatewayFailed => "payment_gateway_failed",

}

impl ErrorCode {
    /// The HTTP status this code is answered with (the documented one). Every code has
    /// exactly one: the compiler checks that each new code gets its own.
    pub const fn status(self) -> StatusCode {
        match self {
            Self::ValidationFailed
            | Self::InvalidPhone
            | Self::UnsupportedFile
            | Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::TenantSuspended => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict
            | Self::InvalidState
            | Self::SessionBusy
            | Self::EngineDraining
            | Self::NoEngineAvailable => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::IdempotencyKeyReused
            | Self::PlanLimitExceeded
            | Self::PlanExpired
            | Self::InsufficientPoints
            | Self::SenderRestricted
            | Self::SendCapReached
            | Self::RecipientCapExceeded
            | Self::TemplateVariablesMissing
            | Self::SessionNotReady
            | Self::DailyLimitReached
            | Self::CampaignNotRunning
            | Self::OutsideActiveHours
            | Self::TemplateNotFound
            | Self::TemplateNotApproved
            | Self::TemplateParameterMismatch
            | Self::TemplateNotSupported
            | Self::GroupsNotSupported
            | Self::MediaNotSupported
            | Self::TemplateRequired
            | Self::OutsideCustomerServiceWindow
            | Self::FeatureNotInPlan
            | Self::LastOwner
            | Self::AmountMismatch
            | Self::PaymentsNotConfigured => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::EngineError | Self::DriverFailed | Self::PaymentGatewayFailed => {
                StatusCode::BAD_GATEWAY
            }
            Self::Unavailable | Self::EngineUnavailable | Self::ProjectionLag => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<RefusalCode> for ErrorCode {
    /// A domain refusal's code is answered as the same string; the match
    /// makes a new refusal code choose its error code (and so its status).
    fn from(code: RefusalCode) -> Self {
        match code {
            RefusalCode::ValidationFailed => Self::ValidationFailed,
            RefusalCode::InvalidPhone => Self::InvalidPhone,
            RefusalCode::NotFound => Self::NotFound,
            RefusalCode::Forbidden => Self::Forbidden,
            RefusalCode::Conflict => Self::Conflict,
            RefusalCode::InvalidState => Self::InvalidState,
            RefusalCode::PlanLimitExceeded => Self::PlanLimitExceeded,
            RefusalCode::PlanExpired => Self::PlanExpired,
            RefusalCode::InsufficientPoints => Self::InsufficientPoints,
            RefusalCode::RecipientCapExceeded => Self::RecipientCapExceeded,
            RefusalCode::TemplateVariablesMissing => Self::TemplateVariablesMissing,
            RefusalCode::SessionNotReady => Self::SessionNotReady,
            RefusalCode::DailyLimitReached => Self::DailyLimitReached,
            RefusalCode::CampaignNotRunning => Self::CampaignNotRunning,
            RefusalCode::OutsideActiveHours => Self::OutsideActiveHours,
            RefusalCode::TemplateNotFound => Self::TemplateNotFound,
            RefusalCode::TemplateNotApproved => Self::TemplateNotApproved,
            RefusalCode::TemplateParameterMismatch => Self::TemplateParameterMismatch,
            RefusalCode::TemplateNotSupported => Self::TemplateNotSupported,
            RefusalCode::TemplateRequired => Self::TemplateRequired,
            RefusalCode::MediaNotSupported => Self::MediaNotSupported,
            RefusalCode::OutsideCustomerServiceWindow => Self::OutsideCustomerServiceWindow,
            RefusalCode::FeatureNotInPlan => Self::FeatureNotInPlan,
            RefusalCode::TenantSuspended => Self::TenantSuspended,
            RefusalCode::LastOwner => Self::LastOwner,
            RefusalCode::SenderRestricted => Self::SenderRestricted,
            RefusalCode::SendCapReached => Self::SendCapReached,
        }
    }
}

/// An error answered to the client; its status is its code's.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    details: Value,
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code (`not_found`, `validation_failed`, ...).
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
    /// Structured details (which field, which row); `{}` when none.
    #[schema(value_type = Object)]
    pub details: Value,
}

impl ApiError {
    /// An error with a stable code (which gives its status) and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Value::Object(Default::default()),
        }
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// 404: no such resource, or it belongs to another tenant.
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// 400 `validation_failed`: a bad field or body.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationFailed, message)
    }

    /// 400 `validation_failed` naming the field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(message).with_details(serde_json::json!({ "field": field }))
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// 413 `payload_too_large`.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PayloadTooLarge, message)
    }

    /// 500: our fault. The cause is logged, not answered.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error.message = %cause, "internal error");
        Self::new(ErrorCode::Internal, "internal error; it has been logged")
    }

    /// The HTTP status: the code's.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The body answered, without its status.
    pub(crate) fn into_body(self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                details: self.details,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        (status, Json(self.into_body())).into_response()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        Self::internal(err)
    }
}

/// Answers a path no route (and no file of the console) matches.
pub fn no_such_route() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint")
}

impl From<wablast_domain::plan::FeatureNotInPlan> for ApiError {
    fn from(refusal: wablast_domain::plan::FeatureNotInPlan) -> Self {
        Self::new(ErrorCode::from(refusal.code()), refusal.to_string()).with_details(
            serde_json::json!({"feature": refusal.feature.as_str(), "plan_id": refusal.plan_id}),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn codes_serialize_as_their_strings() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                Value::String(code.as_str().to_owned())
            );
            assert_eq!(code.to_string(), code.as_str());
            assert!(seen.insert(code.as_str()), "{code} twice");
        }
    }

    #[test]
    fn every_refusal_code_is_answered_as_the_same_string() {
        for &code in RefusalCode::ALL {
            assert_eq!(ErrorCode::from(code).as_str(), code.as_str());
        }
    }

    #[test]
    fn the_body_carries_the_code_and_the_status_is_the_codes() {
        let error = ApiError::new(ErrorCode::SessionBusy, "busy")
            .with_details(serde_json::json!({"field": "id"}));
        assert_eq!(error.status(), StatusCode::CONFLICT);
        let body = serde_json::to_value(error.into_body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "session_busy", "message": "busy", "details": {"field": "id"}}})
        );
    }
}
