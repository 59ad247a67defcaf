// Package storetest gives each test its own freshly migrated PostgreSQL
// database, so tests never share state and may run in parallel.
//
// The server is the one named by TPF_TEST_DATABASE_URL (a URL of any
// database on it; make test sets it), or else a private throwaway cluster in
// the system temp directory, started on first use and left running for the
// next test run. There are no mocks of the store: without PostgreSQL the
// tests fail with a message that says how to get it.
package storetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tpf-dev/tpf/controller/devdb"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/sql/migrations"
)

var (
	setupOnce sync.Once
	serverURL string // a URL on the server, database "postgres"
	template  string // the migrated template database
	setupErr  error
)

// New returns a pool on a new database holding the current schema, set up
// as the controller sets up its own (store.OpenPool's defaults). The
// database is dropped when the test ends.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return Open(t, NewURL(t))
}

// Open returns a pool on the database at url, set up as the controller sets
// up its own; it is closed when the test ends.
func Open(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	cfg, err := store.ParsePoolConfig(url, store.PoolConfig{})
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// NewURL creates a new migrated database and returns its URL; the database
// is dropped when the test ends (after the test's own cleanups).
func NewURL(t testing.TB) string {
	t.Helper()
	setupOnce.Do(func() { setupErr = setup() })
	if setupErr != nil {
		t.Fatalf("storetest: %v", setupErr)
	}
	ctx := context.Background()
	name := "tpf_test_" + randomHex(8)
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "create database "+name+" template "+template); err != nil {
		t.Fatalf("storetest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, serverURL)
		if err != nil {
			t.Errorf("storetest: drop %s: %v", name, err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "drop database if exists "+name+" with (force)"); err != nil {
			t.Errorf("storetest: drop %s: %v", name, err)
		}
	})
	return withDatabase(serverURL, name)
}

func setup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	serverURL = os.Getenv("TPF_TEST_DATABASE_URL")
	if serverURL == "" {
		c, err := devdb.Start(ctx, devdb.Config{
			Dir:       filepath.Join(os.TempDir(), fmt.Sprintf("tpf-test-postgres-%d", os.Getuid())),
			Ephemeral: true,
			Log:       os.Stderr,
		})
		if err != nil {
			return fmt.Errorf("no TPF_TEST_DATABASE_URL and no private PostgreSQL (install Debian's postgresql package, or run make test): %w", err)
		}
		serverURL = c.URL("postgres")
	}
	serverURL = withDatabase(serverURL, "postgres")
	name, err := templateName()
	if err != nil {
		return err
	}
	template = name
	return ensureTemplate(ctx, name)
}

// templateName changes whenever a migration does, so a stale template is
// never used.
func templateName() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, path)
		h.Write([]byte(path))
		h.Write(b)
		return err
	})
	if err != nil {
		return "", err
	}
	return "tpf_template_" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// ensureTemplate creates and migrates the template database once, also when
// several test binaries race to do it.
func ensureTemplate(ctx context.Context, name string) error {
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", serverURL, err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "select pg_advisory_lock(7466)"); err != nil {
		return err
	}
	defer admin.Exec(context.WithoutCancel(ctx), "select pg_advisory_unlock(7466)")
	var ready bool
	err = admin.QueryRow(ctx, "select exists (select 1 from pg_database where datname = $1 and datistemplate)", name).Scan(&ready)
	if err != nil || ready {
		return err
	}
	if _, err := admin.Exec(ctx, "drop database if exists "+name); err != nil {
		return err
	}
	if _, err := admin.Exec(ctx, "create database "+name); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, withDatabase(serverURL, name))
	if err != nil {
		return err
	}
	_, err = store.Migrate(ctx, pool)
	pool.Close()
	if err != nil {
		return fmt.Errorf("migrate template: %w", err)
	}
	_, err = admin.Exec(ctx, "alter database "+name+" with is_template true")
	return err
}

// withDatabase returns the connection string s naming database name instead.
func withDatabase(s, name string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return s + " dbname=" + name // keyword/value form: the last one counts
	}
	u.Path = "/" + name
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Reopen returns a second, independent pool on pool's database, as another
// controller replica would have. It is closed when the test ends.
func Reopen(t testing.TB, pool *pgxpool.Pool) *pgxpool.Pool {
	t.Helper()
	other, err := pgxpool.NewWithConfig(context.Background(), pool.Config().Copy())
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	t.Cleanup(other.Close)
	return other
}
