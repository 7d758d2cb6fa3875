//! The web console (`console/`, a single-page app) served at `/` from its
//! build, embedded at compile time by `build.rs`.
//!
//! It is the router's fallback, so it never shadows a route; and it leaves
//! the API's own prefixes (`/api`, `/docs`, `/openapi.json`, `/hooks`,
//! `/healthz`, `/readyz`, `/metrics`) to the API's JSON 404. Of the rest, a
//! `GET` (or `HEAD`):
//!
//! - of a file of the build is that file: `assets/` (hashed names) cached
//!   for a year as immutable, anything else revalidated (`no-cache`, with
//!   an ETag), gzipped when the browser takes it (`build.rs` embeds the
//!   `.gz` siblings the console's build writes);
//! - of a path that names no file (no dot in its last segment) is a client
//!   route: `index.html`, whose router shows the page (or its own "not
//!   found");
//! - of anything else (a missing `assets/` file, `/robots.txt`) is a 404.
//!
//! A binary built without the console answers client routes with a short
//! page saying how to build it. None of this is in the OpenAPI document:
//! it is no part of the API.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, VARY,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// One file of the console's build.
pub(crate) struct Asset {
    /// Its path as requested (`/assets/index-3f2a.js`).
    path: &'static str,
    /// Its bytes.
    body: &'static [u8],
    /// The same, gzipped, when the build made it.
    gzip: Option<&'static [u8]>,
    /// A hash of `body`, quoted.
    etag: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));

/// Path prefixes the API answers, console or not.
const RESERVED: [&str; 7] = [
    "/api",
    "/docs",
    "/openapi.json",
    "/hooks",
    "/healthz",
    "/readyz",
    "/metrics",
];

/// What the console may load: its own scripts, styles, images (QR codes
/// drawn as `data:` images) and calls to this origin; no inline script.
const CONSOLE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// How long a hashed file may be cached: a year (its name changes with it).
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The page of a binary built without the console.
const NOT_BUILT: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>wablast</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5">
<h1>wablast</h1>
<p>This binary was built without the web console.</p>
<p>Build it, then the binary: <code>cd console &amp;&amp; npm ci &amp;&amp; npm run build</code>, then
<code>cargo build --release -p wablast</code>. <code>bash scripts/run.sh</code> does both.</p>
<p>The API works without it: <a href="/docs">/docs</a> (its description: <a href="/openapi.json">/openapi.json</a>).</p>
</body></html>
"#;

/// The router's fallback: the console, or the API's 404.
pub(crate) async fn fallback(request: Request) -> Response {
    serve(
        ASSETS,
        request.method(),
        request.uri().path(),
        request.headers(),
    )
}

fn serve(assets: &[Asset], method: &Method, path: &str, headers: &HeaderMap) -> Response {
    let reserved = RESERVED
        .iter()
        .any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")));
    if reserved || (method != Method::GET && method != Method::HEAD) {
        return crate::error::no_such_route().into_response();
    }
    if path != "/index.html"
        && let Some(asset) = assets.iter().find(|asset| asset.path == path)
    {
        let cache = if path.starts_with("/assets/") {
            IMMUTABLE
        } else {
            "no-cache"
        };
        return file(asset, cache, headers);
    }
    let last = path.rsplit('/').next().unwrap_or_default();
    if path.starts_with("/assets/") || last.contains('.') {
        return crate::error::no_such_route().into_response();
    }
    match assets.iter().find(|asset| asset.path == "/index.html") {
        Some(index) => file(index, "no-cache", headers),
        None => (
            [
                (
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                ),
                (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                (
                    CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(
                        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
                    ),
                ),
            ],
            NOT_BUILT,
        )
            .into_response(),
    }
}

/// `asset` with its type, `cache` policy and ETag; `304` when the browser
/// has it; gzipped when it takes gzip.
fn file(asset: &Asset, cache: &'static str, headers: &HeaderMap) -> Response {
    let mut response = if headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| tag.trim() == asset.etag || tag.trim() == "*")
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        match asset.gzip.filter(|_| takes_gzip(headers)) {
            Some(gzip) => {
                let mut response = Body::from(gzip).into_response();
                response
                    .headers_mut()
                    .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                response
            }
            None => Body::from(asset.body).into_response(),
        }
    };
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(content_type(asset.path)),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(ETAG, HeaderValue::from_static(asset.etag));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONSOLE_POLICY),
    );
    if asset.gzip.is_some() {
        headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}

/// Whether `Accept-Encoding` takes gzip (not refused with `q=0`).
fn takes_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// The content type of a file of the build, by its extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("webp") => "image/webp",
        Some("woff2") => "font/woff2",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;

    use super::*;

    const BUILT: &[Asset] = &[
        Asset {
            path: "/index.html",
            body: b"<!doctype html><div id=root></div>",
            gzip: Some(b"gz index"),
            etag: "\"i1\"",
        },
        Asset {
            path: "/assets/index-abc123.js",
            body: b"console.log(1)",
            gzip: Some(b"gz js"),
            etag: "\"j1\"",
        },
        Asset {
            path: "/favicon.svg",
            body: b"<svg/>",
            gzip: None,
            etag: "\"f1\"",
        },
    ];

    fn get(assets: &[Asset], path: &str, headers: &[(&'static str, &'static str)]) -> Response {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_static(value));
        }
        serve(assets, &Method::GET, path, &map)
    }

    async fn body(response: Response) -> String {
        String::from_utf8(
            to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap()
                .to_vec(),
        )
        .unwrap()
    }

    fn header<'a>(response: &'a Response, name: &str) -> &'a str {
        response
            .headers()
            .get(name)
            .map_or("", |v| v.to_str().unwrap())
    }

    #[tokio::test]
    async fn client_routes_get_the_entry_page_revalidated() {
        for path in ["/", "/numbers", "/numbers/7", "/login"] {
            let response = get(BUILT, path, &[]);
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(
                header(&response, "content-type"),
                "text/html; charset=utf-8"
            );
            assert_eq!(header(&response, "cache-control"), "no-cache");
            assert!(header(&response, "content-security-policy").contains("script-src 'self'"));
            assert!(body(response).await.contains("id=root"), "{path}");
        }
    }

    #[tokio::test]
    async fn hashed_files_are_immutable_and_gzipped_when_taken() {
        let plain = get(BUILT, "/assets/index-abc123.js", &[]);
        assert_eq!(plain.status(), StatusCode::OK);
        assert_eq!(
            header(&plain, "content-type"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(header(&plain, "cache-control"), IMMUTABLE);
        assert_eq!(header(&plain, "content-encoding"), "");
        assert_eq!(header(&plain, "vary"), "accept-encoding");
        assert_eq!(body(plain).await, "console.log(1)");

        let gzipped = get(
            BUILT,
            "/assets/index-abc123.js",
            &[("accept-encoding", "br, gzip;q=0.8")],
        );
        assert_eq!(header(&gzipped, "content-encoding"), "gzip");
        assert_eq!(body(gzipped).await, "gz js");

        let refused = get(
            BUILT,
            "/assets/index-abc123.js",
            &[("accept-encoding", "gzip;q=0")],
        );
        assert_eq!(header(&refused, "content-encoding"), "");
    }

    #[tokio::test]
    async fn other_files_are_revalidated_and_a_known_etag_is_not_modified() {
        let icon = get(BUILT, "/favicon.svg", &[]);
        assert_eq!(header(&icon, "content-type"), "image/svg+xml");
        assert_eq!(header(&icon, "cache-control"), "no-cache");
        assert_eq!(header(&icon, "etag"), "\"f1\"");
        let again = get(BUILT, "/favicon.svg", &[("if-none-match", "\"f1\"")]);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(body(again).await, "");
        let index = get(BUILT, "/numbers", &[("if-none-match", "\"old\", \"i1\"")]);
        assert_eq!(index.status(), StatusCode::NOT_MODIFIED);
    }

    #[tokio::test]
    async fn the_api_prefixes_and_missing_files_are_the_apis_404() {
        for path in [
            "/api",
            "/api/v1/nothing",
            "/docs/x",
            "/openapi.json",
            "/hooks/waha/x",
            "/healthz",
            "/readyz",
            "/metrics",
            "/assets/gone-123.js",
            "/assets/fonts",
            "/robots.txt",
        ] {
            let response = get(BUILT, path, &[]);
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            assert_eq!(
                header(&response, "content-type"),
                "application/json",
                "{path}"
            );
            assert!(body(response).await.contains("not_found"), "{path}");
        }
        // Prefixes match whole segments only.
        assert_eq!(get(BUILT, "/apis", &[]).status(), StatusCode::OK);
        assert_eq!(get(BUILT, "/docsy", &[]).status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn only_reads_are_served() {
        let response = serve(BUILT, &Method::POST, "/numbers", &HeaderMap::new());
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_binary_built_without_the_console_says_how_to_build_it() {
        let response = get(&[], "/", &[]);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header(&response, "content-type"),
            "text/html; charset=utf-8"
        );
        let text = body(response).await;
        assert!(text.contains("npm run build"), "{text}");
        assert!(text.contains("/docs"), "{text}");
        assert_eq!(get(&[], "/api/v1/x", &[]).status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("/a.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("/a.woff2"), "font/woff2");
        assert_eq!(content_type("/a"), "application/octet-stream");
    }
}
