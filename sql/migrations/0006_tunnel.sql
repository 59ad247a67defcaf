-- 0006: the management tunnel tpf sets up itself (WireGuard between each
-- router and its region's edge).

-- tunnel_mode: managed (tpf builds the tunnel: routers get addresses from
-- tunnel_prefix, the edge's address is its first usable one) or manual (the
-- operator brings a VPN and types addresses in). Regions made before tpf
-- managed tunnels keep working as they did: manual.
alter table regions
    add column tunnel_mode     text not null default 'manual',
    add column tunnel_prefix   cidr,
    add column tunnel_endpoint text not null default '',
    add column edge_public_key text not null default '',
    add constraint regions_tunnel_mode_check check (tunnel_mode in ('managed', 'manual')),
    add constraint regions_tunnel_check check (
        tunnel_mode = 'manual' or (tunnel_prefix is not null and tunnel_endpoint <> '')),
    -- Two regions' tunnels never overlap: an edge host routes its whole
    -- prefix into its device.
    add constraint regions_tunnel_prefix_excl exclude using gist (tunnel_prefix inet_ops with &&);

-- What the router's agent last reported of its end of the tunnel: its public
-- key (a reinstalled router's new key replaces the old), the last handshake
-- with the edge, bytes each way, and why the tunnel could not be built.
alter table routers
    add column tunnel_public_key   text not null default '',
    add column tunnel_handshake_at timestamptz,
    add column tunnel_endpoint     text not null default '',
    add column tunnel_rx_bytes     bigint not null default 0,
    add column tunnel_tx_bytes     bigint not null default 0,
    add column tunnel_error        text not null default '',
    add column tunnel_reported_at  timestamptz;

-- A managed region hands each router an address no other live router of the
-- region holds; allocation runs under the region's lock, so this index only
-- finds the free ones (manual regions may have reused addresses before).
create index routers_tunnel_address_idx on routers (region_id, tunnel_address) where deleted_at is null;
