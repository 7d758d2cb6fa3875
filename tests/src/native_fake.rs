//! A fake WhatsApp server for the native driver's tests: it speaks the
//! real Noise XX (and IK) handshake with the crate's own protocol types and
//! primitives (modelled on `whatsapp-rust`'s
//! `tests/handshake_integration.rs`), then the server's first stanza:
//! `<pair-device>` with its refs for a new device, a `<failure>` for a
//! linked one. It pairs a device as a phone would, resumes linked devices
//! with Noise IK, answers the post-login queries, serves recipients'
//! pre-key bundles, acks messages with receipts and delivers a contact's
//! encrypted message.
//!
//! Two ways in: [`ToFake`], a transport inside the test's process (the
//! session engine's driver tests), and [`FakeWhatsAppNetwork::listen`], a
//! websocket on loopback that the engine of an end-to-end test reaches
//! through `WABLAST_NATIVE_WS_URL`, one fake phone per linked device.
//!
//! What it cannot prove: that WhatsApp's servers answer as this fake does.
//! Its certificate chain is a test one, accepted only by a client built
//! with `whatsapp-rust`'s `danger-skip-cert-chain-verify` feature, which
//! only test builds turn on.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use tokio::sync::mpsc;
use wacore::handshake::NoiseHandshake;
use wacore::libsignal::protocol::error::Result as SignalResult;
use wacore::libsignal::protocol::{
    Direction, IdentityChange, IdentityKey, IdentityKeyPair, IdentityKeyStore, KeyPair,
    PreKeyBundle, ProtocolAddress, PublicKey, SessionRecord, SessionStore, UsePQRatchet,
    message_encrypt, process_prekey_bundle,
};
use wacore::noise::NoiseCipher;
use wacore::types::jid::JidExt as _;
use whatsapp_rust::async_channel;
use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::transport::{DisconnectReason, Transport, TransportEvent, TransportFactory};
use whatsapp_rust::wacore_binary::Node;
use whatsapp_rust::wacore_binary::builder::NodeBuilder;
use whatsapp_rust::wacore_binary::consts::{NOISE_PATTERN_IK, NOISE_PATTERN_XX, WA_CONN_HEADER};
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::{anyhow, async_trait};

/// What the fake server does with a message the client sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnMessage {
    /// Acks it, then reports it delivered and read.
    AckAndReceipts,
    /// Refuses it: `<ack error="code">`.
    Refuse(&'static str),
    /// Says nothing.
    Silent,
}

/// A message the client sent: its id, recipient, and the types of its
/// encrypted payloads with their sizes.
pub type SentStanza = (String, String, Vec<(String, usize)>);

/// What the server pushes on an open connection.
enum Push {
    Stanza(Node),
    Close,
}

/// The fake server's long-lived identity and the certificate chain it
/// presents (signed by the crate's test root), and what it knows of the
/// accounts it serves.
pub struct FakeWhatsApp {
    identity: KeyPair,
    cert_chain: Vec<u8>,
    refs: Vec<String>,
    /// The `<failure>` attributes it answers a linked device's login with
    /// (none: `<success>`).
    on_login: Mutex<Vec<(&'static str, &'static str)>>,
    /// The users (numbers) of the linked devices that logged in.
    pub logins: Mutex<Vec<u64>>,
    /// The open connection, to push stanzas on.
    current: Mutex<Option<mpsc::UnboundedSender<Push>>>,
    /// The phone's account key, that signs the devices it links.
    account: KeyPair,
    /// What it does with messages.
    pub on_message: Mutex<OnMessage>,
    /// The messages the client sent: id, recipient, and the types of their
    /// encrypted payloads (`pkmsg`, `msg`, `skmsg`) with their sizes.
    pub messages: Mutex<Vec<SentStanza>>,
    /// Every stanza the client sent, by tag and xmlns (what it asked for).
    pub asked: Mutex<Vec<String>>,
    /// The recipients' keys, by user.
    recipients: Mutex<HashMap<String, Recipient>>,
    /// Connections made.
    pub connections: AtomicUsize,
    /// The pre-keys the linked device uploaded (its bundle, for senders).
    uploaded: Mutex<Option<Uploaded>>,
    /// The user (number) its phone linked the device to, once scanned.
    paired: Mutex<Option<u64>>,
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
    pub fn new(refs: &[&str]) -> Arc<Self> {
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
            paired: Mutex::default(),
        })
    }

    /// A server for another phone, with the same server identity as
    /// `other` (a linked device resumes with the server's static key).
    pub fn beside(other: &Self, refs: &[&str]) -> Arc<Self> {
        let server = Self::new(refs);
        let mut server = Arc::try_unwrap(server).unwrap_or_else(|_| unreachable!("just made"));
        server.identity = other.identity.clone();
        server.cert_chain = other.cert_chain.clone();
        Arc::new(server)
    }

    /// The user its phone linked the device to.
    pub fn paired(&self) -> Option<u64> {
        *self.paired.lock().unwrap()
    }

    /// Whether the QR code `qr` carries one of this server's refs.
    pub fn showed(&self, qr: &str) -> bool {
        let shown = qr.split(',').next().unwrap_or_default();
        self.refs.iter().any(|r| r == shown)
    }

    /// A server that refuses every linked device's login with a
    /// `<failure>` of these attributes.
    pub fn refusing_logins(failure: &[(&'static str, &'static str)]) -> Arc<Self> {
        let server = Self::new(&[]);
        server.refuse_logins(failure);
        server
    }

    /// From now on, refuses linked devices' logins with a `<failure>` of
    /// these attributes.
    pub fn refuse_logins(&self, failure: &[(&'static str, &'static str)]) {
        *self.on_login.lock().unwrap() = failure.to_vec();
    }

    /// Makes `user` (digits) a WhatsApp user with published keys.
    pub fn register(&self, user: &str) {
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
    pub fn send(&self, stanza: Node) -> bool {
        self.push(Push::Stanza(stanza))
    }

    /// Drops the open connection (as a network failure would).
    pub fn drop_connection(&self) -> bool {
        self.push(Push::Close)
    }

    /// The phone of `user` scans `qr`: the server tells the client its
    /// device is linked (`<pair-success>`, with a device identity signed by
    /// the account and MACed with the QR's secret, as a phone makes it).
    pub fn scan(&self, qr: &str, user: &str) -> bool {
        *self.paired.lock().unwrap() = user.parse().ok();
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
    pub async fn deliver_text(&self, from: &str, id: &str, text: &str) -> bool {
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
        let (login, read, write) = self.handshake(&mut frames, &mut inbound, &outbound).await?;
        self.run(login, read, write, frames, inbound, outbound)
            .await
    }

    /// The Noise handshake of a new connection: the client's login and the
    /// connection's ciphers.
    async fn handshake(
        &self,
        frames: &mut Frames,
        inbound: &mut mpsc::UnboundedReceiver<Bytes>,
        outbound: &async_channel::Sender<TransportEvent>,
    ) -> anyhow::Result<(wa::ClientPayload, NoiseCipher, NoiseCipher)> {
        // ClientHello.
        let hello = frames.next(inbound).await?;
        let hello = wa::HandshakeMessage::decode_from_slice(&hello)?;
        match hello.client_hello.into_option() {
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
                    outbound,
                )
                .await
            }
            Some(wa::handshake_message::ClientHello {
                ephemeral: Some(client_ephemeral),
                ..
            }) => {
                self.accept_xx(&client_ephemeral, frames, inbound, outbound)
                    .await
            }
            _ => anyhow::bail!("no client ephemeral"),
        }
    }

    /// Serves a connection after its handshake.
    async fn run(
        &self,
        login: wa::ClientPayload,
        read: NoiseCipher,
        write: NoiseCipher,
        mut frames: Frames,
        mut inbound: mpsc::UnboundedReceiver<Bytes>,
        outbound: async_channel::Sender<TransportEvent>,
    ) -> anyhow::Result<()> {
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

pub fn public(pair: &KeyPair) -> [u8; 32] {
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
pub struct ToFake {
    pub server: Arc<FakeWhatsApp>,
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

/// Fake phones behind one websocket on loopback: each linked device is
/// served by its own [`FakeWhatsApp`] (all with one server identity). A
/// new device's connection goes to a phone that has linked none and is not
/// serving another; a linked device's login to the phone that linked it.
pub struct FakeWhatsAppNetwork {
    phones: Vec<Arc<FakeWhatsApp>>,
    /// Connections being served, per phone.
    live: Mutex<Vec<usize>>,
}

impl FakeWhatsAppNetwork {
    /// `phones` fake phones, each showing its own QR refs.
    pub fn new(phones: usize) -> Arc<Self> {
        let first = FakeWhatsApp::new(&["2@phone-0-ref-a", "2@phone-0-ref-b"]);
        let mut all = vec![first.clone()];
        for n in 1..phones {
            let (a, b) = (format!("2@phone-{n}-ref-a"), format!("2@phone-{n}-ref-b"));
            all.push(FakeWhatsApp::beside(&first, &[&a, &b]));
        }
        Arc::new(Self {
            live: Mutex::new(vec![0; all.len()]),
            phones: all,
        })
    }

    /// The fake phones.
    pub fn phones(&self) -> &[Arc<FakeWhatsApp>] {
        &self.phones
    }

    /// Makes `user` (digits) a WhatsApp user with published keys, for
    /// every phone.
    pub fn register(&self, user: &str) {
        for phone in &self.phones {
            phone.register(user);
        }
    }

    /// The phone of `user` scans `qr`, shown by whichever phone's
    /// connection it came from.
    pub fn scan(&self, qr: &str, user: &str) -> bool {
        self.phones
            .iter()
            .find(|phone| phone.showed(qr))
            .is_some_and(|phone| phone.scan(qr, user))
    }

    /// Every message the linked devices sent.
    pub fn messages(&self) -> Vec<SentStanza> {
        self.phones
            .iter()
            .flat_map(|phone| phone.messages.lock().unwrap().clone())
            .collect()
    }

    /// Listens on a loopback port: the websocket URL to give the engine
    /// (`ws://127.0.0.1:<port>/ws/chat`), served until the task is
    /// aborted.
    pub async fn listen(self: &Arc<Self>) -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!(
            "ws://{}/ws/chat",
            listener.local_addr().expect("its address")
        );
        let network = self.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let network = network.clone();
                tokio::spawn(async move {
                    if let Err(err) = network.connection(stream).await {
                        eprintln!("fake WhatsApp network: {err:#}");
                    }
                });
            }
        });
        (url, task)
    }

    /// One websocket connection: its binary messages are the client's
    /// bytes, the server's frames go back as binary messages.
    async fn connection(&self, stream: tokio::net::TcpStream) -> anyhow::Result<()> {
        let (_request, ws) = tokio_websockets::ServerBuilder::new()
            .accept(stream)
            .await
            .map_err(|err| anyhow::anyhow!("websocket upgrade: {err}"))?;
        let (mut sink, mut source) = ws.split();
        let (to_server, mut inbound) = mpsc::unbounded_channel::<Bytes>();
        let (outbound, from_server) = async_channel::unbounded::<TransportEvent>();
        let reading = tokio::spawn(async move {
            while let Some(Ok(message)) = source.next().await {
                if message.is_close() {
                    break;
                }
                if message.is_binary()
                    && to_server
                        .send(Bytes::copy_from_slice(&message.into_payload()))
                        .is_err()
                {
                    break;
                }
            }
        });
        let writing = tokio::spawn(async move {
            while let Ok(event) = from_server.recv().await {
                match event {
                    TransportEvent::DataReceived(bytes) => {
                        let payload: Vec<u8> = bytes.to_vec();
                        if sink
                            .send(tokio_websockets::Message::binary(payload))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                    TransportEvent::Disconnected(_) => break,
                    TransportEvent::Connected => {}
                }
            }
            let _ = sink.close().await;
        });
        let mut frames = Frames::default();
        let (login, read, write) = self.phones[0]
            .handshake(&mut frames, &mut inbound, &outbound)
            .await?;
        let phone = self.pick(login.username)?;
        self.phones[phone]
            .connections
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let served = self.phones[phone]
            .run(login, read, write, frames, inbound, outbound.clone())
            .await;
        self.live.lock().unwrap()[phone] -= 1;
        outbound.close();
        reading.abort();
        let _ = writing.await;
        served
    }

    /// The phone that serves a login of `username` (none: a new device),
    /// counted live.
    fn pick(&self, username: Option<u64>) -> anyhow::Result<usize> {
        let mut live = self.live.lock().unwrap();
        let phone = match username {
            Some(user) => self
                .phones
                .iter()
                .position(|phone| phone.paired() == Some(user))
                .ok_or_else(|| anyhow::anyhow!("no fake phone linked {user}"))?,
            None => self
                .phones
                .iter()
                .enumerate()
                .position(|(n, phone)| phone.paired().is_none() && live[n] == 0)
                .ok_or_else(|| anyhow::anyhow!("every fake phone is linked or busy"))?,
        };
        live[phone] += 1;
        Ok(phone)
    }
}
