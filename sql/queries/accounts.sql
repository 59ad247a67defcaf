-- name: CreateAccount :one
insert into accounts (name, created_at)
values (@name, @created_at)
returning *;

-- name: GetAccountByName :one
select * from accounts where name = @name;

-- name: ListAccounts :many
select * from accounts order by name;

-- name: CreateAPIToken :one
insert into api_tokens (account_id, name, token_hash, created_at)
values (@account_id, @name, @token_hash, @created_at)
returning *;

-- name: AuthenticateToken :one
select t.id as token_id, t.name as token_name, a.id as account_id, a.name as account_name
from api_tokens t
join accounts a on a.id = t.account_id
where t.token_hash = @token_hash and t.revoked_at is null;

-- name: InsertAuditEvent :exec
insert into audit_events (at, account_id, actor, action, subject_id, detail)
values (@at, @account_id, @actor, @action, @subject_id, @detail);

-- name: ListAuditEvents :many
select * from audit_events
where account_id = @account_id and id < @before_id
order by id desc
limit @max_rows;

-- name: Notify :exec
select pg_notify(@channel::text, @payload::text);
