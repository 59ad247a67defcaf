// Package edge is tpf's entry point: on a regional server (or inside
// `tpf-controller serve` for single-node installs) it listens on each live
// forward's port, admits only the forward's allowed sources (others never
// get a SYN-ACK), relays to the router's tunnel address, and cuts every
// connection of a forward the moment it expires or is revoked.
//
// Like the agent it is level-triggered: it receives its region's full
// listener set from the controller, applies it and reports what it holds. It
// enforces expiry on its own clock and keeps serving unexpired forwards
// while the controller is unreachable (or, in strict mode, cuts everything
// after a grace period without it).
package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/edge/listen"
	"github.com/tpf-dev/tpf/controller/edge/relay"
	"github.com/tpf-dev/tpf/controller/edge/tunnel"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// Defaults for Config's zero values.
const (
	DefaultDialTimeout = 5 * time.Second
	maxPendingRecords  = 10000
)

// Config configures an Edge.
type Config struct {
	// Bind is the address the listeners bind (TPF_EDGE_BIND); required.
	Bind netip.Addr
	// Now reads the clock; nil means time.Now.
	Now func() time.Time
	// DialTimeout bounds connecting to the router; zero means
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// Strict, when positive, closes every listener after that long without
	// a word from the controller; zero keeps serving unexpired forwards.
	Strict time.Duration
	// Version is reported to the controller.
	Version string
	// Logger receives what the edge does; nil discards.
	Logger *slog.Logger
	// OpenTunnel opens the edge's end of its region's WireGuard management
	// tunnel (package tunnel), the first time a set asks for one; the edge
	// applies each set's tunnel to it, reports its state, and closes it
	// with the edge. Nil, or an error (no CAP_NET_ADMIN, no TUN device),
	// leaves the edge without a tunnel, which it reports with the error.
	OpenTunnel func(log *slog.Logger) (*tunnel.Tunnel, error)
}

func (c Config) withDefaults() Config {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Edge holds the listeners of one region. Create it with New; Close it once
// done (safe twice).
type Edge struct {
	cfg    Config
	set    *listen.Set
	engine *relay.Engine
	sent   chan struct{} // a record is waiting to be sent
	done   chan struct{} // closed by Close

	mu       sync.Mutex
	forwards map[uint16]*held // by port
	revision int64
	contact  time.Time // last word from the controller
	open     map[string]syncproto.Connection
	pending  []syncproto.Connection // records not yet sent
	closed   bool

	// tunnelMu guards tunnel, the management tunnel's device once a set
	// asked for one, and tunnelErr, why it could not be opened. It is held
	// while a set's tunnel is applied, outside mu.
	tunnelMu  sync.Mutex
	tunnel    *tunnel.Tunnel
	tunnelErr error
}

// held is one forward the edge listens for.
type held struct {
	l      syncproto.Listener
	cut    context.CancelFunc // ends every connection of the forward
	ctx    context.Context
	active int
	expiry *time.Timer
}

// New opens the edge's listener set on cfg.Bind.
func New(cfg Config) (*Edge, error) {
	cfg = cfg.withDefaults()
	if !cfg.Bind.IsValid() {
		return nil, errors.New("edge: no bind address (TPF_EDGE_BIND)")
	}
	e := &Edge{cfg: cfg, forwards: map[uint16]*held{}, open: map[string]syncproto.Connection{},
		sent: make(chan struct{}, 1), done: make(chan struct{}), contact: cfg.Now()}
	engine, err := relay.New(relay.Config{DialTimeout: cfg.DialTimeout, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	// The listeners share the relay engine's event loops: one wakeup path
	// for accepting and relaying, no goroutine per listener.
	set, err := listen.New(listen.Config{Bind: cfg.Bind, Handler: e.serveConn, Logger: cfg.Logger, Poller: engine})
	if err != nil {
		engine.Close()
		return nil, fmt.Errorf("edge: %w", err)
	}
	e.set, e.engine = set, engine
	go e.watchdog()
	return e, nil
}

// Close closes every listener and cuts every connection.
func (e *Edge) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	close(e.done)
	for port, h := range e.forwards {
		e.dropLocked(port, h)
	}
	e.mu.Unlock()
	err := errors.Join(e.set.Shutdown(), e.engine.Close())
	e.tunnelMu.Lock()
	if e.tunnel != nil {
		err = errors.Join(err, e.tunnel.Close())
	}
	e.tunnelMu.Unlock()
	return err
}

// Ports lists the ports the edge listens on.
func (e *Edge) Ports() []uint16 { return e.set.Ports() }

// Apply makes the edge hold exactly the listeners of l and its tunnel, and
// reports what it holds. Listeners whose expiry passed on the edge's clock
// are not opened. A tunnel that fails is reported and keeps no listener
// from opening.
func (e *Edge) Apply(l *syncproto.Listeners) *syncproto.Report {
	now := e.cfg.Now()
	rep := &syncproto.Report{Revision: l.Revision, AgentVersion: e.cfg.Version, Results: []syncproto.Result{}, Present: []string{}}
	rep.Tunnel = e.applyTunnel(l)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.contact = now
	if l.Revision < e.revision {
		// A delayed set; the newer one already applied stands.
		rep.Revision = e.revision
	} else {
		e.revision = l.Revision
	}
	want := map[uint16]syncproto.Listener{}
	for _, ln := range l.Listeners {
		if err := check(ln); err != nil {
			rep.Results = append(rep.Results, syncproto.Result{ID: ln.ID, State: syncproto.StateRefused, Error: err.Error()})
			continue
		}
		if !now.Before(ln.ExpiresAt) {
			rep.Results = append(rep.Results, syncproto.Result{ID: ln.ID, State: syncproto.StateExpired})
			continue
		}
		if _, dup := want[ln.Port]; dup {
			rep.Results = append(rep.Results, syncproto.Result{ID: ln.ID, State: syncproto.StateRefused, Error: fmt.Sprintf("port %d is in the set twice", ln.Port)})
			continue
		}
		want[ln.Port] = ln
	}
	for port, h := range e.forwards {
		if w, ok := want[port]; !ok || w.ID != h.l.ID || w.Target != h.l.Target {
			e.dropLocked(port, h)
		}
	}
	for _, ln := range l.Listeners {
		w, ok := want[ln.Port]
		if !ok || w.ID != ln.ID {
			continue
		}
		if err := e.holdLocked(w, now); err != nil {
			rep.Results = append(rep.Results, syncproto.Result{ID: w.ID, State: syncproto.StateFailed, Error: err.Error()})
			continue
		}
		rep.Results = append(rep.Results, syncproto.Result{ID: w.ID, State: syncproto.StateApplied})
		rep.Present = append(rep.Present, w.ID)
	}
	return rep
}

// applyTunnel makes the tunnel device hold l's tunnel (none: no device)
// and returns its state. It runs outside e.mu, as a large change of peers
// takes a while; a delayed, older set leaves the tunnel alone.
func (e *Edge) applyTunnel(l *syncproto.Listeners) *syncproto.TunnelState {
	e.mu.Lock()
	stale := l.Revision < e.revision || e.closed
	e.mu.Unlock()
	e.tunnelMu.Lock()
	defer e.tunnelMu.Unlock()
	if e.tunnel == nil && e.tunnelErr == nil && l.Tunnel != nil && !stale {
		e.tunnelErr = errors.New("this edge holds no management tunnel (it was started without one)")
		if e.cfg.OpenTunnel != nil {
			e.tunnel, e.tunnelErr = e.cfg.OpenTunnel(e.cfg.Logger)
		}
		if e.tunnelErr != nil {
			e.cfg.Logger.Error("the region's tunnel is managed, but this edge cannot hold it", "err", e.tunnelErr)
		}
	}
	tn := e.tunnel
	switch {
	case tn == nil && l.Tunnel == nil:
		return nil
	case tn == nil:
		return &syncproto.TunnelState{Error: e.tunnelErr.Error()}
	}
	if !stale {
		if err := tn.Apply(l.Tunnel); err != nil {
			e.cfg.Logger.Warn("management tunnel", "err", err)
		}
	}
	if l.Tunnel == nil {
		return nil
	}
	st := tn.State()
	return &st
}

// check is the edge's own look at a listener: a controller bug must not
// make it relay to somewhere odd.
func check(l syncproto.Listener) error {
	if _, err := uuid.Parse(l.ID); err != nil {
		return fmt.Errorf("bad id %q", l.ID)
	}
	if l.Port == 0 || !l.Target.IsValid() || l.Target.Port() == 0 {
		return errors.New("bad port or target")
	}
	if !l.Allow.IsValid() || !l.Allow.Addr().Is4() || l.Allow.Bits() < 24 {
		return fmt.Errorf("allowed range %s is not an IPv4 range from /24 to /32", l.Allow)
	}
	a := l.Target.Addr()
	if !a.Is4() || a.IsUnspecified() || a.IsMulticast() {
		return fmt.Errorf("target %s is not a unicast IPv4 address", l.Target)
	}
	return nil
}

// holdLocked opens (or updates) the listener for l.
func (e *Edge) holdLocked(l syncproto.Listener, now time.Time) error {
	h := e.forwards[l.Port]
	if err := e.set.Open(l.Port, l.Allow); err != nil {
		if h != nil {
			e.dropLocked(l.Port, h)
		}
		return err
	}
	if h == nil {
		ctx, cut := context.WithCancel(context.Background())
		h = &held{ctx: ctx, cut: cut}
		e.forwards[l.Port] = h
	}
	h.l = l
	if h.expiry != nil {
		h.expiry.Stop()
	}
	port, id := l.Port, l.ID
	h.expiry = time.AfterFunc(l.ExpiresAt.Sub(now), func() { e.expire(port, id) })
	return nil
}

// expire closes a forward's listener and cuts its connections at its expiry
// on the edge's clock (cfg.Now). The timer runs on real time: one that fires
// before the expiry by that clock (a clock set back, an expiry extended
// meanwhile) is armed again for what is left.
func (e *Edge) expire(port uint16, id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	h := e.forwards[port]
	if h == nil || h.l.ID != id {
		return
	}
	if left := h.l.ExpiresAt.Sub(e.cfg.Now()); left > 0 {
		h.expiry.Reset(left)
		return
	}
	e.cfg.Logger.Info("forward expired", "forward", id, "port", port)
	e.dropLocked(port, h)
}

// dropLocked stops listening on port and cuts the forward's connections.
func (e *Edge) dropLocked(port uint16, h *held) {
	if h.expiry != nil {
		h.expiry.Stop()
	}
	h.cut()
	delete(e.forwards, port)
	if err := e.set.Close(port); err != nil {
		e.cfg.Logger.Warn("close listener", "port", port, "err", err)
	}
}

// watchdog enforces strict mode until Close: without a word from the
// controller for cfg.Strict, every listener closes (and comes back with the
// next set).
func (e *Edge) watchdog() {
	if e.cfg.Strict <= 0 {
		return
	}
	t := time.NewTicker(min(e.cfg.Strict/4, time.Second))
	defer t.Stop()
	for {
		select {
		case <-e.done:
			return
		case <-t.C:
		}
		e.mu.Lock()
		if len(e.forwards) > 0 && e.cfg.Now().Sub(e.contact) > e.cfg.Strict {
			e.cfg.Logger.Warn("strict mode: no word from the controller; closing every listener", "after", e.cfg.Strict)
			for port, h := range e.forwards {
				e.dropLocked(port, h)
			}
		}
		e.mu.Unlock()
	}
}

// serveConn takes one admitted connection (listen.Handler). It runs on the
// listeners' event loop, so it never blocks: the relay engine dials the
// router and relays without a goroutine of its own.
func (e *Edge) serveConn(c *listen.Conn) {
	now := e.cfg.Now()
	src := c.RemoteAddr()
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())

	e.mu.Lock()
	h := e.forwards[c.Port()]
	var l syncproto.Listener
	refused := ""
	switch {
	case h == nil:
		refused = "no forward"
	case !h.l.Allow.Contains(src.Addr()):
		refused = "source not allowed" // the socket filter's second line
	case !now.Before(h.l.ExpiresAt):
		refused = "expired"
	case h.l.Limits.MaxConnections > 0 && h.active >= h.l.Limits.MaxConnections:
		refused = "refused: too many connections"
	default:
		h.active++
		l = h.l
	}
	e.mu.Unlock()
	if refused != "" {
		c.Close()
		if h != nil && refused != "source not allowed" {
			e.record(syncproto.Connection{ID: uuid.NewString(), ForwardID: h.l.ID, Source: src, Start: now, End: now, Reason: refused})
		}
		return
	}

	rec := syncproto.Connection{ID: uuid.NewString(), ForwardID: l.ID, Source: src, Start: now}
	e.record(rec)
	lim := relay.Limits{IdleTimeout: time.Duration(l.Limits.IdleSeconds) * time.Second, BytesPerSecond: l.Limits.BytesPerSecond}
	e.engine.Connect(h.ctx, c, l.Target, lim, func(st relay.Stats) {
		e.mu.Lock()
		h.active--
		e.mu.Unlock()
		rec.End, rec.BytesUp, rec.BytesDown, rec.Reason = e.cfg.Now(), st.Up, st.Down, st.Reason
		if st.Reason == relay.ReasonDialFailed {
			rec.Reason = "unreachable"
		}
		e.record(rec)
	})
}

// record queues a connection record for the controller.
func (e *Edge) record(r syncproto.Connection) {
	e.mu.Lock()
	if r.End.IsZero() {
		e.open[r.ID] = r
	} else {
		delete(e.open, r.ID)
	}
	if len(e.pending) >= maxPendingRecords {
		e.pending = e.pending[1:] // the controller has been away long: keep the newest
	}
	e.pending = append(e.pending, r)
	e.mu.Unlock()
	select {
	case e.sent <- struct{}{}:
	default:
	}
}

// takeRecords returns and clears the records waiting to be sent.
func (e *Edge) takeRecords() []syncproto.Connection {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.pending
	e.pending = nil
	return out
}

// reopenRecords queues the records of every open connection again, for a
// controller that just (re)connected and counts only what it is told.
func (e *Edge) reopenRecords() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.open {
		e.pending = append(e.pending, r)
	}
}
