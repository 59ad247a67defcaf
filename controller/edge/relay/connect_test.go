package relay_test

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/edge/listen"
	"github.com/tpf-dev/tpf/controller/edge/relay"
)

// echoServer runs a target that echoes every connection until EOF, then
// closes it.
func echoServer(t testing.TB) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
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
			go func() {
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// edge wires a listen.Set to an Engine the way the edge does: the Set's
// event loop runs on the Engine (Poller), and its handler passes every
// connection to Connect. It returns the listening address and the Stats
// of ended connections.
func edge(t testing.TB, e *relay.Engine, target netip.AddrPort, lim relay.Limits) (netip.AddrPort, <-chan relay.Stats) {
	t.Helper()
	return edgeCtx(t, e, context.Background(), target, lim)
}

// edgeCtx is edge with the context every connection is relayed under.
func edgeCtx(t testing.TB, e *relay.Engine, ctx context.Context, target netip.AddrPort, lim relay.Limits) (netip.AddrPort, <-chan relay.Stats) {
	t.Helper()
	stats := make(chan relay.Stats, 64)
	lo := netip.MustParseAddr("127.0.0.1")
	s, err := listen.New(listen.Config{
		Bind:   lo,
		Poller: e,
		Handler: func(c *listen.Conn) {
			e.Connect(ctx, c, target, lim, func(st relay.Stats) { stats <- st })
		},
	})
	if err != nil {
		t.Fatalf("listen.New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Shutdown(); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	for range 100 {
		port := uint16(61000 + rand.IntN(4536))
		err := s.Open(port, netip.MustParsePrefix("127.0.0.0/8"))
		if err == nil {
			return netip.AddrPortFrom(lo, port), stats
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("Open(%d): %v", port, err)
		}
	}
	t.Fatal("no free port found in 100 tries")
	return netip.AddrPort{}, nil
}

func waitStats(t testing.TB, ch <-chan relay.Stats) relay.Stats {
	t.Helper()
	select {
	case st := <-ch:
		return st
	case <-time.After(5 * time.Second):
		t.Fatal("no relay ended within 5s")
		return relay.Stats{}
	}
}

func TestConnectThroughListener(t *testing.T) {
	t.Parallel()
	e := newEngine(t, relay.Config{})
	addr, stats := edge(t, e, echoServer(t), relay.Limits{})
	for i := range 20 {
		c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		msg := make([]byte, 100<<10)
		rand.NewChaCha8([32]byte{byte(i)}).Read(msg)
		go func() {
			c.Write(msg)
			c.(*net.TCPConn).CloseWrite()
		}()
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(got) != string(msg) {
			t.Fatalf("connection %d: echo: got %d bytes, %v, want the %d sent", i, len(got), err, len(msg))
		}
		st := waitStats(t, stats)
		if st.Up != int64(len(msg)) || st.Down != int64(len(msg)) || st.Reason != relay.ReasonClientClosed {
			t.Errorf("connection %d: Stats: got Up=%d Down=%d %q (%v), want %d both ways, %q",
				i, st.Up, st.Down, st.Reason, st.Err, len(msg), relay.ReasonClientClosed)
		}
	}
	if got := e.Active(); got != 0 {
		t.Errorf("Active after all ended: got %d, want 0", got)
	}
}

func TestConnectRefusedTarget(t *testing.T) {
	t.Parallel()
	e := newEngine(t, relay.Config{})
	// A port that was just free: nothing listens there.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	addr, stats := edge(t, e, dead, relay.Limits{})

	// The client is reset: during its dial already, or on its first read.
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err == nil {
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("client: got %v, want a reset", err)
	}
	st := waitStats(t, stats)
	if st.Reason != relay.ReasonDialFailed || !errors.Is(st.Err, syscall.ECONNREFUSED) {
		t.Errorf("Stats: got %q (%v), want %q with ECONNREFUSED", st.Reason, st.Err, relay.ReasonDialFailed)
	}
}

func TestConnectTimeout(t *testing.T) {
	t.Parallel()
	e := newEngine(t, relay.Config{DialTimeout: 300 * time.Millisecond})
	// A target whose SYNs are dropped: a Set admitting nobody on loopback.
	black, err := listen.NewSet(netip.MustParseAddr("127.0.0.1"), func(c *listen.Conn) { c.Close() }, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { black.Shutdown() })
	var target netip.AddrPort
	for range 100 {
		port := uint16(61000 + rand.IntN(4536))
		if err := black.Open(port, netip.MustParsePrefix("127.0.0.2/32")); err == nil {
			target = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
			break
		}
	}
	if !target.IsValid() {
		t.Fatal("no free port for the black hole")
	}
	addr, stats := edge(t, e, target, relay.Limits{})
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial the edge: %v", err)
	}
	defer c.Close()
	begin := time.Now()
	st := waitStats(t, stats)
	if st.Reason != relay.ReasonDialFailed || !errors.Is(st.Err, syscall.ETIMEDOUT) {
		t.Errorf("Stats: got %q (%v), want %q with ETIMEDOUT", st.Reason, st.Err, relay.ReasonDialFailed)
	}
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("dial timeout of 300ms took %v", took)
	}
}

func TestConnectBadTarget(t *testing.T) {
	t.Parallel()
	e := newEngine(t, relay.Config{})
	addr, stats := edge(t, e, netip.AddrPort{}, relay.Limits{})
	if c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second); err == nil {
		defer c.Close() // or reset while dialling
	}
	if st := waitStats(t, stats); st.Reason != relay.ReasonDialFailed || st.Err == nil {
		t.Errorf("Stats: got %q (%v), want %q with an error", st.Reason, st.Err, relay.ReasonDialFailed)
	}
}

func TestConnectTCPSocket(t *testing.T) {
	t.Parallel()
	e := newEngine(t, relay.Config{Loops: 1})
	c, relayClient := tcpPair(t)
	defer c.Close()
	stats := make(chan relay.Stats, 1)
	e.Connect(context.Background(), relay.TCPSocket(relayClient), echoServer(t), relay.Limits{}, func(st relay.Stats) { stats <- st })
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "hello" {
		t.Fatalf("echo: got %q, %v, want \"hello\"", got, err)
	}
	if st := waitStats(t, stats); st.Reason != relay.ReasonClientClosed {
		t.Errorf("Stats: got %q (%v), want %q", st.Reason, st.Err, relay.ReasonClientClosed)
	}
}

func TestWatchCancel(t *testing.T) {
	t.Parallel()
	e := newEngine(t, relay.Config{})
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])
	called := make(chan struct{}, 16)
	cancel, err := e.Watch(p[0], func() bool {
		var b [16]byte
		syscall.Read(p[0], b[:])
		called <- struct{}{}
		return false
	})
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	syscall.Write(p[1], []byte("x"))
	select {
	case <-called:
	case <-time.After(5 * time.Second):
		t.Fatal("ready not called within 5s of the fd becoming readable")
	}
	cancel()
	cancel() // twice is fine
	syscall.Write(p[1], []byte("y"))
	select {
	case <-called:
		t.Error("ready called after cancel")
	case <-time.After(200 * time.Millisecond): // a window for a wrong call, not synchronisation
	}
	e.Close()
	if _, err := e.Watch(p[0], func() bool { return false }); !errors.Is(err, relay.ErrClosed) {
		t.Errorf("Watch after Close: got %v, want ErrClosed", err)
	}
}

// BenchmarkOpen10kOnEngine is listen's BenchmarkOpen10k with the engine as
// the Set's Poller, the way the edge runs: each listening socket is watched
// directly by a relay loop. It reports the time to open 10,000 listeners
// and, on the first round, the Go heap they hold.
func BenchmarkOpen10kOnEngine(b *testing.B) {
	const n = 10000
	e := newEngine(b, relay.Config{})
	lo := netip.MustParseAddr("127.0.0.1")
	only := netip.MustParsePrefix("127.0.0.1/32")
	var openMS []float64
	first := true
	for b.Loop() {
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		start := time.Now()
		s, err := listen.New(listen.Config{Bind: lo, Poller: e, Handler: func(c *listen.Conn) { c.Close() }})
		if err != nil {
			b.Fatal(err)
		}
		opened := make([]uint16, 0, n)
		for port := 10000; len(opened) < n && port < 65536; port++ {
			if err := s.Open(uint16(port), only); err == nil {
				opened = append(opened, uint16(port))
			}
		}
		openMS = append(openMS, float64(time.Since(start).Microseconds())/1000)
		if len(opened) < n {
			b.Fatalf("opened %d listeners, want %d", len(opened), n)
		}
		for _, p := range []uint16{opened[0], opened[n/2], opened[n-1]} {
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(lo, p).String(), 2*time.Second)
			if err != nil {
				b.Fatalf("probe %d: %v", p, err)
			}
			c.Close()
		}
		if first {
			runtime.ReadMemStats(&m1)
			b.ReportMetric(float64(int64(m1.HeapInuse)-int64(m0.HeapInuse))/n, "heap-B/listener")
			b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
			first = false
		}
		if err := s.Shutdown(); err != nil {
			b.Fatal(err)
		}
	}
	slices.Sort(openMS)
	b.ReportMetric(openMS[len(openMS)/2], "open-ms/10k")
}
