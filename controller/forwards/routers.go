package forwards

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store"
)

// NewRouter is a router to register.
type NewRouter struct {
	Name          string
	Region        string
	TunnelAddress netip.Addr
}

// CreateRouter registers a router for the principal's account and returns it
// with its agent token's secret, shown only this once. In a region with a
// managed tunnel the router's tunnel address is allocated from the region's
// prefix (giving one is fleet.ErrTunnelAddressManaged); in a manual region
// the caller gives it (fleet.ErrTunnelAddressRequired otherwise). An unknown
// region is fleet.ErrNotFound, a full prefix fleet.ErrTunnelFull.
func (s *Service) CreateRouter(ctx context.Context, p fleet.Principal, nr NewRouter, now time.Time) (fleet.Router, string, error) {
	secret := store.NewAgentSecret()
	var r fleet.Router
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		region, err := tx.Region(ctx, nr.Region)
		if err != nil {
			return err
		}
		addr := nr.TunnelAddress
		switch {
		case region.Tunnel.Managed && addr.IsValid():
			return fleet.ErrTunnelAddressManaged
		case region.Tunnel.Managed:
			// The region's lock makes the allocation the only one running.
			if err := tx.LockRegions(ctx, []string{region.ID}); err != nil {
				return err
			}
			var ok bool
			if addr, ok, err = tx.FreeTunnelAddress(ctx, region.ID); err != nil {
				return err
			} else if !ok {
				return fmt.Errorf("region %q (%s): %w", region.ID, region.Tunnel.Prefix, fleet.ErrTunnelFull)
			}
		case !addr.IsValid():
			return fleet.ErrTunnelAddressRequired
		}
		if r, err = tx.CreateRouter(ctx, p.AccountID, nr.Name, nr.Region, addr, secret, now); err != nil {
			return err
		}
		r.TunnelManaged = region.Tunnel.Managed
		return tx.Audit(ctx, now, p.Actor(), fleet.ActionRouterCreate, store.AuditEvent{
			Account: p.AccountID, Subject: r.ID, Detail: map[string]any{
				"name": nr.Name, "region": nr.Region, "tunnel_address": addr.String(),
			}})
	})
	if err != nil {
		return fleet.Router{}, "", fmt.Errorf("create router: %w", err)
	}
	return r, secret, nil
}

// Router returns one of the account's routers.
func (s *Service) Router(ctx context.Context, account, id uuid.UUID) (fleet.Router, error) {
	return s.st.Router(ctx, account, id)
}

// Routers lists the account's routers, oldest first.
func (s *Service) Routers(ctx context.Context, account uuid.UUID) ([]fleet.Router, error) {
	return s.st.Routers(ctx, account)
}

// DeleteRouter removes one of the account's routers after ending its live
// forwards and accesses; their ports are released by the grace period, since
// the router will no longer confirm anything.
func (s *Service) DeleteRouter(ctx context.Context, p fleet.Principal, id uuid.UUID, now time.Time) error {
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		router, region, err := tx.LockRouter(ctx, p.AccountID, id)
		if err != nil {
			return err
		}
		if err := tx.MarkRouterDeleted(ctx, p.AccountID, id, now); err != nil {
			return err
		}
		ended, err := tx.EndRouterForwards(ctx, id, p.TokenID, now)
		if err != nil {
			return err
		}
		var revoked, revokedAccesses []store.AuditEvent
		forwardsEnded, accessesEnded := 0, 0
		for _, f := range ended {
			e := store.AuditEvent{Account: p.AccountID, Subject: f.ID,
				Detail: map[string]any{"router_id": id, "reason": "router deleted"}}
			switch {
			case f.Access:
				accessesEnded++
				if f.Revoked {
					revokedAccesses = append(revokedAccesses, e)
				}
			default:
				forwardsEnded++
				if f.Revoked {
					revoked = append(revoked, e)
				}
			}
		}
		if err := tx.Audit(ctx, now, p.Actor(), fleet.ActionForwardRevoke, revoked...); err != nil {
			return err
		}
		if err := tx.Audit(ctx, now, p.Actor(), fleet.ActionAccessRevoke, revokedAccesses...); err != nil {
			return err
		}
		detail := map[string]any{"name": router.Name, "forwards_ended": forwardsEnded}
		if accessesEnded > 0 {
			detail["accesses_ended"] = accessesEnded
		}
		if err := tx.Audit(ctx, now, p.Actor(), fleet.ActionRouterDelete, store.AuditEvent{
			Account: p.AccountID, Subject: id, Detail: detail,
		}); err != nil {
			return err
		}
		// Disconnect: the agent gets its last set and is dropped.
		return tx.Publish(ctx, store.Change{RouterID: id, Region: region.ID, Disconnect: true})
	})
	if err != nil {
		return fmt.Errorf("delete router %s: %w", id, err)
	}
	return nil
}

// RotateAgentToken gives one of the account's routers a new agent token and
// returns its secret; the old token stops working and its agent is dropped
// by whichever replica holds it. The router's forwards are untouched.
func (s *Service) RotateAgentToken(ctx context.Context, p fleet.Principal, router uuid.UUID, now time.Time) (string, error) {
	secret := store.NewAgentSecret()
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		r, err := tx.ReplaceAgentToken(ctx, p.AccountID, router, secret)
		if err != nil {
			return err
		}
		if err := tx.Audit(ctx, now, p.Actor(), fleet.ActionAgentTokenRotate, store.AuditEvent{
			Account: p.AccountID, Subject: router, Detail: map[string]any{},
		}); err != nil {
			return err
		}
		return tx.Publish(ctx, store.Change{RouterID: router, Region: r.Region, Disconnect: true})
	})
	if err != nil {
		return "", fmt.Errorf("rotate agent token of %s: %w", router, err)
	}
	return secret, nil
}

// IssueEdgeToken gives a region a new edge token and returns its secret; a
// previous token stops working and its edge is dropped. From then on the
// region counts as served by a tpf edge.
func (s *Service) IssueEdgeToken(ctx context.Context, region string) (string, error) {
	secret := store.NewEdgeSecret()
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.ReplaceEdgeToken(ctx, region, secret); err != nil {
			return err
		}
		return tx.Publish(ctx, store.Change{Region: region, Disconnect: true})
	})
	if err != nil {
		return "", fmt.Errorf("issue edge token: %w", err)
	}
	return secret, nil
}
