//! Campaigns: creation against the tenant's lists and sessions, the start
//! that reserves points, pause/resume/cancel, the 422 paths, messages and
//! the CSV export, and other tenants' ids.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;
use wablast_domain::message::{Message, MessageCommand};
use wablast_domain::plan::{PlanPeriod, PlanTerms};
use wablast_domain::session::{Driver, LoginMethod, Session, SessionCommand, SessionName};
use wablast_domain::types::phone::{Phone, Region};
use wablast_domain::types::{
    CampaignId, DailyLimit, MessageId, PlanId, Points, SessionId, TenantId,
};
use wablast_domain::wallet::{Wallet, WalletCommand};
use wablast_eventstore::{Actor, AggregateKey, CommandHandler, CommandMetadata, EventLog};
use wablast_tests::wait_for;

use crate::app::{Client, TestApp, code};

/// The database and the event log of a running application, for the facts
/// other parts of the API (imports, sessions, the engine) will write.
pub struct Backdoor {
    pub db: PgPool,
    pub log: EventLog,
}

impl Backdoor {
    pub async fn of(app: &TestApp) -> Self {
        Self {
            db: wablast::database_pool(&app.settings).expect("pool"),
            log: wablast::open_event_log(&app.settings)
                .await
                .expect("event log"),
        }
    }

    /// A contact list of `contacts` consented contacts, as an import stores
    /// it, with the mapped variable `columns` (each contact has a value).
    pub async fn contact_list(&self, tenant: &str, contacts: usize, columns: &[&str]) -> Uuid {
        let id = Uuid::now_v7();
        let tenant = Uuid::parse_str(tenant).unwrap();
        let columns: Vec<String> = columns.iter().map(|c| (*c).to_owned()).collect();
        sqlx::query(
            "insert into contact_lists
                 (id, tenant_id, name, columns, total_rows, accepted, rejected, source_format, created_at)
             values ($1, $2, 'Pelanggan', $3, $4, $4, 0, 'csv', now())",
        )
        .bind(id)
        .bind(tenant)
        .bind(&columns)
        .bind(contacts as i32)
        .execute(&self.db)
        .await
        .unwrap();
        for row in 1..=contacts {
            let variables: BTreeMap<&String, String> =
                columns.iter().map(|c| (c, format!("{c} {row}"))).collect();
            sqlx::query(
                "insert into contacts (list_id, row_number, tenant_id, phone, name, variables)
                 values ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(row as i32)
            .bind(tenant)
            .bind(format!("+628120000{row:04}"))
            .bind(format!("Pelanggan {row}"))
            .bind(json!(variables))
            .execute(&self.db)
            .await
            .unwrap();
        }
        id
    }

    /// A simulator session of the tenant, created through its aggregate and
    /// projected.
    pub async fn session(&self, tenant: &str) -> Uuid {
        let session_id = SessionId::new();
        let key = AggregateKey::new(tenant, session_id).unwrap();
        CommandHandler::<Session>::new(self.log.clone(), ())
            .execute(
                &key,
                SessionCommand::CreateSession {
                    session_id,
                    name: SessionName::parse("CS 1").unwrap(),
                    driver: Driver::Simulator,
                    login: LoginMethod::Qr,
                    phone_number: None,
                    daily_limit: Some(DailyLimit::parse(100).unwrap()),
                    auto_start: false,
                    warm_up: None,
                    sessions_in_use: 0,
                    plan_max_sessions: 10,
                    plan_max_daily_limit: DailyLimit::parse(500).unwrap(),
                    at: Utc::now(),
                },
                &CommandMetadata::new(Actor::System),
            )
            .await
            .expect("the session is created");
        let id = *session_id.as_uuid();
        wait_for("the session projected", Duration::from_secs(10), || async {
            let found: Option<Uuid> = sqlx::query_scalar("select id from sessions where id = $1")
                .bind(id)
                .fetch_optional(&self.db)
                .await
                .unwrap();
            found
        })
        .await
    }

    /// Queues a message of a campaign as the fan-out will.
    ///
    /// # Returns
    /// Its position in the log (`messages:N`).
    pub async fn queue_message(
        &self,
        tenant: &str,
        campaign: &str,
        session: Uuid,
        phone: &str,
        name: &str,
    ) -> String {
        let message_id = MessageId::new();
        let committed = CommandHandler::<Message>::new(self.log.clone(), ())
            .execute(
                &AggregateKey::new(tenant, message_id).unwrap(),
                MessageCommand::QueueMessage {
                    message_id,
                    campaign_id: campaign.parse::<CampaignId>().unwrap(),
                    session_id: SessionId::from_uuid(session),
                    phone: Phone::parse(phone, Region::ID).unwrap(),
                    name: Some(name.to_owned()),
                    variables: BTreeMap::new(),
                    at: Utc::now(),
                },
                &CommandMetadata::new(Actor::Engine("e2e".to_owned())),
            )
            .await
            .expect("the message is queued");
        format!("messages:{}", committed.stream_sequence)
    }

    /// Subscribes the tenant to a plan at `at` (in the past: it has run out
    /// by now), as a payment would have long ago.
    pub async fn subscribe_at(&self, tenant: &str, at: chrono::DateTime<Utc>) {
        let tenant = tenant.parse::<TenantId>().unwrap();
        CommandHandler::<Wallet>::new(self.log.clone(), ())
            .execute(
                &AggregateKey::new(tenant, tenant).unwrap(),
                WalletCommand::Subscribe {
                    terms: PlanTerms {
                        plan_id: PlanId::new(),
                        name: "Lama".to_owned(),
                        period_days: PlanPeriod::Days30,
                        points: Points::new(1000),
                        max_sessions: 3,
                        max_recipients_per_campaign: 200,
                        max_daily_limit: DailyLimit::parse(500).unwrap(),
                        features: wablast_domain::plan::PlanFeatures::default(),
                        grace_days: 0,
                        version: 1,
                    },
                    reference: format!("old-payment-{}", Uuid::now_v7()),
                    at,
                },
                &CommandMetadata::new(Actor::System),
            )
            .await
            .expect("subscribed");
    }
}

/// Makes `client`'s next reads see what `writer` wrote.
pub fn sees_writes_of(client: &Client, writer: &Client) {
    let position = writer.position.lock().unwrap().clone();
    *client.position.lock().unwrap() = position;
}

/// The admin puts a plan on offer.
pub async fn define_plan(admin: &Client, points: u64, cap: u64) -> String {
    let (status, plan) = admin
        .post(
            "/api/v1/admin/plans",
            json!({"name": format!("Paket {points}"), "period_days": 30, "points": points,
                   "max_sessions": 3, "max_recipients_per_campaign": cap, "price": 150000}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{plan}");
    plan["id"].as_str().unwrap().to_owned()
}

/// The admin grants `tenant` a plan, and the tenant's wallet shows it.
pub async fn grant_plan(admin: &Client, tenant: &Client, plan_id: &str) -> Value {
    let (status, granted) = admin
        .post(
            &format!("/api/v1/admin/tenants/{}/grant", tenant.tenant_id),
            json!({ "plan_id": plan_id }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{granted}");
    sees_writes_of(tenant, admin);
    let (status, wallet) = tenant.get("/api/v1/wallet").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(wallet["plan"]["id"], plan_id, "{wallet}");
    granted
}

/// A tenant subscribed to a plan of `points` with a recipient cap.
async fn funded_tenant(app: &TestApp, admin: &Client, points: u64, cap: u64) -> Client {
    let tenant = app.tenant("Toko Budi").await;
    let plan = define_plan(admin, points, cap).await;
    grant_plan(admin, &tenant, &plan).await;
    tenant
}

async fn create(
    client: &Client,
    list: Uuid,
    senders: &[Uuid],
    template: &str,
    extra: Value,
) -> (StatusCode, Value) {
    let mut body = json!({
        "name": "Promo Lebaran",
        "contact_list_id": list,
        "template": template,
        "sender_session_ids": senders,
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
    client.post("/api/v1/campaigns", body).await
}

/// A draft campaign to a list of `contacts`.
async fn draft(back: &Backdoor, client: &Client, contacts: usize) -> (String, Uuid) {
    let list = back
        .contact_list(&client.tenant_id, contacts, &["kota"])
        .await;
    let session = back.session(&client.tenant_id).await;
    let (status, campaign) = create(
        client,
        list,
        &[session],
        "{Halo|Hai} {{name|Kak}} di {{kota}}",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{campaign}");
    (campaign["id"].as_str().unwrap().to_owned(), session)
}

async fn post_action(client: &Client, id: &str, action: &str) -> (StatusCode, Value) {
    client
        .post(&format!("/api/v1/campaigns/{id}/{action}"), json!({}))
        .await
}

/// The export, seeing the client's writes.
async fn export(client: &Client, id: &str) -> reqwest::Response {
    let position = client.position.lock().unwrap().clone();
    let mut request = client.request(
        reqwest::Method::GET,
        &format!("/api/v1/campaigns/{id}/export"),
    );
    if let Some(position) = position {
        request = request.header("x-wablast-position", position);
    }
    request.send().await.unwrap()
}

async fn transactions(client: &Client) -> Vec<Value> {
    let (status, page) = client.get("/api/v1/wallet/transactions").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().unwrap().clone()
}

fn kinds(transactions: &[Value]) -> Vec<&str> {
    transactions
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_campaign_is_created_then_started_and_its_points_are_reserved() {
    let app = TestApp::spawn().await;
    let back = Backdoor::of(&app).await;
    let admin = app.admin().await;
    let budi = funded_tenant(&app, &admin, 1000, 200).await;
    let list = back.contact_list(&budi.tenant_id, 3, &["kota"]).await;
    let session = back.session(&budi.tenant_id).await;

    // Arrange: a draft.
    let response = budi
        .request(reqwest::Method::POST, "/api/v1/campaigns")
        .json(&json!({
            "name": "  Promo Lebaran ",
            "contact_list_id": list,
            "template": "{Halo|Hai} {{name|Kak}} di {{kota}}, nomor {{phone}}",
            "sender_session_ids": [session],
            "throttle": {"min_delay_ms": 1000, "max_delay_ms": 3000},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let written = response.headers()["x-wablast-position"]
        .to_str()
        .unwrap()
        .to_owned();
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["status"], "draft");
    assert_eq!(created["name"], "Promo Lebaran");
    assert_eq!(created["throttle"]["min_delay_ms"], 1000);
    assert_eq!(created["sender_session_ids"], json!([session]));
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, shown) = budi
        .get_after(&format!("/api/v1/campaigns/{id}"), &written)
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["status"], "draft");
    assert_eq!(shown["contact_list_id"], json!(list));
    assert_eq!(shown["counts"]["total"], 0);
    assert_eq!(shown["points_reserved"], 0);

    // Act
    let (status, started) = post_action(&budi, &id, "start").await;

    // Assert: recipients × 2 reserved, the campaign running.
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["status"], "running");
    assert_eq!(started["recipients"], 3);
    assert_eq!(started["points_reserved"], 6);
    let (_, shown) = budi.get(&format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(shown["status"], "running");
    assert_eq!(shown["counts"]["total"], 3);
    assert_eq!(shown["points_reserved"], 6);
    assert!(shown["started_at"].is_string());
    let (_, wallet) = budi.get("/api/v1/wallet").await;
    assert_eq!(
        (
            &wallet["balance"],
            &wallet["reserved"],
            &wallet["available"]
        ),
        (&json!(1000), &json!(6), &json!(994)),
        "{wallet}"
    );
    let history = transactions(&budi).await;
    assert_eq!(kinds(&history), ["reserve", "allocation"]);
    assert_eq!(history[0]["points"], 6);
    assert_eq!(history[0]["campaign_id"], json!(id));
    assert_eq!(history[0]["reference"], json!(id));
    assert!(history[0]["id"].is_string() && history[0]["created_at"].is_string());

    // A retried start answers the same and reserves nothing more.
    let (status, again) = post_action(&budi, &id, "start").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_eq!(again["status"], "running");
    assert_eq!(again["points_reserved"], 6);
    let (_, wallet) = budi.get("/api/v1/wallet").await;
    assert_eq!(wallet["reserved"], 6);
    assert_eq!(kinds(&transactions(&budi).await), ["reserve", "allocation"]);
}

#[tokio::test]
async fn pause_resume_and_cancel_follow_the_lifecycle_and_refuse_invalid_transitions() {
    let app = TestApp::spawn().await;
    let back = Backdoor::of(&app).await;
    let admin = app.admin().await;
    let budi = funded_tenant(&app, &admin, 1000, 200).await;
    let (id, _) = draft(&back, &budi, 4).await;

    // A draft neither pauses nor resumes.
    for action in ["pause", "resume"] {
        let (status, body) = post_action(&budi, &id, action).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::CONFLICT, "invalid_state"),
            "{action}: {body}"
        );
        assert_eq!(body["error"]["details"]["status"], "draft");
    }
    let (status, _) = post_action(&budi, &id, "start").await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let (status, paused) = post_action(&budi, &id, "pause").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{paused}");
    assert_eq!(paused["status"], "paused");
    let (_, shown) = budi.get(&format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(shown["status"], "paused");
    assert_eq!(shown["pause_reason"], json!({"kind": "manual"}));
    // Pausing again changes nothing and is not an error.
    let (status, _) = post_action(&budi, &id, "pause").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // Starting a paused campaign is the retry of its start.
    let (status, body) = post_action(&budi, &id, "start").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "paused");

    let (status, resumed) = post_action(&budi, &id, "resume").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{resumed}");
    assert_eq!(resumed["status"], "running");
    let (_, shown) = budi.get(&format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(shown["status"], "running");
    assert_eq!(shown["pause_reason"], Value::Null);

    // Cancelled before any message existed: the whole reservation comes
    // back at once.
    let (status, cancelled) = post_action(&budi, &id, "cancel").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["points_released"], 8);
    let (_, shown) = budi.get(&format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(shown["status"], "cancelled");
    assert!(shown["finished_at"].is_string());
    let (_, wallet) = budi.get("/api/v1/wallet").await;
    assert_eq!(
        (
            &wallet["balance"],
            &wallet["reserved"],
            &wallet["available"]
        ),
        (&json!(1000), &json!(0), &json!(1000)),
        "{wallet}"
    );
    let history = transactions(&budi).await;
    assert_eq!(kinds(&history), ["release", "reserve", "allocation"]);
    assert_eq!(history[0]["points"], 8);

    // Nothing but a repeated cancel applies to a cancelled campaign.
    for action in ["pause", "resume", "start"] {
        let (status, body) = post_action(&budi, &id, action).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::CONFLICT, "invalid_state"),
            "{action}: {body}"
        );
    }
    let (status, again) = post_action(&budi, &id, "cancel").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert!(again.get("points_released").is_none(), "{again}");
    assert_eq!(
        kinds(&transactions(&budi).await),
        ["release", "reserve", "allocation"]
    );
}

#[tokio::test]
async fn a_draft_cancelled_never_touches_the_wallet() {
    let app = TestApp::spawn().await;
    let back = Backdoor::of(&app).await;
    let admin = app.admin().await;
    let budi = funded_tenant(&app, &admin, 100, 200).await;
    let (id, _) = draft(&back, &budi, 2).await;

    let (status, cancelled) = post_action(&budi, &id, "cancel").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");

    let (status, body) = post_action(&budi, &id, "start").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "invalid_state")
    );
    assert_eq!(kinds(&transactions(&budi).await), ["allocation"]);
    let (_, wallet) = budi.get("/api/v1/wallet").await;
    assert_eq!(wallet["reserved"], 0);
}

#[tokio::test]
async fn a_start_without_enough_points_is_refused_and_reserves_nothing() {
    let app = TestApp::spawn().await;
    let back = Backdoor::of(&app).await;
    let admin = app.admin().await;
    let budi = funded_tenant(&app, &admin, 5, 200).await;
    let (id, _) = draft(&back, &budi, 3).await;

    let (status, body) = post_action(&budi, &id, "start").await;

    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "insufficient_points"),
        "{body}"
    );
    assert_eq!(
        body["error"]["details"],
        json!({"required": 6, "available": 5})
    );
    let (_, shown) = budi.get(&format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(shown["status"], "draft");
    let (_, wallet) = budi.get("/api/v1/wallet").await;
    assert_eq!(
        (&wallet["reserved"], &wallet["available"]),
        (&json!(0), &json!(5))
    );
    assert_eq!(kinds(&transactions(&budi).await), ["allocation"]);

    // Topped up, the same campaign starts.
    let (status, _) = admin
        .post(
            &format!("/api/v1/admin/tenants/{}/grant", budi.tenant_id),
            json!({"points": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, started) = post_action(&budi, &id, "start").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let (_, wallet) = budi.get("/api/v1/wallet").await;
    assert_eq!(
        (&wallet["reserved"], &wallet["available"]),
        (&json!(6), &json!(0))
    );
}

#[tokio::test]
async fn a_start_beyond_the_plans_recipient_cap_is_refused_and_gives_its_points_back() {
    let app = TestApp::spawn().await;
    let back = Backdoor::of(&app).await;
    let admin = app.admin().await;
    let budi = funded_tenant(&app, &admin, 100, 2).await;
    let (id, _) = draft(&back, &budi, 3).await;

    let (status, body) = post_action(&budi, &id, "start").await;

    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "recipient_cap_exceeded"),
        "{body}"
    );
    assert_eq!(body["error"]["details"], json!({"recipients": 3, "cap": 2}));
    let (_, shown) = budi.get(&format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(shown["status"], "draft");
    assert_eq!(shown["points_reserved"], 0);
    let (_, wallet) = budi.get("/api/v1/wallet").await;
    assert_eq!(
        (
            &wallet["balance"],
            &wallet["reserved"],
            &wallet["available"]
        ),
        (&json!(100), &json!(0), &json!(100)),
        "{wallet}"
    );
    // Reserved, then given back.
    let history = transactions(&budi).await;
    assert_eq!(kinds(&history), ["release", "reserve", "allocation"]);
    assert_eq!(history[0]["points"], 6);

    // On a plan with a larger cap the same campaign reserves again and
    // starts.
    let bigger = define_plan(&admin, 100, 200).await;
    grant_plan(&admin, &budi, &bigger).await;
    let (status, started) = post_action(&budi, &id, "start").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let (_, wallet) = budi.get("/api/v1/wallet").await;
    assert_eq!(
        (&wallet["balance"], &wallet["reserved"]),
        (&json!(200), &json!(6))
    );
}

#[tokio::test]
async fn a_start_without_a_running_plan_is_refused_as_plan_expired() {
    let app = TestApp::spawn().await;
    let back = Backdoor::of(&app).await;
    let admin = app.admin().await;

    // Points but never a plan.
    let budi = app.tenant("Toko Budi").await;
    let (status, _) = admin
        .post(
            &format!("/api/v1/admin/tenants/{}/grant", budi.tenant_id),
            json!({"points": 500}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (id, _) = draft(&back, &budi, 2).await;
    let (status, body) = post_action(&budi, &id, "start").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "plan_expired"),
        "{body}"
    );
    assert_eq!(body["error"]["details"]["expired_at"], Value::Null);

    // A plan subscribed 40 days ago ran out 10 days ago.
    let siti = app.tenant("Toko Siti").await;
    back.subscribe_at(&siti.tenant_id, Utc::now() - TimeDelta::days(40))
        .await;
    let (id, _) = draft(&back, &siti, 2).await;
    let (status, body) = post_action(&siti, &id, "start").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "plan_expired"),
        "{body}"
    );
    let expired_at: chrono::DateTime<Utc> =
        serde_json::from_value(body["error"]["details"]["expired_at"].clone()).unwrap();
    assert!(expired_at < Utc::now() - TimeDelta::days(9));
    let (_, shown) = siti.get(&format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(shown["status"], "draft");
    let wallet = wait_for(
        "the old plan projected",
        Duration::from_secs(10),
        || async {
            let (_, wallet) = siti.get("/api/v1/wallet").await;
            (wallet["balance"] == 1000).then_some(wallet)
        },
    )
    .await;
    assert_eq!(wallet["reserved"], 0);
    assert_eq!(wallet["plan"]["name"], "Lama");
}

#[tokio::test]
async fn bad_campaigns_are_refused_with_the_field_and_create_nothing() {
    let app = TestApp::spawn().await;
    let back = Backdoor::of(&app).await;
    let budi = app.tenant("Toko Budi").await;
    let list = back.contact_list(&budi.tenant_id, 2, &["kota"]).await;
    let session = back.session(&budi.tenant_id).await;

    // An unknown variable: neither a column nor name/phone.
    let (status, body) = create(
        &budi,
        list,
        &[session],
        "Halo {{name}} dari {{toko}} dan {{alamat|-}}",
        json!({}),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "validation_failed"),
        "{body}"
    );
    assert_eq!(body["error"]["details"]["field"], "template");
    assert_eq!(
        body["error"]["details"]["unknown_variables"],
        json!(["alamat", "toko"])
    );

    for (template, extra, field) in [
        ("Halo {{name", json!({}), "template"),
        ("   ", json!({}), "template"),
        ("Halo", json!({"name": " "}), "name"),
        ("Halo", json!({"name": "x".repeat(121)}), "name"),
        (
            "Halo",
            json!({"throttle": {"min_delay_ms": 5000, "max_delay_ms": 1000}}),
            "throttle",
        ),
        (
            "Halo",
            json!({"throttle": {"min_delay_ms": 0, "max_delay_ms": 600_001}}),
            "throttle",
        ),
        (
            "Halo",
            json!({"sender_session_ids": []}),
            "sender_session_ids",
        ),
        (
            "Halo",
            json!({"sender_session_ids": [session, session]}),
            "sender_session_ids",
        ),
        (
            "Halo",
            json!({"scheduled_at": (Utc::now() - TimeDelta::minutes(1)).to_rfc3339()}),
            "scheduled_at",
        ),
    ] {
        let (status, body) = create(&budi, list, &[session], template, extra.clone()).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "validation_failed"),
            "{extra} {template:?}: {body}"
        );
        assert_eq!(
            body["error"]["details"]["field"], field,
            "{extra} {template:?}: {body}"
        );
    }
    // Malformed bodies.
    for body in [
        json!({"name": "x"}),
        json!({"name": "x", "contact_list_id": "nope", "template": "Hi", "sender_session_ids": []}),
        json!({"name": "x", "contact_list_id": list, "template": "Hi", "sender_session_ids": [session], "extra": 1}),
    ] {
        let (status, answer) = budi.post("/api/v1/campaigns", body.clone()).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::BAD_REQUEST, "validation_failed"),
            "{body}: {answer}"
        );
    }
    // Unknown list and session.
    let (status, body) = create(&budi, Uuid::now_v7(), &[session], "Hi", json!({})).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    assert_eq!(body["error"]["details"]["field"], "contact_list_id");
    let ghost = Uuid::now_v7();
    let (status, body) = create(&budi, list, &[session, ghost], "Hi", json!({})).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    assert_eq!(body["error"]["details"]["id"], json!(ghost));
    // A deleted list is gone.
    sqlx::query("update contact_lists set deleted_at = now() where id = $1")
        .bind(list)
        .execute(&back.db)
        .await
        .unwrap();
    let (status, _) = create(&budi, list, &[session], "Hi", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, page) = budi.get("/api/v1/campaigns").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"], json!([]));
}

#[tokio::test]
async fn a_campaign_with_a_start_time_is_scheduled_and_may_start_early() {
    let app = TestApp::spawn().await;
    let back = Backdoor::of(&app).await;
    let admin = app.admin().await;
    let budi = funded_tenant(&app, &admin, 100, 200).await;
    let list = back.contact_list(&budi.tenant_id, 2, &[]).await;
    let session = back.session(&budi.tenant_id).await;
    // Whole seconds: the query tables keep microseconds.
    let at = chrono::DateTime::from_timestamp((Utc::now() + TimeDelta::days(1)).timestamp(), 0)
        .unwrap()
        .to_rfc3339();

    let (status, body) = create(
        &budi,
        list,
        &[session],
        "Halo {{name}}",
        json!({"media_id": Uuid::now_v7()}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["details"]["field"].as_str()),
        (StatusCode::NOT_FOUND, Some("media_id")),
        "an unknown medium: {body}"
    );
    let (_, uploaded) = crate::media::upload(&budi, "promo.png", &crate::media::png()).await;

    let (status, created) = create(
        &budi,
        list,
        &[session],
        "Halo {{name}}",
        json!({"scheduled_at": at, "media_id": uploaded["id"]}),
    )
    .await;

    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"], "scheduled");
    let id = created["id"].as_str().unwrap();
    let (_, shown) = budi.get(&format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(shown["status"], "scheduled");
    assert_eq!(shown["media_id"], created["media_id"]);
    let scheduled: chrono::DateTime<Utc> =
        serde_json::from_value(shown["scheduled_at"].clone()).unwrap();
    assert_eq!(scheduled.to_rfc3339(), at);
    assert_eq!(
        shown["throttle"],
        json!({"min_delay_ms": 2000, "max_delay_ms": 5000})
    );
    let (status, started) = post_action(&budi, id, "start").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["status"], "running");
}

#[tokio::test]
async fn another_tenants_campaigns_lists_and_sessions_are_not_found() {
    let app = TestApp::spawn().await;
    let back = Backdoor::of(&app).await;
    let admin = app.admin().await;
    let budi = funded_tenant(&app, &admin, 100, 200).await;
    let siti = funded_tenant(&app, &admin, 100, 200).await;
    let (budis, budis_session) = draft(&back, &budi, 2).await;
    let budis_list = back.contact_list(&budi.tenant_id, 2, &[]).await;
    let sitis_list = back.contact_list(&siti.tenant_id, 2, &[]).await;
    let sitis_session = back.session(&siti.tenant_id).await;

    // Siti cannot use Budi's list or sessions.
    let (status, body) = create(&siti, budis_list, &[sitis_session], "Hi", json!({})).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = create(&siti, sitis_list, &[budis_session], "Hi", json!({})).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    assert_eq!(body["error"]["details"]["id"], json!(budis_session));

    // Nor see or touch Budi's campaign.
    for path in ["", "/messages", "/export"] {
        let (status, body) = siti.get(&format!("/api/v1/campaigns/{budis}{path}")).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
    }
    for action in ["start", "pause", "resume", "cancel"] {
        let (status, body) = post_action(&siti, &budis, action).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{action}: {body}"
        );
    }
    let (_, page) = siti.get("/api/v1/campaigns").await;
    assert_eq!(page["items"], json!([]));
    // Ids that name nothing, and ids that are not ids.
    for path in [
        format!("/api/v1/campaigns/{}", Uuid::now_v7()),
        "/api/v1/campaigns/not-an-id".to_owned(),
        "/api/v1/campaigns/not-an-id/export".to_owned(),
    ] {
        let (status, _) = budi.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _) = post_action(&budi, &Uuid::now_v7().to_string(), "start").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Budi's campaign is as it was, and his wallet untouched.
    let (_, shown) = budi.get(&format!("/api/v1/campaigns/{budis}")).await;
    assert_eq!(shown["status"], "draft");
    assert_eq!(kinds(&transactions(&budi).await), ["allocation"]);
}

#[tokio::test]
async fn messages_are_listed_by_status_and_exported_as_csv() {
    let app = TestApp::spawn().await;
    let back = Backdoor::of(&app).await;
    let admin = app.admin().await;
    let budi = funded_tenant(&app, &admin, 100, 200).await;
    let (id, session) = draft(&back, &budi, 2).await;

    // A draft exports its header alone.
    let response = export(&budi, &id).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    assert_eq!(
        response.headers()["content-disposition"],
        format!("attachment; filename=\"campaign-{id}.csv\"").as_str()
    );
    assert_eq!(
        response.text().await.unwrap(),
        "phone,name,status,error,sent_at,delivered_at,read_at,text\r\n"
    );

    let (status, _) = post_action(&budi, &id, "start").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    back.queue_message(
        &budi.tenant_id,
        &id,
        session,
        "+6281200000001",
        "Budi, S.H.",
    )
    .await;
    let written = back
        .queue_message(&budi.tenant_id, &id, session, "+6281200000002", "=Siti")
        .await;

    let (status, page) = budi
        .get_after(&format!("/api/v1/campaigns/{id}/messages"), &written)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["phone"], "+6281200000001");
    assert_eq!(items[0]["status"], "queued");
    assert_eq!(items[0]["session_id"], json!(session));
    let (_, page) = budi
        .get(&format!(
            "/api/v1/campaigns/{id}/messages?status=queued&limit=1"
        ))
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, next) = budi
        .get(&format!(
            "/api/v1/campaigns/{id}/messages?status=queued&limit=1&cursor={cursor}"
        ))
        .await;
    assert_eq!(next["items"][0]["phone"], "+6281200000002");
    assert_eq!(next["next_cursor"], Value::Null);
    let (_, page) = budi
        .get(&format!("/api/v1/campaigns/{id}/messages?status=sent"))
        .await;
    assert_eq!(page["items"], json!([]));
    let (status, body) = budi
        .get(&format!("/api/v1/campaigns/{id}/messages?status=bogus"))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "validation_failed")
    );
    let (_, shown) = budi.get(&format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(shown["counts"]["queued"], 2);
    assert_eq!(shown["counts"]["total"], 2);

    let response = export(&budi, &id).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.text().await.unwrap(),
        "phone,name,status,error,sent_at,delivered_at,read_at,text\r\n\
         +6281200000001,\"Budi, S.H.\",queued,,,,,\r\n\
         +6281200000002,'=Siti,queued,,,,,\r\n"
    );

    // With messages in the log, a cancel leaves the settlement to the
    // process that counts what was sent: the points stay reserved.
    let (status, cancelled) = post_action(&budi, &id, "cancel").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{cancelled}");
    assert!(cancelled.get("points_released").is_none(), "{cancelled}");
    let (_, wallet) = budi.get("/api/v1/wallet").await;
    assert_eq!(wallet["reserved"], 4);
}

#[tokio::test]
async fn campaigns_are_listed_in_pages_and_by_status() {
    let app = TestApp::spawn().await;
    let back = Backdoor::of(&app).await;
    let admin = app.admin().await;
    let budi = funded_tenant(&app, &admin, 100, 200).await;
    let (first, _) = draft(&back, &budi, 1).await;
    let (second, _) = draft(&back, &budi, 1).await;
    let (third, _) = draft(&back, &budi, 1).await;
    let (status, _) = post_action(&budi, &second, "start").await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let (status, page) = budi.get("/api/v1/campaigns?limit=2").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [first.as_str(), second.as_str()]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page) = budi
        .get(&format!("/api/v1/campaigns?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(page["items"][0]["id"], json!(third));
    assert_eq!(page["next_cursor"], Value::Null);

    let (_, running) = budi.get("/api/v1/campaigns?status=running").await;
    assert_eq!(running["items"].as_array().unwrap().len(), 1);
    assert_eq!(running["items"][0]["id"], json!(second));
    assert_eq!(running["items"][0]["counts"]["total"], 1);
    for query in ["status=bogus", "limit=0", "cursor=junk"] {
        let (status, body) = budi.get(&format!("/api/v1/campaigns?{query}")).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "validation_failed"),
            "{query}"
        );
    }
}

/// Whole seconds from now (the query tables keep microseconds).
fn seconds_from_now(seconds: i64) -> String {
    chrono::DateTime::from_timestamp((Utc::now() + TimeDelta::seconds(seconds)).timestamp(), 0)
        .unwrap()
        .to_rfc3339()
}

/// A campaign to `list` from `session` scheduled `seconds` from now.
async fn scheduled_in(client: &Client, list: Uuid, session: Uuid, seconds: i64) -> String {
    let (status, created) = create(
        client,
        list,
        &[session],
        "Halo {{name|Kak}}",
        json!({"scheduled_at": seconds_from_now(seconds)}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

/// The campaign as the API shows it once `done` says so.
async fn campaign_when(client: &Client, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let path = format!("/api/v1/campaigns/{id}");
    wait_for("the campaign", Duration::from_secs(20), async || {
        let (_, shown) = client.get(&path).await;
        done(&shown).then_some(shown)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_campaign_starts_by_itself_at_its_time_and_a_moved_one_waits() {
    let app = TestApp::spawn_with_engine().await;
    let back = Backdoor::of(&app).await;
    let admin = app.admin().await;
    let budi = funded_tenant(&app, &admin, 100, 200).await;
    let list = back.contact_list(&budi.tenant_id, 2, &[]).await;
    let session = back.session(&budi.tenant_id).await;

    let soon = scheduled_in(&budi, list, session, 2).await;
    let moved = scheduled_in(&budi, list, session, 2).await;
    // Moved a day later, and a past time is refused.
    let (status, body) = budi
        .post(
            &format!("/api/v1/campaigns/{moved}/schedule"),
            json!({"scheduled_at": seconds_from_now(86_400)}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = budi
        .post(
            &format!("/api/v1/campaigns/{moved}/schedule"),
            json!({"scheduled_at": seconds_from_now(-60)}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let started = campaign_when(&budi, &soon, |c| c["status"] != "scheduled").await;
    assert_eq!(started["status"], "running", "{started}");
    assert_eq!(started["points_reserved"], 4, "{started}");
    let (_, still) = budi.get(&format!("/api/v1/campaigns/{moved}")).await;
    assert_eq!(still["status"], "scheduled", "{still}");
    // A started campaign cannot be scheduled again.
    let (status, body) = budi
        .post(
            &format!("/api/v1/campaigns/{soon}/schedule"),
            json!({"scheduled_at": seconds_from_now(3600)}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "invalid_state")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_start_refused_at_its_time_is_a_draft_saying_why() {
    let app = TestApp::spawn_with_engine().await;
    let back = Backdoor::of(&app).await;
    let admin = app.admin().await;
    // 4 points: enough for two recipients, not for three.
    let budi = funded_tenant(&app, &admin, 4, 200).await;
    let list = back.contact_list(&budi.tenant_id, 3, &[]).await;
    let session = back.session(&budi.tenant_id).await;
    let id = scheduled_in(&budi, list, session, 2).await;
    let cancelled = scheduled_in(&budi, list, session, 2).await;
    let (status, _) = post_action(&budi, &cancelled, "cancel").await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let refused = campaign_when(&budi, &id, |c| c["status"] != "scheduled").await;
    assert_eq!(refused["status"], "draft", "{refused}");
    assert_eq!(
        refused["start_refusal"]["code"], "insufficient_points",
        "{refused}"
    );
    assert_eq!(refused["scheduled_at"], Value::Null, "{refused}");
    assert_eq!(refused["points_reserved"], 0, "{refused}");
    // Nothing stays reserved, and the cancelled one never started.
    let (_, wallet) = budi.get("/api/v1/wallet").await;
    assert_eq!(wallet["reserved"], 0, "{wallet}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, shown) = budi.get(&format!("/api/v1/campaigns/{cancelled}")).await;
    assert_eq!(shown["status"], "cancelled", "{shown}");
}

/// A list imported over HTTP whose contacts lack some values: a header the
/// import recognises (`phone_e164`, `nama`), two contacts without a name,
/// two without a city (one of each only blank).
async fn gappy_list(client: &Client) -> String {
    let csv = "phone_e164,nama,kota,consent\n\
               +6281234567801,Budi,Bandung,ya\n\
               +6281234567802,,Solo,ya\n\
               +6281234567803,Siti,,ya\n\
               +6281234567804,  ,   ,ya\n";
    let (status, report) =
        crate::contacts::import(client, "pelanggan.csv", csv.as_bytes(), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{report}");
    assert_eq!(report["accepted"], 4, "{report}");
    assert_eq!(report["columns"], json!(["kota"]), "{report}");
    report["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_template_needing_values_some_contacts_lack_is_refused_with_counts_unless_it_falls_back()
{
    let app = TestApp::spawn().await;
    let back = Backdoor::of(&app).await;
    let budi = app.tenant("Toko Budi").await;
    let list = gappy_list(&budi).await;
    let session = back.session(&budi.tenant_id).await;
    let list = Uuid::parse_str(&list).unwrap();

    // Variables match the list case-insensitively; without a fallback,
    // every contact must have a value.
    let (status, body) = create(
        &budi,
        list,
        &[session],
        "Halo {{Name}} dari {{KOTA}}",
        json!({}),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "template_variables_missing"
        ),
        "{body}"
    );
    assert_eq!(
        body["error"]["details"]["missing"],
        json!({"name": 2, "kota": 2})
    );
    assert_eq!(body["error"]["details"]["field"], "template");
    let (status, body) = create(
        &budi,
        list,
        &[session],
        "Halo {{name|Kak}} dari {{kota}}",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"]["missing"], json!({"kota": 2}));

    // With fallbacks (or only what every contact has) it is created.
    for template in [
        "{Halo|Hai} {{Name|Kak}} dari {{kota|kota kamu}}",
        "Halo {{phone}}",
    ] {
        let (status, body) = create(&budi, list, &[session], template, json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "{template}: {body}");
    }
    // An unknown variable is still a bad field, not a missing value.
    let (status, body) = create(&budi, list, &[session], "Halo {{nama}}", json!({})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "validation_failed")
    );
    assert_eq!(
        body["error"]["details"]["unknown_variables"],
        json!(["nama"])
    );
}

#[tokio::test]
async fn a_start_is_refused_when_contacts_lost_a_value_the_template_needs_and_reserves_nothing() {
    let app = TestApp::spawn().await;
    let back = Backdoor::of(&app).await;
    let admin = app.admin().await;
    let budi = funded_tenant(&app, &admin, 1000, 200).await;
    let (id, _) = draft(&back, &budi, 3).await;
    // The draft's template needs `kota` (no fallback); a contact loses it.
    sqlx::query(
        "update contacts set variables = '{\"kota\": \" \"}'
         where tenant_id = $1 and row_number = 2",
    )
    .bind(Uuid::parse_str(&budi.tenant_id).unwrap())
    .execute(&back.db)
    .await
    .unwrap();

    let (status, body) = post_action(&budi, &id, "start").await;

    assert_eq!(
        (status, code(&body)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "template_variables_missing"
        ),
        "{body}"
    );
    assert_eq!(body["error"]["details"]["missing"], json!({"kota": 1}));
    let (_, shown) = budi.get(&format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(shown["status"], "draft");
    let (_, wallet) = budi.get("/api/v1/wallet").await;
    assert_eq!(
        (&wallet["reserved"], &wallet["available"]),
        (&json!(0), &json!(1000))
    );
}

#[tokio::test]
async fn a_preview_renders_sample_contacts_as_the_send_would_and_counts_missing_values() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let list = gappy_list(&budi).await;
    let preview = |body: Value| {
        let budi = budi.clone();
        async move { budi.post("/api/v1/campaigns/preview", body).await }
    };

    let (status, shown) = preview(json!({
        "contact_list_id": list,
        "template": "{Halo|Hai} {{Name|Kak}} dari {{kota}}, nomor {{phone}}",
        "count": 3,
    }))
    .await;

    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["missing"], json!({"name": 2, "kota": 2}));
    let samples = shown["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 3);
    let phones: Vec<&str> = samples
        .iter()
        .map(|s| s["phone"].as_str().unwrap())
        .collect();
    assert_eq!(
        phones,
        ["+6281234567801", "+6281234567802", "+6281234567803"]
    );
    assert_eq!(samples[0]["name"], "Budi");
    let first = samples[0]["text"].as_str().unwrap();
    assert!(
        ["Halo", "Hai"]
            .map(|h| format!("{h} Budi dari Bandung, nomor +6281234567801"))
            .contains(&first.to_owned()),
        "{first}"
    );
    assert!(
        samples[1]["text"]
            .as_str()
            .unwrap()
            .ends_with(" Kak dari Solo, nomor +6281234567802"),
        "the fallback: {shown}"
    );
    assert_eq!(
        samples[2]["text"],
        Value::Null,
        "no city, no fallback: {shown}"
    );
    // Spintax is picked per message, as the send picks it.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let (_, shown) = preview(
            json!({"contact_list_id": list, "template": "{Halo|Hai} {{name}}", "count": 1}),
        )
        .await;
        seen.insert(shown["samples"][0]["text"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, ["Hai Budi", "Halo Budi"].map(str::to_owned).into());

    // Five by default (the list has four); nothing missing: `{}`.
    let (status, shown) =
        preview(json!({"contact_list_id": list, "template": "Hai {{phone}}"})).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["samples"].as_array().unwrap().len(), 4);
    assert_eq!(shown["missing"], json!({}));

    // Refusals.
    for (body, expected) in [
        (
            json!({"contact_list_id": list, "template": "Halo {{name"}),
            (StatusCode::BAD_REQUEST, "validation_failed"),
        ),
        (
            json!({"contact_list_id": list, "template": "Halo {{voucher}}"}),
            (StatusCode::BAD_REQUEST, "validation_failed"),
        ),
        (
            json!({"contact_list_id": list, "template": "Hi", "count": 0}),
            (StatusCode::BAD_REQUEST, "validation_failed"),
        ),
        (
            json!({"contact_list_id": list, "template": "Hi", "count": 21}),
            (StatusCode::BAD_REQUEST, "validation_failed"),
        ),
        (
            json!({"contact_list_id": Uuid::now_v7(), "template": "Hi"}),
            (StatusCode::NOT_FOUND, "not_found"),
        ),
    ] {
        let (status, answer) = preview(body.clone()).await;
        assert_eq!((status, code(&answer)), expected, "{body}: {answer}");
    }
    let siti = app.tenant("Toko Siti").await;
    let (status, answer) = siti
        .post(
            "/api/v1/campaigns/preview",
            json!({"contact_list_id": list, "template": "Hi"}),
        )
        .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

/// The request id of an HTTP call is the correlation id of every event it
/// caused: from a client's `X-Request-Id` (a UUID, or any text), or the one
/// the API made, which it answers.
#[tokio::test]
async fn a_requests_id_is_the_correlation_id_of_every_event_it_caused() {
    let app = TestApp::spawn().await;
    let back = Backdoor::of(&app).await;
    let admin = app.admin().await;
    let budi = funded_tenant(&app, &admin, 100, 200).await;
    let list = back.contact_list(&budi.tenant_id, 2, &[]).await;
    let session = back.session(&budi.tenant_id).await;
    let body = json!({
        "name": "Promo", "contact_list_id": list, "template": "Halo {{name|Kak}}",
        "sender_session_ids": [session], "scheduled_at": seconds_from_now(3600),
    });
    let history = async |id: &str| {
        back.log
            .load("campaign", &AggregateKey::new(&budi.tenant_id, id).unwrap())
            .await
            .unwrap()
            .commits
    };

    // Created and scheduled by one request: two commits, one correlation.
    let request_id = Uuid::new_v4();
    let (status, created) = budi
        .send(
            budi.request(reqwest::Method::POST, "/api/v1/campaigns")
                .header("x-request-id", request_id.to_string())
                .json(&body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let commits = history(created["id"].as_str().unwrap()).await;
    assert_eq!(commits.len(), 2);
    for (_, commit) in &commits {
        assert_eq!(commit.correlation_id, request_id);
    }

    // Without a request id of the client's, the one the API answers leads
    // to the events.
    let response = budi
        .request(reqwest::Method::POST, "/api/v1/campaigns")
        .json(&body)
        .send()
        .await
        .unwrap();
    let answered: Uuid = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let created: Value = response.json().await.unwrap();
    for (_, commit) in history(created["id"].as_str().unwrap()).await {
        assert_eq!(commit.correlation_id, answered);
    }
}
