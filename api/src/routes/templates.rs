//! WhatsApp message templates of Cloud API sessions ("official mode"): a
//! Cloud API number can start a conversation only with a template Meta
//! approved, so its templates are synced from Meta through the engine
//! running the session (`POST /api/v1/sessions/{id}/templates/sync`),
//! kept in `whatsapp_templates`, listed, and checked by every template
//! send (single sends and campaigns): the template exists for the session,
//! is approved, and gets as many parameters as its body has `{{n}}`.

use std::time::Duration;

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wablast_domain::session::{Driver, Session};
use wablast_domain::types::template::Template;
use wablast_domain::types::whatsapp_template::{
    CampaignTemplate, CampaignTemplateHeader, HeaderGiven, HeaderKind, SyncedTemplate,
    TemplateCategory, TemplateHeader, TemplateMessage, TemplateStatus, TemplateUseError,
};
use wablast_domain::types::{MediaId, SessionId, TenantId};
use wablast_projections::queries::whatsapp_templates;
use wablast_workflows::control::{TemplatesRequest, TemplatesResponse, Verb};
use wablast_workflows::credentials;

use super::sessions::{ask_engine_within, ready_session};
use crate::auth::Caller;
use crate::commands::tenant_key;
use crate::error::ErrorBody;
use crate::extract::{Json, Path};
use crate::{ApiError, AppState, ErrorCode};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sync_templates))
        .routes(routes!(list_templates))
}

/// How long a sync may take (Meta's pages of templates, one by one).
const SYNC_WITHIN: Duration = Duration::from_secs(30);

/// A template to send, with its body's parameters.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    /// The template's name, as synced (`order_update`).
    #[schema(example = "order_update")]
    pub name: String,
    /// Its language code, as synced (`id`, `en_US`).
    #[schema(example = "id")]
    pub language: String,
    /// The values of its body's `{{1}}`, `{{2}}`, ... in order: as many
    /// as it has. In a campaign each is rendered per recipient like the
    /// campaign's text (`{{name|Kak}}`, a mapped column, spintax).
    #[serde(default)]
    #[schema(example = json!(["{{name|Kak}}", "20%"]))]
    pub parameters: Vec<String>,
    /// The values of its text header's `{{1}}`, ... (a template whose
    /// header has them; `header_kind` `text` with `header_parameters`),
    /// rendered per recipient in a campaign like `parameters`.
    pub header_parameters: Option<Vec<String>>,
    /// The attachment of its image, video or document header (from
    /// `POST /api/v1/media`; a JPEG or PNG for an image, an MP4 or 3GPP for
    /// a video, any file for a document).
    pub header_media_id: Option<Uuid>,
}

/// A campaign's template (see [`TemplateBody`]).
pub type CampaignTemplateBody = TemplateBody;

impl TemplateBody {
    /// The header's values as given (400 when both kinds are).
    fn header(&self, field: &str) -> Result<Option<TemplateHeader>, ApiError> {
        match (&self.header_parameters, self.header_media_id) {
            (Some(_), Some(_)) => Err(ApiError::invalid_field(
                field,
                "a header is text or media: give header_parameters or header_media_id, not both",
            )),
            (Some(parameters), None) => Ok(Some(TemplateHeader::Text {
                parameters: parameters.clone(),
            })),
            (None, Some(media)) => Ok(Some(TemplateHeader::Media {
                media_id: MediaId::from_uuid(media),
            })),
            (None, None) => Ok(None),
        }
    }

    /// A single send's template (400 on a bad name, language or
    /// parameter).
    pub(crate) fn message(&self, field: &str) -> Result<TemplateMessage, ApiError> {
        TemplateMessage::new(
            &self.name,
            &self.language,
            self.parameters.clone(),
            self.header(field)?,
        )
        .map_err(|err| ApiError::invalid_field(field, err.to_string()))
    }

    /// A campaign's template, each parameter parsed as a text template
    /// (400 naming the parameter).
    pub(crate) fn parse(&self) -> Result<CampaignTemplate, ApiError> {
        let field = "whatsapp_template";
        // The shape first (name, language, blank parameters).
        self.message(field)?;
        let parse = |parameters: &[String], at: &str| {
            parameters
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    Template::parse(p).map_err(|err| {
                        ApiError::invalid_field(
                            &format!("{field}.{at}[{i}]"),
                            format!("{at} {}: {err}", i + 1),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let parameters = parse(&self.parameters, "parameters")?;
        let header = match self.header(field)? {
            None => None,
            Some(TemplateHeader::Text { parameters }) => Some(CampaignTemplateHeader::Text {
                parameters: parse(&parameters, "header_parameters")?,
            }),
            Some(TemplateHeader::Media { media_id }) => {
                Some(CampaignTemplateHeader::Media { media_id })
            }
        };
        CampaignTemplate::new(&self.name, &self.language, parameters, header)
            .map_err(|err| ApiError::invalid_field(field, err.to_string()))
    }
}

/// What to sync with.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncTemplates {
    /// The WhatsApp Business Account id (digits) the number belongs to,
    /// where Meta lists its templates. Required once for a session created
    /// without `driver_config.waba_id`; kept for later syncs.
    #[schema(example = "102290129340398")]
    pub waba_id: Option<String>,
}

/// A template as synced.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateView {
    /// Its name.
    #[schema(example = "order_update")]
    pub name: String,
    /// Its language.
    #[schema(example = "id")]
    pub language: String,
    /// Meta's review: only `APPROVED` templates can be sent.
    pub status: TemplateStatus,
    /// Its category.
    pub category: TemplateCategory,
    /// Its body, with `{{n}}` placeholders.
    pub body: Option<String>,
    /// How many parameters a send gives (its body's `{{n}}`).
    pub body_parameters: u32,
    /// Its header's format (`TEXT`, `IMAGE`, ...), if any.
    pub header_format: Option<String>,
    /// Its header's text.
    pub header_text: Option<String>,
    /// What its header is, and so what a send gives it: `text` (with
    /// `header_parameters` values when it has `{{n}}`), `image`, `video`
    /// or `document` (an attachment: `header_media_id`); `unsupported`
    /// (a location) cannot be sent from here.
    pub header_kind: Option<HeaderKind>,
    /// How many `header_parameters` a send gives (its text header's
    /// `{{n}}`).
    pub header_parameters: u32,
    /// Whether wablast can send it: approved, and a header it can fill.
    pub sendable: bool,
    /// When it was synced.
    pub synced_at: DateTime<Utc>,
}

impl TemplateView {
    fn of(template: SyncedTemplate, synced_at: DateTime<Utc>) -> Self {
        let sendable = template
            .check_use(template.body_parameters as usize, template.header_needed())
            .is_ok();
        Self {
            header_kind: template.header_kind(),
            header_parameters: template.header_parameters,
            name: template.name,
            language: template.language,
            status: template.status,
            category: template.category,
            body: template.body,
            body_parameters: template.body_parameters,
            header_format: template.header_format,
            header_text: template.header_text,
            sendable,
            synced_at,
        }
    }
}

/// A session's templates.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateList {
    /// Every template synced, by name and language.
    pub items: Vec<TemplateView>,
}

/// The session as its aggregate has it now; 404 when the tenant has none
/// of that id.
pub(crate) async fn existing_session(
    state: &AppState,
    tenant: TenantId,
    id: Uuid,
) -> Result<Session, ApiError> {
    let session = state
        .commands
        .sessions
        .load(&tenant_key(tenant, id))
        .await
        .map_err(ApiError::from)?
        .aggregate;
    if !session.exists() || session.is_deleted() {
        return Err(ApiError::not_found("session"));
    }
    Ok(session)
}

fn not_cloud(session: &Session) -> ApiError {
    ApiError::new(
        ErrorCode::TemplateNotSupported,
        format!(
            "WhatsApp templates are sent by Cloud API sessions only; this session's driver is {}",
            session.driver()
        ),
    )
    .with_details(json!({"driver": session.driver().as_str()}))
}

/// The tenant's Cloud API `session`'s approved template `name`/`language`
/// taking `parameters` body parameters and `header`, or 422 (with the
/// refusal's code: `template_not_found`, `template_not_approved`,
/// `template_parameter_mismatch`, `template_not_supported`); a header's
/// attachment must exist (404) and be of the header's type (422
/// `template_parameter_mismatch`).
pub(crate) async fn ensure_usable(
    state: &AppState,
    tenant: TenantId,
    session: Uuid,
    name: &str,
    language: &str,
    parameters: usize,
    header: (HeaderGiven, Option<MediaId>),
) -> Result<SyncedTemplate, ApiError> {
    let found = whatsapp_templates::find(
        &state.db,
        tenant,
        SessionId::from_uuid(session),
        name,
        language,
    )
    .await?;
    let details = json!({"session_id": session, "template": name, "language": language});
    let checked = match found {
        None => Err(TemplateUseError::NotFound {
            name: name.to_owned(),
            language: language.to_owned(),
        }),
        Some(template) => template.check_use(parameters, header.0).map(|()| template),
    };
    let template = checked.map_err(|err| {
        ApiError::new(ErrorCode::from(err.code()), err.to_string()).with_details(details.clone())
    })?;
    if let (Some(kind), Some(media)) = (template.header_kind(), header.1) {
        ensure_header_media(state, tenant, kind, media)
            .await
            .map_err(|err| err.with_details(details))?;
    }
    Ok(template)
}

/// A single send's header attachment, if its template has one: 404
/// unless the tenant has it; 422 `template_parameter_mismatch` unless the
/// session's synced template of that name has a header that takes it
/// (whether the template may be sent at all is the send's own check).
pub(crate) async fn ensure_header_media_of(
    state: &AppState,
    tenant: TenantId,
    session: Uuid,
    template: &TemplateMessage,
) -> Result<(), ApiError> {
    let Some(media) = template.header.as_ref().and_then(TemplateHeader::media_id) else {
        return Ok(());
    };
    let synced = whatsapp_templates::find(
        &state.db,
        tenant,
        SessionId::from_uuid(session),
        &template.name,
        &template.language,
    )
    .await?;
    // Without a media header to fit, only that the attachment exists.
    let kind = synced
        .and_then(|synced| synced.header_kind())
        .filter(|kind| kind.is_media())
        .unwrap_or(HeaderKind::Document);
    ensure_header_media(state, tenant, kind, media).await
}

/// 404 unless the tenant has `media`; 422 `template_parameter_mismatch`
/// unless a header of `kind` takes it.
pub(crate) async fn ensure_header_media(
    state: &AppState,
    tenant: TenantId,
    kind: HeaderKind,
    media: MediaId,
) -> Result<(), ApiError> {
    let Some(row) = crate::media::find(&state.db, *tenant.as_uuid(), *media.as_uuid()).await?
    else {
        return Err(ApiError::not_found("medium")
            .with_details(json!({"field": "header_media_id", "id": media})));
    };
    if kind.accepts(&row.mime_type) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::TemplateParameterMismatch,
            format!(
                "the template's header is {} and header_media_id is a {} file: upload one Meta takes for it",
                kind.as_str(),
                row.mime_type
            ),
        ))
    }
}

/// 422 `template_not_supported` unless the session is a Cloud API one.
pub(crate) fn ensure_cloud(session: &Session) -> Result<(), ApiError> {
    if session.driver() == Driver::Cloud {
        Ok(())
    } else {
        Err(not_cloud(session))
    }
}

/// Syncs a Cloud API session's message templates from Meta.
///
/// Asks Meta, through the engine running the session, for every template
/// of the number's WhatsApp Business Account, and replaces the session's
/// stored templates with them. The account's id comes from the session's
/// `driver_config.waba_id`, or from this request's `waba_id` (then kept):
/// without either the sync is refused (400) rather than done with nothing.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/templates/sync", tag = "sessions",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The Cloud API session")),
    request_body = SyncTemplates,
    responses(
        (status = 200, description = "The templates now stored", body = TemplateList),
        (status = 400, description = "`validation_failed`: a bad `waba_id`, or none given and none stored (`details.field` = `waba_id`)", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such session in the caller's tenant", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the session is not ready", body = ErrorBody),
        (status = 422, description = "`template_not_supported`: not a Cloud API session", body = ErrorBody),
        (status = 502, description = "`driver_failed`: Meta refused (a wrong `waba_id`, a token without the permission) or failed; `engine_error`", body = ErrorBody),
        (status = 503, description = "`engine_unavailable`: no engine runs the session", body = ErrorBody),
    ))]
async fn sync_templates(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<SyncTemplates>,
) -> Result<axum::Json<TemplateList>, ApiError> {
    let given = body
        .waba_id
        .as_deref()
        .map(|id| credentials::waba_id("waba_id", id))
        .transpose()
        .map_err(|err| ApiError::invalid_field(&err.field, err.message))?;
    let session = existing_session(&state, caller.tenant_id, id).await?;
    ensure_cloud(&session)?;
    let tenant = caller.tenant_id;
    let stored = credentials::public_configs(&state.db, tenant, &[id])
        .await?
        .remove(&id)
        .and_then(|config| config["waba_id"].as_str().map(str::to_owned));
    let waba_id = match (given, stored) {
        (Some(given), stored) => {
            if stored.as_deref() != Some(given.as_str()) {
                credentials::set_waba_id(&state.db, tenant, SessionId::from_uuid(id), &given)
                    .await?;
            }
            given
        }
        (None, Some(stored)) => stored,
        (None, None) => {
            return Err(ApiError::invalid_field(
                "waba_id",
                "this Cloud API session has no WhatsApp Business Account id: send it as `waba_id` \
                 in this request's body (it is kept for later syncs), or create the session with \
                 driver_config.waba_id",
            ));
        }
    };
    ready_session(&state, &caller, id, "templates are synced").await?;
    let answer: TemplatesResponse = ask_engine_within(
        &state,
        &caller,
        id,
        Verb::Templates,
        &TemplatesRequest { waba_id },
        SYNC_WITHIN,
    )
    .await?;
    let at = Utc::now();
    whatsapp_templates::replace(
        &state.db,
        tenant,
        SessionId::from_uuid(id),
        &answer.templates,
        at,
    )
    .await?;
    let mut items: Vec<TemplateView> = answer
        .templates
        .into_iter()
        .map(|t| TemplateView::of(t, at))
        .collect();
    items.sort_by(|a, b| (&a.name, &a.language).cmp(&(&b.name, &b.language)));
    items.dedup_by(|a, b| a.name == b.name && a.language == b.language);
    Ok(axum::Json(TemplateList { items }))
}

/// A session's WhatsApp templates, as last synced.
///
/// Only `APPROVED` ones can be sent (`sendable`); sync again after Meta's
/// review to see a new status.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/templates", tag = "sessions",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The session")),
    responses(
        (status = 200, description = "Its templates, by name and language (none before a sync)", body = TemplateList),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such session in the caller's tenant", body = ErrorBody),
    ))]
async fn list_templates(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<TemplateList>, ApiError> {
    existing_session(&state, caller.tenant_id, id).await?;
    let items = whatsapp_templates::list(&state.db, caller.tenant_id, SessionId::from_uuid(id))
        .await?
        .into_iter()
        .map(|(t, at)| TemplateView::of(t, at))
        .collect();
    Ok(axum::Json(TemplateList { items }))
}
