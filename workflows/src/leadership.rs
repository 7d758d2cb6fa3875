//! One process at a time: a PostgreSQL advisory lock held on a connection
//! of its own, for the processes that must run once in a fleet of engines
//! (webhook delivery, list checks). Another process that asks while it is
//! held stands by; a lost connection releases it, so a dead leader is
//! replaced.

use std::future::Future;
use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::warn;
use wablast_eventstore::Backoff;

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

/// Runs `lead` (which leads while it holds the lock, or stands by) again
/// and again until `shutdown`: `pause` after it returned, a growing
/// back-off after it failed (`what` names it in the log).
pub async fn keep_leading<Lead, Led>(
    what: &str,
    pause: Duration,
    shutdown: &CancellationToken,
    mut lead: Lead,
) where
    Lead: FnMut() -> Led,
    Led: Future<Output = Result<(), sqlx::Error>>,
{
    let backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let mut failures = 0;
    while !shutdown.is_cancelled() {
        match lead().await {
            Ok(()) => failures = 0,
            Err(err) => {
                failures += 1;
                warn!(error = %wablast_eventstore::report::Chain(&err), "{what} stopped; starting again");
            }
        }
        let pause = if failures == 0 {
            pause
        } else {
            backoff.after(failures)
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}
