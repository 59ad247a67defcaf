-- 0003: edges (a region's entry point), their listeners and the connections
-- they relay.

alter table regions
    add column edge_token_hash      bytea,
    -- edge_managed: a tpf edge serves this region, so a forward is active
    -- only once the edge listens for it too.
    add column edge_managed         boolean     not null default false,
    add column revision             bigint      not null default 0,
    add column edge_connected_at    timestamptz,
    add column edge_disconnected_at timestamptz,
    add column edge_seen_at         timestamptz,
    add column edge_version         text        not null default '',
    add column edge_applied_revision bigint     not null default 0,
    add column edge_error           text        not null default '',
    add constraint regions_edge_token_key unique (edge_token_hash);

alter table forwards
    add column rule_confirmed_at     timestamptz,
    add column listener_confirmed_at timestamptz,
    -- Why the edge could not listen for the forward (port taken, …).
    add column edge_error            text not null default '';

create table connections (
    id          uuid        not null,
    forward_id  uuid        not null,
    source      text        not null,
    started_at  timestamptz not null,
    ended_at    timestamptz,
    bytes_up    bigint      not null default 0,
    bytes_down  bigint      not null default 0,
    reason      text        not null default '',
    constraint connections_pkey primary key (id),
    constraint connections_forward_fkey foreign key (forward_id) references forwards (id)
);

create index connections_forward_idx on connections (forward_id, started_at desc);
create index connections_open_idx on connections (forward_id) where ended_at is null;
