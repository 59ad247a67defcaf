package e2e

import (
	"context"
	"net"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tpf-dev/tpf/agent/daemon"
	"github.com/tpf-dev/tpf/agent/routerostest"
	"github.com/tpf-dev/tpf/controller/api"
	"github.com/tpf-dev/tpf/controller/expiry"
	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/hub"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/shared/forward"
)

// The parts every in-process harness of this package is built from (world,
// cluster, loopback): a tenant in a fresh database, controller replicas,
// emulated routers, agents, and polling with a deadline. TestNamespaces runs
// the shipped programs as processes instead.

// The management tunnel's two ends in the world and cluster harnesses: the
// edge's address and the router's.
const (
	edgeAddr   = "10.99.0.1"
	tunnelAddr = "10.99.0.2"
)

// tenant is the account "acme", signed in, in a database that holds one
// region: where every harness starts.
type tenant struct {
	st       *store.Store
	p        fleet.Principal
	apiToken string
}

// newTenant creates region and the account "acme" in st at now.
func newTenant(tb testing.TB, st *store.Store, region fleet.Region, now time.Time) tenant {
	tb.Helper()
	ctx := context.Background()
	region.CreatedAt = now
	if _, err := st.CreateRegion(ctx, region); err != nil {
		tb.Fatal(err)
	}
	_, token, err := st.CreateAccount(ctx, "acme", now)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := st.Authenticate(ctx, token)
	if err != nil {
		tb.Fatal(err)
	}
	return tenant{st: st, p: p, apiToken: token}
}

// addRouter creates a router of the tenant and returns it with its agent
// token.
func (tn tenant) addRouter(tb testing.TB, name, region string, tunnel netip.Addr, now time.Time) (fleet.Router, string) {
	tb.Helper()
	r, agentToken, err := forwards.New(tn.st).CreateRouter(context.Background(), tn.p, forwards.NewRouter{Name: name, Region: region, TunnelAddress: tunnel}, now)
	if err != nil {
		tb.Fatal(err)
	}
	return r, agentToken
}

// replica is one controller replica as `tpf-controller serve` runs it: a
// hub, the API (with the agents' endpoint) on loopback and, when asked for,
// an expiry clock, all on one store.
type replica struct {
	pool *pgxpool.Pool // the store's pool, when the harness needs SQL of its own
	st   *store.Store
	hub  *hub.Hub
	srv  *httptest.Server
	stop func() // stops the replica; safe twice, and called at the test's end
}

// replicaConfig shapes a replica.
type replicaConfig struct {
	hub hub.Config
	api api.Config // Agents is set to the replica's hub
	// expiry, when set, runs the expiry clock with it.
	expiry *expiry.Config
	// addr is where the API listens; empty means a fresh port. A restarted
	// controller comes back on its old address.
	addr string
}

// startReplica starts a replica on st (pool is recorded, not used).
func startReplica(tb testing.TB, pool *pgxpool.Pool, st *store.Store, cfg replicaConfig) *replica {
	tb.Helper()
	ctx := context.Background()
	r := &replica{pool: pool, st: st, hub: hub.New(forwards.New(st), cfg.hub)}
	r.hub.Start(ctx)
	var clock *expiry.Clock
	if cfg.expiry != nil {
		clock = expiry.New(forwards.New(st), *cfg.expiry)
		clock.Start(ctx)
	}
	apiCfg := cfg.api
	apiCfg.Agents = r.hub
	r.srv = httptest.NewUnstartedServer(api.NewServer(st, apiCfg))
	if cfg.addr != "" {
		ln, err := net.Listen("tcp", cfg.addr)
		if err != nil {
			tb.Fatal(err)
		}
		r.srv.Listener.Close()
		r.srv.Listener = ln
	}
	r.srv.Start()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			if clock != nil {
				clock.Stop()
			}
			r.hub.Stop()
			r.srv.Close()
		})
	}
	tb.Cleanup(r.stop)
	return r
}

// startRouterOS starts an emulated RouterOS API on loopback until the test
// ends.
func startRouterOS(tb testing.TB, cfg routerostest.Config) *routerostest.Server {
	tb.Helper()
	ros := routerostest.New(cfg)
	if err := ros.Start("127.0.0.1:0"); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ros.Close() })
	return ros
}

// startAgent runs an agent until stop is called or the test ends; stop
// returns once the agent has, and is safe twice.
func startAgent(tb testing.TB, cfg daemon.Config) (stop func()) {
	tb.Helper()
	d, err := daemon.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	stop = func() { cancel(); <-done }
	tb.Cleanup(stop)
	return stop
}

// tpfRules returns the router's tpf-tagged NAT rules, in the router's order.
func tpfRules(ros *routerostest.Server) []map[string]string {
	var out []map[string]string
	for _, r := range ros.NAT() {
		if forward.IsTPF(r["comment"]) {
			out = append(out, r)
		}
	}
	return out
}

// waitUntil polls cond every interval until it holds; when within has
// passed first, it fails tb, saying what it waited for and, when explain is
// set, what explain adds.
func waitUntil(tb testing.TB, what string, within, interval time.Duration, cond func() bool, explain func() string) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			more := ""
			if explain != nil {
				more = "; " + explain()
			}
			tb.Fatalf("timed out after %v waiting for %s%s", within, what, more)
		}
		time.Sleep(interval)
	}
}
