package relay_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/edge/relay"
)

// path is one relayed connection as the test sees it: the test plays the
// client (c) and the target server (s); the engine relays between the
// accepted client socket and the dialled target socket.
type path struct {
	c, s  *net.TCPConn
	stats chan relay.Stats
}

func newEngine(t testing.TB, cfg relay.Config) *relay.Engine {
	t.Helper()
	e, err := relay.New(cfg)
	if err != nil {
		t.Fatalf("relay.New: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t testing.TB) (dialled, accepted *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   *net.TCPConn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.AcceptTCP()
		ch <- res{c, err}
	}()
	d, err := net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	return d, r.c
}

func start(t testing.TB, e *relay.Engine, ctx context.Context, lim relay.Limits) *path {
	t.Helper()
	c, relayClient := tcpPair(t)
	relayTarget, s := tcpPair(t)
	p := &path{c: c, s: s, stats: make(chan relay.Stats, 1)}
	t.Cleanup(func() { c.Close(); s.Close() })
	e.Start(ctx, relayClient, relayTarget, lim, func(st relay.Stats) { p.stats <- st })
	return p
}

// startSlowTarget is start with a target whose receive buffer is rcvbuf
// bytes from the handshake on (set on its listening socket).
func startSlowTarget(t testing.TB, e *relay.Engine, rcvbuf int) *path {
	t.Helper()
	return startSlowTargetSndbuf(t, e, rcvbuf, 0)
}

// startSlowTargetSndbuf is startSlowTarget where the relay's socket to the
// target also has a send buffer of sndbuf bytes (0: the default).
func startSlowTargetSndbuf(t testing.TB, e *relay.Engine, rcvbuf, sndbuf int) *path {
	t.Helper()
	c, relayClient := tcpPair(t)
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
		}); err != nil {
			return err
		}
		return serr
	}}
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	relayTarget, err := net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	if sndbuf > 0 {
		relayTarget.SetWriteBuffer(sndbuf)
	}
	s, err := ln.(*net.TCPListener).AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	p := &path{c: c, s: s, stats: make(chan relay.Stats, 1)}
	t.Cleanup(func() { c.Close(); s.Close() })
	e.Start(context.Background(), relayClient, relayTarget, relay.Limits{}, func(st relay.Stats) { p.stats <- st })
	return p
}

// wait returns the relay's Stats, failing after limit.
func (p *path) wait(t testing.TB, limit time.Duration) relay.Stats {
	t.Helper()
	select {
	case st := <-p.stats:
		return st
	case <-time.After(limit):
		t.Fatalf("relay did not end within %v", limit)
		return relay.Stats{}
	}
}

// stream writes n pseudo-random bytes (seeded) to w and returns their hash.
func stream(w io.Writer, n int64, seed uint64) ([32]byte, error) {
	h := sha256.New()
	r := rand.NewChaCha8([32]byte{byte(seed)})
	_, err := io.CopyN(io.MultiWriter(w, h), r, n)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, err
}

func drain(r io.Reader) ([32]byte, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, n, err
}

func TestLargePayloadBothWays(t *testing.T) {
	t.Parallel()
	e := newEngine(t, relay.Config{})
	p := start(t, e, context.Background(), relay.Limits{})
	const up, down = 48 << 20, 40 << 20

	type result struct {
		sent, got [32]byte
		n         int64
		err       error
	}
	side := func(conn *net.TCPConn, n int64, seed uint64) <-chan result {
		ch := make(chan result, 1)
		go func() {
			var r result
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				r.sent, err = stream(conn, n, seed)
				if err == nil {
					err = conn.CloseWrite()
				}
				if err != nil {
					r.err = err
				}
			}()
			var err error
			r.got, r.n, err = drain(conn)
			wg.Wait()
			if err != nil {
				r.err = err
			}
			ch <- r
		}()
		return ch
	}
	cres, sres := side(p.c, up, 1), side(p.s, down, 2)
	cr, sr := <-cres, <-sres
	if cr.err != nil || sr.err != nil {
		t.Fatalf("client error %v, server error %v", cr.err, sr.err)
	}
	if sr.n != up || sr.got != cr.sent {
		t.Errorf("client→target: got %d bytes (hash match %v), want %d (hash match true)", sr.n, sr.got == cr.sent, up)
	}
	if cr.n != down || cr.got != sr.sent {
		t.Errorf("target→client: got %d bytes (hash match %v), want %d (hash match true)", cr.n, cr.got == sr.sent, down)
	}
	st := p.wait(t, 5*time.Second)
	if st.Up != up || st.Down != down {
		t.Errorf("Stats: got Up=%d Down=%d, want %d, %d", st.Up, st.Down, up, down)
	}
	if st.Reason != relay.ReasonClientClosed && st.Reason != relay.ReasonTargetClosed {
		t.Errorf("Stats.Reason: got %q (%v), want client or target closed", st.Reason, st.Err)
	}
	if st.End.Before(st.Start) || st.Start.IsZero() {
		t.Errorf("Stats times: got start %v end %v", st.Start, st.End)
	}
}

func TestHalfClose(t *testing.T) {
	t.Parallel()
	e := newEngine(t, relay.Config{})
	p := start(t, e, context.Background(), relay.Limits{})
	request, reply := []byte("GET /\n"), bytes.Repeat([]byte("reply after the client's FIN\n"), 10000)

	if _, err := p.c.Write(request); err != nil {
		t.Fatal(err)
	}
	if err := p.c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(p.s) // ends at the relayed FIN
	if err != nil || !bytes.Equal(got, request) {
		t.Fatalf("server read: got %q, %v, want %q then EOF", got, err, request)
	}
	// The server replies after it has seen the client's FIN.
	go func() {
		p.s.Write(reply)
		p.s.Close()
	}()
	got, err = io.ReadAll(p.c)
	if err != nil || !bytes.Equal(got, reply) {
		t.Fatalf("client read after its CloseWrite: got %d bytes, %v, want %d bytes then EOF", len(got), err, len(reply))
	}
	st := p.wait(t, 5*time.Second)
	if st.Reason != relay.ReasonClientClosed || st.Err != nil {
		t.Errorf("Stats.Reason: got %q (%v), want %q", st.Reason, st.Err, relay.ReasonClientClosed)
	}
	if st.Up != int64(len(request)) || st.Down != int64(len(reply)) {
		t.Errorf("Stats: got Up=%d Down=%d, want %d, %d", st.Up, st.Down, len(request), len(reply))
	}
}

// TestHalfCloseShortReply: after the client's FIN, the target answers a
// few bytes and closes at once, so the relay finds the reply and the FIN
// together on a socket shut both ways (EPOLLHUP). A short read there has
// not seen the end: no new event will come, and the relay must read again.
func TestHalfCloseShortReply(t *testing.T) {
	t.Parallel()
	e := newEngine(t, relay.Config{})
	for i := range 20 {
		p := start(t, e, context.Background(), relay.Limits{})
		if _, err := p.c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		p.c.CloseWrite()
		if got, err := io.ReadAll(p.s); err != nil || string(got) != "ping" {
			t.Fatalf("round %d: server read: got %q, %v, want \"ping\" then EOF", i, got, err)
		}
		p.s.Write([]byte("pong"))
		p.s.Close()
		p.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if got, err := io.ReadAll(p.c); err != nil || string(got) != "pong" {
			t.Fatalf("round %d: client read: got %q, %v, want \"pong\" then EOF", i, got, err)
		}
		if st := p.wait(t, 5*time.Second); st.Reason != relay.ReasonClientClosed || st.Down != 4 {
			t.Errorf("round %d: Stats: got %q Down=%d (%v), want %q Down=4", i, st.Reason, st.Down, st.Err, relay.ReasonClientClosed)
		}
	}
}

func TestTargetResets(t *testing.T) {
	t.Parallel()
	e := newEngine(t, relay.Config{})
	p := start(t, e, context.Background(), relay.Limits{})
	p.s.SetLinger(0)
	p.s.Close()
	st := p.wait(t, 5*time.Second)
	if st.Reason != relay.ReasonTargetClosed || st.Err == nil {
		t.Errorf("Stats: got reason %q err %v, want %q with an error", st.Reason, st.Err, relay.ReasonTargetClosed)
	}
	if _, err := p.c.Read(make([]byte, 1)); err == nil {
		t.Error("client read after the target's reset: got data, want an error or EOF")
	}
}

// echoOnce sends b from the client and reads it back from the server side.
func echoOnce(t testing.TB, p *path, b []byte) {
	t.Helper()
	if _, err := p.c.Write(b); err != nil {
		t.Fatalf("client write: %v", err)
	}
	got := make([]byte, len(b))
	p.s.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(p.s, got); err != nil {
		t.Fatalf("server read: %v", err)
	}
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	e := newEngine(t, relay.Config{})
	const idle = 300 * time.Millisecond
	// The relay must not cut before idle has passed since the last byte,
	// which it moved after the test wrote it (sent) and before the test
	// saw it arrive (quiet). A test goroutine that a loaded machine holds
	// back for longer than idle between two exchanges cannot show that the
	// traffic kept the relay alive: then it tries again, a few times.
	for attempt := 1; ; attempt++ {
		p := start(t, e, context.Background(), relay.Limits{IdleTimeout: idle})
		begin := time.Now()
		var sent, quiet time.Time
		starved := false
		for !starved && time.Since(begin) < 3*idle {
			sent = time.Now()
			echoOnce(t, p, []byte("k"))
			quiet = time.Now()
			select {
			case st := <-p.stats:
				if silent := time.Since(sent); silent < idle {
					t.Fatalf("relay ended during traffic, at most %v after the last byte: %q", silent, st.Reason)
				}
				starved = true
			case <-time.After(idle / 3):
			}
		}
		if starved {
			if attempt == 5 {
				t.Fatalf("the test could not exchange a byte every %v in %d attempts", idle, attempt)
			}
			t.Logf("attempt %d: the test was held back for more than %v between two exchanges; again", attempt, idle)
			continue
		}
		st := p.wait(t, 5*time.Second)
		if st.Reason != relay.ReasonIdle {
			t.Fatalf("Stats.Reason: got %q (%v), want %q", st.Reason, st.Err, relay.ReasonIdle)
		}
		// The silence lasted between since(quiet) and since(sent).
		if lo, hi := time.Since(quiet), time.Since(sent); hi < idle || lo > idle+time.Second {
			t.Errorf("cut after %v–%v of silence, want about %v", lo, hi, idle)
		}
		p.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := p.c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("client read after the idle cut: got %v, want a reset or EOF", err)
		}
		return
	}
}

func TestCutViaContext(t *testing.T) {
	t.Parallel()
	e := newEngine(t, relay.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	p := start(t, e, ctx, relay.Limits{})
	echoOnce(t, p, []byte("before the cut"))

	// A live transfer is in progress when the cut comes.
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := p.s.Write(buf); err != nil {
				return
			}
		}
	}()
	if _, err := io.ReadFull(p.c, make([]byte, 1<<20)); err != nil {
		t.Fatalf("client read during transfer: %v", err)
	}
	cut := time.Now()
	cancel()
	st := p.wait(t, 5*time.Second)
	if took := time.Since(cut); took > time.Second {
		t.Errorf("cut took %v, want under 1s", took)
	}
	if st.Reason != relay.ReasonCut || !errors.Is(st.Err, context.Canceled) {
		t.Errorf("Stats: got reason %q err %v, want %q, context.Canceled", st.Reason, st.Err, relay.ReasonCut)
	}
	// Both sockets are gone: the client's reads end promptly.
	p.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, p.c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("client still connected 5s after the cut")
	}
	if e.Active() != 0 {
		t.Errorf("Active after the cut: got %d, want 0", e.Active())
	}
}

func TestCancelledContextCutsAtOnce(t *testing.T) {
	t.Parallel()
	e := newEngine(t, relay.Config{})
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("forward revoked"))
	p := start(t, e, ctx, relay.Limits{})
	st := p.wait(t, 5*time.Second)
	if st.Reason != relay.ReasonCut || st.Err == nil || st.Err.Error() != "forward revoked" {
		t.Errorf("Stats: got reason %q err %v, want %q, \"forward revoked\"", st.Reason, st.Err, relay.ReasonCut)
	}
}

func TestBandwidthCap(t *testing.T) {
	t.Parallel()
	e := newEngine(t, relay.Config{})
	const rate, n = 2 << 20, 3 << 20 // 3 MiB at 2 MiB/s
	p := start(t, e, context.Background(), relay.Limits{BytesPerSecond: rate})
	go func() {
		stream(p.c, n, 3)
		p.c.CloseWrite()
	}()
	begin := time.Now()
	_, got, err := drain(p.s)
	took := time.Since(begin)
	if err != nil || got != n {
		t.Fatalf("server read: got %d bytes, %v, want %d", got, err, n)
	}
	// Ideal: (3 MiB − a 0.2 MiB burst) / 2 MiB/s ≈ 1.4 s.
	if took < 1100*time.Millisecond || took > 6*time.Second {
		t.Errorf("3 MiB at 2 MiB/s took %v, want about 1.4s", took)
	}
	t.Logf("3 MiB at a 2 MiB/s cap: %v (%.2f MiB/s)", took, float64(n)/(1<<20)/took.Seconds())
}

func TestEngineClose(t *testing.T) {
	t.Parallel()
	e, err := relay.New(relay.Config{Loops: 2})
	if err != nil {
		t.Fatal(err)
	}
	paths := []*path{start(t, e, context.Background(), relay.Limits{}), start(t, e, context.Background(), relay.Limits{})}
	for _, p := range paths {
		echoOnce(t, p, []byte("x"))
	}
	if got := e.Active(); got != 2 {
		t.Errorf("Active: got %d, want 2", got)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, p := range paths {
		if st := p.wait(t, 5*time.Second); st.Reason != relay.ReasonShutdown || !errors.Is(st.Err, relay.ErrClosed) {
			t.Errorf("Stats after Close: got %q (%v), want %q", st.Reason, st.Err, relay.ReasonShutdown)
		}
	}
	p := start(t, e, context.Background(), relay.Limits{})
	if st := p.wait(t, 5*time.Second); st.Reason != relay.ReasonShutdown {
		t.Errorf("Start after Close: got %q (%v), want %q", st.Reason, st.Err, relay.ReasonShutdown)
	}
}

func TestDialAndBlockingRelay(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // the target: echo
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c)
		c.Close()
	}()
	c, relayClient := tcpPair(t)
	defer c.Close()
	relayTarget, err := relay.Dial(context.Background(), ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	done := make(chan relay.Stats, 1)
	e := newEngine(t, relay.Config{})
	go func() { done <- e.Relay(context.Background(), relayClient, relayTarget, relay.Limits{}) }()
	msg := []byte(strings.Repeat("echo through the relay ", 1000))
	go func() {
		c.Write(msg)
		c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo: got %d bytes, %v, want %d", len(got), err, len(msg))
	}
	st := <-done
	if st.Up != int64(len(msg)) || st.Down != int64(len(msg)) || st.Reason != relay.ReasonClientClosed {
		t.Errorf("Stats: got %+v, want Up=Down=%d, client closed", st, len(msg))
	}
	if _, err := relay.Dial(context.Background(), "127.0.0.1:1", time.Second); err == nil {
		t.Error("Dial to a closed port: got nil error, want one")
	}
}

func TestHalfCloseFromTarget(t *testing.T) {
	t.Parallel()
	e := newEngine(t, relay.Config{})
	p := start(t, e, context.Background(), relay.Limits{})
	banner := []byte("server speaks first, then stops sending\n")
	if _, err := p.s.Write(banner); err != nil {
		t.Fatal(err)
	}
	if err := p.s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(p.c)
	if err != nil || !bytes.Equal(got, banner) {
		t.Fatalf("client read: got %q, %v, want the banner then EOF", got, err)
	}
	// The client keeps sending after the target's FIN.
	go func() {
		stream(p.c, 1<<20, 4)
		p.c.CloseWrite()
	}()
	if _, n, err := drain(p.s); err != nil || n != 1<<20 {
		t.Fatalf("server read after its CloseWrite: got %d bytes, %v, want %d", n, err, 1<<20)
	}
	p.s.Close()
	if st := p.wait(t, 5*time.Second); st.Reason != relay.ReasonTargetClosed || st.Up != 1<<20 {
		t.Errorf("Stats: got %q Up=%d, want %q Up=%d", st.Reason, st.Up, relay.ReasonTargetClosed, 1<<20)
	}
}

// TestSlowReader makes the relay's writes hit EAGAIN: the target reads
// slowly, so the relay must hold its pipe and wait for EPOLLOUT.
//
// The target's small receive buffer is set on its listener, before the
// handshake, as a slow reader's would be. Shrunk after it, on loopback (64
// KiB segments) the target would advertise a window below the sender's
// segment size, bounded by the larger first window, and Linux then sends
// only on zero-window probes with exponential backoff: a stall of up to a
// minute whatever the relay does (it depends on how the sender's socket
// buffers were filled).
func TestSlowReader(t *testing.T) {
	t.Parallel()
	// The default pipes, and pipes of two pages: what a user past
	// pipe-user-pages-soft gets, and the least the relay accepts.
	for _, size := range []int{0, 8 << 10} {
		t.Run(fmt.Sprintf("pipe=%d", size), func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, relay.Config{PipeSize: size})
			p := startSlowTarget(t, e, 16<<10)
			const n = 8 << 20
			sent := make(chan [32]byte, 1)
			go func() {
				sum, _ := stream(p.c, n, 5)
				p.c.CloseWrite()
				sent <- sum
			}()
			h := sha256.New()
			buf := make([]byte, 32<<10)
			var got int64
			for {
				m, err := p.s.Read(buf)
				h.Write(buf[:m])
				got += int64(m)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("server read: %v", err)
				}
				if got%(1<<20) < 32<<10 {
					time.Sleep(20 * time.Millisecond) // pacing, so that buffers fill up
				}
			}
			want := <-sent
			if got != n || !bytes.Equal(h.Sum(nil), want[:]) {
				t.Fatalf("server got %d bytes (hash match %v), want %d", got, bytes.Equal(h.Sum(nil), want[:]), n)
			}
			p.s.CloseWrite()
			if st := p.wait(t, 5*time.Second); st.Reason != relay.ReasonClientClosed || st.Up != n {
				t.Errorf("Stats: got %q Up=%d (%v), want %q Up=%d", st.Reason, st.Up, st.Err, relay.ReasonClientClosed, n)
			}
		})
	}
}

// TestSmallWritesToStalledTarget: a client that writes small pieces (the
// relay copies them rather than splicing) to a target that stops reading
// for a while. What the target's socket cannot take waits in a pipe, also
// in a pipe of two pages.
func TestSmallWritesToStalledTarget(t *testing.T) {
	t.Parallel()
	for _, size := range []int{0, 8 << 10} {
		t.Run(fmt.Sprintf("pipe=%d", size), func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, relay.Config{PipeSize: size})
			p := startSlowTargetSndbuf(t, e, 4<<10, 4<<10)
			const pieces, piece = 400, 1000
			sent := make(chan [32]byte, 1)
			go func() {
				h := sha256.New()
				r := rand.NewChaCha8([32]byte{9})
				b := make([]byte, piece)
				for range pieces {
					r.Read(b)
					h.Write(b)
					if _, err := p.c.Write(b); err != nil {
						break
					}
					time.Sleep(100 * time.Microsecond)
				}
				p.c.CloseWrite()
				var sum [32]byte
				copy(sum[:], h.Sum(nil))
				sent <- sum
			}()
			time.Sleep(300 * time.Millisecond) // the target stalls; not a synchronisation
			p.s.SetReadDeadline(time.Now().Add(10 * time.Second))
			sum, got, err := drain(p.s)
			want := <-sent
			if err != nil || got != pieces*piece || sum != want {
				t.Fatalf("server read %d bytes, %v (hash match %v), want %d", got, err, sum == want, pieces*piece)
			}
			p.s.CloseWrite()
			if st := p.wait(t, 5*time.Second); st.Reason != relay.ReasonClientClosed || st.Up != pieces*piece {
				t.Errorf("Stats: got %q Up=%d (%v), want %q Up=%d", st.Reason, st.Up, st.Err, relay.ReasonClientClosed, pieces*piece)
			}
		})
	}
}
