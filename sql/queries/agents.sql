-- name: RouterByAgentToken :one
select * from routers where agent_token_hash = @agent_token_hash and deleted_at is null;

-- name: RotateAgentToken :one
update routers set agent_token_hash = @agent_token_hash
where id = @id and account_id = @account_id and deleted_at is null
returning *;

-- name: BumpRevision :one
update routers set revision = revision + 1 where id = @id returning revision;

-- name: AgentTarget :one
-- What a router's desired set is addressed with.
select ro.id, ro.revision, ro.tunnel_address, rg.edge_tunnel_address
from routers ro
join regions rg on rg.id = ro.region_id
where ro.id = @id and ro.deleted_at is null;

-- name: AgentConnected :exec
update routers
set agent_connected_at = @now::timestamptz, agent_seen_at = @now::timestamptz
where id = @id;

-- name: AgentDisconnected :exec
update routers set agent_disconnected_at = @now::timestamptz where id = @id;

-- name: AgentSeen :exec
update routers set agent_seen_at = @now::timestamptz where id = @id;

-- name: AgentHello :exec
update routers
set agent_seen_at = @now::timestamptz, agent_version = @agent_version,
    routeros_version = coalesce(nullif(@routeros_version::text, ''), routeros_version),
    board = coalesce(nullif(@board::text, ''), board),
    identity = coalesce(nullif(@identity::text, ''), identity)
where id = @id;

-- name: AgentReport :exec
update routers
set agent_seen_at = @now::timestamptz, agent_version = @agent_version,
    routeros_version = coalesce(nullif(@routeros_version::text, ''), routeros_version),
    board = coalesce(nullif(@board::text, ''), board),
    identity = coalesce(nullif(@identity::text, ''), identity),
    applied_revision = greatest(applied_revision, @applied_revision), agent_error = @agent_error
where id = @id;

-- name: ActivateForwards :many
-- The router confirmed these forwards' rules. In a region served by a tpf
-- edge the forward is active once the edge listens too. The rows are locked
-- first (in id order), so previous_status is the status this update replaced:
-- pending → active means this report is what made the forward active.
with prev as (
    select p.id, p.status
    from forwards p
    where p.router_id = @router_id and p.id = any(@ids::uuid[])
    order by p.id
    for update
)
update forwards f
set rule_confirmed_at = coalesce(f.rule_confirmed_at, @now::timestamptz),
    router_error = '',
    status = case when f.status = 'pending' and (not r.edge_managed or f.listener_confirmed_at is not null)
                  then 'active' else f.status end
from prev, regions r
where prev.id = f.id and r.id = f.region_id
returning f.id, f.status, prev.status as previous_status, f.created_at;

-- name: SetRouterError :exec
update forwards set router_error = @router_error
where router_id = @router_id and id = @id;

-- name: ConfirmRemovals :many
-- Ended forwards the router no longer holds: their removal is confirmed and
-- their ports are free.
update forwards
set status = 'removed', port_released_at = coalesce(port_released_at, @now::timestamptz)
where router_id = @router_id and status = 'removing' and not (id = any(@present::uuid[]))
returning id;
