package routeros

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	ros "github.com/go-routeros/routeros/v3"
)

// DefaultTimeout bounds each command, and dial plus login, when
// Config.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Errors callers branch on with errors.Is.
var (
	// ErrBroken means the connection failed: an I/O error or timeout, the
	// router closed it, the context was cancelled mid-command, or a reply
	// could not be read. The Client refuses every later command with it:
	// Close the Client and Dial again.
	ErrBroken = errors.New("router connection broken")
	// ErrLoginRefused means the router refused the user name or password
	// (or the user lacks the api policy). Retrying will not help until the
	// credentials change.
	ErrLoginRefused = errors.New("login refused")
)

// RouterError is a command the router refused with !trap, such as an
// invalid value or "no such item". The connection is still usable.
type RouterError struct {
	Command string // the command word, e.g. "/ip/firewall/nat/add"
	Message string // the router's text, e.g. "no such item"
}

func (e *RouterError) Error() string {
	return e.Command + ": router says: " + e.Message
}

// Config says how to reach and log in to the router.
type Config struct {
	// Address is host:port, e.g. "192.168.88.1:8728" (api) or
	// "192.168.88.1:8729" (api-ssl). Required.
	Address string
	// User and Password are sent as they are; the user needs a group with
	// the api, read and write policies.
	User, Password string
	// TLS, when not nil, wraps the connection in TLS (api-ssl); nil means
	// the plain API. An empty ServerName is filled from Address's host.
	// The router needs a certificate on api-ssl: Go speaks neither of the
	// anonymous or finite-field Diffie-Hellman suites RouterOS falls back to.
	TLS *tls.Config
	// Timeout bounds every command, and dial plus TLS handshake plus login
	// together. Zero means DefaultTimeout.
	Timeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}

// Client is one logged-in API connection. Its methods block until the
// router answers or a deadline passes; they may be called from several
// goroutines but run one command at a time. The Client owns the
// connection: Close releases it.
type Client struct {
	addr    string
	timeout time.Duration
	conn    net.Conn // TCP or TLS; every command sets its deadline
	api     *ros.Client

	closeOnce sync.Once
	closeErr  error

	// mu serialises commands: replies are untagged, so only one may be
	// in flight.
	mu     sync.Mutex
	broken error // the first connection failure, wrapping ErrBroken

	// vmu guards version, the RouterOS version as the router prints it
	// ("7.15.3 (stable)"), read once per connection: changing it takes a
	// reboot, which ends the connection.
	vmu     sync.Mutex
	version string
}

// aLongTimeAgo is a deadline in the past: setting it makes blocked reads
// and writes return at once.
var aLongTimeAgo = time.Unix(1, 0)

// Dial connects to the router, performs the TLS handshake when configured,
// and logs in, all within cfg.Timeout and ctx. Errors say which step failed
// ("login to 192.168.88.1:8728: ..."); a refused login wraps
// ErrLoginRefused. The caller must Close the returned Client.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if cfg.Address == "" {
		return nil, errors.New("routeros: no router address; set Config.Address to host:port, e.g. 192.168.88.1:8728")
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", cfg.Address, err)
	}
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		conn.Close()
		return nil, fmt.Errorf("dial %s: %w", cfg.Address, err)
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		conn.SetDeadline(aLongTimeAgo) // interrupt the handshake or login
		close(fired)
	})
	c, err := handshake(ctx, conn, cfg)
	if !stop() {
		<-fired
		if err == nil { // finished just as ctx ended: the deadline is now spoiled
			c.Close()
			err = fmt.Errorf("login to %s: %w", cfg.Address, context.Cause(ctx))
		}
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// handshake runs TLS (when configured) and login on a fresh connection.
func handshake(ctx context.Context, conn net.Conn, cfg Config) (*Client, error) {
	if cfg.TLS != nil {
		tc := tls.Client(conn, tlsConfig(cfg))
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("tls handshake with %s: %w", cfg.Address, withContext(ctx, err))
		}
		conn = tc
	}
	api, err := ros.NewClient(conn)
	if err != nil {
		return nil, fmt.Errorf("login to %s: %w", cfg.Address, err)
	}
	api.SetLogHandler(slog.DiscardHandler) // its default handler writes to stdout
	if err := api.Login(cfg.User, cfg.Password); err != nil {
		var de *ros.DeviceError
		if errors.As(err, &de) && de.Sentence.Word == "!trap" {
			return nil, fmt.Errorf("login to %s as %q: %w: %s", cfg.Address, cfg.User, ErrLoginRefused, de.Sentence.Map["message"])
		}
		return nil, fmt.Errorf("login to %s: %w", cfg.Address, withContext(ctx, err))
	}
	return &Client{addr: cfg.Address, timeout: cfg.Timeout, conn: conn, api: api}, nil
}

// tlsConfig copies cfg.TLS, naming the router's host for verification
// when no ServerName is set.
func tlsConfig(cfg Config) *tls.Config {
	tc := cfg.TLS.Clone()
	if tc.ServerName == "" {
		if host, _, err := net.SplitHostPort(cfg.Address); err == nil {
			tc.ServerName = host
		}
	}
	return tc
}

// Close closes the connection. A command in flight on another goroutine
// fails with ErrBroken. Close is safe to call more than once.
func (c *Client) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.api.Close() })
	return c.closeErr
}

// Addr returns the router address the Client is connected to.
func (c *Client) Addr() string { return c.addr }

// run sends one command and waits for its whole reply, for at most the
// per-command timeout and never past ctx's deadline; cancelling ctx
// interrupts it. A !trap gives a *RouterError and leaves the connection
// usable; any other failure marks the Client broken.
func (c *Client) run(ctx context.Context, words ...string) (*ros.Reply, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cmd := words[0]
	if c.broken != nil {
		return nil, fmt.Errorf("%s: %w", cmd, c.broken)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.conn.SetDeadline(deadline); err != nil {
		c.broken = fmt.Errorf("%w: %w", ErrBroken, err)
		return nil, fmt.Errorf("%s: %w", cmd, c.broken)
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		c.conn.SetDeadline(aLongTimeAgo)
		close(fired)
	})
	reply, err := c.api.RunArgs(words)
	if !stop() {
		<-fired // the next command's deadline must not race with this one
	}
	if err == nil {
		return reply, nil
	}
	var de *ros.DeviceError
	if reply != nil && errors.As(err, &de) {
		// A !trap, then !done: the exchange completed.
		msg := de.Sentence.Map["message"]
		if msg == "" {
			msg = "unknown error"
		}
		return nil, &RouterError{Command: cmd, Message: msg}
	}
	c.broken = fmt.Errorf("%w: %w", ErrBroken, withContext(ctx, err))
	return nil, fmt.Errorf("%s: %w", cmd, c.broken)
}

// withContext adds ctx's error to an I/O error that ctx caused (by
// cancellation or by its deadline, which the connection deadline copies),
// so callers can tell a deadline from a router that went silent.
func withContext(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (%w)", cerr, err)
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return fmt.Errorf("%w (%w)", context.DeadlineExceeded, err)
	}
	return err
}

// isNoSuchItem reports whether the router said the item does not exist.
func isNoSuchItem(err error) bool {
	var re *RouterError
	return errors.As(err, &re) && strings.HasPrefix(re.Message, "no such item")
}

// stops reports whether err ends a pass: the connection broke or ctx
// ended, so no later command can run.
func stops(ctx context.Context, err error) bool {
	return errors.Is(err, ErrBroken) || ctx.Err() != nil
}
