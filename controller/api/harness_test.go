package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/api"
	"github.com/tpf-dev/tpf/controller/apijson"
	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/controller/store/storetest"
)

// fakeClock is a settable clock shared by the API and the test.
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

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// seedNow is the clock reading that makes the seed's sample come out: a
// 120-minute forward created now expires at 2024-06-22T04:33:29+00:00.
var seedNow = time.Date(2024, 6, 22, 2, 33, 29, 0, time.UTC)

// env is one API over its own database, with an account, a region and a
// router ready.
type env struct {
	t      testing.TB
	store  *store.Store
	clock  *fakeClock
	srv    *httptest.Server
	token  string
	router uuid.UUID
	region fleet.Region
}

func newEnv(t testing.TB, cfg api.Config) *env {
	t.Helper()
	st := store.New(storetest.New(t))
	clock := &fakeClock{t: seedNow}
	if cfg.Now == nil {
		cfg.Now = clock.Now
	}
	e := &env{t: t, store: st, clock: clock}
	e.srv = httptest.NewServer(api.NewServer(st, cfg))
	t.Cleanup(e.srv.Close)

	e.region = e.addRegion("us-east1", "us-east1.mkcld.io", 49152, 65535)
	e.token, e.router = e.addAccount("acme")
	return e
}

// svc is the forwards service over the env's store.
func (e *env) svc() *forwards.Service { return forwards.New(e.store) }

func (e *env) addRegion(id, entry string, lo, hi uint16) fleet.Region {
	e.t.Helper()
	r, err := e.store.CreateRegion(context.Background(), fleet.Region{
		ID: id, EntryPoint: entry, Ports: fleet.PortRange{Min: lo, Max: hi},
		EdgeTunnelAddress: netip.MustParseAddr("10.99.0.1"), CreatedAt: seedNow,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// addAccount creates an account with a router in the first region and
// returns the account's token and the router's id.
func (e *env) addAccount(name string) (string, uuid.UUID) {
	e.t.Helper()
	ctx := context.Background()
	_, token, err := e.store.CreateAccount(ctx, name, seedNow)
	if err != nil {
		e.t.Fatal(err)
	}
	p, err := e.store.Authenticate(ctx, token)
	if err != nil {
		e.t.Fatal(err)
	}
	r, _, err := forwards.New(e.store).CreateRouter(ctx, p, forwards.NewRouter{
		Name: name + "-r1", Region: e.region.ID, TunnelAddress: netip.MustParseAddr("10.99.0.2"),
	}, seedNow)
	if err != nil {
		e.t.Fatal(err)
	}
	return token, r.ID
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (e *env) do(method, path, token string, body any) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func (e *env) forwardsPath(router uuid.UUID) string {
	return "/api/routers/" + router.String() + "/transient-forwarding"
}

// seedRequest is the contract's sample creation object with a globally
// reachable allow_from (the sample's own is a documentation range).
func seedRequest() map[string]any {
	return map[string]any{
		"expire_after_minutes": 120,
		"dst_port":             22,
		"dst_address":          "192.168.88.43",
		"allow_from":           "81.2.69.0/24",
	}
}

func (e *env) create(router uuid.UUID, token string, body any) apijson.Forward {
	e.t.Helper()
	res := e.do("POST", e.forwardsPath(router), token, body)
	if res.status != http.StatusCreated {
		e.t.Fatalf("create: got %d %s, want 201", res.status, res.body)
	}
	var f apijson.Forward
	if err := json.Unmarshal(res.body, &f); err != nil {
		e.t.Fatal(err)
	}
	return f
}

func decode[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

func newRouter(name, region string) forwards.NewRouter {
	return forwards.NewRouter{Name: name, Region: region, TunnelAddress: netip.MustParseAddr("10.99.0.3")}
}
