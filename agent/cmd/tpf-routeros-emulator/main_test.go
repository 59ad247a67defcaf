package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-routeros/routeros/v3"
)

func TestRun(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	stdoutR, stdoutW := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"-listen", "127.0.0.1:0", "-user", "tpf", "-password", "pw", "-version", "6.49.10"}, stdoutW, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		stdoutR.Close()
	})

	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdoutR).ReadString('\n')
		lines <- line
	}()
	var line string
	select {
	case line = <-lines:
	case err := <-errc:
		t.Fatalf("run ended early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("run printed no address within 10s")
	}
	fields := strings.Fields(line)
	addr := ""
	for i, f := range fields {
		if f == "on" && i+1 < len(fields) {
			addr = fields[i+1]
		}
	}
	if addr == "" {
		t.Fatalf("no address in %q", line)
	}

	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	c, _ := routeros.NewClient(conn)
	defer c.Close()
	if err := c.Login("tpf", "pw"); err != nil {
		t.Fatalf("login: %v", err)
	}
	r, err := c.Run("/system/resource/print", "=.proplist=version")
	if err != nil || len(r.Re) != 1 || r.Re[0].Map["version"] != "6.49.10 (stable)" {
		t.Fatalf("resource print: got %v, %v; want version 6.49.10 (stable)", r, err)
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("run returned %v, want nil after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10s of cancel")
	}
}

func TestRunRejectsStrayArguments(t *testing.T) {
	t.Parallel()
	err := run(context.Background(), []string{"extra"}, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("run with a stray argument: got nil, want an error")
	}
}
