// Package listen holds the edge's entry-point listeners: one listening TCP
// socket per live forward, each guarded by a classic BPF socket filter so
// that a source outside the forward's allowed IPv4 CIDR never completes the
// TCP handshake (no SYN-ACK: to a scanner the port looks filtered). All the
// listeners of a Set share one epoll set and one event loop — a goroutine
// of the Set's own, or a Poller's (relay.Engine). Accepted connections are
// checked a second time against the CIDR and handed to a Handler as a
// *Conn: a raw, non-blocking socket that relay.Engine.Connect takes over
// without any goroutine, or that Conn.TCPConn wraps for ordinary Go I/O.
//
// Why not net.Listen: a goroutine parked in Accept costs about 3.6 KB per
// listener, and Go listeners are MPTCP by default, which refuses
// SO_ATTACH_FILTER. Here a listener costs about 0.4 KB of Go memory plus the
// kernel socket, and 10,000 of them open in about half a second.
//
// The package is Linux-only (epoll, accept4, SO_ATTACH_FILTER). It imports
// only the standard library and golang.org/x/{net/bpf,sys/unix}; it must not
// import the edge service, the relay or anything controller-side.
package listen

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Backlog is the accept queue length of every listener.
const Backlog = 128

// Backoff bounds: after an accept error that is about resources (EMFILE,
// ENFILE, ENOBUFS, ENOMEM) a listener stops accepting for MinBackoff,
// doubling on each further failure up to MaxBackoff; one success resets it.
// Other listeners keep being served meanwhile, and connections waiting in the
// paused listener's queue are accepted when it resumes.
const (
	MinBackoff = 50 * time.Millisecond
	MaxBackoff = time.Second
)

// acceptBatch is how many connections one listener may accept per turn of
// the event loop, so that a flooded port cannot starve the others.
const acceptBatch = 16

var (
	// ErrClosed is returned by Open and Close after Shutdown.
	ErrClosed = errors.New("listener set is shut down")
	// ErrNotOpen is returned (wrapped) by Close for a port that is not open.
	ErrNotOpen = errors.New("port not open")
)

// Handler receives every accepted, admitted connection. It runs on the
// Set's event loop, so it must not block: hand the socket to
// relay.Engine.Connect (which never blocks), close it, or start a goroutine
// (Spawn does that for handlers written against *net.TCPConn). The handler
// owns c and must see to it that c is detached or closed.
type Handler func(c *Conn)

// Spawn adapts a blocking handler: each connection is wrapped as a
// *net.TCPConn (registered with Go's poller) and h runs in a new goroutine,
// owning it. That costs a goroutine per connection (≈ 4 KB while it lives)
// and a few system calls more than handing the socket to relay.Engine.Connect.
func Spawn(h func(port uint16, c *net.TCPConn)) Handler {
	return func(c *Conn) {
		port := c.Port()
		tc, err := c.TCPConn()
		if err != nil {
			return
		}
		go h(port, tc)
	}
}

// Conn is an accepted, admitted connection: a non-blocking, close-on-exec
// TCP socket not yet registered with Go's poller. TCP_NODELAY and
// keep-alive (30 s idle, 10 s interval, 3 probes) are on, inherited from the
// listener. Exactly one of Detach, TCPConn or Close must be called; after
// that the Conn is spent. A Conn is not safe for concurrent use.
type Conn struct {
	port   uint16
	remote netip.AddrPort
	fd     int
}

// Port is the listening port (the forward) the connection came in on.
func (c *Conn) Port() uint16 { return c.port }

// RemoteAddr is the client's address; an IPv4 client of a dual-stack
// listener is reported as plain IPv4, not IPv4-mapped.
func (c *Conn) RemoteAddr() netip.AddrPort { return c.remote }

// errSpent is returned by a Conn's methods after the first of them.
var errSpent = errors.New("listen: connection already detached or closed")

// Detach hands over the socket's descriptor: the caller now owns it and
// must close it. relay.Engine.Connect calls it.
func (c *Conn) Detach() (int, error) {
	if c.fd < 0 {
		return -1, errSpent
	}
	fd := c.fd
	c.fd = -1
	return fd, nil
}

// TCPConn wraps the socket as a *net.TCPConn for ordinary (blocking) Go I/O;
// the caller owns it.
func (c *Conn) TCPConn() (*net.TCPConn, error) {
	fd, err := c.Detach()
	if err != nil {
		return nil, err
	}
	return fileConn(fd)
}

// Close closes the socket (the client sees a FIN, or a reset if it had
// sent data).
func (c *Conn) Close() error {
	fd, err := c.Detach()
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// Set is the edge's listeners on one bind address, keyed by port. Its
// methods are safe for concurrent use. It is created by New or NewSet and
// must be released with Shutdown.
type Set struct {
	bind   netip.Addr
	family int
	h      Handler
	log    *slog.Logger

	// Own loop: the epoll set of all listening sockets and wakefd, parked
	// on Go's poller as file. Poller mode: poller watches each listener
	// (epfd, wakefd are -1).
	epfd   int
	wakefd int      // eventfd: Shutdown writes it to wake the own loop
	file   *os.File // own loop: epfd as a file, parked on Go's poller
	done   chan struct{}
	poller Poller

	// noFilterOnce says once that the kernel refuses socket filters.
	noFilterOnce sync.Once

	// accept is accept4(2); tests replace it to inject errors.
	accept func(fd int) (int, netip.AddrPort, error)

	// pollMu serialises poll and keeps epfd open while it runs.
	pollMu     sync.Mutex
	pollClosed bool
	events     []unix.EpollEvent

	// mu guards the fields below and serialises accept with Open/Close, so
	// that a listener's fd is never closed while the loop accepts on it.
	mu     sync.Mutex
	ls     map[uint16]*listener
	nextID uint32
	closed bool

	shutdownOnce sync.Once
	shutdownErr  error
}

// listener is one listening socket.
type listener struct {
	port    uint16
	fd      int
	id      uint32       // epoll tag: a reopened port gets a new one
	allow   netip.Prefix // masked IPv4 prefix
	paused  bool         // removed from epoll after an accept error
	backoff time.Duration
	timer   *time.Timer // resumes a paused listener
	unwatch func()      // Poller mode: stops the Poller watching fd
}

// wakeTag marks wakefd's epoll events (ports are 1–65535).
const wakeTag = -1

// A Poller runs a Set's listeners on its event loops instead of a goroutine
// of the Set's own: each listening socket sits directly in a loop's epoll
// set, with no epoll set of the Set's in between. relay.Engine is one: with
// it, the handler runs on a relay event loop, and a connection it passes to
// Engine.Connect is dialled and relayed on that same loop — accept, dial
// and the first bytes without waking any other thread.
type Poller interface {
	// Watch calls ready on an event loop whenever fd (a listening socket)
	// is readable, level-triggered, and again while ready reports more
	// work; cancel stops it. Calls may come after cancel and spuriously:
	// the Set checks.
	Watch(fd int, ready func() (more bool)) (cancel func(), err error)
}

// Config configures a Set.
type Config struct {
	// Bind is the address to listen on: 0.0.0.0, a specific IPv4 address,
	// or an IPv6 address; "::" is dual-stack (IPv4 clients arrive as
	// IPv4-mapped addresses and are filtered by their IPv4 source).
	// Required.
	Bind netip.Addr
	// Handler is called for every admitted connection. Required.
	Handler Handler
	// Logger receives listener errors (bind failures are returned by
	// Open, not logged). Nil: discard.
	Logger *slog.Logger
	// Poller runs the event loop. Nil: the Set runs one goroutine of its
	// own.
	Poller Poller
}

// NewSet is New with a goroutine of the Set's own as event loop.
func NewSet(bind netip.Addr, h Handler, log *slog.Logger) (*Set, error) {
	return New(Config{Bind: bind, Handler: h, Logger: log})
}

// New returns an empty listener set. Shutdown releases it.
func New(cfg Config) (*Set, error) {
	bind, h, log := cfg.Bind, cfg.Handler, cfg.Logger
	if !bind.IsValid() {
		return nil, errors.New("listen: bind address is not set")
	}
	if h == nil {
		return nil, errors.New("listen: handler is nil")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bind = bind.Unmap().WithZone("")
	family := unix.AF_INET
	if bind.Is6() {
		family = unix.AF_INET6
	}
	s := &Set{
		bind:   bind,
		family: family,
		h:      h,
		log:    log,
		epfd:   -1,
		wakefd: -1,
		done:   make(chan struct{}),
		accept: accept4,
		ls:     make(map[uint16]*listener),
	}
	if cfg.Poller != nil {
		s.poller = cfg.Poller
		close(s.done)
		return s, nil
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("listen: epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("listen: eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd,
		&unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeTag}); err != nil {
		unix.Close(wakefd)
		unix.Close(epfd)
		return nil, fmt.Errorf("listen: epoll_ctl: %w", err)
	}
	// A non-blocking epoll fd is pollable: os.NewFile registers it with Go's
	// netpoller, and the own loop parks there instead of holding a thread.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(wakefd)
		unix.Close(epfd)
		return nil, fmt.Errorf("listen: set epoll fd non-blocking: %w", err)
	}
	s.epfd, s.wakefd = epfd, wakefd
	s.events = make([]unix.EpollEvent, 128)
	s.file = os.NewFile(uintptr(epfd), "listen-epoll")
	go s.run()
	return s, nil
}

// Bind returns the address the set listens on.
func (s *Set) Bind() netip.Addr { return s.bind }

// Open starts listening on port, admitting only sources inside allow (an
// IPv4 CIDR; see Filter). The socket is plain TCP (not MPTCP), has
// SO_REUSEADDR, and gets its filter before it listens, so there is no
// unfiltered moment. Open on a port that is already open replaces its filter
// atomically (connections waiting in its queue are re-checked against the
// new CIDR when accepted) and never closes it.
//
// A port that cannot be bound is an error naming the bind address and port;
// errors.Is(err, syscall.EADDRINUSE) tells a taken port — with the default
// range 49152–65535 overlapping Linux's ephemeral ports, another program's
// outbound connection can hold it (see net.ipv4.ip_local_reserved_ports).
// Open does not block on the network.
func (s *Set) Open(port uint16, allow netip.Prefix) error {
	if port == 0 {
		return errors.New("listen: port 0 is not a forward's port")
	}
	p, err := ipv4Prefix(allow)
	if err != nil {
		return fmt.Errorf("listen: open %s: %w", s.addr(port), err)
	}
	prog, err := Filter(p)
	if err != nil {
		return fmt.Errorf("listen: open %s: %w", s.addr(port), err)
	}
	fprog := sockFprog(prog)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if l := s.ls[port]; l != nil {
		if l.allow == p {
			return nil
		}
		// SO_ATTACH_FILTER swaps the program atomically (RCU).
		if err := unix.SetsockoptSockFprog(l.fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, fprog); err != nil && !s.filterRefused(err) {
			return fmt.Errorf("listen: replace filter on %s: %w", s.addr(port), os.NewSyscallError("setsockopt", err))
		}
		l.allow = p
		return nil
	}
	fd, err := s.listen(port, fprog)
	if err != nil {
		return fmt.Errorf("listen: open %s: %w", s.addr(port), err)
	}
	s.nextID++
	l := &listener{port: port, fd: fd, id: s.nextID, allow: p}
	if err := s.watchLocked(l); err != nil {
		unix.Close(fd)
		return fmt.Errorf("listen: open %s: %w", s.addr(port), err)
	}
	s.ls[port] = l
	return nil
}

// watchLocked puts l's socket into the epoll set, or has the Poller watch
// it. s.mu must be held.
func (s *Set) watchLocked(l *listener) error {
	if s.poller == nil {
		if err := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_ADD, l.fd, l.event()); err != nil {
			return os.NewSyscallError("epoll_ctl", err)
		}
		return nil
	}
	port, id := l.port, l.id
	cancel, err := s.poller.Watch(l.fd, func() bool { return s.acceptFrom(port, id) })
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	l.unwatch = cancel
	return nil
}

// listen returns a non-blocking listening socket on port with prog attached.
func (s *Set) listen(port uint16, prog *unix.SockFprog) (int, error) {
	fd, err := unix.Socket(s.family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	var sa unix.Sockaddr
	if s.family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			unix.Close(fd)
			return -1, os.NewSyscallError("setsockopt IPV6_V6ONLY", err)
		}
		sa = &unix.SockaddrInet6{Port: int(port), Addr: s.bind.As16()}
	} else {
		sa = &unix.SockaddrInet4{Port: int(port), Addr: s.bind.As4()}
	}
	// Accepted sockets inherit these from the listener, which saves five
	// system calls per connection.
	for _, o := range []struct {
		level, opt, value int
		name              string
	}{
		{unix.SOL_SOCKET, unix.SO_REUSEADDR, 1, "SO_REUSEADDR"},
		{unix.IPPROTO_TCP, unix.TCP_NODELAY, 1, "TCP_NODELAY"},
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1, "SO_KEEPALIVE"},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, keepIdle, "TCP_KEEPIDLE"},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, keepInterval, "TCP_KEEPINTVL"},
		{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, keepCount, "TCP_KEEPCNT"},
	} {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, o.value); err != nil {
			unix.Close(fd)
			return -1, os.NewSyscallError("setsockopt "+o.name, err)
		}
	}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, prog); err != nil && !s.filterRefused(err) {
		unix.Close(fd)
		return -1, os.NewSyscallError("setsockopt SO_ATTACH_FILTER", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("bind", err)
	}
	if err := unix.Listen(fd, Backlog); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("listen", err)
	}
	return fd, nil
}

// filterRefused reports whether err is the kernel refusing socket filters to
// a process without CAP_NET_ADMIN (kernel.unprivileged_bpf_disabled also
// covers classic filters on recent kernels). The listener then opens
// without one: sources outside its range complete the handshake and are
// closed at once by the check after accept, so they are still refused, but
// the port no longer looks filtered. Said once per Set.
func (s *Set) filterRefused(err error) bool {
	if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EACCES) {
		return false
	}
	s.noFilterOnce.Do(func() {
		s.log.Warn("the kernel refuses socket filters to this process (it lacks CAP_NET_ADMIN): listeners open without stealth; " +
			"sources outside a forward's allowed range are still refused, after the handshake instead of before it")
	})
	return true
}

// Close stops listening on port; connections waiting in its accept queue are
// reset. Connections already handed to the Handler are not affected. A port
// that is not open gives an error wrapping ErrNotOpen.
func (s *Set) Close(port uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	l := s.ls[port]
	if l == nil {
		return fmt.Errorf("listen: close %s: %w", s.addr(port), ErrNotOpen)
	}
	delete(s.ls, port)
	return s.closeLocked(l)
}

func (s *Set) closeLocked(l *listener) error {
	if l.timer != nil {
		l.timer.Stop()
	}
	if l.unwatch != nil {
		l.unwatch()
		l.unwatch = nil
	}
	// Closing the fd removes it from the epoll set too.
	if err := unix.Close(l.fd); err != nil {
		return fmt.Errorf("listen: close %s: %w", s.addr(l.port), os.NewSyscallError("close", err))
	}
	return nil
}

// Ports returns the open ports in ascending order.
func (s *Set) Ports() []uint16 {
	s.mu.Lock()
	ports := make([]uint16, 0, len(s.ls))
	for p := range s.ls {
		ports = append(ports, p)
	}
	s.mu.Unlock()
	slices.Sort(ports)
	return ports
}

// Allowed returns the CIDR port admits, and whether port is open.
func (s *Set) Allowed(port uint16) (netip.Prefix, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.ls[port]; l != nil {
		return l.allow, true
	}
	return netip.Prefix{}, false
}

// Shutdown closes every listener and stops the event loop; it waits for the
// Set's own loop to exit (a Poller stops calling it). Connections already
// handed over are not affected. Shutdown is safe to call more than once,
// but not from the Handler.
func (s *Set) Shutdown() error {
	s.shutdownOnce.Do(func() { s.shutdownErr = s.shutdown() })
	return s.shutdownErr
}

func (s *Set) shutdown() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	if s.poller == nil {
		s.wake()
	}
	<-s.done
	s.pollMu.Lock()
	s.pollClosed = true // a late call of poll does nothing now
	s.pollMu.Unlock()

	s.mu.Lock()
	var errs []error
	for _, l := range s.ls {
		errs = append(errs, s.closeLocked(l))
	}
	clear(s.ls)
	s.mu.Unlock()
	if s.poller == nil {
		errs = append(errs, s.file.Close(), unix.Close(s.wakefd))
	}
	return errors.Join(errs...)
}

func (s *Set) wake() {
	one := [8]byte{1}
	if _, err := unix.Write(s.wakefd, one[:]); err != nil && err != unix.EAGAIN {
		s.log.Error("listen: wake event loop", "err", err)
	}
}

// Keep-alive of accepted connections: a dead client is noticed after about
// a minute (30 s idle, then 3 probes 10 s apart).
const (
	keepIdle     = 30
	keepInterval = 10
	keepCount    = 3
)

// run is the Set's own event loop: it waits on Go's poller for the epoll
// set to become readable, then accepts from every ready listener.
func (s *Set) run() {
	defer close(s.done)
	rc, err := s.file.SyscallConn()
	if err != nil {
		s.log.Error("listen: event loop cannot start", "err", err)
		return
	}
	err = rc.Read(func(uintptr) bool {
		for {
			more := s.poll()
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return true
			}
			if !more {
				return false // park until the epoll set is readable
			}
		}
	})
	if err != nil {
		s.log.Error("listen: event loop stopped", "err", err)
	}
}

// poll accepts from every ready listener without blocking. It reports more
// when it stopped before draining them all (a full batch): then it must be
// called again soon. A listener drained to EAGAIN is level-triggered and
// re-reported by epoll as soon as a connection arrives.
func (s *Set) poll() (more bool) {
	s.pollMu.Lock()
	defer s.pollMu.Unlock()
	if s.pollClosed {
		return false
	}
	n, err := epollPoll(s.epfd, s.events)
	if err != nil {
		if err != unix.EINTR {
			s.log.Error("listen: epoll_wait", "err", err)
		}
		return err == unix.EINTR
	}
	more = n == len(s.events)
	for _, ev := range s.events[:n] {
		if ev.Fd == wakeTag {
			var buf [8]byte
			unix.Read(s.wakefd, buf[:])
			continue
		}
		if s.acceptFrom(uint16(ev.Fd), uint32(ev.Pad)) {
			more = true
		}
	}
	return more
}

// acceptFrom accepts up to acceptBatch connections from the listener tagged
// (port, id) and hands the admitted ones to the handler, on this goroutine.
// It reports whether it stopped at the batch limit (more may be waiting).
//
// Under a Poller (level-triggered) it accepts one connection per call, like
// nginx, and reports more if it got one: the Poller calls again at once
// when connections queue up, and on the next turn otherwise, so the accept
// that would only say EAGAIN — one system call in twenty per connection —
// is made only under load.
func (s *Set) acceptFrom(port uint16, id uint32) (full bool) {
	var batch [acceptBatch]Conn
	n, limit := 0, len(batch)
	if s.poller != nil {
		limit = 1
	}
	s.mu.Lock()
	l := s.ls[port]
	if l == nil || l.id != id || l.paused || s.closed {
		s.mu.Unlock()
		return false
	}
	full = true
	for n < limit {
		fd, from, err := s.accept(l.fd)
		if err != nil {
			if err == unix.EAGAIN {
				full = false
				break
			}
			if transientAcceptError(err) {
				continue
			}
			s.pauseLocked(l, err)
			full = false
			break
		}
		if !admits(l.allow, from.Addr()) {
			// The filter was replaced after this SYN passed the old one.
			closeFD(fd)
			s.log.Debug("listen: refused connection outside allowed CIDR", "port", port, "from", from, "allow", l.allow)
			continue
		}
		batch[n] = Conn{port: port, remote: netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), fd: fd}
		n++
	}
	if n > 0 {
		l.backoff = 0
	}
	if s.poller != nil {
		// Level-triggered: the Poller calls again while the queue holds
		// more; more tells it that another call may find one at once.
		full = n == limit
	}
	s.mu.Unlock()

	for i := range batch[:n] {
		c := new(Conn)
		*c = batch[i]
		s.h(c)
	}
	return full
}

// fileConn turns a socket into a *net.TCPConn registered with Go's poller.
// net.FileConn duplicates the descriptor; the original is closed.
func fileConn(fd int) (*net.TCPConn, error) {
	f := os.NewFile(uintptr(fd), "")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("accepted %T, want *net.TCPConn", c)
	}
	return tc, nil
}

// transientAcceptError reports errors that concern only the connection
// being accepted (it died in the queue), after which accept is retried.
func transientAcceptError(err error) bool {
	switch err {
	case unix.EINTR, unix.ECONNABORTED, unix.EPROTO, unix.ENETDOWN, unix.ENOPROTOOPT,
		unix.EHOSTDOWN, unix.ENONET, unix.EHOSTUNREACH, unix.EOPNOTSUPP, unix.ENETUNREACH,
		unix.ETIMEDOUT, unix.ECONNRESET:
		return true
	}
	return false
}

// pauseLocked takes l out of the epoll set (or the Poller) for its backoff
// after an accept error (typically EMFILE/ENFILE): the connection stays
// queued, the loop does not spin on it, and the other listeners are served
// meanwhile.
func (s *Set) pauseLocked(l *listener, err error) {
	l.backoff = min(max(2*l.backoff, MinBackoff), MaxBackoff)
	if s.poller != nil {
		if l.unwatch != nil {
			l.unwatch()
			l.unwatch = nil
		}
	} else if e := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_MOD, l.fd, &unix.EpollEvent{Fd: int32(l.port), Pad: int32(l.id)}); e != nil {
		s.log.Error("listen: pause listener", "port", l.port, "err", e)
	}
	l.paused = true
	s.log.Warn("listen: accept failed; pausing listener", "port", l.port, "err", err, "backoff", l.backoff)
	port, id := l.port, l.id
	l.timer = time.AfterFunc(l.backoff, func() { s.resume(port, id) })
}

// resume puts a paused listener back into the epoll set (or the Poller).
func (s *Set) resume(port uint16, id uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.ls[port]
	if l == nil || l.id != id || !l.paused || s.closed {
		return
	}
	l.paused = false
	l.timer = nil
	if s.poller != nil {
		// Level-triggered: a connection waiting in the queue is reported
		// at once.
		if err := s.watchLocked(l); err != nil {
			s.log.Error("listen: resume listener", "port", port, "err", err)
		}
		return
	}
	if err := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_MOD, l.fd, l.event()); err != nil {
		s.log.Error("listen: resume listener", "port", port, "err", err)
	}
	// EPOLL_CTL_MOD does not wake a loop that parked while epoll still
	// had the listener on its ready list; a connection may be waiting.
	s.wake()
}

// event is l's epoll registration: level-triggered, so that connections
// left in the queue after a batch are reported again.
func (l *listener) event() *unix.EpollEvent {
	return &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(l.port), Pad: int32(l.id)}
}

func (s *Set) addr(port uint16) string {
	return netip.AddrPortFrom(s.bind, port).String()
}
