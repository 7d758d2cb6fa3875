//! Inbound aggregate (`TYPE` = `"inbound"`): one message someone sent to a
//! session's number, as the driver reported it. The auto-responder and the
//! inbox start from these events. One aggregate per received message, in
//! the messages stream beside the per-recipient `message` aggregates (same
//! retention: they hold message content, and there are many of them: one
//! aggregate each keeps them off the busy per-tenant streams).
//!
//! Rules and decisions:
//! - the aggregate's id is [`inbound_id`]`(session_id, provider_message_id)`,
//!   not a random one, so a driver webhook delivered twice (WAHA and the
//!   Cloud API both retry) lands on the same aggregate; a command naming
//!   another id is refused ([`InboundError::IdMismatch`]);
//! - receiving the very same message again records nothing; a different
//!   one under an id already used is refused
//!   ([`InboundError::AlreadyReceived`]): the driver's ids are unique per
//!   session, so this is a driver bug or a replay gone wrong, never
//!   something to overwrite silently;
//! - the sender is kept twice: `from_raw`, the id as the driver gave it
//!   (`628…@c.us`, `…@lid`, a Cloud API `wa_id`), always; and `from`, the
//!   E.164 number, when the driver could resolve it (a `@lid` id often
//!   cannot be). Replies go to `from`; without it, only the raw id is
//!   known and the auto-responder has no number to answer;
//! - the text keeps at most [`MAX_TEXT_CHARS`] characters (the rest is
//!   dropped: the inbox and the auto-reply patterns need no more, and the
//!   events stay small); an empty text is no text (media without a
//!   caption, a reaction);
//! - `from_raw` and `provider_message_id` are required and at most
//!   [`MAX_RAW_ID_CHARS`] characters: they are ids, not content, and a
//!   longer one is not something a driver sends.

mod aggregate;
mod commands;
mod error;
mod events;

pub use aggregate::Inbound;
pub use commands::InboundCommand;
pub use error::InboundError;
pub use events::{InboundEvent, InboundKind};

use uuid::Uuid;

use crate::types::{InboundId, SessionId};

/// The most characters of an inbound text kept; the rest is dropped.
pub const MAX_TEXT_CHARS: usize = 4096;

/// The most characters of a sender's raw id or of the driver's message id.
pub const MAX_RAW_ID_CHARS: usize = 256;

/// The UUID v5 namespace of inbound ids. Frozen: changing it would give a
/// message redelivered after the change a new aggregate.
const NAMESPACE: Uuid = Uuid::from_u128(0x5c1b_6a0e_2f4d_4e53_9a71_0d3c_8b6f_1e27);

/// The id of the message `provider_message_id` received by `session_id`: a
/// UUID v5 (name-based, SHA-1) of the session's 16 bytes followed by the
/// driver's id, so the same message always gets the same id and two
/// sessions never share one. Not time-ordered: order inbound messages by
/// `at`, then id.
pub fn inbound_id(session_id: SessionId, provider_message_id: &str) -> InboundId {
    let mut name = Vec::with_capacity(16 + provider_message_id.len());
    name.extend_from_slice(session_id.as_uuid().as_bytes());
    name.extend_from_slice(provider_message_id.as_bytes());
    InboundId::from_uuid(Uuid::new_v5(&NAMESPACE, &name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(n: u128) -> SessionId {
        SessionId::from_uuid(Uuid::from_u128(n))
    }

    #[test]
    fn the_same_message_of_the_same_session_always_gets_the_same_id() {
        let id = inbound_id(session(1), "false_6281234567890@c.us_3EB0C767D097B7C8A2A1");

        assert_eq!(
            id,
            inbound_id(session(1), "false_6281234567890@c.us_3EB0C767D097B7C8A2A1")
        );
        assert_eq!(id.as_uuid().get_version_num(), 5);
        // Frozen: a message redelivered after an upgrade must find the same
        // aggregate.
        assert_eq!(
            inbound_id(session(1), "wamid.1").to_string(),
            "89104162-24ed-53b5-818b-078296679433"
        );
    }

    #[test]
    fn other_messages_and_other_sessions_get_other_ids() {
        let id = inbound_id(session(1), "wamid.1");

        assert_ne!(id, inbound_id(session(1), "wamid.2"));
        assert_ne!(id, inbound_id(session(2), "wamid.1"));
        assert_ne!(inbound_id(session(1), ""), inbound_id(session(2), ""));
    }
}
