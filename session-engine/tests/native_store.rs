//! The native driver's key store on the real PostgreSQL, fenced by leases
//! on the real JetStream.
//!
//! What these prove: every `Backend` method the crate calls writes what it
//! reads back, through sealed rows and hashed lookup keys; a row of one
//! session does not open as another's; reopening (a restarted engine)
//! restores the device; an engine whose lease was taken over cannot write;
//! an erase leaves no row. What they cannot: that the crate's own use of
//! the backend (its call order, its durability points) keeps a real
//! WhatsApp account healthy — that takes a linked phone (README, staging
//! check).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sqlx::PgPool;
use wablast_domain::session::Fence;
use wablast_domain::types::SessionId;
use wablast_eventstore::Prefix;
use wablast_session_engine::lease::SessionLeases;
use wablast_session_engine::native::store::{self, KeyStore, KeyStoreError};
use wablast_tests::{TestDatabase, delete_streams, nats_url, unique_prefix};
use wablast_workflows::credentials::SecretKey;
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::Device;
use wacore::store::error::StoreError;
use wacore::store::traits::{
    AppStateSyncKey, AppSyncStore, DeviceInfo, DeviceListRecord, DeviceStore, LidPnMappingEntry,
    MsgSecretEntry, MsgSecretStore, PendingInboundKey, PendingInboundRow, ProtocolStore,
    SignalStore, TcTokenEntry,
};

const ALICE: &str = "6281234567001:3@s.whatsapp.net";
const BOB: &str = "6281234567002@s.whatsapp.net";
const GROUP: &str = "120363000000000001@g.us";

struct Db {
    pool: PgPool,
    _database: TestDatabase,
}

async fn database() -> Db {
    let database = TestDatabase::create().await;
    let pool = PgPool::connect(&database.url).await.expect("PostgreSQL");
    wablast_migrations::run(&pool).await.expect("migrations");
    Db {
        pool,
        _database: database,
    }
}

fn key() -> SecretKey {
    SecretKey::new([9; 32])
}

fn fence(revision: u64) -> Fence {
    Fence {
        epoch: 1_700_000_000_000_000,
        revision,
    }
}

async fn rows(pool: &PgPool, session: SessionId) -> i64 {
    sqlx::query_scalar("select count(*) from native_keys where session_id = $1")
        .bind(session.as_uuid())
        .fetch_one(pool)
        .await
        .unwrap()
}

fn is_fenced(err: &StoreError) -> bool {
    std::error::Error::source(err)
        .and_then(|source| source.downcast_ref::<KeyStoreError>())
        .is_some_and(|err| matches!(err, KeyStoreError::Fenced { .. }))
}

#[tokio::test]
async fn every_backend_method_round_trips_through_sealed_rows() {
    let db = database().await;
    let session = SessionId::new();
    let s = KeyStore::open(db.pool.clone(), &key(), session, fence(1))
        .await
        .unwrap();

    // Identities and sessions, one by one and in batches.
    assert_eq!(s.load_identity(ALICE).await.unwrap(), None);
    s.put_identity(ALICE, [1; 32]).await.unwrap();
    s.put_identities_batch(&[(Arc::from(BOB), [2; 32])])
        .await
        .unwrap();
    assert_eq!(s.load_identity(ALICE).await.unwrap(), Some([1; 32]));
    assert_eq!(s.load_identity(BOB).await.unwrap(), Some([2; 32]));
    s.delete_identity(BOB).await.unwrap();
    assert_eq!(s.load_identity(BOB).await.unwrap(), None);

    s.put_session(ALICE, b"ratchet-1").await.unwrap();
    s.put_sessions_batch(&[
        (Arc::from(ALICE), Bytes::from_static(b"ratchet-2")),
        (Arc::from(BOB), Bytes::from_static(b"ratchet-b")),
    ])
    .await
    .unwrap();
    assert_eq!(
        s.get_session(ALICE).await.unwrap().as_deref(),
        Some(&b"ratchet-2"[..])
    );
    assert!(s.has_session(BOB).await.unwrap());
    assert!(s.has_signal_state_for_user("6281234567001").await.unwrap());
    assert!(s.has_signal_state_for_user("6281234567002").await.unwrap());
    assert!(!s.has_signal_state_for_user("628123456700").await.unwrap());
    s.delete_session(BOB).await.unwrap();
    assert!(!s.has_session(BOB).await.unwrap());
    assert!(!s.has_signal_state_for_user("6281234567002").await.unwrap());

    // Pre-keys and signed pre-keys.
    assert_eq!(s.get_max_prekey_id().await.unwrap(), 0);
    s.store_prekey(7, b"pk7", false).await.unwrap();
    s.store_prekeys_batch(
        &[
            (8, Bytes::from_static(b"pk8")),
            (30, Bytes::from_static(b"pk30")),
        ],
        false,
    )
    .await
    .unwrap();
    s.mark_prekeys_uploaded(&[7, 8, 99]).await.unwrap();
    assert_eq!(
        s.load_prekey(8).await.unwrap().as_deref(),
        Some(&b"pk8"[..])
    );
    assert_eq!(s.load_prekey(99).await.unwrap(), None, "not resurrected");
    let batch = s.load_prekeys_batch(&[7, 9, 30]).await.unwrap();
    assert_eq!(batch.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [7, 30]);
    assert_eq!(s.get_max_prekey_id().await.unwrap(), 30);
    s.remove_prekey(30).await.unwrap();
    assert_eq!(s.get_max_prekey_id().await.unwrap(), 8);

    s.store_signed_prekey(1, b"spk1").await.unwrap();
    s.store_signed_prekey(2, b"spk2").await.unwrap();
    assert_eq!(
        s.load_signed_prekey(2).await.unwrap(),
        Some(b"spk2".to_vec())
    );
    let mut all = s.load_all_signed_prekeys().await.unwrap();
    all.sort();
    assert_eq!(all, [(1, b"spk1".to_vec()), (2, b"spk2".to_vec())]);
    s.remove_signed_prekey(1).await.unwrap();
    assert_eq!(s.load_signed_prekey(1).await.unwrap(), None);

    // Sender keys.
    let sk = format!("{GROUP}::{ALICE}");
    s.put_sender_key(&sk, b"sk-1").await.unwrap();
    s.put_sender_keys_batch(&[(Arc::from(sk.as_str()), Bytes::from_static(b"sk-2"))])
        .await
        .unwrap();
    assert_eq!(s.get_sender_key(&sk).await.unwrap(), Some(b"sk-2".to_vec()));
    s.delete_sender_key(&sk).await.unwrap();
    assert_eq!(s.get_sender_key(&sk).await.unwrap(), None);

    // Sent messages: an atomic take.
    s.store_sent_message(BOB, "3EB0A", b"payload")
        .await
        .unwrap();
    assert_eq!(
        s.take_sent_message(BOB, "3EB0A").await.unwrap(),
        Some(b"payload".to_vec())
    );
    assert_eq!(s.take_sent_message(BOB, "3EB0A").await.unwrap(), None);
    s.store_sent_message(BOB, "3EB0B", b"old").await.unwrap();
    assert_eq!(
        s.delete_expired_sent_messages(wacore::time::now_secs() - 60)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.delete_expired_sent_messages(wacore::time::now_secs() + 60)
            .await
            .unwrap(),
        1
    );

    // Trusted-contact tokens: newer wins, the sender bucket only grows.
    s.store_received_tc_token(BOB, b"tok-100", 100)
        .await
        .unwrap();
    s.store_received_tc_token(BOB, b"tok-50", 50).await.unwrap();
    s.touch_tc_token_sender_timestamp(BOB, 70).await.unwrap();
    s.touch_tc_token_sender_timestamp(BOB, 60).await.unwrap();
    let tc = s.get_tc_token(BOB).await.unwrap().unwrap();
    assert_eq!(
        (tc.token, tc.token_timestamp, tc.sender_timestamp),
        (b"tok-100".to_vec(), 100, Some(70))
    );
    s.put_tc_token(
        ALICE,
        &TcTokenEntry {
            token: vec![],
            token_timestamp: 10,
            sender_timestamp: None,
        },
    )
    .await
    .unwrap();
    let mut jids = s.get_all_tc_token_jids().await.unwrap();
    jids.sort();
    assert_eq!(jids, [ALICE, BOB]);
    assert_eq!(s.delete_expired_tc_tokens(20, 20).await.unwrap(), 1);
    assert_eq!(s.get_all_tc_token_jids().await.unwrap(), [BOB]);
    s.delete_tc_token(BOB).await.unwrap();
    assert_eq!(s.get_tc_token(BOB).await.unwrap().map(|t| t.token), None);

    // The pending-inbound buffer of the durability hook.
    s.store_pending_inbound(BOB, BOB, "m1", b"hello")
        .await
        .unwrap();
    s.store_pending_inbound_batch(&[PendingInboundRow {
        chat: GROUP,
        sender: BOB,
        id: "m2",
        message: b"group hello",
    }])
    .await
    .unwrap();
    assert_eq!(
        s.get_pending_inbound(GROUP, BOB, "m2").await.unwrap(),
        Some(b"group hello".to_vec())
    );
    assert_eq!(
        s.get_pending_inbound(GROUP, ALICE, "m2").await.unwrap(),
        None
    );
    s.delete_pending_inbound(BOB, BOB, "m1").await.unwrap();
    assert_eq!(s.get_pending_inbound(BOB, BOB, "m1").await.unwrap(), None);
    s.delete_pending_inbound_batch(&[PendingInboundKey {
        chat: GROUP,
        sender: BOB,
        id: "m2",
    }])
    .await
    .unwrap();
    assert_eq!(s.get_pending_inbound(GROUP, BOB, "m2").await.unwrap(), None);
    s.store_pending_inbound(BOB, BOB, "m3", b"x").await.unwrap();
    assert_eq!(
        s.delete_expired_pending_inbound(wacore::time::now_secs() + 60)
            .await
            .unwrap(),
        1
    );

    // App-state sync keys, versions, mutation MACs.
    assert_eq!(s.get_latest_sync_key_id().await.unwrap(), None);
    s.set_sync_key(
        b"key-1",
        AppStateSyncKey {
            key_data: vec![1, 2, 3],
            fingerprint: vec![4],
            timestamp: 5,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        s.get_sync_key(b"key-1").await.unwrap().unwrap().key_data,
        [1, 2, 3]
    );
    assert_eq!(
        s.get_latest_sync_key_id().await.unwrap(),
        Some(b"key-1".to_vec())
    );
    assert_eq!(s.get_version("regular").await.unwrap().version, 0);
    let state = HashState {
        version: 42,
        ..HashState::default()
    };
    s.set_version("regular", state).await.unwrap();
    assert_eq!(s.get_version("regular").await.unwrap().version, 42);
    let macs = [
        AppStateMutationMAC {
            index_mac: vec![1; 32],
            value_mac: vec![10],
        },
        AppStateMutationMAC {
            index_mac: vec![2; 32],
            value_mac: vec![20],
        },
    ];
    s.put_mutation_macs("regular", 42, &macs).await.unwrap();
    s.put_mutation_macs("critical", 1, &macs[..1])
        .await
        .unwrap();
    assert_eq!(
        s.get_mutation_mac("regular", &[2; 32]).await.unwrap(),
        Some(vec![20])
    );
    let found = s
        .get_mutation_macs("regular", &[[1; 32], [3; 32]])
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    s.delete_mutation_macs("regular", &[vec![1; 32]])
        .await
        .unwrap();
    assert_eq!(s.get_mutation_mac("regular", &[1; 32]).await.unwrap(), None);
    s.clear_mutation_macs("regular").await.unwrap();
    assert_eq!(s.get_mutation_mac("regular", &[2; 32]).await.unwrap(), None);
    assert_eq!(
        s.get_mutation_mac("critical", &[1; 32]).await.unwrap(),
        Some(vec![10]),
        "another collection is kept"
    );

    // Sender-key device tracking.
    s.set_sender_key_status(GROUP, &[(ALICE, true), (BOB, false)])
        .await
        .unwrap();
    s.set_sender_key_status("120363000000000002@g.us", &[(BOB, true)])
        .await
        .unwrap();
    let mut devices = s.get_sender_key_devices(GROUP).await.unwrap();
    devices.sort();
    assert_eq!(devices, [(ALICE.to_owned(), true), (BOB.to_owned(), false)]);
    s.delete_sender_key_device_rows(&[BOB]).await.unwrap();
    assert_eq!(
        s.get_sender_key_devices(GROUP).await.unwrap(),
        [(ALICE.to_owned(), true)]
    );
    assert!(
        s.get_sender_key_devices("120363000000000002@g.us")
            .await
            .unwrap()
            .is_empty()
    );
    s.clear_sender_key_devices(GROUP).await.unwrap();
    assert!(s.get_sender_key_devices(GROUP).await.unwrap().is_empty());
    s.set_sender_key_status(GROUP, &[(ALICE, true)])
        .await
        .unwrap();
    s.clear_all_sender_key_devices().await.unwrap();
    assert!(s.get_sender_key_devices(GROUP).await.unwrap().is_empty());

    // LID ⇄ phone number mappings: a changed number drops the old index.
    let mapping = |pn: &str| LidPnMappingEntry {
        lid: "100000012345678".into(),
        phone_number: pn.into(),
        created_at: 1,
        updated_at: 2,
        learning_source: "usync".into(),
    };
    s.put_lid_mapping(&mapping("6281234567001")).await.unwrap();
    assert_eq!(
        s.get_pn_mapping("6281234567001")
            .await
            .unwrap()
            .unwrap()
            .lid,
        "100000012345678"
    );
    s.put_lid_mappings(&[mapping("6281234567009")])
        .await
        .unwrap();
    assert!(s.get_pn_mapping("6281234567001").await.unwrap().is_none());
    assert_eq!(
        s.get_lid_mapping("100000012345678")
            .await
            .unwrap()
            .unwrap()
            .phone_number,
        "6281234567009"
    );
    assert_eq!(s.get_all_lid_mappings().await.unwrap().len(), 1);

    // Base keys, device lists, group metadata.
    s.save_base_key(BOB, "m1", b"base").await.unwrap();
    assert!(s.has_same_base_key(BOB, "m1", b"base").await.unwrap());
    assert!(!s.has_same_base_key(BOB, "m1", b"other").await.unwrap());
    s.delete_base_key(BOB, "m1").await.unwrap();
    assert!(!s.has_same_base_key(BOB, "m1", b"base").await.unwrap());

    let list = |user: &str| DeviceListRecord {
        user: user.into(),
        devices: vec![DeviceInfo::new(0, None), DeviceInfo::new(3, Some(1))],
        timestamp: 9,
        phash: Some("2:abc".into()),
        raw_id: Some(4),
    };
    s.update_device_list(list("6281234567001")).await.unwrap();
    s.update_device_lists(vec![list("6281234567002")])
        .await
        .unwrap();
    assert_eq!(
        s.get_devices("6281234567002")
            .await
            .unwrap()
            .unwrap()
            .devices
            .len(),
        2
    );
    s.delete_devices("6281234567002").await.unwrap();
    assert!(s.get_devices("6281234567002").await.unwrap().is_none());

    s.put_group_metadata(GROUP, b"meta").await.unwrap();
    assert_eq!(
        s.get_group_metadata(GROUP).await.unwrap(),
        Some(b"meta".to_vec())
    );
    s.delete_group_metadata(GROUP).await.unwrap();
    assert_eq!(s.get_group_metadata(GROUP).await.unwrap(), None);

    // Message secrets: the later deadline and parent time win.
    s.put_msg_secret(GROUP, BOB, "m1", &[5; 32]).await.unwrap();
    let entry = |expires_at, message_ts| MsgSecretEntry {
        chat: Arc::from("6281234567002@s.whatsapp.net"),
        sender: Arc::from("6281234567002@s.whatsapp.net"),
        msg_id: Arc::from("m2"),
        secret: [6; 32],
        expires_at,
        message_ts,
    };
    assert_eq!(s.put_msg_secrets(vec![entry(100, 50)]).await.unwrap(), 1);
    s.put_msg_secrets(vec![entry(80, 0)]).await.unwrap();
    assert_eq!(
        s.get_msg_secret_with_ts(BOB, BOB, "m2").await.unwrap(),
        Some((vec![6; 32], 50))
    );
    assert_eq!(
        s.get_msg_secret(GROUP, BOB, "m1").await.unwrap(),
        Some(vec![5; 32])
    );
    assert_eq!(s.delete_expired_msg_secrets(99).await.unwrap(), 0);
    assert_eq!(s.delete_expired_msg_secrets(100).await.unwrap(), 1);
    assert!(
        s.get_msg_secret(GROUP, BOB, "m1").await.unwrap().is_some(),
        "a secret without a deadline is kept"
    );

    // The device.
    assert!(!s.exists().await.unwrap());
    assert_eq!(s.create().await.unwrap(), 1);
    assert!(s.exists().await.unwrap());
    let mut device = s.load().await.unwrap().expect("created");
    device.push_name = "Toko Andi".into();
    device.registration_id = 4242;
    s.save(&device).await.unwrap();
    let loaded = s.load().await.unwrap().unwrap();
    assert_eq!(
        (loaded.push_name.as_str(), loaded.registration_id),
        ("Toko Andi", 4242)
    );
    assert_eq!(
        loaded.identity_key.public_key.public_key_bytes(),
        device.identity_key.public_key.public_key_bytes()
    );

    // Nothing stored in the clear: no JID or phone number in any column.
    type RawRow = (Vec<u8>, Option<Vec<u8>>, Vec<u8>);
    let raw: Vec<RawRow> = sqlx::query_as("select key_hash, scope_hash, sealed from native_keys")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert!(!raw.is_empty());
    for (key_hash, scope_hash, sealed) in raw {
        for column in [key_hash, scope_hash.unwrap_or_default(), sealed] {
            for needle in [
                &b"6281234567"[..],
                b"Toko Andi",
                b"ratchet",
                b"whatsapp.net",
            ] {
                assert!(
                    !column.windows(needle.len()).any(|w| w == needle),
                    "{needle:?} stored in the clear"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_row_of_one_session_does_not_open_as_another() {
    let db = database().await;
    let (a, b) = (SessionId::new(), SessionId::new());
    let store_a = KeyStore::open(db.pool.clone(), &key(), a, fence(1))
        .await
        .unwrap();
    let store_b = KeyStore::open(db.pool.clone(), &key(), b, fence(1))
        .await
        .unwrap();
    store_a.put_session(ALICE, b"secret ratchet").await.unwrap();

    // The same address hashes differently per session: b finds nothing.
    assert_eq!(store_b.get_session(ALICE).await.unwrap(), None);

    // Copy a's rows onto b, under b's own lookup hash: they still do not
    // open, the session being bound in as associated data.
    let sealed: Vec<u8> =
        sqlx::query_scalar("select sealed from native_keys where session_id = $1 and kind = 2")
            .bind(a.as_uuid())
            .fetch_one(&db.pool)
            .await
            .unwrap();
    store_b.put_session(ALICE, b"placeholder").await.unwrap();
    sqlx::query("update native_keys set sealed = $1 where session_id = $2 and kind = 2")
        .bind(&sealed)
        .bind(b.as_uuid())
        .execute(&db.pool)
        .await
        .unwrap();
    let err = store_b.get_session(ALICE).await.unwrap_err();
    assert!(matches!(err, StoreError::Serialization(_)), "{err:?}");

    // Another installation key opens nothing either.
    let other = KeyStore::open(db.pool.clone(), &SecretKey::new([3; 32]), a, fence(1))
        .await
        .unwrap();
    assert_eq!(other.get_session(ALICE).await.unwrap(), None);
    assert_eq!(
        store_a.get_session(ALICE).await.unwrap().as_deref(),
        Some(&b"secret ratchet"[..])
    );
}

#[tokio::test]
async fn a_restarted_engine_restores_the_device_and_its_keys() {
    let db = database().await;
    let session = SessionId::new();
    let first = KeyStore::open(db.pool.clone(), &key(), session, fence(1))
        .await
        .unwrap();
    first.create().await.unwrap();
    let mut device: Device = first.load().await.unwrap().unwrap();
    device.push_name = "Toko Andi".into();
    first.save(&device).await.unwrap();
    first.put_session(BOB, b"ratchet").await.unwrap();
    first.store_prekey(1, b"pk1", true).await.unwrap();
    drop(first);
    assert!(store::has_device(&db.pool, session).await.unwrap());

    // A new process: a new pool, the same fence taken back.
    let pool = PgPool::connect(&db._database.url).await.unwrap();
    let second = KeyStore::open(pool, &key(), session, fence(1))
        .await
        .unwrap();
    let restored = second.load().await.unwrap().expect("the device is back");
    assert_eq!(restored.push_name, "Toko Andi");
    assert_eq!(
        restored.identity_key.public_key.public_key_bytes(),
        device.identity_key.public_key.public_key_bytes(),
        "the same identity"
    );
    assert_eq!(
        restored.noise_key.public_key.public_key_bytes(),
        device.noise_key.public_key.public_key_bytes()
    );
    assert_eq!(restored.adv_secret_key, device.adv_secret_key);
    assert!(second.has_session(BOB).await.unwrap());
    assert!(second.load_prekey(1).await.unwrap().is_some());
}

#[tokio::test]
async fn an_engine_that_lost_the_lease_cannot_write_the_keys() {
    let db = database().await;
    let client = async_nats::connect(nats_url()).await.expect("NATS is up");
    let js = async_nats::jetstream::new(client);
    let prefix = unique_prefix();
    let ttl = Duration::from_secs(1);
    let leases_a = SessionLeases::open(&js, &Prefix::parse(&prefix).unwrap(), "engine-a", ttl)
        .await
        .unwrap();
    let leases_b = SessionLeases::open(&js, &Prefix::parse(&prefix).unwrap(), "engine-b", ttl)
        .await
        .unwrap();
    let session = SessionId::new();
    let name = session.to_string();

    let lease_a = leases_a.acquire(&name).await.unwrap().expect("free");
    let a = KeyStore::open(db.pool.clone(), &key(), session, lease_a.fence())
        .await
        .unwrap();
    a.put_session(BOB, b"by a").await.unwrap();

    // a stalls past its TTL; b takes the session over.
    let lease_b = loop {
        if let Some(lease) = leases_b.acquire(&name).await.unwrap() {
            break lease;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(lease_b.fence() > lease_a.fence());
    let b = KeyStore::open(db.pool.clone(), &key(), session, lease_b.fence())
        .await
        .unwrap();

    // a wakes: every write is refused, reads still answer.
    let err = a.put_session(BOB, b"stale a").await.unwrap_err();
    assert!(is_fenced(&err), "{err:?}");
    assert!(is_fenced(
        &a.store_prekeys_batch(&[(1, Bytes::from_static(b"x"))], false)
            .await
            .unwrap_err()
    ));
    assert!(is_fenced(&a.create().await.unwrap_err()));
    assert_eq!(
        a.get_session(BOB).await.unwrap().as_deref(),
        Some(&b"by a"[..])
    );
    // Nor can a open the store again with its old fence.
    assert!(matches!(
        KeyStore::open(db.pool.clone(), &key(), session, lease_a.fence()).await,
        Err(KeyStoreError::Fenced { .. })
    ));

    b.put_session(BOB, b"by b").await.unwrap();
    assert_eq!(
        a.get_session(BOB).await.unwrap().as_deref(),
        Some(&b"by b"[..])
    );
    delete_streams(&nats_url(), &prefix);
}

#[tokio::test]
async fn erasing_a_session_leaves_nothing_and_fences_its_holder() {
    let db = database().await;
    let (session, other) = (SessionId::new(), SessionId::new());
    let s = KeyStore::open(db.pool.clone(), &key(), session, fence(5))
        .await
        .unwrap();
    let o = KeyStore::open(db.pool.clone(), &key(), other, fence(5))
        .await
        .unwrap();
    s.create().await.unwrap();
    s.put_identity(BOB, [1; 32]).await.unwrap();
    s.put_session(BOB, b"r").await.unwrap();
    s.store_prekeys_batch(
        &[(1, Bytes::from_static(b"a")), (2, Bytes::from_static(b"b"))],
        true,
    )
    .await
    .unwrap();
    s.put_msg_secret(BOB, BOB, "m", &[1; 32]).await.unwrap();
    o.put_session(BOB, b"kept").await.unwrap();
    assert!(rows(&db.pool, session).await >= 6);

    assert!(store::erase(&db.pool, session).await.unwrap() >= 6);

    assert_eq!(rows(&db.pool, session).await, 0);
    let fences: i64 =
        sqlx::query_scalar("select count(*) from native_key_fences where session_id = $1")
            .bind(session.as_uuid())
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(fences, 0);
    assert!(!store::has_device(&db.pool, session).await.unwrap());
    // The holder of before cannot write anything back.
    assert!(is_fenced(&s.put_session(BOB, b"again").await.unwrap_err()));
    assert_eq!(rows(&db.pool, session).await, 0);
    // Another session's keys are untouched.
    assert_eq!(
        o.get_session(BOB).await.unwrap().as_deref(),
        Some(&b"kept"[..])
    );
}
