package listen_test

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tpf-dev/tpf/controller/edge/listen"
)

var (
	lo4    = netip.MustParseAddr("127.0.0.1")
	lo4b   = netip.MustParseAddr("127.0.0.2")
	any6   = netip.MustParseAddr("::")
	only1  = netip.MustParsePrefix("127.0.0.1/32")
	only2  = netip.MustParsePrefix("127.0.0.2/32")
	anyIP4 = netip.MustParsePrefix("0.0.0.0/0")
)

// handed collects the connections a Set hands over.
type handed struct {
	ch chan handoff
}

type handoff struct {
	port uint16
	c    *net.TCPConn
}

func newHanded() *handed { return &handed{ch: make(chan handoff, 64)} }

func (h *handed) handle(c *listen.Conn) {
	port, remote := c.Port(), c.RemoteAddr()
	tc, err := c.TCPConn()
	if err != nil {
		panic(err)
	}
	if got := tc.RemoteAddr().(*net.TCPAddr).AddrPort(); netip.AddrPortFrom(got.Addr().Unmap(), got.Port()) != remote {
		panic(fmt.Sprintf("Conn.RemoteAddr %v, socket's peer %v", remote, got))
	}
	h.ch <- handoff{port, tc}
}

// next waits for the next handed-over connection.
func (h *handed) next(t testing.TB) handoff {
	t.Helper()
	select {
	case o := <-h.ch:
		t.Cleanup(func() { o.c.Close() })
		return o
	case <-time.After(5 * time.Second):
		t.Fatal("no connection handed to the handler within 5s")
		return handoff{}
	}
}

// none checks that nothing was handed over.
func (h *handed) none(t testing.TB) {
	t.Helper()
	select {
	case o := <-h.ch:
		o.c.Close()
		t.Fatalf("handler got a connection from %v on port %d, want none", o.c.RemoteAddr(), o.port)
	default:
	}
}

func newSet(t testing.TB, bind netip.Addr, h listen.Handler) *listen.Set {
	t.Helper()
	s, err := listen.NewSet(bind, h, nil)
	if err != nil {
		t.Fatalf("NewSet(%v): %v", bind, err)
	}
	t.Cleanup(func() {
		if err := s.Shutdown(); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s
}

// openFree opens a port above Linux's ephemeral range (61000–65535, inside
// the edge's default range) that nothing else holds, retrying on EADDRINUSE
// so that tests are immune to other programs and parallel tests.
func openFree(t testing.TB, s *listen.Set, allow netip.Prefix) uint16 {
	t.Helper()
	for range 100 {
		port := uint16(61000 + rand.IntN(4536))
		err := s.Open(port, allow)
		if err == nil {
			return port
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("Open(%d, %v): %v", port, allow, err)
		}
	}
	t.Fatal("no free port found in 100 tries")
	return 0
}

// tcpState connects a raw socket from local to remote, waits, and returns
// the socket's TCP state: unix.BPF_TCP_ESTABLISHED if a SYN-ACK came back,
// unix.BPF_TCP_SYN_SENT if nothing did (the SYN was dropped silently), or an
// error such as ECONNREFUSED if a RST came back.
func tcpState(t testing.TB, local, remote netip.AddrPort, wait time.Duration) (uint8, error) {
	t.Helper()
	family := unix.AF_INET
	if remote.Addr().Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	defer unix.Close(fd)
	sockaddr := func(ap netip.AddrPort) unix.Sockaddr {
		if family == unix.AF_INET6 {
			return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
		}
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	if err := unix.Bind(fd, sockaddr(local)); err != nil {
		t.Fatalf("bind %v: %v", local, err)
	}
	if err := unix.Connect(fd, sockaddr(remote)); err != nil && err != unix.EINPROGRESS {
		return 0, err
	}
	// Wait for the outcome: writable means connected or failed.
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	if _, err := unix.Poll(pfd, int(wait.Milliseconds())); err != nil && err != unix.EINTR {
		t.Fatalf("poll: %v", err)
	}
	if soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil {
		t.Fatalf("getsockopt SO_ERROR: %v", err)
	} else if soerr != 0 {
		return 0, unix.Errno(soerr)
	}
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		t.Fatalf("getsockopt TCP_INFO: %v", err)
	}
	return info.State, nil
}

// wantState asserts the TCP state a connection attempt from local ends in.
func wantState(t testing.TB, local, remote netip.AddrPort, want uint8) {
	t.Helper()
	wait := 300 * time.Millisecond // loopback answers in microseconds
	if want == unix.BPF_TCP_ESTABLISHED {
		wait = 5 * time.Second // poll returns as soon as it is connected
	}
	got, err := tcpState(t, local, remote, wait)
	if err != nil {
		t.Fatalf("connect %v → %v: got error %v, want TCP state %s", local, remote, err, stateName(want))
	}
	if got != want {
		t.Fatalf("connect %v → %v: got TCP state %s, want %s", local, remote, stateName(got), stateName(want))
	}
}

func stateName(s uint8) string {
	switch s {
	case unix.BPF_TCP_ESTABLISHED:
		return "ESTABLISHED"
	case unix.BPF_TCP_SYN_SENT:
		return "SYN_SENT (no SYN-ACK)"
	}
	return "state " + strconv.Itoa(int(s))
}

func TestAllowedSourceIsHandedOver(t *testing.T) {
	t.Parallel()
	h := newHanded()
	s := newSet(t, lo4, h.handle)
	port := openFree(t, s, only1)

	c, err := net.DialTimeout("tcp", netip.AddrPortFrom(lo4, port).String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial allowed source: %v", err)
	}
	defer c.Close()
	o := h.next(t)
	if o.port != port {
		t.Errorf("handler port: got %d, want %d", o.port, port)
	}
	if got, want := o.c.RemoteAddr().String(), c.LocalAddr().String(); got != want {
		t.Errorf("handed-over RemoteAddr: got %s, want %s", got, want)
	}
	// The connection works both ways.
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatalf("client write: %v", err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(o.c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("server read: got %q, %v, want \"ping\"", buf, err)
	}
	if _, err := o.c.Write([]byte("pong")); err != nil {
		t.Fatalf("server write: %v", err)
	}
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("client read: got %q, %v, want \"pong\"", buf, err)
	}
}

func TestDisallowedSourceGetsNoSynAck(t *testing.T) {
	t.Parallel()
	h := newHanded()
	s := newSet(t, lo4, h.handle)
	port := openFree(t, s, only1)
	remote := netip.AddrPortFrom(lo4, port)

	wantState(t, netip.AddrPortFrom(lo4b, 0), remote, unix.BPF_TCP_SYN_SENT)

	// A Go client sees a timeout, not "connection refused".
	d := net.Dialer{Timeout: 300 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: lo4b.AsSlice()}}
	c, err := d.Dial("tcp", remote.String())
	if err == nil {
		c.Close()
		t.Fatal("dial from 127.0.0.2: got a connection, want a timeout")
	}
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("dial from 127.0.0.2: got %v, want a timeout", err)
	}
	// The allowed source still gets in, and is the only one handed over.
	wantState(t, netip.AddrPortFrom(lo4, 0), remote, unix.BPF_TCP_ESTABLISHED)
	if o := h.next(t); o.c.RemoteAddr().(*net.TCPAddr).IP.String() != "127.0.0.1" {
		t.Errorf("handed-over source: got %v, want 127.0.0.1", o.c.RemoteAddr())
	}
	h.none(t)
}

func TestDualStackBind(t *testing.T) {
	t.Parallel()
	h := newHanded()
	s := newSet(t, any6, h.handle)
	port := openFree(t, s, only1)
	mapped := func(a netip.Addr) netip.Addr { return netip.AddrFrom16(a.As16()) }

	// IPv4-mapped client outside the CIDR: dropped silently.
	wantState(t, netip.AddrPortFrom(mapped(lo4b), 0), netip.AddrPortFrom(mapped(lo4), port), unix.BPF_TCP_SYN_SENT)
	// Plain IPv4 client outside the CIDR: same.
	wantState(t, netip.AddrPortFrom(lo4b, 0), netip.AddrPortFrom(lo4, port), unix.BPF_TCP_SYN_SENT)
	h.none(t)

	// IPv4-mapped client inside: admitted, seen as a mapped address.
	wantState(t, netip.AddrPortFrom(mapped(lo4), 0), netip.AddrPortFrom(mapped(lo4), port), unix.BPF_TCP_ESTABLISHED)
	o := h.next(t)
	if got := o.c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr(); got.Unmap() != lo4 {
		t.Errorf("handed-over source: got %v, want %v (mapped or not)", got, lo4)
	}
	// Plain IPv4 client inside: admitted.
	wantState(t, netip.AddrPortFrom(lo4, 0), netip.AddrPortFrom(lo4, port), unix.BPF_TCP_ESTABLISHED)
	h.next(t)

	// A pure IPv6 source is never inside an IPv4 CIDR, even 0.0.0.0/0.
	if err := s.Open(port, anyIP4); err != nil {
		t.Fatalf("Open(%d, 0.0.0.0/0): %v", port, err)
	}
	lo6 := netip.IPv6Loopback()
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Logf("no IPv6 loopback (%v); skipping the pure IPv6 source", err)
	} else {
		ln.Close()
		wantState(t, netip.AddrPortFrom(lo6, 0), netip.AddrPortFrom(lo6, port), unix.BPF_TCP_SYN_SENT)
	}
	wantState(t, netip.AddrPortFrom(lo4b, 0), netip.AddrPortFrom(lo4, port), unix.BPF_TCP_ESTABLISHED)
	h.next(t)
	h.none(t)
}

func TestReplaceFilter(t *testing.T) {
	t.Parallel()
	h := newHanded()
	s := newSet(t, lo4, h.handle)
	port := openFree(t, s, only2)
	remote := netip.AddrPortFrom(lo4, port)
	from1, from2 := netip.AddrPortFrom(lo4, 0), netip.AddrPortFrom(lo4b, 0)

	wantState(t, from1, remote, unix.BPF_TCP_SYN_SENT)
	wantState(t, from2, remote, unix.BPF_TCP_ESTABLISHED)
	h.next(t)

	// A connection waiting in the queue while the filter is replaced stays
	// connected at TCP level; it is refused after accept (second line).
	if err := s.Open(port, only1); err != nil {
		t.Fatalf("Open(%d, %v) to replace the filter: %v", port, only1, err)
	}
	if got, ok := s.Allowed(port); !ok || got != only1 {
		t.Errorf("Allowed(%d): got %v, %v, want %v, true", port, got, ok, only1)
	}
	wantState(t, from2, remote, unix.BPF_TCP_SYN_SENT)
	wantState(t, from1, remote, unix.BPF_TCP_ESTABLISHED)
	if o := h.next(t); o.c.RemoteAddr().(*net.TCPAddr).IP.String() != "127.0.0.1" {
		t.Errorf("handed-over source: got %v, want 127.0.0.1", o.c.RemoteAddr())
	}
	if got := s.Ports(); len(got) != 1 || got[0] != port {
		t.Errorf("Ports: got %v, want [%d]", got, port)
	}
}

func TestCloseRefuses(t *testing.T) {
	t.Parallel()
	h := newHanded()
	s := newSet(t, lo4, h.handle)
	port := openFree(t, s, only1)
	if err := s.Close(port); err != nil {
		t.Fatalf("Close(%d): %v", port, err)
	}
	if got := s.Ports(); len(got) != 0 {
		t.Errorf("Ports after Close: got %v, want none", got)
	}
	_, err := tcpState(t, netip.AddrPortFrom(lo4, 0), netip.AddrPortFrom(lo4, port), 2*time.Second)
	if !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("connect after Close: got %v, want ECONNREFUSED", err)
	}
	if err := s.Close(port); !errors.Is(err, listen.ErrNotOpen) {
		t.Errorf("second Close: got %v, want ErrNotOpen", err)
	}
	h.none(t)
}

func TestOpenTakenPortNamesIt(t *testing.T) {
	t.Parallel()
	s := newSet(t, lo4, newHanded().handle)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	err = s.Open(port, only1)
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Open on a taken port: got %v, want EADDRINUSE", err)
	}
	if want := strconv.Itoa(int(port)); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name port %s", err, want)
	}
	if got := s.Ports(); len(got) != 0 {
		t.Errorf("Ports: got %v, want none", got)
	}
}

func TestBadArguments(t *testing.T) {
	t.Parallel()
	s := newSet(t, lo4, newHanded().handle)
	for _, allow := range []netip.Prefix{{}, netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("::ffff:0:0/64")} {
		if err := s.Open(61000, allow); err == nil {
			t.Errorf("Open(61000, %v): got nil error, want one", allow)
		}
	}
	if err := s.Open(0, only1); err == nil {
		t.Error("Open(0, …): got nil error, want one")
	}
	if _, err := listen.NewSet(netip.Addr{}, newHanded().handle, nil); err == nil {
		t.Error("NewSet without bind: got nil error, want one")
	}
	if _, err := listen.NewSet(lo4, nil, nil); err == nil {
		t.Error("NewSet without handler: got nil error, want one")
	}
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	s, err := listen.NewSet(lo4, newHanded().handle, nil)
	if err != nil {
		t.Fatal(err)
	}
	port := openFree(t, s, only1)
	if err := s.Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := s.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if err := s.Open(port, only1); !errors.Is(err, listen.ErrClosed) {
		t.Errorf("Open after Shutdown: got %v, want ErrClosed", err)
	}
	if _, err := tcpState(t, netip.AddrPortFrom(lo4, 0), netip.AddrPortFrom(lo4, port), 2*time.Second); !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("connect after Shutdown: got %v, want ECONNREFUSED", err)
	}
}

// TestFloodDegradesOnePort hammers one port with connections while another
// port must keep answering promptly.
func TestFloodDegradesOnePort(t *testing.T) {
	t.Parallel()
	var flooded atomic.Int64
	var served sync.WaitGroup
	h := func(port uint16, c *net.TCPConn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 1)
		if _, err := c.Read(buf); err == nil {
			c.Write(buf)
		}
	}
	var floodPort atomic.Uint32
	s := newSet(t, lo4, listen.Spawn(func(port uint16, c *net.TCPConn) {
		if uint32(port) == floodPort.Load() {
			flooded.Add(1)
		}
		h(port, c)
	}))
	quietPort := openFree(t, s, only1)
	floodPort.Store(uint32(openFree(t, s, only1)))

	stop := make(chan struct{})
	deadline := time.Now().Add(3 * time.Second)
	for range 16 {
		served.Add(1)
		go func() {
			defer served.Done()
			for i := 0; i < 2000 && time.Now().Before(deadline); i++ {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.DialTimeout("tcp", netip.AddrPortFrom(lo4, uint16(floodPort.Load())).String(), time.Second)
				if err == nil {
					c.Close() // without a byte: the handler reads EOF
				}
			}
		}()
	}
	defer func() { close(stop); served.Wait() }()

	var worst time.Duration
	for i := range 20 {
		start := time.Now()
		c, err := net.DialTimeout("tcp", netip.AddrPortFrom(lo4, quietPort).String(), 5*time.Second)
		if err != nil {
			t.Fatalf("quiet port, connection %d during the flood: %v", i, err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := []byte{'x'}
		if _, err := c.Write(buf); err != nil {
			t.Fatalf("quiet port write: %v", err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatalf("quiet port, connection %d: echo: %v", i, err)
		}
		c.Close()
		worst = max(worst, time.Since(start))
	}
	if worst > 2*time.Second {
		t.Errorf("quiet port round trip during the flood: got worst %v, want under 2s", worst)
	}
	if flooded.Load() < 20 {
		t.Errorf("connections handled during the flood: got %d, want at least 20 (did the flood run?)", flooded.Load())
	}
}

// TestConnSocketOptions checks what a handed-over socket is like: the
// options inherited from the listener, non-blocking mode, and the address.
func TestConnSocketOptions(t *testing.T) {
	t.Parallel()
	got := make(chan *listen.Conn, 1)
	s := newSet(t, lo4, func(c *listen.Conn) { got <- c })
	port := openFree(t, s, only1)
	d, err := net.DialTimeout("tcp", netip.AddrPortFrom(lo4, port).String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var c *listen.Conn
	select {
	case c = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no connection handed over")
	}
	if c.Port() != port || c.RemoteAddr().String() != d.LocalAddr().String() {
		t.Errorf("Conn: got port %d from %v, want %d from %v", c.Port(), c.RemoteAddr(), port, d.LocalAddr())
	}
	fd, err := c.Detach()
	if err != nil {
		t.Fatalf("Detach: %v", err)
	}
	defer unix.Close(fd)
	if _, err := c.Detach(); err == nil {
		t.Error("second Detach: got nil error, want one")
	}
	if err := c.Close(); err == nil {
		t.Error("Close after Detach: got nil error, want one")
	}
	for _, o := range []struct {
		name       string
		level, opt int
		want       int
	}{
		{"TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
		{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 30},
		{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 10},
		{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 3},
	} {
		if v, err := unix.GetsockoptInt(fd, o.level, o.opt); err != nil || v != o.want {
			t.Errorf("%s on the accepted socket: got %d, %v, want %d", o.name, v, err, o.want)
		}
	}
	if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK == 0 {
		t.Errorf("accepted socket flags %#x, %v: want O_NONBLOCK", fl, err)
	}
}
