package hub_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/hub"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// closed waits until the hub closes a's link.
func (a *agent) closed() {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, _, err := a.ws.Read(ctx); err != nil {
			if ctx.Err() != nil {
				a.t.Fatal("the link stayed up")
			}
			return
		}
	}
}

// TestDeletedRouterFarewell: a deleted router's agent gets one last set
// without forwards or tunnel, then its link is closed and its token
// refused.
func TestDeletedRouterFarewell(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, url := startHub(t, f.st, hub.Config{})
	a, _, err := dial(t, url, f.agentToken)
	if err != nil {
		t.Fatal(err)
	}
	a.next(syncproto.TypeDesired)
	createForward(t, f)
	a.desiredWith(1)
	if err := forwards.New(f.st).DeleteRouter(context.Background(), f.p, f.router.ID, t0); err != nil {
		t.Fatal(err)
	}
	if last := a.desiredWith(0); last.Tunnel != nil || len(last.Accesses) != 0 {
		t.Errorf("last set: got %+v, want nothing at all", last)
	}
	a.closed()
	if _, res, err := dial(t, url, f.agentToken); err == nil || res.StatusCode != http.StatusUnauthorized {
		t.Errorf("a deleted router's token: got %v, want 401", err)
	}
}

// TestSetsInBatches: with batches smaller than the fleet, every agent gets
// its own set on connect and after a change, and a rotated token drops
// only its own agent.
func TestSetsInBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	svc := forwards.New(f.st)
	_, url := startHub(t, f.st, hub.Config{SetBatch: 3, SetBuilders: 2})
	const n = 10
	routers := make([]fleet.Router, n)
	agents := make([]*agent, n)
	for i := range n {
		r, token, err := svc.CreateRouter(ctx, f.p, forwards.NewRouter{Name: fmt.Sprintf("b%d", i), Region: "eu1", TunnelAddress: netip.MustParseAddr("10.99.0.3")}, t0)
		if err != nil {
			t.Fatal(err)
		}
		routers[i] = r
		if agents[i], _, err = dial(t, url, token); err != nil {
			t.Fatal(err)
		}
	}
	for i, a := range agents {
		if d := a.next(syncproto.TypeDesired).Desired; d.Revision != routers[i].Revision || len(d.Forwards) != 0 {
			t.Errorf("agent %d: got %+v, want its router's empty set", i, d)
		}
	}
	for i, r := range routers {
		fw, err := svc.CreateForward(ctx, f.p, r.ID, fleet.NewForward{
			DstAddress: netip.MustParseAddr("192.168.88.43"), DstPort: uint16(1000 + i),
			AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: time.Hour,
		}, t0)
		if err != nil {
			t.Fatal(err)
		}
		if d := agents[i].desiredWith(1); d.Forwards[0].ID != fw.ID.String() {
			t.Errorf("agent %d: got %+v, want its own forward", i, d.Forwards)
		}
	}
	if _, err := svc.RotateAgentToken(ctx, f.p, routers[4].ID, t0); err != nil {
		t.Fatal(err)
	}
	agents[4].closed()
	fw, err := svc.CreateForward(ctx, f.p, routers[5].ID, fleet.NewForward{
		DstAddress: netip.MustParseAddr("192.168.88.44"), DstPort: 22,
		AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: time.Hour,
	}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if d := agents[5].desiredWith(2); d.Forwards[0].ID != fw.ID.String() && d.Forwards[1].ID != fw.ID.String() {
		t.Errorf("a neighbour of the rotated router: got %+v, want its second forward too", d.Forwards)
	}
}
