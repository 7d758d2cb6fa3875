-- The engagement guard (issue #23): campaigns leave out the contacts the
-- tenant sent `skip_unanswered_after` messages or more who never replied,
-- and slow themselves down while a sender's failures climb.
--
-- Projection `engagement` (aggregates `message` and `inbound`, in the
-- messages stream with its retention): query tables like those of 0002,
-- rebuilt from sequence 0 at will. One row per tenant and contact:
-- `contact_outbound` counts the messages sent to it (`MessageSent`, by
-- any session of the tenant), `contact_replies` the messages received from
-- it (`InboundMessageReceived`).

create table contact_outbound
(
    tenant_id    uuid        not null,
    -- E.164.
    phone        text        not null,
    sent         bigint      not null,
    last_sent_at timestamptz not null,
    primary key (tenant_id, phone)
);

create table contact_replies
(
    tenant_id     uuid        not null,
    -- E.164.
    phone         text        not null,
    replies       bigint      not null,
    first_reply_at timestamptz not null,
    last_reply_at timestamptz not null,
    primary key (tenant_id, phone)
);

-- Why a campaign's start left a contact out: `not_on_whatsapp` (0031) or
-- `never_replied`.
alter table campaign_skipped_contacts
    add column reason text not null collate "C" default 'not_on_whatsapp';

-- Campaigns: their guard (0: off), how many contacts their start left out
-- as never replying, and their slow-down while it holds
-- (`{reason, session_id, throttle, since}`, from `CampaignSlowedDown`;
-- null once `CampaignSpeedRestored`).
alter table campaigns
    add column skip_unanswered_after integer not null default 0,
    add column skipped_never_replied bigint  not null default 0,
    add column slow_down             jsonb;
