-- The pause between two single sends of a session
-- (`PATCH /api/v1/sessions/{id}` `throttle`; event
-- `SessionSettingsUpdated.throttle`): the default, 2 to 5 seconds, until
-- set.

alter table sessions
    add column throttle_min_ms integer not null default 2000,
    add column throttle_max_ms integer not null default 5000;
