//! How far behind each projection is: per projection and stream, the
//! stream's last sequence minus the checkpoint, and how long the oldest
//! event not yet projected has been waiting.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use wablast_eventstore::{EventLog, EventStoreError};

use crate::{LogStream, Projection, ProjectionError, StreamName, checkpoint};

/// One projection's lag on one stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Lag {
    /// The projection.
    pub projection: &'static str,
    /// The stream.
    pub stream: LogStream,
    /// The stream's last sequence.
    pub last_sequence: u64,
    /// The projection's checkpoint on it.
    pub checkpoint: u64,
    /// When the oldest commit not yet projected was written (`None`: caught
    /// up).
    pub oldest_unprojected_at: Option<DateTime<Utc>>,
}

impl Lag {
    /// Commits not yet projected.
    pub fn behind(&self) -> u64 {
        self.last_sequence.saturating_sub(self.checkpoint)
    }

    /// Seconds the oldest commit not yet projected has waited (0 when caught
    /// up).
    pub fn age_seconds(&self, now: DateTime<Utc>) -> f64 {
        self.oldest_unprojected_at
            .map_or(0.0, |at| (now - at).as_seconds_f64().max(0.0))
    }
}

/// The lag of every projection given on every stream it reads.
pub async fn measure(
    pool: &PgPool,
    log: &EventLog,
    projections: &[std::sync::Arc<dyn Projection>],
) -> Result<Vec<Lag>, ProjectionError> {
    let checkpoints = checkpoint::all(pool).await?;
    let mut lags = Vec::new();
    for stream in LogStream::ALL {
        let js_stream = log.stream(&stream.full_name(log.prefix()))?;
        let state = js_stream
            .get_info()
            .await
            .map_err(EventStoreError::nats)?
            .state;
        for projection in projections.iter().filter(|p| p.streams().contains(&stream)) {
            let checkpoint = checkpoints
                .iter()
                .find(|c| c.projection == projection.name() && c.stream == stream.name())
                .map_or(0, |c| c.stream_sequence as u64);
            let oldest_unprojected_at = if state.last_sequence > checkpoint {
                // Messages aged out of a stream with a retention are gone;
                // the oldest one left is the oldest waiting.
                let next = (checkpoint + 1).max(state.first_sequence);
                match js_stream.direct_get(next).await {
                    Ok(message) => Some(message.time),
                    Err(_) => None,
                }
            } else {
                None
            };
            lags.push(Lag {
                projection: projection.name(),
                stream,
                last_sequence: state.last_sequence,
                checkpoint,
                oldest_unprojected_at,
            });
        }
    }
    Ok(lags)
}
