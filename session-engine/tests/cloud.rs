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
use wablast_domain::inbound::InboundKind;
use wablast_domain::session::{SessionStatus, StatusReason};
use wablast_domain::types::MediaId;
use wablast_domain::types::whatsapp_template::{
    HeaderGiven, HeaderKind, TemplateCategory, TemplateHeader, TemplateMessage, TemplateStatus,
};
use wablast_session_engine::cloud::{
    self, CloudConfig, CloudDriver, CloudOptions, CloudWebhookSink, GraphErrorKind,
};
use wablast_session_engine::driver::{
    Connection, DriverError, DriverEvent, Notice, OutgoingMedia, OutgoingMessage, ReceiptKind,
    Refusal, SendError, StatusChange,
};
use wablast_session_engine::webhook::WebhookError;

use crate::prism::{Document, ValidatingPeer};
use crate::support::{Peer, Recorded, Reply, closed_port_url, drain, phone};

const TOKEN: &str = "EAAGm0PX4ZCpsBAtesttoken";
const APP_SECRET: &str = "meta-app-secret";
const VERIFY_TOKEN: &str = "wablast-verify";
const NUMBER_ID: &str = "106540352242922";

fn connect(api_base: &str) -> (Connection, CloudWebhookSink) {
    connect_with(api_base, CloudOptions::default())
}

fn connect_with(api_base: &str, options: CloudOptions) -> (Connection, CloudWebhookSink) {
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
        ..options
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
        to: phone("+6281234567890").into(),
        text: "Halo Kak, promo hari ini!".to_owned(),
        media: None,
        reply_to: None,
        template: None,
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
    status_changes(events).iter().map(|c| c.status).collect()
}

fn status_changes(events: &[DriverEvent]) -> Vec<StatusChange> {
    events
        .iter()
        .filter_map(|e| match e {
            DriverEvent::Status(change) => Some(change.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn start_verifies_the_number_and_reports_it_ready() {
    // Arrange
    let peer = Peer::start(graph(|r| match r.route().as_str() {
        "GET /v23.0/106540352242922" => Reply::json(
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
async fn start_refused_for_the_number_the_token_or_the_account_says_why_and_meta_s_failure_is_tried_again()
 {
    type Expected = fn(&DriverError) -> bool;
    let cases: Vec<(Reply, Expected)> = vec![
        (
            Reply::json(
                400,
                graph_error(
                    100,
                    "Unsupported get request. Object with ID '106540352242922' does not exist",
                ),
            ),
            |e| matches!(e, DriverError::Refused(Refusal::Rejected(m)) if m.contains("does not exist")),
        ),
        (
            Reply::json(
                401,
                graph_error(190, "Error validating access token: Session has expired"),
            ),
            |e| matches!(e, DriverError::Refused(Refusal::Credentials(m)) if m.contains("expired")),
        ),
        (
            Reply::json(403, graph_error(200, "Permissions error")),
            |e| matches!(e, DriverError::Refused(Refusal::Credentials(_))),
        ),
        (
            Reply::json(400, graph_error(131031, "Business Account locked")),
            |e| matches!(e, DriverError::Refused(Refusal::Account(m)) if m.contains("locked")),
        ),
        (
            Reply::json(
                400,
                graph_error(613, "Calls to this api have exceeded the rate limit."),
            ),
            |e| matches!(e, DriverError::Failed(_)),
        ),
        (Reply::json(503, json!({})), |e| {
            matches!(e, DriverError::Failed(_))
        }),
    ];
    for (reply, expected) in cases {
        let reply = Mutex::new(Some(reply));
        let peer = Peer::start(graph(move |_| {
            reply.lock().unwrap().take().expect("one request")
        }))
        .await;
        let (Connection { driver, mut events }, _sink) = connect(&peer.base_url);

        let refused = driver.start().await.unwrap_err();

        assert!(expected(&refused), "{refused:?}");
        assert!(
            drain(&mut events).is_empty(),
            "the engine reports it: {refused:?}"
        );
    }
}

#[tokio::test]
async fn a_landline_toll_free_or_test_number_becomes_ready_too() {
    for (display, number) in [
        ("+1 555-555-5555", "+15555555555"),
        ("15550783881", "+15550783881"),
        ("+62 21 5555 1234", "+622155551234"),
        ("+1 800-555-0199", "+18005550199"),
    ] {
        let peer = Peer::start(graph(move |_| {
            Reply::json(
                200,
                json!({"id": NUMBER_ID, "display_phone_number": display,
                       "verified_name": "Toko Andi", "quality_rating": "GREEN"}),
            )
        }))
        .await;
        let (Connection { driver, mut events }, _sink) = connect(&peer.base_url);

        driver.start().await.unwrap();

        let ready = status_changes(&drain(&mut events));
        assert_eq!(ready.len(), 1, "{display}");
        assert_eq!(ready[0].status, SessionStatus::Ready);
        assert_eq!(
            ready[0].phone_number.as_ref().map(|p| p.as_str()),
            Some(number),
            "{display}"
        );
    }
}

#[tokio::test]
async fn texts_are_posted_to_the_messages_endpoint() {
    // Arrange
    let peer = Peer::start(graph(|r| match r.route().as_str() {
        "POST /v23.0/106540352242922/messages" => {
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
        "POST /v23.0/106540352242922/media" => {
            let body = String::from_utf8_lossy(&r.body);
            let id = if body.contains("katalog.pdf") {
                "2222"
            } else {
                "1111"
            };
            Reply::json(200, json!({"id": id}))
        }
        "POST /v23.0/106540352242922/messages" => accepted("wamid.MEDIA"),
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
            "POST /v23.0/106540352242922/media",
            "POST /v23.0/106540352242922/messages",
            "POST /v23.0/106540352242922/media",
            "POST /v23.0/106540352242922/messages",
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
            Reply::json(400, graph_error(17, "User request limit reached")),
            |e| matches!(e, SendError::Transient(m) if m.contains("rate limited")),
        ),
        (
            Reply::json(
                400,
                graph_error(613, "Calls to this api have exceeded the rate limit."),
            ),
            |e| matches!(e, SendError::Transient(m) if m.contains("rate limited")),
        ),
        (
            Reply::json(
                400,
                json!({"error": {"message": "Temporarily unavailable", "type": "OAuthException",
                                 "code": 135000, "is_transient": true}}),
            ),
            |e| matches!(e, SendError::Transient(_)),
        ),
        (
            Reply::json(400, graph_error(131048, "Spam rate limit hit")),
            |e| matches!(e, SendError::Paused { pause, .. } if *pause == CloudOptions::default().spam_pause),
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
            |e| matches!(e, SendError::SessionUnavailable(m) if m.contains("access token")),
        ),
        (
            Reply::json(403, graph_error(10, "Application does not have permission")),
            |e| matches!(e, SendError::SessionUnavailable(_)),
        ),
        (
            Reply::json(
                400,
                graph_error(131042, "Business eligibility payment issue"),
            ),
            |e| matches!(e, SendError::SessionUnavailable(_)),
        ),
        (
            Reply::json(
                400,
                graph_error(368, "Temporarily blocked for policies violations"),
            ),
            |e| matches!(e, SendError::SessionUnavailable(_)),
        ),
        (Reply::json(504, json!({})), |e| {
            matches!(e, SendError::Unknown(_))
        }),
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
async fn a_banned_or_blocked_account_leaves_its_campaigns_and_keeps_the_message() {
    for (code, title, reason) in [
        (131031, "Business Account locked", StatusReason::Banned),
        (
            368,
            "Temporarily blocked for policies violations",
            StatusReason::Restricted,
        ),
    ] {
        let peer = Peer::start(graph(move |_| Reply::json(400, graph_error(code, title)))).await;
        let (Connection { driver, mut events }, _sink) = connect(&peer.base_url);

        let error = driver.send(&text_message()).await.unwrap_err();

        assert!(
            matches!(&error, SendError::SessionUnavailable(m) if m.contains(title)),
            "{error:?}"
        );
        let seen = status_changes(&drain(&mut events));
        assert_eq!(seen.len(), 1, "{code}");
        assert_eq!(seen[0].status, SessionStatus::LoggedOut, "{code}");
        assert_eq!(seen[0].reason, Some(reason), "{code}");
        assert!(seen[0].error.as_deref().unwrap().contains(title));
    }
}

#[tokio::test]
async fn a_refused_token_fails_the_session_instead_of_every_message() {
    let peer = Peer::start(graph(|_| {
        Reply::json(
            401,
            graph_error(
                190,
                "Error validating access token: Session has expired on Friday",
            ),
        )
    }))
    .await;
    let (Connection { driver, mut events }, _sink) = connect(&peer.base_url);

    let error = driver.send(&text_message()).await.unwrap_err();

    assert!(
        matches!(error, SendError::SessionUnavailable(_)),
        "{error:?}"
    );
    let seen = status_changes(&drain(&mut events));
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].status, SessionStatus::Failed);
    assert!(
        seen[0]
            .error
            .as_deref()
            .unwrap()
            .contains("Session has expired on Friday"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_spam_limited_number_sends_nothing_until_its_pause_is_over() {
    // Arrange: Meta limits the number once, then takes its messages.
    let limited = Mutex::new(true);
    let peer = Peer::start(graph(move |_| {
        if std::mem::take(&mut *limited.lock().unwrap()) {
            Reply::json(400, graph_error(131048, "Spam rate limit hit"))
        } else {
            accepted("wamid.AFTER")
        }
    }))
    .await;
    let pause = Duration::from_millis(400);
    let (connection, _sink) = connect_with(
        &peer.base_url,
        CloudOptions {
            spam_pause: pause,
            ..CloudOptions::default()
        },
    );

    // Act
    let first = connection.driver.send(&text_message()).await.unwrap_err();
    let during = connection.driver.send(&text_message()).await.unwrap_err();
    tokio::time::sleep(pause).await;
    let after = connection.driver.send(&text_message()).await;

    // Assert
    assert!(
        matches!(&first, SendError::Paused { pause: p, reason } if *p == pause && reason.contains("131048")),
        "{first:?}"
    );
    assert!(
        matches!(&during, SendError::Paused { pause: p, .. } if *p <= pause),
        "{during:?}"
    );
    assert_eq!(after.unwrap().provider_message_id, "wamid.AFTER");
    assert_eq!(
        peer.routes().len(),
        2,
        "nothing was asked of Meta during the pause"
    );
}

#[test]
fn graph_errors_are_read_by_code_then_by_status() {
    use GraphErrorKind::*;
    use reqwest::StatusCode;
    let kind =
        |status: u16, body: Value| GraphErrorKind::of(StatusCode::from_u16(status).unwrap(), &body);
    let code = |code: i64| kind(400, graph_error(code, "x"));
    for (c, expected) in [
        (4, RateLimited),
        (17, RateLimited),
        (613, RateLimited),
        (80007, RateLimited),
        (130429, RateLimited),
        (131056, RateLimited),
        (131048, SpamLimited),
        (1, Temporary),
        (2, Temporary),
        (131000, Temporary),
        (0, AccessToken),
        (190, AccessToken),
        (3, Permission),
        (10, Permission),
        (200, Permission),
        (299, Permission),
        (131005, Permission),
        (131042, AccountSetup),
        (368, Blocked),
        (131031, Locked),
        (100, Refused),
        (131026, Refused),
        (131047, Refused),
        (300, Refused),
    ] {
        assert_eq!(code(c), expected, "code {c}");
    }
    assert_eq!(kind(429, json!({})), RateLimited);
    assert_eq!(kind(401, json!({})), AccessToken);
    assert_eq!(kind(403, json!("Forbidden")), Permission);
    assert_eq!(kind(504, json!({})), TimedOut);
    assert_eq!(kind(502, json!({})), Temporary);
    assert_eq!(kind(400, json!({})), Refused);
    assert_eq!(
        kind(
            400,
            json!({"error": {"code": 135000, "is_transient": true}})
        ),
        Temporary
    );
    assert_eq!(
        kind(400, json!({"error": {"code": 190, "is_transient": true}})),
        AccessToken,
        "the code says more than is_transient"
    );
}

#[tokio::test]
async fn an_upload_without_an_answer_sent_nothing_and_no_server_is_transient() {
    let peer = Peer::start(graph(|r| match r.route().as_str() {
        "POST /v23.0/106540352242922/media" => Reply::hang(),
        _ => accepted("wamid.X"),
    }))
    .await;
    let (connection, _sink) = connect(&peer.base_url);
    let upload = connection
        .driver
        .send(&with_media("image/jpeg", "a.jpg", b"jpeg"))
        .await;
    assert!(matches!(upload, Err(SendError::Transient(_))), "{upload:?}");
    assert_eq!(peer.routes(), ["POST /v23.0/106540352242922/media"]);

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

    let events = cloud::parse_webhook(&body, NUMBER_ID, None).unwrap();

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
        cloud::parse_webhook(&body, "another-number", None)
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

fn change(field: &str, value: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": field, "value": value}]}],
    }))
    .unwrap()
}

#[tokio::test]
async fn account_quality_and_error_webhooks_become_session_events() {
    // Arrange: the number is known once started.
    let peer = Peer::start(graph(|_| {
        Reply::json(
            200,
            json!({"id": NUMBER_ID, "display_phone_number": "+62 811-0000-0001"}),
        )
    }))
    .await;
    let (Connection { driver, mut events }, sink) = connect(&peer.base_url);
    driver.start().await.unwrap();
    drain(&mut events);
    let webhooks = [
        change(
            "account_update",
            json!({"phone_number": "6281100000001", "event": "ACCOUNT_VIOLATION",
                   "violation_info": {"violation_type": "SCAM"}}),
        ),
        change(
            "phone_number_quality_update",
            json!({"display_phone_number": "6281100000001", "event": "DOWNGRADE",
                   "current_limit": "TIER_250"}),
        ),
        // Another number of the account: not ours.
        change(
            "phone_number_quality_update",
            json!({"display_phone_number": "15550783881", "event": "FLAGGED",
                   "current_limit": "TIER_1K"}),
        ),
        notification(
            NUMBER_ID,
            json!({"errors": [{"code": 131000, "title": "Something went wrong",
                               "message": "Something went wrong",
                               "error_data": {"details": "Unknown error"}}]}),
        ),
        change(
            "account_update",
            json!({"event": "ACCOUNT_RESTRICTION", "restriction_info": [
                {"restriction_type": "RESTRICTED_ADD_PHONE_NUMBER_ACTION", "expiration": "1767225600"}]}),
        ),
        change(
            "account_update",
            json!({"event": "ACCOUNT_RESTRICTION", "restriction_info": [
                {"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": "1767225600"}]}),
        ),
        change(
            "account_update",
            json!({"event": "DISABLED_UPDATE",
                   "ban_info": {"waba_ban_state": "DISABLE", "waba_ban_date": "2026-12-01"}}),
        ),
    ];

    // Act
    let mut reported = Vec::new();
    for body in &webhooks {
        reported.push(sink.deliver(&signed(body), body).await.unwrap());
    }

    // Assert
    assert_eq!(reported, [1, 1, 0, 1, 1, 1, 1]);
    let seen = drain(&mut events);
    assert_eq!(
        seen[..4],
        [
            DriverEvent::Notice(Notice::Account {
                event: "ACCOUNT_VIOLATION".into(),
                details: "violation SCAM".into(),
            }),
            DriverEvent::Notice(Notice::Quality {
                event: "DOWNGRADE".into(),
                messaging_limit: Some("TIER_250".into()),
            }),
            DriverEvent::Notice(Notice::Error {
                code: Some(131000),
                description: "Something went wrong (131000): Unknown error".into(),
            }),
            DriverEvent::Notice(Notice::Account {
                event: "ACCOUNT_RESTRICTION".into(),
                details: "RESTRICTED_ADD_PHONE_NUMBER_ACTION until 1767225600".into(),
            }),
        ]
    );
    let changes = status_changes(&seen[4..]);
    let summary: Vec<_> = changes.iter().map(|c| (c.status, c.reason)).collect();
    assert_eq!(
        summary,
        [
            (SessionStatus::LoggedOut, Some(StatusReason::Restricted)),
            (SessionStatus::LoggedOut, Some(StatusReason::Banned)),
        ]
    );
    assert!(changes[0].error.as_deref().unwrap().contains("1767225600"));
    assert!(changes[1].error.as_deref().unwrap().contains("2026-12-01"));
}

#[test]
fn meta_s_own_webhook_examples_are_read() {
    // Arrange: the examples Meta publishes with its API description.
    let Some(examples) = crate::prism::document_text("meta-whatsapp-webhook-examples.json") else {
        return;
    };
    let examples: serde_json::Map<String, Value> = serde_json::from_str(&examples).unwrap();
    assert_eq!(examples.len(), 16);

    // Act
    let mut texts = Vec::new();
    let mut kinds = Vec::new();
    for (name, example) in &examples {
        let body = serde_json::to_vec(example).unwrap();
        let events = cloud::parse_webhook(&body, "106540352242922", None)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for event in events {
            match event {
                DriverEvent::Inbound(inbound) => {
                    assert!(inbound.provider_message_id.starts_with("wamid."), "{name}");
                    kinds.push((name.clone(), inbound.kind));
                    texts.push((name.clone(), inbound.text));
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    // Assert: every message, with its text or caption where it has one;
    // group changes are no session's.
    let with_text = |name: &str| {
        texts
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} read"))
            .1
            .clone()
    };
    assert_eq!(texts.len(), 13);
    let kind = |name: &str| kinds.iter().find(|(n, _)| n == name).map(|(_, k)| *k);
    assert_eq!(kind("Text Message"), Some(InboundKind::Text));
    assert_eq!(kind("Image Message"), Some(InboundKind::Image));
    assert_eq!(kind("Button Message"), Some(InboundKind::Interactive));
    assert_eq!(kind("Reaction Message"), Some(InboundKind::Reaction));
    assert_eq!(kind("Location Message"), Some(InboundKind::Location));
    assert_eq!(kind("Contact Sharing Message"), Some(InboundKind::Contact));
    assert_eq!(kind("Unsupported Message"), Some(InboundKind::Other));
    assert_eq!(
        kind("Interactive List Reply Message"),
        Some(InboundKind::Interactive)
    );
    assert_eq!(
        with_text("Text Message").as_deref(),
        Some("Does it come in another color?")
    );
    assert_eq!(with_text("Image Message").as_deref(), Some("Taj Mahal"));
    assert_eq!(
        with_text("Interactive List Reply Message").as_deref(),
        Some("Priority Mail Express")
    );
    assert_eq!(with_text("Button Message").as_deref(), Some("Unsubscribe"));
    assert_eq!(with_text("Reaction Message"), None);
}

// Against a validating mock generated from Meta's own API description:
// every request the driver makes is one the document allows.

fn validating_connect(peer: &ValidatingPeer) -> (Connection, CloudWebhookSink) {
    connect_with(&peer.base_url, CloudOptions::default())
}

#[tokio::test]
async fn starting_asks_for_the_number_as_meta_s_document_allows() {
    // Arrange: Meta's test number.
    let Some(peer) = ValidatingPeer::start(Document::Cloud, |r| {
        (r.route() == format!("GET /v23.0/{NUMBER_ID}")).then(|| {
            Reply::json(
                200,
                json!({"id": NUMBER_ID, "display_phone_number": "+1 555-555-5555",
                       "verified_name": "Jaspers Market", "quality_rating": "GREEN"}),
            )
        })
    })
    .await
    else {
        return;
    };
    let (Connection { driver, mut events }, _sink) = validating_connect(&peer);

    // Act
    driver.start().await.unwrap();

    // Assert
    peer.assert_valid();
    assert_eq!(peer.routes(), [format!("GET /v23.0/{NUMBER_ID}")]);
    let ready = status_changes(&drain(&mut events));
    assert_eq!(ready[0].status, SessionStatus::Ready);
    assert_eq!(ready[0].phone_number, Some(phone_of("+15555555555")));
}

fn phone_of(e164: &str) -> wablast_domain::types::phone::Phone {
    serde_json::from_value(json!(e164)).unwrap()
}

/// Meta's answer to a message it accepted (the document's schema leaves
/// the id out of what it requires: its generated answers may not have one).
fn accepting(request: &Recorded) -> Option<Reply> {
    request
        .path
        .ends_with("/messages")
        .then(|| accepted("wamid.HBgNNjI4MTIzNDU2Nzg5MBUCABEYEjE="))
}

#[tokio::test]
async fn texts_images_and_documents_are_sent_as_meta_s_document_allows() {
    // Arrange: the uploads' answers are generated from Meta's document.
    let Some(peer) = ValidatingPeer::start(Document::Cloud, accepting).await else {
        return;
    };
    let (connection, _sink) = validating_connect(&peer);

    // Act
    let text = connection.driver.send(&text_message()).await;
    let image = connection
        .driver
        .send(&with_media(
            "image/jpeg",
            "promo.jpg",
            b"\xff\xd8\xff fake jpeg",
        ))
        .await;
    let document = connection
        .driver
        .send(&with_media(
            "application/pdf",
            "katalog.pdf",
            b"%PDF-1.7 fake",
        ))
        .await;

    // Assert
    peer.assert_valid();
    for sent in [text, image, document] {
        assert!(!sent.unwrap().provider_message_id.is_empty());
    }
    let messages = format!("POST /v23.0/{NUMBER_ID}/messages");
    let media = format!("POST /v23.0/{NUMBER_ID}/media");
    assert_eq!(
        peer.routes(),
        [
            messages.clone(),
            media.clone(),
            messages.clone(),
            media,
            messages
        ]
    );
    let requests = peer.requests();
    assert_eq!(requests[2].json()["type"], "image");
    assert_eq!(requests[4].json()["type"], "document");
    assert_eq!(requests[4].json()["document"]["filename"], "katalog.pdf");
}

#[tokio::test]
async fn the_graph_api_version_is_the_engine_s_unless_the_number_names_its_own() {
    // Arrange
    let Some(peer) = ValidatingPeer::start(Document::Cloud, accepting).await else {
        return;
    };
    let (engine_s, _sink) = connect_with(
        &peer.base_url,
        CloudOptions {
            version: "v22.0".into(),
            ..CloudOptions::default()
        },
    );
    let config: CloudConfig = serde_json::from_value(json!({
        "phone_number_id": NUMBER_ID, "access_token": TOKEN, "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN, "api_base": peer.base_url, "version": "v21.0",
    }))
    .unwrap();
    let (its_own, _sink) = CloudDriver::connect(
        config,
        CloudOptions {
            version: "v22.0".into(),
            ..CloudOptions::default()
        },
        reqwest::Client::new(),
    );

    // Act
    engine_s.driver.send(&text_message()).await.unwrap();
    its_own.driver.send(&text_message()).await.unwrap();

    // Assert
    peer.assert_valid();
    assert_eq!(
        peer.routes(),
        [
            format!("POST /v22.0/{NUMBER_ID}/messages"),
            format!("POST /v21.0/{NUMBER_ID}/messages"),
        ]
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

#[tokio::test]
async fn a_reply_quotes_its_message_as_meta_s_document_allows() {
    // Arrange
    let Some(peer) = ValidatingPeer::start(Document::Cloud, accepting).await else {
        return;
    };
    let (connection, _sink) = validating_connect(&peer);
    let reply = OutgoingMessage {
        reply_to: Some("wamid.HBgLNjI4MTIzNDU2Nzg5MBUCABIYFjNFQjA".to_owned()),
        ..text_message()
    };

    // Act
    connection.driver.send(&reply).await.unwrap();

    // Assert
    peer.assert_valid();
    assert_eq!(
        peer.requests()[0].json()["context"],
        json!({"message_id": "wamid.HBgLNjI4MTIzNDU2Nzg5MBUCABIYFjNFQjA"})
    );
}

fn template_message() -> OutgoingMessage {
    OutgoingMessage {
        text: "[template order_update/id] Andi | 50%".to_owned(),
        template: Some(TemplateMessage {
            name: "order_update".to_owned(),
            language: "id".to_owned(),
            parameters: vec!["Andi".to_owned(), "50%".to_owned()],
            header: None,
        }),
        ..text_message()
    }
}

#[tokio::test]
async fn templates_are_sent_as_meta_s_document_allows() {
    // Arrange
    let Some(peer) = ValidatingPeer::start(Document::Cloud, accepting).await else {
        return;
    };
    let (connection, _sink) = validating_connect(&peer);
    let without_parameters = OutgoingMessage {
        template: Some(TemplateMessage {
            name: "hello_world".to_owned(),
            language: "en_US".to_owned(),
            parameters: vec![],
            header: None,
        }),
        ..text_message()
    };

    // Act
    let sent = connection.driver.send(&template_message()).await;
    let plain = connection.driver.send(&without_parameters).await;

    // Assert
    peer.assert_valid();
    assert!(connection.driver.sends_templates());
    assert!(!sent.unwrap().provider_message_id.is_empty());
    assert!(plain.is_ok());
    let requests = peer.requests();
    let body = requests[0].json();
    assert_eq!(body["type"], "template");
    assert_eq!(body["to"], "6281234567890");
    assert_eq!(
        body["template"],
        json!({
            "name": "order_update",
            "language": {"policy": "deterministic", "code": "id"},
            "components": [{"type": "body", "parameters": [
                {"type": "text", "text": "Andi"}, {"type": "text", "text": "50%"},
            ]}],
        })
    );
    assert!(body.get("text").is_none());
    assert!(requests[1].json()["template"].get("components").is_none());
}

#[tokio::test]
async fn template_headers_are_filled_as_meta_s_document_allows() {
    // Arrange: the upload's answer is generated from Meta's document.
    let Some(peer) = ValidatingPeer::start(Document::Cloud, accepting).await else {
        return;
    };
    let (connection, _sink) = validating_connect(&peer);
    let with_header = |header, media| OutgoingMessage {
        template: Some(TemplateMessage {
            header: Some(header),
            ..template_message().template.unwrap()
        }),
        media,
        ..text_message()
    };
    let text_header = with_header(
        TemplateHeader::Text {
            parameters: vec!["Jakarta".to_owned()],
        },
        None,
    );
    let media =
        |mime_type: &str, filename: &str| with_media(mime_type, filename, b"fake bytes").media;
    let header_media = TemplateHeader::Media {
        media_id: MediaId::new(),
    };
    let image_header = with_header(header_media.clone(), media("image/jpeg", "promo.jpg"));
    let document_header = with_header(header_media, media("application/pdf", "katalog.pdf"));

    // Act
    connection.driver.send(&text_header).await.unwrap();
    connection.driver.send(&image_header).await.unwrap();
    connection.driver.send(&document_header).await.unwrap();

    // Assert: each is valid by the document, the attachment goes up first.
    peer.assert_valid();
    let requests = peer.requests();
    let templates: Vec<_> = requests
        .iter()
        .filter(|r| r.path.ends_with("/messages"))
        .map(|r| r.json()["template"]["components"].clone())
        .collect();
    assert_eq!(requests.len(), 5);
    assert!(requests[1].path.ends_with("/media") && requests[3].path.ends_with("/media"));
    assert_eq!(
        templates[0],
        json!([
            {"type": "header", "parameters": [{"type": "text", "text": "Jakarta"}]},
            {"type": "body", "parameters": [
                {"type": "text", "text": "Andi"}, {"type": "text", "text": "50%"},
            ]},
        ])
    );
    let header = |i: usize| templates[i][0].clone();
    assert_eq!(header(1)["type"], "header");
    assert_eq!(header(1)["parameters"][0]["type"], "image");
    assert!(header(1)["parameters"][0]["image"]["id"].is_string());
    assert_eq!(header(2)["parameters"][0]["type"], "document");
    assert_eq!(
        header(2)["parameters"][0]["document"]["filename"],
        "katalog.pdf"
    );
    assert_eq!(templates[2][1]["type"], "body");
}

#[tokio::test]
async fn templates_are_listed_as_meta_s_document_describes() {
    // Arrange: the document's own example answer.
    let Some(peer) = ValidatingPeer::start(Document::Cloud, |_| None).await else {
        return;
    };
    let (connection, _sink) = validating_connect(&peer);

    // Act
    let templates = connection
        .driver
        .templates("102290129340398")
        .await
        .unwrap();

    // Assert
    peer.assert_valid();
    assert_eq!(
        peer.routes(),
        ["GET /v23.0/102290129340398/message_templates"]
    );
    assert!(!templates.is_empty());
}

#[tokio::test]
async fn templates_are_read_page_after_page_with_their_parameters() {
    // Arrange: two pages, the second found by the first's cursor.
    let peer = Peer::start(graph(|r| {
        if r.route() != "GET /v23.0/102290129340398/message_templates" {
            return Reply::json(404, graph_error(100, "Unsupported get request"));
        }
        if r.query.get("after").map(String::as_str) == Some("PAGE2") {
            return Reply::json(
                200,
                json!({
                    "data": [{
                        "name": "promo_image", "language": "id", "status": "APPROVED",
                        "category": "MARKETING", "id": "3",
                        "components": [
                            {"type": "HEADER", "format": "IMAGE"},
                            {"type": "BODY", "text": "Promo untuk {{1}}"},
                        ],
                    }],
                    "paging": {"cursors": {"before": "PAGE2", "after": "END"}},
                }),
            );
        }
        Reply::json(
            200,
            json!({
                "data": [
                    {"name": "order_update", "language": "id", "status": "APPROVED",
                     "category": "UTILITY", "id": "1",
                     "components": [
                        {"type": "HEADER", "format": "TEXT", "text": "Pesanan"},
                        {"type": "BODY", "text": "Halo {{1}}, diskon {{2}} untukmu"},
                        {"type": "FOOTER", "text": "Toko Andi"},
                     ]},
                    {"name": "order_update", "language": "en_US", "status": "PENDING",
                     "category": "UTILITY", "id": "2",
                     "components": [{"type": "BODY", "text": "Hi {{1}}"}]},
                ],
                "paging": {"cursors": {"before": "PAGE1", "after": "PAGE2"},
                           "next": "https://graph.facebook.com/v23.0/102290129340398/message_templates?after=PAGE2"},
            }),
        )
    }))
    .await;
    let (connection, _sink) = connect(&peer.base_url);

    // Act
    let templates = connection
        .driver
        .templates("102290129340398")
        .await
        .unwrap();

    // Assert
    assert_eq!(peer.routes().len(), 2);
    assert_eq!(templates.len(), 3);
    let first = &templates[0];
    assert_eq!(
        (first.name.as_str(), first.language.as_str()),
        ("order_update", "id")
    );
    assert_eq!(first.status, TemplateStatus::Approved);
    assert_eq!(first.category, TemplateCategory::Utility);
    assert_eq!(first.body_parameters, 2);
    assert_eq!(first.header_format.as_deref(), Some("TEXT"));
    assert_eq!(first.header_parameters, 0);
    assert_eq!(templates[1].status, TemplateStatus::Pending);
    assert_eq!(templates[2].header_format.as_deref(), Some("IMAGE"));
    assert_eq!(templates[2].header_kind(), Some(HeaderKind::Image));
    assert_eq!(templates[2].header_needed(), HeaderGiven::Media);
    assert!(templates[2].check_use(1, HeaderGiven::Nothing).is_err());
}

#[tokio::test]
async fn a_refused_template_listing_says_why() {
    // Arrange
    let peer = Peer::start(graph(|_| {
        Reply::json(400, graph_error(100, "Unsupported get request"))
    }))
    .await;
    let (connection, _sink) = connect(&peer.base_url);

    // Act
    let refused = connection.driver.templates("999").await;
    let not_an_id = connection.driver.templates("abc").await;

    // Assert
    assert!(
        matches!(refused, Err(DriverError::Refused(_))),
        "{refused:?}"
    );
    assert!(matches!(not_an_id, Err(DriverError::InvalidState(_))));
}
