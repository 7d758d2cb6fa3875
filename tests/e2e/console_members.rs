//! The console's Team page and accept-invite flow, in Debian's Chromium
//! (`console/e2e/members.mjs`): an owner invites, the invitee joins from
//! the link, sees the team as a member, the last owner is refused stepping
//! down, and the member is removed.

use reqwest::StatusCode;
use serde_json::json;

use crate::app::Auth;
use crate::console::Browser;

/// The whole team journey in a browser; the API then holds what it
/// showed: one member left, the removed one refused at sign-in.
#[tokio::test]
async fn an_owner_invites_a_member_who_joins_and_is_removed_in_the_browser() {
    // Arrange
    let Some((browser, app)) = Browser::with_app(|_| {}).await else {
        return;
    };
    let owner = app.tenant("Toko Tim").await;
    let invitee = format!("sari-{}@example.test", uuid::Uuid::now_v7().simple());

    // Act
    browser
        .run(
            &app,
            "members.mjs",
            &[
                ("WABLAST_CONSOLE_EMAIL", &owner.email),
                ("WABLAST_CONSOLE_PASSWORD", "password-of-{name}"),
                ("WABLAST_CONSOLE_INVITEE", &invitee),
            ],
            async |step, _data| panic!("unknown step {step}"),
        )
        .await;

    // Assert
    let (status, members) = owner.get("/api/v1/members").await;
    assert_eq!(status, StatusCode::OK);
    let emails: Vec<&str> = members["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, [owner.email.as_str()], "{members}");
    let (status, _) = owner
        .with_auth(Auth::None)
        .post(
            "/api/v1/auth/login",
            json!({"email": invitee, "password": "kata-sandi-sari"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
