//! Read-your-writes. A command's answer carries the log position it was
//! written at in the `X-Wablast-Position` header (`events:123`). A read
//! first waits, at most [`MAX_WAIT`], until the projections it reads have
//! reached:
//!
//! - the position the request sends back in the same header, if any;
//! - the last position each of the caller's credentials (a user, an API
//!   key) was answered on each stream, remembered by this API process
//!   ([`RecentWrites`]), so that a client reads its own writes without
//!   echoing the header. The middleware [`remember_writes`] takes them from
//!   the answers as they leave.
//!
//! Without either, a read answers at once from what is projected. A read by
//! id that finds nothing may be of something another process or client
//! just wrote: before its 404 it waits, bounded, for the projections to
//! reach the end of the log as it is now ([`found_or_caught_up`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use sqlx::PgPool;
use wablast_projections::LogStream;
use wablast_projections::wait::{self, Position};

use crate::auth::Credential;
use crate::{ApiError, AppState, Caller};

/// The header carrying a log position, on answers and requests.
pub static POSITION_HEADER: HeaderName = HeaderName::from_static("x-wablast-position");

/// The longest a read waits for the projections.
pub const MAX_WAIT: Duration = Duration::from_secs(5);

/// How long a credential's writes are waited for by its reads: long past
/// any healthy lag of the projections (`/readyz` fails from 30 s), short
/// enough that stalled projections do not slow its reads for ever.
const REMEMBER_FOR: Duration = Duration::from_secs(60);

/// The most credentials remembered at once (about 64 bytes each): beyond,
/// the oldest are forgotten.
const MAX_REMEMBERED: usize = 100_000;

/// How often remembered writes are compared with the projections'
/// checkpoints, to forget those every projection has applied.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// The positions a read must reflect: the one the request named, and the
/// caller's own last writes.
#[derive(Clone, Debug, Default)]
pub struct After {
    positions: Vec<Position>,
}

impl After {
    /// A read that must reflect `position`.
    pub fn at(position: Position) -> Self {
        Self {
            positions: vec![position],
        }
    }

    /// Also reflects `position` (the later of two on the same stream).
    fn and(mut self, position: Position) -> Self {
        match self
            .positions
            .iter_mut()
            .find(|p| p.stream == position.stream)
        {
            Some(known) => known.sequence = known.sequence.max(position.sequence),
            None => self.positions.push(position),
        }
        self
    }

    /// Waits until `projections` reached the positions (bounded, all of
    /// them together, by [`MAX_WAIT`]). A read that timed out answers
    /// anyway: what is projected is still correct, only not yet this
    /// recent.
    ///
    /// Only the projections that read a position's stream wait for it: a
    /// read of `campaigns` after `messages:7` has nothing to wait for there.
    pub async fn wait(&self, pool: &PgPool, projections: &[&str]) -> Result<(), ApiError> {
        let deadline = tokio::time::Instant::now() + MAX_WAIT;
        for &position in &self.positions {
            let readers: Vec<&str> = projections
                .iter()
                .copied()
                .filter(|name| {
                    wablast_projections::by_name(name)
                        .is_none_or(|p| p.streams().contains(&position.stream))
                })
                .collect();
            if readers.is_empty() {
                continue;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let reached = wait::until_projected(pool, &readers, position, left)
                .await
                .map_err(ApiError::internal)?;
            if !reached {
                tracing::warn!(%position, projections = ?readers, "read answered before the projections caught up");
            }
        }
        Ok(())
    }
}

impl FromRequestParts<AppState> for After {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let mut after = match parts.headers.get(&POSITION_HEADER) {
            None => Self::default(),
            Some(value) => value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<Position>().ok())
                .map(Self::at)
                .ok_or_else(|| {
                    ApiError::validation(
                        "X-Wablast-Position must be a position an earlier answer gave (`events:123`)",
                    )
                })?,
        };
        state.recent_writes.prune_if_due(&state.db).await;
        // Handlers take their caller first (so this is the one they have);
        // one that is not authenticated is refused by its own extractor.
        if let Ok(caller) = Caller::from_request_parts(parts, state).await {
            for position in state.recent_writes.positions(caller.credential) {
                after = after.and(position);
            }
        }
        Ok(after)
    }
}

/// The header value of a position.
pub fn header_value(position: Position) -> (HeaderName, HeaderValue) {
    (
        POSITION_HEADER.clone(),
        HeaderValue::from_str(&position.to_string()).expect("a position is ASCII"),
    )
}

/// The last position each credential was answered on each stream, for a
/// while ([`REMEMBER_FOR`]); forgotten once every projection has applied it,
/// or when too many are remembered (the oldest first). In memory: each API
/// process remembers the writes it answered.
#[derive(Debug)]
pub struct RecentWrites {
    written: Mutex<HashMap<Credential, Written>>,
    started: Instant,
    /// Milliseconds after `started` when the next prune is due.
    next_prune: AtomicU64,
}

/// A credential's last writes.
#[derive(Clone, Copy, Debug)]
struct Written {
    /// Per stream of [`LogStream::ALL`], the last sequence (0: none).
    sequences: [u64; LogStream::ALL.len()],
    /// When the last was answered.
    at: Instant,
}

fn slot(stream: LogStream) -> usize {
    LogStream::ALL
        .iter()
        .position(|s| *s == stream)
        .expect("every stream is in ALL")
}

impl Default for RecentWrites {
    fn default() -> Self {
        Self {
            written: Mutex::default(),
            started: Instant::now(),
            next_prune: AtomicU64::new(0),
        }
    }
}

impl RecentWrites {
    /// Remembers that `credential` was answered a write at `position`.
    pub fn record(&self, credential: Credential, position: Position) {
        let now = Instant::now();
        let mut written = self.lock();
        let entry = written.entry(credential).or_insert(Written {
            sequences: [0; LogStream::ALL.len()],
            at: now,
        });
        let sequence = &mut entry.sequences[slot(position.stream)];
        *sequence = (*sequence).max(position.sequence);
        entry.at = now;
        if written.len() > MAX_REMEMBERED {
            evict(&mut written, now);
        }
    }

    /// The positions `credential`'s reads wait for.
    pub fn positions(&self, credential: Credential) -> Vec<Position> {
        let mut written = self.lock();
        let Some(entry) = written.get(&credential).copied() else {
            return Vec::new();
        };
        if entry.at.elapsed() > REMEMBER_FOR {
            written.remove(&credential);
            return Vec::new();
        }
        LogStream::ALL
            .into_iter()
            .zip(entry.sequences)
            .filter(|(_, sequence)| *sequence > 0)
            .map(|(stream, sequence)| Position { stream, sequence })
            .collect()
    }

    /// Forgets the positions at or before `reached` (per stream, where every
    /// projection is), and the credentials left with none.
    pub fn forget_projected(&self, reached: &[Position]) {
        self.lock().retain(|_, entry| {
            for position in reached {
                let sequence = &mut entry.sequences[slot(position.stream)];
                if *sequence <= position.sequence {
                    *sequence = 0;
                }
            }
            entry.sequences.iter().any(|s| *s > 0)
        });
    }

    /// How many credentials are remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Once every [`PRUNE_EVERY`], on whichever read comes first: forgets
    /// what every projection has applied. A failure to read the
    /// checkpoints only delays that.
    async fn prune_if_due(&self, pool: &PgPool) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let due = self.next_prune.load(Ordering::Relaxed);
        if now < due || self.is_empty() {
            return;
        }
        let next = now + u64::try_from(PRUNE_EVERY.as_millis()).unwrap_or(1_000);
        if self
            .next_prune
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        match wait::projected_by_all(pool).await {
            Ok(reached) => self.forget_projected(&reached),
            Err(err) => {
                tracing::debug!(error.message = %err, "remembered writes not pruned");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Credential, Written>> {
        // The map stays consistent whatever a panicking holder did: every
        // change is one insert, update or removal.
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Forgets what is too old, then, if still too many, the oldest quarter.
fn evict(written: &mut HashMap<Credential, Written>, now: Instant) {
    written.retain(|_, entry| now.duration_since(entry.at) <= REMEMBER_FOR);
    if written.len() > MAX_REMEMBERED {
        let mut ages: Vec<Instant> = written.values().map(|e| e.at).collect();
        let cut = ages.len() / 4;
        let (_, oldest_kept, _) = ages.select_nth_unstable(cut);
        let oldest_kept = *oldest_kept;
        written.retain(|_, entry| entry.at >= oldest_kept);
    }
}

/// Where the handler's extractor puts the caller, for
/// [`remember_writes`] to see once the answer is made.
#[derive(Clone, Debug, Default)]
pub struct CallerSlot(Arc<OnceLock<Caller>>);

impl CallerSlot {
    /// Keeps the request's caller (the first one given).
    pub fn set(&self, caller: Caller) {
        let _ = self.0.set(caller);
    }
}

/// Middleware: remembers, for the caller's credential, the position an
/// answer carries in `X-Wablast-Position` (a write of any route, answered
/// by a handler that knew its caller).
pub async fn remember_writes(
    State(recent): State<Arc<RecentWrites>>,
    mut request: Request,
    next: Next,
) -> Response {
    let slot = CallerSlot::default();
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).await;
    let position = response
        .headers()
        .get(&POSITION_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<Position>().ok());
    if let (Some(position), Some(caller)) = (position, slot.0.get()) {
        recent.record(caller.credential, position);
    }
    response
}

/// `read()`, and when it finds nothing, `read()` again once the
/// `projections` have applied every commit the log's stream holding
/// `aggregate_type` has now (waiting at most [`MAX_WAIT`]): a read by id
/// answers 404 only for what was not written before it was asked, by
/// anyone, through any API process.
pub async fn found_or_caught_up<T, F, Fut>(
    state: &AppState,
    aggregate_type: &str,
    projections: &[&str],
    mut read: F,
) -> Result<Option<T>, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, ApiError>>,
{
    if let Some(found) = read().await? {
        return Ok(Some(found));
    }
    let end = match wablast_workflows::layout::end_of_stream(&state.log, aggregate_type).await {
        Ok(end) => end,
        Err(err) => {
            // The 404 stands: what is projected is still right.
            tracing::warn!(error.message = %err, "the log's end unknown; answering from what is projected");
            return Ok(None);
        }
    };
    let readers: Vec<&str> = projections
        .iter()
        .copied()
        .filter(|name| {
            wablast_projections::by_name(name).is_none_or(|p| p.streams().contains(&end.stream))
        })
        .collect();
    if readers.is_empty() {
        return Ok(None);
    }
    let reached = wait::until_projected(&state.db, &readers, end, MAX_WAIT)
        .await
        .map_err(ApiError::internal)?;
    if !reached {
        tracing::warn!(position = %end, projections = ?readers, "not found before the projections caught up");
    }
    read().await
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn at(stream: LogStream, sequence: u64) -> Position {
        Position { stream, sequence }
    }

    #[test]
    fn a_credential_is_remembered_at_its_last_write_per_stream() {
        let recent = RecentWrites::default();
        let budi = Credential::User(Uuid::now_v7());
        let key = Credential::ApiKey(Uuid::now_v7());
        assert!(recent.positions(budi).is_empty());

        recent.record(budi, at(LogStream::Events, 7));
        recent.record(budi, at(LogStream::Events, 5));
        recent.record(budi, at(LogStream::Messages, 3));
        recent.record(key, at(LogStream::Events, 9));

        assert_eq!(
            recent.positions(budi),
            [at(LogStream::Events, 7), at(LogStream::Messages, 3)]
        );
        assert_eq!(recent.positions(key), [at(LogStream::Events, 9)]);
        assert_eq!(recent.len(), 2);
    }

    #[test]
    fn what_every_projection_applied_is_forgotten() {
        let recent = RecentWrites::default();
        let budi = Credential::User(Uuid::now_v7());
        let siti = Credential::User(Uuid::now_v7());
        recent.record(budi, at(LogStream::Events, 7));
        recent.record(budi, at(LogStream::Messages, 3));
        recent.record(siti, at(LogStream::Events, 4));

        recent.forget_projected(&[at(LogStream::Events, 6), at(LogStream::Messages, 3)]);

        assert_eq!(recent.positions(budi), [at(LogStream::Events, 7)]);
        assert!(recent.positions(siti).is_empty());
        assert_eq!(recent.len(), 1);
        recent.forget_projected(&[at(LogStream::Events, 7)]);
        assert!(recent.is_empty());
    }

    #[test]
    fn too_many_credentials_forget_the_oldest() {
        let now = Instant::now();
        let mut written: HashMap<Credential, Written> = (0..MAX_REMEMBERED as u64 + 1)
            .map(|n| {
                (
                    Credential::ApiKey(Uuid::from_u128(u128::from(n))),
                    Written {
                        sequences: [n + 1, 0],
                        at: now + Duration::from_millis(n),
                    },
                )
            })
            .collect();
        evict(
            &mut written,
            now + Duration::from_millis(MAX_REMEMBERED as u64),
        );
        assert!(
            written.len() <= MAX_REMEMBERED * 3 / 4 + 1,
            "{}",
            written.len()
        );
        // The newest are kept.
        assert!(written.contains_key(&Credential::ApiKey(Uuid::from_u128(MAX_REMEMBERED as u128))));
        assert!(!written.contains_key(&Credential::ApiKey(Uuid::from_u128(0))));
    }

    #[test]
    fn a_read_reflects_the_later_of_two_positions_on_a_stream() {
        let after = After::at(at(LogStream::Events, 3))
            .and(at(LogStream::Events, 9))
            .and(at(LogStream::Messages, 2))
            .and(at(LogStream::Events, 4));
        assert_eq!(
            after.positions,
            [at(LogStream::Events, 9), at(LogStream::Messages, 2)]
        );
    }
}
