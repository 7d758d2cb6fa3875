//! The inbound aggregate: decisions in `handle`, assignments in `apply`.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::commands::InboundCommand;
use super::error::InboundError;
use super::events::{InboundEvent, InboundKind};
use super::{MAX_RAW_ID_CHARS, MAX_TEXT_CHARS, inbound_id};
use crate::types::phone::Phone;
use crate::types::{InboundId, SessionId};

/// One message received by a session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Inbound {
    id: Option<InboundId>,
    session_id: SessionId,
    from: Option<Phone>,
    from_raw: String,
    text: Option<String>,
    provider_message_id: String,
    received_at: Option<DateTime<Utc>>,
    #[serde(default)]
    kind: Option<InboundKind>,
}

impl Inbound {
    /// The message's id; `None` until received.
    pub fn id(&self) -> Option<InboundId> {
        self.id
    }

    /// The session that received it.
    pub fn session_id(&self) -> SessionId {
        self.session_id
    }

    /// The sender's number, when the driver could resolve it.
    pub fn from(&self) -> Option<&Phone> {
        self.from.as_ref()
    }

    /// The sender as the driver named it.
    pub fn from_raw(&self) -> &str {
        &self.from_raw
    }

    /// Its kind (`None` for one recorded before kinds were kept).
    pub fn kind(&self) -> Option<InboundKind> {
        self.kind
    }

    /// The text, if any.
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// The driver's id of the message.
    pub fn provider_message_id(&self) -> &str {
        &self.provider_message_id
    }

    /// When it was sent, as the driver says; `None` until received.
    pub fn received_at(&self) -> Option<DateTime<Utc>> {
        self.received_at
    }

    /// The event that received it, as recorded; `None` until received.
    fn recorded(&self) -> Option<InboundEvent> {
        Some(InboundEvent::InboundMessageReceived {
            inbound_id: self.id?,
            session_id: self.session_id,
            from: self.from.clone(),
            from_raw: self.from_raw.clone(),
            text: self.text.clone(),
            provider_message_id: self.provider_message_id.clone(),
            kind: self.kind,
            at: self.received_at?,
        })
    }

    /// Decides what a command means in the current state: the events to
    /// record (possibly none), or a refusal.
    fn decide(&self, command: InboundCommand) -> Result<Vec<InboundEvent>, InboundError> {
        let InboundCommand::ReceiveInbound {
            inbound_id: id,
            session_id,
            from,
            from_raw,
            text,
            provider_message_id,
            kind,
            at,
        } = command;
        required("from_raw", &from_raw)?;
        required("provider_message_id", &provider_message_id)?;
        let expected = inbound_id(session_id, &provider_message_id);
        if id != expected {
            return Err(InboundError::IdMismatch { expected, got: id });
        }
        let received = InboundEvent::InboundMessageReceived {
            inbound_id: id,
            session_id,
            from,
            from_raw,
            text: kept_text(text),
            provider_message_id,
            kind: Some(kind),
            at,
        };
        match self.recorded() {
            None => Ok(vec![received]),
            // Delivered again (webhooks are retried).
            Some(recorded) if recorded == received => Ok(vec![]),
            Some(_) => Err(InboundError::AlreadyReceived),
        }
    }
}

/// An id the driver must give: not empty, not absurdly long.
fn required(field: &'static str, value: &str) -> Result<(), InboundError> {
    if value.is_empty() {
        return Err(InboundError::Missing { field });
    }
    if value.chars().count() > MAX_RAW_ID_CHARS {
        return Err(InboundError::TooLong {
            field,
            max: MAX_RAW_ID_CHARS,
        });
    }
    Ok(())
}

/// The text as recorded: its first [`MAX_TEXT_CHARS`] characters; none
/// when empty.
fn kept_text(text: Option<String>) -> Option<String> {
    let mut text = text.filter(|t| !t.is_empty())?;
    if let Some((cut, _)) = text.char_indices().nth(MAX_TEXT_CHARS) {
        text.truncate(cut);
    }
    Some(text)
}

impl Aggregate for Inbound {
    const TYPE: &'static str = "inbound";
    type Command = InboundCommand;
    type Event = InboundEvent;
    type Error = InboundError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            InboundEvent::InboundMessageReceived {
                inbound_id,
                session_id,
                from,
                from_raw,
                text,
                provider_message_id,
                kind,
                at,
            } => {
                self.kind = kind;
                self.id = Some(inbound_id);
                self.session_id = session_id;
                self.from = from;
                self.from_raw = from_raw;
                self.text = text;
                self.provider_message_id = provider_message_id;
                self.received_at = Some(at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use cqrs_es::DomainEvent;
    use cqrs_es::test::TestFramework;
    use uuid::Uuid;

    use super::*;
    use crate::types::phone::Region;

    type Given = TestFramework<Inbound>;

    const WAMID: &str = "false_6281234567890@c.us_3EB0C767D097B7C8A2A1";

    fn t(seconds: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, 2, 0, seconds).unwrap()
    }

    fn session() -> SessionId {
        SessionId::from_uuid(Uuid::from_u128(7))
    }

    fn phone() -> Phone {
        Phone::parse("+6281234567890", Region::ID).unwrap()
    }

    fn receive(text: Option<&str>) -> InboundCommand {
        InboundCommand::ReceiveInbound {
            inbound_id: inbound_id(session(), WAMID),
            session_id: session(),
            from: Some(phone()),
            from_raw: "6281234567890@c.us".to_owned(),
            text: text.map(str::to_owned),
            provider_message_id: WAMID.to_owned(),
            kind: InboundKind::Text,
            at: t(1),
        }
    }

    fn received(text: Option<&str>) -> InboundEvent {
        InboundEvent::InboundMessageReceived {
            inbound_id: inbound_id(session(), WAMID),
            session_id: session(),
            from: Some(phone()),
            from_raw: "6281234567890@c.us".to_owned(),
            text: text.map(str::to_owned),
            provider_message_id: WAMID.to_owned(),
            kind: Some(InboundKind::Text),
            at: t(1),
        }
    }

    fn fold(events: Vec<InboundEvent>) -> Inbound {
        let mut inbound = Inbound::default();
        for event in events {
            inbound.apply(event);
        }
        inbound
    }

    #[test]
    fn records_a_received_message_with_its_sender_and_text() {
        Given::with(())
            .given_no_previous_events()
            .when(receive(Some("INFO harga?")))
            .then_expect_events(vec![received(Some("INFO harga?"))]);

        let inbound = fold(vec![received(Some("INFO harga?"))]);
        assert_eq!(inbound.id(), Some(inbound_id(session(), WAMID)));
        assert_eq!(inbound.session_id(), session());
        assert_eq!(inbound.from(), Some(&phone()));
        assert_eq!(inbound.from_raw(), "6281234567890@c.us");
        assert_eq!(inbound.text(), Some("INFO harga?"));
        assert_eq!(inbound.provider_message_id(), WAMID);
        assert_eq!(inbound.received_at(), Some(t(1)));
        assert_eq!(inbound.kind(), Some(InboundKind::Text));
    }

    #[test]
    fn an_event_recorded_before_kinds_were_kept_reads_without_one() {
        let old = serde_json::json!({"InboundMessageReceived": {
            "inbound_id": inbound_id(session(), WAMID), "session_id": session(),
            "from": "+6281234567890", "from_raw": "6281234567890@c.us", "text": "halo",
            "provider_message_id": WAMID, "at": t(1)}});
        let event: InboundEvent = serde_json::from_value(old).unwrap();
        assert_eq!(fold(vec![event]).kind(), None);
        assert_eq!(InboundKind::of_mime_type("image/jpeg"), InboundKind::Image);
        assert_eq!(
            InboundKind::of_mime_type("image/webp"),
            InboundKind::Sticker
        );
        assert_eq!(
            InboundKind::of_mime_type("audio/ogg; codecs=opus"),
            InboundKind::Audio
        );
        assert_eq!(
            InboundKind::of_mime_type("application/pdf"),
            InboundKind::Document
        );
    }

    #[test]
    fn keeps_the_raw_id_of_a_sender_the_driver_could_not_resolve() {
        let lid = "123456789012345@lid";
        let command = InboundCommand::ReceiveInbound {
            inbound_id: inbound_id(session(), "wamid.9"),
            session_id: session(),
            from: None,
            from_raw: lid.to_owned(),
            text: None,
            provider_message_id: "wamid.9".to_owned(),
            kind: InboundKind::Reaction,
            at: t(2),
        };

        Given::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_events(vec![InboundEvent::InboundMessageReceived {
                inbound_id: inbound_id(session(), "wamid.9"),
                session_id: session(),
                from: None,
                from_raw: lid.to_owned(),
                text: None,
                provider_message_id: "wamid.9".to_owned(),
                kind: Some(InboundKind::Reaction),
                at: t(2),
            }]);
    }

    #[test]
    fn the_same_message_received_again_records_nothing() {
        Given::with(())
            .given(vec![received(Some("INFO harga?"))])
            .when(receive(Some("INFO harga?")))
            .then_expect_events(vec![]);
    }

    #[test]
    fn refuses_another_message_under_an_id_already_received() {
        Given::with(())
            .given(vec![received(Some("INFO harga?"))])
            .when(receive(Some("something else")))
            .then_expect_error(InboundError::AlreadyReceived);
        let mut later = receive(Some("INFO harga?"));
        let InboundCommand::ReceiveInbound { at, from, .. } = &mut later;
        *at = t(9);
        *from = None;
        Given::with(())
            .given(vec![received(Some("INFO harga?"))])
            .when(later)
            .then_expect_error(InboundError::AlreadyReceived);
    }

    #[test]
    fn refuses_an_id_not_derived_from_the_session_and_the_drivers_id() {
        let mut command = receive(Some("halo"));
        let InboundCommand::ReceiveInbound { inbound_id: id, .. } = &mut command;
        *id = InboundId::new();
        let got = *id;

        Given::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(InboundError::IdMismatch {
                expected: inbound_id(session(), WAMID),
                got,
            });
    }

    #[test]
    fn refuses_a_message_without_a_sender_or_a_driver_id() {
        for (field, value) in [("from_raw", ""), ("provider_message_id", "")] {
            let mut command = receive(Some("halo"));
            let InboundCommand::ReceiveInbound {
                inbound_id: id,
                from_raw,
                provider_message_id,
                ..
            } = &mut command;
            match field {
                "from_raw" => *from_raw = value.to_owned(),
                _ => {
                    *provider_message_id = value.to_owned();
                    *id = inbound_id(session(), value);
                }
            }
            Given::with(())
                .given_no_previous_events()
                .when(command)
                .then_expect_error(InboundError::Missing { field });
        }
    }

    #[test]
    fn refuses_ids_longer_than_the_limit() {
        let long = "x".repeat(MAX_RAW_ID_CHARS + 1);
        let mut command = receive(None);
        let InboundCommand::ReceiveInbound {
            inbound_id: id,
            provider_message_id,
            ..
        } = &mut command;
        *provider_message_id = long.clone();
        *id = inbound_id(session(), &long);

        Given::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(InboundError::TooLong {
                field: "provider_message_id",
                max: MAX_RAW_ID_CHARS,
            });
    }

    #[test]
    fn keeps_the_first_characters_of_a_long_text_and_no_empty_text() {
        // Multi-byte characters: the cut is by character, never mid-way.
        let long = "é".repeat(MAX_TEXT_CHARS + 10);
        let kept = "é".repeat(MAX_TEXT_CHARS);

        Given::with(())
            .given_no_previous_events()
            .when(receive(Some(&long)))
            .then_expect_events(vec![received(Some(&kept))]);
        // The same long text again is the same message.
        Given::with(())
            .given(vec![received(Some(&kept))])
            .when(receive(Some(&long)))
            .then_expect_events(vec![]);
        Given::with(())
            .given_no_previous_events()
            .when(receive(Some("")))
            .then_expect_events(vec![received(None)]);
        let exactly = "a".repeat(MAX_TEXT_CHARS);
        Given::with(())
            .given_no_previous_events()
            .when(receive(Some(&exactly)))
            .then_expect_events(vec![received(Some(&exactly))]);
    }

    #[test]
    fn every_refusal_has_its_api_code() {
        let cases = [
            (InboundError::AlreadyReceived, "conflict"),
            (
                InboundError::IdMismatch {
                    expected: InboundId::default(),
                    got: InboundId::default(),
                },
                "validation_failed",
            ),
            (
                InboundError::Missing { field: "from_raw" },
                "validation_failed",
            ),
            (
                InboundError::TooLong {
                    field: "from_raw",
                    max: MAX_RAW_ID_CHARS,
                },
                "validation_failed",
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code, "{error:?}");
        }
    }

    #[test]
    fn events_are_named_after_their_variant_and_serialized_externally_tagged() {
        assert_eq!(Inbound::TYPE, "inbound");
        let event = received(Some("halo"));
        let json = serde_json::to_value(&event).unwrap();

        assert_eq!(event.event_type(), "InboundMessageReceived");
        assert_eq!(event.event_version(), "1.0");
        assert_eq!(
            json["InboundMessageReceived"]["from"],
            serde_json::json!("+6281234567890")
        );
        assert_eq!(
            json["InboundMessageReceived"]["from_raw"],
            "6281234567890@c.us"
        );
        assert_eq!(serde_json::from_value::<InboundEvent>(json).unwrap(), event);
        let unresolved = serde_json::json!({"InboundMessageReceived": {
            "inbound_id": inbound_id(session(), "wamid.9"), "session_id": session(),
            "from": null, "from_raw": "1@lid", "text": null,
            "provider_message_id": "wamid.9", "at": "2025-03-01T02:00:02Z"}});
        assert!(serde_json::from_value::<InboundEvent>(unresolved).is_ok());
    }

    #[test]
    fn the_aggregate_state_round_trips_through_json_for_snapshots() {
        let inbound = fold(vec![received(Some("halo"))]);
        let json = serde_json::to_string(&inbound).unwrap();
        assert_eq!(serde_json::from_str::<Inbound>(&json).unwrap(), inbound);
    }
}
