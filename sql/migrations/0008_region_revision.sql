-- 0008: a region's listener set revision without a region-wide lock.
--
-- A region's listener set changes with the region itself (its edge's key,
-- an access's service port) and with each of its routers' desired sets. So
-- its revision is the sum of the region's own counter and its routers'
-- revisions (deleted routers included, so the sum never falls): a write to
-- one router's forwards bumps only that router's row, and creates on
-- different routers of one region no longer queue on the region's row. Any
-- later snapshot sees every bump an earlier one saw, so the sum grows with
-- each committed change, as one counter would.
alter table regions rename column revision to own_revision;

create index routers_region_idx on routers (region_id);

create function region_revision(region text) returns bigint
language sql stable
as $$
    select rg.own_revision + coalesce((select sum(ro.revision) from routers ro where ro.region_id = rg.id), 0)::bigint
    from regions rg
    where rg.id = region
$$;
