//! The `whatsapp-rust` client on our PostgreSQL key store, against an
//! in-process fake WhatsApp server that speaks the real Noise XX handshake
//! (the crate's own protocol types and primitives, modelled on its
//! `tests/handshake_integration.rs`) and then the server's first stanza:
//! `<pair-device>` with its refs for a new device, a `<failure>` for a
//! linked one.
//!
//! What this proves: the crate accepts our `Backend` (it creates its
//! device in it, reads it back to build the QR codes and to log in),
//! completes a real Noise handshake over our transport, shows a QR code
//! that carries the server's ref and the identity stored in PostgreSQL (the
//! same identity after a restart), logs a linked device in as the number
//! stored, and reports a 401 as logged out and a 402 as a temporary ban.
//! What it cannot: that WhatsApp's servers answer as this fake does (its
//! certificate chain is a test one, accepted only because the tests build
//! the crate with `danger-skip-cert-chain-verify`). The server also pairs
//! a device as a phone would, resumes linked devices with Noise IK,
//! answers the post-login queries, serves recipients' pre-key bundles,
//! acks messages with receipts and delivers a contact's encrypted
//! message: the native driver's tests (`native_driver.rs`) use all of
//! that.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use sqlx::PgPool;
use tokio::sync::mpsc;
use wablast_domain::session::Fence;
use wablast_domain::types::SessionId;
use wablast_session_engine::native::store::KeyStore;
use wablast_tests::TestDatabase;
use wablast_workflows::credentials::SecretKey;
use wacore::handshake::NoiseHandshake;
use wacore::libsignal::protocol::error::Result as SignalResult;
use wacore::libsignal::protocol::{
    Direction, IdentityChange, IdentityKey, IdentityKeyPair, IdentityKeyStore, KeyPair,
    PreKeyBundle, ProtocolAddress, PublicKey, SessionRecord, SessionStore, UsePQRatchet,
    message_encrypt, process_prekey_bundle,
};
use wacore::noise::NoiseCipher;
use wacore::store::traits::DeviceStore;
use wacore::types::jid::JidExt as _;
use whatsapp_rust::async_channel;
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::transport::{DisconnectReason, Transport, TransportEvent, TransportFactory};
use whatsapp_rust::types::events::{ConnectFailureReason, Event, TempBanReason};
use whatsapp_rust::wacore_binary::Node;
use whatsapp_rust::wacore_binary::builder::NodeBuilder;
use whatsapp_rust::wacore_binary::consts::{NOISE_PATTERN_IK, NOISE_PATTERN_XX, WA_CONN_HEADER};
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::{anyhow, async_trait};

/// What the fake server does with a message the client sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum OnMessage {
    /// Acks it, then reports it delivered and read.
    AckAndReceipts,
    /// Refuses it: `<ack error="code">`.
    Refuse(&'static str),
    /// Says nothing.
    Silent,
}

/// A message the client sent: its id, recipient, and the types of its
/// encrypted payloads with their sizes.
pub(crate) type SentStanza = (String, String, Vec<(String, usize)>);

/// What the server pushes on an open connection.
enum Push {
    Stanza(Node),
    Close,
}

/// The fake server's long-lived identity and the certificate chain it
/// presents (signed by the crate's test root), and what it knows of the
/// accounts it serves.
pub(crate) struct FakeWhatsApp {
    identity: KeyPair,
    cert_chain: Vec<u8>,
    refs: Vec<String>,
    /// The `<failure>` attributes it answers a linked device's login with
    /// (none: `<success>`).
    on_login: Mutex<Vec<(&'static str, &'static str)>>,
    /// The users (numbers) of the linked devices that logged in.
    pub(crate) logins: Mutex<Vec<u64>>,
    /// The open connection, to push stanzas on.
    current: Mutex<Option<mpsc::UnboundedSender<Push>>>,
    /// The phone's account key, that signs the devices it links.
    account: KeyPair,
    /// What it does with messages.
    pub(crate) on_message: Mutex<OnMessage>,
    /// The messages the client sent: id, recipient, and the types of their
    /// encrypted payloads (`pkmsg`, `msg`, `skmsg`) with their sizes.
    pub(crate) messages: Mutex<Vec<SentStanza>>,
    /// Every stanza the client sent, by tag and xmlns (what it asked for).
    pub(crate) asked: Mutex<Vec<String>>,
    /// The recipients' keys, by user.
    recipients: Mutex<HashMap<String, Recipient>>,
    /// Connections made.
    pub(crate) connections: AtomicUsize,
    /// The pre-keys the linked device uploaded (its bundle, for senders).
    uploaded: Mutex<Option<Uploaded>>,
}

/// A device's keys as it uploaded them (`<iq xmlns="encrypt"
/// type="set">`).
#[derive(Clone)]
struct Uploaded {
    registration_id: u32,
    identity: Vec<u8>,
    pre_key: (u32, Vec<u8>),
    signed_pre_key: (u32, Vec<u8>, Vec<u8>),
}

fn child_bytes(node: &Node, tag: &str) -> Option<Vec<u8>> {
    match &node.get_optional_child(tag)?.content {
        Some(whatsapp_rust::wacore_binary::NodeContent::Bytes(bytes)) => Some(bytes.clone()),
        _ => None,
    }
}

fn be_u32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0, |n, b| (n << 8) | u32::from(*b))
}

impl Uploaded {
    fn of(iq: &Node) -> Option<Self> {
        let key = iq.get_optional_child("list")?.children()?.first()?;
        let skey = iq.get_optional_child("skey")?;
        Some(Self {
            registration_id: be_u32(&child_bytes(iq, "registration")?),
            identity: child_bytes(iq, "identity")?,
            pre_key: (be_u32(&child_bytes(key, "id")?), child_bytes(key, "value")?),
            signed_pre_key: (
                be_u32(&child_bytes(skey, "id")?),
                child_bytes(skey, "value")?,
                child_bytes(skey, "signature")?,
            ),
        })
    }
}

/// A sender's Signal state, in memory (the fake phone that writes to the
/// linked device).
#[derive(Default)]
struct SenderSessions(HashMap<String, Vec<u8>>);

#[async_trait]
impl SessionStore for SenderSessions {
    async fn load_session(&self, address: &ProtocolAddress) -> SignalResult<Option<SessionRecord>> {
        Ok(self
            .0
            .get(&address.to_string())
            .and_then(|b| SessionRecord::deserialize(b).ok()))
    }

    async fn has_session(&self, address: &ProtocolAddress) -> SignalResult<bool> {
        Ok(self.0.contains_key(&address.to_string()))
    }

    async fn store_session(
        &mut self,
        address: &ProtocolAddress,
        record: SessionRecord,
    ) -> SignalResult<()> {
        self.0.insert(address.to_string(), record.serialize()?);
        Ok(())
    }
}

struct SenderIdentity(IdentityKeyPair);

#[async_trait]
impl IdentityKeyStore for SenderIdentity {
    async fn get_identity_key_pair(&self) -> SignalResult<IdentityKeyPair> {
        Ok(self.0.clone())
    }

    async fn get_local_registration_id(&self) -> SignalResult<u32> {
        Ok(77)
    }

    async fn save_identity(
        &mut self,
        _: &ProtocolAddress,
        _: &IdentityKey,
    ) -> SignalResult<IdentityChange> {
        Ok(IdentityChange::from_changed(false))
    }

    async fn is_trusted_identity(
        &self,
        _: &ProtocolAddress,
        _: &IdentityKey,
        _: Direction,
    ) -> SignalResult<bool> {
        Ok(true)
    }

    async fn get_identity(&self, _: &ProtocolAddress) -> SignalResult<Option<IdentityKey>> {
        Ok(None)
    }
}

/// A recipient's Signal keys, as a phone would have published them.
struct Recipient {
    registration_id: u32,
    identity: KeyPair,
    signed_pre_key: KeyPair,
    signature: Vec<u8>,
    pre_key: KeyPair,
}

impl Recipient {
    fn new() -> Self {
        let mut rng = rand010::rng();
        let identity = KeyPair::generate(&mut rng);
        let signed_pre_key = KeyPair::generate(&mut rng);
        let signature = identity
            .private_key
            .calculate_signature(&signed_pre_key.public_key.serialize(), &mut rng)
            .expect("a signature")
            .to_vec();
        Self {
            registration_id: 4242,
            identity,
            signed_pre_key,
            signature,
            pre_key: KeyPair::generate(&mut rng),
        }
    }
}

fn attr(node: &Node, key: &str) -> Option<String> {
    node.attrs().optional_string(key).map(|v| v.into_owned())
}

impl FakeWhatsApp {
    pub(crate) fn new(refs: &[&str]) -> Arc<Self> {
        let identity = KeyPair::generate(&mut rand010::rng());
        let cert_chain = wacore_noise::test_util::build_cert_chain_bytes(&public(&identity));
        Arc::new(Self {
            identity,
            cert_chain,
            refs: refs.iter().map(|r| (*r).to_owned()).collect(),
            on_login: Mutex::default(),
            logins: Mutex::default(),
            current: Mutex::default(),
            account: KeyPair::generate(&mut rand010::rng()),
            on_message: Mutex::new(OnMessage::AckAndReceipts),
            messages: Mutex::default(),
            asked: Mutex::default(),
            recipients: Mutex::default(),
            connections: AtomicUsize::new(0),
            uploaded: Mutex::default(),
        })
    }

    /// A server that refuses every linked device's login with a
    /// `<failure>` of these attributes.
    pub(crate) fn refusing_logins(failure: &[(&'static str, &'static str)]) -> Arc<Self> {
        let server = Self::new(&[]);
        server.refuse_logins(failure);
        server
    }

    /// From now on, refuses linked devices' logins with a `<failure>` of
    /// these attributes.
    pub(crate) fn refuse_logins(&self, failure: &[(&'static str, &'static str)]) {
        *self.on_login.lock().unwrap() = failure.to_vec();
    }

    /// Makes `user` (digits) a WhatsApp user with published keys.
    pub(crate) fn register(&self, user: &str) {
        self.recipients
            .lock()
            .unwrap()
            .insert(user.to_owned(), Recipient::new());
    }

    fn push(&self, push: Push) -> bool {
        self.current
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|tx| tx.send(push).is_ok())
    }

    /// Pushes a stanza on the open connection.
    pub(crate) fn send(&self, stanza: Node) -> bool {
        self.push(Push::Stanza(stanza))
    }

    /// Drops the open connection (as a network failure would).
    pub(crate) fn drop_connection(&self) -> bool {
        self.push(Push::Close)
    }

    /// The phone of `user` scans `qr`: the server tells the client its
    /// device is linked (`<pair-success>`, with a device identity signed by
    /// the account and MACed with the QR's secret, as a phone makes it).
    pub(crate) fn scan(&self, qr: &str, user: &str) -> bool {
        let fields: Vec<&str> = qr.split(',').collect();
        let identity = base64::engine::general_purpose::STANDARD
            .decode(fields[2])
            .expect("the QR's identity key");
        let adv_secret = base64::engine::general_purpose::STANDARD
            .decode(fields[3])
            .expect("the QR's secret");
        let details = wa::ADVDeviceIdentity {
            raw_id: Some(7),
            timestamp: Some(u64::try_from(chrono::Utc::now().timestamp()).unwrap()),
            key_index: Some(1),
            account_type: Some(wa::ADVEncryptionType::E2EE),
            device_type: Some(wa::ADVEncryptionType::E2EE),
        }
        .encode_to_vec();
        let mut signed = vec![6, 0];
        signed.extend_from_slice(&details);
        signed.extend_from_slice(&identity);
        let signature = self
            .account
            .private_key
            .calculate_signature(&signed, &mut rand010::rng())
            .expect("a signature");
        let signed = wa::ADVSignedDeviceIdentity {
            details: Some(details),
            account_signature_key: Some(public(&self.account).to_vec()),
            account_signature: Some(signature.to_vec()),
            device_signature: None,
        }
        .encode_to_vec();
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(&adv_secret)
            .expect("any key");
        hmac::Mac::update(&mut mac, &signed);
        let container = wa::ADVSignedDeviceIdentityHMAC {
            details: Some(signed),
            hmac: Some(hmac::Mac::finalize(mac).into_bytes().to_vec()),
            account_type: Some(wa::ADVEncryptionType::E2EE),
        }
        .encode_to_vec();
        self.send(
            NodeBuilder::new("iq")
                .attrs([
                    ("from", "s.whatsapp.net".to_owned()),
                    ("type", "set".to_owned()),
                    ("id", "pair-2".to_owned()),
                    ("xmlns", "md".to_owned()),
                ])
                .children([NodeBuilder::new("pair-success")
                    .children([
                        NodeBuilder::new("device-identity").bytes(container).build(),
                        NodeBuilder::new("device")
                            .attr("jid", format!("{user}:7@s.whatsapp.net"))
                            .attr("lid", format!("9{user}:7@lid"))
                            .build(),
                        NodeBuilder::new("biz").attr("name", "Fake Shop").build(),
                        NodeBuilder::new("platform").attr("name", "android").build(),
                    ])
                    .build()])
                .build(),
        )
    }

    /// `from` (digits) writes `text` to the linked device, as a phone
    /// would: a Signal session opened from the device's uploaded pre-keys,
    /// the message encrypted and padded as WhatsApp does, pushed as a
    /// `<message>` with `id`.
    pub(crate) async fn deliver_text(&self, from: &str, id: &str, text: &str) -> bool {
        let Some(keys) = self.uploaded.lock().unwrap().clone() else {
            return false;
        };
        let device: whatsapp_rust::Jid = format!("{}:7@s.whatsapp.net", self.linked_user())
            .parse()
            .expect("a device JID");
        let address = device.to_protocol_address();
        let bundle = PreKeyBundle::new(
            keys.registration_id,
            7u32.into(),
            Some((
                keys.pre_key.0.into(),
                PublicKey::from_djb_public_key_bytes(&keys.pre_key.1).expect("a pre-key"),
            )),
            keys.signed_pre_key.0.into(),
            PublicKey::from_djb_public_key_bytes(&keys.signed_pre_key.1).expect("a signed pre-key"),
            keys.signed_pre_key.2.clone(),
            IdentityKey::new(
                PublicKey::from_djb_public_key_bytes(&keys.identity).expect("an identity"),
            ),
        )
        .expect("a bundle");
        let mut sessions = SenderSessions::default();
        let mut identity = SenderIdentity(IdentityKeyPair::generate(&mut rand010::rng()));
        process_prekey_bundle(
            &address,
            &mut sessions,
            &mut identity,
            &bundle,
            &mut rand010::rng(),
            UsePQRatchet::No,
        )
        .await
        .expect("a session from the device's bundle");
        let plain = wa::Message {
            conversation: Some(text.to_owned()),
            ..Default::default()
        }
        .encode_to_vec();
        let padded = wacore::messages::MessageUtils::pad_message_v2(plain);
        let sealed = message_encrypt(&padded, &address, &mut sessions, &mut identity)
            .await
            .expect("encrypted");
        self.send(
            NodeBuilder::new("message")
                .attr("from", format!("{from}@s.whatsapp.net"))
                .attr("id", id.to_owned())
                .attr("type", "text")
                .attr("t", chrono::Utc::now().timestamp().to_string())
                .attr("notify", "Budi")
                .children([NodeBuilder::new("enc")
                    .attr("v", "2")
                    .attr("type", "pkmsg")
                    .bytes(sealed.serialize().to_vec())
                    .build()])
                .build(),
        )
    }

    /// The number of the last device that logged in.
    fn linked_user(&self) -> u64 {
        *self
            .logins
            .lock()
            .unwrap()
            .last()
            .expect("a device logged in")
    }

    /// The server's first stanza for a login.
    fn greeting(&self, login: &wa::ClientPayload) -> Node {
        match login.username {
            // A linked device logs in: `<success>`, or the configured
            // failure.
            Some(user) => {
                self.logins.lock().expect("not poisoned").push(user);
                let failure = self.on_login.lock().unwrap().clone();
                if failure.is_empty() {
                    NodeBuilder::new("success")
                        .attr("t", chrono::Utc::now().timestamp().to_string())
                        .attr("lid", format!("9{user}:7@lid"))
                        .attr("props", "1")
                        .build()
                } else {
                    NodeBuilder::new("failure")
                        .attrs(failure.iter().map(|(k, v)| (*k, (*v).to_owned())))
                        .build()
                }
            }
            // A new device registers: `<pair-device>` with the refs the QR
            // codes carry.
            None => NodeBuilder::new("iq")
                .attrs([
                    ("from", "s.whatsapp.net".to_owned()),
                    ("type", "set".to_owned()),
                    ("id", "pair-1".to_owned()),
                    ("xmlns", "md".to_owned()),
                ])
                .children([NodeBuilder::new("pair-device")
                    .children(self.refs.iter().map(|r| {
                        NodeBuilder::new("ref")
                            .bytes(r.clone().into_bytes())
                            .build()
                    }))
                    .build()])
                .build(),
        }
    }

    /// What the server answers a stanza of the client with.
    fn answer(&self, node: &Node) -> Vec<Push> {
        let xmlns = attr(node, "xmlns").unwrap_or_default();
        let first_child = node
            .children()
            .and_then(|c| c.first())
            .map(|c| c.tag.to_string())
            .unwrap_or_default();
        self.asked.lock().unwrap().push(format!(
            "{} {} {xmlns} {first_child}",
            node.tag,
            attr(node, "type").unwrap_or_default()
        ));
        match node.tag.as_ref() {
            "iq" => self.answer_iq(node, &xmlns, &first_child),
            "message" => self.answer_message(node),
            _ => Vec::new(),
        }
    }

    fn answer_iq(&self, node: &Node, xmlns: &str, first_child: &str) -> Vec<Push> {
        let id = attr(node, "id").unwrap_or_default();
        let kind = attr(node, "type").unwrap_or_default();
        if kind == "result" || kind == "error" {
            // The client's answer to the server: after it signed the
            // pairing, the server restarts the stream (515), as WhatsApp
            // does, and the client logs in as the linked device.
            if first_child == "pair-device-sign" {
                return vec![
                    Push::Stanza(NodeBuilder::new("stream:error").attr("code", "515").build()),
                    Push::Close,
                ];
            }
            return Vec::new();
        }
        let result = |children: Vec<Node>| {
            let mut iq = NodeBuilder::new("iq").attrs([
                ("id", id.clone()),
                ("type", "result".to_owned()),
                ("from", "s.whatsapp.net".to_owned()),
            ]);
            if !children.is_empty() {
                iq = iq.children(children);
            }
            Push::Stanza(iq.build())
        };
        match (xmlns, first_child) {
            // Going active: the offline queue is empty.
            ("passive", _) => vec![
                result(Vec::new()),
                Push::Stanza(
                    NodeBuilder::new("ib")
                        .children([NodeBuilder::new("offline").attr("count", "0").build()])
                        .build(),
                ),
            ],
            // App state: this server keeps none (each collection refused as
            // not found, which the client logs in without).
            ("w:sync:app:state", _) => {
                let collections = node
                    .get_optional_child("sync")
                    .and_then(Node::children)
                    .unwrap_or_default()
                    .iter()
                    .map(|c| {
                        NodeBuilder::new("collection")
                            .attr("name", attr(c, "name").unwrap_or_default())
                            .attr("type", "error")
                            .children([NodeBuilder::new("error")
                                .attr("code", "404")
                                .attr("text", "item-not-found")
                                .build()])
                            .build()
                    })
                    .collect::<Vec<_>>();
                vec![result(vec![
                    NodeBuilder::new("sync").children(collections).build(),
                ])]
            }
            // A pairing code asked for: the server's ref for it.
            ("md", "link_code_companion_reg") => vec![result(vec![
                NodeBuilder::new("link_code_companion_reg")
                    .children([NodeBuilder::new("link_code_pairing_ref")
                        .bytes(b"2@code-ref".to_vec())
                        .build()])
                    .build(),
            ])],
            ("encrypt", "registration") => {
                *self.uploaded.lock().unwrap() = Uploaded::of(node);
                vec![result(Vec::new())]
            }
            // The one group the linked number is in.
            ("w:g2", "participating") => vec![result(vec![
                NodeBuilder::new("groups").children([Self::group()]).build(),
            ])],
            ("w:g2", "query") => vec![result(vec![Self::group()])],
            ("encrypt", "count") => vec![result(vec![
                NodeBuilder::new("count").attr("value", "50").build(),
            ])],
            ("encrypt", "key") => vec![result(vec![self.pre_key_bundles(node)])],
            ("usync", _) => vec![result(vec![self.usync(node)])],
            _ => vec![result(Vec::new())],
        }
    }

    /// The group the linked number is in: two members, one an admin.
    fn group() -> Node {
        NodeBuilder::new("group")
            .attr("id", "120363000000000001")
            .attr("subject", "Pelanggan setia")
            .attr("creation", "1700000000")
            .children([
                NodeBuilder::new("participant")
                    .attr("jid", "6281234567002@s.whatsapp.net")
                    .attr("type", "admin")
                    .build(),
                NodeBuilder::new("participant")
                    .attr("jid", "6281234567003@s.whatsapp.net")
                    .build(),
            ])
            .build()
    }

    /// `<list>` of the bundles asked for (device 0 of registered users).
    fn pre_key_bundles(&self, node: &Node) -> Node {
        let recipients = self.recipients.lock().unwrap();
        let users = node
            .get_optional_child("key")
            .and_then(Node::children)
            .unwrap_or_default()
            .iter()
            .filter_map(|user| {
                let jid = attr(user, "jid")?;
                let digits = jid.split(['@', ':']).next()?.to_owned();
                let keys = recipients.get(&digits)?;
                Some(
                    NodeBuilder::new("user")
                        .attr("jid", jid)
                        .children([
                            NodeBuilder::new("registration")
                                .bytes(keys.registration_id.to_be_bytes().to_vec())
                                .build(),
                            NodeBuilder::new("type").bytes(vec![5]).build(),
                            NodeBuilder::new("identity")
                                .bytes(public(&keys.identity).to_vec())
                                .build(),
                            NodeBuilder::new("skey")
                                .children([
                                    NodeBuilder::new("id").bytes(vec![0, 0, 1]).build(),
                                    NodeBuilder::new("value")
                                        .bytes(public(&keys.signed_pre_key).to_vec())
                                        .build(),
                                    NodeBuilder::new("signature")
                                        .bytes(keys.signature.clone())
                                        .build(),
                                ])
                                .build(),
                            NodeBuilder::new("key")
                                .children([
                                    NodeBuilder::new("id").bytes(vec![0, 0, 2]).build(),
                                    NodeBuilder::new("value")
                                        .bytes(public(&keys.pre_key).to_vec())
                                        .build(),
                                ])
                                .build(),
                        ])
                        .build(),
                )
            })
            .collect::<Vec<_>>();
        NodeBuilder::new("list").children(users).build()
    }

    /// A usync answer: every user asked for, with its one device (the
    /// phone) and whether it is on WhatsApp.
    fn usync(&self, node: &Node) -> Node {
        let recipients = self.recipients.lock().unwrap();
        let query = node.get_optional_child("usync");
        let list = query
            .and_then(|u| u.get_optional_child("list"))
            .and_then(Node::children)
            .unwrap_or_default();
        let users = list
            .iter()
            .map(|user| {
                let jid = attr(user, "jid").or_else(|| {
                    user.get_optional_child("contact")
                        .and_then(Node::content_as_string)
                        .map(|phone| format!("{}@s.whatsapp.net", phone.trim_start_matches('+')))
                });
                let jid = jid.unwrap_or_default();
                let digits = jid.split(['@', ':']).next().unwrap_or_default().to_owned();
                let known = recipients.contains_key(&digits);
                NodeBuilder::new("user")
                    .attr("jid", format!("{digits}@s.whatsapp.net"))
                    .children([
                        NodeBuilder::new("contact")
                            .attr("type", if known { "in" } else { "out" })
                            .build(),
                        NodeBuilder::new("devices")
                            .children([NodeBuilder::new("device-list")
                                .children([NodeBuilder::new("device").attr("id", "0").build()])
                                .build()])
                            .build(),
                    ])
                    .build()
            })
            .collect::<Vec<_>>();
        NodeBuilder::new("usync")
            .children([
                NodeBuilder::new("result").build(),
                NodeBuilder::new("list").children(users).build(),
            ])
            .build()
    }

    fn answer_message(&self, node: &Node) -> Vec<Push> {
        let id = attr(node, "id").unwrap_or_default();
        let to = attr(node, "to").unwrap_or_default();
        let mut encrypted = Vec::new();
        let mut stack = vec![node];
        while let Some(at) = stack.pop() {
            for child in at.children().unwrap_or_default() {
                if child.tag == "enc" {
                    let size = match &child.content {
                        Some(whatsapp_rust::wacore_binary::NodeContent::Bytes(bytes)) => {
                            bytes.len()
                        }
                        _ => 0,
                    };
                    encrypted.push((attr(child, "type").unwrap_or_default(), size));
                } else {
                    stack.push(child);
                }
            }
        }
        self.messages
            .lock()
            .unwrap()
            .push((id.clone(), to.clone(), encrypted));
        let ack = |error: Option<&str>| {
            let mut ack = NodeBuilder::new("ack")
                .attr("class", "message")
                .attr("id", id.clone())
                .attr("from", to.clone())
                .attr("t", chrono::Utc::now().timestamp().to_string());
            if let Some(code) = error {
                ack = ack.attr("error", code);
            }
            Push::Stanza(ack.build())
        };
        let receipt = |kind: Option<&str>| {
            let mut receipt = NodeBuilder::new("receipt")
                .attr("id", id.clone())
                .attr("from", to.clone())
                .attr("t", chrono::Utc::now().timestamp().to_string());
            if let Some(kind) = kind {
                receipt = receipt.attr("type", kind);
            }
            Push::Stanza(receipt.build())
        };
        match self.on_message.lock().unwrap().clone() {
            OnMessage::AckAndReceipts => vec![ack(None), receipt(None), receipt(Some("read"))],
            OnMessage::Refuse(code) => vec![ack(Some(code))],
            OnMessage::Silent => Vec::new(),
        }
    }

    /// The Noise XX handshake (a new device, or one without the server's
    /// key): the server's hello, then the client's finish with its login.
    async fn accept_xx(
        &self,
        client_ephemeral: &[u8],
        frames: &mut Frames,
        inbound: &mut mpsc::UnboundedReceiver<Bytes>,
        outbound: &async_channel::Sender<TransportEvent>,
    ) -> anyhow::Result<(wa::ClientPayload, NoiseCipher, NoiseCipher)> {
        let client_ephemeral: [u8; 32] = client_ephemeral
            .try_into()
            .map_err(|_| anyhow::anyhow!("ephemeral is not 32 bytes"))?;
        let mut noise = NoiseHandshake::new(NOISE_PATTERN_XX, &WA_CONN_HEADER)?;
        noise.authenticate(&client_ephemeral);
        let ephemeral = KeyPair::generate(&mut rand010::rng());
        noise.authenticate(&public(&ephemeral));
        noise.mix_shared_secret(ephemeral.private_key.serialize(), &client_ephemeral)?;
        let encrypted_static = noise.encrypt(&public(&self.identity))?;
        noise.mix_shared_secret(self.identity.private_key.serialize(), &client_ephemeral)?;
        let encrypted_cert = noise.encrypt(&self.cert_chain)?;
        let server_hello = wa::HandshakeMessage {
            server_hello: whatsapp_rust::buffa::MessageField::some(
                wa::handshake_message::ServerHello {
                    ephemeral: Some(public(&ephemeral).to_vec()),
                    r#static: Some(encrypted_static),
                    payload: Some(encrypted_cert),
                    ..Default::default()
                },
            ),
            ..Default::default()
        };
        send_frame(outbound, &server_hello.encode_to_vec()).await?;

        // ClientFinish: the client's static key, then its login payload.
        let finish = frames.next(inbound).await?;
        let finish = wa::HandshakeMessage::decode_from_slice(&finish)?
            .client_finish
            .into_option()
            .ok_or_else(|| anyhow::anyhow!("no client finish"))?;
        let client_static = noise.decrypt(
            &finish
                .r#static
                .ok_or_else(|| anyhow::anyhow!("no client static"))?,
        )?;
        noise.mix_shared_secret(ephemeral.private_key.serialize(), &client_static)?;
        let payload = noise.decrypt(
            &finish
                .payload
                .ok_or_else(|| anyhow::anyhow!("no client payload"))?,
        )?;
        let login = wa::ClientPayload::decode_from_slice(&payload)?;
        // Both sides split the same keys: the client writes with the
        // first, the server with the second.
        let (read, write): (NoiseCipher, NoiseCipher) = noise.finish()?;
        Ok((login, read, write))
    }

    /// The Noise IK handshake a linked device resumes with (the crate's
    /// own responder in its `wacore-noise` tests does the same).
    async fn accept_ik(
        &self,
        client_ephemeral: &[u8],
        encrypted_static: &[u8],
        encrypted_payload: &[u8],
        outbound: &async_channel::Sender<TransportEvent>,
    ) -> anyhow::Result<(wa::ClientPayload, NoiseCipher, NoiseCipher)> {
        let mut noise = NoiseHandshake::new(NOISE_PATTERN_IK, &WA_CONN_HEADER)?;
        noise.authenticate(&public(&self.identity));
        noise.authenticate(client_ephemeral);
        noise.mix_shared_secret(self.identity.private_key.serialize(), client_ephemeral)?;
        let client_static = noise.decrypt(encrypted_static)?;
        noise.mix_shared_secret(self.identity.private_key.serialize(), &client_static)?;
        let payload = noise.decrypt(encrypted_payload)?;
        let login = wa::ClientPayload::decode_from_slice(&payload)?;
        let ephemeral = KeyPair::generate(&mut rand010::rng());
        noise.authenticate(&public(&ephemeral));
        noise.mix_shared_secret(ephemeral.private_key.serialize(), client_ephemeral)?;
        noise.mix_shared_secret(ephemeral.private_key.serialize(), &client_static)?;
        let encrypted_cert = noise.encrypt(&self.cert_chain)?;
        let server_hello = wa::HandshakeMessage {
            server_hello: whatsapp_rust::buffa::MessageField::some(
                wa::handshake_message::ServerHello {
                    ephemeral: Some(public(&ephemeral).to_vec()),
                    r#static: None,
                    payload: Some(encrypted_cert),
                    ..Default::default()
                },
            ),
            ..Default::default()
        };
        send_frame(outbound, &server_hello.encode_to_vec()).await?;
        let (read, write) = noise.finish()?;
        Ok((login, read, write))
    }

    /// Serves one connection: the client's bytes arrive on `inbound`, the
    /// server's go out on `outbound`.
    async fn serve(
        self: Arc<Self>,
        mut inbound: mpsc::UnboundedReceiver<Bytes>,
        outbound: async_channel::Sender<TransportEvent>,
    ) -> anyhow::Result<()> {
        let mut frames = Frames::default();
        // ClientHello.
        let hello = frames.next(&mut inbound).await?;
        let hello = wa::HandshakeMessage::decode_from_slice(&hello)?;
        let (login, read, write) = match hello.client_hello.into_option() {
            // A linked device that knows this server's static key resumes
            // with Noise IK: its static key and login come in the hello.
            Some(wa::handshake_message::ClientHello {
                ephemeral: Some(client_ephemeral),
                r#static: Some(encrypted_static),
                payload: Some(encrypted_payload),
                ..
            }) => {
                self.accept_ik(
                    &client_ephemeral,
                    &encrypted_static,
                    &encrypted_payload,
                    &outbound,
                )
                .await?
            }
            Some(wa::handshake_message::ClientHello {
                ephemeral: Some(client_ephemeral),
                ..
            }) => {
                self.accept_xx(&client_ephemeral, &mut frames, &mut inbound, &outbound)
                    .await?
            }
            _ => anyhow::bail!("no client ephemeral"),
        };
        let mut written = 0u32;
        let mut read_count = 0u32;
        let send = |node: &Node, counter: &mut u32| -> anyhow::Result<Vec<u8>> {
            let plain = whatsapp_rust::wacore_binary::marshal::marshal(node)?;
            let sealed = write.encrypt_with_counter(*counter, &plain)?;
            *counter += 1;
            Ok(sealed)
        };

        let (push_tx, mut pushes) = mpsc::unbounded_channel();
        *self.current.lock().unwrap() = Some(push_tx);
        let sealed = send(&self.greeting(&login), &mut written)?;
        send_frame(&outbound, &sealed).await?;

        loop {
            let todo = tokio::select! {
                frame = frames.next(&mut inbound) => {
                    let Ok(mut frame) = frame else { break };
                    read.decrypt_in_place_with_counter(read_count, &mut frame)?;
                    read_count += 1;
                    let plain = whatsapp_rust::wacore_binary::util::unpack(&frame)?;
                    let node = whatsapp_rust::wacore_binary::marshal::unmarshal_ref(&plain)?.to_owned();
                    self.answer(&node)
                }
                push = pushes.recv() => match push {
                    Some(push) => vec![push],
                    None => break,
                },
            };
            for push in todo {
                match push {
                    Push::Stanza(node) => {
                        let sealed = send(&node, &mut written)?;
                        send_frame(&outbound, &sealed).await?;
                    }
                    Push::Close => {
                        let _ = outbound
                            .send(TransportEvent::Disconnected(DisconnectReason::StreamEnded))
                            .await;
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }
}

pub(crate) fn public(pair: &KeyPair) -> [u8; 32] {
    pair.public_key
        .public_key_bytes()
        .try_into()
        .expect("X25519 public keys are 32 bytes")
}

async fn send_frame(
    outbound: &async_channel::Sender<TransportEvent>,
    payload: &[u8],
) -> anyhow::Result<()> {
    let framed = wacore::noise::framing::encode_frame(payload, None)?;
    outbound
        .send(TransportEvent::DataReceived(framed.into()))
        .await?;
    Ok(())
}

/// The client's byte stream cut into frames: the connection header once,
/// then 3-byte big-endian lengths.
#[derive(Default)]
struct Frames {
    buffer: Vec<u8>,
    header_seen: bool,
}

impl Frames {
    async fn next(
        &mut self,
        inbound: &mut mpsc::UnboundedReceiver<Bytes>,
    ) -> anyhow::Result<Vec<u8>> {
        loop {
            if !self.header_seen && self.buffer.len() >= WA_CONN_HEADER.len() {
                anyhow::ensure!(
                    self.buffer.starts_with(&WA_CONN_HEADER),
                    "the client did not open with the WhatsApp header"
                );
                self.buffer.drain(..WA_CONN_HEADER.len());
                self.header_seen = true;
            }
            if self.header_seen && self.buffer.len() >= 3 {
                let len = (usize::from(self.buffer[0]) << 16)
                    | (usize::from(self.buffer[1]) << 8)
                    | usize::from(self.buffer[2]);
                if self.buffer.len() >= 3 + len {
                    let frame = self.buffer[3..3 + len].to_vec();
                    self.buffer.drain(..3 + len);
                    return Ok(frame);
                }
            }
            let bytes = inbound
                .recv()
                .await
                .ok_or_else(|| anyhow::anyhow!("the client closed the connection"))?;
            self.buffer.extend_from_slice(&bytes);
        }
    }
}

/// A transport to the fake server inside this process: what the client
/// sends goes to the server's task, what the server sends comes back as
/// transport events.
pub(crate) struct ToFake {
    pub(crate) server: Arc<FakeWhatsApp>,
}

struct Pipe {
    to_server: mpsc::UnboundedSender<Bytes>,
}

#[async_trait]
impl Transport for Pipe {
    async fn send(&self, data: Bytes) -> anyhow::Result<()> {
        self.to_server
            .send(data)
            .map_err(|_| anyhow::anyhow!("the fake server is gone"))
    }

    async fn disconnect(&self) {}
}

#[async_trait]
impl TransportFactory for ToFake {
    async fn create_transport(
        &self,
    ) -> anyhow::Result<(Arc<dyn Transport>, async_channel::Receiver<TransportEvent>)> {
        self.server
            .connections
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (to_server, inbound) = mpsc::unbounded_channel();
        let (events, receiver) = async_channel::unbounded();
        events.send(TransportEvent::Connected).await?;
        let server = self.server.clone();
        tokio::spawn(async move {
            if let Err(err) = server.serve(inbound, events).await {
                eprintln!("fake WhatsApp server: {err:#}");
            }
        });
        Ok((Arc::new(Pipe { to_server }), receiver))
    }
}

struct Qr {
    code: String,
    timeout: Duration,
}

/// Starts a client on `store`, connected to `server`; its events come out
/// of the returned channel.
async fn client(
    store: KeyStore,
    server: Arc<FakeWhatsApp>,
) -> (BotHandle, mpsc::UnboundedReceiver<Arc<Event>>) {
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let bot = Bot::builder()
        .with_backend(store)
        .with_transport_factory(ToFake { server })
        // No version fetch: nothing here reaches WhatsApp.
        .with_version((2, 3000, 1_000_000_000))
        .skip_history_sync()
        .on_event(move |event, _client| {
            let _ = events_tx.send(event);
            async {}
        })
        .build()
        .await
        .expect("a client on the PostgreSQL key store");
    (bot.spawn(), events_rx)
}

/// The first event `pick` accepts, within 20 s.
async fn next_event<T>(
    events: &mut mpsc::UnboundedReceiver<Arc<Event>>,
    pick: impl Fn(&Event) -> Option<T>,
) -> T {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let event = events.recv().await.expect("the client runs");
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    })
    .await
    .expect("the event within 20 s")
}

async fn next_qr(events: &mut mpsc::UnboundedReceiver<Arc<Event>>) -> Qr {
    next_event(events, |event| match event {
        Event::PairingQrCode(qr) => Some(Qr {
            code: qr.code.clone(),
            timeout: qr.timeout,
        }),
        _ => None,
    })
    .await
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn a_new_device_on_the_postgres_store_shows_the_servers_qr_refs_with_its_stored_identity() {
    // Arrange
    let database = TestDatabase::create().await;
    let pool = PgPool::connect(&database.url).await.expect("PostgreSQL");
    wablast_migrations::run(&pool).await.expect("migrations");
    let session = SessionId::new();
    let fence = Fence {
        epoch: 1,
        revision: 1,
    };
    let key = SecretKey::new([4; 32]);
    let store = KeyStore::open(pool.clone(), &key, session, fence)
        .await
        .unwrap();
    let server = FakeWhatsApp::new(&["2@first-ref", "2@second-ref"]);

    // Act
    let (handle, mut qrs) = client(store.clone(), server.clone()).await;
    let first = next_qr(&mut qrs).await;

    // Assert: the first ref, for 60 s, with the device stored in PostgreSQL.
    let device = store
        .load()
        .await
        .unwrap()
        .expect("the client created its device");
    let fields: Vec<&str> = first.code.split(',').collect();
    assert_eq!(fields[0], "2@first-ref", "{}", first.code);
    assert_eq!(fields[1], b64(&public(&device.noise_key)));
    assert_eq!(fields[2], b64(&public(&device.identity_key)));
    assert_eq!(fields[3], b64(&device.adv_secret_key));
    assert!(
        first.timeout > Duration::from_secs(50) && first.timeout <= Duration::from_secs(60),
        "{:?}",
        first.timeout
    );
    handle.abort();

    // A second client on the same keys (an engine restarted) shows the
    // same identity.
    let store = KeyStore::open(pool.clone(), &key, session, fence)
        .await
        .unwrap();
    let (handle, mut qrs) = client(store, server).await;
    let again = next_qr(&mut qrs).await;
    let again: Vec<&str> = again.code.split(',').collect();
    assert_eq!(again[2], fields[2], "the same identity key");
    assert_eq!(again[1], fields[1], "the same noise key");
    handle.abort();
}

/// The resident set of this process, in bytes (Linux `/proc`).
pub(crate) fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("a VmRSS line")
        * 1024
}

/// Memory per native client: `NATIVE_SESSIONS` (default 1,000) clients,
/// each on its own session's key store, connected to the fake server and
/// showing a QR code. Prints the figure; fails over 1 MB a client (the
/// issue's target). Ignored by default (a minute of a 2-core machine):
/// `cargo test -p wablast-session-engine --test main -- --ignored
/// native_fake_server::memory --nocapture`. It measures the crate's client
/// and our store in this test binary (glibc malloc, debug build), not a
/// whole engine process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run it explicitly"]
async fn memory_per_connected_client_showing_a_qr() {
    let sessions: usize = std::env::var("NATIVE_SESSIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let database = TestDatabase::create().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(120))
        .connect(&database.url)
        .await
        .expect("PostgreSQL");
    wablast_migrations::run(&pool).await.expect("migrations");
    let key = SecretKey::new([4; 32]);
    let server = FakeWhatsApp::new(&["2@ref"]);
    let fence = Fence {
        epoch: 1,
        revision: 1,
    };
    // One client first, so code and the runtime's one-off allocations are
    // in the baseline.
    let warm = KeyStore::open(pool.clone(), &key, SessionId::new(), fence)
        .await
        .unwrap();
    let (warm_handle, mut warm_qrs) = client(warm, server.clone()).await;
    next_qr(&mut warm_qrs).await;
    let before = rss_bytes();

    let started = std::time::Instant::now();
    let mut clients = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        let store = KeyStore::open(pool.clone(), &key, SessionId::new(), fence)
            .await
            .unwrap();
        clients.push(client(store, server.clone()).await);
    }
    for (_, events) in &mut clients {
        next_qr(events).await;
    }
    let after = rss_bytes();
    let per_client = after.saturating_sub(before) / sessions as u64;
    println!(
        "{sessions} native clients showing a QR: RSS {} MiB -> {} MiB, {} KiB per client, all up in {:.1} s",
        before / (1 << 20),
        after / (1 << 20),
        per_client / 1024,
        started.elapsed().as_secs_f64()
    );
    assert!(
        per_client < 1 << 20,
        "{per_client} bytes per client: over the 1 MB target"
    );
    for (handle, _) in clients {
        handle.abort();
    }
    warm_handle.abort();
}

/// A linked device: its store holds a device with a number.
async fn linked_store(pool: &PgPool, key: &SecretKey) -> KeyStore {
    let store = KeyStore::open(
        pool.clone(),
        key,
        SessionId::new(),
        Fence {
            epoch: 1,
            revision: 1,
        },
    )
    .await
    .unwrap();
    store.create().await.unwrap();
    let mut device = store.load().await.unwrap().unwrap();
    device.pn = Some("6281234567001@s.whatsapp.net".parse().unwrap());
    store.save(&device).await.unwrap();
    store
}

#[tokio::test]
async fn a_linked_device_refused_with_401_is_logged_out() {
    let database = TestDatabase::create().await;
    let pool = PgPool::connect(&database.url).await.expect("PostgreSQL");
    wablast_migrations::run(&pool).await.expect("migrations");
    let key = SecretKey::new([4; 32]);
    let store = linked_store(&pool, &key).await;
    let server = FakeWhatsApp::refusing_logins(&[("reason", "401"), ("location", "rva")]);

    let (handle, mut events) = client(store, server.clone()).await;
    let logged_out = next_event(&mut events, |event| match event {
        Event::LoggedOut(out) => Some((out.on_connect, out.reason)),
        _ => None,
    })
    .await;

    assert_eq!(
        *server.logins.lock().unwrap(),
        [6_281_234_567_001],
        "the client logged in as the number stored in PostgreSQL"
    );
    assert!(logged_out.0, "refused at connect");
    assert_eq!(logged_out.1, ConnectFailureReason::LoggedOut);
    handle.abort();
}

#[tokio::test]
async fn a_linked_device_refused_with_402_is_temporarily_banned() {
    let database = TestDatabase::create().await;
    let pool = PgPool::connect(&database.url).await.expect("PostgreSQL");
    wablast_migrations::run(&pool).await.expect("migrations");
    let key = SecretKey::new([4; 32]);
    let store = linked_store(&pool, &key).await;
    let server =
        FakeWhatsApp::refusing_logins(&[("reason", "402"), ("code", "101"), ("expire", "3600")]);

    let (handle, mut events) = client(store, server).await;
    let (code, expire) = next_event(&mut events, |event| match event {
        Event::TemporaryBan(ban) => Some((ban.code.clone(), ban.expire)),
        _ => None,
    })
    .await;

    assert_eq!(code, TempBanReason::SentToTooManyPeople);
    assert_eq!(expire, chrono::Duration::seconds(3600));
    handle.abort();
}
