// Package peerlink is a peer's end of the sync-protocol link to the
// controller, written once for the agent and the edge: it dials the
// controller's websocket endpoint (syncproto.AgentPath or EdgePath) with a
// bearer token, redials forever with jittered exponential backoff, sends a
// first message on every connect (the agent's hello), pings every heartbeat
// and drops a link whose ping goes unanswered, decodes what arrives (an
// undecodable message is answered with an error message and logged at a
// limited rate) and hands it to the caller, and sends what the caller gives
// it: the newest of a kind of message (Publish) or one message now (Send).
//
// The same session also runs over a connection that is already open (Serve),
// which is how the edge embedded in `tpf-controller serve` talks to the hub
// through an in-process pipe.
//
// It imports only the standard library, shared/syncproto,
// github.com/coder/websocket and github.com/cenkalti/backoff/v4; nothing
// from controller/ or agent/.
package peerlink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/tpf-dev/tpf/shared/syncproto"
)

// DefaultHeartbeat is Config.Heartbeat's zero value: the controller's hub
// pings at the same pace.
const DefaultHeartbeat = 20 * time.Second

const (
	// stableAfter is how long a link must have been up for the backoff to
	// start over: a link that worked that long was not a failing dial.
	stableAfter = time.Minute
	// dialTimeout bounds one dial, handshake included.
	dialTimeout = 30 * time.Second
	// writeTimeout bounds writing one message.
	writeTimeout = 30 * time.Second
	// maxAnswers is how many error answers to undecodable messages may wait
	// for the writer; more are dropped (the warnings are counted still).
	maxAnswers = 8
)

// Errors.
var (
	// ErrUnauthorized means the controller refused the token (HTTP 401).
	// Run retries all the same: the operator may fix the token meanwhile.
	ErrUnauthorized = errors.New("the controller refused the token")
	// ErrNotConnected is Send's answer while no link is up, or when the
	// link went down before the message was written.
	ErrNotConnected = errors.New("peerlink: no link to the controller")
	// ErrBusy is Run's or Serve's answer while the client already runs a
	// link: a Client speaks over one link at a time.
	ErrBusy = errors.New("peerlink: the client already runs a link")
)

// Config configures a Client. The zero value works: a client that runs
// links opened by others (Serve), sends no hello and drops what arrives;
// Run needs a URL (and the controller a Token).
type Config struct {
	// URL is the controller endpoint's websocket URL, as syncproto.URL
	// makes it (ws:// or wss://). Empty: Run fails, Serve works.
	URL string
	// Token is sent as "Authorization: Bearer <Token>" on every dial.
	Token string
	// TokenName says where the operator sets the token (TPF_AGENT_TOKEN,
	// TPF_EDGE_TOKEN); it is named in the error when the controller refuses
	// it. Empty names nothing.
	TokenName string
	// TLS verifies the controller on wss:// URLs; nil means the system
	// roots.
	TLS *tls.Config
	// Heartbeat is how often the link pings the controller; a ping not
	// answered within one more Heartbeat drops the link. Zero means
	// DefaultHeartbeat.
	Heartbeat time.Duration
	// Hello, when not nil, makes the first message of every link: it is
	// called once per link, before anything else is written, and returns
	// the body to send (a *syncproto.Hello, say).
	Hello func() any
	// Receive is handed every decoded message but error messages (which
	// are logged): a set, say. It is called on the link's reading goroutine,
	// one message at a time, and must return quickly — while it runs nothing
	// is read and pings go unanswered. It is never called after Run or
	// Serve returned. Nil drops the messages.
	Receive func(syncproto.Envelope)
	// Connected, when not nil, is called with true when a link is up
	// (Send works from then on; the link starts, Hello first, once it
	// returned, so it must not wait on Send) and with false once it is down
	// and Receive will not be called for it any more.
	Connected func(up bool)
	// Pong, when not nil, is called after every ping the controller
	// answered: it is alive, even when it has nothing to say.
	Pong func()
	// Logger receives link up and down and the limited warnings; nil
	// discards.
	Logger *slog.Logger
	// Now reads the clock that decides whether a link lasted long enough
	// to start the backoff over, and paces the warnings; nil means
	// time.Now.
	Now func() time.Time
	// Backoff says how long Run waits before each redial; it is reset
	// after a link that stayed up a minute. Nil means an exponential
	// backoff from 0.5 s to 30 s with ±50 % jitter that never stops; one
	// that returns backoff.Stop ends Run.
	Backoff backoff.BackOff
}

func (c Config) withDefaults() Config {
	if c.Heartbeat <= 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.Receive == nil {
		c.Receive = func(syncproto.Envelope) {}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Backoff == nil {
		b := backoff.NewExponentialBackOff()
		b.InitialInterval = 500 * time.Millisecond
		b.MaxInterval = 30 * time.Second
		b.MaxElapsedTime = 0 // never give up
		c.Backoff = b
	}
	return c
}

func (c Config) validate() error {
	if c.URL == "" {
		return nil
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("peerlink: URL %q: %w", c.URL, err)
	}
	if (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return fmt.Errorf("peerlink: URL %q: want ws:// or wss:// with a host (see syncproto.URL)", c.URL)
	}
	return nil
}

// Client is a peer's link to the controller. Create it with New; run it
// with Run (dialing) or Serve (over an open connection), one link at a
// time; Publish and Send may be called from any goroutine, also while no
// link runs.
type Client struct {
	cfg   Config
	http  *http.Client
	noise *logLimiter
	wake  chan struct{} // Publish left a message in the slot; holds at most one

	mu      sync.Mutex
	latest  []byte   // the newest Published message not yet written; nil: none
	cur     *session // the link up now; nil while down
	running bool     // Run or Serve is in progress
}

// New checks cfg and returns a Client. It starts nothing.
func New(cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Client{
		cfg:   cfg,
		http:  &http.Client{Transport: &http.Transport{TLSClientConfig: cfg.TLS, Proxy: http.ProxyFromEnvironment}},
		noise: &logLimiter{now: cfg.Now},
		wake:  make(chan struct{}, 1),
	}, nil
}

// Run keeps a link to the controller until ctx ends: it dials Config.URL,
// runs the link until it fails, waits as the backoff says and dials again.
// It blocks until ctx ends (then returns nil) or the backoff says Stop
// (then returns the last link's error); it returns at once an error without
// a URL, or ErrBusy while the client already runs a link. Each connection it
// opens it closes.
func (c *Client) Run(ctx context.Context) error {
	if c.cfg.URL == "" {
		return errors.New("peerlink: Run needs Config.URL")
	}
	if !c.start() {
		return ErrBusy
	}
	defer c.stop()
	b := c.cfg.Backoff
	b.Reset()
	for {
		up, err := c.dialAndServe(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if up >= stableAfter {
			b.Reset() // it was a working link: start over quickly
		}
		wait := b.NextBackOff()
		if wait == backoff.Stop {
			return err
		}
		c.cfg.Logger.Warn("controller link down", "err", err, "retry_in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// dialAndServe runs one link and says how long it was up (zero: the dial
// failed).
func (c *Client) dialAndServe(ctx context.Context) (time.Duration, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return 0, err
	}
	c.cfg.Logger.Info("controller link up", "url", c.cfg.URL)
	start := c.cfg.Now()
	err = c.serve(ctx, conn)
	return c.cfg.Now().Sub(start), err
}

// Serve runs one link over conn, already open, until it fails or ctx ends,
// and returns why (ctx's error once ctx ended). It blocks until then, and
// closes conn. It returns ErrBusy at once while the client already runs a
// link.
func (c *Client) Serve(ctx context.Context, conn Conn) error {
	if !c.start() {
		conn.Close("busy")
		return ErrBusy
	}
	defer c.stop()
	return c.serve(ctx, conn)
}

func (c *Client) start() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return false
	}
	c.running = true
	return true
}

func (c *Client) stop() {
	c.mu.Lock()
	c.running = false
	c.mu.Unlock()
}

// Publish leaves body for the controller as the newest of its kind: it is
// written on the link up now, or on the next one after its Hello, and
// replaces a message Published earlier and not yet written (so only the
// newest report, say, is ever sent). A message whose write failed is kept
// for the next link unless a newer one came meanwhile. It does not block;
// it fails only when body cannot be encoded (see syncproto.Encode).
func (c *Client) Publish(body any) error {
	b, err := syncproto.Encode(body)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.latest = b
	c.mu.Unlock()
	c.poke()
	return nil
}

func (c *Client) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// takeLatest returns the Published message waiting, nil when none.
func (c *Client) takeLatest() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.latest
	c.latest = nil
	return b
}

// keepLatest puts back a Published message whose write failed, unless a
// newer one is waiting.
func (c *Client) keepLatest(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.latest == nil {
		c.latest = b
	}
}

// Send writes body on the link up now, after its Hello, and blocks until it
// is written, the link goes down or ctx ends. It returns ErrNotConnected
// (possibly wrapped with the write's error) while no link is up or when the
// link went down before body was written:
// the caller keeps what it could not send. After ctx ended the message may
// still be written. Messages sent one after another arrive in that order.
func (c *Client) Send(ctx context.Context, body any) error {
	b, err := syncproto.Encode(body)
	if err != nil {
		return err
	}
	c.mu.Lock()
	s := c.cur
	c.mu.Unlock()
	if s == nil {
		return ErrNotConnected
	}
	r := &request{msg: b, done: make(chan error, 1)}
	select {
	case s.sends <- r:
	case <-s.down:
		return ErrNotConnected
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// session is one link while it is up.
type session struct {
	conn    Conn
	sends   chan *request // Send's messages, taken by the writer
	answers chan []byte   // error answers to undecodable messages
	down    chan struct{} // closed once the link is down
}

type request struct {
	msg  []byte
	done chan error // the write's outcome; buffered
}

// serve runs one link over conn until it fails or ctx ends; it closes conn.
// A reader, a writer and a pinger run side by side; the first to fail ends
// the link, and serve returns once all three have.
func (c *Client) serve(ctx context.Context, conn Conn) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &session{conn: conn, sends: make(chan *request), answers: make(chan []byte, maxAnswers), down: make(chan struct{})}
	c.mu.Lock()
	c.cur = s
	c.mu.Unlock()
	if c.cfg.Connected != nil {
		c.cfg.Connected(true)
	}

	errc := make(chan error, 3)
	var wg sync.WaitGroup
	wg.Go(func() { errc <- c.write(ctx, s) })
	wg.Go(func() { errc <- c.read(ctx, s) })
	wg.Go(func() { errc <- c.ping(ctx, s) })
	err := <-errc
	cancel()
	conn.Close("bye") // also unblocks a Read or Write that ignores ctx
	wg.Wait()

	c.mu.Lock()
	c.cur = nil
	c.mu.Unlock()
	close(s.down)
	if c.cfg.Connected != nil {
		c.cfg.Connected(false)
	}
	return err
}

// write writes the Hello, then Published messages, Sent messages and
// error answers as they come, until the link fails or ctx ends.
func (c *Client) write(ctx context.Context, s *session) error {
	if c.cfg.Hello != nil {
		b, err := syncproto.Encode(c.cfg.Hello())
		if err != nil {
			return fmt.Errorf("hello: %w", err)
		}
		if err := s.write(ctx, b); err != nil {
			return err
		}
	}
	for {
		if b := c.takeLatest(); b != nil {
			if err := s.write(ctx, b); err != nil {
				c.keepLatest(b)
				return err
			}
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.wake:
		case b := <-s.answers:
			if err := s.write(ctx, b); err != nil {
				return err
			}
		case r := <-s.sends:
			err := s.write(ctx, r.msg)
			if err != nil {
				r.done <- fmt.Errorf("%w: %w", ErrNotConnected, err)
				return err
			}
			r.done <- nil
		}
	}
}

func (s *session) write(ctx context.Context, b []byte) error {
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	if err := s.conn.Write(wctx, b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// read decodes every message and hands it over until the link fails or ctx
// ends. An undecodable message is answered, not fatal.
func (c *Client) read(ctx context.Context, s *session) error {
	for {
		data, err := s.conn.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read: %w", err)
		}
		msg, err := syncproto.Decode(data)
		if err != nil {
			c.warn("unreadable message from the controller", "err", err)
			answer, _ := syncproto.Encode(&syncproto.Error{Message: err.Error()})
			select {
			case s.answers <- answer:
			default: // a flood: answering some of it is enough
			}
			continue
		}
		if msg.Type == syncproto.TypeError {
			c.warn("the controller could not handle a message", "message", msg.Error.Message)
			continue
		}
		c.cfg.Receive(msg)
	}
}

// ping pings every Heartbeat until a ping goes unanswered for a Heartbeat or
// ctx ends.
func (c *Client) ping(ctx context.Context, s *session) error {
	t := time.NewTicker(c.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, c.cfg.Heartbeat)
		err := s.conn.Ping(pctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("heartbeat: %w", err)
		}
		if c.cfg.Pong != nil {
			c.cfg.Pong()
		}
	}
}

// warn logs a warning unless too many came this minute.
func (c *Client) warn(msg string, args ...any) {
	if ok, suppressed := c.noise.allow(); ok {
		if suppressed > 0 {
			args = append(args, "suppressed", suppressed)
		}
		c.cfg.Logger.Warn(msg, args...)
	}
}

// logBurst is how many warnings about the controller's messages a minute
// may log; the rest are counted and the count logged with the next one.
const logBurst = 5

// logLimiter lets logBurst warnings a minute through and counts the rest.
type logLimiter struct {
	now func() time.Time

	mu         sync.Mutex
	start      time.Time
	count      int
	suppressed int
}

// allow says whether a warning may be logged now and, when it may, how many
// were held back before it.
func (l *logLimiter) allow() (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := l.now(); now.Sub(l.start) >= time.Minute {
		l.start, l.count = now, 0
	}
	if l.count >= logBurst {
		l.suppressed++
		return false, 0
	}
	l.count++
	n := l.suppressed
	l.suppressed = 0
	return true, n
}
