-- 0001: accounts, API tokens, regions, routers, forwards and the audit log.

create table accounts (
    id         uuid        not null default gen_random_uuid(),
    name       text        not null,
    created_at timestamptz not null,
    constraint accounts_pkey primary key (id),
    constraint accounts_name_key unique (name),
    constraint accounts_name_check check (name <> '')
);

-- API tokens are stored only as SHA-256 hashes of the secret.
create table api_tokens (
    id           uuid        not null default gen_random_uuid(),
    account_id   uuid        not null,
    name         text        not null,
    token_hash   bytea       not null,
    created_at   timestamptz not null,
    revoked_at   timestamptz,
    constraint api_tokens_pkey primary key (id),
    constraint api_tokens_account_fkey foreign key (account_id) references accounts (id),
    constraint api_tokens_hash_key unique (token_hash)
);

-- A region is one entry point (a regional edge server) and its port pool.
create table regions (
    id                  text        not null,
    entry_point         text        not null,
    port_min            integer     not null,
    port_max            integer     not null,
    edge_tunnel_address inet        not null,
    created_at          timestamptz not null,
    constraint regions_pkey primary key (id),
    constraint regions_ports_check check (port_min between 1 and 65535 and port_max between port_min and 65535),
    constraint regions_id_check check (id ~ '^[a-z0-9][a-z0-9-]{0,62}$')
);

create table routers (
    id               uuid        not null default gen_random_uuid(),
    account_id       uuid        not null,
    region_id        text        not null,
    name             text        not null,
    tunnel_address   inet        not null,
    agent_token_hash bytea       not null,
    created_at       timestamptz not null,
    deleted_at       timestamptz,
    constraint routers_pkey primary key (id),
    constraint routers_account_fkey foreign key (account_id) references accounts (id),
    constraint routers_region_fkey foreign key (region_id) references regions (id),
    constraint routers_agent_token_key unique (agent_token_hash)
);

create index routers_account_idx on routers (account_id, created_at) where deleted_at is null;

-- status: pending (router has not confirmed the rule), active, removing (ended,
-- removal not yet confirmed), removed (removal confirmed by the router).
-- port_released_at is set when the port may be handed out again: on confirmed
-- removal, or after the grace period for a router that never confirmed.
create table forwards (
    id               uuid        not null default gen_random_uuid(),
    router_id        uuid        not null,
    region_id        text        not null,
    port             integer     not null,
    dst_address      inet        not null,
    dst_port         integer     not null,
    allow_cidr       cidr        not null,
    masquerade       boolean     not null,
    status           text        not null,
    created_at       timestamptz not null,
    expires_at       timestamptz not null,
    created_by       uuid,
    revoked_at       timestamptz,
    revoked_by       uuid,
    ended_at         timestamptz,
    port_released_at timestamptz,
    constraint forwards_pkey primary key (id),
    constraint forwards_router_fkey foreign key (router_id) references routers (id),
    constraint forwards_region_fkey foreign key (region_id) references regions (id),
    constraint forwards_created_by_fkey foreign key (created_by) references api_tokens (id),
    constraint forwards_revoked_by_fkey foreign key (revoked_by) references api_tokens (id),
    constraint forwards_port_check check (port between 1 and 65535),
    constraint forwards_dst_port_check check (dst_port between 1 and 65535),
    constraint forwards_status_check check (status in ('pending', 'active', 'removing', 'removed')),
    constraint forwards_expiry_check check (expires_at > created_at),
    constraint forwards_ended_check check ((status in ('pending', 'active')) = (ended_at is null))
);

-- The heart of port allocation: one holder per entry-point port.
create unique index forwards_port_held_key on forwards (region_id, port) where port_released_at is null;
create index forwards_router_idx on forwards (router_id, created_at desc);
-- Ports whose removal a router has yet to confirm, checked on every create.
create index forwards_removing_idx on forwards (router_id, port) where status = 'removing';
create index forwards_live_expiry_idx on forwards (expires_at) where ended_at is null;
create index forwards_unreleased_idx on forwards (ended_at) where ended_at is not null and port_released_at is null;

create table audit_events (
    id         bigint      generated always as identity,
    at         timestamptz not null,
    account_id uuid        not null,
    actor      text        not null,
    action     text        not null,
    subject_id uuid        not null,
    detail     jsonb       not null default '{}',
    constraint audit_events_pkey primary key (id),
    constraint audit_events_account_fkey foreign key (account_id) references accounts (id)
);

create index audit_events_account_idx on audit_events (account_id, id desc);
