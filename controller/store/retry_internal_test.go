package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestRetry(t *testing.T) {
	ctx := context.Background()
	s := &Store{}
	for _, code := range []string{"40001", "40P01", "55P03"} {
		runs := 0
		err := s.retry(ctx, func() error {
			if runs++; runs < 3 {
				return &pgconn.PgError{Code: code}
			}
			return nil
		})
		if err != nil || runs != 3 {
			t.Errorf("%s: got %v after %d runs, want success after 3", code, err, runs)
		}
	}
	if got := s.Retries(); got != 6 {
		t.Errorf("retries counted: got %d, want 6", got)
	}
	// A failure a retry cannot cure is returned at once.
	runs := 0
	unique := &pgconn.PgError{Code: "23505"}
	if err := s.retry(ctx, func() error { runs++; return unique }); !errors.Is(err, unique) || runs != 1 {
		t.Errorf("unique violation: got %v after %d runs, want it after 1", err, runs)
	}
	// Retries are bounded.
	runs = 0
	start := time.Now()
	deadlock := &pgconn.PgError{Code: "40P01"}
	if err := s.retry(ctx, func() error { runs++; return deadlock }); !errors.Is(err, deadlock) || runs != maxAttempts {
		t.Errorf("lasting deadlock: got %v after %d runs, want it after %d", err, runs, maxAttempts)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("bounded backoff took %s", d)
	}
}
