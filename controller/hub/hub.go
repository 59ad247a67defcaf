// Package hub holds the websockets of router agents connected to this
// controller replica and keeps each agent supplied with its router's full
// desired set: on connect, whenever the set changes (announced through
// PostgreSQL NOTIFY by whichever replica made the change) and periodically.
// It records what agents report.
package hub

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// Defaults for Config's zero values.
const (
	DefaultResync    = time.Minute
	DefaultHeartbeat = 20 * time.Second
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
}

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
	return c
}

// Hub is the agent side of the controller. Start it once; Stop is safe to
// call twice. ServeHTTP is the agents' websocket endpoint.
type Hub struct {
	store *store.Store
	cfg   Config

	mu     sync.Mutex
	conns  map[uuid.UUID]*agentConn
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a Hub over st.
func New(st *store.Store, cfg Config) *Hub {
	return &Hub{store: st, cfg: cfg.withDefaults(), conns: map[uuid.UUID]*agentConn{}}
}

// agentConn is one agent's websocket.
type agentConn struct {
	router uuid.UUID
	ws     *websocket.Conn
	// kick asks the writer to send the current desired set; it holds at
	// most one pending request, so bursts of changes coalesce.
	kick   chan struct{}
	cancel context.CancelFunc
}

func (c *agentConn) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
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
	return h.conns[router] != nil
}

// Count is the number of agents connected to this replica.
func (h *Hub) Count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// Kick sends router's agent, if connected here, its current desired set.
func (h *Hub) Kick(router uuid.UUID) {
	h.mu.Lock()
	c := h.conns[router]
	h.mu.Unlock()
	if c != nil {
		c.poke()
	}
}

func (h *Hub) kickAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		c.poke()
	}
}

func (h *Hub) drop(router uuid.UUID) {
	h.mu.Lock()
	c := h.conns[router]
	h.mu.Unlock()
	if c != nil {
		c.cancel()
	}
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

// listen follows the change notifications of every replica. After losing
// the connection it reconnects and resends every set, since notifications
// sent meanwhile are lost.
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
		h.kickAll()
	}
}

func (h *Hub) listenOnce(ctx context.Context) error {
	conn, err := h.store.Pool().Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "listen "+pgx.Identifier{store.ChangesChannel}.Sanitize()); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "unlisten *")
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var c store.Change
		if err := json.Unmarshal([]byte(n.Payload), &c); err != nil {
			h.cfg.Logger.Warn("bad change notification", "payload", n.Payload, "err", err)
			continue
		}
		if c.Disconnect {
			h.drop(c.RouterID)
		} else {
			h.Kick(c.RouterID)
		}
	}
}

// ServeHTTP is the agents' endpoint (syncproto.AgentPath). It authenticates
// the agent token, upgrades to a websocket and serves the agent until either
// side goes away. A second connection for the same router replaces the first.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	scheme, secret, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || secret == "" {
		http.Error(w, `{"message":"Unauthenticated."}`, http.StatusUnauthorized)
		return
	}
	router, err := h.store.AuthenticateAgent(r.Context(), strings.TrimSpace(secret))
	if errors.Is(err, fleet.ErrUnauthenticated) {
		http.Error(w, `{"message":"Unauthenticated."}`, http.StatusUnauthorized)
		return
	}
	if err != nil {
		h.cfg.Logger.Error("agent authentication", "err", err)
		http.Error(w, `{"message":"Server Error."}`, http.StatusInternalServerError)
		return
	}
	// The server's request timeouts would otherwise stay on the hijacked
	// connection and cut a healthy agent off.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept answered the client
	}
	ws.SetReadLimit(syncproto.MaxMessageBytes)
	h.serve(r.Context(), router.ID, ws)
}

// serve runs one agent connection. It blocks until the connection ends and
// closes it.
func (h *Hub) serve(ctx context.Context, router uuid.UUID, ws *websocket.Conn) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	c := &agentConn{router: router, ws: ws, kick: make(chan struct{}, 1), cancel: cancel}
	h.mu.Lock()
	if old := h.conns[router]; old != nil {
		old.cancel()
	}
	h.conns[router] = c
	h.mu.Unlock()
	log := h.cfg.Logger.With("router", router)
	log.Info("agent connected")
	if err := h.store.AgentConnected(ctx, router, h.now()); err != nil {
		log.Error("record agent connection", "err", err)
	}

	var wg sync.WaitGroup
	wg.Go(func() {
		defer cancel()
		h.write(ctx, c, log)
	})
	err := h.read(ctx, c, log)
	cancel()
	wg.Wait()

	h.mu.Lock()
	replaced := h.conns[router] != c
	if !replaced {
		delete(h.conns, router)
	}
	h.mu.Unlock()
	ws.Close(websocket.StatusGoingAway, "bye")
	if !replaced {
		if err := h.store.AgentDisconnected(context.WithoutCancel(ctx), router, h.now()); err != nil {
			log.Error("record agent disconnection", "err", err)
		}
	}
	log.Info("agent disconnected", "err", err, "replaced", replaced)
}

// write sends the desired set whenever kicked, and pings every Heartbeat.
func (h *Hub) write(ctx context.Context, c *agentConn, log *slog.Logger) {
	c.poke() // the full set first
	ping := time.NewTicker(h.cfg.Heartbeat)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
			if err := h.sendDesired(ctx, c); err != nil {
				log.Warn("send desired set", "err", err)
				return
			}
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, h.cfg.Heartbeat)
			err := c.ws.Ping(pctx)
			cancel()
			if err != nil {
				log.Warn("agent missed a heartbeat", "err", err)
				return
			}
			if err := h.store.AgentSeen(ctx, c.router, h.now()); err != nil {
				log.Error("record heartbeat", "err", err)
			}
		}
	}
}

func (h *Hub) sendDesired(ctx context.Context, c *agentConn) error {
	d, err := h.store.DesiredSet(ctx, c.router, h.now().UTC().Truncate(time.Second))
	if err != nil {
		return err
	}
	return h.send(ctx, c, d)
}

func (h *Hub) send(ctx context.Context, c *agentConn, body any) error {
	b, err := syncproto.Encode(body)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return c.ws.Write(wctx, websocket.MessageText, b)
}

// read handles the agent's messages until the connection fails.
func (h *Hub) read(ctx context.Context, c *agentConn, log *slog.Logger) error {
	for {
		_, data, err := c.ws.Read(ctx)
		if err != nil {
			return err
		}
		msg, err := syncproto.Decode(data)
		if err != nil {
			log.Warn("unreadable agent message", "err", err)
			if err := h.send(ctx, c, &syncproto.Error{Message: err.Error()}); err != nil {
				return err
			}
			continue
		}
		now := h.now().UTC().Truncate(time.Second)
		switch msg.Type {
		case syncproto.TypeHello:
			err = h.store.AgentHello(ctx, c.router, *msg.Hello, now)
		case syncproto.TypeReport:
			var out store.ReportOutcome
			out, err = h.store.ApplyReport(ctx, c.router, *msg.Report, now)
			if msg.Report.Error != "" {
				log.Warn("agent could not apply its set", "revision", msg.Report.Revision, "err", msg.Report.Error)
			}
			if len(out.Activated) > 0 || len(out.Removed) > 0 {
				log.Info("agent applied set", "revision", msg.Report.Revision, "activated", len(out.Activated), "removed", len(out.Removed))
			}
		case syncproto.TypeError:
			log.Warn("agent could not handle a message", "message", msg.Error.Message)
		}
		if err != nil {
			log.Error("record agent message", "type", msg.Type, "err", err)
		}
	}
}

func (h *Hub) now() time.Time { return h.cfg.Now() }
