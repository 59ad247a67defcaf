package store

import (
	"context"
	"fmt"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
)

// ForwardCount is how many unfinished forwards (not accesses) of a region
// have a status.
type ForwardCount struct {
	Region string
	// Status is pending, active or removing, as the API shows it (a live
	// forward whose time ran out is removing); empty for a region without
	// unfinished forwards.
	Status   fleet.Status
	Forwards int64
}

// CountForwards counts the unfinished forwards (pending, active, removing)
// of every region at now, for the metrics; every region appears at least
// once. Removed forwards are history and are not counted, which keeps the
// query to the partial indexes of unfinished forwards.
func (s *Store) CountForwards(ctx context.Context, now time.Time) ([]ForwardCount, error) {
	rows, err := s.q.CountForwards(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("count forwards: %w", err)
	}
	out := make([]ForwardCount, len(rows))
	for i, r := range rows {
		out[i] = ForwardCount{Region: r.RegionID, Status: fleet.Status(r.Status), Forwards: r.Forwards}
	}
	return out, nil
}

// CountRoutersClockOff counts the routers whose clock their agent last
// measured more than fleet.ClockWarnAfter off the controller's.
func (s *Store) CountRoutersClockOff(ctx context.Context) (int64, error) {
	n, err := s.q.CountRoutersClockOff(ctx, fleet.ClockWarnAfter.Milliseconds())
	if err != nil {
		return 0, fmt.Errorf("count routers with a wrong clock: %w", err)
	}
	return n, nil
}

// CountTunnels counts the routers of managed regions by the state of their
// tunnel at now (fleet.TunnelUp, TunnelDown, TunnelNever); every state is
// present.
func (s *Store) CountTunnels(ctx context.Context, now time.Time) (map[string]int64, error) {
	rows, err := s.q.CountTunnels(ctx, now.Add(-fleet.TunnelUpWithin))
	if err != nil {
		return nil, fmt.Errorf("count tunnels: %w", err)
	}
	out := map[string]int64{fleet.TunnelUp: 0, fleet.TunnelDown: 0, fleet.TunnelNever: 0}
	for _, r := range rows {
		out[r.State] = r.Routers
	}
	return out, nil
}
