package relay_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/edge/relay"
)

// countFDs counts this process's open descriptors by kind.
func countFDs(t testing.TB) (sockets, pipes, other int) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		switch {
		case err != nil: // the directory's own descriptor, closed by now
		case strings.HasPrefix(target, "socket:"):
			sockets++
		case strings.HasPrefix(target, "pipe:"):
			pipes++
		default:
			other++
		}
	}
	return sockets, pipes, other
}

// TestIdleConnectionHoldsTwoDescriptors holds idle relayed connections and
// counts descriptors: per connection the test's own two ends plus exactly
// two for the relay (its two sockets; no pipe). Pipes are pooled, at most
// Config.IdlePipes per loop, whatever the number of connections.
// Not parallel: it counts the whole process's descriptors.
func TestIdleConnectionHoldsTwoDescriptors(t *testing.T) {
	const n, idlePipes = 100, 4
	e := newEngine(t, relay.Config{Loops: 1, IdlePipes: idlePipes})
	s0, p0, o0 := countFDs(t)
	for range n {
		p := start(t, e, context.Background(), relay.Limits{})
		echoOnce(t, p, []byte("ping"))
		// and back, so that both directions have used a pipe
		if _, err := p.s.Write([]byte("pong")); err != nil {
			t.Fatal(err)
		}
		p.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(p.c, make([]byte, 4)); err != nil {
			t.Fatal(err)
		}
	}
	s1, p1, o1 := countFDs(t)
	if got, want := s1-s0-2*n, 2*n; got != want {
		t.Errorf("relay sockets for %d idle connections: got %d, want %d (2 each)", n, got, want)
	}
	if got := p1 - p0; got > 2*idlePipes {
		t.Errorf("pipe descriptors held with %d idle connections: got %d, want at most %d (the pool)", n, got, 2*idlePipes)
	}
	if got := o1 - o0; got != 0 {
		t.Errorf("other descriptors: got %d more, want 0", got)
	}
	t.Logf("%d idle relayed connections: %d relay sockets, %d pipe fds (pool)", n, s1-s0-2*n, p1-p0)
}

// BenchmarkThroughput moves a one-way stream through the engine and, in
// the same run, through the plain io.Copy relay (splice with a 1 MiB pipe
// per direction, two goroutines). cpu-ns/B is the whole process's CPU
// (sender and receiver included, the same in both) per byte.
func BenchmarkThroughput(b *testing.B) {
	for _, size := range []int{64 << 10, 256 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("engine-pipe%dk", size>>10), func(b *testing.B) {
			e := newEngine(b, relay.Config{PipeSize: size})
			benchRelay(b, func(client, target *net.TCPConn) {
				e.Start(context.Background(), client, target, relay.Limits{}, nil)
			})
		})
	}
	b.Run("io.Copy", func(b *testing.B) {
		benchRelay(b, func(client, target *net.TCPConn) {
			pipe := func(dst, src *net.TCPConn) {
				io.Copy(dst, src)
				dst.CloseWrite()
			}
			go func() {
				defer client.Close()
				defer target.Close()
				done := make(chan struct{})
				go func() { pipe(client, target); close(done) }()
				pipe(target, client)
				<-done
			}()
		})
	})
}

func benchRelay(b *testing.B, relayFn func(client, target *net.TCPConn)) {
	c, rc := tcpPair(b)
	rt, s := tcpPair(b)
	defer c.Close()
	defer s.Close()
	relayFn(rc, rt)
	const chunk = 1 << 20
	buf := make([]byte, chunk)
	got := make(chan int64)
	go func() {
		var n int64
		rb := make([]byte, 256<<10)
		for {
			m, err := s.Read(rb)
			n += int64(m)
			if err != nil {
				got <- n
				return
			}
		}
	}()
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.SetBytes(chunk)
	var sent int64
	for b.Loop() {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		sent += chunk
	}
	c.CloseWrite()
	if n := <-got; n != sent {
		b.Fatalf("received %d bytes, want %d", n, sent)
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(syscall.TimevalToNsec(ru1.Utime) - syscall.TimevalToNsec(ru0.Utime) +
		syscall.TimevalToNsec(ru1.Stime) - syscall.TimevalToNsec(ru0.Stime))
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(sent), "cpu-ns/B")
}
