-- Whether numbers are on WhatsApp, as a tenant's sessions asked WhatsApp
-- (`POST /api/v1/sessions/{id}/check-numbers`): a cache, answered from
-- for 7 days so that a number is not asked again and again (bulk checks
-- get numbers banned). Not event-sourced: facts WhatsApp gave, kept for a
-- while; the API writes them.

create table number_checks
(
    tenant_id   uuid        not null,
    -- E.164.
    phone       text        not null collate "C",
    on_whatsapp boolean     not null,
    -- The chat id WhatsApp knows the number by, when it is on WhatsApp.
    chat_id     text,
    -- The session that asked.
    session_id  uuid        not null,
    checked_at  timestamptz not null,
    primary key (tenant_id, phone)
);
