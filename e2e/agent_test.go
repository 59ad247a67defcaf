package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/agent/daemon"
	"github.com/tpf-dev/tpf/agent/routeros"
	"github.com/tpf-dev/tpf/agent/routerostest"
	"github.com/tpf-dev/tpf/controller/api"
	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/hub"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/controller/store/storetest"
	"github.com/tpf-dev/tpf/shared/forward"
)

// world is a controller (store and hub on real PostgreSQL), an emulated
// router and its agent, all on loopback.
type world struct {
	t testing.TB
	tenant
	router     fleet.Router
	agentToken string
	ros        *routerostest.Server
	ctl        *replica         // the controller now running
	ctrl       *httptest.Server // ctl's API
	hub        *hub.Hub         // ctl's hub
	agentTLS   *tls.Config      // how the agent verifies the controller; nil: system roots
	agentClock func() time.Time // the agent's (router's) clock; nil: time.Now
	stopAgent  func()
}

func newWorld(t testing.TB, version string) *world {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	w := &world{t: t}
	w.tenant = newTenant(t, store.New(storetest.New(t)), fleet.Region{
		ID: "eu1", EntryPoint: "eu1.example.net", Ports: fleet.PortRange{Min: 50000, Max: 59999},
		EdgeTunnelAddress: netip.MustParseAddr(edgeAddr),
	}, now)
	w.router, w.agentToken = w.addRouter(t, "r1", "eu1", netip.MustParseAddr(tunnelAddr), now)

	w.ros = startRouterOS(t, routerostest.Config{Version: version, Users: map[string]string{"tpf": "s3cret"}})
	// The router's own rules, which tpf must never touch.
	w.ros.AddNAT(map[string]string{"chain": "dstnat", "action": "dst-nat", "protocol": "tcp", "dst-port": "443", "to-addresses": "192.168.88.10", "comment": "web server"})
	w.ros.AddNAT(map[string]string{"chain": "srcnat", "action": "masquerade", "out-interface": "ether1"})

	w.startController()
	return w
}

// startController starts the controller's API and agent endpoint; after the
// first start it comes back on the same address, like a restarted controller.
func (w *world) startController() {
	cfg := replicaConfig{hub: hub.Config{Heartbeat: time.Second}}
	if w.ctrl != nil {
		cfg.addr = w.ctrl.Listener.Addr().String()
	}
	w.ctl = startReplica(w.t, nil, w.st, cfg)
	w.ctrl, w.hub = w.ctl.srv, w.ctl.hub
}

func (w *world) stopController() {
	if w.ctl != nil {
		w.ctl.stop()
	}
}

func (w *world) startAgent(controllerURL string) {
	w.t.Helper()
	w.stopAgent = startAgent(w.t, daemon.Config{
		ControllerURL: controllerURL,
		Token:         w.agentToken,
		ControllerTLS: w.agentTLS,
		Router:        routeros.Config{Address: w.ros.Addr(), User: "tpf", Password: "s3cret", Timeout: 2 * time.Second},
		Version:       "test",
		Now:           w.agentClock,
		Resync:        200 * time.Millisecond,
		Heartbeat:     time.Second,
	})
}

func (w *world) killAgent() {
	if w.stopAgent != nil {
		w.stopAgent()
		w.stopAgent = nil
	}
}

func (w *world) create(created time.Time, minutes int, masquerade bool) fleet.Forward {
	w.t.Helper()
	f, err := forwards.New(w.st).CreateForward(context.Background(), w.p, w.router.ID, fleet.NewForward{
		DstAddress: netip.MustParseAddr("192.168.88.43"), DstPort: 22,
		AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: time.Duration(minutes) * time.Minute, Masquerade: masquerade,
	}, created)
	if err != nil {
		w.t.Fatal(err)
	}
	return f
}

// tpfRules returns the emulated router's tpf rules by forward id and chain.
func (w *world) tpfRules() map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, r := range tpfRules(w.ros) {
		if tag, err := forward.ParseTag(r["comment"]); err == nil {
			out[tag.ID+"/"+r["chain"]] = r
		}
	}
	return out
}

func (w *world) foreignRules() []string {
	var out []string
	for _, r := range w.ros.NAT() {
		if !forward.IsTPF(r["comment"]) {
			out = append(out, fmt.Sprint(r))
		}
	}
	return out
}

func (w *world) eventually(what string, cond func() bool) {
	w.t.Helper()
	waitUntil(w.t, what, 15*time.Second, 20*time.Millisecond, cond, func() string { return fmt.Sprintf("router NAT: %v", w.ros.NAT()) })
}

func (w *world) status(id fleet.Forward) fleet.Status {
	f, err := w.st.Forward(context.Background(), w.p.AccountID, w.router.ID, id.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	return f.StatusAt(time.Now())
}

func TestAgentKeepsRouterInLine(t *testing.T) {
	for _, version := range []string{"6.49.10", "7.18.2"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, version)
			foreign := w.foreignRules()
			// A stale tpf rule of a forward the controller does not know.
			w.ros.AddNAT(map[string]string{"chain": "dstnat", "action": "dst-nat", "protocol": "tcp", "dst-port": "50001",
				"src-address": edgeAddr, "dst-address": tunnelAddr, "to-addresses": "192.168.88.99", "to-ports": "80",
				"comment": forward.Tag{ID: "00000000-0000-4000-8000-000000000001", Expires: time.Now().Add(time.Hour)}.String()})
			w.startAgent(w.ctrl.URL)

			f := w.create(time.Now().UTC().Truncate(time.Second), 60, true)
			w.eventually("the forward's rules", func() bool {
				r := w.tpfRules()
				return len(r) == 2 && r[f.ID.String()+"/dstnat"] != nil && r[f.ID.String()+"/srcnat"] != nil
			})
			r := w.tpfRules()[f.ID.String()+"/dstnat"]
			want := map[string]string{"action": "dst-nat", "protocol": "tcp", "src-address": edgeAddr, "dst-address": tunnelAddr,
				"dst-port": fmt.Sprint(f.Port), "to-addresses": "192.168.88.43", "to-ports": "22"}
			for k, v := range want {
				if r[k] != v {
					t.Errorf("dst-nat rule %s: got %q, want %q", k, r[k], v)
				}
			}
			if nat := w.ros.NAT(); nat[0]["comment"] != r["comment"] {
				t.Errorf("the dst-nat rule is not placed before the router's own: %v", nat)
			}
			w.eventually("the forward to become active", func() bool { return w.status(f) == fleet.StatusActive })
			if got := w.foreignRules(); fmt.Sprint(got) != fmt.Sprint(foreign) {
				t.Errorf("foreign rules changed:\ngot  %v\nwant %v", got, foreign)
			}

			// Deleted by hand on the router: put back.
			w.ros.RemoveNAT(r[".id"])
			w.eventually("the hand-deleted rule to be restored", func() bool { return w.tpfRules()[f.ID.String()+"/dstnat"] != nil })
			// Edited by hand: repaired.
			w.ros.RemoveNAT(w.tpfRules()[f.ID.String()+"/dstnat"][".id"])
			w.ros.AddNAT(map[string]string{"chain": "dstnat", "action": "dst-nat", "protocol": "tcp", "dst-port": fmt.Sprint(f.Port),
				"src-address": "0.0.0.0/0", "dst-address": tunnelAddr, "to-addresses": "192.168.88.1", "to-ports": "8291",
				"comment": forward.Tag{ID: f.ID.String(), Expires: f.ExpiresAt}.String()})
			w.eventually("the edited rule to be repaired", func() bool {
				r := w.tpfRules()[f.ID.String()+"/dstnat"]
				return r != nil && r["src-address"] == edgeAddr && r["to-addresses"] == "192.168.88.43" && r["to-ports"] == "22"
			})

			// Revoke: rules and the live connection's conntrack entry go.
			w.ros.AddConnection(map[string]string{"protocol": "tcp", "src-address": edgeAddr + ":40000", "dst-address": fmt.Sprintf("%s:%d", tunnelAddr, f.Port)})
			w.ros.AddConnection(map[string]string{"protocol": "tcp", "src-address": "192.168.88.5:40000", "dst-address": "1.1.1.1:443"})
			if err := forwards.New(w.st).RevokeForward(context.Background(), w.p, w.router.ID, f.ID, time.Now().UTC().Truncate(time.Second)); err != nil {
				t.Fatal(err)
			}
			w.eventually("rules to be removed", func() bool { return len(w.tpfRules()) == 0 })
			w.eventually("the connection to be flushed", func() bool { return len(w.ros.Connections()) == 1 })
			if c := w.ros.Connections()[0]; c["dst-address"] != "1.1.1.1:443" {
				t.Errorf("the wrong connection was flushed; left: %v", c)
			}
			w.eventually("the removal to be confirmed", func() bool { return w.status(f) == fleet.StatusRemoved })
			if got := w.foreignRules(); fmt.Sprint(got) != fmt.Sprint(foreign) {
				t.Errorf("foreign rules changed:\ngot  %v\nwant %v", got, foreign)
			}
		})
	}
}

// TestExpiryWithoutController: the controller is gone when the forward
// expires; the agent removes the rule on its own clock.
func TestExpiryWithoutController(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "7.18.2")
	w.startAgent(w.ctrl.URL)
	// Created so that it expires two seconds from now.
	f := w.create(time.Now().UTC().Truncate(time.Second).Add(-10*time.Minute+2*time.Second), 10, false)
	w.eventually("the forward's rule", func() bool { return len(w.tpfRules()) == 1 })
	w.stopController()
	w.eventually("the rule to be removed at expiry", func() bool { return len(w.tpfRules()) == 0 })
	if late := time.Since(f.ExpiresAt); late > 2*time.Second {
		t.Errorf("removed %v after expiry, want within a second or so", late)
	}
}

// TestRestartWithoutController: an agent that starts while the controller
// is unreachable keeps unexpired forwards and removes expired ones.
func TestRestartWithoutController(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "7.18.2")
	w.stopController()
	live := forward.Tag{ID: "00000000-0000-4000-8000-00000000000a", Expires: time.Now().Add(time.Hour).Truncate(time.Second)}
	soon := forward.Tag{ID: "00000000-0000-4000-8000-00000000000b", Expires: time.Now().Add(2 * time.Second).Truncate(time.Second)}
	dead := forward.Tag{ID: "00000000-0000-4000-8000-00000000000c", Expires: time.Now().Add(-time.Minute).Truncate(time.Second)}
	for i, tag := range []forward.Tag{live, soon, dead} {
		w.ros.AddNAT(map[string]string{"chain": "dstnat", "action": "dst-nat", "protocol": "tcp", "dst-port": fmt.Sprint(50100 + i),
			"src-address": edgeAddr, "dst-address": tunnelAddr, "to-addresses": "192.168.88.43", "to-ports": "22", "comment": tag.String()})
	}
	w.startAgent("http://127.0.0.1:1") // nothing listens there
	w.eventually("the expired rule to go", func() bool { return w.tpfRules()[dead.ID+"/dstnat"] == nil })
	if w.tpfRules()[live.ID+"/dstnat"] == nil || w.tpfRules()[soon.ID+"/dstnat"] == nil {
		t.Fatalf("unexpired rules were removed without a desired set: %v", w.ros.NAT())
	}
	w.eventually("the next rule to go at its expiry", func() bool { return w.tpfRules()[soon.ID+"/dstnat"] == nil })
	if w.tpfRules()[live.ID+"/dstnat"] == nil {
		t.Error("the hour-long rule was removed")
	}
}

// TestOutages: the router's API and the controller link go away and come
// back; each time the router ends up holding exactly the desired rules.
func TestOutages(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "7.18.2")
	w.startAgent(w.ctrl.URL)
	now := time.Now().UTC().Truncate(time.Second)
	a := w.create(now, 60, false)
	w.eventually("the first rule", func() bool { return len(w.tpfRules()) == 1 })

	// Router API: connections dropped, then a while of refused logins.
	w.ros.DropConnections()
	w.ros.SetFault(routerostest.Fault{RefuseLogin: true})
	b := w.create(now, 60, false)
	w.ros.SetFault(routerostest.Fault{})
	w.eventually("the second rule after the router came back", func() bool { return len(w.tpfRules()) == 2 })

	// Websocket cut: the controller restarts; a forward revoked meanwhile is
	// removed once the agent is back.
	w.stopController()
	if err := forwards.New(w.st).RevokeForward(context.Background(), w.p, w.router.ID, a.ID, now); err != nil {
		t.Fatal(err)
	}
	w.startController()
	w.eventually("the revoked forward's rule to go", func() bool {
		r := w.tpfRules()
		return len(r) == 1 && r[b.ID.String()+"/dstnat"] != nil
	})
	w.eventually("the removal to be confirmed", func() bool { return w.status(a) == fleet.StatusRemoved })
	w.eventually("the second forward to be active", func() bool { return w.status(b) == fleet.StatusActive })

	// Router reports reach the controller.
	r, err := w.st.Router(context.Background(), w.p.AccountID, w.router.ID)
	if err != nil || !strings.HasPrefix(r.Agent.RouterOSVersion, "7.18.2") || r.Agent.AgentVersion != "test" {
		t.Errorf("router agent state: got %+v, %v", r.Agent, err)
	}
}

// TestRefusedForward: the agent's own checks refuse a forward the controller
// should never have sent, and the refusal reaches the forward.
func TestRefusedForward(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "7.18.2")
	w.startAgent(w.ctrl.URL)
	ctx := context.Background()
	// The store trusts its caller; the API would refuse this address.
	f, err := forwards.New(w.st).CreateForward(ctx, w.p, w.router.ID, fleet.NewForward{
		DstAddress: netip.MustParseAddr("169.254.169.254"), DstPort: 80,
		AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: time.Hour,
	}, time.Now().UTC().Truncate(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	w.eventually("the refusal to be recorded", func() bool {
		got, _ := w.st.Forward(ctx, w.p.AccountID, w.router.ID, f.ID)
		return strings.HasPrefix(got.RouterError, "refused")
	})
	if len(w.tpfRules()) != 0 {
		t.Errorf("a rule was added for a refused forward: %v", w.ros.NAT())
	}
	if s := w.status(f); s != fleet.StatusPending {
		t.Errorf("status: got %s, want pending", s)
	}
}

// TestControllerOverTLS: the agent verifies the controller's certificate
// with the CA bundle it is given, and refuses one it cannot verify.
func TestControllerOverTLS(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "7.18.2")
	srv := httptest.NewUnstartedServer(api.NewServer(w.st, api.Config{Agents: w.hub}))
	handshakes := &lineWriter{lines: make(chan string, 100)}
	srv.Config.ErrorLog = log.New(handshakes, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)

	// Without the CA, the agent's handshake fails: the forward stays
	// pending and the router is never reported connected.
	w.startAgent(srv.URL)
	f := w.create(time.Now().UTC().Truncate(time.Second), 60, false)
	select {
	case line := <-handshakes.lines:
		if !strings.Contains(line, "TLS handshake error") {
			t.Fatalf("server log: got %q, want a TLS handshake error", line)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the agent never tried the controller")
	}
	if w.hub.Connected(w.router.ID) || len(w.tpfRules()) != 0 {
		t.Fatal("the agent connected to a controller it could not verify")
	}
	w.killAgent()

	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	w.agentTLS = &tls.Config{RootCAs: pool}
	w.startAgent(srv.URL)
	w.eventually("the rule over the verified link", func() bool { return w.tpfRules()[f.ID.String()+"/dstnat"] != nil })
}

// lineWriter hands each write (a log line) to a channel.
type lineWriter struct{ lines chan string }

func (l *lineWriter) Write(p []byte) (int, error) {
	select {
	case l.lines <- string(p):
	default:
	}
	return len(p), nil
}
