package peerlink_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/coder/websocket"

	"github.com/tpf-dev/tpf/shared/peerlink"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// controller is a small controller endpoint on loopback: it checks the
// bearer token, and hands every accepted websocket to the test.
type controller struct {
	url   string
	links chan *peer
	dials atomic.Int32
}

// peer is the controller's side of one link.
type peer struct {
	t  testing.TB
	ws *websocket.Conn
}

func newController(t testing.TB, token string) *controller {
	t.Helper()
	c := &controller{links: make(chan *peer, 16)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.dials.Add(1)
		if r.URL.Path != syncproto.AgentPath || r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		c.links <- &peer{t: t, ws: ws} // the test closes it
	}))
	t.Cleanup(srv.Close)
	u, err := syncproto.URL(srv.URL, syncproto.AgentPath)
	if err != nil {
		t.Fatal(err)
	}
	c.url = u
	return c
}

// accept waits for the next link.
func (c *controller) accept(t testing.TB) *peer {
	t.Helper()
	select {
	case p := <-c.links:
		t.Cleanup(func() { p.ws.CloseNow() })
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("the client did not connect")
		return nil
	}
}

// read returns the next message from the client.
func (p *peer) read() syncproto.Envelope {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := p.ws.Read(ctx)
	if err != nil {
		p.t.Fatalf("read: %v", err)
	}
	msg, err := syncproto.Decode(b)
	if err != nil {
		p.t.Fatalf("decode %s: %v", b, err)
	}
	return msg
}

func (p *peer) write(b []byte) {
	p.t.Helper()
	if err := p.ws.Write(context.Background(), websocket.MessageText, b); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

func (p *peer) send(body any) {
	p.t.Helper()
	b, err := syncproto.Encode(body)
	if err != nil {
		p.t.Fatal(err)
	}
	p.write(b)
}

// fastBackoff redials at once and counts its resets.
type fastBackoff struct{ resets atomic.Int32 }

func (b *fastBackoff) NextBackOff() time.Duration { return 10 * time.Millisecond }
func (b *fastBackoff) Reset()                     { b.resets.Add(1) }

// start runs a client until the test ends.
func start(t testing.TB, cfg peerlink.Config) *peerlink.Client {
	t.Helper()
	if cfg.Backoff == nil {
		cfg.Backoff = &fastBackoff{}
	}
	c, err := peerlink.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: got %v, want nil after the context ended", err)
		}
	})
	return c
}

func hello(version string) func() any {
	return func() any { return &syncproto.Hello{AgentVersion: version} }
}

// TestHelloOnEveryConnect: the client dials with the bearer token, sends
// its first message on every link, and redials after the controller drops
// it.
func TestHelloOnEveryConnect(t *testing.T) {
	t.Parallel()
	ctl := newController(t, "tok")
	var ups, downs atomic.Int32
	start(t, peerlink.Config{URL: ctl.url, Token: "tok", Hello: hello("v1"), Connected: func(up bool) {
		if up {
			ups.Add(1)
		} else {
			downs.Add(1)
		}
	}})
	for i := range 3 {
		p := ctl.accept(t)
		if msg := p.read(); msg.Type != syncproto.TypeHello || msg.Hello.AgentVersion != "v1" {
			t.Fatalf("link %d: first message: got %+v, want the hello", i, msg)
		}
		p.ws.Close(websocket.StatusGoingAway, "restart")
	}
	if got := ups.Load(); got < 3 {
		t.Errorf("Connected(true): got %d calls, want at least 3", got)
	}
}

// TestUnauthorized: a refused token is retried, and the log says which
// setting holds it.
func TestUnauthorized(t *testing.T) {
	t.Parallel()
	ctl := newController(t, "right")
	var logs syncBuffer
	start(t, peerlink.Config{URL: ctl.url, Token: "wrong", TokenName: "TPF_TEST_TOKEN", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	waitFor(t, "three refused dials", func() bool { return ctl.dials.Load() >= 3 })
	waitFor(t, "the refusal in the log", func() bool { return strings.Contains(logs.String(), "TPF_TEST_TOKEN") })
	if !strings.Contains(logs.String(), peerlink.ErrUnauthorized.Error()) {
		t.Errorf("log: got %q, want %q in it", logs.String(), peerlink.ErrUnauthorized)
	}
}

// TestReceiveAndAnswerUnreadable: decoded messages reach Receive; an
// undecodable one is answered with an error message and the link stays up.
func TestReceiveAndAnswerUnreadable(t *testing.T) {
	t.Parallel()
	ctl := newController(t, "tok")
	got := make(chan syncproto.Envelope, 4)
	start(t, peerlink.Config{URL: ctl.url, Token: "tok", Receive: func(m syncproto.Envelope) { got <- m }})
	p := ctl.accept(t)
	p.write([]byte(`{"type":"desired","v":1,"desired":{"tunnel_address":"not an address"}}`))
	if msg := p.read(); msg.Type != syncproto.TypeError || msg.Error.Message == "" {
		t.Fatalf("answer: got %+v, want an error message", msg)
	}
	p.send(&syncproto.Error{Message: "the controller's complaint"}) // logged, not handed over
	p.send(&syncproto.Desired{Revision: 7})
	select {
	case m := <-got:
		if m.Type != syncproto.TypeDesired || m.Desired.Revision != 7 {
			t.Fatalf("received: got %+v, want the set of revision 7", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the set did not reach Receive")
	}
	if n := ctl.dials.Load(); n != 1 {
		t.Errorf("dials: got %d, want 1 (the link stays up)", n)
	}
}

// TestUnansweredPingDropsLink: a controller that stops reading (and so
// never answers a ping) is dropped within two heartbeats, and dialled
// again.
func TestUnansweredPingDropsLink(t *testing.T) {
	t.Parallel()
	ctl := newController(t, "tok")
	down := make(chan time.Time, 4)
	var pongs atomic.Int32
	const heartbeat = 100 * time.Millisecond
	start(t, peerlink.Config{URL: ctl.url, Token: "tok", Heartbeat: heartbeat,
		Pong: func() { pongs.Add(1) },
		Connected: func(up bool) {
			if !up {
				down <- time.Now()
			}
		}})
	// First a controller that answers: reading answers pings.
	p := ctl.accept(t)
	go p.ws.Read(context.Background())
	waitFor(t, "an answered ping", func() bool { return pongs.Load() > 0 })
	p.ws.CloseNow()
	<-down

	// Then one that never reads.
	ctl.accept(t)
	up := time.Now()
	select {
	case at := <-down:
		if d := at.Sub(up); d > 20*heartbeat {
			t.Errorf("dropped after %v, want about two heartbeats (%v)", d, 2*heartbeat)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the link whose pings go unanswered was not dropped")
	}
	ctl.accept(t) // and dialled again
}

// TestPublishNewestWins: only the newest Published message is written,
// after the hello, also when it was Published while no link was up; Send
// fails while no link is up and arrives in order while one is.
func TestPublishNewestWins(t *testing.T) {
	t.Parallel()
	ctl := newController(t, "tok")
	c, err := peerlink.New(peerlink.Config{URL: ctl.url, Token: "tok", Hello: hello("v1"), Backoff: &fastBackoff{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(context.Background(), &syncproto.Report{Revision: 1}); !errors.Is(err, peerlink.ErrNotConnected) {
		t.Fatalf("Send while down: got %v, want ErrNotConnected", err)
	}
	for rev := range int64(3) {
		if err := c.Publish(&syncproto.Report{Revision: rev + 1}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	p := ctl.accept(t)
	if msg := p.read(); msg.Type != syncproto.TypeHello {
		t.Fatalf("first message: got %s, want hello", msg.Type)
	}
	if msg := p.read(); msg.Type != syncproto.TypeReport || msg.Report.Revision != 3 {
		t.Fatalf("second message: got %+v, want the report of revision 3", msg)
	}
	var sent sync.WaitGroup
	sent.Go(func() {
		for i := range 3 {
			if err := c.Send(context.Background(), &syncproto.Connections{Records: []syncproto.Connection{{ID: string(rune('a' + i))}}}); err != nil {
				t.Errorf("Send: %v", err)
			}
		}
	})
	for i := range 3 {
		msg := p.read()
		if msg.Type != syncproto.TypeConnections || msg.Connections.Records[0].ID != string(rune('a'+i)) {
			t.Fatalf("sent message %d: got %+v, want records in order", i, msg)
		}
	}
	sent.Wait()
}

// TestBackoffResetsAfterStableLink: the backoff starts over only after a
// link that stayed up a while (on the injected clock).
func TestBackoffResetsAfterStableLink(t *testing.T) {
	t.Parallel()
	ctl := newController(t, "tok")
	var now atomic.Int64 // nanoseconds on the test's clock
	b := &fastBackoff{}
	start(t, peerlink.Config{URL: ctl.url, Token: "tok", Backoff: b, Hello: hello("v1"), Now: func() time.Time { return time.Unix(0, now.Load()) }})
	waitFor(t, "Run's first reset", func() bool { return b.resets.Load() == 1 })

	p := ctl.accept(t)
	p.read()        // the hello: the link is up and timed
	p.ws.CloseNow() // a short link
	p = ctl.accept(t)
	p.read()
	if got := b.resets.Load(); got != 1 {
		t.Errorf("resets after a short link: got %d, want 1", got)
	}
	now.Add(int64(2 * time.Minute))
	p.ws.CloseNow() // a link that lasted two minutes
	ctl.accept(t)
	if got := b.resets.Load(); got != 2 {
		t.Errorf("resets after a long link: got %d, want 2", got)
	}
}

// TestServeOverOpenConn: Serve runs the same link over a connection someone
// else opened, and closes it.
func TestServeOverOpenConn(t *testing.T) {
	t.Parallel()
	a, b := pipe()
	got := make(chan syncproto.Envelope, 1)
	c, err := peerlink.New(peerlink.Config{Hello: hello("v2"), Receive: func(m syncproto.Envelope) { got <- m }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx, a) }()
	if msg := readPipe(t, b); msg.Type != syncproto.TypeHello || msg.Hello.AgentVersion != "v2" {
		t.Fatalf("first message: got %+v, want the hello", msg)
	}
	if err := c.Serve(ctx, &chanConn{}); !errors.Is(err, peerlink.ErrBusy) {
		t.Errorf("a second Serve: got %v, want ErrBusy", err)
	}
	set, _ := syncproto.Encode(&syncproto.Listeners{Revision: 3})
	if err := b.Write(ctx, set); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m.Type != syncproto.TypeListeners || m.Listeners.Revision != 3 {
		t.Fatalf("received: got %+v, want listeners of revision 3", m)
	}
	b.Close("gone")
	select {
	case err := <-done:
		if err == nil {
			t.Error("Serve: got nil, want why the link ended")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the other end closed")
	}
}

func TestNewRefusesBadURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"http://ctl:8080/x", "ws://", "ctl:8080"} {
		if _, err := peerlink.New(peerlink.Config{URL: u}); err == nil {
			t.Errorf("New(URL %q): got no error", u)
		}
	}
	c, err := peerlink.New(peerlink.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(context.Background()); err == nil {
		t.Error("Run without a URL: got no error")
	}
}

// TestBackoffStopEndsRun: an injected backoff that says Stop ends Run with
// the last link's error.
func TestBackoffStopEndsRun(t *testing.T) {
	t.Parallel()
	ctl := newController(t, "right")
	c, err := peerlink.New(peerlink.Config{URL: ctl.url, Token: "wrong", Backoff: &backoff.StopBackOff{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(context.Background()); !errors.Is(err, peerlink.ErrUnauthorized) {
		t.Errorf("Run: got %v, want ErrUnauthorized", err)
	}
}

// pipe returns two ends of an in-process Conn, like controller/link's.
func pipe() (*chanConn, *chanConn) {
	done := make(chan struct{})
	once := &sync.Once{}
	ab, ba := make(chan []byte), make(chan []byte)
	return &chanConn{in: ba, out: ab, done: done, once: once}, &chanConn{in: ab, out: ba, done: done, once: once}
}

type chanConn struct {
	in   <-chan []byte
	out  chan<- []byte
	done chan struct{}
	once *sync.Once
}

var errClosed = errors.New("closed")

func (c *chanConn) Read(ctx context.Context) ([]byte, error) {
	select {
	case b := <-c.in:
		return b, nil
	case <-c.done:
		return nil, errClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *chanConn) Write(ctx context.Context, b []byte) error {
	select {
	case c.out <- b:
		return nil
	case <-c.done:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *chanConn) Ping(ctx context.Context) error { return ctx.Err() }

func (c *chanConn) Close(string) error {
	if c.once != nil {
		c.once.Do(func() { close(c.done) })
	}
	return nil
}

func readPipe(t testing.TB, c *chanConn) syncproto.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := syncproto.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
