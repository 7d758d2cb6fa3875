-- A session's own pacing (`PATCH /api/v1/sessions/{id}` `pacing`; event
-- `SessionSettingsUpdated.pacing`): `{break_every, per_minute, per_hour,
-- new_contacts_per_day}`, each null when the session sets none; null
-- until set.

alter table sessions
    add column pacing jsonb;
