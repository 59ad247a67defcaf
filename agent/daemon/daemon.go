// Package daemon is the agent's long-running service: it keeps the link to
// the controller, remembers the newest desired set, and reconciles the
// router with it (the management tunnel, the forwards' NAT rules and the
// transient accesses) on every set, at the next expiry, after
// reconnecting to the router and periodically.
//
// Expiry is decided on the controller's clock, as told by the sets' SentAt
// (clock.go), not on the router's, which may be hours off after a reboot.
//
// It fails closed: a forward's rules, and an access's user and rule (its
// sessions logged out first), are removed at their expiry also while the
// controller is unreachable, and after a restart (the expiry is in their
// comment) even before the controller has sent a set, then on the
// router's own clock.
//
// Access passwords live in memory only: taken out of each set as it
// arrives (the set is kept without them), held by access id so that a
// user removed behind the agent's back can be made again, and forgotten
// when the access ends. They are never logged nor reported.
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/tpf-dev/tpf/agent/reconcile"
	"github.com/tpf-dev/tpf/agent/routeros"
	"github.com/tpf-dev/tpf/shared/forward"
	"github.com/tpf-dev/tpf/shared/peerlink"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// Defaults for Config's zero values.
const (
	DefaultResync    = 30 * time.Second
	DefaultHeartbeat = 20 * time.Second
)

// Config configures the agent. ControllerURL, Token and Router.Address are
// required.
type Config struct {
	// ControllerURL is the controller's base URL, http(s)://host[:port].
	ControllerURL string
	// Token is the router's agent token.
	Token string
	// ControllerTLS verifies the controller; nil means the system roots.
	ControllerTLS *tls.Config
	// Router says how to reach the router's API.
	Router routeros.Config
	// Version is the agent's version, reported to the controller.
	Version string
	// Now reads the agent's own clock; nil means time.Now. Its readings
	// should carry a monotonic reading, as time.Now's do (and times derived
	// from them with Add): the controller's time is the newest set's SentAt
	// plus the time elapsed since it arrived, measured on this clock.
	Now func() time.Time
	// Resync is the longest time between two passes; zero means
	// DefaultResync.
	Resync time.Duration
	// Heartbeat is how often the link pings the controller; zero means
	// DefaultHeartbeat.
	Heartbeat time.Duration
	// Logger receives what the agent does; nil discards.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Resync <= 0 {
		c.Resync = DefaultResync
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Daemon is the agent. Run it once.
type Daemon struct {
	cfg   Config
	link  *peerlink.Client // to the controller; carries the newest report
	wake  chan struct{}    // a pass is wanted; holds at most one request
	clock *controllerClock // the controller's time, for expiry

	mu      sync.Mutex
	desired *syncproto.Desired // newest set received, without passwords; nil before the first
	// passwords are the access passwords received, by access id, until
	// the access ends (forgetPasswords).
	passwords map[string]string
	system    syncproto.Router // what the router said about itself
	// tunnelError is the tunnel's last error, to log only its changes.
	tunnelError string
	// handshakeWaitSince is when the tunnel's peer was first seen without
	// a recent handshake; zero while it has one.
	handshakeWaitSince time.Time
}

// New checks cfg and returns a Daemon.
func New(cfg Config) (*Daemon, error) {
	cfg = cfg.withDefaults()
	url, err := AgentURL(cfg.ControllerURL)
	if err != nil {
		return nil, err
	}
	if cfg.Token == "" {
		return nil, errors.New("no agent token: set TPF_AGENT_TOKEN to the token shown when the router was created")
	}
	if cfg.Router.Address == "" {
		return nil, errors.New("no RouterOS API address")
	}
	d := &Daemon{
		cfg:       cfg,
		wake:      make(chan struct{}, 1),
		clock:     &controllerClock{own: cfg.Now, log: cfg.Logger},
		passwords: map[string]string{},
	}
	if d.link, err = d.newLink(url); err != nil {
		return nil, err
	}
	return d, nil
}

// Run runs the agent: the link to the controller and the passes. It blocks
// until ctx ends, then returns nil; the connections it opened are closed.
func (d *Daemon) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { d.link.Run(ctx) })
	wg.Go(func() { d.reconcileLoop(ctx) })
	wg.Wait()
	return nil
}

// Desired returns the newest desired set received, nil before the first.
// Its accesses carry no password: the Daemon keeps those apart.
func (d *Daemon) Desired() *syncproto.Desired {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.desired
}

func (d *Daemon) hello() *syncproto.Hello {
	d.mu.Lock()
	defer d.mu.Unlock()
	return &syncproto.Hello{AgentVersion: d.cfg.Version, Router: d.system}
}

// setDesired keeps a set unless it is older than the one held (a delayed
// message), takes the controller's clock from the set kept, and asks for a
// pass.
func (d *Daemon) setDesired(s *syncproto.Desired) {
	received := d.cfg.Now()
	d.mu.Lock()
	keep := d.desired == nil || s.Revision >= d.desired.Revision
	if keep {
		d.desired = d.takePasswordsLocked(s)
	}
	d.mu.Unlock()
	if keep {
		d.clock.observe(s.SentAt, received)
	}
	d.poke()
}

// takePasswordsLocked keeps the passwords of s's accesses and returns a
// copy of s without them.
func (d *Daemon) takePasswordsLocked(s *syncproto.Desired) *syncproto.Desired {
	if len(s.Accesses) == 0 {
		return s
	}
	out := *s
	out.Accesses = slices.Clone(s.Accesses)
	for i, a := range out.Accesses {
		if a.Password != "" {
			d.passwords[a.ID] = a.Password
			out.Accesses[i].Password = ""
		}
	}
	return &out
}

// heldPasswords returns a copy of the passwords held.
func (d *Daemon) heldPasswords() map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.passwords)
}

// forgetPasswords forgets the password of every access that has ended at
// now: gone from the newest set, or expired.
func (d *Daemon) forgetPasswords(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.desired == nil {
		return
	}
	live := map[string]bool{}
	for _, a := range d.desired.Accesses {
		if a.ExpiresAt.After(now) {
			live[a.ID] = true
		}
	}
	maps.DeleteFunc(d.passwords, func(id, _ string) bool { return !live[id] })
}

func (d *Daemon) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// report hands the newest report to the link, replacing one not yet sent.
func (d *Daemon) report(r *syncproto.Report) {
	if err := d.link.Publish(r); err != nil {
		d.cfg.Logger.Warn("report not sent", "err", err)
	}
}

// reconcileLoop runs passes until ctx ends: when woken, when the next
// expiry comes, after a failure (with backoff) and every Resync.
func (d *Daemon) reconcileLoop(ctx context.Context) {
	var client *routeros.Client
	defer func() {
		if client != nil {
			client.Close()
		}
	}()
	retry := backoff.NewExponentialBackOff()
	retry.InitialInterval = time.Second
	retry.MaxInterval = 30 * time.Second
	retry.MaxElapsedTime = 0
	timer := time.NewTimer(0) // a first pass at once: enforce expiry before any set
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-timer.C:
		}
		next, err := d.pass(ctx, &client)
		wait := d.cfg.Resync
		if err != nil {
			// A router that refused a step keeps its connection; a broken
			// one is dialled again.
			if client != nil && errors.Is(err, routeros.ErrBroken) {
				client.Close()
				client = nil
			}
			wait = retry.NextBackOff()
			d.cfg.Logger.Warn("reconcile failed", "err", err, "retry_in", wait.Round(time.Millisecond))
		} else {
			retry.Reset()
		}
		if !next.IsZero() {
			if until := next.Sub(d.clock.now()); until < wait {
				wait = max(until, 0)
			}
		}
		timer.Reset(wait)
	}
}

// pass makes the router hold the desired set once and reports it. It
// returns when the next pass is due at the latest (zero: no expiry known).
func (d *Daemon) pass(ctx context.Context, client **routeros.Client) (time.Time, error) {
	desired := d.Desired()
	rep := &syncproto.Report{AgentVersion: d.cfg.Version, Results: []syncproto.Result{}, Present: []string{}}
	if desired != nil {
		rep.Revision = desired.Revision
	}
	next, err := d.apply(ctx, client, desired, rep)
	if err != nil {
		rep.Error = err.Error()
	}
	d.mu.Lock()
	rep.Router = d.system
	d.mu.Unlock()
	d.clock.watch()
	if offset, ok := d.clock.offset(); ok {
		ms := offset.Milliseconds()
		rep.ClockOffsetMillis = &ms
	}
	d.report(rep)
	return next, err
}

func (d *Daemon) apply(ctx context.Context, client **routeros.Client, desired *syncproto.Desired, rep *syncproto.Report) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if *client == nil {
		c, err := routeros.Dial(ctx, d.cfg.Router)
		if err != nil {
			return time.Time{}, err
		}
		*client = c
		if sys, err := c.System(ctx); err == nil {
			d.mu.Lock()
			d.system = sys
			d.mu.Unlock()
		}
		d.cfg.Logger.Info("connected to the router", "address", d.cfg.Router.Address)
	}
	c := *client
	// The tunnel first: it is the forwards' way in, and a refused rule
	// must not keep it from being repaired.
	var want *syncproto.Tunnel
	if desired != nil {
		want = desired.Tunnel
	}
	tun, err := c.ApplyTunnel(ctx, want, desired != nil, d.clock.now())
	if err != nil {
		return time.Time{}, err
	}
	rep.Tunnel = tun
	d.noteTunnel(tun)
	rules, err := c.NATRules(ctx)
	if err != nil {
		return time.Time{}, err
	}
	plan := reconcile.Compute(desired, rules, d.clock.now())
	if soon := d.tunnelRecheck(tun); !soon.IsZero() && (plan.Next.IsZero() || soon.Before(plan.Next)) {
		plan.Next = soon
	}
	out, err := c.Apply(ctx, plan)
	if err != nil {
		return plan.Next, err
	}
	rep.Results = append(rep.Results, out.Results(plan.Results)...)
	// What the router holds now, read back rather than assumed.
	after, err := c.NATRules(ctx)
	if err != nil {
		return plan.Next, err
	}
	rep.Present = present(after)
	if !plan.Empty() {
		d.cfg.Logger.Info("reconciled", "revision", rep.Revision, "removed", len(plan.Remove), "fixed", len(plan.Set), "added", len(plan.Add), "flushed", len(plan.Flush))
	}

	// The accesses last: their input rules name the tunnel's interface.
	now := d.clock.now()
	acc, err := c.ApplyAccesses(ctx, desired, d.heldPasswords(), now)
	next := earliest(plan.Next, acc.Next)
	if err != nil {
		return next, errors.Join(out.Err(), err)
	}
	d.forgetPasswords(now)
	rep.Results = append(rep.Results, acc.Results...)
	for _, id := range acc.Present {
		if !slices.Contains(rep.Present, id) {
			rep.Present = append(rep.Present, id)
		}
	}
	if acc.Changes > 0 || len(acc.Errors) > 0 {
		d.cfg.Logger.Info("accesses reconciled", "revision", rep.Revision, "changes", acc.Changes, "failed", len(acc.Errors))
	}
	return next, errors.Join(out.Err(), acc.Err())
}

// earliest returns the earlier of two times, zero meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// How soon the next pass comes while the tunnel waits for a handshake, so
// that the controller learns of it quickly (forwards of a managed region
// become active only once it shook hands): every second for the first
// handshakeHurry of waiting (WireGuard retries its first initiation after
// 5 s, and the pass that reads it should not add another 5), then at the
// usual resync, so that a tunnel that cannot come up (UDP blocked on the
// way) does not keep the router's API busy.
const (
	handshakeWait  = time.Second
	handshakeHurry = 30 * time.Second
)

// tunnelRecheck returns when to look at the tunnel again: soon while its
// peer has not shaken hands lately and has not waited long, zero otherwise.
func (d *Daemon) tunnelRecheck(t *syncproto.TunnelState) time.Time {
	now := d.clock.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if t == nil || len(t.Peers) == 0 {
		d.handshakeWaitSince = time.Time{}
		return time.Time{}
	}
	if hs := t.Peers[0].LastHandshake; !hs.IsZero() && now.Sub(hs) < 150*time.Second {
		d.handshakeWaitSince = time.Time{}
		return time.Time{}
	}
	if d.handshakeWaitSince.IsZero() {
		d.handshakeWaitSince = now
	}
	if now.Sub(d.handshakeWaitSince) > handshakeHurry {
		return time.Time{}
	}
	return now.Add(handshakeWait)
}

// noteTunnel logs when the tunnel's error changes.
func (d *Daemon) noteTunnel(t *syncproto.TunnelState) {
	msg := ""
	if t != nil {
		msg = t.Error
	}
	d.mu.Lock()
	changed := msg != d.tunnelError
	d.tunnelError = msg
	d.mu.Unlock()
	switch {
	case changed && msg != "":
		d.cfg.Logger.Warn("management tunnel", "err", msg)
	case changed:
		d.cfg.Logger.Info("management tunnel in place")
	}
}

// present lists the forward ids that have a tpf rule among rules.
func present(rules []reconcile.Rule) []string {
	ids := []string{}
	seen := map[string]bool{}
	for _, r := range rules {
		tag, err := forward.ParseTag(r.Props["comment"])
		if err != nil || seen[tag.ID] {
			continue
		}
		seen[tag.ID] = true
		ids = append(ids, tag.ID)
	}
	return ids
}
