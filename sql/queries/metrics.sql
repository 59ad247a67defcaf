-- name: CountForwards :many
-- Unfinished forwards per region and status as the API shows it at @now (a
-- live forward whose time ran out counts as removing), for the metrics. Every
-- region appears, with an empty status when it has none. Removed forwards
-- are history and are not counted, so only the partial indexes of unfinished
-- forwards need reading. Accesses are counted by CountAccesses.
select rg.id as region_id,
       coalesce(case when f.ended_at is null and f.expires_at <= @now::timestamptz then 'removing'
                     else f.status end, '')::text as status,
       count(f.id)::bigint as forwards
from regions rg
left join forwards f on f.region_id = rg.id and f.kind = 'forward' and (f.ended_at is null or f.status = 'removing')
group by 1, 2
order by 1, 2;

-- name: CountAccesses :many
-- Live accesses per region and service at @now, for the metrics; regions
-- without one are absent.
select f.region_id, f.kind as service, count(*)::bigint as accesses
from forwards f
where f.kind <> 'forward' and f.ended_at is null and f.expires_at > @now::timestamptz
group by 1, 2
order by 1, 2;

-- name: CountRoutersClockOff :one
-- Routers whose agent last measured their clock off by more than @limit_ms.
select count(*)::bigint from routers
where deleted_at is null and abs(clock_offset_ms) > @limit_ms::bigint;

-- name: CountTunnels :many
-- Routers of managed regions by the state of their tunnel at @now: up (a
-- handshake since @up_since), down, or never.
select (case when ro.tunnel_handshake_at is null then 'never'
             when ro.tunnel_handshake_at > @up_since::timestamptz then 'up'
             else 'down' end)::text as state,
       count(*)::bigint as routers
from routers ro
join regions rg on rg.id = ro.region_id
where ro.deleted_at is null and rg.tunnel_mode = 'managed'
group by 1;
