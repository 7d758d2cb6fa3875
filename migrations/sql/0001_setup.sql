-- Bootstrap: helpers every later migration may use, and the checkpoints of
-- the projections.

-- Keeps an `updated_at` column current on every UPDATE:
--   select trigger_updated_at('<table>');
create or replace function set_updated_at()
    returns trigger as
$$
begin
    new.updated_at = now();
    return new;
end;
$$ language plpgsql;

create or replace function trigger_updated_at(tablename regclass)
    returns void as
$$
begin
    execute format('create trigger set_updated_at
        before update
        on %s
        for each row
        when (old is distinct from new)
    execute function set_updated_at();', tablename);
end;
$$ language plpgsql;

-- Where each projection has read the event log up to. A projection writes
-- its rows and advances its checkpoint in the same transaction, so a crash
-- or a redelivery neither skips nor applies an event twice.
create table projection_checkpoint
(
    -- The projection's name (`sessions`, `campaigns`, ...).
    projection      text        not null,
    -- The JetStream stream it reads.
    stream          text        not null,
    -- Stream sequence of the last commit applied (0: nothing yet).
    stream_sequence bigint      not null default 0 check (stream_sequence >= 0),
    updated_at      timestamptz not null default now(),
    primary key (projection, stream)
);

select trigger_updated_at('projection_checkpoint');
