//! Read-your-writes without the client's help: a read right after a write
//! sees it although the client never sends `X-Wablast-Position` back, and
//! a read by id of something just written by another credential is not
//! answered 404 while the projections catch up.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::app::{Auth, Client, TestApp};
use crate::campaigns::{Backdoor, define_plan, grant_plan};

/// A read as a client that ignores positions would make it.
async fn plain_get(client: &Client, path: &str) -> (StatusCode, Value) {
    client
        .send(client.request(reqwest::Method::GET, path))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_right_after_writes_see_them_without_the_position_header() {
    let app = TestApp::spawn().await;
    let back = Backdoor::of(&app).await;
    let admin = app.admin().await;
    let budi = app.tenant("Toko Budi").await;
    let plan = define_plan(&admin, 1000, 200).await;
    grant_plan(&admin, &budi, &plan).await;
    let list = back.contact_list(&budi.tenant_id, 2, &["kota"]).await;
    let session = back.session(&budi.tenant_id).await;

    for round in 0..25 {
        // A campaign: created, then read at once, by id, in the list and
        // with its messages.
        let (status, created) = budi
            .post(
                "/api/v1/campaigns",
                json!({"name": format!("Promo {round}"), "contact_list_id": list,
                       "template": "Halo {{name}}", "sender_session_ids": [session]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["id"].as_str().unwrap();
        let (status, shown) = plain_get(&budi, &format!("/api/v1/campaigns/{id}")).await;
        assert_eq!(status, StatusCode::OK, "round {round}: {shown}");
        assert_eq!(shown["name"], format!("Promo {round}"));
        let (status, page) = plain_get(&budi, &format!("/api/v1/campaigns/{id}/messages")).await;
        assert_eq!(status, StatusCode::OK, "round {round}: {page}");
        let (_, listed) = plain_get(&budi, "/api/v1/campaigns?limit=500").await;
        assert_eq!(
            listed["items"].as_array().unwrap().len(),
            round + 1,
            "round {round}"
        );

        // Paused by hand right after a start: the read shows it paused.
        if round % 5 == 0 {
            let (status, body) = budi
                .post(&format!("/api/v1/campaigns/{id}/start"), json!({}))
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
            let (status, body) = budi
                .post(&format!("/api/v1/campaigns/{id}/pause"), json!({}))
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
            let (_, shown) = plain_get(&budi, &format!("/api/v1/campaigns/{id}")).await;
            assert_eq!(shown["status"], "paused", "round {round}: {shown}");
        }
    }

    // A session: created, read, renamed, read, deleted.
    for round in 0..5 {
        let (status, created) = budi
            .post(
                "/api/v1/sessions",
                json!({"name": format!("CS {round}"), "driver": "simulator"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["id"].as_str().unwrap();
        let (status, shown) = plain_get(&budi, &format!("/api/v1/sessions/{id}")).await;
        assert_eq!(status, StatusCode::OK, "round {round}: {shown}");
        let (status, _) = budi
            .patch(
                &format!("/api/v1/sessions/{id}"),
                json!({"name": format!("Toko {round}")}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (_, shown) = plain_get(&budi, &format!("/api/v1/sessions/{id}")).await;
        assert_eq!(shown["name"], format!("Toko {round}"), "{shown}");
        let (status, _) = budi.delete(&format!("/api/v1/sessions/{id}")).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }

    // A contact list (a plain table: there at once).
    let csv = "phone,consent\n0812 3456 7890,ya\n";
    let (status, report) = crate::contacts::import(&budi, "kontak.csv", csv.as_bytes(), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{report}");
    let id = report["id"].as_str().unwrap();
    let (status, _) = plain_get(&budi, &format!("/api/v1/contact-lists/{id}")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_by_id_of_what_another_credential_just_wrote_is_not_a_404() {
    let app = TestApp::spawn().await;
    let back = Backdoor::of(&app).await;
    let budi = app.tenant("Toko Budi").await;
    let (status, key) = budi
        .post("/api/v1/api-keys", json!({"name": "toko online"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let integration = budi.with_auth(Auth::ApiKey(key["key"].as_str().unwrap().to_owned()));
    let list = back.contact_list(&budi.tenant_id, 2, &["kota"]).await;
    let session = back.session(&budi.tenant_id).await;

    for round in 0..25 {
        // The user writes; the integration (its own credential, nothing
        // remembered for it) reads at once.
        let (status, created) = budi
            .post(
                "/api/v1/campaigns",
                json!({"name": format!("Promo {round}"), "contact_list_id": list,
                       "template": "Halo {{name}}", "sender_session_ids": [session]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["id"].as_str().unwrap();
        let (status, shown) = plain_get(&integration, &format!("/api/v1/campaigns/{id}")).await;
        assert_eq!(status, StatusCode::OK, "round {round}: {shown}");
        let (status, _) = plain_get(&integration, &format!("/api/v1/campaigns/{id}/export")).await;
        assert_eq!(status, StatusCode::OK, "round {round}");
    }

    // What was never written is still not found.
    let nobody = uuid::Uuid::now_v7();
    for path in [
        format!("/api/v1/campaigns/{nobody}"),
        format!("/api/v1/campaigns/{nobody}/messages"),
        format!("/api/v1/sessions/{nobody}"),
    ] {
        let (status, body) = plain_get(&integration, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
}
