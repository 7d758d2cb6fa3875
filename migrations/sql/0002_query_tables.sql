-- The query tables the projections fold the event log into, and that the
-- API reads.
--
-- Rules every table here keeps:
-- - Every value comes from events: no `now()`, no sequence, no trigger. So a
--   rebuild from stream sequence 0 gives the very same rows as the live
--   projection (`wablast replay`), and a table can be thrown away at will.
-- - Each table belongs to exactly one projection (named above it), which
--   writes it and its checkpoint in one transaction. No foreign keys between
--   tables: projections are rebuilt and swapped one at a time.
-- - Tenant-owned rows carry `tenant_id`; every query filters on it, and the
--   indexes lead with it. Ids are the aggregates' UUIDs (v7, so ordering by
--   id is ordering by creation: cursor pagination is `id > $cursor`).

-- ---------------------------------------------------------------- sessions
-- Projection `sessions` (aggregates `session`, `session_day`).

-- A linked WhatsApp number, as it is now. Deleted sessions are removed.
create table sessions
(
    id                              uuid primary key,
    tenant_id                       uuid        not null,
    name                            text        not null,
    -- simulator | native | waha | cloud
    driver                          text        not null,
    -- qr | pairing
    login                           text        not null,
    -- idle | starting | qr | pairing | authenticated | ready | disconnected
    -- | failed | logged_out
    status                          text        not null,
    -- E.164, once known.
    phone_number                    text,
    daily_limit                     integer     not null,
    daily_limit_follows_trust_level boolean     not null,
    trust_level                     smallint    not null,
    auto_start                      boolean     not null,
    -- The last error the engine reported; cleared once ready again.
    last_error                      text,
    created_at                      timestamptz not null,
    -- Time of the last event applied to the row.
    updated_at                      timestamptz not null
);

create index sessions_by_tenant on sessions (tenant_id, id);

-- Send slots granted per session and local day (the tenant's time zone): the
-- daily counter the limit is held to. `sent_today` of a session is the row
-- of the tenant's current local date (0 when there is none).
create table session_days
(
    session_id uuid    not null,
    local_date date    not null,
    tenant_id  uuid    not null,
    -- Slots granted that day so far.
    sent       integer not null check (sent >= 0),
    primary key (session_id, local_date)
);

create index session_days_by_tenant on session_days (tenant_id, local_date);

-- --------------------------------------------------------------- campaigns
-- Projection `campaigns` (aggregate `campaign`).

create table campaigns
(
    id                 uuid primary key,
    tenant_id          uuid        not null,
    name               text        not null,
    contact_list_id    uuid        not null,
    -- The template source as written (`{{name|Kak}}`, spintax).
    template           text        not null,
    media_id           uuid,
    -- Senders in rotation order (those removed for good are dropped).
    sender_session_ids uuid[]      not null,
    throttle_min_ms    integer     not null,
    throttle_max_ms    integer     not null,
    -- draft | scheduled | running | paused | completed | cancelled
    status             text        not null,
    -- Why it is paused: {"kind": "manual"} etc., null unless paused.
    pause_reason       jsonb,
    -- When an auto-paused campaign may resume.
    resume_at          timestamptz,
    scheduled_at       timestamptz,
    -- Recipients frozen at start (0 before).
    recipients         bigint      not null default 0,
    points_reserved    bigint      not null default 0,
    -- Set on completion (live spending is in campaign_message_counts).
    points_spent       bigint,
    created_at         timestamptz not null,
    started_at         timestamptz,
    finished_at        timestamptz,
    updated_at         timestamptz not null
);

create index campaigns_by_tenant on campaigns (tenant_id, id);
create index campaigns_by_tenant_status on campaigns (tenant_id, status, id);

-- ---------------------------------------------------------------- messages
-- Projection `messages` (aggregate `message`, stream with a retention).

-- One row per recipient of a campaign.
create table messages
(
    id                  uuid primary key,
    tenant_id           uuid        not null,
    campaign_id         uuid        not null,
    -- The sender meant for it, then the one that sent it.
    session_id          uuid        not null,
    phone               text        not null,
    name                text,
    -- queued | sending | sent | delivered | read | failed | cancelled |
    -- unknown
    status              text        not null,
    -- Why the last attempt failed.
    error               text,
    -- Attempts made so far.
    attempts            integer     not null default 0,
    provider_message_id text,
    -- Points the send cost (0 until sent).
    cost                bigint      not null default 0,
    queued_at           timestamptz not null,
    sent_at             timestamptz,
    delivered_at        timestamptz,
    read_at             timestamptz,
    updated_at          timestamptz not null
);

-- A campaign's messages (list, export), and by status.
create index messages_by_campaign on messages (tenant_id, campaign_id, id);
create index messages_by_campaign_status on messages (tenant_id, campaign_id, status, id);

-- A campaign's messages counted by their current status: each message is in
-- exactly one column, so the columns add up to the messages queued.
create table campaign_message_counts
(
    campaign_id  uuid primary key,
    tenant_id    uuid   not null,
    queued       bigint not null default 0,
    sending      bigint not null default 0,
    sent         bigint not null default 0,
    delivered    bigint not null default 0,
    read         bigint not null default 0,
    failed       bigint not null default 0,
    cancelled    bigint not null default 0,
    unknown      bigint not null default 0,
    -- What the messages sent so far cost.
    points_spent bigint not null default 0
);

-- ----------------------------------------------------------------- wallets
-- Projection `wallets` (aggregate `wallet`).

create table wallets
(
    tenant_id                   uuid primary key,
    balance                     bigint      not null check (balance >= 0),
    reserved                    bigint      not null check (reserved >= 0),
    available                   bigint      not null check (available >= 0),
    -- The plan subscribed to (terms as subscribed), null before any.
    plan_id                     uuid,
    plan_name                   text,
    plan_period_days            integer,
    max_sessions                integer,
    max_recipients_per_campaign integer,
    max_daily_limit             integer,
    plan_expires_at             timestamptz,
    -- Whether the expiry has been recorded (sending blocked).
    plan_expired                boolean     not null default false,
    updated_at                  timestamptz not null
);

-- The wallet's history: one row per event that moved points (or expired
-- the plan).
create table wallet_transactions
(
    -- The event's id.
    id              uuid primary key,
    tenant_id       uuid        not null,
    -- allocation | topup | reserve | capture | release | expire
    kind            text        not null,
    points          bigint      not null,
    -- The payment, grant or campaign it belongs to.
    reference       text,
    campaign_id     uuid,
    balance_after   bigint      not null,
    reserved_after  bigint      not null,
    available_after bigint      not null,
    created_at      timestamptz not null,
    -- Position in the log: the order of the history (newest first).
    stream_sequence bigint      not null,
    event_sequence  bigint      not null
);

create index wallet_transactions_by_tenant on wallet_transactions (tenant_id, stream_sequence, event_sequence);

-- --------------------------------------------------------------- schedules
-- Projection `schedules` (aggregate `schedule`).

-- A tenant's active hours. No row: Asia/Jakarta, always on, no override.
create table schedules
(
    tenant_id  uuid primary key,
    -- IANA name.
    timezone   text        not null,
    -- [{"days": ["mon", ...], "start": "09:00", "end": "18:00"}]; empty:
    -- always on.
    windows    jsonb       not null,
    -- none | pause | activate
    override   text        not null,
    updated_at timestamptz not null
);

-- ------------------------------------------------------------------- plans
-- Projection `plans` (aggregate `plan`, platform-wide).

create table plans
(
    id                          uuid primary key,
    name                        text        not null,
    period_days                 integer     not null,
    points                      bigint      not null,
    max_sessions                integer     not null,
    max_recipients_per_campaign integer     not null,
    max_daily_limit             integer     not null,
    -- In the smallest currency unit.
    price                       bigint      not null,
    created_at                  timestamptz not null,
    -- Set when taken off offer.
    retired_at                  timestamptz
);

-- ------------------------------------------------------------- event_index
-- Projection `event_index` (every aggregate, both streams): where each event
-- is, for the audit tools and the event history of an aggregate.

create table event_index
(
    event_id           uuid primary key,
    -- Logical stream (`events`, `messages`) and position in it.
    stream             text        not null,
    stream_sequence    bigint      not null,
    -- `platform` for platform-wide aggregates, else the tenant's id.
    tenant             text        not null,
    aggregate_type     text        not null,
    aggregate_id       text        not null,
    aggregate_sequence bigint      not null,
    event_type         text        not null,
    event_version      text        not null,
    occurred_at        timestamptz not null
);

create index event_index_by_aggregate on event_index (tenant, aggregate_type, aggregate_id, aggregate_sequence);
create index event_index_by_time on event_index (tenant, occurred_at);
