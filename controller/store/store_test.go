package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/controller/store/storetest"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestMigrateFromEmptyDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := storetest.New(t)
	// Start from nothing: drop what the template brought.
	if _, err := pool.Exec(ctx, "drop schema public cascade; create schema public"); err != nil {
		t.Fatal(err)
	}
	pending, err := store.PendingMigrations(ctx, pool)
	if err != nil || len(pending) == 0 || pending[0] != "0001_init" {
		t.Fatalf("pending on an empty database: got %v, %v, want [0001_init …]", pending, err)
	}
	applied, err := store.Migrate(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != len(pending) {
		t.Errorf("applied: got %v, want %v", applied, pending)
	}
	again, err := store.Migrate(ctx, pool)
	if err != nil || len(again) != 0 {
		t.Errorf("second migrate: got %v, %v, want nothing applied", again, err)
	}
	if pending, _ := store.PendingMigrations(ctx, pool); len(pending) != 0 {
		t.Errorf("pending after migrate: got %v, want none", pending)
	}
	// The schema works: an account can be made.
	if _, _, err := store.New(pool).CreateAccount(ctx, "x", t0); err != nil {
		t.Errorf("create account on migrated schema: %v", err)
	}
}

func TestConcurrentMigrations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := storetest.New(t)
	if _, err := pool.Exec(ctx, "drop schema public cascade; create schema public"); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	for range 4 {
		go func() { _, err := store.Migrate(ctx, pool); errs <- err }()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent migrate: %v", err)
		}
	}
}

// fixture is an account with a router in a region.
type fixture struct {
	st     *store.Store
	pool   *pgxpool.Pool
	p      fleet.Principal
	router fleet.Router
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	f := storetest.NewFleet(t, t0)
	return fixture{st: f.Store, pool: f.Pool, p: f.Principal, router: f.Router}
}

func (f fixture) newForward(t *testing.T, d time.Duration, at time.Time) fleet.Forward {
	t.Helper()
	return (&storetest.Fleet{Store: f.st, Service: forwards.New(f.st), Principal: f.p, Router: f.router}).Forward(t, d, at)
}

func TestTokensAreStoredHashed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	secret, err := f.st.CreateToken(ctx, "acme", "second", t0)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := f.pool.QueryRow(ctx, "select count(*) from api_tokens where position($1::bytea in token_hash) > 0", []byte(secret)).Scan(&n); err != nil || n != 0 {
		t.Errorf("a token's secret is stored in clear (%d rows, %v)", n, err)
	}
	p, err := f.st.Authenticate(ctx, secret)
	if err != nil || p.AccountName != "acme" || p.TokenName != "second" {
		t.Errorf("authenticate second token: got %+v, %v", p, err)
	}
	if _, err := f.st.Authenticate(ctx, secret+"x"); !errors.Is(err, fleet.ErrUnauthenticated) {
		t.Errorf("wrong secret: got %v, want ErrUnauthenticated", err)
	}
}

func TestChangesArePublished(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := newFixture(t)
	listening := make(chan struct{})
	changes := make(chan store.Change, 10)
	go f.st.Listen(ctx, func() { close(listening) }, func(c store.Change) { changes <- c })
	<-listening
	want := store.Change{RouterID: f.router.ID, Region: "eu1"}
	revision := int64(0)
	expect := func(what string) {
		t.Helper()
		select {
		case got := <-changes:
			if got != want {
				t.Errorf("%s: got %+v, want %+v", what, got, want)
			}
		case <-ctx.Done():
			t.Fatalf("%s: no notification", what)
		}
		// Each change bumps the router's revision.
		r, err := f.st.Router(ctx, f.p.AccountID, f.router.ID)
		if err != nil {
			t.Fatal(err)
		}
		if revision++; r.Revision != revision {
			t.Errorf("%s: revision %d, want %d", what, r.Revision, revision)
		}
	}
	fw := f.newForward(t, time.Hour, t0)
	expect("create")
	if err := forwards.New(f.st).RevokeForward(ctx, f.p, f.router.ID, fw.ID, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	expect("revoke")
	f.newForward(t, 10*time.Minute, t0)
	expect("create")
	if n, err := forwards.New(f.st).ExpireDue(ctx, t0.Add(10*time.Minute), 100); err != nil || n != 1 {
		t.Fatalf("expire: got %d, %v, want 1", n, err)
	}
	expect("expire")
}

func TestExpireDueEndsEachForwardOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	const n = 50
	for i := range n {
		f.newForward(t, time.Duration(10+i%3)*time.Minute, t0)
	}
	live := f.newForward(t, time.Hour, t0)
	// Several replicas run their clocks at once; each forward ends once. A
	// round that finds the router held by another replica ends nothing, so
	// each clock goes on until nothing is due.
	now := t0.Add(12 * time.Minute)
	deadline := time.Now().Add(10 * time.Second)
	counts := make(chan int, 4)
	for range 4 {
		go func() {
			total := 0
			for time.Now().Before(deadline) {
				k, err := forwards.New(f.st).ExpireDue(ctx, now, 7)
				if err != nil {
					t.Error(err)
				}
				total += k
				if next, ok, err := f.st.NextExpiry(ctx); err != nil || !ok || next.After(now) {
					break
				}
			}
			counts <- total
		}()
	}
	total := 0
	for range 4 {
		total += <-counts
	}
	if total != n {
		t.Errorf("ended: got %d, want %d", total, n)
	}
	var events int
	if err := f.pool.QueryRow(ctx, "select count(*) from audit_events where action = $1", fleet.ActionForwardExpire).Scan(&events); err != nil || events != n {
		t.Errorf("expire audit events: got %d, %v, want %d", events, err, n)
	}
	got, err := f.st.Forward(ctx, f.p.AccountID, f.router.ID, live.ID)
	if err != nil || got.EndedAt != nil || got.StatusAt(now) != fleet.StatusPending {
		t.Errorf("unexpired forward: got ended %v status %s, want still pending", got.EndedAt, got.StatusAt(now))
	}
	next, ok, err := f.st.NextExpiry(ctx)
	if err != nil || !ok || !next.Equal(live.ExpiresAt) {
		t.Errorf("next expiry: got %v %v %v, want %v", next, ok, err, live.ExpiresAt)
	}
}

func TestDeleteRouterEndsItsForwards(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	running := f.newForward(t, time.Hour, t0)
	lapsed := f.newForward(t, 10*time.Minute, t0) // expired, clock has not run yet
	now := t0.Add(20 * time.Minute)
	if err := forwards.New(f.st).DeleteRouter(ctx, f.p, f.router.ID, now); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Router(ctx, f.p.AccountID, f.router.ID); !isNotFound(err) {
		t.Errorf("deleted router: got %v, want not found", err)
	}
	if err := forwards.New(f.st).DeleteRouter(ctx, f.p, f.router.ID, now); !isNotFound(err) {
		t.Errorf("second delete: got %v, want not found", err)
	}
	var revoked, ended int
	err := f.pool.QueryRow(ctx, `select count(*) filter (where revoked_at is not null), count(*) filter (where ended_at is not null) from forwards`).Scan(&revoked, &ended)
	if err != nil || revoked != 1 || ended != 2 {
		t.Errorf("got %d revoked and %d ended, %v; want the running one revoked and both ended", revoked, ended, err)
	}
	var endedAt time.Time
	if err := f.pool.QueryRow(ctx, "select ended_at from forwards where id = $1", lapsed.ID).Scan(&endedAt); err != nil || !endedAt.Equal(lapsed.ExpiresAt) {
		t.Errorf("lapsed forward ended at %v, want its expiry %v", endedAt, lapsed.ExpiresAt)
	}
	var revokedAt *time.Time
	if err := f.pool.QueryRow(ctx, "select revoked_at from forwards where id = $1", running.ID).Scan(&revokedAt); err != nil || revokedAt == nil || !revokedAt.Equal(now) {
		t.Errorf("running forward: revoked at %v, %v; want %v", revokedAt, err, now)
	}
}

func TestAuditLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	fw := f.newForward(t, time.Hour, t0)
	if err := forwards.New(f.st).RevokeForward(ctx, f.p, f.router.ID, fw.ID, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	events, err := f.st.AuditEvents(ctx, f.p.AccountID, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range events {
		actions = append(actions, e.Action)
		if e.Actor != f.p.Actor() {
			t.Errorf("%s: actor %q, want %q", e.Action, e.Actor, f.p.Actor())
		}
	}
	want := []string{fleet.ActionForwardRevoke, fleet.ActionForwardCreate, fleet.ActionRouterCreate}
	if len(actions) != len(want) || actions[0] != want[0] || actions[1] != want[1] || actions[2] != want[2] {
		t.Errorf("actions: got %v, want %v", actions, want)
	}
	if events[0].SubjectID != fw.ID || !events[0].At.Equal(t0.Add(time.Minute)) {
		t.Errorf("revoke event: got subject %s at %v, want %s at %v", events[0].SubjectID, events[0].At, fw.ID, t0.Add(time.Minute))
	}
	older, err := f.st.AuditEvents(ctx, f.p.AccountID, events[0].ID, 10)
	if err != nil || len(older) != 2 {
		t.Errorf("page before %d: got %d events, %v, want 2", events[0].ID, len(older), err)
	}
}

func isNotFound(err error) bool { return errors.Is(err, fleet.ErrNotFound) }
