package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store/db"
)

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

// NextExpiry returns when the next live forward expires; ok is false when
// none is live.
func (s *Store) NextExpiry(ctx context.Context) (next time.Time, ok bool, err error) {
	next, err = s.q.NextExpiry(ctx)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next expiry: %w", err)
	}
	return next, true, nil
}

// ReleasePorts frees the ports of forwards that ended at or before cutoff
// without their router confirming the removal, and returns how many it freed.
func (s *Store) ReleasePorts(ctx context.Context, cutoff, now time.Time) (int64, error) {
	var n int64
	err := s.retry(ctx, func() (err error) {
		n, err = s.q.ReleasePorts(ctx, db.ReleasePortsParams{Now: now, Cutoff: cutoff})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("release ports: %w", err)
	}
	return n, nil
}
