-- name: InsertForward :one
-- Takes the port only when no other forward holds it in the region, and when
-- no earlier forward of the same router on that port still awaits its
-- removal (a stale rule for the port may still sit on that router). An
-- access is a forward of another kind, with its login.
insert into forwards (
    router_id, region_id, port, dst_address, dst_port, allow_cidr, masquerade,
    status, created_at, expires_at, created_by,
    kind, access_username, access_password, access_read_only
)
select @router_id, @region_id, @port, @dst_address, @dst_port, @allow_cidr, @masquerade,
       'pending', @created_at, @expires_at, @created_by,
       @kind, @access_username, sqlc.narg(access_password), @access_read_only
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
-- A forward (is_access false) or an access (true): neither is the other.
select sqlc.embed(f), r.entry_point,
       (r.tunnel_mode = 'managed')::boolean as tunnel_managed, ro.tunnel_handshake_at, ro.tunnel_error,
       (select count(*) from connections c where c.forward_id = f.id and c.ended_at is null)::integer as connections_active
from forwards f
join regions r on r.id = f.region_id
join routers ro on ro.id = f.router_id
where f.id = @id and f.router_id = @router_id and (f.kind <> 'forward') = @is_access::boolean
  and ro.account_id = @account_id and ro.deleted_at is null;

-- name: ListLiveForwards :many
select sqlc.embed(f), r.entry_point,
       (r.tunnel_mode = 'managed')::boolean as tunnel_managed, ro.tunnel_handshake_at, ro.tunnel_error,
       (select count(*) from connections c where c.forward_id = f.id and c.ended_at is null)::integer as connections_active
from forwards f
join regions r on r.id = f.region_id
join routers ro on ro.id = f.router_id
where f.router_id = @router_id and f.kind = 'forward' and f.ended_at is null and f.expires_at > @now
order by f.created_at, f.id;

-- name: ListForwards :many
-- History, newest first: all forwards, or only those that ended.
select sqlc.embed(f), r.entry_point,
       (r.tunnel_mode = 'managed')::boolean as tunnel_managed, ro.tunnel_handshake_at, ro.tunnel_error,
       (select count(*) from connections c where c.forward_id = f.id and c.ended_at is null)::integer as connections_active
from forwards f
join regions r on r.id = f.region_id
join routers ro on ro.id = f.router_id
where f.router_id = @router_id and f.kind = 'forward'
  and (not @only_ended::boolean or f.ended_at is not null or f.expires_at <= @now)
order by f.created_at desc, f.id desc
limit @max_rows;

-- name: ListAccesses :many
-- A router's accesses, newest first: all of them, or only the live ones.
select sqlc.embed(f), r.entry_point,
       (r.tunnel_mode = 'managed')::boolean as tunnel_managed, ro.tunnel_handshake_at, ro.tunnel_error,
       (select count(*) from connections c where c.forward_id = f.id and c.ended_at is null)::integer as connections_active
from forwards f
join regions r on r.id = f.region_id
join routers ro on ro.id = f.router_id
where f.router_id = @router_id and f.kind <> 'forward'
  and (not @only_live::boolean or (f.ended_at is null and f.expires_at > @now))
order by f.created_at desc, f.id desc
limit @max_rows;

-- name: RevokeForward :one
-- Revokes a live forward (is_access false) or access (true); an access's
-- password goes with it.
update forwards
set status = 'removing', revoked_at = @now::timestamptz, revoked_by = @revoked_by, ended_at = @now::timestamptz,
    access_password = null
where id = @id and router_id = @router_id and (kind <> 'forward') = @is_access::boolean
  and ended_at is null and expires_at > @now
returning id, router_id, region_id;

-- name: ForwardExists :one
select exists (select 1 from forwards where id = @id and router_id = @router_id and (kind <> 'forward') = @is_access::boolean);

-- name: EndRouterForwards :many
-- Ends every live forward of a router being deleted: revoked when still
-- running, expired when its time had already passed. Rows are locked in id
-- order (see the store's lock order).
with live as (
    select l.id from forwards l
    where l.router_id = @router_id and l.ended_at is null
    order by l.id
    for no key update
)
update forwards f
set status = 'removing',
    revoked_at = case when f.expires_at > @now then @now::timestamptz end,
    revoked_by = case when f.expires_at > @now then sqlc.narg(revoked_by)::uuid end,
    ended_at = least(@now, f.expires_at),
    access_password = null
from live
where f.id = live.id
returning f.id, f.region_id, f.revoked_at, f.kind;

-- name: DueForwards :many
-- Live forwards whose time has come, soonest first (nothing is locked yet:
-- their routers must be locked first).
select id, router_id from forwards
where ended_at is null and expires_at <= @now
order by expires_at
limit @max_rows;

-- name: ExpireForwards :many
-- Ends the given forwards if they are still live and due; the caller holds
-- the locks of their routers and regions.
with due as (
    select d.id from forwards d
    where d.id = any(@ids::uuid[]) and d.ended_at is null and d.expires_at <= @now
    order by d.id
    for no key update
)
update forwards f
set status = 'removing', ended_at = f.expires_at, access_password = null
from due, routers r
where f.id = due.id and r.id = f.router_id
returning f.id, f.router_id, f.region_id, r.account_id, f.expires_at, f.kind;

-- name: NextExpiry :one
select expires_at from forwards
where ended_at is null
order by expires_at
limit 1;

-- name: ReleasePorts :execrows
-- The grace period for routers that never confirmed a removal. Rows a report
-- is writing are skipped; the next round takes them.
with due as (
    select d.id from forwards d
    where d.ended_at is not null and d.port_released_at is null and d.ended_at <= @cutoff::timestamptz
    order by d.id
    for no key update skip locked
)
update forwards f
set port_released_at = @now::timestamptz
from due
where f.id = due.id;

-- name: LockRouterForwards :many
-- The forwards an agent's report speaks of, and the router's forwards
-- awaiting removal, locked in id order, with what a report may change.
select f.id, f.status, f.router_error, f.edge_error, f.created_at, f.kind, f.dst_port,
       (f.rule_confirmed_at is not null)::boolean as rule_confirmed,
       (f.listener_confirmed_at is not null)::boolean as listener_confirmed,
       rg.edge_managed,
       (rg.tunnel_mode = 'manual' or coalesce(ro.tunnel_handshake_at > @handshake_since::timestamptz, false))::boolean as tunnel_up
from forwards f
join regions rg on rg.id = f.region_id
join routers ro on ro.id = f.router_id
where f.router_id = @router_id and (f.id = any(@ids::uuid[]) or f.status = 'removing')
order by f.id
for no key update of f;

-- name: LockRegionForwards :many
-- The forwards of a region an edge's report speaks of, locked in id order.
select f.id, f.status, f.router_error, f.edge_error, f.created_at, f.kind, f.dst_port,
       (f.rule_confirmed_at is not null)::boolean as rule_confirmed,
       (f.listener_confirmed_at is not null)::boolean as listener_confirmed,
       rg.edge_managed,
       (rg.tunnel_mode = 'manual' or coalesce(ro.tunnel_handshake_at > @handshake_since::timestamptz, false))::boolean as tunnel_up
from forwards f
join regions rg on rg.id = f.region_id
join routers ro on ro.id = f.router_id
where f.region_id = @region_id and f.id = any(@ids::uuid[])
order by f.id
for no key update of f;

-- name: UpdateForwardStates :exec
-- Writes what reports changed, in one statement; the rows are locked by
-- LockRouterForwards or LockRegionForwards in the same transaction. An
-- access's password goes once its agent confirmed the user (the rule), and
-- its dst_port follows the router's port of its service.
update forwards f
set status = u.status,
    router_error = u.router_error,
    edge_error = u.edge_error,
    dst_port = u.dst_port,
    access_password = case when u.rule_confirmed then null else f.access_password end,
    rule_confirmed_at = case when u.rule_confirmed then coalesce(f.rule_confirmed_at, @now::timestamptz) end,
    listener_confirmed_at = case when u.listener_confirmed then coalesce(f.listener_confirmed_at, @now::timestamptz) end,
    port_released_at = case when u.status = 'removed' then coalesce(f.port_released_at, @now::timestamptz)
                            else f.port_released_at end
from (select unnest(@ids::uuid[]) as id, unnest(@statuses::text[]) as status,
             unnest(@router_errors::text[]) as router_error, unnest(@edge_errors::text[]) as edge_error,
             unnest(@rules_confirmed::boolean[]) as rule_confirmed,
             unnest(@listeners_confirmed::boolean[]) as listener_confirmed,
             unnest(@dst_ports::integer[]) as dst_port) as u
where f.id = u.id;

-- name: AccessPortsRegion :one
-- The region of a router whose live accesses among ids have a dst_port
-- other than the service port reported for them (ports, by position), read
-- without locking: a report that changes one locks the region first.
select f.region_id
from forwards f
join (select unnest(@ids::uuid[]) as id, unnest(@ports::integer[]) as port) as u on u.id = f.id
where f.router_id = @router_id and f.kind <> 'forward' and f.ended_at is null and f.dst_port <> u.port
limit 1;

-- name: CreateForwardAtOnce :one
-- The common create in one statement, so one round trip and one implicit
-- transaction: lock the account's router (the lock order's first step; the
-- region is only read), take the first of the candidate ports (min + each
-- given offset mod size) that no other forward holds and on which no
-- earlier forward of the router awaits removal, record the audit event,
-- bump the router's revision (which the region's follows, see
-- region_revision) and announce the change on commit. No row when the
-- router is not the account's or every candidate is taken (or a concurrent
-- create took the one picked): the caller then takes the longer way.
-- ("offset 0" keeps each check a lookup of one candidate in its index,
-- whatever the planner's statistics say, rather than a join that may read
-- every held port of the region.)
-- An access (kind ssh or winbox) goes to the router's own tunnel address
-- (dst_address null) and is audited without its password.
with router as (
    select ro.id as router_id, rg.id as region_id, rg.entry_point, ro.tunnel_address,
           rg.port_min, rg.port_max - rg.port_min + 1 as port_count,
           (rg.tunnel_mode = 'managed')::boolean as tunnel_managed,
           ro.tunnel_handshake_at, ro.tunnel_error
    from routers ro
    join regions rg on rg.id = ro.region_id
    where ro.id = @router_id and ro.account_id = @account_id and ro.deleted_at is null
    for no key update of ro
), target as (
    select r.*, c.port
    from router r, lateral (
        select p.port
        from (select r.port_min + mod(o, r.port_count) as port from unnest(@port_offsets::integer[]) as o) as p
        where not exists (
            select 1 from forwards f
            where f.region_id = r.region_id and f.port = p.port and f.port_released_at is null
            offset 0
        ) and not exists (
            select 1 from forwards f
            where f.router_id = r.router_id and f.port = p.port and f.status = 'removing'
            offset 0
        )
        limit 1
    ) as c
), ins as (
    insert into forwards (
        router_id, region_id, port, dst_address, dst_port, allow_cidr, masquerade,
        status, created_at, expires_at, created_by,
        kind, access_username, access_password, access_read_only
    )
    select t.router_id, t.region_id, t.port, coalesce(sqlc.narg(dst_address)::inet, t.tunnel_address), @dst_port, @allow_cidr, @masquerade,
           'pending', @created_at, @expires_at, @created_by,
           @kind, @access_username, sqlc.narg(access_password), @access_read_only
    from target t
    on conflict (region_id, port) where port_released_at is null do nothing
    returning *
), audited as (
    insert into audit_events (at, account_id, actor, action, subject_id, detail)
    select @created_at, @account_id, @actor, @action::text, ins.id,
           case when ins.kind = 'forward'
                then jsonb_build_object('router_id', ins.router_id, 'port', ins.port, 'dst_address', host(ins.dst_address),
                                        'dst_port', ins.dst_port, 'allow_from', ins.allow_cidr::text,
                                        'expires_at', ins.expires_at, 'masquerade', ins.masquerade)
                else jsonb_build_object('router_id', ins.router_id, 'port', ins.port, 'type', ins.kind,
                                        'username', ins.access_username, 'allow_from', ins.allow_cidr::text,
                                        'expires_at', ins.expires_at, 'read_only', ins.access_read_only) end
    from ins
), bumped_router as (
    update routers set revision = revision + 1 where id in (select router_id from ins)
), announced as (
    select pg_notify(@channel::text, json_build_object('router_id', ins.router_id, 'region', ins.region_id)::text)
    from ins
)
select ins.id, ins.router_id, ins.region_id, ins.port, ins.dst_address, ins.dst_port, ins.allow_cidr,
       ins.masquerade, ins.status, ins.created_at, ins.expires_at, ins.created_by, ins.revoked_at,
       ins.revoked_by, ins.ended_at, ins.port_released_at, ins.router_error, ins.rule_confirmed_at,
       ins.listener_confirmed_at, ins.edge_error, ins.kind, ins.access_username, ins.access_read_only,
       t.entry_point, t.tunnel_managed, t.tunnel_handshake_at, t.tunnel_error,
       (select count(*) from announced)::integer as announced
from ins, target t;
