//! `webhook_outbox`: the events the tenants' webhook subscriptions ask for,
//! queued for delivery (`webhook_events`, `webhook_deliveries`; see
//! migration 0029). Each event a live subscription wants (its tenant's, of
//! one of its types, after where the log was when it was made) gets its
//! body written once and one pending delivery per subscription, in the
//! projector's transaction: exactly once, in log order. The deliverer is
//! woken by a `NOTIFY` on [`CHANNEL`] when the transaction commits.
//!
//! It is never rebuilt ([`crate::NAMES`] leaves it out): a rebuild would
//! queue the whole log again.

use async_trait::async_trait;
use chrono::Utc;
use sqlx::PgConnection;
use uuid::Uuid;
use wablast_eventstore::RecordedEvent;

use super::tenant_of;
use crate::event_data::WebhookBody;
use crate::queries::webhooks::{CHANNEL, Subscription};
use crate::{LogStream, Projection, ProjectionError};

pub(crate) const NAME: &str = "webhook_outbox";

/// The `webhook_outbox` projection.
pub(crate) struct WebhookOutbox;

#[async_trait]
impl Projection for WebhookOutbox {
    fn name(&self) -> &'static str {
        NAME
    }

    fn streams(&self) -> &'static [LogStream] {
        &LogStream::ALL
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        None
    }

    fn tables(&self) -> &'static [&'static str] {
        &["webhook_events", "webhook_deliveries"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        stream: LogStream,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut tenants: Vec<Uuid> = Vec::new();
        for event in events {
            if let Ok(tenant) = tenant_of(NAME, event)
                && !tenants.contains(&tenant)
            {
                tenants.push(tenant);
            }
        }
        if tenants.is_empty() {
            return Ok(());
        }
        let subscriptions = Subscription::live(&mut *conn, &tenants).await?;
        if subscriptions.is_empty() {
            return Ok(());
        }
        let mut queued = Queued::default();
        let mut index = 0;
        for (i, event) in events.iter().enumerate() {
            if i > 0 && events[i - 1].stream_sequence == event.stream_sequence {
                index += 1;
            } else {
                index = 0;
            }
            // A batch never splits a commit: its events are side by side.
            let count = index
                + events[i..]
                    .iter()
                    .take_while(|e| e.stream_sequence == event.stream_sequence)
                    .count();
            // Platform-wide aggregates (plans) belong to no tenant.
            let Ok(tenant) = tenant_of(NAME, event) else {
                continue;
            };
            let wanted: Vec<Uuid> = subscriptions
                .iter()
                .filter(|s| s.wants(tenant, stream, event.stream_sequence, &event.event_type))
                .map(|s| s.id)
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let (position, body) = WebhookBody::render(stream, index, count, tenant, event.clone())
                .map_err(|err| ProjectionError::event(NAME, event, err))?;
            let sequence = i64::try_from(event.stream_sequence)
                .map_err(|err| ProjectionError::event(NAME, event, err))?;
            let index =
                i32::try_from(index).map_err(|err| ProjectionError::event(NAME, event, err))?;
            queued.event(
                sequence,
                index,
                tenant,
                position,
                &event.event_type,
                body,
                event.occurred_at,
            );
            for webhook in wanted {
                queued.delivery(webhook, tenant, sequence, index);
            }
        }
        queued.write(conn, stream).await?;
        Ok(())
    }
}

/// A batch's bodies and deliveries, as columns.
#[derive(Default)]
struct Queued {
    sequences: Vec<i64>,
    indexes: Vec<i32>,
    tenants: Vec<Uuid>,
    positions: Vec<String>,
    types: Vec<String>,
    bodies: Vec<String>,
    occurred: Vec<chrono::DateTime<Utc>>,
    webhooks: Vec<Uuid>,
    delivery_tenants: Vec<Uuid>,
    delivery_sequences: Vec<i64>,
    delivery_indexes: Vec<i32>,
}

impl Queued {
    #[allow(clippy::too_many_arguments)]
    fn event(
        &mut self,
        sequence: i64,
        index: i32,
        tenant: Uuid,
        position: String,
        event_type: &str,
        body: String,
        occurred_at: chrono::DateTime<Utc>,
    ) {
        self.sequences.push(sequence);
        self.indexes.push(index);
        self.tenants.push(tenant);
        self.positions.push(position);
        self.types.push(event_type.to_owned());
        self.bodies.push(body);
        self.occurred.push(occurred_at);
    }

    fn delivery(&mut self, webhook: Uuid, tenant: Uuid, sequence: i64, index: i32) {
        self.webhooks.push(webhook);
        self.delivery_tenants.push(tenant);
        self.delivery_sequences.push(sequence);
        self.delivery_indexes.push(index);
    }

    async fn write(self, conn: &mut PgConnection, stream: LogStream) -> Result<(), sqlx::Error> {
        if self.webhooks.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "insert into webhook_events
                 (stream, stream_sequence, event_index, tenant_id, position, event_type, body, occurred_at)
             select $1, * from unnest($2::bigint[], $3::int[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::timestamptz[])
             on conflict do nothing",
        )
        .bind(stream.name())
        .bind(&self.sequences)
        .bind(&self.indexes)
        .bind(&self.tenants)
        .bind(&self.positions)
        .bind(&self.types)
        .bind(&self.bodies)
        .bind(&self.occurred)
        .execute(&mut *conn)
        .await?;
        // In log order: identity values follow the rows' order.
        sqlx::query(
            "insert into webhook_deliveries
                 (webhook_id, tenant_id, stream, stream_sequence, event_index, status, next_attempt_at, created_at)
             select w, t, $1, s, i, 'pending', $6, $6
             from unnest($2::uuid[], $3::uuid[], $4::bigint[], $5::int[]) with ordinality as d(w, t, s, i, n)
             order by n",
        )
        .bind(stream.name())
        .bind(&self.webhooks)
        .bind(&self.delivery_tenants)
        .bind(&self.delivery_sequences)
        .bind(&self.delivery_indexes)
        .bind(Utc::now())
        .execute(&mut *conn)
        .await?;
        sqlx::query("select pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}
