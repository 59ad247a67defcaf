package store

import (
	"context"
	"crypto/subtle"
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

// RouterSet is what a router must hold: its live forwards and accesses,
// with the revision they make up and the addresses its rules use.
type RouterSet struct {
	Router        uuid.UUID
	Revision      int64
	TunnelAddress netip.Addr
	EdgeAddress   netip.Addr
	Forwards      []DesiredForward
	// Accesses are the router's live accesses, each with its password
	// while that is still stored.
	Accesses []DesiredAccess
	// Deleted: the router was deleted; its agent gets one last set without
	// forwards or tunnel, so that it leaves nothing behind.
	Deleted bool
	// Tunnel is the region's tunnel (see fleet.RegionTunnel).
	Tunnel fleet.RegionTunnel
	// agentTokenHash is the hash of the router's agent token (see HeldBy).
	agentTokenHash []byte
}

// DesiredForward is a live forward as its router's agent must hold it.
type DesiredForward struct {
	ID         uuid.UUID
	Port       uint16
	DstAddress netip.Addr
	DstPort    uint16
	ExpiresAt  time.Time
	Masquerade bool
}

// HeldBy reports whether secret is the router's agent token (that of a
// deleted router too), read with the set: an agent whose token was replaced
// since it connected is told apart without another query.
func (s RouterSet) HeldBy(secret string) bool {
	return subtle.ConstantTimeCompare(hashSecret(secret), s.agentTokenHash) == 1
}

// RouterSet reads router's set at now in one statement, so that the
// revision matches the forwards; an unknown router is fleet.ErrNotFound.
func (s *Store) RouterSet(ctx context.Context, router uuid.UUID, now time.Time) (RouterSet, error) {
	sets, err := s.RouterSets(ctx, []uuid.UUID{router}, now)
	if err != nil {
		return RouterSet{}, err
	}
	if len(sets) == 0 {
		return RouterSet{}, fmt.Errorf("desired set of %s: %w", router, fleet.ErrNotFound)
	}
	return sets[0], nil
}

// RouterSets reads the sets of many routers at now in one statement (one
// round trip and one snapshot, however many routers), in id order; unknown
// routers are left out.
func (s *Store) RouterSets(ctx context.Context, routers []uuid.UUID, now time.Time) ([]RouterSet, error) {
	rows, err := s.q.RouterSets(ctx, db.RouterSetsParams{Ids: routers, Now: now})
	if err != nil {
		return nil, fmt.Errorf("desired sets of %d routers: %w", len(routers), err)
	}
	out := make([]RouterSet, 0, len(routers))
	for _, r := range rows {
		if len(out) == 0 || out[len(out)-1].Router != r.ID {
			out = append(out, RouterSet{
				Router: r.ID, Revision: r.Revision, TunnelAddress: r.TunnelAddress, EdgeAddress: r.EdgeTunnelAddress,
				Forwards: []DesiredForward{}, Deleted: r.DeletedAt != nil, agentTokenHash: r.AgentTokenHash,
				Tunnel: fleet.RegionTunnel{Managed: r.TunnelMode == tunnelManaged, Endpoint: r.TunnelEndpoint, EdgePublicKey: r.EdgePublicKey},
			})
		}
		if r.ForwardID == nil || r.ExpiresAt == nil {
			continue // a router without forwards
		}
		set := &out[len(out)-1]
		if r.Kind == kindForward && r.DstAddress != nil {
			set.Forwards = append(set.Forwards, DesiredForward{
				ID: *r.ForwardID, Port: uint16(r.Port), DstAddress: *r.DstAddress, DstPort: uint16(r.DstPort),
				ExpiresAt: r.ExpiresAt.UTC(), Masquerade: r.Masquerade,
			})
			continue
		}
		set.Accesses = append(set.Accesses, DesiredAccess{
			ID: *r.ForwardID, Service: r.Kind, Username: r.AccessUsername, ReadOnly: r.AccessReadOnly,
			ExpiresAt: r.ExpiresAt.UTC(), Password: r.AccessPassword,
		})
	}
	return out, nil
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

// AgentsSeen records signs of life of many routers' agents at now, in
// statements of up to seenBatch routers each, each a transaction of its own
// holding nothing else; a router that has a later one keeps it.
func (s *Store) AgentsSeen(ctx context.Context, routers []uuid.UUID, now time.Time) error {
	for len(routers) > 0 {
		batch := routers[:min(len(routers), seenBatch)]
		routers = routers[len(batch):]
		if err := s.retry(ctx, func() error { return s.q.AgentsSeen(ctx, db.AgentsSeenParams{Ids: batch, Now: now}) }); err != nil {
			return fmt.Errorf("agents of %d routers seen: %w", len(batch), err)
		}
	}
	return nil
}

// seenBatch bounds the routers AgentsSeen writes in one statement, and so
// how many row locks one holds.
const seenBatch = 1000

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
