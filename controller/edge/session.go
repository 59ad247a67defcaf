package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/tpf-dev/tpf/shared/peerlink"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// Run speaks the sync protocol over conn until it fails or ctx ends: it
// applies every listener set, reports what it holds, and sends connection
// records. It blocks until then and closes conn.
func (e *Edge) Run(ctx context.Context, conn peerlink.Conn) error {
	return e.runLink(ctx, peerlink.Config{}, func(ctx context.Context, c *peerlink.Client) error {
		return c.Serve(ctx, conn)
	})
}

// Remote says how a standalone edge reaches its controller.
type Remote struct {
	// URL is the controller's base URL, http(s)://host[:port].
	URL string
	// Token is the region's edge token.
	Token string
	// TLS verifies the controller; nil means the system roots.
	TLS *tls.Config
}

// EdgeURL turns the controller's base URL into its edge endpoint's
// websocket URL.
func EdgeURL(base string) (string, error) { return syncproto.URL(base, syncproto.EdgePath) }

// RunRemote keeps a link to the controller open until ctx ends, redialing
// with jittered exponential backoff, and runs the edge over it. It blocks
// until ctx ends and returns nil then, or at once an error for a bad URL.
func (e *Edge) RunRemote(ctx context.Context, r Remote) error {
	wsURL, err := EdgeURL(r.URL)
	if err != nil {
		return err
	}
	cfg := peerlink.Config{URL: wsURL, Token: r.Token, TokenName: "TPF_EDGE_TOKEN", TLS: r.TLS}
	return e.runLink(ctx, cfg, func(ctx context.Context, c *peerlink.Client) error {
		return c.Run(ctx)
	})
}

// runLink runs the edge's side of the protocol over the link run makes of
// cfg: sets go to an applier, which publishes a report for each (only the
// newest unsent one is kept); connection records are sent as they come and
// kept until sent; the records of open connections go again on every
// connect; every word from the controller counts as contact for strict
// mode. It blocks until run returns.
func (e *Edge) runLink(ctx context.Context, cfg peerlink.Config, run func(context.Context, *peerlink.Client) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sets := make(chan *syncproto.Listeners, 1) // the newest set not yet applied
	cfg.Receive = func(m syncproto.Envelope) {
		if m.Type != syncproto.TypeListeners {
			return
		}
		select {
		case <-sets:
		default:
		}
		sets <- m.Listeners
	}
	var up atomic.Bool // a link is up: records are worth taking
	cfg.Connected = func(u bool) {
		up.Store(u)
		if u {
			e.reopenRecords()
			e.poke()
		}
	}
	cfg.Pong = e.touch
	cfg.Logger = e.cfg.Logger
	c, err := peerlink.New(cfg)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Go(func() { e.applySets(ctx, c, sets) })
	wg.Go(func() { e.sendRecords(ctx, c, &up) })
	err = run(ctx, c)
	cancel()
	wg.Wait()
	return err
}

// applySets applies each set received and publishes the report, until ctx
// ends.
func (e *Edge) applySets(ctx context.Context, c *peerlink.Client, sets <-chan *syncproto.Listeners) {
	for {
		select {
		case <-ctx.Done():
			return
		case l := <-sets:
			if err := c.Publish(e.Apply(l)); err != nil {
				e.cfg.Logger.Error("report not sent", "err", err)
			}
		}
	}
}

// sendRecords sends the connection records waiting whenever one is added
// while a link is up, or a link comes up, until ctx ends; records it could
// not send wait for the next link.
func (e *Edge) sendRecords(ctx context.Context, c *peerlink.Client, up *atomic.Bool) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.sent:
		}
		if !up.Load() {
			continue // the next link's Connected pokes again
		}
		recs := e.takeRecords()
		if len(recs) == 0 {
			continue
		}
		if err := c.Send(ctx, &syncproto.Connections{Records: recs}); err != nil {
			e.requeueRecords(recs)
			if !errors.Is(err, peerlink.ErrNotConnected) && ctx.Err() == nil {
				e.cfg.Logger.Warn("connection records not sent", "err", err)
			}
		}
	}
}

// poke wakes sendRecords.
func (e *Edge) poke() {
	select {
	case e.sent <- struct{}{}:
	default:
	}
}

// touch notes a word from the controller (an answered ping).
func (e *Edge) touch() {
	e.mu.Lock()
	e.contact = e.cfg.Now()
	e.mu.Unlock()
}

// requeueRecords puts records that could not be sent back before those
// added since, keeping the newest maxPendingRecords.
func (e *Edge) requeueRecords(recs []syncproto.Connection) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.pending = append(recs, e.pending...)
	if over := len(e.pending) - maxPendingRecords; over > 0 {
		e.pending = e.pending[over:] // the controller has been away long: keep the newest
	}
}
