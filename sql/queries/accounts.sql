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

-- name: InsertAuditEvents :exec
-- Several events of one action by one actor, in one round trip.
insert into audit_events (at, account_id, actor, action, subject_id, detail)
select @at, u.account_id, @actor, @action, u.subject_id, u.detail::jsonb
from (select unnest(@account_ids::uuid[]) as account_id, unnest(@subject_ids::uuid[]) as subject_id,
             unnest(@details::text[]) as detail) as u;

-- name: Publish :exec
-- Bumps the revisions of routers' desired sets and the own revisions of
-- regions whose listener sets changed otherwise (rows the transaction has
-- already locked) and announces each change on commit.
with bumped_routers as (
    update routers set revision = revision + 1 where id = any(@router_ids::uuid[])
), bumped_regions as (
    update regions set own_revision = own_revision + 1 where id = any(@region_ids::text[])
)
select pg_notify(@channel::text, p.payload)
from unnest(@payloads::text[]) as p(payload);
