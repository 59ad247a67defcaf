-- name: SetEdgeToken :one
update regions set edge_token_hash = @edge_token_hash, edge_managed = true
where id = @id
returning *;

-- name: SetEdgeManaged :exec
update regions set edge_managed = true where id = @id;

-- name: RegionByEdgeToken :one
select * from regions where edge_token_hash = @edge_token_hash;

-- name: BumpRegionRevision :one
update regions set revision = revision + 1 where id = @id returning revision;

-- name: ListRegionListeners :many
-- The live forwards of a region, with the tunnel address of their router.
select f.id, f.port, f.allow_cidr, f.expires_at, ro.tunnel_address
from forwards f
join routers ro on ro.id = f.router_id
where f.region_id = @region_id and f.ended_at is null and f.expires_at > @now
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
update regions
set edge_seen_at = @now::timestamptz, edge_version = @edge_version,
    edge_applied_revision = greatest(edge_applied_revision, @applied_revision), edge_error = @edge_error
where id = @id;

-- name: ConfirmListeners :many
-- The edge listens for these forwards. As in ActivateForwards, the rows are
-- locked first, so previous_status is the status this update replaced.
with prev as (
    select p.id, p.status
    from forwards p
    where p.region_id = @region_id and p.id = any(@ids::uuid[])
    order by p.id
    for update
)
update forwards f
set listener_confirmed_at = coalesce(f.listener_confirmed_at, @now::timestamptz),
    edge_error = '',
    status = case when f.status = 'pending' and f.rule_confirmed_at is not null then 'active' else f.status end
from prev
where prev.id = f.id
returning f.id, f.status, prev.status as previous_status, f.created_at;

-- name: SetEdgeError :exec
update forwards set edge_error = @edge_error
where region_id = @region_id and id = @id;

-- name: UpsertConnection :exec
-- A connection record from an edge: the first sighting inserts it, the end
-- record completes it. Records of another region's forwards are ignored.
insert into connections (id, forward_id, source, started_at, ended_at, bytes_up, bytes_down, reason)
select @id, f.id, @source, @started_at, sqlc.narg(ended_at)::timestamptz, @bytes_up, @bytes_down, @reason
from forwards f
where f.id = @forward_id and f.region_id = @region_id
on conflict (id) do update
set ended_at = excluded.ended_at, bytes_up = excluded.bytes_up,
    bytes_down = excluded.bytes_down, reason = excluded.reason;

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
