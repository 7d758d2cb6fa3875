//! Buying a plan in the console, in Debian's Chromium
//! (`console/e2e/billing.mjs`), against the whole system and a local
//! Midtrans whose payment page pays: the owner buys a plan, pays, comes
//! back to an active plan and a paid order, and downloads its receipt.

use reqwest::StatusCode;
use serde_json::json;
use wablast_tests::midtrans::{LocalMidtrans, SERVER_KEY};

use crate::console::{Browser, plan};

/// The owner pays a plan through Midtrans in the browser: the wallet shows
/// the plan and the paid order, whose receipt downloads as a PDF. Any
/// console error fails it; screenshots stay in
/// `console/test-results/billing/`.
#[tokio::test]
async fn an_owner_buys_a_plan_in_the_browser_and_downloads_its_receipt() {
    // Arrange: payments through a local Midtrans; a plan on sale.
    let midtrans = LocalMidtrans::start().await;
    let port = wablast_tests::free_port();
    let base = midtrans.base_url.clone();
    let Some((browser, app)) = Browser::with_app(move |settings| {
        settings.listen = format!("127.0.0.1:{port}").parse().unwrap();
        settings.public_url = Some(format!("http://127.0.0.1:{port}"));
        settings.midtrans_server_key = Some(SERVER_KEY.into());
        settings.midtrans_snap_url = Some(base.clone());
        settings.midtrans_api_url = Some(base);
    })
    .await
    else {
        return;
    };
    let admin = app.admin().await;
    let owner = app.tenant("Toko Bayar").await;
    let plan = plan(&admin).await;

    // Act
    browser
        .run(
            &app,
            "billing.mjs",
            &[
                ("WABLAST_CONSOLE_EMAIL", &owner.email),
                ("WABLAST_CONSOLE_PASSWORD", "password-of-{name}"),
            ],
            async |step, _data| panic!("unknown step {step}"),
        )
        .await;

    // Assert: the API holds what the browser showed.
    let (status, orders) = owner.get("/api/v1/billing/orders").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(orders["items"].as_array().unwrap().len(), 1, "{orders}");
    assert_eq!(orders["items"][0]["status"], "paid");
    assert_eq!(orders["items"][0]["plan"]["id"], json!(plan));
    let (_, wallet) = owner.get("/api/v1/wallet").await;
    assert_eq!(wallet["plan"]["id"], json!(plan), "{wallet}");
    assert_eq!(wallet["balance"], 1000);
}
