//! What the layers around the handlers answer, written into the OpenAPI
//! document: each operation lists every status it can answer, not only
//! those its handler writes. A status the route documents itself keeps the
//! route's description (more precise), except 409 and 422 of an idempotent
//! POST, whose description gains the `Idempotency-Key` meaning.
//!
//! | status | code | operations |
//! |--------|------|------------|
//! | 400 | `validation_failed`: a bad body, field, query or `Idempotency-Key` | with a body, query parameters or `Idempotency-Key` |
//! | 401 | `unauthenticated` | with a security requirement |
//! | 403 | `tenant_suspended`: the platform operator suspended the caller's tenant | with a security requirement |
//! | 503 | `unavailable`: access rights still loading after a start | with a security requirement |
//! | 404 | `not_found` (a malformed id too) | with path parameters |
//! | 409 | `conflict`: the same `Idempotency-Key` is still running | idempotent POSTs |
//! | 413 | `payload_too_large` | with a body, and idempotent POSTs (the guard reads the body) |
//! | 415 | `unsupported_media_type` | with a JSON body |
//! | 422 | `idempotency_key_reused` | idempotent POSTs |
//! | 429 | `rate_limited`, with `Retry-After` | every rate-limited path |
//! | 500 | `internal` | every operation |
//!
//! Idempotent POSTs ([`super::idempotency`]) also get the optional
//! `Idempotency-Key` header parameter.

use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Content, Header, OpenApi, Ref, RefOr, Required};

use super::{idempotency, rate_limit};

/// Adds the layers' statuses (and the `Idempotency-Key` parameter) to every
/// operation of `doc`.
pub fn document(doc: &mut OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, operation) in operations(item) {
            document_operation(path, method, operation);
        }
    }
}

fn document_operation(path: &str, method: &str, operation: &mut Operation) {
    let body = operation.request_body.as_ref().map(|body| match body {
        RefOr::T(body) => body.content.keys().cloned().collect::<Vec<_>>(),
        RefOr::Ref(_) => Vec::new(),
    });
    let json_body = body
        .as_ref()
        .is_some_and(|types| types.iter().any(|t| t.starts_with("application/json")));
    let parameters = |place: ParameterIn| {
        operation
            .parameters
            .iter()
            .flatten()
            .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == place))
    };
    let query = parameters(ParameterIn::Query);
    let in_path = parameters(ParameterIn::Path);
    let secured = operation
        .security
        .as_ref()
        .is_some_and(|requirements| !requirements.is_empty());
    let idempotent = method == "post"
        && idempotency::applies_to(path)
        && (secured || idempotency::ANONYMOUS.contains(&path));

    if idempotent {
        add_idempotency_key(operation);
    }
    let responses = &mut operation.responses.responses;
    let mut add = |status: &str, response: Response| {
        responses
            .entry(status.to_owned())
            .or_insert(RefOr::T(response));
    };
    if body.is_some() || query || idempotent {
        add(
            "400",
            error(
                "`validation_failed`: a malformed body, a bad field or query parameter (one holding a NUL character too), or a bad `Idempotency-Key`",
            ),
        );
    }
    if secured {
        add(
            "401",
            error("`unauthenticated`: no or bad credentials (a member taken out of the team too)"),
        );
        add(
            "403",
            error(
                "`tenant_suspended`: the platform operator suspended the caller's tenant (`details.reason`)",
            ),
        );
        add(
            "503",
            error(
                "`unavailable`: this process is still loading who may act (just after it started); try again",
            ),
        );
    }
    if in_path {
        add(
            "404",
            error("`not_found`: no such resource in this tenant (a malformed id too)"),
        );
    }
    if body.is_some() || idempotent {
        add(
            "413",
            error("`payload_too_large`: the request body is over the limit"),
        );
    }
    if json_body {
        add(
            "415",
            error(
                "`unsupported_media_type`: the body is not sent as `Content-Type: application/json`",
            ),
        );
    }
    if rate_limit::applies_to(path) {
        add(
            "429",
            ResponseBuilder::from(error(
                "`rate_limited`: over the credential's or the client address's budget; try again after `Retry-After` seconds",
            ))
            .header(
                "Retry-After",
                Header::new(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1))),
            )
            .build(),
        );
    }
    add(
        "500",
        error(
            "`internal`: our fault. Nothing internal is answered; `details.request_id` names the request in our logs",
        ),
    );
    if idempotent {
        for (status, meaning) in [
            (
                "409",
                "`conflict`: a request with this `Idempotency-Key` is still running; try again",
            ),
            (
                "422",
                "`idempotency_key_reused`: this `Idempotency-Key` was used for another request",
            ),
        ] {
            match responses.get_mut(status) {
                Some(RefOr::T(response)) if !response.description.contains("Idempotency-Key") => {
                    response.description = format!("{}; or {meaning}", response.description);
                }
                Some(_) => {}
                None => {
                    responses.insert(status.to_owned(), RefOr::T(error(meaning)));
                }
            }
        }
    }
}

/// An error answer in the API's one shape.
fn error(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        )
        .build()
}

/// The optional `Idempotency-Key` header, unless the operation names it.
fn add_idempotency_key(operation: &mut Operation) {
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    let named = parameters.iter().any(|p| {
        matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Header
            && p.name.eq_ignore_ascii_case(idempotency::HEADER))
    });
    if named {
        return;
    }
    let parameter: Parameter = ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Sends the request once: a retry with the same key and request gets the first answer (for 24 hours)",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(idempotency::MAX_KEY_LENGTH))
                .pattern(Some("^[!-~]([ -~]*[!-~])?$")),
        ))
        .build();
    parameters.push(RefOr::T(parameter));
}

/// Every operation of a path, with its method.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", item.get.as_mut()),
        ("put", item.put.as_mut()),
        ("post", item.post.as_mut()),
        ("delete", item.delete.as_mut()),
        ("options", item.options.as_mut()),
        ("head", item.head.as_mut()),
        ("patch", item.patch.as_mut()),
        ("trace", item.trace.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.map(|operation| (method, operation)))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn doc() -> Value {
        serde_json::to_value(crate::openapi()).unwrap()
    }

    fn statuses(doc: &Value, method: &str, path: &str) -> Vec<String> {
        doc["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path}"))
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn every_operation_lists_what_the_layers_answer() {
        let doc = doc();
        let register = statuses(&doc, "post", "/api/v1/auth/register");
        for status in ["400", "409", "413", "415", "422", "429", "500"] {
            assert!(
                register.contains(&status.to_owned()),
                "{status}: {register:?}"
            );
        }
        // Login has no caller: no Idempotency-Key, no 409/422 of its own.
        let login = statuses(&doc, "post", "/api/v1/auth/login");
        assert!(!login.contains(&"422".to_owned()), "{login:?}");
        assert!(login.contains(&"415".to_owned()), "{login:?}");
        // Probes and the drivers' webhooks are never rate limited.
        assert!(!statuses(&doc, "get", "/healthz").contains(&"429".to_owned()));
        assert!(!statuses(&doc, "post", "/hooks/waha/{session_id}").contains(&"429".to_owned()));
        let me = statuses(&doc, "get", "/api/v1/me");
        // 403: the tenant suspended by the platform operator; 503: access
        // rights still loading after a start.
        assert_eq!(me, ["200", "401", "403", "429", "500", "503"]);
        let retry_after = &doc["paths"]["/api/v1/me"]["get"]["responses"]["429"]["headers"]["Retry-After"]
            ["schema"]["type"];
        assert_eq!(retry_after, "integer");
    }

    #[test]
    fn idempotent_posts_take_the_key_and_say_what_409_and_422_mean() {
        let doc = doc();
        let start = &doc["paths"]["/api/v1/campaigns/{id}/start"]["post"];
        let key = start["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "Idempotency-Key")
            .expect("the Idempotency-Key parameter");
        assert_eq!(key["in"], "header");
        assert_eq!(key["required"], false);
        let conflict = start["responses"]["409"]["description"].as_str().unwrap();
        assert!(conflict.contains("invalid_state"), "{conflict}");
        assert!(conflict.contains("Idempotency-Key"), "{conflict}");
        let refused = start["responses"]["422"]["description"].as_str().unwrap();
        assert!(refused.contains("insufficient_points"), "{refused}");
        assert!(refused.contains("idempotency_key_reused"), "{refused}");
        // The grant names the header itself: it is not named twice.
        let grant = doc["paths"]["/api/v1/admin/tenants/{id}/grant"]["post"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| {
                p["name"]
                    .as_str()
                    .unwrap()
                    .eq_ignore_ascii_case("idempotency-key")
            })
            .count();
        assert_eq!(grant, 1);
    }
}
