-- name: RouterByAgentToken :one
select * from routers where agent_token_hash = @agent_token_hash and deleted_at is null;

-- name: RotateAgentToken :one
update routers set agent_token_hash = @agent_token_hash
where id = @id and account_id = @account_id and deleted_at is null
returning *;

-- name: AgentTarget :one
-- What a router's desired set is addressed with, and its region's tunnel; a
-- deleted router's too (its agent gets one last, empty set).
select ro.id, ro.revision, ro.tunnel_address, ro.deleted_at, rg.edge_tunnel_address,
       rg.tunnel_mode, rg.tunnel_endpoint, rg.edge_public_key
from routers ro
join regions rg on rg.id = ro.region_id
where ro.id = @id;

-- name: RouterByAgentTokenAny :one
-- A router by agent token, deleted or not.
select * from routers where agent_token_hash = @agent_token_hash;

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
