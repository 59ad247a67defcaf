package daemon

import (
	"sync"
	"time"
)

// Bounds on the router clock's offset from the controller's.
const (
	// clockNoise is what one SentAt cannot resolve: the controller writes it
	// in whole seconds and the set spends some time in transit. Within it,
	// the router's own clock (then NTP-synchronised like the controller's)
	// is the more precise one and decides expiry.
	clockNoise = 2 * time.Second
	// clockWarn is the offset beyond which the agent warns that the
	// router's clock is off; it says so again once the offset is back
	// within clockNoise.
	clockWarn = 5 * time.Second
)

// controllerClock tells the controller's time on the agent. Many routers
// have no battery-backed clock and run hours off until NTP answers, so the
// agent decides expiry on the controller's clock: the SentAt of the newest
// set plus the time elapsed since it arrived, measured on the monotonic
// reading of the agent's own clock (which a wall-clock step does not move).
// Before any set, nothing better is known than the agent's own clock. The
// last reading outlives the link: losing the controller does not lose its
// time.
type controllerClock struct {
	own func() time.Time // the agent's clock (Config.Now)
	log logger

	mu       sync.Mutex
	sentAt   time.Time // the newest set's SentAt; zero before the first
	received time.Time // own clock when it arrived, monotonic reading included
	off      bool      // the offset went beyond clockWarn and was reported
}

// observe takes the controller's clock reading sentAt, which arrived at
// received on the agent's own clock. A zero sentAt (a controller that does
// not say) changes nothing.
func (c *controllerClock) observe(sentAt, received time.Time) {
	if sentAt.IsZero() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sentAt, c.received = sentAt, received
}

// now returns the time to decide expiry on: the controller's, or the
// agent's own before any set and while the two agree within clockNoise.
func (c *controllerClock) now() time.Time {
	now, _, _ := c.read()
	return now
}

// offset returns the agent's wall clock minus the controller's; false
// before any set.
func (c *controllerClock) offset() (time.Duration, bool) {
	_, off, ok := c.read()
	return off, ok
}

func (c *controllerClock) read() (now time.Time, offset time.Duration, known bool) {
	own := c.own()
	c.mu.Lock()
	sentAt, received := c.sentAt, c.received
	c.mu.Unlock()
	if sentAt.IsZero() {
		return own, 0, false
	}
	// Sub uses the monotonic readings when both times carry one.
	ctrl := sentAt.Add(own.Sub(received))
	offset = own.Round(0).Sub(ctrl) // wall clock against wall clock
	if offset.Abs() <= clockNoise {
		return own, offset, true
	}
	return ctrl, offset, true
}

// watch logs once when the offset goes beyond clockWarn, and once when it
// is back within clockNoise.
func (c *controllerClock) watch() {
	offset, ok := c.offset()
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case !c.off && offset.Abs() > clockWarn:
		c.off = true
		c.log.Warn("the router's clock is off; expiry follows the controller's clock: configure NTP on the router (/system ntp client)",
			"off_by", describeOffset(offset))
	case c.off && offset.Abs() <= clockNoise:
		c.off = false
		c.log.Info("the router's clock agrees with the controller's again", "off_by", describeOffset(offset))
	}
}

// describeOffset says "3h0m0s ahead" or "2m10s behind".
func describeOffset(offset time.Duration) string {
	if offset < 0 {
		return (-offset).Round(time.Second).String() + " behind"
	}
	return offset.Round(time.Second).String() + " ahead"
}
