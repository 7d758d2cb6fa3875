//! Extractors that answer bad input in the API's error shape: a malformed
//! JSON body, a wrong field type, a bad query string, a path id that is not
//! a UUID, or a string holding a NUL character. Handlers use these instead
//! of axum's own.
//!
//! NUL (`\u0000`) is valid JSON and valid in a query string, but PostgreSQL
//! refuses it in text: every string of a JSON body (keys included) and of a
//! query string is checked here, once, so that no handler hands one to the
//! database (which would be a 500).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::{ApiError, ErrorCode};

/// A JSON body; a body that is not JSON, or not the expected shape, is a
/// 400 `validation_failed` naming what was wrong, as is a string holding a
/// NUL character (naming the field). A body whose content type is not JSON
/// is a 415 `unsupported_media_type`; one over the body limit a 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !has_json_content_type(req.headers()) {
            return Err(unsupported_media_type());
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(bytes_rejection)?;
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes).map_err(json_rejection)?;
        refuse_nul_in_json(&bytes)?;
        Ok(Self(value))
    }
}

/// Whether the request says its body is JSON: `application/json` or
/// `application/<anything>+json`, parameters (`; charset=utf-8`) aside, as
/// axum's own `Json` decides.
fn has_json_content_type(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some(("application", subtype)) => subtype == "json" || subtype.ends_with("+json"),
        _ => false,
    }
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        ErrorCode::UnsupportedMediaType,
        "send the body as JSON with `Content-Type: application/json`",
    )
}

fn bytes_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large("the request body is too large")
    } else {
        ApiError::validation(rejection.body_text())
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => unsupported_media_type(),
        JsonRejection::JsonDataError(err) => ApiError::validation(err.body_text()),
        JsonRejection::JsonSyntaxError(err) => ApiError::validation(err.body_text()),
        JsonRejection::BytesRejection(err) => bytes_rejection(err),
        other => ApiError::validation(other.body_text()),
    }
}

/// 400 `validation_failed` naming the first string of a JSON body (or key
/// of an object) that holds a NUL character. In JSON text a NUL can only be
/// written escaped, `\u0000`: a body without that sequence is not parsed
/// again.
fn refuse_nul_in_json(body: &[u8]) -> Result<(), ApiError> {
    if !body.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Ok(());
    };
    match nul_in(&value, String::new()) {
        Some(field) => Err(nul_refused(&field)),
        None => Ok(()),
    }
}

/// The path (`contacts[2].name`) of the first string under `value` holding
/// a NUL character; `prefix` is the path of `value`.
fn nul_in(value: &Value, prefix: String) -> Option<String> {
    match value {
        Value::String(text) if text.contains('\0') => Some(prefix),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_in(item, format!("{prefix}[{i}]"))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            if key.contains('\0') {
                Some(path)
            } else {
                nul_in(item, path)
            }
        }),
        _ => None,
    }
}

/// 400 `validation_failed`: `field` holds a NUL character.
pub fn nul_refused(field: &str) -> ApiError {
    let shown = if field.is_empty() { "the body" } else { field };
    ApiError::invalid_field(
        &field.replace('\0', "\\u0000"),
        format!(
            "{} must not contain NUL characters (\\u0000)",
            shown.replace('\0', "\\u0000")
        ),
    )
}

/// Path parameters; a malformed id answers 404 (there is no such resource),
/// any other bad parameter 400.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(PathRejection::FailedToDeserializePathParams(err)) => {
                Err(ApiError::not_found("resource")
                    .with_details(json!({"reason": err.body_text()})))
            }
            Err(other) => Err(ApiError::internal(other.body_text())),
        }
    }
}

/// A query string; a bad one is a 400 `validation_failed`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state)
                .await
                .map_err(|rejection: QueryRejection| ApiError::validation(rejection.body_text()))?;
        // The same pairs again, as text, to look for NUL characters.
        if let Ok(axum::extract::Query(pairs)) =
            axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            && let Some((name, _)) = pairs
                .iter()
                .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        {
            return Err(nul_refused(name));
        }
        Ok(Self(value))
    }
}
