package listen

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestAdmits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		allow, src string
		want       bool
	}{
		{"127.0.0.1/32", "127.0.0.1", true},
		{"127.0.0.1/32", "127.0.0.2", false},
		{"127.0.0.1/32", "::ffff:127.0.0.1", true},
		{"127.0.0.1/32", "::ffff:127.0.0.2", false},
		{"10.0.0.0/8", "10.255.1.2", true},
		{"10.0.0.0/8", "11.0.0.1", false},
		{"0.0.0.0/0", "203.0.113.9", true},
		{"0.0.0.0/0", "::ffff:203.0.113.9", true},
		{"0.0.0.0/0", "::1", false},
		{"0.0.0.0/0", "2001:db8::1", false},
	}
	for _, tt := range tests {
		p, err := ipv4Prefix(netip.MustParsePrefix(tt.allow))
		if err != nil {
			t.Fatalf("ipv4Prefix(%s): %v", tt.allow, err)
		}
		if got := admits(p, netip.MustParseAddr(tt.src)); got != tt.want {
			t.Errorf("admits(%s, %s): got %v, want %v", tt.allow, tt.src, got, tt.want)
		}
	}
}

func TestIPv4Prefix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string // want "" means an error
	}{
		{"192.0.2.7/24", "192.0.2.0/24"},
		{"::ffff:192.0.2.0/120", "192.0.2.0/24"},
		{"::ffff:0.0.0.0/96", "0.0.0.0/0"},
		{"::ffff:0.0.0.0/64", ""},
		{"2001:db8::/32", ""},
	}
	for _, tt := range tests {
		got, err := ipv4Prefix(netip.MustParsePrefix(tt.in))
		if tt.want == "" {
			if err == nil {
				t.Errorf("ipv4Prefix(%s): got %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got.String() != tt.want {
			t.Errorf("ipv4Prefix(%s): got %v, %v, want %s", tt.in, got, err, tt.want)
		}
	}
	if _, err := Filter(netip.Prefix{}); err == nil {
		t.Error("Filter(invalid prefix): got nil error, want one")
	}
	prog, err := Filter(netip.MustParsePrefix("10.0.0.0/8"))
	if err != nil || len(prog) != 8 {
		t.Errorf("Filter(10.0.0.0/8): got %d instructions, %v, want 8", len(prog), err)
	}
}

// TestAcceptErrorPausesOnlyThatListener injects EMFILE into one listener's
// accept: it must back off (not spin), the other listener must keep
// serving, and the waiting connection must be accepted once accept works.
func TestAcceptErrorPausesOnlyThatListener(t *testing.T) {
	t.Parallel()
	lo := netip.MustParseAddr("127.0.0.1")
	got := make(chan uint16, 16)
	s, err := NewSet(lo, func(c *Conn) { c.Close(); got <- c.Port() }, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown() })
	sick, healthy := openPort(t, s), openPort(t, s)

	var failing atomic.Bool
	var failures atomic.Int64
	failing.Store(true)
	s.mu.Lock()
	sickFD := s.ls[sick].fd
	accept := s.accept
	s.accept = func(fd int) (int, netip.AddrPort, error) {
		if fd == sickFD && failing.Load() {
			failures.Add(1)
			return -1, netip.AddrPort{}, unix.EMFILE
		}
		return accept(fd)
	}
	s.mu.Unlock()

	dial := func(port uint16) {
		t.Helper()
		c, err := net.DialTimeout("tcp", netip.AddrPortFrom(lo, port).String(), 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", port, err)
		}
		t.Cleanup(func() { c.Close() })
	}
	dial(sick) // the kernel completes the handshake; accept fails
	waitFor(t, "the sick listener pauses", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.ls[sick].paused
	})
	dial(healthy)
	select {
	case p := <-got:
		if p != healthy {
			t.Fatalf("handed over: got port %d, want %d (the healthy one)", p, healthy)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the healthy listener did not hand over its connection within 5s")
	}
	// Backing off, not spinning: a few attempts, not thousands.
	start := failures.Load()
	time.Sleep(400 * time.Millisecond) // a measuring window, not synchronisation
	if n := failures.Load() - start; n > 10 {
		t.Errorf("accept attempts on the paused listener in 400ms: got %d, want at most 10", n)
	}

	failing.Store(false)
	select {
	case p := <-got:
		if p != sick {
			t.Fatalf("handed over: got port %d, want %d (the recovered one)", p, sick)
		}
	case <-time.After(MaxBackoff + 5*time.Second):
		t.Fatal("the recovered listener did not hand over its waiting connection")
	}
	s.mu.Lock()
	paused, backoff := s.ls[sick].paused, s.ls[sick].backoff
	s.mu.Unlock()
	if paused || backoff != 0 {
		t.Errorf("after recovery: got paused=%v backoff=%v, want false, 0", paused, backoff)
	}
}

func openPort(t testing.TB, s *Set) uint16 {
	t.Helper()
	for range 100 {
		port := uint16(61000 + rand.IntN(4536))
		err := s.Open(port, netip.MustParsePrefix("127.0.0.0/8"))
		if err == nil {
			return port
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("Open(%d): %v", port, err)
		}
	}
	t.Fatal("no free port found in 100 tries")
	return 0
}

// waitFor polls cond until it holds, failing the test after 5 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
