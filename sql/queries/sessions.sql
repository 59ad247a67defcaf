-- name: InsertWebSession :exec
insert into web_sessions (id_hash, token_id, csrf, created_at, expires_at)
values (@id_hash, @token_id, @csrf, @created_at, @expires_at);

-- name: GetWebSession :one
-- A session with who its token acts for; token_revoked_at is set when the
-- token has been revoked since (the session is then over).
select s.token_id, s.csrf, s.created_at, s.expires_at,
       t.name as token_name, t.revoked_at as token_revoked_at,
       a.id as account_id, a.name as account_name
from web_sessions s
join api_tokens t on t.id = s.token_id
join accounts a on a.id = t.account_id
where s.id_hash = @id_hash;

-- name: DeleteWebSession :exec
delete from web_sessions where id_hash = @id_hash;

-- name: DeleteExpiredWebSessions :execrows
delete from web_sessions where expires_at <= @now;

-- name: DeleteTokenWebSessions :execrows
-- Ends every session of a token (it was revoked).
delete from web_sessions where token_id = @token_id;
