package tpfctl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/api"
	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/store/storetest"
	"github.com/tpf-dev/tpf/controller/tpfctl"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// harness is a running controller (the real API over a fresh PostgreSQL
// database holding storetest's fleet: region eu1, account acme, router r1)
// and the environment tpfctl runs in against it.
type harness struct {
	t     testing.TB
	fleet *storetest.Fleet
	url   string
	env   map[string]string
	prog  tpfctl.Program
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	f := storetest.NewFleet(t, time.Now())
	srv := httptest.NewServer(api.NewServer(f.Store, api.Config{}))
	t.Cleanup(srv.Close)
	return &harness{
		t: t, fleet: f, url: srv.URL,
		// HOME points at an empty directory: no config file unless a test
		// writes one.
		env:  map[string]string{"TPF_URL": srv.URL, "TPF_TOKEN": f.APIToken, "HOME": t.TempDir()},
		prog: tpfctl.Program{PollInterval: 10 * time.Millisecond},
	}
}

// result is one finished tpfctl run.
type result struct {
	code           int
	stdout, stderr string
}

func (h *harness) run(t testing.TB, args ...string) result {
	t.Helper()
	return h.runEnv(t, h.env, args...)
}

// runEnv runs tpfctl with exactly env as its environment.
func (h *harness) runEnv(t testing.TB, env map[string]string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := h.prog.Run(ctx, args, func(k string) string { return env[k] }, &stdout, &stderr)
	r := result{code: tpfctl.ExitCode(err), stdout: stdout.String(), stderr: stderr.String()}
	if strings.Contains(r.stdout+r.stderr, h.fleet.APIToken) {
		t.Errorf("tpfctl %s printed the API token:\n%s%s", strings.Join(args, " "), r.stdout, r.stderr)
	}
	if err != nil && r.stderr == "" {
		t.Errorf("tpfctl %s: got exit %d with nothing on stderr", strings.Join(args, " "), r.code)
	}
	return r
}

// want fails the test unless the run exited with code.
func (r result) want(t testing.TB, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("got exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

func (r result) wantOut(t testing.TB, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(r.stdout, p) {
			t.Errorf("stdout lacks %q; got:\n%s", p, r.stdout)
		}
	}
}

func (r result) wantErr(t testing.TB, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(r.stderr, p) {
			t.Errorf("stderr lacks %q; got:\n%s", p, r.stderr)
		}
	}
}

func decode[T any](t testing.TB, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return v
}

func (h *harness) createJSON(args ...string) tpfctl.Forward {
	h.t.Helper()
	base := []string{"forwards", "create", "--router", "r1", "--to", "192.168.88.43:22", "--for", "2h", "--allow-from", "81.2.69.0/24", "-o", "json"}
	r := h.run(h.t, append(base, args...)...).want(h.t, tpfctl.ExitOK)
	return decode[tpfctl.Forward](h.t, r.stdout)
}

// pendingForward waits until the store holds a live forward on r1 and
// answers it: how a test finds the forward a running `create --wait` made.
func (h *harness) pendingForward() fleet.Forward {
	h.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		list, err := h.fleet.Store.LiveForwards(ctx, h.fleet.Principal.AccountID, h.fleet.Router.ID, time.Now())
		if err != nil {
			h.t.Fatal(err)
		}
		if len(list) > 0 {
			return list[0]
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatal("no forward was created")
	return fleet.Forward{}
}

// report is the router's agent reporting results for forwards.
func (h *harness) report(results ...syncproto.Result) {
	h.t.Helper()
	var present []string
	for _, r := range results {
		if r.State == syncproto.StateApplied {
			present = append(present, r.ID)
		}
	}
	rt, err := h.fleet.Store.Router(context.Background(), h.fleet.Principal.AccountID, h.fleet.Router.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	_, err = h.fleet.Service.ApplyReport(context.Background(), h.fleet.Router.ID, syncproto.Report{
		Revision: rt.Revision, AgentVersion: "v1.4.2", Results: results, Present: present,
	}, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
}

func TestForwardLifecycle(t *testing.T) {
	t.Parallel()
	h := newHarness(t)

	// The human answer leads with where to connect.
	r := h.run(t, "forwards", "create", "--router", "r1", "--to", "192.168.88.43:22", "--for", "2h", "--allow-from", "81.2.69.7").want(t, tpfctl.ExitOK)
	if first, _, _ := strings.Cut(r.stdout, "\n"); !strings.HasPrefix(first, "connect to") || !strings.Contains(first, "eu1.example.net:50") {
		t.Errorf("got first line %q, want connect to eu1.example.net:50…", first)
	}
	r.wantOut(t, "192.168.88.43:22", "81.2.69.7/32", "(in ", "pending", "r1 ("+h.fleet.Router.ID.String()+")")
	if r.stderr != "" {
		t.Errorf("got stderr %q, want none", r.stderr)
	}

	// -o json is the API's forward object.
	f := h.createJSON("--for", "90m", "--masquerade")
	if f.EntryPoint != "eu1.example.net" || f.Port < 50000 || f.Port > 50999 || f.DstAddress != "192.168.88.43" || f.DstPort != 22 ||
		f.AllowOnlyCIDR != "81.2.69.0/24" || f.Status != "pending" || !f.Masquerade || f.TimeToExpire != "1 hour from now" || f.RouterID != h.fleet.Router.ID.String() {
		t.Errorf("got %+v, want the requested forward", f)
	}

	// list, by name and by id.
	r = h.run(t, "forwards", "list", "--router", "r1").want(t, tpfctl.ExitOK)
	r.wantOut(t, "ID", "STATUS", "CONNECT TO", f.ID, "eu1.example.net:", "81.2.69.7/32", "81.2.69.0/24")
	live := decode[[]tpfctl.Forward](t, h.run(t, "forwards", "list", "--router", h.fleet.Router.ID.String(), "-o", "json").want(t, 0).stdout)
	if len(live) != 2 || (live[0].ID != f.ID && live[1].ID != f.ID) {
		t.Errorf("got %d live forwards %+v, want 2 with %s", len(live), live, f.ID)
	}

	// get, flags after the operand too.
	r = h.run(t, "forwards", "get", f.ID, "--router", "r1").want(t, tpfctl.ExitOK)
	r.wantOut(t, "connect to", f.ID, "masquerade", "yes", "(in 1h")
	got := decode[tpfctl.Forward](t, h.run(t, "-o", "json", "forwards", "get", "--router", "r1", f.ID).want(t, 0).stdout)
	if got.ID != f.ID || got.Port != f.Port {
		t.Errorf("got %+v, want forward %s on port %d", got, f.ID, f.Port)
	}

	// connections: none yet.
	h.run(t, "forwards", "connections", "--router", "r1", f.ID).want(t, 0).wantOut(t, "No connections through forward "+f.ID)
	if conns := decode[[]tpfctl.Connection](t, h.run(t, "forwards", "connections", "--router", "r1", f.ID, "-o", "json").want(t, 0).stdout); len(conns) != 0 {
		t.Errorf("got %d connections, want 0", len(conns))
	}

	// revoke, then it is history.
	h.run(t, "forwards", "revoke", "--router", "r1", f.ID).want(t, tpfctl.ExitOK).wantOut(t, "Revoked forward "+f.ID, "status removing")
	revoked := decode[tpfctl.Forward](t, h.run(t, "forwards", "revoke", "--router", "r1", f.ID, "-o", "json").want(t, 0).stdout)
	if !revoked.RevokedEarly || revoked.Status != "removing" || revoked.RevokedAt == nil {
		t.Errorf("got %+v after revoke, want revoked_early, removing", revoked)
	}
	live = decode[[]tpfctl.Forward](t, h.run(t, "forwards", "list", "--router", "r1", "-o", "json").want(t, 0).stdout)
	if len(live) != 1 || live[0].ID == f.ID {
		t.Errorf("got live %+v, want only the first forward", live)
	}
	ended := decode[[]tpfctl.Forward](t, h.run(t, "forwards", "list", "--router", "r1", "--ended", "-o", "json").want(t, 0).stdout)
	if len(ended) != 1 || ended[0].ID != f.ID {
		t.Errorf("got ended %+v, want %s", ended, f.ID)
	}
	h.run(t, "forwards", "list", "--router", "r1", "--ended").want(t, 0).wantOut(t, f.ID, "removing (revoked)")
	all := decode[[]tpfctl.Forward](t, h.run(t, "forwards", "list", "--router", "r1", "--all", "--limit", "1", "-o", "json").want(t, 0).stdout)
	if len(all) != 1 {
		t.Errorf("got --all --limit 1 %+v, want one forward", all)
	}
	if all := decode[[]tpfctl.Forward](t, h.run(t, "forwards", "list", "--router", "r1", "--all", "-o", "json").want(t, 0).stdout); len(all) != 2 {
		t.Errorf("got --all %+v, want both forwards", all)
	}

	// A router without forwards says so.
	other := h.addRouter("r2")
	h.run(t, "forwards", "list", "--router", "r2").want(t, 0).wantOut(t, "No live forwards on router r2.")
	h.run(t, "forwards", "list", "--router", other.ID.String(), "--all").want(t, 0).wantOut(t, "No forwards on router")
}

func (h *harness) addRouter(name string) fleet.Router {
	h.t.Helper()
	rt, _, err := forwards.New(h.fleet.Store).CreateRouter(context.Background(), h.fleet.Principal, forwards.NewRouter{
		Name: name, Region: "eu1", TunnelAddress: netip.MustParseAddr("10.99.0.9"),
	}, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	return rt
}

func TestRouterResolution(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.fleet.Router.ID.String()

	for _, ref := range []string{"r1", id, strings.ToUpper(id)} {
		list := decode[[]tpfctl.Forward](t, h.run(t, "forwards", "list", "--router", ref, "-o", "json").want(t, 0).stdout)
		if len(list) != 0 {
			t.Errorf("--router %s: got %d forwards, want 0", ref, len(list))
		}
	}
	h.run(t, "forwards", "list", "--router", "nosuch").want(t, tpfctl.ExitNotFound).wantErr(t, `no router is named "nosuch"`, "tpfctl routers list")
	h.run(t, "routers", "get", uuid.NewString()).want(t, tpfctl.ExitNotFound).wantErr(t, "Not found.")

	// Names need not be unique; an ambiguous one is refused with the ids.
	dup := h.addRouter("r1")
	h.run(t, "forwards", "create", "--router", "r1", "--to", "192.168.88.43:22", "--for", "2h", "--allow-from", "81.2.69.7").
		want(t, tpfctl.ExitUsage).wantErr(t, `2 routers are named "r1"`, id, dup.ID.String())
	h.run(t, "routers", "get", dup.ID.String()).want(t, 0).wantOut(t, dup.ID.String())
}

func TestErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	f := h.createJSON()
	create := []string{"forwards", "create", "--router", "r1", "--to", "192.168.88.43:22", "--for", "2h", "--allow-from", "81.2.69.7"}
	with := func(base []string, extra ...string) []string { return append(append([]string{}, base...), extra...) }

	tests := []struct {
		name   string
		args   []string
		code   int
		stderr []string
	}{
		{"422 lists every field in the API's order", []string{"forwards", "create", "--router", "r1", "--to", "169.254.169.254:22", "--for", "5m", "--allow-from", "198.51.100.0/24"},
			tpfctl.ExitInvalid, []string{
				"tpfctl: create forward on router r1: The expire after minutes field must be between 10 and 1440. (and 2 more errors)\n" +
					"  expire_after_minutes: The expire after minutes field must be between 10 and 1440.\n" +
					"  dst_address: The dst address field must be a private (RFC 1918) or publicly routed IPv4 address; 169.254.169.254 is link-local.\n" +
					"  allow_from: The allow from field must be a publicly routed IPv4 address or range"}},
		{"422 port out of range", with(create, "--to", "192.168.88.43:70000"), tpfctl.ExitInvalid, []string{"  dst_port: "}},
		{"404 forward", []string{"forwards", "get", "--router", "r1", uuid.NewString()}, tpfctl.ExitNotFound, []string{"Not found."}},
		{"404 forward id that is no uuid", []string{"forwards", "revoke", "--router", "r1", "abc"}, tpfctl.ExitNotFound, []string{"Not found."}},
		{"404 connections", []string{"forwards", "connections", "--router", "r1", uuid.NewString()}, tpfctl.ExitNotFound, []string{"Not found."}},
		{"404 router by id", []string{"forwards", "list", "--router", uuid.NewString()}, tpfctl.ExitNotFound, []string{"Not found."}},
		{"401", []string{"routers", "list", "--token", "tpf_wrong"}, tpfctl.ExitUnauthenticated, []string{"Unauthenticated."}},
		{"401 while resolving a name", []string{"forwards", "get", "--router", "r1", f.ID, "--token", "tpf_wrong"}, tpfctl.ExitUnauthenticated, []string{"Unauthenticated."}},
		{"API unreachable", []string{"status", "--url", "http://127.0.0.1:1"}, tpfctl.ExitError, []string{"cannot reach the API"}},
		{"bad URL", []string{"status", "--url", "ftp://x"}, tpfctl.ExitUsage, []string{"not an http:// or https:// URL"}},
		{"no command", nil, tpfctl.ExitUsage, []string{"no command given"}},
		{"unknown command", []string{"frobnicate"}, tpfctl.ExitUsage, []string{`unknown command "frobnicate"`, "tpfctl --help"}},
		{"unknown subcommand", []string{"forwards", "delete"}, tpfctl.ExitUsage, []string{`unknown command "forwards delete"`}},
		{"group alone", []string{"routers"}, tpfctl.ExitUsage, []string{"routers needs a subcommand: list, get"}},
		{"unknown flag", []string{"routers", "list", "--colour"}, tpfctl.ExitUsage, []string{"flag provided but not defined: -colour", "tpfctl routers list --help"}},
		{"missing flags", []string{"forwards", "create", "--router", "r1"}, tpfctl.ExitUsage, []string{"missing --to, --for, --allow-from"}},
		{"seconds", with(create, "--for", "90s"), tpfctl.ExitUsage, []string{"--for 90s is not a whole number of minutes", "try 1m or 2m"}},
		{"not a duration", with(create, "--for", "120"), tpfctl.ExitUsage, []string{`--for "120" is not a duration`}},
		{"negative duration", with(create, "--for", "-1h"), tpfctl.ExitUsage, []string{"must be positive"}},
		{"target without port", with(create, "--to", "192.168.88.43"), tpfctl.ExitUsage, []string{"is not ADDRESS:PORT"}},
		{"target with named port", with(create, "--to", "192.168.88.43:ssh"), tpfctl.ExitUsage, []string{`the port "ssh" is not a number`}},
		{"timeout without wait", with(create, "--timeout", "5s"), tpfctl.ExitUsage, []string{"--timeout applies to --wait"}},
		{"all and ended", []string{"forwards", "list", "--router", "r1", "--all", "--ended"}, tpfctl.ExitUsage, []string{"exclude each other"}},
		{"limit on live", []string{"forwards", "list", "--router", "r1", "--limit", "5"}, tpfctl.ExitUsage, []string{"--limit applies to --all and --ended"}},
		{"422 limit", []string{"forwards", "list", "--router", "r1", "--all", "--limit", "5000"}, tpfctl.ExitInvalid, []string{"  limit: "}},
		{"missing router", []string{"forwards", "get", f.ID}, tpfctl.ExitUsage, []string{"forwards get: missing --router"}},
		{"missing operand", []string{"forwards", "get", "--router", "r1"}, tpfctl.ExitUsage, []string{"forwards get: missing ID"}},
		{"extra operand", []string{"routers", "get", "r1", "r2"}, tpfctl.ExitUsage, []string{`unexpected argument "r2"`}},
		{"output format", []string{"routers", "list", "-o", "yaml"}, tpfctl.ExitUsage, []string{"-o yaml: the output format is table or json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := h.run(t, tt.args...).want(t, tt.code)
			r.wantErr(t, tt.stderr...)
			if r.stdout != "" && tt.args != nil {
				t.Errorf("got stdout %q, want none", r.stdout)
			}
		})
	}

	// Without a token anywhere tpfctl does not even ask.
	r := h.runEnv(t, map[string]string{"TPF_URL": h.url, "HOME": t.TempDir()}, "routers", "list").want(t, tpfctl.ExitUnauthenticated)
	r.wantErr(t, "no API token", "TPF_TOKEN")
}

func TestWait(t *testing.T) {
	t.Parallel()

	t.Run("active", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		done := make(chan result, 1)
		go func() {
			done <- h.run(t, "forwards", "create", "--router", "r1", "--to", "192.168.88.43:22", "--for", "2h", "--allow-from", "81.2.69.7", "--wait", "--timeout", "30s")
		}()
		fw := h.pendingForward()
		h.report(syncproto.Result{ID: fw.ID.String(), State: syncproto.StateApplied})
		r := (<-done).want(t, tpfctl.ExitOK)
		r.wantOut(t, "connect to", "\nActive: connect to eu1.example.net:")
		r.wantErr(t, "Waiting up to 30s")
		got := decode[tpfctl.Forward](t, h.run(t, "forwards", "get", "--router", "r1", fw.ID.String(), "-o", "json").want(t, 0).stdout)
		if got.Status != "active" {
			t.Errorf("got status %q, want active", got.Status)
		}
	})

	t.Run("active json", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		done := make(chan result, 1)
		go func() {
			done <- h.run(t, "forwards", "create", "--router", "r1", "--to", "192.168.88.43:22", "--for", "2h", "--allow-from", "81.2.69.7", "--wait", "-o", "json")
		}()
		fw := h.pendingForward()
		h.report(syncproto.Result{ID: fw.ID.String(), State: syncproto.StateApplied})
		r := (<-done).want(t, tpfctl.ExitOK)
		got := decode[tpfctl.Forward](t, r.stdout)
		if got.ID != fw.ID.String() || got.Status != "active" {
			t.Errorf("got %s %s, want %s active", got.ID, got.Status, fw.ID)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		r := h.run(t, "forwards", "create", "--router", "r1", "--to", "192.168.88.43:22", "--for", "2h", "--allow-from", "81.2.69.7", "--wait", "--timeout", "300ms", "-o", "json").
			want(t, tpfctl.ExitTimeout)
		got := decode[tpfctl.Forward](t, r.stdout)
		r.wantErr(t, "forward "+got.ID+" is still pending after 300ms", "tpfctl forwards revoke --router r1 "+got.ID)
	})

	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		done := make(chan result, 1)
		go func() {
			done <- h.run(t, "forwards", "create", "--router", "r1", "--to", "192.168.88.43:22", "--for", "2h", "--allow-from", "81.2.69.7", "--wait")
		}()
		fw := h.pendingForward()
		h.report(syncproto.Result{ID: fw.ID.String(), State: syncproto.StateRefused, Error: "the destination is the router itself"})
		r := (<-done).want(t, tpfctl.ExitError)
		r.wantErr(t, "router r1 refused forward "+fw.ID.String()+": refused: the destination is the router itself")
	})

	t.Run("revoked while waiting", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		done := make(chan result, 1)
		go func() {
			done <- h.run(t, "forwards", "create", "--router", "r1", "--to", "192.168.88.43:22", "--for", "2h", "--allow-from", "81.2.69.7", "--wait")
		}()
		fw := h.pendingForward()
		h.run(t, "forwards", "revoke", "--router", "r1", fw.ID.String()).want(t, 0)
		(<-done).want(t, tpfctl.ExitError).wantErr(t, "ended before it became active: removing (revoked)")
	})
}

func TestRouters(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.fleet.Router.ID.String()

	r := h.run(t, "routers", "list").want(t, 0)
	r.wantOut(t, "NAME", "LAST SEEN", "r1", id, "eu1", "never connected", "in sync (0)")
	list := decode[[]tpfctl.Router](t, h.run(t, "routers", "list", "-o", "json").want(t, 0).stdout)
	if len(list) != 1 || list[0].Name != "r1" || list[0].Agent.Connected {
		t.Errorf("got %+v, want r1, not connected", list)
	}
	h.run(t, "routers", "get", "r1").want(t, 0).wantOut(t, "never connected", "live forwards   0")

	// The agent connects, says hello, applies one forward; a second one is
	// still to be applied, and the last pass failed.
	ctx := context.Background()
	now := time.Now()
	st := h.fleet.Store
	if err := st.AgentConnected(ctx, h.fleet.Router.ID, now); err != nil {
		t.Fatal(err)
	}
	err := forwards.New(st).AgentHello(ctx, h.fleet.Router.ID, syncproto.Hello{AgentVersion: "v1.4.2",
		Router: syncproto.Router{RouterOSVersion: "7.18", Board: "hAP ax2", Identity: "branch-7"}}, now)
	if err != nil {
		t.Fatal(err)
	}
	fw := h.fleet.Forward(t, 2*time.Hour, now)
	h.report(syncproto.Result{ID: fw.ID.String(), State: syncproto.StateApplied})
	h.fleet.Forward(t, 2*time.Hour, now)
	if _, err := forwards.New(st).ApplyReport(ctx, h.fleet.Router.ID, syncproto.Report{AgentVersion: "v1.4.2", Error: "router API unreachable"}, now); err != nil {
		t.Fatal(err)
	}

	r = h.run(t, "routers", "get", "r1").want(t, 0)
	r.wantOut(t, "name            r1", "id              "+id, "agent           connected since", "last seen       ",
		"agent version   v1.4.2", "RouterOS        7.18", "board           hAP ax2", "identity        branch-7",
		"revision        desired 2, applied 1: behind", "last error      router API unreachable", "live forwards   2")
	got := decode[tpfctl.Router](t, h.run(t, "routers", "get", id, "-o", "json").want(t, 0).stdout)
	a := got.Agent
	if !a.Connected || a.AgentVersion != "v1.4.2" || a.RouterOSVersion != "7.18" || a.DesiredRevision != 2 || a.AppliedRevision != 1 || a.InSync || a.LastError != "router API unreachable" {
		t.Errorf("got agent %+v", a)
	}
	h.run(t, "routers", "list").want(t, 0).wantOut(t, "connected", "behind (1 of 2)", "router API unreachable")
}

func TestStatus(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	now := time.Now()
	st := h.fleet.Store

	// r1: connected and in sync; of its two forwards the agent applied one,
	// the other is still pending.
	if err := st.AgentConnected(ctx, h.fleet.Router.ID, now); err != nil {
		t.Fatal(err)
	}
	h.fleet.Forward(t, 2*time.Hour, now)
	fw := h.fleet.Forward(t, 2*time.Hour, now)
	h.report(syncproto.Result{ID: fw.ID.String(), State: syncproto.StateApplied})
	// r2: never connected, no forwards. r3: connected, in sync, an error.
	r2 := h.addRouter("r2")
	r3 := h.addRouter("r3")
	if err := st.AgentConnected(ctx, r3.ID, now); err != nil {
		t.Fatal(err)
	}
	if _, err := forwards.New(st).ApplyReport(ctx, r3.ID, syncproto.Report{AgentVersion: "v1", Error: "login refused"}, now); err != nil {
		t.Fatal(err)
	}
	// A region with a tpf edge that has never connected.
	_, err := st.CreateRegion(ctx, fleet.Region{ID: "us1", EntryPoint: "us1.example.net", Ports: fleet.PortRange{Min: 49152, Max: 65535},
		EdgeTunnelAddress: netip.MustParseAddr("10.98.0.1"), CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetEdgeManaged(ctx, "us1"); err != nil {
		t.Fatal(err)
	}

	raw := h.run(t, "status", "-o", "json").want(t, 0).stdout
	s := decode[struct {
		Routers struct {
			Total      int `json:"total"`
			Connected  int `json:"connected"`
			OutOfSync  int `json:"out_of_sync"`
			WithErrors int `json:"with_errors"`
		} `json:"routers"`
		Forwards struct {
			Live     int            `json:"live"`
			ByStatus map[string]int `json:"by_status"`
		} `json:"forwards"`
		Regions   []tpfctl.Region `json:"regions"`
		Attention []tpfctl.Router `json:"attention"`
	}](t, raw)
	if got := s.Routers; got.Total != 3 || got.Connected != 2 || got.OutOfSync != 0 || got.WithErrors != 1 {
		t.Errorf("got routers %+v, want 3 total, 2 connected, 0 out of sync, 1 with errors", got)
	}
	if s.Forwards.Live != 2 || s.Forwards.ByStatus["active"] != 1 || s.Forwards.ByStatus["pending"] != 1 {
		t.Errorf("got forwards %+v, want 2 live: 1 active, 1 pending", s.Forwards)
	}
	if len(s.Regions) != 2 || s.Regions[0].ID != "eu1" || s.Regions[0].Edge != nil || s.Regions[1].ID != "us1" || s.Regions[1].Edge == nil || s.Regions[1].Edge.Connected {
		t.Errorf("got regions %s, want eu1 without an edge, us1 with one offline", raw)
	}
	var names []string
	for _, r := range s.Attention {
		names = append(names, r.Name)
	}
	if strings.Join(names, ",") != "r2,r3" {
		t.Errorf("got attention %v, want r2,r3", names)
	}

	r := h.run(t, "status").want(t, 0)
	r.wantOut(t,
		"Routers   3 total: 2 connected, 0 out of sync, 1 with errors",
		"Forwards  2 live: 1 active, 1 pending",
		"REGION", "eu1     eu1.example.net  50000-50999  none (router only)",
		"us1     us1.example.net  49152-65535  offline", "never",
		"Routers needing attention (2):", r2.ID.String(), "never connected", r3.ID.String(), "login refused", "FORWARDS")
	if strings.Contains(r.stdout, h.fleet.Router.ID.String()) {
		t.Errorf("r1 needs no attention, yet status shows it:\n%s", r.stdout)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	token := h.fleet.APIToken

	// writeConfig writes a config file under a fresh XDG_CONFIG_HOME (or
	// HOME/.config when home) and answers the environment that finds it.
	writeConfig := func(t *testing.T, content string, mode os.FileMode, home bool) map[string]string {
		t.Helper()
		dir := t.TempDir()
		env := map[string]string{"XDG_CONFIG_HOME": dir, "HOME": t.TempDir()}
		if home {
			env = map[string]string{"HOME": dir}
			dir = filepath.Join(dir, ".config")
		}
		path := filepath.Join(dir, "tpf", "config.json")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		return env
	}
	good := `{"url": "` + h.url + `", "token": "` + token + `"}`

	t.Run("XDG_CONFIG_HOME", func(t *testing.T) {
		t.Parallel()
		env := writeConfig(t, good, 0o600, false)
		h.runEnv(t, env, "routers", "list").want(t, 0).wantOut(t, "r1")
	})
	t.Run("HOME", func(t *testing.T) {
		t.Parallel()
		env := writeConfig(t, good, 0o600, true)
		h.runEnv(t, env, "routers", "list").want(t, 0).wantOut(t, "r1")
	})
	t.Run("world-readable with a token is refused", func(t *testing.T) {
		t.Parallel()
		env := writeConfig(t, good, 0o644, false)
		r := h.runEnv(t, env, "routers", "list").want(t, tpfctl.ExitUsage)
		r.wantErr(t, "holds an API token but anyone on this machine may read it (mode 0644)", "chmod 600 "+env["XDG_CONFIG_HOME"])
	})
	t.Run("world-readable without a token is fine", func(t *testing.T) {
		t.Parallel()
		env := writeConfig(t, `{"url": "`+h.url+`"}`, 0o644, false)
		env["TPF_TOKEN"] = token
		h.runEnv(t, env, "routers", "list").want(t, 0)
	})
	t.Run("environment over file", func(t *testing.T) {
		t.Parallel()
		env := writeConfig(t, `{"url": "http://127.0.0.1:1", "token": "tpf_wrong"}`, 0o600, false)
		env["TPF_URL"], env["TPF_TOKEN"] = h.url, token
		h.runEnv(t, env, "routers", "list").want(t, 0)
	})
	t.Run("flags over environment", func(t *testing.T) {
		t.Parallel()
		env := map[string]string{"TPF_URL": "http://127.0.0.1:1", "TPF_TOKEN": "tpf_wrong", "HOME": t.TempDir()}
		h.runEnv(t, env, "--url", h.url, "routers", "list", "--token", token).want(t, 0)
		h.runEnv(t, env, "--url", h.url, "routers", "list").want(t, tpfctl.ExitUnauthenticated)
	})
	t.Run("file fills what the environment leaves open", func(t *testing.T) {
		t.Parallel()
		env := writeConfig(t, `{"url": "http://127.0.0.1:1", "token": "`+token+`"}`, 0o600, false)
		env["TPF_URL"] = h.url
		h.runEnv(t, env, "routers", "list").want(t, 0)
	})
	t.Run("unknown field", func(t *testing.T) {
		t.Parallel()
		env := writeConfig(t, `{"url": "`+h.url+`", "tokn": "x"}`, 0o600, false)
		h.runEnv(t, env, "routers", "list").want(t, tpfctl.ExitUsage).wantErr(t, `unknown field "tokn"`)
	})
	t.Run("not JSON", func(t *testing.T) {
		t.Parallel()
		env := writeConfig(t, `url = "x"`, 0o600, false)
		h.runEnv(t, env, "routers", "list").want(t, tpfctl.ExitUsage).wantErr(t, "config file", "one JSON object")
	})
}

func TestHelp(t *testing.T) {
	t.Parallel()
	h := &harness{t: t, fleet: &storetest.Fleet{APIToken: "tpf_never"}, env: map[string]string{}}
	r := h.run(t, "--help").want(t, 0)
	r.wantOut(t, "forwards create", "routers get", "status", "TPF_URL", "TPF_TOKEN", "config.json", "chmod 600",
		"Exit codes:", "0  success", "1  error talking to the API", "2  usage error", "3  not found", "4  validation error", "5  unauthenticated", "6  timed out waiting")
	h.run(t, "help").want(t, 0).wantOut(t, "Exit codes:")
	h.run(t, "help", "forwards", "create").want(t, 0).wantOut(t, "Usage: tpfctl forwards create --router R", "--allow-from CIDR", "--timeout DURATION", "(default 30s)")
	h.run(t, "forwards", "create", "--help").want(t, 0).wantOut(t, "--masquerade")
	h.run(t, "forwards", "list", "-h").want(t, 0).wantOut(t, "--ended", "--limit N")
	h.run(t, "forwards", "--help").want(t, 0).wantOut(t, "forwards revoke", "forwards connections")
	h.run(t, "help", "routers").want(t, 0).wantOut(t, "routers list", "routers get")
	h.run(t, "status", "--help").want(t, 0).wantOut(t, "one request per router")
	h.run(t, "help", "nosuch").want(t, tpfctl.ExitUsage)
}
