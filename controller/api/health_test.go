package api_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/tpf-dev/tpf/controller/api"
	"github.com/tpf-dev/tpf/controller/apijson"
)

func TestHealthz(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	res := e.do("GET", "/healthz", "", nil)
	if res.status != http.StatusOK || string(res.body) != `{"status":"ok"}`+"\n" {
		t.Errorf("healthz: got %d %s, want 200 {\"status\":\"ok\"}", res.status, res.body)
	}
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	ctx := context.Background()

	if res := e.do("GET", "/readyz", "", nil); res.status != http.StatusOK || decode[apijson.Health](t, res.body).Status != "ok" {
		t.Errorf("ready: got %d %s, want 200 ok", res.status, res.body)
	}

	// A schema behind the code.
	if _, err := e.store.Pool().Exec(ctx, "delete from schema_migrations where version = '0003_edges'"); err != nil {
		t.Fatal(err)
	}
	res := e.do("GET", "/readyz", "", nil)
	got := decode[apijson.Health](t, res.body)
	if res.status != http.StatusServiceUnavailable || got.Status != "unavailable" || !strings.Contains(got.Message, "pending migrations 0003_edges") {
		t.Errorf("pending migration: got %d %s, want 503 naming 0003_edges", res.status, res.body)
	}

	// A database that cannot be reached.
	e.store.Pool().Close()
	res = e.do("GET", "/readyz", "", nil)
	got = decode[apijson.Health](t, res.body)
	if res.status != http.StatusServiceUnavailable || got.Message != "the database is unreachable" {
		t.Errorf("closed pool: got %d %s, want 503 the database is unreachable", res.status, res.body)
	}
	// Liveness does not depend on the database.
	if res := e.do("GET", "/healthz", "", nil); res.status != http.StatusOK {
		t.Errorf("healthz without a database: got %d, want 200", res.status)
	}
}

func TestReadyzCustomCheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{Ready: func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			return errors.New("no deadline")
		}
		return errors.New("draining")
	}})
	res := e.do("GET", "/readyz", "", nil)
	if got := decode[apijson.Health](t, res.body); res.status != http.StatusServiceUnavailable || got.Message != "draining" {
		t.Errorf("custom check: got %d %s, want 503 draining", res.status, res.body)
	}
}
