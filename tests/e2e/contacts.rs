//! Contact lists: CSV and XLSX import with messy Indonesian numbers,
//! duplicates and consent; malformed files refused with nothing created;
//! lists made without a file (JSON rows), contacts added and removed;
//! reads, pagination, delete and tenant isolation; a campaign on a list
//! made without a file.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use rust_xlsxwriter::{Formula, Workbook};
use serde_json::{Value, json};

use crate::app::{Client, TestApp, code};
use crate::campaigns::Backdoor;
use crate::sending::{completed_once_each, engine, funded, linked, started};

const IMPORT: &str = "/api/v1/contact-lists/import";
const LISTS: &str = "/api/v1/contact-lists";

/// A `multipart/form-data` body: `(field, file name, content)`.
pub fn form(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = format!("wablast-{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::new();
    for (name, filename, content) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(filename) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Uploads `content` as `filename` with extra text fields.
pub async fn import(
    client: &Client,
    filename: &str,
    content: &[u8],
    fields: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut parts: Vec<(&str, Option<&str>, &[u8])> = vec![("file", Some(filename), content)];
    for (name, value) in fields {
        parts.push((name, None, value.as_bytes()));
    }
    let (content_type, body) = form(&parts);
    client
        .send(
            client
                .request(reqwest::Method::POST, IMPORT)
                .header("content-type", content_type)
                .body(body),
        )
        .await
}

/// `(row, reason)` of every rejection in a report.
fn reasons(report: &Value) -> Vec<(u64, &str)> {
    report["rejected"]
        .as_array()
        .expect("rejected array")
        .iter()
        .map(|r| (r["row"].as_u64().unwrap(), r["reason"].as_str().unwrap()))
        .collect()
}

async fn contacts_of(client: &Client, id: &str) -> Vec<Value> {
    let (status, page) = client
        .get(&format!("/api/v1/contact-lists/{id}/contacts?limit=500"))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().unwrap().clone()
}

async fn list_count(client: &Client) -> usize {
    let (status, lists) = client.get("/api/v1/contact-lists").await;
    assert_eq!(status, StatusCode::OK, "{lists}");
    lists["items"].as_array().unwrap().len()
}

async fn stored_contacts(app: &TestApp) -> i64 {
    let pool = sqlx::PgPool::connect(&app.settings.database_url)
        .await
        .expect("database reachable");
    let (count,): (i64,) = sqlx::query_as("select count(*) from contacts")
        .fetch_one(&pool)
        .await
        .unwrap();
    count
}

#[tokio::test]
async fn csv_with_messy_numbers_duplicates_and_refusals_gets_an_exact_report() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let long = "x".repeat(1001);
    let csv = format!(
        "phone,name,consent,kota\n\
         0812-3456-7890,Budi,ya,Bandung\n\
         +62 812 3456 7890,Budi lagi,yes,Bandung\n\
         62813 1111 2222,Siti,Setuju,Jakarta\n\
         812 2222 3333,Andi,1,Surabaya\n\
         (0814) 44445555,Dewi,tidak,Medan\n\
         '081555556666,Eko,y,Solo\n\
         021-5555-1234,Kantor,ya,Jakarta\n\
         12345,Junk,ya,\n\
         ,Tanpa Nomor,ya,\n\
         \n\
         0816 7777 8888,Fajar,,Bogor\n\
         \"=HYPERLINK(\"\"http://x\"\")\",Hack,ya,\n\
         0817 8888 9999,=1+1,ya,Depok\n\
         0818 1234 5678,Gita,mungkin,Bali\n\
         0819 1234 5678,Hana,TRUE,{long}\n\
         0812 3456 7890,Budi,ya,Bandung\n"
    );

    let (status, report) = import(
        &budi,
        "pelanggan.csv",
        csv.as_bytes(),
        &[("name", "Pelanggan")],
    )
    .await;

    assert_eq!(status, StatusCode::CREATED, "{report}");
    assert_eq!(report["name"], "Pelanggan");
    assert_eq!(report["columns"], json!(["kota"]));
    assert_eq!(report["total_rows"], 15);
    assert_eq!(report["accepted"], 4);
    assert_eq!(report["rejected_count"], 11);
    let expected: Vec<(u64, &str)> = vec![
        (2, "duplicate"),
        (5, "no_consent"),
        (7, "not_mobile"),
        (8, "invalid_phone"),
        (9, "empty_phone"),
        // The blank line is not a row.
        (10, "no_consent"),
        (11, "formula"),
        (12, "formula"),
        (13, "invalid_consent"),
        (14, "cell_too_long"),
        (15, "duplicate"),
    ];
    assert_eq!(reasons(&report), expected);
    let rejected = report["rejected"].as_array().unwrap();
    assert_eq!(rejected[0]["value"], "+62 812 3456 7890");
    assert_eq!(rejected[0]["duplicate_of"], 1);
    assert_eq!(rejected[10]["duplicate_of"], 1);
    assert_eq!(rejected[7]["column"], "name");
    assert_eq!(rejected[7]["value"], "=1+1");
    assert_eq!(rejected[9]["column"], "kota");
    assert!(
        rejected
            .iter()
            .all(|r| !r["message"].as_str().unwrap().is_empty())
    );

    let id = report["id"].as_str().unwrap();
    let contacts = contacts_of(&budi, id).await;
    let got: Vec<(i64, &str, &str, &Value)> = contacts
        .iter()
        .map(|c| {
            (
                c["row"].as_i64().unwrap(),
                c["phone"].as_str().unwrap(),
                c["name"].as_str().unwrap(),
                &c["variables"],
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, "+6281234567890", "Budi", &json!({"kota": "Bandung"})),
            (3, "+6281311112222", "Siti", &json!({"kota": "Jakarta"})),
            (4, "+6281222223333", "Andi", &json!({"kota": "Surabaya"})),
            (6, "+6281555556666", "Eko", &json!({"kota": "Solo"})),
        ]
    );

    let (status, list) = budi.get(&format!("/api/v1/contact-lists/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["name"], "Pelanggan");
    assert_eq!(list["columns"], json!(["kota"]));
    assert_eq!(
        (&list["total_rows"], &list["accepted"], &list["rejected"]),
        (&json!(15), &json!(4), &json!(11))
    );
    assert_eq!(list["source_format"], "csv");
    assert!(list["created_at"].is_string());
}

#[tokio::test]
async fn xlsx_with_numeric_cells_custom_columns_and_variables_is_imported() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    for (col, header) in [
        "No HP",
        "Nama Pelanggan",
        "Setuju?",
        "Kota",
        "Diskon",
        "Catatan",
    ]
    .iter()
    .enumerate()
    {
        sheet.write_string(0, col as u16, *header).unwrap();
    }
    // Row 1: the number as a numeric cell, as Excel keeps it.
    sheet.write_number(1, 0, 6281234567890.0).unwrap();
    sheet.write_string(1, 1, "Budi").unwrap();
    sheet.write_string(1, 2, "Ya").unwrap();
    sheet.write_string(1, 3, "Bandung").unwrap();
    sheet.write_number(1, 4, 10.0).unwrap();
    sheet.write_string(1, 5, "pelanggan lama").unwrap();
    // Row 2: the same number typed as text.
    sheet.write_string(2, 0, "0812-3456-7890").unwrap();
    sheet.write_string(2, 1, "Budi").unwrap();
    sheet.write_string(2, 2, "ya").unwrap();
    // Row 3: Excel dropped the leading 0; consent as a boolean cell.
    sheet.write_number(3, 0, 81311112222.0).unwrap();
    sheet.write_string(3, 1, "Siti").unwrap();
    sheet.write_boolean(3, 2, true).unwrap();
    sheet.write_string(3, 3, "Jakarta").unwrap();
    // Row 4: a formula in the phone column.
    sheet
        .write_formula(4, 0, Formula::new("=\"0813\"&\"22223333\""))
        .unwrap();
    sheet.write_string(4, 1, "Rumus").unwrap();
    sheet.write_string(4, 2, "ya").unwrap();
    // Row 5: no consent.
    sheet.write_string(5, 0, "+62 814 4444 5555").unwrap();
    sheet.write_string(5, 1, "Dewi").unwrap();
    sheet.write_string(5, 2, "tidak").unwrap();
    // Row 6 is empty; row 7:
    sheet.write_string(7, 0, "0815 5555 6666").unwrap();
    sheet.write_string(7, 1, "Eko").unwrap();
    sheet.write_string(7, 2, "setuju").unwrap();
    sheet.write_string(7, 3, "Solo").unwrap();
    sheet.write_string(7, 4, "5%").unwrap();
    // Row 8: consent 0 as a number.
    sheet.write_string(8, 0, "0821 1111 2222").unwrap();
    sheet.write_string(8, 1, "Fajar").unwrap();
    sheet.write_number(8, 2, 0.0).unwrap();
    let xlsx = workbook.save_to_buffer().unwrap();
    let mapping = json!({
        "phone": "No HP",
        "name": "nama pelanggan",
        "consent": "Setuju?",
        "variables": ["Kota", "Diskon"],
    })
    .to_string();

    let (status, report) = import(
        &budi,
        "Pelanggan Bandung.xlsx",
        &xlsx,
        &[("mapping", &mapping), ("default_region", "id")],
    )
    .await;

    assert_eq!(status, StatusCode::CREATED, "{report}");
    assert_eq!(report["name"], "Pelanggan Bandung", "named after the file");
    assert_eq!(report["columns"], json!(["Kota", "Diskon"]));
    assert_eq!(report["total_rows"], 7);
    assert_eq!(report["accepted"], 3);
    assert_eq!(report["rejected_count"], 4);
    assert_eq!(
        reasons(&report),
        [
            (2, "duplicate"),
            (4, "formula"),
            (5, "no_consent"),
            // The empty sheet row is not a row.
            (7, "no_consent"),
        ]
    );
    assert_eq!(report["rejected"][0]["duplicate_of"], 1);
    let id = report["id"].as_str().unwrap();
    let contacts = contacts_of(&budi, id).await;
    assert_eq!(
        contacts,
        [
            json!({"row": 1, "phone": "+6281234567890", "name": "Budi", "variables": {"Kota": "Bandung", "Diskon": "10"}, "on_whatsapp": null, "whatsapp_chat_id": null, "whatsapp_checked_at": null}),
            json!({"row": 3, "phone": "+6281311112222", "name": "Siti", "variables": {"Kota": "Jakarta", "Diskon": ""}, "on_whatsapp": null, "whatsapp_chat_id": null, "whatsapp_checked_at": null}),
            json!({"row": 6, "phone": "+6281555556666", "name": "Eko", "variables": {"Kota": "Solo", "Diskon": "5%"}, "on_whatsapp": null, "whatsapp_chat_id": null, "whatsapp_checked_at": null}),
        ]
    );
    let (_, list) = budi.get(&format!("/api/v1/contact-lists/{id}")).await;
    assert_eq!(list["source_format"], "xlsx");
}

#[tokio::test]
async fn semicolon_csv_with_a_bom_indonesian_headers_and_another_region() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let csv = "\u{feff}Nomor;Nama;Persetujuan;kota\r\n\
               0812 3456 7890;Budi;Ya;\"Bandung; Jawa Barat\"\r\n\
               +49 1512 3456789;Hans;ya;Berlin\r\n";

    let (status, report) = import(&budi, "kontak.csv", csv.as_bytes(), &[("name", "Kontak")]).await;
    assert_eq!(status, StatusCode::CREATED, "{report}");
    assert_eq!(
        (&report["accepted"], &report["rejected_count"]),
        (&json!(2), &json!(0))
    );
    let contacts = contacts_of(&budi, report["id"].as_str().unwrap()).await;
    assert_eq!(contacts[0]["phone"], "+6281234567890");
    assert_eq!(
        contacts[0]["variables"],
        json!({"kota": "Bandung; Jawa Barat"})
    );
    assert_eq!(contacts[1]["phone"], "+4915123456789");

    // National numbers are read in `default_region`.
    let csv = "phone,consent\n01512 3456789,yes\n0812 3456 7890,yes\n";
    let (status, report) =
        import(&budi, "de.csv", csv.as_bytes(), &[("default_region", "DE")]).await;
    assert_eq!(status, StatusCode::CREATED, "{report}");
    assert_eq!(report["accepted"], 1);
    assert_eq!(reasons(&report), [(2, "not_mobile")]);
    assert_eq!(report["columns"], json!([]));
}

/// A zip whose directory announces one entry of 3 GB (a zip bomb's
/// shape; nothing behind it).
fn zip_bomb() -> Vec<u8> {
    let name = b"xl/sharedStrings.xml";
    let mut directory = b"PK\x01\x02".to_vec();
    directory.extend_from_slice(&[0; 20]);
    directory.extend_from_slice(&3_000_000_000u32.to_le_bytes());
    directory.extend_from_slice(&(name.len() as u16).to_le_bytes());
    directory.extend_from_slice(&[0; 16]);
    directory.extend_from_slice(name);
    let mut zip = b"PK\x03\x04 compressed data".to_vec();
    let offset = zip.len() as u32;
    zip.extend_from_slice(&directory);
    zip.extend_from_slice(b"PK\x05\x06\0\0\0\0\x01\0\x01\0");
    zip.extend_from_slice(&(directory.len() as u32).to_le_bytes());
    zip.extend_from_slice(&offset.to_le_bytes());
    zip.extend_from_slice(&[0, 0]);
    zip
}

/// What, file name, content, form fields, expected error code.
type Case<'a> = (&'a str, &'a str, Vec<u8>, Vec<(&'a str, &'a str)>, &'a str);

#[tokio::test]
async fn malformed_files_are_refused_and_create_nothing() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let good = b"phone,name,consent\n0812 3456 7890,Budi,ya\n";
    let png: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\x90wS\xde";
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut workbook = Workbook::new();
    workbook
        .add_worksheet()
        .write_string(0, 0, "phone")
        .unwrap();
    let xlsx = workbook.save_to_buffer().unwrap();
    let not_a_workbook: &[u8] = b"PK\x03\x04\x14\0\0\0\x08\0this is no workbook at all";
    let huge = format!(
        "phone,name,consent\n0812 3456 7890,{},ya\n",
        "x".repeat(200_000)
    );
    let latin1: &[u8] = b"phone,name,consent\n0812 3456 7890,Jos\xe9,ya\n";
    let cases: Vec<Case> = vec![
        (
            "png named .csv",
            "kontak.csv",
            png.to_vec(),
            vec![],
            "unsupported_file",
        ),
        (
            "png",
            "kontak.png",
            png.to_vec(),
            vec![],
            "unsupported_file",
        ),
        (
            "binary junk",
            "kontak.csv",
            junk.clone(),
            vec![],
            "unsupported_file",
        ),
        (
            "junk named .xlsx",
            "kontak.xlsx",
            junk,
            vec![],
            "unsupported_file",
        ),
        (
            "a zip that is no workbook",
            "kontak.xlsx",
            not_a_workbook.to_vec(),
            vec![],
            "unsupported_file",
        ),
        (
            "zip bomb",
            "kontak.xlsx",
            zip_bomb(),
            vec![],
            "unsupported_file",
        ),
        (
            "xlsx named .csv",
            "kontak.csv",
            xlsx.clone(),
            vec![],
            "unsupported_file",
        ),
        (
            "csv named .xlsx",
            "kontak.xlsx",
            good.to_vec(),
            vec![],
            "unsupported_file",
        ),
        (
            "wrong extension",
            "kontak.pdf",
            good.to_vec(),
            vec![],
            "unsupported_file",
        ),
        (
            "empty",
            "kontak.csv",
            Vec::new(),
            vec![],
            "unsupported_file",
        ),
        (
            "blank lines only",
            "kontak.csv",
            b"\n\n \n".to_vec(),
            vec![],
            "unsupported_file",
        ),
        (
            "header only",
            "kontak.csv",
            b"phone,name,consent\n".to_vec(),
            vec![],
            "validation_failed",
        ),
        (
            "xlsx header only",
            "kontak.xlsx",
            xlsx,
            vec![],
            "validation_failed",
        ),
        (
            "no phone column",
            "kontak.csv",
            b"nama,consent\nBudi,ya\n".to_vec(),
            vec![],
            "validation_failed",
        ),
        (
            "no consent column",
            "kontak.csv",
            b"phone,name\n0812 3456 7890,Budi\n".to_vec(),
            vec![],
            "validation_failed",
        ),
        (
            "mapping names a missing column",
            "kontak.csv",
            good.to_vec(),
            vec![("mapping", r#"{"phone": "No HP"}"#)],
            "validation_failed",
        ),
        (
            "mapping names a missing variable",
            "kontak.csv",
            good.to_vec(),
            vec![("mapping", r#"{"variables": ["kota"]}"#)],
            "validation_failed",
        ),
        (
            "mapping is not JSON",
            "kontak.csv",
            good.to_vec(),
            vec![("mapping", "phone=No HP")],
            "validation_failed",
        ),
        (
            "mapping has an unknown key",
            "kontak.csv",
            good.to_vec(),
            vec![("mapping", r#"{"telp": "phone"}"#)],
            "validation_failed",
        ),
        (
            "bad region",
            "kontak.csv",
            good.to_vec(),
            vec![("default_region", "XX")],
            "validation_failed",
        ),
        (
            "not UTF-8",
            "kontak.csv",
            latin1.to_vec(),
            vec![],
            "unsupported_file",
        ),
        (
            "pathological cell",
            "kontak.csv",
            huge.into_bytes(),
            vec![],
            "unsupported_file",
        ),
        (
            "unknown field",
            "kontak.csv",
            good.to_vec(),
            vec![("list", "x")],
            "validation_failed",
        ),
    ];

    for (what, filename, content, fields, expected) in &cases {
        let (status, body) = import(&budi, filename, content, fields).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, *expected),
            "{what}: {body}"
        );
        assert!(
            !body["error"]["message"].as_str().unwrap().is_empty(),
            "{what}"
        );
    }

    let (_, body) = import(&budi, "bom.xlsx", &zip_bomb(), &[]).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expands to more than"),
        "refused before decompressing: {body}"
    );

    // Not UTF-8 far into the file: thousands of rows were already stored in
    // the import's transaction when the bad line is met.
    let mut late = String::from("phone,consent\n");
    for i in 0..6_000 {
        late.push_str(&format!("0812{i:08},ya\n"));
    }
    let mut late = late.into_bytes();
    late.extend_from_slice(b"0813 1111 2222,ya \xe9\n");
    let (status, body) = import(&budi, "kontak.csv", &late, &[]).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "unsupported_file"),
        "{body}"
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains("UTF-8"),
        "{body}"
    );

    // No file, and a body that is not multipart.
    let (content_type, form_body) = form(&[("name", None, b"x")]);
    let (status, body) = budi
        .send(
            budi.request(reqwest::Method::POST, IMPORT)
                .header("content-type", content_type)
                .body(form_body),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "validation_failed"),
        "{body}"
    );
    let (status, body) = budi.post(IMPORT, json!({"file": "phone\n0812"})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "validation_failed"),
        "{body}"
    );

    assert_eq!(list_count(&budi).await, 0);
    assert_eq!(stored_contacts(&app).await, 0);
}

#[tokio::test]
async fn an_upload_over_the_limit_is_413_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let mut big = b"phone,consent\n".to_vec();
    let line = b"0812 3456 7890,ya\n";
    while big.len() <= 32 * 1024 * 1024 {
        big.extend_from_slice(line);
    }

    let (status, body) = import(&budi, "besar.csv", &big, &[("name", "Besar")]).await;

    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        "{body}"
    );
    assert_eq!(list_count(&budi).await, 0);
    // An upload just under the limit goes through the same route.
    let (status, body) = import(
        &budi,
        "kecil.csv",
        b"phone,consent\n0812 3456 7890,ya\n",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn contacts_are_paginated_by_row() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let mut csv = String::from("phone,name,consent\n");
    for i in 0..120 {
        csv.push_str(&format!("0812{i:08},Kontak {i},ya\n"));
    }
    let (status, report) = import(&budi, "banyak.csv", csv.as_bytes(), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{report}");
    assert_eq!(report["accepted"], 120);
    let id = report["id"].as_str().unwrap();

    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/v1/contact-lists/{id}/contacts?limit=50&cursor={cursor}"),
            None => format!("/api/v1/contact-lists/{id}/contacts?limit=50"),
        };
        let (status, page) = budi.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            rows.push(item["row"].as_i64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(rows, (1..=120).collect::<Vec<i64>>());

    for bad in ["junk", "i0190f5a0c0d07a3b8e1f2a3b4c5d6e7f"] {
        let (status, body) = budi
            .get(&format!("/api/v1/contact-lists/{id}/contacts?cursor={bad}"))
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "validation_failed"),
            "{bad}"
        );
    }

    // Lists are paginated too, oldest first.
    let (_, second) = import(&budi, "dua.csv", b"phone,consent\n0812 3456 7890,ya\n", &[]).await;
    let (status, page) = budi.get("/api/v1/contact-lists?limit=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"][0]["id"], report["id"]);
    let next = page["next_cursor"].as_str().unwrap();
    let (_, page) = budi
        .get(&format!("/api/v1/contact-lists?limit=1&cursor={next}"))
        .await;
    assert_eq!(page["items"][0]["id"], second["id"]);
    assert_eq!(page["next_cursor"], Value::Null);
}

#[tokio::test]
async fn another_tenants_list_is_404_and_a_deleted_list_is_gone() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let siti = app.tenant("Toko Siti").await;
    let (status, report) = import(
        &budi,
        "kontak.csv",
        b"phone,consent\n0812 3456 7890,ya\n",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{report}");
    let id = report["id"].as_str().unwrap();
    let list = format!("/api/v1/contact-lists/{id}");
    let contacts = format!("/api/v1/contact-lists/{id}/contacts");

    for path in [&list, &contacts] {
        let (status, body) = siti.get(path).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
    }
    let (status, body) = siti.delete(&list).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    assert_eq!(list_count(&siti).await, 0);
    assert_eq!(list_count(&budi).await, 1);
    let (status, _) = budi.get(&list).await;
    assert_eq!(status, StatusCode::OK, "Siti's delete changed nothing");

    let (status, body) = budi.delete(&list).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for path in [&list, &contacts] {
        let (status, body) = budi.get(path).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
    }
    let (status, _) = budi.delete(&list).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(list_count(&budi).await, 0);

    let (status, body) = budi.get("/api/v1/contact-lists/not-a-uuid").await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let anonymous = budi.with_auth(crate::app::Auth::None);
    let (status, _) = import(
        &anonymous,
        "kontak.csv",
        b"phone,consent\n0812 3456 7890,ya\n",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// `(row, phone, name, variables)` of every contact of a list.
async fn rows_of(client: &Client, id: &str) -> Vec<(i64, String, Value, Value)> {
    contacts_of(client, id)
        .await
        .iter()
        .map(|c| {
            (
                c["row"].as_i64().unwrap(),
                c["phone"].as_str().unwrap().to_owned(),
                c["name"].clone(),
                c["variables"].clone(),
            )
        })
        .collect()
}

/// Creates a list from JSON rows; the answer.
async fn create_list(client: &Client, body: Value) -> (StatusCode, Value) {
    client.post(LISTS, body).await
}

async fn add_contacts(client: &Client, id: &str, body: Value) -> (StatusCode, Value) {
    client.post(&format!("{LISTS}/{id}/contacts"), body).await
}

/// `(total_rows, accepted, rejected)` of a list as read back.
async fn counts_of(client: &Client, id: &str) -> (Value, Value, Value) {
    let (status, list) = client.get(&format!("{LISTS}/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    (
        list["total_rows"].clone(),
        list["accepted"].clone(),
        list["rejected"].clone(),
    )
}

#[tokio::test]
async fn a_list_made_from_json_rows_is_checked_and_reported_as_an_import_is() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;

    let (status, report) = create_list(
        &budi,
        json!({
            "name": "  Pelanggan WhatsApp ",
            "contacts": [
                {"phone": "0812-3456-7890", "name": "Budi", "consent": true, "variables": {"kota": "Bandung"}},
                {"phone": "+62 812 3456 7890", "name": "Budi lagi", "consent": true},
                {"phone": "62813 1111 2222", "name": " Siti ", "consent": true, "variables": {"kota": "Jakarta", "diskon": "10%"}},
                {"phone": "(0814) 44445555", "name": "Dewi", "consent": false},
                {"phone": "021-5555-1234", "name": "Kantor", "consent": true},
                {"phone": "12345", "consent": true},
                {"phone": "", "name": "Tanpa Nomor", "consent": true},
                {"phone": "=HYPERLINK(\"http://x\")", "consent": true},
                {"phone": "0817 8888 9999", "name": "=1+1", "consent": true},
                {"phone": "0819 1234 5678", "consent": true, "variables": {"diskon": "x".repeat(1001)}},
                {"phone": "0815 5555 6666", "name": null, "consent": true},
                {"phone": "0812 3456 7890", "name": "Budi", "consent": true},
            ],
        }),
    )
    .await;

    assert_eq!(status, StatusCode::CREATED, "{report}");
    assert_eq!(report["name"], "Pelanggan WhatsApp");
    assert_eq!(report["columns"], json!(["kota", "diskon"]));
    assert_eq!(
        (
            &report["total_rows"],
            &report["accepted"],
            &report["rejected_count"]
        ),
        (&json!(12), &json!(3), &json!(9))
    );
    let expected: Vec<(u64, &str)> = vec![
        (2, "duplicate"),
        (4, "no_consent"),
        (5, "not_mobile"),
        (6, "invalid_phone"),
        (7, "empty_phone"),
        (8, "formula"),
        (9, "formula"),
        (10, "cell_too_long"),
        (12, "duplicate"),
    ];
    assert_eq!(reasons(&report), expected);
    let rejected = report["rejected"].as_array().unwrap();
    assert_eq!(rejected[0]["value"], "+62 812 3456 7890");
    assert_eq!(rejected[0]["duplicate_of"], 1);
    assert_eq!(
        (&rejected[1]["column"], &rejected[1]["value"]),
        (&json!("consent"), &json!("false"))
    );
    assert_eq!(
        (&rejected[6]["column"], &rejected[6]["value"]),
        (&json!("name"), &json!("=1+1"))
    );
    assert_eq!(rejected[7]["column"], "diskon");
    assert_eq!(rejected[8]["duplicate_of"], 1);

    let id = report["id"].as_str().unwrap();
    assert_eq!(
        rows_of(&budi, id).await,
        [
            (
                1,
                "+6281234567890".to_owned(),
                json!("Budi"),
                json!({"kota": "Bandung", "diskon": ""})
            ),
            (
                3,
                "+6281311112222".to_owned(),
                json!("Siti"),
                json!({"kota": "Jakarta", "diskon": "10%"})
            ),
            (
                11,
                "+6281555556666".to_owned(),
                Value::Null,
                json!({"kota": "", "diskon": ""})
            ),
        ]
    );
    let (status, list) = budi.get(&format!("{LISTS}/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["source_format"], "json");
    assert_eq!(list["source_filename"], Value::Null);
    assert_eq!(list["columns"], json!(["kota", "diskon"]));
    assert_eq!(counts_of(&budi, id).await, (json!(12), json!(3), json!(9)));

    // National numbers are read in `default_region`; an empty list is a
    // list to add to later.
    let (status, report) = create_list(
        &budi,
        json!({"name": "Berlin", "default_region": "de", "contacts": [
            {"phone": "01512 3456789", "consent": true},
            {"phone": "0812 3456 7890", "consent": true},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{report}");
    assert_eq!(reasons(&report), [(2, "not_mobile")]);
    let contacts = contacts_of(&budi, report["id"].as_str().unwrap()).await;
    assert_eq!(contacts[0]["phone"], "+4915123456789");
    let (status, empty) = create_list(&budi, json!({"name": "Kosong", "contacts": []})).await;
    assert_eq!(status, StatusCode::CREATED, "{empty}");
    assert_eq!(
        (&empty["total_rows"], &empty["accepted"], &empty["columns"]),
        (&json!(0), &json!(0), &json!([]))
    );
    assert_eq!(list_count(&budi).await, 3);
}

#[tokio::test]
async fn rows_added_to_a_list_are_checked_against_it_and_numbered_after_it() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    // An imported list: adding rows works on any list, numbered after the
    // file's rows (rejected ones included).
    let csv = "phone,name,consent,kota\n\
               0812-3456-7890,Budi,ya,Bandung\n\
               0813 1111 2222,Siti,tidak,Jakarta\n\
               0814 4444 5555,Dewi,ya,Medan\n";
    let (status, imported) = import(&budi, "kontak.csv", csv.as_bytes(), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{imported}");
    let id = imported["id"].as_str().unwrap();

    let (status, report) = add_contacts(
        &budi,
        id,
        json!({"contacts": [
            {"phone": "+62 812 3456 7890", "name": "Budi lagi", "consent": true},
            {"phone": "0813 1111 2222", "name": "Siti", "consent": true, "variables": {"kota": "Jakarta", "diskon": "5%"}},
            {"phone": "0815 5555 6666", "name": "Eko", "consent": true, "variables": {"kota": "Solo"}},
            {"phone": "0815-5555-6666", "name": "Eko lagi", "consent": true},
            {"phone": "0816 6666 7777", "name": "Fajar", "consent": false},
        ]}),
    )
    .await;

    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["id"], imported["id"]);
    assert_eq!(report["name"], "kontak");
    assert_eq!(
        report["columns"],
        json!(["kota", "diskon"]),
        "a new variable becomes a column"
    );
    assert_eq!(
        (
            &report["total_rows"],
            &report["accepted"],
            &report["rejected_count"]
        ),
        (&json!(5), &json!(2), &json!(3))
    );
    assert_eq!(
        reasons(&report),
        [(1, "already_in_list"), (4, "duplicate"), (5, "no_consent"),]
    );
    assert_eq!(report["rejected"][0]["existing_row"], 1);
    assert_eq!(report["rejected"][0].get("duplicate_of"), None);
    assert_eq!(report["rejected"][1]["duplicate_of"], 3);
    assert_eq!(
        rows_of(&budi, id).await,
        [
            (
                1,
                "+6281234567890".to_owned(),
                json!("Budi"),
                json!({"kota": "Bandung"})
            ),
            (
                3,
                "+6281444445555".to_owned(),
                json!("Dewi"),
                json!({"kota": "Medan"})
            ),
            (
                5,
                "+6281311112222".to_owned(),
                json!("Siti"),
                json!({"kota": "Jakarta", "diskon": "5%"})
            ),
            (
                6,
                "+6281555556666".to_owned(),
                json!("Eko"),
                json!({"kota": "Solo", "diskon": ""})
            ),
        ]
    );
    assert_eq!(counts_of(&budi, id).await, (json!(8), json!(4), json!(4)));
    let (_, list) = budi.get(&format!("{LISTS}/{id}")).await;
    assert_eq!(list["columns"], json!(["kota", "diskon"]));
    assert_eq!(
        list["source_format"], "csv",
        "still the imported file's list"
    );

    // The same rows again: every number is in the list now.
    let (status, again) = add_contacts(
        &budi,
        id,
        json!({"contacts": [
            {"phone": "0815 5555 6666", "consent": true},
            {"phone": "0814 4444 5555", "consent": true},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["accepted"], 0);
    let existing: Vec<&Value> = again["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["existing_row"])
        .collect();
    assert_eq!(existing, [&json!(6), &json!(3)]);
    assert_eq!(counts_of(&budi, id).await, (json!(10), json!(4), json!(6)));
}

#[tokio::test]
async fn a_removed_contact_is_gone_and_its_row_never_given_again() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let (status, report) = create_list(
        &budi,
        json!({"name": "Pelanggan", "contacts": [
            {"phone": "0812 3456 7890", "name": "Budi", "consent": true},
            {"phone": "0813 1111 2222", "name": "Siti", "consent": true},
            {"phone": "0814 4444 5555", "name": "Dewi", "consent": true},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{report}");
    let id = report["id"].as_str().unwrap();

    // The last row goes: a row added later must not take its number.
    let (status, body) = budi.delete(&format!("{LISTS}/{id}/contacts/3")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    let phones: Vec<String> = rows_of(&budi, id).await.into_iter().map(|r| r.1).collect();
    assert_eq!(phones, ["+6281234567890", "+6281311112222"]);
    assert_eq!(counts_of(&budi, id).await, (json!(3), json!(2), json!(0)));
    for missing in ["3", "4", "0", "-1"] {
        let (status, body) = budi
            .delete(&format!("{LISTS}/{id}/contacts/{missing}"))
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{missing}: {body}"
        );
    }
    let (status, _) = budi.delete(&format!("{LISTS}/{id}/contacts/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(counts_of(&budi, id).await, (json!(3), json!(2), json!(0)));

    // The number can come back, as a new contact with a new row.
    let (status, added) = add_contacts(
        &budi,
        id,
        json!({"contacts": [{"phone": "+6281444445555", "name": "Dewi", "consent": true}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{added}");
    assert_eq!(added["accepted"], 1);
    let rows: Vec<i64> = rows_of(&budi, id).await.into_iter().map(|r| r.0).collect();
    assert_eq!(rows, [1, 2, 4]);
    assert_eq!(counts_of(&budi, id).await, (json!(4), json!(3), json!(0)));
}

#[tokio::test]
async fn bodies_not_of_the_shape_or_with_too_many_rows_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let good = json!({"phone": "0812 3456 7890", "consent": true});
    let bad_rows = [
        json!({"phone": "0812 3456 7890", "consent": "ya"}),
        json!({"phone": "0812 3456 7890"}),
        json!({"phone": 6281234567890_u64, "consent": true}),
        json!({"phone": "0812 3456 7890", "consent": true, "telp": "x"}),
        json!({"phone": "0812 3456 7890", "consent": true, "name": 7}),
        json!({"phone": "0812 3456 7890", "consent": true, "variables": {"kota": 1}}),
        json!({"phone": "0812 3456 7890", "consent": true, "variables": ["kota"]}),
        json!({"phone": "0812 3456 7890", "consent": true, "variables": {"nama toko": "x"}}),
        json!({"phone": "0812 3456 7890", "consent": true, "variables": {"Name": "x"}}),
        json!({"phone": "0812 3456 7890", "consent": true, "variables": {"phone": "x"}}),
        json!({"phone": "0812 3456 7890\u{0}", "consent": true}),
        json!("0812 3456 7890"),
    ];
    let many: Vec<Value> = (0..10_001)
        .map(|i| json!({"phone": format!("0812{i:08}"), "consent": true}))
        .collect();
    let mut bodies = vec![
        json!({"name": "x"}),
        json!({"contacts": [good]}),
        json!({"name": "", "contacts": [good]}),
        json!({"name": "x".repeat(201), "contacts": [good]}),
        json!({"name": "x", "contacts": [good], "default_region": "XX"}),
        json!({"name": "x", "contacts": {"phone": "0812"}}),
        json!({"name": "x", "contacts": [good], "mapping": {}}),
        json!({"name": "x", "contacts": many}),
        json!([good]),
    ];
    for row in &bad_rows {
        bodies.push(json!({"name": "x", "contacts": [good, row]}));
    }
    let (status, list) = create_list(&budi, json!({"name": "Ada", "contacts": [good]})).await;
    assert_eq!(status, StatusCode::CREATED, "{list}");
    let id = list["id"].as_str().unwrap();

    for body in &bodies {
        let (status, answer) = create_list(&budi, body.clone()).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::BAD_REQUEST, "validation_failed"),
            "{answer}"
        );
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    for row in &bad_rows {
        let (status, answer) = add_contacts(&budi, id, json!({"contacts": [good, row]})).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::BAD_REQUEST, "validation_failed"),
            "{row}: {answer}"
        );
    }
    let (status, answer) = add_contacts(&budi, id, json!({"contacts": many})).await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::BAD_REQUEST, "validation_failed"),
        "{answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 10000 contacts"),
        "{answer}"
    );
    // The field is named.
    let (_, answer) = create_list(
        &budi,
        json!({"name": "x", "contacts": [good, {"phone": "0812", "consent": "ya"}]}),
    )
    .await;
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("contacts[1].consent"),
        "{answer}"
    );
    let (_, answer) = create_list(
        &budi,
        json!({"name": "x", "contacts": [good, {"phone": "0812", "consent": true, "variables": {"nama toko": "x"}}]}),
    )
    .await;
    assert_eq!(
        answer["error"]["details"]["field"], "contacts[1].variables.nama toko",
        "{answer}"
    );

    // Not JSON, not said to be JSON, over the size limit.
    let raw = |body: &'static str, content_type: &'static str| {
        budi.request(reqwest::Method::POST, LISTS)
            .header("content-type", content_type)
            .body(body)
    };
    let (status, answer) = budi
        .send(raw("{\"name\": \"x\", \"contacts\": [", "application/json"))
        .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::BAD_REQUEST, "validation_failed"),
        "{answer}"
    );
    let (status, answer) = budi
        .send(raw("name=x", "application/x-www-form-urlencoded"))
        .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        "{answer}"
    );
    let huge = json!({"name": "x", "contacts": [{"phone": "0812 3456 7890", "consent": true, "name": "x".repeat(17 * 1024 * 1024)}]});
    let (status, answer) = create_list(&budi, huge).await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        "{answer}"
    );

    assert_eq!(list_count(&budi).await, 1);
    assert_eq!(stored_contacts(&app).await, 1);
    assert_eq!(counts_of(&budi, id).await, (json!(1), json!(1), json!(0)));

    // 10,000 contacts are one request, over the API's usual 1 MiB.
    let most: Vec<Value> = (0..10_000)
        .map(|i| json!({"phone": format!("0812{i:08}"), "name": format!("Pelanggan nomor {i} yang setia"), "consent": true, "variables": {"kota": "Kabupaten Bandung Barat"}}))
        .collect();
    let body = json!({"name": "Besar", "contacts": most});
    assert!(body.to_string().len() > 1024 * 1024);
    let (status, report) = create_list(&budi, body).await;
    assert_eq!(status, StatusCode::CREATED, "{}", report["error"]);
    assert_eq!(
        (&report["accepted"], &report["rejected_count"]),
        (&json!(10_000), &json!(0))
    );
}

/// Adding `more` to the list `id`, and removing its contact of row 1,
/// are both 404 to `client`.
async fn neither_added_to_nor_removed_from(client: &Client, id: &str, more: &Value) {
    for (status, body) in [
        add_contacts(client, id, more.clone()).await,
        client.delete(&format!("{LISTS}/{id}/contacts/1")).await,
    ] {
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn another_tenants_or_a_deleted_list_is_404_to_adding_and_removing() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let siti = app.tenant("Toko Siti").await;
    let (status, report) = create_list(
        &budi,
        json!({"name": "Pelanggan", "contacts": [{"phone": "0812 3456 7890", "consent": true}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{report}");
    let id = report["id"].as_str().unwrap();
    let more = json!({"contacts": [{"phone": "0813 1111 2222", "consent": true}]});

    neither_added_to_nor_removed_from(&siti, id, &more).await;
    assert_eq!(counts_of(&budi, id).await, (json!(1), json!(1), json!(0)));
    assert_eq!(rows_of(&budi, id).await.len(), 1, "Siti changed nothing");
    let (status, _) = add_contacts(&budi, &uuid::Uuid::now_v7().to_string(), more.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let anonymous = budi.with_auth(crate::app::Auth::None);
    let (status, _) = add_contacts(&anonymous, id, more.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = create_list(&anonymous, json!({"name": "x", "contacts": []})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, _) = budi.delete(&format!("{LISTS}/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    neither_added_to_nor_removed_from(&budi, id, &more).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_on_a_list_made_without_a_file_sends_to_its_contacts_at_the_start() {
    let app = TestApp::spawn().await;
    let backdoor = Backdoor::of(&app).await;
    let budi = funded(&app, 1000).await;
    // A session linked while an engine ran; the engine then stops, so the
    // campaign's fan-out waits until contacts were added after its start.
    let (stop, running) = engine(&app, "engine-a", |_| {});
    let session = linked(&budi, "+6281299990001", 100).await;
    stop.cancel();
    running.await.unwrap().unwrap();
    let (status, report) = create_list(
        &budi,
        json!({"name": "Pelanggan", "contacts": [
            {"phone": "0812 3456 7890", "name": "Budi", "consent": true, "variables": {"kota": "Bandung"}},
            {"phone": "0813 1111 2222", "name": "Siti", "consent": true, "variables": {"kota": "Jakarta"}},
            {"phone": "0814 4444 5555", "name": "Dewi", "consent": true},
            {"phone": "0815 5555 6666", "name": "Eko", "consent": false},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{report}");
    let list = uuid::Uuid::parse_str(report["id"].as_str().unwrap()).unwrap();
    let (status, body) = budi.delete(&format!("{LISTS}/{list}/contacts/2")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    let id = started(&budi, list, &[&session], (0, 0)).await;
    let (status, added) = add_contacts(
        &budi,
        &list.to_string(),
        json!({"contacts": [
            {"phone": "0816 6666 7777", "name": "Fajar", "consent": true, "variables": {"kota": "Bogor"}},
        ]}),
    )
    .await;
    assert_eq!(
        (status, &added["accepted"]),
        (StatusCode::OK, &json!(1)),
        "{added}"
    );

    let (stop, running) = engine(&app, "engine-b", |_| {});
    let done = completed_once_each(&budi, &backdoor, &id, 2).await;
    assert_eq!(done["counts"]["total"], 2, "{done}");
    let sent: Vec<(String, String)> =
        sqlx::query_as("select phone, text from messages where campaign_id = $1 order by phone")
            .bind(uuid::Uuid::parse_str(&id).unwrap())
            .fetch_all(&backdoor.db)
            .await
            .unwrap();
    let phones: BTreeSet<&str> = sent.iter().map(|(phone, _)| phone.as_str()).collect();
    assert_eq!(phones, BTreeSet::from(["+6281234567890", "+6281444445555"]));
    assert!(sent[0].1.ends_with("Budi, promo Bandung!"), "{sent:?}");
    assert!(sent[1].1.ends_with("Dewi, promo kota kamu!"), "{sent:?}");
    stop.cancel();
    running.await.unwrap().unwrap();

    // The list itself goes on: 3 contacts for the next campaign.
    assert_eq!(counts_of(&budi, &list.to_string()).await.1, json!(3));
}
