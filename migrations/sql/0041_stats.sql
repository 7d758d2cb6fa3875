-- Statistics (`GET /api/v1/stats`, `GET /api/v1/admin/stats`), folded
-- from the message and inbound events by projection `stats`, so a report
-- reads a row per tenant, day (UTC) and session instead of scanning
-- `messages`. Counts are of events on that day: a message sent on Monday
-- and read on Tuesday counts as sent on Monday and read on Tuesday.

create table stats_daily
(
    tenant_id    uuid   not null,
    day          date   not null,
    -- The sender; the nil UUID for receipts (delivered, read), whose
    -- events do not name it.
    session_id   uuid   not null,
    sent         bigint not null default 0,
    delivered    bigint not null default 0,
    read         bigint not null default 0,
    -- Attempts that failed for good (not retried).
    failed       bigint not null default 0,
    -- Inbound messages the session received.
    replies      bigint not null default 0,
    points_spent bigint not null default 0,
    primary key (tenant_id, day, session_id)
);

create index stats_daily_by_day on stats_daily (day);

-- Final failures per reason.
create table stats_failures
(
    tenant_id uuid   not null,
    day       date   not null,
    reason    text   not null,
    failed    bigint not null default 0,
    primary key (tenant_id, day, reason)
);

create index stats_failures_by_day on stats_failures (day);
