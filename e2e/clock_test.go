package e2e

import (
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/shared/forward"
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
