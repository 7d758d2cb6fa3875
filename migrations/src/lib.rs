//! The sqlx migrations of wablast's query tables (`sql/`), embedded in the
//! binary. The events themselves live in JetStream; PostgreSQL holds only
//! what can be rebuilt from them (projections and their checkpoints) and the
//! plain tables that are not event-sourced (contacts, API keys).
//!
//! Applied files are never edited: a change is a new migration.

use sqlx::migrate::{MigrateDatabase, MigrateError, Migrator};
use sqlx::{PgPool, Postgres};

/// Every migration in `migrations/sql`, in order.
pub static MIGRATOR: Migrator = sqlx::migrate!("./sql");

/// Creates the database named in `database_url` if it does not exist yet.
///
/// # Returns
/// Whether it had to be created.
pub async fn ensure_database(database_url: &str) -> Result<bool, sqlx::Error> {
    if Postgres::database_exists(database_url).await? {
        return Ok(false);
    }
    match Postgres::create_database(database_url).await {
        Ok(()) => Ok(true),
        // Another process created it in the meantime.
        Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some("42P04") => Ok(false),
        Err(err) => Err(err),
    }
}

/// Applies every pending migration.
pub async fn run(pool: &PgPool) -> Result<(), MigrateError> {
    MIGRATOR.run(pool).await
}
