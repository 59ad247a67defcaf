package devdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// pgSystemUser is the system user PostgreSQL programs run as when this
// process runs as root.
const pgSystemUser = "postgres"

// command builds an *exec.Cmd running bin with args in dir. PostgreSQL
// refuses to run as root, so when this process is root (euid 0) the command
// is wrapped as `runuser -u postgres -- bin args...`; otherwise it runs as
// the current user. PG* environment variables (and PSQLRC) are removed so
// the caller's environment cannot point the command at another server.
// dir must be accessible to the user the command runs as.
func command(ctx context.Context, dir, bin string, args ...string) *exec.Cmd {
	name, argv := bin, args
	if os.Geteuid() == 0 {
		name = "runuser"
		if p, err := exec.LookPath("runuser"); err == nil {
			name = p
		}
		argv = append([]string{"-u", pgSystemUser, "--", bin}, args...)
	}
	cmd := exec.CommandContext(ctx, name, argv...)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	// pg_ctl start leaves a server running; never hang on pipes it might hold.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// cleanEnv returns the environment without libpq/PostgreSQL settings.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "PSQLRC=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PGCLIENTENCODING=UTF8")
}

// run runs cmd, streaming its output to progress, and on failure returns an
// error that names the command and includes the end of its output.
func run(cmd *exec.Cmd, progress io.Writer) error {
	var tail tailBuffer
	w := io.MultiWriter(progress, &tail)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		out := strings.TrimSpace(tail.String())
		if out != "" {
			out = "\n" + out
		}
		return fmt.Errorf("%s: %w%s", describe(cmd), err, out)
	}
	return nil
}

// describe names cmd for error messages, without the runuser wrapper.
func describe(cmd *exec.Cmd) string {
	args := cmd.Args
	for i, a := range args {
		if a == "--" && filepath.Base(args[0]) == "runuser" {
			args = args[i+1:]
			break
		}
	}
	if len(args) == 0 {
		return cmd.Path
	}
	return filepath.Base(args[0]) + " " + strings.Join(args[1:], " ")
}

// tailBuffer is a concurrency-safe io.Writer keeping the last 8 KiB written.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	const max = 8 << 10
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// pgUser is the user the server runs as when this process is root. When not
// root, root is false and files are left owned by the current user.
type pgUser struct {
	root     bool
	name     string
	uid, gid int
}

// lookupUser fills c.pg when running as root.
func (c *Cluster) lookupUser() error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup(pgSystemUser)
	if err != nil {
		return fmt.Errorf("devdb: running as root, but PostgreSQL refuses to run as root and there is no %q user to run it as (%v): install the postgresql package, which creates it, or run as another user", pgSystemUser, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("devdb: user %s: %w", pgSystemUser, err)
	}
	c.pg = pgUser{root: true, name: pgSystemUser, uid: uid, gid: gid}
	return nil
}

// chown gives path to the postgres user when running as root.
func (p pgUser) chown(path string) error {
	if !p.root {
		return nil
	}
	return os.Lchown(path, p.uid, p.gid)
}

// checkOwnDir checks that an existing path is a directory (not a symlink)
// owned by this process's user or the postgres user and not writable by
// group or others, so it is safe to put the server socket there.
func (p pgUser) checkOwnDir(path string) error {
	info, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("%s exists and is not a directory", path)
	}
	if info.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s exists and is writable by other users", path)
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		uid := int(st.Uid)
		if uid != os.Geteuid() && !(p.root && uid == p.uid) {
			return fmt.Errorf("%s exists and belongs to another user (uid %d)", path, uid)
		}
	}
	return nil
}

// untraversable names the first directory from / down to dir that the
// postgres user cannot traverse judging by owner, primary group and mode, or
// returns "".
func (p pgUser) untraversable(dir string) string {
	var chain []string
	for d := dir; ; d = filepath.Dir(d) {
		chain = append(chain, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	for i := len(chain) - 1; i >= 0; i-- {
		info, err := os.Stat(chain[i])
		if err != nil {
			return err.Error()
		}
		perm := info.Mode().Perm()
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return ""
		}
		switch {
		case int(st.Uid) == p.uid:
			if perm&0o100 != 0 {
				continue
			}
		case int(st.Gid) == p.gid:
			if perm&0o010 != 0 {
				continue
			}
		case perm&0o001 != 0:
			continue
		}
		return fmt.Sprintf("%s has mode %v", chain[i], perm)
	}
	return ""
}
