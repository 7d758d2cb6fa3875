-- `event_index_by_aggregate` keys on three text columns (tenant, aggregate
-- type, aggregate id) that hold ASCII tokens and are only ever compared for
-- equality. Under the database's default collation (a libc locale such as
-- C.UTF-8 or en_US.UTF-8) every B-tree comparison of them goes through
-- strcoll; under "C" it is a byte comparison. Every event of both streams
-- adds an entry to that index, at projection time and in every rebuild
-- (which copies the live table's columns and indexes), so the comparisons
-- are a good part of what projecting an event costs PostgreSQL.
--
-- Equality is the same under both collations: no query's answer changes.
-- The index is rebuilt; the table itself is not rewritten.

alter table event_index
    alter column tenant type text collate "C",
    alter column aggregate_type type text collate "C",
    alter column aggregate_id type text collate "C";
