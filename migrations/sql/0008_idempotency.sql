-- `Idempotency-Key`: the answer to a POST, kept so that a retry with the
-- same key gets the same answer without the request running twice.
--
-- A request claims its key by inserting a `pending` row first; a second
-- request with the key while it runs is refused (409), and one arriving
-- after it completed is answered from `status`/`headers`/`body`. Rows
-- expire after a day; an expired row, or a `pending` one abandoned by a
-- process that died, may be claimed again.

create table idempotency_keys
(
    -- Whose key: `user:<id>` or `api_key:<id>` for an authenticated caller,
    -- `anonymous` for registration.
    scope        text        not null,
    -- The client's Idempotency-Key.
    key          text        not null,
    -- The caller's tenant, when authenticated.
    tenant_id    uuid,
    -- What the key was first used for: a reuse for another request is
    -- refused.
    method       text        not null,
    path         text        not null,
    request_hash bytea       not null,
    -- pending | completed
    state        text        not null check (state in ('pending', 'completed')),
    -- The attempt holding the key: only it may complete or release it (a
    -- pending row taken over after its process died stays the new one's).
    claim        uuid        not null,
    -- The stored answer, once completed: status, a few headers
    -- (content-type, location, x-wablast-position) and the body, encrypted
    -- (AES-256-GCM with the installation's secret key: it can hold a new API
    -- key or an access token).
    status       smallint,
    headers      jsonb,
    body         bytea,
    created_at   timestamptz not null,
    completed_at timestamptz,
    expires_at   timestamptz not null,
    primary key (scope, key)
);

create index idempotency_keys_expiry on idempotency_keys (expires_at);
