//! Media: uploads of every accepted type, the type judged from the content,
//! the size limit, bad forms, and tenant isolation.

use std::io::Cursor;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::app::{Auth, Client, TestApp, code};

const MAX: usize = 10 * 1024 * 1024;
const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// A `multipart/form-data` body with one file field.
pub fn form(boundary: &str, field: &str, filename: &str, content: &[u8]) -> Vec<u8> {
    form_of(boundary, &[(field, filename, content)])
}

/// A `multipart/form-data` body with these `(field, filename, content)`
/// parts.
fn form_of(boundary: &str, parts: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, filename, content) in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

/// `POST /api/v1/media` with `content` as the field `file`.
pub async fn upload(client: &Client, filename: &str, content: &[u8]) -> (StatusCode, Value) {
    upload_form(
        client,
        "b0undary",
        &form("b0undary", "file", filename, content),
    )
    .await
}

async fn upload_form(client: &Client, boundary: &str, body: &[u8]) -> (StatusCode, Value) {
    client
        .send(
            client
                .request(Method::POST, "/api/v1/media")
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(body.to_vec()),
        )
        .await
}

fn image(format: image::ImageFormat) -> Vec<u8> {
    let picture =
        image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8 * 30, y as u8 * 30, 99]));
    let mut bytes = Cursor::new(Vec::new());
    picture.write_to(&mut bytes, format).expect("encodes");
    bytes.into_inner()
}

pub fn png() -> Vec<u8> {
    image(image::ImageFormat::Png)
}

/// The framing of a JPEG/JFIF file (start of image, APP0 "JFIF", end of
/// image): the image crate here is built without its JPEG encoder.
fn jpeg() -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
    bytes.extend_from_slice(b"JFIF\0");
    bytes.extend_from_slice(&[1, 1, 0, 0, 1, 0, 1, 0, 0]);
    bytes.extend_from_slice(&[0xFF, 0xD9]);
    bytes
}

pub fn pdf() -> Vec<u8> {
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n".to_vec()
}

fn xlsx() -> Vec<u8> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.write_string(0, 0, "phone").unwrap();
    sheet.write_string(1, 0, "+6281234567890").unwrap();
    workbook.save_to_buffer().expect("xlsx written")
}

/// A Word document as a zip of stored entries (what `infer` and our
/// central-directory check look at; Word would want the XML filled in).
fn docx() -> Vec<u8> {
    zip(&[
        (
            "[Content_Types].xml",
            "<?xml version=\"1.0\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"/>",
        ),
        ("_rels/.rels", "<?xml version=\"1.0\"?><Relationships/>"),
        ("word/document.xml", "<?xml version=\"1.0\"?><w:document/>"),
    ])
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A zip archive of stored (uncompressed) entries.
fn zip(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut directory = Vec::new();
    for (name, content) in entries {
        let offset = out.len() as u32;
        let mut fields = Vec::new();
        fields.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]); // version, flags, stored, time, date
        fields.extend_from_slice(&crc32(content.as_bytes()).to_le_bytes());
        fields.extend_from_slice(&(content.len() as u32).to_le_bytes());
        fields.extend_from_slice(&(content.len() as u32).to_le_bytes());
        fields.extend_from_slice(&(name.len() as u16).to_le_bytes());
        fields.extend_from_slice(&[0, 0]); // extra
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&fields);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(content.as_bytes());
        directory.extend_from_slice(b"PK\x01\x02");
        directory.extend_from_slice(&[20, 0]); // made by
        directory.extend_from_slice(&fields);
        directory.extend_from_slice(&[0; 6]); // comment length, disk, internal attributes
        directory.extend_from_slice(&[0; 4]); // external attributes
        directory.extend_from_slice(&offset.to_le_bytes());
        directory.extend_from_slice(name.as_bytes());
    }
    let start = out.len() as u32;
    out.extend_from_slice(&directory);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(directory.len() as u32).to_le_bytes());
    out.extend_from_slice(&start.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

/// A minimal OLE2 compound file (MS-CFB version 3): header, one FAT sector,
/// one directory sector with the root entry, whose class id names the
/// application (Word 97-2003 and Excel 97-2003 files carry theirs).
fn compound_file(class_id: [u8; 16]) -> Vec<u8> {
    const FREE: u32 = 0xFFFF_FFFF;
    const END_OF_CHAIN: u32 = 0xFFFF_FFFE;
    const FAT_SECTOR: u32 = 0xFFFF_FFFD;
    let mut header = vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
    header.extend_from_slice(&[0; 16]);
    for half in [0x003E_u16, 3, 0xFFFE, 9, 6] {
        header.extend_from_slice(&half.to_le_bytes());
    }
    header.extend_from_slice(&[0; 6]);
    for word in [0, 1, 1, 0, 4096, END_OF_CHAIN, 0, END_OF_CHAIN, 0, 0] {
        header.extend_from_slice(&u32::to_le_bytes(word));
    }
    for _ in 1..109 {
        header.extend_from_slice(&FREE.to_le_bytes());
    }
    let mut fat = Vec::new();
    for word in [FAT_SECTOR, END_OF_CHAIN] {
        fat.extend_from_slice(&u32::to_le_bytes(word));
    }
    fat.resize(512, 0xFF);
    let mut root = vec![0; 128];
    for (i, unit) in "Root Entry".encode_utf16().enumerate() {
        root[2 * i..2 * i + 2].copy_from_slice(&unit.to_le_bytes());
    }
    root[64..66].copy_from_slice(&22u16.to_le_bytes());
    root[66] = 5; // root storage
    root[67] = 1; // black
    root[68..80].fill(0xFF); // no siblings, no children
    root[80..96].copy_from_slice(&class_id);
    root[116..120].copy_from_slice(&END_OF_CHAIN.to_le_bytes());
    let mut directory = root;
    for _ in 0..3 {
        let mut unused = vec![0; 128];
        unused[68..80].fill(0xFF);
        directory.extend_from_slice(&unused);
    }
    [header, fat, directory].concat()
}

fn doc() -> Vec<u8> {
    // {00020906-0000-0000-C000-000000000046}: Microsoft Word 97-2003.
    compound_file([6, 9, 2, 0, 0, 0, 0, 0, 0xC0, 0, 0, 0, 0, 0, 0, 0x46])
}

fn xls() -> Vec<u8> {
    // {00020820-0000-0000-C000-000000000046}: Microsoft Excel 97-2003.
    compound_file([0x20, 8, 2, 0, 0, 0, 0, 0, 0xC0, 0, 0, 0, 0, 0, 0, 0x46])
}

#[tokio::test]
async fn every_accepted_type_is_stored_and_served_back_as_it_was() {
    // Arrange
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let files = [
        ("promo.png", png(), "image/png"),
        ("foto.jpg", jpeg(), "image/jpeg"),
        ("foto.JPEG", jpeg(), "image/jpeg"),
        ("brosur.pdf", pdf(), "application/pdf"),
        ("surat.doc", doc(), "application/msword"),
        ("surat.docx", docx(), DOCX),
        ("harga.xls", xls(), "application/vnd.ms-excel"),
        ("harga.xlsx", xlsx(), XLSX),
    ];

    for (filename, content, mime_type) in files {
        // Act
        let (status, created) = upload(&budi, filename, &content).await;

        // Assert
        assert_eq!(status, StatusCode::CREATED, "{filename}: {created}");
        assert_eq!(created["mime_type"], mime_type, "{filename}");
        assert_eq!(created["size"], content.len(), "{filename}");
        assert_eq!(created["filename"], filename);
        let id = created["id"].as_str().unwrap();
        let (status, shown) = budi.get(&format!("/api/v1/media/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(shown, created);
        let response = budi
            .request(Method::GET, &format!("/api/v1/media/{id}/content"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], mime_type);
        let disposition = response.headers()["content-disposition"].to_str().unwrap();
        assert!(
            disposition.starts_with("attachment;") && disposition.contains(filename),
            "{disposition}"
        );
        assert_eq!(
            response.bytes().await.unwrap().as_ref(),
            content.as_slice(),
            "{filename}"
        );
    }
}

#[tokio::test]
async fn files_are_stored_under_their_id_and_named_safely() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;

    let (status, created) = upload(&budi, "../../etc/promo\t.png", &png()).await;

    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["filename"], "promo.png");
    let id = created["id"].as_str().unwrap();
    let stored = app.settings.data_dir.join("media").join(id);
    assert_eq!(std::fs::read(stored).unwrap(), png());
    assert!(!app.settings.data_dir.join("etc").exists());
    let (status, nameless) = upload(&budi, "", &pdf()).await;
    assert_eq!(status, StatusCode::CREATED, "{nameless}");
    assert_eq!(nameless["filename"], "upload.pdf");
}

#[tokio::test]
async fn content_that_is_not_what_its_name_says_is_refused() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let cases: [(&str, Vec<u8>); 6] = [
        ("promo.pdf", png()),
        ("surat.docx", xlsx()),
        ("harga.xlsx", docx()),
        (
            "brosur.pdf",
            b"<html><script>alert(1)</script></html>".to_vec(),
        ),
        ("virus.exe", png()),
        // The magic number of a compound file, and nothing of one.
        ("surat.doc", {
            let mut fake = vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
            fake.resize(2048, 0x41);
            fake
        }),
    ];

    for (filename, content) in cases {
        let (status, body) = upload(&budi, filename, &content).await;

        assert_eq!(status, StatusCode::BAD_REQUEST, "{filename}: {body}");
        assert_eq!(code(&body), "unsupported_file", "{filename}");
    }
    let count: i64 = sqlx::query_scalar("select count(*) from media")
        .fetch_one(&database(&app).await)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing refused is recorded");
}

async fn database(app: &TestApp) -> sqlx::PgPool {
    sqlx::PgPool::connect(&app.settings.database_url)
        .await
        .expect("database")
}

#[tokio::test]
async fn up_to_10_mib_is_accepted_and_a_byte_more_is_413() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let mut largest = pdf();
    largest.resize(MAX, b' ');
    let mut too_large = largest.clone();
    too_large.push(b' ');

    let (status, created) = upload(&budi, "besar.pdf", &largest).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["size"], MAX);

    let (status, body) = upload(&budi, "besar.pdf", &too_large).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(code(&body), "payload_too_large");

    // Far over: refused while it is read, in the same shape.
    let mut huge = pdf();
    huge.resize(3 * MAX, b' ');
    let (status, body) = upload(&budi, "besar.pdf", &huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(code(&body), "payload_too_large");
}

#[tokio::test]
async fn empty_files_missing_fields_and_other_bodies_are_400() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;

    let (status, body) = upload(&budi, "kosong.png", b"").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["details"]["field"], "file");

    let (status, body) =
        upload_form(&budi, "xyz", &form("xyz", "attachment", "a.png", &png())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(code(&body), "validation_failed");
    assert_eq!(body["error"]["details"]["field"], "file");

    let (a, b) = (png(), pdf());
    let two = form_of("xyz", &[("file", "a.png", &a), ("file", "b.pdf", &b)]);
    let (status, body) = upload_form(&budi, "xyz", &two).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body) = budi
        .post("/api/v1/media", serde_json::json!({"file": "x"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(code(&body), "validation_failed");

    let (status, body) = upload_form(&budi, "xyz", b"--xyz\r\nnot a part").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(code(&body), "validation_failed");
}

#[tokio::test]
async fn media_of_another_tenant_is_not_found_and_uploads_need_credentials() {
    let app = TestApp::spawn().await;
    let budi = app.tenant("Toko Budi").await;
    let siti = app.tenant("Toko Siti").await;
    let (_, created) = upload(&budi, "promo.png", &png()).await;
    let id = created["id"].as_str().unwrap();

    for path in [
        format!("/api/v1/media/{id}"),
        format!("/api/v1/media/{id}/content"),
    ] {
        let (status, body) = siti.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(code(&body), "not_found");
    }
    let unknown = uuid::Uuid::now_v7();
    let (status, _) = budi.get(&format!("/api/v1/media/{unknown}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = budi.get("/api/v1/media/not-an-id/content").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = upload(&budi.with_auth(Auth::None), "promo.png", &png()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = budi
        .with_auth(Auth::None)
        .get(&format!("/api/v1/media/{id}"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
