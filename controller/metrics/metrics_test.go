package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/hub"
	"github.com/tpf-dev/tpf/controller/metrics"
	"github.com/tpf-dev/tpf/controller/store"
)

// The hub takes Metrics as its Observer.
var _ hub.Observer = (*metrics.Metrics)(nil)

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape: got %d %s, want 200 text/plain", res.StatusCode, res.Header.Get("Content-Type"))
	}
	return string(b)
}

func TestForwardsAtScrapeTime(t *testing.T) {
	t.Parallel()
	calls := 0
	m := metrics.New(metrics.Config{Forwards: func(ctx context.Context) ([]store.ForwardCount, error) {
		calls++
		if _, ok := ctx.Deadline(); !ok {
			t.Error("the count runs without a deadline")
		}
		return []store.ForwardCount{
			{Region: "eu1", Status: fleet.StatusActive, Forwards: 3},
			{Region: "eu1", Status: fleet.StatusPending, Forwards: 2},
			{Region: "us1"}, // a region without unfinished forwards
		}, nil
	}})
	want := `
# HELP tpf_forwards Unfinished forwards by region and status (pending, active, removing) as the API shows them, read from the database at scrape time; the same on every replica.
# TYPE tpf_forwards gauge
tpf_forwards{region="eu1",status="active"} 3
tpf_forwards{region="eu1",status="pending"} 2
tpf_forwards{region="eu1",status="removing"} 0
tpf_forwards{region="us1",status="active"} 0
tpf_forwards{region="us1",status="pending"} 0
tpf_forwards{region="us1",status="removing"} 0
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "tpf_forwards"); err != nil {
		t.Error(err)
	}
	scrape(t, m)
	if calls != 2 {
		t.Errorf("counts: got %d calls for 2 scrapes, want 2", calls)
	}
}

func TestForwardsErrorKeepsTheRest(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.Config{Forwards: func(context.Context) ([]store.ForwardCount, error) {
		return nil, errors.New("database down")
	}})
	m.PeerUp(metrics.PeerAgent)
	out := scrape(t, m)
	if strings.Contains(out, "tpf_forwards{") {
		t.Errorf("tpf_forwards served although its count failed:\n%s", out)
	}
	if !strings.Contains(out, "tpf_agents_connected 1") {
		t.Errorf("the other metrics are missing:\n%s", out)
	}
}

func TestObserverAndRequests(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.Config{})
	m.PeerUp(metrics.PeerAgent)
	m.PeerUp(metrics.PeerAgent)
	m.PeerDown(metrics.PeerAgent)
	m.PeerUp(metrics.PeerEdge)
	m.ReconcileError(metrics.PeerAgent, metrics.KindRefused)
	m.ReconcileError(metrics.PeerAgent, metrics.KindRefused)
	m.ReconcileError(metrics.PeerEdge, metrics.KindPass)
	m.ConnectionEnded("eu1", "client closed", 100, 2000)
	m.ConnectionEnded("eu1", "something new", 1, 2)
	m.ConnectionEnded("eu1", "refused: too many connections", 0, 0)

	want := `
# HELP tpf_agents_connected Router agents connected to this controller replica.
# TYPE tpf_agents_connected gauge
tpf_agents_connected 1
# HELP tpf_edges_connected Regional edges connected to this controller replica (the embedded edge included).
# TYPE tpf_edges_connected gauge
tpf_edges_connected 1
# HELP tpf_edge_bytes_total Bytes relayed by the edges' ended connections, by region and direction (up: client to device, down: device to client).
# TYPE tpf_edge_bytes_total counter
tpf_edge_bytes_total{direction="down",region="eu1"} 2002
tpf_edge_bytes_total{direction="up",region="eu1"} 101
# HELP tpf_edge_connections_total Connections through the edges that ended (or were refused), by region and why they ended.
# TYPE tpf_edge_connections_total counter
tpf_edge_connections_total{reason="client_closed",region="eu1"} 1
tpf_edge_connections_total{reason="other",region="eu1"} 1
tpf_edge_connections_total{reason="too_many_connections",region="eu1"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"tpf_agents_connected", "tpf_edges_connected", "tpf_edge_bytes_total", "tpf_edge_connections_total"); err != nil {
		t.Error(err)
	}

	out := scrape(t, m)
	for _, line := range []string{
		`tpf_reconcile_errors_total{kind="refused",peer="agent"} 2`,
		`tpf_reconcile_errors_total{kind="pass",peer="edge"} 1`,
		`tpf_reconcile_errors_total{kind="failed",peer="agent"} 0`, // present before the first error
	} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("scrape lacks %s", line)
		}
	}

	m.ForwardActivated(1500 * time.Millisecond)
	m.ForwardActivated(-time.Second) // clocks apart: counted as 0
	m.ObserveRequest("GET", "GET /api/routers", 200, 3*time.Millisecond)
	m.ObserveRequest("BREW", "", 404, time.Millisecond)
	out = scrape(t, m)
	for _, line := range []string{
		`tpf_forward_time_to_active_seconds_bucket{le="0.25"} 1`,
		`tpf_forward_time_to_active_seconds_bucket{le="2"} 2`,
		`tpf_forward_time_to_active_seconds_count 2`,
		`tpf_http_request_duration_seconds_count{code="200",method="GET",route="GET /api/routers"} 1`,
		`tpf_http_request_duration_seconds_count{code="404",method="other",route="unmatched"} 1`,
		`go_goroutines `,
		`process_start_time_seconds `,
	} {
		if !strings.Contains(out, line) {
			t.Errorf("scrape lacks %s", line)
		}
	}
}

func TestConnectionReason(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"client closed": "client_closed", "target closed": "target_closed", "idle timeout": "idle_timeout",
		"cut": "cut", "unreachable": "unreachable", "": "other", `"}` + "\n": "other",
	} {
		if got := metrics.ConnectionReason(in); got != want {
			t.Errorf("ConnectionReason(%q): got %q, want %q", in, got, want)
		}
	}
}

func TestTunnelsAtScrapeTime(t *testing.T) {
	t.Parallel()
	calls := 0
	m := metrics.New(metrics.Config{Tunnels: func(ctx context.Context) (map[string]int64, error) {
		calls++
		if _, ok := ctx.Deadline(); !ok {
			t.Error("the count runs without a deadline")
		}
		// No router's tunnel is down; an unknown state is left out.
		return map[string]int64{fleet.TunnelUp: 41, fleet.TunnelNever: 2, "sideways": 7}, nil
	}})
	want := `
# HELP tpf_tunnels Routers of regions whose tunnel tpf manages, by the state of their end of it: up (a handshake with the edge within 3 minutes), down (one before that) or never; read from the database at scrape time, the same on every replica.
# TYPE tpf_tunnels gauge
tpf_tunnels{state="down"} 0
tpf_tunnels{state="never"} 2
tpf_tunnels{state="up"} 41
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "tpf_tunnels"); err != nil {
		t.Error(err)
	}
	scrape(t, m)
	if calls != 2 {
		t.Errorf("counts: got %d calls for 2 scrapes, want 2", calls)
	}

	// A failed count leaves tpf_tunnels out and serves the rest.
	m = metrics.New(metrics.Config{Tunnels: func(context.Context) (map[string]int64, error) {
		return nil, errors.New("database down")
	}})
	m.PeerUp(metrics.PeerAgent)
	out := scrape(t, m)
	if strings.Contains(out, "tpf_tunnels{") {
		t.Errorf("tpf_tunnels served although its count failed:\n%s", out)
	}
	if !strings.Contains(out, "tpf_agents_connected 1") {
		t.Errorf("the other metrics are missing:\n%s", out)
	}
}

func TestAccessesAtScrapeTime(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.Config{Accesses: func(ctx context.Context) ([]store.AccessCount, error) {
		return []store.AccessCount{
			{Region: "eu1", Service: fleet.ServiceSSH, Accesses: 2},
			{Region: "us1", Service: fleet.ServiceWinbox, Accesses: 1},
		}, nil
	}})
	want := `
# HELP tpf_accesses Live transient accesses (WinBox and SSH logins to routers) by region and service, read from the database at scrape time; the same on every replica. Pairs without one are absent.
# TYPE tpf_accesses gauge
tpf_accesses{region="eu1",service="ssh"} 2
tpf_accesses{region="us1",service="winbox"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "tpf_accesses"); err != nil {
		t.Error(err)
	}
}
