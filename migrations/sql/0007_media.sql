-- Uploaded media: attachments for campaigns and auto-replies.
--
-- A plain table, not event-sourced (DESIGN.md): the API writes it directly.
-- The bytes live in a storage (the local filesystem by default, under
-- `<WABLAST_DATA_DIR>/media/`) under `storage_key`; this row is what the API
-- knows about them.

create table media
(
    id          uuid primary key,
    tenant_id   uuid        not null references tenants (id),
    -- As uploaded, sanitised for display (no path, no control characters);
    -- never used as a file name on disk.
    filename    text        not null,
    -- Detected from the content, not taken from the client.
    mime_type   text        not null,
    -- Bytes.
    size        bigint      not null check (size > 0),
    -- Hex SHA-256 of the content.
    sha256      text        not null,
    -- Where the storage keeps the bytes.
    storage_key text        not null,
    created_at  timestamptz not null
);

create index media_tenant on media (tenant_id, id);
