package store

import (
	"context"
	"fmt"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store/db"
)

// CreateRegion adds a region. A region with a managed tunnel takes its
// edge's tunnel address from its prefix (the first usable address); one
// without a prefix gets the first /16 of 100.64.0.0/10 that no other
// region's tunnel overlaps. Overlapping prefixes are fleet.ErrExists.
func (s *Store) CreateRegion(ctx context.Context, r fleet.Region) (fleet.Region, error) {
	p := db.CreateRegionParams{
		ID: r.ID, EntryPoint: r.EntryPoint, PortMin: int32(r.Ports.Min), PortMax: int32(r.Ports.Max),
		EdgeTunnelAddress: r.EdgeTunnelAddress, CreatedAt: r.CreatedAt, TunnelMode: tunnelManual,
	}
	if r.Tunnel.Managed {
		prefix := r.Tunnel.Prefix
		if !prefix.IsValid() {
			free, err := s.q.FreeTunnelPrefix(context.WithoutCancel(ctx))
			if err != nil {
				return fleet.Region{}, fmt.Errorf("create region %q: no free tunnel prefix in 100.64.0.0/10: %w", r.ID, err)
			}
			prefix = free
		}
		prefix = prefix.Masked()
		p.TunnelMode, p.TunnelPrefix, p.TunnelEndpoint = tunnelManaged, &prefix, r.Tunnel.Endpoint
		p.EdgeTunnelAddress = prefix.Addr().Next()
	}
	row, err := s.q.CreateRegion(ctx, p)
	if isExclusionViolation(err) {
		return fleet.Region{}, fmt.Errorf("region %q: its tunnel prefix overlaps another region's: %w", r.ID, fleet.ErrExists)
	}
	if isUniqueViolation(err) {
		return fleet.Region{}, fmt.Errorf("region %q: %w", r.ID, fleet.ErrExists)
	}
	if err != nil {
		return fleet.Region{}, fmt.Errorf("create region %q: %w", r.ID, err)
	}
	return toRegion(row), nil
}

// Regions lists every region.
func (s *Store) Regions(ctx context.Context) ([]fleet.Region, error) {
	rows, err := s.q.ListRegions(ctx)
	if err != nil {
		return nil, fmt.Errorf("list regions: %w", err)
	}
	out := make([]fleet.Region, len(rows))
	for i, r := range rows {
		out[i] = toRegion(r.Region)
		out[i].Revision = r.Revision
	}
	return out, nil
}

// Region returns one region.
func (s *Store) Region(ctx context.Context, id string) (fleet.Region, error) {
	row, err := s.q.GetRegion(ctx, id)
	if err != nil {
		return fleet.Region{}, fmt.Errorf("region %q: %w", id, notFound(err))
	}
	r := toRegion(row.Region)
	r.Revision = row.Revision
	return r, nil
}
