//! The console's campaigns in a real browser (`console/e2e/campaigns.mjs`):
//! the wizard, the live campaign page, the messages and their CSV, pause,
//! resume and cancel, and the dashboard's campaigns and recent failures,
//! against the whole system with the simulator. Needs what the console's
//! other browser test needs (see `console.rs`).

use std::collections::BTreeMap;

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::json;
use wablast_domain::message::{Message, MessageCommand};
use wablast_domain::types::phone::{Phone, Region};
use wablast_domain::types::{CampaignId, MessageId, SessionId};
use wablast_eventstore::{Actor, AggregateKey, CommandHandler, CommandMetadata};

use crate::app::Client;
use crate::campaigns::{Backdoor, grant_plan};
use crate::console::{Browser, plan, ready_number, register};

/// An owner with a plan, a ready number and a list of three contacts with
/// a `kota` column builds, starts and watches a campaign in the browser,
/// exports it, and finds it on the dashboard; then pauses, resumes and
/// cancels a second one and sees its failed send among the recent
/// failures. Screenshots stay in `console/test-results/campaigns/`; any
/// console error of any page fails the test.
#[tokio::test]
async fn an_owner_builds_a_campaign_in_the_wizard_and_watches_it_complete_live() {
    // Arrange
    let Some((browser, app)) = Browser::with_app(|_| {}).await else {
        return;
    };
    let admin = app.admin().await;
    let email = format!("sari-{}@example.test", uuid::Uuid::now_v7().simple());
    let password = "rahasia-sari-123";
    let owner = register(&app, &email, password, "Toko Sari").await;
    let plan = plan(&admin).await;
    grant_plan(&admin, &owner, &plan).await;
    let session = ready_number(&owner, "CS Jakarta 1", "+6281200000001").await;
    let list = contact_list(&owner).await;
    let backdoor = Backdoor::of(&app).await;
    let mut first: Option<String> = None;

    // Act + Assert: the journey, answering its steps.
    browser
        .run(
            &app,
            "campaigns.mjs",
            &[
                ("WABLAST_CONSOLE_EMAIL", &email),
                ("WABLAST_CONSOLE_PASSWORD", password),
            ],
            async |step, data| match step {
                // What the wizard made is what the person chose.
                "started" => {
                    let id = data["campaign_id"].as_str().expect("the campaign's id");
                    let (status, campaign) = owner.get(&format!("/api/v1/campaigns/{id}")).await;
                    assert_eq!(status, StatusCode::OK, "{campaign}");
                    assert_eq!(campaign["name"], "Promo Bandung");
                    assert_eq!(campaign["contact_list_id"], list.as_str());
                    assert_eq!(
                        campaign["template"],
                        "{Halo|Hai} {{name}} dari {{kota}}, ada promo untuk Anda!"
                    );
                    assert_eq!(campaign["sender_session_ids"], json!([session]));
                    assert_eq!(
                        campaign["throttle"],
                        json!({"min_delay_ms": 1000, "max_delay_ms": 2000})
                    );
                    assert_ne!(campaign["status"], "draft", "{campaign}");
                    let media = campaign["media_id"].as_str().expect("an attachment");
                    let (status, media) = owner.get(&format!("/api/v1/media/{media}")).await;
                    assert_eq!(status, StatusCode::OK, "{media}");
                    assert_eq!(media["mime_type"], "image/png");
                    assert_eq!(media["filename"], "promo.png");
                    first = Some(id.to_owned());
                }
                "second-campaign" => {
                    let id = second_campaign(&owner, &list, &session).await;
                    failed_send(&backdoor, &owner.tenant_id, &id, &session).await;
                }
                other => panic!("unknown step {other}"),
            },
        )
        .await;

    // The first campaign sent its three messages and was settled: six
    // points spent, the second's reservation given back.
    let first = first.expect("the journey started a campaign");
    let (_, campaign) = owner.get(&format!("/api/v1/campaigns/{first}")).await;
    assert_eq!(campaign["status"], "completed", "{campaign}");
    assert_eq!(campaign["skip_not_on_whatsapp"], true, "{campaign}");
    assert_eq!(campaign["counts"]["read"], 3, "{campaign}");
    assert_eq!(campaign["points_spent"], 6, "{campaign}");
}

/// "Pelanggan Bandung": three consenting contacts with a `kota`.
pub(crate) async fn contact_list(owner: &Client) -> String {
    let contact = |phone: &str, name: &str, kota: &str| json!({"phone": phone, "name": name, "consent": true, "variables": {"kota": kota}});
    let (status, list) = owner
        .post(
            "/api/v1/contact-lists",
            json!({"name": "Pelanggan Bandung", "contacts": [
                contact("0812-3456-7890", "Budi", "Bandung"),
                contact("+62 813 1111 2222", "Sari", "Jakarta"),
                contact("6281400001111", "Andi", "Medan"),
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{list}");
    assert_eq!(list["accepted"], 3, "{list}");
    list["id"].as_str().expect("its id").to_owned()
}

/// "Promo Jakarta", started through the API with a minute between sends:
/// it is still running when the browser gets to it.
async fn second_campaign(owner: &Client, list: &str, session: &str) -> String {
    let (status, campaign) = owner
        .post(
            "/api/v1/campaigns",
            json!({"name": "Promo Jakarta", "contact_list_id": list,
                   "template": "Hai {{name}}, promo Jakarta!", "sender_session_ids": [session],
                   "throttle": {"min_delay_ms": 60_000, "max_delay_ms": 60_000}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{campaign}");
    let id = campaign["id"].as_str().expect("its id").to_owned();
    let (status, body) = owner
        .post(&format!("/api/v1/campaigns/{id}/start"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    id
}

/// A send of campaign `campaign` that failed for good, recorded as the
/// engine records one (the simulator reaches every number).
async fn failed_send(backdoor: &Backdoor, tenant: &str, campaign: &str, session: &str) {
    let message_id = MessageId::new();
    let key = AggregateKey::new(tenant, message_id).expect("a key");
    let session_id = SessionId::from_uuid(session.parse().expect("a session id"));
    let handler = CommandHandler::<Message>::new(backdoor.log.clone(), ());
    let commands = [
        MessageCommand::QueueMessage {
            message_id,
            campaign_id: campaign.parse::<CampaignId>().expect("a campaign id"),
            session_id,
            phone: Phone::parse("+6281399990000", Region::ID).expect("a phone"),
            name: Some("Rina".to_owned()),
            variables: BTreeMap::new(),
            at: Utc::now(),
        },
        MessageCommand::StartSending {
            session_id,
            attempt: 1,
            text: Some("Hai Rina, promo Jakarta!".to_owned()),
            provider_message_id: None,
            at: Utc::now(),
        },
        MessageCommand::RecordFailed {
            attempt: 1,
            reason: "+6281399990000 is not on WhatsApp".to_owned(),
            retryable: false,
            at: Utc::now(),
        },
    ];
    for command in commands {
        // Each command its own id: the log takes a repeated one as a retry.
        let metadata = CommandMetadata::new(Actor::Engine("e2e".to_owned()));
        handler
            .execute(&key, command, &metadata)
            .await
            .expect("the message's command is taken");
    }
}
