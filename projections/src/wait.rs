//! Read-your-writes: a command's answer names the position it was written
//! at ([`Position`]); a read that carries it first waits, bounded, until the
//! projections it reads have reached it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;

use crate::{LogStream, ProjectionError, checkpoint};

/// A position in the event log: a stream and a sequence in it. Written
/// `events:123`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// The stream.
    pub stream: LogStream,
    /// The stream sequence of the commit.
    pub sequence: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.stream.name(), self.sequence)
    }
}

/// A position that is not `<stream>:<sequence>`.
#[derive(Debug, thiserror::Error)]
#[error("a log position is `events:<sequence>` or `messages:<sequence>`, not {0:?}")]
pub struct PositionError(String);

impl FromStr for Position {
    type Err = PositionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PositionError(s.to_owned());
        let (stream, sequence) = s.split_once(':').ok_or_else(bad)?;
        Ok(Self {
            stream: LogStream::parse(stream).ok_or_else(bad)?,
            sequence: sequence.parse().map_err(|_| bad())?,
        })
    }
}

/// Waits until every one of `projections` that reads the position's stream
/// has its checkpoint at or past it, or `timeout` passed.
///
/// # Returns
/// Whether they reached it (a read after `false` may miss the write; the
/// caller decides whether to answer anyway).
pub async fn until_projected(
    pool: &PgPool,
    projections: &[&str],
    position: Position,
    timeout: Duration,
) -> Result<bool, ProjectionError> {
    let reached = || async {
        for name in projections {
            if checkpoint::read(pool, name, position.stream).await? < position.sequence {
                return Ok::<bool, ProjectionError>(false);
            }
        }
        Ok(true)
    };
    if reached().await? {
        return Ok(true);
    }
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(checkpoint::NOTIFY_CHANNEL).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // Checked again after listening: a move just before is not missed.
        if reached().await? {
            return Ok(true);
        }
        // A notification, or a poll now and then in case one was lost.
        let wait = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .min(Duration::from_millis(250));
        if wait.is_zero() {
            return Ok(false);
        }
        let _ = tokio::time::timeout(wait, listener.recv()).await;
    }
}

/// Per stream, the position every projection reading it has reached (the
/// lowest of their checkpoints; 0 for one without a checkpoint yet): a
/// read of any of them sees every commit up to it.
pub async fn projected_by_all(pool: &PgPool) -> Result<Vec<Position>, ProjectionError> {
    let checkpoints = checkpoint::all(pool).await?;
    let projections = crate::all();
    Ok(LogStream::ALL
        .into_iter()
        .map(|stream| {
            let sequence = projections
                .iter()
                .filter(|p| p.streams().contains(&stream))
                .map(|p| {
                    checkpoints
                        .iter()
                        .find(|c| c.projection == p.name() && c.stream == stream.name())
                        .map_or(0, |c| u64::try_from(c.stream_sequence).unwrap_or(0))
                })
                .min()
                .unwrap_or(0);
            Position { stream, sequence }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_read_and_write_as_stream_and_sequence() {
        let p: Position = "events:42".parse().unwrap();
        assert_eq!(
            p,
            Position {
                stream: LogStream::Events,
                sequence: 42
            }
        );
        assert_eq!(p.to_string(), "events:42");
        assert_eq!(
            "messages:7".parse::<Position>().unwrap().stream,
            LogStream::Messages
        );
        for bad in [
            "",
            "events",
            "events:",
            "events:x",
            "wallets:1",
            "events:-1",
            ":1",
        ] {
            assert!(bad.parse::<Position>().is_err(), "{bad:?}");
        }
    }
}
