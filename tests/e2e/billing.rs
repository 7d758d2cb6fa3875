//! Billing through Midtrans, against a local Midtrans speaking its
//! documented API: checkout, notifications (repeated, badly signed, of
//! another amount), refunds, the re-check of waiting orders, receipts, and
//! tenants kept apart.

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wablast_domain::types::{CampaignId, TenantId};
use wablast_domain::wallet::WalletCommand;
use wablast_eventstore::{Actor, CommandMetadata};
use wablast_tests::midtrans::{LocalMidtrans, SERVER_KEY};
use wablast_workflows::clock::ManualClock;
use wablast_workflows::commands::{Commands, tenant_key};
use wablast_workflows::payments::midtrans::Midtrans;
use wablast_workflows::payments::{Outcome, Payments, RecheckOptions, TopUpPricing};

use crate::app::{Client, TestApp, code};
use crate::campaigns::{Backdoor, define_plan, sees_writes_of};

/// wablast with payments through `midtrans`, on a port chosen first so
/// that its public URL (where Midtrans notifies) is known.
async fn app_paying_through(midtrans: &LocalMidtrans) -> TestApp {
    let port = wablast_tests::free_port();
    let base = midtrans.base_url.clone();
    TestApp::spawn_with(move |settings| {
        settings.listen = format!("127.0.0.1:{port}").parse().unwrap();
        settings.public_url = Some(format!("http://127.0.0.1:{port}"));
        settings.midtrans_server_key = Some(SERVER_KEY.into());
        settings.midtrans_snap_url = Some(base.clone());
        settings.midtrans_api_url = Some(base);
        settings.topup_price_per_point = 100;
    })
    .await
}

fn transaction_finish(midtrans: &LocalMidtrans, opened: &Value) -> String {
    let transaction = midtrans.transaction(opened["order_id"].as_str().unwrap());
    transaction.request["callbacks"]["finish"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn checkout(client: &Client, body: Value) -> (StatusCode, Value) {
    client.post("/api/v1/billing/checkout", body).await
}

async fn order(client: &Client, id: &str) -> Value {
    let (status, order) = client.get(&format!("/api/v1/billing/orders/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{order}");
    order
}

async fn wallet(client: &Client) -> Value {
    let (status, wallet) = client.get("/api/v1/wallet").await;
    assert_eq!(status, StatusCode::OK, "{wallet}");
    wallet
}

/// Waits until the order's projection shows `status`.
async fn order_until(client: &Client, id: &str, status: &str) -> Value {
    wablast_tests::wait_for(
        &format!("order {status}"),
        std::time::Duration::from_secs(10),
        async || {
            let order = order(client, id).await;
            (order["status"] == status).then_some(order)
        },
    )
    .await
}

async fn wallet_until(client: &Client, balance: u64) -> Value {
    wablast_tests::wait_for(
        &format!("balance {balance}"),
        std::time::Duration::from_secs(10),
        async || {
            let wallet = wallet(client).await;
            (wallet["balance"] == balance).then_some(wallet)
        },
    )
    .await
}

async fn verify_holds(app: &TestApp) -> wablast_domain::verify::Report {
    let backdoor = Backdoor::of(app).await;
    let report = wablast::verify::run(&backdoor.log).await.unwrap();
    assert!(
        report.holds(),
        "the log breaks a rule:\n{}",
        wablast::verify::render(&report)
    );
    report
}

#[tokio::test]
async fn a_plan_bought_is_active_once_however_often_midtrans_notifies_and_a_bad_signature_changes_nothing()
 {
    // Arrange
    let midtrans = LocalMidtrans::start().await;
    let app = app_paying_through(&midtrans).await;
    let admin = app.admin().await;
    let budi = app.tenant("Toko Budi").await;
    let plan = define_plan(&admin, 2000, 200).await;
    sees_writes_of(&budi, &admin);

    // Act: checkout.
    let (status, opened) = checkout(&budi, json!({"plan_id": plan})).await;

    // Assert: Midtrans was asked as it documents.
    assert_eq!(status, StatusCode::CREATED, "{opened}");
    let order_id = opened["order_id"].as_str().unwrap().to_owned();
    assert_eq!(opened["amount"], 150000);
    assert!(opened["snap_token"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(
        opened["redirect_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/snap/v4/redirection/", midtrans.base_url))
    );
    assert_eq!(
        transaction_finish(&midtrans, &opened),
        format!("{}/wallet", app.url(""))
    );
    let transaction = midtrans.transaction(&order_id);
    assert_eq!(transaction.gross_amount, 150000);
    assert_eq!(transaction.request["item_details"][0]["id"], plan);
    assert_eq!(transaction.request["item_details"][0]["price"], 150000);
    assert_eq!(transaction.request["customer_details"]["email"], budi.email);
    assert_eq!(
        transaction.notification_url.as_deref(),
        Some(format!("{}/hooks/midtrans", app.url("")).as_str())
    );
    let created = order(&budi, &order_id).await;
    assert_eq!(created["status"], "created", "{created}");
    assert_eq!(created["plan"]["id"], plan);

    // Act: paid; Midtrans notifies twice, and someone else once with a
    // wrong signature.
    midtrans.set_status(&order_id, "settlement");
    let first = midtrans.notify(&order_id).await;
    let second = midtrans.notify(&order_id).await;
    let forged = midtrans.notify_with_bad_signature(&order_id).await;

    // Assert
    assert_eq!(
        first,
        (200, json!({"order_id": order_id, "status": "paid"}))
    );
    assert_eq!(
        second,
        (200, json!({"order_id": order_id, "status": "paid"}))
    );
    assert_eq!(forged.0, 401, "{}", forged.1);
    assert_eq!(code(&forged.1), "unauthenticated");
    order_until(&budi, &order_id, "paid").await;
    let paid = wablast_tests::wait_for(
        "the order credited",
        std::time::Duration::from_secs(10),
        async || {
            let order = order(&budi, &order_id).await;
            order["credited_at"].is_string().then_some(order)
        },
    )
    .await;
    assert_eq!(paid["transaction_id"], json!(transaction.transaction_id));
    assert_eq!(
        paid["paid_at"],
        transaction
            .opened_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "settlement time in WIB, shown in UTC"
    );
    assert!(paid["credited_at"].is_string(), "{paid}");
    let wallet = wallet_until(&budi, 2000).await;
    assert_eq!(wallet["plan"]["id"], plan, "{wallet}");
    let (_, history) = budi.get("/api/v1/wallet/transactions").await;
    let items = history["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "credited once: {history}");
    assert_eq!(items[0]["kind"], "allocation");
    assert_eq!(items[0]["reference"], format!("order:{order_id}"));

    // The receipt of the paid order.
    let response = budi
        .request(
            reqwest::Method::GET,
            &format!("/api/v1/billing/orders/{order_id}/receipt.pdf"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    let pdf = response.bytes().await.unwrap();
    assert!(pdf.starts_with(b"%PDF-"), "a PDF");

    // The log proves it: one credit for one paid order.
    let report = verify_holds(&app).await;
    assert!(report.checked[&wablast_domain::verify::Rule::PlanBackedByPayment] >= 1);
    assert!(report.checked[&wablast_domain::verify::Rule::CreditedOncePerOrder] >= 1);
}

#[tokio::test]
async fn a_settlement_of_another_amount_is_refused_and_credits_nothing() {
    let midtrans = LocalMidtrans::start().await;
    let app = app_paying_through(&midtrans).await;
    let budi = app.tenant("Toko Budi").await;
    let (status, opened) = checkout(&budi, json!({"topup_points": 500})).await;
    assert_eq!(status, StatusCode::CREATED, "{opened}");
    let order_id = opened["order_id"].as_str().unwrap().to_owned();
    assert_eq!(opened["amount"], 50000);

    // Act: Midtrans says it settled 1,000 rupiah.
    midtrans.set_status(&order_id, "settlement");
    midtrans.set_amount(&order_id, 1000);
    let (status, body) = midtrans.notify(&order_id).await;

    // Assert
    assert_eq!(status, 422, "{body}");
    assert_eq!(code(&body), "amount_mismatch");
    assert_eq!(
        body["error"]["details"],
        json!({"expected": 50000, "reported": 1000})
    );
    let refused = wablast_tests::wait_for(
        "the mismatch recorded",
        std::time::Duration::from_secs(10),
        async || {
            let order = order(&budi, &order_id).await;
            (order["amount_mismatches"] == 1).then_some(order)
        },
    )
    .await;
    assert_eq!(refused["status"], "created", "{refused}");
    assert_eq!(wallet(&budi).await["balance"], 0);
    let (status, body) = budi
        .get(&format!("/api/v1/billing/orders/{order_id}/receipt.pdf"))
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "no receipt for an unpaid order: {body}"
    );
    assert_eq!(code(&body), "invalid_state");
    verify_holds(&app).await;
}

#[tokio::test]
async fn a_top_up_goes_from_pending_to_paid_and_credits_once() {
    let midtrans = LocalMidtrans::start().await;
    let app = app_paying_through(&midtrans).await;
    let budi = app.tenant("Toko Budi").await;
    let (_, opened) = checkout(&budi, json!({"topup_points": 500})).await;
    let order_id = opened["order_id"].as_str().unwrap().to_owned();

    midtrans.set_status(&order_id, "pending");
    assert_eq!(midtrans.notify(&order_id).await.1["status"], "pending");
    order_until(&budi, &order_id, "pending").await;
    midtrans.set_status(&order_id, "settlement");
    for _ in 0..3 {
        assert_eq!(midtrans.notify(&order_id).await.1["status"], "paid");
    }

    wallet_until(&budi, 500).await;
    let (_, history) = budi.get("/api/v1/wallet/transactions").await;
    assert_eq!(history["items"].as_array().unwrap().len(), 1, "{history}");
    assert_eq!(history["items"][0]["kind"], "topup");
    // An expiry after the payment changes nothing.
    midtrans.set_status(&order_id, "expire");
    assert_eq!(midtrans.notify(&order_id).await.1["status"], "paid");
    assert_eq!(wallet(&budi).await["balance"], 500);
    verify_holds(&app).await;
}

#[tokio::test]
async fn a_refund_takes_back_the_unspent_points_and_records_the_spent_ones_as_owed() {
    // Arrange: a plan of 2,000 points bought; a campaign holds 1,000.
    let midtrans = LocalMidtrans::start().await;
    let app = app_paying_through(&midtrans).await;
    let admin = app.admin().await;
    let budi = app.tenant("Toko Budi").await;
    let plan = define_plan(&admin, 2000, 200).await;
    sees_writes_of(&budi, &admin);
    let (_, opened) = checkout(&budi, json!({"plan_id": plan})).await;
    let order_id = opened["order_id"].as_str().unwrap().to_owned();
    midtrans.set_status(&order_id, "settlement");
    assert_eq!(midtrans.notify(&order_id).await.1["status"], "paid");
    let backdoor = Backdoor::of(&app).await;
    let tenant = TenantId::from_uuid(budi.tenant_id.parse().unwrap());
    Commands::new(&backdoor.log)
        .wallets
        .execute(
            &tenant_key(tenant),
            WalletCommand::Reserve {
                campaign_id: CampaignId::new(),
                recipients: 500,
                at: Utc::now(),
            },
            &CommandMetadata::new(Actor::System),
        )
        .await
        .unwrap();

    // Act: a quarter refunded, then all of it.
    midtrans.refund(&order_id, 37500);
    assert_eq!(
        midtrans.notify(&order_id).await.1["status"],
        "partially_refunded"
    );
    let quarter = wallet_until(&budi, 1500).await;
    assert_eq!(quarter["reserved"], 1000);
    midtrans.refund(&order_id, 150000);
    assert_eq!(midtrans.notify(&order_id).await.1["status"], "refunded");
    assert_eq!(midtrans.notify(&order_id).await.1["status"], "refunded");

    // Assert: of the 1,500 left to take back, the 500 available were
    // taken; the 1,000 reserved are owed.
    let after = wallet_until(&budi, 1000).await;
    assert_eq!(
        (after["reserved"].clone(), after["available"].clone()),
        (json!(1000), json!(0))
    );
    let refunded = wablast_tests::wait_for(
        "take-back recorded",
        std::time::Duration::from_secs(10),
        async || {
            let order = order(&budi, &order_id).await;
            (order["points_owed"] == 1000).then_some(order)
        },
    )
    .await;
    assert_eq!(refunded["status"], "refunded");
    assert_eq!(refunded["refunded_amount"], 150000);
    assert_eq!(refunded["points_taken_back"], 1000);
    let (_, history) = budi.get("/api/v1/wallet/transactions").await;
    let kinds: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["refund", "refund", "reserve", "allocation"],
        "{history}"
    );
    verify_holds(&app).await;
}

#[tokio::test]
async fn a_pending_order_is_rechecked_on_the_clock_and_becomes_paid() {
    // Arrange: an order Midtrans says is pending; then it settles, and
    // its notification is lost.
    let midtrans = LocalMidtrans::start().await;
    let app = app_paying_through(&midtrans).await;
    let budi = app.tenant("Toko Budi").await;
    let (_, opened) = checkout(&budi, json!({"topup_points": 300})).await;
    let order_id = opened["order_id"].as_str().unwrap().to_owned();
    midtrans.set_status(&order_id, "pending");
    assert_eq!(midtrans.notify(&order_id).await.1["status"], "pending");
    order_until(&budi, &order_id, "pending").await;
    midtrans.set_status(&order_id, "settlement");
    let backdoor = Backdoor::of(&app).await;
    let clock = ManualClock::new(Utc::now());
    let payments = Payments::new(
        Commands::new(&backdoor.log),
        backdoor.log.clone(),
        backdoor.db.clone(),
        Some(Midtrans::new(app.settings.midtrans().unwrap().unwrap()).unwrap()),
        Arc::new(clock.clone()),
        TopUpPricing::default(),
    );
    let options = RecheckOptions::default();

    // Act: not due yet, then five minutes later.
    let early = payments.recheck_due(&options).await.unwrap();
    clock.advance(options.after + TimeDelta::seconds(1));
    let due = payments.recheck_due(&options).await.unwrap();

    // Assert
    assert!(early.is_empty(), "{early:?}");
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0].0.to_string(), order_id);
    assert!(
        matches!(
            due[0].1,
            Ok(Outcome::Applied(wablast_domain::order::OrderStatus::Paid))
        ),
        "{due:?}"
    );
    order_until(&budi, &order_id, "paid").await;
    wallet_until(&budi, 300).await;
    verify_holds(&app).await;
}

#[tokio::test]
async fn another_tenants_orders_are_not_found() {
    let midtrans = LocalMidtrans::start().await;
    let app = app_paying_through(&midtrans).await;
    let budi = app.tenant("Toko Budi").await;
    let siti = app.tenant("Toko Siti").await;
    let (_, opened) = checkout(&budi, json!({"topup_points": 500})).await;
    let order_id = opened["order_id"].as_str().unwrap().to_owned();
    midtrans.set_status(&order_id, "settlement");
    midtrans.notify(&order_id).await;
    order_until(&budi, &order_id, "paid").await;

    for path in [
        format!("/api/v1/billing/orders/{order_id}"),
        format!("/api/v1/billing/orders/{order_id}/receipt.pdf"),
    ] {
        let (status, body) = siti.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(code(&body), "not_found");
    }
    let (_, list) = siti.get("/api/v1/billing/orders").await;
    assert_eq!(list, json!({"items": [], "next_cursor": null}));
    let (_, list) = budi.get("/api/v1/billing/orders?status=paid").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    let (status, _) = budi.get("/api/v1/billing/orders?status=settled").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn checkout_refuses_bad_input_and_a_gateway_that_fails() {
    let midtrans = LocalMidtrans::start().await;
    let app = app_paying_through(&midtrans).await;
    let admin = app.admin().await;
    let budi = app.tenant("Toko Budi").await;
    let plan = define_plan(&admin, 2000, 200).await;
    sees_writes_of(&budi, &admin);

    for (body, expected, expected_code) in [
        (json!({}), StatusCode::BAD_REQUEST, "validation_failed"),
        (
            json!({"plan_id": plan, "topup_points": 10}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            json!({"topup_points": 1}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            json!({"topup_points": -5}),
            StatusCode::BAD_REQUEST,
            "validation_failed",
        ),
        (
            json!({"plan_id": uuid::Uuid::now_v7()}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ] {
        let (status, answer) = checkout(&budi, body.clone()).await;
        assert_eq!(
            (status, code(&answer)),
            (expected, expected_code),
            "{body}: {answer}"
        );
    }
    assert_eq!(midtrans.requests().0, 0, "nothing reached Midtrans");

    // Midtrans fails: 502, and the order says why.
    midtrans.fail_snap_with(500);
    let (status, answer) = checkout(&budi, json!({"topup_points": 500})).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{answer}");
    assert_eq!(code(&answer), "payment_gateway_failed");
    let failed = wablast_tests::wait_for(
        "the failed order",
        std::time::Duration::from_secs(10),
        async || {
            let (_, list) = budi.get("/api/v1/billing/orders").await;
            (list["items"][0]["status"] == "failed").then_some(list)
        },
    )
    .await;
    assert_eq!(failed["items"][0]["status"], "failed");
    assert_eq!(failed["items"][0]["failure_reason"], "checkout_failed");
}

#[tokio::test]
async fn without_midtrans_checkout_is_refused_and_no_notification_is_taken() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;

    let (status, body) = checkout(&budi, json!({"topup_points": 500})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(code(&body), "payments_not_configured");
    let (_, options) = budi.get("/api/v1/billing/options").await;
    assert_eq!(options["payments_enabled"], false, "{options}");
    let response = app
        .http
        .post(app.url("/hooks/midtrans"))
        .json(&json!({"order_id": "x", "status_code": "200", "gross_amount": "1.00", "signature_key": "00"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// Revenue by plan in the platform's statistics comes from the orders
/// paid (net of refunds), per plan and top-ups, per period; a pending
/// order and a grant are not revenue; a range with nothing paid has none.
#[tokio::test]
async fn admin_stats_report_revenue_by_plan_from_paid_orders() {
    // Arrange: Budi buys a plan (a quarter refunded later), Siti buys
    // points, Ani leaves an order pending, and Ani is granted a plan.
    let midtrans = LocalMidtrans::start().await;
    let app = app_paying_through(&midtrans).await;
    let admin = app.admin().await;
    let budi = app.tenant("Toko Budi").await;
    let siti = app.tenant("Toko Siti").await;
    let ani = app.tenant("Toko Ani").await;
    let plan = define_plan(&admin, 2000, 200).await;
    sees_writes_of(&budi, &admin);
    sees_writes_of(&ani, &admin);
    let mut paid = Vec::new();
    for (client, body) in [
        (&budi, json!({"plan_id": plan})),
        (&siti, json!({"topup_points": 500})),
    ] {
        let (status, opened) = checkout(client, body).await;
        assert_eq!(status, StatusCode::CREATED, "{opened}");
        let order_id = opened["order_id"].as_str().unwrap().to_owned();
        midtrans.set_status(&order_id, "settlement");
        assert_eq!(midtrans.notify(&order_id).await.1["status"], "paid");
        paid.push(order_id);
    }
    let (_, pending) = checkout(&ani, json!({"plan_id": plan})).await;
    let pending_id = pending["order_id"].as_str().unwrap().to_owned();
    midtrans.set_status(&pending_id, "pending");
    midtrans.notify(&pending_id).await;
    crate::campaigns::grant_plan(&admin, &ani, &plan).await;
    midtrans.refund(&paid[0], 37500);
    midtrans.notify(&paid[0]).await;
    order_until(&budi, &paid[0], "partially_refunded").await;
    order_until(&ani, &pending_id, "pending").await;
    sees_writes_of(&admin, &budi);

    // Act
    let today = Utc::now().date_naive();
    let (status, stats) = admin
        .get(&format!(
            "/api/v1/admin/stats?from={today}&to={today}&granularity=day"
        ))
        .await;
    let last_year = today - TimeDelta::days(365);
    let (_, past) = admin
        .get(&format!(
            "/api/v1/admin/stats?from={last_year}&to={last_year}"
        ))
        .await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(
        stats["revenue_by_plan"],
        json!([
            {"item": "plan", "plan_id": plan, "plan_name": "Paket 2000",
             "orders": 1, "amount": 150000, "refunded": 37500, "net": 112500,
             "periods": [{"start": today, "orders": 1, "amount": 150000,
                          "refunded": 37500, "net": 112500}]},
            {"item": "top_up", "plan_id": null, "plan_name": null,
             "orders": 1, "amount": 50000, "refunded": 0, "net": 50000,
             "periods": [{"start": today, "orders": 1, "amount": 50000,
                          "refunded": 0, "net": 50000}]},
        ]),
        "{stats}"
    );
    assert_eq!(past["revenue_by_plan"], json!([]), "{past}");
}

/// The re-check of waiting orders runs in one process at a time: of two
/// processes (each looking up its own local Midtrans), only the one that
/// holds the lock looks orders up; when it stops, the other takes over.
#[tokio::test]
async fn only_one_process_rechecks_the_waiting_orders() {
    // Arrange: an order pending at Midtrans A (the app's own re-check is
    // not configured: no Midtrans).
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let tenant = TenantId::from_uuid(budi.tenant_id.parse().unwrap());
    let (a, b) = (LocalMidtrans::start().await, LocalMidtrans::start().await);
    let backdoor = Backdoor::of(&app).await;
    let payments = |midtrans: &LocalMidtrans| {
        let mut config = wablast_workflows::payments::midtrans::MidtransConfig::new(
            SERVER_KEY.to_owned().into(),
            false,
        );
        config.snap_url = midtrans.base_url.parse().unwrap();
        config.api_url = midtrans.base_url.parse().unwrap();
        Payments::new(
            Commands::new(&backdoor.log),
            backdoor.log.clone(),
            backdoor.db.clone(),
            Some(Midtrans::new(config).unwrap()),
            Arc::new(wablast_workflows::clock::SystemClock),
            TopUpPricing::default(),
        )
    };
    let (first, second) = (payments(&a), payments(&b));
    let buyer = wablast_workflows::payments::Buyer {
        name: "Toko Budi".into(),
        email: budi.email.clone(),
    };
    let (checkout, _) = first
        .checkout(
            tenant,
            &buyer,
            wablast_workflows::payments::Purchase::TopUp(wablast_domain::types::Points::new(300)),
            &CommandMetadata::new(Actor::System),
        )
        .await
        .unwrap();
    a.set_status(&checkout.order_id.to_string(), "pending");
    let path = format!("/api/v1/billing/orders/{}", checkout.order_id);
    wablast_tests::wait_for(
        "the order projected",
        std::time::Duration::from_secs(10),
        async || (budi.get(&path).await.0 == StatusCode::OK).then_some(()),
    )
    .await;
    let options = RecheckOptions {
        every: std::time::Duration::from_millis(100),
        after: TimeDelta::zero(),
        ..RecheckOptions::default()
    };
    let (stop_first, stop_second) = (
        tokio_util::sync::CancellationToken::new(),
        tokio_util::sync::CancellationToken::new(),
    );

    // Act: both run for a while.
    let running_first = tokio::spawn(first.run(options, stop_first.clone()));
    let running_second = tokio::spawn(second.run(options, stop_second.clone()));
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    // Assert: exactly one looked orders up.
    let looked = (a.requests().1, b.requests().1);
    assert!(
        (looked.0 > 0) != (looked.1 > 0),
        "status lookups at A and B: {looked:?}"
    );
    let (leader, standby, standby_midtrans) = if looked.0 > 0 {
        (stop_first.clone(), stop_second.clone(), &b)
    } else {
        (stop_second.clone(), stop_first.clone(), &a)
    };
    leader.cancel();
    wablast_tests::wait_for(
        "the standby to take over",
        std::time::Duration::from_secs(5),
        async || (standby_midtrans.requests().1 > 0).then_some(()),
    )
    .await;
    standby.cancel();
    running_first.await.unwrap();
    running_second.await.unwrap();
}
