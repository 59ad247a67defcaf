package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/api"
	"github.com/tpf-dev/tpf/controller/apijson"
	"github.com/tpf-dev/tpf/controller/store"
)

// listenForChanges runs a change listener on st until the test ends, as the
// hub does in serve (so that API tokens are remembered, see
// store.Authenticate), and returns once it stands.
func listenForChanges(t testing.TB, st *store.Store) {
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

// TestRevokeWithRememberedToken: with tokens remembered, as in serve, a
// revoked token is refused at the very next request.
func TestRevokeWithRememberedToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	listenForChanges(t, e.store)
	res := e.do("POST", "/api/tokens", e.token, map[string]any{"name": "ci"})
	if res.status != http.StatusCreated {
		t.Fatalf("create: got %d %s, want 201", res.status, res.body)
	}
	ci := decode[apijson.CreatedToken](t, res.body)
	for range 2 { // the second one from memory
		if res := e.do("GET", "/api/routers", ci.Token, nil); res.status != http.StatusOK {
			t.Fatalf("the new token: got %d, want 200", res.status)
		}
	}
	if res := e.do("DELETE", "/api/tokens/"+ci.ID, ci.Token, nil); res.status != http.StatusNoContent {
		t.Fatalf("revoke: got %d %s, want 204", res.status, res.body)
	}
	if res := e.do("GET", "/api/routers", ci.Token, nil); res.status != http.StatusUnauthorized {
		t.Errorf("the revoked token: got %d, want 401", res.status)
	}
}
