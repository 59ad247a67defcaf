package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tpf-dev/tpf/controller/store/db"
)

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
