//! Driver credentials of a session (WAHA, WhatsApp Cloud API): parsed from
//! what a user sends, stored encrypted, read back by the engine.
//!
//! The API stores them when a session is created with a `driver_config`
//! ([`store`]) and drops them when it is deleted ([`delete`]); the engine
//! reads them to connect ([`load`]). Table `session_credentials` (migration
//! 0005): the fields that are not secret as JSON in `config` (what API
//! answers show, [`DriverCredentials::public_config`]), the secret ones as a
//! sealed JSON object in `secret`.
//!
//! Sealing is AES-256-GCM under `WABLAST_SECRET_KEY` ([`SecretKey`]): a
//! fresh random 96-bit nonce per write, stored in front of the ciphertext
//! and its tag (`nonce || ciphertext || tag`), and the session id as
//! associated data, so a row copied onto another session does not open.

use std::collections::HashMap;
use std::fmt;

use aes_gcm::aead::{Aead, Generate, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;
use url::Url;
use uuid::Uuid;
use wablast_domain::session::Driver;
use wablast_domain::types::{SessionId, TenantId};

/// Meta's Graph API, where the Cloud API lives unless `api_base` says
/// otherwise. It names no Graph API version: the engine's applies (an
/// `api_base` ending in one, `…/v23.0`, keeps that one).
pub const DEFAULT_CLOUD_API_BASE: &str = "https://graph.facebook.com/";

/// Drivers whose server keeps a session of its own (a WAHA server's
/// sessions): a deleted session's credentials are kept until an engine has
/// removed it from that server, which then deletes them ([`delete`]).
pub const KEPT_FOR_THE_SERVER: [Driver; 1] = [Driver::Waha];

/// The longest text field accepted (tokens, ids, URLs).
pub const MAX_FIELD_CHARS: usize = 2048;

/// Bytes of the nonce in front of a sealed secret.
const NONCE_BYTES: usize = 12;

/// Label in front of the session id in the associated data: a sealed
/// secret of another kind (or version) never opens as this one.
const AAD_LABEL: &[u8] = b"wablast session credentials v1 ";

/// The key sealing stored credentials (`WABLAST_SECRET_KEY`). Its `Debug`
/// shows nothing of it.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    /// The key of these 32 bytes.
    pub const fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&Key::<Aes256Gcm>::from(self.0))
    }

    /// Seals `plaintext` bound to `aad` (what it belongs to: a copy moved
    /// to another row does not open): `nonce || ciphertext || tag`, with a
    /// fresh random nonce each time. Everything wablast keeps encrypted
    /// (credentials, webhook secrets, stored idempotent answers) goes
    /// through here.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce = Nonce::generate();
        let ciphertext = self
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("AES-GCM seals any plaintext under 64 GiB");
        let mut sealed = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// A key of its own for one `purpose`, derived from this one
    /// (HMAC-SHA256 of `purpose` under this key): where wablast needs a
    /// secret it must hand out (the key WAHA signs a session's webhooks
    /// with), so that handing it out reveals nothing of this key and every
    /// engine derives the same one.
    pub fn derive(&self, purpose: &[u8]) -> [u8; 32] {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes any key");
        mac.update(purpose);
        mac.finalize().into_bytes().into()
    }

    /// Opens what [`SecretKey::seal`] sealed with `aad`; `None` under
    /// another key, another `aad`, or altered bytes.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_BYTES {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        let nonce = Nonce::try_from(nonce).ok()?;
        self.cipher()
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// Why credentials could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// PostgreSQL failed.
    #[error("session credentials: {0}")]
    Database(#[from] sqlx::Error),
    /// The sealed secret did not open: another key, another session's row,
    /// or altered bytes.
    #[error("session credentials do not decrypt (wrong WABLAST_SECRET_KEY, or altered)")]
    Undecryptable,
    /// The stored row does not have the shape its driver needs.
    #[error("stored session credentials are malformed: {0}")]
    Malformed(String),
}

/// A `driver_config` refused, naming the field (`driver_config.base_url`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidConfig {
    /// The field at fault, from the request's root.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl InvalidConfig {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// How a session's driver reaches WhatsApp, secrets included. `Debug`
/// redacts the secrets.
#[derive(Clone, PartialEq, Eq)]
pub enum DriverCredentials {
    /// A WAHA server.
    Waha(WahaCredentials),
    /// The WhatsApp Business Cloud API.
    Cloud(CloudCredentials),
}

/// A WAHA server (`driver: "waha"`).
#[derive(Clone, PartialEq, Eq)]
pub struct WahaCredentials {
    /// Where the server answers (`https://waha.example.com`).
    pub base_url: Url,
    /// Its API key (`X-Api-Key`). Secret.
    pub api_key: String,
    /// The WAHA session to use; `None`: the engine picks one.
    pub session_name: Option<String>,
}

/// The WhatsApp Business Cloud API (`driver: "cloud"`).
#[derive(Clone, PartialEq, Eq)]
pub struct CloudCredentials {
    /// The business phone number's id at Meta.
    pub phone_number_id: String,
    /// The system user's access token. Secret.
    pub access_token: String,
    /// The app secret, checking `X-Hub-Signature-256` of webhooks. Secret.
    pub app_secret: String,
    /// The token Meta echoes when verifying the webhook. Secret.
    pub verify_token: String,
    /// The Graph API base ([`DEFAULT_CLOUD_API_BASE`] unless given).
    pub api_base: Url,
    /// The WhatsApp Business Account's id (digits): where the number's
    /// message templates are listed. `None` for sessions created before
    /// it was asked (set it with a template sync).
    pub waba_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WahaInput {
    base_url: String,
    api_key: String,
    session_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloudInput {
    phone_number_id: String,
    access_token: String,
    app_secret: String,
    verify_token: String,
    api_base: Option<String>,
    waba_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct WahaSecret {
    api_key: String,
}

#[derive(Serialize, Deserialize)]
struct CloudSecret {
    access_token: String,
    app_secret: String,
    verify_token: String,
}

impl DriverCredentials {
    /// Reads the `driver_config` of a new session of `driver`: required for
    /// `waha` and `cloud` (their fields checked), refused for `simulator` and
    /// `native`, which take none.
    ///
    /// # Returns
    /// The credentials to store, `None` for a driver that takes none.
    pub fn from_request(
        driver: Driver,
        config: Option<Value>,
    ) -> Result<Option<Self>, InvalidConfig> {
        let config = config.filter(|c| !c.is_null());
        match (driver, config) {
            (Driver::Simulator | Driver::Native, None) => Ok(None),
            (Driver::Simulator | Driver::Native, Some(_)) => Err(InvalidConfig::new(
                "driver_config",
                format!("the {driver} driver takes no driver_config"),
            )),
            (Driver::Waha | Driver::Cloud, None) => Err(InvalidConfig::new(
                "driver_config",
                format!("the {driver} driver needs a driver_config"),
            )),
            (Driver::Waha, Some(config)) => {
                let input: WahaInput = shape(config)?;
                Ok(Some(Self::Waha(WahaCredentials {
                    base_url: url_field("driver_config.base_url", &input.base_url)?,
                    api_key: text_field("driver_config.api_key", &input.api_key)?,
                    session_name: input
                        .session_name
                        .map(|name| waha_session_name(&name))
                        .transpose()?,
                })))
            }
            (Driver::Cloud, Some(config)) => {
                let input: CloudInput = shape(config)?;
                let phone_number_id =
                    text_field("driver_config.phone_number_id", &input.phone_number_id)?;
                if !phone_number_id.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(InvalidConfig::new(
                        "driver_config.phone_number_id",
                        "phone_number_id is the number's id at Meta: digits only",
                    ));
                }
                Ok(Some(Self::Cloud(CloudCredentials {
                    phone_number_id,
                    access_token: text_field("driver_config.access_token", &input.access_token)?,
                    app_secret: text_field("driver_config.app_secret", &input.app_secret)?,
                    verify_token: text_field("driver_config.verify_token", &input.verify_token)?,
                    api_base: url_field(
                        "driver_config.api_base",
                        input.api_base.as_deref().unwrap_or(DEFAULT_CLOUD_API_BASE),
                    )?,
                    waba_id: input
                        .waba_id
                        .map(|id| waba_id("driver_config.waba_id", &id))
                        .transpose()?,
                })))
            }
        }
    }

    /// The driver these credentials are for.
    pub fn driver(&self) -> Driver {
        match self {
            Self::Waha(_) => Driver::Waha,
            Self::Cloud(_) => Driver::Cloud,
        }
    }

    /// The fields that are not secret, as API answers show them: WAHA
    /// `{base_url, session_name}`, Cloud `{phone_number_id, api_base}`.
    pub fn public_config(&self) -> Value {
        match self {
            Self::Waha(w) => json!({
                "base_url": w.base_url.as_str(),
                "session_name": w.session_name,
            }),
            Self::Cloud(c) => {
                let mut config = json!({
                    "phone_number_id": c.phone_number_id,
                    "api_base": c.api_base.as_str(),
                });
                if let Some(waba_id) = &c.waba_id {
                    config["waba_id"] = json!(waba_id);
                }
                config
            }
        }
    }

    fn secret_json(&self) -> Vec<u8> {
        let secret = match self {
            Self::Waha(w) => serde_json::to_vec(&WahaSecret {
                api_key: w.api_key.clone(),
            }),
            Self::Cloud(c) => serde_json::to_vec(&CloudSecret {
                access_token: c.access_token.clone(),
                app_secret: c.app_secret.clone(),
                verify_token: c.verify_token.clone(),
            }),
        };
        secret.expect("strings serialize")
    }

    /// The credentials of a stored row: its driver, public config and
    /// opened secret.
    fn from_parts(driver: &str, config: Value, secret: &[u8]) -> Result<Self, CredentialsError> {
        let malformed = |e: &dyn fmt::Display| CredentialsError::Malformed(e.to_string());
        let text = |field: &str| -> Result<String, CredentialsError> {
            config[field]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| CredentialsError::Malformed(format!("config has no {field}")))
        };
        let url = |field: &str| -> Result<Url, CredentialsError> {
            Url::parse(&text(field)?).map_err(|e| malformed(&e))
        };
        match driver {
            "waha" => {
                let secret: WahaSecret =
                    serde_json::from_slice(secret).map_err(|e| malformed(&e))?;
                Ok(Self::Waha(WahaCredentials {
                    base_url: url("base_url")?,
                    api_key: secret.api_key,
                    session_name: config["session_name"].as_str().map(str::to_owned),
                }))
            }
            "cloud" => {
                let secret: CloudSecret =
                    serde_json::from_slice(secret).map_err(|e| malformed(&e))?;
                Ok(Self::Cloud(CloudCredentials {
                    phone_number_id: text("phone_number_id")?,
                    access_token: secret.access_token,
                    app_secret: secret.app_secret,
                    verify_token: secret.verify_token,
                    api_base: url("api_base")?,
                    waba_id: config["waba_id"].as_str().map(str::to_owned),
                }))
            }
            other => Err(CredentialsError::Malformed(format!(
                "unknown driver {other:?}"
            ))),
        }
    }
}

impl fmt::Debug for DriverCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The public part only: secrets never reach a log line.
        write!(f, "{}({})", self.driver(), self.public_config())
    }
}

/// The config deserialized into its driver's shape; a wrong shape (missing
/// or unknown field, wrong type) names `driver_config`.
fn shape<T: for<'de> Deserialize<'de>>(config: Value) -> Result<T, InvalidConfig> {
    if !config.is_object() {
        return Err(InvalidConfig::new(
            "driver_config",
            "driver_config must be an object",
        ));
    }
    serde_json::from_value(config)
        .map_err(|e| InvalidConfig::new("driver_config", format!("driver_config: {e}")))
}

/// A text field: trimmed, not empty, at most [`MAX_FIELD_CHARS`], no
/// control characters.
fn text_field(field: &str, value: &str) -> Result<String, InvalidConfig> {
    let value = value.trim();
    let name = field.rsplit('.').next().unwrap_or(field);
    if value.is_empty() {
        return Err(InvalidConfig::new(
            field,
            format!("{name} must not be empty"),
        ));
    }
    if value.chars().count() > MAX_FIELD_CHARS {
        return Err(InvalidConfig::new(
            field,
            format!("{name} may have at most {MAX_FIELD_CHARS} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(InvalidConfig::new(
            field,
            format!("{name} must not contain control characters"),
        ));
    }
    Ok(value.to_owned())
}

/// An `http` or `https` URL with a host, without credentials in it.
fn url_field(field: &str, value: &str) -> Result<Url, InvalidConfig> {
    let text = text_field(field, value)?;
    let name = field.rsplit('.').next().unwrap_or(field);
    let url = Url::parse(&text)
        .map_err(|e| InvalidConfig::new(field, format!("{name} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(InvalidConfig::new(
            field,
            format!("{name} must be an http or https URL with a host"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // They would be stored and shown in the clear.
        return Err(InvalidConfig::new(
            field,
            format!("{name} must not carry a user or password; use the key fields"),
        ));
    }
    Ok(url)
}

/// A WhatsApp Business Account id: digits only.
pub fn waba_id(field: &str, value: &str) -> Result<String, InvalidConfig> {
    let id = text_field(field, value)?;
    if !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidConfig::new(
            field,
            "waba_id is the WhatsApp Business Account's id at Meta: digits only",
        ));
    }
    Ok(id)
}

/// A WAHA session name: 1 to 64 of `A-Z a-z 0-9 _ -`.
fn waha_session_name(value: &str) -> Result<String, InvalidConfig> {
    let field = "driver_config.session_name";
    let name = text_field(field, value)?;
    if name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(InvalidConfig::new(
            field,
            "session_name is 1 to 64 of letters, digits, `_` and `-`",
        ));
    }
    Ok(name)
}

fn associated_data(session: SessionId) -> Vec<u8> {
    let mut aad = AAD_LABEL.to_vec();
    aad.extend_from_slice(session.as_uuid().as_bytes());
    aad
}

/// Seals `plaintext` for `session`: `nonce || ciphertext || tag`.
pub fn seal(key: &SecretKey, session: SessionId, plaintext: &[u8]) -> Vec<u8> {
    key.seal(&associated_data(session), plaintext)
}

/// Opens what [`seal`] sealed for `session` under `key`.
pub fn open(
    key: &SecretKey,
    session: SessionId,
    sealed: &[u8],
) -> Result<Vec<u8>, CredentialsError> {
    key.open(&associated_data(session), sealed)
        .ok_or(CredentialsError::Undecryptable)
}

/// Stores (or replaces) a session's credentials, the secret part sealed.
pub async fn store(
    pool: &PgPool,
    key: &SecretKey,
    tenant: TenantId,
    session: SessionId,
    credentials: &DriverCredentials,
) -> Result<(), CredentialsError> {
    let sealed = seal(key, session, &credentials.secret_json());
    let now = Utc::now();
    sqlx::query(
        "insert into session_credentials \
             (session_id, tenant_id, driver, config, secret, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, $6, $6) \
         on conflict (session_id) do update \
             set driver = excluded.driver, config = excluded.config, \
                 secret = excluded.secret, updated_at = excluded.updated_at \
             where session_credentials.tenant_id = excluded.tenant_id",
    )
    .bind(session.as_uuid())
    .bind(tenant.as_uuid())
    .bind(credentials.driver().as_str())
    .bind(credentials.public_config())
    .bind(sealed)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

/// A session's credentials, opened: what the engine connects with. `None`
/// when the session has none (simulator, native, or another tenant's id).
pub async fn load(
    pool: &PgPool,
    key: &SecretKey,
    tenant: TenantId,
    session: SessionId,
) -> Result<Option<DriverCredentials>, CredentialsError> {
    let row: Option<(String, Value, Vec<u8>)> = sqlx::query_as(
        "select driver, config, secret from session_credentials \
         where tenant_id = $1 and session_id = $2",
    )
    .bind(tenant.as_uuid())
    .bind(session.as_uuid())
    .fetch_optional(pool)
    .await?;
    let Some((driver, config, sealed)) = row else {
        return Ok(None);
    };
    let secret = open(key, session, &sealed)?;
    DriverCredentials::from_parts(&driver, config, &secret).map(Some)
}

/// The public configs of some of a tenant's sessions (those that have
/// credentials), by session id: what API answers show as `driver_config`.
pub async fn public_configs(
    pool: &PgPool,
    tenant: TenantId,
    sessions: &[Uuid],
) -> Result<HashMap<Uuid, Value>, sqlx::Error> {
    if sessions.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, Value)> = sqlx::query_as(
        "select session_id, config from session_credentials \
         where tenant_id = $1 and session_id = any($2)",
    )
    .bind(tenant.as_uuid())
    .bind(sessions)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Sets the WhatsApp Business Account id of a Cloud API session's
/// credentials (checked with [`waba_id`]).
///
/// # Returns
/// Whether the tenant has such a Cloud API session's credentials.
pub async fn set_waba_id(
    pool: &PgPool,
    tenant: TenantId,
    session: SessionId,
    waba_id: &str,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "update session_credentials \
         set config = jsonb_set(config, '{waba_id}', to_jsonb($3::text)), updated_at = $4 \
         where tenant_id = $1 and session_id = $2 and driver = 'cloud'",
    )
    .bind(tenant.as_uuid())
    .bind(session.as_uuid())
    .bind(waba_id)
    .bind(Utc::now())
    .execute(pool)
    .await?
    .rows_affected();
    Ok(updated > 0)
}

/// Forgets a session's credentials.
///
/// # Returns
/// Whether there were any.
pub async fn delete(
    pool: &PgPool,
    tenant: TenantId,
    session: SessionId,
) -> Result<bool, sqlx::Error> {
    let deleted =
        sqlx::query("delete from session_credentials where tenant_id = $1 and session_id = $2")
            .bind(tenant.as_uuid())
            .bind(session.as_uuid())
            .execute(pool)
            .await?
            .rows_affected();
    Ok(deleted > 0)
}

/// Forgets a deleted session's credentials, unless an engine still needs
/// them to remove the session from its driver's server
/// ([`KEPT_FOR_THE_SERVER`]).
///
/// # Returns
/// Whether any were forgotten.
pub async fn forget_deleted(
    pool: &PgPool,
    tenant: TenantId,
    session: SessionId,
) -> Result<bool, sqlx::Error> {
    let kept: Vec<&str> = KEPT_FOR_THE_SERVER.iter().map(|d| d.as_str()).collect();
    let deleted = sqlx::query(
        "delete from session_credentials \
         where tenant_id = $1 and session_id = $2 and driver <> all($3)",
    )
    .bind(tenant.as_uuid())
    .bind(session.as_uuid())
    .bind(&kept)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(deleted > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SecretKey {
        SecretKey::new([byte; 32])
    }

    #[test]
    fn a_sealed_secret_opens_with_the_same_key_and_session() {
        let session = SessionId::new();
        let sealed = seal(&key(1), session, b"{\"api_key\":\"rahasia\"}");
        assert_eq!(
            open(&key(1), session, &sealed).unwrap(),
            b"{\"api_key\":\"rahasia\"}"
        );
        assert!(
            !sealed.windows(7).any(|w| w == b"rahasia"),
            "the plaintext is not in the sealed bytes"
        );
    }

    #[test]
    fn derived_keys_depend_on_the_key_and_the_purpose() {
        assert_eq!(key(1).derive(b"a"), key(1).derive(b"a"));
        assert_ne!(key(1).derive(b"a"), key(1).derive(b"b"));
        assert_ne!(key(1).derive(b"a"), key(2).derive(b"a"));
        assert_ne!(key(1).derive(b"a"), [1; 32]);
    }

    #[test]
    fn each_seal_takes_a_fresh_nonce() {
        let session = SessionId::new();
        let a = seal(&key(1), session, b"same");
        let b = seal(&key(1), session, b"same");
        assert_ne!(a[..NONCE_BYTES], b[..NONCE_BYTES]);
        assert_ne!(a, b);
    }

    #[test]
    fn a_sealed_secret_does_not_open_with_another_key() {
        let session = SessionId::new();
        let sealed = seal(&key(1), session, b"secret");
        assert!(matches!(
            open(&key(2), session, &sealed),
            Err(CredentialsError::Undecryptable)
        ));
    }

    #[test]
    fn a_tampered_secret_does_not_open() {
        let session = SessionId::new();
        let sealed = seal(&key(1), session, b"secret");
        for i in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[i] ^= 0x01;
            assert!(
                open(&key(1), session, &tampered).is_err(),
                "byte {i} flipped"
            );
        }
        assert!(open(&key(1), session, &sealed[..sealed.len() - 1]).is_err());
        assert!(open(&key(1), session, &sealed[..5]).is_err());
    }

    #[test]
    fn a_secret_sealed_for_one_session_does_not_open_for_another() {
        let sealed = seal(&key(1), SessionId::new(), b"secret");
        assert!(matches!(
            open(&key(1), SessionId::new(), &sealed),
            Err(CredentialsError::Undecryptable)
        ));
    }

    fn waha(config: Value) -> Result<Option<DriverCredentials>, InvalidConfig> {
        DriverCredentials::from_request(Driver::Waha, Some(config))
    }

    #[test]
    fn a_waha_config_is_read_and_its_secret_kept_out_of_the_public_part() {
        let creds = waha(json!({"base_url": " https://waha.example.com/ ", "api_key": "k3y", "session_name": "toko-1"}))
            .unwrap()
            .unwrap();
        let DriverCredentials::Waha(w) = &creds else {
            panic!("waha")
        };
        assert_eq!(w.base_url.as_str(), "https://waha.example.com/");
        assert_eq!(w.api_key, "k3y");
        assert_eq!(
            creds.public_config(),
            json!({"base_url": "https://waha.example.com/", "session_name": "toko-1"})
        );
        assert!(!format!("{creds:?}").contains("k3y"));
    }

    #[test]
    fn a_cloud_config_gets_the_default_api_base() {
        let creds = DriverCredentials::from_request(
            Driver::Cloud,
            Some(json!({"phone_number_id": "1234567890", "access_token": "EAAG", "app_secret": "s", "verify_token": "v"})),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            creds.public_config(),
            json!({"phone_number_id": "1234567890", "api_base": DEFAULT_CLOUD_API_BASE})
        );
        let text = creds.public_config().to_string();
        assert!(!text.contains("EAAG") && !text.contains("\"s\"") && !text.contains("\"v\""));
    }

    #[test]
    fn bad_configs_name_the_field() {
        let field = |r: Result<Option<DriverCredentials>, InvalidConfig>| r.unwrap_err().field;
        assert_eq!(
            field(waha(json!({"base_url": "not a url", "api_key": "k"}))),
            "driver_config.base_url"
        );
        assert_eq!(
            field(waha(json!({"base_url": "ftp://x.example", "api_key": "k"}))),
            "driver_config.base_url"
        );
        assert_eq!(
            field(waha(
                json!({"base_url": "https://u:p@x.example", "api_key": "k"})
            )),
            "driver_config.base_url"
        );
        assert_eq!(
            field(waha(
                json!({"base_url": "https://x.example", "api_key": "  "})
            )),
            "driver_config.api_key"
        );
        assert_eq!(
            field(waha(
                json!({"base_url": "https://x.example", "api_key": "k", "session_name": "a b"})
            )),
            "driver_config.session_name"
        );
        assert_eq!(
            field(waha(json!({"base_url": "https://x.example"}))),
            "driver_config"
        );
        assert_eq!(
            field(waha(
                json!({"base_url": "https://x.example", "api_key": "k", "extra": 1})
            )),
            "driver_config"
        );
        assert_eq!(field(waha(json!("https://x.example"))), "driver_config");
        assert_eq!(
            field(DriverCredentials::from_request(Driver::Waha, None)),
            "driver_config"
        );
        assert_eq!(
            field(DriverCredentials::from_request(
                Driver::Cloud,
                Some(
                    json!({"phone_number_id": "abc", "access_token": "t", "app_secret": "s", "verify_token": "v"})
                )
            )),
            "driver_config.phone_number_id"
        );
        assert_eq!(
            field(DriverCredentials::from_request(
                Driver::Simulator,
                Some(json!({}))
            )),
            "driver_config"
        );
        assert_eq!(
            DriverCredentials::from_request(Driver::Native, Some(Value::Null)),
            Ok(None)
        );
    }

    #[test]
    fn stored_parts_read_back_as_the_same_credentials() {
        let creds = waha(json!({"base_url": "https://waha.example.com", "api_key": "k3y"}))
            .unwrap()
            .unwrap();
        let back =
            DriverCredentials::from_parts("waha", creds.public_config(), &creds.secret_json())
                .unwrap();
        assert_eq!(back, creds);
    }

    #[test]
    fn a_cloud_config_keeps_its_business_account_id_in_the_public_part() {
        let cloud = |waba_id: Value| {
            DriverCredentials::from_request(
                Driver::Cloud,
                Some(
                    json!({"phone_number_id": "1234567890", "access_token": "EAAG",
                            "app_secret": "s", "verify_token": "v", "waba_id": waba_id}),
                ),
            )
        };
        let creds = cloud(json!(" 102290129340398 ")).unwrap().unwrap();
        assert_eq!(creds.public_config()["waba_id"], "102290129340398");
        let back =
            DriverCredentials::from_parts("cloud", creds.public_config(), &creds.secret_json())
                .unwrap();
        assert_eq!(back, creds);
        assert_eq!(
            cloud(json!("WABA-1")).unwrap_err().field,
            "driver_config.waba_id"
        );
        let without = cloud(Value::Null).unwrap().unwrap();
        assert!(without.public_config().get("waba_id").is_none());
    }
}
