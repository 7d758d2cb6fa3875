//! Endings: a session logged out or deleted is logged out of, or removed
//! from, its driver's server (a WAHA server keeps sessions of its own)
//! whether an engine was running it or not.
//!
//! The engine running a session logs it out or deletes it through its
//! driver before it gives the lease up ([`Engine::release`]). That leaves
//! the sessions no engine runs (stopped, failed, their engine gone) linked
//! on their server, so every session commit also goes through one durable
//! consumer the engines share (`session-endings`): each logout and delete
//! is carried out by one engine, also one made while no engine ran. It
//! waits for the session's lease to be free (a dead engine's expires within
//! its TTL), takes it, so that no engine starts the session meanwhile,
//! connects a driver from the session's stored credentials, logs out or
//! deletes, and gives the lease back; a deleted session's credentials are
//! deleted once its server forgot it. A session that was running is so
//! told twice, which a WAHA server takes as once (its stop, logout and
//! delete are idempotent), and a logout or delete its running engine could
//! not carry out is tried again. A server that cannot be reached is tried
//! again with back-off; one that refuses (a key no longer valid) is given
//! up on, saying so.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::DeliverPolicy;
use cqrs_es::Aggregate;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use wablast_domain::session::{Driver as DriverKind, Fence, Session, SessionEvent, SessionStatus};
use wablast_domain::types::{SessionId, TenantId};
use wablast_eventstore::{
    ConsumerSpec, Delivery, EventLog, EventStoreError, WorkError, Worker, run_consumer,
};
use wablast_workflows::commands::key;
use wablast_workflows::credentials;

use super::{Ending, Engine, NotConnected};
use crate::driver::DriverError;
use crate::lease::Lease;

/// The consumer's durable name.
const CONSUMER: &str = "session-endings";

/// How many lease TTLs an ending waits for a session's lease to be free
/// before it gives the delivery back: a dead engine's lease expires within
/// one.
const LEASE_WAIT_TTLS: u32 = 2;

/// How often a held lease is looked at again.
const LEASE_POLL: Duration = Duration::from_millis(250);

/// The durable consumer of every session commit.
fn consumer(log: &EventLog, lease_ttl: Duration) -> Result<ConsumerSpec, EventStoreError> {
    let mut spec = ConsumerSpec::new(CONSUMER, log.stream_name_of(Session::TYPE)?);
    spec.filter_subject = log.prefix().aggregate_type_subjects(Session::TYPE);
    // A session reaches a driver's server only through an engine, which
    // created this consumer before: the log's earlier endings need none.
    spec.deliver_policy = DeliverPolicy::New;
    // The wait for the lease, then two requests to the server.
    spec.ack_wait =
        lease_ttl * LEASE_WAIT_TTLS + 2 * crate::http::DEFAULT_TIMEOUT + LEASE_POLL * 40;
    // A server away is tried for about a quarter of an hour.
    spec.max_deliveries = 20;
    spec.batch = 16;
    spec.max_ack_pending = 64;
    Ok(spec)
}

/// Runs the endings consumer until `shutdown`, starting it again when it
/// stops on an error.
pub(super) async fn run(engine: Arc<Engine>, shutdown: CancellationToken) {
    let spec = match consumer(&engine.log, engine.config.lease_ttl) {
        Ok(spec) => spec,
        Err(err) => {
            warn!(error = %wablast_eventstore::report::Chain(&err), "session endings not run: no stream for sessions");
            return;
        }
    };
    let log = engine.log.clone();
    let endings = Endings { engine };
    loop {
        match run_consumer(&log, &spec, &endings, shutdown.clone()).await {
            Ok(()) => return,
            Err(err) => {
                warn!(error = %wablast_eventstore::report::Chain(&err), "session endings stopped; starting them again");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        }
    }
}

struct Endings {
    engine: Arc<Engine>,
}

impl Worker for Endings {
    async fn handle(&self, delivery: &Delivery) -> Result<(), WorkError> {
        for recorded in delivery.events().map_err(WorkError::fatal)? {
            let event = self
                .engine
                .sessions
                .decode(recorded.clone())
                .map_err(WorkError::fatal)?;
            let ending = match event {
                SessionEvent::SessionLoggedOut { .. } => Ending::Logout,
                SessionEvent::SessionDeleted { .. } => Ending::Delete,
                _ => continue,
            };
            let key = recorded.key().map_err(WorkError::fatal)?;
            let tenant: TenantId = key
                .tenant()
                .parse()
                .map_err(|_| WorkError::fatal("a session's tenant is a UUID"))?;
            let session: SessionId = key
                .id()
                .parse()
                .map_err(|_| WorkError::fatal("a session's id is a UUID"))?;
            self.engine.end(tenant, session, ending).await?;
        }
        Ok(())
    }
}

impl Engine {
    /// Logs the session out of, or deletes it from, its driver's server,
    /// holding its lease meanwhile.
    #[tracing::instrument(name = "session ending", skip(self), fields(%session))]
    async fn end(
        &self,
        tenant: TenantId,
        session: SessionId,
        ending: Ending,
    ) -> Result<(), WorkError> {
        let state = self
            .sessions
            .load(&key(tenant, session))
            .await
            .map_err(WorkError::retryable)?
            .aggregate;
        if ending == Ending::Logout
            && (state.is_deleted() || state.status() != SessionStatus::LoggedOut)
        {
            // Deleted since (the delete ends it), or started again: its new
            // run links it anew.
            debug!("logged out, then started again or deleted: nothing to end");
            return Ok(());
        }
        if state.driver() == DriverKind::Simulator {
            // The simulated network keeps nothing of a session it does not
            // run.
            return Ok(());
        }
        let Some(lease) = self.free_lease(session).await? else {
            return Err(WorkError::retryable(
                "the session's lease is still held: its engine has not let go of it",
            ));
        };
        let outcome = self
            .end_on_server(tenant, session, &state, ending, lease.fence())
            .await;
        if let Err(err) = self.leases.release(lease).await {
            debug!(error = %wablast_eventstore::report::Chain(&err), "lease not released; it expires by itself");
        }
        outcome
    }

    /// Takes the session's lease once no engine holds it, waiting at most
    /// [`LEASE_WAIT_TTLS`] lease TTLs.
    async fn free_lease(&self, session: SessionId) -> Result<Option<Lease>, WorkError> {
        let id = session.to_string();
        let give_up = tokio::time::Instant::now() + self.config.lease_ttl * LEASE_WAIT_TTLS;
        loop {
            // Looked at first: `acquire` takes a lease this engine holds
            // back (its own from before a restart), and this engine may be
            // the one still releasing the session.
            let held = self
                .leases
                .current(&id)
                .await
                .map_err(WorkError::retryable)?
                .is_some();
            if !held
                && let Some(lease) = self
                    .leases
                    .acquire(&id)
                    .await
                    .map_err(WorkError::retryable)?
            {
                return Ok(Some(lease));
            }
            if tokio::time::Instant::now() >= give_up {
                return Ok(None);
            }
            tokio::time::sleep(LEASE_POLL).await;
        }
    }

    async fn end_on_server(
        &self,
        tenant: TenantId,
        session: SessionId,
        state: &Session,
        ending: Ending,
        fence: Fence,
    ) -> Result<(), WorkError> {
        let connection = match self.connect(tenant, session, state, fence).await {
            Ok((connection, _webhooks)) => connection,
            Err(NotConnected::Later(err)) => return Err(WorkError::retryable(err)),
            Err(NotConnected::Refused(reason)) => {
                // No credentials (deleted with the session, or never
                // stored): nothing to reach its server with.
                debug!(%reason, "no driver to end the session with");
                return Ok(());
            }
        };
        let result = match ending {
            Ending::Logout => connection.driver.logout().await,
            Ending::Delete => connection.driver.delete().await,
            Ending::Stop => connection.driver.stop().await,
        };
        match result {
            Ok(()) => info!(?ending, "the session's driver's server was told"),
            Err(err @ DriverError::Failed(_)) => return Err(WorkError::retryable(err)),
            Err(err) => {
                warn!(error = %wablast_eventstore::report::Chain(&err), ?ending,
                    "the session's driver's server refused its ending; given up")
            }
        }
        if ending == Ending::Delete {
            credentials::delete(&self.db, tenant, session)
                .await
                .map_err(WorkError::retryable)?;
        }
        Ok(())
    }
}
