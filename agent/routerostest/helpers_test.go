package routerostest_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/agent/routerostest"
)

// testTimeout bounds every connection, so a hang fails instead of blocking.
const testTimeout = 10 * time.Second

// startServer runs an emulator on a free port until the test ends.
func startServer(t testing.TB, cfg routerostest.Config) *routerostest.Server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv := routerostest.New(cfg)
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("start emulator: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close emulator: %v", err)
		}
	})
	return srv
}

// rawConn talks to the emulator with no client library, byte for byte.
type rawConn struct {
	t  testing.TB
	nc net.Conn
}

func dialRaw(t testing.TB, srv *routerostest.Server) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", srv.Addr(), testTimeout)
	if err != nil {
		t.Fatalf("dial emulator: %v", err)
	}
	nc.SetDeadline(time.Now().Add(testTimeout))
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc}
}

// send writes one sentence.
func (c *rawConn) send(words ...string) {
	c.t.Helper()
	if _, err := c.nc.Write(routerostest.AppendSentence(nil, words...)); err != nil {
		c.t.Fatalf("send %q: %v", words, err)
	}
}

// expect reads exactly the bytes of the given sentences and compares them.
func (c *rawConn) expect(sentences ...[]string) {
	c.t.Helper()
	var want []byte
	for _, s := range sentences {
		want = routerostest.AppendSentence(want, s...)
	}
	c.expectBytes(want)
}

func (c *rawConn) expectBytes(want []byte) {
	c.t.Helper()
	got := make([]byte, len(want))
	n, err := io.ReadFull(c.nc, got)
	if err != nil {
		c.t.Fatalf("read reply: got %q after %d bytes, error %v; want %q", got[:n], n, err, want)
	}
	if !bytes.Equal(got, want) {
		c.t.Fatalf("reply bytes:\ngot  %s (%q)\nwant %s (%q)", hex.EncodeToString(got), got, hex.EncodeToString(want), want)
	}
}

// expectClosed checks that the emulator closed the connection with nothing
// more to say.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	b := make([]byte, 1)
	n, err := c.nc.Read(b)
	if n != 0 || !errors.Is(err, io.EOF) {
		c.t.Fatalf("after the last reply: read %q, %v; want EOF", b[:n], err)
	}
}

// login logs in as admin with an empty password, the zero Config's user.
func (c *rawConn) login() {
	c.t.Helper()
	c.send("/login", "=name=admin", "=password=")
	c.expect([]string{"!done"})
}

// readSentence reads one reply sentence, for replies whose bytes vary
// (challenges, uptime).
func (c *rawConn) readSentence(br *bufio.Reader) []string {
	c.t.Helper()
	words, err := routerostest.ReadSentence(br)
	if err != nil {
		c.t.Fatalf("read sentence: %v", err)
	}
	return words
}
