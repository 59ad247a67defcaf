-- name: InsertAPIToken :one
insert into api_tokens (account_id, name, token_hash, created_at)
values (@account_id, @name, @token_hash, @created_at)
returning id, account_id, name, created_at, revoked_at;

-- name: ListAPITokens :many
-- The account's API tokens, oldest first; never their hashes.
select id, account_id, name, created_at, revoked_at
from api_tokens
where account_id = @account_id
order by created_at, id;

-- name: LockAPIToken :one
-- One of the account's tokens, locked for a revoke ("for no key update"
-- does not hold up forwards and sessions that reference the token).
select id, account_id, name, created_at, revoked_at
from api_tokens
where id = @id and account_id = @account_id
for no key update;

-- name: RevokeAPIToken :one
update api_tokens
set revoked_at = @now::timestamptz
where id = @id and account_id = @account_id and revoked_at is null
returning id, account_id, name, created_at, revoked_at;
