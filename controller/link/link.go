// Package link carries the sync protocol's messages between the controller
// and a peer (an agent or an edge): over a websocket, or through an
// in-process pipe for the edge embedded in `tpf-controller serve`. Both ends
// of either kind look the same to the code that speaks the protocol.
package link

import (
	"context"
	"errors"
	"sync"

	"github.com/coder/websocket"
)

// Conn is one message link. Read, Write and Ping may run concurrently with
// each other (one reader, one writer, one pinger; shared/peerlink's Conn
// asks for the same); Ping needs a Read in progress to see the answer.
// Close ends the link for both sides and is safe to call twice.
type Conn interface {
	Read(ctx context.Context) ([]byte, error)
	Write(ctx context.Context, msg []byte) error
	Ping(ctx context.Context) error
	Close(reason string) error
}

// WebSocket adapts a websocket to Conn; the Conn owns ws.
func WebSocket(ws *websocket.Conn) Conn { return wsConn{ws} }

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
