//! Every type the API documents has its own schema name: utoipa keys the
//! document's schemas by name, so two types of one name would be
//! documented as one (a route would promise the other's shape).

use std::collections::BTreeMap;
use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The schema names of the `ToSchema` types of one file, with where.
fn schema_names(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut names = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        let declared = ["pub struct ", "pub enum ", "struct ", "enum "]
            .iter()
            .find_map(|p| line.strip_prefix(p));
        let Some(rest) = declared else { continue };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // Its attributes: the lines above it up to a blank or code line.
        let attributes: Vec<&str> = lines[..i]
            .iter()
            .rev()
            .map(|l| l.trim())
            .take_while(|l| l.starts_with("#[") || l.starts_with("///") || l.starts_with("//"))
            .collect();
        if !attributes
            .iter()
            .any(|a| a.starts_with("#[derive") && a.contains("ToSchema"))
        {
            continue;
        }
        let named = attributes
            .iter()
            .find_map(|a| a.strip_prefix("#[schema(as = "))
            .map(|a| a.trim_end_matches(")]").to_owned())
            .unwrap_or(name);
        names.push((named, format!("{}:{}", path.display(), i + 1)));
    }
    names
}

#[test]
fn no_two_documented_types_share_a_schema_name() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in &files {
        for (name, place) in schema_names(file) {
            seen.entry(name).or_default().push(place);
        }
    }
    assert!(
        seen.len() > 50,
        "the scan finds the documented types: {}",
        seen.len()
    );
    let shared: Vec<_> = seen.iter().filter(|(_, places)| places.len() > 1).collect();
    assert!(
        shared.is_empty(),
        "schema names used twice (give one `#[schema(as = OtherName)]`): {shared:?}"
    );
}
