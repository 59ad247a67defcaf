package expiry_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/expiry"
	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/controller/store/storetest"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func setup(t *testing.T) (*store.Store, fleet.Principal, fleet.Router) {
	t.Helper()
	f := storetest.NewFleet(t, t0)
	return f.Store, f.Principal, f.Router
}

func create(t *testing.T, st *store.Store, p fleet.Principal, r fleet.Router, d time.Duration) fleet.Forward {
	t.Helper()
	return (&storetest.Fleet{Store: st, Service: forwards.New(st), Principal: p, Router: r}).Forward(t, d, t0)
}

func TestTickEndsDueForwardsAndReleasesPortsAfterGrace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, p, r := setup(t)
	short := create(t, st, p, r, 10*time.Minute)
	long := create(t, st, p, r, time.Hour)
	clock := &fakeClock{t: t0.Add(10*time.Minute - time.Second)}
	c := expiry.New(forwards.New(st), expiry.Config{Now: clock.Now, PortGrace: 5 * time.Minute})

	if ended, released, err := c.Tick(ctx); err != nil || ended != 0 || released != 0 {
		t.Fatalf("a second early: got %d ended, %d released, %v; want nothing", ended, released, err)
	}
	clock.Set(short.ExpiresAt)
	if ended, _, err := c.Tick(ctx); err != nil || ended != 1 {
		t.Fatalf("at expiry: got %d ended, %v; want 1", ended, err)
	}
	got, err := st.Forward(ctx, p.AccountID, r.ID, short.ID)
	if err != nil || got.EndedAt == nil || !got.EndedAt.Equal(short.ExpiresAt) || got.StatusAt(clock.Now()) != fleet.StatusRemoving {
		t.Errorf("expired forward: got ended %v status %s, %v; want ended at expiry, removing", got.EndedAt, got.StatusAt(clock.Now()), err)
	}
	if got.RevokedAt != nil {
		t.Error("an expired forward reads as revoked")
	}
	if ended, _, _ := c.Tick(ctx); ended != 0 {
		t.Errorf("second tick: got %d ended, want 0", ended)
	}
	clock.Set(short.ExpiresAt.Add(5*time.Minute - time.Second))
	if _, released, _ := c.Tick(ctx); released != 0 {
		t.Errorf("inside the grace period: got %d released, want 0", released)
	}
	clock.Set(short.ExpiresAt.Add(5 * time.Minute))
	if _, released, _ := c.Tick(ctx); released != 1 {
		t.Errorf("after the grace period: got %d released, want 1", released)
	}
	if got, _ := st.Forward(ctx, p.AccountID, r.ID, long.ID); got.EndedAt != nil {
		t.Error("the hour-long forward ended early")
	}
}

// TestClockRunsOnItsOwn checks the background loop ends a forward with no
// request made.
func TestClockRunsOnItsOwn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, p, r := setup(t)
	f := create(t, st, p, r, 10*time.Minute)
	clock := &fakeClock{t: t0}
	c := expiry.New(forwards.New(st), expiry.Config{Now: clock.Now, Interval: 20 * time.Millisecond})
	c.Start(ctx)
	t.Cleanup(c.Stop)

	clock.Set(f.ExpiresAt)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := st.Forward(ctx, p.AccountID, r.ID, f.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.EndedAt != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the clock did not end the forward within 10s")
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
	c.Stop()
	c.Stop() // safe twice
}
