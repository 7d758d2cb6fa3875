//! Every error in the API's shape, including those our handlers did not
//! write: axum answers a wrong method with an empty 405 and a body over
//! its limit (outside our extractors) with a plain-text 413. A 5xx also
//! names the request id, so a report can be matched to the logs.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;

use super::REQUEST_ID;
use crate::{ApiError, ErrorCode};

/// Most bytes of an error body read to reshape it.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Rewrites error answers that are not in the error shape.
pub async fn error_shape(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let response = next.run(request).await;
    let status = response.status();
    if !status.is_client_error() && !status.is_server_error() {
        return response;
    }
    let json = is_json(response.headers());
    if json && !status.is_server_error() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let body = to_bytes(body, MAX_ERROR_BODY).await.unwrap_or_default();
    let mut shaped: Value = if json {
        match serde_json::from_slice(&body) {
            Ok(value) => value,
            Err(_) => return Response::from_parts(parts, Body::from(body)),
        }
    } else {
        let text = String::from_utf8_lossy(&body);
        // The answer keeps its status (a 502 stays a 502, a 408 a 408): only
        // its body takes the shape, with the code nearest to that status.
        let error = ApiError::new(code_of(status), message_of(status, text.trim()));
        serde_json::to_value(error.into_body()).unwrap_or_default()
    };
    if let (true, Some(id), Some(Value::Object(details))) = (
        status.is_server_error(),
        request_id,
        shaped.pointer_mut("/error/details"),
    ) {
        details.insert("request_id".to_owned(), Value::String(id));
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    let body = serde_json::to_vec(&shaped).unwrap_or_default();
    Response::from_parts(parts, Body::from(body))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
}

/// The code of an answer in another shape: the one of that status, else
/// `internal` for any 5xx and `bad_request` for any other 4xx (whose
/// statuses, kept, are then not their codes' own).
fn code_of(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::BAD_REQUEST => ErrorCode::ValidationFailed,
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthenticated,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::CONFLICT => ErrorCode::Conflict,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        status if status.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::BadRequest,
    }
}

fn message_of(status: StatusCode, text: &str) -> String {
    match status {
        // Never a server's own words: they may name internals.
        status if status.is_server_error() => "internal error; it has been logged".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => "this endpoint does not take this method".to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is too large".to_owned(),
        _ if !text.is_empty() && text.len() <= 500 => text.to_owned(),
        status => status
            .canonical_reason()
            .unwrap_or("the request was refused")
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        Router::new()
            .route(
                "/text",
                get(|| async { (StatusCode::PAYLOAD_TOO_LARGE, "too big") }),
            )
            .route("/only-post", post(|| async { "ok" }))
            .route(
                "/slow",
                get(|| async { (StatusCode::REQUEST_TIMEOUT, "took too long") }),
            )
            .route(
                "/boom",
                get(|| async { ApiError::internal("disk on fire") }),
            )
            .route(
                "/panicky",
                get(|| async { (StatusCode::BAD_GATEWAY, "upstream 10.0.0.7 refused") }),
            )
            .route("/json", get(|| async { ApiError::not_found("campaign") }))
            .layer(axum::middleware::from_fn(error_shape))
    }

    async fn call(path: &str) -> (StatusCode, HeaderMap, Value) {
        let request = Request::builder()
            .uri(path)
            .header(REQUEST_ID, "req-7")
            .body(Body::empty())
            .unwrap();
        let response = app().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, headers, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn plain_errors_get_the_error_shape() {
        let (status, _, body) = call("/text").await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["error"]["code"], "payload_too_large");

        let (status, headers, body) = call("/only-post").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["error"]["code"], "method_not_allowed");
        assert_eq!(headers[header::ALLOW], "POST");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");

        // A status without a code of its own keeps its status.
        let (status, _, body) = call("/slow").await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(body["error"]["code"], "bad_request");
        assert_eq!(body["error"]["message"], "took too long");
    }

    #[tokio::test]
    async fn server_errors_name_the_request_and_nothing_internal() {
        let (status, _, body) = call("/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal");
        assert_eq!(body["error"]["details"]["request_id"], "req-7");
        assert!(!body.to_string().contains("disk on fire"));

        let (status, _, body) = call("/panicky").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(body["error"]["code"], "internal");
        assert_eq!(body["error"]["details"]["request_id"], "req-7");
        assert!(!body.to_string().contains("10.0.0.7"));
    }

    #[tokio::test]
    async fn client_errors_in_the_shape_are_left_alone() {
        let (status, _, body) = call("/json").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["message"], "campaign not found");
        assert!(body["error"]["details"].get("request_id").is_none());
    }
}
