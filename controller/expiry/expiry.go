// Package expiry runs the controller's expiry clock: it ends forwards at their
// expires_at without any request, and frees the ports of ended forwards whose
// router never confirmed the removal once a grace period has passed.
//
// Every serve replica runs one; the store's row locks make sure each forward
// is ended once.
package expiry

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/tpf-dev/tpf/controller/forwards"
)

// Defaults for Config's zero values.
const (
	DefaultInterval  = time.Second
	DefaultPortGrace = 10 * time.Minute
	defaultBatch     = 500
)

// Config configures a Clock. The zero value is ready to use.
type Config struct {
	// Now reads the clock; nil means time.Now.
	Now func() time.Time
	// Interval is the longest wait between two checks; zero means
	// DefaultInterval. The clock also wakes at the next known expiry.
	Interval time.Duration
	// PortGrace is how long a port stays held after its forward ended when
	// the router has not confirmed the removal; zero means DefaultPortGrace.
	PortGrace time.Duration
	// Logger receives errors and a line per batch; nil discards.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.PortGrace <= 0 {
		c.PortGrace = DefaultPortGrace
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Clock is the expiry service. Start it once; Stop is safe to call twice.
type Clock struct {
	svc *forwards.Service
	cfg Config

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a Clock over the forwards service.
func New(svc *forwards.Service, cfg Config) *Clock {
	return &Clock{svc: svc, cfg: cfg.withDefaults()}
}

// Tick ends every forward due at the clock's now and frees ports past their
// grace period. It returns how many forwards it ended and ports it freed.
func (c *Clock) Tick(ctx context.Context) (ended int, released int64, err error) {
	now := c.cfg.Now().UTC().Truncate(time.Second)
	for {
		n, err := c.svc.ExpireDue(ctx, now, defaultBatch)
		ended += n
		if err != nil {
			return ended, 0, err
		}
		if n < defaultBatch {
			break
		}
	}
	released, err = c.svc.ReleasePorts(ctx, now.Add(-c.cfg.PortGrace), now)
	return ended, released, err
}

// Start runs the clock in the background until ctx ends or Stop is called.
func (c *Clock) Start(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		return
	}
	ctx, c.cancel = context.WithCancel(ctx)
	c.done = make(chan struct{})
	go c.run(ctx, c.done)
}

// Stop stops the clock and waits for it to finish.
func (c *Clock) Stop() {
	c.mu.Lock()
	cancel, done := c.cancel, c.done
	c.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

func (c *Clock) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		ended, released, err := c.Tick(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			c.cfg.Logger.Error("expiry clock", "err", err)
		case ended > 0 || released > 0:
			c.cfg.Logger.Info("expiry clock", "forwards_ended", ended, "ports_released", released)
		}
		timer.Reset(c.wait(ctx))
	}
}

// wait is how long to sleep: until the next expiry, but no longer than the
// interval (forwards created meanwhile, possibly on another replica).
func (c *Clock) wait(ctx context.Context) time.Duration {
	wait := c.cfg.Interval
	next, ok, err := c.svc.NextExpiry(ctx)
	if err != nil || !ok {
		return wait
	}
	if d := next.Sub(c.cfg.Now()); d < wait {
		wait = max(d, skippedWait)
	}
	return wait
}

// skippedWait is the shortest pause between ticks. A forward still due after
// a tick belongs to a router another transaction holds (a request, or
// another replica's clock, which skip each other); it is retried this soon,
// rather than in a busy loop.
const skippedWait = 25 * time.Millisecond
