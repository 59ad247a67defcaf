package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/controller/store/storetest"
)

// run runs the command line with env and returns stdout.
func run(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := Run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func TestAdminCommands(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": storetest.NewURL(t)}

	if _, err := run(t, env, "migrate"); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	out, err := run(t, env, "migrate")
	if err != nil || !strings.Contains(out, "up to date") {
		t.Errorf("second migrate: got %q, %v, want up to date", out, err)
	}

	out, err = run(t, env, "account", "create", "acme")
	if err != nil {
		t.Fatalf("account create: %v", err)
	}
	token := lastLine(out)
	if !strings.HasPrefix(token, "tpf_") || len(token) < 40 {
		t.Errorf("account create: last line %q, want the API token", token)
	}
	if _, err := run(t, env, "account", "create", "acme"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("duplicate account: got %v, want already exists", err)
	}
	out, err = run(t, env, "token", "create", "acme", "--name", "ci")
	if err != nil || !strings.HasPrefix(lastLine(out), "tpf_") || lastLine(out) == token {
		t.Errorf("token create: got %q, %v, want a new token last", out, err)
	}
	ciToken := lastLine(out)
	if _, err := run(t, env, "token", "create", "nobody"); err == nil {
		t.Error("token for unknown account: got no error")
	}
	testTokenCommands(t, env, ciToken)

	if _, err := run(t, env, "region", "add", "us-east1", "--entry-point", "us-east1.example.net", "--ports", "49152-65535", "--edge-tunnel-address", "10.99.0.1"); err != nil {
		t.Fatalf("region add: %v", err)
	}
	out, err = run(t, env, "region", "list")
	if err != nil || !strings.Contains(out, "us-east1.example.net") || !strings.Contains(out, "49152-65535") {
		t.Errorf("region list: got %q, %v", out, err)
	}
	out, err = run(t, env, "account", "list")
	if err != nil || !strings.Contains(out, "acme") {
		t.Errorf("account list: got %q, %v", out, err)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": "postgres://nowhere.invalid/x"}
	cases := [][]string{
		{"frobnicate"},
		{"account"},
		{"account", "create"},
		{"account", "create", "a", "b"},
		{"region", "add", "Bad_ID", "--entry-point", "x", "--edge-tunnel-address", "10.0.0.1"},
		{"region", "add", "eu1", "--entry-point", "x", "--ports", "9-8", "--edge-tunnel-address", "10.0.0.1"},
		{"region", "add", "eu1", "--entry-point", "x", "--ports", "1-70000", "--edge-tunnel-address", "10.0.0.1"},
		{"region", "add", "eu1", "--entry-point", "x", "--edge-tunnel-address", "10.0.0.01"},
		{"region", "add", "eu1", "--edge-tunnel-address", "10.0.0.1"},
		{"token"},
		{"token", "frobnicate", "acme"},
		{"token", "list"},
		{"token", "revoke", "acme"},
		{"token", "create", "acme", "--name", " "},
		{"token", "create", "acme", "--name", strings.Repeat("x", 65)},
		{"token", "create", "acme", "--name", "a\tb"},
		{"serve", "extra"},
		{"serve", "--bogus"},
	}
	for _, args := range cases {
		if _, err := run(t, env, args...); !ErrUsage(err) {
			t.Errorf("%q: got %v, want a usage error", args, err)
		}
	}
}

func TestHelpListsEverySetting(t *testing.T) {
	t.Parallel()
	out, err := run(t, nil, "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settingDocs {
		if !strings.Contains(out, s.name) {
			t.Errorf("--help does not list %s", s.name)
		}
	}
}

func TestSettings(t *testing.T) {
	t.Parallel()
	bad := []map[string]string{
		{},
		{"DATABASE_URL": "x", "TPF_MIN_EXPIRE_MINUTES": "abc"},
		{"DATABASE_URL": "x", "TPF_MIN_EXPIRE_MINUTES": "100", "TPF_MAX_EXPIRE_MINUTES": "50"},
		{"DATABASE_URL": "x", "TPF_RATE_LIMIT_PER_MINUTE": "-1"},
		{"DATABASE_URL": "x", "TPF_ALLOW_SOURCES": "10.0.0.1/8"},
		{"DATABASE_URL": "x", "TPF_PORT_GRACE": "soon"},
		{"DATABASE_URL": "x", "TPF_LOG_LEVEL": "loud"},
	}
	for _, env := range bad {
		if _, err := readSettings(func(k string) string { return env[k] }); err == nil {
			t.Errorf("%v: got no error", env)
		}
	}
	s, err := readSettings(func(k string) string {
		return map[string]string{"DATABASE_URL": "x", "TPF_ALLOW_SOURCES": "10.0.0.0/8, 127.0.0.0/8", "TPF_RATE_LIMIT_PER_MINUTE": "0"}[k]
	})
	if err != nil || s.listen != "127.0.0.1:8080" || len(s.api.AllowSources) != 2 || s.api.RateLimitPerMinute != 0 ||
		s.api.MinExpireMinutes != 10 || s.api.MaxExpireMinutes != 1440 || s.expiry.PortGrace != 10*time.Minute {
		t.Errorf("defaults: got %+v, %v", s, err)
	}
}

func TestServeRefusesStaleSchema(t *testing.T) {
	t.Parallel()
	pool := storetest.New(t)
	if _, err := pool.Exec(context.Background(), "drop schema public cascade; create schema public"); err != nil {
		t.Fatal(err)
	}
	set, err := readSettings(func(k string) string { return map[string]string{"DATABASE_URL": "x", "TPF_LISTEN": "127.0.0.1:0"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	err = serve(context.Background(), pool, set, false, discardLogger(), nil)
	if err == nil || !strings.Contains(err.Error(), "tpf-controller migrate") {
		t.Errorf("got %v, want advice to migrate", err)
	}
}

// TestQuickstartServes bootstraps twice (the second start finds everything
// in place and keeps the token) and then answers the printed request.
func TestQuickstartServes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool := storetest.New(t)
	state := quickState{dir: t.TempDir()}
	token, router, err := bootstrap(ctx, pool, state)
	if err != nil {
		t.Fatal(err)
	}
	token2, router2, err := bootstrap(ctx, pool, state)
	if err != nil || token2 != token || router2 != router {
		t.Fatalf("second bootstrap: got %s %s %v, want the same token and router", token2, router2, err)
	}
	set, err := readSettings(func(k string) string {
		return map[string]string{"DATABASE_URL": "x", "TPF_LISTEN": "127.0.0.1:0", "TPF_ALLOW_SOURCES": "127.0.0.0/8"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, pool, set, false, discardLogger(), ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	body := `{"expire_after_minutes":120,"dst_port":22,"dst_address":"192.168.88.43","allow_from":"127.0.0.1"}`
	req, _ := http.NewRequest("POST", "http://"+addr+"/api/routers/"+router.String()+"/transient-forwarding", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated || !strings.Contains(string(b), `"time_to_expire":"2 hours from now"`) {
		t.Errorf("create: got %d %s, want 201", res.StatusCode, b)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve after cancel: %v", err)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testTokenCommands lists and revokes acme's tokens ("default" and "ci",
// whose secret is ciToken) and checks the audit log.
func testTokenCommands(t *testing.T, env map[string]string, ciToken string) {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	st := store.New(pool)
	p, err := st.Authenticate(ctx, ciToken)
	if err != nil {
		t.Fatalf("the created token does not authenticate: %v", err)
	}

	out, err := run(t, env, "token", "list", "acme")
	if err != nil {
		t.Fatalf("token list: %v", err)
	}
	rows := tokenRows(out)
	if len(rows) != 2 || !strings.HasSuffix(rows["default"], " -") || !strings.Contains(rows["ci"], p.TokenID.String()) || !strings.HasSuffix(rows["ci"], " -") {
		t.Errorf("token list: got\n%s\nwant default and ci (with its id), neither revoked", out)
	}
	if strings.Contains(out, ciToken) {
		t.Error("token list shows a secret")
	}

	out, err = run(t, env, "token", "revoke", "acme", "ci")
	if err != nil || !strings.Contains(out, "Revoked token ci") {
		t.Errorf("token revoke by name: got %q, %v", out, err)
	}
	if _, err := st.Authenticate(ctx, ciToken); !errors.Is(err, fleet.ErrUnauthenticated) {
		t.Errorf("revoked token authenticates: got %v, want ErrUnauthenticated", err)
	}
	out, err = run(t, env, "token", "revoke", "acme", p.TokenID.String())
	if err != nil || !strings.Contains(out, "already revoked") {
		t.Errorf("token revoke again, by id: got %q, %v, want already revoked", out, err)
	}
	out, _ = run(t, env, "token", "list", "acme")
	if rows := tokenRows(out); len(rows) != 2 || strings.HasSuffix(rows["ci"], " -") || !strings.HasSuffix(rows["default"], " -") {
		t.Errorf("token list after revoke: got\n%s\nwant ci revoked", out)
	}
	for _, ref := range []string{"nosuch", uuid.NewString()} {
		if _, err := run(t, env, "token", "revoke", "acme", ref); !errors.Is(err, fleet.ErrNotFound) {
			t.Errorf("token revoke %s: got %v, want not found", ref, err)
		}
	}
	if _, err := run(t, env, "token", "revoke", "nobody", "ci"); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("token revoke for unknown account: got %v, want not found", err)
	}
	// Two live tokens of one name: the name is ambiguous.
	run(t, env, "token", "create", "acme", "--name", "twin")
	run(t, env, "token", "create", "acme", "--name", "twin")
	if _, err := run(t, env, "token", "revoke", "acme", "twin"); !ErrUsage(err) {
		t.Errorf("token revoke of an ambiguous name: got %v, want a usage error", err)
	}

	events, err := st.AuditEvents(ctx, p.AccountID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, ev := range events {
		if ev.Actor == fleet.ActorAdmin {
			counts[ev.Action]++
		}
	}
	if counts[fleet.ActionTokenCreate] != 3 || counts[fleet.ActionTokenRevoke] != 1 {
		t.Errorf("audit log: got %v by %q, want 3 %s and 1 %s", counts, fleet.ActorAdmin, fleet.ActionTokenCreate, fleet.ActionTokenRevoke)
	}
}

// tokenRows maps the names of token list's rows to the rows.
func tokenRows(out string) map[string]string {
	rows := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		name, _, _ := strings.Cut(line, " ")
		rows[name] = strings.TrimSpace(line)
	}
	return rows
}
