package forwards_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/controller/store/storetest"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// managedFleet is an account with a region whose tunnel tpf manages.
type managedFleet struct {
	st  *store.Store
	svc *forwards.Service
	p   fleet.Principal
}

func newManagedFleet(t *testing.T) managedFleet {
	t.Helper()
	ctx := context.Background()
	st := store.New(storetest.New(t))
	f := managedFleet{st: st, svc: forwards.New(st)}
	if _, err := st.CreateRegion(ctx, fleet.Region{ID: "eu1", EntryPoint: "eu1.example.net",
		Ports: fleet.PortRange{Min: 50000, Max: 50999}, CreatedAt: t0,
		Tunnel: fleet.RegionTunnel{Managed: true, Endpoint: "eu1.example.net:51820"}}); err != nil {
		t.Fatal(err)
	}
	_, token, err := st.CreateAccount(ctx, "acme", t0)
	if err != nil {
		t.Fatal(err)
	}
	if f.p, err = st.Authenticate(ctx, token); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f managedFleet) router(t *testing.T, name string) fleet.Router {
	t.Helper()
	r, _, err := f.svc.CreateRouter(context.Background(), f.p, forwards.NewRouter{Name: name, Region: "eu1"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestManagedRegionsAllocateTunnelAddresses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newManagedFleet(t)
	region, err := f.st.Region(ctx, "eu1")
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParsePrefix("100.64.0.0/16"); region.Tunnel.Prefix != want || region.EdgeTunnelAddress != netip.MustParseAddr("100.64.0.1") {
		t.Errorf("first region: got prefix %s, edge %s, want %s and its first address", region.Tunnel.Prefix, region.EdgeTunnelAddress, want)
	}
	// A second managed region gets the next /16; an overlapping one is refused.
	second, err := f.st.CreateRegion(ctx, fleet.Region{ID: "us1", EntryPoint: "us1.example.net",
		Ports: fleet.PortRange{Min: 50000, Max: 50999}, CreatedAt: t0, Tunnel: fleet.RegionTunnel{Managed: true, Endpoint: "us1.example.net:51820"}})
	if err != nil || second.Tunnel.Prefix != netip.MustParsePrefix("100.65.0.0/16") {
		t.Errorf("second region: got %s, %v, want 100.65.0.0/16", second.Tunnel.Prefix, err)
	}
	if _, err := f.st.CreateRegion(ctx, fleet.Region{ID: "ap1", EntryPoint: "ap1.example.net",
		Ports: fleet.PortRange{Min: 50000, Max: 50999}, CreatedAt: t0,
		Tunnel: fleet.RegionTunnel{Managed: true, Prefix: netip.MustParsePrefix("100.64.128.0/24"), Endpoint: "ap1.example.net:51820"}}); !errors.Is(err, fleet.ErrExists) {
		t.Errorf("overlapping prefix: got %v, want ErrExists", err)
	}

	a, b := f.router(t, "a"), f.router(t, "b")
	if a.TunnelAddress != netip.MustParseAddr("100.64.0.2") || b.TunnelAddress != netip.MustParseAddr("100.64.0.3") {
		t.Errorf("addresses: got %s and %s, want 100.64.0.2 and 100.64.0.3", a.TunnelAddress, b.TunnelAddress)
	}
	if _, _, err := f.svc.CreateRouter(ctx, f.p, forwards.NewRouter{Name: "c", Region: "eu1", TunnelAddress: netip.MustParseAddr("100.64.9.9")}, t0); !errors.Is(err, fleet.ErrTunnelAddressManaged) {
		t.Errorf("address given in a managed region: got %v, want ErrTunnelAddressManaged", err)
	}
	// A deleted router's address is free again.
	if err := f.svc.DeleteRouter(ctx, f.p, a.ID, t0); err != nil {
		t.Fatal(err)
	}
	if c := f.router(t, "c"); c.TunnelAddress != a.TunnelAddress {
		t.Errorf("after a delete: got %s, want %s again", c.TunnelAddress, a.TunnelAddress)
	}
}

func TestTunnelInSetsAndReports(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newManagedFleet(t)
	r := f.router(t, "r1")

	d, err := f.svc.DesiredSet(ctx, r.ID, t0)
	if err != nil {
		t.Fatal(err)
	}
	want := syncproto.Tunnel{Address: r.TunnelAddress, EdgeAddress: netip.MustParseAddr("100.64.0.1"),
		Endpoint: "eu1.example.net:51820", KeepaliveSeconds: 25}
	if d.Tunnel == nil || *d.Tunnel != want {
		t.Fatalf("desired tunnel: got %+v, want %+v", d.Tunnel, want)
	}
	l, err := f.svc.Listeners(ctx, "eu1", syncproto.Limits{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if l.Tunnel == nil || l.Tunnel.Address != netip.MustParsePrefix("100.64.0.1/16") || l.Tunnel.ListenPort != 51820 || len(l.Tunnel.Peers) != 0 {
		t.Fatalf("edge tunnel before any key: got %+v", l.Tunnel)
	}

	// The edge reports its key: every router's set changes.
	rev := d.Revision
	if _, err := f.svc.ApplyEdgeReport(ctx, "eu1", syncproto.Report{Revision: l.Revision,
		Tunnel: &syncproto.TunnelState{PublicKey: "edgeKEY"}}, t0); err != nil {
		t.Fatal(err)
	}
	if d, err = f.svc.DesiredSet(ctx, r.ID, t0); err != nil || d.Tunnel.EdgePublicKey != "edgeKEY" || d.Revision <= rev {
		t.Fatalf("after the edge's key: got %+v (revision %d after %d), %v", d.Tunnel, d.Revision, rev, err)
	}

	// A forward waits for the tunnel's first handshake.
	fw, err := f.svc.CreateForward(ctx, f.p, r.ID, fleet.NewForward{DstAddress: netip.MustParseAddr("192.168.88.43"), DstPort: 22,
		AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: time.Hour}, t0)
	if err != nil {
		t.Fatal(err)
	}
	applied := []syncproto.Result{{ID: fw.ID.String(), State: syncproto.StateApplied}}
	report := func(at time.Time, handshake time.Time) forwards.ReportOutcome {
		t.Helper()
		out, err := f.svc.ApplyReport(ctx, r.ID, syncproto.Report{Revision: d.Revision, Results: applied, Present: []string{fw.ID.String()},
			Tunnel: &syncproto.TunnelState{PublicKey: "routerKEY", Peers: []syncproto.PeerState{{PublicKey: "edgeKEY", LastHandshake: handshake, RxBytes: 10, TxBytes: 20}}}}, at)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if out := report(t0, time.Time{}); len(out.Activated) != 0 {
		t.Errorf("activated without a handshake: %+v", out.Activated)
	}
	l, _ = f.svc.Listeners(ctx, "eu1", syncproto.Limits{}, t0)
	if len(l.Tunnel.Peers) != 1 || l.Tunnel.Peers[0] != (syncproto.EdgePeer{PublicKey: "routerKEY", Address: r.TunnelAddress}) {
		t.Errorf("edge peers after the router's key: got %+v", l.Tunnel.Peers)
	}
	if _, err := f.svc.ApplyEdgeReport(ctx, "eu1", syncproto.Report{Revision: l.Revision, Results: applied}, t0); err != nil {
		t.Fatal(err)
	}
	if out := report(t0.Add(time.Minute), t0.Add(50*time.Second)); len(out.Activated) != 1 {
		t.Errorf("after the handshake: activated %+v, want the forward", out.Activated)
	}
	got, err := f.svc.Router(ctx, f.p.AccountID, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Tunnel.PublicKey != "routerKEY" || got.Tunnel.State(t0.Add(time.Minute)) != fleet.TunnelUp || got.Tunnel.RxBytes != 10 {
		t.Errorf("router tunnel: got %+v", got.Tunnel)
	}
	if s := got.Tunnel.State(t0.Add(10 * time.Minute)); s != fleet.TunnelDown {
		t.Errorf("ten minutes later: got %s, want down", s)
	}

	// A reinstalled router's new key replaces the old one.
	report(t0.Add(2*time.Minute), t0.Add(2*time.Minute))
	if _, err := f.svc.ApplyReport(ctx, r.ID, syncproto.Report{Revision: d.Revision, Tunnel: &syncproto.TunnelState{PublicKey: "newKEY"}}, t0.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	l, _ = f.svc.Listeners(ctx, "eu1", syncproto.Limits{}, t0)
	if len(l.Tunnel.Peers) != 1 || l.Tunnel.Peers[0].PublicKey != "newKEY" {
		t.Errorf("edge peers after a reinstall: got %+v, want newKEY only", l.Tunnel.Peers)
	}
}

func TestDeletedRouterGetsAnEmptyLastSet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newManagedFleet(t)
	r, secret, err := f.svc.CreateRouter(ctx, f.p, forwards.NewRouter{Name: "r1", Region: "eu1"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.CreateForward(ctx, f.p, r.ID, fleet.NewForward{DstAddress: netip.MustParseAddr("192.168.88.43"), DstPort: 22,
		AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: time.Hour}, t0); err != nil {
		t.Fatal(err)
	}
	if last, err := f.svc.FarewellSet(ctx, secret, r.ID, t0); err != nil || last != nil {
		t.Errorf("farewell of a live router: got %+v, %v, want none", last, err)
	}
	if err := f.svc.DeleteRouter(ctx, f.p, r.ID, t0); err != nil {
		t.Fatal(err)
	}
	last, err := f.svc.FarewellSet(ctx, secret, r.ID, t0)
	if err != nil || last == nil || len(last.Forwards) != 0 || last.Tunnel != nil {
		t.Fatalf("farewell of a deleted router: got %+v, %v, want no forwards and no tunnel", last, err)
	}
	if other, err := f.svc.FarewellSet(ctx, "tpfa_wrong", r.ID, t0); err != nil || other != nil {
		t.Errorf("farewell for a wrong token: got %+v, %v, want none", other, err)
	}
}
