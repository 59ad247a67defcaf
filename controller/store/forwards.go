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
)

// Forward returns one forward of one of the account's routers.
func (s *Store) Forward(ctx context.Context, account, router, id uuid.UUID) (fleet.Forward, error) {
	row, err := s.q.GetForward(ctx, db.GetForwardParams{ID: id, RouterID: router, AccountID: account})
	if err != nil {
		return fleet.Forward{}, fmt.Errorf("forward %s: %w", id, notFound(err))
	}
	return withTunnel(toForward(row.Forward, row.EntryPoint, row.ConnectionsActive), row.TunnelManaged, row.TunnelHandshakeAt, row.TunnelError), nil
}

// LiveForwards lists the router's forwards that are neither expired nor
// revoked at now, oldest first.
func (s *Store) LiveForwards(ctx context.Context, account, router uuid.UUID, now time.Time) ([]fleet.Forward, error) {
	if _, err := s.Router(ctx, account, router); err != nil {
		return nil, err
	}
	rows, err := s.q.ListLiveForwards(ctx, db.ListLiveForwardsParams{RouterID: router, Now: now})
	if err != nil {
		return nil, fmt.Errorf("list forwards: %w", err)
	}
	out := make([]fleet.Forward, len(rows))
	for i, r := range rows {
		out[i] = withTunnel(toForward(r.Forward, r.EntryPoint, r.ConnectionsActive), r.TunnelManaged, r.TunnelHandshakeAt, r.TunnelError)
	}
	return out, nil
}

// ForwardHistory lists up to limit of the router's forwards, newest first:
// all of them, or only those that ended (expired or revoked) by now.
func (s *Store) ForwardHistory(ctx context.Context, account, router uuid.UUID, onlyEnded bool, limit int, now time.Time) ([]fleet.Forward, error) {
	if _, err := s.Router(ctx, account, router); err != nil {
		return nil, err
	}
	rows, err := s.q.ListForwards(ctx, db.ListForwardsParams{RouterID: router, OnlyEnded: onlyEnded, Now: now, MaxRows: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("list forwards: %w", err)
	}
	out := make([]fleet.Forward, len(rows))
	for i, r := range rows {
		out[i] = withTunnel(toForward(r.Forward, r.EntryPoint, r.ConnectionsActive), r.TunnelManaged, r.TunnelHandshakeAt, r.TunnelError)
	}
	return out, nil
}

// CreateForwardAtOnce is the common create in one statement: it locks the
// account's router and its region, takes the port at offset (modulo the
// size) of the region's range, records the audit event as actor's and
// publishes the change. ok is false when it made nothing — the router is not
// the account's, or the port is taken — and the caller takes the longer way
// (package forwards), which tells the two apart.
func (s *Store) CreateForwardAtOnce(ctx context.Context, p fleet.Principal, router uuid.UUID, nf fleet.NewForward, offset int, now time.Time) (f fleet.Forward, ok bool, err error) {
	var row db.CreateForwardAtOnceRow
	err = s.retry(ctx, func() (err error) {
		row, err = s.q.CreateForwardAtOnce(ctx, db.CreateForwardAtOnceParams{
			PortOffset: int32(offset), RouterID: router, AccountID: p.AccountID,
			DstAddress: nf.DstAddress, DstPort: int32(nf.DstPort), AllowCidr: nf.AllowFrom, Masquerade: nf.Masquerade,
			CreatedAt: now, ExpiresAt: now.Add(nf.Duration), CreatedBy: &p.TokenID, Actor: p.Actor(), Action: fleet.ActionForwardCreate, Channel: ChangesChannel,
		})
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return fleet.Forward{}, false, nil
	}
	if err != nil {
		return fleet.Forward{}, false, fmt.Errorf("create forward: %w", err)
	}
	f = toForward(db.Forward{
		ID: row.ID, RouterID: row.RouterID, RegionID: row.RegionID, Port: row.Port, DstAddress: row.DstAddress,
		DstPort: row.DstPort, AllowCidr: row.AllowCidr, Masquerade: row.Masquerade, Status: row.Status,
		CreatedAt: row.CreatedAt, ExpiresAt: row.ExpiresAt, CreatedBy: row.CreatedBy, RevokedAt: row.RevokedAt,
		RevokedBy: row.RevokedBy, EndedAt: row.EndedAt, PortReleasedAt: row.PortReleasedAt, RouterError: row.RouterError,
		RuleConfirmedAt: row.RuleConfirmedAt, ListenerConfirmedAt: row.ListenerConfirmedAt, EdgeError: row.EdgeError,
	}, row.EntryPoint, 0)
	return withTunnel(f, row.TunnelManaged, row.TunnelHandshakeAt, row.TunnelError), true, nil
}
