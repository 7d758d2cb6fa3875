-- Checks of a contact list's numbers on WhatsApp
-- (`POST /api/v1/contact-lists/{id}/check`), and what a campaign that
-- skips numbers not on WhatsApp left out.
--
-- `list_checks`: projection `list_checks` (aggregate `list_check`, in the
-- events stream), a query table like those of 0002, rebuilt from sequence
-- 0 at will. What each number was found to be is not here: it is the
-- tenant's `number_checks` row of the number (0023), which every list
-- holding the number shows.

create table list_checks
(
    id              uuid primary key,
    tenant_id       uuid        not null,
    list_id         uuid        not null,
    -- The session that asks.
    session_id      uuid        not null,
    -- running | completed | failed | cancelled
    status          text        not null collate "C",
    -- How many contacts it covers, and the last row it covers.
    contacts        bigint      not null,
    last_row        integer     not null,
    -- The first row not checked yet.
    next_row        integer     not null,
    checked         bigint      not null,
    on_whatsapp     bigint      not null,
    not_on_whatsapp bigint      not null,
    -- Why it failed: list_deleted | session_deleted | session_logged_out |
    -- unsupported.
    failure         text collate "C",
    started_at      timestamptz not null,
    updated_at      timestamptz not null,
    ended_at        timestamptz
);

create index list_checks_by_list on list_checks (tenant_id, list_id, started_at desc);
create index list_checks_running on list_checks (started_at) where status = 'running';

-- The contacts a campaign with `skip_not_on_whatsapp` left out when it
-- started, because a check had found their numbers not on WhatsApp.
-- Written by the campaign's start before it reserves points (the campaign
-- reserves and sends for the others only), read by its fan-out, so that
-- a check finishing between the two changes neither. Not event-sourced:
-- like the contacts, a plain table; `CampaignStarted` records how many.

create table campaign_skipped_contacts
(
    campaign_id uuid    not null,
    row_number  integer not null,
    primary key (campaign_id, row_number)
);

-- Campaigns say whether they skip numbers not on WhatsApp, and how many
-- contacts their start left out so.
alter table campaigns
    add column skip_not_on_whatsapp    boolean not null default false,
    add column skipped_not_on_whatsapp bigint  not null default 0;
