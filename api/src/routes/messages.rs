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
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::IntoParams;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wablast_domain::message::Message;
use wablast_domain::types::CampaignId;
use wablast_domain::types::phone::{Phone, Region};
use wablast_domain::types::whatsapp_template::{CUSTOMER_SERVICE_WINDOW, TemplateMessage};
use wablast_domain::types::{Chat, GroupId};
use wablast_domain::types::{MediaId, MessageContent, MessageId, SessionId};
use wablast_projections::queries::history::{
    self, Direction, HistoryCursor, HistoryFilter, HistoryView,
};
use wablast_workflows::direct_sends::{DirectSend, DirectSendError, OutsideActiveHours};

use crate::auth::Caller;
use crate::consistency::{self, After, header_value};
use crate::error::ErrorBody;
use crate::extract::{Json, Path, Query};
use crate::hardening::idempotency;
use crate::list::{List, ListParams};
use crate::{ApiError, AppState, ErrorCode};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send_message, list_messages))
        .routes(routes!(get_message))
}

/// The projections the history reads.
const READS: &[&str] = &["messages", "inbound", "campaigns"];

/// Which messages to list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// Rows per page: 1 to 500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page; none for the first page.
    pub cursor: Option<String>,
    /// One session's messages.
    pub session_id: Option<Uuid>,
    /// One campaign's messages (sent ones).
    pub campaign_id: Option<Uuid>,
    /// `in` (received) or `out` (sent).
    pub direction: Option<String>,
    /// To or from this number (any form, read in Indonesia) or chat id.
    pub peer: Option<String>,
    /// `queued | sending | sent | delivered | read | failed | cancelled |
    /// unknown`, or `received`.
    pub status: Option<String>,
    /// Queued or received at or after this instant (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// ... and before this one.
    pub to: Option<DateTime<Utc>>,
}

/// A message sent or received.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MessageRecord)]
pub struct MessageView {
    /// Its id.
    pub id: Uuid,
    /// `in` (received) or `out` (sent).
    #[schema(example = "out")]
    pub direction: String,
    /// The session that sent or received it.
    pub session_id: Uuid,
    /// Its campaign (a broadcast's message); null for a single send or a
    /// received message.
    pub campaign_id: Option<Uuid>,
    /// The other side: E.164, or the chat id the driver gave when it could
    /// not tell the number.
    #[schema(example = "+6281234567890")]
    pub peer: String,
    /// `text`, `image`, `video`, `audio`, `document`; for a received one
    /// also `sticker`, `location`, `contact`, `reaction`, `interactive`,
    /// `other` (and `unknown` for one without text recorded before kinds
    /// were kept).
    #[serde(rename = "type")]
    #[schema(example = "text")]
    pub kind: String,
    /// The text or caption, as sent or received.
    pub text: Option<String>,
    /// A sent message's attachment.
    pub media_id: Option<Uuid>,
    /// `queued | sending | sent | delivered | read | failed | cancelled |
    /// unknown`, or `received`. `unknown`: its send was cut off (the
    /// engine died, the answer was lost) and WhatsApp could not tell
    /// whether it went out; never re-sent. A cut-off send WhatsApp could
    /// tell about is `sent` (or beyond), or `failed` when it never left.
    pub status: String,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// When it was queued (sent messages).
    pub queued_at: Option<DateTime<Utc>>,
    /// When it was sent.
    pub sent_at: Option<DateTime<Utc>>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When it was read.
    pub read_at: Option<DateTime<Utc>>,
    /// When it was received (received messages).
    pub received_at: Option<DateTime<Utc>>,
    /// WhatsApp's id of the message, once known (what `reply_to` takes).
    pub provider_message_id: Option<String>,
    /// The message it answers (WhatsApp's id), for a single send that
    /// quotes one.
    pub reply_to: Option<String>,
}

impl From<HistoryView> for MessageView {
    fn from(v: HistoryView) -> Self {
        Self {
            id: v.id,
            direction: v.direction,
            session_id: v.session_id,
            campaign_id: v.campaign_id,
            peer: v.peer,
            kind: v.kind,
            text: v.text,
            media_id: v.media_id,
            status: v.status,
            error: v.error,
            queued_at: v.queued_at,
            sent_at: v.sent_at,
            delivered_at: v.delivered_at,
            read_at: v.read_at,
            received_at: v.received_at,
            provider_message_id: v.provider_message_id,
            reply_to: v.reply_to,
        }
    }
}

/// Every message the tenant's sessions sent (campaigns' and single sends)
/// or received, newest first.
#[utoipa::path(get, path = "/api/v1/messages", tag = "messages",
    security(("bearer" = []), ("api_key" = [])),
    params(HistoryParams),
    responses(
        (status = 200, description = "A page of messages, newest first", body = List<MessageView>),
        (status = 400, description = "Bad limit, cursor, direction, status, peer or time", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn list_messages(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Query(params): Query<HistoryParams>,
) -> Result<axum::Json<List<MessageView>>, ApiError> {
    let page = ListParams {
        limit: params.limit,
        cursor: params.cursor.clone(),
    }
    .page::<HistoryCursor>()?;
    let direction = match params.direction.as_deref() {
        None => None,
        Some("in") => Some(Direction::In),
        Some("out") => Some(Direction::Out),
        Some(other) => {
            return Err(ApiError::validation(format!(
                "direction is `in` or `out`, not {other:?}"
            )));
        }
    };
    if let Some(status) = params.status.as_deref()
        && status != history::RECEIVED
        && !history::OUT_STATUSES.contains(&status)
    {
        return Err(ApiError::validation(format!(
            "status is one of {}, or received; not {status:?}",
            history::OUT_STATUSES.join(", ")
        )));
    }
    if let (Some(from), Some(to)) = (params.from, params.to)
        && from >= to
    {
        return Err(ApiError::validation("`from` must be before `to`"));
    }
    let peer = params.peer.as_deref().map(parse_peer).transpose()?;
    let filter = HistoryFilter {
        session_id: params.session_id.map(SessionId::from_uuid),
        campaign_id: params.campaign_id.map(CampaignId::from_uuid),
        direction,
        peer,
        status: params.status,
        from: params.from,
        to: params.to,
    };
    after.wait(&state.db, READS).await?;
    let paged = history::list(&state.db, caller.tenant_id, &filter, &page).await?;
    Ok(axum::Json(List::from_paged(paged, MessageView::from)))
}

/// One message, sent or received, with its text, media, status times and
/// error.
#[utoipa::path(get, path = "/api/v1/messages/{id}", tag = "messages",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The message")),
    responses(
        (status = 200, description = "The message", body = MessageView),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such message in the caller's tenant", body = ErrorBody),
    ))]
async fn get_message(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<MessageView>, ApiError> {
    after.wait(&state.db, READS).await?;
    let (db, tenant) = (&state.db, caller.tenant_id);
    consistency::found_or_caught_up(&state, Message::TYPE, READS, move || async move {
        Ok(history::get(db, tenant, id).await?)
    })
    .await?
    .map(|view| axum::Json(view.into()))
    .ok_or_else(|| ApiError::not_found("message"))
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
    /// `…@s.whatsapp.net`), or a group the session's number is in
    /// (`120363025246125486@g.us`, as `GET /api/v1/sessions/{id}/groups`
    /// gives it; not from Cloud API sessions).
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
    /// WhatsApp's id of a message this one answers (quoted): a received
    /// message's `provider_message_id`, say.
    pub reply_to: Option<String>,
    /// An approved WhatsApp template instead of `text`/`media_id`
    /// (Cloud API sessions only): synced for the session
    /// (`POST /api/v1/sessions/{id}/templates/sync`), with as many
    /// `parameters` as its body has `{{n}}`, and its header filled as it
    /// needs (`header_parameters`, or `header_media_id`). What a Cloud API number
    /// sends to someone who has not written to it in the last 24 hours.
    pub template: Option<super::templates::TemplateBody>,
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
    /// The recipient: E.164, or the group's id.
    #[schema(example = "+6281234567890")]
    pub to: String,
    /// The text (or caption).
    pub text: Option<String>,
    /// The attachment.
    pub media_id: Option<Uuid>,
    /// The WhatsApp template it sends.
    pub template: Option<TemplateMessage>,
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
///
/// `to` may be a group the session's number is in (its id from
/// `GET /api/v1/sessions/{id}/groups`); one message to a group costs what
/// one message to a person costs. A group the number is not in fails the
/// message (`MessageFailed`, "not in the group").
///
/// A Cloud API session ("official mode") writes free text or media only to
/// someone who wrote to it in the last 24 hours (Meta's customer-service
/// window); anyone else gets an approved `template`: otherwise 422
/// `outside_customer_service_window`, at once.
#[utoipa::path(post, path = "/api/v1/messages", tag = "messages",
    security(("bearer" = []), ("api_key" = [])),
    request_body = NewMessage,
    responses(
        (status = 202, description = "Queued (`X-Wablast-Position` names the write)", body = QueuedMessage),
        (status = 400, description = "`validation_failed` (no text or media, a text too long, an unknown region, a malformed group id, a blank or long `reply_to`, a `template` with text or media, a bad template name, language or parameter), `invalid_phone`", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such session or media (`media_id`, `template.header_media_id`) in the caller's tenant", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the session is not ready (`details.session_status`); `conflict`: the same `Idempotency-Key` is still being answered", body = ErrorBody),
        (status = 422, description = "`insufficient_points`, `plan_expired`, `daily_limit_reached` (`details.retry_at`), `outside_active_hours` (with `refuse`; `details.opens_at`), `idempotency_key_reused`; `groups_not_supported`: a group from a Cloud API or native session; `media_not_supported`: an attachment from a native session (experimental: texts only for now); `outside_customer_service_window`: free text or media from a Cloud API session to someone who has not written to it in the last 24 hours (`details.last_inbound_at`): send a template; `template_not_supported` (a template on a session that is not a Cloud API one, or one with a location header), `template_not_found`, `template_not_approved`, `template_parameter_mismatch` (body parameters not as many as its `{{n}}`, or a header not filled as it needs: `header_parameters` for a text header with `{{n}}`, `header_media_id` of the right type for an image, video or document header)", body = ErrorBody),
        (status = 503, description = "`unavailable`: the event log is away; retry with the same `Idempotency-Key`", body = ErrorBody),
    ))]
async fn send_message(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<NewMessage>,
) -> Result<Response, ApiError> {
    let region = match body.default_region.as_deref() {
        None => Region::ID,
        Some(code) => Region::parse(code).map_err(|err| ApiError::validation(err.to_string()))?,
    };
    let to = recipient(&body.to, region)?;
    if let Some(template) = &body.template {
        if body.text.is_some() || body.media_id.is_some() || body.caption.is_some() {
            return Err(ApiError::invalid_field(
                "template",
                "a template message takes no text, media_id or caption: its words are the template's",
            ));
        }
        // The shape first: a bad name is 400 whatever the session.
        template.message("template")?;
    }
    let content = match &body.template {
        Some(template) => {
            MessageContent::template(template.message("template")?, body.reply_to.clone())
                .map_err(|err| ApiError::validation(err.to_string()))?
        }
        None => free_content(&body)?,
    };
    crate::media::require(&state.db, *caller.tenant_id.as_uuid(), body.media_id).await?;
    if let Some(template) = &content.template {
        super::templates::ensure_header_media_of(
            &state,
            caller.tenant_id,
            body.session_id,
            template,
        )
        .await?;
    }
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
        answering_since: None,
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
            template: content.template.map(|t| *t),
            queued_at: queued.queued_at,
        }),
    )
        .into_response())
}

/// A `?peer=` filter: a number in any form (as E.164), or a chat id as
/// the driver wrote it.
pub(crate) fn parse_peer(peer: &str) -> Result<String, ApiError> {
    match peer.trim() {
        "" => Err(ApiError::validation("peer is empty")),
        peer if peer.chars().count() > 128 => {
            Err(ApiError::validation("peer is at most 128 characters"))
        }
        peer => Ok(match Phone::parse(peer, Region::ID) {
            Ok(phone) => phone.as_str().to_owned(),
            Err(_) => peer.to_owned(),
        }),
    }
}

/// A free (not template) message's content: a text, or media with an
/// optional caption.
fn free_content(body: &NewMessage) -> Result<MessageContent, ApiError> {
    let text = match (body.media_id, body.text.clone(), body.caption.clone()) {
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
    MessageContent::new(
        text,
        body.media_id.map(MediaId::from_uuid),
        body.reply_to.clone(),
    )
    .map_err(|err| ApiError::validation(err.to_string()))
}

/// The recipient of `to`: a phone number, a person's chat id or a group's.
fn recipient(to: &str, region: Region) -> Result<Chat, ApiError> {
    let to = to.trim();
    if let Some((user, server)) = to.split_once('@') {
        return match server {
            "c.us" | "s.whatsapp.net"
                if !user.is_empty() && user.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Phone::parse(&format!("+{user}"), region)
                    .map(Chat::Person)
                    .map_err(|err| ApiError::new(ErrorCode::InvalidPhone, err.to_string()))
            }
            "g.us" => to
                .parse::<GroupId>()
                .map(Chat::Group)
                .map_err(|err| ApiError::invalid_field("to", err.to_string())),
            _ => Err(ApiError::validation(format!(
                "`to` {to:?} is not a phone number nor a chat id (digits@c.us, or a group's …@g.us)"
            ))),
        };
    }
    Phone::parse(to, region)
        .map(Chat::Person)
        .map_err(|err| ApiError::new(ErrorCode::InvalidPhone, err.to_string()))
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
        DirectSendError::TenantSuspended { reason } => ApiError::new(
            ErrorCode::TenantSuspended,
            "the platform operator suspended this tenant",
        )
        .with_details(json!({"reason": reason})),
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
        DirectSendError::TemplateNotSupported { .. } => {
            ApiError::new(ErrorCode::TemplateNotSupported, err.to_string())
        }
        DirectSendError::GroupsNotSupported { .. } => {
            ApiError::new(ErrorCode::GroupsNotSupported, err.to_string())
        }
        DirectSendError::MediaNotSupported { .. } => {
            ApiError::new(ErrorCode::MediaNotSupported, err.to_string())
                .with_details(json!({"field": "media_id"}))
        }
        DirectSendError::Template(refusal) => {
            ApiError::new(ErrorCode::from(refusal.code()), refusal.to_string())
        }
        DirectSendError::OutsideCustomerServiceWindow {
            ref to,
            last_inbound_at,
        } => ApiError::new(
            ErrorCode::OutsideCustomerServiceWindow,
            format!("{err}: send `template` instead of text"),
        )
        .with_details(json!({
            "to": to.as_str(),
            "last_inbound_at": last_inbound_at,
            "window_hours": CUSTOMER_SERVICE_WINDOW.num_hours(),
        })),
        DirectSendError::Log(err) | DirectSendError::Database(err) => {
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
    fn a_recipient_is_a_number_or_a_chat_id() {
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
            recipient(" 120363025246125486@g.us", Region::ID).unwrap(),
            Chat::Group("120363025246125486@g.us".parse().unwrap())
        );
        assert_eq!(
            recipient("1203 6302@g.us", Region::ID).unwrap_err().code(),
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
