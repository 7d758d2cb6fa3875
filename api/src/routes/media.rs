//! Media: attachments uploaded once and referred to by id (campaigns,
//! auto-replies). The type is decided from the content; the bytes go to a
//! [`MediaStorage`], the metadata to the `media` table.

use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::ErrorBody;
use crate::extract::Path;
use crate::media::{self, LocalStorage, MAX_SIZE, MediaRow, MediaStorage};
use crate::{ApiError, AppState, Caller, ErrorCode};

/// Room for the multipart framing around a file of [`MAX_SIZE`]: a body
/// over this is refused while it is read.
const FRAMING: usize = 64 * 1024;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload_media))
        .layer(DefaultBodyLimit::max(MAX_SIZE + FRAMING))
        .routes(routes!(get_media))
        .routes(routes!(get_media_content))
}

fn storage(state: &AppState) -> LocalStorage {
    LocalStorage::in_data_dir(&state.config.data_dir)
}

/// An upload: one file in the field `file`.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the form; the handler reads it as a stream
pub struct MediaUpload {
    /// PNG, JPEG, PDF, DOC, DOCX, XLS, XLSX or MP4; at most 10 MiB. The type is
    /// judged from the content; the name's extension, if any, must agree.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// A file's bytes.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // documents the answer; the handler streams it
pub struct FileBytes(Vec<u8>);

/// An uploaded medium.
#[derive(Debug, Serialize, ToSchema)]
pub struct MediaView {
    /// Its id (use as `media_id`).
    pub id: Uuid,
    /// Detected from the content.
    #[schema(example = "image/png")]
    pub mime_type: String,
    /// Bytes.
    pub size: i64,
    /// The uploaded name, without directories or control characters.
    #[schema(example = "promo.png")]
    pub filename: String,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// When it was uploaded.
    pub created_at: DateTime<Utc>,
}

impl From<MediaRow> for MediaView {
    fn from(row: MediaRow) -> Self {
        Self {
            id: row.id,
            mime_type: row.mime_type,
            size: row.size,
            filename: row.filename,
            sha256: row.sha256,
            created_at: row.created_at,
        }
    }
}

fn multipart_error(err: axum::extract::multipart::MultipartError) -> ApiError {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else {
        ApiError::validation(format!("unreadable multipart body: {}", err.body_text()))
    }
}

fn too_large() -> ApiError {
    ApiError::too_large(format!(
        "a file may have at most {} bytes (10 MiB)",
        MAX_SIZE
    ))
    .with_details(json!({"field": "file", "max_bytes": MAX_SIZE}))
}

/// Uploads a file.
#[utoipa::path(post, path = "/api/v1/media", tag = "media",
    security(("bearer" = []), ("api_key" = [])),
    request_body(content = MediaUpload, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Stored", body = MediaView),
        (status = 400, description = "No `file` field, an empty file, or a type we do not accept (`unsupported_file`)", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 413, description = "Larger than 10 MiB", body = ErrorBody),
    ))]
async fn upload_media(
    State(state): State<AppState>,
    caller: Caller,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let mut multipart =
        multipart.map_err(|_| ApiError::validation("send the file as multipart/form-data"))?;
    let mut upload = None;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.name() != Some("file") {
            continue;
        }
        if upload.is_some() {
            return Err(ApiError::invalid_field("file", "send one file per upload"));
        }
        let name = media::display_name(field.file_name().unwrap_or_default());
        let mut content = BytesMut::new();
        // Counted as it arrives: more than the limit is never held.
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            if content.len() + chunk.len() > MAX_SIZE {
                return Err(too_large());
            }
            content.extend_from_slice(&chunk);
        }
        upload = Some((name, content.freeze()));
    }
    let Some((name, content)) = upload else {
        return Err(ApiError::invalid_field(
            "file",
            "send the file in a multipart field named `file`",
        ));
    };
    if content.is_empty() {
        return Err(ApiError::invalid_field("file", "the file is empty"));
    }
    let kind = media::classify(&name, &content).map_err(|err| {
        ApiError::new(ErrorCode::UnsupportedFile, err.to_string())
            .with_details(json!({"field": "file"}))
    })?;
    let filename = if name.is_empty() {
        format!("upload.{}", kind.extensions()[0])
    } else {
        name
    };
    let id = Uuid::now_v7();
    let size = i64::try_from(content.len()).map_err(ApiError::internal)?;
    let sha256 = hex::encode(Sha256::digest(&content));
    let storage = storage(&state);
    let storage_key = storage.put(id, content).await.map_err(ApiError::internal)?;
    let row = MediaRow {
        id,
        tenant_id: *caller.tenant_id.as_uuid(),
        filename,
        mime_type: kind.mime_type().to_owned(),
        size,
        sha256,
        storage_key,
        // As PostgreSQL keeps it (microseconds): the answer and later reads agree.
        created_at: Utc::now().trunc_subsecs(6),
    };
    if let Err(err) = media::insert(&state.db, &row).await {
        // Nothing refers to the bytes: do not keep them.
        let _ = storage.delete(&row.storage_key).await;
        return Err(err.into());
    }
    tracing::info!(media = %row.id, mime_type = %row.mime_type, size = row.size, "media stored");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/v1/media/{}", row.id))],
        axum::Json(MediaView::from(row)),
    ))
}

/// A medium's metadata.
#[utoipa::path(get, path = "/api/v1/media/{id}", tag = "media",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The medium's id")),
    responses(
        (status = 200, description = "The medium", body = MediaView),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such medium in this tenant", body = ErrorBody),
    ))]
async fn get_media(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<MediaView>, ApiError> {
    let row = media::find(&state.db, *caller.tenant_id.as_uuid(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("medium"))?;
    Ok(axum::Json(row.into()))
}

/// A medium's bytes, with its content type.
#[utoipa::path(get, path = "/api/v1/media/{id}/content", tag = "media",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The medium's id")),
    responses(
        (status = 200, description = "The file, as an attachment, in its own type (one of those an upload accepts)", content(
            (FileBytes = "image/png"),
            (FileBytes = "image/jpeg"),
            (FileBytes = "application/pdf"),
            (FileBytes = "application/msword"),
            (FileBytes = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
            (FileBytes = "application/vnd.ms-excel"),
            (FileBytes = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            (FileBytes = "video/mp4"),
        )),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such medium in this tenant", body = ErrorBody),
    ))]
async fn get_media_content(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let row = media::find(&state.db, *caller.tenant_id.as_uuid(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("medium"))?;
    let bytes = storage(&state)
        .get(&row.storage_key)
        .await
        .map_err(|err| ApiError::internal(format!("media {} unreadable: {err}", row.id)))?;
    Ok((
        [
            (header::CONTENT_TYPE, row.mime_type.clone()),
            (header::CONTENT_LENGTH, row.size.to_string()),
            (header::CONTENT_DISPOSITION, attachment(&row.filename)),
        ],
        Body::from_stream(bytes),
    )
        .into_response())
}

/// `Content-Disposition: attachment` naming the file: an ASCII fallback and
/// the UTF-8 name (RFC 6266, RFC 8187).
fn attachment(filename: &str) -> String {
    let fallback: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for byte in filename.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_content_is_documented_in_every_type_an_upload_accepts() {
        let doc = serde_json::to_value(crate::openapi()).unwrap();
        let mut documented: Vec<&str> =
            doc["paths"]["/api/v1/media/{id}/content"]["get"]["responses"]["200"]["content"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
        let mut accepted: Vec<&str> = crate::media::MediaType::ALL
            .iter()
            .map(|kind| kind.mime_type())
            .collect();
        documented.sort_unstable();
        accepted.sort_unstable();
        assert_eq!(documented, accepted);
    }

    #[test]
    fn attachment_names_are_quoted_safely() {
        assert_eq!(
            super::attachment("promo 1.png"),
            "attachment; filename=\"promo 1.png\"; filename*=UTF-8''promo%201.png"
        );
        assert_eq!(
            super::attachment("brosur é.pdf"),
            "attachment; filename=\"brosur _.pdf\"; filename*=UTF-8''brosur%20%C3%A9.pdf"
        );
    }
}
