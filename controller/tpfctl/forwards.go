package tpfctl

import (
	"context"
	"flag"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// defaultWaitTimeout is --wait's default: the contract's "up to 30 seconds"
// for a forward to be applied.
const defaultWaitTimeout = 30 * time.Second

var forwardsCreate = &command{
	path:     "forwards create",
	synopsis: "--router R --to ADDRESS:PORT --for DURATION --allow-from CIDR [--masquerade] [--wait [--timeout 30s]]",
	summary:  "open a forward; prints the entry point and port to connect to",
	about: `Opens a temporary port forward to ADDRESS:PORT behind router R (its id or
its name), usable from --allow-from until --for has passed, and prints where
to connect: the region's entry point and the forward's port.

--for takes a Go duration (2h, 90m, 1h30m) of whole minutes. With --wait,
tpfctl returns once the router (and the region's edge) put the forward in
place, exiting 6 if that takes longer than --timeout and 1 if the forward is
refused; the forward itself stays until it expires or is revoked. With
-o json the forward's latest JSON is printed even then, so that a script can
revoke it.`,
	run: runForwardsCreate,
}

func runForwardsCreate(ctx context.Context, x *invocation, cmd *command, args []string) error {
	var router, to, forText, allowFrom string
	var masquerade, wait bool
	timeout := defaultWaitTimeout
	fs := x.flagSet(cmd, func(fs *flag.FlagSet) {
		fs.StringVar(&router, "router", "", "the router `R`, by id or name")
		fs.StringVar(&to, "to", "", "the device behind the router, `ADDRESS:PORT` such as 192.168.88.43:22")
		fs.StringVar(&forText, "for", "", "how long the forward lasts, a `DURATION` of whole minutes (2h, 90m)")
		fs.StringVar(&allowFrom, "allow-from", "", "the only sources allowed to connect: an IPv4 address or `CIDR` from /24 to /32")
		fs.BoolVar(&masquerade, "masquerade", false, "also source-NAT the traffic, for devices whose default gateway is not the router")
		fs.BoolVar(&wait, "wait", false, "return once the forward is active")
		fs.DurationVar(&timeout, "timeout", timeout, "how long --wait waits, a `DURATION`")
	})
	if _, err := x.parse(cmd, fs, args); err != nil {
		return err
	}
	var missing []string
	for _, f := range []struct{ name, val string }{{"--router", router}, {"--to", to}, {"--for", forText}, {"--allow-from", allowFrom}} {
		if f.val == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return usageErrorf(seeHelp(cmd.path), "forwards create: missing %s", strings.Join(missing, ", "))
	}
	minutes, err := wholeMinutes(forText)
	if err != nil {
		return usageErrorf(seeHelp(cmd.path), "forwards create: %v", err)
	}
	address, port, err := splitTarget(to)
	if err != nil {
		return usageErrorf(seeHelp(cmd.path), "forwards create: %v", err)
	}
	if isFlagSet(fs, "timeout") && !wait {
		return usageErrorf(seeHelp(cmd.path), "forwards create: --timeout applies to --wait; add --wait")
	}
	if timeout <= 0 {
		return usageErrorf(seeHelp(cmd.path), "forwards create: --timeout must be positive, such as 30s or 2m")
	}

	c, err := x.client()
	if err != nil {
		return err
	}
	rt, err := resolveRouter(ctx, c, router)
	if err != nil {
		return err
	}
	f, raw, err := c.CreateForward(ctx, rt.ID, NewForward{
		ExpireAfterMinutes: minutes, DstPort: port, DstAddress: address, AllowFrom: allowFrom, Masquerade: masquerade,
	})
	if err != nil {
		return fmt.Errorf("create forward on router %s: %w", router, err)
	}
	if !x.json() {
		x.printForward(f, rt)
	}
	if !wait {
		if x.json() {
			x.writeRaw(raw)
		}
		return nil
	}
	if !x.json() {
		fmt.Fprintf(x.stderr, "Waiting up to %s for the forward to become active…\n", timeout)
	}
	f, raw, err = x.waitActive(ctx, c, router, rt.ID, f, raw, timeout)
	if x.json() {
		x.writeRaw(raw)
	} else if err == nil {
		fmt.Fprintf(x.stdout, "\nActive: connect to %s\n", connectTo(f))
	}
	return err
}

// waitActive reads the forward every PollInterval until it is active, ends,
// is refused, or timeout passes. It answers the forward's latest state.
func (x *invocation) waitActive(ctx context.Context, c *Client, routerArg, routerID string, f Forward, raw []byte, timeout time.Duration) (Forward, []byte, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(x.prog.PollInterval)
	defer tick.Stop()
	timedOut := func() error {
		msg := fmt.Sprintf("forward %s is still %s after %s", f.ID, f.Status, timeout)
		if f.RouterError != nil {
			msg += "; router error: " + *f.RouterError
		}
		if f.EdgeError != nil {
			msg += "; edge error: " + *f.EdgeError
		}
		return &codedError{code: ExitTimeout, msg: msg,
			hint: fmt.Sprintf("It stays in place until it expires; 'tpfctl routers get %s' shows the router's agent, 'tpfctl forwards revoke --router %s %s' ends it.", routerArg, routerArg, f.ID)}
	}
	for {
		switch {
		case f.Status == "active":
			return f, raw, nil
		case f.Status == "removing" || f.Status == "removed":
			return f, raw, &codedError{code: ExitError, msg: fmt.Sprintf("forward %s ended before it became active: %s", f.ID, forwardState(f))}
		case f.RouterError != nil && strings.HasPrefix(*f.RouterError, "refused"):
			// The agent's own checks refused it; it will not become active.
			return f, raw, &codedError{code: ExitError, msg: fmt.Sprintf("router %s refused forward %s: %s", routerArg, f.ID, *f.RouterError)}
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return f, raw, fmt.Errorf("stopped waiting for forward %s: %w", f.ID, ctx.Err())
			}
			return f, raw, timedOut()
		case <-tick.C:
		}
		next, nextRaw, err := c.Forward(wctx, routerID, f.ID)
		if err != nil {
			if wctx.Err() != nil && ctx.Err() == nil {
				return f, raw, timedOut()
			}
			return f, raw, fmt.Errorf("wait for forward %s: %w", f.ID, err)
		}
		f, raw = next, nextRaw
	}
}

// printForward writes a forward for a person, where to connect first.
func (x *invocation) printForward(f Forward, rt Router) {
	router := f.RouterID
	if rt.Name != "" {
		router = rt.Name + " (" + f.RouterID + ")"
	}
	masq := "no"
	if f.Masquerade {
		masq = "yes"
	}
	kv := []string{
		"connect to", connectTo(f),
		"reaches", destination(f),
		"allowed from", f.AllowOnlyCIDR,
		"expires", f.ExpiresAt + " (" + expiresText(f, x.prog.Now()) + ")",
		"status", forwardState(f),
		"id", f.ID,
		"router", router,
		"masquerade", masq,
		"connections", strconv.Itoa(f.ConnectionsActive) + " open",
		"created", f.CreatedAt,
	}
	if f.RevokedAt != nil {
		kv = append(kv, "revoked", *f.RevokedAt)
	}
	if f.RouterError != nil {
		kv = append(kv, "router error", *f.RouterError)
	}
	if f.EdgeError != nil {
		kv = append(kv, "edge error", *f.EdgeError)
	}
	writeFields(x.stdout, kv...)
}

var forwardsList = &command{
	path:     "forwards list",
	synopsis: "--router R [--all | --ended] [--limit N]",
	summary:  "a router's live forwards, or its history",
	about: `Lists router R's live forwards (neither expired nor revoked), oldest first;
with --all every forward, with --ended the ended ones, newest first.`,
	run: runForwardsList,
}

func runForwardsList(ctx context.Context, x *invocation, cmd *command, args []string) error {
	var router string
	var all, ended bool
	var limit int
	fs := x.flagSet(cmd, func(fs *flag.FlagSet) {
		fs.StringVar(&router, "router", "", "the router `R`, by id or name")
		fs.BoolVar(&all, "all", false, "every forward, newest first")
		fs.BoolVar(&ended, "ended", false, "the ended forwards (expired or revoked), newest first")
		fs.IntVar(&limit, "limit", 0, "at most `N` forwards of history, 1-1000 (default 100)")
	})
	if _, err := x.parse(cmd, fs, args); err != nil {
		return err
	}
	if router == "" {
		return usageErrorf(seeHelp(cmd.path), "forwards list: missing --router")
	}
	if all && ended {
		return usageErrorf(seeHelp(cmd.path), "forwards list: --all and --ended exclude each other")
	}
	state := ""
	switch {
	case all:
		state = "all"
	case ended:
		state = "ended"
	case limit != 0:
		return usageErrorf(seeHelp(cmd.path), "forwards list: --limit applies to --all and --ended; live forwards are always listed whole")
	}
	c, err := x.client()
	if err != nil {
		return err
	}
	rt, err := resolveRouter(ctx, c, router)
	if err != nil {
		return err
	}
	list, raw, err := c.Forwards(ctx, rt.ID, state, limit)
	if err != nil {
		return fmt.Errorf("list forwards of router %s: %w", router, err)
	}
	if x.json() {
		x.writeRaw(raw)
		return nil
	}
	if len(list) == 0 {
		what := "live forwards"
		switch state {
		case "all":
			what = "forwards"
		case "ended":
			what = "ended forwards"
		}
		fmt.Fprintf(x.stdout, "No %s on router %s.\n", what, router)
		return nil
	}
	t := newTable(x.stdout, "ID", "STATUS", "CONNECT TO", "DESTINATION", "ALLOW FROM", "EXPIRES", "CONNS")
	now := x.prog.Now()
	for _, f := range list {
		t.row(f.ID, forwardState(f), connectTo(f), destination(f), f.AllowOnlyCIDR, expiresText(f, now), strconv.Itoa(f.ConnectionsActive))
	}
	t.flush()
	return nil
}

var forwardsGet = &command{
	path:     "forwards get",
	synopsis: "--router R ID",
	summary:  "one forward, also an ended one",
	about:    `Shows forward ID of router R: where to connect, status, expiry and errors.`,
	run: func(ctx context.Context, x *invocation, cmd *command, args []string) error {
		c, rt, id, err := x.forwardArgs(ctx, cmd, args, nil)
		if err != nil {
			return err
		}
		f, raw, err := c.Forward(ctx, rt.ID, id)
		if err != nil {
			return fmt.Errorf("forward %s on router %s: %w", id, rt.arg, err)
		}
		if x.json() {
			x.writeRaw(raw)
			return nil
		}
		x.printForward(f, rt.Router)
		return nil
	},
}

var forwardsRevoke = &command{
	path:     "forwards revoke",
	synopsis: "--router R ID",
	summary:  "end a forward now",
	about: `Revokes forward ID of router R: it ends at once and the router removes its
rule. Revoking a forward that has already ended is harmless. Prints the
forward as it is afterwards.`,
	run: func(ctx context.Context, x *invocation, cmd *command, args []string) error {
		c, rt, id, err := x.forwardArgs(ctx, cmd, args, nil)
		if err != nil {
			return err
		}
		if err := c.RevokeForward(ctx, rt.ID, id); err != nil {
			return fmt.Errorf("revoke forward %s on router %s: %w", id, rt.arg, err)
		}
		f, raw, err := c.Forward(ctx, rt.ID, id)
		if err != nil {
			return fmt.Errorf("revoked forward %s on router %s, but reading it back failed: %w", id, rt.arg, err)
		}
		if x.json() {
			x.writeRaw(raw)
			return nil
		}
		if f.RevokedEarly {
			fmt.Fprintf(x.stdout, "Revoked forward %s (%s → %s); status %s.\n", f.ID, connectTo(f), destination(f), f.Status)
		} else {
			fmt.Fprintf(x.stdout, "Forward %s had already ended: %s.\n", f.ID, forwardState(f))
		}
		return nil
	},
}

var forwardsConnections = &command{
	path:     "forwards connections",
	synopsis: "--router R ID [--limit N]",
	summary:  "the connections the edge relayed for a forward",
	about: `Lists the connections the region's edge relayed for forward ID of router R,
newest first: source, start and end, bytes each way, why it ended.`,
	run: runConnections("forward", (*invocation).forwardArgs, (*Client).Connections),
}

// runConnections is the run of a connections command: it lists the
// connections of the thing of a kind ("forward", "access") that args name.
func runConnections(kind string,
	parse func(x *invocation, ctx context.Context, cmd *command, args []string, define func(fs *flag.FlagSet)) (*Client, namedRouter, string, error),
	list func(c *Client, ctx context.Context, router, id string, limit int) ([]Connection, []byte, error),
) func(ctx context.Context, x *invocation, cmd *command, args []string) error {
	return func(ctx context.Context, x *invocation, cmd *command, args []string) error {
		var limit int
		c, rt, id, err := parse(x, ctx, cmd, args, func(fs *flag.FlagSet) {
			fs.IntVar(&limit, "limit", 0, "at most `N` connections, 1-1000 (default 100)")
		})
		if err != nil {
			return err
		}
		conns, raw, err := list(c, ctx, rt.ID, id, limit)
		if err != nil {
			return fmt.Errorf("connections of %s %s on router %s: %w", kind, id, rt.arg, err)
		}
		if x.json() {
			x.writeRaw(raw)
			return nil
		}
		if len(conns) == 0 {
			fmt.Fprintf(x.stdout, "No connections through %s %s.\n", kind, id)
			return nil
		}
		x.connectionTable(conns)
		return nil
	}
}

// connectionTable writes connections as a table.
func (x *invocation) connectionTable(list []Connection) {
	t := newTable(x.stdout, "STARTED", "SOURCE", "ENDED", "UP", "DOWN", "REASON")
	for _, cn := range list {
		ended := "open"
		if cn.EndedAt != nil {
			ended = *cn.EndedAt
		}
		t.row(cn.StartedAt, cn.Source, ended, bytesText(cn.BytesUp), bytesText(cn.BytesDown), cn.Reason)
	}
	t.flush()
}

// namedRouter is a resolved router with the words the user named it by.
type namedRouter struct {
	Router
	arg string
}

// forwardArgs reads "--router R ID" (plus the flags define adds) and
// resolves R.
func (x *invocation) forwardArgs(ctx context.Context, cmd *command, args []string, define func(fs *flag.FlagSet)) (*Client, namedRouter, string, error) {
	var router string
	fs := x.flagSet(cmd, func(fs *flag.FlagSet) {
		fs.StringVar(&router, "router", "", "the router `R`, by id or name")
		if define != nil {
			define(fs)
		}
	})
	ops, err := x.parse(cmd, fs, args, "ID")
	if err != nil {
		return nil, namedRouter{}, "", err
	}
	if router == "" {
		return nil, namedRouter{}, "", usageErrorf(seeHelp(cmd.path), "%s: missing --router", cmd.path)
	}
	c, err := x.client()
	if err != nil {
		return nil, namedRouter{}, "", err
	}
	rt, err := resolveRouter(ctx, c, router)
	if err != nil {
		return nil, namedRouter{}, "", err
	}
	return c, namedRouter{Router: rt, arg: router}, ops[0], nil
}

// resolveRouter finds the router arg names: an id is taken as it is (the
// API answers 404 for a foreign or unknown one), anything else is looked up
// by name among the account's routers.
func resolveRouter(ctx context.Context, c *Client, arg string) (Router, error) {
	if isUUID(arg) {
		return Router{ID: strings.ToLower(arg)}, nil
	}
	list, _, err := c.Routers(ctx)
	if err != nil {
		return Router{}, fmt.Errorf("look up router %q: %w", arg, err)
	}
	var found []Router
	for _, r := range list {
		if r.Name == arg {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		return Router{}, &codedError{code: ExitNotFound, msg: fmt.Sprintf("no router is named %q", arg),
			hint: "'tpfctl routers list' shows the routers and their ids."}
	case 1:
		return found[0], nil
	}
	ids := make([]string, len(found))
	for i, r := range found {
		ids[i] = r.ID
	}
	return Router{}, usageErrorf("", "%d routers are named %q; name one by its id: %s", len(found), arg, strings.Join(ids, ", "))
}

// wholeMinutes reads --for: a positive Go duration of whole minutes.
func wholeMinutes(text string) (int64, error) {
	d, err := time.ParseDuration(text)
	if err != nil {
		return 0, fmt.Errorf("--for %q is not a duration such as 2h, 90m or 1h30m", text)
	}
	if d <= 0 {
		return 0, fmt.Errorf("--for %s must be positive", text)
	}
	if d%time.Minute != 0 {
		down, up := d.Truncate(time.Minute), d.Truncate(time.Minute)+time.Minute
		try := minutesText(up)
		if down > 0 {
			try = minutesText(down) + " or " + try
		}
		return 0, fmt.Errorf("--for %s is not a whole number of minutes; forwards last whole minutes (try %s)", text, try)
	}
	return int64(d / time.Minute), nil
}

// minutesText writes a whole-minute duration without zero units: 2h, 1h30m.
func minutesText(d time.Duration) string {
	s := strings.TrimSuffix(d.String(), "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// splitTarget reads --to ADDRESS:PORT. The address goes to the API as
// written, so that its rules and messages apply.
func splitTarget(to string) (string, int, error) {
	host, portText, err := net.SplitHostPort(to)
	if err != nil || host == "" {
		return "", 0, fmt.Errorf("--to %q is not ADDRESS:PORT such as 192.168.88.43:22", to)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return "", 0, fmt.Errorf("--to %q: the port %q is not a number", to, portText)
	}
	return host, port, nil
}

// isFlagSet reports whether the command line set flag name.
func isFlagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

// bytesText writes a byte count in binary units: 512 B, 1.5 KiB, 3.2 MiB.
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
