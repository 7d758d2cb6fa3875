-- Contact lists and their contacts, imported from CSV or XLSX.
--
-- Plain tables, not event-sourced (DESIGN.md): an import writes a list and
-- its contacts in one transaction, so a refused file creates nothing. Only
-- accepted rows are stored (normalised to E.164, deduplicated, consented);
-- the rejected ones are answered in the import's report.

create table contact_lists
(
    id          uuid primary key,
    tenant_id   uuid        not null references tenants (id),
    name        text        not null,
    -- The columns a template may use besides name and phone (the mapping's
    -- `variables`), in file order.
    columns     text[]      not null,
    -- Data rows in the file (the header excluded).
    total_rows  integer     not null,
    -- Contacts stored.
    accepted    integer     not null,
    -- Rows refused (bad number, duplicate, no consent, ...).
    rejected    integer     not null,
    -- The file as uploaded: name and csv | xlsx.
    source_filename text,
    source_format   text    not null check (source_format in ('csv', 'xlsx')),
    created_at  timestamptz not null,
    -- Set when deleted: the list is gone for the API, while campaigns that
    -- were sent to it keep their recipients.
    deleted_at  timestamptz
);

create index contact_lists_tenant on contact_lists (tenant_id, id) where deleted_at is null;

-- One recipient of a list.
create table contacts
(
    list_id    uuid    not null references contact_lists (id) on delete cascade,
    -- The data row it came from (1 = the first row after the header).
    row_number integer not null,
    tenant_id  uuid    not null,
    -- E.164.
    phone      text    not null,
    name       text,
    -- The mapped variable columns: {"<column>": "<value>"}.
    variables  jsonb   not null default '{}',
    primary key (list_id, row_number)
);

create unique index contacts_list_phone on contacts (list_id, phone);
