package forwards

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store"
)

// An access (fleet.Access) is a forward to the router itself: it shares the
// forward's port allocation, expiry, revoke, listener, connections and
// statuses, and the same transactions and lock order. What is its own is the
// RouterOS user its router's agent keeps. The user's password is made here,
// returned once by CreateAccess, sent to the agent in the desired set until
// the agent confirms the user, and then cleared from the database in the
// write that records the confirmation (or when the access ends, if that
// comes first). Should the router lose the user afterwards, the agent cannot
// create it again and refuses the access (its router error says so): the
// operator creates a new access, with a new password.

// CreateAccess creates an access to na.Service on one of the principal's
// routers, taking a free port of the router's region, with a fresh user and
// password. The returned access carries the password: the only time it is
// shown. As for CreateForward, the router is checked and locked in the same
// transaction; it returns fleet.ErrNotFound for a router that is not the
// principal's and fleet.ErrPortsExhausted when the region has no port left.
// The audit event names the user, never the password.
func (s *Service) CreateAccess(ctx context.Context, p fleet.Principal, router uuid.UUID, na fleet.NewAccess, now time.Time) (fleet.Access, error) {
	login := store.AccessLogin{Username: fleet.NewAccessUsername(), Password: fleet.NewAccessPassword()}
	if a, ok, err := s.st.CreateAccessAtOnce(ctx, p, router, na, login, portOffsets(), now); err != nil {
		return fleet.Access{}, err
	} else if ok {
		a.Password = login.Password
		return a, nil
	}
	var a fleet.Access
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		rt, region, err := tx.LockRouter(ctx, p.AccountID, router)
		if err != nil {
			return err
		}
		row := store.ForwardRow{
			Router: router, Region: region.ID, CreatedBy: p.TokenID, CreatedAt: now,
			NewForward: fleet.NewForward{
				DstAddress: rt.TunnelAddress, DstPort: fleet.DefaultServicePort(na.Service),
				AllowFrom: na.AllowFrom, Duration: na.Duration,
			},
			Service: na.Service, Login: login, ReadOnly: na.ReadOnly,
		}
		f, err := insertForward(ctx, tx, region, row)
		if err != nil {
			return err
		}
		f.TunnelManaged, f.RouterTunnel = region.Tunnel.Managed, rt.Tunnel
		a = fleet.Access{Forward: f, Service: na.Service, Username: login.Username, ReadOnly: na.ReadOnly}
		if err := tx.Audit(ctx, now, p.Actor(), fleet.ActionAccessCreate, store.AuditEvent{
			Account: p.AccountID, Subject: f.ID, Detail: accessDetail(a),
		}); err != nil {
			return err
		}
		return tx.Publish(ctx, store.Change{RouterID: router, Region: region.ID})
	})
	if err != nil {
		return fleet.Access{}, fmt.Errorf("create access: %w", err)
	}
	a.Password = login.Password
	return a, nil
}

// accessDetail is the audit detail of an access's creation: everything but
// the password.
func accessDetail(a fleet.Access) map[string]any {
	return map[string]any{
		"router_id": a.RouterID, "port": a.Port, "type": a.Service, "username": a.Username,
		"allow_from": a.AllowFrom.String(), "expires_at": a.ExpiresAt, "read_only": a.ReadOnly,
	}
}

// RevokeAccess ends an access early: its router's agent removes the user
// (and its sessions) and the edge closes the listener. Revoking an access
// that already ended changes nothing and is not an error; one that does not
// exist, or whose router is not the principal's, is fleet.ErrNotFound (so is
// a forward's id).
func (s *Service) RevokeAccess(ctx context.Context, p fleet.Principal, router, id uuid.UUID, now time.Time) error {
	if err := s.revoke(ctx, p, router, id, true, now); err != nil {
		return fmt.Errorf("revoke access %s: %w", id, err)
	}
	return nil
}

// Access returns one access of one of the account's routers (also when it
// ended), without its password; a forward's id is fleet.ErrNotFound.
func (s *Service) Access(ctx context.Context, account, router, id uuid.UUID) (fleet.Access, error) {
	return s.st.Access(ctx, account, router, id)
}

// Accesses lists up to limit accesses of one of the account's routers,
// newest first, without their passwords: all of them, or with onlyLive
// those neither ended nor expired at now.
func (s *Service) Accesses(ctx context.Context, account, router uuid.UUID, onlyLive bool, limit int, now time.Time) ([]fleet.Access, error) {
	return s.st.Accesses(ctx, account, router, onlyLive, limit, now)
}

// AccessConnections lists up to limit connections relayed for one access of
// one of the account's routers, newest first.
func (s *Service) AccessConnections(ctx context.Context, account, router, access uuid.UUID, limit int) ([]fleet.Connection, error) {
	return s.st.AccessConnections(ctx, account, router, access, limit)
}
