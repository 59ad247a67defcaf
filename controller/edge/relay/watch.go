package relay

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Watch calls ready on one of the engine's event loops whenever fd (for
// example a listening socket of a listen.Set) is readable. Readiness is
// level-triggered: while fd stays readable, ready is called again on each
// turn of the loop, so it need not drain fd. When fd was readable in the
// turn before too, ready is called several times in a row while it reports
// more (a listener: it accepted one connection, there may be others).
// Watch does not take ownership of fd; cancel stops the watch (call it
// before closing fd). A call of ready that has already begun may finish
// after cancel returns, and a stale call may follow: ready must tolerate
// both.
//
// Watches are spread over the loops round-robin. Relays that ready starts
// with Connect stay on the watching loop while it is not much busier than
// the others, so an accepted connection is dialled and relayed without
// waking another thread. Watch makes Engine a listen.Poller.
func (e *Engine) Watch(fd int, ready func() (more bool)) (cancel func(), err error) {
	l := e.loops[int(e.next.Add(1))%len(e.loops)]
	w := &watch{fd: fd, ready: ready}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	var i int32
	if n := len(l.freeWatches); n > 0 {
		i = l.freeWatches[n-1]
	} else {
		i = int32(len(l.watches))
	}
	tag := -2 - i
	if err := epollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: tag}); err != nil {
		return nil, fmt.Errorf("relay: watch: epoll_ctl: %w", err)
	}
	if int(i) == len(l.watches) {
		l.watches = append(l.watches, w)
	} else {
		l.freeWatches = l.freeWatches[:len(l.freeWatches)-1]
		l.watches[i] = w
	}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if w.gone.Swap(true) || l.closed {
			return
		}
		// A stale event may still carry the tag: it finds nil, or a new
		// watch that tolerates a spurious call.
		l.watches[i] = nil
		l.freeWatches = append(l.freeWatches, i)
		epollCtl(l.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	}, nil
}

// affinitySlack is how many more relays than the least busy loop a
// watching loop may hold and still keep the connections its watch accepts.
// Small, so that parallel bulk streams still spread over the loops (CPUs).
const affinitySlack = 2

// pick chooses the loop for a new relay: the loop whose watch callback is
// running (the caller is most likely that callback) unless it holds more
// than affinitySlack relays above the least busy loop; otherwise the least
// busy loop, ties broken round-robin.
func (e *Engine) pick() *loop {
	n := len(e.loops)
	if n == 1 {
		return e.loops[0]
	}
	first := int(e.next.Add(1))
	least := e.loops[first%n]
	var watching *loop
	for i := range n {
		l := e.loops[(first+i)%n]
		if l.active.Load() < least.active.Load() {
			least = l
		}
		if watching == nil && l.inWatch.Load() {
			watching = l
		}
	}
	if watching != nil && watching.active.Load() <= least.active.Load()+affinitySlack {
		return watching
	}
	return least
}
