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
	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/shared/forward"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// TestRouterClockOff: a router whose clock is hours off (no battery, no NTP
// yet) still applies forwards and removes them at their expiry on the
// controller's clock, also once the controller is gone.
func TestRouterClockOff(t *testing.T) {
	t.Parallel()
	for name, skew := range map[string]time.Duration{"ahead": 3 * time.Hour, "behind": -3 * time.Hour} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, "7.18.2")
			w.agentClock = func() time.Time { return time.Now().Add(skew) }
			w.startAgent(w.ctrl.URL)

			now := time.Now().UTC().Truncate(time.Second)
			long := w.create(now, 60, false)
			// Expires three seconds from now, on the controller's clock.
			short := w.create(now.Add(-10*time.Minute+3*time.Second), 10, false)
			w.eventually("both rules", func() bool {
				r := w.tpfRules()
				return r[long.ID.String()+"/dstnat"] != nil && r[short.ID.String()+"/dstnat"] != nil
			})
			w.eventually("the long forward to be active", func() bool { return w.status(long) == fleet.StatusActive })
			// The rule keeps the controller's expiry.
			tag, err := forward.ParseTag(w.tpfRules()[long.ID.String()+"/dstnat"]["comment"])
			if err != nil || !tag.Expires.Equal(long.ExpiresAt) {
				t.Errorf("rule tag: got %+v, %v, want expiry %v", tag, err, long.ExpiresAt)
			}

			w.stopController()
			w.eventually("the short forward's rule to go at its expiry", func() bool {
				return w.tpfRules()[short.ID.String()+"/dstnat"] == nil
			})
			if early := time.Until(short.ExpiresAt); early > 0 {
				t.Errorf("removed %v before expiry", early)
			}
			if late := time.Since(short.ExpiresAt); late > 3*time.Second {
				t.Errorf("removed %v after expiry, want within a second or two", late)
			}
			// The link is down; the controller's time is still known.
			if w.tpfRules()[long.ID.String()+"/dstnat"] == nil {
				t.Errorf("the hour-long forward's rule was removed: %v", w.ros.NAT())
			}
		})
	}
}

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
