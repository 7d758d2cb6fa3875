//! Checks of a whole contact list's numbers on WhatsApp, in the background
//! (`POST /api/v1/contact-lists/{id}/check`).
//!
//! A check ([`ListCheck`]) covers the list's contacts as they were when it
//! started, in row order. One process of the fleet (the holder of an
//! advisory lock, [`leadership`](crate::leadership)) works on every
//! running check, each in a task of its own, step by step:
//!
//! 1. the next contacts from the recorded row on; those the tenant checked
//!    in the last 7 days ([`number_checks::KEPT`]) are answered from that
//!    check, and never asked again;
//! 2. the first ones not known are asked through the check's session, by
//!    the engine that runs it ([`Verb::CheckNumbers`]), at that session's
//!    own pace for checks (by default one per 2 s with jitter, apart from
//!    its sends: bulk checks get numbers banned), as many as fit in
//!    [`ListCheckOptions::ask_within`]; the answers join the tenant's
//!    checks, which every list holding the number shows;
//! 3. the step is recorded ([`ListCheckCommand::Record`]: the first row
//!    not answered, the counts), which the event stream carries as
//!    `ListCheckProgressed`.
//!
//! A check cut off by a crash or a new leader goes on from the row its
//! last step recorded: answers given since are in the tenant's checks, so
//! nothing is asked twice. While its session is not ready (stopped,
//! reconnecting) or no engine runs it, a check waits; it fails when the
//! list or the session is deleted, the session is logged out, or its
//! driver cannot check numbers, and it completes when every row it covers
//! is answered.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use cqrs_es::AggregateError;
use sqlx::{Connection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use uuid::Uuid;
use wablast_domain::list_check::{CheckFailure, ListCheckCommand, ListCheckError, ListCheckStatus};
use wablast_domain::session::{Driver, SessionStatus};
use wablast_domain::types::phone::Phone;
use wablast_domain::types::{ListCheckId, TenantId};
use wablast_eventstore::{Actor, Backoff, CommandMetadata, EventLog};
use wablast_projections::queries::number_checks::{self, NumberCheck};
use wablast_projections::queries::{contact_lists, list_checks};

use crate::commands::{Commands, key};
use crate::control::{
    AskError, CheckNumbersRequest, CheckNumbersResponse, ControlErrorCode, Engines, Reply, Verb,
};

/// The advisory lock of the process that works on the checks.
const LOCK: &str = "wablast list checks";

/// How many contacts one step reads.
const STEP: i64 = 200;

/// How a check process works.
#[derive(Clone, Debug)]
pub struct ListCheckOptions {
    /// How often it looks for new checks (and for its lock).
    pub poll: Duration,
    /// How long one request to the engine may ask (the engine caps it at
    /// 30 s): the longest a step takes, and so the pace of progress events.
    pub ask_within: Duration,
    /// How long a check waits before trying again when its session is not
    /// ready or no engine answers for it.
    pub wait: Duration,
}

impl Default for ListCheckOptions {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(2),
            ask_within: Duration::from_secs(25),
            wait: Duration::from_secs(10),
        }
    }
}

/// The checks this process works on.
type Running = Arc<Mutex<HashSet<Uuid>>>;

/// The process that works on every running check.
#[derive(Clone)]
pub struct ListChecks {
    db: PgPool,
    commands: Commands,
    engines: Engines,
    actor: Actor,
    options: ListCheckOptions,
    running: Running,
}

/// Why a step did not get on.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Aggregate(String),
}

impl<E: std::error::Error> From<AggregateError<E>> for StepError {
    fn from(err: AggregateError<E>) -> Self {
        Self::Aggregate(err.to_string())
    }
}

/// What a step found.
enum Step {
    /// It recorded progress, or more is to be asked at once.
    Went,
    /// Its session cannot ask now: try again after a while.
    Wait(&'static str),
    /// The check ended (or was found ended).
    Ended,
}

impl ListChecks {
    /// The process, on this database and log, acting as `actor`.
    pub fn new(
        db: PgPool,
        commands: Commands,
        log: EventLog,
        actor: Actor,
        options: ListCheckOptions,
    ) -> Self {
        Self {
            db,
            commands,
            engines: Engines::of(&log),
            actor,
            options,
            running: Arc::default(),
        }
    }

    /// Works on checks until `shutdown`, as the one process that does or as
    /// a standby.
    pub async fn run(self, shutdown: CancellationToken) {
        crate::leadership::keep_leading("list checks", self.options.poll, &shutdown, || {
            self.lead(&shutdown)
        })
        .await;
    }

    /// Takes the lead and works while it holds it; `Ok` when another
    /// process has it.
    async fn lead(&self, shutdown: &CancellationToken) -> Result<(), sqlx::Error> {
        let Some(mut leadership) = crate::leadership::try_lead(&self.db, LOCK).await? else {
            debug!("another process checks contact lists; standing by");
            return Ok(());
        };
        info!("checking contact lists");
        let stop = shutdown.child_token();
        let _stop_workers = stop.clone().drop_guard();
        loop {
            for check in list_checks::running(&self.db).await? {
                self.work_on(check, &stop);
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(self.options.poll) => {
                    // Still the leader? A lost connection released the
                    // lock: the error stops every worker.
                    leadership.ping().await?;
                }
            }
        }
    }

    /// Gives a running check a task of its own, unless it has one.
    fn work_on(&self, check: list_checks::ListCheckRow, stop: &CancellationToken) {
        if !self.running.lock().expect("not poisoned").insert(check.id) {
            return;
        }
        let this = self.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let id = check.id;
            let tenant = TenantId::from_uuid(check.tenant_id);
            tokio::select! {
                () = stop.cancelled() => {}
                () = this.check(tenant, ListCheckId::from_uuid(id)) => {}
            }
            this.running.lock().expect("not poisoned").remove(&id);
        });
    }

    /// Works on one check until it ends.
    async fn check(&self, tenant: TenantId, id: ListCheckId) {
        let backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut failures = 0;
        loop {
            let pause = match self.step(tenant, id).await {
                Ok(Step::Went) => {
                    failures = 0;
                    continue;
                }
                Ok(Step::Ended) => return,
                Ok(Step::Wait(why)) => {
                    failures = 0;
                    debug!(check = %id, why, "list check waits");
                    self.options.wait
                }
                Err(err) => {
                    failures += 1;
                    warn!(check = %id, error = %wablast_eventstore::report::Chain(&err), "list check step failed; trying again");
                    backoff.after(failures)
                }
            };
            tokio::time::sleep(pause).await;
        }
    }

    /// One step of a check (see the module docs).
    async fn step(&self, tenant: TenantId, id: ListCheckId) -> Result<Step, StepError> {
        let check_key = key(tenant, id);
        let check = self.commands.list_checks.load(&check_key).await?.aggregate;
        if check.status() != Some(ListCheckStatus::Running) {
            return Ok(Step::Ended);
        }
        let (Some(list), Some(session_id)) = (check.list_id(), check.session_id()) else {
            return Ok(Step::Ended);
        };
        if contact_lists::facts(&self.db, tenant, list)
            .await?
            .is_none()
        {
            return self.end(tenant, id, Some(CheckFailure::ListDeleted)).await;
        }
        let session = self
            .commands
            .sessions
            .load(&key(tenant, session_id))
            .await?
            .aggregate;
        if !session.exists() || session.is_deleted() {
            return self
                .end(tenant, id, Some(CheckFailure::SessionDeleted))
                .await;
        }
        if session.driver() == Driver::Cloud {
            return self.end(tenant, id, Some(CheckFailure::Unsupported)).await;
        }
        if session.status() == SessionStatus::LoggedOut {
            return self
                .end(tenant, id, Some(CheckFailure::SessionLoggedOut))
                .await;
        }

        let from = check.next_row().max(1);
        let contacts =
            list_checks::contacts_from(&self.db, tenant, list, from, check.last_row(), STEP)
                .await?;
        if contacts.is_empty() {
            return self.end(tenant, id, None).await;
        }
        let phones: Vec<String> = contacts.iter().map(|(_, phone)| phone.clone()).collect();
        let mut answers: HashMap<String, bool> =
            number_checks::fresh(&self.db, tenant, &phones, Utc::now() - number_checks::KEPT)
                .await?
                .into_iter()
                .map(|check| (check.phone, check.on_whatsapp))
                .collect();
        // The numbers not known, in row order (a stored contact's number is
        // E.164: one that is not is passed over, as no number).
        let unknown: Vec<Phone> = contacts
            .iter()
            .filter(|(_, phone)| !answers.contains_key(phone))
            .filter_map(|(_, phone)| phone.parse().ok())
            .collect();
        let mut waiting = None;
        if !unknown.is_empty() {
            if !session.is_ready() {
                waiting = Some("the session is not ready");
            } else {
                match self.ask(tenant, session_id, unknown).await? {
                    Ok(checked) => {
                        number_checks::record(&self.db, tenant, session_id, &checked).await?;
                        answers.extend(
                            checked
                                .into_iter()
                                .map(|check| (check.phone, check.on_whatsapp)),
                        );
                    }
                    Err(Some(failure)) => return self.end(tenant, id, Some(failure)).await,
                    Err(None) => waiting = Some("the session cannot ask now"),
                }
            }
        }

        // The rows answered, from the first on, up to the first that is not.
        let (mut on, mut off, mut next_row) = (0, 0, from);
        for (row, phone) in &contacts {
            match answers.get(phone) {
                Some(true) => on += 1,
                Some(false) => off += 1,
                None if phone.parse::<Phone>().is_err() => {}
                None => break,
            }
            next_row = row + 1;
        }
        if next_row > from {
            let recorded = self
                .commands
                .list_checks
                .execute(
                    &check_key,
                    ListCheckCommand::Record {
                        next_row,
                        on_whatsapp: on,
                        not_on_whatsapp: off,
                        at: Utc::now(),
                    },
                    &CommandMetadata::new(self.actor.clone()),
                )
                .await;
            match recorded {
                Ok(_) => {}
                // Cancelled meanwhile.
                Err(AggregateError::UserError(ListCheckError::Ended(_))) => return Ok(Step::Ended),
                Err(err) => return Err(err.into()),
            }
            return Ok(Step::Went);
        }
        Ok(waiting.map_or(Step::Went, Step::Wait))
    }

    /// Asks the engine running `session` about `phones`: the answers, or
    /// why the check cannot go on (`Some`), or that it must wait (`None`).
    async fn ask(
        &self,
        tenant: TenantId,
        session: wablast_domain::types::SessionId,
        phones: Vec<Phone>,
    ) -> Result<Result<Vec<NumberCheck>, Option<CheckFailure>>, StepError> {
        let within = self.options.ask_within;
        let reply = self
            .engines
            .ask::<_, CheckNumbersResponse>(
                tenant,
                session,
                Verb::CheckNumbers,
                &self.actor.to_string(),
                &CheckNumbersRequest {
                    phones,
                    within_ms: u64::try_from(within.as_millis()).unwrap_or(u64::MAX),
                },
                within + Duration::from_secs(5),
            )
            .await;
        Ok(match reply {
            Ok(Reply::Ok(answer)) => Ok(answer
                .checked
                .into_iter()
                .map(|c| NumberCheck {
                    phone: c.phone.as_str().to_owned(),
                    on_whatsapp: c.on_whatsapp,
                    chat_id: c.chat_id,
                    checked_at: c.checked_at,
                })
                .collect()),
            Ok(Reply::Error(refusal)) => match refusal.code {
                ControlErrorCode::Unsupported => Err(Some(CheckFailure::Unsupported)),
                code => {
                    debug!(
                        ?code,
                        message = refusal.message,
                        "the engine did not check numbers"
                    );
                    Err(None)
                }
            },
            Err(AskError::Unreachable(err)) => {
                debug!(error = %err, "no engine checks numbers for the session");
                Err(None)
            }
            Err(err @ AskError::Unreadable(_)) => {
                return Err(StepError::Aggregate(err.to_string()));
            }
        })
    }

    /// Ends a check: completed (`None`) or failed.
    async fn end(
        &self,
        tenant: TenantId,
        id: ListCheckId,
        failure: Option<CheckFailure>,
    ) -> Result<Step, StepError> {
        let at = Utc::now();
        let command = match failure {
            None => ListCheckCommand::Complete { at },
            Some(reason) => ListCheckCommand::Fail { reason, at },
        };
        match self
            .commands
            .list_checks
            .execute(
                &key(tenant, id),
                command,
                &CommandMetadata::new(self.actor.clone()),
            )
            .await
        {
            Ok(_) | Err(AggregateError::UserError(ListCheckError::Ended(_))) => {
                info!(check = %id, %tenant, failure = failure.map(CheckFailure::as_str), "list check ended");
                Ok(Step::Ended)
            }
            Err(err) => Err(err.into()),
        }
    }
}
