package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store/db"
)

// AuthenticateAgent returns the router an agent token belongs to, or
// fleet.ErrUnauthenticated.
func (s *Store) AuthenticateAgent(ctx context.Context, secret string) (fleet.Router, error) {
	row, err := s.q.RouterByAgentToken(ctx, hashSecret(secret))
	if errors.Is(err, pgx.ErrNoRows) {
		return fleet.Router{}, fleet.ErrUnauthenticated
	}
	if err != nil {
		return fleet.Router{}, fmt.Errorf("authenticate agent: %w", err)
	}
	return toRouter(row), nil
}

// RetiredRouter reports whether secret is the agent token of router, deleted
// since: its agent is owed one last, empty set.
func (s *Store) RetiredRouter(ctx context.Context, secret string, router uuid.UUID) (bool, error) {
	row, err := s.q.RouterByAgentTokenAny(ctx, hashSecret(secret))
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("authenticate agent: %w", err)
	}
	return row.ID == router && row.DeletedAt != nil, nil
}

// RouterSet is what a router must hold: its live forwards and accesses,
// with the revision they make up and the addresses its rules use.
type RouterSet struct {
	Revision      int64
	TunnelAddress netip.Addr
	EdgeAddress   netip.Addr
	Forwards      []fleet.Forward
	// Accesses are the router's live accesses, each with its password
	// while that is still stored.
	Accesses []DesiredAccess
	// Deleted: the router was deleted; its agent gets one last set without
	// forwards or tunnel, so that it leaves nothing behind.
	Deleted bool
	// Tunnel is the region's tunnel (see fleet.RegionTunnel).
	Tunnel fleet.RegionTunnel
}

// RouterSet reads router's live forwards and accesses at now in one
// snapshot, so that the revision matches them.
func (s *Store) RouterSet(ctx context.Context, router uuid.UUID, now time.Time) (RouterSet, error) {
	var set RouterSet
	err := s.snapshot(ctx, func(q *db.Queries) error {
		target, err := q.AgentTarget(ctx, router)
		if err != nil {
			return notFound(err)
		}
		rows, err := q.ListLiveForwards(ctx, db.ListLiveForwardsParams{RouterID: router, Now: now})
		if err != nil {
			return err
		}
		set = RouterSet{Revision: target.Revision, TunnelAddress: target.TunnelAddress, EdgeAddress: target.EdgeTunnelAddress,
			Forwards: make([]fleet.Forward, len(rows)), Deleted: target.DeletedAt != nil,
			Tunnel: fleet.RegionTunnel{Managed: target.TunnelMode == tunnelManaged, Endpoint: target.TunnelEndpoint,
				EdgePublicKey: target.EdgePublicKey}}
		if set.Deleted {
			set.Forwards = nil
			return nil
		}
		for i, r := range rows {
			set.Forwards[i] = withTunnel(toForward(r.Forward, r.EntryPoint, r.ConnectionsActive), r.TunnelManaged, r.TunnelHandshakeAt, r.TunnelError)
		}
		accesses, err := q.ListDesiredAccesses(ctx, db.ListDesiredAccessesParams{RouterID: router, Now: now})
		if err != nil {
			return err
		}
		set.Accesses = make([]DesiredAccess, len(accesses))
		for i, a := range accesses {
			set.Accesses[i] = DesiredAccess{ID: a.ID, Service: a.Kind, Username: a.AccessUsername, ReadOnly: a.AccessReadOnly,
				ExpiresAt: a.ExpiresAt.UTC(), Password: a.AccessPassword}
		}
		return nil
	})
	if err != nil {
		return RouterSet{}, fmt.Errorf("desired set of %s: %w", router, err)
	}
	return set, nil
}

// snapshot runs fn in a read-only transaction that sees one snapshot.
func (s *Store) snapshot(ctx context.Context, fn func(q *db.Queries) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := fn(s.q.WithTx(tx)); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// AgentConnected records that router's agent connected at now.
func (s *Store) AgentConnected(ctx context.Context, router uuid.UUID, now time.Time) error {
	if err := s.retry(ctx, func() error { return s.q.AgentConnected(ctx, db.AgentConnectedParams{Now: now, ID: router}) }); err != nil {
		return fmt.Errorf("agent of %s connected: %w", router, err)
	}
	return nil
}

// AgentDisconnected records that router's agent went away at now.
func (s *Store) AgentDisconnected(ctx context.Context, router uuid.UUID, now time.Time) error {
	if err := s.retry(ctx, func() error { return s.q.AgentDisconnected(ctx, db.AgentDisconnectedParams{Now: now, ID: router}) }); err != nil {
		return fmt.Errorf("agent of %s disconnected: %w", router, err)
	}
	return nil
}

// AgentSeen records a sign of life (a heartbeat answered).
func (s *Store) AgentSeen(ctx context.Context, router uuid.UUID, now time.Time) error {
	if err := s.retry(ctx, func() error { return s.q.AgentSeen(ctx, db.AgentSeenParams{Now: now, ID: router}) }); err != nil {
		return fmt.Errorf("agent of %s seen: %w", router, err)
	}
	return nil
}

// AgentInfo is what an agent says about itself and its router; empty
// router fields leave what is known.
type AgentInfo struct {
	AgentVersion    string
	RouterOSVersion string
	Board           string
	Identity        string
}

// AgentHello records an agent's introduction.
func (s *Store) AgentHello(ctx context.Context, router uuid.UUID, a AgentInfo, now time.Time) error {
	err := s.retry(ctx, func() error {
		return s.q.AgentHello(ctx, db.AgentHelloParams{
			Now: now, AgentVersion: a.AgentVersion, RouterosVersion: a.RouterOSVersion,
			Board: a.Board, Identity: a.Identity, ID: router,
		})
	})
	if err != nil {
		return fmt.Errorf("agent of %s hello: %w", router, err)
	}
	return nil
}

// AgentPass is what an agent says of one pass over its set.
type AgentPass struct {
	AgentInfo
	// Revision is the revision of the set applied; it counts only up to
	// the router's current revision.
	Revision int64
	// Error is a failure of the whole pass; empty after a clean one.
	Error string
	// ClockOffsetMillis is the router's clock minus the controller's;
	// nil keeps the last one known.
	ClockOffsetMillis *int64
	// Tunnel is the router's end of the tunnel (its PublicKey is recorded
	// by SetRouterTunnelKey, not here); nil when the agent reported none.
	Tunnel *fleet.TunnelState
}

// AgentPassed records an agent's pass in a transaction of its own, holding
// nothing else (see the lock order).
func (s *Store) AgentPassed(ctx context.Context, router uuid.UUID, p AgentPass, now time.Time) error {
	err := s.retry(ctx, func() error {
		return s.q.AgentReport(ctx, db.AgentReportParams{
			Now: now, AgentVersion: p.AgentVersion, RouterosVersion: p.RouterOSVersion,
			Board: p.Board, Identity: p.Identity, AppliedRevision: p.Revision,
			AgentError: p.Error, ClockOffsetMs: p.ClockOffsetMillis, ID: router,
		})
	})
	if err == nil && p.Tunnel != nil {
		t := p.Tunnel
		err = s.retry(ctx, func() error {
			return s.q.AgentTunnel(ctx, db.AgentTunnelParams{
				HandshakeAt: t.LastHandshake, Endpoint: t.Endpoint, RxBytes: t.RxBytes, TxBytes: t.TxBytes,
				TunnelError: t.Error, Now: now, ID: router,
			})
		})
	}
	if err != nil {
		return fmt.Errorf("report of %s: %w", router, err)
	}
	return nil
}
