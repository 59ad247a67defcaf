package routeros

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/tpf-dev/tpf/agent/reconcile"
	"github.com/tpf-dev/tpf/shared/forward"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// Command words of the menus the agent uses.
const (
	natPrint        = "/ip/firewall/nat/print"
	natAdd          = "/ip/firewall/nat/add"
	natSet          = "/ip/firewall/nat/set"
	natRemove       = "/ip/firewall/nat/remove"
	connectionPrint = "/ip/firewall/connection/print"
	connRemove      = "/ip/firewall/connection/remove"
)

// NATRules reads /ip/firewall/nat in table order, asking only for .id,
// dynamic and the properties reconcile compares. Dynamic rules (created
// by the router itself, e.g. for UPnP or hotspot) are skipped: they cannot
// be edited and are never tpf's. It blocks for one command.
func (c *Client) NATRules(ctx context.Context) ([]reconcile.Rule, error) {
	props := append([]string{".id", "dynamic"}, reconcile.Properties()...)
	r, err := c.run(ctx, natPrint, "=.proplist="+strings.Join(props, ","))
	if err != nil {
		return nil, fmt.Errorf("read NAT rules of %s: %w", c.addr, err)
	}
	rules := make([]reconcile.Rule, 0, len(r.Re))
	for _, s := range r.Re {
		if d := s.Map["dynamic"]; d == "true" || d == "yes" {
			continue
		}
		id := s.Map[".id"]
		if id == "" {
			return nil, fmt.Errorf("read NAT rules of %s: a row has no .id: %v", c.addr, s.Map)
		}
		p := maps.Clone(s.Map)
		delete(p, ".id")
		rules = append(rules, reconcile.Rule{ID: id, Props: p})
	}
	return rules, nil
}

// Outcome says what an Apply pass could not do. The zero Outcome means
// every step succeeded.
type Outcome struct {
	// Failed maps the id of each forward whose rules are not all in place
	// to the first reason: one of its adds or sets failed, or was never
	// tried because the pass stopped. Report these as StateFailed; the
	// next pass retries them.
	Failed map[string]error
	// Errors lists every failed step in plan order, each wrapped with the
	// rule, forward or destination it concerns, Failed's reasons included.
	// A removal of a rule already gone, or of a connection already gone, is
	// not an error.
	Errors []error
}

// Results returns a copy of results (a plan's) with every applied forward
// listed in Failed turned into StateFailed with its reason.
func (o Outcome) Results(results []syncproto.Result) []syncproto.Result {
	out := slices.Clone(results)
	for i, r := range out {
		if err, ok := o.Failed[r.ID]; ok && r.State == syncproto.StateApplied {
			out[i].State, out[i].Error = syncproto.StateFailed, err.Error()
		}
	}
	return out
}

// Err joins Errors into one error, nil when there are none.
func (o Outcome) Err() error { return errors.Join(o.Errors...) }

func (o *Outcome) fail(forwardID string, err error) {
	o.Errors = append(o.Errors, err)
	if forwardID == "" {
		return
	}
	if o.Failed == nil {
		o.Failed = map[string]error{}
	}
	if _, ok := o.Failed[forwardID]; !ok {
		o.Failed[forwardID] = err
	}
}

// stop records err, which ended the pass, and marks every forward with an
// add or set still to do as failed by it.
func (o *Outcome) stop(err error, sets []reconcile.Set, adds []reconcile.Add) {
	o.Errors = append(o.Errors, err)
	if o.Failed == nil && (len(sets) > 0 || len(adds) > 0) {
		o.Failed = map[string]error{}
	}
	mark := func(id string) {
		if _, ok := o.Failed[id]; !ok && id != "" {
			o.Failed[id] = err
		}
	}
	for _, s := range sets {
		mark(s.Forward)
	}
	for _, a := range adds {
		mark(addForward(a))
	}
}

// Apply carries out p in the order reconcile.Plan prescribes: Remove, Set,
// Add, then Flush, one command per step. A step the router refuses is
// recorded in the Outcome and the pass goes on, so one bad rule does not
// block the others; removing a rule that is already gone counts as done.
//
// The error is non-nil only when the pass had to stop: the connection broke
// (it wraps ErrBroken: Close the Client and Dial again) or ctx ended. The
// Outcome is meaningful either way; forwards whose steps were never tried
// are in its Failed map. Apply blocks for the whole pass.
func (c *Client) Apply(ctx context.Context, p reconcile.Plan) (Outcome, error) {
	var o Outcome
	for _, id := range p.Remove {
		if err := c.removeRule(ctx, id); err != nil {
			if stops(ctx, err) {
				o.stop(err, p.Set, p.Add)
				return o, err
			}
			o.fail("", err)
		}
	}
	for i, s := range p.Set {
		if err := c.setRule(ctx, s); err != nil {
			if stops(ctx, err) {
				o.stop(err, p.Set[i:], p.Add)
				return o, err
			}
			o.fail(s.Forward, err)
		}
	}
	for i, a := range p.Add {
		if err := c.addRule(ctx, a); err != nil {
			if stops(ctx, err) {
				o.stop(err, nil, p.Add[i:])
				return o, err
			}
			o.fail(addForward(a), err)
		}
	}
	for _, dst := range p.Flush {
		if _, err := c.FlushConnections(ctx, dst); err != nil {
			if stops(ctx, err) {
				o.stop(err, nil, nil)
				return o, err
			}
			o.fail("", err)
		}
	}
	return o, nil
}

func (c *Client) removeRule(ctx context.Context, id string) error {
	_, err := c.run(ctx, natRemove, "=.id="+id)
	if err != nil && !isNoSuchItem(err) {
		return fmt.Errorf("remove NAT rule %s: %w", id, err)
	}
	return nil
}

func (c *Client) setRule(ctx context.Context, s reconcile.Set) error {
	words := append([]string{natSet, "=.id=" + s.ID}, attrs(s.Props)...)
	if _, err := c.run(ctx, words...); err != nil {
		return fmt.Errorf("fix NAT rule %s of forward %s: %w", s.ID, s.Forward, err)
	}
	return nil
}

func (c *Client) addRule(ctx context.Context, a reconcile.Add) error {
	words := append([]string{natAdd}, attrs(a.Props)...)
	if a.PlaceBefore != "" {
		words = append(words, "=place-before="+a.PlaceBefore)
	}
	if _, err := c.run(ctx, words...); err != nil {
		return fmt.Errorf("add %s rule of forward %s: %w", a.Props["chain"], addForward(a), err)
	}
	return nil
}

// addForward names the forward of an Add, from its tag when the plan did
// not say; "" when neither does.
func addForward(a reconcile.Add) string {
	if a.Forward != "" {
		return a.Forward
	}
	if tag, err := forward.ParseTag(a.Props["comment"]); err == nil {
		return tag.ID
	}
	return ""
}

// attrs turns properties into =name=value words, sorted by name so the
// same change always reads the same on the wire and in logs.
func attrs(props map[string]string) []string {
	words := make([]string, 0, len(props))
	for _, k := range slices.Sorted(maps.Keys(props)) {
		words = append(words, "="+k+"="+props[k])
	}
	return words
}

// FlushConnections removes every connection-tracking entry whose
// original destination is dst ("10.99.0.1:49159"), so connections a
// removed rule let through stop at once instead of living on in
// conntrack. Entries that vanish meanwhile are not errors. It returns how
// many entries it removed, and blocks for one command per entry plus one.
func (c *Client) FlushConnections(ctx context.Context, dst string) (int, error) {
	if dst == "" {
		return 0, errors.New("flush connections: empty destination")
	}
	r, err := c.run(ctx, connectionPrint, "=.proplist=.id,dst-address", "?dst-address="+dst)
	if err != nil {
		return 0, fmt.Errorf("list connections to %s: %w", dst, err)
	}
	n := 0
	var errs []error
	for _, s := range r.Re {
		id := s.Map[".id"]
		if id == "" || s.Map["dst-address"] != dst {
			continue
		}
		_, err := c.run(ctx, connRemove, "=.id="+id)
		switch {
		case err == nil:
			n++
		case isNoSuchItem(err):
		case stops(ctx, err):
			return n, fmt.Errorf("remove connection %s to %s: %w", id, dst, err)
		default:
			errs = append(errs, fmt.Errorf("remove connection %s to %s: %w", id, dst, err))
		}
	}
	return n, errors.Join(errs...)
}
