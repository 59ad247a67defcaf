package forwards

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store"
)

// ExpireDue ends up to limit forwards and accesses whose expiry is at or
// before now, and returns how many it ended (audited as forward.expire and
// access.expire). It locks the routers of the due forwards that
// no other transaction holds, then the forwards (the lock order); forwards of routers held elsewhere — by a request, or by
// another replica's expiry clock — are left for the next round.
func (s *Service) ExpireDue(ctx context.Context, now time.Time, limit int) (int, error) {
	var n int
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		n = 0
		due, err := tx.DueForwards(ctx, now, limit)
		if err != nil || len(due) == 0 {
			return err
		}
		routers := make([]uuid.UUID, len(due))
		for i, d := range due {
			routers[i] = d.Router
		}
		slices.SortFunc(routers, compareUUID)
		locked, err := tx.LockRoutersSkipLocked(ctx, slices.Compact(routers))
		if err != nil || len(locked) == 0 {
			return err
		}
		var ids []uuid.UUID
		for _, d := range due {
			if _, ok := slices.BinarySearchFunc(locked, d.Router, compareUUID); ok {
				ids = append(ids, d.ID)
			}
		}
		expired, err := tx.ExpireForwards(ctx, ids, now)
		if err != nil {
			return err
		}
		n = len(expired)
		var forwards, accesses []store.AuditEvent
		var changes []store.Change
		for _, f := range expired {
			e := store.AuditEvent{Account: f.Account, Subject: f.ID,
				Detail: map[string]any{"router_id": f.Router, "expires_at": f.ExpiresAt}}
			if f.Access {
				accesses = append(accesses, e)
			} else {
				forwards = append(forwards, e)
			}
			if c := (store.Change{RouterID: f.Router, Region: f.Region}); !slices.Contains(changes, c) {
				changes = append(changes, c)
			}
		}
		if err := tx.Audit(ctx, now, fleet.ActorExpiry, fleet.ActionForwardExpire, forwards...); err != nil {
			return err
		}
		if err := tx.Audit(ctx, now, fleet.ActorExpiry, fleet.ActionAccessExpire, accesses...); err != nil {
			return err
		}
		if len(changes) == 0 {
			return nil
		}
		return tx.Publish(ctx, changes...)
	})
	if err != nil {
		return 0, fmt.Errorf("expire forwards: %w", err)
	}
	return n, nil
}

// compareUUID orders UUIDs as PostgreSQL does (bytewise).
func compareUUID(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }
