//! Groups: a ready session lists its WhatsApp groups and their
//! participants through the engine running it, and a group's participants
//! become a contact list (those whose number WhatsApp hides are reported).

use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::app::{TestApp, code};
use crate::sending::{engine, funded, linked};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_participants_become_a_contact_list_and_hidden_numbers_are_reported() {
    let app = TestApp::spawn().await;
    let (stop, engine) = engine(&app, "engine-a", |_| {});
    let budi = funded(&app, 1000).await;
    let session = linked(&budi, "+6281299992001", 100).await;

    let (status, groups) = budi
        .get(&format!("/api/v1/sessions/{session}/groups"))
        .await;
    assert_eq!(status, StatusCode::OK, "{groups}");
    let groups = groups["items"].as_array().unwrap().clone();
    assert_eq!(groups.len(), 3, "{groups:?}");
    let group = groups[1]["id"].as_str().unwrap().to_owned();
    assert_eq!(groups[1]["name"], "Reseller");
    assert_eq!(groups[1]["participants"], 10);

    let (status, members) = budi
        .get(&format!(
            "/api/v1/sessions/{session}/groups/{group}/members"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{members}");
    let members = members["items"].as_array().unwrap().clone();
    assert_eq!(members.len(), 10);
    assert_eq!(members[0]["phone"], "+6281310000000");
    assert_eq!(members[0]["admin"], true);
    let hidden: Vec<usize> = (0..members.len())
        .filter(|&i| members[i]["phone"].is_null())
        .collect();
    assert_eq!(hidden, [3, 7], "{members:?}");

    let (status, list) = budi
        .post(
            "/api/v1/contact-lists/group-import",
            json!({"session_id": session, "group_id": group, "name": "Grup Reseller"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{list}");
    assert_eq!(list["total_rows"], 10, "{list}");
    assert_eq!(list["accepted"], 8, "{list}");
    let rejected = list["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2, "{list}");
    assert_eq!(rejected[0]["row"], 4);
    assert_eq!(rejected[0]["reason"], "number_hidden");
    assert_eq!(rejected[1]["row"], 8);
    let id = list["id"].as_str().unwrap();
    let (_, view) = budi.get(&format!("/api/v1/contact-lists/{id}")).await;
    assert_eq!(view["source_format"], "group", "{view}");
    assert_eq!(view["accepted"], 8, "{view}");
    let (_, contacts) = budi
        .get(&format!("/api/v1/contact-lists/{id}/contacts"))
        .await;
    assert_eq!(
        contacts["items"][0]["phone"], "+6281310000000",
        "{contacts}"
    );

    // Refusals.
    let (status, error) = budi
        .get(&format!(
            "/api/v1/sessions/{session}/groups/not-a-group/members"
        ))
        .await;
    assert_eq!(
        (status, code(&error)),
        (StatusCode::BAD_REQUEST, "validation_failed")
    );
    let (status, error) = budi
        .post(
            "/api/v1/contact-lists/group-import",
            json!({"session_id": session, "group_id": "404@g.us", "name": "Tidak ada"}),
        )
        .await;
    assert_eq!(
        (status, code(&error)),
        (StatusCode::BAD_GATEWAY, "driver_failed"),
        "{error}"
    );
    let siti = funded(&app, 100).await;
    let (status, _) = siti
        .get(&format!("/api/v1/sessions/{session}/groups"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = budi
        .get(&format!("/api/v1/sessions/{}/groups", Uuid::now_v7()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, idle) = budi
        .post(
            "/api/v1/sessions",
            json!({"name": "Belum", "driver": "simulator"}),
        )
        .await;
    let (status, error) = budi
        .get(&format!(
            "/api/v1/sessions/{}/groups",
            idle["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        (status, code(&error)),
        (StatusCode::CONFLICT, "invalid_state"),
        "{error}"
    );
    stop.cancel();
    engine.await.unwrap().unwrap();
}
