//! API keys: `wbk_` and 64 hex digits (256 random bits). Only the key's
//! SHA-256 is stored, so a leaked table does not leak keys; a key is shown
//! once, when it is created.

use chrono::{DateTime, Utc};
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;
use wablast_domain::types::TenantId;

/// What every key starts with.
pub const PREFIX: &str = "wbk_";

/// How many leading characters of a key are kept to tell keys apart.
const SHOWN: usize = PREFIX.len() + 8;

/// A new random key.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the OS random source works");
    format!("{PREFIX}{}", hex::encode(bytes))
}

/// The stored form of a key.
pub fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The part of a key shown in lists.
pub fn shown_prefix(key: &str) -> &str {
    &key[..SHOWN.min(key.len())]
}

/// The key a request authenticated with.
#[derive(Clone, Copy, Debug)]
pub struct Authenticated {
    /// The key's id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// The user who created it (a key created by a member taken out of the
    /// team stops working).
    pub created_by: Option<Uuid>,
}

/// The live (not revoked) key `key` is, if any.
pub async fn authenticate(pool: &PgPool, key: &str) -> Result<Option<Authenticated>, sqlx::Error> {
    if !key.starts_with(PREFIX) {
        return Ok(None);
    }
    let row: Option<(Uuid, Uuid, Option<Uuid>)> = sqlx::query_as(
        "select id, tenant_id, created_by from api_keys where key_hash = $1 and revoked_at is null",
    )
    .bind(digest(key))
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(id, tenant, created_by)| Authenticated {
        id,
        tenant_id: TenantId::from_uuid(tenant),
        created_by,
    }))
}

/// Revokes every live key of `tenant` that `user` created (a member taken
/// out of the team); how many.
pub async fn revoke_created_by(
    pool: &PgPool,
    tenant: TenantId,
    user: Uuid,
) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "update api_keys set revoked_at = $3 \
         where tenant_id = $1 and created_by = $2 and revoked_at is null",
    )
    .bind(tenant.as_uuid())
    .bind(user)
    .bind(Utc::now())
    .execute(pool)
    .await
    .map(|done| done.rows_affected())
}

/// A key as listed (never the key itself).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct KeyRow {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its first characters.
    pub key_prefix: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_prefixed_and_stored_as_their_digest() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX));
        assert_eq!(a.len(), PREFIX.len() + 64);
        assert_eq!(digest(&a).len(), 64);
        assert_ne!(digest(&a), digest(&b));
        assert_eq!(shown_prefix(&a).len(), 12);
    }
}
