package tpfctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Transient access: time-limited WinBox and SSH logins to a router itself
// (POST, GET, DELETE /api/routers/{router_id}/transient-access).

var accessCreate = &command{
	path:     "access create",
	synopsis: "R --type winbox|ssh --for DURATION --allow-from CIDR [--read-only]",
	summary:  "open a WinBox or SSH login to a router; shows its password once",
	about: `Opens a time-limited login to router R itself (its id or its name): a
RouterOS user of its own, reached through the region's entry point from
--allow-from only, until --for has passed or it is revoked. Prints where to
connect, the user and its password, and for SSH the command line that logs
in.

The password is shown this once: tpf keeps no copy. Lost, revoke the access
and open another. With -o json, the API's access object, password included.

--for takes a Go duration of whole minutes (1h, 90m), as for forwards;
--minutes N is the same as --for Nm, --from the same as --allow-from. The
login works once the router's agent has added the user ('tpfctl access get'
shows the status turn active).`,
	run: runAccessCreate,
}

func runAccessCreate(ctx context.Context, x *invocation, cmd *command, args []string) error {
	var router, service, forText, allowFrom, from string
	var minutes int64
	var readOnly bool
	fs := x.flagSet(cmd, func(fs *flag.FlagSet) {
		fs.StringVar(&service, "type", "", "`TYPE` of the login: winbox or ssh")
		fs.StringVar(&forText, "for", "", "how long the login lasts, a `DURATION` of whole minutes (1h, 90m)")
		fs.Int64Var(&minutes, "minutes", 0, "how long the login lasts, `N` minutes (instead of --for)")
		fs.StringVar(&allowFrom, "allow-from", "", "the only sources allowed to connect: an IPv4 address or `CIDR` from /24 to /32")
		fs.StringVar(&from, "from", "", "`CIDR`, the same as --allow-from")
		fs.BoolVar(&readOnly, "read-only", false, "the user may read the configuration, not change it")
		fs.StringVar(&router, "router", "", "the router `R`, by id or name, instead of the first argument")
	})
	if _, err := x.parseRouter(cmd, fs, args, &router); err != nil {
		return err
	}
	switch {
	case isFlagSet(fs, "for") && isFlagSet(fs, "minutes"):
		return usageErrorf(seeHelp(cmd.path), "access create: give --for or --minutes, not both")
	case allowFrom != "" && from != "":
		return usageErrorf(seeHelp(cmd.path), "access create: give --allow-from or --from, not both")
	}
	if allowFrom == "" {
		allowFrom = from
	}
	var missing []string
	if service == "" {
		missing = append(missing, "--type")
	}
	if forText == "" && !isFlagSet(fs, "minutes") {
		missing = append(missing, "--for")
	}
	if allowFrom == "" {
		missing = append(missing, "--allow-from")
	}
	if len(missing) > 0 {
		return usageErrorf(seeHelp(cmd.path), "access create: missing %s", strings.Join(missing, ", "))
	}
	if service != "winbox" && service != "ssh" {
		return usageErrorf(seeHelp(cmd.path), "access create: --type %s: the type is winbox or ssh", service)
	}
	if forText != "" {
		var err error
		if minutes, err = wholeMinutes(forText); err != nil {
			return usageErrorf(seeHelp(cmd.path), "access create: %v", err)
		}
	} else if minutes <= 0 {
		return usageErrorf(seeHelp(cmd.path), "access create: --minutes %d must be positive", minutes)
	}

	c, err := x.client()
	if err != nil {
		return err
	}
	rt, err := resolveRouter(ctx, c, router)
	if err != nil {
		return err
	}
	a, raw, err := c.CreateAccess(ctx, rt.ID, NewAccess{Type: service, ExpireAfterMinutes: minutes, AllowFrom: allowFrom, ReadOnly: readOnly})
	if err != nil {
		return fmt.Errorf("open %s access to router %s: %w", service, router, err)
	}
	if x.json() {
		x.writeRaw(raw)
		return nil
	}
	x.printAccess(a, rt)
	fmt.Fprintln(x.stderr, "The password is shown only now: tpf keeps no copy. Lost, revoke the access and open another.")
	return nil
}

// printAccess writes an access for a person, where to connect first, then
// the login: the ssh command line, the user, and the password when the
// answer carries it (a create).
func (x *invocation) printAccess(a Access, rt Router) {
	router := a.RouterID
	if rt.Name != "" {
		router = rt.Name + " (" + a.RouterID + ")"
	}
	kv := []string{"connect to", accessConnectTo(a)}
	if a.SSHCommand != "" {
		kv = append(kv, "ssh", a.SSHCommand)
	} else if a.Type == "winbox" {
		kv[1] += "  (WinBox: Connect To)"
	}
	kv = append(kv, "username", a.Username)
	if a.Password != "" {
		kv = append(kv, "password", a.Password)
	}
	kv = append(kv,
		"type", accessType(a),
		"allowed from", a.AllowFrom,
		"expires", a.ExpiresAt+" ("+accessExpires(a, x.prog.Now())+")",
		"status", accessState(a),
		"id", a.ID,
		"router", router,
		"connections", strconv.Itoa(a.ConnectionsActive)+" open",
		"created", a.CreatedAt,
	)
	if a.RevokedAt != nil {
		kv = append(kv, "revoked", *a.RevokedAt)
	}
	if a.RouterError != nil {
		kv = append(kv, "router error", *a.RouterError)
	}
	if a.EdgeError != nil {
		kv = append(kv, "edge error", *a.EdgeError)
	}
	if a.TunnelError != nil {
		kv = append(kv, "tunnel error", *a.TunnelError)
	}
	writeFields(x.stdout, kv...)
}

var accessList = &command{
	path:     "access list",
	synopsis: "R [--all [--limit N]]",
	summary:  "a router's live WinBox and SSH logins, or all of them",
	about: `Lists router R's live accesses (neither expired nor revoked), newest first:
type, user, status, where to connect, allowed source and when it ends; with
--all the ended ones too. Passwords are never listed.`,
	run: runAccessList,
}

func runAccessList(ctx context.Context, x *invocation, cmd *command, args []string) error {
	var router string
	var all bool
	var limit int
	fs := x.flagSet(cmd, func(fs *flag.FlagSet) {
		fs.BoolVar(&all, "all", false, "every access, also the ended ones")
		fs.IntVar(&limit, "limit", 0, "at most `N` accesses with --all, 1-1000 (default 100)")
		fs.StringVar(&router, "router", "", "the router `R`, by id or name, instead of the first argument")
	})
	if _, err := x.parseRouter(cmd, fs, args, &router); err != nil {
		return err
	}
	if limit != 0 && !all {
		return usageErrorf(seeHelp(cmd.path), "access list: --limit applies to --all; live accesses are always listed whole")
	}
	c, err := x.client()
	if err != nil {
		return err
	}
	rt, err := resolveRouter(ctx, c, router)
	if err != nil {
		return err
	}
	list, raw, err := c.Accesses(ctx, rt.ID, all, limit)
	if err != nil {
		return fmt.Errorf("list accesses of router %s: %w", router, err)
	}
	if x.json() {
		x.writeRaw(raw)
		return nil
	}
	if len(list) == 0 {
		what := "live accesses"
		if all {
			what = "accesses"
		}
		fmt.Fprintf(x.stdout, "No %s on router %s.\n", what, router)
		return nil
	}
	t := newTable(x.stdout, "ID", "TYPE", "USER", "STATUS", "CONNECT TO", "ALLOW FROM", "EXPIRES", "CONNS")
	now := x.prog.Now()
	for _, a := range list {
		t.row(a.ID, accessType(a), a.Username, accessState(a), accessConnectTo(a), a.AllowFrom, accessExpires(a, now), strconv.Itoa(a.ConnectionsActive))
	}
	t.flush()
	return nil
}

var accessGet = &command{
	path:     "access get",
	synopsis: "R ID",
	summary:  "one access, also an ended one (never its password)",
	about:    `Shows access ID of router R: where to connect, the user, status, expiry and errors. The password is never shown again.`,
	run: func(ctx context.Context, x *invocation, cmd *command, args []string) error {
		c, rt, id, err := x.accessArgs(ctx, cmd, args, nil)
		if err != nil {
			return err
		}
		a, raw, err := c.Access(ctx, rt.ID, id)
		if err != nil {
			return fmt.Errorf("access %s on router %s: %w", id, rt.arg, err)
		}
		if x.json() {
			x.writeRaw(raw)
			return nil
		}
		x.printAccess(a, rt.Router)
		return nil
	},
}

var accessRevoke = &command{
	path:     "access revoke",
	synopsis: "R ID",
	summary:  "end a login now",
	about: `Revokes access ID of router R: it ends at once, the router's agent removes
the user and the edge cuts open sessions. Revoking an access that has already
ended is harmless. Prints the access as it is afterwards.`,
	run: func(ctx context.Context, x *invocation, cmd *command, args []string) error {
		c, rt, id, err := x.accessArgs(ctx, cmd, args, nil)
		if err != nil {
			return err
		}
		if err := c.RevokeAccess(ctx, rt.ID, id); err != nil {
			return fmt.Errorf("revoke access %s on router %s: %w", id, rt.arg, err)
		}
		a, raw, err := c.Access(ctx, rt.ID, id)
		if err != nil {
			return fmt.Errorf("revoked access %s on router %s, but reading it back failed: %w", id, rt.arg, err)
		}
		if x.json() {
			x.writeRaw(raw)
			return nil
		}
		if a.RevokedEarly {
			fmt.Fprintf(x.stdout, "Revoked %s access %s (user %s on %s); status %s.\n", a.Type, a.ID, a.Username, accessConnectTo(a), a.Status)
		} else {
			fmt.Fprintf(x.stdout, "Access %s had already ended: %s.\n", a.ID, accessState(a))
		}
		return nil
	},
}

var accessConnections = &command{
	path:     "access connections",
	synopsis: "R ID [--limit N]",
	summary:  "the connections the edge relayed for a login",
	about: `Lists the connections the region's edge relayed for access ID of router R,
newest first: source, start and end, bytes each way, why it ended.`,
	run: runConnections("access", (*invocation).accessArgs, (*Client).AccessConnections),
}

// parseRouter parses a command whose router is its first operand, or
// --router (bound to router); other operands are named by names. It answers
// those other operands.
func (x *invocation) parseRouter(cmd *command, fs *flag.FlagSet, args []string, router *string, names ...string) ([]string, error) {
	// Operands and flags may come in any order, so the count of operands is
	// known only after parsing: parse with room for R, then check.
	ops, err := x.parse(cmd, fs, args, append([]string{"R"}, names...)...)
	if err == nil {
		if *router != "" {
			return nil, usageErrorf(seeHelp(cmd.path), "%s: name the router once: as the first argument or with --router", cmd.path)
		}
		*router = ops[0]
		return ops[1:], nil
	}
	if *router == "" || errors.Is(err, errHelpShown) {
		return nil, err
	}
	// --router R: the operands are the others.
	return x.parse(cmd, fs, args, names...)
}

// accessArgs reads "R ID" (or "--router R ID"), plus the flags define
// adds, and resolves R.
func (x *invocation) accessArgs(ctx context.Context, cmd *command, args []string, define func(fs *flag.FlagSet)) (*Client, namedRouter, string, error) {
	var router string
	fs := x.flagSet(cmd, func(fs *flag.FlagSet) {
		if define != nil {
			define(fs)
		}
		fs.StringVar(&router, "router", "", "the router `R`, by id or name, instead of the first argument")
	})
	ops, err := x.parseRouter(cmd, fs, args, &router, "ID")
	if err != nil {
		return nil, namedRouter{}, "", err
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

// accessConnectTo is where WinBox or ssh connects: entry_point:port.
func accessConnectTo(a Access) string {
	return connectTo(Forward{EntryPoint: a.EntryPoint, Port: a.Port})
}

// accessType is the login's type and rights: "ssh", "winbox, read-only".
func accessType(a Access) string {
	if a.ReadOnly {
		return a.Type + ", read-only"
	}
	return a.Type
}

// accessState is the status with how it ended and what went wrong, as
// forwardState says it for forwards.
func accessState(a Access) string {
	s := forwardState(Forward{Status: a.Status, RevokedEarly: a.RevokedEarly, Expired: a.Expired,
		RouterError: a.RouterError, EdgeError: a.EdgeError})
	if a.TunnelError != nil {
		if strings.HasSuffix(s, ")") {
			return strings.TrimSuffix(s, ")") + ", tunnel error)"
		}
		return s + " (tunnel error)"
	}
	return s
}

// accessExpires says when an access ends or how it ended, as expiresText
// does for forwards.
func accessExpires(a Access, now time.Time) string {
	return expiresText(Forward{ExpiresAt: a.ExpiresAt, RevokedEarly: a.RevokedEarly, RevokedAt: a.RevokedAt, TimeToExpire: a.TimeToExpire}, now)
}
