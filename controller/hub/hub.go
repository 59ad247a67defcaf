// Package hub holds the links of the peers connected to this controller
// replica — router agents and regional edges — and keeps each supplied with
// its full set (a router's desired forwards, a region's listeners): on
// connect, whenever the set changes (announced through PostgreSQL NOTIFY by
// whichever replica made the change) and periodically. It records what the
// peers report.
//
// Agents' sets are built in batches: agents waiting for a set queue up, and
// a few set builders (Config.SetBuilders) each take up to Config.SetBatch
// of them at a time and read all their sets in one statement, which also
// tells whether each agent's token still stands. A resync of every agent
// therefore costs a query per batch, not a few per agent. Edges (one per
// region) fetch their own sets, and check their token again only when a
// change says it was replaced.
package hub

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/shared/peerlink"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// Defaults for Config's zero values.
const (
	DefaultResync      = time.Minute
	DefaultHeartbeat   = 20 * time.Second
	DefaultSetBatch    = 500
	DefaultSetBuilders = 2
)

// Config configures a Hub. The zero value is ready to use.
type Config struct {
	// Now reads the clock; nil means time.Now.
	Now func() time.Time
	// Resync is how often every agent gets its full set again even without
	// a change; zero means DefaultResync.
	Resync time.Duration
	// Heartbeat is how often the hub pings each agent; an agent that does
	// not answer within one more Heartbeat is dropped. Zero means
	// DefaultHeartbeat.
	Heartbeat time.Duration
	// Logger receives connection events and errors; nil discards.
	Logger *slog.Logger
	// EdgeLimits are the per-forward limits sent to edges with every
	// listener; zero values mean no limit.
	EdgeLimits syncproto.Limits
	// Observer is told what the hub sees, for metrics; nil observes
	// nothing.
	Observer Observer
	// SetBatch is how many agents' sets one query reads at most; zero
	// means DefaultSetBatch.
	SetBatch int
	// SetBuilders is how many such queries run at once (each holds one
	// database connection while it runs); zero means DefaultSetBuilders.
	SetBuilders int
}

// Observer is told what the hub sees; package metrics implements it. Its
// methods are called on the peers' goroutines, concurrently, and must return
// quickly. peer is "agent" or "edge".
type Observer interface {
	// PeerUp and PeerDown are called when a peer connects to this replica
	// and when it goes away (not when a second link replaces its first).
	PeerUp(peer string)
	PeerDown(peer string)
	// ReconcileError is called for each error a report carries: kind
	// "pass" when the whole set failed, else a forward's state
	// ("refused" or "failed").
	ReconcileError(peer, kind string)
	// ForwardActivated is called for each forward a report made active,
	// with the time since the forward was created.
	ForwardActivated(wait time.Duration)
	// ConnectionEnded is called for each ended connection an edge reports.
	ConnectionEnded(region, reason string, bytesUp, bytesDown int64)
}

// nopObserver is the Observer of a Config without one.
type nopObserver struct{}

func (nopObserver) PeerUp(string)                                {}
func (nopObserver) PeerDown(string)                              {}
func (nopObserver) ReconcileError(string, string)                {}
func (nopObserver) ForwardActivated(time.Duration)               {}
func (nopObserver) ConnectionEnded(string, string, int64, int64) {}

func (c Config) withDefaults() Config {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Resync <= 0 {
		c.Resync = DefaultResync
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.SetBatch <= 0 {
		c.SetBatch = DefaultSetBatch
	}
	if c.SetBuilders <= 0 {
		c.SetBuilders = DefaultSetBuilders
	}
	return c
}

// Hub is the peer side of the controller. Start it once, before it serves
// peers (agents get their sets from the builders Start runs); Stop is safe
// to call twice. ServeHTTP is the agents' websocket endpoint, Edges() the
// edges'.
type Hub struct {
	svc *forwards.Service
	cfg Config
	// waiting holds the agents whose set is to be built.
	waiting *setQueue
	// agentsSeen holds the routers whose agents answered a heartbeat since
	// they were last recorded.
	agentsSeen *seenRouters

	mu     sync.Mutex
	conns  map[string]*peerConn // by peer key: routerKey or edgeKey
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a Hub over the forwards service.
func New(svc *forwards.Service, cfg Config) *Hub {
	return &Hub{svc: svc, cfg: cfg.withDefaults(), conns: map[string]*peerConn{}, waiting: newSetQueue(), agentsSeen: newSeenRouters()}
}

func routerKey(id uuid.UUID) string { return "router " + id.String() }
func edgeKey(region string) string  { return "edge " + region }

// peer is what differs between an agent and an edge.
type peer interface {
	key() string
	// kind is "agent" or "edge", for the Observer.
	kind() string
	connected(ctx context.Context, now time.Time) error
	disconnected(ctx context.Context, now time.Time) error
	seen(ctx context.Context, now time.Time) error
	// next is what the writer sends the peer when kicked: its full set
	// (*syncproto.Desired or *syncproto.Listeners; nil: nothing to send),
	// and whether to drop the peer after it, its token no longer standing.
	next(ctx context.Context, c *peerConn, now time.Time) (set any, drop bool, err error)
	handle(ctx context.Context, msg syncproto.Envelope, now time.Time, log *slog.Logger) error
}

// peerConn is one connected peer.
type peerConn struct {
	peer peer
	conn peerlink.Conn
	// kick asks the writer to send the current set; it holds at most one
	// pending request, so bursts of changes coalesce.
	kick   chan struct{}
	cancel context.CancelFunc
	// inbox holds what the peer sent until the handler has recorded it,
	// so that the reader never waits on the database.
	inbox *inbox
	// noise limits the warnings about messages the peer gets wrong.
	noise *logLimiter
	// done is closed when the link's work ends.
	done <-chan struct{}

	mu sync.Mutex
	// prepared is an agent's newest set from the builders, not yet sent.
	prepared *forwards.AgentSet
	// recheck: an edge checks its token before its next set.
	recheck bool
}

func (c *peerConn) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// prepare hands an agent its newest set and wakes its writer.
func (c *peerConn) prepare(a *forwards.AgentSet) {
	c.mu.Lock()
	c.prepared = a
	c.mu.Unlock()
	c.poke()
}

// takePrepared returns the set prepare left, if any, and forgets it.
func (c *peerConn) takePrepared() *forwards.AgentSet {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.prepared
	c.prepared = nil
	return a
}

// checkToken has an edge check its token before its next set.
func (c *peerConn) checkToken() {
	c.mu.Lock()
	c.recheck = true
	c.mu.Unlock()
}

// takeRecheck reports whether the token is to be checked, and forgets it.
func (c *peerConn) takeRecheck() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.recheck
	c.recheck = false
	return r
}

// Start runs the change listener and the periodic resync until ctx ends or
// Stop is called.
func (h *Hub) Start(ctx context.Context) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done != nil {
		return
	}
	ctx, h.cancel = context.WithCancel(ctx)
	h.done = make(chan struct{})
	go func() {
		defer close(h.done)
		var wg sync.WaitGroup
		wg.Go(func() { h.listen(ctx) })
		wg.Go(func() { h.resync(ctx) })
		for range h.cfg.SetBuilders {
			wg.Go(func() { h.buildSets(ctx) })
		}
		wg.Go(func() { h.recordSeen(ctx) })
		wg.Wait()
	}()
}

// Stop stops the hub's background work and drops every agent.
func (h *Hub) Stop() {
	h.mu.Lock()
	cancel, done := h.cancel, h.done
	for _, c := range h.conns {
		c.cancel()
	}
	h.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// Connected reports whether router's agent is connected to this replica.
func (h *Hub) Connected(router uuid.UUID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.conns[routerKey(router)] != nil
}

// EdgeConnected reports whether region's edge is connected to this replica.
func (h *Hub) EdgeConnected(region string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.conns[edgeKey(region)] != nil
}

// Count is the number of peers connected to this replica.
func (h *Hub) Count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// kick sends the peer under key, if connected here, its current set; an
// edge checks its token first when recheck is set.
func (h *Hub) kick(key string, recheck bool) {
	h.mu.Lock()
	c := h.conns[key]
	h.mu.Unlock()
	if c != nil {
		h.refresh(c, recheck)
	}
}

// Resync sends every peer connected here its full set now, as the
// periodic resync does.
func (h *Hub) Resync() { h.kickAll() }

// kickAll sends every peer its current set; edges check their tokens
// first (agents' tokens are checked with every set).
func (h *Hub) kickAll() {
	h.mu.Lock()
	agents := make([]*peerConn, 0, len(h.conns))
	for _, c := range h.conns {
		if _, ok := c.peer.(*agentPeer); ok {
			agents = append(agents, c)
		} else {
			c.checkToken()
			c.poke()
		}
	}
	h.mu.Unlock()
	h.waiting.add(agents...)
}

// refresh has c sent its current set: an agent waits for the set builders,
// an edge's writer fetches its own.
func (h *Hub) refresh(c *peerConn, recheck bool) {
	if _, ok := c.peer.(*agentPeer); ok {
		h.waiting.add(c)
		return
	}
	if recheck {
		c.checkToken()
	}
	c.poke()
}

// resync gives every agent its full set at each Resync interval.
func (h *Hub) resync(ctx context.Context) {
	t := time.NewTicker(h.cfg.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.kickAll()
		}
	}
}

// listen follows the change notifications of every replica. Each time it
// starts listening it resends every set, since notifications sent while it
// was not listening are lost.
func (h *Hub) listen(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		err := h.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		h.cfg.Logger.Warn("change listener lost; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func (h *Hub) listenOnce(ctx context.Context) error {
	return h.svc.Listen(ctx, h.kickAll, func(c store.Change) {
		// An agent's token is checked with every set it is built; an
		// edge's only when the change says it was replaced.
		if c.RouterID != uuid.Nil {
			h.kick(routerKey(c.RouterID), false)
		}
		if c.Region != "" {
			h.kick(edgeKey(c.Region), c.Disconnect && c.RouterID == uuid.Nil)
		}
	})
}

// ServeHTTP is the agents' endpoint (syncproto.AgentPath). It authenticates
// the agent token, upgrades to a websocket and serves the agent until either
// side goes away. A second connection for the same router replaces the first.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	secret, ok := bearer(w, r)
	if !ok {
		return
	}
	router, err := h.svc.AuthenticateAgent(r.Context(), secret)
	if !h.authorized(w, err) {
		return
	}
	if ws := accept(w, r); ws != nil {
		h.Serve(r.Context(), &agentPeer{h: h, router: router.ID, secret: secret}, peerlink.WebSocket(ws))
	}
}

// Edges returns the edges' endpoint (syncproto.EdgePath), authenticated by
// the region's edge token.
func (h *Hub) Edges() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, ok := bearer(w, r)
		if !ok {
			return
		}
		region, err := h.svc.AuthenticateEdge(r.Context(), secret)
		if !h.authorized(w, err) {
			return
		}
		if ws := accept(w, r); ws != nil {
			h.Serve(r.Context(), &edgePeer{h: h, region: region.ID, secret: secret}, peerlink.WebSocket(ws))
		}
	})
}

// ServeAgent serves the agent holding secret over conn, a link already
// open (an in-process pipe, in tests and benchmarks), until either side goes
// away, and closes conn. An unknown token is fleet.ErrUnauthenticated,
// returned at once.
func (h *Hub) ServeAgent(ctx context.Context, secret string, conn peerlink.Conn) error {
	router, err := h.svc.AuthenticateAgent(ctx, secret)
	if err != nil {
		conn.Close("unauthenticated")
		return err
	}
	h.Serve(ctx, &agentPeer{h: h, router: router.ID, secret: secret}, conn)
	return nil
}

// ServeEdge serves region's edge over conn until either side goes away; the
// embedded edge uses it with an in-process pipe (it has no token to check).
func (h *Hub) ServeEdge(ctx context.Context, region string, conn peerlink.Conn) {
	h.Serve(ctx, &edgePeer{h: h, region: region}, conn)
}

func bearer(w http.ResponseWriter, r *http.Request) (string, bool) {
	scheme, secret, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	secret = strings.TrimSpace(secret)
	if !strings.EqualFold(scheme, "Bearer") || secret == "" {
		writeMessage(w, http.StatusUnauthorized, "Unauthenticated.")
		return "", false
	}
	return secret, true
}

func (h *Hub) authorized(w http.ResponseWriter, err error) bool {
	switch {
	case errors.Is(err, fleet.ErrUnauthenticated):
		writeMessage(w, http.StatusUnauthorized, "Unauthenticated.")
		return false
	case err != nil:
		h.cfg.Logger.Error("peer authentication", "err", err)
		writeMessage(w, http.StatusInternalServerError, "Server Error.")
		return false
	}
	return true
}

// writeMessage answers {"message": msg} as JSON, like the API's errors.
func writeMessage(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(map[string]string{"message": msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// accept upgrades to a websocket, or answers the client and returns nil.
func accept(w http.ResponseWriter, r *http.Request) *websocket.Conn {
	// The server's request timeouts would otherwise stay on the hijacked
	// connection and cut a healthy peer off.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return nil
	}
	ws.SetReadLimit(syncproto.MaxMessageBytes)
	return ws
}

// Serve runs one peer's link. It blocks until the link ends and closes it.
func (h *Hub) Serve(ctx context.Context, p peer, conn peerlink.Conn) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	// The first set checks the token again: it may have been replaced
	// since it was authenticated, before the link was known here.
	c := &peerConn{peer: p, conn: conn, kick: make(chan struct{}, 1), cancel: cancel, done: ctx.Done(),
		inbox: newInbox(), noise: newLogLimiter(h.now), recheck: true}
	key := p.key()
	h.mu.Lock()
	old := h.conns[key]
	if old != nil {
		old.cancel()
	}
	h.conns[key] = c
	h.mu.Unlock()
	if old == nil {
		h.cfg.Observer.PeerUp(p.kind())
	}
	log := h.cfg.Logger.With("peer", key)
	log.Info("peer connected")
	if err := p.connected(ctx, h.now()); err != nil {
		logFailure(ctx, log, "record connection", err)
	}

	var wg sync.WaitGroup
	wg.Go(func() {
		defer cancel()
		h.write(ctx, c, log)
	})
	// The reader starts a handler on wg whenever messages wait and none
	// runs; it has returned before wg.Wait.
	err := h.read(ctx, c, func() { wg.Go(func() { h.handle(ctx, c, log) }) }, log)
	cancel()
	wg.Wait()

	h.mu.Lock()
	replaced := h.conns[key] != c
	if !replaced {
		delete(h.conns, key)
	}
	h.mu.Unlock()
	conn.Close("bye")
	if !replaced {
		h.cfg.Observer.PeerDown(p.kind())
		if err := p.disconnected(context.WithoutCancel(ctx), h.now()); err != nil {
			log.Error("record disconnection", "err", err)
		}
	}
	log.Info("peer disconnected", "err", err, "replaced", replaced)
}

// write sends the peer's set whenever kicked, and pings every Heartbeat.
func (h *Hub) write(ctx context.Context, c *peerConn, log *slog.Logger) {
	h.refresh(c, true) // the full set first
	// The first ping comes at a random point of the first Heartbeat, so
	// that peers connected together (after a restart) are not all pinged,
	// and recorded, at once ever after.
	ping := time.NewTicker(time.Duration(1 + rand.Int64N(int64(h.cfg.Heartbeat))))
	defer ping.Stop()
	first := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
			set, drop, err := c.peer.next(ctx, c, h.now().UTC().Truncate(time.Second))
			if err == nil && set != nil {
				err = h.send(ctx, c, set)
			}
			if err != nil {
				log.Warn("send set", "err", err)
				return
			}
			if drop {
				// A deleted router's agent got its last set first.
				log.Info("dropping a peer whose token no longer stands")
				return
			}
		case <-ping.C:
			if first {
				ping.Reset(h.cfg.Heartbeat)
				first = false
			}
			pctx, cancel := context.WithTimeout(ctx, h.cfg.Heartbeat)
			err := c.conn.Ping(pctx)
			cancel()
			if err != nil {
				log.Warn("peer missed a heartbeat", "err", err)
				return
			}
			if err := c.peer.seen(ctx, h.now()); err != nil {
				logFailure(ctx, log, "record heartbeat", err)
			}
		}
	}
}

func (h *Hub) send(ctx context.Context, c *peerConn, body any) error {
	b, err := syncproto.Encode(body)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return c.conn.Write(wctx, b)
}

// read takes the peer's messages until the link fails, handing them to the
// handler through the peer's inbox (startHandler starts one when none
// runs): it never waits on the database, so a slow database cannot make it
// miss the peer's heartbeat answers.
func (h *Hub) read(ctx context.Context, c *peerConn, startHandler func(), log *slog.Logger) error {
	for {
		data, err := c.conn.Read(ctx)
		if err != nil {
			return err
		}
		msg, err := syncproto.Decode(data)
		if err != nil {
			if c.noise.allow() {
				log.Warn("unreadable message", "err", err, "suppressed", c.noise.takeSuppressed())
			}
			if err := h.send(ctx, c, &syncproto.Error{Message: err.Error()}); err != nil {
				return err
			}
			continue
		}
		if msg.Type == syncproto.TypeError {
			if c.noise.allow() {
				log.Warn("the peer could not handle a message", "message", msg.Error.Message, "suppressed", c.noise.takeSuppressed())
			}
			continue
		}
		if msg.Type == syncproto.TypeReport {
			h.observeErrors(c.peer.kind(), msg.Report)
		}
		if c.inbox.put(msg) {
			startHandler()
		}
	}
}

// handle records what the peer sent, one batch at a time, until nothing
// waits (or ctx ends).
func (h *Hub) handle(ctx context.Context, c *peerConn, log *slog.Logger) {
	for ctx.Err() == nil {
		msgs := c.inbox.take()
		if len(msgs) == 0 {
			return
		}
		for _, msg := range msgs {
			if err := c.peer.handle(ctx, msg, h.now().UTC().Truncate(time.Second), log); err != nil {
				logFailure(ctx, log, "record message", err, "type", msg.Type)
			}
		}
	}
}

// logFailure logs a failed write as an error, unless the peer's link ended
// meanwhile (a replaced or dropped link cancels its work).
func logFailure(ctx context.Context, log *slog.Logger, msg string, err error, attrs ...any) {
	level := slog.LevelError
	if ctx.Err() != nil {
		level = slog.LevelDebug
	}
	log.Log(ctx, level, msg, append(attrs, "err", err)...)
}

func (h *Hub) now() time.Time { return h.cfg.Now() }
