package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

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
