package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/store"
)

// The quickstart's defaults: one account, one region on this machine and one
// router to try the API on.
const (
	quickAccount = "default"
	quickRegion  = "local"
	quickRouter  = "demo"
)

// quickState is what the quickstart keeps between starts, in --state: the
// secrets it can no longer read back from the database.
type quickState struct {
	dir string
}

func (q quickState) path(name string) string { return filepath.Join(q.dir, name) }

func (q quickState) read(name string) string {
	b, err := os.ReadFile(q.path(name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func (q quickState) write(name, value string) error {
	if err := os.MkdirAll(q.dir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(q.path(name), []byte(value+"\n"), 0o600)
}

func runQuickstart(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	dir := fs.String("state", ".data", "directory for the quickstart's token files")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("quickstart", rest); err != nil {
		return err
	}
	// A local try-out admits connections from this machine, and serves the
	// local region's entry point on loopback.
	defaults := map[string]string{"TPF_ALLOW_SOURCES": "127.0.0.0/8", "TPF_EDGE_REGION": quickRegion, "TPF_EDGE_BIND": "127.0.0.1"}
	env := func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return defaults[name]
	}
	set, err := readSettings(env)
	if err != nil {
		return err
	}
	pool, err := openPool(ctx, set.databaseURL, set.pool)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := store.Migrate(ctx, pool); err != nil {
		return err
	}
	state := quickState{dir: *dir}
	token, routerID, err := bootstrap(ctx, pool, state)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, `
tpf is starting on http://%[1]s

  API token:  %[2]s   (kept in %[3]s)
  router:     %[4]s (%[5]s, region %[6]s)

Create a forward to port 22 of 192.168.88.43 behind the demo router, for two
hours, reachable from this machine:

  curl -s -X POST http://%[1]s/api/routers/%[4]s/transient-forwarding \
    -H 'Authorization: Bearer %[2]s' -H 'Content-Type: application/json' \
    -d '{"expire_after_minutes":120,"dst_port":22,"dst_address":"192.168.88.43","allow_from":"127.0.0.1"}'

List the live forwards:

  curl -s http://%[1]s/api/routers/%[4]s/transient-forwarding -H 'Authorization: Bearer %[2]s'

Or sign in to the fleet views at http://%[1]s/ with the token, or use the command line:

  TPF_URL=http://%[1]s TPF_TOKEN=%[2]s bin/tpfctl status

No agent runs for the demo router here, so its forwards stay "pending": the API,
the views and the expiry clock work, nothing reaches a device. To see the whole
path (an emulated router with its agent, and a device to reach), stop this and
run make demo; to connect a real router, add it (POST /api/routers) and install
its agent (container/README.md). Ctrl-C stops the controller; make stop stops
its PostgreSQL too.

`, set.listen, token, state.path("api-token"), routerID, quickRouter, quickRegion)
	return serve(ctx, pool, set, false, set.logger(stderr), nil)
}

// bootstrap creates what is missing of the default account (with a token
// kept in state), the local region and the demo router, and returns the
// token and the router's id.
func bootstrap(ctx context.Context, pool *pgxpool.Pool, state quickState) (token string, router uuid.UUID, err error) {
	st := store.New(pool)
	t := now()
	token = state.read("api-token")
	if _, err := st.Account(ctx, quickAccount); errors.Is(err, fleet.ErrNotFound) {
		if _, token, err = st.CreateAccount(ctx, quickAccount, t); err != nil {
			return "", uuid.Nil, err
		}
		if err := state.write("api-token", token); err != nil {
			return "", uuid.Nil, err
		}
	} else if err != nil {
		return "", uuid.Nil, err
	}
	p, err := st.Authenticate(ctx, token)
	if errors.Is(err, fleet.ErrUnauthenticated) {
		// The account exists but its quickstart token was lost: add one.
		if token, err = st.CreateToken(ctx, quickAccount, "quickstart", t); err != nil {
			return "", uuid.Nil, err
		}
		if err := state.write("api-token", token); err != nil {
			return "", uuid.Nil, err
		}
		p, err = st.Authenticate(ctx, token)
	}
	if err != nil {
		return "", uuid.Nil, err
	}

	if _, err := st.Region(ctx, quickRegion); errors.Is(err, fleet.ErrNotFound) {
		_, err = st.CreateRegion(ctx, fleet.Region{
			ID: quickRegion, EntryPoint: "127.0.0.1", Ports: fleet.PortRange{Min: 49152, Max: 65535},
			EdgeTunnelAddress: netip.MustParseAddr("127.0.0.1"), CreatedAt: t,
		})
		if err != nil {
			return "", uuid.Nil, err
		}
	} else if err != nil {
		return "", uuid.Nil, err
	}

	routers, err := st.Routers(ctx, p.AccountID)
	if err != nil {
		return "", uuid.Nil, err
	}
	for _, r := range routers {
		if r.Name == quickRouter {
			return token, r.ID, nil
		}
	}
	// The demo router's tunnel address is another loopback address, so that
	// an emulated router can listen there beside the edge on 127.0.0.1.
	r, agentToken, err := forwards.New(st).CreateRouter(ctx, p, forwards.NewRouter{
		Name: quickRouter, Region: quickRegion, TunnelAddress: netip.MustParseAddr("127.0.0.2"),
	}, t)
	if err != nil {
		return "", uuid.Nil, err
	}
	if err := state.write("agent-token", agentToken); err != nil {
		return "", uuid.Nil, err
	}
	return token, r.ID, nil
}
