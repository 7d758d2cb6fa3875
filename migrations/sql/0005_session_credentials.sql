-- Driver credentials of sessions (WAHA, WhatsApp Cloud API), stored
-- encrypted.
--
-- A plain table, not event-sourced: secrets do not belong in the event log,
-- which is kept forever and read by every projection and integrator. The
-- API writes a row when a session is created with a `driver_config` and
-- removes it when the session is deleted; the session engine reads it to
-- connect (`wablast_session_engine::credentials`).

create table session_credentials
(
    -- The session (its aggregate id); one row per session.
    session_id uuid primary key,
    tenant_id  uuid        not null,
    -- waha | cloud
    driver     text        not null check (driver in ('waha', 'cloud')),
    -- The fields that are not secret (WAHA: base_url, session_name; Cloud:
    -- phone_number_id, api_base), shown in API answers.
    config     jsonb       not null,
    -- The secret fields as JSON, sealed with AES-256-GCM under
    -- WABLAST_SECRET_KEY: a 12-byte random nonce, then the ciphertext and
    -- its 16-byte tag. The session id is the associated data, so a row
    -- copied onto another session does not open.
    secret     bytea       not null check (octet_length(secret) > 28),
    created_at timestamptz not null,
    updated_at timestamptz not null
);

create index session_credentials_by_tenant on session_credentials (tenant_id, session_id);
