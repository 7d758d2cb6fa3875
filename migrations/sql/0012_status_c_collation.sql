-- The status columns of `messages` and `campaigns` are keys of the
-- indexes that list by status (`messages_by_campaign_status`,
-- `campaigns_by_tenant_status`). They hold lowercase ASCII words and are
-- only compared for equality, yet under the database's default collation
-- every B-tree comparison of them goes through strcoll. Within one
-- campaign every entry of `messages_by_campaign_status` shares its tenant
-- and campaign, so the status is compared at nearly every step of every
-- descent, and each message changes status four or five times (queued,
-- sending, sent, delivered, read): a new index entry each time. Under "C"
-- it is a byte comparison (as in 0011 for `event_index`).
--
-- Equality is the same under both collations: no query's answer changes.
-- The indexes are rebuilt; the tables are not rewritten.

alter table messages
    alter column status type text collate "C";

alter table campaigns
    alter column status type text collate "C";
