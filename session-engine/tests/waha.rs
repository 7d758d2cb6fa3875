//! The WAHA driver against a local server speaking WAHA's HTTP API
//! (OpenAPI 2026.7.1), and WAHA's webhooks signed as WAHA signs them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use sha2::Sha512;
use uuid::Uuid;
use wablast_domain::message::Receipt as MessageReceipt;
use wablast_domain::session::SessionStatus;
use wablast_domain::types::{GroupId, SessionId};
use wablast_session_engine::driver::{
    Connection, DriverError, DriverEvent, Group, LookedUp, OutgoingMedia, OutgoingMessage,
    ReceiptKind, Refusal, SendError,
};
use wablast_session_engine::waha::{
    self, StatusContext, Typing, WahaConfig, WahaDriver, WahaEvent, WahaOptions, WahaStatus,
    WahaWebhookSink,
};
use wablast_session_engine::webhook::WebhookError;

use crate::prism::{Document, ValidatingPeer};
use crate::support::{Peer, Recorded, Reply, closed_port_url, drain, phone};

const API_KEY: &str = "waha-secret-key";
const HMAC_KEY: &str = "webhook-hmac-key";
const SESSION: &str = "toko-andi";
const WEBHOOK_URL: &str = "https://wablast.example/webhooks/waha/toko-andi";

fn connect(base_url: &str) -> (Connection, WahaWebhookSink) {
    let config: WahaConfig = serde_json::from_value(json!({
        "base_url": format!("{base_url}/"),
        "api_key": API_KEY,
        "session_name": SESSION,
    }))
    .unwrap();
    let options = WahaOptions {
        request_timeout: Duration::from_millis(500),
        typing: None,
        ..WahaOptions::new(WEBHOOK_URL, HMAC_KEY)
    };
    WahaDriver::connect(SessionId::new(), config, options, reqwest::Client::new())
}

/// Refuses requests without our API key, as WAHA does; else `answer`.
fn waha(
    answer: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    move |request| {
        if request.header("x-api-key") != Some(API_KEY) {
            return Reply::json(401, json!({"message": "Unauthorized", "statusCode": 401}));
        }
        answer(request)
    }
}

fn sign(body: &[u8], key: &str) -> String {
    let mut mac = Hmac::<Sha512>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn signed_headers(body: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        "X-Webhook-Hmac",
        HeaderValue::from_str(&sign(body, HMAC_KEY)).unwrap(),
    );
    headers.insert(
        "X-Webhook-Hmac-Algorithm",
        HeaderValue::from_static("sha512"),
    );
    headers
}

fn webhook(event: &str, payload: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": "evt_01jcxkz0f8b3r5k9n2m4p6q8s0",
        "timestamp": 1_767_225_600_000u64,
        "session": SESSION,
        "metadata": {},
        "engine": "NOWEB",
        "event": event,
        "payload": payload,
        "me": { "id": "6281100000001@c.us", "pushName": "Toko Andi" },
        "environment": { "version": "2026.7.1", "engine": "NOWEB", "tier": "PLUS" },
    }))
    .unwrap()
}

fn status_webhook(status: &str) -> Vec<u8> {
    webhook(
        "session.status",
        json!({ "name": SESSION, "status": status, "statuses": [] }),
    )
}

fn text_message(to: &str) -> OutgoingMessage {
    OutgoingMessage {
        message_id: Uuid::now_v7(),
        to: phone(to).into(),
        text: "Halo Kak, promo hari ini!".to_owned(),
        media: None,
        reply_to: None,
        template: None,
    }
}

fn wa_message(id: &str) -> Value {
    json!({
        "id": id,
        "timestamp": 1_767_225_600,
        "from": "6281100000001@c.us",
        "fromMe": true,
        "source": "api",
        "to": "6281234567890@c.us",
        "body": "Halo Kak, promo hari ini!",
        "hasMedia": false,
        "ack": 1,
        "ackName": "SERVER",
    })
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
async fn start_creates_the_session_with_our_signed_webhook() {
    // Arrange
    let peer = Peer::start(waha(|_| {
        Reply::json(
            201,
            json!({"name": SESSION, "status": "STARTING", "config": {}}),
        )
    }))
    .await;
    let (Connection { driver, mut events }, _sink) = connect(&peer.base_url);

    // Act
    driver.start().await.unwrap();

    // Assert
    let requests = peer.requests();
    assert_eq!(peer.routes(), ["POST /api/sessions"]);
    assert_eq!(requests[0].header("x-api-key"), Some(API_KEY));
    assert_eq!(
        requests[0].json(),
        json!({
            "name": SESSION,
            "start": true,
            "config": { "webhooks": [{
                "url": WEBHOOK_URL,
                "events": ["session.status", "message", "message.ack"],
                "hmac": { "key": HMAC_KEY },
            }]},
        })
    );
    assert!(drain(&mut events).is_empty(), "STARTING is ours to report");
}

#[tokio::test]
async fn start_updates_an_existing_session_and_reports_it_ready() {
    // Arrange: the session exists, running, with someone else's webhook.
    let peer = Peer::start(waha(|r| match r.route().as_str() {
        "POST /api/sessions" => Reply::json(
            422,
            json!({
                "statusCode": 422,
                "message": format!("Session '{SESSION}' already exists. Use PUT to update it."),
                "error": "Unprocessable Entity",
            }),
        ),
        "GET /api/sessions/toko-andi" => Reply::json(
            200,
            json!({
                "name": SESSION, "status": "WORKING", "presence": null,
                "timestamps": {"activity": null},
                "config": {"webhooks": [{"url": "https://old.example/hook", "events": ["message"]}]},
            }),
        ),
        "PUT /api/sessions/toko-andi" => {
            Reply::json(200, json!({"name": SESSION, "status": "WORKING"}))
        }
        "POST /api/sessions/toko-andi/start" => {
            Reply::json(201, json!({"name": SESSION, "status": "WORKING"}))
        }
        "GET /api/sessions/toko-andi/me" => Reply::json(
            200,
            json!({"id": "6281100000001@c.us", "pushName": "Toko Andi"}),
        ),
        _ => Reply::empty(404),
    }))
    .await;
    let (Connection { driver, mut events }, sink) = connect(&peer.base_url);

    // Act
    driver.start().await.unwrap();

    // Assert
    assert_eq!(
        peer.routes(),
        [
            "POST /api/sessions",
            "GET /api/sessions/toko-andi",
            "PUT /api/sessions/toko-andi",
            "POST /api/sessions/toko-andi/start",
            "GET /api/sessions/toko-andi/me",
        ]
    );
    assert_eq!(
        peer.requests()[2].json()["config"]["webhooks"],
        json!([
            {"url": "https://old.example/hook", "events": ["message"]},
            {"url": WEBHOOK_URL, "events": ["session.status", "message", "message.ack"],
             "hmac": {"key": HMAC_KEY}},
        ]),
        "theirs kept, ours added"
    );
    let DriverEvent::Status(ready) = &drain(&mut events)[0] else {
        panic!("a status")
    };
    assert_eq!(ready.status, SessionStatus::Ready);
    assert_eq!(ready.phone_number, Some(phone("+6281100000001")));

    // The update restarted it: that STOPPED is not news.
    let body = status_webhook("STOPPED");
    assert_eq!(sink.deliver(&signed_headers(&body), &body).await, Ok(0));
}

#[tokio::test]
async fn start_leaves_a_session_already_pointing_at_us_alone() {
    let peer = Peer::start(waha(|r| match r.route().as_str() {
        "POST /api/sessions" => Reply::json(422, json!({"message": "already exists"})),
        "GET /api/sessions/toko-andi" => Reply::json(
            200,
            json!({
                "name": SESSION, "status": "STOPPED",
                "config": {"webhooks": [{
                    "url": WEBHOOK_URL,
                    "events": ["message", "session.status", "message.ack"],
                    "hmac": {"key": HMAC_KEY},
                }]},
            }),
        ),
        "POST /api/sessions/toko-andi/start" => {
            Reply::json(201, json!({"name": SESSION, "status": "STARTING"}))
        }
        _ => Reply::empty(404),
    }))
    .await;
    let (connection, _sink) = connect(&peer.base_url);

    connection.driver.start().await.unwrap();

    assert_eq!(
        peer.routes(),
        [
            "POST /api/sessions",
            "GET /api/sessions/toko-andi",
            "POST /api/sessions/toko-andi/start",
        ]
    );
}

#[tokio::test]
async fn a_session_waiting_for_a_scan_reports_qr_with_the_raw_qr_value() {
    // Arrange
    let peer = Peer::start(waha(|r| match r.route().as_str() {
        "GET /api/toko-andi/auth/qr"
            if r.query.get("format").map(String::as_str) == Some("raw") =>
        {
            Reply::json(200, json!({"value": "2@Xk9sQ1,abc=,def=,ghi="}))
        }
        _ => Reply::empty(404),
    }))
    .await;
    let (Connection { driver, mut events }, sink) = connect(&peer.base_url);
    let body = status_webhook("SCAN_QR_CODE");

    // Act
    let reported = sink.deliver(&signed_headers(&body), &body).await.unwrap();

    // Assert
    let seen = drain(&mut events);
    assert_eq!(reported, 2);
    assert_eq!(statuses(&seen), [SessionStatus::Qr]);
    let DriverEvent::Qr(qr) = &seen[1] else {
        panic!("a QR: {seen:?}")
    };
    assert_eq!(qr.payload, "2@Xk9sQ1,abc=,def=,ghi=");
    assert_eq!(driver.qr().await.unwrap().unwrap().payload, qr.payload);
    let qr_request = &peer.requests()[0];
    assert_eq!(qr_request.header("accept"), Some("application/json"));
    assert_eq!(qr_request.header("x-api-key"), Some(API_KEY));
}

#[tokio::test]
async fn a_pairing_code_is_requested_with_the_number_in_international_format() {
    let peer = Peer::start(waha(|r| match r.route().as_str() {
        "POST /api/toko-andi/auth/request-code" => Reply::json(201, json!({"code": "ABCD-EFGH"})),
        _ => Reply::empty(404),
    }))
    .await;
    let (Connection { driver, mut events }, _sink) = connect(&peer.base_url);

    let code = driver
        .request_pairing_code(&phone("+6281234567890"))
        .await
        .unwrap();

    assert_eq!(code, "ABCD-EFGH");
    assert_eq!(
        peer.requests()[0].json(),
        json!({"phoneNumber": "6281234567890"})
    );
    assert_eq!(statuses(&drain(&mut events)), [SessionStatus::Pairing]);
}

#[tokio::test]
async fn a_pairing_code_while_not_waiting_for_a_scan_is_an_invalid_state() {
    let peer = Peer::start(waha(|_| {
        Reply::json(
            422,
            json!({"statusCode": 422, "message": "Can request code only in SCAN_QR_CODE status. The current status is WORKING"}),
        )
    }))
    .await;
    let (connection, _sink) = connect(&peer.base_url);

    let refused = connection
        .driver
        .request_pairing_code(&phone("+6281234567890"))
        .await;

    assert!(matches!(refused, Err(DriverError::InvalidState(m)) if m.contains("SCAN_QR_CODE")));
}

#[tokio::test]
async fn texts_go_to_send_text_with_a_c_us_chat_id() {
    // Arrange
    let peer = Peer::start(waha(|r| match r.route().as_str() {
        "POST /api/sendText" => Reply::json(
            201,
            wa_message("true_6281234567890@c.us_3EB0C4F1A2B3C4D5E6F7"),
        ),
        _ => Reply::empty(404),
    }))
    .await;
    let (connection, _sink) = connect(&peer.base_url);

    // Act
    let sent = connection
        .driver
        .send(&text_message("+6281234567890"))
        .await
        .unwrap();

    // Assert
    assert_eq!(sent.provider_message_id, "3EB0C4F1A2B3C4D5E6F7");
    let request = &peer.requests()[0];
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("x-api-key"), Some(API_KEY));
    assert_eq!(
        request.json(),
        json!({
            "session": SESSION,
            "chatId": "6281234567890@c.us",
            "text": "Halo Kak, promo hari ini!",
        })
    );
}

#[tokio::test]
async fn a_text_to_a_group_goes_to_its_g_us_chat_id() {
    // Arrange
    let peer = Peer::start(waha(|r| match r.route().as_str() {
        "POST /api/sendText" => Reply::json(
            201,
            wa_message("true_120363025246125486@g.us_3EB0C4F1A2B3C4D5E6F8"),
        ),
        _ => Reply::empty(404),
    }))
    .await;
    let (connection, _sink) = connect(&peer.base_url);
    let group: GroupId = "120363025246125486@g.us".parse().unwrap();

    // Act
    let sent = connection
        .driver
        .send(&OutgoingMessage {
            to: group.into(),
            ..text_message("+6281234567890")
        })
        .await
        .unwrap();

    // Assert
    assert_eq!(sent.provider_message_id, "3EB0C4F1A2B3C4D5E6F8");
    assert_eq!(
        peer.requests()[0].json()["chatId"],
        "120363025246125486@g.us"
    );
}

#[tokio::test]
async fn images_go_to_send_image_and_other_files_to_send_file_as_base64() {
    // Arrange
    let peer = Peer::start(waha(|r| match r.route().as_str() {
        // The spec leaves these answers open; NOWEB answers its raw message.
        "POST /api/sendImage" => Reply::json(
            201,
            json!({"key": {"remoteJid": "6281234567890@s.whatsapp.net", "fromMe": true, "id": "3EB0IMAGE"}}),
        ),
        "POST /api/sendFile" => Reply::json(
            201,
            json!({"id": {"fromMe": true, "remote": "6281234567890@c.us", "id": "3EB0FILE",
                   "_serialized": "true_6281234567890@c.us_3EB0FILE"}}),
        ),
        _ => Reply::empty(404),
    }))
    .await;
    let (connection, _sink) = connect(&peer.base_url);
    let with = |mime_type: &str, filename: &str, bytes: &'static [u8]| OutgoingMessage {
        media: Some(OutgoingMedia {
            mime_type: mime_type.to_owned(),
            filename: filename.to_owned(),
            bytes: Bytes::from_static(bytes),
        }),
        ..text_message("+6281234567890")
    };

    // Act
    let image = connection
        .driver
        .send(&with("image/png", "promo.png", b"\x89PNG fake"))
        .await
        .unwrap();
    let file = connection
        .driver
        .send(&with("application/pdf", "katalog.pdf", b"%PDF-1.7 fake"))
        .await
        .unwrap();

    // Assert
    assert_eq!(image.provider_message_id, "3EB0IMAGE");
    assert_eq!(file.provider_message_id, "3EB0FILE");
    let requests = peer.requests();
    assert_eq!(
        requests[0].json(),
        json!({
            "session": SESSION,
            "chatId": "6281234567890@c.us",
            "file": {"mimetype": "image/png", "filename": "promo.png", "data": "iVBORyBmYWtl"},
            "caption": "Halo Kak, promo hari ini!",
        })
    );
    assert_eq!(requests[1].path, "/api/sendFile");
    assert_eq!(
        requests[1].json()["file"],
        json!({"mimetype": "application/pdf", "filename": "katalog.pdf", "data": "JVBERi0xLjcgZmFrZQ=="})
    );
}

#[tokio::test]
async fn failed_sends_are_transient_permanent_or_unknown_as_waha_answers() {
    type Expected = fn(&SendError) -> bool;
    let cases: Vec<(Reply, Expected)> = vec![
        (
            Reply::json(500, json!({"statusCode": 500, "error": "Internal error"})),
            |e| matches!(e, SendError::Transient(_)),
        ),
        (
            Reply::json(
                429,
                json!({"statusCode": 429, "message": "Too Many Requests"}),
            ),
            |e| matches!(e, SendError::Transient(_)),
        ),
        (
            Reply::json(
                422,
                json!({
                    "error": "Session status is not as expected. Try again later or restart the session",
                    "session": SESSION, "status": "STARTING", "expected": ["WORKING"],
                }),
            ),
            |e| matches!(e, SendError::Transient(m) if m.contains("not as expected")),
        ),
        (
            Reply::json(
                400,
                json!({"statusCode": 400, "message": ["chatId must be a string"], "error": "Bad Request"}),
            ),
            |e| matches!(e, SendError::Permanent(m) if m.contains("chatId must be a string")),
        ),
        (
            Reply::json(504, json!({"message": "Gateway Timeout"})),
            |e| matches!(e, SendError::Unknown(_)),
        ),
        (
            Reply::json(
                404,
                json!({"statusCode": 404, "message": "We didn't find a session with name 'toko-andi'"}),
            ),
            |e| matches!(e, SendError::Transient(_)),
        ),
        (Reply::hang(), |e| matches!(e, SendError::Unknown(_))),
    ];
    for (reply, expected) in cases {
        let reply = Mutex::new(Some(reply));
        let peer = Peer::start(waha(move |_| {
            reply.lock().unwrap().take().expect("one request")
        }))
        .await;
        let (connection, _sink) = connect(&peer.base_url);

        let error = connection
            .driver
            .send(&text_message("+6281234567890"))
            .await
            .unwrap_err();

        assert!(expected(&error), "{error:?}");
    }
}

#[tokio::test]
async fn a_wrong_api_key_or_no_server_is_transient() {
    let peer = Peer::start(waha(|_| Reply::empty(500))).await;
    let config: WahaConfig = serde_json::from_value(json!({
        "base_url": peer.base_url, "api_key": "wrong", "session_name": SESSION,
    }))
    .unwrap();
    let (connection, _sink) = WahaDriver::connect(
        SessionId::new(),
        config,
        WahaOptions::new(WEBHOOK_URL, HMAC_KEY),
        reqwest::Client::new(),
    );
    assert!(matches!(
        connection.driver.send(&text_message("+6281234567890")).await,
        Err(SendError::Transient(m)) if m.contains("API key")
    ));

    let (nowhere, _sink) = connect(&closed_port_url().await);
    assert!(matches!(
        nowhere.driver.send(&text_message("+6281234567890")).await,
        Err(SendError::Transient(_))
    ));

    // A host that does not answer the connection: with a connect timeout
    // on the client, nothing was sent.
    let config: WahaConfig = serde_json::from_value(json!({
        "base_url": "http://10.255.255.1:3000", "api_key": API_KEY, "session_name": SESSION,
    }))
    .unwrap();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let options = WahaOptions {
        request_timeout: Duration::from_secs(5),
        ..WahaOptions::new(WEBHOOK_URL, HMAC_KEY)
    };
    let (unreachable, _sink) = WahaDriver::connect(SessionId::new(), config, options, client);
    let outcome = unreachable
        .driver
        .send(&text_message("+6281234567890"))
        .await;
    assert!(
        matches!(outcome, Err(SendError::Transient(_))),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn numbers_groups_and_members_are_read_from_waha() {
    // Arrange
    let peer = Peer::start(waha(|r| match r.route().as_str() {
        "GET /api/contacts/check-exists" => {
            let exists = r.query.get("phone").map(String::as_str) == Some("6281234567890");
            Reply::json(200, json!({"numberExists": exists, "chatId": "6281234567890@c.us"}))
        }
        "GET /api/toko-andi/groups" => Reply::json(
            200,
            json!([{
                "id": "120363025246125486@g.us", "subject": "Reseller Jakarta",
                "description": "", "membersCanAddNewMember": false,
                "membersCanSendMessages": true, "newMembersApprovalRequired": false,
                "participants": [
                    {"id": "6281100000001@c.us", "role": "superadmin"},
                    {"id": "187654321012345@lid", "pn": "6281234567890@c.us", "role": "participant"},
                ],
            }]),
        ),
        "GET /api/toko-andi/groups/120363025246125486@g.us/participants/v2" => Reply::json(
            200,
            json!([
                {"id": "6281100000001@c.us", "role": "superadmin"},
                {"id": "187654321012345@lid", "pn": "6281234567890@c.us", "role": "participant"},
                {"id": "299999999999999@lid", "role": "participant"},
                {"id": "6281300000000@c.us", "role": "left"},
            ]),
        ),
        _ => Reply::empty(404),
    }))
    .await;
    let (Connection { driver, .. }, _sink) = connect(&peer.base_url);

    // Act
    let on_whatsapp = driver.check_number(&phone("+6281234567890")).await.unwrap();
    let not_on_whatsapp = driver.check_number(&phone("+6281299999999")).await.unwrap();
    let groups = driver.groups().await.unwrap();
    let members = driver
        .group_members("120363025246125486@g.us")
        .await
        .unwrap();

    // Assert
    assert!(on_whatsapp);
    assert!(!not_on_whatsapp);
    let check = &peer.requests()[0];
    assert_eq!(
        check.query.get("session").map(String::as_str),
        Some(SESSION)
    );
    assert_eq!(
        groups,
        [Group {
            id: "120363025246125486@g.us".into(),
            name: "Reseller Jakarta".into(),
            participants: 2,
        }]
    );
    let summary: Vec<_> = members
        .iter()
        .map(|m| (m.id.as_str(), m.phone.as_ref().map(|p| p.as_str()), m.admin))
        .collect();
    assert_eq!(
        summary,
        [
            ("6281100000001@c.us", Some("+6281100000001"), true),
            ("187654321012345@lid", Some("+6281234567890"), false),
            ("299999999999999@lid", None, false),
        ]
    );
}

#[tokio::test]
async fn stop_is_not_news_and_logout_stops_then_logs_out() {
    // Arrange
    let peer = Peer::start(waha(|_| {
        Reply::json(201, json!({"name": SESSION, "status": "STOPPED"}))
    }))
    .await;
    let (Connection { driver, mut events }, sink) = connect(&peer.base_url);
    let stopped = status_webhook("STOPPED");

    // Act
    driver.stop().await.unwrap();
    let after_stop = sink.deliver(&signed_headers(&stopped), &stopped).await;
    driver.logout().await.unwrap();

    // Assert
    assert_eq!(after_stop, Ok(0));
    assert_eq!(
        peer.routes(),
        [
            "POST /api/sessions/toko-andi/stop",
            "POST /api/sessions/toko-andi/stop",
            "POST /api/sessions/toko-andi/logout",
        ]
    );
    assert_eq!(statuses(&drain(&mut events)), [SessionStatus::LoggedOut]);
}

#[tokio::test]
async fn an_unexpected_stop_of_a_working_session_is_a_disconnection() {
    let peer = Peer::start(waha(|_| Reply::empty(404))).await;
    let (
        Connection {
            driver: _driver,
            mut events,
        },
        sink,
    ) = connect(&peer.base_url);
    for status in ["WORKING", "STOPPED"] {
        let body = status_webhook(status);
        sink.deliver(&signed_headers(&body), &body).await.unwrap();
    }

    let seen = drain(&mut events);

    assert_eq!(
        statuses(&seen),
        [SessionStatus::Ready, SessionStatus::Disconnected]
    );
    let DriverEvent::Status(ready) = &seen[0] else {
        unreachable!()
    };
    assert_eq!(ready.phone_number, Some(phone("+6281100000001")));
}

#[test]
fn waha_statuses_map_to_ours() {
    let cases = [
        ("STARTING", StatusContext::default(), None),
        (
            "SCAN_QR_CODE",
            StatusContext::default(),
            Some(SessionStatus::Qr),
        ),
        (
            "PASSKEY_REQUIRED",
            StatusContext::default(),
            Some(SessionStatus::Pairing),
        ),
        (
            "PASSKEY_CONFIRMATION_REQUIRED",
            StatusContext::default(),
            Some(SessionStatus::Pairing),
        ),
        (
            "WORKING",
            StatusContext::default(),
            Some(SessionStatus::Ready),
        ),
        (
            "FAILED",
            StatusContext::default(),
            Some(SessionStatus::Failed),
        ),
        (
            "STOPPED",
            StatusContext {
                stop_expected: true,
                linked: true,
            },
            None,
        ),
        (
            "STOPPED",
            StatusContext {
                stop_expected: false,
                linked: true,
            },
            Some(SessionStatus::Disconnected),
        ),
        (
            "STOPPED",
            StatusContext {
                stop_expected: false,
                linked: false,
            },
            Some(SessionStatus::Failed),
        ),
        ("SOMETHING_NEW", StatusContext::default(), None),
    ];
    for (status, context, expected) in cases {
        let webhook = waha::parse_webhook(&status_webhook(status)).unwrap();
        assert_eq!(
            statuses(&waha::events_of(&webhook, context)),
            expected.into_iter().collect::<Vec<_>>(),
            "{status} {context:?}"
        );
    }
    let webhook = waha::parse_webhook(&status_webhook("WORKING")).unwrap();
    assert!(matches!(
        webhook.event,
        WahaEvent::Status {
            status: WahaStatus::Working,
            me: Some(_),
            ..
        }
    ));
}

#[test]
fn acks_map_to_receipts() {
    let cases = [
        (-1, Some("failed")),
        (0, None),
        (1, None),
        (2, Some("delivered")),
        (3, Some("read")),
        (4, Some("read")),
    ];
    for (ack, expected) in cases {
        let body = webhook(
            "message.ack",
            json!({
                "id": "true_6281234567890@c.us_3EB0C4F1A2B3C4D5E6F7",
                "from": "6281100000001@c.us", "to": "6281234567890@c.us",
                "participant": null, "fromMe": true, "ack": ack, "ackName": "X",
            }),
        );
        let events = waha::events_of(
            &waha::parse_webhook(&body).unwrap(),
            StatusContext::default(),
        );
        let receipts: Vec<_> = events
            .iter()
            .map(|e| match e {
                DriverEvent::Receipt(r) => {
                    assert_eq!(r.provider_message_id, "3EB0C4F1A2B3C4D5E6F7");
                    match r.kind {
                        ReceiptKind::Delivered => "delivered",
                        ReceiptKind::Read => "read",
                        ReceiptKind::Failed { .. } => "failed",
                    }
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            receipts,
            expected.into_iter().collect::<Vec<_>>(),
            "ack {ack}"
        );
    }
    // The ack of a message we received is not a receipt of ours; the chat
    // part of the id may be a @lid: the message id still matches.
    let theirs = webhook(
        "message.ack",
        json!({"id": "false_6281234567890@c.us_AAA", "from": "x", "to": "y",
               "participant": null, "fromMe": false, "ack": 3, "ackName": "READ"}),
    );
    assert!(
        waha::events_of(
            &waha::parse_webhook(&theirs).unwrap(),
            StatusContext::default()
        )
        .is_empty()
    );
    let by_lid = webhook(
        "message.ack",
        json!({"id": "true_187654321012345@lid_3EB0C4F1A2B3C4D5E6F7", "from": "x", "to": "y",
               "participant": null, "fromMe": true, "ack": 2, "ackName": "DEVICE"}),
    );
    let events = waha::events_of(
        &waha::parse_webhook(&by_lid).unwrap(),
        StatusContext::default(),
    );
    assert!(
        matches!(&events[0], DriverEvent::Receipt(r) if r.provider_message_id == "3EB0C4F1A2B3C4D5E6F7")
    );
}

fn inbound_payload(from: &str, data: Value) -> Value {
    json!({
        "id": format!("false_{from}_3A1B2C3D4E5F"),
        "timestamp": 1_767_225_600,
        "from": from, "fromMe": false, "to": "6281100000001@c.us",
        "body": "Kak, stok masih ada?", "hasMedia": false, "ack": 1, "ackName": "SERVER",
        "_data": data,
    })
}

#[tokio::test]
async fn inbound_messages_carry_the_sender_resolving_lids() {
    // Arrange: WAHA knows one of the hidden senders.
    let peer = Peer::start(waha(|r| match r.route().as_str() {
        "GET /api/toko-andi/lids/111111111111111@lid" => Reply::json(
            200,
            json!({"lid": "111111111111111@lid", "pn": "6281277777777@c.us"}),
        ),
        _ => Reply::json(404, json!({"message": "not found"})),
    }))
    .await;
    let (
        Connection {
            driver: _driver,
            mut events,
        },
        sink,
    ) = connect(&peer.base_url);
    let messages = [
        inbound_payload("6281234567890@c.us", json!({})),
        inbound_payload(
            "187654321012345@lid",
            json!({"key": {"remoteJid": "187654321012345@lid", "remoteJidAlt": "6281255555555@s.whatsapp.net"}}),
        ),
        inbound_payload("111111111111111@lid", json!({})),
        inbound_payload("222222222222222@lid", json!({})),
        // Not for the inbox: a group, our own message.
        inbound_payload("120363025246125486@g.us", json!({})),
        json!({"id": "true_x", "from": "6281234567890@c.us", "fromMe": true, "body": "ours"}),
    ];

    // Act
    for payload in messages {
        let body = webhook("message", payload);
        sink.deliver(&signed_headers(&body), &body).await.unwrap();
    }

    // Assert
    let senders: Vec<_> = drain(&mut events)
        .into_iter()
        .map(|e| match e {
            DriverEvent::Inbound(i) => {
                assert_eq!(i.text.as_deref(), Some("Kak, stok masih ada?"));
                (i.from_raw, i.from.map(|p| p.as_str().to_owned()))
            }
            other => panic!("{other:?}"),
        })
        .collect();
    let expected = [
        ("6281234567890@c.us", Some("+6281234567890")),
        ("187654321012345@lid", Some("+6281255555555")),
        ("111111111111111@lid", Some("+6281277777777")),
        ("222222222222222@lid", None),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(raw, phone)| (raw.to_string(), phone.map(str::to_owned)))
        .collect();
    assert_eq!(senders, expected);
}

#[tokio::test]
async fn webhooks_with_bad_signatures_are_refused_and_change_nothing() {
    // Arrange
    let peer = Peer::start(waha(|_| Reply::empty(404))).await;
    let (
        Connection {
            driver: _driver,
            mut events,
        },
        sink,
    ) = connect(&peer.base_url);
    let body = status_webhook("WORKING");
    let mut tampered = body.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 1;
    let signed_with = |key: &str, algorithm: Option<&'static str>| {
        let mut headers = HeaderMap::new();
        headers.insert(
            "X-Webhook-Hmac",
            HeaderValue::from_str(&sign(&body, key)).unwrap(),
        );
        if let Some(algorithm) = algorithm {
            headers.insert(
                "X-Webhook-Hmac-Algorithm",
                HeaderValue::from_static(algorithm),
            );
        }
        headers
    };
    let mut not_hex = signed_headers(&body);
    not_hex.insert("X-Webhook-Hmac", HeaderValue::from_static("zz-not-hex"));

    // Act
    let outcomes = [
        sink.deliver(&HeaderMap::new(), &body).await,
        sink.deliver(&signed_with("another key", Some("sha512")), &body)
            .await,
        sink.deliver(&signed_headers(&body), &tampered).await,
        sink.deliver(&signed_with(HMAC_KEY, Some("sha256")), &body)
            .await,
        sink.deliver(&signed_with(HMAC_KEY, None), &body).await,
        sink.deliver(&not_hex, &body).await,
    ];

    // Assert
    assert_eq!(
        outcomes,
        [
            Err(WebhookError::MissingSignature),
            Err(WebhookError::BadSignature),
            Err(WebhookError::BadSignature),
            Err(WebhookError::UnsupportedAlgorithm("sha256".into())),
            Err(WebhookError::UnsupportedAlgorithm(String::new())),
            Err(WebhookError::MalformedSignature),
        ]
    );
    assert!(
        outcomes
            .iter()
            .all(|o| o.as_ref().unwrap_err().is_unauthorized())
    );
    assert!(drain(&mut events).is_empty());
    assert!(peer.requests().is_empty());
    // Signed right, it is taken; another session's webhook is not.
    assert_eq!(sink.deliver(&signed_headers(&body), &body).await, Ok(1));
    let other: Vec<u8> = String::from_utf8(body.clone())
        .unwrap()
        .replace(SESSION, "someone-else")
        .into_bytes();
    assert_eq!(
        sink.deliver(&signed_headers(&other), &other).await,
        Err(WebhookError::OtherSession("someone-else".into()))
    );
    assert_eq!(
        waha::verify_signature("", &body, Some("00"), Some("sha512")),
        Err(WebhookError::NoKey)
    );
}

#[tokio::test]
async fn a_dropped_driver_takes_no_more_webhooks() {
    let (connection, sink) = connect("http://127.0.0.1:9");
    drop(connection);
    let body = status_webhook("WORKING");
    assert_eq!(
        sink.deliver(&signed_headers(&body), &body).await,
        Err(WebhookError::Gone)
    );
}

#[tokio::test]
async fn the_session_name_defaults_to_one_derived_from_our_session() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let peer = Peer::start(move |r| {
        record.lock().unwrap().push(r.json()["name"].clone());
        Reply::json(201, json!({"status": "STARTING"}))
    })
    .await;
    let session_id = SessionId::new();
    let config: WahaConfig =
        serde_json::from_value(json!({"base_url": peer.base_url, "api_key": API_KEY})).unwrap();
    let (connection, sink) = WahaDriver::connect(
        session_id,
        config,
        WahaOptions::new(WEBHOOK_URL, HMAC_KEY),
        reqwest::Client::new(),
    );

    connection.driver.start().await.unwrap();

    let name = waha::default_session_name(session_id);
    assert_eq!(sink.session_name(), name);
    assert_eq!(seen.lock().unwrap()[0], json!(name));
}

// Against a validating mock generated from WAHA's own API description:
// every request the driver makes is one the document allows.

fn validating_connect(
    peer: &ValidatingPeer,
    typing: Option<Typing>,
) -> (Connection, WahaWebhookSink) {
    let config: WahaConfig = serde_json::from_value(json!({
        "base_url": peer.base_url, "api_key": API_KEY, "session_name": SESSION,
    }))
    .unwrap();
    let options = WahaOptions {
        request_timeout: Duration::from_secs(5),
        typing,
        ..WahaOptions::new(WEBHOOK_URL, HMAC_KEY)
    };
    WahaDriver::connect(SessionId::new(), config, options, reqwest::Client::new())
}

/// Typing that takes a few milliseconds.
const QUICK_TYPING: Typing = Typing {
    per_char: Duration::from_millis(1),
    min: Duration::from_millis(10),
    max: Duration::from_millis(40),
};

#[tokio::test]
async fn the_validating_peer_fails_requests_waha_s_document_does_not_allow() {
    let Some(peer) = ValidatingPeer::start(Document::Waha, |_| None).await else {
        return;
    };
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", peer.base_url);

    // No API key; a text without its chat; a QR without its format.
    client
        .post(url("/api/sendText"))
        .json(&json!({"session": SESSION, "chatId": "1@c.us", "text": "x"}))
        .send()
        .await
        .unwrap();
    client
        .post(url("/api/sendText"))
        .header("X-Api-Key", API_KEY)
        .json(&json!({"session": SESSION, "text": "x"}))
        .send()
        .await
        .unwrap();
    client
        .get(url("/api/toko-andi/auth/qr"))
        .header("X-Api-Key", API_KEY)
        .send()
        .await
        .unwrap();
    client
        .post(url("/api/no-such-endpoint"))
        .header("X-Api-Key", API_KEY)
        .send()
        .await
        .unwrap();

    let violations = peer.take_violations();
    assert_eq!(peer.routes().len(), 4);
    assert_eq!(violations.len(), 4, "{violations:#?}");
    assert!(violations[1].contains("chatId"), "{}", violations[1]);
    assert!(violations[2].contains("format"), "{}", violations[2]);
}

#[tokio::test]
async fn session_requests_are_made_as_waha_s_document_allows() {
    // Arrange: WAHA's answers are generated from its document; a pairing
    // code is one the test knows.
    let Some(peer) = ValidatingPeer::start(Document::Waha, |r| {
        (r.route() == "POST /api/toko-andi/auth/request-code")
            .then(|| Reply::json(201, json!({"code": "ABCD-EFGH"})))
    })
    .await
    else {
        return;
    };
    let (Connection { driver, .. }, _sink) = validating_connect(&peer, None);

    // Act
    driver.start().await.unwrap();
    driver.qr().await.unwrap();
    let code = driver
        .request_pairing_code(&phone("+6281234567890"))
        .await
        .unwrap();
    driver.stop().await.unwrap();
    driver.logout().await.unwrap();
    driver.delete().await.unwrap();

    // Assert
    peer.assert_valid();
    assert_eq!(code, "ABCD-EFGH");
    let routes = peer.routes();
    for route in [
        "POST /api/sessions",
        "GET /api/toko-andi/auth/qr",
        "POST /api/toko-andi/auth/request-code",
        "POST /api/sessions/toko-andi/stop",
        "POST /api/sessions/toko-andi/logout",
        "DELETE /api/sessions/toko-andi",
    ] {
        assert!(routes.iter().any(|r| r == route), "{route} in {routes:?}");
    }
}

/// WAHA's answer to a create of a session that exists.
fn already_exists() -> Reply {
    Reply::json(
        422,
        json!({
            "statusCode": 422,
            "message": format!("Session '{SESSION}' already exists. Use PUT to update it."),
            "error": "Unprocessable Entity",
        }),
    )
}

#[tokio::test]
async fn an_existing_session_keeps_its_config_and_gets_our_webhook() {
    // Arrange: the session exists, running, with the user's settings, a
    // webhook of theirs and an old one of ours.
    let existing = json!({
        "name": SESSION, "status": "WORKING", "presence": null,
        "timestamps": {"activity": null},
        "config": {
            "metadata": {"user.id": "123"},
            "proxy": {"server": "proxy.example:3128", "username": null, "password": null},
            "noweb": {"store": {"enabled": true, "fullSync": false}, "markOnline": false},
            "webhooks": [
                {"url": "https://crm.example/waha", "events": ["message"],
                 "customHeaders": [{"name": "X-Tenant", "value": "andi"}]},
                {"url": WEBHOOK_URL, "events": ["message"], "hmac": {"key": "an-old-key"}},
            ],
        },
    });
    let answer = existing.clone();
    let Some(peer) = ValidatingPeer::start(Document::Waha, move |r| match r.route().as_str() {
        "POST /api/sessions" => Some(already_exists()),
        "GET /api/sessions/toko-andi" => Some(Reply::json(200, answer.clone())),
        _ => None,
    })
    .await
    else {
        return;
    };
    let (Connection { driver, .. }, _sink) = validating_connect(&peer, None);

    // Act
    let started = driver.start().await;

    // Assert
    peer.assert_valid();
    started.unwrap();
    let requests = peer.requests();
    let routes: Vec<String> = requests.iter().map(Recorded::route).collect();
    assert_eq!(
        routes[..4],
        [
            "POST /api/sessions",
            "GET /api/sessions/toko-andi",
            "PUT /api/sessions/toko-andi",
            "POST /api/sessions/toko-andi/start",
        ]
    );
    assert_eq!(
        requests[2].json(),
        json!({"config": {
            "metadata": {"user.id": "123"},
            "proxy": {"server": "proxy.example:3128"},
            "noweb": {"store": {"enabled": true, "fullSync": false}, "markOnline": false},
            "webhooks": [
                {"url": "https://crm.example/waha", "events": ["message"],
                 "customHeaders": [{"name": "X-Tenant", "value": "andi"}]},
                {"url": WEBHOOK_URL, "events": ["session.status", "message", "message.ack"],
                 "hmac": {"key": HMAC_KEY}},
            ],
        }})
    );
}

fn server_version(tier: &str) -> Reply {
    Reply::json(
        200,
        json!({"version": "2026.7.1", "engine": "NOWEB", "tier": tier,
               "browser": "", "platform": "linux/x64", "worker": {"id": null}}),
    )
}

#[tokio::test]
async fn waha_core_s_single_session_is_said_plainly() {
    // Arrange: WAHA Core refuses any session but `default`.
    let core_refusal = Reply::json(
        422,
        json!({"statusCode": 422, "error": "Unprocessable Entity",
               "message": "WAHA Core support only 'default' session. You tried to access 'toko-andi' session (base64: dG9rby1hbmRp). If you want to run more then one WhatsApp account - please get WAHA PLUS version."}),
    );
    let refusal = Mutex::new(Some(core_refusal));
    let Some(peer) = ValidatingPeer::start(Document::Waha, move |r| match r.route().as_str() {
        "POST /api/sessions" => refusal.lock().unwrap().take(),
        "GET /api/sessions/toko-andi" => Some(Reply::json(
            422,
            json!({"statusCode": 422, "message": "WAHA Core support only 'default' session."}),
        )),
        "GET /api/server/version" => Some(server_version("CORE")),
        _ => None,
    })
    .await
    else {
        return;
    };
    let (Connection { driver, .. }, _sink) = validating_connect(&peer, None);

    // Act
    let refused = driver.start().await.unwrap_err();

    // Assert
    peer.assert_valid();
    assert_eq!(
        refused,
        DriverError::Refused(Refusal::OnlyDefaultSession {
            name: SESSION.into()
        })
    );
    assert!(
        refused.to_string().contains("session_name to \"default\""),
        "{refused}"
    );
    assert_eq!(
        peer.routes(),
        [
            "POST /api/sessions",
            "GET /api/sessions/toko-andi",
            "GET /api/server/version",
        ]
    );
}

#[tokio::test]
async fn a_422_on_create_is_an_existing_session_only_if_waha_says_so() {
    // WAHA Plus refused the create, and knows no such session.
    let peer = Peer::start(waha(|r| match r.route().as_str() {
        "POST /api/sessions" => Reply::json(
            422,
            json!({"statusCode": 422, "message": ["config.webhooks.0.url must be a URL address"]}),
        ),
        "GET /api/sessions/toko-andi" => Reply::json(
            404,
            json!({"statusCode": 404, "message": "Session not found"}),
        ),
        "GET /api/server/version" => server_version("PLUS"),
        _ => Reply::empty(500),
    }))
    .await;
    let (connection, _sink) = connect(&peer.base_url);

    let refused = connection.driver.start().await.unwrap_err();

    assert!(
        matches!(&refused, DriverError::Refused(Refusal::Rejected(m)) if m.contains("must be a URL address")),
        "{refused:?}"
    );
    assert!(
        !peer
            .routes()
            .iter()
            .any(|r| r.starts_with("PUT") || r.ends_with("/start")),
        "nothing updated or started: {:?}",
        peer.routes()
    );
}

#[tokio::test]
async fn a_refused_api_key_at_start_is_a_refusal_not_a_failure() {
    let peer = Peer::start(waha(|_| Reply::empty(500))).await;
    let config: WahaConfig = serde_json::from_value(json!({
        "base_url": peer.base_url, "api_key": "wrong", "session_name": SESSION,
    }))
    .unwrap();
    let (connection, _sink) = WahaDriver::connect(
        SessionId::new(),
        config,
        WahaOptions::new(WEBHOOK_URL, HMAC_KEY),
        reqwest::Client::new(),
    );

    let refused = connection.driver.start().await.unwrap_err();

    assert!(
        matches!(&refused, DriverError::Refused(Refusal::Credentials(m)) if m.contains("API key")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn texts_are_typed_then_sent_as_waha_s_document_allows() {
    // Arrange
    let Some(peer) = ValidatingPeer::start(Document::Waha, |r| {
        (r.route() == "POST /api/sendText").then(|| {
            Reply::json(
                201,
                wa_message("true_6281234567890@c.us_3EB0C4F1A2B3C4D5E6F7"),
            )
        })
    })
    .await
    else {
        return;
    };
    let (connection, _sink) = validating_connect(&peer, Some(QUICK_TYPING));

    // Act
    let sent = connection
        .driver
        .send(&text_message("+6281234567890"))
        .await
        .unwrap();

    // Assert
    peer.assert_valid();
    assert_eq!(sent.provider_message_id, "3EB0C4F1A2B3C4D5E6F7");
    assert_eq!(
        peer.routes(),
        [
            "POST /api/startTyping",
            "POST /api/stopTyping",
            "POST /api/sendText"
        ]
    );
    let chat = json!({"session": SESSION, "chatId": "6281234567890@c.us"});
    let requests = peer.requests();
    assert_eq!(requests[0].json(), chat);
    assert_eq!(requests[1].json(), chat);
}

#[tokio::test]
async fn a_text_is_sent_even_when_typing_cannot_be_shown() {
    let peer = Peer::start(waha(|r| match r.route().as_str() {
        "POST /api/sendText" => Reply::json(201, wa_message("true_6281234567890@c.us_3EB0AAAA")),
        _ => Reply::json(500, json!({"message": "typing failed"})),
    }))
    .await;
    let config: WahaConfig = serde_json::from_value(json!({
        "base_url": peer.base_url, "api_key": API_KEY, "session_name": SESSION,
    }))
    .unwrap();
    let options = WahaOptions {
        typing: Some(QUICK_TYPING),
        ..WahaOptions::new(WEBHOOK_URL, HMAC_KEY)
    };
    let (connection, _sink) =
        WahaDriver::connect(SessionId::new(), config, options, reqwest::Client::new());

    let sent = connection
        .driver
        .send(&text_message("+6281234567890"))
        .await;

    assert_eq!(sent.unwrap().provider_message_id, "3EB0AAAA");
    assert_eq!(
        peer.routes(),
        ["POST /api/startTyping", "POST /api/sendText"]
    );
}

#[test]
fn typing_lasts_as_long_as_the_text_takes_within_bounds() {
    let typing = Typing::default();
    assert_eq!(
        typing.pause_for("Halo"),
        Duration::from_secs(1),
        "at least a second"
    );
    assert_eq!(
        typing.pause_for(&"a".repeat(50)),
        Duration::from_secs(2),
        "40 ms a character"
    );
    assert_eq!(
        typing.pause_for(&"é".repeat(100)),
        Duration::from_secs(4),
        "characters, not bytes"
    );
    assert_eq!(
        typing.pause_for(&"a".repeat(10_000)),
        Duration::from_secs(5),
        "at most five"
    );
}

#[tokio::test]
async fn media_are_sent_as_waha_s_document_allows() {
    let Some(peer) = ValidatingPeer::start(Document::Waha, |r| {
        matches!(
            r.route().as_str(),
            "POST /api/sendImage" | "POST /api/sendFile"
        )
        .then(|| Reply::json(201, wa_message("true_6281234567890@c.us_3EB0MEDIA")))
    })
    .await
    else {
        return;
    };
    let (connection, _sink) = validating_connect(&peer, Some(QUICK_TYPING));
    let with = |mime_type: &str, filename: &str, bytes: &'static [u8]| OutgoingMessage {
        media: Some(OutgoingMedia {
            mime_type: mime_type.to_owned(),
            filename: filename.to_owned(),
            bytes: Bytes::from_static(bytes),
        }),
        ..text_message("+6281234567890")
    };

    connection
        .driver
        .send(&with("image/png", "promo.png", b"\x89PNG fake"))
        .await
        .unwrap();
    connection
        .driver
        .send(&with("application/pdf", "katalog.pdf", b"%PDF-1.7 fake"))
        .await
        .unwrap();

    peer.assert_valid();
    assert_eq!(peer.routes(), ["POST /api/sendImage", "POST /api/sendFile"]);
}

#[tokio::test]
async fn numbers_groups_members_and_hidden_senders_are_asked_as_waha_s_document_allows() {
    // Arrange: participants the test knows; the rest generated.
    let Some(peer) = ValidatingPeer::start(Document::Waha, |r| {
        (r.route() == "GET /api/toko-andi/groups/120363025246125486@g.us/participants/v2").then(|| {
            Reply::json(
                200,
                json!([{"id": "187654321012345@lid", "pn": "6281234567890@c.us", "role": "admin"}]),
            )
        })
    })
    .await
    else {
        return;
    };
    let (Connection { driver, mut events }, sink) = validating_connect(&peer, None);
    let hidden = webhook("message", inbound_payload("111111111111111@lid", json!({})));

    // Act
    driver.check_number(&phone("+6281234567890")).await.unwrap();
    driver.groups().await.unwrap();
    let members = driver
        .group_members("120363025246125486@g.us")
        .await
        .unwrap();
    sink.deliver(&signed_headers(&hidden), &hidden)
        .await
        .unwrap();

    // Assert
    peer.assert_valid();
    assert_eq!(
        peer.routes(),
        [
            "GET /api/contacts/check-exists",
            "GET /api/toko-andi/groups",
            "GET /api/toko-andi/groups/120363025246125486@g.us/participants/v2",
            "GET /api/toko-andi/lids/111111111111111@lid",
        ]
    );
    assert_eq!(members[0].phone, Some(phone("+6281234567890")));
    assert!(matches!(&drain(&mut events)[..], [DriverEvent::Inbound(_)]));
}

#[tokio::test]
async fn delete_removes_the_session_from_waha_and_a_missing_one_is_deleted_already() {
    let peer = Peer::start(waha(|r| match r.route().as_str() {
        "DELETE /api/sessions/toko-andi" => Reply::empty(404),
        _ => Reply::empty(500),
    }))
    .await;
    let (Connection { driver, mut events }, sink) = connect(&peer.base_url);

    driver.delete().await.unwrap();

    assert_eq!(peer.routes(), ["DELETE /api/sessions/toko-andi"]);
    let stopped = status_webhook("STOPPED");
    assert_eq!(
        sink.deliver(&signed_headers(&stopped), &stopped).await,
        Ok(0),
        "its STOPPED is ours"
    );
    assert!(drain(&mut events).is_empty());
}

#[tokio::test]
async fn a_reply_quotes_its_message_as_waha_s_document_allows() {
    // Arrange
    let Some(peer) = ValidatingPeer::start(Document::Waha, |r| {
        (r.route() == "POST /api/sendText").then(|| {
            Reply::json(
                201,
                wa_message("true_6281234567890@c.us_3EB0C4F1A2B3C4D5E6F8"),
            )
        })
    })
    .await
    else {
        return;
    };
    let (connection, _sink) = validating_connect(&peer, None);
    let reply = OutgoingMessage {
        reply_to: Some("false_6281234567890@c.us_3EB0A1".to_owned()),
        ..text_message("+6281234567890")
    };

    // Act
    connection.driver.send(&reply).await.unwrap();

    // Assert
    peer.assert_valid();
    let requests = peer.requests();
    assert_eq!(
        requests[0].json()["reply_to"],
        "false_6281234567890@c.us_3EB0A1"
    );
}

/// Our id for a text is WAHA's new message id, the text goes out under
/// it, and a send whose answer was lost is looked up by it: found, as far
/// as its `ack` says; not found, it never left.
#[tokio::test]
async fn a_text_goes_out_under_an_id_waha_chose_and_is_looked_up_by_it() {
    // Arrange
    let Some(peer) = ValidatingPeer::start(Document::Waha, |r| {
        let route = r.route();
        if route == "GET /api/toko-andi/new-message-id" {
            return Some(Reply::json(200, json!({"id": "3EB0CHOSEN0001"})));
        }
        if route == "POST /api/sendText" {
            return Some(Reply::json(
                201,
                wa_message("true_6281234567890@c.us_3EB0CHOSEN0001"),
            ));
        }
        if route.ends_with("/messages/true_6281234567890@c.us_3EB0CHOSEN0001") {
            let mut found = wa_message("true_6281234567890@c.us_3EB0CHOSEN0001");
            found["ack"] = json!(2);
            found["ackName"] = json!("DEVICE");
            return Some(Reply::json(200, found));
        }
        if route.contains("/messages/") {
            return Some(Reply::json(
                404,
                json!({"statusCode": 404, "message": "Message not found"}),
            ));
        }
        None
    })
    .await
    else {
        return;
    };
    let (Connection { driver, .. }, _sink) = validating_connect(&peer, None);
    let message = text_message("+6281234567890");

    // Act
    let chosen = driver
        .choose_message_id(message.message_id, false)
        .await
        .unwrap();
    let sent = driver.send_as(&message, chosen.as_deref()).await.unwrap();
    let found = driver.look_up(&message.to, "3EB0CHOSEN0001").await.unwrap();
    let missing = driver.look_up(&message.to, "3EB0NEVERSENT").await.unwrap();
    // An attachment: WAHA's sendImage and sendFile take no id.
    let for_media = driver
        .choose_message_id(message.message_id, true)
        .await
        .unwrap();

    // Assert
    peer.assert_valid();
    assert_eq!(chosen.as_deref(), Some("3EB0CHOSEN0001"));
    assert_eq!(sent.provider_message_id, "3EB0CHOSEN0001");
    let requests = peer.requests();
    assert_eq!(requests[1].json()["id"], "3EB0CHOSEN0001");
    assert_eq!(
        requests[2].query.get("downloadMedia").map(String::as_str),
        Some("false")
    );
    assert_eq!(
        found,
        LookedUp::WentOut {
            receipt: Some(MessageReceipt::Delivered)
        }
    );
    assert_eq!(missing, LookedUp::NeverLeft);
    assert_eq!(for_media, None);
    assert_eq!(peer.routes().len(), 4, "{:?}", peer.routes());
}

#[test]
fn a_looked_up_message_is_read_by_its_ack() {
    let with_ack = |ack: i64| {
        let mut message = wa_message("true_6281234567890@c.us_3EB0");
        message["ack"] = json!(ack);
        waha::looked_up(&message)
    };
    assert_eq!(with_ack(-1), LookedUp::NeverLeft);
    assert_eq!(with_ack(0), LookedUp::CannotTell);
    assert_eq!(with_ack(1), LookedUp::WentOut { receipt: None });
    assert_eq!(
        with_ack(2),
        LookedUp::WentOut {
            receipt: Some(MessageReceipt::Delivered)
        }
    );
    for read in [3, 4] {
        assert_eq!(
            with_ack(read),
            LookedUp::WentOut {
                receipt: Some(MessageReceipt::Read)
            }
        );
    }
}
