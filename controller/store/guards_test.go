package store_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// A check and its write share a transaction: a router deleted a moment
// earlier gets no forward, and a forward of another account's router can be
// neither made nor revoked.
func TestWritesCheckTheRouterInTheirTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	nf := fleet.NewForward{DstAddress: netip.MustParseAddr("192.168.88.43"), DstPort: 22,
		AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: time.Hour}

	_, other, err := f.st.CreateAccount(ctx, "other", t0)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := f.st.Authenticate(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := forwards.New(f.st).CreateForward(ctx, stranger, f.router.ID, nf, t0); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("create on another account's router: got %v, want ErrNotFound", err)
	}
	fw := f.newForward(t, time.Hour, t0)
	if err := forwards.New(f.st).RevokeForward(ctx, stranger, f.router.ID, fw.ID, t0); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("revoke on another account's router: got %v, want ErrNotFound", err)
	}
	if err := forwards.New(f.st).RevokeForward(ctx, f.p, f.router.ID, uuid.New(), t0); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("revoke of an unknown forward: got %v, want ErrNotFound", err)
	}
	for range 2 { // the second changes nothing
		if err := forwards.New(f.st).RevokeForward(ctx, f.p, f.router.ID, fw.ID, t0.Add(time.Minute)); err != nil {
			t.Errorf("revoke: %v", err)
		}
	}

	if err := forwards.New(f.st).DeleteRouter(ctx, f.p, f.router.ID, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := forwards.New(f.st).CreateForward(ctx, f.p, f.router.ID, nf, t0.Add(time.Minute)); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("create on a deleted router: got %v, want ErrNotFound", err)
	}
	var live int
	if err := f.pool.QueryRow(ctx, "select count(*) from forwards where ended_at is null").Scan(&live); err != nil || live != 0 {
		t.Errorf("live forwards after the router was deleted: got %d (%v), want 0", live, err)
	}
}

// An agent cannot claim a revision it was never sent: its router would read
// in sync forever.
func TestReportRevisionIsCapped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.newForward(t, time.Hour, t0) // revision 1
	if _, err := forwards.New(f.st).ApplyReport(ctx, f.router.ID, syncproto.Report{Revision: 1<<63 - 1}, t0); err != nil {
		t.Fatal(err)
	}
	f.newForward(t, time.Hour, t0) // revision 2
	r, err := f.st.Router(ctx, f.p.AccountID, f.router.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Revision != 2 || r.Agent.AppliedRevision != 1 {
		t.Errorf("revisions: got desired %d, applied %d, want 2 and 1 (applied counts up to what was sent)", r.Revision, r.Agent.AppliedRevision)
	}
	if _, err := forwards.New(f.st).Listeners(ctx, "eu1", syncproto.Limits{}, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := forwards.New(f.st).ApplyEdgeReport(ctx, "eu1", syncproto.Report{Revision: 1 << 40}, t0); err != nil {
		t.Fatal(err)
	}
	region, err := f.st.Region(ctx, "eu1")
	if err != nil {
		t.Fatal(err)
	}
	if region.Edge.AppliedRevision != region.Revision {
		t.Errorf("edge revisions: got applied %d of %d, want at most what was sent", region.Edge.AppliedRevision, region.Revision)
	}
}

// One region's edge can neither record connections for another region's
// forwards nor move another region's connection records.
func TestConnectionRecordsStayInTheirRegion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	if _, err := f.st.CreateRegion(ctx, fleet.Region{ID: "us1", EntryPoint: "us1.example.net",
		Ports: fleet.PortRange{Min: 50000, Max: 50999}, EdgeTunnelAddress: netip.MustParseAddr("10.98.0.1"), CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	r2, _, err := forwards.New(f.st).CreateRouter(ctx, f.p, forwards.NewRouter{Name: "r2", Region: "us1", TunnelAddress: netip.MustParseAddr("10.98.0.2")}, t0)
	if err != nil {
		t.Fatal(err)
	}
	eu := f.newForward(t, time.Hour, t0)
	us, err := forwards.New(f.st).CreateForward(ctx, f.p, r2.ID, fleet.NewForward{DstAddress: netip.MustParseAddr("192.168.88.43"), DstPort: 22,
		AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: time.Hour}, t0)
	if err != nil {
		t.Fatal(err)
	}
	conn := uuid.New()
	rec := syncproto.Connection{ID: conn.String(), ForwardID: eu.ID.String(), Source: netip.MustParseAddrPort("81.2.69.7:40000"), Start: t0}
	if err := forwards.New(f.st).RecordConnections(ctx, "eu1", []syncproto.Connection{rec}); err != nil {
		t.Fatal(err)
	}
	// us1's edge claims the same connection id for its own forward, ended.
	forged := rec
	forged.ForwardID, forged.End, forged.Reason, forged.BytesUp = us.ID.String(), t0.Add(time.Minute), "forged", 1
	if err := forwards.New(f.st).RecordConnections(ctx, "us1", []syncproto.Connection{forged}); err != nil {
		t.Fatal(err)
	}
	// And eu1's forward's records from us1's edge are ignored.
	stray := rec
	stray.ID = uuid.NewString()
	if err := forwards.New(f.st).RecordConnections(ctx, "us1", []syncproto.Connection{stray}); err != nil {
		t.Fatal(err)
	}
	got, err := f.st.Connections(ctx, f.p.AccountID, f.router.ID, eu.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != conn || got[0].EndedAt != nil || got[0].Reason != "" {
		t.Errorf("eu1's connections: got %+v, want the one open record eu1's edge sent", got)
	}
	if other, err := f.st.Connections(ctx, f.p.AccountID, r2.ID, us.ID, 10); err != nil || len(other) != 0 {
		t.Errorf("us1's connections: got %+v, %v, want none", other, err)
	}
}
