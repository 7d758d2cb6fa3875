-- Messages the tenants' sessions received (issue #6), for the inbox and the
-- auto-responder.
--
-- Projection `inbound` (aggregate `inbound`, in the messages stream with
-- its retention). A query table like those of 0002: every value comes from
-- the events, no foreign keys, rebuilt from sequence 0 at will. Insert-only:
-- each aggregate has exactly one event, `InboundMessageReceived`.

create table inbound_messages
(
    -- The aggregate's id: a UUID v5 of the session and the driver's id of
    -- the message (a webhook delivered twice is one row). Not time-ordered,
    -- so lists order by `received_at`, then `id`.
    id                  uuid primary key,
    tenant_id           uuid        not null,
    -- The session that received it.
    session_id          uuid        not null,
    -- The sender in E.164, when the driver could resolve it (a `@lid` id
    -- often cannot be); null otherwise.
    from_phone          text,
    -- The sender as the driver named it (`628…@c.us`, `…@lid`, a Cloud API
    -- `wa_id`): always there.
    from_raw            text        not null,
    -- At most 4096 characters; null for a message without text (media
    -- without a caption, a reaction).
    text                text,
    -- The driver's id of the message.
    provider_message_id text        not null,
    -- When it was sent, as the driver says.
    received_at         timestamptz not null
);

-- A tenant's inbox, newest first (cursor: `(received_at, id) < ($1, $2)`).
create index inbound_messages_by_tenant on inbound_messages (tenant_id, received_at desc, id desc);
-- One session's inbox, newest first.
create index inbound_messages_by_session on inbound_messages (tenant_id, session_id, received_at desc, id desc);
