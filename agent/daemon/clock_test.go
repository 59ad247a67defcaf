package daemon_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tpf-dev/tpf/agent/daemon"
	"github.com/tpf-dev/tpf/agent/routeros"
	"github.com/tpf-dev/tpf/agent/routerostest"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// The management tunnel's two ends, as the fake controller below sends them.
// (How the agent keeps time against the real controller is tested in e2e.)
const (
	edgeAddr   = "10.99.0.1"
	tunnelAddr = "10.99.0.2"
)

// TestReportCarriesClockOffset: the agent reports how far its clock is off
// the controller's, from the set's SentAt.
func TestReportCarriesClockOffset(t *testing.T) {
	t.Parallel()
	ros := routerostest.New(routerostest.Config{})
	if err := ros.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ros.Close() })

	reports := make(chan *syncproto.Report, 16)
	ctl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		set, _ := syncproto.Encode(&syncproto.Desired{Revision: 5, TunnelAddress: netip.MustParseAddr(tunnelAddr), EdgeAddress: netip.MustParseAddr(edgeAddr),
			Forwards: []syncproto.Forward{}, SentAt: time.Now().UTC().Truncate(time.Second)})
		ws.Write(ctx, websocket.MessageText, set)
		for {
			_, data, err := ws.Read(ctx)
			if err != nil {
				return
			}
			if msg, err := syncproto.Decode(data); err == nil && msg.Type == syncproto.TypeReport {
				select {
				case reports <- msg.Report:
				default:
				}
			}
		}
	}))
	t.Cleanup(ctl.Close)

	const skew = -2 * time.Hour
	d, err := daemon.New(daemon.Config{ControllerURL: ctl.URL, Token: "tok", Router: routeros.Config{Address: ros.Addr(), User: "admin"},
		Now: func() time.Time { return time.Now().Add(skew) }, Resync: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	deadline := time.After(10 * time.Second)
	for {
		select {
		case r := <-reports:
			if r.Revision != 5 {
				continue
			}
			if r.ClockOffsetMillis == nil {
				t.Fatal("report of revision 5: no clock offset")
			}
			// SentAt is in whole seconds: up to a second more, and transit.
			got := time.Duration(*r.ClockOffsetMillis) * time.Millisecond
			if got < skew || got > skew+2*time.Second {
				t.Errorf("clock offset: got %v, want %v (up to 2s more)", got, skew)
			}
			return
		case <-deadline:
			t.Fatal("no report of revision 5")
		}
	}
}
