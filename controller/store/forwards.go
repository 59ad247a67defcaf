package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store/db"
)

// portTries is how many random ports CreateForward tries before it scans the
// whole range for a free one; random picks keep ports unpredictable and make
// concurrent creates rarely collide.
const portTries = 8

// CreateForward creates a forward on one of the principal's routers, taking
// a free port of the router's region. The router is checked and locked in
// the same transaction, so a router deleted a moment earlier gets no
// forward. It returns fleet.ErrNotFound for a router that is not the
// principal's (or no longer exists) and fleet.ErrPortsExhausted when the
// region has no port left.
func (s *Store) CreateForward(ctx context.Context, p fleet.Principal, router uuid.UUID, nf fleet.NewForward, now time.Time) (fleet.Forward, error) {
	var f fleet.Forward
	err := s.inTx(ctx, func(q *db.Queries) error {
		_, region, err := lockRouter(ctx, q, p.AccountID, router)
		if err != nil {
			return err
		}
		params := db.InsertForwardParams{
			RouterID: router, RegionID: region.ID, DstAddress: nf.DstAddress, DstPort: int32(nf.DstPort),
			AllowCidr: nf.AllowFrom, Masquerade: nf.Masquerade, CreatedAt: now,
			ExpiresAt: now.Add(nf.Duration), CreatedBy: &p.TokenID,
		}
		row, err := insertForward(ctx, q, region, params)
		if err != nil {
			return err
		}
		if err := audit(ctx, q, now, p.AccountID, p.Actor(), fleet.ActionForwardCreate, row.ID, map[string]any{
			"router_id": router, "port": row.Port, "dst_address": nf.DstAddress.String(),
			"dst_port": nf.DstPort, "allow_from": nf.AllowFrom.String(), "expires_at": params.ExpiresAt,
			"masquerade": nf.Masquerade,
		}); err != nil {
			return err
		}
		if err := publish(ctx, q, Change{RouterID: router, Region: region.ID}); err != nil {
			return err
		}
		f = toForward(row, region.EntryPoint, 0)
		return nil
	})
	if err != nil {
		return fleet.Forward{}, fmt.Errorf("create forward: %w", err)
	}
	return f, nil
}

// insertForward inserts the forward on a free port: a few random picks first,
// then a scan of the range. The partial unique index on held ports is what
// makes concurrent creates safe; a pick that loses a race inserts nothing.
func insertForward(ctx context.Context, q *db.Queries, region db.Region, params db.InsertForwardParams) (db.Forward, error) {
	span := int(region.PortMax-region.PortMin) + 1
	for range portTries {
		params.Port = region.PortMin + int32(rand.IntN(span))
		row, err := q.InsertForward(ctx, params)
		if !errors.Is(err, pgx.ErrNoRows) {
			return row, err
		}
	}
	for {
		port, err := q.FreePort(ctx, db.FreePortParams{
			PortMin: region.PortMin, PortMax: region.PortMax, RegionID: region.ID, RouterID: params.RouterID,
		})
		if errors.Is(err, pgx.ErrNoRows) {
			return db.Forward{}, fmt.Errorf("region %q: %w", region.ID, fleet.ErrPortsExhausted)
		}
		if err != nil {
			return db.Forward{}, err
		}
		params.Port = port
		row, err := q.InsertForward(ctx, params)
		if !errors.Is(err, pgx.ErrNoRows) {
			return row, err
		}
		// Another create took that port between the scan and the insert.
	}
}

// Forward returns one forward of one of the account's routers.
func (s *Store) Forward(ctx context.Context, account, router, id uuid.UUID) (fleet.Forward, error) {
	row, err := s.q.GetForward(ctx, db.GetForwardParams{ID: id, RouterID: router, AccountID: account})
	if err != nil {
		return fleet.Forward{}, fmt.Errorf("forward %s: %w", id, notFound(err))
	}
	return toForward(row.Forward, row.EntryPoint, row.ConnectionsActive), nil
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
		out[i] = toForward(r.Forward, r.EntryPoint, r.ConnectionsActive)
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
		out[i] = toForward(r.Forward, r.EntryPoint, r.ConnectionsActive)
	}
	return out, nil
}

// RevokeForward ends a forward early. Revoking a forward that already ended
// (revoked or expired) changes nothing and is not an error; one that does
// not exist, or whose router is not the principal's, is fleet.ErrNotFound.
func (s *Store) RevokeForward(ctx context.Context, p fleet.Principal, router, id uuid.UUID, now time.Time) error {
	err := s.inTx(ctx, func(q *db.Queries) error {
		_, region, err := lockRouter(ctx, q, p.AccountID, router)
		if err != nil {
			return err
		}
		_, err = q.RevokeForward(ctx, db.RevokeForwardParams{Now: now, RevokedBy: &p.TokenID, ID: id, RouterID: router})
		if errors.Is(err, pgx.ErrNoRows) {
			exists, err := q.ForwardExists(ctx, db.ForwardExistsParams{ID: id, RouterID: router})
			if err == nil && !exists {
				err = fleet.ErrNotFound
			}
			return err // nil: it ended already
		}
		if err != nil {
			return err
		}
		if err := audit(ctx, q, now, p.AccountID, p.Actor(), fleet.ActionForwardRevoke, id, map[string]any{"router_id": router}); err != nil {
			return err
		}
		return publish(ctx, q, Change{RouterID: router, Region: region.ID})
	})
	if err != nil {
		return fmt.Errorf("revoke forward %s: %w", id, err)
	}
	return nil
}
