package store

// The flows below move to package forwards; the API and the web views still
// call them here until they switch.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
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

// lockRouter locks one of the account's routers and its region, the first
// steps of the lock order for a write to the router's desired set; a
// router that does not exist, is another account's or was deleted is
// fleet.ErrNotFound.
func lockRouter(ctx context.Context, q *db.Queries, account, id uuid.UUID) (db.Router, db.Region, error) {
	row, err := q.LockRouter(ctx, db.LockRouterParams{ID: id, AccountID: account})
	if err != nil {
		return db.Router{}, db.Region{}, fmt.Errorf("router %s: %w", id, notFound(err))
	}
	return row.Router, row.Region, nil
}

// DeleteRouter removes one of the account's routers after ending its live
// forwards; their ports are released by the grace period, since the router
// will no longer confirm anything.
func (s *Store) DeleteRouter(ctx context.Context, p fleet.Principal, id uuid.UUID, now time.Time) error {
	err := s.inTx(ctx, func(q *db.Queries) error {
		router, region, err := lockRouter(ctx, q, p.AccountID, id)
		if err != nil {
			return err
		}
		if _, err := q.DeleteRouter(ctx, db.DeleteRouterParams{ID: id, AccountID: p.AccountID, Now: now}); err != nil {
			return err
		}
		ended, err := q.EndRouterForwards(ctx, db.EndRouterForwardsParams{Now: now, RevokedBy: &p.TokenID, RouterID: id})
		if err != nil {
			return err
		}
		var revoked []auditEvent
		for _, f := range ended {
			if f.RevokedAt != nil {
				revoked = append(revoked, auditEvent{p.AccountID, f.ID, map[string]any{"router_id": id, "reason": "router deleted"}})
			}
		}
		if err := auditAll(ctx, q, now, p.Actor(), fleet.ActionForwardRevoke, revoked); err != nil {
			return err
		}
		if err := audit(ctx, q, now, p.AccountID, p.Actor(), fleet.ActionRouterDelete, id, map[string]any{
			"name": router.Name, "forwards_ended": len(ended),
		}); err != nil {
			return err
		}
		return publish(ctx, q, Change{RouterID: id, Region: region.ID})
	})
	if err != nil {
		return fmt.Errorf("delete router %s: %w", id, err)
	}
	return nil
}

// ExpireDue ends up to limit forwards whose expiry is at or before now, and
// returns how many it ended. It locks the routers of the due forwards that
// no other transaction holds, then their regions, then the forwards (the
// lock order); forwards of routers held elsewhere — by a request, or by
// another replica's expiry clock — are left for the next round.
func (s *Store) ExpireDue(ctx context.Context, now time.Time, limit int) (int, error) {
	var n int
	err := s.inTx(ctx, func(q *db.Queries) error {
		n = 0
		due, err := q.DueForwards(ctx, db.DueForwardsParams{Now: now, MaxRows: int32(limit)})
		if err != nil || len(due) == 0 {
			return err
		}
		routers := make([]uuid.UUID, 0, len(due))
		for _, d := range due {
			routers = append(routers, d.RouterID)
		}
		locked, err := q.LockRoutersSkipLocked(ctx, sortedUnique(routers))
		if err != nil || len(locked) == 0 {
			return err
		}
		var ids []uuid.UUID
		var regions []string
		for _, d := range due {
			if _, ok := slices.BinarySearchFunc(locked, d.RouterID, compareUUID); ok {
				ids = append(ids, d.ID)
				regions = append(regions, d.RegionID)
			}
		}
		slices.Sort(regions)
		if err := q.LockRegions(ctx, slices.Compact(regions)); err != nil {
			return err
		}
		rows, err := q.ExpireForwards(ctx, db.ExpireForwardsParams{Now: now, Ids: ids})
		if err != nil {
			return err
		}
		n = len(rows)
		events := make([]auditEvent, len(rows))
		var changes []Change
		for i, r := range rows {
			events[i] = auditEvent{r.AccountID, r.ID, map[string]any{"router_id": r.RouterID, "expires_at": r.ExpiresAt}}
			c := Change{RouterID: r.RouterID, Region: r.RegionID}
			if !slices.Contains(changes, c) {
				changes = append(changes, c)
			}
		}
		if err := auditAll(ctx, q, now, fleet.ActorExpiry, fleet.ActionForwardExpire, events); err != nil {
			return err
		}
		if len(changes) == 0 {
			return nil
		}
		return publish(ctx, q, changes...)
	})
	if err != nil {
		return 0, fmt.Errorf("expire forwards: %w", err)
	}
	return n, nil
}

// sortedUnique sorts ids and drops repeats.
func sortedUnique(ids []uuid.UUID) []uuid.UUID {
	slices.SortFunc(ids, compareUUID)
	return slices.Compact(ids)
}

// compareUUID orders UUIDs as PostgreSQL does (bytewise).
func compareUUID(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }

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
