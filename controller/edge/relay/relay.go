// Package relay moves bytes between an accepted client connection and the
// dialled target connection, both ways, with proper half-close and
// per-connection limits: an idle timeout, a bandwidth cap, and
// cut-on-demand through a context. Streams go zero-copy, with splice(2);
// small reads (a request, a keystroke, a banner) are copied through one
// buffer per loop instead, which takes two system calls where splice takes
// three.
//
// An Engine runs a few event-loop goroutines (GOMAXPROCS − 1 by default),
// each with its own epoll set over the sockets it relays, blocking in
// epoll_wait itself rather than on Go's netpoller. A relayed connection
// holds no goroutine and no pipe while it is idle: a splice pipe is
// borrowed from the loop's pool only while bytes are in flight and
// returned as soon as they are delivered. An idle relayed connection costs
// its two sockets (2 file descriptors) and under 1 KB of Go memory
// (BENCH.md).
//
// Engine.Connect takes a raw accepted socket (listen.Conn) and dials the
// target without blocking, on the event loop, so that a connection's whole
// life — accept, dial, relay, close — needs no goroutine of its own. With
// Engine.Watch (the engine as a listen.Poller) each listening socket sits
// in a relay loop's epoll set: a connection is accepted, dialled and
// relayed on one thread. Engine.Start relays two connected *net.TCPConn;
// Relay blocks.
//
// The package is Linux-only (epoll, splice). It imports only the standard
// library and golang.org/x/sys/unix; it must not import the edge service or
// anything controller-side.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Limits are one relayed connection's limits. The zero value means none.
type Limits struct {
	// IdleTimeout cuts the connection after this long without a byte moving
	// either way. Zero: never.
	IdleTimeout time.Duration
	// BytesPerSecond caps each direction separately (client→target and
	// target→client) with a token bucket that allows bursts of a tenth of a
	// second's worth (at least 4 KiB). The cap decides how many bytes each
	// splice may move, so shaped traffic stays zero-copy; the sender is
	// slowed down by TCP flow control. Zero: no cap.
	BytesPerSecond int64
}

// Why a relay ended (Stats.Reason).
const (
	ReasonClientClosed = "client closed" // the client finished first (FIN or reset)
	ReasonTargetClosed = "target closed" // the target finished first (FIN or reset)
	ReasonIdle         = "idle timeout"  // Limits.IdleTimeout passed without traffic
	ReasonCut          = "cut"           // the context was cancelled (revoke, expiry)
	ReasonDialFailed   = "dial failed"   // Connect could not reach the target; see Stats.Err
	ReasonShutdown     = "shutdown"      // the Engine was closed
	ReasonError        = "error"         // a local failure; see Stats.Err
)

// Stats describe one relayed connection once it has ended.
type Stats struct {
	Up   int64 // bytes delivered client → target
	Down int64 // bytes delivered target → client
	// Start is when the relay started; End when both sockets were closed.
	Start, End time.Time
	// Reason is one of the Reason constants. When both sides closed
	// normally it names the side that closed first.
	Reason string
	// Err is the error behind the reason, if any: a reset, a failed
	// splice, or the context's cause for ReasonCut.
	Err error
}

// ErrClosed is the Err of relays refused or ended because the Engine was
// closed.
var ErrClosed = errors.New("relay engine closed")

// Config configures an Engine. The zero value is ready to use.
type Config struct {
	// Loops is the number of event-loop goroutines. A new relay goes to
	// the loop with the fewest, except that Connect called from a Watch
	// callback (a listen.Set's handler) prefers the callback's own loop
	// while that holds at most 2 relays more. Zero: GOMAXPROCS − 1, at
	// least 1. A loop blocked in epoll_wait keeps its P (the Go scheduler's
	// slot for a running goroutine) until the runtime takes it back, which
	// it does at once, and over and over, when no P is left idle: one P
	// spare for the rest of the program avoids that churn, which costs more
	// than a second loop gains on two CPUs (BENCH.md).
	Loops int
	// PipeSize is the capacity of each splice pipe (F_SETPIPE_SZ), the most
	// one splice moves. Zero: 256 KiB. A pipe holds pages only while bytes
	// are in it, but the kernel counts its capacity against the user's
	// pipe-user-pages-soft (64 MiB by default, for users without
	// CAP_SYS_RESOURCE), beyond which new pipes get two pages and cannot
	// grow; 1 MiB pipes were no faster here (BENCH.md) and would reach that
	// limit four times sooner. If the kernel refuses the size the pipe keeps
	// what it has (64 KiB, or two pages past the limit). Sizes under 8 KiB
	// count as 8 KiB: small reads are copied through an 8 KiB buffer, and
	// what the destination does not take at once waits in a pipe.
	PipeSize int
	// IdlePipes is how many empty pipes each loop keeps for reuse. Pipes in
	// use are not limited: one per direction with bytes in flight. Zero: 8.
	IdlePipes int
	// DialTimeout bounds Connect's dial of the target. Zero: 10 s.
	DialTimeout time.Duration
	// Logger receives errors of the engine itself (not of connections,
	// which end up in Stats). Nil: discard.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Loops <= 0 {
		c.Loops = max(1, runtime.GOMAXPROCS(0)-1)
	}
	if c.PipeSize <= 0 {
		c.PipeSize = 256 << 10
	}
	c.PipeSize = max(c.PipeSize, copyBuf)
	if c.IdlePipes <= 0 {
		c.IdlePipes = 8
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Engine relays connections. Its methods are safe for concurrent use.
type Engine struct {
	cfg    Config
	loops  []*loop
	next   atomic.Uint32
	active atomic.Int64

	closeOnce sync.Once
	closeErr  error
}

// New starts an Engine with cfg's event loops. Close stops it.
func New(cfg Config) (*Engine, error) {
	cfg = cfg.withDefaults()
	e := &Engine{cfg: cfg}
	for range cfg.Loops {
		l, err := newLoop(e)
		if err != nil {
			e.Close()
			return nil, err
		}
		e.loops = append(e.loops, l)
	}
	return e, nil
}

// A Socket hands over a connected TCP socket's descriptor, which the
// caller then owns. listen.Conn is one; TCPSocket adapts a *net.TCPConn.
type Socket interface {
	Detach() (fd int, err error)
}

// TCPSocket adapts c for Connect: Detach moves c's socket out of Go's
// poller (it duplicates the descriptor and closes c).
func TCPSocket(c *net.TCPConn) Socket { return tcpSocket{c} }

type tcpSocket struct{ c *net.TCPConn }

func (s tcpSocket) Detach() (int, error) { return detach(s.c) }

// Connect dials target for the accepted client socket and relays between
// them, like Start. It does not block: the dial (non-blocking connect,
// TCP_NODELAY; Config.DialTimeout) completes on the event loop, and the
// target socket gets its keep-alive (30 s idle, 3 probes 10 s apart) once
// the relay has lasted a second — most connections are over before. If the
// dial fails, the client is reset and done gets ReasonDialFailed with the
// error (for example ECONNREFUSED or ETIMEDOUT). Connect takes ownership of
// client's socket. See Start for done, ctx and the limits.
func (e *Engine) Connect(ctx context.Context, client Socket, target netip.AddrPort, lim Limits, done func(Stats)) {
	start := time.Now()
	cfd, err := client.Detach()
	if err != nil {
		e.refuse(done, start, ReasonError, fmt.Errorf("relay: client socket: %w", err))
		return
	}
	if err := checkLimits(lim); err != nil {
		closeFD(cfd)
		e.refuse(done, start, ReasonError, err)
		return
	}
	tfd, err := dialStart(target)
	if err != nil {
		lingerZero(cfd)
		closeFD(cfd)
		e.refuse(done, start, ReasonDialFailed, fmt.Errorf("dial %s: %w", target, err))
		return
	}
	e.add(ctx, cfd, tfd, true, lim, start, done)
}

// Start relays between client and target until both directions are done,
// the idle timeout passes, ctx is cancelled, or the Engine is closed, and
// then calls done exactly once with the connection's Stats. done runs on
// the engine's event loop, so it must return quickly and never block: hand
// the Stats off (a buffered channel, a mutex-guarded queue) and do slow work
// elsewhere. done may be nil. Start does not block and never calls done
// itself.
//
// Start takes ownership of both connections: it moves their sockets out of
// Go's network poller (it duplicates each descriptor and closes the
// *net.TCPConn) and closes the sockets when the relay ends. The caller must
// not use client or target after calling Start. When one side finishes
// sending, the other side's write half is shut down (half-close); the relay
// ends when both directions are done or either side resets. On ctx
// cancellation, idle timeout and Close both sockets are reset at once.
func (e *Engine) Start(ctx context.Context, client, target *net.TCPConn, lim Limits, done func(Stats)) {
	start := time.Now()
	if err := checkLimits(lim); err != nil {
		client.Close()
		target.Close()
		e.refuse(done, start, ReasonError, err)
		return
	}
	cfd, err := detach(client)
	if err != nil {
		target.Close()
		e.refuse(done, start, ReasonError, fmt.Errorf("relay: client socket: %w", err))
		return
	}
	tfd, err := detach(target)
	if err != nil {
		closeFD(cfd)
		e.refuse(done, start, ReasonError, fmt.Errorf("relay: target socket: %w", err))
		return
	}
	e.add(ctx, cfd, tfd, false, lim, start, done)
}

func checkLimits(lim Limits) error {
	if lim.IdleTimeout < 0 || lim.BytesPerSecond < 0 {
		return fmt.Errorf("relay: negative limits %+v", lim)
	}
	return nil
}

// add hands the two sockets to the next loop.
func (e *Engine) add(ctx context.Context, cfd, tfd int, connecting bool, lim Limits, start time.Time, done func(Stats)) {
	l := e.pick()
	if err := l.add(ctx, cfd, tfd, connecting, lim, start, done); err != nil {
		closeFD(cfd)
		closeFD(tfd)
		reason := ReasonError
		if errors.Is(err, ErrClosed) {
			reason = ReasonShutdown
		}
		e.refuse(done, start, reason, err)
	}
}

// refuse reports a relay that never started, from a new goroutine (the
// caller may hold locks that done needs).
func (e *Engine) refuse(done func(Stats), start time.Time, reason string, err error) {
	if done != nil {
		go done(Stats{Start: start, End: time.Now(), Reason: reason, Err: err})
	}
}

// Relay is Start that blocks until the relay has ended and returns its
// Stats. It holds the calling goroutine for the connection's lifetime; a
// server with many idle connections should prefer Start.
func (e *Engine) Relay(ctx context.Context, client, target *net.TCPConn, lim Limits) Stats {
	ch := make(chan Stats, 1)
	e.Start(ctx, client, target, lim, func(s Stats) { ch <- s })
	return <-ch
}

// Active returns the number of connections being relayed.
func (e *Engine) Active() int { return int(e.active.Load()) }

// Close ends every relay (Reason ReasonShutdown, sockets reset), stops the
// event loops and waits for them. Start after Close ends the new relay at
// once with ReasonShutdown. Close is safe to call more than once.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		var errs []error
		for _, l := range e.loops {
			errs = append(errs, l.close())
		}
		e.closeErr = errors.Join(errs...)
	})
	return e.closeErr
}

// Dial connects to addr ("host:port") over plain TCP (not MPTCP) with TCP
// keep-alive, giving up after timeout (zero: no timeout beyond ctx's). It
// blocks until connected or failed; the caller owns the connection.
func Dial(ctx context.Context, addr string, timeout time.Duration) (*net.TCPConn, error) {
	d := net.Dialer{
		Timeout:         timeout,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 3},
	}
	d.SetMultipathTCP(false)
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// detach returns a duplicate of c's socket that Go's poller does not watch
// and closes c (which removes the original from the poller). The duplicate
// is non-blocking: the flag belongs to the shared open file description.
func detach(c *net.TCPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return -1, err
	}
	nfd := -1
	var dupErr error
	if err := rc.Control(func(fd uintptr) {
		nfd, dupErr = dupCloexec(fd)
	}); err != nil {
		c.Close()
		return -1, err
	}
	c.Close()
	if dupErr != nil {
		return -1, fmt.Errorf("dup: %w", dupErr)
	}
	return nfd, nil
}
