package relay

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// A loop is one event-loop goroutine with its own epoll set. Every socket
// is registered edge-triggered for input and output once, for its whole
// life; the loop keeps the readiness it has learnt in each direction's
// readable/writable flags and clears them when a read says EAGAIN (or
// comes back short: the socket is empty).
//
// An idle loop blocks in epoll_wait itself, a system call during which the
// Go scheduler may hand its P to other goroutines. It is not parked on Go's
// netpoller: an epoll fd nested there wakes the netpoller's thread for
// every socket event, also while the loop is busy, which on a small machine
// costs more than the work itself (BENCH.md).
type loop struct {
	e        *Engine
	log      *slog.Logger
	pipeSize int
	maxPipes int
	dialWait time.Duration
	base     time.Time // clock origin (monotonic)

	epfd   int
	wakefd int // eventfd: post writes it to wake the loop
	done   chan struct{}

	// mu guards the slot table (epoll events carry slot numbers), the
	// watches, the posts from other goroutines, the tick and closed.
	mu          sync.Mutex
	slots       []*conn
	gens        []uint32 // generation of each slot, bumped on reuse
	free        []int32
	posts       []post
	spare       []post // the other half of the posts double buffer
	woken       bool   // a wake-up is pending in wakefd
	closed      bool
	watches     []*watch // by epoll tag -2-i; nil when free
	freeWatches []int32
	fresh       []*conn      // relays added by Connect, not yet pumped
	nfresh      atomic.Int32 // len(fresh), read without mu
	// While relays have deadlines (a dial, an idle timeout, keep-alive
	// still to set) a tick is due at tickAt (loop clock). blocked: the loop
	// sleeps in epoll_wait with a timeout computed before the tick was
	// armed, so arming it must wake the loop.
	tickArmed bool
	tickAt    int64
	blocked   bool

	active  atomic.Int64 // relays on this loop
	inWatch atomic.Bool  // the loop is running a watch's ready callback

	// Owned by the loop goroutine.
	now       int64 // clock at the start of this turn
	lastYield int64 // clock when the loop last went through the scheduler
	runq      []*conn
	runq2     []*conn
	pipes     []pipe // idle pipes, empty
	events    []unix.EpollEvent
	got       []*conn  // conns of this turn's events
	late      []*conn  // … whose events tell of an ending peer
	turn      uint64   // turns so far
	wq        []*watch // watches to call this turn
	wq2       []*watch
	keep      []*conn // conns whose target gets keep-alive this tick
	// earlyScore tells whether early pays on this loop; earlySkips counts
	// the relays it skipped.
	earlyScore, earlySkips int
	buf                    []byte // copy buffer for small reads (copyBuf bytes)
}

// watch is a descriptor (a listening socket) whose readiness the loop
// reports by calling ready on its own goroutine.
type watch struct {
	fd     int
	ready  func() (more bool)
	queued bool   // in wq (loop-owned)
	turn   uint64 // the loop's last turn that called ready (loop-owned)
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
	born  int64 // loop clock when the relay was added
	last  int64 // loop clock when a byte last moved
	// deadline is when the dial times out, while connecting (loop clock).
	deadline int64
	ctx      context.Context
	unreg    func() bool // stops the ctx.Done watcher
	done     func(Stats)
	first    int8 // side whose input ended first, -1 while none has
	// connecting: the target's non-blocking connect has not completed;
	// nothing moves until it has, but for the client's first bytes (early).
	// dialErr: while connecting, the target reported an error or hang-up
	// (else EPOLLOUT alone means connected).
	connecting, dialErr bool
	// keepAlive: the target socket's keep-alive options are set. Connect
	// sets them only once the relay has lived keepAliveAfter: most
	// connections are over before that, and it saves four system calls.
	keepAlive     bool
	queued, ended bool
}

// Sides and directions: dir[i] reads from side i and writes to side 1-i.
const (
	client = 0
	target = 1
)

// dir is one direction: src → dst, through the loop's copy buffer while
// reads are small, and src → pipe → dst with splice once they fill it.
type dir struct {
	src, dst int
	p        pipe  // borrowed while bytes are in flight; -1 when none
	buffered int   // bytes in p
	n        int64 // bytes delivered to dst
	readable bool  // src may have input (or EOF/error) we have not read
	writable bool  // dst may take output
	eof      bool  // src ended and dst's write half is shut down
	paused   bool  // waiting for timer: bandwidth tokens or a pipe
	// bulk: the last read filled the copy buffer, so this direction
	// carries a stream and moves it with splice (zero-copy).
	bulk bool
	// fin: src's peer has finished sending or failed (EPOLLRDHUP, HUP or
	// ERR): no new edge will come, so reads go on until they return 0 or
	// the error. urgent: src holds TCP urgent data (EPOLLPRI), at which
	// reads and splices stop short: read until EAGAIN (read skips the
	// urgent byte; splice would stall on it).
	fin, urgent bool
	tokens      float64
	refilled    int64 // loop clock of the last refill
	timer       *time.Timer
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
	postResume
)

// wakeTag marks wakefd's epoll events (slots are ≥ 0).
const wakeTag = -1

// moveBudget is how many reads (pipe-fuls or buffers) one direction moves
// per turn before the loop looks at other connections.
const moveBudget = 8

// copyBuf is the size of the loop's copy buffer. A read that fills it
// switches the direction to splice; smaller reads are copied, which takes
// two system calls (read, write) where splice takes three (socket→pipe,
// pipe→socket, and the EAGAIN that proves the socket empty). It is no
// larger than the least a pipe can hold (two pages, what the kernel gives
// a user past pipe-user-pages-soft), so that what the destination does not
// take always fits into an empty pipe (hold).
const copyBuf = 8 << 10

// keepAliveAfter is how long a relay lives before its target socket gets
// its keep-alive options (see conn.keepAlive).
const keepAliveAfter = time.Second

// yieldEvery is how often a busy loop goes through the Go scheduler. A
// goroutine that never does looks to the runtime like one that hogs its P,
// and the runtime would take the P away from the loop's system calls every
// 10 ms.
const yieldEvery = 5 * time.Millisecond

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
	l := &loop{
		e:        e,
		log:      e.cfg.Logger,
		pipeSize: e.cfg.PipeSize,
		maxPipes: e.cfg.IdlePipes,
		dialWait: e.cfg.DialTimeout,
		base:     time.Now(),
		epfd:     epfd,
		wakefd:   wakefd,
		done:     make(chan struct{}),
		events:   make([]unix.EpollEvent, 256),
		buf:      make([]byte, copyBuf),
	}
	go l.run()
	return l, nil
}

func (l *loop) clock() int64 { return int64(time.Since(l.base)) }

// add registers a new relay. It runs on the caller's goroutine; everything
// is set up under mu, so timers and the context watcher that fire at once
// wait for it, and the loop sees the conn only after it is complete.
func (l *loop) add(ctx context.Context, cfd, tfd int, connecting bool, lim Limits, start time.Time, done func(Stats)) error {
	c := &conn{fd: [2]int{cfd, tfd}, lim: lim, start: start, done: done, first: -1,
		connecting: connecting, keepAlive: !connecting}
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
	c.born = c.last
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
			Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLPRI | unix.EPOLLET,
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
		l.fresh = append(l.fresh, c)
		l.nfresh.Add(1)
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
	l.wakeLocked()
}

// wakeLocked wakes the loop unless a wake-up is pending. Under mu, close
// cannot close wakefd meanwhile.
func (l *loop) wakeLocked() {
	if l.woken {
		return
	}
	l.woken = true
	if err := eventfdAdd(l.wakefd); err != nil {
		l.log.Error("relay: wake event loop", "err", err)
	}
}

// close ends every relay and stops the loop.
func (l *loop) close() error {
	l.mu.Lock()
	l.closed = true
	l.wakeLocked()
	l.mu.Unlock()
	<-l.done
	for _, p := range l.pipes {
		unix.Close(p.r)
		unix.Close(p.w)
	}
	l.pipes = nil
	return errJoin(unix.Close(l.epfd), unix.Close(l.wakefd))
}

func errJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// run is the event loop: turns of epoll_wait, then the posts, the tick,
// the watches and the relays with something to do.
func (l *loop) run() {
	defer close(l.done)
	idle := false
	for {
		var n int
		var err error
		if idle {
			n, err = epollWait(l.epfd, l.events, l.sleep())
		} else {
			n, err = epollPoll(l.epfd, l.events)
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil { // EBADF, EFAULT, EINVAL: a bug, not a condition
			l.log.Error("relay: epoll_wait failed; event loop stopped", "err", err)
			return
		}
		l.now = l.clock()

		sawWake := false
		l.got, l.late = l.got[:0], l.late[:0]
		l.turn++
		l.mu.Lock()
		l.blocked = false
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
			if c.ready(int(ev.Pad&1), ev.Events) {
				l.late = append(l.late, c)
			} else {
				l.got = append(l.got, c)
			}
		}
		if sawWake {
			// Cleared under mu, before the posts are taken: a post that
			// comes later writes wakefd anew, and that edge is not lost.
			eventfdClear(l.wakefd)
			l.woken = false
		}
		posts := l.posts
		l.posts, l.spare = l.spare[:0], posts
		closed := l.closed
		tick := l.tickArmed && l.now >= l.tickAt
		l.mu.Unlock()

		if closed {
			l.endAll()
			return
		}
		for i := range posts {
			l.handle(posts[i])
			posts[i] = post{}
		}
		if tick {
			l.tick()
		}
		// Order of work: bytes first, for they wake the programs waiting
		// for them; then new connections (accept, dial, their first bytes:
		// early); last the relays whose peer is finishing — shutdown, the
		// last reads and close are off everyone's critical path.
		for _, c := range l.got {
			l.enqueue(c)
		}
		l.pumpAll()
		l.runWatches()
		if l.nfresh.Load() > 0 {
			l.mu.Lock()
			fresh := l.fresh
			l.fresh = nil
			l.nfresh.Store(0)
			l.mu.Unlock()
			for _, c := range fresh {
				l.early(c)
			}
		}
		for _, c := range l.late {
			l.enqueue(c)
		}
		l.pumpAll()
		// Block in the next epoll_wait unless work is left. A short batch
		// holds every event there was; sockets and wakefd are
		// edge-triggered, watches level-triggered: anything new wakes it.
		idle = n < len(l.events) && len(l.runq) == 0 && len(l.wq) == 0
		if idle && time.Duration(l.now-l.lastYield) >= yieldEvery {
			runtime.Gosched()
			l.lastYield = l.clock()
		}
	}
}

// pumpAll pumps the relays queued so far; those that stop on their budget
// are queued again, for a later pass.
func (l *loop) pumpAll() {
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
}

// sleep returns the timeout of a blocking epoll_wait: until the tick, or
// none (-1) while no relay has a deadline.
func (l *loop) sleep() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.blocked = true
	if !l.tickArmed {
		return -1
	}
	ms := (l.tickAt - l.clock() + int64(time.Millisecond) - 1) / int64(time.Millisecond)
	return int(max(ms, 0))
}

// watchBurst is how many times in a row a watch is called in one turn when
// it was ready in the turn before too (a backlog) and keeps reporting more.
const watchBurst = 16

// runWatches calls the ready watches: once, or — if a watch was ready in
// the previous turn too — again while it reports more, up to watchBurst
// calls. So a listener accepts one connection per turn when connections
// come one at a time (never making the accept that only says EAGAIN), and
// a batch when they queue up.
func (l *loop) runWatches() {
	q := l.wq
	l.wq = l.wq2[:0]
	for i, w := range q {
		q[i] = nil
		w.queued = false
		calls := 1
		if w.turn == l.turn-1 {
			calls = watchBurst
		}
		w.turn = l.turn
		l.inWatch.Store(true)
		for range calls {
			if w.gone.Load() || !w.ready() {
				break
			}
		}
		l.inWatch.Store(false)
	}
	l.wq2 = q[:0]
}

// tickEvery is how often a loop checks dial and idle deadlines while it
// has any. One coarse tick per loop, as the timeout of its epoll_wait,
// instead of a Go timer per connection.
const tickEvery = 100 * time.Millisecond

// armTickLocked makes sure a tick is coming. l.mu must be held.
func (l *loop) armTickLocked() {
	if l.tickArmed {
		return
	}
	l.tickArmed = true
	l.tickAt = l.clock() + int64(tickEvery)
	if l.blocked {
		l.wakeLocked() // it sleeps without a timeout: wake it to take one
	}
}

// tick ends relays whose dial or idle deadline has passed, gives the
// targets of relays older than keepAliveAfter their keep-alive, and re-arms
// itself while any relay has a deadline.
func (l *loop) tick() {
	var expired []*conn
	l.mu.Lock()
	l.tickArmed = false
	pending := false
	for _, c := range l.slots {
		if c == nil || c.ended {
			continue
		}
		if c.connecting {
			if l.now >= c.deadline {
				expired = append(expired, c)
			} else {
				pending = true
			}
			continue
		}
		if !c.keepAlive {
			if time.Duration(l.now-c.born) >= keepAliveAfter {
				l.keep = append(l.keep, c)
			} else {
				pending = true
			}
		}
		if c.lim.IdleTimeout > 0 {
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
	for i, c := range l.keep {
		l.keep[i] = nil
		c.keepAlive = true
		if err := setKeepAlive(c.fd[target]); err != nil {
			l.log.Warn("relay: target keep-alive", "err", err)
		}
	}
	l.keep = l.keep[:0]
	for _, c := range expired {
		if c.ended {
			continue
		}
		if c.connecting {
			l.end(c, ReasonDialFailed, os.NewSyscallError("connect", unix.ETIMEDOUT))
		} else {
			l.end(c, ReasonIdle, nil)
		}
	}
}

// ready records what an epoll event says about side's socket, and reports
// whether the peer behind it is finishing (FIN, reset or error).
func (c *conn) ready(side int, ev uint32) (ending bool) {
	d := &c.dir[side] // reads side's socket
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR|unix.EPOLLPRI) != 0 {
		d.readable = true
	}
	if ev&unix.EPOLLPRI != 0 {
		d.urgent = true
	}
	if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		d.fin = true
	}
	if ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.dir[1-side].writable = true
	}
	if side == target && c.connecting && ev&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.dialErr = true
	}
	return ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0
}

func (l *loop) enqueue(c *conn) {
	if !c.queued && !c.ended {
		c.queued = true
		l.runq = append(l.runq, c)
	}
}

func (l *loop) handle(p post) {
	c := p.c
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

// early moves a new relay's first client bytes before epoll has said
// anything about its sockets: by the time the target's connect has been
// started, a client that speaks first has usually spoken. When the target
// is near (loopback, a LAN) the connect has completed too, and a write
// that succeeds proves it; a write that says EAGAIN leaves the bytes in the
// pipe until EPOLLOUT, and a write error is the dial's failure. It saves a
// turn of the loop and keeps the new connection ahead of older ones'
// closing work. Once events have come for c, the usual path has it.
//
// Whether it pays is learnt per loop (earlyScore): against far targets,
// whose connect takes a round trip, the write never goes through and the
// attempt would cost two system calls per connection, so the loop stops
// trying but for one connection in earlyRetry.
func (l *loop) early(c *conn) {
	if !c.connecting || c.ended || c.dialErr {
		return
	}
	if l.earlyScore < 0 {
		if l.earlySkips++; l.earlySkips%earlyRetry != 0 {
			return
		}
	}
	d := &c.dir[client]
	was := d.writable
	d.readable, d.writable = true, true
	want := len(l.buf)
	if c.lim.BytesPerSecond > 0 && !l.take(c, client, &want) {
		d.writable = was
		return
	}
	l.copy(c, client, want)
	switch {
	case c.ended:
	case !c.connecting: // written: connected
		l.earlyScoreAdd(1)
	case d.buffered > 0: // the target is still connecting
		l.earlyScoreAdd(-4)
	default: // nothing to read yet
		l.earlyScoreAdd(-1)
	}
	if c.connecting && !c.ended && d.buffered == 0 {
		d.writable = was // nothing was written: the connect is unproven
	}
}

// earlyRetry: with a negative earlyScore, early still tries one new relay
// in this many, to notice when it would pay again.
const earlyRetry = 32

func (l *loop) earlyScoreAdd(n int) {
	l.earlyScore = min(max(l.earlyScore+n, -32), 16)
}

// connected checks a connecting target once epoll has reported it
// writable (or failed): it ends the relay if the connect failed, and
// otherwise starts the idle clock. EPOLLOUT without an error or hang-up
// is a completed connect; only otherwise is SO_ERROR asked.
func (l *loop) connected(c *conn) bool {
	if !c.dir[client].writable {
		return false
	}
	if c.dialErr {
		if err := soError(c.fd[target]); err != nil {
			l.end(c, ReasonDialFailed, os.NewSyscallError("connect", err))
			return false
		}
	}
	c.connecting = false
	c.last = l.now
	return true
}

// move runs direction i until it would block, ends, or has used its budget
// (then it returns true). Small reads are copied (copy); a read that fills
// the copy buffer switches the direction to splice, where the pipe is
// filled only when empty, so that EAGAIN from the socket→pipe splice always
// means "no input".
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
				l.fail(c, 1-i, "splice", err)
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
		if d.urgent || (!d.bulk && d.writable) {
			if !l.copy(c, i, min(want, len(l.buf))) {
				return false
			}
			continue
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
			l.fail(c, i, "splice", err)
			return false
		}
		if n == 0 {
			l.eof(c, i)
			return false
		}
		d.buffered = n
		d.bulk = n >= len(l.buf)
		if c.lim.BytesPerSecond > 0 {
			d.tokens -= float64(n)
		}
	}
}

// copy reads up to want bytes of direction i into the loop's buffer and
// writes them on; what the destination does not take waits in a pipe. It
// reports whether the direction may go on (false: it is drained, ended,
// or waits for output room).
//
// A read that comes back short has emptied the socket (TCP's recvmsg stops
// early only when its queue runs dry; urgent data, where it also stops, is
// read until EAGAIN), and whatever arrives later raises a new edge. So a
// short read clears readable without the read that would say EAGAIN —
// unless the peer's FIN or an error has come already (fin): that raises no
// new edge, and the next read returns it.
func (l *loop) copy(c *conn, i, want int) bool {
	d := &c.dir[i]
	n, err := read(d.src, l.buf[:want])
	if err == unix.EAGAIN {
		d.readable = false
		d.urgent = false
		return false
	}
	if err != nil {
		l.fail(c, i, "read", err)
		return false
	}
	if n == 0 {
		if c.connecting {
			return false // read it again once connected: shutdown would abort the connect
		}
		l.eof(c, i)
		return false
	}
	if c.lim.BytesPerSecond > 0 {
		d.tokens -= float64(n)
	}
	w, err := write(d.dst, l.buf[:n])
	if err == unix.EAGAIN {
		w, err = 0, nil
	}
	if err != nil {
		if c.connecting {
			l.end(c, ReasonDialFailed, os.NewSyscallError("connect", err))
			return false
		}
		l.fail(c, 1-i, "write", err)
		return false
	}
	if w > 0 {
		if c.connecting { // only an established socket takes bytes
			c.connecting = false
		}
		d.n += int64(w)
		c.last = l.now
	}
	d.bulk = n == len(l.buf)
	if w < n {
		d.writable = false
		if !l.hold(c, i, l.buf[w:n]) {
			return false
		}
	}
	if n < want && !d.urgent && !d.fin {
		d.readable = false
		return false
	}
	return d.writable
}

// hold puts bytes that direction i read but could not write yet into its
// pipe, from where move splices them on once the destination has room.
// The pipe is empty and holds at least copyBuf bytes, so the write takes
// them all. Without a pipe (out of descriptors) the relay ends: its bytes
// cannot be kept.
func (l *loop) hold(c *conn, i int, b []byte) bool {
	d := &c.dir[i]
	if d.p.r < 0 {
		p, err := l.newPipe()
		if err != nil {
			l.end(c, ReasonError, fmt.Errorf("relay: no pipe for %d unsent bytes: %w", len(b), err))
			return false
		}
		d.p = p
	}
	n, err := write(d.p.w, b)
	if err != nil || n != len(b) {
		if err == nil {
			err = fmt.Errorf("short pipe write: %d of %d", n, len(b))
		}
		l.end(c, ReasonError, fmt.Errorf("relay: hold unsent bytes: %w", err))
		return false
	}
	d.buffered = n
	return true
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
	p, err := l.newPipe()
	if err != nil {
		l.log.Warn("relay: no splice pipe; retrying", "err", err)
		l.pause(c, i, 50*time.Millisecond)
		return false
	}
	c.dir[i].p = p
	return true
}

// newPipe returns a pipe from the pool or a new one.
func (l *loop) newPipe() (pipe, error) {
	if n := len(l.pipes); n > 0 {
		p := l.pipes[n-1]
		l.pipes = l.pipes[:n-1]
		return p, nil
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return noPipe, err
	}
	if l.pipeSize != 64<<10 {
		// Best effort: an unprivileged user over pipe-user-pages-soft
		// keeps the default size, which only costs more syscalls.
		unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, l.pipeSize)
	}
	return pipe{p[0], p[1]}, nil
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
		l.fail(c, 1-i, "shutdown", err)
	}
}

func closedBy(side int) string {
	if side == client {
		return ReasonClientClosed
	}
	return ReasonTargetClosed
}

// fail ends the relay after op (a read, write, splice or shutdown) failed
// on side's socket.
func (l *loop) fail(c *conn, side int, op string, err error) {
	reason := ReasonError
	switch err {
	case unix.ECONNRESET, unix.EPIPE, unix.ETIMEDOUT, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.ENOTCONN:
		reason = closedBy(side)
		if c.first >= 0 {
			reason = closedBy(int(c.first))
		}
	}
	l.end(c, reason, os.NewSyscallError(op, err))
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
