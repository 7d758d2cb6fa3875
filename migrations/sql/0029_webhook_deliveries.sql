-- Webhook deliveries: the outbox between the event log and the tenants'
-- receivers.
--
-- Projection `webhook_outbox` (every aggregate type, both streams) writes,
-- for each event some live subscription asks for, the event's body once
-- (`webhook_events`) and one pending delivery per subscription
-- (`webhook_deliveries`), in the projector's transaction: exactly once, in
-- log order. The deliverer (`wablast_workflows::webhooks`) then POSTs them,
-- in order per subscription, and records every outcome on the delivery.
-- Unlike the query tables of 0002 it is never rebuilt: a rebuild would
-- deliver the whole log again.

alter table webhooks
    -- Set when it stopped receiving: its receiver failed for too long
    -- (`WebhookDisabled`), or the tenant turned it off.
    add column disabled_at     timestamptz,
    add column disabled_reason text collate "C",
    -- When its receiver started failing; null while it answers. Failures
    -- further apart than twice the longest retry pause are not one outage.
    add column failing_since   timestamptz,
    add column last_failed_at  timestamptz;

-- The body of an event delivered to at least one subscription.
create table webhook_events
(
    -- The event's place in the log: stream, commit, index in the commit.
    stream          text        not null collate "C",
    stream_sequence bigint      not null,
    event_index     integer     not null,
    tenant_id       uuid        not null,
    -- The body's `id`: the log position right after the event
    -- (`events:123`, `messages:45.2`), what receivers deduplicate on.
    position        text        not null collate "C",
    event_type      text        not null collate "C",
    -- The exact bytes POSTed (and signed): `{id, type, occurred_at,
    -- tenant_id, data}`.
    body            text        not null,
    occurred_at     timestamptz not null,
    primary key (stream, stream_sequence, event_index)
);

-- One event to one subscription: pending until its receiver took it
-- (`delivered`) or it was given up (`failed`: the dead letters).
create table webhook_deliveries
(
    -- Delivery order within a subscription.
    id               bigint generated always as identity primary key,
    -- No foreign keys: a delivery is written 20 times as often as
    -- anything else here, and subscriptions and bodies are never deleted
    -- while a delivery needs them (subscriptions are only marked deleted;
    -- bodies are pruned once no delivery names them).
    webhook_id       uuid        not null,
    tenant_id        uuid        not null,
    stream           text        not null collate "C",
    stream_sequence  bigint      not null,
    event_index      integer     not null,
    -- `pending`, `delivered`, `failed`.
    status           text        not null collate "C",
    attempts         integer     not null default 0,
    -- When it is tried (again).
    next_attempt_at  timestamptz not null,
    first_failed_at  timestamptz,
    last_attempt_at  timestamptz,
    -- The receiver's HTTP status on the last attempt; null when it did not
    -- answer (refused, timed out).
    last_status      integer,
    -- The start of the receiver's answer, or why there was none.
    last_error       text,
    delivered_at     timestamptz,
    created_at       timestamptz not null,
    -- Made by `POST /webhooks/{id}/replay`.
    replayed         boolean     not null default false
);

create index webhook_deliveries_pending on webhook_deliveries (webhook_id, id) where status = 'pending';
create index webhook_deliveries_by_webhook on webhook_deliveries (webhook_id, status, id);

-- A queue: every row is inserted, updated once or twice, and pruned. Vacuum
-- and analyze it far more often than the default (20% of the table
-- changed), so that dead rows do not pile up and plans follow its size.
alter table webhook_deliveries set (autovacuum_vacuum_scale_factor = 0.02,
                                    autovacuum_analyze_scale_factor = 0.02);
