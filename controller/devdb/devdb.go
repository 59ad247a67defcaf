// Package devdb runs a private PostgreSQL cluster for development and tests.
//
// It is meant for `make run` on a fresh machine and for `make test`: it takes
// the PostgreSQL server binaries installed on the system (Debian's postgresql
// package, or initdb/pg_ctl/postgres on PATH), initialises a cluster in a
// directory of the caller's choosing and starts a server that listens only on
// a unix socket inside that directory. It is not for production: the cluster
// trusts every local connection, and ephemeral clusters trade durability for
// speed.
//
// PostgreSQL refuses to run as root. When the calling process runs as root,
// every PostgreSQL program is run as the postgres system user (see command),
// the data directory is owned by that user and the cluster directory is made
// traversable by it.
package devdb

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	// superuser is the database superuser created by initdb and used in URLs.
	superuser = "postgres"
	// defaultPort is the port number in the socket file name (.s.PGSQL.5432).
	// The server does not listen on TCP, so it cannot clash with other servers.
	defaultPort = 5432
	// maxSocketPath is the longest socket path we accept, in bytes. The kernel
	// limit is 107 bytes plus a NUL; stay well below it.
	maxSocketPath = 100
	// startTimeout is how long pg_ctl waits for the server to start or stop.
	startTimeout = 120 * time.Second
	// readyTimeout is how long Start waits for the server to accept
	// connections once pg_ctl reports it started.
	readyTimeout = 30 * time.Second
)

// Config describes a private cluster. Zero values are documented defaults.
type Config struct {
	// Dir is the cluster directory (required). It holds data/ (the data
	// directory), run/ (the unix socket directory, unless its path is too long
	// for a socket; see Cluster.SocketDir) and postgres.log (the server log).
	// It is created if missing. When running as root, Dir is made mode 0755 so
	// that the postgres user can reach its contents, and every parent of Dir
	// must already be traversable by the postgres user.
	Dir string
	// Log receives progress messages (package installation, initdb, server
	// start and stop). nil discards them.
	Log io.Writer
	// Ephemeral marks a throwaway cluster, as used by tests: initdb skips
	// syncing to disk and the server runs with fsync, synchronous_commit and
	// full_page_writes off, so a crash of the machine can corrupt it. The
	// default (false) keeps PostgreSQL's durable defaults, for a development
	// cluster that is kept between runs. The setting takes effect when Start
	// starts the server; a server that is already running keeps its settings.
	Ephemeral bool
}

// Cluster is a private PostgreSQL cluster in a directory.
type Cluster struct {
	dir       string // absolute cluster directory
	socketDir string // absolute unix socket directory
	port      int
	ephemeral bool
	log       io.Writer
	bin       binaries
	pg        pgUser // the postgres system user when running as root
}

// ErrNotInstalled is returned (wrapped) when the PostgreSQL server binaries
// are missing and cannot be installed because the process is not root.
var ErrNotInstalled = errors.New("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found under " +
	"/usr/lib/postgresql/*/bin or on PATH: install them with `sudo apt-get install postgresql`, " +
	"or set DATABASE_URL to use an existing PostgreSQL server instead")

// Start makes sure a private cluster is running in cfg.Dir and returns it.
//
// It finds the PostgreSQL server binaries (the highest major version under
// /usr/lib/postgresql/<major>/bin, else initdb, pg_ctl and postgres on PATH);
// when they are missing and the process is root it installs them with
// apt-get, otherwise it returns an error wrapping ErrNotInstalled. It runs
// initdb into Dir/data unless that is already initialised, and starts the
// server with pg_ctl unless it is already running, listening only on a unix
// socket (no TCP), logging to Dir/postgres.log. It returns once the server
// accepts connections. If a server for Dir is already running (started by an
// earlier call or by another process), Start just returns it.
//
// Concurrent calls for the same Dir, from this or other processes, are
// serialised with a lock file.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Dir == "" {
		return nil, errors.New("devdb: Config.Dir is required")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("devdb: cluster directory: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("devdb: create cluster directory: %w", err)
	}
	c := &Cluster{dir: dir, port: defaultPort, ephemeral: cfg.Ephemeral, log: cfg.Log}
	if c.log == nil {
		c.log = io.Discard
	}

	unlock, err := lockDir(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("devdb: lock %s: %w", dir, err)
	}
	defer unlock()

	if err := c.findBinaries(ctx, true); err != nil {
		return nil, err
	}
	if err := c.lookupUser(); err != nil {
		return nil, err
	}
	if err := c.prepareDir(ctx); err != nil {
		return nil, err
	}
	if err := c.chooseSocketDir(true); err != nil {
		return nil, err
	}

	running, err := c.running(ctx)
	if err != nil {
		return nil, err
	}
	if running {
		c.adoptRunning()
		if err := c.waitReady(ctx, 5*time.Second); err != nil {
			return nil, fmt.Errorf("devdb: server for %s is running but does not accept connections on %s: %w", c.dir, c.SocketDir(), err)
		}
		c.logf("PostgreSQL already running in %s", c.dir)
		return c, nil
	}

	if !c.initialised() {
		if err := c.initdb(ctx); err != nil {
			return nil, err
		}
	}
	if err := c.start(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Open returns the cluster in cfg.Dir without installing, initialising or
// starting anything, for example to Stop a cluster started by another
// process. The binaries must be installed.
func Open(cfg Config) (*Cluster, error) {
	if cfg.Dir == "" {
		return nil, errors.New("devdb: Config.Dir is required")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("devdb: cluster directory: %w", err)
	}
	c := &Cluster{dir: dir, port: defaultPort, ephemeral: cfg.Ephemeral, log: cfg.Log}
	if c.log == nil {
		c.log = io.Discard
	}
	if err := c.findBinaries(context.Background(), false); err != nil {
		return nil, err
	}
	if err := c.lookupUser(); err != nil {
		return nil, err
	}
	if err := c.chooseSocketDir(false); err != nil {
		return nil, err
	}
	c.adoptRunning()
	return c, nil
}

// Dir returns the absolute cluster directory.
func (c *Cluster) Dir() string { return c.dir }

// SocketDir returns the absolute directory holding the server's unix socket:
// Dir/run, or a short directory under the system temporary directory when
// Dir/run is too long for a unix socket path. The choice is recorded in the
// file Dir/socketdir so later calls find the same socket.
func (c *Cluster) SocketDir() string { return c.socketDir }

// Port returns the port number of the server's unix socket.
func (c *Cluster) Port() int { return c.port }

// URL returns a libpq/pgx connection URL for database on this cluster's
// socket, as the postgres superuser, e.g.
// "postgres://postgres@/tpf?host=/abs/path/run&port=5432&sslmode=disable".
// An empty database means "postgres".
func (c *Cluster) URL(database string) string {
	if database == "" {
		database = "postgres"
	}
	u := url.URL{
		Scheme: "postgres",
		User:   url.User(superuser),
		Path:   "/" + database,
	}
	// Slashes are legal in a query; keep the socket path readable.
	host := strings.ReplaceAll(url.QueryEscape(c.socketDir), "%2F", "/")
	u.RawQuery = "host=" + host + "&port=" + strconv.Itoa(c.port) + "&sslmode=disable"
	return u.String()
}

// CreateDatabase creates database name unless it exists, copying template
// (empty means PostgreSQL's default, template1). The template must have no
// other connections while it is copied.
func (c *Cluster) CreateDatabase(ctx context.Context, name, template string) error {
	if name == "" || strings.ContainsRune(name, 0) || strings.ContainsRune(template, 0) {
		return fmt.Errorf("devdb: create database: invalid name %q", name)
	}
	exists, err := c.databaseExists(ctx, name)
	if err != nil {
		return fmt.Errorf("devdb: create database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	stmt := "CREATE DATABASE " + quoteIdent(name)
	if template != "" {
		stmt += " TEMPLATE " + quoteIdent(template)
	}
	if _, err := c.psql(ctx, "postgres", stmt); err != nil {
		// Another process may have created it meanwhile.
		if exists, err2 := c.databaseExists(ctx, name); err2 == nil && exists {
			return nil
		}
		return fmt.Errorf("devdb: create database %s: %w", name, err)
	}
	c.logf("created database %s", name)
	return nil
}

// Stop stops the server (pg_ctl stop -m fast) and waits until it has exited.
// Stopping a cluster that is not running, or was never initialised, does
// nothing, so Stop is safe to call twice.
func (c *Cluster) Stop() error {
	if !c.initialised() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout+30*time.Second)
	defer cancel()
	unlock, err := lockDir(ctx, c.dir)
	if err != nil {
		return fmt.Errorf("devdb: lock %s: %w", c.dir, err)
	}
	defer unlock()

	running, err := c.running(ctx)
	if err != nil || !running {
		return err
	}
	c.logf("stopping PostgreSQL in %s", c.dir)
	cmd := command(ctx, c.dir, c.bin.pgCtl, "-D", c.dataDir(), "-m", "fast", "-w",
		"-t", strconv.Itoa(int(startTimeout/time.Second)), "stop")
	if err := run(cmd, c.log); err != nil {
		return fmt.Errorf("devdb: stop server in %s: %w%s", c.dir, err, c.logTail())
	}
	if c.ephemeral && c.socketDir != c.defaultSocketDir() {
		// The short socket directory is empty now; don't leave it behind in
		// the temporary directory. Start recreates it.
		_ = os.Remove(c.socketDir)
	}
	return nil
}

func (c *Cluster) dataDir() string          { return filepath.Join(c.dir, "data") }
func (c *Cluster) logFile() string          { return filepath.Join(c.dir, "postgres.log") }
func (c *Cluster) defaultSocketDir() string { return filepath.Join(c.dir, "run") }
func (c *Cluster) socketRecord() string     { return filepath.Join(c.dir, "socketdir") }

func (c *Cluster) logf(format string, args ...any) {
	fmt.Fprintf(c.log, "devdb: "+format+"\n", args...)
}

// initialised reports whether Dir/data holds an initialised cluster.
func (c *Cluster) initialised() bool {
	_, err := os.Stat(filepath.Join(c.dataDir(), "PG_VERSION"))
	return err == nil
}

// dataMajor returns the major version of an existing data directory, or "".
func (c *Cluster) dataMajor() string {
	b, err := os.ReadFile(filepath.Join(c.dataDir(), "PG_VERSION"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// prepareDir makes the cluster directory usable by the server's user.
func (c *Cluster) prepareDir(ctx context.Context) error {
	if !c.pg.root {
		return nil
	}
	info, err := os.Stat(c.dir)
	if err != nil {
		return fmt.Errorf("devdb: %w", err)
	}
	if info.Mode().Perm()&0o005 != 0o005 {
		if err := os.Chmod(c.dir, 0o755); err != nil {
			return fmt.Errorf("devdb: make cluster directory readable by user %s: %w", c.pg.name, err)
		}
	}
	// Every parent must be traversable by the postgres user. Ask the system
	// (this honours supplementary groups and ACLs) and explain on failure.
	if testBin, err := exec.LookPath("test"); err == nil {
		out, err := command(ctx, "/", testBin, "-x", c.dir).CombinedOutput()
		if err != nil {
			hint := c.pg.untraversable(c.dir)
			if hint != "" {
				hint = ": " + hint
			}
			if o := strings.TrimSpace(string(out)); o != "" {
				hint += " (" + o + ")"
			}
			return fmt.Errorf("devdb: user %s cannot reach cluster directory %s%s: PostgreSQL cannot run as root, so the server runs as %s; make every parent directory traversable (e.g. chmod o+x) or choose another directory",
				c.pg.name, c.dir, hint, c.pg.name)
		}
	}
	return nil
}

// chooseSocketDir sets c.socketDir: the recorded choice if there is one,
// else Dir/run if its path is short enough, else a short directory under the
// temporary directory derived from Dir (recorded when record is true).
func (c *Cluster) chooseSocketDir(record bool) error {
	if b, err := os.ReadFile(c.socketRecord()); err == nil {
		if p := strings.TrimSpace(string(b)); filepath.IsAbs(p) && socketDirOK(p) {
			c.socketDir = p
			return nil
		}
	}
	if def := c.defaultSocketDir(); socketDirOK(def) {
		c.socketDir = def
		return nil
	}
	tmp := os.TempDir()
	sum := sha256.Sum256([]byte(c.dir))
	name := "tpf-devdb-" + hex.EncodeToString(sum[:6])
	if !socketDirOK(filepath.Join(tmp, name)) {
		tmp = "/tmp"
	}
	c.socketDir = filepath.Join(tmp, name)
	if record {
		if err := os.WriteFile(c.socketRecord(), []byte(c.socketDir+"\n"), 0o644); err != nil {
			return fmt.Errorf("devdb: record socket directory: %w", err)
		}
	}
	return nil
}

// socketDirOK reports whether a server socket in dir has a short enough path
// and dir can be given to unix_socket_directories without quoting trouble.
func socketDirOK(dir string) bool {
	return len(dir)+len("/.s.PGSQL.")+len(strconv.Itoa(defaultPort)) < maxSocketPath &&
		!strings.ContainsAny(dir, ",\"\\\n")
}

// prepareSocketDir creates the socket directory, owned by the server's user.
func (c *Cluster) prepareSocketDir() error {
	if c.socketDir == c.defaultSocketDir() {
		if err := os.MkdirAll(c.socketDir, 0o755); err != nil {
			return fmt.Errorf("devdb: create socket directory: %w", err)
		}
	} else {
		// A fixed name in a shared temporary directory: create it exclusively,
		// or accept an existing one only if it is a real directory owned by
		// us (or the postgres user) and not writable by others.
		err := os.Mkdir(c.socketDir, 0o755)
		if errors.Is(err, fs.ErrExist) {
			err = c.pg.checkOwnDir(c.socketDir)
		}
		if err != nil {
			return fmt.Errorf("devdb: socket directory: %w", err)
		}
	}
	if err := c.pg.chown(c.socketDir); err != nil {
		return fmt.Errorf("devdb: socket directory: %w", err)
	}
	return nil
}

// running reports whether the server for the data directory is running.
func (c *Cluster) running(ctx context.Context) (bool, error) {
	if !c.initialised() {
		return false, nil
	}
	cmd := command(ctx, c.dir, c.bin.pgCtl, "-D", c.dataDir(), "status")
	out, err := cmd.CombinedOutput()
	if err == nil {
		return true, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && (ee.ExitCode() == 3 || ee.ExitCode() == 4) {
		return false, nil // 3: not running, 4: no accessible data directory
	}
	return false, fmt.Errorf("devdb: pg_ctl status in %s: %w: %s", c.dir, err, strings.TrimSpace(string(out)))
}

// adoptRunning takes socket directory and port from a running server's
// postmaster.pid, so the URL is right even if the server was started with
// other settings.
func (c *Cluster) adoptRunning() {
	f, err := os.Open(filepath.Join(c.dataDir(), "postmaster.pid"))
	if err != nil {
		return
	}
	defer f.Close()
	// Lines: pid, data dir, start time, port, first socket dir, listen
	// address, shared memory key, status.
	var lines []string
	s := bufio.NewScanner(f)
	for s.Scan() && len(lines) < 5 {
		lines = append(lines, s.Text())
	}
	if len(lines) < 5 {
		return
	}
	port, err := strconv.Atoi(strings.TrimSpace(lines[3]))
	sock := strings.TrimSpace(lines[4])
	if err != nil || port <= 0 || !filepath.IsAbs(sock) {
		return
	}
	c.port, c.socketDir = port, sock
}

// initdb initialises Dir/data.
func (c *Cluster) initdb(ctx context.Context) error {
	data := c.dataDir()
	if err := os.Mkdir(data, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("devdb: create data directory: %w", err)
	}
	if err := c.pg.chown(data); err != nil {
		return fmt.Errorf("devdb: data directory: %w", err)
	}
	c.logf("initialising PostgreSQL cluster in %s (%s)", data, c.bin.initdb)
	args := []string{"-D", data, "-U", superuser, "--auth=trust", "--encoding=UTF8", "--locale=C"}
	if c.ephemeral {
		args = append(args, "--no-sync")
	}
	if err := run(command(ctx, c.dir, c.bin.initdb, args...), c.log); err != nil {
		return fmt.Errorf("devdb: initdb %s: %w", data, err)
	}
	return nil
}

// start starts the server and waits until it accepts connections.
func (c *Cluster) start(ctx context.Context) error {
	if err := c.prepareSocketDir(); err != nil {
		return err
	}
	// pg_ctl -l needs a log file the server's user can write.
	f, err := os.OpenFile(c.logFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("devdb: server log: %w", err)
	}
	f.Close()
	if err := c.pg.chown(c.logFile()); err != nil {
		return fmt.Errorf("devdb: server log: %w", err)
	}

	// pg_ctl passes -o to the server through /bin/sh, so quote for the shell.
	opts := fmt.Sprintf("-k %s -c listen_addresses='' -p %d", shellQuote(c.socketDir), c.port)
	if c.ephemeral {
		opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	}
	c.logf("starting PostgreSQL in %s (socket %s, log %s)", c.dir, c.socketDir, c.logFile())
	cmd := command(ctx, c.dir, c.bin.pgCtl, "-D", c.dataDir(), "-l", c.logFile(), "-w",
		"-t", strconv.Itoa(int(startTimeout/time.Second)), "-o", opts, "start")
	if err := run(cmd, c.log); err != nil {
		return fmt.Errorf("devdb: start server in %s: %w%s", c.dir, err, c.logTail())
	}
	if err := c.waitReady(ctx, readyTimeout); err != nil {
		return fmt.Errorf("devdb: server in %s started but does not accept connections on %s: %w%s", c.dir, c.socketDir, err, c.logTail())
	}
	return nil
}

// waitReady polls until the server answers a query or timeout passes.
func (c *Cluster) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		_, err := c.psql(ctx, "postgres", "SELECT 1")
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// databaseExists reports whether database name exists.
func (c *Cluster) databaseExists(ctx context.Context, name string) (bool, error) {
	out, err := c.psql(ctx, "postgres", "SELECT 1 FROM pg_database WHERE datname = "+quoteLiteral(name))
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(out) == "1", nil
}

// psql runs one SQL statement in database through this cluster's socket and
// returns its unaligned, tuples-only output.
func (c *Cluster) psql(ctx context.Context, database, sql string) (string, error) {
	psql, err := c.bin.client("psql")
	if err != nil {
		return "", err
	}
	cmd := command(ctx, c.dir, psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		"-h", c.socketDir, "-p", strconv.Itoa(c.port), "-U", superuser, "-d", database, "-c", sql)
	var stdout strings.Builder
	cmd.Stdout = &stdout
	var stderr tailBuffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("psql: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// logTail returns the last lines of the server log, formatted for appending
// to an error message, or "".
func (c *Cluster) logTail() string {
	b, err := os.ReadFile(c.logFile())
	if err != nil || len(b) == 0 {
		return ""
	}
	const maxBytes = 4096
	if len(b) > maxBytes {
		b = b[len(b)-maxBytes:]
		if i := strings.IndexByte(string(b), '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return "\n--- tail of " + c.logFile() + " ---\n" + strings.Join(lines, "\n")
}

// quoteIdent quotes s as an SQL identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// quoteLiteral quotes s as an SQL string literal (standard_conforming_strings).
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
