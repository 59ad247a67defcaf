-- name: FleetForwardCounts :many
-- Live forwards per router of an account, for the fleet page (one query, not
-- one per router): how many, how many the router has yet to confirm, how
-- many carry an error, and how many expire by @expiring_by. Accesses are not
-- forwards and are not counted.
select f.router_id,
       count(*)::integer as live,
       (count(*) filter (where f.status = 'pending'))::integer as pending,
       (count(*) filter (where f.router_error <> '' or f.edge_error <> ''))::integer as failing,
       (count(*) filter (where f.expires_at <= @expiring_by::timestamptz))::integer as expiring
from forwards f
join routers ro on ro.id = f.router_id
where ro.account_id = @account_id and ro.deleted_at is null
  and f.kind = 'forward' and f.ended_at is null and f.expires_at > @now
group by f.router_id;

-- name: RouterForwardsSince :many
-- A router's forwards (not its accesses) that were live at some time since
-- @since, live ones first, then newest first, with the names of the tokens
-- that created and revoked them.
select sqlc.embed(f), r.entry_point,
       (r.tunnel_mode = 'managed')::boolean as tunnel_managed, ro.tunnel_handshake_at, ro.tunnel_error,
       coalesce(ct.name, '')::text as created_by_name,
       coalesce(rt.name, '')::text as revoked_by_name,
       (select count(*) from connections c where c.forward_id = f.id and c.ended_at is null)::integer as connections_active
from forwards f
join regions r on r.id = f.region_id
join routers ro on ro.id = f.router_id
left join api_tokens ct on ct.id = f.created_by
left join api_tokens rt on rt.id = f.revoked_by
where f.router_id = @router_id and f.kind = 'forward' and (f.ended_at is null or f.ended_at >= @since::timestamptz)
order by (f.ended_at is null) desc, f.created_at desc, f.id desc
limit @max_rows;

-- name: RouterConnectionsSince :many
-- The connections relayed for a router's forwards (not its accesses) that
-- were open at some time since @since, newest first.
select c.*
from connections c
join forwards f on f.id = c.forward_id
where f.router_id = @router_id and f.kind = 'forward' and (c.ended_at is null or c.ended_at >= @since::timestamptz)
order by c.started_at desc, c.id
limit @max_rows;

-- name: PrincipalByTokenID :one
-- Who an API token acts for, while it is not revoked (web sessions re-check
-- their token on every request).
select t.id as token_id, t.name as token_name, a.id as account_id, a.name as account_name
from api_tokens t
join accounts a on a.id = t.account_id
where t.id = @id and t.revoked_at is null;
