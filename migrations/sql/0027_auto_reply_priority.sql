-- Which rule answers first when several match: higher first, then the
-- oldest.

alter table auto_replies
    add column priority integer not null default 0 check (priority between -1000 and 1000);
