package hub_test

import (
	"context"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/hub"
	"github.com/tpf-dev/tpf/shared/peerlink"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

func TestEdgeLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	limits := syncproto.Limits{MaxConnections: 4, IdleSeconds: 600, BytesPerSecond: 1 << 20}
	h := hub.New(forwards.New(f.st), hub.Config{EdgeLimits: limits})
	h.Start(ctx)
	srv := httptest.NewServer(h.Edges())
	t.Cleanup(func() { h.Stop(); srv.Close() })
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + syncproto.EdgePath

	if _, res, err := dial(t, url, "tpfe_nope"); err == nil || res.StatusCode != 401 {
		t.Fatalf("unknown edge token: got %v, want 401", err)
	}
	token, err := forwards.New(f.st).IssueEdgeToken(ctx, "eu1")
	if err != nil {
		t.Fatal(err)
	}
	e, _, err := dial(t, url, token)
	if err != nil {
		t.Fatal(err)
	}
	if l := e.next(syncproto.TypeListeners).Listeners; l.Region != "eu1" || len(l.Listeners) != 0 {
		t.Errorf("first listeners: got %+v, want none for eu1", l)
	}

	fw := createForward(t, f)
	var l *syncproto.Listeners
	for l == nil || len(l.Listeners) != 1 {
		l = e.next(syncproto.TypeListeners).Listeners
	}
	got := l.Listeners[0]
	want := syncproto.Listener{ID: fw.ID.String(), Port: fw.Port, Allow: netip.MustParsePrefix("81.2.69.0/24"),
		Target: netip.AddrPortFrom(f.router.TunnelAddress, fw.Port), ExpiresAt: fw.ExpiresAt, Limits: limits}
	if got != want {
		t.Errorf("listener:\ngot  %+v\nwant %+v", got, want)
	}

	// Active only once both the rule and the listener are in place.
	if _, err := forwards.New(f.st).ApplyReport(ctx, f.router.ID, syncproto.Report{Revision: 1, Results: []syncproto.Result{{ID: got.ID, State: syncproto.StateApplied}}, Present: []string{got.ID}}, t0); err != nil {
		t.Fatal(err)
	}
	if s := status(t, f, fw); s != fleet.StatusPending {
		t.Fatalf("after the router alone: got %s, want pending", s)
	}
	e.send(&syncproto.Report{Revision: l.Revision, AgentVersion: "edge-1", Results: []syncproto.Result{{ID: got.ID, State: syncproto.StateApplied}}, Present: []string{got.ID}})
	waitFor(t, "forward to become active", func() bool { return status(t, f, fw) == fleet.StatusActive })

	start := time.Now().UTC().Truncate(time.Second)
	rec := syncproto.Connection{ID: "5b0c9a52-3a4e-4a7c-9d5e-0f0e0d0c0b0a", ForwardID: got.ID, Source: netip.MustParseAddrPort("81.2.69.7:51515"), Start: start}
	e.send(&syncproto.Connections{Records: []syncproto.Connection{rec}})
	waitFor(t, "the open connection", func() bool {
		cs, _ := f.st.Connections(ctx, f.p.AccountID, f.router.ID, fw.ID, 10)
		return len(cs) == 1 && cs[0].EndedAt == nil
	})
	fwd, _ := f.st.Forward(ctx, f.p.AccountID, f.router.ID, fw.ID)
	if fwd.ConnectionsActive != 1 {
		t.Errorf("connections_active: got %d, want 1", fwd.ConnectionsActive)
	}
	rec.End, rec.BytesUp, rec.BytesDown, rec.Reason = start.Add(time.Minute), 100, 2000, "client closed"
	e.send(&syncproto.Connections{Records: []syncproto.Connection{rec}})
	waitFor(t, "the closed connection", func() bool {
		cs, _ := f.st.Connections(ctx, f.p.AccountID, f.router.ID, fw.ID, 10)
		return len(cs) == 1 && cs[0].EndedAt != nil && cs[0].BytesDown == 2000 && cs[0].Reason == "client closed"
	})

	// A new token drops the edge that used the old one.
	if _, err := forwards.New(f.st).IssueEdgeToken(ctx, "eu1"); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		if _, _, err := e.ws.Read(rctx); err != nil {
			if rctx.Err() != nil {
				t.Fatal("the old edge token's link stayed up")
			}
			break
		}
	}
}

// TestEmbeddedEdgeOverPipe: the edge in `serve` talks to the hub through an
// in-process pipe, with the same messages.
func TestEmbeddedEdgeOverPipe(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFixture(t)
	h := hub.New(forwards.New(f.st), hub.Config{})
	h.Start(ctx)
	t.Cleanup(h.Stop)
	hubEnd, edgeEnd := peerlink.Pipe()
	go h.ServeEdge(ctx, "eu1", hubEnd)

	read := func() syncproto.Envelope {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		b, err := edgeEnd.Read(rctx)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := syncproto.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	if msg := read(); msg.Type != syncproto.TypeListeners {
		t.Fatalf("first message: got %s, want listeners", msg.Type)
	}
	createForward(t, f)
	for {
		if msg := read(); msg.Type == syncproto.TypeListeners && len(msg.Listeners.Listeners) == 1 {
			break
		}
	}
	edgeEnd.Close("done")
	waitFor(t, "the hub to let the edge go", func() bool { return !h.EdgeConnected("eu1") })
}

func status(t *testing.T, f fixture, fw fleet.Forward) fleet.Status {
	t.Helper()
	got, err := f.st.Forward(context.Background(), f.p.AccountID, f.router.ID, fw.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got.StatusAt(t0)
}
