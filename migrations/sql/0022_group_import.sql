-- Contact lists made from a WhatsApp group's participants
-- (`POST /api/v1/contact-lists/group-import`): their `source_format` is
-- `group`, and the group they came from is kept. The importer states the
-- participants' consent by importing them; the list records where that
-- statement came from.

alter table contact_lists
    drop constraint contact_lists_source_format_check,
    add constraint contact_lists_source_format_check
        check (source_format in ('csv', 'xlsx', 'json', 'group')),
    -- The group's id (`…@g.us`) and the session it was read through.
    add column source_group_id text,
    add column source_session_id uuid;
