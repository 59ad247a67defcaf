package hub_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/hub"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// syncBuffer is a log destination shared by the hub's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestAccessThroughTheHub follows an access from its create to its revoke
// as its router's agent and its region's edge see it: the password reaches
// the agent until the agent confirms the user and never after, the edge
// relays to the router's port of the service as the agent reports it, and
// the hub's log never holds the password.
func TestAccessThroughTheHub(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc := forwards.New(f.st)
	h := hub.New(svc, hub.Config{Logger: log, Resync: 100 * time.Millisecond})
	h.Start(ctx)
	agents, edges := httptest.NewServer(h), httptest.NewServer(h.Edges())
	t.Cleanup(func() { h.Stop(); agents.Close(); edges.Close() })
	edgeToken, err := svc.IssueEdgeToken(ctx, "eu1")
	if err != nil {
		t.Fatal(err)
	}
	ag, _, err := dial(t, "ws"+strings.TrimPrefix(agents.URL, "http")+syncproto.AgentPath, f.agentToken)
	if err != nil {
		t.Fatal(err)
	}
	ed, _, err := dial(t, "ws"+strings.TrimPrefix(edges.URL, "http")+syncproto.EdgePath, edgeToken)
	if err != nil {
		t.Fatal(err)
	}
	ag.next(syncproto.TypeDesired)
	ed.next(syncproto.TypeListeners)

	a, err := svc.CreateAccess(ctx, f.p, f.router.ID, fleet.NewAccess{Service: fleet.ServiceSSH,
		AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: time.Hour}, t0)
	if err != nil {
		t.Fatal(err)
	}
	accessIn := func(d *syncproto.Desired) *syncproto.Access {
		for i := range d.Accesses {
			if d.Accesses[i].ID == a.ID.String() {
				return &d.Accesses[i]
			}
		}
		return nil
	}
	var d *syncproto.Desired
	for d == nil || accessIn(d) == nil {
		d = ag.next(syncproto.TypeDesired).Desired
	}
	got := *accessIn(d)
	want := syncproto.Access{ID: a.ID.String(), Service: "ssh", Username: a.Username, Password: a.Password, ExpiresAt: a.ExpiresAt}
	if got != want || len(d.Forwards) != 0 {
		t.Fatalf("desired access:\ngot  %+v (forwards %v)\nwant %+v", got, d.Forwards, want)
	}
	target := func(port uint16) {
		t.Helper()
		want := netip.AddrPortFrom(f.router.TunnelAddress, port)
		for {
			l := ed.next(syncproto.TypeListeners).Listeners
			if len(l.Listeners) == 1 && l.Listeners[0].ID == a.ID.String() && l.Listeners[0].Target == want && l.Listeners[0].Port == a.Port {
				return
			}
		}
	}
	target(22)

	// The agent made the user; the router's SSH listens on 2222.
	ag.send(&syncproto.Report{Revision: d.Revision, AgentVersion: "test",
		Results: []syncproto.Result{{ID: a.ID.String(), State: syncproto.StateApplied, ServicePort: 2222}},
		Present: []string{a.ID.String()}})
	target(2222)
	waitFor(t, "the password to be gone from the agent's sets", func() bool {
		d := ag.next(syncproto.TypeDesired).Desired
		got := accessIn(d)
		return got != nil && got.Password == ""
	})
	// And it stays gone, set after set.
	for range 3 {
		if got := accessIn(ag.next(syncproto.TypeDesired).Desired); got == nil || got.Password != "" {
			t.Fatalf("a later set: got %+v, want the access without its password", got)
		}
	}

	if err := svc.RevokeAccess(ctx, f.p, f.router.ID, a.ID, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the access to leave the agent's set", func() bool {
		return accessIn(ag.next(syncproto.TypeDesired).Desired) == nil
	})
	for {
		if l := ed.next(syncproto.TypeListeners).Listeners; len(l.Listeners) == 0 {
			break
		}
	}

	if out := logs.String(); strings.Contains(out, a.Password) {
		t.Errorf("the hub's log holds the password:\n%s", out)
	} else if !strings.Contains(out, "peer connected") {
		t.Errorf("the hub logged nothing; the check proves nothing:\n%s", out)
	}
}
