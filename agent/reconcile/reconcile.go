package reconcile

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/tpf-dev/tpf/shared/forward"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// Rule is one /ip/firewall/nat row as read from the router, dynamic rules
// excluded. ID is its ".id" ("*1A"); Props holds every other property read,
// with the router's spelling of values ("false", not "no").
type Rule struct {
	ID    string
	Props map[string]string
}

// Set fixes the drifted properties of one tpf rule.
type Set struct {
	ID string // the rule's .id
	// Forward is the id of the forward the rule belongs to, so a failure
	// can be reported against it.
	Forward string
	// Props holds only the properties to change, with their expected
	// values; a disabled rule gets "disabled": "no".
	Props map[string]string
}

// Add creates one tpf rule.
type Add struct {
	Forward string            // the id of the forward the rule belongs to
	Props   map[string]string // every property of the new rule, comment (the tag) included
	// PlaceBefore is the .id of the first rule of the same chain that is
	// not tpf's, so the new rule is evaluated before the router's own
	// rules; empty means append. It never names a rule the plan removes.
	PlaceBefore string
}

// Plan is what Compute decides. Apply it in this order: Remove, then Set,
// then Add, then Flush. Removing first frees ports and drops stale paths
// before anything new opens; flushing last cuts the connections the removed
// rules let through once no rule can re-create them.
//
// The zero Plan changes nothing.
type Plan struct {
	// Remove lists the .id of every tpf rule to delete, in table order.
	Remove []string
	// Set lists the tpf rules to fix in place, in table order.
	Set []Set
	// Add lists the rules to create, in desired-set order, each forward's
	// dst-nat rule before its masquerade rule.
	Add []Add
	// Flush lists the original-direction destinations "T:port" whose
	// connection-tracking entries must be removed: those of every removed
	// dst-nat rule, and of every dst-nat rule whose matching or target
	// properties a Set changes. A removed duplicate of a rule that stays,
	// identical in what it matches and where it sends traffic, is not
	// flushed: that would cut the live connections of a forward that is
	// still wanted. Each destination appears once.
	Flush []string
	// Results has one entry per forward of the desired set, in set order;
	// nil when no set was given. StateApplied means "its rules will be in
	// place once the plan is applied": the caller downgrades it to
	// StateFailed for forwards whose steps fail.
	Results []syncproto.Result
	// Next is the earliest expiry, after now, of the forwards whose rules
	// stay on the router: run Compute again then at the latest. Zero when
	// no rule stays.
	Next time.Time
}

// Empty reports whether applying p would change nothing on the router.
func (p Plan) Empty() bool {
	return len(p.Remove) == 0 && len(p.Set) == 0 && len(p.Add) == 0 && len(p.Flush) == 0
}

// Chains and actions of tpf rules.
const (
	chainDstNAT = "dstnat"
	chainSrcNAT = "srcnat"
)

// Properties of a NAT rule that Compute reads and writes.
const (
	propChain       = "chain"
	propAction      = "action"
	propProtocol    = "protocol"
	propSrcAddress  = "src-address"
	propDstAddress  = "dst-address"
	propDstPort     = "dst-port"
	propToAddresses = "to-addresses"
	propToPorts     = "to-ports"
	propComment     = "comment"
	propDisabled    = "disabled"
)

// managed lists, in a fixed order, the properties Compute compares.
var managed = []string{
	propChain, propAction, propProtocol, propSrcAddress, propDstAddress,
	propDstPort, propToAddresses, propToPorts, propComment, propDisabled,
}

// traffic lists the properties that decide which connections a dst-nat
// rule matches and where it sends them. When one of them changes, the
// connections the old rule let through are flushed.
var traffic = []string{
	propAction, propProtocol, propSrcAddress, propDstAddress,
	propDstPort, propToAddresses, propToPorts,
}

// Properties returns the names of the rule properties Compute needs in
// Rule.Props, for the reader's print =.proplist= (which must also ask for
// .id and dynamic). A fresh slice on every call.
func Properties() []string {
	return slices.Clone(managed)
}

// wanted is an admitted forward and the rules it needs, by chain.
type wanted struct {
	id    string
	tag   forward.Tag
	rules map[string]map[string]string // chain → expected properties
}

// ruleKey names the one rule a forward may have in a chain.
type ruleKey struct{ id, chain string }

// Compute plans the changes that make rules hold exactly the desired set at
// now, and the result for each desired forward. It is deterministic: the
// same inputs give the same plan, in the orders documented on Plan.
//
// desired == nil means no set was received yet (a restarted agent that
// cannot reach the controller). Compute then only removes tpf rules whose
// tag has expired or is malformed and keeps the rest: unexpired forwards
// survive, and expiry is still enforced on the agent's clock.
//
// Otherwise every forward is checked again as the API checks it; one that
// fails is refused and gets no rule. A forward whose expiry has passed is
// expired and gets no rule. Every tpf rule that does not belong to an
// admitted forward (malformed or expired tag, unknown id, a chain the
// forward does not use, a duplicate) is removed; the one kept per forward
// and chain is fixed in place if its properties drifted, including its tag
// when the forward's expiry changed. Rules whose comment lacks the tpf prefix
// are never removed, set or moved.
func Compute(desired *syncproto.Desired, rules []Rule, now time.Time) Plan {
	var p Plan
	wants := map[string]*wanted{}
	var admitted []*wanted // in set order
	if desired != nil {
		p.Results, admitted = admit(desired, now)
		for _, w := range admitted {
			wants[w.id] = w
		}
	}

	// Classify every rule, in table order.
	firstForeign := map[string]string{} // chain → .id of its first non-tpf rule
	drop := make([]bool, len(rules))
	candidates := map[ruleKey][]int{}
	var keys []ruleKey // in order of first appearance
	for i, r := range rules {
		comment := r.Props[propComment]
		if !forward.IsTPF(comment) {
			chain := r.Props[propChain]
			if _, ok := firstForeign[chain]; !ok {
				firstForeign[chain] = r.ID
			}
			continue
		}
		tag, err := forward.ParseTag(comment)
		switch {
		case err != nil:
			drop[i] = true
		case desired == nil:
			// No set yet: keep what has not expired.
			if !tag.Expires.After(now) {
				drop[i] = true
			} else if p.Next.IsZero() || tag.Expires.Before(p.Next) {
				p.Next = tag.Expires
			}
		case wants[tag.ID] == nil:
			// Not wanted: unknown, refused or expired forward, or an
			// expired tag of a forward the set no longer holds.
			drop[i] = true
		case wants[tag.ID].rules[r.Props[propChain]] == nil:
			drop[i] = true // a chain the forward does not use
		default:
			// The forward is admitted, so unexpired on this clock; a stale
			// tag (the forward was extended) is fixed by Set below.
			k := ruleKey{tag.ID, r.Props[propChain]}
			if candidates[k] == nil {
				keys = append(keys, k)
			}
			candidates[k] = append(candidates[k], i)
		}
	}

	// Keep one rule per forward and chain: the first that needs no fix,
	// else the first. The others are duplicates.
	kept := map[int]ruleKey{}
	have := map[ruleKey]bool{}
	for _, k := range keys {
		want := wants[k.id].rules[k.chain]
		idx := candidates[k]
		keep := idx[0]
		for _, i := range idx {
			if len(drift(want, rules[i].Props)) == 0 {
				keep = i
				break
			}
		}
		for _, i := range idx {
			if i != keep {
				drop[i] = true
			}
		}
		kept[keep] = k
		have[k] = true
	}

	// Removals, fixes and flushes, in table order.
	var flush []string
	for i, r := range rules {
		if drop[i] {
			p.Remove = append(p.Remove, r.ID)
			if r.Props[propChain] == chainDstNAT && !stillCarried(r, wants) {
				flush = appendFlush(flush, r.Props)
			}
			continue
		}
		k, ok := kept[i]
		if !ok {
			continue
		}
		d := drift(wants[k.id].rules[k.chain], r.Props)
		if len(d) == 0 {
			continue
		}
		p.Set = append(p.Set, Set{ID: r.ID, Forward: k.id, Props: d})
		if k.chain == chainDstNAT && touchesTraffic(d) {
			flush = appendFlush(flush, r.Props)
		}
	}
	p.Flush = flush

	// Additions, in set order, placed before the router's own rules.
	for _, w := range admitted {
		for _, chain := range []string{chainDstNAT, chainSrcNAT} {
			props, ok := w.rules[chain]
			if !ok || have[ruleKey{w.id, chain}] {
				continue
			}
			add := maps.Clone(props)
			delete(add, propDisabled) // a new rule is enabled by default
			p.Add = append(p.Add, Add{Forward: w.id, Props: add, PlaceBefore: firstForeign[chain]})
		}
		if p.Next.IsZero() || w.tag.Expires.Before(p.Next) {
			p.Next = w.tag.Expires
		}
	}
	return p
}

// admit checks every desired forward and returns one result per forward,
// in set order, and the forwards that get rules.
func admit(d *syncproto.Desired, now time.Time) ([]syncproto.Result, []*wanted) {
	results := make([]syncproto.Result, 0, len(d.Forwards))
	var admitted []*wanted
	setErr := checkEndpoints(d.TunnelAddress, d.EdgeAddress)
	seen := map[string]bool{}
	ports := map[uint16]string{} // port → id of the admitted forward using it
	for _, f := range d.Forwards {
		res := syncproto.Result{ID: f.ID}
		tag := forward.Tag{ID: f.ID, Expires: time.Unix(f.ExpiresAt.Unix(), 0).UTC()}
		err := setErr
		if err == nil {
			err = checkForward(f, d.TunnelAddress, d.EdgeAddress)
		}
		if err == nil && seen[f.ID] {
			err = errors.New("duplicate forward id in the desired set")
		}
		seen[f.ID] = true
		switch {
		case err != nil:
			res.State, res.Error = syncproto.StateRefused, err.Error()
		case !tag.Expires.After(now):
			res.State = syncproto.StateExpired
		case !tagRoundTrips(tag):
			res.State = syncproto.StateRefused
			res.Error = fmt.Sprintf("expires_at %s cannot be written in a rule tag", f.ExpiresAt.UTC().Format(time.RFC3339))
		case ports[f.Port] != "":
			res.State = syncproto.StateRefused
			res.Error = fmt.Sprintf("port %d is already used by forward %s", f.Port, ports[f.Port])
		default:
			res.State = syncproto.StateApplied
			ports[f.Port] = f.ID
			admitted = append(admitted, &wanted{id: f.ID, tag: tag, rules: expected(f, tag, d.TunnelAddress, d.EdgeAddress)})
		}
		results = append(results, res)
	}
	return results, admitted
}

// checkEndpoints checks the set-wide addresses; a set that fails it gets
// every forward refused, and so every tpf rule removed.
func checkEndpoints(tunnel, edge netip.Addr) error {
	if !usableEndpoint(tunnel) {
		return fmt.Errorf("tunnel address %v is not a usable IPv4 address", tunnel)
	}
	if !usableEndpoint(edge) {
		return fmt.Errorf("edge address %v is not a usable IPv4 address", edge)
	}
	if tunnel == edge {
		return fmt.Errorf("tunnel and edge address are both %v", tunnel)
	}
	return nil
}

// usableEndpoint accepts a canonical unicast IPv4 address. Unspecified
// (which some firewalls read as "any"), multicast and broadcast are refused;
// private and shared (CGNAT) addresses are what tunnels use. Loopback is
// accepted: these addresses only narrow what a rule matches, a router never
// receives loopback-addressed packets from outside, and it is what a whole
// setup on one machine (the demo, the loopback tests) uses.
func usableEndpoint(a netip.Addr) bool {
	if _, err := forward.ParseIPv4(a.String()); err != nil {
		return false
	}
	return !a.IsUnspecified() && !a.IsMulticast() && a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// checkForward applies the API's own checks to one forward.
func checkForward(f syncproto.Forward, tunnel, edge netip.Addr) error {
	if _, err := forward.ParseTag(forward.TagPrefix + f.ID + ":1"); err != nil {
		return fmt.Errorf("id %q is not a canonical lower-case UUID", f.ID)
	}
	if f.Port == 0 {
		return errors.New("port must be between 1 and 65535")
	}
	if f.DstPort == 0 {
		return errors.New("dst_port must be between 1 and 65535")
	}
	if _, err := forward.Destination(f.DstAddress.String()); err != nil {
		return fmt.Errorf("dst_address %w", err)
	}
	if f.DstAddress == tunnel {
		return fmt.Errorf("dst_address %v is the router's tunnel address", f.DstAddress)
	}
	if f.DstAddress == edge {
		return fmt.Errorf("dst_address %v is the edge address", f.DstAddress)
	}
	return nil
}

// tagRoundTrips reports whether tag survives being written as a comment
// and read back, which bounds the expiry to what ParseTag accepts.
func tagRoundTrips(tag forward.Tag) bool {
	got, err := forward.ParseTag(tag.String())
	return err == nil && got == tag
}

// expected returns the rules forward f needs, by chain, with every managed
// property (disabled included, for comparison).
func expected(f syncproto.Forward, tag forward.Tag, tunnel, edge netip.Addr) map[string]map[string]string {
	comment := tag.String()
	rules := map[string]map[string]string{
		chainDstNAT: {
			propChain:       chainDstNAT,
			propAction:      "dst-nat",
			propProtocol:    "tcp",
			propSrcAddress:  edge.String(),
			propDstAddress:  tunnel.String(),
			propDstPort:     strconv.Itoa(int(f.Port)),
			propToAddresses: f.DstAddress.String(),
			propToPorts:     strconv.Itoa(int(f.DstPort)),
			propComment:     comment,
			propDisabled:    "false",
		},
	}
	if f.Masquerade {
		rules[chainSrcNAT] = map[string]string{
			propChain:      chainSrcNAT,
			propAction:     "masquerade",
			propProtocol:   "tcp",
			propSrcAddress: edge.String(),
			propDstAddress: f.DstAddress.String(),
			propDstPort:    strconv.Itoa(int(f.DstPort)),
			propComment:    comment,
			propDisabled:   "false",
		}
	}
	return rules
}

// drift returns the properties of want that got differs in, with the
// values to set; nil when none. Only the expected properties are compared:
// anything else on the rule is left as it is.
func drift(want, got map[string]string) map[string]string {
	return diffProps(managed, want, got)
}

// diffProps compares the properties keys (those want has) of want and got
// and returns the ones to set, nil when none. Disabled compares by meaning:
// absent, "false" or "no" is enabled, and an enabled item is written
// "disabled=no".
func diffProps(keys []string, want, got map[string]string) map[string]string {
	var d map[string]string
	for _, k := range keys {
		w, ok := want[k]
		if !ok {
			continue
		}
		g, present := got[k]
		if k == propDisabled {
			if !present || g == "false" || g == "no" {
				continue
			}
			w = "no"
		} else if present && g == w {
			continue
		}
		if d == nil {
			d = map[string]string{}
		}
		d[k] = w
	}
	return d
}

// touchesTraffic reports whether a fix changes what a rule matches or
// where it sends traffic (and not just its tag or its disabled flag).
func touchesTraffic(d map[string]string) bool {
	for _, k := range traffic {
		if _, ok := d[k]; ok {
			return true
		}
	}
	return false
}

// stillCarried reports whether the connections a removed dst-nat rule let
// through stay legitimate: the rule belongs to a forward that keeps a
// dst-nat rule matching and translating exactly as this one did.
func stillCarried(r Rule, wants map[string]*wanted) bool {
	tag, err := forward.ParseTag(r.Props[propComment])
	if err != nil || wants[tag.ID] == nil {
		return false
	}
	want := wants[tag.ID].rules[chainDstNAT]
	for _, k := range traffic {
		if r.Props[k] != want[k] {
			return false
		}
	}
	return true
}

// appendFlush appends the conntrack destination "address:port" of a
// dst-nat rule, unless already listed or not a single address and port
// (a hand-edited range or list cannot be named in one query).
func appendFlush(flush []string, props map[string]string) []string {
	if _, err := forward.ParseIPv4(props[propDstAddress]); err != nil {
		return flush
	}
	port, err := strconv.ParseUint(props[propDstPort], 10, 16)
	if err != nil || port == 0 || strconv.FormatUint(port, 10) != props[propDstPort] {
		return flush
	}
	dst := props[propDstAddress] + ":" + props[propDstPort]
	if slices.Contains(flush, dst) {
		return flush
	}
	return append(flush, dst)
}
