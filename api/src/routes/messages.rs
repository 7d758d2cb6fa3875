//! The gateway's messages: send one message (`POST /api/v1/messages`),
//! and the history of every message sent and received.
//!
//! A single send is the `direct_sends` workflow's: admitted to its
//! session's direct campaign of the day on reserved points, and sent by
//! the session's send loop like a campaign's message, under the same
//! rules (daily limit, active hours, throttle, plan, 2 points).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wablast_domain::types::phone::{Phone, Region};
use wablast_domain::types::{MediaId, MessageContent, MessageId, SessionId};
use wablast_workflows::direct_sends::{DirectSend, DirectSendError, OutsideActiveHours};

use crate::auth::Caller;
use crate::consistency::header_value;
use crate::error::ErrorBody;
use crate::extract::Json;
use crate::hardening::idempotency;
use crate::{ApiError, AppState, ErrorCode};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(send_message))
}

/// What to do when the active hours are closed at the time of the request.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutsideHours {
    /// Queue it: it goes out when they open (the default).
    #[default]
    Wait,
    /// Refuse it: 422 `outside_active_hours`.
    Refuse,
}

/// A message to send.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    /// The session (linked number) that sends it; it must be `ready`.
    pub session_id: Uuid,
    /// The recipient: a phone number in any form a contact import takes
    /// (`0812-3456-7890`, `+62 812…`, read in `default_region`), or a
    /// WhatsApp chat id of a person (`6281234567890@c.us`,
    /// `…@s.whatsapp.net`). Groups (`…@g.us`) are not sent to yet.
    #[schema(example = "0812-3456-7890")]
    pub to: String,
    /// The region national numbers are read in (ISO 3166-1 alpha-2);
    /// default `ID`.
    #[schema(example = "ID")]
    pub default_region: Option<String>,
    /// The text (up to 4,096 characters). With `media_id`, use `caption`.
    pub text: Option<String>,
    /// An attachment from `POST /api/v1/media`.
    pub media_id: Option<Uuid>,
    /// The attachment's caption.
    pub caption: Option<String>,
    /// WhatsApp's id of a message to quote. Not supported yet: refused.
    pub reply_to: Option<String>,
    /// A template (Cloud API sessions). Not supported yet: refused.
    #[schema(value_type = Option<Object>)]
    pub template: Option<serde_json::Value>,
    /// When the active hours are closed now: `wait` (default) or `refuse`.
    pub outside_active_hours: Option<OutsideHours>,
}

/// A message queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuedMessage {
    /// The message's id.
    pub id: Uuid,
    /// `queued`.
    #[schema(example = "queued")]
    pub status: String,
    /// The sending session.
    pub session_id: Uuid,
    /// The recipient, E.164.
    #[schema(example = "+6281234567890")]
    pub to: String,
    /// The text (or caption).
    pub text: Option<String>,
    /// The attachment.
    pub media_id: Option<Uuid>,
    /// When it was queued.
    pub queued_at: DateTime<Utc>,
}

/// Sends one message to one recipient.
///
/// The message is queued for the session and goes out in its turn, under
/// the same rules as a campaign's: the session's daily limit and throttle,
/// the tenant's active hours (it waits for them to open, unless
/// `outside_active_hours` is `refuse`), the plan, and 2 points, reserved in
/// blocks and captured once sent. Its progress is on the event stream
/// (`MessageSent`, `MessageDelivered`, ...) and at
/// `GET /api/v1/messages/{id}`.
///
/// With an `Idempotency-Key`, a retried request sends once.
#[utoipa::path(post, path = "/api/v1/messages", tag = "messages",
    security(("bearer" = []), ("api_key" = [])),
    request_body = NewMessage,
    responses(
        (status = 202, description = "Queued (`X-Wablast-Position` names the write)", body = QueuedMessage),
        (status = 400, description = "`validation_failed` (no text or media, a text too long, an unknown region, a group chat id, `reply_to` or `template`), `invalid_phone`", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such session or media in the caller's tenant", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the session is not ready (`details.session_status`); `conflict`: the same `Idempotency-Key` is still being answered", body = ErrorBody),
        (status = 422, description = "`insufficient_points`, `plan_expired`, `daily_limit_reached` (`details.retry_at`), `outside_active_hours` (with `refuse`; `details.opens_at`), `idempotency_key_reused`", body = ErrorBody),
        (status = 503, description = "`unavailable`: the event log is away; retry with the same `Idempotency-Key`", body = ErrorBody),
    ))]
async fn send_message(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<NewMessage>,
) -> Result<Response, ApiError> {
    if body.reply_to.is_some() {
        return Err(ApiError::validation(
            "reply_to (quoting a message) is not supported yet",
        ));
    }
    if body.template.is_some() {
        return Err(ApiError::validation(
            "templates (Cloud API sessions) are not supported yet",
        ));
    }
    let region = match body.default_region.as_deref() {
        None => Region::ID,
        Some(code) => Region::parse(code).map_err(|err| ApiError::validation(err.to_string()))?,
    };
    let to = recipient(&body.to, region)?;
    let text = match (body.media_id, body.text, body.caption) {
        (Some(_), Some(_), _) => {
            return Err(ApiError::validation(
                "a message with media_id takes its words as caption, not text",
            ));
        }
        (Some(_), None, caption) => caption,
        (None, text, None) => text,
        (None, _, Some(_)) => {
            return Err(ApiError::validation("caption goes with media_id"));
        }
    };
    let content = MessageContent::new(text, body.media_id.map(MediaId::from_uuid), None)
        .map_err(|err| ApiError::validation(err.to_string()))?;
    crate::media::require(&state.db, *caller.tenant_id.as_uuid(), body.media_id).await?;
    // A retried request (same key) is the same message: admitted once.
    let message_id = match headers
        .get(idempotency::HEADER)
        .and_then(|v| v.to_str().ok())
    {
        Some(key) => MessageId::from_uuid(Uuid::new_v5(
            caller.tenant_id.as_uuid(),
            format!("message/{}/{key}", caller.credential_id()).as_bytes(),
        )),
        None => MessageId::from_uuid(Uuid::now_v7()),
    };
    let send = DirectSend {
        message_id,
        session_id: SessionId::from_uuid(body.session_id),
        to: to.clone(),
        content: content.clone(),
        outside_active_hours: match body.outside_active_hours.unwrap_or_default() {
            OutsideHours::Wait => OutsideActiveHours::Wait,
            OutsideHours::Refuse => OutsideActiveHours::Refuse,
        },
    };
    let queued = state
        .direct_sends
        .send(caller.tenant_id, send, &caller.command(), Utc::now())
        .await
        .map_err(send_error)?;
    Ok((
        StatusCode::ACCEPTED,
        [header_value(queued.written)],
        axum::Json(QueuedMessage {
            id: *queued.message_id.as_uuid(),
            status: "queued".to_owned(),
            session_id: body.session_id,
            to: to.as_str().to_owned(),
            text: content.text,
            media_id: body.media_id,
            queued_at: queued.queued_at,
        }),
    )
        .into_response())
}

/// The recipient of `to`: a phone number, or a person's chat id.
fn recipient(to: &str, region: Region) -> Result<Phone, ApiError> {
    let to = to.trim();
    if let Some((user, server)) = to.split_once('@') {
        return match server {
            "c.us" | "s.whatsapp.net"
                if !user.is_empty() && user.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Phone::parse(&format!("+{user}"), region)
                    .map_err(|err| ApiError::new(ErrorCode::InvalidPhone, err.to_string()))
            }
            "g.us" => Err(ApiError::validation(
                "sending to a group is not supported yet: `to` is a phone number or a person's chat id",
            )),
            _ => Err(ApiError::validation(format!(
                "`to` {to:?} is not a phone number nor a person's chat id (digits@c.us)"
            ))),
        };
    }
    Phone::parse(to, region).map_err(|err| ApiError::new(ErrorCode::InvalidPhone, err.to_string()))
}

fn send_error(err: DirectSendError) -> ApiError {
    match err {
        DirectSendError::SessionNotFound => ApiError::not_found("session"),
        DirectSendError::SessionNotReady { status } => ApiError::new(
            ErrorCode::InvalidState,
            format!("the session is {status}, not ready: start it and link it first"),
        )
        .with_details(json!({"session_status": status.as_str()})),
        DirectSendError::PlanExpired { expired_at } => ApiError::new(
            ErrorCode::PlanExpired,
            "the plan has expired (or there is none): renew it to send",
        )
        .with_details(json!({"expired_at": expired_at})),
        DirectSendError::DailyLimitReached { limit, retry_at } => ApiError::new(
            ErrorCode::DailyLimitReached,
            format!("the session sent its daily limit of {limit} today"),
        )
        .with_details(json!({"daily_limit": limit, "retry_at": retry_at})),
        DirectSendError::OutsideActiveHours { opens_at } => ApiError::new(
            ErrorCode::OutsideActiveHours,
            match opens_at {
                Some(_) => "outside the active hours: it would wait until they open",
                None => "sending is paused by the schedule's override",
            },
        )
        .with_details(json!({"opens_at": opens_at})),
        DirectSendError::InsufficientPoints {
            required,
            available,
        } => ApiError::new(
            ErrorCode::InsufficientPoints,
            format!("a message costs {required} points; {available} are available"),
        )
        .with_details(json!({"required": required.value(), "available": available.value()})),
        DirectSendError::Log(err) => {
            tracing::warn!(error.message = %err, "single send not queued");
            ApiError::new(
                ErrorCode::Unavailable,
                "the event log cannot be reached right now; retry with the same Idempotency-Key",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recipient_is_a_number_or_a_persons_chat_id() {
        let expected = "+6281234567890";
        assert_eq!(
            recipient("0812-3456-7890", Region::ID).unwrap().as_str(),
            expected
        );
        assert_eq!(
            recipient("6281234567890@c.us", Region::ID)
                .unwrap()
                .as_str(),
            expected
        );
        assert_eq!(
            recipient(" 6281234567890@s.whatsapp.net ", Region::ID)
                .unwrap()
                .as_str(),
            expected
        );
        assert_eq!(
            recipient("120363025@g.us", Region::ID).unwrap_err().code(),
            ErrorCode::ValidationFailed
        );
        assert_eq!(
            recipient("12ab@c.us", Region::ID).unwrap_err().code(),
            ErrorCode::ValidationFailed
        );
        assert_eq!(
            recipient("not a number", Region::ID).unwrap_err().code(),
            ErrorCode::InvalidPhone
        );
    }
}
