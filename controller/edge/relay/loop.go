package relay

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// A loop is one event-loop goroutine with its own epoll set. Every socket
// is registered edge-triggered for input and output once, for its whole
// life; the loop keeps the readiness it has learnt in each direction's
// readable/writable flags and clears them when splice says EAGAIN.
//
// The epoll fd itself is non-blocking and registered with Go's netpoller (as
// an *os.File), so an idle loop parks like any goroutine waiting on a
// socket instead of holding a thread in epoll_wait.
type loop struct {
	e        *Engine
	log      *slog.Logger
	pipeSize int
	maxPipes int
	dialWait time.Duration
	base     time.Time // clock origin (monotonic)

	epfd   int
	wakefd int      // eventfd: post writes it to wake the loop
	file   *os.File // epfd for Go's netpoller
	done   chan struct{}

	// mu guards the slot table (epoll events carry slot numbers), the posts
	// from other goroutines, and closed.
	mu      sync.Mutex
	slots   []*conn
	gens    []uint32 // generation of each slot, bumped on reuse
	free    []int32
	posts   []post
	spare   []post // the other half of the posts double buffer
	woken   bool   // a wake-up is pending in wakefd
	closed  bool
	watches []*watch // by epoll tag -2-i; nil once cancelled
	// ticker posts postTick every tickEvery while relays have deadlines.
	ticker    *time.Timer
	tickArmed bool

	active  atomic.Int64 // relays on this loop
	inWatch atomic.Bool  // the loop is running a watch's ready callback

	// Owned by the loop goroutine.
	now    int64 // clock at the start of this turn
	runq   []*conn
	runq2  []*conn
	pipes  []pipe // idle pipes, empty
	events []unix.EpollEvent
	got    []*conn  // conns of this turn's events
	wq     []*watch // watches to call this turn
	wq2    []*watch
}

// watch is an external epoll fd (a listen.Set's) whose readiness the loop
// reports by calling ready on its own goroutine.
type watch struct {
	fd     int
	ready  func() (more bool)
	queued bool // in wq (loop-owned)
	gone   atomic.Bool
}

// conn is one relayed connection. After add, its fields belong to the loop
// goroutine.
type conn struct {
	slot  int32
	gen   uint32
	fd    [2]int // client, target
	dir   [2]dir // up: client→target, down: target→client
	lim   Limits
	start time.Time
	last  int64 // loop clock when a byte last moved
	// deadline is when the dial times out, while connecting (loop clock).
	deadline int64
	ctx      context.Context
	unreg    func() bool // stops the ctx.Done watcher
	done     func(Stats)
	first    int8 // side whose input ended first, -1 while none has
	// connecting: the target's non-blocking connect has not completed;
	// nothing moves until it has.
	connecting    bool
	queued, ended bool
}

// Sides and directions: dir[i] reads from side i and writes to side 1-i.
const (
	client = 0
	target = 1
)

// dir is one direction: src → pipe → dst.
type dir struct {
	src, dst int
	p        pipe  // borrowed while bytes are in flight; -1 when none
	buffered int   // bytes in p
	n        int64 // bytes delivered to dst
	readable bool  // src may have input (or EOF/error) we have not read
	writable bool  // dst may take output
	eof      bool  // src ended and dst's write half is shut down
	paused   bool  // waiting for timer: bandwidth tokens or a pipe
	tokens   float64
	refilled int64 // loop clock of the last refill
	timer    *time.Timer
}

type pipe struct{ r, w int }

var noPipe = pipe{-1, -1}

// post is a request from another goroutine (timer, context, Close).
type post struct {
	c    *conn
	kind uint8
	side uint8
}

const (
	postCut = iota
	postTick
	postResume
)

// wakeTag marks wakefd's epoll events (slots are ≥ 0).
const wakeTag = -1

// moveBudget is how many pipe-fuls one direction moves per turn before the
// loop looks at other connections.
const moveBudget = 8

func newLoop(e *Engine) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("relay: epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("relay: eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd,
		&unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: wakeTag}); err != nil {
		unix.Close(wakefd)
		unix.Close(epfd)
		return nil, fmt.Errorf("relay: epoll_ctl: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(wakefd)
		unix.Close(epfd)
		return nil, fmt.Errorf("relay: set epoll fd non-blocking: %w", err)
	}
	l := &loop{
		e:        e,
		log:      e.cfg.Logger,
		pipeSize: e.cfg.PipeSize,
		maxPipes: e.cfg.IdlePipes,
		dialWait: e.cfg.DialTimeout,
		base:     time.Now(),
		epfd:     epfd,
		wakefd:   wakefd,
		file:     os.NewFile(uintptr(epfd), "relay-epoll"),
		done:     make(chan struct{}),
		events:   make([]unix.EpollEvent, 256),
	}
	go l.run()
	return l, nil
}

func (l *loop) clock() int64 { return int64(time.Since(l.base)) }

// add registers a new relay. It runs on the caller's goroutine; everything
// is set up under mu, so timers and the context watcher that fire at once
// wait for it, and the loop sees the conn only after it is complete.
func (l *loop) add(ctx context.Context, cfd, tfd int, connecting bool, lim Limits, start time.Time, done func(Stats)) error {
	c := &conn{fd: [2]int{cfd, tfd}, lim: lim, start: start, done: done, first: -1, connecting: connecting}
	for i := range c.dir {
		c.dir[i] = dir{src: c.fd[i], dst: c.fd[1-i], p: noPipe, writable: true}
	}
	if connecting {
		c.dir[client].writable = false // EPOLLOUT on the target: connected
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	c.last = l.clock()
	if lim.BytesPerSecond > 0 {
		for i := range c.dir {
			c.dir[i].tokens = burst(lim.BytesPerSecond)
			c.dir[i].refilled = c.last
		}
	}
	if n := len(l.free); n > 0 {
		c.slot = l.free[n-1]
		l.free = l.free[:n-1]
	} else {
		c.slot = int32(len(l.slots))
		l.slots = append(l.slots, nil)
		l.gens = append(l.gens, 0)
	}
	l.gens[c.slot]++
	c.gen = l.gens[c.slot] & 0x7fffffff
	for side, fd := range c.fd {
		ev := unix.EpollEvent{
			Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET,
			Fd:     c.slot,
			Pad:    int32(c.gen<<1) | int32(side),
		}
		if err := epollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			if side == target {
				epollCtl(l.epfd, unix.EPOLL_CTL_DEL, cfd, nil)
			}
			l.free = append(l.free, c.slot)
			return fmt.Errorf("relay: epoll_ctl: %w", err)
		}
	}
	l.slots[c.slot] = c
	if connecting {
		c.deadline = c.last + int64(l.dialWait)
	}
	if connecting || lim.IdleTimeout > 0 {
		l.armTickLocked()
	}
	if ctx.Done() != nil {
		c.ctx = ctx
		c.unreg = context.AfterFunc(ctx, func() { l.post(c, postCut, 0) })
	}
	l.e.active.Add(1)
	l.active.Add(1)
	return nil
}

// post hands a request to the loop and wakes it.
// Posts after close are dropped: the loop has ended every relay.
func (l *loop) post(c *conn, kind, side uint8) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.posts = append(l.posts, post{c, kind, side})
	if !l.woken {
		l.woken = true
		l.wake() // under mu: close cannot close wakefd meanwhile
	}
}

func (l *loop) wake() {
	if err := eventfdAdd(l.wakefd); err != nil {
		l.log.Error("relay: wake event loop", "err", err)
	}
}

// close ends every relay and stops the loop.
func (l *loop) close() error {
	l.mu.Lock()
	l.closed = true
	if l.ticker != nil {
		l.ticker.Stop()
	}
	l.wake()
	l.mu.Unlock()
	<-l.done
	for _, p := range l.pipes {
		unix.Close(p.r)
		unix.Close(p.w)
	}
	l.pipes = nil
	return errJoin(l.file.Close(), unix.Close(l.wakefd))
}

func errJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// run is the event loop.
func (l *loop) run() {
	defer close(l.done)
	rc, err := l.file.SyscallConn()
	if err != nil {
		l.log.Error("relay: event loop cannot start", "err", err)
		return
	}
	err = rc.Read(func(uintptr) bool { return l.turns() })
	if err != nil {
		l.log.Error("relay: event loop stopped", "err", err)
	}
}

// turns runs turns of the loop until there is nothing to do (false: park
// until the epoll set is readable) or the loop is closed (true).
func (l *loop) turns() bool {
	for {
		n, err := epollPoll(l.epfd, l.events)
		if err == unix.EINTR {
			continue
		}
		if err != nil { // EBADF, EFAULT, EINVAL: a bug, not a condition
			l.log.Error("relay: epoll_wait failed; event loop stopped", "err", err)
			return true
		}
		l.now = l.clock()

		sawWake := false
		l.got = l.got[:0]
		l.mu.Lock()
		for _, ev := range l.events[:n] {
			if ev.Fd == wakeTag {
				sawWake = true
				continue
			}
			if ev.Fd < wakeTag {
				if w := l.watches[-2-ev.Fd]; w != nil && !w.queued {
					w.queued = true
					l.wq = append(l.wq, w)
				}
				continue
			}
			if int(ev.Fd) >= len(l.slots) {
				continue
			}
			c := l.slots[ev.Fd]
			if c == nil || c.gen != uint32(ev.Pad)>>1 {
				continue // a stale event of an ended relay
			}
			c.ready(int(ev.Pad&1), ev.Events)
			l.got = append(l.got, c)
		}
		posts := l.posts
		l.posts, l.spare = l.spare[:0], posts
		l.woken = false
		closed := l.closed
		l.mu.Unlock()

		if sawWake {
			eventfdClear(l.wakefd)
		}
		if closed {
			l.endAll()
			return true
		}
		for _, c := range l.got {
			l.enqueue(c)
		}
		for i := range posts {
			l.handle(posts[i])
			posts[i] = post{}
		}
		// Watches run before the relays: connections they pass to Connect
		// land on this loop and are served from the next turn on.
		watched := len(l.wq) > 0
		l.runWatches()
		q := l.runq
		l.runq = l.runq2[:0]
		for i, c := range q {
			q[i] = nil
			c.queued = false
			if !c.ended {
				l.pump(c)
			}
		}
		l.runq2 = q[:0]
		// Park unless work is left. A short batch holds every event there
		// was, and all registrations are edge-triggered (sockets and
		// wakefd): anything new re-arms the epoll fd in Go's poller.
		if n < len(l.events) && len(l.runq) == 0 && len(l.wq) == 0 && !watched {
			return false
		}
	}
}

// runWatches calls the ready watches; one that reports more work stays
// queued for the next turn.
func (l *loop) runWatches() {
	q := l.wq
	l.wq = l.wq2[:0]
	for i, w := range q {
		q[i] = nil
		w.queued = false
		if w.gone.Load() {
			continue
		}
		l.inWatch.Store(true)
		more := w.ready()
		l.inWatch.Store(false)
		if more && !w.queued {
			w.queued = true
			l.wq = append(l.wq, w)
		}
	}
	l.wq2 = q[:0]
}

// tickEvery is how often a loop checks dial and idle deadlines while it
// has any. One coarse tick per loop instead of a Go timer per connection:
// adding a timer can wake the runtime's poller thread, which costs more
// per connection than the whole check.
const tickEvery = 100 * time.Millisecond

// armTickLocked makes sure a tick is coming. l.mu must be held.
func (l *loop) armTickLocked() {
	if l.tickArmed {
		return
	}
	l.tickArmed = true
	if l.ticker == nil {
		l.ticker = time.AfterFunc(tickEvery, func() { l.post(nil, postTick, 0) })
	} else {
		l.ticker.Reset(tickEvery)
	}
}

// tick ends relays whose dial or idle deadline has passed, and re-arms
// itself while any relay has a deadline.
func (l *loop) tick() {
	var expired []*conn
	l.mu.Lock()
	l.tickArmed = false
	pending := false
	for _, c := range l.slots {
		switch {
		case c == nil || c.ended:
		case c.connecting:
			if l.now >= c.deadline {
				expired = append(expired, c)
			} else {
				pending = true
			}
		case c.lim.IdleTimeout > 0:
			if time.Duration(l.now-c.last) >= c.lim.IdleTimeout {
				expired = append(expired, c)
			} else {
				pending = true
			}
		}
	}
	if pending {
		l.armTickLocked()
	}
	l.mu.Unlock()
	for _, c := range expired {
		if c.connecting {
			l.end(c, ReasonDialFailed, os.NewSyscallError("connect", unix.ETIMEDOUT))
		} else {
			l.end(c, ReasonIdle, nil)
		}
	}
}

// ready records what an epoll event says about side's socket.
func (c *conn) ready(side int, ev uint32) {
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.dir[side].readable = true
	}
	if ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.dir[1-side].writable = true
	}
}

func (l *loop) enqueue(c *conn) {
	if !c.queued && !c.ended {
		c.queued = true
		l.runq = append(l.runq, c)
	}
}

func (l *loop) handle(p post) {
	c := p.c
	if p.kind == postTick {
		l.tick()
		return
	}
	if c.ended {
		return
	}
	switch p.kind {
	case postCut:
		l.end(c, ReasonCut, context.Cause(c.ctx))
	case postResume:
		c.dir[p.side].paused = false
		l.enqueue(c)
	}
}

// pump moves what it can in both directions, and queues c for another
// turn if a direction stopped only because of its budget.
func (l *loop) pump(c *conn) {
	if c.connecting && !l.connected(c) {
		return
	}
	more := false
	for i := range c.dir {
		if l.move(c, i) {
			more = true
		}
		if c.ended {
			return
		}
	}
	if more {
		l.enqueue(c)
	}
}

const spliceFlags = unix.SPLICE_F_MOVE | unix.SPLICE_F_NONBLOCK

// connected checks a connecting target once epoll has reported it
// writable (or failed): it ends the relay if the connect failed, and
// otherwise starts the idle clock.
func (l *loop) connected(c *conn) bool {
	if !c.dir[client].writable {
		return false
	}
	if err := soError(c.fd[target]); err != nil {
		l.end(c, ReasonDialFailed, os.NewSyscallError("connect", err))
		return false
	}
	c.connecting = false
	c.last = l.now
	return true
}

// move runs direction i until it would block, ends, or has used its budget
// (then it returns true). The pipe is filled only when empty, so EAGAIN
// from the socket→pipe splice always means "no input".
func (l *loop) move(c *conn, i int) (more bool) {
	d := &c.dir[i]
	for budget := moveBudget; ; {
		if d.buffered > 0 {
			if !d.writable {
				return false // keep the pipe until EPOLLOUT
			}
			n, err := splice(d.p.r, d.dst, d.buffered)
			if err == unix.EAGAIN {
				d.writable = false
				return false
			}
			if err != nil {
				l.fail(c, 1-i, err)
				return false
			}
			d.buffered -= n
			d.n += int64(n)
			c.last = l.now
			continue
		}
		if d.eof || !d.readable || d.paused {
			l.putPipe(d)
			return false
		}
		if budget == 0 {
			l.putPipe(d)
			return true
		}
		budget--
		want := l.pipeSize
		if c.lim.BytesPerSecond > 0 {
			if !l.take(c, i, &want) {
				l.putPipe(d)
				return false
			}
		}
		if d.p.r < 0 && !l.getPipe(c, i) {
			return false
		}
		n, err := splice(d.src, d.p.w, want)
		if err == unix.EAGAIN {
			d.readable = false
			l.putPipe(d)
			return false
		}
		if err != nil {
			l.fail(c, i, err)
			return false
		}
		if n == 0 {
			l.eof(c, i)
			return false
		}
		d.buffered = n
		if c.lim.BytesPerSecond > 0 {
			d.tokens -= float64(n)
		}
	}
}

// burst is the token bucket's capacity: a tenth of a second's worth, at
// least 4 KiB.
func burst(rate int64) float64 { return max(float64(rate)/10, 4096) }

// take refills direction i's bucket and limits want to its tokens; if it
// is empty it pauses the direction until enough tokens for a useful
// splice have accumulated, and returns false.
func (l *loop) take(c *conn, i int, want *int) bool {
	d := &c.dir[i]
	rate := float64(c.lim.BytesPerSecond)
	b := burst(c.lim.BytesPerSecond)
	d.tokens = min(b, d.tokens+rate*float64(l.now-d.refilled)/1e9)
	d.refilled = l.now
	if d.tokens >= 1 {
		*want = min(*want, int(d.tokens))
		return true
	}
	chunk := min(b, float64(l.pipeSize))
	wait := time.Duration((chunk - d.tokens) / rate * 1e9)
	l.pause(c, i, max(wait, time.Millisecond))
	return false
}

// pause stops direction i until a timer resumes it.
func (l *loop) pause(c *conn, i int, wait time.Duration) {
	d := &c.dir[i]
	d.paused = true
	if d.timer == nil {
		side := uint8(i)
		d.timer = time.AfterFunc(wait, func() { l.post(c, postResume, side) })
	} else {
		d.timer.Reset(wait)
	}
}

// getPipe gives direction i a pipe from the pool or a new one. Out of
// descriptors or pipe memory, it pauses the direction briefly instead: the
// relay degrades, the engine does not.
func (l *loop) getPipe(c *conn, i int) bool {
	d := &c.dir[i]
	if n := len(l.pipes); n > 0 {
		d.p = l.pipes[n-1]
		l.pipes = l.pipes[:n-1]
		return true
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		l.log.Warn("relay: no splice pipe; retrying", "err", err)
		l.pause(c, i, 50*time.Millisecond)
		return false
	}
	if l.pipeSize != 64<<10 {
		// Best effort: an unprivileged user over pipe-user-pages-soft
		// keeps the default size, which only costs more syscalls.
		unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, l.pipeSize)
	}
	d.p = pipe{p[0], p[1]}
	return true
}

// putPipe returns direction d's pipe to the pool, or closes it if it still
// holds bytes or the pool is full.
func (l *loop) putPipe(d *dir) {
	if d.p.r < 0 {
		return
	}
	if d.buffered == 0 && len(l.pipes) < l.maxPipes {
		l.pipes = append(l.pipes, d.p)
	} else {
		closeFD(d.p.r)
		closeFD(d.p.w)
		d.buffered = 0
	}
	d.p = noPipe
}

// eof handles the end of direction i's input: pass the half-close on, and
// end the relay if the other direction has ended too.
func (l *loop) eof(c *conn, i int) {
	d := &c.dir[i]
	d.eof = true
	d.readable = false
	l.putPipe(d)
	if c.first < 0 {
		c.first = int8(i)
	}
	if c.dir[1-i].eof {
		// Both inputs have ended: closing sends the last FIN.
		l.end(c, closedBy(int(c.first)), nil)
		return
	}
	if err := shutdownWrite(d.dst); err != nil && err != unix.ENOTCONN {
		l.fail(c, 1-i, err)
	}
}

func closedBy(side int) string {
	if side == client {
		return ReasonClientClosed
	}
	return ReasonTargetClosed
}

// fail ends the relay after a splice or shutdown error on side's socket.
func (l *loop) fail(c *conn, side int, err error) {
	reason := ReasonError
	switch err {
	case unix.ECONNRESET, unix.EPIPE, unix.ETIMEDOUT, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.ENOTCONN:
		reason = closedBy(side)
		if c.first >= 0 {
			reason = closedBy(int(c.first))
		}
	}
	l.end(c, reason, os.NewSyscallError("splice", err))
}

// end closes both sockets, releases everything c holds and reports.
func (l *loop) end(c *conn, reason string, err error) {
	if c.ended {
		return
	}
	c.ended = true
	for i := range c.dir {
		d := &c.dir[i]
		l.putPipe(d)
		if d.timer != nil {
			d.timer.Stop()
		}
	}
	if c.unreg != nil {
		c.unreg()
	}
	abort := reason == ReasonCut || reason == ReasonIdle || reason == ReasonShutdown ||
		reason == ReasonError || reason == ReasonDialFailed
	for _, fd := range c.fd {
		if abort {
			// Reset rather than FIN: nothing more is delivered.
			lingerZero(fd)
		}
		// Closing the only descriptor also removes it from the epoll set.
		closeFD(fd)
	}
	l.mu.Lock()
	l.slots[c.slot] = nil
	l.free = append(l.free, c.slot)
	l.mu.Unlock()
	l.e.active.Add(-1)
	l.active.Add(-1)
	st := Stats{
		Up:     c.dir[client].n,
		Down:   c.dir[target].n,
		Start:  c.start,
		End:    time.Now(),
		Reason: reason,
		Err:    err,
	}
	if reason == ReasonShutdown && err == nil {
		st.Err = ErrClosed
	}
	if c.done != nil {
		c.done(st)
	}
}

// endAll ends every relay of a closing loop.
func (l *loop) endAll() {
	l.mu.Lock()
	live := make([]*conn, 0, len(l.slots))
	for _, c := range l.slots {
		if c != nil {
			live = append(live, c)
		}
	}
	l.mu.Unlock()
	for _, c := range live {
		l.end(c, ReasonShutdown, nil)
	}
}
