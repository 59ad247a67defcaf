package peerlink

import (
	"context"
	"fmt"
	"net/http"

	"github.com/coder/websocket"

	"github.com/tpf-dev/tpf/shared/syncproto"
)

// Conn is one open message link to the controller: a websocket, or an
// in-process pipe (controller/link's Conn has the same methods). Read,
// Write and Ping may run side by side, one call of each at a time; Ping
// needs a Read in progress to see the answer. Close ends the link for both
// sides and is safe to call twice.
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
