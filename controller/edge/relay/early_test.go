package relay_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/edge/relay"
)

// The tests in this file go through Connect (listener → non-blocking dial
// → relay on one loop), where a connection's first bytes can arrive before
// the target's connect has completed, and the loop moves them at once
// ("early") instead of waiting for the connect's EPOLLOUT.

// TestConnectClientSpeaksFirstAndCloses: the client writes and shuts its
// write half down at once, usually before the relay has dialled: request,
// FIN and the target's connect race each other.
func TestConnectClientSpeaksFirstAndCloses(t *testing.T) {
	t.Parallel()
	e := newEngine(t, relay.Config{})
	addr, stats := edge(t, e, echoServer(t), relay.Limits{})
	for i := range 50 {
		c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		msg := fmt.Sprintf("request %d", i)
		c.Write([]byte(msg))
		c.(*net.TCPConn).CloseWrite()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(got) != msg {
			t.Fatalf("round %d: echo: got %q, %v, want %q then EOF", i, got, err, msg)
		}
		st := waitStats(t, stats)
		if st.Up != int64(len(msg)) || st.Down != int64(len(msg)) || st.Reason != relay.ReasonClientClosed {
			t.Errorf("round %d: Stats: got Up=%d Down=%d %q (%v), want %d both ways, %q",
				i, st.Up, st.Down, st.Reason, st.Err, len(msg), relay.ReasonClientClosed)
		}
	}
}

// TestConnectTargetSpeaksFirst: a server that greets first (SSH, SMTP) while
// the client waits for the greeting.
func TestConnectTargetSpeaksFirst(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			s, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer s.Close()
				s.Write([]byte("SSH-2.0-test\r\n"))
				line, err := bufio.NewReader(s).ReadString('\n')
				if err == nil {
					s.Write([]byte("bye " + line))
				}
			}()
		}
	}()
	e := newEngine(t, relay.Config{})
	addr, stats := edge(t, e, ln.Addr().(*net.TCPAddr).AddrPort(), relay.Limits{})
	for i := range 20 {
		c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		if banner, err := r.ReadString('\n'); err != nil || banner != "SSH-2.0-test\r\n" {
			t.Fatalf("round %d: banner: got %q, %v", i, banner, err)
		}
		c.Write([]byte("hello\n"))
		rest, err := io.ReadAll(r)
		c.Close()
		if err != nil || string(rest) != "bye hello\n" {
			t.Fatalf("round %d: reply: got %q, %v, want \"bye hello\\n\" then EOF", i, rest, err)
		}
		if st := waitStats(t, stats); st.Reason != relay.ReasonTargetClosed || st.Up != 6 || st.Down != 14+10 {
			t.Errorf("round %d: Stats: got Up=%d Down=%d %q (%v), want Up=6 Down=24 %q",
				i, st.Up, st.Down, st.Reason, st.Err, relay.ReasonTargetClosed)
		}
	}
}

// TestConnectEarlyBytesWaitForTheConnect: the target's accept queue is
// full, so the relay's first SYN is dropped and its connect takes a
// retransmission (about a second). The client's request and FIN, read
// while the target is still connecting, must wait in the relay and arrive
// once it has connected.
func TestConnectEarlyBytesWaitForTheConnect(t *testing.T) {
	t.Parallel()
	// A listener with a backlog of 0 queues one connection; the filler
	// takes that place.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "backlog-0")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	target := ln.Addr().(*net.TCPAddr).AddrPort()
	filler, err := net.DialTimeout("tcp4", target.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer filler.Close()

	e := newEngine(t, relay.Config{})
	addr, stats := edge(t, e, target, relay.Limits{})
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("early request"))
	c.(*net.TCPConn).CloseWrite()

	// Free the queue's place only once the relay's first SYN has been
	// dropped; its retransmission gets through.
	time.Sleep(300 * time.Millisecond) // lets the relay start its connect; not a synchronisation
	first, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	first.Close()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	s, err := ln.Accept()
	if err != nil {
		t.Fatalf("the relay's connection never arrived: %v", err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "early request" {
		t.Fatalf("target read: got %q, %v, want \"early request\" then EOF", got, err)
	}
	s.Write([]byte("reply"))
	s.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := io.ReadAll(c); err != nil || string(got) != "reply" {
		t.Fatalf("client read: got %q, %v, want \"reply\" then EOF", got, err)
	}
	if st := waitStats(t, stats); st.Reason != relay.ReasonClientClosed || st.Up != 13 || st.Down != 5 {
		t.Errorf("Stats: got Up=%d Down=%d %q (%v), want Up=13 Down=5 %q", st.Up, st.Down, st.Reason, st.Err, relay.ReasonClientClosed)
	}
}

// TestConnectRefusedAfterEarlyBytes: the client has spoken before the
// relay learns that the target refuses.
func TestConnectRefusedAfterEarlyBytes(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	e := newEngine(t, relay.Config{})
	addr, stats := edge(t, e, dead, relay.Limits{})
	for i := range 10 {
		c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
		if err != nil {
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("round %d: dial: %v", i, err)
			}
		} else {
			c.Write([]byte("hello"))
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = io.ReadAll(c)
			c.Close()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("round %d: client not reset within 5s", i)
			}
		}
		st := waitStats(t, stats)
		if st.Reason != relay.ReasonDialFailed || !errors.Is(st.Err, syscall.ECONNREFUSED) || st.Up != 0 {
			t.Errorf("round %d: Stats: got %q Up=%d (%v), want %q with ECONNREFUSED, Up=0", i, st.Reason, st.Up, st.Err, relay.ReasonDialFailed)
		}
	}
	if got := e.Active(); got != 0 {
		t.Errorf("Active: got %d, want 0", got)
	}
}

// TestConnectLimits: the limits hold on relays that Connect dialled: the
// idle timeout, the bandwidth cap from the first byte on (also for bytes
// moved before the connect completed), and the cut through the context.
func TestConnectLimits(t *testing.T) {
	t.Parallel()
	t.Run("idle", func(t *testing.T) {
		t.Parallel()
		e := newEngine(t, relay.Config{})
		const idle = 300 * time.Millisecond
		addr, stats := edge(t, e, echoServer(t), relay.Limits{IdleTimeout: idle})
		c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("x"))
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatalf("echo: %v", err)
		}
		quiet := time.Now()
		st := waitStats(t, stats)
		if st.Reason != relay.ReasonIdle {
			t.Fatalf("Stats: got %q (%v), want %q", st.Reason, st.Err, relay.ReasonIdle)
		}
		if took := time.Since(quiet); took < idle-50*time.Millisecond || took > idle+time.Second {
			t.Errorf("cut after %v of silence, want about %v", took, idle)
		}
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("client read after the idle cut: got %v, want a reset or EOF", err)
		}
	})
	t.Run("bandwidth", func(t *testing.T) {
		t.Parallel()
		e := newEngine(t, relay.Config{})
		const rate, n = 1 << 20, 1 << 20 // 1 MiB at 1 MiB/s, echoed
		addr, stats := edge(t, e, echoServer(t), relay.Limits{BytesPerSecond: rate})
		c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		begin := time.Now()
		go func() {
			stream(c, n, 7)
			c.(*net.TCPConn).CloseWrite()
		}()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, got, err := drain(c)
		took := time.Since(begin)
		if err != nil || got != n {
			t.Fatalf("echo: got %d bytes, %v, want %d", got, err, n)
		}
		// Ideal: (1 MiB − a 0.1 MiB burst) / 1 MiB/s ≈ 0.9 s.
		if took < 700*time.Millisecond || took > 6*time.Second {
			t.Errorf("1 MiB at 1 MiB/s took %v, want about 0.9s", took)
		}
		if st := waitStats(t, stats); st.Up != n || st.Down != n {
			t.Errorf("Stats: got Up=%d Down=%d, want %d both ways", st.Up, st.Down, n)
		}
	})
	t.Run("cut", func(t *testing.T) {
		t.Parallel()
		e := newEngine(t, relay.Config{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		addr, stats := edgeCtx(t, e, ctx, echoServer(t), relay.Limits{})
		c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("x"))
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatalf("echo: %v", err)
		}
		cancel()
		st := waitStats(t, stats)
		if st.Reason != relay.ReasonCut || !errors.Is(st.Err, context.Canceled) {
			t.Errorf("Stats: got %q (%v), want %q, context.Canceled", st.Reason, st.Err, relay.ReasonCut)
		}
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("client read after the cut: got %v, want a reset or EOF", err)
		}
	})
}
