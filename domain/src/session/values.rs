//! The session's own value types: its name, the driver that connects it to
//! WhatsApp and how it logs in.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a session name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionNameError {
    /// Nothing left after trimming.
    #[error("session name must not be empty")]
    Empty,
    /// More than [`SessionName::MAX_CHARS`] characters after trimming.
    #[error("session name must be at most {max} characters, got {got}")]
    TooLong {
        /// Characters given (after trimming).
        got: usize,
        /// The most allowed.
        max: usize,
    },
    /// A control character (newline, tab, NUL, ...) inside the name.
    #[error("session name must not contain control characters")]
    ControlCharacter,
}

/// What the user calls a session ("CS Jakarta 1"): trimmed, 1 to 64
/// characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SessionName(String);

impl SessionName {
    /// The longest name, in characters (Unicode scalar values).
    pub const MAX_CHARS: usize = 64;

    /// Parses a name: surrounding whitespace is dropped, then 1 to
    /// [`SessionName::MAX_CHARS`] characters must remain.
    pub fn parse(input: &str) -> Result<Self, SessionNameError> {
        let name = input.trim();
        let chars = name.chars().count();
        if chars == 0 {
            return Err(SessionNameError::Empty);
        }
        if chars > Self::MAX_CHARS {
            return Err(SessionNameError::TooLong {
                got: chars,
                max: Self::MAX_CHARS,
            });
        }
        if name.chars().any(char::is_control) {
            return Err(SessionNameError::ControlCharacter);
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SessionName {
    type Error = SessionNameError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<SessionName> for String {
    fn from(name: SessionName) -> Self {
        name.0
    }
}

impl AsRef<str> for SessionName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What connects a session to WhatsApp: the engine's simulated network,
/// WhatsApp Web run in-process, a WAHA server, or Meta's Cloud API.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// The in-process WhatsApp network: no phone needed. The default.
    #[default]
    Simulator,
    /// WhatsApp Web multi-device, directly from Rust.
    Native,
    /// An existing WAHA server over its HTTP API.
    Waha,
    /// The official WhatsApp Business Cloud API.
    Cloud,
}

impl Driver {
    /// The API name: `simulator`, `native`, `waha` or `cloud`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Simulator => "simulator",
            Self::Native => "native",
            Self::Waha => "waha",
            Self::Cloud => "cloud",
        }
    }
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A session lease's fence: which lease bucket (the instant it was
/// created, in microseconds) and the revision the lease was taken at.
/// Fences are ordered, epoch first: revisions only grow within one bucket,
/// and a bucket created again (wiped, restored) has a later epoch, so a
/// later holder always has a later fence.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub struct Fence {
    /// When the lease bucket was created (microseconds since 1970).
    pub epoch: u64,
    /// The lease's revision when taken.
    pub revision: u64,
}

impl fmt::Display for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.epoch, self.revision)
    }
}

/// How a session links to a phone the first time (and after a logout).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LoginMethod {
    /// The phone scans a QR code. The default.
    #[default]
    Qr,
    /// The user types a pairing code on the phone ("link with phone number
    /// instead"); needs the phone number up front.
    Pairing,
}

impl LoginMethod {
    /// The API name: `qr` or `pairing`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Qr => "qr",
            Self::Pairing => "pairing",
        }
    }
}

impl fmt::Display for LoginMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_name_is_trimmed() {
        assert_eq!(
            SessionName::parse("  CS Jakarta 1 ").unwrap().as_str(),
            "CS Jakarta 1"
        );
    }

    #[test]
    fn a_blank_session_name_is_refused() {
        assert_eq!(SessionName::parse("   "), Err(SessionNameError::Empty));
        assert_eq!(SessionName::parse(""), Err(SessionNameError::Empty));
    }

    #[test]
    fn a_session_name_of_64_characters_is_accepted_and_65_refused() {
        // Multi-byte characters count once each.
        assert!(SessionName::parse(&"é".repeat(64)).is_ok());
        assert_eq!(
            SessionName::parse(&"é".repeat(65)),
            Err(SessionNameError::TooLong { got: 65, max: 64 })
        );
    }

    #[test]
    fn a_session_name_with_a_control_character_is_refused() {
        assert_eq!(
            SessionName::parse("CS\nJakarta"),
            Err(SessionNameError::ControlCharacter)
        );
    }

    #[test]
    fn a_session_name_deserializes_only_when_valid() {
        let name: SessionName = serde_json::from_str("\" Toko \"").unwrap();
        assert_eq!(name.as_str(), "Toko");
        assert!(serde_json::from_str::<SessionName>("\"\"").is_err());
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"Toko\"");
    }

    #[test]
    fn drivers_and_login_methods_serialize_in_lowercase() {
        assert_eq!(serde_json::to_string(&Driver::Waha).unwrap(), "\"waha\"");
        assert_eq!(
            serde_json::from_str::<Driver>("\"simulator\"").unwrap(),
            Driver::Simulator
        );
        assert_eq!(
            serde_json::to_string(&LoginMethod::Pairing).unwrap(),
            "\"pairing\""
        );
        assert_eq!(Driver::default(), Driver::Simulator);
        assert_eq!(LoginMethod::default(), LoginMethod::Qr);
    }
}
