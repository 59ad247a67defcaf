package relay

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Watch calls ready on one of the engine's event loops whenever fd (for
// example a listen.Set's epoll fd) becomes readable, and again on the next
// turn for as long as ready reports more. Readiness is edge-triggered:
// ready must consume what it finds or report more. Watch does not take
// ownership of fd; cancel stops the watch (call it before closing fd). A
// call of ready that has already begun may finish after cancel returns, and
// a stale call may follow: ready must tolerate both.
//
// Relays that ready starts with Connect stay on the watching loop while it
// is not much busier than the others, so an accepted connection is dialled
// and relayed without waking another goroutine. Watch makes Engine a
// listen.Poller.
func (e *Engine) Watch(fd int, ready func() (more bool)) (cancel func(), err error) {
	l := e.loops[int(e.next.Add(1))%len(e.loops)]
	w := &watch{fd: fd, ready: ready}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	tag := int32(-2 - len(l.watches))
	if err := epollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: tag}); err != nil {
		return nil, fmt.Errorf("relay: watch: epoll_ctl: %w", err)
	}
	l.watches = append(l.watches, w)
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		w.gone.Store(true)
		if i := -2 - int(tag); !l.closed && i < len(l.watches) && l.watches[i] == w {
			l.watches[i] = nil
			epollCtl(l.epfd, unix.EPOLL_CTL_DEL, fd, nil)
		}
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
