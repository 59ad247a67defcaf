package store_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
)

// The one-statement create takes the first candidate port that is free and
// makes nothing when every candidate is held.
func TestCreateAtOnceTakesAFreeCandidate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	region, err := f.st.Region(ctx, f.router.Region)
	if err != nil {
		t.Fatal(err)
	}
	size := int32(region.Ports.Size())
	nf := fleet.NewForward{DstAddress: netip.MustParseAddr("192.168.88.43"), DstPort: 22,
		AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: time.Hour}
	create := func(offsets ...int32) (uint16, bool) {
		t.Helper()
		fw, ok, err := f.st.CreateForwardAtOnce(ctx, f.p, f.router.ID, nf, offsets, t0)
		if err != nil {
			t.Fatal(err)
		}
		return fw.Port, ok
	}
	if port, ok := create(0); !ok || port != region.Ports.Min {
		t.Fatalf("first: got port %d, %v, want %d", port, ok, region.Ports.Min)
	}
	// Offsets wrap around the range: size+0 is the first port again.
	if port, ok := create(size, 1); !ok || port != region.Ports.Min+1 {
		t.Fatalf("second: got port %d, %v, want %d", port, ok, region.Ports.Min+1)
	}
	if port, ok := create(0, size+1); ok {
		t.Fatalf("every candidate held: got port %d, want nothing made", port)
	}
}
