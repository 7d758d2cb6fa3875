-- The WhatsApp message templates of a Cloud API session's WhatsApp
-- Business Account, as Meta last listed them
-- (`POST /api/v1/sessions/{id}/templates/sync`): what template sends are
-- checked against (only APPROVED ones go out; as many parameters as the
-- body's `{{n}}`). Not event-sourced: facts Meta gave, replaced whole by
-- each sync; the API writes them.

create table whatsapp_templates
(
    tenant_id         uuid        not null,
    session_id        uuid        not null,
    name              text        not null collate "C",
    -- Meta's language code (`id`, `en_US`).
    language          text        not null collate "C",
    -- APPROVED, PENDING, REJECTED, PAUSED, DISABLED, IN_APPEAL or OTHER.
    status            text        not null collate "C",
    -- MARKETING, UTILITY, AUTHENTICATION or OTHER.
    category          text        not null collate "C",
    body              text,
    -- How many `{{n}}` the body has.
    body_parameters   integer     not null,
    -- TEXT, IMAGE, VIDEO, DOCUMENT, LOCATION; null without a header.
    header_format     text collate "C",
    header_text       text,
    header_parameters integer     not null,
    synced_at         timestamptz not null,
    primary key (tenant_id, session_id, name, language)
);
