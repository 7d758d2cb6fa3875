//! The contact store against a real PostgreSQL: an import through
//! `contacts::import`, `list_for_campaign` (what campaign creation reads),
//! tenant scoping, soft delete, a failed import leaving nothing, and
//! concurrent additions to one list.

use chrono::Utc;
use sqlx::PgPool;
use uuid::Uuid;
use wablast_api::contacts::{self, Mapping, Upload, store};
use wablast_domain::types::phone::Region;
use wablast_domain::types::{ContactListId, TenantId};
use wablast_tests::TestDatabase;

async fn tenant(pool: &PgPool, name: &str) -> TenantId {
    let id = TenantId::new();
    sqlx::query("insert into tenants (id, name, created_at) values ($1, $2, $3)")
        .bind(id.as_uuid())
        .bind(name)
        .bind(Utc::now())
        .execute(pool)
        .await
        .unwrap();
    id
}

fn upload(dir: &tempfile::TempDir, name: &str, content: &[u8]) -> Upload {
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    Upload {
        path,
        filename: Some(name.to_owned()),
        name: name.to_owned(),
        mapping: Mapping::default(),
        region: Region::ID,
    }
}

#[tokio::test]
async fn a_list_is_found_for_campaigns_by_its_tenant_only_until_deleted() {
    // Arrange
    let db = TestDatabase::create().await;
    let pool = PgPool::connect(&db.url).await.unwrap();
    wablast_migrations::run(&pool).await.unwrap();
    let budi = tenant(&pool, "Toko Budi").await;
    let siti = tenant(&pool, "Toko Siti").await;
    let dir = tempfile::tempdir().unwrap();
    let csv = b"phone,name,consent,kota,diskon\n\
                0812 3456 7890,Budi,ya,Bandung,10%\n\
                0813 1111 2222,Siti,tidak,Jakarta,5%\n\
                0814 4444 5555,Andi,ya,Medan,0\n";

    // Act
    let imported = contacts::import(&pool, budi, upload(&dir, "kontak.csv", csv))
        .await
        .unwrap();
    let id = ContactListId::from_uuid(imported.id);

    // Assert
    assert_eq!(
        store::list_for_campaign(&pool, budi, id).await.unwrap(),
        Some(store::ListSummary {
            id: imported.id,
            name: "kontak.csv".to_owned(),
            columns: vec!["kota".to_owned(), "diskon".to_owned()],
            accepted: 2,
        })
    );
    assert_eq!(
        store::list_for_campaign(&pool, siti, id).await.unwrap(),
        None
    );
    let unknown = ContactListId::from_uuid(Uuid::now_v7());
    assert_eq!(
        store::list_for_campaign(&pool, budi, unknown)
            .await
            .unwrap(),
        None
    );
    assert!(!store::delete(&pool, siti, imported.id).await.unwrap());
    assert!(store::delete(&pool, budi, imported.id).await.unwrap());
    assert_eq!(
        store::list_for_campaign(&pool, budi, id).await.unwrap(),
        None
    );
    pool.close().await;
}

#[tokio::test]
async fn a_file_refused_after_rows_were_stored_leaves_nothing() {
    // Arrange
    let db = TestDatabase::create().await;
    let pool = PgPool::connect(&db.url).await.unwrap();
    wablast_migrations::run(&pool).await.unwrap();
    let budi = tenant(&pool, "Toko Budi").await;
    let dir = tempfile::tempdir().unwrap();
    let mut csv = b"phone,consent\n".to_vec();
    for i in 0..(contacts::BATCH * 2 + 10) {
        csv.extend_from_slice(format!("0812{i:08},ya\n").as_bytes());
    }
    csv.extend_from_slice(b"0813 1111 2222,\xff\n");

    // Act
    let err = contacts::import(&pool, budi, upload(&dir, "kontak.csv", &csv))
        .await
        .unwrap_err();

    // Assert
    assert_eq!(err.code(), wablast_api::ErrorCode::UnsupportedFile);
    let (lists, stored): (i64, i64) = sqlx::query_as(
        "select (select count(*) from contact_lists), (select count(*) from contacts)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((lists, stored), (0, 0));
    pool.close().await;
}

#[tokio::test]
async fn concurrent_additions_to_one_list_take_turns_and_never_add_a_number_twice() {
    // Arrange
    let db = TestDatabase::create().await;
    let pool = PgPool::connect(&db.url).await.unwrap();
    wablast_migrations::run(&pool).await.unwrap();
    let budi = tenant(&pool, "Toko Budi").await;
    let entries = |json: serde_json::Value| {
        serde_json::from_value::<contacts::edit::Entries>(json)
            .unwrap()
            .0
    };
    let list = contacts::edit::create(
        &pool,
        budi,
        "Pelanggan".to_owned(),
        Region::ID,
        entries(serde_json::json!([{"phone": "0812 3456 7890", "consent": true}])),
    )
    .await
    .unwrap();

    // Act: eight requests at once, each with its own number and one they
    // all share.
    let added = futures::future::join_all((0..8).map(|i| {
        let rows = entries(serde_json::json!([
            {"phone": format!("0813 0000 000{i}"), "consent": true},
            {"phone": "0814 4444 5555", "consent": true},
        ]));
        contacts::edit::add(&pool, budi, list.id, Region::ID, rows)
    }))
    .await;

    // Assert
    let accepted: u32 = added.iter().map(|a| a.as_ref().unwrap().accepted).sum();
    assert_eq!(accepted, 9, "eight own numbers and the shared one once");
    let (contacts, rows, phones): (i64, i64, i64) = sqlx::query_as(
        "select count(*), count(distinct row_number), count(distinct phone)
         from contacts where list_id = $1",
    )
    .bind(list.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((contacts, rows, phones), (10, 10, 10));
    let (total_rows, counted, rejected): (i32, i32, i32) =
        sqlx::query_as("select total_rows, accepted, rejected from contact_lists where id = $1")
            .bind(list.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((total_rows, counted, rejected), (17, 10, 7));
    pool.close().await;
}
