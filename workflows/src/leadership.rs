//! One process at a time: a PostgreSQL advisory lock held on a connection
//! of its own, for the processes that must run once in a fleet of engines
//! (webhook delivery, list checks). Another process that asks while it is
//! held stands by; a lost connection releases it, so a dead leader is
//! replaced.

use sqlx::{Connection, PgConnection, PgPool};

/// The lock `name`, held while the returned connection lives (ping it to
/// find out whether it still does); `None` when another process holds it.
pub async fn try_lead(db: &PgPool, name: &str) -> Result<Option<PgConnection>, sqlx::Error> {
    let mut connection = db.acquire().await?.detach();
    let got: bool = sqlx::query_scalar("select pg_try_advisory_lock(hashtext($1))")
        .bind(name)
        .fetch_one(&mut connection)
        .await?;
    if got {
        Ok(Some(connection))
    } else {
        // Closed, not returned to the pool: it holds nothing.
        connection.close().await?;
        Ok(None)
    }
}
