//! Official numbers in a real browser (`console/e2e/official.mjs`): an
//! owner adds a Cloud API number with its Meta credentials (against a
//! local Graph API), reads where Meta must send its events, syncs its
//! templates, and builds a campaign whose official sender sends an
//! approved template with parameters rendered per recipient. Needs what
//! the console's other browser tests need (see `console.rs`).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::campaigns::grant_plan;
use crate::console::{Browser, plan, register};
use crate::console_campaigns::contact_list;
use crate::official::{
    APP_SECRET, GRAPH_TOKEN, NUMBER_ID, WABA_ID, graph_server_with, messages_sent,
};

/// The owner adds an official number in the browser (a refused ID first),
/// is told the callback URL, syncs its templates (asked for the account
/// ID first), and starts a campaign whose template step picks the
/// approved template and fills its parameters with the list's variables:
/// the Graph API receives one template message per recipient, with the
/// parameters the preview showed.
#[tokio::test]
async fn an_owner_adds_an_official_number_and_sends_a_template_campaign() {
    // Arrange
    let Some((browser, app)) = Browser::with_app(|_| {}).await else {
        return;
    };
    let graph = graph_server_with(serde_json::json!([
        {"name": "promo_gambar", "language": "id", "status": "APPROVED",
         "category": "MARKETING", "id": "3",
         "components": [{"type": "HEADER", "format": "IMAGE"},
                        {"type": "BODY", "text": "Diskon untuk {{1}}"}]},
    ]))
    .await;
    let admin = app.admin().await;
    let email = format!("rina-{}@example.test", uuid::Uuid::now_v7().simple());
    let password = "rahasia-rina-123";
    let owner = register(&app, &email, password, "Toko Rina").await;
    let plan = plan(&admin).await;
    grant_plan(&admin, &owner, &plan).await;
    let list = contact_list(&owner).await;
    let api_base = format!("{}/v21.0", graph.base_url);
    let mut started: Option<String> = None;

    // Act + Assert: the journey, answering its steps.
    browser
        .run(
            &app,
            "official.mjs",
            &[
                ("WABLAST_CONSOLE_EMAIL", &email),
                ("WABLAST_CONSOLE_PASSWORD", password),
                ("WABLAST_GRAPH_API", &api_base),
                ("WABLAST_GRAPH_NUMBER_ID", NUMBER_ID),
                ("WABLAST_GRAPH_TOKEN", GRAPH_TOKEN),
                ("WABLAST_GRAPH_APP_SECRET", APP_SECRET),
                ("WABLAST_GRAPH_WABA_ID", WABA_ID),
            ],
            async |step, data| match step {
                // The number is what the form said, its secrets unshown.
                "added" => {
                    let id = data["session_id"].as_str().expect("the session's id");
                    let (status, session) = owner.get(&format!("/api/v1/sessions/{id}")).await;
                    assert_eq!(status, StatusCode::OK, "{session}");
                    assert_eq!(session["driver"], "cloud", "{session}");
                    assert_eq!(session["status"], "ready", "{session}");
                    assert_eq!(
                        session["driver_config"],
                        json!({"phone_number_id": NUMBER_ID, "api_base": api_base,
                               "hook_url": app.url(&format!("/hooks/cloud/{id}"))}),
                        "{session}"
                    );
                    let verify = data["verify_token"].as_str().expect("the verify token");
                    // Meta's verification of the callback URL passes with
                    // the token the console showed.
                    let challenge = app
                        .http
                        .get(app.url(&format!(
                            "/hooks/cloud/{id}?hub.mode=subscribe&hub.verify_token={verify}&hub.challenge=1158201444"
                        )))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(challenge.status(), StatusCode::OK);
                    assert_eq!(challenge.text().await.unwrap(), "1158201444");
                }
                "started" => {
                    let id = data["campaign_id"].as_str().expect("the campaign's id");
                    let (status, campaign) = owner.get(&format!("/api/v1/campaigns/{id}")).await;
                    assert_eq!(status, StatusCode::OK, "{campaign}");
                    assert_eq!(campaign["contact_list_id"], list.as_str());
                    assert_eq!(
                        campaign["whatsapp_template"],
                        json!({"name": "order_update", "language": "id",
                               "parameters": ["{{name}}", "ORD-{{kota}}"]}),
                        "{campaign}"
                    );
                    started = Some(id.to_owned());
                }
                _ => {}
            },
        )
        .await;

    // What reached Meta: one template per recipient, filled for each.
    assert!(started.is_some(), "the journey never started the campaign");
    let sent = messages_sent(&graph, 3, Duration::from_secs(30)).await;
    let mut parameters: Vec<(String, String)> = sent
        .iter()
        .map(|m| {
            assert_eq!(m["type"], "template", "{m}");
            assert_eq!(m["template"]["name"], "order_update", "{m}");
            let p = &m["template"]["components"][0]["parameters"];
            (
                p[0]["text"].as_str().unwrap().to_owned(),
                p[1]["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    parameters.sort();
    assert_eq!(
        parameters,
        [
            ("Andi".to_owned(), "ORD-Medan".to_owned()),
            ("Budi".to_owned(), "ORD-Bandung".to_owned()),
            ("Sari".to_owned(), "ORD-Jakarta".to_owned()),
        ]
    );
    assert_eq!(sent.len(), 3, "each recipient got one template: {sent:?}");
}
