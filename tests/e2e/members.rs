//! A tenant's members: an owner invites (a one-time token), the invitee
//! joins with it, owners change roles and remove members, members may not
//! manage the team or buy, the last owner stays, and a removed member's
//! tokens and API keys stop working at once.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::app::{Auth, Client, TestApp, code};

/// Invites `email` with `role` as `owner`; the invitation's answer.
async fn invite(owner: &Client, email: &str, role: &str) -> Value {
    let (status, body) = owner
        .post(
            "/api/v1/members/invite",
            json!({"email": email, "role": role}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// Joins with `token`; a client acting as the new member.
async fn join(owner: &Client, email: &str, token: &str, password: &str) -> Client {
    let anonymous = owner.with_auth(Auth::None);
    let (status, body) = anonymous
        .post(
            "/api/v1/members/accept",
            json!({"token": token, "password": password, "name": "Sari"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["user"]["email"], email);
    assert_eq!(body["tenant"]["id"], owner.tenant_id.as_str());
    Client {
        auth: Auth::Bearer(body["access_token"].as_str().unwrap().to_owned()),
        email: email.to_owned(),
        position: Default::default(),
        ..owner.clone()
    }
}

fn email(name: &str) -> String {
    format!("{name}-{}@example.test", uuid::Uuid::now_v7().simple())
}

async fn me(client: &Client) -> (StatusCode, Value) {
    client.get("/api/v1/me").await
}

async fn members(client: &Client) -> Vec<Value> {
    let (status, body) = client.get("/api/v1/members").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().unwrap().clone()
}

/// The owner invites Sari as a member; she joins with the token once; she
/// sees the team but may not invite, remove, create API keys or buy; the
/// token does not join twice and a wrong one joins nothing.
#[tokio::test]
async fn an_invited_member_joins_once_and_may_not_manage_the_team() {
    // Arrange
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let sari_email = email("sari");

    // Act
    let invitation = invite(&budi, &sari_email, "member").await;
    let token = invitation["token"].as_str().unwrap().to_owned();
    let (_, pending) = budi.get("/api/v1/members/invitations").await;
    let sari = join(&budi, &sari_email, &token, "sari-password").await;

    // Assert
    assert_eq!(invitation["role"], "member");
    assert!(
        invitation["accept_path"]
            .as_str()
            .unwrap()
            .ends_with(&token)
    );
    assert_eq!(
        pending["items"][0]["email"],
        sari_email.as_str(),
        "{pending}"
    );
    assert!(pending["items"][0].get("token").is_none());
    let (status, me_body) = me(&sari).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me_body["user"]["role"], "member");
    let team = members(&budi).await;
    let roles: Vec<(&str, &str)> = team
        .iter()
        .map(|m| (m["email"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles,
        [
            (budi.email.as_str(), "owner"),
            (sari_email.as_str(), "member")
        ]
    );
    assert_eq!(members(&sari).await.len(), 2, "a member sees the team");
    let (_, pending) = budi.get("/api/v1/members/invitations").await;
    assert_eq!(pending["items"], json!([]));

    // A member manages nothing of the team, no API key, no purchase.
    let budi_id = team[0]["user_id"].as_str().unwrap().to_owned();
    for (what, (status, body)) in [
        (
            "invite",
            sari.post(
                "/api/v1/members/invite",
                json!({"email": email("x"), "role": "member"}),
            )
            .await,
        ),
        (
            "remove",
            sari.delete(&format!("/api/v1/members/{budi_id}")).await,
        ),
        (
            "promote",
            sari.patch(
                &format!("/api/v1/members/{budi_id}"),
                json!({"role": "member"}),
            )
            .await,
        ),
        (
            "api key",
            sari.post("/api/v1/api-keys", json!({"name": "mine"})).await,
        ),
        (
            "checkout",
            sari.post("/api/v1/billing/checkout", json!({"topup_points": 100}))
                .await,
        ),
    ] {
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{what}: {body}"
        );
    }
    // A member uses what the tenant owns.
    let (status, _) = sari.get("/api/v1/sessions").await;
    assert_eq!(status, StatusCode::OK);

    // The token joins once; a wrong one joins nothing; bad input is 400.
    let anonymous = budi.with_auth(Auth::None);
    let (status, body) = anonymous
        .post(
            "/api/v1/members/accept",
            json!({"token": token, "password": "another-password"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "invalid_state"),
        "{body}"
    );
    let mut forged = token.clone();
    forged.replace_range(forged.len() - 4.., "0000");
    let (status, body) = anonymous
        .post(
            "/api/v1/members/accept",
            json!({"token": forged, "password": "another-password"}),
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = budi
        .post(
            "/api/v1/members/invite",
            json!({"email": "not an email", "role": "member"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "validation_failed"),
        "{body}"
    );
    let (status, body) = budi
        .post(
            "/api/v1/members/invite",
            json!({"email": email("y"), "role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = budi
        .post(
            "/api/v1/members/invite",
            json!({"email": sari_email, "role": "member"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "conflict"),
        "already a member: {body}"
    );
}

/// Promoted, a member manages the team with the token it already has;
/// the last owner is neither demoted nor removed (422 `last_owner`), one
/// of two may be.
#[tokio::test]
async fn roles_change_at_once_and_the_last_owner_stays() {
    // Arrange
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let sari_email = email("sari");
    let token = invite(&budi, &sari_email, "member").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let sari = join(&budi, &sari_email, &token, "sari-password").await;
    let team = members(&budi).await;
    let (budi_id, sari_id) = (
        team[0]["user_id"].as_str().unwrap().to_owned(),
        team[1]["user_id"].as_str().unwrap().to_owned(),
    );

    // Act: Budi, the only owner, may not step down or leave.
    let (demoted, demoted_body) = budi
        .patch(
            &format!("/api/v1/members/{budi_id}"),
            json!({"role": "member"}),
        )
        .await;
    let (removed, removed_body) = budi.delete(&format!("/api/v1/members/{budi_id}")).await;
    let (promoted, promoted_body) = budi
        .patch(
            &format!("/api/v1/members/{sari_id}"),
            json!({"role": "owner"}),
        )
        .await;

    // Assert
    assert_eq!(
        (demoted, code(&demoted_body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "last_owner"),
        "{demoted_body}"
    );
    assert_eq!(
        (removed, code(&removed_body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "last_owner"),
        "{removed_body}"
    );
    assert_eq!(promoted, StatusCode::OK, "{promoted_body}");
    assert_eq!(promoted_body["role"], "owner");
    // Sari's token (issued to a member) now acts as an owner.
    let (status, me_body) = me(&sari).await;
    assert_eq!(
        (status, &me_body["user"]["role"]),
        (StatusCode::OK, &json!("owner"))
    );
    let (status, body) = sari.post("/api/v1/api-keys", json!({"name": "shop"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // With two owners, Budi steps down; then Sari is the last one.
    let (status, body) = budi
        .patch(
            &format!("/api/v1/members/{budi_id}"),
            json!({"role": "member"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = budi
        .post(
            "/api/v1/members/invite",
            json!({"email": email("z"), "role": "member"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "Budi's owner token no longer manages the team: {body}"
    );
    let (status, body) = sari.delete(&format!("/api/v1/members/{sari_id}")).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "last_owner"),
        "{body}"
    );
    // A fresh sign-in carries the current role.
    let anonymous = budi.with_auth(Auth::None);
    let (status, login) = anonymous
        .post(
            "/api/v1/auth/login",
            json!({"email": budi.email, "password": "password-of-{name}"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let fresh = budi.with_auth(Auth::Bearer(login["access_token"].as_str().unwrap().into()));
    let (_, me_body) = me(&fresh).await;
    assert_eq!(me_body["user"]["role"], "member");
    // The operator sees the roles as they are now.
    let admin = app.admin().await;
    let (_, users) = admin
        .get(&format!("/api/v1/admin/users?tenant_id={}", budi.tenant_id))
        .await;
    let roles: Vec<(&str, &str)> = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["email"].as_str().unwrap(), u["role"].as_str().unwrap()))
        .collect();
    assert!(roles.contains(&(budi.email.as_str(), "member")), "{users}");
    assert!(roles.contains(&(sari_email.as_str(), "owner")), "{users}");
}

/// Removed, a member's access token, sign-in and the API key it created
/// are refused at once (401); invited again, it joins with a new
/// password, and its old token and key stay refused.
#[tokio::test]
async fn a_removed_members_tokens_and_api_keys_stop_working() {
    // Arrange
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let sari_email = email("sari");
    let token = invite(&budi, &sari_email, "owner").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let sari = join(&budi, &sari_email, &token, "sari-password").await;
    let (status, key) = sari
        .post("/api/v1/api-keys", json!({"name": "sari's"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let sari_key = sari.with_auth(Auth::ApiKey(key["key"].as_str().unwrap().into()));
    let (status, _) = sari_key.get("/api/v1/sessions").await;
    assert_eq!(status, StatusCode::OK);
    let sari_id = members(&budi).await[1]["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The token must be from an earlier second than the removal.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    // Act
    let (status, body) = budi.delete(&format!("/api/v1/members/{sari_id}")).await;

    // Assert
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for (who, client) in [("token", &sari), ("API key", &sari_key)] {
        let (status, body) = client.get("/api/v1/sessions").await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "unauthenticated"),
            "{who}: {body}"
        );
    }
    let anonymous = budi.with_auth(Auth::None);
    let (status, _) = anonymous
        .post(
            "/api/v1/auth/login",
            json!({"email": sari_email, "password": "sari-password"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let team = members(&budi).await;
    assert_eq!(team.len(), 1, "{team:?}");
    let (status, _) = budi.delete(&format!("/api/v1/members/{sari_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Invited again, she joins with a new password as the same account.
    let token = invite(&budi, &sari_email, "member").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let again = join(&budi, &sari_email, &token, "new-sari-password").await;
    let (status, me_body) = me(&again).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me_body["user"]["id"], sari_id.as_str());
    for (who, client) in [("old token", &sari), ("old API key", &sari_key)] {
        let (status, body) = client.get("/api/v1/sessions").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{who}: {body}");
    }
    let (status, _) = anonymous
        .post(
            "/api/v1/auth/login",
            json!({"email": sari_email, "password": "sari-password"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old password");
    let (status, _) = anonymous
        .post(
            "/api/v1/auth/login",
            json!({"email": sari_email, "password": "new-sari-password"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}
