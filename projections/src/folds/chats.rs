//! `chats`: one row per session and peer, naming the latest message sent
//! to the peer (as queued: by a campaign's batch, a single send's
//! admission, or alone) or received from it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;
use wablast_domain::inbound::{Inbound, InboundEvent};
use wablast_domain::message::{Message, MessageEvent};
use wablast_domain::recipient_batch::{RecipientBatch, RecipientBatchEvent};
use wablast_eventstore::RecordedEvent;

use super::{decode, id_of, tenant_of};
use crate::rows::{Row, RowSet};
use crate::{LogStream, Projection, ProjectionError};

const NAME: &str = "chats";

/// The `chats` projection.
pub(crate) struct Chats;

/// A row of `chats`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChatRow {
    id: Uuid,
    tenant_id: Uuid,
    session_id: Uuid,
    peer: String,
    last_message_id: Uuid,
    last_direction: String,
    last_at: DateTime<Utc>,
}

impl Row for ChatRow {
    const TABLE: &'static str = "chats";
    const KEY: &'static str = "id";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "tenant_id",
        "session_id",
        "peer",
        "last_message_id",
        "last_direction",
        "last_at",
    ];

    fn key(&self) -> Uuid {
        self.id
    }
}

/// The id of the chat of `session` with `peer`.
pub fn chat_id(session: Uuid, peer: &str) -> Uuid {
    Uuid::new_v5(&session, format!("chat/{peer}").as_bytes())
}

/// A message of a chat, as the fold meets it.
struct Seen {
    tenant_id: Uuid,
    session_id: Uuid,
    peer: String,
    message_id: Uuid,
    direction: &'static str,
    at: DateTime<Utc>,
}

#[async_trait]
impl Projection for Chats {
    fn name(&self) -> &'static str {
        NAME
    }

    fn streams(&self) -> &'static [LogStream] {
        &[LogStream::Messages]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Message::TYPE, RecipientBatch::TYPE, Inbound::TYPE])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["chats"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        _stream: LogStream,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut seen = Vec::new();
        for event in events {
            let tenant_id = tenant_of(NAME, event)?;
            if event.aggregate_type == RecipientBatch::TYPE {
                match decode(NAME, event)? {
                    RecipientBatchEvent::RecipientsQueued { recipients, at, .. } => {
                        seen.extend(recipients.into_iter().map(|r| Seen {
                            tenant_id,
                            session_id: *r.session_id.as_uuid(),
                            peer: r.to.as_str().to_owned(),
                            message_id: *r.message_id.as_uuid(),
                            direction: "out",
                            at,
                        }));
                    }
                    RecipientBatchEvent::RecipientAdmitted { recipient, at, .. } => {
                        seen.push(Seen {
                            tenant_id,
                            session_id: *recipient.session_id.as_uuid(),
                            peer: recipient.to.as_str().to_owned(),
                            message_id: *recipient.message_id.as_uuid(),
                            direction: "out",
                            at,
                        });
                    }
                }
            } else if event.aggregate_type == Inbound::TYPE {
                let InboundEvent::InboundMessageReceived {
                    session_id,
                    from,
                    from_raw,
                    at,
                    ..
                } = decode(NAME, event)?;
                seen.push(Seen {
                    tenant_id,
                    session_id: *session_id.as_uuid(),
                    peer: from.map_or(from_raw, |phone| phone.as_str().to_owned()),
                    message_id: id_of(NAME, event)?,
                    direction: "in",
                    at,
                });
            } else if event.event_type == "MessageQueued"
                && let MessageEvent::MessageQueued {
                    session_id, to, at, ..
                } = decode(NAME, event)?
            {
                // Queued alone, or a batch's message's first commit (the
                // same facts again).
                seen.push(Seen {
                    tenant_id,
                    session_id: *session_id.as_uuid(),
                    peer: to.as_str().to_owned(),
                    message_id: id_of(NAME, event)?,
                    direction: "out",
                    at,
                });
            }
        }
        if seen.is_empty() {
            return Ok(());
        }
        let mut chats = RowSet::<ChatRow>::default();
        chats
            .load(conn, seen.iter().map(|s| chat_id(s.session_id, &s.peer)))
            .await?;
        for s in seen {
            let id = chat_id(s.session_id, &s.peer);
            match chats.get_mut(id) {
                Some(row) if row.last_at > s.at => {}
                Some(row) => {
                    row.last_message_id = s.message_id;
                    row.last_direction = s.direction.to_owned();
                    row.last_at = s.at;
                }
                None => chats.put(ChatRow {
                    id,
                    tenant_id: s.tenant_id,
                    session_id: s.session_id,
                    peer: s.peer,
                    last_message_id: s.message_id,
                    last_direction: s.direction.to_owned(),
                    last_at: s.at,
                }),
            }
        }
        chats.flush(conn).await?;
        Ok(())
    }
}
