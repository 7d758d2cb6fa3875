-- `event_index` keeps the two indexes its queries use: the primary key
-- (where an event is, by its id) and `event_index_by_aggregate` (one
-- aggregate's history). `event_index_by_time` served no query, and every
-- event of both streams paid for it: one more B-tree entry per row, at
-- projection time and in every rebuild (which copies the live table's
-- indexes).

drop index if exists event_index_by_time;
