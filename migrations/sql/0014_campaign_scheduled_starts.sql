-- Scheduled campaigns start at their time (the scheduled starts look for
-- the due ones every second), and a scheduled start that was refused
-- (no points, an expired plan, ...) says why on the campaign, which is a
-- draft again.

alter table campaigns
    add column start_refusal jsonb;

-- The due scheduled campaigns, oldest time first: a partial index, so the
-- look-up costs the scheduled campaigns only.
create index campaigns_scheduled_due on campaigns (scheduled_at)
    where status = 'scheduled';
