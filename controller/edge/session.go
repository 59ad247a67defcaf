package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/coder/websocket"

	"github.com/tpf-dev/tpf/controller/link"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// heartbeat is how often the edge pings the controller.
const heartbeat = 20 * time.Second

// Run speaks the sync protocol over conn until it fails or ctx ends: it
// applies every listener set, reports what it holds, and sends connection
// records. It closes conn.
func (e *Edge) Run(ctx context.Context, conn link.Conn) error {
	defer conn.Close("bye")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.reopenRecords()
	errc := make(chan error, 2)
	sets := make(chan *syncproto.Listeners, 1)
	go func() { errc <- e.read(ctx, conn, sets) }()
	go func() { errc <- e.write(ctx, conn, sets) }()
	err := <-errc
	cancel()
	return err
}

func (e *Edge) read(ctx context.Context, conn link.Conn, sets chan *syncproto.Listeners) error {
	for {
		b, err := conn.Read(ctx)
		if err != nil {
			return err
		}
		msg, err := syncproto.Decode(b)
		if err != nil {
			e.cfg.Logger.Warn("unreadable controller message", "err", err)
			continue
		}
		switch msg.Type {
		case syncproto.TypeListeners:
			// Only the newest set matters: replace one not yet applied.
			select {
			case <-sets:
			default:
			}
			sets <- msg.Listeners
		case syncproto.TypeError:
			e.cfg.Logger.Warn("the controller could not handle a message", "message", msg.Error.Message)
		}
	}
}

func (e *Edge) write(ctx context.Context, conn link.Conn, sets chan *syncproto.Listeners) error {
	ping := time.NewTicker(heartbeat)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case l := <-sets:
			rep := e.Apply(l)
			if err := send(ctx, conn, rep); err != nil {
				return err
			}
		case <-e.sent:
			if recs := e.takeRecords(); len(recs) > 0 {
				if err := send(ctx, conn, &syncproto.Connections{Records: recs}); err != nil {
					return err
				}
			}
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, heartbeat)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("heartbeat: %w", err)
			}
			e.mu.Lock()
			e.contact = e.cfg.Now()
			e.mu.Unlock()
		}
	}
}

func send(ctx context.Context, conn link.Conn, body any) error {
	b, err := syncproto.Encode(body)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return conn.Write(wctx, b)
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
// with jittered exponential backoff, and runs the edge over it.
func (e *Edge) RunRemote(ctx context.Context, r Remote) error {
	wsURL, err := EdgeURL(r.URL)
	if err != nil {
		return err
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 500 * time.Millisecond
	b.MaxInterval = 30 * time.Second
	b.MaxElapsedTime = 0
	for ctx.Err() == nil {
		start := time.Now()
		err := e.session(ctx, wsURL, r)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > time.Minute {
			b.Reset()
		}
		wait := b.NextBackOff()
		e.cfg.Logger.Warn("controller link down", "err", err, "retry_in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
	return nil
}

func (e *Edge) session(ctx context.Context, wsURL string, r Remote) error {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ws, res, err := websocket.Dial(dctx, wsURL, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + r.Token}},
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: r.TLS, Proxy: http.ProxyFromEnvironment}},
	})
	if res != nil && res.StatusCode == http.StatusUnauthorized {
		return errors.New("the controller refused the edge token (TPF_EDGE_TOKEN)")
	}
	if err != nil {
		return fmt.Errorf("dial %s: %w", wsURL, err)
	}
	ws.SetReadLimit(syncproto.MaxMessageBytes)
	e.cfg.Logger.Info("controller link up", "url", wsURL)
	return e.Run(ctx, link.WebSocket(ws))
}
