-- 0007: transient access (time-limited WinBox and SSH logins to a router
-- itself), kept as forwards with a kind.
--
-- An access is a forwards row whose kind names the router service it logs in
-- to (ssh or winbox). It shares everything else with forwards: the port of
-- the region, expiry, revoke, the edge's listener, connections, statuses and
-- the lock order. Its dst_address is the router's tunnel address and its
-- dst_port the router's port of the service (the default until the agent
-- reports the configured one), where the edge relays to.
--
-- access_username is the RouterOS user the router's agent keeps for it;
-- access_read_only puts that user in tpf's read-only group.
--
-- access_password is the user's password, kept only until the router's agent
-- confirms the user (the report that confirms it clears it in the same
-- write) or the access ends, whichever comes first; after that it is gone
-- from the database. Should the router later lose the user, its agent cannot
-- create it again and refuses the access (router_error): the operator then
-- creates a new access, with a new password.
alter table forwards
    add column kind             text    not null default 'forward',
    add column access_username  text    not null default '',
    add column access_password  text,
    add column access_read_only boolean not null default false,
    add constraint forwards_kind_check check (kind in ('forward', 'ssh', 'winbox')),
    -- A forward has no login; an access has a user.
    add constraint forwards_access_check check (
        case when kind = 'forward'
             then access_username = '' and access_password is null and not access_read_only
             else access_username <> '' end),
    -- The password never outlives the agent's confirmation or the end.
    add constraint forwards_access_password_check check (
        access_password is null or (rule_confirmed_at is null and ended_at is null));

-- One user name is never given to two accesses of one router: an ended
-- access's user may still be on the router until its removal is confirmed.
create unique index forwards_access_username_key on forwards (router_id, access_username) where kind <> 'forward';
