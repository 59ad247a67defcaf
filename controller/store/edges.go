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
	"github.com/tpf-dev/tpf/shared/syncproto"
)

const edgeTokenPrefix = "tpfe_"

// IssueEdgeToken gives a region a new edge token and returns its secret;
// a previous token stops working and its edge is dropped. From then on the
// region counts as served by a tpf edge.
func (s *Store) IssueEdgeToken(ctx context.Context, region string) (string, error) {
	secret, hash := newSecret(edgeTokenPrefix)
	err := s.inTx(ctx, func(q *db.Queries) error {
		if _, err := q.SetEdgeToken(ctx, db.SetEdgeTokenParams{EdgeTokenHash: hash, ID: region}); err != nil {
			return fmt.Errorf("region %q: %w", region, notFound(err))
		}
		return publish(ctx, q, Change{Region: region, Disconnect: true})
	})
	if err != nil {
		return "", fmt.Errorf("issue edge token: %w", err)
	}
	return secret, nil
}

// SetEdgeManaged marks a region as served by a tpf edge (an embedded one
// has no token).
func (s *Store) SetEdgeManaged(ctx context.Context, region string) error {
	if err := s.q.SetEdgeManaged(ctx, region); err != nil {
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

// EdgeListeners is the full listener set of region at now, each with lim.
func (s *Store) EdgeListeners(ctx context.Context, region string, lim syncproto.Limits, now time.Time) (*syncproto.Listeners, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("listeners of %q: %w", region, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	q := s.q.WithTx(tx)
	r, err := q.GetRegion(ctx, region)
	if err != nil {
		return nil, fmt.Errorf("listeners of %q: %w", region, notFound(err))
	}
	rows, err := q.ListRegionListeners(ctx, db.ListRegionListenersParams{RegionID: region, Now: now})
	if err != nil {
		return nil, fmt.Errorf("listeners of %q: %w", region, err)
	}
	l := &syncproto.Listeners{Revision: r.Revision, Region: region, Listeners: make([]syncproto.Listener, len(rows)), SentAt: now}
	for i, row := range rows {
		l.Listeners[i] = syncproto.Listener{
			ID: row.ID.String(), Port: uint16(row.Port), Allow: row.AllowCidr,
			Target: netip.AddrPortFrom(row.TunnelAddress, uint16(row.Port)), ExpiresAt: row.ExpiresAt.UTC(), Limits: lim,
		}
	}
	return l, tx.Commit(ctx)
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
	if err := s.q.EdgeDisconnected(ctx, db.EdgeDisconnectedParams{Now: now, ID: region}); err != nil {
		return fmt.Errorf("edge of %q disconnected: %w", region, err)
	}
	return nil
}

// EdgeSeen records a sign of life of region's edge.
func (s *Store) EdgeSeen(ctx context.Context, region string, now time.Time) error {
	if err := s.q.EdgeSeen(ctx, db.EdgeSeenParams{Now: now, ID: region}); err != nil {
		return fmt.Errorf("edge of %q seen: %w", region, err)
	}
	return nil
}

// ApplyEdgeReport records what region's edge applied: forwards it listens
// for count as in place at the entry point (and become active when their
// router confirmed them too); failures are kept on the forward. It returns
// the forwards this report made active.
func (s *Store) ApplyEdgeReport(ctx context.Context, region string, r syncproto.Report, now time.Time) ([]Activation, error) {
	err := s.retry(ctx, func() error {
		return s.q.EdgeReport(ctx, db.EdgeReportParams{Now: now, EdgeVersion: r.AgentVersion, AppliedRevision: r.Revision, EdgeError: r.Error, ID: region})
	})
	if err != nil || r.Error != "" {
		return nil, wrapEdgeReport(region, err)
	}
	rr := readResults(r.Results)
	var out reportOutcome
	err = s.inTx(ctx, func(q *db.Queries) error {
		rows, err := q.LockRegionForwards(ctx, db.LockRegionForwardsParams{RegionID: region, Ids: rr.ids()})
		if err != nil {
			return err
		}
		states := make([]forwardState, len(rows))
		for i, r := range rows {
			states[i] = stateOf(r.ID, r.Status, r.RouterError, r.EdgeError, r.RuleConfirmed, r.ListenerConfirmed, r.EdgeManaged, r.CreatedAt)
		}
		out = edgeReported(states, rr)
		return writeStates(ctx, q, out.changed, now)
	})
	if err != nil {
		return nil, wrapEdgeReport(region, err)
	}
	return out.activated, nil
}

func wrapEdgeReport(region string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("edge report of %q: %w", region, err)
}

// RecordConnections stores connection records from region's edge in one
// statement; records for forwards of other regions are ignored, and so are
// records that would move a connection to another forward.
func (s *Store) RecordConnections(ctx context.Context, region string, recs []syncproto.Connection) error {
	byID := make(map[uuid.UUID]syncproto.Connection, len(recs))
	for _, c := range recs {
		id, err := uuid.Parse(c.ID)
		if err != nil {
			continue
		}
		if _, err := uuid.Parse(c.ForwardID); err != nil {
			continue
		}
		byID[id] = c // the newest record of a connection wins
	}
	if len(byID) == 0 {
		return nil
	}
	p := db.UpsertConnectionsParams{RegionID: region}
	for id, c := range byID {
		p.Ids = append(p.Ids, id)
		p.ForwardIds = append(p.ForwardIds, uuid.MustParse(c.ForwardID))
		p.Sources = append(p.Sources, c.Source.String())
		p.StartedAts = append(p.StartedAts, c.Start.UTC())
		p.Ended = append(p.Ended, !c.End.IsZero())
		p.EndedAts = append(p.EndedAts, c.End.UTC())
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
