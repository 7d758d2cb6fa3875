//! A tenant's first day, through HTTP only, against `wablast all` (API,
//! projector, session engine with the simulator): register, log in, mint an
//! API key, link a WhatsApp number by scanning its QR, import contacts from
//! an XLSX and a CSV, get points from the admin, create and start a
//! campaign, meet the business rules on the way, export.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use rust_xlsxwriter::Workbook;
use serde_json::{Value, json};

use crate::app::{Auth, Client, TestApp, code};
use crate::contacts::form;

/// Polls the session until `done` holds for it.
async fn session_until(
    client: &Client,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let (status, session) = client.get(&format!("/api/v1/sessions/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{session}");
        if done(&session) {
            return session;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the session never became {what}: {session}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn import(client: &Client, filename: &str, content: &[u8], name: &str) -> Value {
    let (content_type, body) = form(&[
        ("file", Some(filename), content),
        ("name", None, name.as_bytes()),
    ]);
    let (status, report) = client
        .send(
            client
                .request(reqwest::Method::POST, "/api/v1/contact-lists/import")
                .header("content-type", content_type)
                .body(body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{report}");
    report
}

fn customers_xlsx() -> Vec<u8> {
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    for (col, header) in ["phone", "name", "consent", "kota"].iter().enumerate() {
        sheet.write_string(0, col as u16, *header).unwrap();
    }
    let rows: [(&str, &str, &str, &str); 10] = [
        ("0812-1111-0001", "Ani", "ya", "Bandung"),
        ("+62 812 1111 0002", "Budi", "yes", "Jakarta"),
        ("62812 1111 0003", "Citra", "1", "Surabaya"),
        ("812 1111 0004", "Dedi", "setuju", "Medan"),
        ("(0812) 11110005", "Eka", "true", "Bogor"),
        ("0812 1111 0006", "Fajar", "y", "Depok"),
        ("0812-1111-0007", "Gita", "ya", "Bekasi"),
        ("08121111 0008", "Hadi", "ya", "Solo"),
        ("0812-1111-0001", "Ani lagi", "ya", "Bandung"), // duplicate of row 1
        ("0812-1111-0009", "Indah", "tidak", "Malang"),  // no consent
    ];
    for (i, (phone, name, consent, city)) in rows.iter().enumerate() {
        let row = i as u32 + 1;
        sheet.write_string(row, 0, *phone).unwrap();
        sheet.write_string(row, 1, *name).unwrap();
        sheet.write_string(row, 2, *consent).unwrap();
        sheet.write_string(row, 3, *city).unwrap();
    }
    workbook.save_to_buffer().unwrap()
}

const RESELLERS_CSV: &str = "phone,name,consent\n\
0813-2222-0001,Joko,ya\n\
+62 813 2222 0002,Kiki,yes\n\
0813 2222 0003,Lina,ya\n\
081322220004,Maya,1\n\
0813-2222-0001,Joko lagi,ya\n\
12345,Salah,ya\n\
0813-2222-0005,Nina,\n";

#[tokio::test]
async fn a_tenants_first_day_from_registration_to_a_started_campaign() {
    let app = TestApp::spawn_with_engine().await;
    let admin = app.admin().await;
    // Derived from the admin's client, every client below shares its memory
    // of the last write's position: reads see the admin's grants too.
    let anonymous = admin.with_auth(Auth::None);

    // Register, log in, mint an API key: the integration works with the key.
    let (status, registered) = anonymous
        .post(
            "/api/v1/auth/register",
            json!({"email": "owner@tokobudi.test", "password": "rahasia-budi", "organization": "Toko Budi"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let tenant_id = registered["tenant"]["id"].as_str().unwrap().to_owned();
    let (status, login) = anonymous
        .post(
            "/api/v1/auth/login",
            json!({"email": "owner@tokobudi.test", "password": "rahasia-budi"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let owner = anonymous.with_auth(Auth::Bearer(
        login["access_token"].as_str().unwrap().to_owned(),
    ));
    let (status, key) = owner
        .post("/api/v1/api-keys", json!({"name": "toko integration"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let budi = owner.with_auth(Auth::ApiKey(key["key"].as_str().unwrap().to_owned()));

    // Link a number: start, scan the QR the engine shows, ready.
    let (status, session) = budi
        .post(
            "/api/v1/sessions",
            json!({"name": "CS Toko", "driver": "simulator"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let session_id = session["id"].as_str().unwrap().to_owned();
    let (status, body) = budi
        .post(&format!("/api/v1/sessions/{session_id}/start"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    session_until(&budi, &session_id, "qr", |s| s["status"] == "qr").await;
    let (status, qr) = budi
        .send(
            budi.request(
                reqwest::Method::GET,
                &format!("/api/v1/sessions/{session_id}/qr"),
            )
            .header("accept", "application/json"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{qr}");
    let png = budi
        .request(
            reqwest::Method::GET,
            &format!("/api/v1/sessions/{session_id}/qr"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(png.headers()["content-type"], "image/png");
    let image = image::load_from_memory(&png.bytes().await.unwrap())
        .unwrap()
        .to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the PNG");
    let (_, decoded) = grids[0].decode().unwrap();
    assert_eq!(
        decoded,
        qr["qr"].as_str().unwrap(),
        "the PNG encodes the engine's QR"
    );

    let (status, body) = budi
        .post(
            &format!("/api/v1/sessions/{session_id}/simulator/scan"),
            json!({"phone_number": "+6281299990000"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let ready = session_until(&budi, &session_id, "ready", |s| s["status"] == "ready").await;
    assert_eq!(ready["phone_number"], "+6281299990000");
    let (status, body) = budi.get(&format!("/api/v1/sessions/{session_id}/qr")).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "invalid_state"),
        "linked: no QR"
    );

    // Contacts with messy Indonesian numbers, duplicates and refusals.
    let customers = import(&budi, "pelanggan.xlsx", &customers_xlsx(), "Pelanggan").await;
    assert_eq!(
        (
            customers["total_rows"].as_u64(),
            customers["accepted"].as_u64()
        ),
        (Some(10), Some(8)),
        "{customers}"
    );
    let reasons: Vec<(u64, &str)> = customers["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["row"].as_u64().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(reasons, [(9, "duplicate"), (10, "no_consent")]);
    let resellers = import(&budi, "reseller.csv", RESELLERS_CSV.as_bytes(), "Reseller").await;
    assert_eq!(
        (
            resellers["total_rows"].as_u64(),
            resellers["accepted"].as_u64()
        ),
        (Some(7), Some(4)),
        "{resellers}"
    );
    let reasons: Vec<(u64, &str)> = resellers["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["row"].as_u64().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        reasons,
        [(5, "duplicate"), (6, "invalid_phone"), (7, "no_consent")]
    );

    // Campaigns on both lists.
    let create = |list: &Value, name: &str| {
        let body = json!({
            "name": name,
            "contact_list_id": list["id"],
            "template": "{Halo|Hai} {{name|Kak}}, promo spesial hari ini!",
            "sender_session_ids": [session_id],
        });
        let budi = budi.clone();
        async move { budi.post("/api/v1/campaigns", body).await }
    };
    let (status, big) = create(&customers, "Promo pelanggan").await;
    assert_eq!(status, StatusCode::CREATED, "{big}");
    assert_eq!(big["status"], "draft");
    let (status, small) = create(&resellers, "Promo reseller").await;
    assert_eq!(status, StatusCode::CREATED, "{small}");
    let start = |campaign: &Value| {
        let path = format!(
            "/api/v1/campaigns/{}/start",
            campaign["id"].as_str().unwrap()
        );
        let budi = budi.clone();
        async move { budi.post(&path, json!({})).await }
    };

    // No plan yet: nothing can be sent.
    let (status, body) = start(&small).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "plan_expired"),
        "{body}"
    );

    // The admin defines a plan (10 points, at most 6 recipients per
    // campaign) and grants it.
    let (status, plan) = admin
        .post(
            "/api/v1/admin/plans",
            json!({"name": "Coba", "period_days": 15, "points": 10, "max_sessions": 2,
                   "max_recipients_per_campaign": 6, "max_daily_limit": 100, "price": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{plan}");
    let (status, body) = admin
        .post(
            &format!("/api/v1/admin/tenants/{tenant_id}/grant"),
            json!({"plan_id": plan["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // 8 recipients × 2 points = 16 > 10.
    let (status, body) = start(&big).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "insufficient_points"),
        "{body}"
    );
    let (status, body) = admin
        .post(
            &format!("/api/v1/admin/tenants/{tenant_id}/grant"),
            json!({"points": 100}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Enough points now, but 8 recipients are over the plan's 6.
    let (status, body) = start(&big).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "recipient_cap_exceeded"),
        "{body}"
    );

    // 4 recipients: started, 8 points reserved.
    let (status, started) = start(&small).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let (_, wallet) = budi.get("/api/v1/wallet").await;
    assert_eq!(
        (
            wallet["balance"].as_i64(),
            wallet["reserved"].as_i64(),
            wallet["available"].as_i64()
        ),
        (Some(110), Some(8), Some(102)),
        "{wallet}"
    );
    let (_, campaign) = budi
        .get(&format!(
            "/api/v1/campaigns/{}",
            small["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(campaign["status"], "running");
    assert_eq!(campaign["points_reserved"], 8);

    // The export is CSV with the documented header.
    let export = budi
        .request(
            reqwest::Method::GET,
            &format!("/api/v1/campaigns/{}/export", small["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), StatusCode::OK);
    assert!(
        export.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = export.text().await.unwrap();
    // The documented columns first (more may follow: the text sent).
    assert!(
        text.lines()
            .next()
            .is_some_and(|h| h.starts_with("phone,name,status,error,sent_at,delivered_at,read_at")),
        "{text}"
    );

    // Another tenant sees none of it.
    let siti = app.tenant("Toko Siti").await;
    for path in [
        format!("/api/v1/sessions/{session_id}"),
        format!("/api/v1/campaigns/{}", small["id"].as_str().unwrap()),
        format!(
            "/api/v1/contact-lists/{}",
            customers["id"].as_str().unwrap()
        ),
    ] {
        let (status, body) = siti.get(&path).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
    }

    // Stopping the session stops the simulated phone; its QR is gone.
    let (status, _) = budi
        .post(&format!("/api/v1/sessions/{session_id}/stop"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    session_until(&budi, &session_id, "idle", |s| s["status"] == "idle").await;
}
