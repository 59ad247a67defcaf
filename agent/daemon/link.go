package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/coder/websocket"

	"github.com/tpf-dev/tpf/shared/syncproto"
)

// AgentURL turns the controller's base URL (http, https, ws or wss) into
// its agent endpoint's websocket URL.
func AgentURL(base string) (string, error) { return syncproto.URL(base, syncproto.AgentPath) }

// link keeps the websocket to the controller open: it dials with jittered
// exponential backoff and never gives up, hands every desired set to onSet,
// and sends the reports it is given while connected.
type link struct {
	url       string
	token     string
	tls       *tls.Config
	heartbeat time.Duration
	hello     func() *syncproto.Hello
	onSet     func(*syncproto.Desired)
	reports   <-chan *syncproto.Report
	log       logger
	// connected, when not nil, is told each time the link comes up or goes down.
	connected func(bool)
}

type logger interface {
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
}

// run blocks until ctx ends.
func (l *link) run(ctx context.Context) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 500 * time.Millisecond
	b.MaxInterval = 30 * time.Second
	b.MaxElapsedTime = 0 // never give up
	for ctx.Err() == nil {
		start := time.Now()
		err := l.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			b.Reset() // it was a working link: start over quickly
		}
		wait := b.NextBackOff()
		l.log.Warn("controller link down", "err", err, "retry_in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// errUnauthorized means the controller refused the agent token; retrying is
// still right (the operator may fix it), but it is worth saying clearly.
var errUnauthorized = errors.New("the controller refused the agent token (TPF_AGENT_TOKEN)")

// session runs one connection to its end.
func (l *link) session(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	opts := &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + l.token}},
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: l.tls, Proxy: http.ProxyFromEnvironment}},
	}
	ws, res, err := websocket.Dial(dctx, l.url, opts)
	if res != nil && res.StatusCode == http.StatusUnauthorized {
		return errUnauthorized
	}
	if err != nil {
		return fmt.Errorf("dial %s: %w", l.url, err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(syncproto.MaxMessageBytes)
	l.log.Info("controller link up", "url", l.url)
	if l.connected != nil {
		l.connected(true)
		defer l.connected(false)
	}

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	errc := make(chan error, 2)
	go func() { errc <- l.write(ctx, ws) }()
	go func() { errc <- l.read(ctx, ws) }()
	err = <-errc
	stop()
	return err
}

func (l *link) write(ctx context.Context, ws *websocket.Conn) error {
	if err := send(ctx, ws, l.hello()); err != nil {
		return err
	}
	ping := time.NewTicker(l.heartbeat)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case r := <-l.reports:
			if err := send(ctx, ws, r); err != nil {
				return err
			}
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, l.heartbeat)
			err := ws.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("heartbeat: %w", err)
			}
		}
	}
}

func (l *link) read(ctx context.Context, ws *websocket.Conn) error {
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			return err
		}
		msg, err := syncproto.Decode(data)
		if err != nil {
			// Reported, not fatal: the next full set will do.
			l.log.Warn("unreadable controller message", "err", err)
			if err := send(ctx, ws, &syncproto.Error{Message: err.Error()}); err != nil {
				return err
			}
			continue
		}
		switch msg.Type {
		case syncproto.TypeDesired:
			l.onSet(msg.Desired)
		case syncproto.TypeError:
			l.log.Warn("the controller could not handle a message", "message", msg.Error.Message)
		}
	}
}

func send(ctx context.Context, ws *websocket.Conn, body any) error {
	b, err := syncproto.Encode(body)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return ws.Write(wctx, websocket.MessageText, b)
}
