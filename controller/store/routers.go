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

// lockRouter locks one of the account's routers and its region, the first
// steps of the lock order for a write to the router's desired set; a
// router that does not exist, is another account's or was deleted is
// fleet.ErrNotFound.
func lockRouter(ctx context.Context, q *db.Queries, account, id uuid.UUID) (db.Router, db.Region, error) {
	row, err := q.LockRouter(ctx, db.LockRouterParams{ID: id, AccountID: account})
	if err != nil {
		return db.Router{}, db.Region{}, fmt.Errorf("router %s: %w", id, notFound(err))
	}
	return row.Router, row.Region, nil
}

// DeleteRouter removes one of the account's routers after ending its live
// forwards; their ports are released by the grace period, since the router
// will no longer confirm anything.
func (s *Store) DeleteRouter(ctx context.Context, p fleet.Principal, id uuid.UUID, now time.Time) error {
	err := s.inTx(ctx, func(q *db.Queries) error {
		router, region, err := lockRouter(ctx, q, p.AccountID, id)
		if err != nil {
			return err
		}
		if _, err := q.DeleteRouter(ctx, db.DeleteRouterParams{ID: id, AccountID: p.AccountID, Now: now}); err != nil {
			return err
		}
		ended, err := q.EndRouterForwards(ctx, db.EndRouterForwardsParams{Now: now, RevokedBy: &p.TokenID, RouterID: id})
		if err != nil {
			return err
		}
		var revoked []auditEvent
		for _, f := range ended {
			if f.RevokedAt != nil {
				revoked = append(revoked, auditEvent{p.AccountID, f.ID, map[string]any{"router_id": id, "reason": "router deleted"}})
			}
		}
		if err := auditAll(ctx, q, now, p.Actor(), fleet.ActionForwardRevoke, revoked); err != nil {
			return err
		}
		if err := audit(ctx, q, now, p.AccountID, p.Actor(), fleet.ActionRouterDelete, id, map[string]any{
			"name": router.Name, "forwards_ended": len(ended),
		}); err != nil {
			return err
		}
		return publish(ctx, q, Change{RouterID: id, Region: region.ID})
	})
	if err != nil {
		return fmt.Errorf("delete router %s: %w", id, err)
	}
	return nil
}
