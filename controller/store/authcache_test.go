package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/controller/store/storetest"
)

// cacheClock is the clock of the authentication cache under test.
type cacheClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *cacheClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *cacheClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// listen runs a change listener on st, as the hub does, until the test
// ends, and returns once it stands.
func listen(t *testing.T, st *store.Store) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	standing, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		st.Listen(ctx, func() { close(standing) }, func(store.Change) {})
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-standing:
	case <-time.After(10 * time.Second):
		t.Fatal("the change listener did not start")
	}
}

// revokeQuietly revokes an API token in the database without announcing
// it: a lost notification.
func revokeQuietly(t *testing.T, pool *pgxpool.Pool, token uuid.UUID) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), `update api_tokens set revoked_at = now() where id = $1`, token); err != nil {
		t.Fatal(err)
	}
}

func authenticates(t *testing.T, st *store.Store, secret string) bool {
	t.Helper()
	_, err := st.Authenticate(context.Background(), secret)
	if err != nil && !errors.Is(err, fleet.ErrUnauthenticated) {
		t.Fatal(err)
	}
	return err == nil
}

// TestAuthCache: a token found is remembered while a change listener
// stands; a revoke ends that at once on the replica that made it and, by
// its announcement, on the others; a lost announcement within the TTL.
func TestAuthCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const ttl = 5 * time.Second
	clock := &cacheClock{t: tokensT0}
	pool := storetest.New(t)
	a := store.NewWithConfig(pool, store.Config{AuthCacheTTL: ttl, Now: clock.Now})
	b := store.NewWithConfig(storetest.Reopen(t, pool), store.Config{AuthCacheTTL: ttl, Now: clock.Now})
	acc, _, err := a.CreateAccount(ctx, "acme", tokensT0)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(name string) (uuid.UUID, string) {
		t.Helper()
		tok, secret, err := a.IssueToken(ctx, acc.ID, fleet.ActorAdmin, name, tokensT0)
		if err != nil {
			t.Fatal(err)
		}
		return tok.ID, secret
	}

	// Without a listener nothing is remembered.
	id, secret := issue("unheard")
	if !authenticates(t, a, secret) {
		t.Fatal("a fresh token: got 401")
	}
	revokeQuietly(t, pool, id)
	if authenticates(t, a, secret) {
		t.Error("revoked without a listener: the token still works")
	}

	listen(t, a)
	listen(t, b)

	// A lost announcement: the token works until the TTL has passed.
	id, secret = issue("lost")
	if !authenticates(t, a, secret) {
		t.Fatal("a fresh token: got 401")
	}
	revokeQuietly(t, pool, id)
	if !authenticates(t, a, secret) {
		t.Error("revoked quietly: the token stopped working before the TTL, so it was not remembered")
	}
	clock.Advance(ttl)
	if authenticates(t, a, secret) {
		t.Errorf("revoked quietly: the token still works after the TTL (%s)", ttl)
	}

	// Revoked here: at once.
	id, secret = issue("here")
	if !authenticates(t, a, secret) {
		t.Fatal("a fresh token: got 401")
	}
	if _, _, err := a.RevokeToken(ctx, acc.ID, fleet.ActorAdmin, id, tokensT0); err != nil {
		t.Fatal(err)
	}
	if authenticates(t, a, secret) {
		t.Error("revoked on this replica: the token still works")
	}

	// Revoked on another replica: as soon as the announcement arrives,
	// the clock standing still.
	id, secret = issue("there")
	if !authenticates(t, a, secret) {
		t.Fatal("a fresh token: got 401")
	}
	if _, _, err := b.RevokeToken(ctx, acc.ID, fleet.ActorAdmin, id, tokensT0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for authenticates(t, a, secret) {
		if time.Now().After(deadline) {
			t.Fatal("revoked on another replica: the token still works")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
