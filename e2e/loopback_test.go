package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/agent/daemon"
	"github.com/tpf-dev/tpf/agent/routeros"
	"github.com/tpf-dev/tpf/agent/routerostest"
	"github.com/tpf-dev/tpf/controller/api"
	"github.com/tpf-dev/tpf/controller/edge"
	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/hub"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/controller/store/storetest"
	"github.com/tpf-dev/tpf/shared/peerlink"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// loopback is the whole data path on one machine without privileges: the
// controller with its edge on 127.0.0.1, an emulated router whose NAT runs
// in user space on 127.0.0.2 (its tunnel address), its agent, and an echo
// service standing in for the LAN device 192.168.88.43:22.
type loopback struct {
	t        testing.TB
	edgeBind string // 127.0.N.1: the edge's listeners
	tunnel   string // 127.0.N.2: the router's tunnel address
	tenant
	router   fleet.Router
	hub      *hub.Hub
	ros      *routerostest.Server
	edge     *edge.Edge
	stopEdge context.CancelFunc
	edgeDone chan struct{}
}

// Each loopback test gets its own pair of loopback addresses (edge and
// router), so tests running side by side never compete for a port, and
// ports below Linux's ephemeral range (32768–60999), so no outgoing
// connection of this machine holds one.
var nextHost atomic.Int32

const portMin, portMax = 20000, 31999

func newLoopback(t testing.TB, edgeCfg edge.Config) *loopback {
	t.Helper()
	n := 10 + nextHost.Add(1)
	l := &loopback{t: t, edgeBind: fmt.Sprintf("127.0.%d.1", n), tunnel: fmt.Sprintf("127.0.%d.2", n)}
	now := time.Now().UTC().Truncate(time.Second)
	l.tenant = newTenant(t, store.New(storetest.New(t)), fleet.Region{
		ID: "local", EntryPoint: l.edgeBind, Ports: fleet.PortRange{Min: portMin, Max: portMax},
		EdgeTunnelAddress: netip.MustParseAddr("127.0.0.1"),
	}, now)
	if err := l.st.SetEdgeManaged(context.Background(), "local"); err != nil {
		t.Fatal(err)
	}
	var agentToken string
	l.router, agentToken = l.addRouter(t, "r1", "local", netip.MustParseAddr(l.tunnel), now)

	// The controller: API and hub.
	ctl := startReplica(t, nil, l.st, replicaConfig{
		hub: hub.Config{Heartbeat: time.Second, EdgeLimits: syncproto.Limits{MaxConnections: 4}},
		api: api.Config{AllowSources: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
	})
	l.hub = ctl.hub

	// The LAN device and the router.
	dev := echoServer(t)
	l.ros = startRouterOS(t, routerostest.Config{
		Users:   map[string]string{"tpf": "pw"},
		UserNAT: &routerostest.UserNAT{Map: func(netip.AddrPort) netip.AddrPort { return dev }},
	})
	startAgent(t, daemon.Config{
		ControllerURL: ctl.srv.URL, Token: agentToken, Resync: 500 * time.Millisecond,
		Router: routeros.Config{Address: l.ros.Addr(), User: "tpf", Password: "pw"},
	})

	l.startEdge(edgeCfg)
	return l
}

// startEdge runs the edge over an in-process link, as serve embeds it.
func (l *loopback) startEdge(cfg edge.Config) {
	l.t.Helper()
	cfg.Bind = netip.MustParseAddr(l.edgeBind)
	e, err := edge.New(cfg)
	if err != nil {
		l.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	hubEnd, edgeEnd := peerlink.Pipe()
	go l.hub.ServeEdge(ctx, "local", hubEnd)
	go func() { defer close(done); e.Run(ctx, edgeEnd) }()
	l.edge, l.stopEdge, l.edgeDone = e, cancel, done
	l.t.Cleanup(l.killEdge)
}

// killEdge stops the edge as a crash would: its link and listeners go.
func (l *loopback) killEdge() {
	if l.stopEdge == nil {
		return
	}
	l.stopEdge()
	<-l.edgeDone
	l.edge.Close()
	l.stopEdge = nil
}

// detachEdge cuts the edge off the controller but keeps it serving.
func (l *loopback) detachEdge() {
	l.stopEdge()
	<-l.edgeDone
	l.stopEdge = nil
}

func (l *loopback) create(created time.Time, minutes int) fleet.Forward {
	l.t.Helper()
	f, err := forwards.New(l.st).CreateForward(context.Background(), l.p, l.router.ID, fleet.NewForward{
		DstAddress: netip.MustParseAddr("192.168.88.43"), DstPort: 22,
		AllowFrom: netip.MustParsePrefix("127.0.0.1/32"), Duration: time.Duration(minutes) * time.Minute,
	}, created)
	if err != nil {
		l.t.Fatal(err)
	}
	return f
}

func (l *loopback) status(f fleet.Forward) fleet.Status {
	got, err := l.st.Forward(context.Background(), l.p.AccountID, l.router.ID, f.ID)
	if err != nil {
		l.t.Fatal(err)
	}
	return got.StatusAt(time.Now())
}

func (l *loopback) eventually(what string, cond func() bool) {
	l.t.Helper()
	waitUntil(l.t, what, 15*time.Second, 10*time.Millisecond, cond, func() string {
		var b strings.Builder
		fs, _ := l.st.ForwardHistory(context.Background(), l.p.AccountID, l.router.ID, false, 10, time.Now())
		for _, f := range fs {
			fmt.Fprintf(&b, "forward %s: status %s, router error %q, edge error %q\n", f.ID, f.StatusAt(time.Now()), f.RouterError, f.EdgeError)
		}
		r, _ := l.st.Region(context.Background(), "local")
		fmt.Fprintf(&b, "edge: %+v; router NAT: %v; edge ports %v", r.Edge, l.ros.NAT(), l.edge.Ports())
		return b.String()
	})
}

// dial connects to the entry point from source (an address of lo).
func (l *loopback) dial(port uint16, source string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
	return d.Dial("tcp", net.JoinHostPort(l.edgeBind, fmt.Sprint(port)))
}

// session is a live client connection through a forward.
type session struct {
	c net.Conn
	r *bufio.Reader
}

func (l *loopback) connect(port uint16) *session {
	l.t.Helper()
	c, err := l.dial(port, "127.0.0.1", 5*time.Second)
	if err != nil {
		l.t.Fatalf("connect to the entry point: %v", err)
	}
	l.t.Cleanup(func() { c.Close() })
	s := &session{c: c, r: bufio.NewReader(c)}
	if got := s.echo("hello"); got != "hello" {
		l.t.Fatalf("echo through the forward: got %q", got)
	}
	return s
}

func (s *session) echo(line string) string {
	s.c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintln(s.c, line)
	got, err := s.r.ReadString('\n')
	if err != nil {
		return "error: " + err.Error()
	}
	return got[:len(got)-1]
}

// cutWithin checks that the session ends within d.
func (s *session) cutWithin(t *testing.T, d time.Duration) {
	t.Helper()
	start := time.Now()
	s.c.SetReadDeadline(time.Now().Add(d + 2*time.Second))
	_, err := s.r.ReadString('\n')
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the session was not cut: %v", err)
	}
	if took := time.Since(start); took > d {
		t.Errorf("the session was cut after %v, want within %v", took, d)
	}
}

// closedWithin checks that the edge stops listening for f within d, and
// that nothing gets through its port afterwards.
func (l *loopback) closedWithin(f fleet.Forward, d time.Duration) {
	l.t.Helper()
	deadline := time.Now().Add(d)
	for slices.Contains(l.edge.Ports(), f.Port) {
		if time.Now().After(deadline) {
			l.t.Fatalf("the edge still listens on %d after %v", f.Port, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c, err := l.dial(f.Port, "127.0.0.1", 700*time.Millisecond)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintln(c, "anyone?")
	if b, err := bufio.NewReader(c).ReadString('\n'); err == nil || isTimeout(err) {
		l.t.Errorf("a connection to a closed forward's port: got %q, %v; want it refused or closed", b, err)
	}
}

func echoServer(t testing.TB) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

func TestLoopbackForward(t *testing.T) {
	t.Parallel()
	l := newLoopback(t, edge.Config{})
	f := l.create(time.Now().UTC().Truncate(time.Second), 60)
	l.eventually("the forward to become active (rule and listener)", func() bool { return l.status(f) == fleet.StatusActive })

	s := l.connect(f.Port)
	if got := s.echo("second line"); got != "second line" {
		t.Errorf("echo: got %q", got)
	}

	// A source outside allow_from never gets a SYN-ACK: the dial times out
	// instead of being refused.
	if c, err := l.dial(f.Port, "127.0.0.3", 700*time.Millisecond); err == nil {
		c.Close()
		t.Error("a disallowed source connected")
	} else if !isTimeout(err) {
		t.Errorf("disallowed source: got %v, want a timeout (no SYN-ACK)", err)
	}

	// Connection records reach the controller.
	l.eventually("the open connection to be recorded", func() bool {
		got, _ := l.st.Forward(context.Background(), l.p.AccountID, l.router.ID, f.ID)
		return got.ConnectionsActive == 1
	})

	// Revoke cuts the live session within a second.
	if err := forwards.New(l.st).RevokeForward(context.Background(), l.p, l.router.ID, f.ID, time.Now().UTC().Truncate(time.Second)); err != nil {
		t.Fatal(err)
	}
	s.cutWithin(t, time.Second)
	l.eventually("the connection record to close", func() bool {
		cs, _ := l.st.Connections(context.Background(), l.p.AccountID, l.router.ID, f.ID, 10)
		return len(cs) == 1 && cs[0].EndedAt != nil && cs[0].BytesUp > 0 && cs[0].BytesDown > 0
	})
	l.closedWithin(f, time.Second)
}

func TestLoopbackExpiryWithoutController(t *testing.T) {
	t.Parallel()
	l := newLoopback(t, edge.Config{})
	// Expires two seconds from now.
	f := l.create(time.Now().UTC().Truncate(time.Second).Add(-10*time.Minute+2*time.Second), 10)
	l.eventually("the listener", func() bool { return l.status(f) == fleet.StatusActive })
	s := l.connect(f.Port)
	l.detachEdge() // the controller is unreachable from here on
	s.cutWithin(t, time.Until(f.ExpiresAt)+time.Second)
	l.closedWithin(f, time.Until(f.ExpiresAt)+time.Second)
}

func TestLoopbackControllerOutageKeepsServing(t *testing.T) {
	t.Parallel()
	l := newLoopback(t, edge.Config{})
	f := l.create(time.Now().UTC().Truncate(time.Second), 60)
	l.eventually("the listener", func() bool { return l.status(f) == fleet.StatusActive })
	l.detachEdge()
	s := l.connect(f.Port) // new connections still work without the controller
	if got := s.echo("still here"); got != "still here" {
		t.Errorf("echo during the outage: got %q", got)
	}
}

func TestLoopbackStrictMode(t *testing.T) {
	t.Parallel()
	l := newLoopback(t, edge.Config{Strict: time.Second})
	f := l.create(time.Now().UTC().Truncate(time.Second), 60)
	l.eventually("the listener", func() bool { return l.status(f) == fleet.StatusActive })
	s := l.connect(f.Port)
	l.detachEdge()
	s.cutWithin(t, 3*time.Second)
}

func TestLoopbackEdgeRestart(t *testing.T) {
	t.Parallel()
	l := newLoopback(t, edge.Config{})
	f := l.create(time.Now().UTC().Truncate(time.Second), 60)
	l.eventually("the listener", func() bool { return l.status(f) == fleet.StatusActive })
	l.killEdge()
	if c, err := l.dial(f.Port, "127.0.0.1", 700*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("a dead edge still accepts connections")
	}
	l.startEdge(edge.Config{})
	l.eventually("the listener to come back", func() bool {
		c, err := l.dial(f.Port, "127.0.0.1", 500*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	l.connect(f.Port)
}

func TestLoopbackConnectionLimit(t *testing.T) {
	t.Parallel()
	l := newLoopback(t, edge.Config{})
	f := l.create(time.Now().UTC().Truncate(time.Second), 60)
	l.eventually("the listener", func() bool { return l.status(f) == fleet.StatusActive })
	for range 4 { // the hub's EdgeLimits allow 4
		l.connect(f.Port)
	}
	c, err := l.dial(f.Port, "127.0.0.1", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("the fifth connection: got %v, want it closed at once", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
