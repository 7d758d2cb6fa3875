-- The engine running a session (it took the session's lease last) and
-- since when; null while no engine runs it (not started, stopped, failed,
-- logged out). Whether that engine is still alive is its heartbeat's
-- business, not this table's.

alter table sessions
    add column engine_id text,
    add column engine_since timestamptz;
