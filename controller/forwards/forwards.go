package forwards

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store"
)

// portTries is how many random ports CreateForward tries before it asks for
// any free one; random picks keep ports unpredictable and make concurrent
// creates rarely collide.
const portTries = 8

// portOffsets is the random candidate ports (as offsets into a region's
// range) that the one-statement create tries in turn: with a quarter of a
// region's ports held, all four are held once in 256 creates.
func portOffsets() []int32 {
	o := make([]int32, 4)
	for i := range o {
		o[i] = rand.Int32N(1 << 30)
	}
	return o
}

// CreateForward creates a forward on one of the principal's routers, taking
// a free port of the router's region. The router is checked and locked in
// the same transaction, so a router deleted a moment earlier gets no
// forward. It returns fleet.ErrNotFound for a router that is not the
// principal's (or no longer exists) and fleet.ErrPortsExhausted when the
// region has no port left.
func (s *Service) CreateForward(ctx context.Context, p fleet.Principal, router uuid.UUID, nf fleet.NewForward, now time.Time) (fleet.Forward, error) {
	// Nearly always one random pick takes a free port: one statement, one
	// round trip. A taken port (or a router that is not the principal's)
	// takes the longer way below, which tells those apart.
	if f, ok, err := s.st.CreateForwardAtOnce(ctx, p, router, nf, portOffsets(), now); ok || err != nil {
		return f, err
	}
	var f fleet.Forward
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		rt, region, err := tx.LockRouter(ctx, p.AccountID, router)
		if err != nil {
			return err
		}
		row := store.ForwardRow{Router: router, Region: region.ID, CreatedBy: p.TokenID, CreatedAt: now, NewForward: nf}
		if f, err = insertForward(ctx, tx, region, row); err != nil {
			return err
		}
		f.TunnelManaged, f.RouterTunnel = region.Tunnel.Managed, rt.Tunnel
		if err := tx.Audit(ctx, now, p.Actor(), fleet.ActionForwardCreate, store.AuditEvent{
			Account: p.AccountID, Subject: f.ID, Detail: map[string]any{
				"router_id": router, "port": f.Port, "dst_address": nf.DstAddress.String(),
				"dst_port": nf.DstPort, "allow_from": nf.AllowFrom.String(), "expires_at": f.ExpiresAt,
				"masquerade": nf.Masquerade,
			}}); err != nil {
			return err
		}
		return tx.Publish(ctx, store.Change{RouterID: router, Region: region.ID})
	})
	if err != nil {
		return fleet.Forward{}, fmt.Errorf("create forward: %w", err)
	}
	return f, nil
}

// insertForward inserts the forward on a free port: a few random picks
// first, then any port the region can still hand out for the router. A pick
// that loses a race to a concurrent create inserts nothing and is retried.
func insertForward(ctx context.Context, tx *store.Tx, region fleet.Region, row store.ForwardRow) (fleet.Forward, error) {
	for range portTries {
		row.Port = region.Ports.Min + uint16(rand.IntN(region.Ports.Size()))
		f, taken, err := tx.InsertForward(ctx, row, region.EntryPoint)
		if !taken {
			return f, err
		}
	}
	for {
		port, ok, err := tx.FreePort(ctx, region, row.Router)
		if err != nil {
			return fleet.Forward{}, err
		}
		if !ok {
			return fleet.Forward{}, fmt.Errorf("region %q: %w", region.ID, fleet.ErrPortsExhausted)
		}
		row.Port = port
		f, taken, err := tx.InsertForward(ctx, row, region.EntryPoint)
		if !taken {
			return f, err
		}
		// Another create took that port between the scan and the insert.
	}
}

// RevokeForward ends a forward early. Revoking a forward that already ended
// (revoked or expired) changes nothing and is not an error; one that does
// not exist, or whose router is not the principal's, is fleet.ErrNotFound
// (so is an access's id).
func (s *Service) RevokeForward(ctx context.Context, p fleet.Principal, router, id uuid.UUID, now time.Time) error {
	if err := s.revoke(ctx, p, router, id, false, now); err != nil {
		return fmt.Errorf("revoke forward %s: %w", id, err)
	}
	return nil
}

// revoke ends a forward (an access when access is set) early, as
// RevokeForward and RevokeAccess describe.
func (s *Service) revoke(ctx context.Context, p fleet.Principal, router, id uuid.UUID, access bool, now time.Time) error {
	noun, action := "forward", fleet.ActionForwardRevoke
	if access {
		noun, action = "access", fleet.ActionAccessRevoke
	}
	return s.st.InTx(ctx, func(tx *store.Tx) error {
		_, region, err := tx.LockRouter(ctx, p.AccountID, router)
		if err != nil {
			return err
		}
		ended, err := tx.EndForward(ctx, router, id, p.TokenID, access, now)
		if err != nil {
			return err
		}
		if !ended {
			exists, err := tx.ForwardExists(ctx, router, id, access)
			if err == nil && !exists {
				err = fmt.Errorf("%s %s: %w", noun, id, fleet.ErrNotFound)
			}
			return err // nil: it had ended already
		}
		if err := tx.Audit(ctx, now, p.Actor(), action, store.AuditEvent{
			Account: p.AccountID, Subject: id, Detail: map[string]any{"router_id": router},
		}); err != nil {
			return err
		}
		return tx.Publish(ctx, store.Change{RouterID: router, Region: region.ID})
	})
}

// Forward returns one forward of one of the account's routers.
func (s *Service) Forward(ctx context.Context, account, router, id uuid.UUID) (fleet.Forward, error) {
	return s.st.Forward(ctx, account, router, id)
}

// LiveForwards lists the forwards of one of the account's routers that are
// neither expired nor revoked at now, oldest first.
func (s *Service) LiveForwards(ctx context.Context, account, router uuid.UUID, now time.Time) ([]fleet.Forward, error) {
	return s.st.LiveForwards(ctx, account, router, now)
}

// ForwardHistory lists up to limit forwards of one of the account's
// routers, newest first: all of them, or only those that ended by now.
func (s *Service) ForwardHistory(ctx context.Context, account, router uuid.UUID, onlyEnded bool, limit int, now time.Time) ([]fleet.Forward, error) {
	return s.st.ForwardHistory(ctx, account, router, onlyEnded, limit, now)
}

// Connections lists up to limit connections relayed for one forward of one
// of the account's routers, newest first.
func (s *Service) Connections(ctx context.Context, account, router, forward uuid.UUID, limit int) ([]fleet.Connection, error) {
	return s.st.Connections(ctx, account, router, forward, limit)
}
