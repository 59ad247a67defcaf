package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/tpf-dev/tpf/controller/apijson"
	"github.com/tpf-dev/tpf/controller/store"
)

// readyTimeout bounds /readyz: a database slower than this counts as
// unreachable.
const readyTimeout = 2 * time.Second

// handleHealthz answers 200 while the process serves HTTP at all; it checks
// nothing else (a liveness probe).
func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, apijson.Health{Status: "ok"})
	})
}

// handleReadyz answers 200 when Config.Ready (by default: the database
// answers and its schema is current) passes within readyTimeout, else 503
// with what is wrong (a readiness probe).
func (s *server) handleReadyz() http.Handler {
	ready := s.cfg.Ready
	if ready == nil {
		ready = s.databaseReady
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := ready(ctx); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, apijson.Health{Status: "unavailable", Message: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, apijson.Health{Status: "ok"})
	})
}

// databaseReady checks that the database answers and has no pending
// migration. Its errors are safe to show; causes are logged.
func (s *server) databaseReady(ctx context.Context) error {
	pool := s.store.Pool()
	err := pool.Ping(ctx)
	var pending []string
	if err == nil {
		pending, err = store.PendingMigrations(ctx, pool)
	}
	if err != nil {
		s.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "not ready: database",
			slog.String("request_id", requestID(ctx)), slog.String("err", err.Error()))
		if ctx.Err() != nil {
			return fmt.Errorf("the database did not answer within %s", readyTimeout)
		}
		return errors.New("the database is unreachable")
	}
	if len(pending) > 0 {
		return fmt.Errorf("the database schema is behind: pending migrations %s (run tpf-controller migrate)", strings.Join(pending, ", "))
	}
	return nil
}
