-- Conversations: one row per session and peer (the other side), for the
-- inbox (`GET /api/v1/chats`).
--
-- Projection `chats` (aggregates `message`, `recipient_batch` and
-- `inbound`, in the messages stream): a query table like those of 0002,
-- rebuilt from sequence 0 at will. The row names its last message; its
-- text is read from `messages` or `inbound_messages` at query time.

create table chats
(
    -- A UUID v5 of the session and the peer: the same after a rebuild.
    id              uuid primary key,
    tenant_id       uuid        not null,
    session_id      uuid        not null,
    -- E.164, or the chat id the driver gave when it could not tell the
    -- number.
    peer            text        not null,
    -- The latest message, sent (`out`, a `messages` row) or received
    -- (`in`, an `inbound_messages` row), by when it was queued or received.
    last_message_id uuid        not null,
    last_direction  text        not null collate "C",
    last_at         timestamptz not null
);

create index chats_by_tenant on chats (tenant_id, last_at desc, id desc);
create index chats_by_session on chats (tenant_id, session_id, last_at desc, id desc);

-- When a person last read a chat (`POST /api/v1/chats/{id}/read`). Not a
-- projection's: a plain table the API writes, kept across rebuilds (chat
-- ids do not change). Messages received after it are unread.
create table chat_reads
(
    chat_id   uuid primary key,
    tenant_id uuid        not null,
    read_at   timestamptz not null
);

-- A chat's received messages (its unread count).
create index inbound_messages_by_peer
    on inbound_messages (tenant_id, session_id, (coalesce(from_phone, from_raw)), received_at);
