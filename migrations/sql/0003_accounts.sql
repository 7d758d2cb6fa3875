-- Accounts: tenants, their users and their API keys.
--
-- Plain tables, not event-sourced (DESIGN.md, "Read side and API"): they are
-- written by the API directly and are not rebuilt from the log. Every
-- tenant-owned row carries `tenant_id`, and the indexes lead with it.

-- A business: everything it owns (sessions, contacts, campaigns, wallet) is
-- scoped to its id.
create table tenants
(
    id         uuid primary key,
    name       text        not null,
    created_at timestamptz not null
);

-- A person who logs in with a password. The platform admin belongs to a
-- tenant of its own, like everybody else.
create table users
(
    id            uuid primary key,
    tenant_id     uuid        not null references tenants (id),
    -- Lower-cased; unique across the platform.
    email         text        not null,
    -- PHC string (Argon2id): algorithm, parameters, salt and hash.
    password_hash text        not null,
    -- admin | owner | member
    role          text        not null check (role in ('admin', 'owner', 'member')),
    name          text,
    created_at    timestamptz not null
);

create unique index users_email on users (email);
create index users_tenant on users (tenant_id, id);

-- A key an integration calls the API with. The key itself is shown once, at
-- creation; only its SHA-256 is kept (keys are 256 random bits, so a fast
-- hash is enough: nothing to brute-force).
create table api_keys
(
    id           uuid primary key,
    tenant_id    uuid        not null references tenants (id),
    name         text        not null,
    -- SHA-256 of the whole key, hex.
    key_hash     text        not null,
    -- The key's first characters, to tell keys apart in a list.
    key_prefix   text        not null,
    created_by   uuid        references users (id),
    created_at   timestamptz not null,
    last_used_at timestamptz,
    -- Set when revoked; a revoked key authenticates nothing.
    revoked_at   timestamptz
);

create unique index api_keys_hash on api_keys (key_hash);
create index api_keys_tenant on api_keys (tenant_id, id);
