//! Contact lists: import from CSV or XLSX, create from JSON rows, add and
//! remove contacts, list, read, read contacts, delete. The work is in
//! [`crate::contacts`].

use std::path::PathBuf;

use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wablast_domain::types::phone::Region;

use crate::contacts::edit::{self, MoreContacts, NewList};
use crate::contacts::store::{self, ContactRow, ListRow, RowCursor, Source};
use crate::contacts::{self, Imported, Mapping, Upload};
use crate::error::ErrorBody;
use crate::extract::{Json, Path, Query};
use crate::list::{List, ListParams};
use crate::{ApiError, AppState, Caller};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    // The upload limit is enforced while the file streams in
    // (`max_upload_bytes`), so axum's default body limit is lifted here.
    let import = OpenApiRouter::new()
        .routes(routes!(import_list))
        .layer(DefaultBodyLimit::disable());
    // Up to 10,000 contacts in JSON: more than the API's default limit.
    let rows = OpenApiRouter::new()
        .routes(routes!(create_list))
        .routes(routes!(add_contacts))
        .layer(DefaultBodyLimit::max(edit::MAX_BODY_BYTES));
    OpenApiRouter::new()
        .routes(routes!(list_lists))
        .routes(routes!(get_list, delete_list))
        .routes(routes!(list_contacts))
        .routes(routes!(delete_contact))
        .merge(import)
        .merge(rows)
}

/// The longest text field (`name`, `mapping`, `default_region`) accepted.
const MAX_TEXT_FIELD: usize = 64 * 1024;

/// The longest file name kept, in characters.
const MAX_FILENAME_CHARS: usize = 255;

/// The longest list name, in characters.
const MAX_NAME_CHARS: usize = 200;

/// How much more than the limit is read (and discarded) from an oversized
/// upload before answering 413, so that the client, still sending, gets
/// the answer rather than a reset connection.
const DRAIN_FACTOR: usize = 4;

/// The import form (`multipart/form-data`).
#[derive(ToSchema)]
#[schema(as = ContactListImportForm)]
#[allow(dead_code)] // documents the form; the handler reads it field by field
struct ImportForm {
    /// The file: `.csv` (UTF-8; `,` `;` or tab separated) or `.xlsx` (first
    /// sheet). Its first row names the columns.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// The list's name (default: the file's name without extension).
    name: Option<String>,
    /// JSON `{"phone": "<column>", "name": "<column>", "consent": "<column>", "variables": ["<column>", ...]}`;
    /// every key optional (defaults: the columns named phone, name, consent;
    /// variables: every other column whose name is a template variable).
    #[schema(
        example = r#"{"phone": "No HP", "name": "Nama", "consent": "Setuju", "variables": ["kota"]}"#
    )]
    mapping: Option<String>,
    /// ISO 3166-1 alpha-2 region in which numbers without a country code are
    /// read (default `ID`).
    #[schema(example = "ID")]
    default_region: Option<String>,
}

/// Removes the uploaded file when the request is done.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn multipart_error(err: MultipartError) -> ApiError {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large("the upload is too large")
    } else {
        ApiError::validation(format!("malformed multipart body: {}", err.body_text()))
    }
}

async fn text_field(mut field: Field<'_>, name: &str) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if bytes.len() + chunk.len() > MAX_TEXT_FIELD {
            return Err(ApiError::invalid_field(
                name,
                format!("{name} may have at most {MAX_TEXT_FIELD} bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| ApiError::invalid_field(name, format!("{name} must be UTF-8 text")))?;
    if text.contains('\0') {
        return Err(crate::extract::nul_refused(name));
    }
    Ok(text)
}

/// Reads what is left of an oversized request, up to a bound.
async fn drain(mut field: Field<'_>, mut budget: usize) -> usize {
    while let Ok(Some(chunk)) = field.chunk().await {
        budget = budget.saturating_sub(chunk.len());
        if budget == 0 {
            break;
        }
    }
    budget
}

/// Writes the file field to a temporary file, at most `limit` bytes;
/// `Ok(None)` when it was larger.
async fn save_file(
    field: &mut Field<'_>,
    path: &std::path::Path,
    limit: usize,
) -> Result<Option<usize>, ApiError> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(ApiError::internal)?;
    let mut size = 0usize;
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        size += chunk.len();
        if size > limit {
            return Ok(None);
        }
        file.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    file.flush().await.map_err(ApiError::internal)?;
    Ok(Some(size))
}

/// Imports a CSV or XLSX file as a new contact list.
///
/// Numbers are normalised to E.164 (national numbers read in
/// `default_region`), only valid mobile numbers are kept, later duplicates
/// of a number are rejected naming the first row, and rows without consent
/// are rejected. The answer lists the first 1,000 rejected rows with a
/// stable `reason` (`empty_phone`, `invalid_phone`, `not_mobile`,
/// `duplicate`, `no_consent`, `invalid_consent`, `formula`,
/// `cell_too_long`); `rejected_count` counts them all. A file that cannot
/// be imported at all (not CSV/XLSX by content, not UTF-8, empty, no data
/// rows, no phone or consent column, a mapping naming a missing column)
/// is refused with 400 and creates nothing.
#[utoipa::path(post, path = "/api/v1/contact-lists/import", tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    request_body(content = ImportForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Imported, with the report of rejected rows", body = Imported),
        (status = 400, description = "`unsupported_file` (not a readable CSV/XLSX) or `validation_failed` (mapping, region, name, no data rows)", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 413, description = "The file is larger than the upload limit", body = ErrorBody),
    ))]
async fn import_list(
    State(state): State<AppState>,
    caller: Caller,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, axum::Json<Imported>), ApiError> {
    let mut multipart = multipart.map_err(|rejection| {
        ApiError::validation(format!(
            "send the file as multipart/form-data: {}",
            rejection.body_text()
        ))
    })?;
    let limit = state.config.max_upload_bytes;
    let mut file: Option<(TempFile, Option<String>)> = None;
    let mut name = None;
    let mut mapping = None;
    let mut region = None;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let field_name = field.name().unwrap_or_default().to_owned();
        match field_name.as_str() {
            "file" => {
                if file.is_some() {
                    return Err(ApiError::invalid_field("file", "send one file"));
                }
                let filename = field
                    .file_name()
                    .map(|name| name.chars().take(MAX_FILENAME_CHARS).collect::<String>());
                let path = std::env::temp_dir()
                    .join(format!("wablast-import-{}", Uuid::now_v7().simple()));
                let temp = TempFile(path);
                if save_file(&mut field, &temp.0, limit).await?.is_none() {
                    let mut budget = drain(field, limit * DRAIN_FACTOR).await;
                    while budget > 0 {
                        match multipart.next_field().await {
                            Ok(Some(field)) => budget = drain(field, budget).await,
                            _ => break,
                        }
                    }
                    return Err(ApiError::too_large(format!(
                        "the file is larger than {} bytes",
                        limit
                    )));
                }
                file = Some((temp, filename));
            }
            "name" => name = Some(text_field(field, "name").await?),
            "mapping" => mapping = Some(text_field(field, "mapping").await?),
            "default_region" => region = Some(text_field(field, "default_region").await?),
            other => {
                return Err(ApiError::validation(format!(
                    "unknown form field {other:?}: expected file, name, mapping, default_region"
                ))
                .with_details(serde_json::json!({ "field": other })));
            }
        }
    }
    let Some((temp, filename)) = file else {
        return Err(ApiError::invalid_field(
            "file",
            "attach the contact file as the `file` field",
        ));
    };
    let region = default_region(region.as_deref())?;
    let mapping: Mapping = match mapping.as_deref().map(str::trim) {
        None | Some("") => Mapping::default(),
        Some(json) => serde_json::from_str(json).map_err(|err| {
            ApiError::invalid_field("mapping", format!("mapping is not valid: {err}"))
        })?,
    };
    let name = list_name(name, filename.as_deref())?;
    let upload = Upload {
        path: temp.0.clone(),
        filename,
        name,
        mapping,
        region,
    };
    let imported = contacts::import(&state.db, caller.tenant_id, upload).await?;
    drop(temp);
    Ok((StatusCode::CREATED, axum::Json(imported)))
}

/// The region national numbers are read in: as given, else `ID`.
fn default_region(code: Option<&str>) -> Result<Region, ApiError> {
    match code.map(str::trim) {
        None | Some("") => Ok(Region::ID),
        Some(code) => Region::parse(code).map_err(|err| {
            ApiError::invalid_field("default_region", format!("default_region: {err}"))
        }),
    }
}

/// Creates a contact list from JSON rows, without a file.
///
/// Each contact is checked as a row of an imported file is: its number
/// normalised to E.164 (national numbers read in `default_region`), only
/// valid mobile numbers kept, later duplicates of a number rejected
/// naming the first row, contacts without consent rejected, formulas and
/// values over 1,000 characters refused. The answer is an import's: the
/// first 1,000 rejected rows (`row` 1 = the first contact of the request)
/// with a stable `reason`, and `rejected_count`. The list's `columns` are
/// the variables its contacts name, in the order they first appear. A body
/// that is not this shape, with more than 10,000 contacts, or naming a
/// variable no template can use is refused with 400 and creates nothing.
#[utoipa::path(post, path = "/api/v1/contact-lists", tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    request_body = NewList,
    responses(
        (status = 201, description = "Created, with the report of rejected rows", body = Imported),
        (status = 400, description = "`validation_failed`: not the documented shape (the field is named), more than 10,000 contacts, a variable name no template can use, a bad name or region", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 413, description = "The body is over 16 MiB", body = ErrorBody),
    ))]
async fn create_list(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewList>,
) -> Result<(StatusCode, axum::Json<Imported>), ApiError> {
    let region = default_region(body.default_region.as_deref())?;
    let name = list_name(Some(body.name), None)?;
    let created = edit::create(&state.db, caller.tenant_id, name, region, body.contacts.0).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Adds contacts to a list.
///
/// The contacts are checked as `POST /api/v1/contact-lists` checks them;
/// a number the list already has is rejected as `already_in_list`
/// (`existing_row` names its contact), never added twice. The answer
/// reports this request's rows (`row` 1 = its first contact); `columns` is
/// the list's columns now: a variable the list did not have is added to
/// them. Added contacts come after the list's others: a campaign already
/// started on the list keeps its recipients.
#[utoipa::path(post, path = "/api/v1/contact-lists/{id}/contacts", tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The list")),
    request_body = MoreContacts,
    responses(
        (status = 200, description = "Added, with the report of rejected rows", body = Imported),
        (status = 400, description = "`validation_failed`: not the documented shape (the field is named), more than 10,000 contacts, a variable name no template can use, a bad region", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such list (or another tenant's, or deleted)", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the list was given as many rows as a list can number (2^31 - 1)", body = ErrorBody),
        (status = 413, description = "The body is over 16 MiB", body = ErrorBody),
    ))]
async fn add_contacts(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<MoreContacts>,
) -> Result<axum::Json<Imported>, ApiError> {
    let region = default_region(body.default_region.as_deref())?;
    let added = edit::add(&state.db, caller.tenant_id, id, region, body.contacts.0).await?;
    Ok(axum::Json(added))
}

/// Removes a contact from a list.
///
/// Campaigns started on the list before keep the message they queued for
/// it; campaigns started later do not send to it.
#[utoipa::path(delete, path = "/api/v1/contact-lists/{id}/contacts/{contact_id}", tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    params(
        ("id" = Uuid, Path, description = "The list"),
        ("contact_id" = i32, Path, description = "The contact: its `row` in the list"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such list (or another tenant's, or deleted), or no such contact in it", body = ErrorBody),
    ))]
async fn delete_contact(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, contact_id)): Path<(Uuid, i32)>,
) -> Result<StatusCode, ApiError> {
    edit::remove(&state.db, caller.tenant_id, id, contact_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The list's name: as given, else the file's name without extension.
pub(crate) fn list_name(name: Option<String>, filename: Option<&str>) -> Result<String, ApiError> {
    let from_file = || {
        filename
            .and_then(|f| std::path::Path::new(f).file_stem())
            .map(|stem| stem.to_string_lossy().trim().to_owned())
    };
    let name = name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .or_else(from_file)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::invalid_field("name", "name the list"))?;
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::invalid_field(
            "name",
            format!("name may have at most {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(name)
}

/// A contact list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactListView {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Template variables its contacts have besides `name` and `phone`.
    pub columns: Vec<String>,
    /// Rows it was given: the imported file's data rows, and the
    /// contacts of every request that added to it.
    pub total_rows: i32,
    /// Contacts in the list.
    pub accepted: i32,
    /// Rows that were rejected, of all it was given.
    pub rejected: i32,
    /// The imported file's name (none for a list made without a file).
    pub source_filename: Option<String>,
    /// Where it came from: `csv` or `xlsx` (a file), `json` (without a
    /// file).
    pub source_format: Source,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl From<ListRow> for ContactListView {
    fn from(row: ListRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            columns: row.columns,
            total_rows: row.total_rows,
            accepted: row.accepted,
            rejected: row.rejected,
            source_filename: row.source_filename,
            source_format: row.source_format,
            created_at: row.created_at,
        }
    }
}

/// A contact of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactView {
    /// E.164.
    #[schema(example = "+6281234567890")]
    pub phone: String,
    /// Its name, if the file had one.
    pub name: Option<String>,
    /// Its values of the list's columns.
    #[schema(value_type = Object)]
    pub variables: serde_json::Value,
    /// Its id in the list: the row it came from, counting every row the
    /// list was given (1 = the imported file's first data row, or the
    /// first contact the list was created with); never reused.
    pub row: i32,
    /// Whether its number is on WhatsApp, as the tenant's latest check
    /// found (a list check, or a session's number check); null when never
    /// checked.
    pub on_whatsapp: Option<bool>,
    /// The chat id WhatsApp knows it by, when it is on WhatsApp.
    #[schema(example = "6281234567890@c.us")]
    pub whatsapp_chat_id: Option<String>,
    /// When that check was made.
    pub whatsapp_checked_at: Option<DateTime<Utc>>,
}

impl From<ContactRow> for ContactView {
    fn from(row: ContactRow) -> Self {
        Self {
            phone: row.phone,
            name: row.name,
            variables: row.variables,
            row: row.row_number,
            on_whatsapp: row.on_whatsapp,
            whatsapp_chat_id: row.whatsapp_chat_id,
            whatsapp_checked_at: row.whatsapp_checked_at,
        }
    }
}

/// The caller's contact lists, oldest first.
#[utoipa::path(get, path = "/api/v1/contact-lists", tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "A page of lists", body = List<ContactListView>),
        (status = 400, description = "Bad limit or cursor", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn list_lists(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<List<ContactListView>>, ApiError> {
    let page = params.page::<Uuid>()?;
    let paged = store::lists(&state.db, caller.tenant_id, &page).await?;
    Ok(axum::Json(List::from_paged(paged, ContactListView::from)))
}

/// One contact list.
#[utoipa::path(get, path = "/api/v1/contact-lists/{id}", tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The list")),
    responses(
        (status = 200, description = "The list", body = ContactListView),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such list (or another tenant's, or deleted)", body = ErrorBody),
    ))]
async fn get_list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<ContactListView>, ApiError> {
    store::list(&state.db, caller.tenant_id, id)
        .await?
        .map(|row| axum::Json(row.into()))
        .ok_or_else(|| ApiError::not_found("contact list"))
}

/// The contacts of a list, by row.
#[utoipa::path(get, path = "/api/v1/contact-lists/{id}/contacts", tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The list"), ListParams),
    responses(
        (status = 200, description = "A page of contacts", body = List<ContactView>),
        (status = 400, description = "Bad limit or cursor", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such list (or another tenant's, or deleted)", body = ErrorBody),
    ))]
async fn list_contacts(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<List<ContactView>>, ApiError> {
    let page = params.page::<RowCursor>()?;
    if store::list(&state.db, caller.tenant_id, id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("contact list"));
    }
    let paged = store::contacts(&state.db, caller.tenant_id, id, &page).await?;
    Ok(axum::Json(List::from_paged(paged, ContactView::from)))
}

/// Deletes a contact list. Campaigns already sent to it keep their
/// recipients.
#[utoipa::path(delete, path = "/api/v1/contact-lists/{id}", tag = "contacts",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The list")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such list (or another tenant's, or already deleted)", body = ErrorBody),
    ))]
async fn delete_list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    if store::delete(&state.db, caller.tenant_id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("contact list"))
    }
}
