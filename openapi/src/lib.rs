//! The checked-in OpenAPI document (`openapi/openapi.json`): written from
//! the API's code by `cargo run -p wablast-openapi`, and kept in sync by a
//! test that fails when the file is stale.

use std::path::PathBuf;

/// Where the checked-in document lives.
pub fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi.json")
}

/// The document as the code describes it now, pretty-printed, with a final
/// newline.
pub fn render() -> String {
    let mut json = serde_json::to_string_pretty(&wablast_api::openapi())
        .expect("the OpenAPI document serializes");
    json.push('\n');
    json
}
