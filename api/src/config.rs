//! What the API is configured with (the binary reads it from environment
//! variables: see the `wablast` crate's `config`).

use std::path::PathBuf;
use std::time::Duration;

/// The API's settings.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Where uploaded media and other local state live (`WABLAST_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Key encrypting stored driver credentials (AES-256-GCM), from
    /// `WABLAST_SECRET_KEY`.
    pub secret_key: [u8; 32],
    /// How long an access token is valid.
    pub token_ttl: Duration,
    /// Origins allowed to call the API from a browser (`*` for any); none:
    /// no CORS headers.
    pub cors_origins: Vec<String>,
    /// Requests per minute one API key or user may make.
    pub rate_limit_per_key: u32,
    /// Requests per minute one client address may make.
    pub rate_limit_per_ip: u32,
    /// Largest JSON body accepted.
    pub max_body_bytes: usize,
    /// Largest upload (media, contact files) accepted.
    pub max_upload_bytes: usize,
    /// How webhooks are sent (the test ping) and which receivers are
    /// accepted (`WABLAST_WEBHOOK_ALLOW_PRIVATE`).
    pub webhooks: wablast_workflows::webhooks::WebhookOptions,
    /// Where the drivers' servers reach this API (`WABLAST_PUBLIC_URL`,
    /// no trailing slash): a WAHA or Cloud API session shows the address
    /// its server must post its events to. `None`: not shown.
    pub public_url: Option<String>,
    /// Midtrans (`WABLAST_MIDTRANS_*`); `None`: payments are refused
    /// (`payments_not_configured`).
    pub midtrans: Option<wablast_workflows::payments::midtrans::MidtransConfig>,
    /// What points cost at checkout.
    pub topup_pricing: wablast_workflows::payments::TopUpPricing,
    /// How often and when orders waiting for their payment are looked up
    /// again at Midtrans.
    pub payments_recheck: wablast_workflows::payments::RecheckOptions,
    /// The seller receipts name.
    pub seller: crate::receipt::Seller,
}

impl ApiConfig {
    /// Settings for tests and a laptop: data under `data_dir`, a fixed key.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            secret_key: [7; 32],
            token_ttl: Duration::from_secs(24 * 3600),
            cors_origins: Vec::new(),
            rate_limit_per_key: 6_000,
            rate_limit_per_ip: 6_000,
            max_body_bytes: 1024 * 1024,
            max_upload_bytes: 32 * 1024 * 1024,
            webhooks: wablast_workflows::webhooks::WebhookOptions::default(),
            public_url: None,
            midtrans: None,
            topup_pricing: wablast_workflows::payments::TopUpPricing::default(),
            payments_recheck: wablast_workflows::payments::RecheckOptions::default(),
            seller: crate::receipt::Seller::default(),
        }
    }
}
