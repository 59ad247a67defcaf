package store

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store/db"
)

// NewRouter is a router to register.
type NewRouter struct {
	Name          string
	Region        string
	TunnelAddress netip.Addr
}

// CreateRouter registers a router for the principal's account and returns it
// with its agent token's secret, shown only this once. An unknown region is
// fleet.ErrNotFound.
func (s *Store) CreateRouter(ctx context.Context, p fleet.Principal, nr NewRouter, now time.Time) (fleet.Router, string, error) {
	secret, hash := newSecret(agentTokenPrefix)
	var row db.Router
	err := s.inTx(ctx, func(q *db.Queries) error {
		if _, err := q.GetRegion(ctx, nr.Region); err != nil {
			return fmt.Errorf("region %q: %w", nr.Region, notFound(err))
		}
		var err error
		row, err = q.CreateRouter(ctx, db.CreateRouterParams{
			AccountID: p.AccountID, RegionID: nr.Region, Name: nr.Name,
			TunnelAddress: nr.TunnelAddress, AgentTokenHash: hash, CreatedAt: now,
		})
		if err != nil {
			return err
		}
		return audit(ctx, q, now, p.AccountID, p.Actor(), fleet.ActionRouterCreate, row.ID, map[string]any{
			"name": nr.Name, "region": nr.Region, "tunnel_address": nr.TunnelAddress.String(),
		})
	})
	if err != nil {
		return fleet.Router{}, "", fmt.Errorf("create router: %w", err)
	}
	return toRouter(row), secret, nil
}

// Router returns one of the account's routers.
func (s *Store) Router(ctx context.Context, account, id uuid.UUID) (fleet.Router, error) {
	row, err := s.q.GetRouter(ctx, db.GetRouterParams{ID: id, AccountID: account})
	if err != nil {
		return fleet.Router{}, fmt.Errorf("router %s: %w", id, notFound(err))
	}
	return toRouter(row), nil
}

// Routers lists the account's routers, oldest first.
func (s *Store) Routers(ctx context.Context, account uuid.UUID) ([]fleet.Router, error) {
	rows, err := s.q.ListRouters(ctx, account)
	if err != nil {
		return nil, fmt.Errorf("list routers: %w", err)
	}
	out := make([]fleet.Router, len(rows))
	for i, r := range rows {
		out[i] = toRouter(r)
	}
	return out, nil
}
