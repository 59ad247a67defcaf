-- name: CreateRegion :one
insert into regions (id, entry_point, port_min, port_max, edge_tunnel_address, created_at,
                     tunnel_mode, tunnel_prefix, tunnel_endpoint)
values (@id, @entry_point, @port_min, @port_max, @edge_tunnel_address, @created_at,
        @tunnel_mode, sqlc.narg(tunnel_prefix)::cidr, @tunnel_endpoint)
returning *;

-- name: GetRegion :one
-- A region with its listener set's revision (see region_revision).
select sqlc.embed(regions), region_revision(regions.id)::bigint as revision
from regions where id = @id;

-- name: ListRegions :many
select sqlc.embed(regions), region_revision(regions.id)::bigint as revision
from regions order by id;

-- name: FreeTunnelPrefix :one
-- The first /16 of 100.64.0.0/10 (shared address space, RFC 6598) that no
-- region's tunnel overlaps.
select set_masklen('100.64.0.0'::inet + n * 65536, 16)::cidr as prefix
from generate_series(0::bigint, 63::bigint) as n
where not exists (
    select 1 from regions r
    where r.tunnel_prefix && set_masklen('100.64.0.0'::inet + n * 65536, 16)::cidr
)
order by n
limit 1;

-- name: FreeTunnelAddress :one
-- The lowest address of the region's tunnel prefix that no live router of
-- the region holds, after the network address and the edge's (the first
-- usable one), and before the broadcast address. The caller holds the
-- region's lock.
select set_masklen(network(rg.tunnel_prefix) + n, 32)::inet as address
from regions rg,
     generate_series(2::bigint, (2::bigint ^ (32 - masklen(rg.tunnel_prefix)))::bigint - 2) as n
where rg.id = @region_id
  and not exists (
    select 1 from routers ro
    where ro.region_id = rg.id and ro.deleted_at is null
      and ro.tunnel_address = set_masklen(network(rg.tunnel_prefix) + n, 32)
)
order by n
limit 1;

-- name: LockRegionRouters :many
-- Locks a region's live routers in id order, for a change to every one of
-- their desired sets (the edge's key).
select id from routers
where region_id = @region_id and deleted_at is null
order by id
for no key update;

-- name: SetEdgePublicKey :exec
update regions set edge_public_key = @edge_public_key where id = @id;

-- name: ListRegionPeers :many
-- The routers of a region whose end of the tunnel has a key: the edge's
-- WireGuard peers.
select tunnel_public_key, tunnel_address
from routers
where region_id = @region_id and deleted_at is null and tunnel_public_key <> ''
order by tunnel_address;
