package hub

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"
)

// setQueue holds the agents waiting for their set to be built, oldest
// first, each once however often it was kicked meanwhile.
type setQueue struct {
	ready chan struct{} // signalled while agents wait

	mu      sync.Mutex
	waiting []*peerConn
	queued  map[*peerConn]bool
}

func newSetQueue() *setQueue {
	return &setQueue{ready: make(chan struct{}, 1), queued: map[*peerConn]bool{}}
}

// add queues the agents not queued yet; it never blocks.
func (q *setQueue) add(cs ...*peerConn) {
	q.mu.Lock()
	for _, c := range cs {
		if !q.queued[c] {
			q.queued[c] = true
			q.waiting = append(q.waiting, c)
		}
	}
	n := len(q.waiting)
	q.mu.Unlock()
	if n > 0 {
		q.signal()
	}
}

// take removes up to n of the oldest agents waiting and returns them. When
// more wait, it signals ready again, so that another builder joins in.
func (q *setQueue) take(n int) []*peerConn {
	q.mu.Lock()
	n = min(n, len(q.waiting))
	out := make([]*peerConn, n)
	copy(out, q.waiting)
	for _, c := range out {
		delete(q.queued, c)
	}
	q.waiting = q.waiting[n:]
	if len(q.waiting) == 0 {
		q.waiting = nil // let the backing array go
	}
	more := len(q.waiting) > 0
	q.mu.Unlock()
	if more {
		q.signal()
	}
	return out
}

func (q *setQueue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// buildSets is one set builder: it takes batches of waiting agents, reads
// their sets in one query and hands each agent's writer its own, until ctx
// ends. A failed query is logged and its agents wait for another try a
// second later; their links stay up.
func (h *Hub) buildSets(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.waiting.ready:
		}
		for ctx.Err() == nil {
			batch := h.waiting.take(h.cfg.SetBatch)
			if len(batch) == 0 {
				break
			}
			if err := h.buildBatch(ctx, batch); err != nil {
				h.cfg.Logger.Warn("build agents' sets; trying again", "agents", len(batch), "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
				h.waiting.add(batch...)
			}
		}
	}
}

// buildBatch reads the sets of the batch's agents in one query and hands
// each its own. An agent whose router is in the batch twice (a link
// replaced meanwhile) waits for the next batch.
func (h *Hub) buildBatch(ctx context.Context, batch []*peerConn) error {
	secrets := make(map[uuid.UUID]string, len(batch))
	conns := make(map[uuid.UUID]*peerConn, len(batch))
	var again []*peerConn
	for _, c := range batch {
		select {
		case <-c.done:
			continue // the link is gone
		default:
		}
		p := c.peer.(*agentPeer)
		if conns[p.router] != nil {
			again = append(again, c)
			continue
		}
		secrets[p.router], conns[p.router] = p.secret, c
	}
	if len(conns) == 0 {
		h.waiting.add(again...)
		return nil
	}
	sets, err := h.svc.AgentSets(ctx, secrets, h.now().UTC().Truncate(time.Second))
	if err != nil {
		return err
	}
	for router, c := range conns {
		a := sets[router]
		c.prepare(&a)
	}
	h.waiting.add(again...)
	return nil
}

// seenRouters holds the routers whose agents answered a heartbeat since
// recordSeen last wrote them.
type seenRouters struct {
	mu      sync.Mutex
	routers map[uuid.UUID]bool
}

func newSeenRouters() *seenRouters { return &seenRouters{routers: map[uuid.UUID]bool{}} }

func (s *seenRouters) add(router uuid.UUID) {
	s.mu.Lock()
	s.routers[router] = true
	s.mu.Unlock()
}

// take returns the routers held and forgets them.
func (s *seenRouters) take() []uuid.UUID {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]uuid.UUID, 0, len(s.routers))
	for id := range s.routers {
		out = append(out, id)
	}
	clear(s.routers)
	return out
}

// seenEvery is how often recordSeen writes the agents' signs of life.
const seenEvery = time.Second

// recordSeen writes the signs of life of the agents that answered a
// heartbeat, every seenEvery, in a few statements for however many agents
// (rather than a write per heartbeat), until ctx ends.
func (h *Hub) recordSeen(ctx context.Context) {
	t := time.NewTicker(seenEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if routers := h.agentsSeen.take(); len(routers) > 0 {
			if err := h.svc.AgentsSeen(ctx, routers, h.now()); err != nil {
				logFailure(ctx, h.cfg.Logger, "record agents' heartbeats", err, "agents", len(routers))
			}
		}
	}
}
