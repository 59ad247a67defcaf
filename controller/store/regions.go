package store

import (
	"context"
	"fmt"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store/db"
)

// CreateRegion adds a region.
func (s *Store) CreateRegion(ctx context.Context, r fleet.Region) (fleet.Region, error) {
	row, err := s.q.CreateRegion(ctx, db.CreateRegionParams{
		ID: r.ID, EntryPoint: r.EntryPoint, PortMin: int32(r.Ports.Min), PortMax: int32(r.Ports.Max),
		EdgeTunnelAddress: r.EdgeTunnelAddress, CreatedAt: r.CreatedAt,
	})
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
		out[i] = toRegion(r)
	}
	return out, nil
}

// Region returns one region.
func (s *Store) Region(ctx context.Context, id string) (fleet.Region, error) {
	row, err := s.q.GetRegion(ctx, id)
	if err != nil {
		return fleet.Region{}, fmt.Errorf("region %q: %w", id, notFound(err))
	}
	return toRegion(row), nil
}
