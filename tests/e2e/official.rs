//! Official mode (Cloud API sessions) end to end: templates synced from a
//! (local) Graph API, template sends checked and sent, free text refused
//! outside the 24-hour customer-service window and sent inside it, and
//! campaigns whose Cloud API senders need a template.

use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;
use wablast_tests::peer::{Peer, Recorded, Reply};

use crate::app::{Client, TestApp, code};
use crate::campaigns::Backdoor;
use crate::media::{pdf, png, upload};
use crate::sending::{engine, funded, linked};
use wablast_tests::wait_for as until;

pub(crate) const GRAPH_TOKEN: &str = "EAAGm0PX4ZCpsBAtesttoken";
pub(crate) const APP_SECRET: &str = "meta-app-secret";
const VERIFY_TOKEN: &str = "wablast-verify";
pub(crate) const NUMBER_ID: &str = "106540352242922";
pub(crate) const WABA_ID: &str = "102290129340398";
const CUSTOMER: &str = "+6281234567890";

/// A Graph API with our number, its account's templates, and messages
/// accepted.
pub(crate) async fn graph_server() -> Peer {
    graph_server_with(json!([])).await
}

/// [`graph_server`] with these templates too, and uploads accepted.
pub(crate) async fn graph_server_with(more_templates: Value) -> Peer {
    Peer::start(move |request: &Recorded| {
        if request.header("authorization") != Some(&format!("Bearer {GRAPH_TOKEN}")) {
            return Reply::json(
                401,
                json!({"error": {"message": "Invalid OAuth access token", "type": "OAuthException", "code": 190}}),
            );
        }
        let route = request.route();
        if route == format!("GET /v21.0/{NUMBER_ID}") {
            return Reply::json(
                200,
                json!({"id": NUMBER_ID, "display_phone_number": "+62 811-0000-0002",
                       "verified_name": "Toko Andi", "quality_rating": "GREEN"}),
            );
        }
        if route == format!("GET /v21.0/{WABA_ID}/message_templates") {
            let mut templates = json!([
                {"name": "order_update", "language": "id", "status": "APPROVED",
                 "category": "UTILITY", "id": "1",
                 "components": [{"type": "BODY", "text": "Halo {{1}}, pesanan {{2}} siap"}]},
                {"name": "promo_baru", "language": "id", "status": "PENDING",
                 "category": "MARKETING", "id": "2",
                 "components": [{"type": "BODY", "text": "Promo untuk {{1}}"}]},
            ]);
            let list = templates.as_array_mut().unwrap();
            list.extend(more_templates.as_array().into_iter().flatten().cloned());
            return Reply::json(
                200,
                json!({"data": templates, "paging": {"cursors": {"before": "A", "after": "B"}}}),
            );
        }
        if route == format!("POST /v21.0/{NUMBER_ID}/media") {
            return Reply::json(200, json!({"id": format!("{}", 4_000_000 + request.body.len())}));
        }
        if route == format!("POST /v21.0/{NUMBER_ID}/messages") {
            return Reply::json(
                200,
                json!({"messaging_product": "whatsapp",
                       "contacts": [{"input": "6281234567890", "wa_id": "6281234567890"}],
                       "messages": [{"id": format!("wamid.{}", Uuid::now_v7().simple())}]}),
            );
        }
        Reply::json(
            400,
            json!({"error": {"message": "Unsupported request", "type": "GraphMethodException", "code": 100}}),
        )
    })
    .await
}

/// The messages `graph` received, once there are at least `count`.
pub(crate) async fn messages_sent(graph: &Peer, count: usize, within: Duration) -> Vec<Value> {
    let messages = format!("POST /v21.0/{NUMBER_ID}/messages");
    until(&format!("{count} messages sent"), within, async || {
        let sent: Vec<Value> = graph
            .requests()
            .into_iter()
            .filter(|r| r.route() == messages)
            .map(|r| r.json())
            .collect();
        (sent.len() >= count).then_some(sent)
    })
    .await
}

/// A ready Cloud API session on `graph`, created without a `waba_id`.
async fn cloud_session(client: &Client, graph: &Peer) -> String {
    let (status, session) = client
        .post(
            "/api/v1/sessions",
            json!({"name": "Official", "driver": "cloud", "driver_config": {
                "phone_number_id": NUMBER_ID, "access_token": GRAPH_TOKEN,
                "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN,
                "api_base": format!("{}/v21.0", graph.base_url),
            }}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let id = session["id"].as_str().unwrap().to_owned();
    let (status, body) = client
        .post(&format!("/api/v1/sessions/{id}/start"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    until("ready", Duration::from_secs(20), async || {
        let (_, s) = client.get(&format!("/api/v1/sessions/{id}")).await;
        (s["status"] == "ready").then_some(())
    })
    .await;
    id
}

/// A text message from the customer to our number, signed as Meta signs.
async fn customer_writes(app: &TestApp, session: &str) {
    let body = serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA_ID, "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "6281100000002", "phone_number_id": NUMBER_ID},
            "contacts": [{"profile": {"name": "Andi"}, "wa_id": "6281234567890"}],
            "messages": [{"from": "6281234567890", "id": "wamid.IN1",
                          "timestamp": Utc::now().timestamp().to_string(),
                          "type": "text", "text": {"body": "Halo, pesanan saya?"}}],
        }}]}],
    }))
    .unwrap();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(APP_SECRET.as_bytes()).unwrap();
    mac.update(&body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let response = app
        .http
        .post(app.url(&format!("/hooks/cloud/{session}")))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

fn text_to(session: &str) -> Value {
    json!({"session_id": session, "to": CUSTOMER, "text": "Pesanan Kakak sudah dikirim"})
}

fn template_to(session: &str, name: &str, parameters: Value) -> Value {
    json!({"session_id": session, "to": CUSTOMER,
           "template": {"name": name, "language": "id", "parameters": parameters}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_session_reaches_people_with_approved_templates_and_answers_inside_the_window() {
    // Arrange
    let app = TestApp::spawn().await;
    let (stop, engine) = engine(&app, "engine-a", |_| {});
    let graph = graph_server().await;
    let andi = funded(&app, 1000).await;
    let session = cloud_session(&andi, &graph).await;
    let sync = format!("/api/v1/sessions/{session}/templates/sync");
    let list = format!("/api/v1/sessions/{session}/templates");

    // A session created without its account's id: the sync says to set it.
    let (status, error) = andi.post(&sync, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(code(&error), "validation_failed");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("waba_id")
    );
    let (status, error) = andi.post(&sync, json!({"waba_id": "not digits"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");

    // Act: sync with the id (kept for later syncs).
    let (status, synced) = andi.post(&sync, json!({"waba_id": WABA_ID})).await;
    assert_eq!(status, StatusCode::OK, "{synced}");
    let (status, again) = andi.post(&sync, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{again}");

    // Assert: listed, tenant-scoped.
    let (status, listed) = andi.get(&list).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{listed}");
    assert_eq!(items[0]["name"], "order_update");
    assert_eq!(items[0]["status"], "APPROVED");
    assert_eq!(items[0]["category"], "UTILITY");
    assert_eq!(items[0]["body_parameters"], 2);
    assert_eq!(items[0]["sendable"], true);
    assert_eq!(items[1]["status"], "PENDING");
    assert_eq!(items[1]["sendable"], false);
    let other = app.tenant("Toko Lain").await;
    let (status, _) = other.get(&list).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = other.post(&sync, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Free text to someone who never wrote: refused at once.
    let (status, error) = andi.post("/api/v1/messages", text_to(&session)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(code(&error), "outside_customer_service_window");
    // A Cloud API number reaches people, not groups.
    let (status, error) = andi
        .post(
            "/api/v1/messages",
            json!({"session_id": session, "to": "120363025246125486@g.us", "text": "Halo"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(code(&error), "groups_not_supported");

    // Templates are checked: known, approved, with their parameters.
    for (name, parameters, expected) in [
        (
            "order_update",
            json!(["Andi"]),
            "template_parameter_mismatch",
        ),
        ("promo_baru", json!(["Andi"]), "template_not_approved"),
        ("no_such_template", json!([]), "template_not_found"),
    ] {
        let (status, error) = andi
            .post("/api/v1/messages", template_to(&session, name, parameters))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
        assert_eq!(code(&error), expected, "{error}");
    }
    let (status, error) = andi
        .post(
            "/api/v1/messages",
            json!({"session_id": session, "to": CUSTOMER, "text": "x",
                   "template": {"name": "order_update", "language": "id", "parameters": ["a", "b"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");

    // An approved template goes out as one.
    let (status, queued) = andi
        .post(
            "/api/v1/messages",
            template_to(&session, "order_update", json!(["Andi", "#123"])),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(queued["template"]["name"], "order_update");
    let messages = format!("POST /v21.0/{NUMBER_ID}/messages");
    let sent = until("the template sent", Duration::from_secs(30), async || {
        graph
            .requests()
            .into_iter()
            .find(|r| r.route() == messages)
            .map(|r| r.json())
    })
    .await;
    assert_eq!(sent["type"], "template");
    assert_eq!(
        sent["template"]["components"][0]["parameters"][1]["text"],
        "#123"
    );

    // Once the customer writes, free text is inside the window.
    customer_writes(&app, &session).await;
    until("the window open", Duration::from_secs(20), async || {
        let (status, _) = andi.post("/api/v1/messages", text_to(&session)).await;
        (status == StatusCode::ACCEPTED).then_some(())
    })
    .await;

    // A template on a session that is not a Cloud API one is refused.
    let simulator = linked(&andi, "+6281299991001", 100).await;
    let (status, error) = andi
        .post(
            "/api/v1/messages",
            template_to(&simulator, "order_update", json!(["Andi", "#1"])),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(code(&error), "template_not_supported");

    stop.cancel();
    engine.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_headers_are_filled_with_text_or_an_attachment_of_their_type() {
    // Arrange: an image-header template and a text-header one.
    let app = TestApp::spawn().await;
    let (stop, engine) = engine(&app, "engine-a", |_| {});
    let graph = graph_server_with(json!([
        {"name": "promo_gambar", "language": "id", "status": "APPROVED",
         "category": "MARKETING", "id": "3",
         "components": [{"type": "HEADER", "format": "IMAGE"},
                        {"type": "BODY", "text": "Diskon untuk {{1}}"}]},
        {"name": "info_kota", "language": "id", "status": "APPROVED",
         "category": "UTILITY", "id": "4",
         "components": [{"type": "HEADER", "format": "TEXT", "text": "Kabar {{1}}"},
                        {"type": "BODY", "text": "Toko buka"}]},
        {"name": "lokasi_toko", "language": "id", "status": "APPROVED",
         "category": "UTILITY", "id": "5",
         "components": [{"type": "HEADER", "format": "LOCATION"},
                        {"type": "BODY", "text": "Kami di sini"}]},
    ]))
    .await;
    let andi = funded(&app, 1000).await;
    let session = cloud_session(&andi, &graph).await;
    let (status, synced) = andi
        .post(
            &format!("/api/v1/sessions/{session}/templates/sync"),
            json!({"waba_id": WABA_ID}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{synced}");
    let (_, listed) = andi
        .get(&format!("/api/v1/sessions/{session}/templates"))
        .await;
    let shown = |name: &str| {
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(shown("promo_gambar")["header_kind"], "image");
    assert_eq!(shown("promo_gambar")["sendable"], true);
    assert_eq!(shown("info_kota")["header_kind"], "text");
    assert_eq!(shown("info_kota")["header_parameters"], 1);
    assert_eq!(shown("lokasi_toko")["sendable"], false);
    let (status, picture) = upload(&andi, "promo.png", &png()).await;
    assert_eq!(status, StatusCode::CREATED, "{picture}");
    let (status, brochure) = upload(&andi, "brosur.pdf", &pdf()).await;
    assert_eq!(status, StatusCode::CREATED, "{brochure}");
    let send =
        |template: Value| json!({"session_id": session, "to": CUSTOMER, "template": template});

    // Act + Assert: a header not filled as it needs is refused.
    for (template, expected_status, expected) in [
        (
            json!({"name": "promo_gambar", "language": "id", "parameters": ["Andi"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "template_parameter_mismatch",
        ),
        (
            json!({"name": "promo_gambar", "language": "id", "parameters": ["Andi"],
                   "header_media_id": brochure["id"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "template_parameter_mismatch",
        ),
        (
            json!({"name": "promo_gambar", "language": "id", "parameters": ["Andi"],
                   "header_media_id": Uuid::now_v7()}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({"name": "info_kota", "language": "id"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "template_parameter_mismatch",
        ),
        (
            json!({"name": "info_kota", "language": "id", "header_parameters": ["Bandung"],
                   "header_media_id": picture["id"]}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            json!({"name": "lokasi_toko", "language": "id"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "template_not_supported",
        ),
    ] {
        let (status, error) = andi.post("/api/v1/messages", send(template)).await;
        assert_eq!(status, expected_status, "{error}");
        assert_eq!(code(&error), expected, "{error}");
    }

    // Filled, both go out: the picture uploaded to Meta first.
    let (status, queued) = andi
        .post(
            "/api/v1/messages",
            send(
                json!({"name": "promo_gambar", "language": "id", "parameters": ["Andi"],
                        "header_media_id": picture["id"]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(queued["template"]["header"]["type"], "media");
    let (status, queued) = andi
        .post(
            "/api/v1/messages",
            send(json!({"name": "info_kota", "language": "id", "header_parameters": ["Bandung"]})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let sent = messages_sent(&graph, 2, Duration::from_secs(30)).await;
    let by_name = |name: &str| {
        sent.iter()
            .find(|m| m["template"]["name"] == name)
            .map(|m| m["template"]["components"].clone())
            .unwrap()
    };
    let uploads = graph
        .requests()
        .into_iter()
        .filter(|r| r.route() == format!("POST /v21.0/{NUMBER_ID}/media"))
        .count();
    assert_eq!(uploads, 1);
    let image = by_name("promo_gambar");
    assert_eq!(image[0]["type"], "header");
    assert_eq!(image[0]["parameters"][0]["type"], "image");
    assert!(image[0]["parameters"][0]["image"]["id"].is_string());
    assert_eq!(image[1]["parameters"][0]["text"], "Andi");
    assert_eq!(
        by_name("info_kota"),
        json!([{"type": "header", "parameters": [{"type": "text", "text": "Bandung"}]}])
    );

    // A campaign renders its text header per recipient, and checks it
    // like a single send.
    let list = Backdoor::of(&app)
        .await
        .contact_list(&andi.tenant_id, 2, &["kota"])
        .await;
    let campaign = |whatsapp: Value| {
        json!({"name": "Kabar", "contact_list_id": list, "template": "Halo",
               "sender_session_ids": [session], "whatsapp_template": whatsapp})
    };
    let (status, error) = andi
        .post(
            "/api/v1/campaigns",
            campaign(json!({"name": "promo_gambar", "language": "id", "parameters": ["{{name}}"]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(code(&error), "template_parameter_mismatch");
    let (status, created) = andi
        .post(
            "/api/v1/campaigns",
            campaign(json!({"name": "info_kota", "language": "id",
                            "header_parameters": ["{{kota}}"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, started) = andi
        .post(
            &format!(
                "/api/v1/campaigns/{}/start",
                created["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let mut headers: Vec<Value> = messages_sent(&graph, 4, Duration::from_secs(60))
        .await
        .into_iter()
        .skip(2)
        .map(|m| m["template"]["components"][0]["parameters"][0]["text"].clone())
        .collect();
    headers.sort_by_key(|h| h.to_string());
    assert_eq!(headers, [json!("kota 1"), json!("kota 2")]);

    stop.cancel();
    engine.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaigns_with_cloud_api_senders_need_an_approved_template() {
    // Arrange
    let app = TestApp::spawn().await;
    let backdoor = Backdoor::of(&app).await;
    let (stop, engine) = engine(&app, "engine-a", |_| {});
    let graph = graph_server().await;
    let andi = funded(&app, 1000).await;
    let cloud = cloud_session(&andi, &graph).await;
    let simulator = linked(&andi, "+6281299991002", 100).await;
    let (status, synced) = andi
        .post(
            &format!("/api/v1/sessions/{cloud}/templates/sync"),
            json!({"waba_id": WABA_ID}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{synced}");
    let list = backdoor.contact_list(&andi.tenant_id, 3, &["kota"]).await;
    let campaign = |senders: Value, whatsapp: Option<Value>| {
        let mut body = json!({"name": "Promo", "contact_list_id": list,
                              "template": "Halo {{name|Kak}}", "sender_session_ids": senders});
        if let Some(whatsapp) = whatsapp {
            body["whatsapp_template"] = whatsapp;
        }
        body
    };

    // Act + Assert: Cloud API senders without a template cannot reach
    // anyone.
    let (status, error) = andi
        .post(
            "/api/v1/campaigns",
            campaign(json!([cloud, simulator]), None),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(code(&error), "template_required");

    // A template without a Cloud API sender has nobody to send it.
    let order = json!({"name": "order_update", "language": "id",
                       "parameters": ["{{name|Kak}}", "{{kota}}"]});
    let (status, error) = andi
        .post(
            "/api/v1/campaigns",
            campaign(json!([simulator]), Some(order.clone())),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(code(&error), "template_not_supported");

    // Checked like a single send's, and its parameters' variables like the
    // text's.
    for (whatsapp, expected_status, expected) in [
        (
            json!({"name": "order_update", "language": "id", "parameters": ["{{name}}"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "template_parameter_mismatch",
        ),
        (
            json!({"name": "promo_baru", "language": "id", "parameters": ["{{name}}"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "template_not_approved",
        ),
        (
            json!({"name": "order_update", "language": "id", "parameters": ["{{voucher}}", "x"]}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
    ] {
        let (status, error) = andi
            .post(
                "/api/v1/campaigns",
                campaign(json!([cloud]), Some(whatsapp)),
            )
            .await;
        assert_eq!(status, expected_status, "{error}");
        assert_eq!(code(&error), expected, "{error}");
    }

    let (status, created) = andi
        .post(
            "/api/v1/campaigns",
            campaign(json!([cloud, simulator]), Some(order.clone())),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["whatsapp_template"], order, "{created}");
    // The campaign says which template it sends, as projected too.
    let id = created["id"].as_str().unwrap();
    let (status, shown) = andi.get(&format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["whatsapp_template"], order, "{shown}");

    // The preview shows each contact's template as the Cloud API sender
    // sends it, its body filled in from the number's synced copy.
    let preview = |extra: Value| {
        let mut body = json!({"contact_list_id": list, "template": "Halo {{name|Kak}}",
                              "count": 3, "whatsapp_template": order});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let (status, shown) = andi
        .post(
            "/api/v1/campaigns/preview",
            preview(json!({"session_id": cloud})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    let first = &shown["samples"][0];
    assert_eq!(first["text"], "Halo Pelanggan 1", "{shown}");
    assert_eq!(
        first["whatsapp_template"],
        json!({"name": "order_update", "language": "id",
               "parameters": ["Pelanggan 1", "kota 1"],
               "text": "Halo Pelanggan 1, pesanan kota 1 siap", "header": null}),
        "{shown}"
    );
    // Without the session, the parameters only; a session without the
    // template is refused as creating the campaign would be.
    let (status, shown) = andi
        .post("/api/v1/campaigns/preview", preview(json!({})))
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(
        shown["samples"][2]["whatsapp_template"]["parameters"],
        json!(["Pelanggan 3", "kota 3"])
    );
    assert_eq!(
        shown["samples"][2]["whatsapp_template"]["text"],
        Value::Null
    );
    let (status, error) = andi
        .post(
            "/api/v1/campaigns/preview",
            preview(json!({"session_id": simulator})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(code(&error), "template_not_found");
    let (status, error) = andi
        .post(
            "/api/v1/campaigns/preview",
            json!({"contact_list_id": list, "template": "Halo", "session_id": cloud}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");

    // Started with the Cloud API number alone, the campaign sends each
    // contact its template with its own parameters.
    let (status, created) = andi
        .post(
            "/api/v1/campaigns",
            campaign(json!([cloud]), Some(order.clone())),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, started) = andi
        .post(&format!("/api/v1/campaigns/{id}/start"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let sent = messages_sent(&graph, 3, Duration::from_secs(60)).await;
    let mut names: Vec<&str> = sent
        .iter()
        .map(|m| {
            assert_eq!(m["type"], "template", "{m}");
            assert_eq!(m["template"]["name"], "order_update", "{m}");
            let parameters = &m["template"]["components"][0]["parameters"];
            let name = parameters[0]["text"].as_str().unwrap();
            let row = name.trim_start_matches("Pelanggan ");
            assert_eq!(parameters[1]["text"], format!("kota {row}"), "{m}");
            name
        })
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["Pelanggan 1", "Pelanggan 2", "Pelanggan 3"]);
    until(
        "the campaign completed",
        Duration::from_secs(60),
        async || {
            let (_, shown) = andi.get(&format!("/api/v1/campaigns/{id}")).await;
            let counts = &shown["counts"];
            let out = ["sent", "delivered", "read"].map(|k| counts[k].as_i64().unwrap_or(0));
            (shown["status"] == "completed" && out.iter().sum::<i64>() == 3).then_some(())
        },
    )
    .await;

    stop.cancel();
    engine.await.unwrap().unwrap();
}
