//! The checked-in OpenAPI document must match the code.

#[test]
fn checked_in_openapi_document_matches_the_code() {
    let checked_in = std::fs::read_to_string(wablast_openapi::path()).unwrap_or_default();
    let current = wablast_openapi::render();
    assert!(
        checked_in == current,
        "openapi/openapi.json is stale: run `cargo run -p wablast-openapi` and commit the result"
    );
}
