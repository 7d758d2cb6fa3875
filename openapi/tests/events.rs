//! The OpenAPI document's event schemas say what events really look like:
//! every event of a generated history (every kind of event the domain
//! makes, its rarer features included) validates against
//! `EventPayload`, the schema of `EventData.payload` on the event stream
//! and in webhooks.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use wablast_tests::history::{History, HistorySpec};

#[test]
fn every_event_of_a_history_matches_its_documented_schema() {
    // Arrange: the document, with `EventPayload` as the schema to check.
    let mut document = serde_json::to_value(wablast_api::openapi()).unwrap();
    document["$ref"] = json!("#/components/schemas/EventPayload");
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&document)
        .expect("the document's schemas compile");
    let history = History::generate(&HistorySpec::small(7));

    // Act
    let mut seen = BTreeSet::new();
    let mut wrong = Vec::new();
    for commit in history.commit_waves().flatten() {
        for event in &commit.events {
            seen.insert(event.event_type.clone());
            if let Err(error) = validator.validate(&event.payload) {
                wrong.push(format!(
                    "{}: {error} in {}",
                    event.event_type, event.payload
                ));
            }
        }
    }

    // Assert
    assert!(
        wrong.is_empty(),
        "{} events do not match:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(10)].join("\n")
    );
    assert!(
        seen.len() >= 40,
        "the history covers {} event types: {seen:?}",
        seen.len()
    );
    // A made-up event is refused, and so is a real one with a field of
    // the wrong type: the schemas are not just `Object`.
    let made_up: Value = json!({"SessionExploded": {"at": "2026-01-01T00:00:00Z"}});
    assert!(!validator.is_valid(&made_up));
    let created = history
        .commit_waves()
        .flatten()
        .flat_map(|commit| commit.events)
        .find(|event| event.event_type == "SessionCreated")
        .expect("a session was created");
    let mut broken = created.payload.clone();
    broken["SessionCreated"]["trust_level"] = json!("high");
    assert!(validator.is_valid(&created.payload));
    assert!(!validator.is_valid(&broken), "{broken}");
}

#[test]
fn readme_lists_every_event_type() {
    let document = serde_json::to_value(wablast_api::openapi()).unwrap();
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let schemas = &document["components"]["schemas"];
    let mut missing = Vec::new();
    for aggregate in schemas["EventPayload"]["oneOf"].as_array().unwrap() {
        let name = aggregate["$ref"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap();
        for event in schemas[name]["oneOf"].as_array().unwrap() {
            let event_type = event["required"][0].as_str().unwrap();
            if !readme.contains(&format!("`{event_type}`")) {
                missing.push(event_type.to_owned());
            }
        }
    }
    assert!(missing.is_empty(), "README's event table lacks {missing:?}");
}

#[test]
fn list_check_events_match_their_documented_schema() {
    use wablast_domain::list_check::{CheckFailure, ListCheckEvent};
    use wablast_domain::types::{ContactListId, SessionId};

    let mut document = serde_json::to_value(wablast_api::openapi()).unwrap();
    document["$ref"] = json!("#/components/schemas/EventPayload");
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&document)
        .expect("the document's schemas compile");
    let at = chrono::Utc::now();
    let events = [
        ListCheckEvent::ListCheckStarted {
            list_id: ContactListId::new(),
            session_id: SessionId::new(),
            contacts: 40,
            last_row: 41,
            at,
        },
        ListCheckEvent::ListCheckProgressed {
            next_row: 12,
            checked: 11,
            on_whatsapp: 8,
            not_on_whatsapp: 3,
            at,
        },
        ListCheckEvent::ListCheckCompleted { at },
        ListCheckEvent::ListCheckFailed {
            reason: CheckFailure::SessionLoggedOut,
            at,
        },
        ListCheckEvent::ListCheckCancelled { at },
    ];
    for event in events {
        let payload = serde_json::to_value(&event).unwrap();
        assert!(validator.is_valid(&payload), "{payload}");
    }
    let wrong = json!({"ListCheckFailed": {"reason": "bored", "at": at}});
    assert!(!validator.is_valid(&wrong));
}

#[test]
fn campaign_pace_events_match_their_documented_schema() {
    use wablast_domain::campaign::{CampaignEvent, SlowDownReason};
    use wablast_domain::types::{SendSignals, SessionId, Throttle};

    let mut document = serde_json::to_value(wablast_api::openapi()).unwrap();
    document["$ref"] = json!("#/components/schemas/EventPayload");
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&document)
        .expect("the document's schemas compile");
    let at = chrono::Utc::now();
    let signals = SendSignals {
        outcomes: 10,
        failed: 2,
        blocked: 1,
    };
    let events = [
        CampaignEvent::CampaignSlowedDown {
            session_id: SessionId::new(),
            reason: SlowDownReason::FailuresClimbing,
            signals,
            throttle: Throttle::DEFAULT.slowed(),
            at,
        },
        CampaignEvent::CampaignSpeedRestored {
            session_id: SessionId::new(),
            signals: SendSignals {
                outcomes: 10,
                failed: 0,
                blocked: 0,
            },
            throttle: Throttle::DEFAULT,
            at,
        },
    ];
    for event in events {
        let payload = serde_json::to_value(&event).unwrap();
        assert!(validator.is_valid(&payload), "{payload}");
    }
    let wrong = json!({"CampaignSlowedDown": {
        "session_id": SessionId::new(), "reason": "bored", "signals": signals,
        "throttle": {"min_delay_ms": 2000, "max_delay_ms": 6000}, "at": at}});
    assert!(!validator.is_valid(&wrong));
}
