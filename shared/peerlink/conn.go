package peerlink

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/coder/websocket"

	"github.com/tpf-dev/tpf/shared/syncproto"
)

// Conn is one open message link between the controller and a peer, seen
// from either end: a websocket (WebSocket), or an in-process pipe (Pipe)
// for the edge embedded in `tpf-controller serve`. Read, Write and Ping may
// run side by side, one call of each at a time; Ping needs a Read in
// progress to see the answer. Close ends the link for both sides and is
// safe to call twice.
type Conn interface {
	Read(ctx context.Context) ([]byte, error)
	Write(ctx context.Context, msg []byte) error
	Ping(ctx context.Context) error
	Close(reason string) error
}

// dial opens a websocket to Config.URL with the bearer token, within
// dialTimeout. The caller closes the Conn.
func (c *Client) dial(ctx context.Context) (Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	ws, res, err := websocket.Dial(dctx, c.cfg.URL, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + c.cfg.Token}},
		HTTPClient: c.http,
	})
	if res != nil && res.StatusCode == http.StatusUnauthorized {
		if ws != nil {
			ws.CloseNow()
		}
		if c.cfg.TokenName != "" {
			return nil, fmt.Errorf("%w (%s)", ErrUnauthorized, c.cfg.TokenName)
		}
		return nil, ErrUnauthorized
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", c.cfg.URL, err)
	}
	ws.SetReadLimit(syncproto.MaxMessageBytes)
	return wsConn{ws}, nil
}

// WebSocket adapts a websocket to Conn (the controller's end of an accepted
// one); the Conn owns ws.
func WebSocket(ws *websocket.Conn) Conn { return wsConn{ws} }

// wsConn adapts a websocket to Conn; it owns ws.
type wsConn struct{ ws *websocket.Conn }

func (c wsConn) Read(ctx context.Context) ([]byte, error) {
	_, b, err := c.ws.Read(ctx)
	return b, err
}

func (c wsConn) Write(ctx context.Context, msg []byte) error {
	return c.ws.Write(ctx, websocket.MessageText, msg)
}

func (c wsConn) Ping(ctx context.Context) error { return c.ws.Ping(ctx) }

func (c wsConn) Close(reason string) error {
	err := c.ws.Close(websocket.StatusNormalClosure, reason)
	c.ws.CloseNow()
	return err
}

// ErrClosed is returned by a pipe's methods once either end closed it.
var ErrClosed = errors.New("link closed")

// Pipe returns the two ends of an in-process link. Messages are handed
// over, not copied; a writer waits until the reader takes the message.
func Pipe() (Conn, Conn) {
	p := &pipe{done: make(chan struct{})}
	ab, ba := make(chan []byte), make(chan []byte)
	return &pipeEnd{p: p, in: ba, out: ab}, &pipeEnd{p: p, in: ab, out: ba}
}

type pipe struct {
	once sync.Once
	done chan struct{}
}

type pipeEnd struct {
	p   *pipe
	in  <-chan []byte
	out chan<- []byte
}

func (e *pipeEnd) Read(ctx context.Context) ([]byte, error) {
	select {
	case b := <-e.in:
		return b, nil
	case <-e.p.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (e *pipeEnd) Write(ctx context.Context, msg []byte) error {
	select {
	case e.out <- msg:
		return nil
	case <-e.p.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Ping succeeds while the pipe is open: both ends live in one process.
func (e *pipeEnd) Ping(ctx context.Context) error {
	select {
	case <-e.p.done:
		return ErrClosed
	default:
		return ctx.Err()
	}
}

func (e *pipeEnd) Close(string) error {
	e.p.once.Do(func() { close(e.p.done) })
	return nil
}
