-- name: CreateRouter :one
insert into routers (account_id, region_id, name, tunnel_address, agent_token_hash, created_at)
values (@account_id, @region_id, @name, @tunnel_address, @agent_token_hash, @created_at)
returning *;

-- name: GetRouter :one
select * from routers
where id = @id and account_id = @account_id and deleted_at is null;

-- name: ListRouters :many
select * from routers
where account_id = @account_id and deleted_at is null
order by created_at, id;

-- name: DeleteRouter :one
update routers set deleted_at = @now::timestamptz
where id = @id and account_id = @account_id and deleted_at is null
returning *;
