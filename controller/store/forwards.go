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
	row, err := s.q.GetForward(ctx, db.GetForwardParams{ID: id, RouterID: router, AccountID: account, IsAccess: false})
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
// account's router (not its region, see the lock order), takes the first
// free of the candidate ports (each offset modulo the size of the region's
// range), records the audit event as actor's and publishes the change. ok is
// false when it made nothing — the router is not the account's, or every
// candidate is taken — and the caller takes the longer way (package
// forwards), which tells the two apart.
func (s *Store) CreateForwardAtOnce(ctx context.Context, p fleet.Principal, router uuid.UUID, nf fleet.NewForward, offsets []int32, now time.Time) (f fleet.Forward, ok bool, err error) {
	row, ok, err := s.createAtOnce(ctx, db.CreateForwardAtOnceParams{
		PortOffsets: offsets, RouterID: router, AccountID: p.AccountID,
		DstAddress: &nf.DstAddress, DstPort: int32(nf.DstPort), AllowCidr: nf.AllowFrom, Masquerade: nf.Masquerade,
		CreatedAt: now, ExpiresAt: now.Add(nf.Duration), CreatedBy: &p.TokenID, Actor: p.Actor(), Action: fleet.ActionForwardCreate,
		Kind: kindForward,
	})
	if !ok || err != nil {
		return fleet.Forward{}, false, err
	}
	return atOnceForward(row), true, nil
}

// CreateAccessAtOnce is CreateForwardAtOnce for an access to the router's
// service na.Service with login: the forward goes to the router's own
// tunnel address on the service's default port. The audit event does not
// hold the password.
func (s *Store) CreateAccessAtOnce(ctx context.Context, p fleet.Principal, router uuid.UUID, na fleet.NewAccess, login AccessLogin, offsets []int32, now time.Time) (a fleet.Access, ok bool, err error) {
	row, ok, err := s.createAtOnce(ctx, db.CreateForwardAtOnceParams{
		PortOffsets: offsets, RouterID: router, AccountID: p.AccountID,
		DstPort: int32(fleet.DefaultServicePort(na.Service)), AllowCidr: na.AllowFrom,
		CreatedAt: now, ExpiresAt: now.Add(na.Duration), CreatedBy: &p.TokenID, Actor: p.Actor(), Action: fleet.ActionAccessCreate,
		Kind: na.Service, AccessUsername: login.Username, AccessPassword: &login.Password, AccessReadOnly: na.ReadOnly,
	})
	if !ok || err != nil {
		return fleet.Access{}, false, err
	}
	return fleet.Access{Forward: atOnceForward(row), Service: row.Kind, Username: row.AccessUsername, ReadOnly: row.AccessReadOnly}, true, nil
}

// createAtOnce runs the one-statement create; ok is false when it made
// nothing.
func (s *Store) createAtOnce(ctx context.Context, arg db.CreateForwardAtOnceParams) (row db.CreateForwardAtOnceRow, ok bool, err error) {
	arg.Channel = ChangesChannel
	err = s.retry(ctx, func() (err error) {
		row, err = s.q.CreateForwardAtOnce(ctx, arg)
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return row, false, nil
	}
	if err != nil {
		return row, false, fmt.Errorf("create %s: %w", kindNoun(arg.Kind), err)
	}
	return row, true, nil
}

// atOnceForward is the forward CreateForwardAtOnce made.
func atOnceForward(row db.CreateForwardAtOnceRow) fleet.Forward {
	f := toForward(db.Forward{
		ID: row.ID, RouterID: row.RouterID, RegionID: row.RegionID, Port: row.Port, DstAddress: row.DstAddress,
		DstPort: row.DstPort, AllowCidr: row.AllowCidr, Masquerade: row.Masquerade, Status: row.Status,
		CreatedAt: row.CreatedAt, ExpiresAt: row.ExpiresAt, CreatedBy: row.CreatedBy, RevokedAt: row.RevokedAt,
		RevokedBy: row.RevokedBy, EndedAt: row.EndedAt, PortReleasedAt: row.PortReleasedAt, RouterError: row.RouterError,
		RuleConfirmedAt: row.RuleConfirmedAt, ListenerConfirmedAt: row.ListenerConfirmedAt, EdgeError: row.EdgeError,
	}, row.EntryPoint, 0)
	return withTunnel(f, row.TunnelManaged, row.TunnelHandshakeAt, row.TunnelError)
}
