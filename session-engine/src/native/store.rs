//! The native driver's key store: the `whatsapp-rust` [`Backend`] of one
//! session, in PostgreSQL (migration 0050).
//!
//! Every record (an identity key, a Signal session, a pre-key, the device
//! itself, ...) is one row of `native_keys`:
//! - `sealed` is `nonce || AES-256-GCM(address || value)` under the
//!   installation key ([`SecretKey::seal`], as session credentials are),
//!   with the session, the record's kind and its lookup hash as associated
//!   data: a row copied to another session, kind or address does not open;
//! - `key_hash` is HMAC-SHA256 of (session, kind, address) under a key
//!   derived from the installation key, so the table names no JID, phone
//!   number or key id;
//! - `scope_hash` (the group of a sender-key device, the collection of an
//!   app-state MAC, the user of a Signal address) lets a whole scope be read
//!   or deleted at once; `ordinal` is the one plain number a few records are
//!   found by (a pre-key id, a unix time for expiry).
//!
//! Durability: the crate persists Signal state that must outlive a crash
//! *before* the ciphertext goes on the wire
//! (`persist_signal_state_pre_wire`, the crate's
//! `agent_docs/signal_durability.md`), through this backend's writes. Each
//! write here returns only once its transaction committed (PostgreSQL's
//! default `synchronous_commit = on`), and a batch is one transaction: the
//! crate's ordering then holds.
//!
//! Fencing: a store is opened with the fence of the engine's lease
//! ([`Fence`]) and raises `native_key_fences` to it; every write first reads
//! that row under a share lock and is refused ([`KeyStoreError::Fenced`])
//! unless it is still this store's fence. An engine that lost the lease to
//! another (whose fence is greater) can read but no longer write.
//!
//! [`erase`] deletes every row of a session (logout, delete), the fence
//! with them.
//!
//! The SQL is here rather than in `projections::queries`: these rows are
//! the driver's private state, never a query table.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use hmac::Mac;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::{PgPool, Postgres, Row, Transaction};
use wablast_domain::session::Fence;
use wablast_domain::types::SessionId;
use wablast_workflows::credentials::SecretKey;
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::Device;
use wacore::store::error::{Result, StoreError};
use wacore::store::traits::{
    AppStateSyncKey, AppSyncStore, DeviceListRecord, DeviceStore, LidPnMappingEntry,
    MsgSecretEntry, MsgSecretStore, ProtocolStore, SignalStore, TcTokenEntry,
    merge_msg_secret_expiry, merge_msg_secret_message_ts,
};

/// Label in front of the associated data of a sealed row.
const AAD_LABEL: &[u8] = b"wablast native key v1 ";

/// What the lookup key is derived for ([`SecretKey::derive`]).
const LOOKUP_PURPOSE: &[u8] = b"wablast native key lookup v1";

/// Separates the parts of a composite address (JIDs and ids hold no NUL).
const SEP: char = '\0';

/// The kinds of record. Stored: never renumber one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i16)]
pub(crate) enum Kind {
    Identity = 1,
    Session = 2,
    PreKey = 3,
    SignedPreKey = 4,
    SenderKey = 5,
    SyncKey = 6,
    AppVersion = 7,
    MutationMac = 8,
    SenderKeyDevice = 9,
    LidMapping = 10,
    PnIndex = 11,
    BaseKey = 12,
    DeviceList = 13,
    GroupMetadata = 14,
    TcToken = 15,
    SentMessage = 16,
    PendingInbound = 17,
    MsgSecret = 18,
    Device = 19,
    Meta = 20,
}

/// The address of the device record and of the latest sync key id.
const DEVICE: &str = "device";
const LATEST_SYNC_KEY: &str = "latest_sync_key_id";

/// Why the key store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// Another engine holds the session now (its fence is greater, or the
    /// keys were erased): this one may not write them.
    #[error("the session's keys are fenced: held at {held}, this store has {ours}")]
    Fenced {
        /// The fence the store was opened with.
        ours: Fence,
        /// The fence written now (`0.0` when the keys were erased).
        held: Fence,
    },
    /// A row did not open: another installation key, another session's
    /// row, or altered bytes.
    #[error("a native key row does not decrypt (wrong WABLAST_SECRET_KEY, or altered)")]
    Undecryptable,
    /// PostgreSQL failed.
    #[error("native key store: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<KeyStoreError> for StoreError {
    fn from(err: KeyStoreError) -> Self {
        match err {
            KeyStoreError::Undecryptable => StoreError::Serialization(Box::new(err)),
            other => StoreError::Database(Box::new(other)),
        }
    }
}

fn db(err: sqlx::Error) -> StoreError {
    KeyStoreError::Database(err).into()
}

fn ser(err: serde_json::Error) -> StoreError {
    StoreError::Serialization(Box::new(err))
}

/// The fence as stored (both halves fit `bigint`: an epoch in microseconds
/// and a stream sequence).
fn fence_columns(fence: Fence) -> (i64, i64) {
    (
        i64::try_from(fence.epoch).unwrap_or(i64::MAX),
        i64::try_from(fence.revision).unwrap_or(i64::MAX),
    )
}

fn fence_of(epoch: i64, revision: i64) -> Fence {
    Fence {
        epoch: u64::try_from(epoch).unwrap_or(0),
        revision: u64::try_from(revision).unwrap_or(0),
    }
}

/// Deletes every key of `session` (and its fence): what a logout or a
/// delete leaves is nothing. Not fenced: the keys end here whoever holds
/// the session, and a holder that writes after it finds no fence and is
/// refused.
///
/// # Returns
/// How many rows were deleted.
pub async fn erase(pool: &PgPool, session: SessionId) -> std::result::Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // The fence first: a writer holding its share lock finishes before,
    // and any later one finds no fence.
    sqlx::query("delete from native_key_fences where session_id = $1")
        .bind(session.as_uuid())
        .execute(&mut *tx)
        .await?;
    let deleted = sqlx::query("delete from native_keys where session_id = $1")
        .bind(session.as_uuid())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(deleted)
}

/// Whether any key of `session` is stored (a linked device to restore).
pub async fn has_device(
    pool: &PgPool,
    session: SessionId,
) -> std::result::Result<bool, sqlx::Error> {
    sqlx::query_scalar::<_, bool>(
        "select exists (select 1 from native_keys where session_id = $1 and kind = $2)",
    )
    .bind(session.as_uuid())
    .bind(Kind::Device as i16)
    .fetch_one(pool)
    .await
}

/// One session's keys, written under one lease's fence.
#[derive(Clone)]
pub struct KeyStore {
    pool: PgPool,
    session: SessionId,
    key: SecretKey,
    lookup: [u8; 32],
    fence: Fence,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("session", &self.session)
            .field("fence", &self.fence)
            .finish_non_exhaustive()
    }
}

/// A row read back: its address and value.
struct Record {
    address: String,
    value: Vec<u8>,
}

impl KeyStore {
    /// Opens `session`'s keys for the holder of `fence`, raising the stored
    /// fence to it.
    ///
    /// # Errors
    /// [`KeyStoreError::Fenced`] when a greater fence is stored: another
    /// engine took the session since this lease was taken.
    pub async fn open(
        pool: PgPool,
        key: &SecretKey,
        session: SessionId,
        fence: Fence,
    ) -> std::result::Result<Self, KeyStoreError> {
        let (epoch, revision) = fence_columns(fence);
        let raised: Option<(i64, i64)> = sqlx::query_as(
            "insert into native_key_fences (session_id, epoch, revision) values ($1, $2, $3)
             on conflict (session_id) do update
                set epoch = excluded.epoch, revision = excluded.revision
                where (native_key_fences.epoch, native_key_fences.revision)
                    < (excluded.epoch, excluded.revision)
             returning epoch, revision",
        )
        .bind(session.as_uuid())
        .bind(epoch)
        .bind(revision)
        .fetch_optional(&pool)
        .await?;
        let held = match raised {
            Some(held) => held,
            // Not raised: the stored fence is ours already, or greater.
            None => sqlx::query_as::<_, (i64, i64)>(
                "select epoch, revision from native_key_fences where session_id = $1",
            )
            .bind(session.as_uuid())
            .fetch_optional(&pool)
            .await?
            .unwrap_or((0, 0)),
        };
        let held = fence_of(held.0, held.1);
        if held != fence {
            return Err(KeyStoreError::Fenced { ours: fence, held });
        }
        Ok(Self {
            pool,
            session,
            lookup: key.derive(LOOKUP_PURPOSE),
            key: key.clone(),
            fence,
        })
    }

    /// The session whose keys these are.
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// The fence its writes carry.
    pub fn fence(&self) -> Fence {
        self.fence
    }

    fn mac(&self, domain: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(&self.lookup)
            .expect("HMAC takes any key");
        mac.update(self.session.as_uuid().as_bytes());
        mac.update(domain);
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }

    fn key_hash(&self, kind: Kind, address: &str) -> Vec<u8> {
        self.mac(b"key", &[&(kind as i16).to_be_bytes(), address.as_bytes()])
    }

    fn scope_hash(&self, scope: &str) -> Vec<u8> {
        self.mac(b"scope", &[scope.as_bytes()])
    }

    fn aad(&self, kind: Kind, key_hash: &[u8]) -> Vec<u8> {
        let mut aad = AAD_LABEL.to_vec();
        aad.extend_from_slice(self.session.as_uuid().as_bytes());
        aad.extend_from_slice(&(kind as i16).to_be_bytes());
        aad.extend_from_slice(key_hash);
        aad
    }

    fn seal(&self, kind: Kind, key_hash: &[u8], address: &str, value: &[u8]) -> Vec<u8> {
        let mut plain = Vec::with_capacity(4 + address.len() + value.len());
        plain.extend_from_slice(&(address.len() as u32).to_be_bytes());
        plain.extend_from_slice(address.as_bytes());
        plain.extend_from_slice(value);
        self.key.seal(&self.aad(kind, key_hash), &plain)
    }

    fn open_row(
        &self,
        kind: Kind,
        key_hash: &[u8],
        sealed: &[u8],
    ) -> std::result::Result<(String, Vec<u8>), KeyStoreError> {
        let plain = self
            .key
            .open(&self.aad(kind, key_hash), sealed)
            .ok_or(KeyStoreError::Undecryptable)?;
        let len = plain
            .get(..4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
            .ok_or(KeyStoreError::Undecryptable)? as usize;
        let address = plain
            .get(4..4 + len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or(KeyStoreError::Undecryptable)?
            .to_owned();
        Ok((address, plain[4 + len..].to_vec()))
    }

    /// A transaction in which this store may write: the fence row is read
    /// under a share lock (a new holder's raise waits for it) and must be
    /// this store's.
    async fn write(&self) -> Result<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let held: Option<(i64, i64)> = sqlx::query_as(
            "select epoch, revision from native_key_fences where session_id = $1 for share",
        )
        .bind(self.session.as_uuid())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let held = held.map_or(fence_of(0, 0), |(e, r)| fence_of(e, r));
        if held != self.fence {
            return Err(KeyStoreError::Fenced {
                ours: self.fence,
                held,
            }
            .into());
        }
        Ok(tx)
    }

    async fn upsert(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        kind: Kind,
        address: &str,
        value: &[u8],
        scope: Option<&str>,
        ordinal: Option<i64>,
    ) -> Result<()> {
        let key_hash = self.key_hash(kind, address);
        let sealed = self.seal(kind, &key_hash, address, value);
        sqlx::query(
            "insert into native_keys (session_id, kind, key_hash, scope_hash, ordinal, sealed)
             values ($1, $2, $3, $4, $5, $6)
             on conflict (session_id, kind, key_hash) do update
                set scope_hash = excluded.scope_hash, ordinal = excluded.ordinal,
                    sealed = excluded.sealed",
        )
        .bind(self.session.as_uuid())
        .bind(kind as i16)
        .bind(key_hash)
        .bind(scope.map(|s| self.scope_hash(s)))
        .bind(ordinal)
        .bind(sealed)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn remove(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        kind: Kind,
        address: &str,
    ) -> Result<bool> {
        let deleted = sqlx::query(
            "delete from native_keys where session_id = $1 and kind = $2 and key_hash = $3",
        )
        .bind(self.session.as_uuid())
        .bind(kind as i16)
        .bind(self.key_hash(kind, address))
        .execute(&mut **tx)
        .await
        .map_err(db)?
        .rows_affected();
        Ok(deleted > 0)
    }

    /// Writes one record in its own transaction.
    async fn put(
        &self,
        kind: Kind,
        address: &str,
        value: &[u8],
        scope: Option<&str>,
        ordinal: Option<i64>,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        self.upsert(&mut tx, kind, address, value, scope, ordinal)
            .await?;
        tx.commit().await.map_err(db)
    }

    async fn delete(&self, kind: Kind, address: &str) -> Result<()> {
        let mut tx = self.write().await?;
        self.remove(&mut tx, kind, address).await?;
        tx.commit().await.map_err(db)
    }

    async fn get(&self, kind: Kind, address: &str) -> Result<Option<Vec<u8>>> {
        let key_hash = self.key_hash(kind, address);
        let sealed: Option<Vec<u8>> = sqlx::query_scalar(
            "select sealed from native_keys where session_id = $1 and kind = $2 and key_hash = $3",
        )
        .bind(self.session.as_uuid())
        .bind(kind as i16)
        .bind(&key_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        sealed
            .map(|sealed| {
                self.open_row(kind, &key_hash, &sealed)
                    .map(|(_, value)| value)
                    .map_err(StoreError::from)
            })
            .transpose()
    }

    async fn get_json<T: DeserializeOwned>(&self, kind: Kind, address: &str) -> Result<Option<T>> {
        self.get(kind, address)
            .await?
            .map(|bytes| serde_json::from_slice(&bytes).map_err(ser))
            .transpose()
    }

    async fn put_json<T: Serialize>(&self, kind: Kind, address: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(ser)?;
        self.put(kind, address, &bytes, None, None).await
    }

    /// Every record of `kind` (in `scope`, when given).
    async fn scan(&self, kind: Kind, scope: Option<&str>) -> Result<Vec<Record>> {
        let rows = sqlx::query(
            "select key_hash, sealed from native_keys
             where session_id = $1 and kind = $2 and ($3::bytea is null or scope_hash = $3)",
        )
        .bind(self.session.as_uuid())
        .bind(kind as i16)
        .bind(scope.map(|s| self.scope_hash(s)))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter()
            .map(|row| {
                let key_hash: Vec<u8> = row.get(0);
                let sealed: Vec<u8> = row.get(1);
                let (address, value) = self.open_row(kind, &key_hash, &sealed)?;
                Ok(Record { address, value })
            })
            .collect::<std::result::Result<_, KeyStoreError>>()
            .map_err(StoreError::from)
    }

    async fn delete_scope(&self, kind: Kind, scope: Option<&str>) -> Result<u64> {
        let mut tx = self.write().await?;
        let deleted = sqlx::query(
            "delete from native_keys
             where session_id = $1 and kind = $2 and ($3::bytea is null or scope_hash = $3)",
        )
        .bind(self.session.as_uuid())
        .bind(kind as i16)
        .bind(scope.map(|s| self.scope_hash(s)))
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        tx.commit().await.map_err(db)?;
        Ok(deleted)
    }

    /// Deletes the records of `kind` whose ordinal is set, not 0 (when
    /// `keep_zero`), and before `cutoff` (or at it, when `inclusive`).
    async fn delete_before(
        &self,
        kind: Kind,
        cutoff: i64,
        inclusive: bool,
        keep_zero: bool,
    ) -> Result<u32> {
        let mut tx = self.write().await?;
        let deleted = sqlx::query(
            "delete from native_keys
             where session_id = $1 and kind = $2 and ordinal is not null
               and (not $5 or ordinal <> 0)
               and (ordinal < $3 or ($4 and ordinal = $3))",
        )
        .bind(self.session.as_uuid())
        .bind(kind as i16)
        .bind(cutoff)
        .bind(inclusive)
        .bind(keep_zero)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        tx.commit().await.map_err(db)?;
        Ok(u32::try_from(deleted).unwrap_or(u32::MAX))
    }

    /// Serialises read-modify-writes of one record within `tx`.
    async fn lock_record(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        kind: Kind,
        address: &str,
    ) -> Result<()> {
        let hash = self.key_hash(kind, address);
        let lock = i64::from_be_bytes(hash[..8].try_into().expect("8 bytes"));
        sqlx::query("select pg_advisory_xact_lock($1)")
            .bind(lock)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn get_in(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        kind: Kind,
        address: &str,
    ) -> Result<Option<Vec<u8>>> {
        let key_hash = self.key_hash(kind, address);
        let sealed: Option<Vec<u8>> = sqlx::query_scalar(
            "select sealed from native_keys where session_id = $1 and kind = $2 and key_hash = $3",
        )
        .bind(self.session.as_uuid())
        .bind(kind as i16)
        .bind(&key_hash)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?;
        sealed
            .map(|sealed| {
                self.open_row(kind, &key_hash, &sealed)
                    .map(|(_, value)| value)
                    .map_err(StoreError::from)
            })
            .transpose()
    }

    /// Reads, changes and writes one tc-token record atomically.
    async fn update_tc_token(
        &self,
        jid: &str,
        change: impl FnOnce(Option<TcTokenEntry>) -> Option<TcTokenEntry> + Send,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        self.lock_record(&mut tx, Kind::TcToken, jid).await?;
        let existing = self
            .get_in(&mut tx, Kind::TcToken, jid)
            .await?
            .map(|bytes| serde_json::from_slice(&bytes).map_err(ser))
            .transpose()?;
        if let Some(entry) = change(existing) {
            let bytes = serde_json::to_vec(&entry).map_err(ser)?;
            self.upsert(&mut tx, Kind::TcToken, jid, &bytes, None, None)
                .await?;
        }
        tx.commit().await.map_err(db)
    }
}

/// The user part of a Signal address (`user@server`, `user:device@server`).
fn address_user(address: &str) -> &str {
    address.split([':', '@']).next().unwrap_or(address)
}

fn join(parts: &[&str]) -> String {
    parts.join(&SEP.to_string())
}

fn now_secs() -> i64 {
    wacore::time::now_secs()
}

#[async_trait]
impl SignalStore for KeyStore {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> Result<()> {
        self.put(
            Kind::Identity,
            address,
            &key,
            Some(address_user(address)),
            None,
        )
        .await
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> Result<()> {
        let mut tx = self.write().await?;
        for (address, key) in identities {
            self.upsert(
                &mut tx,
                Kind::Identity,
                address,
                key,
                Some(address_user(address)),
                None,
            )
            .await?;
        }
        tx.commit().await.map_err(db)
    }

    async fn load_identity(&self, address: &str) -> Result<Option<[u8; 32]>> {
        self.get(Kind::Identity, address)
            .await?
            .map(|bytes| {
                <[u8; 32]>::try_from(bytes.as_slice())
                    .map_err(|_| StoreError::Validation("identity key is not 32 bytes".into()))
            })
            .transpose()
    }

    async fn delete_identity(&self, address: &str) -> Result<()> {
        self.delete(Kind::Identity, address).await
    }

    async fn get_session(&self, address: &str) -> Result<Option<Bytes>> {
        Ok(self.get(Kind::Session, address).await?.map(Bytes::from))
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> Result<()> {
        self.put(
            Kind::Session,
            address,
            session,
            Some(address_user(address)),
            None,
        )
        .await
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> Result<()> {
        let mut tx = self.write().await?;
        for (address, session) in sessions {
            self.upsert(
                &mut tx,
                Kind::Session,
                address,
                session,
                Some(address_user(address)),
                None,
            )
            .await?;
        }
        tx.commit().await.map_err(db)
    }

    async fn delete_session(&self, address: &str) -> Result<()> {
        self.delete(Kind::Session, address).await
    }

    async fn has_signal_state_for_user(&self, user: &str) -> Result<bool> {
        sqlx::query_scalar::<_, bool>(
            "select exists (select 1 from native_keys
             where session_id = $1 and kind in ($2, $3) and scope_hash = $4)",
        )
        .bind(self.session.as_uuid())
        .bind(Kind::Identity as i16)
        .bind(Kind::Session as i16)
        .bind(self.scope_hash(user))
        .fetch_one(&self.pool)
        .await
        .map_err(db)
    }

    async fn store_prekey(&self, id: u32, record: &[u8], _uploaded: bool) -> Result<()> {
        self.put(
            Kind::PreKey,
            &id.to_string(),
            record,
            None,
            Some(i64::from(id)),
        )
        .await
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], _uploaded: bool) -> Result<()> {
        let mut tx = self.write().await?;
        for (id, record) in keys {
            self.upsert(
                &mut tx,
                Kind::PreKey,
                &id.to_string(),
                record,
                None,
                Some(i64::from(*id)),
            )
            .await?;
        }
        tx.commit().await.map_err(db)
    }

    async fn load_prekey(&self, id: u32) -> Result<Option<Bytes>> {
        Ok(self
            .get(Kind::PreKey, &id.to_string())
            .await?
            .map(Bytes::from))
    }

    // Whether a pre-key was uploaded is not kept (nothing reads it back),
    // as in the crate's in-memory store: an update that inserts nothing.
    async fn mark_prekeys_uploaded(&self, _ids: &[u32]) -> Result<()> {
        Ok(())
    }

    async fn remove_prekey(&self, id: u32) -> Result<()> {
        self.delete(Kind::PreKey, &id.to_string()).await
    }

    async fn get_max_prekey_id(&self) -> Result<u32> {
        let max: Option<i64> = sqlx::query_scalar(
            "select max(ordinal) from native_keys where session_id = $1 and kind = $2",
        )
        .bind(self.session.as_uuid())
        .bind(Kind::PreKey as i16)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(max.and_then(|m| u32::try_from(m).ok()).unwrap_or(0))
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> Result<()> {
        self.put(
            Kind::SignedPreKey,
            &id.to_string(),
            record,
            None,
            Some(i64::from(id)),
        )
        .await
    }

    async fn load_signed_prekey(&self, id: u32) -> Result<Option<Vec<u8>>> {
        self.get(Kind::SignedPreKey, &id.to_string()).await
    }

    async fn load_all_signed_prekeys(&self) -> Result<Vec<(u32, Vec<u8>)>> {
        Ok(self
            .scan(Kind::SignedPreKey, None)
            .await?
            .into_iter()
            .filter_map(|r| r.address.parse().ok().map(|id| (id, r.value)))
            .collect())
    }

    async fn remove_signed_prekey(&self, id: u32) -> Result<()> {
        self.delete(Kind::SignedPreKey, &id.to_string()).await
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> Result<()> {
        self.put(Kind::SenderKey, address, record, None, None).await
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> Result<()> {
        let mut tx = self.write().await?;
        for (address, record) in sender_keys {
            self.upsert(&mut tx, Kind::SenderKey, address, record, None, None)
                .await?;
        }
        tx.commit().await.map_err(db)
    }

    async fn get_sender_key(&self, address: &str) -> Result<Option<Vec<u8>>> {
        self.get(Kind::SenderKey, address).await
    }

    async fn delete_sender_key(&self, address: &str) -> Result<()> {
        self.delete(Kind::SenderKey, address).await
    }
}

#[async_trait]
impl AppSyncStore for KeyStore {
    async fn get_sync_key(&self, key_id: &[u8]) -> Result<Option<AppStateSyncKey>> {
        self.get_json(Kind::SyncKey, &hex::encode(key_id)).await
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> Result<()> {
        let bytes = serde_json::to_vec(&key).map_err(ser)?;
        let mut tx = self.write().await?;
        self.upsert(
            &mut tx,
            Kind::SyncKey,
            &hex::encode(key_id),
            &bytes,
            None,
            None,
        )
        .await?;
        self.upsert(&mut tx, Kind::Meta, LATEST_SYNC_KEY, key_id, None, None)
            .await?;
        tx.commit().await.map_err(db)
    }

    async fn get_version(&self, name: &str) -> Result<HashState> {
        Ok(self
            .get_json(Kind::AppVersion, name)
            .await?
            .unwrap_or_default())
    }

    async fn set_version(&self, name: &str, state: HashState) -> Result<()> {
        self.put_json(Kind::AppVersion, name, &state).await
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        _version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> Result<()> {
        let mut tx = self.write().await?;
        for m in mutations {
            self.upsert(
                &mut tx,
                Kind::MutationMac,
                &join(&[name, &hex::encode(&m.index_mac)]),
                &m.value_mac,
                Some(name),
                None,
            )
            .await?;
        }
        tx.commit().await.map_err(db)
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get(Kind::MutationMac, &join(&[name, &hex::encode(index_mac)]))
            .await
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> Result<()> {
        let mut tx = self.write().await?;
        for index_mac in index_macs {
            self.remove(
                &mut tx,
                Kind::MutationMac,
                &join(&[name, &hex::encode(index_mac)]),
            )
            .await?;
        }
        tx.commit().await.map_err(db)
    }

    async fn clear_mutation_macs(&self, name: &str) -> Result<()> {
        self.delete_scope(Kind::MutationMac, Some(name)).await?;
        Ok(())
    }

    async fn get_latest_sync_key_id(&self) -> Result<Option<Vec<u8>>> {
        self.get(Kind::Meta, LATEST_SYNC_KEY).await
    }
}

#[async_trait]
impl ProtocolStore for KeyStore {
    async fn get_sender_key_devices(&self, group_jid: &str) -> Result<Vec<(String, bool)>> {
        Ok(self
            .scan(Kind::SenderKeyDevice, Some(group_jid))
            .await?
            .into_iter()
            .filter_map(|r| {
                let (_, device) = r.address.split_once(SEP)?;
                Some((device.to_owned(), r.value.first() == Some(&1)))
            })
            .collect())
    }

    async fn set_sender_key_status(&self, group_jid: &str, entries: &[(&str, bool)]) -> Result<()> {
        let mut tx = self.write().await?;
        for (device, has_key) in entries {
            self.upsert(
                &mut tx,
                Kind::SenderKeyDevice,
                &join(&[group_jid, device]),
                &[u8::from(*has_key)],
                Some(group_jid),
                None,
            )
            .await?;
        }
        tx.commit().await.map_err(db)
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> Result<()> {
        self.delete_scope(Kind::SenderKeyDevice, Some(group_jid))
            .await?;
        Ok(())
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> Result<()> {
        if device_jids.is_empty() {
            return Ok(());
        }
        let doomed: Vec<String> = self
            .scan(Kind::SenderKeyDevice, None)
            .await?
            .into_iter()
            .filter(|r| {
                r.address
                    .split_once(SEP)
                    .is_some_and(|(_, device)| device_jids.contains(&device))
            })
            .map(|r| r.address)
            .collect();
        let mut tx = self.write().await?;
        for address in doomed {
            self.remove(&mut tx, Kind::SenderKeyDevice, &address)
                .await?;
        }
        tx.commit().await.map_err(db)
    }

    async fn clear_all_sender_key_devices(&self) -> Result<()> {
        self.delete_scope(Kind::SenderKeyDevice, None).await?;
        Ok(())
    }

    async fn get_lid_mapping(&self, lid: &str) -> Result<Option<LidPnMappingEntry>> {
        self.get_json(Kind::LidMapping, lid).await
    }

    async fn get_pn_mapping(&self, phone: &str) -> Result<Option<LidPnMappingEntry>> {
        match self.get(Kind::PnIndex, phone).await? {
            Some(lid) => {
                let lid = String::from_utf8(lid)
                    .map_err(|_| StoreError::Validation("a stored LID is not UTF-8".into()))?;
                self.get_lid_mapping(&lid).await
            }
            None => Ok(None),
        }
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> Result<()> {
        self.put_lid_mappings(std::slice::from_ref(entry)).await
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> Result<()> {
        let mut tx = self.write().await?;
        for entry in entries {
            self.lock_record(&mut tx, Kind::LidMapping, &entry.lid)
                .await?;
            let old: Option<LidPnMappingEntry> = self
                .get_in(&mut tx, Kind::LidMapping, &entry.lid)
                .await?
                .map(|bytes| serde_json::from_slice(&bytes).map_err(ser))
                .transpose()?;
            if let Some(old) = old.filter(|old| old.phone_number != entry.phone_number) {
                self.remove(&mut tx, Kind::PnIndex, &old.phone_number)
                    .await?;
            }
            let bytes = serde_json::to_vec(entry).map_err(ser)?;
            self.upsert(&mut tx, Kind::LidMapping, &entry.lid, &bytes, None, None)
                .await?;
            self.upsert(
                &mut tx,
                Kind::PnIndex,
                &entry.phone_number,
                entry.lid.as_bytes(),
                None,
                None,
            )
            .await?;
        }
        tx.commit().await.map_err(db)
    }

    async fn get_all_lid_mappings(&self) -> Result<Vec<LidPnMappingEntry>> {
        self.scan(Kind::LidMapping, None)
            .await?
            .into_iter()
            .map(|r| serde_json::from_slice(&r.value).map_err(ser))
            .collect()
    }

    async fn save_base_key(&self, address: &str, message_id: &str, base_key: &[u8]) -> Result<()> {
        self.put(
            Kind::BaseKey,
            &join(&[address, message_id]),
            base_key,
            None,
            None,
        )
        .await
    }

    async fn has_same_base_key(
        &self,
        address: &str,
        message_id: &str,
        current_base_key: &[u8],
    ) -> Result<bool> {
        Ok(self
            .get(Kind::BaseKey, &join(&[address, message_id]))
            .await?
            .is_some_and(|stored| stored == current_base_key))
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> Result<()> {
        self.delete(Kind::BaseKey, &join(&[address, message_id]))
            .await
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> Result<()> {
        let user = record.user.clone();
        self.put_json(Kind::DeviceList, &user, &record).await
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> Result<()> {
        let mut tx = self.write().await?;
        for record in records {
            let bytes = serde_json::to_vec(&record).map_err(ser)?;
            self.upsert(&mut tx, Kind::DeviceList, &record.user, &bytes, None, None)
                .await?;
        }
        tx.commit().await.map_err(db)
    }

    async fn get_devices(&self, user: &str) -> Result<Option<DeviceListRecord>> {
        self.get_json(Kind::DeviceList, user).await
    }

    async fn delete_devices(&self, user: &str) -> Result<()> {
        self.delete(Kind::DeviceList, user).await
    }

    async fn get_group_metadata(&self, group_jid: &str) -> Result<Option<Vec<u8>>> {
        self.get(Kind::GroupMetadata, group_jid).await
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> Result<()> {
        self.put(Kind::GroupMetadata, group_jid, blob, None, None)
            .await
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> Result<()> {
        self.delete(Kind::GroupMetadata, group_jid).await
    }

    async fn store_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
        payload: &[u8],
    ) -> Result<()> {
        self.put(
            Kind::SentMessage,
            &join(&[chat_jid, message_id]),
            payload,
            None,
            Some(now_secs()),
        )
        .await
    }

    async fn take_sent_message(&self, chat_jid: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        let address = join(&[chat_jid, message_id]);
        let key_hash = self.key_hash(Kind::SentMessage, &address);
        let mut tx = self.write().await?;
        let sealed: Option<Vec<u8>> = sqlx::query_scalar(
            "delete from native_keys where session_id = $1 and kind = $2 and key_hash = $3
             returning sealed",
        )
        .bind(self.session.as_uuid())
        .bind(Kind::SentMessage as i16)
        .bind(&key_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        sealed
            .map(|sealed| {
                self.open_row(Kind::SentMessage, &key_hash, &sealed)
                    .map(|(_, value)| value)
                    .map_err(StoreError::from)
            })
            .transpose()
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.delete_before(Kind::SentMessage, cutoff_timestamp, false, false)
            .await
    }

    async fn get_tc_token(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        self.get_json(Kind::TcToken, jid).await
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> Result<()> {
        self.put_json(Kind::TcToken, jid, entry).await
    }

    async fn delete_tc_token(&self, jid: &str) -> Result<()> {
        self.delete(Kind::TcToken, jid).await
    }

    async fn get_all_tc_token_jids(&self) -> Result<Vec<String>> {
        Ok(self
            .scan(Kind::TcToken, None)
            .await?
            .into_iter()
            .map(|r| r.address)
            .collect())
    }

    async fn delete_expired_tc_tokens(&self, token_cutoff: i64, sender_cutoff: i64) -> Result<u32> {
        let dead = |entry: &TcTokenEntry| {
            let token_live = !entry.token.is_empty() && entry.token_timestamp >= token_cutoff;
            let sender_live = entry.sender_timestamp.is_some_and(|ts| ts >= sender_cutoff);
            !token_live && !sender_live
        };
        let mut candidates = Vec::new();
        for record in self.scan(Kind::TcToken, None).await? {
            let entry: TcTokenEntry = serde_json::from_slice(&record.value).map_err(ser)?;
            if dead(&entry) {
                candidates.push(record.address);
            }
        }
        let mut tx = self.write().await?;
        let mut deleted = 0;
        for jid in candidates {
            // Read again under the record's lock: a token refreshed since
            // the scan is kept.
            self.lock_record(&mut tx, Kind::TcToken, &jid).await?;
            let still_dead = match self.get_in(&mut tx, Kind::TcToken, &jid).await? {
                Some(bytes) => dead(&serde_json::from_slice(&bytes).map_err(ser)?),
                None => false,
            };
            if still_dead && self.remove(&mut tx, Kind::TcToken, &jid).await? {
                deleted += 1;
            }
        }
        tx.commit().await.map_err(db)?;
        Ok(deleted)
    }

    async fn touch_tc_token_sender_timestamp(
        &self,
        jid: &str,
        sender_timestamp: i64,
    ) -> Result<()> {
        self.update_tc_token(jid, |existing| {
            Some(match existing {
                Some(entry) => TcTokenEntry {
                    sender_timestamp: Some(
                        entry
                            .sender_timestamp
                            .map_or(sender_timestamp, |e| e.max(sender_timestamp)),
                    ),
                    ..entry
                },
                None => TcTokenEntry {
                    token: Vec::new(),
                    token_timestamp: sender_timestamp,
                    sender_timestamp: Some(sender_timestamp),
                },
            })
        })
        .await
    }

    async fn store_received_tc_token(
        &self,
        jid: &str,
        token: &[u8],
        token_timestamp: i64,
    ) -> Result<()> {
        let token = token.to_vec();
        self.update_tc_token(jid, move |existing| match existing {
            Some(entry) if !entry.token.is_empty() && token_timestamp < entry.token_timestamp => {
                None
            }
            Some(entry) => Some(TcTokenEntry {
                token,
                token_timestamp,
                sender_timestamp: entry.sender_timestamp,
            }),
            None => Some(TcTokenEntry {
                token,
                token_timestamp,
                sender_timestamp: None,
            }),
        })
        .await
    }

    async fn store_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
        message: &[u8],
    ) -> Result<()> {
        self.put(
            Kind::PendingInbound,
            &join(&[chat, sender, id]),
            message,
            None,
            Some(now_secs()),
        )
        .await
    }

    async fn get_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
    ) -> Result<Option<Vec<u8>>> {
        self.get(Kind::PendingInbound, &join(&[chat, sender, id]))
            .await
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<()> {
        self.delete(Kind::PendingInbound, &join(&[chat, sender, id]))
            .await
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.delete_before(Kind::PendingInbound, cutoff_timestamp, false, false)
            .await
    }

    async fn store_pending_inbound_batch(
        &self,
        rows: &[wacore::store::traits::PendingInboundRow<'_>],
    ) -> Result<()> {
        let now = now_secs();
        let mut tx = self.write().await?;
        for row in rows {
            self.upsert(
                &mut tx,
                Kind::PendingInbound,
                &join(&[row.chat, row.sender, row.id]),
                row.message,
                None,
                Some(now),
            )
            .await?;
        }
        tx.commit().await.map_err(db)
    }

    async fn delete_pending_inbound_batch(
        &self,
        keys: &[wacore::store::traits::PendingInboundKey<'_>],
    ) -> Result<()> {
        let mut tx = self.write().await?;
        for key in keys {
            self.remove(
                &mut tx,
                Kind::PendingInbound,
                &join(&[key.chat, key.sender, key.id]),
            )
            .await?;
        }
        tx.commit().await.map_err(db)
    }
}

/// A message secret as stored: the secret, then the parent message's time.
fn msg_secret_value(secret: &[u8], message_ts: i64) -> Vec<u8> {
    let mut value = secret.to_vec();
    value.extend_from_slice(&message_ts.to_be_bytes());
    value
}

fn split_msg_secret(value: &[u8]) -> Result<(Vec<u8>, i64)> {
    let cut = value
        .len()
        .checked_sub(8)
        .ok_or_else(|| StoreError::Validation("a stored message secret is too short".into()))?;
    let ts = i64::from_be_bytes(value[cut..].try_into().expect("8 bytes"));
    Ok((value[..cut].to_vec(), ts))
}

#[async_trait]
impl MsgSecretStore for KeyStore {
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> Result<usize> {
        let stored = entries.len();
        let mut tx = self.write().await?;
        for entry in entries {
            let address = join(&[&entry.chat, &entry.sender, &entry.msg_id]);
            self.lock_record(&mut tx, Kind::MsgSecret, &address).await?;
            let key_hash = self.key_hash(Kind::MsgSecret, &address);
            let existing: Option<(Vec<u8>, Option<i64>)> = sqlx::query_as(
                "select sealed, ordinal from native_keys
                 where session_id = $1 and kind = $2 and key_hash = $3",
            )
            .bind(self.session.as_uuid())
            .bind(Kind::MsgSecret as i16)
            .bind(&key_hash)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            let (expires_at, message_ts) = match existing {
                Some((sealed, ordinal)) => {
                    let (_, value) = self.open_row(Kind::MsgSecret, &key_hash, &sealed)?;
                    let (_, stored_ts) = split_msg_secret(&value)?;
                    (
                        merge_msg_secret_expiry(ordinal.unwrap_or(0), entry.expires_at),
                        merge_msg_secret_message_ts(stored_ts, entry.message_ts),
                    )
                }
                None => (entry.expires_at, entry.message_ts),
            };
            self.upsert(
                &mut tx,
                Kind::MsgSecret,
                &address,
                &msg_secret_value(&entry.secret, message_ts),
                None,
                Some(expires_at),
            )
            .await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(stored)
    }

    async fn get_msg_secret(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<Vec<u8>>> {
        Ok(self
            .get_msg_secret_with_ts(chat, sender, msg_id)
            .await?
            .map(|(secret, _)| secret))
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<(Vec<u8>, i64)>> {
        self.get(Kind::MsgSecret, &join(&[chat, sender, msg_id]))
            .await?
            .map(|value| split_msg_secret(&value))
            .transpose()
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.delete_before(Kind::MsgSecret, cutoff_timestamp, true, true)
            .await
    }
}

#[async_trait]
impl DeviceStore for KeyStore {
    async fn save(&self, device: &Device) -> Result<()> {
        self.put_json(Kind::Device, DEVICE, device).await
    }

    async fn load(&self) -> Result<Option<Device>> {
        self.get_json(Kind::Device, DEVICE).await
    }

    async fn exists(&self) -> Result<bool> {
        Ok(self.get(Kind::Device, DEVICE).await?.is_some())
    }

    // One store holds one device: its id is always 1.
    async fn create(&self) -> Result<i32> {
        if !self.exists().await? {
            self.save(&Device::new()).await?;
        }
        Ok(1)
    }

    async fn resource_report(&self) -> wacore::stats::StorageResourceReport {
        // The rows live in PostgreSQL, not in this process.
        wacore::stats::StorageResourceReport {
            memory_bytes: Some(0),
            ..Default::default()
        }
    }
}
