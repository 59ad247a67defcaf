-- name: CreateRouter :one
insert into routers (account_id, region_id, name, tunnel_address, agent_token_hash, created_at)
values (@account_id, @region_id, @name, @tunnel_address, @agent_token_hash, @created_at)
returning *;

-- name: GetRouter :one
select sqlc.embed(ro), (rg.tunnel_mode = 'managed')::boolean as tunnel_managed
from routers ro
join regions rg on rg.id = ro.region_id
where ro.id = @id and ro.account_id = @account_id and ro.deleted_at is null;

-- name: ListRouters :many
select sqlc.embed(ro), (rg.tunnel_mode = 'managed')::boolean as tunnel_managed
from routers ro
join regions rg on rg.id = ro.region_id
where ro.account_id = @account_id and ro.deleted_at is null
order by ro.created_at, ro.id;

-- name: DeleteRouter :one
update routers set deleted_at = @now::timestamptz
where id = @id and account_id = @account_id and deleted_at is null
returning *;

-- name: LockRouter :one
-- Locks one of an account's routers, the first step of the store's lock
-- order, for a write to the router's desired set, and reads its region
-- without locking it: the router's revision carries the change to the
-- region's listener set (see region_revision).
select sqlc.embed(ro), sqlc.embed(rg)
from routers ro
join regions rg on rg.id = ro.region_id
where ro.id = @id and ro.account_id = @account_id and ro.deleted_at is null
for no key update of ro;

-- name: LockRoutersSkipLocked :many
-- Locks those of the routers no other transaction holds, in id order.
select id from routers
where id = any(@ids::uuid[])
order by id
for no key update skip locked;

-- name: LockRegions :exec
-- Locks regions in id order.
select id from regions
where id = any(@ids::text[])
order by id
for no key update;
