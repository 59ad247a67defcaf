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

// This file holds the reads of the web views (package web): each answers a
// whole page section in one query, never one query per router or forward.

// ExpiringWithin is how close to its expiry a live forward counts as
// expiring (LiveForwardCounts.Expiring).
const ExpiringWithin = 15 * time.Minute

// LiveForwardCounts counts one router's live forwards.
type LiveForwardCounts struct {
	Live int
	// Pending are live forwards the router has not confirmed yet.
	Pending int
	// Failing are live forwards with a router or edge error.
	Failing int
	// Expiring are live forwards that expire within ExpiringWithin.
	Expiring int
}

// FleetForwardCounts counts the live forwards at now of every router of the
// account; routers without a live forward are absent from the map.
func (s *Store) FleetForwardCounts(ctx context.Context, account uuid.UUID, now time.Time) (map[uuid.UUID]LiveForwardCounts, error) {
	rows, err := s.q.FleetForwardCounts(ctx, db.FleetForwardCountsParams{AccountID: account, Now: now, ExpiringBy: now.Add(ExpiringWithin)})
	if err != nil {
		return nil, fmt.Errorf("count forwards: %w", err)
	}
	out := make(map[uuid.UUID]LiveForwardCounts, len(rows))
	for _, r := range rows {
		out[r.RouterID] = LiveForwardCounts{Live: int(r.Live), Pending: int(r.Pending), Failing: int(r.Failing), Expiring: int(r.Expiring)}
	}
	return out, nil
}

// ForwardView is a forward with the names of the API tokens that created
// and revoked it (empty when unknown, or not revoked).
type ForwardView struct {
	fleet.Forward
	CreatedBy string
	RevokedBy string
}

// RecentForwards lists up to limit forwards of one of the account's routers
// that were live at some time since since: live ones first, then newest
// first.
func (s *Store) RecentForwards(ctx context.Context, account, router uuid.UUID, since time.Time, limit int) ([]ForwardView, error) {
	if _, err := s.Router(ctx, account, router); err != nil {
		return nil, err
	}
	rows, err := s.q.RouterForwardsSince(ctx, db.RouterForwardsSinceParams{RouterID: router, Since: since, MaxRows: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("list recent forwards: %w", err)
	}
	out := make([]ForwardView, len(rows))
	for i, r := range rows {
		out[i] = ForwardView{
			Forward:   withTunnel(toForward(r.Forward, r.EntryPoint, r.ConnectionsActive), r.TunnelManaged, r.TunnelHandshakeAt, r.TunnelError),
			CreatedBy: r.CreatedByName, RevokedBy: r.RevokedByName,
		}
	}
	return out, nil
}

// RecentConnections lists up to limit connections relayed for the forwards
// of one of the account's routers that were open at some time since since,
// newest first.
func (s *Store) RecentConnections(ctx context.Context, account, router uuid.UUID, since time.Time, limit int) ([]fleet.Connection, error) {
	if _, err := s.Router(ctx, account, router); err != nil {
		return nil, err
	}
	rows, err := s.q.RouterConnectionsSince(ctx, db.RouterConnectionsSinceParams{RouterID: router, Since: since, MaxRows: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("list recent connections: %w", err)
	}
	return toConnections(rows), nil
}

// Principal returns who the API token with id acts for, or
// fleet.ErrUnauthenticated when the token is unknown or revoked. Web sessions
// call it on every request, so revoking a token ends its sessions.
func (s *Store) Principal(ctx context.Context, tokenID uuid.UUID) (fleet.Principal, error) {
	row, err := s.q.PrincipalByTokenID(ctx, tokenID)
	if errors.Is(err, pgx.ErrNoRows) {
		return fleet.Principal{}, fleet.ErrUnauthenticated
	}
	if err != nil {
		return fleet.Principal{}, fmt.Errorf("principal of token %s: %w", tokenID, err)
	}
	return fleet.Principal{AccountID: row.AccountID, AccountName: row.AccountName, TokenID: row.TokenID, TokenName: row.TokenName}, nil
}
