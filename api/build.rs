//! Embeds the web console's build (`console/dist`, made by `npm run build`
//! in `console/`) into the API: `OUT_DIR/console_assets.rs` lists every
//! file with its bytes (`include_bytes!`), its gzip sibling when the build
//! made one, and an ETag. Without a build the list is empty and `/` says
//! how to make one (see `src/console.rs`).
//!
//! Cargo reruns this script when the build changes (a directory given to
//! `rerun-if-changed` is scanned whole), or, while there is none, when
//! anything in `console/` does: building the console then rebuilding the
//! binary picks it up.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let console = manifest.join("..").join("console");
    println!("cargo:rerun-if-env-changed=WABLAST_CONSOLE_DIST");
    let dist = env::var_os("WABLAST_CONSOLE_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| console.join("dist"));
    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        println!("cargo:rerun-if-changed={}", dist.display());
        collect(&dist, &mut files);
        files.sort();
    } else if console.is_dir() {
        println!("cargo:rerun-if-changed={}", console.display());
    } else {
        println!("cargo:rerun-if-changed=build.rs");
    }

    let mut out = String::from("/// The console's files (empty: built without it).\n");
    out.push_str("pub(crate) static ASSETS: &[Asset] = &[\n");
    for file in &files {
        let relative = file
            .strip_prefix(&dist)
            .expect("under dist")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        if relative.ends_with(".gz") {
            continue;
        }
        let bytes = fs::read(file).expect("a console file is readable");
        let gz = PathBuf::from(format!("{}.gz", file.display()));
        let gzip = if gz.is_file() {
            format!("Some(include_bytes!({:?}))", gz.display().to_string())
        } else {
            "None".to_owned()
        };
        writeln!(
            out,
            "    Asset {{ path: {:?}, body: include_bytes!({:?}), gzip: {gzip}, etag: \"\\\"{:016x}\\\"\" }},",
            format!("/{relative}"),
            file.display().to_string(),
            fnv1a(&bytes),
        )
        .expect("writing to a String");
    }
    out.push_str("];\n");
    let target =
        PathBuf::from(env::var("OUT_DIR").expect("set by cargo")).join("console_assets.rs");
    fs::write(target, out).expect("OUT_DIR is writable");
}

/// Every file under `dir`, recursively.
fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("the console build is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}

/// A 64-bit FNV-1a hash: the file's ETag (a version, not a secret).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
