-- name: InsertForward :one
-- Takes the port only when no other forward holds it in the region, and when
-- no earlier forward of the same router on that port still awaits its
-- removal (a stale rule for the port may still sit on that router).
insert into forwards (
    router_id, region_id, port, dst_address, dst_port, allow_cidr, masquerade,
    status, created_at, expires_at, created_by
)
select @router_id, @region_id, @port, @dst_address, @dst_port, @allow_cidr, @masquerade,
       'pending', @created_at, @expires_at, @created_by
where not exists (
    select 1 from forwards o
    where o.router_id = @router_id and o.port = @port and o.status = 'removing'
)
on conflict (region_id, port) where port_released_at is null do nothing
returning *;

-- name: FreePort :one
-- The fallback when random picks keep colliding: any port the region can
-- still hand out for this router.
select p::integer as port
from generate_series(@port_min::integer, @port_max::integer) as p
where not exists (
    select 1 from forwards f
    where f.region_id = @region_id and f.port = p and f.port_released_at is null
) and not exists (
    select 1 from forwards o
    where o.router_id = @router_id and o.port = p and o.status = 'removing'
)
order by random()
limit 1;

-- name: GetForward :one
-- One round trip for the common read: the router's owner is checked here too.
select sqlc.embed(f), r.entry_point,
       (select count(*) from connections c where c.forward_id = f.id and c.ended_at is null)::integer as connections_active
from forwards f
join regions r on r.id = f.region_id
join routers ro on ro.id = f.router_id
where f.id = @id and f.router_id = @router_id
  and ro.account_id = @account_id and ro.deleted_at is null;

-- name: ListLiveForwards :many
select sqlc.embed(f), r.entry_point,
       (select count(*) from connections c where c.forward_id = f.id and c.ended_at is null)::integer as connections_active
from forwards f
join regions r on r.id = f.region_id
where f.router_id = @router_id and f.ended_at is null and f.expires_at > @now
order by f.created_at, f.id;

-- name: ListForwards :many
-- History, newest first: all forwards, or only those that ended.
select sqlc.embed(f), r.entry_point,
       (select count(*) from connections c where c.forward_id = f.id and c.ended_at is null)::integer as connections_active
from forwards f
join regions r on r.id = f.region_id
where f.router_id = @router_id
  and (not @only_ended::boolean or f.ended_at is not null or f.expires_at <= @now)
order by f.created_at desc, f.id desc
limit @max_rows;

-- name: RevokeForward :one
update forwards
set status = 'removing', revoked_at = @now::timestamptz, revoked_by = @revoked_by, ended_at = @now::timestamptz
where id = @id and router_id = @router_id and ended_at is null and expires_at > @now
returning id, router_id, region_id;

-- name: EndRouterForwards :many
-- Ends every live forward of a router being deleted: revoked when still
-- running, expired when its time had already passed.
update forwards
set status = 'removing',
    revoked_at = case when expires_at > @now then @now::timestamptz end,
    revoked_by = case when expires_at > @now then sqlc.narg(revoked_by)::uuid end,
    ended_at = least(@now, expires_at)
where router_id = @router_id and ended_at is null
returning id, region_id, revoked_at;

-- name: ExpireDue :many
-- Ends forwards whose time has come. skip locked lets several controller
-- replicas share the work without processing a forward twice.
with due as (
    select d.id from forwards d
    where d.ended_at is null and d.expires_at <= @now
    order by d.expires_at
    limit @max_rows
    for update skip locked
)
update forwards f
set status = 'removing', ended_at = f.expires_at
from due, routers r
where f.id = due.id and r.id = f.router_id
returning f.id, f.router_id, f.region_id, r.account_id, f.expires_at;

-- name: NextExpiry :one
select expires_at from forwards
where ended_at is null
order by expires_at
limit 1;

-- name: ReleasePorts :execrows
-- The grace period for routers that never confirmed a removal.
update forwards
set port_released_at = @now::timestamptz
where ended_at is not null and port_released_at is null and ended_at <= @cutoff::timestamptz;
