//! Campaigns: create, start, pause, resume, cancel; the lists, a campaign's
//! messages and their CSV export.
//!
//! The campaign and wallet aggregates decide; the handlers gather the facts
//! (the contact list's columns and size, the sender sessions, the plan's
//! cap) and run the commands. Starting is the one multi-step command (see
//! [`start_campaign`]): the wallet reserves first, then the campaign starts,
//! and a refused start gives its reservation back.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use cqrs_es::{Aggregate, AggregateError};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wablast_domain::campaign::{
    Campaign, CampaignCommand, CampaignError, CampaignEvent, CampaignStatus, PauseReason,
};
use wablast_domain::session::Driver;
use wablast_domain::types::template::Template;
use wablast_domain::types::whatsapp_template::{CampaignTemplate, TemplateHeader};
use wablast_domain::types::{
    CampaignId, ContactListId, EngagementGuard, MediaId, SessionId, Throttle,
};
use wablast_domain::wallet::WalletError;
use wablast_eventstore::{AggregateKey, CommandMetadata, Committed};
use wablast_projections::queries::{campaigns, contact_lists, history, messages, sessions};
use wablast_projections::wait::Position;
use wablast_workflows::campaign_start::{self, StartError};
use wablast_workflows::cancellation::{self, CancelError};
use wablast_workflows::commands::follow_up;

use crate::auth::Caller;
use crate::commands::{position, tenant_key};
use crate::consistency::{self, After, MAX_WAIT, header_value};
use crate::error::ErrorBody;
use crate::extract::{Json, Path, Query};
use crate::list::{List, ListParams};
use crate::{ApiError, AppState, ErrorCode};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_campaign, list_campaigns))
        .routes(routes!(preview_campaign))
        .routes(routes!(get_campaign))
        .routes(routes!(start_campaign))
        .routes(routes!(schedule_campaign))
        .routes(routes!(pause_campaign))
        .routes(routes!(resume_campaign))
        .routes(routes!(cancel_campaign))
        .routes(routes!(list_messages))
        .routes(routes!(export_campaign))
}

/// The projections the reads of campaigns and their messages use.
const READS: &[&str] = &["campaigns", "messages"];

/// The statuses of a campaign, as the API names them.
const CAMPAIGN_STATUSES: [&str; 6] = [
    "draft",
    "scheduled",
    "running",
    "paused",
    "completed",
    "cancelled",
];

/// A new campaign.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    /// 1 to 120 characters.
    #[schema(example = "Promo Lebaran")]
    pub name: String,
    /// The contact list to send to.
    pub contact_list_id: Uuid,
    /// The message: `{{name}}`, `{{phone}}`, any of the list's mapped
    /// columns `{{column}}`, fallbacks `{{name|Kak}}`, spintax `{Halo|Hai}`.
    #[schema(example = "{Halo|Hai} {{name|Kak}}, promo Lebaran diskon 20%!")]
    pub template: String,
    /// An uploaded attachment sent with every message.
    pub media_id: Option<Uuid>,
    /// The approved WhatsApp template its Cloud API senders send instead
    /// of `template` (they can only start conversations with one):
    /// required when a sender is a Cloud API session, refused otherwise.
    /// Each parameter is rendered per recipient like `template`.
    pub whatsapp_template: Option<super::templates::CampaignTemplateBody>,
    /// The sessions that send it, in rotation (at least one).
    pub sender_session_ids: Vec<Uuid>,
    /// The random pause between two sends of a session (default 2000 to
    /// 5000 ms).
    pub throttle: Option<ThrottleBody>,
    /// When it starts by itself; the campaign is then `scheduled`.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Leave out the contacts whose numbers a check found not on WhatsApp
    /// (`POST /api/v1/contact-lists/{id}/check`, or the tenant's number
    /// checks): decided when it starts, which reserves points for the
    /// others only. Default false.
    #[serde(default)]
    pub skip_not_on_whatsapp: bool,
    /// The engagement guard: leave out, when it starts, the contacts this
    /// tenant sent this many messages or more (by any of its numbers) who
    /// never replied. 1 to 100; 0 turns it off. Default 3.
    #[schema(minimum = 0, maximum = 100, example = 3)]
    pub skip_unanswered_after: Option<u64>,
}

/// A template to try on a contact list before creating a campaign.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// The contact list to render it for.
    pub contact_list_id: Uuid,
    /// The message, as a campaign's `template`.
    #[schema(example = "{Halo|Hai} {{name|Kak}}, promo Lebaran diskon 20%!")]
    pub template: String,
    /// How many of the list's contacts to render, from its first (1 to 20,
    /// default 5).
    #[schema(minimum = 1, maximum = 20, example = 5)]
    pub count: Option<u32>,
    /// Count missing values as a campaign that skips numbers not on
    /// WhatsApp would: without those contacts. Default false.
    #[serde(default)]
    pub skip_not_on_whatsapp: bool,
    /// A campaign's `whatsapp_template` (what its Cloud API senders send):
    /// each sample shows its parameters as they would be sent, and its
    /// missing values count with the text's.
    pub whatsapp_template: Option<super::templates::CampaignTemplateBody>,
    /// A Cloud API session that synced `whatsapp_template`: each sample
    /// shows the template's body filled in, as the recipient reads it.
    pub session_id: Option<Uuid>,
}

/// A template rendered for some contacts of a list, and how many of the
/// list's contacts lack each variable it uses.
#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    /// The first contacts of the list, each with the text a send would
    /// give it (spintax picked at random, as each message's own pick).
    pub samples: Vec<PreviewSample>,
    /// Per variable the template uses (as the list spells it), how many of
    /// the list's contacts have no value for it (none, or a blank one);
    /// only those some contact lacks. A variable without fallback listed
    /// here makes creating the campaign fail with 422
    /// `template_variables_missing`.
    #[schema(value_type = Object, example = json!({"kota": 3}))]
    pub missing: BTreeMap<String, u64>,
}

/// One contact and its text.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewSample {
    /// The contact, E.164.
    #[schema(example = "+6281234567890")]
    pub phone: String,
    /// Its name.
    pub name: Option<String>,
    /// The text it would be sent; null when it lacks a variable the
    /// template uses without fallback (see `missing`).
    pub text: Option<String>,
    /// The WhatsApp template it would be sent instead by a Cloud API
    /// sender, when the request has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whatsapp_template: Option<PreviewTemplate>,
}

/// A WhatsApp template as one contact would get it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewTemplate {
    /// The template's name.
    #[schema(example = "promo_lebaran")]
    pub name: String,
    /// Its language.
    #[schema(example = "id")]
    pub language: String,
    /// Its parameters, `{{1}}` first; null when the contact lacks a
    /// variable one uses without fallback (see `missing`).
    #[schema(example = json!(["Andi", "20%"]))]
    pub parameters: Option<Vec<String>>,
    /// Its body filled with them, when the request names the session that
    /// synced it and the parameters could be rendered.
    #[schema(example = "Halo Andi, diskon 20% menunggu Anda!")]
    pub text: Option<String>,
    /// Its text header filled with `header_parameters` (as `text`).
    #[schema(example = "Promo Jakarta")]
    pub header: Option<String>,
}

/// The random pause between two sends of one session.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThrottleBody {
    /// Shortest pause, in milliseconds.
    #[schema(example = 2000)]
    pub min_delay_ms: u64,
    /// Longest pause, in milliseconds (at most 600000).
    #[schema(example = 5000)]
    pub max_delay_ms: u64,
}

/// A campaign.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignView {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// `draft`, `scheduled`, `running`, `paused`, `completed` or
    /// `cancelled`.
    #[schema(example = "draft")]
    pub status: String,
    /// The contact list it sends to.
    pub contact_list_id: Uuid,
    /// The template as written.
    pub template: String,
    /// The attachment sent with every message.
    pub media_id: Option<Uuid>,
    /// The senders still in rotation, in order.
    pub sender_session_ids: Vec<Uuid>,
    /// The pause between two sends of a session.
    pub throttle: ThrottleBody,
    /// When it starts by itself.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Whether it leaves out contacts whose numbers a check found not on
    /// WhatsApp.
    pub skip_not_on_whatsapp: bool,
    /// How many contacts its start left out so (not among `counts.total`).
    pub skipped_not_on_whatsapp: i64,
    /// Its engagement guard: the contacts sent this many messages by the
    /// tenant who never replied are left out when it starts (0: off).
    pub skip_unanswered_after: u32,
    /// The contacts its start left out, by reason (not among
    /// `counts.total`).
    pub skipped: SkippedView,
    /// Its recipients who replied after their message was sent; null in
    /// lists (counted for one campaign at a time).
    pub replied: Option<i64>,
    /// Its slow-down while a sender's failures climb: its pause between
    /// two sends of a session is `throttle` meanwhile. Null at its own
    /// pace.
    pub slow_down: Option<SlowDownView>,
    /// The WhatsApp template its Cloud API senders send, with its
    /// parameters as written (rendered per recipient).
    pub whatsapp_template: Option<CampaignTemplate>,
    /// Its messages by status.
    pub counts: CampaignCounts,
    /// Points the wallet holds for it (`recipients × 2` from its start).
    pub points_reserved: i64,
    /// Points its sent messages cost.
    pub points_spent: i64,
    /// Why it is paused (`{"kind": "manual"}`, ...); null unless paused.
    #[schema(value_type = Option<Object>)]
    pub pause_reason: Option<serde_json::Value>,
    /// When an auto-paused campaign may resume.
    pub resume_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it completed or was cancelled.
    pub finished_at: Option<DateTime<Utc>>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Why its scheduled start was refused at its time (no points, an
    /// expired plan, ...): it is a draft again until started or scheduled
    /// anew. Null otherwise.
    pub start_refusal: Option<StartRefusalView>,
    /// Why a running campaign sends nothing for now, when every sender
    /// waits; null otherwise.
    pub waiting: Option<WaitingView>,
}

/// The contacts a campaign's start left out, by reason.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct SkippedView {
    /// A check found their numbers not on WhatsApp.
    pub not_on_whatsapp: i64,
    /// The tenant sent them `skip_unanswered_after` messages or more and
    /// they never replied.
    pub never_replied: i64,
}

/// A campaign slowed down, and why.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct SlowDownView {
    /// Why: `failures_climbing` (30% or more of a sender's last 10 sends
    /// failed or were blocked; under 10% restores its own pace).
    pub reason: wablast_domain::campaign::SlowDownReason,
    /// The sender whose sends slowed it.
    pub session_id: Uuid,
    /// The pause it keeps meanwhile: 4× its own, at least 2 to 6 s.
    pub throttle: ThrottleBody,
    /// Since when.
    pub since: DateTime<Utc>,
}

/// Why something that runs sends nothing for now, and until when.
#[derive(Debug, Serialize, ToSchema)]
pub struct WaitingView {
    /// `session_not_ready`, `daily_limit_reached`, `outside_active_hours`,
    /// `sending_paused` (the override) or `plan_expired`.
    #[schema(example = "daily_limit_reached")]
    pub reason: String,
    /// Until when, where known.
    pub until: Option<DateTime<Utc>>,
}

/// Why a campaign's scheduled start was refused.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct StartRefusalView {
    /// The refusal's code, as a start by hand would have answered it.
    #[schema(example = "insufficient_points")]
    pub code: String,
    /// What it says.
    pub message: String,
    /// When the start was tried.
    pub at: DateTime<Utc>,
}

/// A new start time for a draft or scheduled campaign.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CampaignSchedule)]
pub struct NewSchedule {
    /// When it starts by itself (in the future).
    pub scheduled_at: DateTime<Utc>,
}

/// A campaign's messages by their status.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct CampaignCounts {
    /// Recipients (frozen at start; before, the messages counted).
    pub total: i64,
    /// Waiting to be sent.
    pub queued: i64,
    /// Being sent.
    pub sending: i64,
    /// Sent, not known delivered yet.
    pub sent: i64,
    /// Delivered, not read yet.
    pub delivered: i64,
    /// Read.
    pub read: i64,
    /// Failed for good.
    pub failed: i64,
    /// Cancelled before they were sent.
    pub cancelled: i64,
    /// Outcome unknown: the send was cut off (the engine died, the answer
    /// was lost) and WhatsApp could not tell whether it went out (the
    /// driver has no lookup: the Cloud API; or the lookup kept failing).
    /// Never re-sent. A cut-off send the peer could tell about counts as
    /// sent (or delivered, read), or failed when it never left.
    pub unknown: i64,
}

impl From<campaigns::CampaignView> for CampaignView {
    fn from(v: campaigns::CampaignView) -> Self {
        let c = v.counts;
        Self {
            id: v.id,
            name: v.name,
            status: v.status,
            contact_list_id: v.contact_list_id,
            template: v.template,
            media_id: v.media_id,
            sender_session_ids: v.sender_session_ids,
            throttle: ThrottleBody {
                min_delay_ms: u64::try_from(v.throttle.min_delay_ms).unwrap_or(0),
                max_delay_ms: u64::try_from(v.throttle.max_delay_ms).unwrap_or(0),
            },
            scheduled_at: v.scheduled_at,
            skip_not_on_whatsapp: v.skip_not_on_whatsapp,
            skipped_not_on_whatsapp: v.skipped_not_on_whatsapp,
            skip_unanswered_after: u32::try_from(v.skip_unanswered_after).unwrap_or(0),
            skipped: SkippedView {
                not_on_whatsapp: v.skipped_not_on_whatsapp,
                never_replied: v.skipped_never_replied,
            },
            replied: v.replied,
            slow_down: v
                .slow_down
                .and_then(|slow| serde_json::from_value(slow).ok()),
            whatsapp_template: v
                .whatsapp_template
                .and_then(|template| serde_json::from_value(template).ok()),
            counts: CampaignCounts {
                total: c.total,
                queued: c.queued,
                sending: c.sending,
                sent: c.sent,
                delivered: c.delivered,
                read: c.read,
                failed: c.failed,
                cancelled: c.cancelled,
                unknown: c.unknown,
            },
            points_reserved: v.points_reserved,
            points_spent: v.points_spent,
            pause_reason: v.pause_reason,
            resume_at: v.resume_at,
            created_at: v.created_at,
            started_at: v.started_at,
            finished_at: v.finished_at,
            updated_at: v.updated_at,
            start_refusal: v
                .start_refusal
                .and_then(|refusal| serde_json::from_value(refusal).ok()),
            waiting: v.waiting_reason.map(|reason| WaitingView {
                reason,
                until: v.waiting_until,
            }),
        }
    }
}

/// What a command did to a campaign.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignChanged {
    /// The campaign.
    pub id: Uuid,
    /// Its status now.
    #[schema(example = "running")]
    pub status: String,
    /// Its recipients, frozen at start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipients: Option<u64>,
    /// The points reserved for it at start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points_reserved: Option<u64>,
    /// Points given back to the wallet by this request (a cancelled
    /// campaign that had sent nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points_released: Option<u64>,
}

/// A list filtered by status.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusFilter {
    /// Only those in this status.
    pub status: Option<String>,
}

impl StatusFilter {
    /// The status, if it is one of `allowed`; 400 otherwise.
    fn parse(&self, allowed: &[&str]) -> Result<Option<&str>, ApiError> {
        match self.status.as_deref() {
            None | Some("") => Ok(None),
            Some(status) if allowed.contains(&status) => Ok(Some(status)),
            Some(_) => Err(ApiError::invalid_field(
                "status",
                format!("status must be one of {}", allowed.join(", ")),
            )),
        }
    }
}

/// A message of a campaign.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    /// Its id.
    pub id: Uuid,
    /// The recipient, E.164.
    #[schema(example = "+6281234567890")]
    pub phone: String,
    /// The recipient's name.
    pub name: Option<String>,
    /// `queued`, `sending`, `sent`, `delivered`, `read`, `failed`,
    /// `cancelled` or `unknown`.
    pub status: String,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// Attempts so far.
    pub attempts: i32,
    /// When it was sent.
    pub sent_at: Option<DateTime<Utc>>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When it was read.
    pub read_at: Option<DateTime<Utc>>,
    /// The session meant to send it, then the one that sent it.
    pub session_id: Uuid,
    /// The text it was sent with: the template rendered for the recipient
    /// (spintax picked, variables filled). Null until a sender takes it.
    #[schema(example = "Halo Budi, promo Lebaran diskon 20%!")]
    pub text: Option<String>,
}

impl From<messages::MessageView> for MessageView {
    fn from(m: messages::MessageView) -> Self {
        Self {
            id: m.id,
            phone: m.phone,
            name: m.name,
            status: m.status,
            error: m.error,
            attempts: m.attempts,
            sent_at: m.sent_at,
            delivered_at: m.delivered_at,
            read_at: m.read_at,
            session_id: m.session_id,
            text: m.text,
        }
    }
}

/// Structured details of a campaign's refusal.
fn campaign_details(refusal: &CampaignError) -> Option<serde_json::Value> {
    Some(match refusal {
        CampaignError::InvalidName { .. } => json!({"field": "name"}),
        CampaignError::NoSenders | CampaignError::DuplicateSender(_) => {
            json!({"field": "sender_session_ids"})
        }
        CampaignError::UnknownVariables { names } => {
            json!({"field": "template", "unknown_variables": names})
        }
        CampaignError::TemplateVariablesMissing { missing } => {
            json!({"field": "template", "missing": missing})
        }
        CampaignError::ScheduleInPast { .. } => json!({"field": "scheduled_at"}),
        CampaignError::InvalidState { action, status } => {
            json!({"action": action, "status": status.as_str()})
        }
        CampaignError::RecipientCapExceeded { recipients, cap } => {
            json!({"recipients": recipients, "cap": cap})
        }
        CampaignError::BackingOff { retry_at } => json!({"retry_at": retry_at}),
        CampaignError::TemplateRequired { sessions } => {
            json!({"field": "whatsapp_template", "cloud_sessions": sessions})
        }
        CampaignError::TemplateWithoutCloudSender => json!({"field": "whatsapp_template"}),
        CampaignError::MediaNotSupported { sessions } => {
            json!({"field": "media_id", "sessions": sessions})
        }
        _ => return None,
    })
}

/// A campaign command's failure as an API error, with details.
fn campaign_error(err: AggregateError<CampaignError>) -> ApiError {
    let details = match &err {
        AggregateError::UserError(refusal) => campaign_details(refusal),
        _ => None,
    };
    let error = ApiError::from(err);
    match details {
        Some(details) => error.with_details(details),
        None => error,
    }
}

/// A wallet command's failure as an API error, with details.
fn wallet_error(err: AggregateError<WalletError>) -> ApiError {
    let details = match &err {
        AggregateError::UserError(WalletError::InsufficientPoints {
            required,
            available,
        }) => Some(json!({"required": required.value(), "available": available.value()})),
        AggregateError::UserError(WalletError::PlanExpired { expired_at }) => {
            Some(json!({"expired_at": expired_at}))
        }
        AggregateError::UserError(WalletError::NoRecipients) => {
            Some(json!({"field": "contact_list_id", "reason": "the contact list has no contacts"}))
        }
        _ => None,
    };
    let error = ApiError::from(err);
    match details {
        Some(details) => error.with_details(details),
        None => error,
    }
}

async fn run(
    state: &AppState,
    key: &AggregateKey,
    command: CampaignCommand,
    metadata: &CommandMetadata,
) -> Result<Committed<Campaign>, ApiError> {
    state
        .commands
        .campaigns
        .execute(key, command, metadata)
        .await
        .map_err(campaign_error)
}

/// A command's answer: the status, the log position header, the body.
fn accepted<T: Serialize>(status: StatusCode, at: Position, body: T) -> Response {
    (status, [header_value(at)], axum::Json(body)).into_response()
}

/// Creates a draft campaign (scheduled, when `scheduled_at` is given).
///
/// The contact list and every sender session must be the caller's (404
/// otherwise, naming the field and the id). The template may use only
/// `name`, `phone` and the list's mapped columns (matched
/// case-insensitively: `{{Kota}}` is the column `kota`), and every contact
/// must have a value (not blank) for each variable it uses without a
/// fallback (`{{name|Kak}}`): otherwise 422 `template_variables_missing`
/// with `details.missing` = `{variable: contacts lacking it}`.
#[utoipa::path(post, path = "/api/v1/campaigns", tag = "campaigns",
    security(("bearer" = []), ("api_key" = [])),
    request_body = NewCampaign,
    responses(
        (status = 201, description = "Created (`X-Wablast-Position` names the write)", body = CampaignView),
        (status = 400, description = "Bad field: name, template (syntax or unknown variable), throttle, senders, scheduled_at", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such contact list, sender session or medium in the caller's tenant", body = ErrorBody),
        (status = 422, description = "`template_variables_missing`: some contacts of the list have no value for a variable the template (or a `whatsapp_template` parameter) uses without fallback; `details.missing` counts them per variable. `media_not_supported`: a `media_id` and a native sender (experimental: texts only for now; `details.sessions`). `template_required`: a sender is a Cloud API session and no `whatsapp_template` is given (it could not start conversations); `template_not_supported`: a `whatsapp_template` without a Cloud API sender, or one with a location header; `template_not_found`, `template_not_approved`, `template_parameter_mismatch`: the `whatsapp_template` is not synced for a Cloud API sender, not approved, its parameters do not match its body's `{{n}}`, or its header is not filled as it needs (`header_parameters`, `header_media_id` of the header's type)", body = ErrorBody),
    ))]
async fn create_campaign(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Json(body): Json<NewCampaign>,
) -> Result<Response, ApiError> {
    let template = Template::parse(&body.template)
        .map_err(|err| ApiError::invalid_field("template", err.to_string()))?;
    let skip_unanswered_after = match body.skip_unanswered_after {
        Some(n) => EngagementGuard::parse(n)
            .map_err(|err| ApiError::invalid_field("skip_unanswered_after", err.to_string()))?,
        None => EngagementGuard::DEFAULT,
    };
    let throttle = match body.throttle {
        Some(t) => Throttle::new(t.min_delay_ms, t.max_delay_ms)
            .map_err(|err| ApiError::invalid_field("throttle", err.to_string()))?,
        None => Throttle::DEFAULT,
    };
    let list = contact_lists::facts(
        &state.db,
        caller.tenant_id,
        ContactListId::from_uuid(body.contact_list_id),
    )
    .await?
    .ok_or_else(|| {
        ApiError::not_found("contact list")
            .with_details(json!({"field": "contact_list_id", "id": body.contact_list_id}))
    })?;
    // Sessions the client just created are seen when it passes the position.
    after.wait(&state.db, &["sessions"]).await?;
    let known =
        sessions::existing_ids(&state.db, caller.tenant_id, &body.sender_session_ids).await?;
    if let Some(unknown) = body
        .sender_session_ids
        .iter()
        .find(|id| !known.contains(id))
    {
        return Err(ApiError::not_found("sender session")
            .with_details(json!({"field": "sender_session_ids", "id": unknown})));
    }

    let whatsapp_template = body
        .whatsapp_template
        .as_ref()
        .map(super::templates::CampaignTemplateBody::parse)
        .transpose()?;
    let cloud_senders = sessions::with_driver(
        &state.db,
        caller.tenant_id,
        &body.sender_session_ids,
        Driver::Cloud,
    )
    .await?;
    if let Some(whatsapp) = &whatsapp_template {
        for session in &cloud_senders {
            super::templates::ensure_usable(
                &state,
                caller.tenant_id,
                *session,
                &whatsapp.name,
                &whatsapp.language,
                whatsapp.parameters.len(),
                (whatsapp.header_given(), whatsapp.header_media_id()),
            )
            .await?;
        }
    }
    let cloud_senders: BTreeSet<SessionId> = cloud_senders
        .into_iter()
        .map(SessionId::from_uuid)
        .collect();
    let text_only_senders: BTreeSet<SessionId> = sessions::with_driver(
        &state.db,
        caller.tenant_id,
        &body.sender_session_ids,
        Driver::Native,
    )
    .await?
    .into_iter()
    .map(SessionId::from_uuid)
    .collect();

    let list_id = ContactListId::from_uuid(body.contact_list_id);
    let mut variables = Campaign::template_variables(&template, list.columns.iter().cloned());
    for parameter in whatsapp_template.iter().flat_map(|t| t.all_parameters()) {
        variables.extend(Campaign::template_variables(
            parameter,
            list.columns.iter().cloned(),
        ));
    }
    let missing_values = contact_lists::missing_values(
        &state.db,
        caller.tenant_id,
        list_id,
        &variables,
        body.skip_not_on_whatsapp,
        None,
    )
    .await?;

    let campaign_id = CampaignId::new();
    let key = tenant_key(caller.tenant_id, campaign_id);
    let at = Utc::now();
    let metadata = caller.command();
    crate::media::require(&state.db, *caller.tenant_id.as_uuid(), body.media_id).await?;
    let committed = run(
        &state,
        &key,
        CampaignCommand::CreateCampaign {
            campaign_id,
            name: body.name.clone(),
            contact_list_id: list_id,
            template: template.clone(),
            media_id: body.media_id.map(MediaId::from_uuid),
            whatsapp_template: whatsapp_template.clone().map(Box::new),
            cloud_senders,
            text_only_senders: Box::new(text_only_senders),
            sender_session_ids: body
                .sender_session_ids
                .iter()
                .copied()
                .map(SessionId::from_uuid)
                .collect(),
            throttle,
            scheduled_at: body.scheduled_at,
            list_columns: list.columns.into_iter().collect::<BTreeSet<_>>(),
            missing_values,
            skip_not_on_whatsapp: body.skip_not_on_whatsapp,
            skip_unanswered_after,
            at,
        },
        &metadata,
    )
    .await?;
    let mut written = position(&committed);
    let mut status = CampaignStatus::Draft;
    if let Some(at_time) = body.scheduled_at {
        // Decided at the same instant as the creation, which accepted it.
        let committed = run(
            &state,
            &key,
            CampaignCommand::ScheduleCampaign { at_time, at },
            &follow_up(&metadata),
        )
        .await?;
        written = position(&committed);
        status = CampaignStatus::Scheduled;
    }
    tracing::info!(campaign = %campaign_id, tenant = %caller.tenant_id, "campaign created");
    let name = committed
        .events
        .iter()
        .find_map(|e| match &e.payload {
            CampaignEvent::CampaignCreated { name, .. } => Some(name.clone()),
            _ => None,
        })
        .unwrap_or(body.name);
    Ok(accepted(
        StatusCode::CREATED,
        written,
        CampaignView {
            id: *campaign_id.as_uuid(),
            name,
            status: status.as_str().to_owned(),
            contact_list_id: body.contact_list_id,
            template: template.as_str().to_owned(),
            media_id: body.media_id,
            sender_session_ids: body.sender_session_ids,
            throttle: ThrottleBody {
                min_delay_ms: throttle.min_delay_ms(),
                max_delay_ms: throttle.max_delay_ms(),
            },
            scheduled_at: body.scheduled_at,
            skip_not_on_whatsapp: body.skip_not_on_whatsapp,
            skipped_not_on_whatsapp: 0,
            skip_unanswered_after: skip_unanswered_after.value(),
            skipped: SkippedView::default(),
            replied: None,
            slow_down: None,
            whatsapp_template,
            counts: CampaignCounts::default(),
            points_reserved: 0,
            points_spent: 0,
            pause_reason: None,
            resume_at: None,
            created_at: at,
            started_at: None,
            finished_at: None,
            updated_at: at,
            start_refusal: None,
            waiting: None,
        },
    ))
}

/// Sample recipients a preview renders when the request does not say.
const DEFAULT_PREVIEW_COUNT: u32 = 5;
/// The most sample recipients a preview renders.
const MAX_PREVIEW_COUNT: u32 = 20;

/// Renders a template for the first contacts of a list, as the send would
/// (the same values, spintax picked per message), and counts the list's
/// contacts that lack each variable it uses. Creates nothing.
#[utoipa::path(post, path = "/api/v1/campaigns/preview", tag = "campaigns",
    security(("bearer" = []), ("api_key" = [])),
    request_body = PreviewRequest,
    responses(
        (status = 200, description = "The samples and the missing values", body = Preview),
        (status = 400, description = "Bad field: template or a whatsapp_template parameter (syntax or unknown variable), whatsapp_template (name, language), count (1 to 20), session_id without whatsapp_template", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such contact list, or `whatsapp_template.header_media_id`, in the caller's tenant", body = ErrorBody),
        (status = 422, description = "`template_not_found`, `template_not_approved`, `template_parameter_mismatch`, `template_not_supported`: the `whatsapp_template` is not synced for `session_id`, not approved, or its parameters do not match its body's `{{n}}` (as creating the campaign would say)", body = ErrorBody),
    ))]
async fn preview_campaign(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<PreviewRequest>,
) -> Result<axum::Json<Preview>, ApiError> {
    let template = Template::parse(&body.template)
        .map_err(|err| ApiError::invalid_field("template", err.to_string()))?;
    let count = body.count.unwrap_or(DEFAULT_PREVIEW_COUNT);
    if !(1..=MAX_PREVIEW_COUNT).contains(&count) {
        return Err(ApiError::invalid_field(
            "count",
            format!("count must be between 1 and {MAX_PREVIEW_COUNT}"),
        ));
    }
    let list_id = ContactListId::from_uuid(body.contact_list_id);
    let list = contact_lists::facts(&state.db, caller.tenant_id, list_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found("contact list")
                .with_details(json!({"field": "contact_list_id", "id": body.contact_list_id}))
        })?;
    let unknown = Campaign::unknown_template_variables(&template, list.columns.iter().cloned());
    if !unknown.is_empty() {
        return Err(campaign_error(AggregateError::UserError(
            CampaignError::UnknownVariables {
                names: unknown.into_iter().collect(),
            },
        )));
    }
    let whatsapp_template = body
        .whatsapp_template
        .as_ref()
        .map(super::templates::CampaignTemplateBody::parse)
        .transpose()?;
    let synced = match (&whatsapp_template, body.session_id) {
        (Some(whatsapp), Some(session)) => Some(
            super::templates::ensure_usable(
                &state,
                caller.tenant_id,
                session,
                &whatsapp.name,
                &whatsapp.language,
                whatsapp.parameters.len(),
                (whatsapp.header_given(), whatsapp.header_media_id()),
            )
            .await?,
        ),
        (None, Some(_)) => {
            return Err(ApiError::invalid_field(
                "session_id",
                "session_id names where a whatsapp_template was synced: give the whatsapp_template too",
            ));
        }
        (_, None) => None,
    };
    let mut variables = Campaign::template_variables(&template, list.columns.iter().cloned());
    for parameter in whatsapp_template.iter().flat_map(|t| t.all_parameters()) {
        let unknown = Campaign::unknown_template_variables(parameter, list.columns.iter().cloned());
        if !unknown.is_empty() {
            return Err(campaign_error(AggregateError::UserError(
                CampaignError::UnknownVariables {
                    names: unknown.into_iter().collect(),
                },
            )));
        }
        variables.extend(Campaign::template_variables(
            parameter,
            list.columns.iter().cloned(),
        ));
    }
    let mut missing = contact_lists::missing_values(
        &state.db,
        caller.tenant_id,
        list_id,
        &variables,
        body.skip_not_on_whatsapp,
        None,
    )
    .await?;
    missing.retain(|_, count| *count > 0);
    let samples = contact_lists::sample(&state.db, caller.tenant_id, list_id, count)
        .await?
        .into_iter()
        .map(|contact| {
            let values = Campaign::template_values(
                &contact.phone,
                contact.name.as_deref(),
                &contact.variables.0,
            );
            // A message's seed is the random half of its id (see the send
            // loop): a new id's gives a pick like any message's.
            let seed = Uuid::now_v7().as_u64_pair().1;
            let whatsapp_template = whatsapp_template.as_ref().map(|whatsapp| {
                let rendered = whatsapp.render(&values, seed).ok();
                let header = synced.as_ref().and_then(|synced| {
                    match rendered.as_ref().map(|message| &message.header) {
                        Some(Some(TemplateHeader::Text { parameters })) => {
                            synced.fill_header(parameters)
                        }
                        Some(_) => synced.fill_header(&[]),
                        None => None,
                    }
                });
                let parameters = rendered.map(|message| message.parameters);
                PreviewTemplate {
                    name: whatsapp.name.clone(),
                    language: whatsapp.language.clone(),
                    text: synced
                        .as_ref()
                        .zip(parameters.as_ref())
                        .and_then(|(synced, parameters)| synced.fill(parameters)),
                    header,
                    parameters,
                }
            });
            PreviewSample {
                text: template.render(&values, seed).ok(),
                phone: contact.phone,
                name: contact.name,
                whatsapp_template,
            }
        })
        .collect();
    Ok(axum::Json(Preview { samples, missing }))
}

/// The caller's campaigns, oldest first.
#[utoipa::path(get, path = "/api/v1/campaigns", tag = "campaigns",
    security(("bearer" = []), ("api_key" = [])),
    params(ListParams, StatusFilter),
    responses(
        (status = 200, description = "A page of campaigns", body = List<CampaignView>),
        (status = 400, description = "Bad limit, cursor or status", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn list_campaigns(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Query(params): Query<ListParams>,
    Query(filter): Query<StatusFilter>,
) -> Result<axum::Json<List<CampaignView>>, ApiError> {
    let page = params.page::<Uuid>()?;
    let status = filter.parse(&CAMPAIGN_STATUSES)?;
    after.wait(&state.db, READS).await?;
    let paged = campaigns::list(&state.db, caller.tenant_id, &page, status).await?;
    Ok(axum::Json(List::from_paged(paged, CampaignView::from)))
}

/// One of the caller's campaigns, with its counts.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}", tag = "campaigns",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The campaign")),
    responses(
        (status = 200, description = "The campaign", body = CampaignView),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such campaign in the caller's tenant", body = ErrorBody),
    ))]
async fn get_campaign(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<CampaignView>, ApiError> {
    after.wait(&state.db, READS).await?;
    let (db, tenant, id) = (&state.db, caller.tenant_id, CampaignId::from_uuid(id));
    consistency::found_or_caught_up(&state, Campaign::TYPE, READS, move || async move {
        Ok(campaigns::get(db, tenant, id).await?)
    })
    .await?
    .map(|view| axum::Json(view.into()))
    .ok_or_else(|| ApiError::not_found("campaign"))
}

/// Starts a draft or scheduled campaign: reserves `recipients × 2` points
/// (the recipients are the contact list's contacts), then starts it.
///
/// Safe to retry: the reservation and the start are each made once, and a
/// start of a campaign already running with the same figures answers 202
/// again. When the campaign refuses to start, its reservation is given
/// back before the refusal is answered.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/start", tag = "campaigns",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The campaign")),
    responses(
        (status = 202, description = "Started: points reserved, sending begins", body = CampaignChanged),
        (status = 400, description = "The contact list has no contacts", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such campaign in the caller's tenant", body = ErrorBody),
        (status = 409, description = "`invalid_state`: not a draft or scheduled campaign; `conflict`: its contact list was deleted", body = ErrorBody),
        (status = 422, description = "`insufficient_points`, `recipient_cap_exceeded`, `plan_expired` (also without any plan), `session_not_ready` (no sender left), `daily_limit_reached` (every sender used up its daily limit today), `template_variables_missing` (contacts of the list lack a variable the template needs: `details.missing`)", body = ErrorBody),
    ))]
async fn start_campaign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let started = campaign_start::start(
        &state.commands,
        &state.db,
        caller.tenant_id,
        CampaignId::from_uuid(id),
        &caller.command(),
        Utc::now(),
    )
    .await;
    match started {
        Ok(started) => Ok(accepted(
            StatusCode::ACCEPTED,
            started.written,
            CampaignChanged {
                id,
                status: started.status.as_str().to_owned(),
                recipients: Some(started.recipients),
                points_reserved: Some(started.points_reserved.value()),
                points_released: None,
            },
        )),
        Err(StartError::NotFound) => Err(ApiError::not_found("campaign")),
        Err(StartError::ListDeleted { list_id }) => Err(ApiError::new(
            ErrorCode::Conflict,
            "the campaign's contact list was deleted; create the campaign again with another list",
        )
        .with_details(json!({"contact_list_id": list_id}))),
        Err(StartError::TooManyRecipients) => Err(ApiError::validation("too many recipients")),
        Err(StartError::Wallet(err)) => Err(wallet_error(err)),
        Err(StartError::Database(err)) => Err(err.into()),
        Err(err @ StartError::Capacity(_)) => Err(ApiError::internal(err)),
        Err(StartError::Campaign {
            refusal,
            given_back,
        }) => {
            let mut response = campaign_error(refusal).into_response();
            if let Some(at) = given_back {
                let (name, value) = header_value(at);
                response.headers_mut().insert(name, value);
            }
            Ok(response)
        }
    }
}

/// Schedules a draft campaign, or moves a scheduled one to another time:
/// it starts by itself at `scheduled_at` (on the same reservation of points
/// a start by hand makes). A scheduled start that is refused at its time
/// (no points, an expired plan, ...) makes it a draft again, saying why in
/// `start_refusal`.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/schedule", tag = "campaigns",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The campaign")),
    request_body = NewSchedule,
    responses(
        (status = 202, description = "Scheduled", body = CampaignChanged),
        (status = 400, description = "`scheduled_at` is missing, malformed or not in the future", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such campaign in the caller's tenant", body = ErrorBody),
        (status = 409, description = "`invalid_state`: not a draft or scheduled campaign", body = ErrorBody),
    ))]
async fn schedule_campaign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<NewSchedule>,
) -> Result<Response, ApiError> {
    let key = tenant_key(caller.tenant_id, id);
    let committed = run(
        &state,
        &key,
        CampaignCommand::ScheduleCampaign {
            at_time: body.scheduled_at,
            at: Utc::now(),
        },
        &caller.command(),
    )
    .await?;
    Ok(changed(id, CampaignStatus::Scheduled, position(&committed)))
}

/// Pauses a running campaign (a paused one stays paused).
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/pause", tag = "campaigns",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The campaign")),
    responses(
        (status = 202, description = "Paused", body = CampaignChanged),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such campaign in the caller's tenant", body = ErrorBody),
        (status = 409, description = "`invalid_state`: not running or paused", body = ErrorBody),
    ))]
async fn pause_campaign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let key = tenant_key(caller.tenant_id, id);
    let committed = run(
        &state,
        &key,
        CampaignCommand::PauseCampaign {
            reason: PauseReason::Manual,
            at: Utc::now(),
        },
        &caller.command(),
    )
    .await?;
    Ok(changed(id, CampaignStatus::Paused, position(&committed)))
}

/// Resumes a paused campaign (a running one keeps running).
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/resume", tag = "campaigns",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The campaign")),
    responses(
        (status = 202, description = "Running again", body = CampaignChanged),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such campaign in the caller's tenant", body = ErrorBody),
        (status = 409, description = "`invalid_state`: not paused or running, or backing off after failures until `details.retry_at`", body = ErrorBody),
        (status = 422, description = "`session_not_ready`: no sender session is left", body = ErrorBody),
    ))]
async fn resume_campaign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let key = tenant_key(caller.tenant_id, id);
    let committed = run(
        &state,
        &key,
        CampaignCommand::ResumeCampaign { at: Utc::now() },
        &caller.command(),
    )
    .await?;
    Ok(changed(id, CampaignStatus::Running, position(&committed)))
}

fn changed(id: Uuid, status: CampaignStatus, at: Position) -> Response {
    accepted(
        StatusCode::ACCEPTED,
        at,
        CampaignChanged {
            id,
            status: status.as_str().to_owned(),
            recipients: None,
            points_reserved: None,
            points_released: None,
        },
    )
}

/// Cancels a campaign that is not finished.
///
/// Its messages not yet sent are cancelled and the wallet settles the
/// campaign (captures what was sent, releases the rest) by the processes
/// that follow its events. A campaign that started but had not a single
/// message yet is settled here at once: its whole reservation is released.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/cancel", tag = "campaigns",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The campaign")),
    responses(
        (status = 202, description = "Cancelled", body = CampaignChanged),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such campaign in the caller's tenant", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the campaign completed", body = ErrorBody),
    ))]
async fn cancel_campaign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let cancelled = cancellation::cancel(
        &state.commands,
        &state.log,
        &state.db,
        caller.tenant_id,
        CampaignId::from_uuid(id),
        &caller.command(),
        MAX_WAIT,
    )
    .await
    .map_err(|err| match err {
        CancelError::Campaign(err) => campaign_error(err),
        CancelError::Wallet(err) => wallet_error(err),
        CancelError::Database(err) => err.into(),
        other => ApiError::internal(other),
    })?;
    Ok(accepted(
        StatusCode::ACCEPTED,
        cancelled.written,
        CampaignChanged {
            id,
            status: CampaignStatus::Cancelled.as_str().to_owned(),
            recipients: None,
            points_reserved: None,
            points_released: cancelled.points_released,
        },
    ))
}

/// A campaign's messages, by id, optionally only those in one status.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/messages", tag = "campaigns",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The campaign"), ListParams, StatusFilter),
    responses(
        (status = 200, description = "A page of messages", body = List<MessageView>),
        (status = 400, description = "Bad limit, cursor or status", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such campaign in the caller's tenant", body = ErrorBody),
    ))]
async fn list_messages(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Path(id): Path<Uuid>,
    Query(params): Query<ListParams>,
    Query(filter): Query<StatusFilter>,
) -> Result<axum::Json<List<MessageView>>, ApiError> {
    let page = params.page::<Uuid>()?;
    let status = filter.parse(&history::OUT_STATUSES)?;
    after.wait(&state.db, READS).await?;
    let (db, tenant, id) = (&state.db, caller.tenant_id, CampaignId::from_uuid(id));
    let page = &page;
    let paged =
        consistency::found_or_caught_up(&state, Campaign::TYPE, READS, move || async move {
            Ok(messages::list_for_campaign(db, tenant, id, status, page).await?)
        })
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))?;
    Ok(axum::Json(List::from_paged(paged, MessageView::from)))
}

/// Rows written per chunk of the export's body.
const EXPORT_CHUNK_ROWS: usize = 256;

/// A campaign's messages as CSV: `phone,name,status,error,sent_at,delivered_at,read_at,text`
/// (`text`: what each was sent with), streamed as they are read.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/export", tag = "campaigns",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The campaign")),
    responses(
        (status = 200, description = "The messages as CSV (RFC 4180, CRLF line breaks, header first)", content_type = "text/csv", body = String),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such campaign in the caller's tenant", body = ErrorBody),
    ))]
async fn export_campaign(
    State(state): State<AppState>,
    caller: Caller,
    after: After,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    after.wait(&state.db, READS).await?;
    let (db, tenant, campaign) = (&state.db, caller.tenant_id, CampaignId::from_uuid(id));
    let rows = consistency::found_or_caught_up(&state, Campaign::TYPE, READS, move || async move {
        Ok(messages::export(db, tenant, campaign).await?)
    })
    .await?
    .ok_or_else(|| ApiError::not_found("campaign"))?;
    let header_line = format!("{}{}", messages::EXPORT_HEADER, messages::CSV_LINE_BREAK);
    let lines = rows.ready_chunks(EXPORT_CHUNK_ROWS).map(move |chunk| {
        let mut text = String::with_capacity(chunk.len() * 96);
        for row in chunk {
            match row {
                Ok(row) => {
                    text.push_str(&messages::csv_line(&row));
                    text.push_str(messages::CSV_LINE_BREAK);
                }
                Err(err) => {
                    // The status is sent already: cutting the body short is
                    // how the client learns the export is incomplete.
                    tracing::error!(campaign = %id, error.message = %err, "export failed midway");
                    return Err(err);
                }
            }
        }
        Ok(Bytes::from(text))
    });
    let body = futures::stream::once(async move { Ok(Bytes::from(header_line)) }).chain(lines);
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        header::HeaderValue::from_str(&format!("attachment; filename=\"campaign-{id}.csv\""))
            .map_err(ApiError::internal)?,
    );
    Ok((StatusCode::OK, headers, Body::from_stream(body)).into_response())
}
