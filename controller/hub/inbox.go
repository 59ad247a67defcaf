package hub

import (
	"sync"
	"time"

	"github.com/tpf-dev/tpf/shared/syncproto"
)

// inbox holds a peer's messages between the link's reader and the handler
// that records them. Hellos and reports carry full state, so only the newest
// of each is kept; connection records all count and are kept in order, at
// most maxPendingConnections of them (the oldest go first: the newest
// record of a connection carries its totals). The handler runs only while
// messages wait (see put and take), so an idle peer costs no goroutine for
// it.
type inbox struct {
	mu     sync.Mutex
	hello  *syncproto.Envelope
	report *syncproto.Envelope
	conns  []syncproto.Connection
	// handling: a handler runs, and takes what is put meanwhile.
	handling bool
}

// maxPendingConnections bounds the connection records waiting for the
// database.
const maxPendingConnections = 100_000

func newInbox() *inbox { return &inbox{} }

// put adds msg; it never blocks. It reports whether the caller is to start
// a handler (none runs).
func (b *inbox) put(msg syncproto.Envelope) (start bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch msg.Type {
	case syncproto.TypeHello:
		b.hello = &msg
	case syncproto.TypeReport:
		b.report = &msg
	case syncproto.TypeConnections:
		b.conns = append(b.conns, msg.Connections.Records...)
		if over := len(b.conns) - maxPendingConnections; over > 0 {
			b.conns = append(b.conns[:0], b.conns[over:]...)
		}
	default:
		return false
	}
	start = !b.handling
	b.handling = true
	return start
}

// take empties the inbox and returns its messages in the order to record
// them: the hello, the report, then the connection records as one message.
// When nothing waits the handler is done: it returns nothing and the next
// put starts another.
func (b *inbox) take() []syncproto.Envelope {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.hello == nil && b.report == nil && len(b.conns) == 0 {
		b.handling = false
		return nil
	}
	var out []syncproto.Envelope
	if b.hello != nil {
		out = append(out, *b.hello)
	}
	if b.report != nil {
		out = append(out, *b.report)
	}
	if len(b.conns) > 0 {
		out = append(out, syncproto.Envelope{
			Type: syncproto.TypeConnections, Version: syncproto.Version,
			Connections: &syncproto.Connections{Records: b.conns},
		})
	}
	b.hello, b.report, b.conns = nil, nil, nil
	return out
}

// logLimiter lets a few warnings a minute through per peer, and counts the
// rest, so that a misbehaving peer cannot flood the log.
type logLimiter struct {
	now func() time.Time

	mu         sync.Mutex
	start      time.Time
	count      int
	suppressed int
}

const logBurst = 5 // warnings per peer and minute

func newLogLimiter(now func() time.Time) *logLimiter { return &logLimiter{now: now} }

// allow reports whether the next warning may be logged.
func (l *logLimiter) allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := l.now(); now.Sub(l.start) >= time.Minute {
		l.start, l.count = now, 0
	}
	if l.count < logBurst {
		l.count++
		return true
	}
	l.suppressed++
	return false
}

// takeSuppressed returns how many warnings were held back since it was
// last called.
func (l *logLimiter) takeSuppressed() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.suppressed
	l.suppressed = 0
	return n
}
