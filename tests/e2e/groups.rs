//! Groups: a ready session lists its WhatsApp groups and their
//! participants through the engine running it, and a group's participants
//! become a contact list (those whose number WhatsApp hides are reported).

use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::app::{TestApp, code};
use crate::campaigns::Backdoor;
use crate::sending::{engine, funded, linked, verified};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_are_checked_through_a_session_once_and_then_answered_from_the_cache() {
    let app = TestApp::spawn().await;
    let (stop, engine) = engine(&app, "engine-a", |c| {
        c.simulator.unregistered_rate = 0.5;
        c.number_check_every = std::time::Duration::from_millis(50);
    });
    let budi = funded(&app, 1000).await;
    let session = linked(&budi, "+6281299992002", 100).await;
    let path = format!("/api/v1/sessions/{session}/check-numbers");
    let numbers: Vec<String> = (0..8).map(|i| format!("0812-7777-{i:04}")).collect();
    let mut asked = numbers.clone();
    asked.push("bukan nomor".to_owned());
    asked.push(numbers[0].replace('-', " "));

    let (status, first) = budi.post(&path, json!({"numbers": asked})).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let results = first["results"].as_array().unwrap();
    assert_eq!(results.len(), 10);
    for (i, r) in results[..8].iter().enumerate() {
        assert_eq!(r["status"], "checked", "{r}");
        assert_eq!(r["phone"], format!("+628127777{i:04}"), "{r}");
        assert_eq!(r["cached"], false);
        let on = r["on_whatsapp"].as_bool().unwrap();
        assert_eq!(r["chat_id"].is_string(), on, "{r}");
    }
    let on: Vec<bool> = results[..8]
        .iter()
        .map(|r| r["on_whatsapp"].as_bool().unwrap())
        .collect();
    assert!(on.contains(&true) && on.contains(&false), "a mix: {on:?}");
    assert_eq!(results[8]["status"], "invalid");
    assert!(results[8]["error"].is_string());
    assert_eq!(
        results[9]["phone"], results[0]["phone"],
        "the same number once"
    );

    // Asked again: the cache answers, the same.
    let (status, again) = budi.post(&path, json!({"numbers": numbers})).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    for (i, r) in again["results"].as_array().unwrap().iter().enumerate() {
        assert_eq!(r["status"], "cached", "{r}");
        assert_eq!(r["cached"], true);
        assert_eq!(r["on_whatsapp"], results[i]["on_whatsapp"]);
    }

    // Refusals.
    let (status, _) = budi.post(&path, json!({"numbers": []})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let many: Vec<String> = (0..101).map(|i| format!("0812-8888-{i:04}")).collect();
    let (status, _) = budi.post(&path, json!({"numbers": many})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let siti = funded(&app, 100).await;
    let (status, _) = siti
        .post(&path, json!({"numbers": ["0812-7777-0000"]}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    stop.cancel();
    engine.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_a_group_the_number_is_in_goes_out_and_one_it_is_not_in_fails() {
    let app = TestApp::spawn().await;
    let (stop, engine) = engine(&app, "engine-a", |_| {});
    let budi = funded(&app, 1000).await;
    let session = linked(&budi, "+6281299992003", 100).await;
    let (_, groups) = budi
        .get(&format!("/api/v1/sessions/{session}/groups"))
        .await;
    let group = groups["items"][0]["id"].as_str().unwrap().to_owned();

    let (status, queued) = budi
        .post(
            "/api/v1/messages",
            json!({"session_id": session, "to": format!(" {group}"), "text": "Halo semua, promo hari ini"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(queued["to"], group.as_str());
    let id = queued["id"].as_str().unwrap().to_owned();
    let (status, elsewhere) = budi
        .post(
            "/api/v1/messages",
            json!({"session_id": session, "to": "120363000000000000@g.us", "text": "Halo"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{elsewhere}");
    let elsewhere = elsewhere["id"].as_str().unwrap().to_owned();

    let message = |id: String| {
        let budi = &budi;
        async move {
            wablast_tests::wait_for(
                "the message's outcome",
                std::time::Duration::from_secs(30),
                async || {
                    let (_, m) = budi.get(&format!("/api/v1/messages/{id}")).await;
                    matches!(
                        m["status"].as_str(),
                        Some("sent" | "delivered" | "read" | "failed")
                    )
                    .then_some(m)
                },
            )
            .await
        }
    };
    let sent = message(id.clone()).await;
    assert_ne!(sent["status"], "failed", "{sent}");
    assert_eq!(sent["peer"], group.as_str(), "{sent}");
    let failed = message(elsewhere).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("not in the group")),
        "{failed}"
    );

    // The group is a conversation of its own in the history and the inbox.
    let (_, history) = budi.get(&format!("/api/v1/messages?peer={group}")).await;
    assert_eq!(history["items"].as_array().unwrap().len(), 1, "{history}");
    assert_eq!(history["items"][0]["id"], id.as_str());
    let (_, chats) = budi.get(&format!("/api/v1/chats?peer={group}")).await;
    assert_eq!(chats["items"].as_array().unwrap().len(), 1, "{chats}");
    assert_eq!(chats["items"][0]["last_message_id"], id.as_str());

    // A malformed group id is refused at once; another tenant sees nothing.
    let (status, error) = budi
        .post(
            "/api/v1/messages",
            json!({"session_id": session, "to": "1203 6300@g.us", "text": "Halo"}),
        )
        .await;
    assert_eq!(
        (status, code(&error)),
        (StatusCode::BAD_REQUEST, "validation_failed"),
        "{error}"
    );
    let siti = funded(&app, 100).await;
    let (status, _) = siti.get(&format!("/api/v1/messages/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    verified(&Backdoor::of(&app).await).await;
    stop.cancel();
    engine.await.unwrap().unwrap();
}
