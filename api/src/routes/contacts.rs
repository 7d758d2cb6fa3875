//! Contact lists: import from CSV or XLSX, list, read, read contacts,
//! delete. The work is in [`crate::contacts`].

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

use crate::contacts::store::{self, ContactRow, ListRow, RowCursor, Source};
use crate::contacts::{self, Imported, Mapping, Upload};
use crate::error::ErrorBody;
use crate::extract::{Path, Query};
use crate::list::{List, ListParams};
use crate::{ApiError, AppState, Caller};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    // The upload limit is enforced while the file streams in
    // (`max_upload_bytes`), so axum's default body limit is lifted here.
    let import = OpenApiRouter::new()
        .routes(routes!(import_list))
        .layer(DefaultBodyLimit::disable());
    OpenApiRouter::new()
        .routes(routes!(list_lists))
        .routes(routes!(get_list, delete_list))
        .routes(routes!(list_contacts))
        .merge(import)
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
    let region = match region.as_deref().map(str::trim) {
        None | Some("") => Region::ID,
        Some(code) => Region::parse(code).map_err(|err| {
            ApiError::invalid_field("default_region", format!("default_region: {err}"))
        })?,
    };
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

/// The list's name: as given, else the file's name without extension.
fn list_name(name: Option<String>, filename: Option<&str>) -> Result<String, ApiError> {
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
    /// Data rows in the imported file.
    pub total_rows: i32,
    /// Contacts in the list.
    pub accepted: i32,
    /// Rows of the file that were rejected.
    pub rejected: i32,
    /// The imported file's name.
    pub source_filename: Option<String>,
    /// `csv` or `xlsx`.
    pub source_format: Source,
    /// When it was imported.
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
    /// The data row of the file it came from (1 = the row after the header).
    pub row: i32,
}

impl From<ContactRow> for ContactView {
    fn from(row: ContactRow) -> Self {
        Self {
            phone: row.phone,
            name: row.name,
            variables: row.variables,
            row: row.row_number,
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
