package routeros

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tpf-dev/tpf/agent/reconcile"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// This file keeps transient accesses on the router (reconcile.PlanAccesses
// says what that is): users, their groups, the input rules that let the
// edge reach their service, and the sessions of users that end. What
// RouterOS does with them, and how sure that is, is in USERS.md.
//
// Passwords: a new user's password goes to the router in /user/add and
// nowhere else. It is not in any error (the router's answer to that one
// command is scrubbed of it), log or report; go-routeros logs every
// sentence it sends at debug level, which is why its log handler is
// discarded in handshake.

// AccessReport is what ApplyAccesses did.
type AccessReport struct {
	// Results has one entry per access of the set, in set order; nil
	// before the first set. Accesses whose steps failed are StateFailed.
	Results []syncproto.Result
	// Present lists the ids of the accesses that have a tpf user or filter
	// rule on the router after the pass, as read back.
	Present []string
	// Next is when the next pass is due at the latest (the earliest
	// expiry of what stays); zero when nothing stays.
	Next time.Time
	// Changes counts the steps applied.
	Changes int
	// Errors lists the steps that failed, in plan order.
	Errors []error
}

// Err joins Errors into one error, nil when there are none.
func (r AccessReport) Err() error { return errors.Join(r.Errors...) }

// ApplyAccesses makes the router hold the desired set's accesses at now
// (the controller's clock) and reports them. desired nil means no set was
// received yet: then only what has expired or is malformed is removed.
// passwords are the passwords the agent remembers, by access id, for
// users that must be created again. It blocks for five prints, one
// command per step, the version (once per connection) when a session is
// logged out, and two prints to read back after a change.
//
// A step the router refuses is recorded, its accesses failed, and the
// pass goes on. The error is non-nil when the pass could not run: the
// menus could not be read (which leaves nothing known about what is
// present), the connection broke (it wraps ErrBroken: Close the Client
// and Dial again) or ctx ended.
func (c *Client) ApplyAccesses(ctx context.Context, desired *syncproto.Desired, passwords map[string]string, now time.Time) (AccessReport, error) {
	var rep AccessReport
	rows, err := c.accessRows(ctx, true)
	if err != nil {
		return rep, err
	}
	plan := reconcile.PlanAccesses(desired, rows, passwords, now)
	rep.Next = plan.Next
	failed := map[string]error{}
	fail := func(ids []string, err error) {
		for _, id := range ids {
			if _, ok := failed[id]; !ok {
				failed[id] = err
			}
		}
	}
	for i, step := range plan.Steps {
		err := c.accessStep(ctx, step)
		if err == nil {
			rep.Changes++
			continue
		}
		rep.Errors = append(rep.Errors, err)
		if stops(ctx, err) {
			for _, rest := range plan.Steps[i:] {
				fail(rest.Accesses, err)
			}
			rep.Results = failResults(plan.Results, failed)
			return rep, err
		}
		fail(step.Accesses, err)
	}
	rep.Results = failResults(plan.Results, failed)
	if !plan.Empty() {
		if rows, err = c.accessRows(ctx, false); err != nil {
			return rep, err
		}
	}
	rep.Present = reconcile.AccessPresent(rows)
	return rep, nil
}

// failResults returns a copy of results with every applied access in
// failed turned into StateFailed with its reason.
func failResults(results []syncproto.Result, failed map[string]error) []syncproto.Result {
	if results == nil {
		return nil
	}
	out := make([]syncproto.Result, len(results))
	for i, r := range results {
		if err, ok := failed[r.ID]; ok && r.State == syncproto.StateApplied {
			r.State, r.Error, r.ServicePort = syncproto.StateFailed, err.Error(), 0
		}
		out[i] = r
	}
	return out
}

// accessRows reads the access menus: users and filter rules always, and,
// with all, groups, active sessions and services. Dynamic rows are left
// out.
func (c *Client) accessRows(ctx context.Context, all bool) (reconcile.AccessRows, error) {
	var rows reconcile.AccessRows
	props := reconcile.AccessProperties()
	var err error
	read := func(menu string, dst *[]reconcile.Row) {
		if err == nil {
			*dst, err = c.printRows(ctx, menu, props[menu])
		}
	}
	read(reconcile.MenuUser, &rows.Users)
	read(reconcile.MenuFilter, &rows.Rules)
	if all {
		read(reconcile.MenuGroup, &rows.Groups)
		read(reconcile.MenuActive, &rows.Active)
		read(reconcile.MenuService, &rows.Services)
	}
	return rows, err
}

// accessStep runs one step. Removing or logging out what is already gone
// counts as done.
func (c *Client) accessStep(ctx context.Context, step reconcile.AccessStep) error {
	switch step.Op {
	case reconcile.OpLogout:
		return c.logout(ctx, step.ID)
	case reconcile.OpRemove:
		_, err := c.run(ctx, step.Menu+cmdRemove, "=.id="+step.ID)
		if err != nil && !isNoSuchItem(err) {
			return fmt.Errorf("remove %s %s: %w", step.Menu, step.ID, err)
		}
		return nil
	case reconcile.OpSet:
		words := append([]string{step.Menu + cmdSet, "=.id=" + step.ID}, attrs(step.Props)...)
		if _, err := c.run(ctx, words...); err != nil {
			return fmt.Errorf("fix %s %s%s: %w", step.Menu, step.ID, forAccesses(step), err)
		}
		return nil
	case reconcile.OpMove:
		if _, err := c.run(ctx, step.Menu+"/move", "=numbers="+step.ID, "=destination="+step.PlaceBefore); err != nil {
			return fmt.Errorf("move %s %s before %s%s: %w", step.Menu, step.ID, step.PlaceBefore, forAccesses(step), err)
		}
		return nil
	case reconcile.OpAdd:
		return c.accessAdd(ctx, step)
	}
	return fmt.Errorf("unknown access step %d", step.Op)
}

// accessAdd adds a group, user or rule. A user's password is one more
// word of the command and nothing else: a refusal's text is scrubbed of
// it before it goes anywhere.
func (c *Client) accessAdd(ctx context.Context, step reconcile.AccessStep) error {
	words := append([]string{step.Menu + cmdAdd}, attrs(step.Props)...)
	if step.Menu == reconcile.MenuUser {
		words = append(words, "=password="+string(step.Password))
	}
	if step.PlaceBefore != "" {
		words = append(words, "=place-before="+step.PlaceBefore)
	}
	r, err := c.run(ctx, words...)
	if err == nil && (r.Done == nil || r.Done.Map["ret"] == "") {
		err = errors.New("no .id in the reply") // the item may not exist
	}
	if err == nil {
		return nil
	}
	var re *RouterError
	if pw := string(step.Password); pw != "" && errors.As(err, &re) {
		re.Message = strings.ReplaceAll(re.Message, pw, "<redacted>")
	}
	what := step.Menu
	switch step.Menu {
	case reconcile.MenuUser:
		what = "user " + step.Props["name"]
	case reconcile.MenuGroup:
		what = "user group " + step.Props["name"]
	case reconcile.MenuFilter:
		what = "input rule to port " + step.Props["dst-port"]
	}
	return fmt.Errorf("add %s%s: %w", what, forAccesses(step), err)
}

// forAccesses names the accesses a step serves, for errors.
func forAccesses(step reconcile.AccessStep) string {
	switch len(step.Accesses) {
	case 0:
		return ""
	case 1:
		return " of access " + step.Accesses[0]
	}
	return " of accesses " + strings.Join(step.Accesses, ", ")
}

// Commands that end a session: RouterOS 7.20 replaced
// /user/active/request-logout with /user/active/remove (USERS.md).
const (
	activeRemove        = "/user/active/remove"
	activeRequestLogout = "/user/active/request-logout"
)

// logout ends the session of a /user/active row with the command the
// version has, and with the other one when the router does not know it.
func (c *Client) logout(ctx context.Context, id string) error {
	version, err := c.RouterOSVersion(ctx)
	if err != nil && stops(ctx, err) {
		return err
	}
	cmds := []string{activeRequestLogout, activeRemove}
	if atLeast(version, 7, 20) {
		cmds[0], cmds[1] = cmds[1], cmds[0]
	}
	for _, cmd := range cmds {
		_, err = c.run(ctx, cmd, "=.id="+id)
		if err == nil || isNoSuchItem(err) {
			return nil
		}
		if !isNoSuchCommand(err) {
			break
		}
	}
	return fmt.Errorf("log out session %s: %w", id, err)
}

// isNoSuchCommand reports whether the router does not know the command.
func isNoSuchCommand(err error) bool {
	var re *RouterError
	return errors.As(err, &re) && strings.HasPrefix(re.Message, "no such command")
}

// atLeast reports whether a version as the router prints it ("7.20.8
// (stable)", "7.21beta2") is at least major.minor; false when unreadable.
func atLeast(version string, major, minor int) bool {
	ma, rest, ok1 := leadingInt(strings.TrimSpace(version))
	rest, dot := strings.CutPrefix(rest, ".")
	mi, _, ok2 := leadingInt(rest)
	if !ok1 || !dot || !ok2 {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// leadingInt reads the digits s starts with.
func leadingInt(s string) (int, string, bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	n, err := strconv.Atoi(s[:i])
	return n, s[i:], err == nil
}
