package routeros

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/tpf-dev/tpf/agent/reconcile"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// This file keeps the router's end of the WireGuard management tunnel
// (reconcile.PlanTunnel says what that is) and reads back its state.
//
// The commands and parameters sent exist in every RouterOS 7 from 7.12.2
// on, and, per MikroTik's WireGuard manual, before it
// (ROUTEROS-WIREGUARD.md §1–3): interface name, comment, listen-port,
// disabled; peer interface, comment, public-key, endpoint-address,
// endpoint-port, allowed-address, persistent-keepalive, disabled; address
// address, network, interface, comment, disabled. A peer's name (7.15+),
// is-responder/responder (7.15+, renamed in 7.17) and client-* (7.12+)
// are never sent, and objects are found by comment, which every 7.x has
// (§8.6). private-key is never sent nor asked for.

// NoWireGuard is TunnelState.Error for a desired tunnel on RouterOS 6,
// which has no WireGuard.
const NoWireGuard = "RouterOS 6 has no WireGuard: mark the region manual and bring your own VPN"

// Command words of the tunnel's menus are the menu plus one of these.
const (
	cmdPrint  = "/print"
	cmdAdd    = "/add"
	cmdSet    = "/set"
	cmdRemove = "/remove"
)

// ApplyTunnel makes the router hold the desired end of the management
// tunnel and returns its state for Report.Tunnel. desired is the Tunnel of
// the newest desired set; haveSet says whether any set was received since
// the agent started. It blocks for a handful of commands: the version
// (once per connection), two or three prints, one command per change, two
// prints to read back after a change, and one print of the forward filter
// chain.
//
// Before the first set (haveSet false) nothing is changed: the tunnel may
// be the agent's way back to the controller. Its state is still read.
// After one, desired nil removes every tpf tunnel object, and the state is
// nil once none is left. RouterOS 6 has no WireGuard: a desired tunnel
// there gets State.Error NoWireGuard and nothing else is done.
//
// What the router refuses (a conflicting interface named tpf, a refused
// value, an unreadable menu) is reported in the returned state's Error,
// with a warning when a firewall filter rule would obviously drop the
// tunnel's forwarded connections; the returned error is then nil. The
// error is non-nil only when the pass had to stop: the connection broke
// (it wraps ErrBroken: Close the Client and Dial again) or ctx ended. now
// is the caller's clock, on which the peer's last handshake is reported.
func (c *Client) ApplyTunnel(ctx context.Context, desired *syncproto.Tunnel, haveSet bool, now time.Time) (*syncproto.TunnelState, error) {
	if !haveSet {
		desired = nil // nothing is wanted or removed before the first set
	}
	want := desired != nil
	version, err := c.RouterOSVersion(ctx)
	if err != nil && stops(ctx, err) {
		return nil, err
	}
	if err == nil && majorVersion(version) < 7 {
		if want {
			return &syncproto.TunnelState{Error: NoWireGuard}, nil
		}
		return nil, nil
	}

	var problems []string
	failed := func(err error) (*syncproto.TunnelState, error) {
		if stops(ctx, err) {
			return nil, err
		}
		return &syncproto.TunnelState{Error: strings.Join(append(problems, err.Error()), "; ")}, nil
	}
	rows, err := c.tunnelRows(ctx, haveSet)
	if err != nil {
		if !haveSet {
			return nil, stopErr(ctx, err) // nothing to do, nothing known
		}
		return failed(err)
	}
	plan := reconcile.PlanTunnel(desired, haveSet, rows)
	if plan.Error != "" {
		problems = append(problems, plan.Error)
	}
	stepErrs, err := c.applyTunnel(ctx, plan)
	for _, e := range stepErrs {
		problems = append(problems, e.Error())
	}
	if err != nil {
		return failed(err)
	}
	if !plan.Empty() {
		if rows, err = c.tunnelRows(ctx, false); err != nil {
			return failed(err)
		}
	}
	state := reconcile.TunnelStatus(rows, now)
	if want && state != nil {
		warning, err := c.tunnelFirewallWarning(ctx)
		if err != nil {
			return failed(err)
		}
		if warning != "" {
			problems = append(problems, warning)
		}
	}
	if len(problems) > 0 {
		if state == nil {
			state = &syncproto.TunnelState{}
		}
		state.Error = strings.Join(problems, "; ")
	}
	return state, nil
}

// stopErr returns err when it ends the pass, nil otherwise.
func stopErr(ctx context.Context, err error) error {
	if stops(ctx, err) {
		return err
	}
	return nil
}

// majorVersion reads the major number of "7.18.2 (stable)"; 0 when there
// is none.
func majorVersion(v string) int {
	major, _, _ := strings.Cut(strings.TrimSpace(v), ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		return 0
	}
	return n
}

// tunnelRows reads what the router holds of the tunnel: every WireGuard
// interface, the peers commented tpf:tunnel and, when withAddresses is set
// (reading the state needs none), the addresses so commented; dynamic
// rows left out. It asks only for the properties reconcile reads, never
// private-key.
func (c *Client) tunnelRows(ctx context.Context, withAddresses bool) (reconcile.TunnelRows, error) {
	var cur reconcile.TunnelRows
	props := reconcile.TunnelProperties()
	var err error
	if cur.Interfaces, err = c.printRows(ctx, reconcile.MenuWireGuard, props[reconcile.MenuWireGuard]); err != nil {
		return cur, err
	}
	byComment := "?comment=" + reconcile.TunnelComment
	if cur.Peers, err = c.printRows(ctx, reconcile.MenuPeers, props[reconcile.MenuPeers], byComment); err != nil {
		return cur, err
	}
	if withAddresses {
		if cur.Addresses, err = c.printRows(ctx, reconcile.MenuAddress, props[reconcile.MenuAddress], byComment); err != nil {
			return cur, err
		}
	}
	return cur, nil
}

// printRows prints a menu with a proplist and queries, in table order,
// leaving out dynamic rows (made by the router itself, never tpf's).
func (c *Client) printRows(ctx context.Context, menu string, props []string, queries ...string) ([]reconcile.Row, error) {
	words := append([]string{menu + cmdPrint, "=.proplist=" + strings.Join(props, ",")}, queries...)
	r, err := c.run(ctx, words...)
	if err != nil {
		return nil, fmt.Errorf("read %s of %s: %w", menu, c.addr, err)
	}
	rows := make([]reconcile.Row, 0, len(r.Re))
	for _, s := range r.Re {
		if d := s.Map["dynamic"]; d == "true" || d == "yes" {
			continue
		}
		id := s.Map[".id"]
		if id == "" {
			return nil, fmt.Errorf("read %s of %s: a row has no .id: %v", menu, c.addr, s.Map)
		}
		p := maps.Clone(s.Map)
		delete(p, ".id")
		rows = append(rows, reconcile.Row{ID: id, Props: p})
	}
	return rows, nil
}

// applyTunnel carries out p in its order, one command per step. A step
// the router refuses is returned among errs and the pass goes on;
// removing an item already gone counts as done. err is non-nil when the
// pass had to stop (see stops).
func (c *Client) applyTunnel(ctx context.Context, p reconcile.TunnelPlan) (errs []error, stop error) {
	for _, step := range p.Remove {
		_, err := c.run(ctx, step.Menu+cmdRemove, "=.id="+step.ID)
		if err == nil || isNoSuchItem(err) {
			continue
		}
		err = fmt.Errorf("remove %s %s: %w", step.Menu, step.ID, err)
		if stops(ctx, err) {
			return errs, err
		}
		errs = append(errs, err)
	}
	for _, step := range p.Set {
		words := append([]string{step.Menu + cmdSet, "=.id=" + step.ID}, attrs(step.Props)...)
		if _, err := c.run(ctx, words...); err != nil {
			err = fmt.Errorf("fix %s %s: %w", step.Menu, step.ID, err)
			if stops(ctx, err) {
				return errs, err
			}
			errs = append(errs, err)
		}
	}
	for _, step := range p.Add {
		words := append([]string{step.Menu + cmdAdd}, attrs(step.Props)...)
		r, err := c.run(ctx, words...)
		if err == nil && (r.Done == nil || r.Done.Map["ret"] == "") {
			// RouterOS answers an add with the new .id in !done =ret=;
			// without one, the item may not exist.
			err = errors.New("no .id in the reply")
		}
		if err != nil {
			err = fmt.Errorf("add %s: %w", describeAdd(step), err)
			if stops(ctx, err) {
				return errs, err
			}
			errs = append(errs, err)
		}
	}
	return errs, nil
}

// describeAdd names what an add step creates, for errors.
func describeAdd(step reconcile.TunnelStep) string {
	switch step.Menu {
	case reconcile.MenuWireGuard:
		return "WireGuard interface " + step.Props["name"]
	case reconcile.MenuPeers:
		return "WireGuard peer " + step.Props["public-key"] + " on " + step.Props["interface"]
	default:
		return "address " + step.Props["address"] + " on " + step.Props["interface"]
	}
}

// tunnelFirewallWarning reads the forward chain of /ip/firewall/filter and
// returns reconcile's warning, "" when none. The check is best effort: a
// print the router refuses gives no warning. err is non-nil only when the
// pass must stop.
func (c *Client) tunnelFirewallWarning(ctx context.Context) (string, error) {
	rules, err := c.printRows(ctx, "/ip/firewall/filter", reconcile.FirewallProperties(), "?chain=forward")
	if err != nil {
		return "", stopErr(ctx, err)
	}
	return reconcile.TunnelFirewallWarning(rules), nil
}
