package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/agent/daemon"
	"github.com/tpf-dev/tpf/agent/routeros"
	"github.com/tpf-dev/tpf/agent/routerostest"
	"github.com/tpf-dev/tpf/controller/api"
	"github.com/tpf-dev/tpf/controller/expiry"
	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/hub"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/controller/store/storetest"
)

// cluster is a controller of one or more replicas on one PostgreSQL
// database — each replica with its own pool, API server, hub and expiry
// clock, as `tpf-controller serve` runs them — and a fleet of routers, each
// an emulated RouterOS with a real agent connected to replica 0. API
// requests may go to any replica. Everything listens on loopback.
type cluster struct {
	tb       testing.TB
	clock    *offsetClock
	logs     *logBuffer // every replica's log, Warn and above
	replicas []*replica
	apiToken string
	sites    []*site
	client   *http.Client
}

// site is one router: its row, its emulated RouterOS and its agent token.
type site struct {
	router fleet.Router
	token  string
	ros    *routerostest.Server
}

// clusterConfig shapes a cluster.
type clusterConfig struct {
	replicas int
	routers  int
	// minExpireMinutes is the API's smallest expire_after_minutes; zero
	// means the API's default.
	minExpireMinutes int
}

// newCluster starts the replicas and the routers' emulators; the agents
// start with startAgents.
func newCluster(tb testing.TB, cfg clusterConfig) *cluster {
	tb.Helper()
	c := &cluster{
		tb: tb, clock: &offsetClock{}, logs: &logBuffer{},
		client: &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 16}},
	}
	tb.Cleanup(c.client.CloseIdleConnections)
	log := slog.New(slog.NewTextHandler(c.logs, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// Each replica has its own pool on the one database, set up as the
	// controller sets up its own.
	first := storetest.New(tb)
	for i := range cfg.replicas {
		pool := first
		if i > 0 {
			pool = storetest.Reopen(tb, first)
		}
		rlog := log.With("replica", i)
		c.replicas = append(c.replicas, startReplica(tb, pool, store.New(pool), replicaConfig{
			hub:    hub.Config{Now: c.clock.Now, Heartbeat: 5 * time.Second, Logger: rlog},
			expiry: &expiry.Config{Now: c.clock.Now, Interval: 200 * time.Millisecond, Logger: rlog},
			api:    api.Config{Now: c.clock.Now, Logger: rlog, MinExpireMinutes: cfg.minExpireMinutes},
		}))
	}

	now := c.clock.Now().UTC().Truncate(time.Second)
	tn := newTenant(tb, c.replicas[0].st, fleet.Region{
		ID: "eu1", EntryPoint: "eu1.example.net", Ports: fleet.PortRange{Min: 20000, Max: 59999},
		EdgeTunnelAddress: netip.MustParseAddr(edgeAddr),
	}, now)
	c.apiToken = tn.apiToken
	for i := range cfg.routers {
		r, agentToken := tn.addRouter(tb, fmt.Sprintf("r%d", i), "eu1", netip.AddrFrom4([4]byte{10, 99, 1, byte(1 + i)}), now)
		ros := startRouterOS(tb, routerostest.Config{Version: "7.18.2", Users: map[string]string{"tpf": "s3cret"}})
		c.sites = append(c.sites, &site{router: r, token: agentToken, ros: ros})
	}
	return c
}

// startAgents starts every router's agent, connected to replica 0, and
// waits until all are connected. The agents keep the routers' own clock
// (the wall clock): they learn where the controller's clock stands from
// the sets it sends, not from the cluster's offsetClock.
func (c *cluster) startAgents(resync time.Duration) {
	c.tb.Helper()
	for _, s := range c.sites {
		startAgent(c.tb, daemon.Config{
			ControllerURL: c.replicas[0].srv.URL,
			Token:         s.token,
			Router:        routeros.Config{Address: s.ros.Addr(), User: "tpf", Password: "s3cret", Timeout: 5 * time.Second},
			Version:       "test",
			Resync:        resync,
			Heartbeat:     5 * time.Second,
		})
	}
	c.waitFor("every agent to connect", 30*time.Second, func() bool {
		for _, s := range c.sites {
			if !c.replicas[0].hub.Connected(s.router.ID) {
				return false
			}
		}
		return true
	})
}

// api is the replica API requests go to: the last one, so that with two
// replicas the agents are on one and the API writes on the other.
func (c *cluster) api() *replica { return c.replicas[len(c.replicas)-1] }

// do sends one API request to r and returns the status, the body and how
// long the answer took.
func (c *cluster) do(r *replica, method, path string, body []byte) (int, []byte, time.Duration, error) {
	req, err := http.NewRequest(method, r.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.apiToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	res, err := c.client.Do(req)
	if err != nil {
		return 0, nil, 0, err
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	return res.StatusCode, b, time.Since(start), err
}

func forwardsPath(router fleet.Router) string {
	return "/api/routers/" + router.ID.String() + "/transient-forwarding"
}

// createBody asks for a forward of minutes to 192.168.88.43:22 from
// 81.2.69.0/24.
func createBody(minutes int) []byte {
	return fmt.Appendf(nil, `{"expire_after_minutes":%d,"dst_port":22,"dst_address":"192.168.88.43","allow_from":"81.2.69.0/24"}`, minutes)
}

// loadResult is what a mixed load saw.
type loadResult struct {
	mu       sync.Mutex
	creates  []time.Duration // every answered POST
	deletes  []time.Duration // every answered DELETE, first and repeated alike
	fiveXX   int
	wrong    []string // answers that are neither what was asked nor 5xx
	failures []string // the first few 5xx and transport errors
	took     time.Duration
}

// note records one request: its latency when it was answered, and any
// answer other than want.
func (r *loadResult) note(method string, want, status int, body []byte, took time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		if method == "POST" {
			r.creates = append(r.creates, took)
		} else {
			r.deletes = append(r.deletes, took)
		}
	}
	switch {
	case err == nil && status == want:
	case err != nil:
		r.fiveXX++ // a request that got no answer counts as a failed one
		if len(r.failures) < 5 {
			r.failures = append(r.failures, fmt.Sprintf("%s: %v", method, err))
		}
	case status >= 500:
		r.fiveXX++
		if len(r.failures) < 5 {
			r.failures = append(r.failures, fmt.Sprintf("%s: %d %s", method, status, bytes.TrimSpace(body)))
		}
	default:
		if len(r.wrong) < 5 {
			r.wrong = append(r.wrong, fmt.Sprintf("%s: %d %s", method, status, bytes.TrimSpace(body)))
		}
	}
}

// mixedLoad runs workers goroutines, each doing cycles of create → DELETE
// → repeated DELETE through the API replica, spread over every router.
func (c *cluster) mixedLoad(workers, cycles int) *loadResult {
	res := &loadResult{}
	target := c.api()
	body := createBody(60)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range cycles {
				s := c.sites[(w+i*workers)%len(c.sites)]
				path := forwardsPath(s.router)
				status, b, took, err := c.do(target, "POST", path, body)
				res.note("POST", http.StatusCreated, status, b, took, err)
				if err != nil || status != http.StatusCreated {
					continue
				}
				var f struct{ ID string }
				if err := json.Unmarshal(b, &f); err != nil || f.ID == "" {
					res.mu.Lock()
					res.wrong = append(res.wrong, fmt.Sprintf("POST: unreadable %d %s", status, b))
					res.mu.Unlock()
					continue
				}
				for range 2 { // DELETE, then the same DELETE again
					status, b, took, err := c.do(target, "DELETE", path+"/"+f.ID, nil)
					res.note("DELETE", http.StatusNoContent, status, b, took, err)
				}
			}
		})
	}
	wg.Wait()
	res.took = time.Since(start)
	return res
}

// percentile returns the q-quantile (0 < q ≤ 1) of d in milliseconds; d is
// sorted in place.
func percentile(d []time.Duration, q float64) float64 {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := min(len(d)-1, int(q*float64(len(d))))
	return float64(d[i].Microseconds()) / 1000
}

// forwardsIn and forwardsNotIn return how many forwards the database holds
// in status, and in any other.
func (c *cluster) forwardsIn(status fleet.Status) int {
	return c.countForwards("select count(*) from forwards where status = $1", status)
}

func (c *cluster) forwardsNotIn(status fleet.Status) int {
	return c.countForwards("select count(*) from forwards where status <> $1", status)
}

func (c *cluster) countForwards(query string, status fleet.Status) int {
	c.tb.Helper()
	var n int
	if err := c.replicas[0].pool.QueryRow(context.Background(), query, string(status)).Scan(&n); err != nil {
		c.tb.Fatal(err)
	}
	return n
}

// tpfRules is how many tpf rules the routers hold in all.
func (c *cluster) tpfRules() int {
	n := 0
	for _, s := range c.sites {
		n += len(tpfRules(s.ros))
	}
	return n
}

// staleRouters lists the routers whose agent has not reported applying
// their newest desired set.
func (c *cluster) staleRouters() []string {
	c.tb.Helper()
	rows, err := c.replicas[0].pool.Query(context.Background(),
		"select name || ' (applied ' || applied_revision || ' of ' || revision || ')' from routers where deleted_at is null and applied_revision <> revision order by name")
	if err != nil {
		c.tb.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			c.tb.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		c.tb.Fatal(err)
	}
	return out
}

// settled waits until every forward ended as removed, the routers hold no
// tpf rule, and every agent reported its newest set.
func (c *cluster) settled(within time.Duration) {
	c.tb.Helper()
	c.waitFor("every forward removed, no tpf rule left and every newest set reported", within, func() bool {
		return c.forwardsNotIn(fleet.StatusRemoved) == 0 && c.tpfRules() == 0 && len(c.staleRouters()) == 0
	})
}

// waitFor polls cond until it holds or within has passed.
func (c *cluster) waitFor(what string, within time.Duration, cond func() bool) {
	c.tb.Helper()
	waitUntil(c.tb, what, within, 50*time.Millisecond, cond, func() string {
		return fmt.Sprintf("forwards not removed: %d, tpf rules: %d, routers behind: %v\ncontroller log:\n%s",
			c.forwardsNotIn(fleet.StatusRemoved), c.tpfRules(), c.staleRouters(), c.logs.head(40))
	})
}

// controllerFailures returns the controller's log lines that say a
// concurrent writer failed another: every error, and any deadlock.
func (c *cluster) controllerFailures() []string {
	var out []string
	for _, line := range c.logs.lines() {
		if strings.Contains(line, "level=ERROR") || strings.Contains(line, "deadlock detected") {
			out = append(out, line)
		}
	}
	return out
}

// checkAnswers fails tb on any 5xx and any unexpected answer.
func (c *cluster) checkAnswers(res *loadResult) {
	c.tb.Helper()
	if res.fiveXX > 0 {
		c.tb.Errorf("%d requests failed with 5xx or no answer, want none; first: %s", res.fiveXX, strings.Join(res.failures, "; "))
	}
	if len(res.wrong) > 0 {
		c.tb.Errorf("unexpected answers (want 201, 204, 204): %s", strings.Join(res.wrong, "; "))
	}
}

// checkLog fails tb on any failure in the controller's log.
func (c *cluster) checkLog() {
	c.tb.Helper()
	if f := c.controllerFailures(); len(f) > 0 {
		c.tb.Errorf("the controller logged %d failures (%d deadlocks), want none; first:\n%s",
			len(f), c.logs.count("deadlock detected"), strings.Join(f[:min(len(f), 8)], "\n"))
	}
}

// offsetClock is the controller's clock (API, hub and expiry clock of
// every replica): the wall clock, with its monotonic reading, moved forward
// by what Advance added.
type offsetClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *offsetClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// logBuffer collects log output from many goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSpace(l.buf.String()), "\n")
}

func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

func (l *logBuffer) head(n int) string {
	lines := l.lines()
	return strings.Join(lines[:min(n, len(lines))], "\n")
}
