package routeros_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/agent/reconcile"
	"github.com/tpf-dev/tpf/agent/routeros"
	"github.com/tpf-dev/tpf/agent/routerostest"
	"github.com/tpf-dev/tpf/shared/forward"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

func TestDial(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, version string) {
		srv := startRouter(t, version)
		c := dial(t, config(srv))
		if c.Addr() != srv.Addr() {
			t.Errorf("Addr: got %s, want %s", c.Addr(), srv.Addr())
		}
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("second Close: got %v, want nil", err)
		}
		if _, err := c.NATRules(context.Background()); !errors.Is(err, routeros.ErrBroken) {
			t.Errorf("NATRules after Close: got %v, want ErrBroken", err)
		}
	})
}

func TestDialBadPassword(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, version string) {
		srv := startRouter(t, version)
		cfg := config(srv)
		cfg.Password = "wrong"
		c, err := routeros.Dial(context.Background(), cfg)
		if err == nil {
			c.Close()
			t.Fatal("Dial with a wrong password: got nil error")
		}
		if !errors.Is(err, routeros.ErrLoginRefused) {
			t.Errorf("Dial error: got %v, want ErrLoginRefused", err)
		}
		want := "login to " + srv.Addr() + ` as "tpf": login refused: invalid user name or password (6)`
		if err.Error() != want {
			t.Errorf("Dial error: got %q, want %q", err, want)
		}
		if strings.Contains(err.Error(), "wrong") {
			t.Errorf("Dial error %q shows the password", err)
		}
	})
}

func TestDialErrors(t *testing.T) {
	t.Parallel()
	// A port nobody listens on: reserve one, then free it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	tests := []struct {
		name string
		cfg  routeros.Config
		want string
	}{
		{"no address", routeros.Config{}, "no router address"},
		{"connection refused", routeros.Config{Address: closed, Timeout: time.Second}, "dial " + closed + ": "},
	}
	for _, tt := range tests {
		c, err := routeros.Dial(context.Background(), tt.cfg)
		if err == nil {
			c.Close()
			t.Errorf("%s: got nil error, want %q", tt.name, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want it to contain %q", tt.name, err, tt.want)
		}
	}
}

func TestDialTLS(t *testing.T) {
	t.Parallel()
	serverTLS, clientTLS := selfSigned(t)
	srv := routerostest.New(routerostest.Config{Users: map[string]string{user: password}})
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverTLS)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()

	cfg := routeros.Config{Address: addr, User: user, Password: password, TLS: clientTLS, Timeout: 5 * time.Second}
	c := dial(t, cfg)
	r, err := c.System(context.Background())
	if err != nil {
		t.Fatalf("System over TLS: %v", err)
	}
	if r.Identity != "MikroTik" {
		t.Errorf("identity over TLS: got %q, want MikroTik", r.Identity)
	}

	// A client that does not trust the certificate fails the handshake.
	cfg.TLS = &tls.Config{}
	if c, err := routeros.Dial(context.Background(), cfg); err == nil {
		c.Close()
		t.Errorf("Dial with an untrusted certificate: got nil error")
	} else if !strings.HasPrefix(err.Error(), "tls handshake with "+addr+": ") {
		t.Errorf("Dial with an untrusted certificate: got %v, want a tls handshake error", err)
	}
}

func TestDialHungRouter(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, version string) {
		srv := startRouter(t, version)
		srv.SetFault(routerostest.Fault{Delay: time.Minute})
		cfg := config(srv)
		cfg.Timeout = 300 * time.Millisecond
		err := within(t, 3*time.Second, func() error {
			c, err := routeros.Dial(context.Background(), cfg)
			if err == nil {
				c.Close()
			}
			return err
		})
		if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "login to "+srv.Addr()) {
			t.Errorf("Dial to a hung router: got %v, want a login error wrapping context.DeadlineExceeded", err)
		}
	})
}

func TestSystem(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, version string) {
		srv := startRouter(t, version)
		c := dial(t, config(srv))
		got, err := c.System(context.Background())
		if err != nil {
			t.Fatalf("System: %v", err)
		}
		want := syncproto.Router{RouterOSVersion: version + " (stable)", Board: "RB5009UG+S+", Identity: "edge-router-7"}
		if got != want {
			t.Errorf("System: got %+v, want %+v", got, want)
		}
	})
}

func TestNATRules(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, version string) {
		srv := startRouter(t, version)
		c := dial(t, config(srv))
		ctx := context.Background()

		rules, err := c.NATRules(ctx)
		if err != nil || len(rules) != 0 {
			t.Fatalf("NATRules of an empty table: got %v, %v; want none", rules, err)
		}

		a := srv.AddNAT(defconfMasq)
		srv.AddNAT(map[string]string{"chain": "dstnat", "action": "dst-nat", "dynamic": "true",
			"comment": "upnp ether1: 10.0.0.5:5000 to 192.168.88.50:5000", "to-addresses": "192.168.88.50"})
		b := srv.AddNAT(map[string]string{"chain": "dstnat", "action": "dst-nat", "protocol": "tcp",
			"src-address": edge, "dst-address": tunnel, "dst-port": "49159", "to-addresses": "192.168.88.43",
			"to-ports": "22", "comment": "tpf:" + id1 + ":1719030809", "disabled": "true", "log": "true"})

		rules, err = c.NATRules(ctx)
		if err != nil {
			t.Fatalf("NATRules: %v", err)
		}
		if got := ruleIDs(rules); !slices.Equal(got, []string{a, b}) {
			t.Fatalf("NATRules ids: got %v, want %v (dynamic skipped, table order)", got, []string{a, b})
		}
		want := map[string]string{"chain": "dstnat", "action": "dst-nat", "protocol": "tcp",
			"src-address": edge, "dst-address": tunnel, "dst-port": "49159", "to-addresses": "192.168.88.43",
			"to-ports": "22", "comment": "tpf:" + id1 + ":1719030809", "disabled": "true", "dynamic": "false"}
		if !reflect.DeepEqual(rules[1].Props, want) {
			t.Errorf("rule %s props: got %v, want %v", b, rules[1].Props, want)
		}
		want = map[string]string{"chain": "srcnat", "action": "masquerade", "comment": "defconf: masquerade",
			"disabled": "false", "dynamic": "false"}
		if !reflect.DeepEqual(rules[0].Props, want) {
			t.Errorf("rule %s props: got %v, want %v (the properties asked for)", a, rules[0].Props, want)
		}
	})
}

func TestApplyFullPlan(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, version string) {
		srv := startRouter(t, version)
		mas := srv.AddNAT(defconfMasq)
		web := srv.AddNAT(webServer)
		cam := srv.AddNAT(camera)
		foreignBefore := srv.NAT()
		c := dial(t, config(srv))
		ctx := context.Background()

		now := time.Now()
		d := set(
			fwd(id1, 49159, "192.168.88.43", 22, now.Add(2*time.Hour), true),
			fwd(id2, 49160, "192.168.88.44", 80, now.Add(time.Hour), false),
		)
		p := compute(t, c, d, now)
		if len(p.Add) != 3 || len(p.Remove)+len(p.Set)+len(p.Flush) != 0 {
			t.Fatalf("plan: got %+v, want 3 adds only", p)
		}
		o, err := c.Apply(ctx, p)
		if err != nil || o.Err() != nil {
			t.Fatalf("Apply: got %v, %v; want no errors", o.Errors, err)
		}
		if got := o.Results(p.Results); !reflect.DeepEqual(got, p.Results) {
			t.Errorf("results: got %v, want %v", got, p.Results)
		}

		rows := srv.NAT()
		// Each tpf rule precedes the router's own rules of its chain.
		var order []string
		for _, r := range rows {
			order = append(order, r["chain"]+" "+label(r))
		}
		want := []string{"srcnat tpf:" + id1, "srcnat " + mas, "dstnat tpf:" + id1, "dstnat tpf:" + id2, "dstnat " + web, "dstnat " + cam}
		if !slices.Equal(order, want) {
			t.Errorf("NAT order: got %q, want %q", order, want)
		}
		if got := foreignRows(rows); !reflect.DeepEqual(got, foreignBefore) {
			t.Errorf("foreign rules changed:\ngot  %v\nwant %v", got, foreignBefore)
		}
		dn := rows[2]
		for k, v := range map[string]string{"action": "dst-nat", "protocol": "tcp", "src-address": edge,
			"dst-address": tunnel, "dst-port": "49159", "to-addresses": "192.168.88.43", "to-ports": "22",
			"disabled": "false", "comment": forward.Tag{ID: id1, Expires: now.Add(2 * time.Hour)}.String()} {
			if dn[k] != v {
				t.Errorf("dst-nat rule %s: got %q, want %q", k, dn[k], v)
			}
		}
		sn := rows[0]
		for k, v := range map[string]string{"action": "masquerade", "protocol": "tcp", "src-address": edge,
			"dst-address": "192.168.88.43", "dst-port": "22"} {
			if sn[k] != v {
				t.Errorf("masquerade rule %s: got %q, want %q", k, sn[k], v)
			}
		}

		// Remove everything again: foreign rules stay exactly as they were.
		p = compute(t, c, set(), now)
		if _, err := c.Apply(ctx, p); err != nil {
			t.Fatalf("Apply of the empty set: %v", err)
		}
		if got := srv.NAT(); !reflect.DeepEqual(got, foreignBefore) {
			t.Errorf("after removing every forward:\ngot  %v\nwant %v", got, foreignBefore)
		}
	})
}

func TestApplyRemovesStaleAndFlushes(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, version string) {
		srv := startRouter(t, version)
		web := srv.AddNAT(webServer)
		now := time.Now()
		stale := srv.AddNAT(map[string]string{"chain": "dstnat", "action": "dst-nat", "protocol": "tcp",
			"src-address": edge, "dst-address": tunnel, "dst-port": "49159", "to-addresses": "192.168.88.43",
			"to-ports": "22", "comment": forward.Tag{ID: id1, Expires: now.Add(-time.Minute)}.String()})
		conn := func(dst, reply string) string {
			return srv.AddConnection(map[string]string{"protocol": "tcp", "src-address": edge + ":50000",
				"dst-address": dst, "reply-src-address": reply, "reply-dst-address": edge + ":50000",
				"tcp-state": "established", "dstnat": "true"})
		}
		conn(tunnel+":49159", "192.168.88.43:22")
		conn(tunnel+":49159", "192.168.88.43:22")
		keep1 := conn(tunnel+":49160", "192.168.88.44:80")
		keep2 := conn(tunnel+":4915", "192.168.88.45:80")
		keep3 := conn("10.99.0.2:49159", "192.168.88.46:80")

		c := dial(t, config(srv))
		p := compute(t, c, nil, now) // no set yet: the expired rule still goes
		if !slices.Equal(p.Remove, []string{stale}) || !slices.Equal(p.Flush, []string{tunnel + ":49159"}) {
			t.Fatalf("plan: got %+v, want remove %s and flush %s:49159", p, stale, tunnel)
		}
		o, err := c.Apply(context.Background(), p)
		if err != nil || o.Err() != nil {
			t.Fatalf("Apply: got %v, %v; want no errors", o.Errors, err)
		}
		if got := label(srv.NAT()[0]); len(srv.NAT()) != 1 || got != web {
			t.Errorf("NAT after removal: got %v, want only %s", srv.NAT(), web)
		}
		var left []string
		for _, r := range srv.Connections() {
			left = append(left, r[".id"])
		}
		if want := []string{keep1, keep2, keep3}; !slices.Equal(left, want) {
			t.Errorf("connections left: got %v, want %v", left, want)
		}
	})
}

func TestFlushConnections(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, version string) {
		srv := startRouter(t, version)
		for range 3 {
			srv.AddConnection(map[string]string{"protocol": "tcp", "dst-address": tunnel + ":49159"})
		}
		other := srv.AddConnection(map[string]string{"protocol": "tcp", "dst-address": tunnel + ":49160"})
		c := dial(t, config(srv))
		ctx := context.Background()
		n, err := c.FlushConnections(ctx, tunnel+":49159")
		if err != nil || n != 3 {
			t.Fatalf("FlushConnections: got %d, %v; want 3, nil", n, err)
		}
		n, err = c.FlushConnections(ctx, tunnel+":49159")
		if err != nil || n != 0 {
			t.Fatalf("FlushConnections again: got %d, %v; want 0, nil", n, err)
		}
		if rows := srv.Connections(); len(rows) != 1 || rows[0][".id"] != other {
			t.Errorf("connections left: got %v, want only %s", rows, other)
		}
	})
}

func TestApplyRemoveAlreadyGone(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, version string) {
		srv := startRouter(t, version)
		now := time.Now()
		id := srv.AddNAT(map[string]string{"chain": "dstnat", "action": "dst-nat", "protocol": "tcp",
			"dst-address": tunnel, "dst-port": "49159", "to-addresses": "192.168.88.43",
			"comment": forward.Tag{ID: id1, Expires: now.Add(time.Hour)}.String()})
		c := dial(t, config(srv))
		p := compute(t, c, set(), now)
		srv.RemoveNAT(id) // someone is faster
		o, err := c.Apply(context.Background(), p)
		if err != nil || o.Err() != nil {
			t.Fatalf("Apply: got %v, %v; want a removal of a missing rule to count as done", o.Errors, err)
		}
	})
}

func TestApplyRouterRefusesAStep(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, version string) {
		srv := startRouter(t, version)
		c := dial(t, config(srv))
		now := time.Now()
		d := set(
			fwd(id1, 49159, "192.168.88.43", 22, now.Add(time.Hour), false),
			fwd(id2, 49160, "192.168.88.44", 80, now.Add(time.Hour), false),
		)
		p := compute(t, c, d, now)
		srv.SetFault(routerostest.Fault{FailNext: 1, FailMessage: "failure: not enough permissions (9)"})
		o, err := c.Apply(context.Background(), p)
		if err != nil {
			t.Fatalf("Apply: got %v, want the pass to go on after a refused step", err)
		}
		var re *routeros.RouterError
		if len(o.Errors) != 1 || !errors.As(o.Errors[0], &re) || re.Message != "failure: not enough permissions (9)" {
			t.Fatalf("Outcome errors: got %v, want one RouterError", o.Errors)
		}
		if len(o.Failed) != 1 || o.Failed[id1] == nil {
			t.Fatalf("Outcome failed: got %v, want %s only", o.Failed, id1)
		}
		got := o.Results(p.Results)
		want := []syncproto.Result{
			{ID: id1, State: syncproto.StateFailed, Error: "add dstnat rule of forward " + id1 +
				": /ip/firewall/nat/add: router says: failure: not enough permissions (9)"},
			{ID: id2, State: syncproto.StateApplied},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("results:\ngot  %+v\nwant %+v", got, want)
		}
		// The next pass retries only what failed.
		if p := compute(t, c, d, now); len(p.Add) != 1 || p.Add[0].Forward != id1 {
			t.Errorf("next plan: got %+v, want one add for %s", p, id1)
		}
	})
}

func TestHungRouter(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, version string) {
		srv := startRouter(t, version)
		cfg := config(srv)
		cfg.Timeout = 300 * time.Millisecond
		c := dial(t, cfg)
		srv.SetFault(routerostest.Fault{Delay: time.Minute})

		err := within(t, 3*time.Second, func() error {
			_, err := c.NATRules(context.Background())
			return err
		})
		if !errors.Is(err, routeros.ErrBroken) || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("NATRules on a hung router: got %v, want ErrBroken wrapping a deadline", err)
		}
		// The stream is at an unknown point: later commands fail at once,
		// without touching the router.
		sent := len(srv.Commands())
		err = within(t, 100*time.Millisecond, func() error {
			_, err := c.System(context.Background())
			return err
		})
		if !errors.Is(err, routeros.ErrBroken) {
			t.Errorf("System after a timeout: got %v, want ErrBroken", err)
		}
		if got := len(srv.Commands()); got != sent {
			t.Errorf("commands sent after the connection broke: got %d, want 0", got-sent)
		}
	})
}

func TestContextBoundsCommands(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, version string) {
		srv := startRouter(t, version)

		// A context deadline shorter than the timeout wins.
		c := dial(t, config(srv)) // 5s per command
		srv.SetFault(routerostest.Fault{Delay: time.Minute})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		err := within(t, 3*time.Second, func() error {
			_, err := c.NATRules(ctx)
			return err
		})
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, routeros.ErrBroken) {
			t.Errorf("NATRules past the context deadline: got %v, want ErrBroken and context.DeadlineExceeded", err)
		}

		// Cancelling interrupts a command in flight.
		srv.SetFault(routerostest.Fault{})
		c = dial(t, config(srv))
		srv.SetFault(routerostest.Fault{Delay: time.Minute})
		ctx, cancel = context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		err = within(t, 3*time.Second, func() error {
			_, err := c.Apply(ctx, reconcile.Plan{Flush: []string{tunnel + ":49159"}})
			return err
		})
		if !errors.Is(err, context.Canceled) || !errors.Is(err, routeros.ErrBroken) {
			t.Errorf("Apply cancelled: got %v, want ErrBroken and context.Canceled", err)
		}

		// A context already done sends nothing and does not break the Client.
		srv.SetFault(routerostest.Fault{})
		c = dial(t, config(srv))
		done, cancel := context.WithCancel(context.Background())
		cancel()
		sent := len(srv.Commands())
		if _, err := c.NATRules(done); !errors.Is(err, context.Canceled) || errors.Is(err, routeros.ErrBroken) {
			t.Errorf("NATRules with a done context: got %v, want context.Canceled only", err)
		}
		if got := len(srv.Commands()); got != sent {
			t.Errorf("commands sent with a done context: got %d, want 0", got-sent)
		}
		if _, err := c.NATRules(context.Background()); err != nil {
			t.Errorf("NATRules afterwards: %v", err)
		}
	})
}

func TestDroppedConnection(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, version string) {
		srv := startRouter(t, version)
		c := dial(t, config(srv))
		srv.DropConnections()
		if _, err := c.NATRules(context.Background()); !errors.Is(err, routeros.ErrBroken) {
			t.Errorf("NATRules after the router dropped us: got %v, want ErrBroken", err)
		}

		// A connection cut halfway through an Apply: the pass stops, every
		// forward not known to be in place is failed, and a fresh
		// connection's next pass finishes the job.
		c = dial(t, config(srv))
		now := time.Now()
		d := set(
			fwd(id1, 49159, "192.168.88.43", 22, now.Add(time.Hour), false),
			fwd(id2, 49160, "192.168.88.44", 80, now.Add(time.Hour), true),
			fwd(id3, 49161, "192.168.88.45", 443, now.Add(time.Hour), false),
		)
		p := compute(t, c, d, now)
		srv.SetFault(routerostest.Fault{DropNext: 1}) // the first add lands, its reply is cut
		o, err := c.Apply(context.Background(), p)
		if !errors.Is(err, routeros.ErrBroken) {
			t.Fatalf("Apply with the connection cut: got %v, want ErrBroken", err)
		}
		if len(o.Failed) != 3 {
			t.Errorf("failed forwards: got %v, want all three", o.Failed)
		}
		for _, r := range o.Results(p.Results) {
			if r.State != syncproto.StateFailed || !strings.Contains(r.Error, "router connection broken") {
				t.Errorf("result %+v: want failed with the connection error", r)
			}
		}
		if len(o.Errors) != 1 {
			t.Errorf("errors: got %v, want the one that stopped the pass", o.Errors)
		}

		srv.SetFault(routerostest.Fault{})
		c = dial(t, config(srv))
		p = compute(t, c, d, now)
		if len(p.Add) != 3 { // 4 rules wanted, the first add landed
			t.Fatalf("plan after reconnecting: got %+v, want the 3 missing adds", p)
		}
		if _, err := c.Apply(context.Background(), p); err != nil {
			t.Fatalf("Apply after reconnecting: %v", err)
		}
		if p := compute(t, c, d, now); !p.Empty() {
			t.Errorf("plan after recovery: got %+v, want no changes", p)
		}
	})
}

// TestIdempotent checks the level-triggered contract end to end: after a
// pass, reading the router and computing again plans nothing, and applying
// that plan writes nothing.
func TestIdempotent(t *testing.T) {
	t.Parallel()
	forVersions(t, func(t *testing.T, version string) {
		srv := startRouter(t, version)
		srv.AddNAT(defconfMasq)
		srv.AddNAT(webServer)
		now := time.Now()
		// Drift to repair: a stale rule, a disabled rule, a hand-edited target.
		srv.AddNAT(map[string]string{"chain": "dstnat", "action": "dst-nat", "protocol": "tcp",
			"src-address": edge, "dst-address": tunnel, "dst-port": "49170", "to-addresses": "192.168.88.99",
			"to-ports": "22", "comment": forward.Tag{ID: id3, Expires: now.Add(time.Hour)}.String()})
		srv.AddNAT(map[string]string{"chain": "dstnat", "action": "dst-nat", "protocol": "tcp",
			"src-address": edge, "dst-address": tunnel, "dst-port": "49160", "to-addresses": "192.168.88.1",
			"to-ports": "80", "disabled": "true", "comment": forward.Tag{ID: id2, Expires: now.Add(time.Hour)}.String()})
		c := dial(t, config(srv))
		ctx := context.Background()
		d := set(
			fwd(id1, 49159, "192.168.88.43", 22, now.Add(2*time.Hour), true),
			fwd(id2, 49160, "192.168.88.44", 80, now.Add(time.Hour), false),
		)

		p := compute(t, c, d, now)
		if len(p.Remove) != 1 || len(p.Set) != 1 || len(p.Add) != 2 {
			t.Fatalf("first plan: got %+v, want 1 remove, 1 set, 2 adds", p)
		}
		if o, err := c.Apply(ctx, p); err != nil || o.Err() != nil {
			t.Fatalf("first Apply: %v, %v", o.Errors, err)
		}
		writes := srv.Writes()

		p = compute(t, c, d, now)
		if !p.Empty() {
			t.Fatalf("second plan: got %+v, want no changes", p)
		}
		if o, err := c.Apply(ctx, p); err != nil || o.Err() != nil {
			t.Fatalf("second Apply: %v, %v", o.Errors, err)
		}
		if got := srv.Writes(); got != writes {
			t.Errorf("writes on the second pass: got %d, want 0", got-writes)
		}
	})
}

// compute reads the router's rules and plans against them.
func compute(t testing.TB, c *routeros.Client, d *syncproto.Desired, now time.Time) reconcile.Plan {
	t.Helper()
	rules, err := c.NATRules(context.Background())
	if err != nil {
		t.Fatalf("NATRules: %v", err)
	}
	return reconcile.Compute(d, rules, now)
}

func ruleIDs(rules []reconcile.Rule) []string {
	var ids []string
	for _, r := range rules {
		ids = append(ids, r.ID)
	}
	return ids
}

// label names a row by its forward ("tpf:<id>") or, for foreign rows, .id.
func label(r map[string]string) string {
	if tag, err := forward.ParseTag(r["comment"]); err == nil {
		return "tpf:" + tag.ID
	}
	return r[".id"]
}
