-- 0002: what each router's agent reported, and the revision of its desired set.

alter table routers
    add column revision              bigint      not null default 0,
    add column agent_connected_at    timestamptz,
    add column agent_disconnected_at timestamptz,
    add column agent_seen_at         timestamptz,
    add column agent_version         text        not null default '',
    add column routeros_version      text        not null default '',
    add column board                 text        not null default '',
    add column identity              text        not null default '',
    add column applied_revision      bigint      not null default 0,
    add column agent_error           text        not null default '';

-- Why the router's agent refused or failed a forward, empty when it did not.
alter table forwards
    add column router_error text not null default '';
