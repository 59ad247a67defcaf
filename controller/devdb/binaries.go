package devdb

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// debianRoot holds one bin directory per installed major version
// (/usr/lib/postgresql/<major>/bin), as laid out by Debian's packages.
// A variable for tests.
var debianRoot = "/usr/lib/postgresql"

// serverPrograms must all be present for a usable installation.
var serverPrograms = []string{"initdb", "pg_ctl", "postgres"}

// binaries locates the PostgreSQL programs.
type binaries struct {
	dir                     string // directory of the server programs
	initdb, pgCtl, postgres string
}

// client returns the path of a client program (psql, createdb, ...): the
// one next to the server programs, else the one on PATH.
func (b binaries) client(name string) (string, error) {
	if p := filepath.Join(b.dir, name); isExecutable(p) {
		return p, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("devdb: %s not found in %s or on PATH (install the postgresql-client package)", name, b.dir)
	}
	return p, nil
}

// findBinaries sets c.bin. Under debianRoot it takes the highest major
// version, except that an existing data directory's major version is
// preferred when installed; then it tries PATH. If nothing is found and
// install is true and the process is root, it installs the postgresql
// package with apt-get and looks again.
func (c *Cluster) findBinaries(ctx context.Context, install bool) error {
	if b, ok := lookBinaries(c.dataMajor()); ok {
		c.bin = b
		return nil
	}
	if !install || os.Geteuid() != 0 {
		return fmt.Errorf("devdb: %w", ErrNotInstalled)
	}
	if err := installPostgres(ctx, c.log); err != nil {
		return err
	}
	b, ok := lookBinaries(c.dataMajor())
	if !ok {
		return fmt.Errorf("devdb: installed the postgresql package but still %w", ErrNotInstalled)
	}
	c.bin = b
	return nil
}

// lookBinaries finds the server programs, preferring major version prefer
// under debianRoot if it is installed.
func lookBinaries(prefer string) (binaries, bool) {
	type install struct {
		version []int
		major   string
		dir     string
	}
	var found []install
	entries, _ := os.ReadDir(debianRoot)
	for _, e := range entries {
		v, ok := parseVersion(e.Name())
		dir := filepath.Join(debianRoot, e.Name(), "bin")
		if ok && hasServer(dir) {
			found = append(found, install{v, e.Name(), dir})
		}
	}
	if len(found) > 0 {
		best := slices.MaxFunc(found, func(a, b install) int { return slices.Compare(a.version, b.version) })
		for _, f := range found {
			if f.major == prefer {
				best = f
			}
		}
		return binariesIn(best.dir), true
	}

	var b binaries
	for _, name := range serverPrograms {
		p, err := exec.LookPath(name)
		if err != nil {
			return binaries{}, false
		}
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		switch name {
		case "initdb":
			b.initdb = p
		case "pg_ctl":
			b.pgCtl = p
		case "postgres":
			b.postgres = p
		}
	}
	// pg_ctl runs the postgres next to its real location; look for client
	// programs there too.
	b.dir = filepath.Dir(b.pgCtl)
	if real, err := filepath.EvalSymlinks(b.pgCtl); err == nil {
		b.dir = filepath.Dir(real)
	}
	return b, true
}

func binariesIn(dir string) binaries {
	return binaries{
		dir:      dir,
		initdb:   filepath.Join(dir, "initdb"),
		pgCtl:    filepath.Join(dir, "pg_ctl"),
		postgres: filepath.Join(dir, "postgres"),
	}
}

func hasServer(dir string) bool {
	for _, name := range serverPrograms {
		if !isExecutable(filepath.Join(dir, name)) {
			return false
		}
	}
	return true
}

func isExecutable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && !info.IsDir() && info.Mode().Perm()&0o111 != 0
}

// parseVersion parses "15" or "9.6" into comparable numbers.
func parseVersion(s string) ([]int, bool) {
	var v []int
	for _, part := range strings.Split(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 {
			return nil, false
		}
		v = append(v, n)
	}
	return v, true
}

// installPostgres installs Debian's postgresql package. Only for root.
func installPostgres(ctx context.Context, progress io.Writer) error {
	apt, err := exec.LookPath("apt-get")
	if err != nil {
		return fmt.Errorf("devdb: %w (apt-get is not available to install them)", ErrNotInstalled)
	}
	fmt.Fprintf(progress, "devdb: PostgreSQL server binaries not found; installing the postgresql package with apt-get\n")
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{
		{"update"},
		{"install", "-y", "postgresql"},
	} {
		cmd := exec.CommandContext(ctx, apt, args...)
		cmd.Env = env
		if err := run(cmd, progress); err != nil {
			return fmt.Errorf("devdb: install PostgreSQL: %w", err)
		}
	}
	return nil
}
