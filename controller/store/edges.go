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

const edgeTokenPrefix = "tpfe_"

// NewEdgeSecret returns a fresh edge token secret; ReplaceEdgeToken stores
// its hash.
func NewEdgeSecret() string {
	secret, _ := newSecret(edgeTokenPrefix)
	return secret
}

// NewAgentSecret returns a fresh agent token secret; CreateRouter and
// ReplaceAgentToken store its hash.
func NewAgentSecret() string {
	secret, _ := newSecret(agentTokenPrefix)
	return secret
}

// SetEdgeManaged marks a region as served by a tpf edge (an embedded one
// has no token).
func (s *Store) SetEdgeManaged(ctx context.Context, region string) error {
	if err := s.retry(ctx, func() error { return s.q.SetEdgeManaged(ctx, region) }); err != nil {
		return fmt.Errorf("region %q: %w", region, err)
	}
	return nil
}

// AuthenticateEdge returns the region an edge token belongs to, or
// fleet.ErrUnauthenticated.
func (s *Store) AuthenticateEdge(ctx context.Context, secret string) (fleet.Region, error) {
	row, err := s.q.RegionByEdgeToken(ctx, hashSecret(secret))
	if errors.Is(err, pgx.ErrNoRows) {
		return fleet.Region{}, fleet.ErrUnauthenticated
	}
	if err != nil {
		return fleet.Region{}, fmt.Errorf("authenticate edge: %w", err)
	}
	return toRegion(row), nil
}

// RegionSet is what a region's edge must hold: a listener per live
// forward and access, with the revision they make up.
type RegionSet struct {
	Revision  int64
	Listeners []Listener
	// Tunnel is the region's tunnel, with the edge's address; Peers are the
	// routers whose end has a key (only for a managed tunnel).
	Tunnel      fleet.RegionTunnel
	EdgeAddress netip.Addr
	Peers       []Peer
}

// Peer is one router as its region's edge's WireGuard device holds it.
type Peer struct {
	PublicKey string
	Address   netip.Addr
}

// Listener is one live forward or access as its region's edge holds it:
// connections from Allow to Port go to the router's tunnel address on
// TargetPort (a forward's own port, which the router's rule forwards on; an
// access's service port).
type Listener struct {
	ID            uuid.UUID
	Port          uint16
	Allow         netip.Prefix
	TunnelAddress netip.Addr
	TargetPort    uint16
	ExpiresAt     time.Time
}

// RegionSet reads region's live forwards at now in one snapshot, so that
// the revision matches them.
func (s *Store) RegionSet(ctx context.Context, region string, now time.Time) (RegionSet, error) {
	var set RegionSet
	err := s.snapshot(ctx, func(q *db.Queries) error {
		r, err := q.GetRegion(ctx, region)
		if err != nil {
			return notFound(err)
		}
		rows, err := q.ListRegionListeners(ctx, db.ListRegionListenersParams{RegionID: region, Now: now})
		if err != nil {
			return err
		}
		region := toRegion(r.Region)
		set = RegionSet{Revision: r.Revision, Listeners: make([]Listener, len(rows)), Tunnel: region.Tunnel, EdgeAddress: region.EdgeTunnelAddress}
		for i, row := range rows {
			set.Listeners[i] = Listener{ID: row.ID, Port: uint16(row.Port), Allow: row.AllowCidr,
				TunnelAddress: row.TunnelAddress, TargetPort: uint16(row.TargetPort), ExpiresAt: row.ExpiresAt.UTC()}
		}
		if !region.Tunnel.Managed {
			return nil
		}
		peers, err := q.ListRegionPeers(ctx, region.ID)
		for _, p := range peers {
			set.Peers = append(set.Peers, Peer{PublicKey: p.TunnelPublicKey, Address: p.TunnelAddress})
		}
		return err
	})
	if err != nil {
		return RegionSet{}, fmt.Errorf("listeners of %q: %w", region, err)
	}
	return set, nil
}

// EdgeConnected records that region's edge connected at now; connections it
// had reported open are closed until it reports them again.
func (s *Store) EdgeConnected(ctx context.Context, region string, now time.Time) error {
	err := s.inTx(ctx, func(q *db.Queries) error {
		if err := q.EdgeConnected(ctx, db.EdgeConnectedParams{Now: now, ID: region}); err != nil {
			return err
		}
		_, err := q.CloseRegionConnections(ctx, db.CloseRegionConnectionsParams{Now: now, RegionID: region})
		return err
	})
	if err != nil {
		return fmt.Errorf("edge of %q connected: %w", region, err)
	}
	return nil
}

// EdgeDisconnected records that region's edge went away at now.
func (s *Store) EdgeDisconnected(ctx context.Context, region string, now time.Time) error {
	if err := s.retry(ctx, func() error { return s.q.EdgeDisconnected(ctx, db.EdgeDisconnectedParams{Now: now, ID: region}) }); err != nil {
		return fmt.Errorf("edge of %q disconnected: %w", region, err)
	}
	return nil
}

// EdgeSeen records a sign of life of region's edge.
func (s *Store) EdgeSeen(ctx context.Context, region string, now time.Time) error {
	if err := s.retry(ctx, func() error { return s.q.EdgeSeen(ctx, db.EdgeSeenParams{Now: now, ID: region}) }); err != nil {
		return fmt.Errorf("edge of %q seen: %w", region, err)
	}
	return nil
}

// EdgePassed records an edge's pass over its listener set (version,
// revision applied — counted only up to the region's current one — and a
// failure of the whole pass) in a transaction of its own.
func (s *Store) EdgePassed(ctx context.Context, region, version string, revision int64, passErr string, now time.Time) error {
	err := s.retry(ctx, func() error {
		return s.q.EdgeReport(ctx, db.EdgeReportParams{Now: now, EdgeVersion: version, AppliedRevision: revision, EdgeError: passErr, ID: region})
	})
	if err != nil {
		return fmt.Errorf("edge report of %q: %w", region, err)
	}
	return nil
}

// RecordConnections stores connection records from region's edge in one
// statement, the newest record of each connection winning; records for
// forwards of other regions are ignored, and so are records that would move
// a connection to another forward.
func (s *Store) RecordConnections(ctx context.Context, region string, recs []fleet.Connection) error {
	if len(recs) == 0 {
		return nil
	}
	latest := make(map[uuid.UUID]int, len(recs))
	for i, c := range recs {
		latest[c.ID] = i
	}
	p := db.UpsertConnectionsParams{RegionID: region}
	for i, c := range recs {
		if latest[c.ID] != i {
			continue
		}
		p.Ids = append(p.Ids, c.ID)
		p.ForwardIds = append(p.ForwardIds, c.ForwardID)
		p.Sources = append(p.Sources, c.Source)
		p.StartedAts = append(p.StartedAts, c.StartedAt.UTC())
		p.Ended = append(p.Ended, c.EndedAt != nil)
		end := time.Time{}
		if c.EndedAt != nil {
			end = c.EndedAt.UTC()
		}
		p.EndedAts = append(p.EndedAts, end)
		p.BytesUp = append(p.BytesUp, c.BytesUp)
		p.BytesDown = append(p.BytesDown, c.BytesDown)
		p.Reasons = append(p.Reasons, c.Reason)
	}
	if err := s.retry(ctx, func() error { return s.q.UpsertConnections(ctx, p) }); err != nil {
		return fmt.Errorf("record connections of %q: %w", region, err)
	}
	return nil
}

// Connections lists up to limit connections of one of the account's
// forwards, newest first.
func (s *Store) Connections(ctx context.Context, account, router, forward uuid.UUID, limit int) ([]fleet.Connection, error) {
	if _, err := s.Forward(ctx, account, router, forward); err != nil {
		return nil, err
	}
	rows, err := s.q.ListConnections(ctx, db.ListConnectionsParams{ForwardID: forward, MaxRows: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	return toConnections(rows), nil
}

func toConnections(rows []db.Connection) []fleet.Connection {
	out := make([]fleet.Connection, len(rows))
	for i, r := range rows {
		out[i] = fleet.Connection{
			ID: r.ID, ForwardID: r.ForwardID, Source: r.Source, StartedAt: r.StartedAt.UTC(), EndedAt: utcPtr(r.EndedAt),
			BytesUp: r.BytesUp, BytesDown: r.BytesDown, Reason: r.Reason,
		}
	}
	return out
}
