//! Writes `openapi/openapi.json` from the API's code.

fn main() -> std::io::Result<()> {
    let path = wablast_openapi::path();
    std::fs::write(&path, wablast_openapi::render())?;
    println!("wrote {}", path.display());
    Ok(())
}
