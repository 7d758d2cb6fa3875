//! Stored credentials against a real PostgreSQL: sealed at rest, opened
//! only with the key, for the tenant and session they belong to.

use serde_json::json;
use sqlx::PgPool;
use wablast_domain::session::Driver;
use wablast_domain::types::{SessionId, TenantId};
use wablast_tests::TestDatabase;
use wablast_workflows::credentials::{self, CredentialsError, DriverCredentials, SecretKey};

async fn migrated() -> (TestDatabase, PgPool) {
    let db = TestDatabase::create().await;
    let pool = PgPool::connect(&db.url).await.expect("connects");
    wablast_migrations::run(&pool)
        .await
        .expect("migrations apply");
    (db, pool)
}

/// A WAHA config is stored with its key sealed, read back whole by its
/// tenant with the right key, and by no one else.
#[tokio::test]
async fn credentials_are_sealed_at_rest_and_open_only_for_their_session() {
    let (_db, pool) = migrated().await;
    let key = SecretKey::new([9; 32]);
    let tenant = TenantId::new();
    let session = SessionId::new();
    let creds = DriverCredentials::from_request(
        Driver::Waha,
        Some(json!({"base_url": "https://waha.example.com", "api_key": "sangat-rahasia", "session_name": "toko"})),
    )
    .unwrap()
    .unwrap();

    credentials::store(&pool, &key, tenant, session, &creds)
        .await
        .unwrap();

    let (config, secret): (serde_json::Value, Vec<u8>) =
        sqlx::query_as("select config, secret from session_credentials where session_id = $1")
            .bind(session.as_uuid())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        config,
        json!({"base_url": "https://waha.example.com/", "session_name": "toko"})
    );
    assert!(!secret.windows(6).any(|w| w == b"sangat"));

    assert_eq!(
        credentials::load(&pool, &key, tenant, session)
            .await
            .unwrap(),
        Some(creds.clone())
    );
    assert_eq!(
        credentials::load(&pool, &key, TenantId::new(), session)
            .await
            .unwrap(),
        None,
        "another tenant reads nothing"
    );
    assert!(matches!(
        credentials::load(&pool, &SecretKey::new([8; 32]), tenant, session).await,
        Err(CredentialsError::Undecryptable)
    ));

    // The row copied onto another session of the same tenant does not open.
    let other = SessionId::new();
    sqlx::query(
        "insert into session_credentials (session_id, tenant_id, driver, config, secret, created_at, updated_at)
         select $2, tenant_id, driver, config, secret, created_at, updated_at
         from session_credentials where session_id = $1",
    )
    .bind(session.as_uuid())
    .bind(other.as_uuid())
    .execute(&pool)
    .await
    .unwrap();
    assert!(matches!(
        credentials::load(&pool, &key, tenant, other).await,
        Err(CredentialsError::Undecryptable)
    ));

    let public = credentials::public_configs(&pool, tenant, &[*session.as_uuid()])
        .await
        .unwrap();
    assert_eq!(public[session.as_uuid()]["session_name"], "toko");

    assert!(
        !credentials::delete(&pool, TenantId::new(), session)
            .await
            .unwrap()
    );
    assert!(credentials::delete(&pool, tenant, session).await.unwrap());
    assert_eq!(
        credentials::load(&pool, &key, tenant, session)
            .await
            .unwrap(),
        None
    );
}
