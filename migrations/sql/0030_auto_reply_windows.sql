-- A rule's own active windows: it answers only inside them (and, like every
-- send, inside the tenant's active hours). Null: the tenant's hours alone.
-- Each window is `{"days": ["mon", ...], "start": "HH:MM", "end": "HH:MM"}`
-- in the tenant's time zone, as the API checked it.
alter table auto_replies add column active_windows jsonb;
