package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store/db"
	"github.com/tpf-dev/tpf/shared/syncproto"
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

// RotateAgentToken gives one of the account's routers a new agent token and
// returns its secret; the old token stops working and its connection is
// dropped. The router's forwards are untouched.
func (s *Store) RotateAgentToken(ctx context.Context, p fleet.Principal, router uuid.UUID, now time.Time) (string, error) {
	secret, hash := newSecret(agentTokenPrefix)
	err := s.inTx(ctx, func(q *db.Queries) error {
		row, err := q.RotateAgentToken(ctx, db.RotateAgentTokenParams{AgentTokenHash: hash, ID: router, AccountID: p.AccountID})
		if err != nil {
			return notFound(err)
		}
		if err := audit(ctx, q, now, p.AccountID, p.Actor(), fleet.ActionAgentTokenRotate, router, map[string]any{}); err != nil {
			return err
		}
		return publish(ctx, q, Change{RouterID: router, Region: row.RegionID, Disconnect: true})
	})
	if err != nil {
		return "", fmt.Errorf("rotate agent token of %s: %w", router, err)
	}
	return secret, nil
}

// DesiredSet is the full set of forwards router must hold at now.
func (s *Store) DesiredSet(ctx context.Context, router uuid.UUID, now time.Time) (*syncproto.Desired, error) {
	// One snapshot, so the revision matches the forwards.
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("desired set of %s: %w", router, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	q := s.q.WithTx(tx)
	target, err := q.AgentTarget(ctx, router)
	if err != nil {
		return nil, fmt.Errorf("desired set of %s: %w", router, notFound(err))
	}
	rows, err := q.ListLiveForwards(ctx, db.ListLiveForwardsParams{RouterID: router, Now: now})
	if err != nil {
		return nil, fmt.Errorf("desired set of %s: %w", router, err)
	}
	d := &syncproto.Desired{
		Revision: target.Revision, TunnelAddress: target.TunnelAddress, EdgeAddress: target.EdgeTunnelAddress,
		Forwards: make([]syncproto.Forward, len(rows)), SentAt: now,
	}
	for i, r := range rows {
		f := r.Forward
		d.Forwards[i] = syncproto.Forward{
			ID: f.ID.String(), Port: uint16(f.Port), DstAddress: f.DstAddress, DstPort: uint16(f.DstPort),
			ExpiresAt: f.ExpiresAt.UTC(), Masquerade: f.Masquerade,
		}
	}
	return d, tx.Commit(ctx)
}

// AgentConnected records that router's agent connected at now.
func (s *Store) AgentConnected(ctx context.Context, router uuid.UUID, now time.Time) error {
	if err := s.q.AgentConnected(ctx, db.AgentConnectedParams{Now: now, ID: router}); err != nil {
		return fmt.Errorf("agent of %s connected: %w", router, err)
	}
	return nil
}

// AgentDisconnected records that router's agent went away at now.
func (s *Store) AgentDisconnected(ctx context.Context, router uuid.UUID, now time.Time) error {
	if err := s.q.AgentDisconnected(ctx, db.AgentDisconnectedParams{Now: now, ID: router}); err != nil {
		return fmt.Errorf("agent of %s disconnected: %w", router, err)
	}
	return nil
}

// AgentSeen records a sign of life (a heartbeat answered).
func (s *Store) AgentSeen(ctx context.Context, router uuid.UUID, now time.Time) error {
	if err := s.q.AgentSeen(ctx, db.AgentSeenParams{Now: now, ID: router}); err != nil {
		return fmt.Errorf("agent of %s seen: %w", router, err)
	}
	return nil
}

// AgentHello records an agent's introduction.
func (s *Store) AgentHello(ctx context.Context, router uuid.UUID, h syncproto.Hello, now time.Time) error {
	err := s.q.AgentHello(ctx, db.AgentHelloParams{
		Now: now, AgentVersion: h.AgentVersion, RouterosVersion: h.Router.RouterOSVersion,
		Board: h.Router.Board, Identity: h.Router.Identity, ID: router,
	})
	if err != nil {
		return fmt.Errorf("agent of %s hello: %w", router, err)
	}
	return nil
}

// ReportOutcome says what a report changed.
type ReportOutcome struct {
	Activated []Activation // forwards this report made active
	Removed   []uuid.UUID  // forwards whose removal the router confirmed
}

// Activation is a forward that a report made active (pending → active).
type Activation struct {
	ID        uuid.UUID
	CreatedAt time.Time
}

// ApplyReport records what router's agent applied: forwards it confirmed
// become active, ended forwards it no longer holds become removed (freeing
// their ports), and refusals and failures are kept on the forward. Only
// forwards whose state changes are written, in one statement.
func (s *Store) ApplyReport(ctx context.Context, router uuid.UUID, r syncproto.Report, now time.Time) (ReportOutcome, error) {
	err := s.retry(ctx, func() error {
		return s.q.AgentReport(ctx, db.AgentReportParams{
			Now: now, AgentVersion: r.AgentVersion, RouterosVersion: r.Router.RouterOSVersion,
			Board: r.Router.Board, Identity: r.Router.Identity, AppliedRevision: r.Revision,
			AgentError: r.Error, ClockOffsetMs: r.ClockOffsetMillis, ID: router,
		})
	})
	if err != nil || r.Error != "" {
		return ReportOutcome{}, wrapReport(router, err) // a failed pass confirms nothing
	}
	rr := readResults(r.Results)
	present := make(map[uuid.UUID]bool, len(r.Present))
	for _, p := range r.Present {
		if id, err := uuid.Parse(p); err == nil {
			present[id] = true
		}
	}
	var out reportOutcome
	err = s.inTx(ctx, func(q *db.Queries) error {
		rows, err := q.LockRouterForwards(ctx, db.LockRouterForwardsParams{RouterID: router, Ids: rr.ids()})
		if err != nil {
			return err
		}
		states := make([]forwardState, len(rows))
		for i, r := range rows {
			states[i] = stateOf(r.ID, r.Status, r.RouterError, r.EdgeError, r.RuleConfirmed, r.ListenerConfirmed, r.EdgeManaged, r.CreatedAt)
		}
		out = agentReported(states, rr, present)
		return writeStates(ctx, q, out.changed, now)
	})
	if err != nil {
		return ReportOutcome{}, wrapReport(router, err)
	}
	return ReportOutcome{Activated: out.activated, Removed: out.removed}, nil
}

func wrapReport(router uuid.UUID, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("report of %s: %w", router, err)
}

// stateOf gathers a locked forward's columns that reports change.
func stateOf(id uuid.UUID, status, routerError, edgeError string, rule, listener, edgeManaged bool, created time.Time) forwardState {
	return forwardState{
		ID: id, Status: fleet.Status(status), RouterError: routerError, EdgeError: edgeError,
		RuleConfirmed: rule, ListenerConfirmed: listener, EdgeManaged: edgeManaged, CreatedAt: created,
	}
}
