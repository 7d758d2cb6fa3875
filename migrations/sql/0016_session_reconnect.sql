-- A session whose driver could not connect (its server restarting,
-- WhatsApp away) is tried again with back-off: which try failed last and
-- when the next is, so a user sees the engine at work instead of a
-- session stuck in starting.

alter table sessions
    add column reconnect_attempt integer,
    add column reconnect_at timestamptz;
