-- `event_index_by_aggregate` keyed an aggregate's history on (tenant,
-- aggregate type, aggregate id, aggregate sequence): about 110 bytes an
-- entry, one entry per event of both streams, each placed at a random spot
-- of the B-tree (aggregate ids are random) after comparing up to three text
-- columns at every step down. It was the largest single cost of projecting
-- an event into PostgreSQL, live and in every rebuild.
--
-- An aggregate id alone picks out one aggregate's history: ids are UUIDs
-- (or a session id and a day), and the few aggregates that share an id
-- (a tenant's wallet and schedule both use the tenant's id) differ in type,
-- which the history query still checks on the rows it reads, as it checks
-- the tenant. With a single key column PostgreSQL deduplicates an
-- aggregate's entries into one posting list: the index is about a sixth of
-- the size and an insert compares one column. The history query sorts the
-- aggregate's few rows by sequence itself.

drop index if exists event_index_by_aggregate;
create index event_index_by_aggregate on event_index (aggregate_id);
