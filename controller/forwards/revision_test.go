package forwards_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// A region's listener set revision moves with every change of any of its
// routers' forwards, without the region's row being locked: a create on one
// router does not wait for a transaction that holds another router of the
// same region.
func TestRegionRevisionFollowsRoutersWithoutTheRegionsLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newManagedFleet(t)
	a, b := f.router(t, "a"), f.router(t, "b")
	nf := fleet.NewForward{DstAddress: netip.MustParseAddr("192.168.88.43"), DstPort: 22,
		AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: 2 * time.Hour}

	rev := regionRevision(t, f, -1)
	held, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- f.st.InTx(ctx, func(tx *store.Tx) error {
			if _, _, err := tx.LockRouter(ctx, f.p.AccountID, a.ID); err != nil {
				return err
			}
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	fb, err := f.svc.CreateForward(cctx, f.p, b.ID, nf, t0)
	cancel()
	close(release)
	if err != nil {
		t.Fatalf("create on b while a is locked: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rev = regionRevision(t, f, rev)

	fa, err := f.svc.CreateForward(ctx, f.p, a.ID, nf, t0)
	if err != nil {
		t.Fatal(err)
	}
	rev = regionRevision(t, f, rev)
	if err := f.svc.RevokeForward(ctx, f.p, b.ID, fb.ID, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	rev = regionRevision(t, f, rev)
	if n, err := f.svc.ExpireDue(ctx, fa.ExpiresAt, 10); err != nil || n != 1 {
		t.Fatalf("expire: %d, %v", n, err)
	}
	rev = regionRevision(t, f, rev)
	if err := f.svc.DeleteRouter(ctx, f.p, a.ID, t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	rev = regionRevision(t, f, rev)

	// The edge's set carries the same revision, and a report counts only
	// up to it.
	l, err := f.svc.Listeners(ctx, "eu1", syncproto.Limits{}, t0.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if l.Revision != rev {
		t.Errorf("listener set revision %d, region's %d", l.Revision, rev)
	}
	if _, err := f.svc.ApplyEdgeReport(ctx, "eu1", syncproto.Report{Revision: rev + 100}, t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	region, err := f.st.Region(ctx, "eu1")
	if err != nil {
		t.Fatal(err)
	}
	if region.Edge.AppliedRevision != rev {
		t.Errorf("edge applied %d, want the region's %d", region.Edge.AppliedRevision, rev)
	}
}

// regionRevision returns eu1's revision, failing unless it grew past prev.
func regionRevision(t *testing.T, f managedFleet, prev int64) int64 {
	t.Helper()
	r, err := f.st.Region(context.Background(), "eu1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Revision <= prev {
		t.Fatalf("region revision %d, want more than %d", r.Revision, prev)
	}
	return r.Revision
}
