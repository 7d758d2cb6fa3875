//! The Cloud API driver against a local server speaking the WhatsApp
//! Business Cloud API (Graph API), and Meta's webhooks signed as Meta signs
//! them.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;
use wablast_domain::session::SessionStatus;
use wablast_session_engine::cloud::{
    self, CloudConfig, CloudDriver, CloudOptions, CloudWebhookSink,
};
use wablast_session_engine::driver::{
    Connection, DriverError, DriverEvent, OutgoingMedia, OutgoingMessage, ReceiptKind, SendError,
};
use wablast_session_engine::webhook::WebhookError;

use crate::prism::{Document, ValidatingPeer};
use crate::support::{Peer, Recorded, Reply, closed_port_url, drain, phone};

const TOKEN: &str = "EAAGm0PX4ZCpsBAtesttoken";
const APP_SECRET: &str = "meta-app-secret";
const VERIFY_TOKEN: &str = "wablast-verify";
const NUMBER_ID: &str = "106540352242922";

fn connect(api_base: &str) -> (Connection, CloudWebhookSink) {
    let config: CloudConfig = serde_json::from_value(json!({
        "phone_number_id": NUMBER_ID,
        "access_token": TOKEN,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
        "api_base": api_base,
    }))
    .unwrap();
    let options = CloudOptions {
        request_timeout: Duration::from_millis(500),
    };
    CloudDriver::connect(config, options, reqwest::Client::new())
}

/// Refuses requests without our token, as the Graph API does; else
/// `answer`.
fn graph(
    answer: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    move |request| {
        if request.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
            return Reply::json(
                401,
                graph_error(
                    190,
                    "Invalid OAuth access token - Cannot parse access token",
                ),
            );
        }
        answer(request)
    }
}

fn graph_error(code: i64, message: &str) -> Value {
    json!({"error": {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": format!("details of {code}")},
        "error_subcode": 2_494_010,
        "fbtrace_id": "AbCdEfGh123",
    }})
}

fn accepted(wamid: &str) -> Reply {
    Reply::json(
        200,
        json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": "6281234567890", "wa_id": "6281234567890"}],
            "messages": [{"id": wamid, "message_status": "accepted"}],
        }),
    )
}

fn text_message() -> OutgoingMessage {
    OutgoingMessage {
        message_id: Uuid::now_v7(),
        to: phone("+6281234567890"),
        text: "Halo Kak, promo hari ini!".to_owned(),
        media: None,
    }
}

fn with_media(mime_type: &str, filename: &str, bytes: &'static [u8]) -> OutgoingMessage {
    OutgoingMessage {
        media: Some(OutgoingMedia {
            mime_type: mime_type.to_owned(),
            filename: filename.to_owned(),
            bytes: Bytes::from_static(bytes),
        }),
        ..text_message()
    }
}

fn statuses(events: &[DriverEvent]) -> Vec<SessionStatus> {
    events
        .iter()
        .filter_map(|e| match e {
            DriverEvent::Status(change) => Some(change.status),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn start_verifies_the_number_and_reports_it_ready() {
    // Arrange
    let peer = Peer::start(graph(|r| match r.route().as_str() {
        "GET /v21.0/106540352242922" => Reply::json(
            200,
            json!({
                "verified_name": "Toko Andi",
                "code_verification_status": "VERIFIED",
                "display_phone_number": "+62 811-0000-0001",
                "quality_rating": "GREEN",
                "id": NUMBER_ID,
            }),
        ),
        _ => Reply::empty(404),
    }))
    .await;
    let (Connection { driver, mut events }, _sink) = connect(&peer.base_url);

    // Act
    driver.start().await.unwrap();

    // Assert
    let seen = drain(&mut events);
    assert_eq!(statuses(&seen), [SessionStatus::Ready]);
    let DriverEvent::Status(ready) = &seen[0] else {
        unreachable!()
    };
    assert_eq!(ready.phone_number, Some(phone("+6281100000001")));
    assert_eq!(
        peer.requests()[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

#[tokio::test]
async fn start_with_a_wrong_number_id_fails_with_meta_s_reason() {
    let peer = Peer::start(graph(|_| {
        Reply::json(
            400,
            graph_error(
                100,
                "Unsupported get request. Object with ID '106540352242922' does not exist",
            ),
        )
    }))
    .await;
    let (Connection { driver, mut events }, _sink) = connect(&peer.base_url);

    let refused = driver.start().await;

    assert!(matches!(refused, Err(DriverError::Failed(m)) if m.contains("does not exist")));
    let seen = drain(&mut events);
    assert_eq!(statuses(&seen), [SessionStatus::Failed]);
}

#[tokio::test]
async fn texts_are_posted_to_the_messages_endpoint() {
    // Arrange
    let peer = Peer::start(graph(|r| match r.route().as_str() {
        "POST /v21.0/106540352242922/messages" => {
            accepted("wamid.HBgNNjI4MTIzNDU2Nzg5MBUCABEYEjE=")
        }
        _ => Reply::empty(404),
    }))
    .await;
    let (connection, _sink) = connect(&peer.base_url);

    // Act
    let sent = connection.driver.send(&text_message()).await.unwrap();

    // Assert
    assert_eq!(
        sent.provider_message_id,
        "wamid.HBgNNjI4MTIzNDU2Nzg5MBUCABEYEjE="
    );
    let request = &peer.requests()[0];
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json(),
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "6281234567890",
            "type": "text",
            "text": {"body": "Halo Kak, promo hari ini!"},
        })
    );
}

#[tokio::test]
async fn media_are_uploaded_then_sent_by_id() {
    // Arrange
    let peer = Peer::start(graph(|r| match r.route().as_str() {
        "POST /v21.0/106540352242922/media" => {
            let body = String::from_utf8_lossy(&r.body);
            let id = if body.contains("katalog.pdf") {
                "2222"
            } else {
                "1111"
            };
            Reply::json(200, json!({"id": id}))
        }
        "POST /v21.0/106540352242922/messages" => accepted("wamid.MEDIA"),
        _ => Reply::empty(404),
    }))
    .await;
    let (connection, _sink) = connect(&peer.base_url);

    // Act
    connection
        .driver
        .send(&with_media("image/png", "promo.png", b"\x89PNG fake image"))
        .await
        .unwrap();
    connection
        .driver
        .send(&with_media(
            "application/pdf",
            "katalog.pdf",
            b"%PDF-1.7 fake",
        ))
        .await
        .unwrap();

    // Assert
    let requests = peer.requests();
    assert_eq!(
        peer.routes(),
        [
            "POST /v21.0/106540352242922/media",
            "POST /v21.0/106540352242922/messages",
            "POST /v21.0/106540352242922/media",
            "POST /v21.0/106540352242922/messages",
        ]
    );
    let upload = &requests[0];
    assert!(
        upload
            .header("content-type")
            .unwrap()
            .starts_with("multipart/form-data; boundary=")
    );
    let form = String::from_utf8_lossy(&upload.body);
    for part in [
        "name=\"messaging_product\"\r\n\r\nwhatsapp\r\n",
        "name=\"type\"\r\n\r\nimage/png\r\n",
        "name=\"file\"; filename=\"promo.png\"\r\nContent-Type: image/png\r\n\r\n",
        "PNG fake image",
    ] {
        assert!(form.contains(part), "{part:?} in {form:?}");
    }
    assert_eq!(
        requests[1].json(),
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "6281234567890",
            "type": "image",
            "image": {"id": "1111", "caption": "Halo Kak, promo hari ini!"},
        })
    );
    assert_eq!(
        requests[3].json()["document"],
        json!({"id": "2222", "caption": "Halo Kak, promo hari ini!", "filename": "katalog.pdf"})
    );
    assert_eq!(requests[3].json()["type"], "document");
}

#[tokio::test]
async fn failed_sends_are_classified_by_meta_s_error_code() {
    type Expected = fn(&SendError) -> bool;
    let cases: Vec<(Reply, Expected)> = vec![
        (
            Reply::json(400, graph_error(131047, "Re-engagement message")),
            |e| matches!(e, SendError::Permanent(m) if m.contains("Re-engagement")),
        ),
        (
            Reply::json(400, graph_error(131026, "Message Undeliverable")),
            |e| matches!(e, SendError::Permanent(_)),
        ),
        (
            Reply::json(400, graph_error(100, "Invalid parameter")),
            |e| matches!(e, SendError::Permanent(_)),
        ),
        (
            Reply::json(400, graph_error(130429, "Rate limit hit")),
            |e| matches!(e, SendError::Transient(_)),
        ),
        (
            Reply::json(
                400,
                graph_error(
                    131056,
                    "(Business Account, Consumer Account) pair rate limit hit",
                ),
            ),
            |e| matches!(e, SendError::Transient(_)),
        ),
        (
            Reply::json(500, graph_error(131000, "Something went wrong")),
            |e| matches!(e, SendError::Transient(_)),
        ),
        (Reply::json(503, json!({})), |e| {
            matches!(e, SendError::Transient(_))
        }),
        (
            Reply::json(401, graph_error(190, "Error validating access token")),
            |e| matches!(e, SendError::Transient(m) if m.contains("access token")),
        ),
        (Reply::hang(), |e| matches!(e, SendError::Unknown(_))),
    ];
    for (reply, expected) in cases {
        let reply = Mutex::new(Some(reply));
        let peer = Peer::start(graph(move |_| {
            reply.lock().unwrap().take().expect("one request")
        }))
        .await;
        let (connection, _sink) = connect(&peer.base_url);

        let error = connection.driver.send(&text_message()).await.unwrap_err();

        assert!(expected(&error), "{error:?}");
    }
}

#[tokio::test]
async fn a_locked_account_fails_the_session_and_keeps_the_message() {
    let peer = Peer::start(graph(|_| {
        Reply::json(400, graph_error(131031, "Business Account locked"))
    }))
    .await;
    let (Connection { driver, mut events }, _sink) = connect(&peer.base_url);

    let error = driver.send(&text_message()).await.unwrap_err();

    assert!(matches!(error, SendError::Transient(_)), "{error:?}");
    let seen = drain(&mut events);
    assert_eq!(statuses(&seen), [SessionStatus::Failed]);
}

#[tokio::test]
async fn an_upload_without_an_answer_sent_nothing_and_no_server_is_transient() {
    let peer = Peer::start(graph(|r| match r.route().as_str() {
        "POST /v21.0/106540352242922/media" => Reply::hang(),
        _ => accepted("wamid.X"),
    }))
    .await;
    let (connection, _sink) = connect(&peer.base_url);
    let upload = connection
        .driver
        .send(&with_media("image/jpeg", "a.jpg", b"jpeg"))
        .await;
    assert!(matches!(upload, Err(SendError::Transient(_))), "{upload:?}");
    assert_eq!(peer.routes(), ["POST /v21.0/106540352242922/media"]);

    let (nowhere, _sink) = connect(&closed_port_url().await);
    assert!(matches!(
        nowhere.driver.send(&text_message()).await,
        Err(SendError::Transient(_))
    ));
}

#[tokio::test]
async fn linking_by_qr_or_code_and_contact_lookups_are_unsupported() {
    let (Connection { driver, .. }, _sink) = connect("http://127.0.0.1:9");
    assert!(matches!(
        driver.qr().await,
        Err(DriverError::Unsupported(_))
    ));
    assert!(matches!(
        driver.request_pairing_code(&phone("+6281234567890")).await,
        Err(DriverError::Unsupported(_))
    ));
    assert!(matches!(
        driver.check_number(&phone("+6281234567890")).await,
        Err(DriverError::Unsupported(_))
    ));
    assert!(matches!(
        driver.groups().await,
        Err(DriverError::Unsupported(_))
    ));
}

fn sign(body: &[u8], secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn signed(body: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        "X-Hub-Signature-256",
        HeaderValue::from_str(&sign(body, APP_SECRET)).unwrap(),
    );
    headers
}

fn notification(phone_number_id: &str, value: Value) -> Vec<u8> {
    let mut value = value;
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] =
        json!({"display_phone_number": "6281100000001", "phone_number_id": phone_number_id});
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
    }))
    .unwrap()
}

fn status(id: &str, status: &str) -> Value {
    json!({"id": id, "status": status, "timestamp": "1767225600", "recipient_id": "6281234567890"})
}

#[test]
fn statuses_map_to_receipts() {
    let mut failed = status("wamid.4", "failed");
    failed["errors"] = json!([{
        "code": 131026, "title": "Message undeliverable",
        "message": "Message undeliverable",
        "error_data": {"details": "Message Undeliverable."},
    }]);
    let body = notification(
        NUMBER_ID,
        json!({"statuses": [
            status("wamid.1", "sent"),
            status("wamid.2", "delivered"),
            status("wamid.3", "read"),
            failed,
        ]}),
    );

    let events = cloud::parse_webhook(&body, NUMBER_ID).unwrap();

    let receipts: Vec<_> = events
        .iter()
        .map(|e| match e {
            DriverEvent::Receipt(r) => (r.provider_message_id.as_str(), r.kind.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        receipts,
        [
            ("wamid.2", ReceiptKind::Delivered),
            ("wamid.3", ReceiptKind::Read),
            (
                "wamid.4",
                ReceiptKind::Failed {
                    reason: "Message undeliverable (131026): Message Undeliverable.".into()
                }
            ),
        ]
    );
    assert!(
        cloud::parse_webhook(&body, "another-number")
            .unwrap()
            .is_empty(),
        "another number's events are not ours"
    );
}

#[tokio::test]
async fn signed_webhooks_report_receipts_and_inbound_messages() {
    // Arrange
    let (
        Connection {
            driver: _driver,
            mut events,
        },
        sink,
    ) = connect("http://127.0.0.1:9");
    let body = notification(
        NUMBER_ID,
        json!({
            "contacts": [{"profile": {"name": "Budi"}, "wa_id": "6281234567890"}],
            "messages": [{
                "from": "6281234567890", "id": "wamid.IN1", "timestamp": "1767225600",
                "type": "text", "text": {"body": "Kak, stok masih ada?"},
            }],
            "statuses": [status("wamid.2", "delivered")],
        }),
    );

    // Act
    let reported = sink.deliver(&signed(&body), &body).await.unwrap();

    // Assert
    assert_eq!(reported, 2);
    let seen = drain(&mut events);
    assert!(matches!(&seen[0], DriverEvent::Receipt(r) if r.kind == ReceiptKind::Delivered));
    let DriverEvent::Inbound(inbound) = &seen[1] else {
        panic!("{seen:?}")
    };
    assert_eq!(inbound.from, Some(phone("+6281234567890")));
    assert_eq!(inbound.from_raw, "6281234567890");
    assert_eq!(inbound.text.as_deref(), Some("Kak, stok masih ada?"));
    assert_eq!(inbound.provider_message_id, "wamid.IN1");
}

#[tokio::test]
async fn webhooks_with_bad_signatures_are_refused_and_change_nothing() {
    // Arrange
    let (
        Connection {
            driver: _driver,
            mut events,
        },
        sink,
    ) = connect("http://127.0.0.1:9");
    let body = notification(NUMBER_ID, json!({"statuses": [status("wamid.2", "read")]}));
    let mut tampered = body.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 1;
    let header = |value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert("X-Hub-Signature-256", HeaderValue::from_str(value).unwrap());
        headers
    };
    let bare_hex = sign(&body, APP_SECRET)
        .trim_start_matches("sha256=")
        .to_owned();

    // Act
    let outcomes = [
        sink.deliver(&HeaderMap::new(), &body).await,
        sink.deliver(&header(&sign(&body, "another secret")), &body)
            .await,
        sink.deliver(&signed(&body), &tampered).await,
        sink.deliver(&header(&bare_hex), &body).await,
        sink.deliver(&header("sha1=abcdef"), &body).await,
        sink.deliver(&header("sha256=not-hex"), &body).await,
    ];

    // Assert
    assert_eq!(
        outcomes,
        [
            Err(WebhookError::MissingSignature),
            Err(WebhookError::BadSignature),
            Err(WebhookError::BadSignature),
            Err(WebhookError::MalformedSignature),
            Err(WebhookError::UnsupportedAlgorithm("sha1".into())),
            Err(WebhookError::MalformedSignature),
        ]
    );
    assert!(
        outcomes
            .iter()
            .all(|o| o.as_ref().unwrap_err().is_unauthorized())
    );
    assert!(drain(&mut events).is_empty());
    assert_eq!(sink.deliver(&signed(&body), &body).await, Ok(1));
}

#[test]
fn the_webhook_url_is_verified_with_our_token_only() {
    let (_connection, sink) = connect("http://127.0.0.1:9");
    assert_eq!(
        sink.verify_subscription(Some("subscribe"), Some(VERIFY_TOKEN), Some("1158201444")),
        Some("1158201444".to_owned())
    );
    assert_eq!(
        sink.verify_subscription(Some("subscribe"), Some("guess"), Some("1158201444")),
        None
    );
    assert_eq!(
        sink.verify_subscription(Some("unsubscribe"), Some(VERIFY_TOKEN), Some("1")),
        None
    );
    assert_eq!(
        sink.verify_subscription(Some("subscribe"), None, Some("1")),
        None
    );
    assert_eq!(
        cloud::verify_subscription("", Some("subscribe"), Some(""), Some("1")),
        None
    );
}

#[tokio::test]
async fn the_validating_peer_fails_requests_meta_s_document_does_not_allow() {
    let Some(peer) = ValidatingPeer::start(Document::Cloud, |_| None).await else {
        return;
    };
    let client = reqwest::Client::new();
    let messages = format!("{}/v23.0/{NUMBER_ID}/messages", peer.base_url);
    let text = json!({"messaging_product": "whatsapp", "recipient_type": "individual",
                      "to": "6281234567890", "type": "text", "text": {"body": "Halo"}});

    // No token; a text whose body is misspelt; a version that is none.
    client.post(&messages).json(&text).send().await.unwrap();
    let mut misspelt = text.clone();
    misspelt["text"] = json!({"bdy": "Halo"});
    client
        .post(&messages)
        .bearer_auth(TOKEN)
        .json(&misspelt)
        .send()
        .await
        .unwrap();
    client
        .get(format!("{}/latest/{NUMBER_ID}", peer.base_url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    // What the driver sends is fine.
    client
        .post(&messages)
        .bearer_auth(TOKEN)
        .json(&text)
        .send()
        .await
        .unwrap();

    let violations = peer.take_violations();
    assert_eq!(peer.requests().len(), 4);
    assert_eq!(violations.len(), 3, "{violations:#?}");
    assert!(violations[0].contains("UNAUTHORIZED"), "{}", violations[0]);
    assert!(violations[1].contains("bdy"), "{}", violations[1]);
}
