package routerostest_test

import (
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-routeros/routeros/v3"

	"github.com/tpf-dev/tpf/agent/routerostest"
)

// These tests drive the emulator with the real go-routeros client, the way
// the tpf agent does: its own net.Conn with deadlines, NewClient, Login,
// then synchronous Run calls.

// dialClient connects a go-routeros client and logs in, returning the
// login error so tests can check failures too.
func dialClient(t testing.TB, srv *routerostest.Server, user, password string) (*routeros.Client, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", srv.Addr(), testTimeout)
	if err != nil {
		t.Fatalf("dial emulator: %v", err)
	}
	conn.SetDeadline(time.Now().Add(testTimeout))
	c, err := routeros.NewClient(conn)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, c.Login(user, password)
}

// mustClient is dialClient for tests that expect the login to work.
func mustClient(t testing.TB, srv *routerostest.Server) *routeros.Client {
	t.Helper()
	c, err := dialClient(t, srv, "admin", "")
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	return c
}

func run(t testing.TB, c *routeros.Client, words ...string) *routeros.Reply {
	t.Helper()
	r, err := c.RunArgs(words)
	if err != nil {
		t.Fatalf("%s: %v", words[0], err)
	}
	return r
}

func TestClientLogin(t *testing.T) {
	t.Parallel()
	users := map[string]string{"tpf": "s3cret"}
	tests := []struct {
		name     string
		cfg      routerostest.Config
		password string
		wantErr  string // empty: login works
	}{
		{"plain", routerostest.Config{Users: users}, "s3cret", ""},
		{"plain wrong password", routerostest.Config{Users: users}, "nope", "invalid user name or password (6)"},
		{"legacy md5", routerostest.Config{Users: users, LegacyLogin: true, Version: "6.42.12"}, "s3cret", ""},
		{"legacy md5 wrong password", routerostest.Config{Users: users, LegacyLogin: true, Version: "6.42.12"}, "nope", "cannot log in"},
		{"v6 plain", routerostest.Config{Users: users, Version: "6.49.10"}, "s3cret", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, tt.cfg)
			c, err := dialClient(t, srv, "tpf", tt.password)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("login: got %v, want success", err)
				}
				run(t, c, "/system/identity/print")
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("login error: got %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestClientNATLifecycle(t *testing.T) {
	t.Parallel()
	srv := startServer(t, routerostest.Config{})
	c := mustClient(t, srv)

	foreign := srv.AddNAT(map[string]string{"chain": "dstnat", "action": "dst-nat", "protocol": "tcp",
		"dst-port": "80", "to-addresses": "192.168.88.10", "comment": "admin's rule"})
	r := run(t, c, "/ip/firewall/nat/add", "=chain=dstnat", "=action=dst-nat", "=protocol=tcp",
		"=in-interface=wg-mgmt", "=dst-port=10022", "=to-addresses=192.168.88.43", "=to-ports=22",
		"=comment=mgr:r1:ssh43", "=place-before="+foreign)
	id := r.Done.Map["ret"]
	if id != "*2" {
		t.Errorf("add ret: got %q, want *2", id)
	}
	r = run(t, c, "/ip/firewall/nat/add", "=chain=srcnat", "=action=masquerade", "=out-interface=bridge",
		"=protocol=tcp", "=src-address=10.99.0.0/24", "=dst-address=192.168.88.43", "=dst-port=22",
		"=comment=mgr:r1:ssh43")
	id2 := r.Done.Map["ret"]
	if got, want := ids(srv.NAT()), id+","+foreign+","+id2; got != want {
		t.Errorf("NAT order: got %s, want %s", got, want)
	}

	r = run(t, c, "/ip/firewall/nat/print", "=.proplist=.id,comment,to-ports", "?comment=mgr:r1:ssh43")
	if len(r.Re) != 2 {
		t.Fatalf("print ?comment=: got %d rows, want 2", len(r.Re))
	}
	if got := r.Re[0].Map; got[".id"] != id || got["comment"] != "mgr:r1:ssh43" || got["to-ports"] != "22" {
		t.Errorf("first row: got %v, want .id=%s comment=mgr:r1:ssh43 to-ports=22", got, id)
	}
	if _, ok := r.Re[1].Map["to-ports"]; ok {
		t.Errorf("second row has to-ports though it was never set: %v", r.Re[1].Map)
	}

	run(t, c, "/ip/firewall/nat/set", "=.id="+id, "=to-ports=2222", "=disabled=yes")
	rule := srv.NAT()[0]
	if rule["to-ports"] != "2222" || rule["disabled"] != "true" {
		t.Errorf("after set: got to-ports=%q disabled=%q, want 2222 and true", rule["to-ports"], rule["disabled"])
	}

	run(t, c, "/ip/firewall/nat/remove", "=.id="+id+","+id2)
	if got := ids(srv.NAT()); got != foreign {
		t.Errorf("after remove: got ids %s, want %s", got, foreign)
	}
	_, err := c.Run("/ip/firewall/nat/remove", "=.id="+id)
	if err == nil || !strings.Contains(err.Error(), "no such item") {
		t.Errorf("remove of a removed id: got %v, want an error mentioning no such item", err)
	}
	// The connection is still in step after the trap.
	r = run(t, c, "/ip/firewall/nat/print", "=.proplist=comment")
	if len(r.Re) != 1 || r.Re[0].Map["comment"] != "admin's rule" {
		t.Errorf("final print: got %v, want the foreign rule only", r)
	}
	if got := srv.Writes(); got != 4 {
		t.Errorf("Writes: got %d, want 4 (two adds, a set, a remove)", got)
	}
}

func TestClientEmptyPrint(t *testing.T) {
	t.Parallel()
	for _, version := range []string{"6.49.10", "7.18.2"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			c := mustClient(t, startServer(t, routerostest.Config{Version: version}))
			r := run(t, c, "/ip/firewall/nat/print", "=.proplist=.id", "?comment=mgr:r1:none")
			if len(r.Re) != 0 || r.Done == nil {
				t.Errorf("print of nothing: got %d rows, done %v; want 0 rows and !done", len(r.Re), r.Done)
			}
		})
	}
}

func TestClientConntrack(t *testing.T) {
	t.Parallel()
	srv := startServer(t, routerostest.Config{})
	c := mustClient(t, srv)
	ours := srv.AddConnection(map[string]string{"protocol": "tcp",
		"src-address": "10.99.0.2:50000", "dst-address": "10.99.0.1:10022",
		"reply-src-address": "192.168.88.43:22", "reply-dst-address": "10.99.0.2:50000",
		"tcp-state": "established", "dstnat": "true"})
	srv.AddConnection(map[string]string{"protocol": "udp",
		"src-address": "192.168.88.5:5353", "dst-address": "224.0.0.251:5353"})

	r := run(t, c, "/ip/firewall/connection/print", "=.proplist=.id,reply-src-address,tcp-state",
		"?dst-address=10.99.0.1:10022")
	if len(r.Re) != 1 || r.Re[0].Map[".id"] != ours || r.Re[0].Map["tcp-state"] != "established" {
		t.Fatalf("conntrack print: got %v, want one established row %s", r, ours)
	}
	run(t, c, "/ip/firewall/connection/remove", "=.id="+ours)
	if got := srv.Connections(); len(got) != 1 || got[0]["protocol"] != "udp" {
		t.Errorf("after remove: got %v, want the udp entry only", got)
	}
	if _, err := c.Run("/ip/firewall/connection/remove", "=.id="+ours); err == nil || !strings.Contains(err.Error(), "no such item") {
		t.Errorf("second remove: got %v, want no such item", err)
	}
}

func TestClientSystem(t *testing.T) {
	t.Parallel()
	srv := startServer(t, routerostest.Config{Version: "7.18.2", Identity: "r1", BoardName: "RB5009UG+S+"})
	c := mustClient(t, srv)
	r := run(t, c, "/system/resource/print")
	if len(r.Re) != 1 {
		t.Fatalf("resource print: got %d rows, want 1", len(r.Re))
	}
	res := r.Re[0].Map
	if res["version"] != "7.18.2 (stable)" || res["board-name"] != "RB5009UG+S+" {
		t.Errorf("resource: got version %q board-name %q, want \"7.18.2 (stable)\" and RB5009UG+S+", res["version"], res["board-name"])
	}
	for _, k := range []string{"uptime", "architecture-name", "cpu-load", "free-memory", "total-memory"} {
		if res[k] == "" {
			t.Errorf("resource: %s missing in %v", k, res)
		}
	}
	if _, ok := res[".id"]; ok {
		t.Errorf("resource has an .id, want none (singleton menu): %v", res)
	}
	r = run(t, c, "/system/identity/print")
	if len(r.Re) != 1 || r.Re[0].Map["name"] != "r1" {
		t.Errorf("identity: got %v, want name=r1", r)
	}
}

func TestClientUnknownCommand(t *testing.T) {
	t.Parallel()
	c := mustClient(t, startServer(t, routerostest.Config{}))
	_, err := c.Run("/system/routerboard/print")
	var devErr *routeros.DeviceError
	if !errors.As(err, &devErr) || devErr.Sentence.Map["message"] != "no such command prefix" {
		t.Errorf("unknown command: got %v, want the last trap (no such command prefix)", err)
	}
	run(t, c, "/system/identity/print") // still in step
}

func TestClientFaults(t *testing.T) {
	t.Parallel()
	add := []string{"/ip/firewall/nat/add", "=chain=srcnat", "=action=masquerade"}

	t.Run("fail next", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, routerostest.Config{})
		c := mustClient(t, srv)
		srv.SetFault(routerostest.Fault{FailNext: 1, FailMessage: "failure: not enough permissions"})
		if _, err := c.RunArgs(add); err == nil || !strings.Contains(err.Error(), "not enough permissions") {
			t.Errorf("faulted add: got %v, want the injected trap", err)
		}
		run(t, c, add...)
		if got := len(srv.NAT()); got != 1 {
			t.Errorf("rules: got %d, want 1 (the faulted add must not run)", got)
		}
	})

	t.Run("drop mid-reply", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, routerostest.Config{})
		c := mustClient(t, srv)
		srv.SetFault(routerostest.Fault{DropNext: 1})
		if _, err := c.RunArgs(add); err == nil {
			t.Error("add with a cut reply: got success, want an error")
		}
		if got := len(srv.NAT()); got != 1 {
			t.Errorf("rules: got %d, want 1 (the command ran before the cut)", got)
		}
		run(t, mustClient(t, srv), add...) // the next connection is fine
	})

	t.Run("delay", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, routerostest.Config{})
		srv.SetFault(routerostest.Fault{Delay: time.Hour})
		// The agent's deadlines are what turn a stall into an error.
		conn, err := net.DialTimeout("tcp", srv.Addr(), testTimeout)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(100 * time.Millisecond))
		c2, _ := routeros.NewClient(conn)
		t.Cleanup(func() { c2.Close() })
		var ne net.Error
		if err := c2.Login("admin", ""); !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("login against a stalled router: got %v, want a timeout", err)
		}
	})

	t.Run("drop connections", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, routerostest.Config{})
		c := mustClient(t, srv)
		srv.DropConnections()
		if _, err := c.RunArgs(add); err == nil {
			t.Error("command on a dropped connection: got success, want an error")
		}
		run(t, mustClient(t, srv), "/system/identity/print")
	})

	t.Run("refuse login", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, routerostest.Config{})
		srv.SetFault(routerostest.Fault{RefuseLogin: true})
		if _, err := dialClient(t, srv, "admin", ""); err == nil {
			t.Error("login: got success, want a refusal")
		}
		srv.SetFault(routerostest.Fault{})
		mustClient(t, srv)
	})

	t.Run("split writes", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, routerostest.Config{})
		srv.SetFault(routerostest.Fault{SplitWrites: true})
		c := mustClient(t, srv)
		run(t, c, add...)
		r := run(t, c, "/ip/firewall/nat/print")
		if len(r.Re) != 1 || r.Re[0].Map["action"] != "masquerade" {
			t.Errorf("print with split writes: got %v", r)
		}
	})
}

// TestClientConcurrent runs several clients at once; with -race it checks
// the locking, and afterwards that no add was lost or given a duplicate id.
func TestClientConcurrent(t *testing.T) {
	t.Parallel()
	srv := startServer(t, routerostest.Config{})
	const clients, adds = 8, 20
	var wg sync.WaitGroup
	for range clients {
		c := mustClient(t, srv)
		wg.Go(func() {
			for range adds {
				if _, err := c.Run("/ip/firewall/nat/add", "=chain=srcnat", "=action=masquerade"); err != nil {
					t.Errorf("add: %v", err)
					return
				}
				if _, err := c.Run("/ip/firewall/nat/print", "=.proplist=.id"); err != nil {
					t.Errorf("print: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	rows := srv.NAT()
	seen := map[string]bool{}
	for _, r := range rows {
		seen[r[".id"]] = true
	}
	if len(rows) != clients*adds || len(seen) != len(rows) {
		t.Errorf("got %d rows with %d distinct ids, want %d of each", len(rows), len(seen), clients*adds)
	}
	if got := len(srv.Commands()); got != clients*(1+2*adds) {
		t.Errorf("Commands: got %d, want %d", got, clients*(1+2*adds))
	}
}

func TestCloseTwice(t *testing.T) {
	t.Parallel()
	srv := routerostest.New(routerostest.Config{})
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	c := mustClient(t, srv)
	if err := srv.Close(); err != nil {
		t.Errorf("first Close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := c.Run("/system/identity/print"); err == nil {
		t.Error("command after Close: got success, want an error")
	}
}
