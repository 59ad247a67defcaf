package hub_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/hub"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// recorder is an Observer that writes down what it is told.
type recorder struct {
	mu     sync.Mutex
	events []string
	waits  []time.Duration
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf(format, args...))
}

func (r *recorder) PeerUp(peer string)               { r.add("up %s", peer) }
func (r *recorder) PeerDown(peer string)             { r.add("down %s", peer) }
func (r *recorder) ReconcileError(peer, kind string) { r.add("error %s %s", peer, kind) }
func (r *recorder) ForwardActivated(wait time.Duration) {
	r.mu.Lock()
	r.waits = append(r.waits, wait)
	r.mu.Unlock()
	r.add("activated")
}
func (r *recorder) ConnectionEnded(region, reason string, up, down int64) {
	r.add("connection %s %s %d %d", region, reason, up, down)
}

func (r *recorder) count(event string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e == event {
			n++
		}
	}
	return n
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func TestObserverAgent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rec := &recorder{}
	_, url := startHub(t, f.st, hub.Config{Observer: rec})

	a, _, err := dial(t, url, f.agentToken)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the agent to count as up", func() bool { return rec.count("up agent") == 1 })
	a.next(syncproto.TypeDesired)
	fw := createForward(t, f)
	d := a.desiredWith(1)

	applied := &syncproto.Report{Revision: d.Revision, Results: []syncproto.Result{{ID: fw.ID.String(), State: syncproto.StateApplied}}, Present: []string{fw.ID.String()}}
	a.send(applied)
	waitFor(t, "the activation", func() bool { return rec.count("activated") == 1 })
	// The next passes confirm the same forward again: it was active already.
	a.send(applied)
	a.send(&syncproto.Report{Revision: d.Revision, Results: []syncproto.Result{{ID: fw.ID.String(), State: syncproto.StateRefused, Error: "loopback"}}})
	a.send(&syncproto.Report{Revision: d.Revision, Error: "router unreachable"})
	waitFor(t, "the errors", func() bool {
		return rec.count("error agent refused") == 1 && rec.count("error agent pass") == 1
	})
	if n := rec.count("activated"); n != 1 {
		t.Errorf("activations: got %d, want 1 (a forward becomes active once)", n)
	}
	rec.mu.Lock()
	wait := rec.waits[0]
	rec.mu.Unlock()
	if max := time.Since(t0) + time.Second; wait < 0 || wait > max {
		t.Errorf("time to active: got %s, want between 0 and %s", wait, max)
	}

	// A second link with the same token replaces the first: still one agent.
	b, _, err := dial(t, url, f.agentToken)
	if err != nil {
		t.Fatal(err)
	}
	b.next(syncproto.TypeDesired)
	b.ws.CloseNow()
	waitFor(t, "the agent to count as down", func() bool { return rec.count("down agent") == 1 })
	if n := rec.count("up agent"); n != 1 {
		t.Errorf("agents up: got %d, want 1 (a replacing link is not another agent); events %q", n, rec.snapshot())
	}
}

func TestObserverEdge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	rec := &recorder{}
	h := hub.New(forwards.New(f.st), hub.Config{Observer: rec})
	h.Start(ctx)
	srv := httptest.NewServer(h.Edges())
	t.Cleanup(func() { h.Stop(); srv.Close() })
	token, err := forwards.New(f.st).IssueEdgeToken(ctx, "eu1")
	if err != nil {
		t.Fatal(err)
	}
	e, _, err := dial(t, "ws"+strings.TrimPrefix(srv.URL, "http")+syncproto.EdgePath, token)
	if err != nil {
		t.Fatal(err)
	}
	e.next(syncproto.TypeListeners)
	waitFor(t, "the edge to count as up", func() bool { return rec.count("up edge") == 1 })

	fw := createForward(t, f)
	if _, err := forwards.New(f.st).ApplyReport(ctx, f.router.ID, syncproto.Report{Revision: 1, Results: []syncproto.Result{{ID: fw.ID.String(), State: syncproto.StateApplied}}, Present: []string{fw.ID.String()}}, t0); err != nil {
		t.Fatal(err)
	}
	// The router alone does not make it active in a region with an edge;
	// the edge's report does.
	e.send(&syncproto.Report{Revision: 1, Results: []syncproto.Result{{ID: fw.ID.String(), State: syncproto.StateApplied}}, Present: []string{fw.ID.String()}})
	waitFor(t, "the activation", func() bool { return rec.count("activated") == 1 })
	e.send(&syncproto.Report{Revision: 1, Results: []syncproto.Result{{ID: fw.ID.String(), State: syncproto.StateFailed, Error: "port taken"}}})
	waitFor(t, "the edge's error", func() bool { return rec.count("error edge failed") == 1 })

	open := syncproto.Connection{ID: "5b0c9a52-3a4e-4a7c-9d5e-0f0e0d0c0b0a", ForwardID: fw.ID.String(), Start: t0}
	closed := open
	closed.End, closed.BytesUp, closed.BytesDown, closed.Reason = t0.Add(time.Minute), 100, 2000, "client closed"
	e.send(&syncproto.Connections{Records: []syncproto.Connection{open}})
	e.send(&syncproto.Connections{Records: []syncproto.Connection{closed}})
	waitFor(t, "the ended connection", func() bool { return rec.count("connection eu1 client closed 100 2000") == 1 })
	connections := 0
	for _, ev := range rec.snapshot() {
		if strings.HasPrefix(ev, "connection ") {
			connections++
		}
	}
	if connections != 1 {
		t.Errorf("events: got %q, want only the ended connection counted", rec.snapshot())
	}
}
