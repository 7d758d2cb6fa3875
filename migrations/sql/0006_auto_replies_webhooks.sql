-- Auto-reply rules and webhook subscriptions: what a tenant configures for
-- its inbound messages and for its integrations.
--
-- Plain tables, not event-sourced (DESIGN.md, "Read side and API"): the API
-- writes them directly. The auto-responder (issue #6) reads the rules; the
-- webhook deliverer (a later issue) reads the subscriptions. Every row
-- carries `tenant_id`, and the indexes lead with it.

-- A rule answering an inbound message that matches it.
create table auto_replies
(
    id               uuid primary key,
    tenant_id        uuid        not null references tenants (id),
    name             text        not null,
    -- keyword: the message is the pattern (trimmed, case-insensitive);
    -- contains: the message contains it (case-insensitive);
    -- regex: the pattern (Rust `regex` syntax) matches the message.
    trigger          text        not null check (trigger in ('keyword', 'contains', 'regex')),
    pattern          text        not null,
    -- The answer sent back.
    response         text        not null,
    -- An attachment sent with the answer (a row of `media`).
    media_id         uuid,
    -- The sessions it answers on; null: every session of the tenant.
    session_ids      uuid[],
    -- A contact gets this rule's answer at most once per this many seconds.
    cooldown_seconds integer     not null check (cooldown_seconds between 0 and 604800),
    enabled          boolean     not null,
    created_at       timestamptz not null,
    updated_at       timestamptz not null
);

create index auto_replies_tenant on auto_replies (tenant_id, id);

-- A subscription of an integration's URL to some of the tenant's events.
create table webhooks
(
    id                uuid primary key,
    tenant_id         uuid        not null references tenants (id),
    -- http(s) URL the events are POSTed to.
    url               text        not null,
    -- Event types delivered (`SessionCreated`, ...); `{*}`: every type.
    events            text[]      not null check (cardinality(events) > 0),
    -- The secret deliveries are signed with (HMAC-SHA256), encrypted with
    -- AES-256-GCM under WABLAST_SECRET_KEY: the deliverer needs it in clear
    -- to sign, so it cannot be hashed like an API key. A fresh 12-byte nonce
    -- per row; the ciphertext ends with GCM's 16-byte tag.
    secret_nonce      bytea       not null check (length(secret_nonce) = 12),
    secret_ciphertext bytea       not null,
    -- Where the log was when the subscription was made: deliveries start
    -- with the first commit after these stream sequences.
    from_events       bigint      not null check (from_events >= 0),
    from_messages     bigint      not null check (from_messages >= 0),
    created_at        timestamptz not null,
    -- Set when deleted: nothing is delivered to it any more.
    deleted_at        timestamptz
);

create index webhooks_tenant on webhooks (tenant_id, id) where deleted_at is null;
