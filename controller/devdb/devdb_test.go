package devdb

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// clusterDir returns a fresh directory for a cluster. As root, the server
// runs as the postgres user, which must be able to traverse every parent;
// t.TempDir creates them with mode 0700, so open them up.
func clusterDir(t *testing.T, name string) string {
	t.Helper()
	base := t.TempDir()
	if os.Geteuid() == 0 {
		tmp := filepath.Clean(os.TempDir())
		for d := base; d != tmp && d != filepath.Dir(d); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return filepath.Join(base, name)
}

// start starts an ephemeral cluster in dir and stops it at the end of the
// test. Without PostgreSQL (and not root, so it cannot be installed), it
// skips, except in CI where it fails.
func start(t *testing.T, ctx context.Context, dir string) *Cluster {
	t.Helper()
	c, err := Start(ctx, Config{Dir: dir, Log: testWriter{t}, Ephemeral: true})
	if errors.Is(err, ErrNotInstalled) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL is required in CI: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// query runs sql through psql with url, as the current user, the way the
// application connects.
func query(t *testing.T, ctx context.Context, c *Cluster, url, sql string) string {
	t.Helper()
	psql, err := c.bin.client("psql")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, psql, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql)
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql %s -c %q: %v\n%s", url, sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestStartCreateStop(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := clusterDir(t, "pg")

	c := start(t, ctx, dir)
	if want := filepath.Join(dir, "run"); socketDirOK(want) && c.SocketDir() != want {
		t.Errorf("SocketDir() = %q, want %q", c.SocketDir(), want)
	}
	if err := c.CreateDatabase(ctx, "tpf_test", ""); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateDatabase(ctx, "tpf_test", ""); err != nil {
		t.Fatalf("CreateDatabase of an existing database: %v", err)
	}
	if err := c.CreateDatabase(ctx, `odd "name'`, "tpf_test"); err != nil {
		t.Fatalf("CreateDatabase with template: %v", err)
	}

	url := c.URL("tpf_test")
	if got := query(t, ctx, c, url, "select 1"); got != "1" {
		t.Errorf("select 1 = %q", got)
	}
	if got := query(t, ctx, c, url, "select current_database()"); got != "tpf_test" {
		t.Errorf("current_database() = %q", got)
	}
	if got := query(t, ctx, c, url, "show fsync"); got != "off" {
		t.Errorf("ephemeral cluster: fsync = %q, want off", got)
	}
	if got := query(t, ctx, c, url, "show listen_addresses"); got != "" {
		t.Errorf("listen_addresses = %q, want empty (socket only)", got)
	}

	// Already running: Start returns the same cluster.
	c2, err := Start(ctx, Config{Dir: dir, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	if c2.URL("tpf_test") != url {
		t.Errorf("second Start: URL %q, want %q", c2.URL("tpf_test"), url)
	}

	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c2.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if running, err := c.running(ctx); err != nil || running {
		t.Errorf("after Stop: running = %v, %v", running, err)
	}
}

func TestLongDirUsesShortSocketDir(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := clusterDir(t, strings.Repeat("long-directory-name-", 5))

	c := start(t, ctx, dir)
	sock := c.SocketDir()
	if strings.HasPrefix(sock, dir) || len(sock)+len("/.s.PGSQL.5432") >= maxSocketPath {
		t.Errorf("SocketDir() = %q, want a short directory outside %s", sock, dir)
	}
	if got := query(t, ctx, c, c.URL(""), "select 1"); got != "1" {
		t.Errorf("select 1 = %q", got)
	}

	// The choice is recorded: a later Start and Open find the same socket.
	c2, err := Start(ctx, Config{Dir: dir, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	if c2.URL("x") != c.URL("x") {
		t.Errorf("second Start: URL %q, want %q", c2.URL("x"), c.URL("x"))
	}
	c3, err := Open(Config{Dir: dir, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	if c3.URL("x") != c.URL("x") {
		t.Errorf("Open: URL %q, want %q", c3.URL("x"), c.URL("x"))
	}
	if err := c3.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("ephemeral Stop left socket directory %s behind (%v)", sock, err)
	}
}

func TestStopNeverStarted(t *testing.T) {
	if _, ok := lookBinaries(""); !ok {
		if os.Getenv("CI") == "true" {
			t.Fatal("PostgreSQL is required in CI")
		}
		t.Skip("PostgreSQL not installed")
	}
	c, err := Open(Config{Dir: filepath.Join(t.TempDir(), "none")})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
}

func TestURL(t *testing.T) {
	c := &Cluster{socketDir: "/abs/path/run", port: 5432}
	for db, want := range map[string]string{
		"tpf": "postgres://postgres@/tpf?host=/abs/path/run&port=5432&sslmode=disable",
		"":    "postgres://postgres@/postgres?host=/abs/path/run&port=5432&sslmode=disable",
		"a b": "postgres://postgres@/a%20b?host=/abs/path/run&port=5432&sslmode=disable",
	} {
		if got := c.URL(db); got != want {
			t.Errorf("URL(%q) = %q, want %q", db, got, want)
		}
	}
	c.socketDir = "/tmp/a b&c"
	if got, want := c.URL("tpf"), "postgres://postgres@/tpf?host=/tmp/a+b%26c&port=5432&sslmode=disable"; got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
}

func TestQuoting(t *testing.T) {
	if got, want := quoteIdent(`a"b`), `"a""b"`; got != want {
		t.Errorf("quoteIdent = %s, want %s", got, want)
	}
	if got, want := quoteLiteral(`it's`), `'it''s'`; got != want {
		t.Errorf("quoteLiteral = %s, want %s", got, want)
	}
	if got, want := shellQuote(`/a'b`), `'/a'\''b'`; got != want {
		t.Errorf("shellQuote = %s, want %s", got, want)
	}
}

func TestSocketDirOK(t *testing.T) {
	if !socketDirOK("/tmp/x/run") {
		t.Error("short dir rejected")
	}
	if socketDirOK("/" + strings.Repeat("x", 90)) {
		t.Error("long dir accepted")
	}
	if socketDirOK("/tmp/a,b") {
		t.Error("dir with comma accepted")
	}
}

// testWriter sends progress messages to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestNotInstalled hides the binaries (and, for root, apt-get: PATH is
// empty) and checks that Start says what to do.
func TestNotInstalled(t *testing.T) {
	debianRoot = t.TempDir()
	t.Cleanup(func() { debianRoot = "/usr/lib/postgresql" })
	t.Setenv("PATH", t.TempDir())
	_, err := Start(context.Background(), Config{Dir: t.TempDir()})
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Start without binaries: %v, want ErrNotInstalled", err)
	}
	want := "sudo apt-get install postgresql"
	if os.Geteuid() == 0 {
		want = "apt-get is not available"
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error does not say what to do: got %v, want it to mention %q", err, want)
	}
	t.Log(err)
}

func TestStartFailureShowsLog(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := clusterDir(t, "pg")
	c := start(t, ctx, dir)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "data", "postgresql.conf")
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("\nshared_buffers = 'not a size'\n")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Start(ctx, Config{Dir: dir, Ephemeral: true})
	if err == nil {
		t.Fatal("Start with a broken configuration succeeded")
	}
	if !strings.Contains(err.Error(), "tail of") || !strings.Contains(err.Error(), "shared_buffers") {
		t.Errorf("error lacks the server log: %v", err)
	}
	t.Log(err)
}

func TestConcurrentStart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := clusterDir(t, "pg")
	if _, ok := lookBinaries(""); !ok && os.Geteuid() != 0 {
		start(t, ctx, dir) // skips or fails as appropriate
	}

	const n = 3
	clusters := make([]*Cluster, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			clusters[i], errs[i] = Start(ctx, Config{Dir: dir, Ephemeral: true})
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
	}
	t.Cleanup(func() {
		if err := clusters[0].Stop(); err != nil {
			t.Error(err)
		}
	})
	for i := range n {
		if clusters[i].URL("x") != clusters[0].URL("x") {
			t.Errorf("URLs differ: %q, %q", clusters[i].URL("x"), clusters[0].URL("x"))
		}
	}
	if got := query(t, ctx, clusters[0], clusters[0].URL(""), "select 1"); got != "1" {
		t.Errorf("select 1 = %q", got)
	}
}
