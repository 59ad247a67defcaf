-- name: SetEdgeToken :one
update regions set edge_token_hash = @edge_token_hash, edge_managed = true
where id = @id
returning *;

-- name: SetEdgeManaged :exec
update regions set edge_managed = true where id = @id;

-- name: RegionByEdgeToken :one
select * from regions where edge_token_hash = @edge_token_hash;

-- name: ListRegionListeners :many
-- The live forwards and accesses of a region, with the tunnel address of
-- their router and the port there: a forward's own (the router's rule
-- forwards it on), an access's service port.
select f.id, f.port, f.allow_cidr, f.expires_at, ro.tunnel_address,
       (case when f.kind = 'forward' then f.port else f.dst_port end)::integer as target_port
from forwards f
join routers ro on ro.id = f.router_id
where f.region_id = @region_id and f.ended_at is null and f.expires_at > @now
  and ro.deleted_at is null
order by f.port;

-- name: EdgeConnected :exec
update regions
set edge_connected_at = @now::timestamptz, edge_seen_at = @now::timestamptz, edge_managed = true
where id = @id;

-- name: EdgeDisconnected :exec
update regions set edge_disconnected_at = @now::timestamptz where id = @id;

-- name: EdgeSeen :exec
update regions set edge_seen_at = @now::timestamptz where id = @id;

-- name: EdgeReport :exec
-- As for agents, a report counts up to the region's current revision.
update regions
set edge_seen_at = @now::timestamptz, edge_version = @edge_version,
    edge_applied_revision = least(greatest(edge_applied_revision, @applied_revision), region_revision(id)),
    edge_error = @edge_error
where id = @id;

-- name: UpsertConnections :exec
-- Connection records from an edge: the first sighting inserts one, the end
-- record completes it. Records of another region's forwards are ignored, and
-- a record never moves a connection to another forward.
insert into connections (id, forward_id, source, started_at, ended_at, bytes_up, bytes_down, reason)
select u.id, f.id, u.source, u.started_at, case when u.ended then u.ended_at end, u.bytes_up, u.bytes_down, u.reason
from (select unnest(@ids::uuid[]) as id, unnest(@forward_ids::uuid[]) as forward_id,
             unnest(@sources::text[]) as source, unnest(@started_ats::timestamptz[]) as started_at,
             unnest(@ended::boolean[]) as ended, unnest(@ended_ats::timestamptz[]) as ended_at,
             unnest(@bytes_up::bigint[]) as bytes_up, unnest(@bytes_down::bigint[]) as bytes_down,
             unnest(@reasons::text[]) as reason) as u
join forwards f on f.id = u.forward_id and f.region_id = @region_id
order by u.id
on conflict (id) do update
set ended_at = excluded.ended_at, bytes_up = excluded.bytes_up,
    bytes_down = excluded.bytes_down, reason = excluded.reason
where connections.forward_id = excluded.forward_id;

-- name: CloseRegionConnections :execrows
-- An edge (re)connected: connections it does not report again are gone.
update connections c
set ended_at = @now::timestamptz, reason = 'edge lost'
from forwards f
where f.id = c.forward_id and f.region_id = @region_id and c.ended_at is null;

-- name: ListConnections :many
select * from connections
where forward_id = @forward_id
order by started_at desc, id
limit @max_rows;
