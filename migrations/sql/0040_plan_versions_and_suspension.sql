-- Plans become editable (`PlanEdited`: a new version), say what they
-- include and whether they are on sale, and may give days of grace after a
-- period. Wallets show the version and grace of the terms subscribed, the
-- notices given this period (so the notice timer looks only where one is
-- due) and the operator's suspension. Projections `plans` and `wallets`;
-- plans and wallets written before have the defaults their events imply
-- (everything included, on sale, version 1, no grace).

alter table plans
    add column version                integer not null default 1,
    add column feature_auto_replies   boolean not null default true,
    add column feature_webhooks       boolean not null default true,
    add column feature_official_mode  boolean not null default true,
    add column grace_days             integer not null default 0,
    add column on_sale                boolean not null default true,
    add column updated_at             timestamptz;

alter table wallets
    add column plan_version           integer,
    add column plan_points            bigint,
    add column grace_days             integer,
    -- The end of the period plus its grace: when sending stops.
    add column sending_until          timestamptz,
    add column feature_auto_replies   boolean,
    add column feature_webhooks       boolean,
    add column feature_official_mode  boolean,
    -- The nearest expiry warning given this period (days before its end).
    add column expiry_warned_days     integer,
    add column renewal_reminded       boolean not null default false,
    add column low_balance_warned     boolean not null default false,
    -- Set while the platform operator has the tenant suspended.
    add column suspended_reason       text,
    add column suspended_at           timestamptz;

-- What the notice timer looks at: wallets with a running plan.
create index wallets_plan_running on wallets (plan_expires_at) where plan_id is not null and not plan_expired;
