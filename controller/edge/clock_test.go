package edge_test

import (
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/edge"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// TestExpiryFollowsEdgeClock: a listener expires by the edge's clock
// (Config.Now), also when that clock is set back after the expiry timer was
// armed.
func TestExpiryFollowsEdgeClock(t *testing.T) {
	t.Parallel()
	var back atomic.Int64 // how far the edge's clock is set back
	clock := func() time.Time { return time.Now().Add(-time.Duration(back.Load())) }
	// An address of lo of its own (the end-to-end tests in ../../e2e take
	// 127.0.11.1 and up), and a port below Linux's ephemeral range.
	bind := netip.MustParseAddr("127.0.10.1")
	const port = 20000
	e, err := edge.New(edge.Config{Bind: bind, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })

	start := time.Now()
	rep := e.Apply(&syncproto.Listeners{Revision: 1, Region: "local", Listeners: []syncproto.Listener{{
		ID: uuid.NewString(), Port: port, Allow: netip.MustParsePrefix("127.0.0.1/32"),
		Target: netip.MustParseAddrPort("127.0.0.2:22"), ExpiresAt: clock().Add(time.Second),
	}}})
	if len(rep.Results) != 1 || rep.Results[0].State != syncproto.StateApplied {
		t.Fatalf("apply: got %+v, want the listener applied", rep.Results)
	}
	// Set back two seconds: three are left on the edge's clock.
	back.Store(int64(2 * time.Second))
	deadline := start.Add(15 * time.Second)
	for slices.Contains(e.Ports(), port) {
		if time.Now().After(deadline) {
			t.Fatal("the listener never expired")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if after := time.Since(start); after < 2500*time.Millisecond {
		t.Errorf("expired %v after applying, by the timer's real time; want about 3s, by the edge's clock", after.Round(time.Millisecond))
	}
}
