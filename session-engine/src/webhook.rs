//! Why a webhook from a driver's peer (WAHA, the Cloud API) was refused.
//!
//! The API receives the webhooks; the drivers verify and read them
//! ([`crate::waha::WahaWebhookSink`], [`crate::cloud::CloudWebhookSink`]).
//! A refused webhook changes nothing.

/// Why a webhook was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No signature header.
    #[error("the webhook is not signed")]
    MissingSignature,
    /// Signed with an algorithm we do not accept.
    #[error("the webhook is signed with an unsupported algorithm: {0:?}")]
    UnsupportedAlgorithm(String),
    /// The signature is not hex (or not in the expected form).
    #[error("the webhook signature is malformed")]
    MalformedSignature,
    /// The signature does not match the body.
    #[error("the webhook signature does not match")]
    BadSignature,
    /// We have no key to check it with: nothing can be accepted.
    #[error("no webhook key is configured")]
    NoKey,
    /// Signed correctly but not a webhook we can read.
    #[error("the webhook body is malformed: {0}")]
    Malformed(String),
    /// For another session than the one it was delivered to.
    #[error("the webhook is for {0:?}, not this session")]
    OtherSession(String),
    /// The session's driver was dropped (the engine let go of it).
    #[error("the session is not running on this engine")]
    Gone,
}

impl WebhookError {
    /// Whether the sender failed to prove who it is (HTTP 401): the
    /// signature is missing, malformed or wrong, or cannot be checked.
    pub fn is_unauthorized(&self) -> bool {
        matches!(
            self,
            Self::MissingSignature
                | Self::UnsupportedAlgorithm(_)
                | Self::MalformedSignature
                | Self::BadSignature
                | Self::NoKey
        )
    }
}
