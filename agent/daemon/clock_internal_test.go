package daemon

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// manualClock is a wall clock without monotonic readings that moves only
// when told.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var controllerT0 = time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)

func TestControllerClock(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		skew   time.Duration // agent's clock minus controller's
		wantAt time.Duration // what now() reads 10s after receipt, from controllerT0
	}{
		{"hours ahead", 3 * time.Hour, 10 * time.Second},
		{"hours behind", -3 * time.Hour, 10 * time.Second},
		{"minutes behind", -90 * time.Second, 10 * time.Second},
		// Within the noise of SentAt, the agent's own clock is kept.
		{"in step", 0, 10 * time.Second},
		{"a second ahead", time.Second, 11 * time.Second},
		{"a second behind", -time.Second, 9 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			own := &manualClock{t: controllerT0.Add(tc.skew)}
			c := &controllerClock{own: own.now, log: slog.New(slog.DiscardHandler)}
			if got := c.now(); !got.Equal(own.now()) {
				t.Errorf("before any set: got %v, want the agent's own clock %v", got, own.now())
			}
			if _, ok := c.offset(); ok {
				t.Error("before any set: the offset is known")
			}
			c.observe(controllerT0, own.now())
			own.advance(10 * time.Second)
			if got, want := c.now(), controllerT0.Add(tc.wantAt); !got.Equal(want) {
				t.Errorf("now: got %v, want %v", got, want)
			}
			if got, ok := c.offset(); !ok || got != tc.skew {
				t.Errorf("offset: got %v, %v, want %v", got, ok, tc.skew)
			}
		})
	}
}

// TestControllerClockKeepsNewest: a new reading replaces the old one, and
// a set without SentAt changes nothing.
func TestControllerClockKeepsNewest(t *testing.T) {
	t.Parallel()
	own := &manualClock{t: controllerT0.Add(time.Hour)}
	c := &controllerClock{own: own.now, log: slog.New(slog.DiscardHandler)}
	c.observe(controllerT0, own.now())
	own.advance(time.Minute)
	c.observe(time.Time{}, own.now())
	if got, want := c.now(), controllerT0.Add(time.Minute); !got.Equal(want) {
		t.Errorf("after a set without SentAt: got %v, want %v", got, want)
	}
	// The controller's clock was corrected by 30s meanwhile.
	c.observe(controllerT0.Add(time.Minute+30*time.Second), own.now())
	own.advance(time.Second)
	if got, want := c.now(), controllerT0.Add(time.Minute+31*time.Second); !got.Equal(want) {
		t.Errorf("after a newer set: got %v, want %v", got, want)
	}
	if got, _ := c.offset(); got != time.Hour-30*time.Second {
		t.Errorf("offset: got %v, want %v", got, time.Hour-30*time.Second)
	}
}

// TestControllerClockRealReadings: the agent's readings carry a monotonic
// reading, the decoded SentAt does not; the two still combine.
func TestControllerClockRealReadings(t *testing.T) {
	t.Parallel()
	own := func() time.Time { return time.Now().Add(5 * time.Hour) }
	c := &controllerClock{own: own, log: slog.New(slog.DiscardHandler)}
	sent := time.Now().Round(0) // as decoded: no monotonic reading
	c.observe(sent, own())
	if d := c.now().Sub(time.Now()).Abs(); d > time.Second {
		t.Errorf("controller time is %v off the controller's clock", d)
	}
	if got, _ := c.offset(); (got - 5*time.Hour).Abs() > time.Second {
		t.Errorf("offset: got %v, want 5h", got)
	}
}

// TestControllerClockWarns: one warning when the offset goes beyond a few
// seconds, one note when it comes back, nothing in between.
func TestControllerClockWarns(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	own := &manualClock{t: controllerT0}
	c := &controllerClock{own: own.now, log: slog.New(slog.NewTextHandler(&buf, nil))}
	c.watch() // no set yet: nothing known, nothing said
	c.observe(controllerT0, own.now())
	c.watch()
	if buf.Len() != 0 {
		t.Fatalf("in step: got log %q, want none", buf.String())
	}
	for range 3 {
		c.observe(own.now().Add(-2*time.Hour), own.now())
		c.watch()
	}
	if got := strings.Count(buf.String(), "level=WARN"); got != 1 || !strings.Contains(buf.String(), "2h0m0s ahead") || !strings.Contains(buf.String(), "NTP") {
		t.Fatalf("hours ahead: got log %q, want one warning saying 2h0m0s ahead and NTP", buf.String())
	}
	buf.Reset()
	c.observe(own.now().Add(-4*time.Second), own.now()) // better, not yet good
	c.watch()
	if buf.Len() != 0 {
		t.Fatalf("4s ahead after 2h: got log %q, want none", buf.String())
	}
	c.observe(own.now(), own.now())
	c.watch()
	c.watch()
	if got := strings.Count(buf.String(), "level=INFO"); got != 1 || !strings.Contains(buf.String(), "agrees") {
		t.Fatalf("back in step: got log %q, want one note", buf.String())
	}
	buf.Reset()
	c.observe(own.now().Add(10*time.Second), own.now())
	c.watch()
	if !strings.Contains(buf.String(), "level=WARN") || !strings.Contains(buf.String(), "10s behind") {
		t.Fatalf("10s behind: got log %q, want a warning", buf.String())
	}
}
