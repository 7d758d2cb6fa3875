//! Read-your-writes. A command's answer carries the log position it was
//! written at in the `X-Wablast-Position` header (`events:123`); a read that
//! sends it back in the same header first waits, at most
//! [`MAX_WAIT`], until the projections it reads have reached it. Without
//! the header a read answers at once from what is projected.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use sqlx::PgPool;
use wablast_projections::wait::{self, Position};

use crate::ApiError;

/// The header carrying a log position, on answers and requests.
pub static POSITION_HEADER: HeaderName = HeaderName::from_static("x-wablast-position");

/// The longest a read waits for the projections.
pub const MAX_WAIT: Duration = Duration::from_secs(5);

/// The position a read must reflect, if the request named one.
#[derive(Clone, Copy, Debug, Default)]
pub struct After(pub Option<Position>);

impl After {
    /// Waits until `projections` reached the position (bounded). A read
    /// that timed out answers anyway: what is projected is still correct,
    /// only not yet this recent.
    ///
    /// Only the projections that read the position's stream wait: a read
    /// of `campaigns` after `messages:7` has nothing to wait for there.
    pub async fn wait(&self, pool: &PgPool, projections: &[&str]) -> Result<(), ApiError> {
        if let Some(position) = self.0 {
            let projections: Vec<&str> = projections
                .iter()
                .copied()
                .filter(|name| {
                    wablast_projections::by_name(name)
                        .is_none_or(|p| p.streams().contains(&position.stream))
                })
                .collect();
            if projections.is_empty() {
                return Ok(());
            }
            let reached = wait::until_projected(pool, &projections, position, MAX_WAIT)
                .await
                .map_err(ApiError::internal)?;
            if !reached {
                tracing::warn!(%position, ?projections, "read answered before the projections caught up");
            }
        }
        Ok(())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for After {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(&POSITION_HEADER) else {
            return Ok(Self(None));
        };
        value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse::<Position>().ok())
            .map(|position| Self(Some(position)))
            .ok_or_else(|| {
                ApiError::validation(
                    "X-Wablast-Position must be a position an earlier answer gave (`events:123`)",
                )
            })
    }
}

/// The header value of a position.
pub fn header_value(position: Position) -> (HeaderName, HeaderValue) {
    (
        POSITION_HEADER.clone(),
        HeaderValue::from_str(&position.to_string()).expect("a position is ASCII"),
    )
}
