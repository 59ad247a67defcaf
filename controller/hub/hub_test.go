package hub_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/hub"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/controller/store/storetest"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

var t0 = time.Now().UTC().Truncate(time.Second)

type fixture struct {
	st         *store.Store
	p          fleet.Principal
	router     fleet.Router
	agentToken string
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	f := storetest.NewFleet(t, t0)
	return fixture{st: f.Store, p: f.Principal, router: f.Router, agentToken: f.AgentToken}
}

// startHub serves a hub (one controller replica) over httptest.
func startHub(t testing.TB, st *store.Store, cfg hub.Config) (*hub.Hub, string) {
	t.Helper()
	h := hub.New(forwards.New(st), cfg)
	h.Start(context.Background())
	srv := httptest.NewServer(h)
	t.Cleanup(func() { h.Stop(); srv.Close() })
	return h, "ws" + strings.TrimPrefix(srv.URL, "http") + syncproto.AgentPath
}

// agent is a test agent speaking the protocol by hand.
type agent struct {
	t  *testing.T
	ws *websocket.Conn
}

func dial(t *testing.T, url, token string) (*agent, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, res, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		return nil, res, err
	}
	t.Cleanup(func() { ws.CloseNow() })
	return &agent{t: t, ws: ws}, res, nil
}

func (a *agent) send(body any) {
	a.t.Helper()
	b, err := syncproto.Encode(body)
	if err != nil {
		a.t.Fatal(err)
	}
	if err := a.ws.Write(context.Background(), websocket.MessageText, b); err != nil {
		a.t.Fatal(err)
	}
}

// next reads messages until one of type typ arrives.
func (a *agent) next(typ string) syncproto.Envelope {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, data, err := a.ws.Read(ctx)
		if err != nil {
			a.t.Fatalf("waiting for %s: %v", typ, err)
		}
		msg, err := syncproto.Decode(data)
		if err != nil {
			a.t.Fatalf("decode %s: %v", data, err)
		}
		if msg.Type == typ {
			return msg
		}
	}
}

// desiredWith reads sets until one holds n forwards.
func (a *agent) desiredWith(n int) *syncproto.Desired {
	a.t.Helper()
	for {
		d := a.next(syncproto.TypeDesired).Desired
		if len(d.Forwards) == n {
			return d
		}
	}
}

func createForward(t *testing.T, f fixture) fleet.Forward {
	t.Helper()
	fw, err := forwards.New(f.st).CreateForward(context.Background(), f.p, f.router.ID, fleet.NewForward{
		DstAddress: netip.MustParseAddr("192.168.88.43"), DstPort: 22,
		AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: time.Hour, Masquerade: true,
	}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return fw
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAgentLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	h, url := startHub(t, f.st, hub.Config{})

	a, _, err := dial(t, url, f.agentToken)
	if err != nil {
		t.Fatal(err)
	}
	a.send(&syncproto.Hello{AgentVersion: "v1.2.3", Router: syncproto.Router{RouterOSVersion: "7.18.2", Board: "RB5009", Identity: "office"}})
	first := a.next(syncproto.TypeDesired).Desired
	if len(first.Forwards) != 0 || first.TunnelAddress != f.router.TunnelAddress || first.EdgeAddress != netip.MustParseAddr("10.99.0.1") {
		t.Errorf("first set: got %+v, want empty, addressed to the router", first)
	}
	waitFor(t, "hub to register the agent", func() bool { return h.Connected(f.router.ID) })

	fw := createForward(t, f)
	d := a.desiredWith(1)
	got := d.Forwards[0]
	if got.ID != fw.ID.String() || got.Port != fw.Port || got.DstPort != 22 || !got.ExpiresAt.Equal(fw.ExpiresAt) || !got.Masquerade || d.Revision <= first.Revision {
		t.Errorf("set after create: got %+v rev %d, want the forward, rev > %d", got, d.Revision, first.Revision)
	}

	a.send(&syncproto.Report{Revision: d.Revision, AgentVersion: "v1.2.3",
		Results: []syncproto.Result{{ID: got.ID, State: syncproto.StateApplied}}, Present: []string{got.ID}})
	waitFor(t, "forward to become active", func() bool {
		fw, _ := f.st.Forward(ctx, f.p.AccountID, f.router.ID, fw.ID)
		return fw.StatusAt(t0) == fleet.StatusActive
	})
	r, err := f.st.Router(ctx, f.p.AccountID, f.router.ID)
	if err != nil || r.Agent.AppliedRevision != d.Revision || r.Agent.RouterOSVersion != "7.18.2" || r.Agent.Board != "RB5009" || !r.Agent.Connected(time.Now()) {
		t.Errorf("router agent state: got %+v, %v", r.Agent, err)
	}

	if err := forwards.New(f.st).RevokeForward(ctx, f.p, f.router.ID, fw.ID, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	d = a.desiredWith(0)
	// Not yet confirmed: the rule is still there.
	a.send(&syncproto.Report{Revision: d.Revision - 1, Present: []string{got.ID}})
	a.send(&syncproto.Report{Revision: d.Revision, Present: []string{}})
	waitFor(t, "removal to be confirmed", func() bool {
		fw, _ := f.st.Forward(ctx, f.p.AccountID, f.router.ID, fw.ID)
		return fw.StatusAt(t0) == fleet.StatusRemoved
	})

	// A message the hub cannot read is answered, and the link stays.
	if err := a.ws.Write(ctx, websocket.MessageText, []byte(`{"type":"report","v":1,"report":`)); err != nil {
		t.Fatal(err)
	}
	a.next(syncproto.TypeError)
	a.send(&syncproto.Report{Revision: d.Revision, Error: "router unreachable: dial tcp: timeout"})
	waitFor(t, "agent error to be recorded", func() bool {
		r, _ := f.st.Router(ctx, f.p.AccountID, f.router.ID)
		return strings.Contains(r.Agent.LastError, "router unreachable")
	})

	a.ws.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "disconnection to be recorded", func() bool {
		r, _ := f.st.Router(ctx, f.p.AccountID, f.router.ID)
		return !r.Agent.Connected(time.Now())
	})
}

func TestAgentAuthentication(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, url := startHub(t, f.st, hub.Config{})
	for _, token := range []string{"", "tpfa_nope", f.agentToken + "x"} {
		if _, res, err := dial(t, url, token); err == nil || res == nil || res.StatusCode != http.StatusUnauthorized {
			t.Errorf("token %q: got %v, want 401", token, err)
		}
	}
}

func TestSecondConnectionReplacesFirst(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, url := startHub(t, f.st, hub.Config{})
	a1, _, err := dial(t, url, f.agentToken)
	if err != nil {
		t.Fatal(err)
	}
	a1.next(syncproto.TypeDesired)
	a2, _, err := dial(t, url, f.agentToken)
	if err != nil {
		t.Fatal(err)
	}
	a2.next(syncproto.TypeDesired)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, _, err := a1.ws.Read(ctx); err != nil {
			break // the first connection was closed
		}
	}
	createForward(t, f)
	a2.desiredWith(1)
}

func TestRotatedTokenDisconnects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	_, url := startHub(t, f.st, hub.Config{})
	a, _, err := dial(t, url, f.agentToken)
	if err != nil {
		t.Fatal(err)
	}
	a.next(syncproto.TypeDesired)
	fw := createForward(t, f)
	secret, err := forwards.New(f.st).RotateAgentToken(ctx, f.p, f.router.ID, t0)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		if _, _, err := a.ws.Read(rctx); err != nil {
			if rctx.Err() != nil {
				t.Fatal("the old token's connection stayed up")
			}
			break
		}
	}
	if _, res, err := dial(t, url, f.agentToken); err == nil || res.StatusCode != http.StatusUnauthorized {
		t.Errorf("old token: got %v, want 401", err)
	}
	a2, _, err := dial(t, url, secret)
	if err != nil {
		t.Fatal(err)
	}
	if d := a2.desiredWith(1); d.Forwards[0].ID != fw.ID.String() {
		t.Errorf("after rotation: got %+v, want the router's forward kept", d.Forwards)
	}
}

// TestChangeOnAnotherReplica: the agent is connected to replica A; the
// change is made through replica B's store and reaches it through NOTIFY.
func TestChangeOnAnotherReplica(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, urlA := startHub(t, f.st, hub.Config{})
	otherPool := storetest.Reopen(t, f.st.Pool())
	b := fixture{st: store.New(otherPool), p: f.p, router: f.router}
	startHub(t, b.st, hub.Config{})

	a, _, err := dial(t, urlA, f.agentToken)
	if err != nil {
		t.Fatal(err)
	}
	a.next(syncproto.TypeDesired)
	fw := createForward(t, b)
	if d := a.desiredWith(1); d.Forwards[0].ID != fw.ID.String() {
		t.Errorf("got %+v, want the forward created on the other replica", d.Forwards)
	}
}

func TestPeriodicResync(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, url := startHub(t, f.st, hub.Config{Resync: 50 * time.Millisecond})
	a, _, err := dial(t, url, f.agentToken)
	if err != nil {
		t.Fatal(err)
	}
	first := a.next(syncproto.TypeDesired).Desired
	again := a.next(syncproto.TypeDesired).Desired // no change, sent anyway
	if again.Revision != first.Revision {
		t.Errorf("resync: got revision %d, want %d", again.Revision, first.Revision)
	}
}
