//! What the HTTP drivers ([`crate::waha`], [`crate::cloud`]) share: how a
//! request that failed becomes a [`SendError`] or a [`DriverError`].

use std::error::Error as _;
use std::time::Duration;

use reqwest::StatusCode;

use crate::driver::{DriverError, SendError};

/// How long a request may take when the configuration does not say.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The most of an answer that is read (answers here are small JSON).
const MAX_ANSWER: usize = 4 << 20;

/// A request that did not get a successful answer.
#[derive(Debug)]
pub(crate) enum CallError {
    /// No answer at all.
    Transport(reqwest::Error),
    /// The server answered with an error status; `message` is what it said.
    Status {
        status: StatusCode,
        message: String,
        body: serde_json::Value,
    },
}

impl CallError {
    /// For requests other than sends: everything is a failure, worded for
    /// the session's last error.
    pub(crate) fn into_driver_error(self, peer: &str) -> DriverError {
        match self {
            Self::Transport(e) => {
                DriverError::Failed(format!("{peer} unreachable: {}", describe(&e)))
            }
            Self::Status {
                status, message, ..
            } => DriverError::Failed(format!("{peer} answered {status}: {message}")),
        }
    }
}

/// The outcome of a send that got no answer. A connection that could not
/// be made carried nothing: worth retrying. Anything later (a timeout while
/// waiting for the answer, a connection dropped mid-request) may have
/// delivered the request: the outcome is unknown and must not be retried
/// silently.
pub(crate) fn transport_send_error(peer: &str, e: &reqwest::Error) -> SendError {
    if e.is_connect() {
        SendError::Transient(format!("{peer} unreachable: {}", describe(e)))
    } else if e.is_builder() {
        SendError::Permanent(format!("the request to {peer} could not be built: {e}"))
    } else {
        SendError::Unknown(format!(
            "no answer from {peer} after the request was sent: {}",
            describe(e)
        ))
    }
}

/// The error and its causes on one line (reqwest's own message alone says
/// "error sending request" and hides why).
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Sends `request` and reads a JSON answer (`null` for an empty body).
/// An error status becomes [`CallError::Status`] with the message the
/// server gave, found by `message_of`.
pub(crate) async fn call(
    request: reqwest::RequestBuilder,
    message_of: fn(&serde_json::Value) -> Option<String>,
) -> Result<serde_json::Value, CallError> {
    let mut response = request.send().await.map_err(CallError::Transport)?;
    let status = response.status();
    // Read at most MAX_ANSWER: a peer is not trusted with our memory.
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(CallError::Transport)? {
        if bytes.len() + chunk.len() > MAX_ANSWER {
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    let body = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
        })
    };
    if status.is_success() {
        return Ok(body);
    }
    let message = message_of(&body).unwrap_or_else(|| match &body {
        serde_json::Value::String(text) if !text.trim().is_empty() => truncate(text.trim(), 300),
        _ => status
            .canonical_reason()
            .unwrap_or("no reason given")
            .to_owned(),
    });
    Err(CallError::Status {
        status,
        message,
        body,
    })
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}
