package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/tpf-dev/tpf/controller/api"
	"github.com/tpf-dev/tpf/controller/metrics"
	"github.com/tpf-dev/tpf/controller/store"
)

// newMetricsEnv is an env whose API serves /metrics, counting the env's
// own database.
func newMetricsEnv(t *testing.T, cfg api.Config) *env {
	t.Helper()
	var st *store.Store // set below: newEnv creates the store
	cfg.Metrics = metrics.New(metrics.Config{Forwards: func(ctx context.Context) ([]store.ForwardCount, error) {
		return st.CountForwards(ctx, seedNow)
	}})
	e := newEnv(t, cfg)
	st = e.store
	return e
}

func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	e := newMetricsEnv(t, api.Config{})
	f := e.create(e.router, e.token, seedRequest())
	e.create(e.router, e.token, seedRequest())
	e.do("GET", e.forwardsPath(e.router)+"/"+f.ID, e.token, nil)
	e.do("GET", e.forwardsPath(e.router)+"/not-a-uuid", e.token, nil)
	e.do("PUT", "/api/routers", e.token, nil)
	e.do("GET", "/api/nothing/here", e.token, nil)

	// No API token needed.
	res := e.do("GET", "/metrics", "", nil)
	if res.status != http.StatusOK || !strings.HasPrefix(res.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics: got %d %s, want 200 text/plain", res.status, res.header.Get("Content-Type"))
	}
	out := string(res.body)
	for _, line := range []string{
		`tpf_forwards{region="us-east1",status="pending"} 2`,
		`tpf_forwards{region="us-east1",status="active"} 0`,
		`tpf_agents_connected 0`,
		`tpf_http_request_duration_seconds_count{code="201",method="POST",route="POST /api/routers/{router_id}/transient-forwarding"} 2`,
		`tpf_http_request_duration_seconds_count{code="200",method="GET",route="GET /api/routers/{router_id}/transient-forwarding/{id}"} 1`,
		`tpf_http_request_duration_seconds_count{code="404",method="GET",route="GET /api/routers/{router_id}/transient-forwarding/{id}"} 1`,
		`tpf_http_request_duration_seconds_count{code="405",method="PUT",route="/api/routers"} 1`,
		`tpf_http_request_duration_seconds_count{code="404",method="GET",route="/api/"} 1`,
	} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("/metrics lacks %s", line)
		}
	}
	// Ids never become labels.
	if strings.Contains(out, f.ID) || strings.Contains(out, e.router.String()) {
		t.Error("/metrics holds an id")
	}
}

func TestMetricsToken(t *testing.T) {
	t.Parallel()
	e := newMetricsEnv(t, api.Config{MetricsToken: "scrape-secret"})
	for _, token := range []string{"", "wrong", e.token} {
		res := e.do("GET", "/metrics", token, nil)
		if res.status != http.StatusUnauthorized || string(res.body) != `{"message":"Unauthenticated."}`+"\n" {
			t.Errorf("token %q: got %d %s, want 401", token, res.status, res.body)
		}
	}
	if res := e.do("GET", "/metrics", "scrape-secret", nil); res.status != http.StatusOK {
		t.Errorf("the metrics token: got %d, want 200", res.status)
	}
}

func TestMetricsUnrouted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	if res := e.do("GET", "/metrics", "", nil); res.status != http.StatusNotFound {
		t.Errorf("without Config.Metrics: got %d, want 404", res.status)
	}
}
