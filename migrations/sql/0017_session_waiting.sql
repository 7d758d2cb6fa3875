-- Why a ready session sends nothing for now (a used-up daily limit,
-- closed active hours, the override, an expired plan) and until when: the
-- session says so, and so do the running campaigns it sends for, instead
-- of `running` with nothing moving.

alter table sessions
    add column waiting_reason text,
    add column waiting_until timestamptz;
