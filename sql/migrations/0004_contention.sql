-- 0004: what the store's lock order needs, and the clock of each router.

-- The offset between the router's clock and the controller's, as its agent
-- last measured it (router minus controller, milliseconds); null while
-- unknown.
alter table routers
    add column clock_offset_ms bigint;

-- A region's live forwards, for its listener set and its edge's reports.
create index forwards_region_live_idx on forwards (region_id, id) where ended_at is null;
