//! `wablast`: see `wablast --help`.

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    // One TLS provider for every crate (NATS, PostgreSQL, HTTP clients).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    wablast::cli::Cli::parse().run().await
}
