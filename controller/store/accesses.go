package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store/db"
)

// Accesses (fleet.Access) are rows of the forwards table whose kind is the
// service they log in to (fleet.ServiceSSH or fleet.ServiceWinbox); a
// forward's kind is kindForward. Every read of forwards names the kind it
// wants, so an access never shows as a forward nor a forward as an access.
//
// The password of an access's user is stored only until the router's agent
// confirms the user (WriteForwardStates clears it in the write that records
// the confirmation) or the access ends, whichever comes first; it is read
// back only into the router's desired set (RouterSet), never by the reads
// here.

// kindForward is the kind of a forwards row that is a forward.
const kindForward = "forward"

// kindNoun names a row of kind in errors.
func kindNoun(kind string) string {
	if kind == kindForward || kind == "" {
		return "forward"
	}
	return "access"
}

// AccessLogin is the RouterOS user an access's agent keeps for it.
type AccessLogin struct {
	Username string
	Password string
}

// Access returns one access of one of the account's routers, without its
// password.
func (s *Store) Access(ctx context.Context, account, router, id uuid.UUID) (fleet.Access, error) {
	row, err := s.q.GetForward(ctx, db.GetForwardParams{ID: id, RouterID: router, AccountID: account, IsAccess: true})
	if err != nil {
		return fleet.Access{}, fmt.Errorf("access %s: %w", id, notFound(err))
	}
	return toAccess(row.Forward, row.EntryPoint, row.ConnectionsActive, row.TunnelManaged, row.TunnelHandshakeAt, row.TunnelError), nil
}

// Accesses lists up to limit accesses of one of the account's routers,
// newest first: all of them, or only those neither ended nor expired at now.
func (s *Store) Accesses(ctx context.Context, account, router uuid.UUID, onlyLive bool, limit int, now time.Time) ([]fleet.Access, error) {
	if _, err := s.Router(ctx, account, router); err != nil {
		return nil, err
	}
	rows, err := s.q.ListAccesses(ctx, db.ListAccessesParams{RouterID: router, OnlyLive: onlyLive, Now: now, MaxRows: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("list accesses: %w", err)
	}
	out := make([]fleet.Access, len(rows))
	for i, r := range rows {
		out[i] = toAccess(r.Forward, r.EntryPoint, r.ConnectionsActive, r.TunnelManaged, r.TunnelHandshakeAt, r.TunnelError)
	}
	return out, nil
}

// AccessConnections lists up to limit connections of one of the account's
// accesses, newest first.
func (s *Store) AccessConnections(ctx context.Context, account, router, access uuid.UUID, limit int) ([]fleet.Connection, error) {
	if _, err := s.Access(ctx, account, router, access); err != nil {
		return nil, err
	}
	rows, err := s.q.ListConnections(ctx, db.ListConnectionsParams{ForwardID: access, MaxRows: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	return toConnections(rows), nil
}

// toAccess is an access read with its region's entry point and its router's
// tunnel; the password is never read into it.
func toAccess(f db.Forward, entryPoint string, connectionsActive int32, managed bool, handshake *time.Time, tunnelErr string) fleet.Access {
	return fleet.Access{
		Forward: withTunnel(toForward(f, entryPoint, connectionsActive), managed, handshake, tunnelErr),
		Service: f.Kind, Username: f.AccessUsername, ReadOnly: f.AccessReadOnly,
	}
}

// DesiredAccess is a live access as its router's agent must hold it.
type DesiredAccess struct {
	ID        uuid.UUID
	Service   string
	Username  string
	ReadOnly  bool
	ExpiresAt time.Time
	// Password is the user's password while it is still stored (until the
	// agent confirmed the user); empty after.
	Password string
}

// AccessCount is how many live accesses to one service a region has.
type AccessCount struct {
	Region   string
	Service  string
	Accesses int64
}

// CountAccesses counts the live accesses at now per region and service,
// for the metrics; pairs without one are absent.
func (s *Store) CountAccesses(ctx context.Context, now time.Time) ([]AccessCount, error) {
	rows, err := s.q.CountAccesses(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("count accesses: %w", err)
	}
	out := make([]AccessCount, len(rows))
	for i, r := range rows {
		out[i] = AccessCount{Region: r.RegionID, Service: r.Service, Accesses: r.Accesses}
	}
	return out, nil
}
