//! The fleet on the admin page, in Debian's Chromium
//! (`console/e2e/fleet.mjs`), against the whole system with two engines:
//! the admin sees both engines and what they run, moves a number to the
//! other engine pinned there, unpins it, drains that engine (the number
//! comes back) and undrains it, and sets the number's trust level from
//! the list of every tenant's numbers.

use reqwest::StatusCode;

use crate::app::{ADMIN_EMAIL, ADMIN_PASSWORD};
use crate::console::{Browser, ready_number};
use crate::fleet::{fleet_of, lease_holders};
use crate::sending::{engine, funded};

/// Any console error fails it; screenshots stay in
/// `console/test-results/fleet/`.
#[tokio::test]
async fn the_admin_steers_the_fleet_and_sets_a_trust_level_in_the_browser() {
    // Arrange: engine-a (in `wablast all`) and engine-b; a ready number.
    let Some((browser, app)) =
        Browser::with_app(|settings| settings.engine_id = Some("engine-a".to_owned())).await
    else {
        return;
    };
    let (stop_b, engine_b) = engine(&app, "engine-b", |_| {});
    let admin = app.admin().await;
    fleet_of(&admin, 2).await;
    let owner = funded(&app, 100).await;
    let session = ready_number(&owner, "CS Armada", "+6281299990700").await;
    let from = lease_holders(&app)
        .await
        .get(&session)
        .cloned()
        .expect("the number runs on an engine");
    let to = if from == "engine-a" {
        "engine-b"
    } else {
        "engine-a"
    };

    // Act
    browser
        .run(
            &app,
            "fleet.mjs",
            &[
                ("WABLAST_CONSOLE_ADMIN_EMAIL", ADMIN_EMAIL),
                ("WABLAST_CONSOLE_ADMIN_PASSWORD", ADMIN_PASSWORD),
                ("WABLAST_FLEET_SESSION", &session),
                ("WABLAST_FLEET_NAME", "CS Armada"),
                ("WABLAST_FLEET_FROM", &from),
                ("WABLAST_FLEET_TO", to),
            ],
            async |step, _data| panic!("unknown step {step}"),
        )
        .await;

    // Assert: the API holds what the browser showed. Drained and
    // undrained, `to` gave the number back; nothing pins it.
    assert_eq!(lease_holders(&app).await.get(&session), Some(&from));
    let (status, engines) = admin.get("/api/v1/admin/engines").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        engines["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["drained"] == false),
        "{engines}"
    );
    let (_, sessions) = admin
        .get(&format!("/api/v1/admin/engines/{from}/sessions"))
        .await;
    let listed = sessions["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == session.as_str())
        .cloned()
        .expect("the number listed on the engine running it");
    assert_eq!(listed["pinned_to"], serde_json::Value::Null, "{sessions}");
    let (_, number) = owner.get(&format!("/api/v1/sessions/{session}")).await;
    assert_eq!(number["trust_level"], 4, "{number}");
    stop_b.cancel();
    engine_b.await.unwrap().unwrap();
}
