package api_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/tpf-dev/tpf/controller/api"
	"github.com/tpf-dev/tpf/controller/apijson"
)

// lockedBuffer is a log destination shared by the server's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestLogsHoldNoSecrets sends tokens, token-looking strings and passwords
// every way a client can, and fetches every answer that carries a secret,
// with the log at debug level: none of them may reach the log.
func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := newMetricsEnv(t, api.Config{Logger: log, MetricsToken: "metrics-secret-7f3a9c", PublicURL: "https://tpf.example.net"})

	const (
		inBody     = "tpf_BodyLooksLikeAToken0123456789abcdefghijklm"
		inQuery    = "tpf_QueryLooksLikeAToken0123456789abcdefghijk"
		wrongToken = "tpf_WrongTokenxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		password   = "hunter2-correct-horse"
	)
	secrets := []string{e.token, inBody, inQuery, wrongToken, password, "metrics-secret-7f3a9c"}

	// A token-looking string and a password in a body that fails
	// validation (422), and in one that is not JSON at all (400).
	body := map[string]any{"expire_after_minutes": 120, "dst_port": 22, "dst_address": inBody, "allow_from": password, "token": inBody, "password": password}
	if res := e.do("POST", e.forwardsPath(e.router)+"?token="+inQuery, e.token, body); res.status != http.StatusUnprocessableEntity {
		t.Errorf("create: got %d, want 422", res.status)
	}
	if res := e.do("POST", "/api/routers", e.token, `{"name": "`+inBody+`", "password": "`+password); res.status != http.StatusBadRequest {
		t.Errorf("broken body: got %d, want 400", res.status)
	}
	// Wrong tokens, for the API and for /metrics.
	if res := e.do("GET", "/api/routers?api_token="+inQuery, wrongToken, nil); res.status != http.StatusUnauthorized {
		t.Errorf("wrong token: got %d, want 401", res.status)
	}
	if res := e.do("GET", "/metrics", wrongToken, nil); res.status != http.StatusUnauthorized {
		t.Errorf("wrong metrics token: got %d, want 401", res.status)
	}
	e.do("GET", "/metrics", "metrics-secret-7f3a9c", nil)

	// Answers that carry new secrets.
	res := e.do("POST", "/api/routers", e.token, map[string]any{"name": "r2", "region": e.region.ID, "tunnel_address": "10.99.0.7"})
	secrets = append(secrets, decode[apijson.Router](t, res.body).AgentToken)
	res = e.do("POST", "/api/routers/"+e.router.String()+"/agent-token", e.token, nil)
	secrets = append(secrets, decode[apijson.AgentToken](t, res.body).AgentToken)
	res = e.installScript("", e.token)
	script := string(res.body)
	for _, re := range []*regexp.Regexp{scriptToken, regexp.MustCompile(`TPF_ROUTEROS_PASSWORD"\) "([A-Za-z0-9._-]+)"`)} {
		m := re.FindStringSubmatch(script)
		if m == nil {
			t.Fatalf("no %s in the install script:\n%s", re, script)
		}
		secrets = append(secrets, m[1])
	}

	out := logs.String()
	if !strings.Contains(out, `"msg":"request"`) || !strings.Contains(out, `"status":422`) {
		t.Fatalf("the request lines are missing from the log:\n%s", out)
	}
	for _, s := range secrets {
		if s == "" {
			t.Fatal("a secret to look for is empty")
		}
		if strings.Contains(out, s) {
			t.Errorf("the log holds the secret %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "tpf_") {
		t.Errorf("the log holds something token-like:\n%s", out)
	}
}
