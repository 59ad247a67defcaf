-- name: RouterByAgentToken :one
select * from routers where agent_token_hash = @agent_token_hash and deleted_at is null;

-- name: RotateAgentToken :one
update routers set agent_token_hash = @agent_token_hash
where id = @id and account_id = @account_id and deleted_at is null
returning *;

-- name: RouterSets :many
-- The desired sets of many routers in one statement, so in one snapshot: a
-- row per live forward or access of each router, with the router's
-- revision, addresses, agent token hash and region's tunnel repeated, or a
-- single row without a forward (forward_id null) for a router that holds
-- none. A deleted router holds none: its agent gets one last, empty set.
-- Only what the set carries is read (no connection counts, no entry point).
select ro.id, ro.revision, ro.tunnel_address, ro.deleted_at, ro.agent_token_hash,
       rg.edge_tunnel_address, rg.tunnel_mode, rg.tunnel_endpoint, rg.edge_public_key,
       f.id as forward_id, coalesce(f.kind, '')::text as kind, coalesce(f.port, 0)::integer as port,
       f.dst_address, coalesce(f.dst_port, 0)::integer as dst_port, f.expires_at,
       coalesce(f.masquerade, false)::boolean as masquerade,
       coalesce(f.access_username, '')::text as access_username,
       coalesce(f.access_password, '')::text as access_password,
       coalesce(f.access_read_only, false)::boolean as access_read_only
from routers ro
join regions rg on rg.id = ro.region_id
left join forwards f on f.router_id = ro.id and ro.deleted_at is null
     and f.ended_at is null and f.expires_at > @now
where ro.id = any(@ids::uuid[])
order by ro.id, f.created_at, f.id;

-- name: AgentTunnel :exec
-- What the agent reported of its end of the tunnel (not its key: see
-- SetRouterTunnelKey).
update routers
set tunnel_handshake_at = sqlc.narg(handshake_at)::timestamptz, tunnel_endpoint = @endpoint,
    tunnel_rx_bytes = @rx_bytes, tunnel_tx_bytes = @tx_bytes, tunnel_error = @tunnel_error,
    tunnel_reported_at = @now::timestamptz
where id = @id;


-- name: AgentConnected :exec
update routers
set agent_connected_at = @now::timestamptz, agent_seen_at = @now::timestamptz
where id = @id;

-- name: AgentDisconnected :exec
update routers set agent_disconnected_at = @now::timestamptz where id = @id;

-- name: AgentsSeen :exec
-- Signs of life of many agents in one statement, their routers locked in id
-- order (the lock order); nothing else is held.
with seen as (
    select s.id from routers s
    where s.id = any(@ids::uuid[])
    order by s.id
    for no key update
)
update routers r set agent_seen_at = greatest(r.agent_seen_at, @now::timestamptz)
from seen
where r.id = seen.id;

-- name: AgentHello :exec
update routers
set agent_seen_at = @now::timestamptz, agent_version = @agent_version,
    routeros_version = coalesce(nullif(@routeros_version::text, ''), routeros_version),
    board = coalesce(nullif(@board::text, ''), board),
    identity = coalesce(nullif(@identity::text, ''), identity)
where id = @id;

-- name: AgentReport :exec
-- A report's revision counts up to the router's current one: an agent
-- cannot claim a set it was never sent.
update routers
set agent_seen_at = @now::timestamptz, agent_version = @agent_version,
    routeros_version = coalesce(nullif(@routeros_version::text, ''), routeros_version),
    board = coalesce(nullif(@board::text, ''), board),
    identity = coalesce(nullif(@identity::text, ''), identity),
    applied_revision = least(greatest(applied_revision, @applied_revision), revision),
    agent_error = @agent_error,
    clock_offset_ms = coalesce(sqlc.narg(clock_offset_ms)::bigint, clock_offset_ms)
where id = @id;

-- name: ReplaceRouterTunnelKey :one
-- Records the router's tunnel public key when it changed (a reinstalled
-- router), locking the router's row only then; no row means unchanged.
update routers set tunnel_public_key = @tunnel_public_key
where id = @id and tunnel_public_key <> @tunnel_public_key
returning region_id;
