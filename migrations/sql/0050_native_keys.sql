-- The native driver's key store (`session-engine/src/native/store.rs`):
-- the Signal and WhatsApp Web state of each native session, one row per
-- record. Not a query table: only the engine holding the session's lease
-- reads and writes it.
--
-- Nothing here is readable without the installation key
-- (WABLAST_SECRET_KEY): `sealed` is AES-256-GCM bound to the session, the
-- record's kind and its lookup hash; `key_hash` and `scope_hash` are
-- HMAC-SHA256 of the record's address (a JID, a key id) under a key derived
-- from it. `ordinal` is the one plain number some records need to be found
-- by range (a pre-key id, a time in unix seconds for expiry).
create table native_keys (
    session_id uuid not null,
    kind smallint not null,
    key_hash bytea not null,
    scope_hash bytea,
    ordinal bigint,
    sealed bytea not null,
    primary key (session_id, kind, key_hash)
);

create index native_keys_by_scope on native_keys (session_id, kind, scope_hash)
    where scope_hash is not null;

-- Who may write a session's keys: the fence (lease bucket epoch, revision)
-- of the engine that holds its lease. A holder raises it when it opens the
-- store; every write checks it under a share lock, so an engine that lost
-- the lease (a greater fence was written) cannot write the keys again.
create table native_key_fences (
    session_id uuid primary key,
    epoch bigint not null,
    revision bigint not null
);
