-- Single sends through the gateway (`POST /api/v1/messages`).
--
-- Each session's single sends of one local day are held by a *direct*
-- campaign (aggregate `campaign`, event `DirectCampaignOpened`): it has no
-- contact list and no template, its only sender is the session, and its
-- recipients are counted when it completes. Lists of campaigns show
-- broadcasts only.

alter table campaigns
    -- broadcast | direct
    add column kind       text not null default 'broadcast' collate "C",
    -- A direct campaign's local day (tenant time zone); null for a
    -- broadcast.
    add column direct_day date,
    alter column contact_list_id drop not null;

create index campaigns_direct on campaigns (tenant_id, status) where kind = 'direct';

-- A single send's attachment (a broadcast's is its campaign's). Its text
-- goes in `text` from the start: written by its sender, not rendered.
alter table messages
    add column media_id uuid,
    -- WhatsApp's id of the message it answers (quoted).
    add column reply_to text;

-- A tenant's messages, newest first, and one session's (the message
-- history's lists).
create index messages_by_tenant on messages (tenant_id, queued_at desc, id desc);
create index messages_by_session on messages (tenant_id, session_id, queued_at desc, id desc);
