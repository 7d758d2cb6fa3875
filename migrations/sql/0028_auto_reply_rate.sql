-- The most messages a rule answers an hour, whoever asks (null: no limit
-- beyond each contact's cooldown).

alter table auto_replies
    add column max_per_hour integer check (max_per_hour between 1 and 10000);
