-- Tenants' teams (projection `members`, from the `team` aggregate): who
-- belongs to a tenant with which role, and the invitations pending.
--
-- A tenant whose team never changed has no rows here: its accounts
-- (`users`) are its members with the roles they registered with. Once the
-- team is founded (its first event), these rows say who is in it; the
-- accounts keep the email and password.

create table team_members
(
    tenant_id  uuid        not null,
    user_id    uuid        not null,
    -- owner | member
    role       text        collate "C" not null,
    joined_at  timestamptz not null,
    -- Set when an owner took the member out: its logins, tokens and API
    -- keys stop working.
    removed_at timestamptz,
    -- The last time it was taken out, kept when it joins again: access
    -- tokens issued before it stay refused.
    last_removed_at timestamptz,
    updated_at timestamptz not null,
    primary key (tenant_id, user_id)
);

create index team_members_user on team_members (user_id);

create table team_invitations
(
    id          uuid primary key,
    tenant_id   uuid        not null,
    email       text        not null,
    role        text        collate "C" not null,
    invited_by  uuid        not null,
    invited_at  timestamptz not null,
    expires_at  timestamptz not null,
    -- pending | accepted | revoked | replaced
    status      text        collate "C" not null,
    accepted_by uuid,
    closed_at   timestamptz
);

create index team_invitations_tenant on team_invitations (tenant_id, invited_at);
