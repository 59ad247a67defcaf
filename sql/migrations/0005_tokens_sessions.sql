-- 0005: API tokens listed per account, and web sessions kept in the database
-- (so they survive restarts and work across replicas without sticky sessions).

create index api_tokens_account_idx on api_tokens (account_id, created_at);

-- A signed-in browser. Only a SHA-256 hash of the session id (the cookie's
-- value) is stored; the session acts for an API token and ends with it.
-- csrf is the token every form of the session carries.
create table web_sessions (
    id_hash    bytea       not null,
    token_id   uuid        not null,
    csrf       text        not null,
    created_at timestamptz not null,
    expires_at timestamptz not null,
    constraint web_sessions_pkey primary key (id_hash),
    constraint web_sessions_token_fkey foreign key (token_id) references api_tokens (id) on delete cascade,
    constraint web_sessions_expiry_check check (expires_at > created_at)
);

create index web_sessions_token_idx on web_sessions (token_id);
create index web_sessions_expires_idx on web_sessions (expires_at);
