// Package forwards is the controller's forwards service: every change to
// what routers and edges must hold goes through it. It sits between the
// callers (the API, the web views, the hub and the expiry clock) and the
// store: it checks that a principal may touch a router, runs each change in
// one transaction whose locks follow the store's lock order, records it in
// the audit log and publishes it to every replica; it turns agents' and
// edges' reports into forward states, and builds the sets they are sent.
//
// It may import controller/fleet, controller/store and shared/; it must not
// import the API, the web views or the hub (they import it), nor the sqlc
// code (controller/store/db), which only the store uses.
package forwards

import (
	"context"
	"time"

	"github.com/tpf-dev/tpf/controller/store"
)

// Service is the forwards service. Its zero value is not usable; call New.
// Its methods are safe for concurrent use.
type Service struct {
	st *store.Store
}

// New returns the service over st.
func New(st *store.Store) *Service {
	return &Service{st: st}
}

// Listen follows the changes every replica publishes, calling each for every
// one, until ctx ends or the database link fails; see store.Store.Listen.
func (s *Service) Listen(ctx context.Context, listening func(), each func(store.Change)) error {
	return s.st.Listen(ctx, listening, each)
}

// NextExpiry returns when the next live forward expires; ok is false when
// none is live.
func (s *Service) NextExpiry(ctx context.Context) (time.Time, bool, error) {
	return s.st.NextExpiry(ctx)
}

// ReleasePorts frees the ports of forwards that ended at or before cutoff
// without their router confirming the removal, and returns how many.
func (s *Service) ReleasePorts(ctx context.Context, cutoff, now time.Time) (int64, error) {
	return s.st.ReleasePorts(ctx, cutoff, now)
}
