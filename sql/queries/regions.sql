-- name: CreateRegion :one
insert into regions (id, entry_point, port_min, port_max, edge_tunnel_address, created_at)
values (@id, @entry_point, @port_min, @port_max, @edge_tunnel_address, @created_at)
returning *;

-- name: GetRegion :one
select * from regions where id = @id;

-- name: ListRegions :many
select * from regions order by id;
