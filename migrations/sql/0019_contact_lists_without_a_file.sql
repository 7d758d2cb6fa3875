-- Contact lists made without a file (`POST /api/v1/contact-lists`, JSON
-- rows) say so: their `source_format` is `json` (and `source_filename`
-- null). Their contacts are numbered as an import's are, `row_number`
-- continuing the list's `total_rows` when rows are added, so a row is
-- never reused and added contacts come after every earlier one.

alter table contact_lists
    drop constraint contact_lists_source_format_check,
    add constraint contact_lists_source_format_check
        check (source_format in ('csv', 'xlsx', 'json'));
