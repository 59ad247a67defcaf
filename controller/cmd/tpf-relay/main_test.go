package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for the writer goroutine and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestRunRelaysUntilCancelled(t *testing.T) {
	t.Parallel()
	target, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	go func() { // echo
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()

	// Ports above the ephemeral range; retry if one is taken.
	var stdout, stderr lockedBuffer
	var addr string
	var cancel context.CancelFunc
	done := make(chan error, 1)
	for range 50 {
		addr = "127.0.0.1:" + strconv.Itoa(61000+rand.IntN(4536))
		var ctx context.Context
		ctx, cancel = context.WithCancel(context.Background())
		go func() {
			done <- run(ctx, []string{"-listen", addr, "-target", target.Addr().String(), "-idle", "1m", "-v"}, &stdout, &stderr)
		}()
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(stdout.String(), "listening on") && time.Now().Before(deadline) {
			select {
			case err := <-done:
				cancel()
				if !strings.Contains(err.Error(), "address already in use") {
					t.Fatalf("run: %v\n%s", err, stderr.String())
				}
				addr = ""
			case <-time.After(10 * time.Millisecond):
				continue
			}
			break
		}
		if addr != "" {
			break
		}
	}
	if addr == "" || !strings.Contains(stdout.String(), "listening on") {
		t.Fatalf("tpf-relay did not start; stderr:\n%s", stderr.String())
	}

	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial tpf-relay: %v", err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("through tpf-relay"))
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(got) != "through tpf-relay" {
		t.Fatalf("echo: got %q, %v", got, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: got %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return within 5s of cancel")
	}
	if !strings.Contains(stderr.String(), `reason="client closed"`) {
		t.Errorf("the -v log does not report the connection:\n%s", stderr.String())
	}
}

func TestRunUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{},
		{"-listen", "127.0.0.1:1"},
		{"-target", "127.0.0.1:1"},
		{"-listen", "localhost:1", "-target", "127.0.0.1:1"},
		{"-listen", "127.0.0.1:1", "-target", "127.0.0.1:1", "-allow", "10.0.0.0/33"},
		{"-listen", "127.0.0.1:1", "-target", "127.0.0.1:1", "-rate", "-5"},
		{"-listen", "127.0.0.1:1", "-target", "127.0.0.1:1", "extra"},
		{"-bogus"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, &stdout, &stderr)
		if !errors.Is(err, errUsage) {
			t.Errorf("run(%q): got %v, want a usage error", args, err)
		}
	}
}
