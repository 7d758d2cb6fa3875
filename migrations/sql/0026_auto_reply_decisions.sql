-- What the auto-responder decided for each inbound message it looked at:
-- answered, or silent with the reason (`GET /api/v1/auto-replies/{id}/stats`).
--
-- Projection `auto_replies` (aggregate `auto_reply_thread`, in the
-- messages stream): a query table like those of 0002, rebuilt from
-- sequence 0 at will. A withdrawn answer becomes its reason.

create table auto_reply_decisions
(
    -- The inbound message decided.
    inbound_id uuid primary key,
    tenant_id  uuid        not null,
    -- The rule that matched; null when none did.
    rule_id    uuid,
    -- `answered`, or why not: `no_match`, `cooldown`, `loop_guard`,
    -- `outside_hours`, `no_points`, ...
    outcome    text        not null collate "C",
    -- The answer's message (answered only).
    message_id uuid,
    decided_at timestamptz not null
);

create index auto_reply_decisions_by_rule on auto_reply_decisions (tenant_id, rule_id, outcome);
