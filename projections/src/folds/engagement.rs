//! `engagement`: per tenant and contact, the messages sent to it
//! (`contact_outbound`, from `MessageSent`) and those received from it
//! (`contact_replies`, from `InboundMessageReceived`). A campaign's
//! engagement guard leaves out the contacts sent its number of messages
//! who never replied; a campaign's `replied` counts its recipients who
//! answered after their message.
//!
//! Counts only grow: each commit is folded once (the runner's checkpoint),
//! so adding is exact. A `MessageSent` recorded before it named its
//! recipient, or to a group, counts for nobody.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use sqlx::PgConnection;
use uuid::Uuid;
use wablast_domain::inbound::{Inbound, InboundEvent};
use wablast_domain::message::{Message, MessageEvent};
use wablast_domain::types::Chat;
use wablast_eventstore::RecordedEvent;

use super::{decode, tenant_of};
use crate::{LogStream, Projection, ProjectionError};

const NAME: &str = "engagement";

/// The `engagement` projection.
pub(crate) struct Engagement;

/// What a batch adds to one contact's row.
#[derive(Default)]
struct Added {
    count: i64,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
}

impl Added {
    fn add(&mut self, at: DateTime<Utc>) {
        self.count += 1;
        self.first = Some(self.first.map_or(at, |f| f.min(at)));
        self.last = Some(self.last.map_or(at, |l| l.max(at)));
    }
}

type Contacts = HashMap<(Uuid, String), Added>;

#[async_trait]
impl Projection for Engagement {
    fn name(&self) -> &'static str {
        NAME
    }

    fn streams(&self) -> &'static [LogStream] {
        &[LogStream::Messages]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Message::TYPE, Inbound::TYPE])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["contact_outbound", "contact_replies"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        _stream: LogStream,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut sent = Contacts::new();
        let mut replies = Contacts::new();
        for event in events {
            if event.aggregate_type == Inbound::TYPE {
                let InboundEvent::InboundMessageReceived { from, at, .. } = decode(NAME, event)?;
                if let Some(phone) = from {
                    replies
                        .entry((tenant_of(NAME, event)?, phone.as_str().to_owned()))
                        .or_default()
                        .add(at);
                }
            } else if event.event_type == "MessageSent"
                && let MessageEvent::MessageSent {
                    to: Some(Chat::Person(phone)),
                    at,
                    ..
                } = decode(NAME, event)?
            {
                sent.entry((tenant_of(NAME, event)?, phone.as_str().to_owned()))
                    .or_default()
                    .add(at);
            }
        }
        if !sent.is_empty() {
            let (tenants, phones, counts, _, lasts) = columns(sent);
            sqlx::query(
                "insert into contact_outbound (tenant_id, phone, sent, last_sent_at)
                 select * from unnest($1::uuid[], $2::text[], $3::bigint[], $4::timestamptz[])
                 on conflict (tenant_id, phone) do update
                 set sent = contact_outbound.sent + excluded.sent,
                     last_sent_at = greatest(contact_outbound.last_sent_at, excluded.last_sent_at)",
            )
            .bind(tenants)
            .bind(phones)
            .bind(counts)
            .bind(lasts)
            .execute(&mut *conn)
            .await?;
        }
        if !replies.is_empty() {
            let (tenants, phones, counts, firsts, lasts) = columns(replies);
            sqlx::query(
                "insert into contact_replies (tenant_id, phone, replies, first_reply_at, last_reply_at)
                 select * from unnest($1::uuid[], $2::text[], $3::bigint[], $4::timestamptz[], $5::timestamptz[])
                 on conflict (tenant_id, phone) do update
                 set replies = contact_replies.replies + excluded.replies,
                     first_reply_at = least(contact_replies.first_reply_at, excluded.first_reply_at),
                     last_reply_at = greatest(contact_replies.last_reply_at, excluded.last_reply_at)",
            )
            .bind(tenants)
            .bind(phones)
            .bind(counts)
            .bind(firsts)
            .bind(lasts)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// The rows to add, as columns.
#[allow(clippy::type_complexity)]
fn columns(
    contacts: Contacts,
) -> (
    Vec<Uuid>,
    Vec<String>,
    Vec<i64>,
    Vec<DateTime<Utc>>,
    Vec<DateTime<Utc>>,
) {
    let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((tenant, phone), added) in contacts {
        let (Some(first), Some(last)) = (added.first, added.last) else {
            continue;
        };
        columns.0.push(tenant);
        columns.1.push(phone);
        columns.2.push(added.count);
        columns.3.push(first);
        columns.4.push(last);
    }
    columns
}
