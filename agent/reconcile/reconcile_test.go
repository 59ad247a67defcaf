package reconcile

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/shared/forward"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

const (
	id1 = "9c56202d-c388-484d-ac9a-7677f24f1f18"
	id2 = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
	id3 = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"

	tunnel = "10.99.0.1"
	edge   = "10.99.0.254"
)

var (
	now    = time.Date(2024, 6, 22, 4, 0, 0, 0, time.UTC)
	later  = now.Add(2 * time.Hour)
	latest = now.Add(3 * time.Hour)
	past   = now.Add(-time.Minute)
)

// set builds a desired set for the test tunnel and edge addresses.
func set(fs ...syncproto.Forward) *syncproto.Desired {
	return &syncproto.Desired{
		Revision:      1,
		TunnelAddress: netip.MustParseAddr(tunnel),
		EdgeAddress:   netip.MustParseAddr(edge),
		Forwards:      fs,
	}
}

func fwd(id string, port uint16, dst string, dstPort uint16, expires time.Time) syncproto.Forward {
	return syncproto.Forward{ID: id, Port: port, DstAddress: netip.MustParseAddr(dst), DstPort: dstPort, ExpiresAt: expires}
}

func masq(f syncproto.Forward) syncproto.Forward {
	f.Masquerade = true
	return f
}

func tag(id string, expires time.Time) string {
	return forward.Tag{ID: id, Expires: expires}.String()
}

// dnat is the dst-nat rule for a forward as the router prints it.
func dnat(id string, port int, dst string, dstPort int, expires time.Time) map[string]string {
	return map[string]string{
		"chain": "dstnat", "action": "dst-nat", "protocol": "tcp",
		"src-address": edge, "dst-address": tunnel, "dst-port": strconv.Itoa(port),
		"to-addresses": dst, "to-ports": strconv.Itoa(dstPort),
		"comment": tag(id, expires), "disabled": "false",
	}
}

// snat is the masquerade rule for a forward as the router prints it.
func snat(id, dst string, dstPort int, expires time.Time) map[string]string {
	return map[string]string{
		"chain": "srcnat", "action": "masquerade", "protocol": "tcp",
		"src-address": edge, "dst-address": dst, "dst-port": strconv.Itoa(dstPort),
		"comment": tag(id, expires), "disabled": "false",
	}
}

// with returns a copy of props with the given key/value pairs changed.
func with(props map[string]string, kv ...string) map[string]string {
	out := maps.Clone(props)
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// without returns a copy of props without keys, as an Add carries them.
func without(props map[string]string, keys ...string) map[string]string {
	out := maps.Clone(props)
	for _, k := range keys {
		delete(out, k)
	}
	return out
}

// Foreign rules: the router's own, never to be touched.
var (
	defconfMasq = map[string]string{"chain": "srcnat", "action": "masquerade", "out-interface-list": "WAN",
		"comment": "defconf: masquerade", "disabled": "false"}
	webServer = map[string]string{"chain": "dstnat", "action": "dst-nat", "protocol": "tcp", "dst-port": "80",
		"to-addresses": "192.168.88.10", "disabled": "false"}
	camera = map[string]string{"chain": "dstnat", "action": "dst-nat", "protocol": "tcp", "dst-port": "8080",
		"to-addresses": "192.168.88.20", "comment": "camera (not tpf:)", "disabled": "false"}
	// lookalike says tpf but not at the start, so it is not ours.
	lookalike = map[string]string{"chain": "dstnat", "action": "dst-nat", "protocol": "tcp", "dst-port": "2222",
		"to-addresses": "192.168.88.30", "comment": "TPF:" + id1 + ":1719030809", "disabled": "false"}
)

// table numbers rules *1, *2, ... in order.
func table(props ...map[string]string) []Rule {
	rules := make([]Rule, len(props))
	for i, p := range props {
		rules[i] = Rule{ID: fmt.Sprintf("*%X", i+1), Props: p}
	}
	return rules
}

func applied(id string) syncproto.Result {
	return syncproto.Result{ID: id, State: syncproto.StateApplied}
}

func refused(id, msg string) syncproto.Result {
	return syncproto.Result{ID: id, State: syncproto.StateRefused, Error: msg}
}

var computeTests = []struct {
	name    string
	desired *syncproto.Desired
	rules   []Rule
	want    Plan
}{
	{
		name: "no set, empty router",
		want: Plan{},
	},
	{
		name:    "empty set, empty router",
		desired: set(),
		want:    Plan{Results: []syncproto.Result{}},
	},
	{
		name:    "foreign rules only are untouched",
		desired: set(),
		rules:   table(defconfMasq, webServer, camera, lookalike),
		want:    Plan{Results: []syncproto.Result{}},
	},
	{
		name:    "add on an empty router appends",
		desired: set(fwd(id1, 49159, "192.168.88.43", 22, later)),
		want: Plan{
			Add:     []Add{{Forward: id1, Props: without(dnat(id1, 49159, "192.168.88.43", 22, later), "disabled")}},
			Results: []syncproto.Result{applied(id1)},
			Next:    later,
		},
	},
	{
		name:    "add goes before the first foreign dstnat rule",
		desired: set(fwd(id1, 49159, "192.168.88.43", 22, later)),
		rules:   table(defconfMasq, webServer, camera),
		want: Plan{
			Add:     []Add{{Forward: id1, Props: without(dnat(id1, 49159, "192.168.88.43", 22, later), "disabled"), PlaceBefore: "*2"}},
			Results: []syncproto.Result{applied(id1)},
			Next:    later,
		},
	},
	{
		name:    "masquerade adds a srcnat rule before the first foreign srcnat rule",
		desired: set(masq(fwd(id1, 49159, "192.168.88.43", 22, later))),
		rules:   table(webServer, defconfMasq),
		want: Plan{
			Add: []Add{
				{Forward: id1, Props: without(dnat(id1, 49159, "192.168.88.43", 22, later), "disabled"), PlaceBefore: "*1"},
				{Forward: id1, Props: without(snat(id1, "192.168.88.43", 22, later), "disabled"), PlaceBefore: "*2"},
			},
			Results: []syncproto.Result{applied(id1)},
			Next:    later,
		},
	},
	{
		name: "adds in set order; next is the earliest expiry",
		desired: set(
			fwd(id2, 49160, "192.168.88.44", 80, latest),
			fwd(id1, 49159, "192.168.88.43", 22, later),
		),
		want: Plan{
			Add: []Add{
				{Forward: id2, Props: without(dnat(id2, 49160, "192.168.88.44", 80, latest), "disabled")},
				{Forward: id1, Props: without(dnat(id1, 49159, "192.168.88.43", 22, later), "disabled")},
			},
			Results: []syncproto.Result{applied(id2), applied(id1)},
			Next:    later,
		},
	},
	{
		name:    "rules in place: nothing to do",
		desired: set(masq(fwd(id1, 49159, "192.168.88.43", 22, later))),
		rules: table(dnat(id1, 49159, "192.168.88.43", 22, later), webServer,
			snat(id1, "192.168.88.43", 22, later), defconfMasq),
		want: Plan{Results: []syncproto.Result{applied(id1)}, Next: later},
	},
	{
		name:    "stale tpf rule is removed and its connections flushed",
		desired: set(),
		rules:   table(webServer, dnat(id2, 49160, "192.168.88.44", 80, later), snat(id2, "192.168.88.44", 80, later)),
		want: Plan{
			Remove:  []string{"*2", "*3"},
			Flush:   []string{tunnel + ":49160"},
			Results: []syncproto.Result{},
		},
	},
	{
		name:    "expired tag is removed and flushed, the rest kept",
		desired: set(fwd(id1, 49159, "192.168.88.43", 22, later)),
		rules:   table(dnat(id1, 49159, "192.168.88.43", 22, later), dnat(id2, 49160, "192.168.88.44", 80, past)),
		want: Plan{
			Remove:  []string{"*2"},
			Flush:   []string{tunnel + ":49160"},
			Results: []syncproto.Result{applied(id1)},
			Next:    later,
		},
	},
	{
		name:    "malformed tpf tags are removed; flushed when the destination is readable",
		desired: set(),
		rules: table(
			with(dnat(id1, 49159, "192.168.88.43", 22, later), "comment", "tpf:garbage"),
			with(dnat(id1, 49160, "192.168.88.43", 22, later), "comment", "tpf:", "dst-port", "1000-2000"),
			with(dnat(id1, 49161, "192.168.88.43", 22, later), "comment", "tpf:"+id1+":01719030809"),
			camera,
		),
		want: Plan{
			Remove:  []string{"*1", "*2", "*3"},
			Flush:   []string{tunnel + ":49159", tunnel + ":49161"},
			Results: []syncproto.Result{},
		},
	},
	{
		name:    "hand-edited target is set back and its connections flushed",
		desired: set(fwd(id1, 49159, "192.168.88.43", 22, later)),
		rules:   table(with(dnat(id1, 49159, "192.168.88.43", 22, later), "to-ports", "23", "to-addresses", "192.168.88.1")),
		want: Plan{
			Set:     []Set{{ID: "*1", Forward: id1, Props: map[string]string{"to-ports": "22", "to-addresses": "192.168.88.43"}}},
			Flush:   []string{tunnel + ":49159"},
			Results: []syncproto.Result{applied(id1)},
			Next:    later,
		},
	},
	{
		name:    "widened source is narrowed again and flushed",
		desired: set(fwd(id1, 49159, "192.168.88.43", 22, later)),
		rules:   table(without(dnat(id1, 49159, "192.168.88.43", 22, later), "src-address")),
		want: Plan{
			Set:     []Set{{ID: "*1", Forward: id1, Props: map[string]string{"src-address": edge}}},
			Flush:   []string{tunnel + ":49159"},
			Results: []syncproto.Result{applied(id1)},
			Next:    later,
		},
	},
	{
		name:    "disabled tpf rule is re-enabled without a flush",
		desired: set(masq(fwd(id1, 49159, "192.168.88.43", 22, later))),
		rules: table(with(dnat(id1, 49159, "192.168.88.43", 22, later), "disabled", "true"),
			with(snat(id1, "192.168.88.43", 22, later), "disabled", "yes")),
		want: Plan{
			Set: []Set{
				{ID: "*1", Forward: id1, Props: map[string]string{"disabled": "no"}},
				{ID: "*2", Forward: id1, Props: map[string]string{"disabled": "no"}},
			},
			Results: []syncproto.Result{applied(id1)},
			Next:    later,
		},
	},
	{
		name:    "extended forward gets its tag updated in place",
		desired: set(masq(fwd(id1, 49159, "192.168.88.43", 22, latest))),
		rules:   table(dnat(id1, 49159, "192.168.88.43", 22, later), snat(id1, "192.168.88.43", 22, later)),
		want: Plan{
			Set: []Set{
				{ID: "*1", Forward: id1, Props: map[string]string{"comment": tag(id1, latest)}},
				{ID: "*2", Forward: id1, Props: map[string]string{"comment": tag(id1, latest)}},
			},
			Results: []syncproto.Result{applied(id1)},
			Next:    latest,
		},
	},
	{
		name:    "extended after its old tag expired: fixed in place, not cut",
		desired: set(fwd(id1, 49159, "192.168.88.43", 22, later)),
		rules:   table(dnat(id1, 49159, "192.168.88.43", 22, past)),
		want: Plan{
			Set:     []Set{{ID: "*1", Forward: id1, Props: map[string]string{"comment": tag(id1, later)}}},
			Results: []syncproto.Result{applied(id1)},
			Next:    later,
		},
	},
	{
		name:    "duplicate is removed without cutting the forward's connections",
		desired: set(fwd(id1, 49159, "192.168.88.43", 22, later)),
		rules: table(dnat(id1, 49159, "192.168.88.43", 22, later), webServer,
			dnat(id1, 49159, "192.168.88.43", 22, later)),
		want: Plan{
			Remove:  []string{"*3"},
			Results: []syncproto.Result{applied(id1)},
			Next:    later,
		},
	},
	{
		name:    "of duplicates the correct one is kept; the edited one goes, with a flush",
		desired: set(fwd(id1, 49159, "192.168.88.43", 22, later)),
		rules: table(with(dnat(id1, 49159, "192.168.88.43", 22, later), "to-ports", "23"),
			dnat(id1, 49159, "192.168.88.43", 22, later)),
		want: Plan{
			Remove:  []string{"*1"},
			Flush:   []string{tunnel + ":49159"},
			Results: []syncproto.Result{applied(id1)},
			Next:    later,
		},
	},
	{
		name:    "masquerade rule of a forward without masquerade is removed",
		desired: set(fwd(id1, 49159, "192.168.88.43", 22, later)),
		rules:   table(dnat(id1, 49159, "192.168.88.43", 22, later), snat(id1, "192.168.88.43", 22, later)),
		want: Plan{
			Remove:  []string{"*2"},
			Results: []syncproto.Result{applied(id1)},
			Next:    later,
		},
	},
	{
		name:    "tpf rule in a chain tpf never uses is removed",
		desired: set(fwd(id1, 49159, "192.168.88.43", 22, later)),
		rules:   table(dnat(id1, 49159, "192.168.88.43", 22, later), with(dnat(id1, 49159, "192.168.88.43", 22, later), "chain", "input")),
		want: Plan{
			Remove:  []string{"*2"},
			Results: []syncproto.Result{applied(id1)},
			Next:    later,
		},
	},
	{
		name: "no set yet: unexpired kept, expired and malformed removed",
		rules: table(
			dnat(id1, 49159, "192.168.88.43", 22, later),
			dnat(id2, 49160, "192.168.88.44", 80, past),
			webServer,
			snat(id2, "192.168.88.44", 80, past),
			dnat(id3, 49161, "192.168.88.45", 443, latest),
			with(dnat(id3, 49162, "192.168.88.45", 443, latest), "comment", "tpf:oops"),
			// Edited or duplicated, but unexpired: kept until a set says more.
			with(dnat(id1, 49159, "192.168.88.43", 22, later), "disabled", "true"),
		),
		want: Plan{
			Remove: []string{"*2", "*4", "*6"},
			Flush:  []string{tunnel + ":49160", tunnel + ":49162"},
			Next:   later,
		},
	},
	{
		name: "no set yet, tag expiring right now is removed",
		rules: table(
			dnat(id1, 49159, "192.168.88.43", 22, now),
		),
		want: Plan{Remove: []string{"*1"}, Flush: []string{tunnel + ":49159"}},
	},
	{
		name: "refused forwards get no rule, and theirs are removed",
		desired: set(
			fwd(id1, 49159, "127.0.0.1", 22, later),
			fwd(id2, 49160, "169.254.169.254", 80, later),
			fwd(id3, 49161, tunnel, 8728, later),
			fwd("4c1a2f4e-0d6b-4f55-9d1b-5d2f0a9a7c11", 49162, edge, 22, later),
			fwd("4C1A2F4E-0D6B-4F55-9D1B-5D2F0A9A7C12", 49163, "192.168.88.43", 22, later),
			fwd("not-a-uuid", 49164, "192.168.88.43", 22, later),
			fwd("4c1a2f4e-0d6b-4f55-9d1b-5d2f0a9a7c13", 0, "192.168.88.43", 22, later),
			fwd("4c1a2f4e-0d6b-4f55-9d1b-5d2f0a9a7c14", 49165, "192.168.88.43", 0, later),
			fwd("4c1a2f4e-0d6b-4f55-9d1b-5d2f0a9a7c15", 49166, "100.64.0.1", 22, later),
			fwd("4c1a2f4e-0d6b-4f55-9d1b-5d2f0a9a7c16", 49167, "192.0.2.1", 22, later),
			fwd("4c1a2f4e-0d6b-4f55-9d1b-5d2f0a9a7c17", 49168, "8.8.8.8", 53, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)),
			syncproto.Forward{ID: "4c1a2f4e-0d6b-4f55-9d1b-5d2f0a9a7c18", Port: 49169, DstPort: 22, ExpiresAt: later},
		),
		rules: table(dnat(id1, 49159, "127.0.0.1", 22, later), dnat(id2, 49160, "169.254.169.254", 80, later)),
		want: Plan{
			Remove: []string{"*1", "*2"},
			Flush:  []string{tunnel + ":49159", tunnel + ":49160"},
			Results: []syncproto.Result{
				refused(id1, `dst_address "127.0.0.1" is loopback: not a private or globally reachable address`),
				refused(id2, `dst_address "169.254.169.254" is link-local: not a private or globally reachable address`),
				refused(id3, "dst_address 10.99.0.1 is the router's tunnel address"),
				refused("4c1a2f4e-0d6b-4f55-9d1b-5d2f0a9a7c11", "dst_address 10.99.0.254 is the edge address"),
				refused("4C1A2F4E-0D6B-4F55-9D1B-5D2F0A9A7C12", `id "4C1A2F4E-0D6B-4F55-9D1B-5D2F0A9A7C12" is not a canonical lower-case UUID`),
				refused("not-a-uuid", `id "not-a-uuid" is not a canonical lower-case UUID`),
				refused("4c1a2f4e-0d6b-4f55-9d1b-5d2f0a9a7c13", "port must be between 1 and 65535"),
				refused("4c1a2f4e-0d6b-4f55-9d1b-5d2f0a9a7c14", "dst_port must be between 1 and 65535"),
				refused("4c1a2f4e-0d6b-4f55-9d1b-5d2f0a9a7c15", `dst_address "100.64.0.1" is shared address space: not a private or globally reachable address`),
				refused("4c1a2f4e-0d6b-4f55-9d1b-5d2f0a9a7c16", `dst_address "192.0.2.1" is documentation: not a private or globally reachable address`),
				refused("4c1a2f4e-0d6b-4f55-9d1b-5d2f0a9a7c17", "expires_at 10000-01-01T00:00:00Z cannot be written in a rule tag"),
				refused("4c1a2f4e-0d6b-4f55-9d1b-5d2f0a9a7c18", `dst_address "invalid IP": not a canonical IPv4 address or CIDR`),
			},
		},
	},
	{
		name: "duplicate id and duplicate port: the first wins",
		desired: set(
			fwd(id1, 49159, "192.168.88.43", 22, later),
			fwd(id1, 49160, "192.168.88.44", 22, later),
			fwd(id2, 49159, "192.168.88.45", 22, later),
		),
		want: Plan{
			Add: []Add{{Forward: id1, Props: without(dnat(id1, 49159, "192.168.88.43", 22, later), "disabled")}},
			Results: []syncproto.Result{
				applied(id1),
				refused(id1, "duplicate forward id in the desired set"),
				refused(id2, "port 49159 is already used by forward "+id1),
			},
			Next: later,
		},
	},
	{
		name: "expired desired forward gets no rule; its rules go and are flushed",
		desired: set(
			masq(fwd(id1, 49159, "192.168.88.43", 22, past)),
			fwd(id2, 49160, "192.168.88.44", 80, now),
			fwd(id3, 49161, "192.168.88.45", 443, now.Add(999*time.Millisecond)), // the tag keeps whole seconds
		),
		rules: table(dnat(id1, 49159, "192.168.88.43", 22, past), snat(id1, "192.168.88.43", 22, past),
			dnat(id2, 49160, "192.168.88.44", 80, now)),
		want: Plan{
			Remove: []string{"*1", "*2", "*3"},
			Flush:  []string{tunnel + ":49159", tunnel + ":49160"},
			Results: []syncproto.Result{
				{ID: id1, State: syncproto.StateExpired},
				{ID: id2, State: syncproto.StateExpired},
				{ID: id3, State: syncproto.StateExpired},
			},
		},
	},
	{
		name: "port reused by a new forward: old rule removed and flushed, new one added",
		desired: set(
			fwd(id2, 49159, "192.168.88.44", 22, later),
		),
		rules: table(dnat(id1, 49159, "192.168.88.43", 22, past), camera),
		want: Plan{
			Remove:  []string{"*1"},
			Add:     []Add{{Forward: id2, Props: without(dnat(id2, 49159, "192.168.88.44", 22, later), "disabled"), PlaceBefore: "*2"}},
			Flush:   []string{tunnel + ":49159"},
			Results: []syncproto.Result{applied(id2)},
			Next:    later,
		},
	},
	{
		name: "unusable tunnel address refuses the whole set and removes every tpf rule",
		desired: &syncproto.Desired{
			TunnelAddress: netip.MustParseAddr("0.0.0.0"),
			EdgeAddress:   netip.MustParseAddr(edge),
			Forwards:      []syncproto.Forward{fwd(id1, 49159, "192.168.88.43", 22, later)},
		},
		rules: table(webServer, dnat(id1, 49159, "192.168.88.43", 22, later)),
		want: Plan{
			Remove:  []string{"*2"},
			Flush:   []string{tunnel + ":49159"},
			Results: []syncproto.Result{refused(id1, "tunnel address 0.0.0.0 is not a usable IPv4 address")},
		},
	},
	{
		name: "missing edge address refuses the whole set",
		desired: &syncproto.Desired{
			TunnelAddress: netip.MustParseAddr(tunnel),
			Forwards:      []syncproto.Forward{fwd(id1, 49159, "192.168.88.43", 22, later)},
		},
		want: Plan{Results: []syncproto.Result{refused(id1, "edge address invalid IP is not a usable IPv4 address")}},
	},
	{
		name: "IPv4-mapped IPv6 tunnel address is refused",
		desired: &syncproto.Desired{
			TunnelAddress: netip.MustParseAddr("::ffff:10.99.0.1"),
			EdgeAddress:   netip.MustParseAddr(edge),
			Forwards:      []syncproto.Forward{fwd(id1, 49159, "192.168.88.43", 22, later)},
		},
		want: Plan{Results: []syncproto.Result{refused(id1, "tunnel address ::ffff:10.99.0.1 is not a usable IPv4 address")}},
	},
	{
		name: "everything at once",
		desired: set(
			masq(fwd(id1, 49159, "192.168.88.43", 22, later)),
			fwd(id2, 49160, "192.168.88.44", 80, latest),
		),
		// *1 foreign srcnat, *2 stale, *3 disabled, *4 and *5 foreign dstnat.
		rules: table(
			defconfMasq,
			dnat(id3, 49161, "192.168.88.45", 443, later),
			with(dnat(id2, 49160, "192.168.88.44", 80, latest), "disabled", "true"),
			webServer,
			camera,
		),
		want: Plan{
			Remove: []string{"*2"},
			Set:    []Set{{ID: "*3", Forward: id2, Props: map[string]string{"disabled": "no"}}},
			Add: []Add{
				{Forward: id1, Props: without(dnat(id1, 49159, "192.168.88.43", 22, later), "disabled"), PlaceBefore: "*4"},
				{Forward: id1, Props: without(snat(id1, "192.168.88.43", 22, later), "disabled"), PlaceBefore: "*1"},
			},
			Flush:   []string{tunnel + ":49161"},
			Results: []syncproto.Result{applied(id1), applied(id2)},
			Next:    later,
		},
	},
}

func TestCompute(t *testing.T) {
	t.Parallel()
	for _, tt := range computeTests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			before := cloneRules(tt.rules)
			got := Compute(tt.desired, tt.rules, now)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Compute:\ngot  %s\nwant %s", dump(got), dump(tt.want))
			}
			if !reflect.DeepEqual(tt.rules, before) {
				t.Errorf("Compute changed its input rules:\ngot  %s\nwant %s", dump(tt.rules), dump(before))
			}
			checkPlan(t, got, tt.rules)
		})
	}
}

// TestComputeIdempotent applies each plan to its rules and computes again:
// the second plan must change nothing and report the same results.
func TestComputeIdempotent(t *testing.T) {
	t.Parallel()
	for _, tt := range computeTests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			first := Compute(tt.desired, tt.rules, now)
			after := apply(t, tt.rules, first)
			second := Compute(tt.desired, after, now)
			if !second.Empty() {
				t.Errorf("second plan: got %s, want no changes", dump(second))
			}
			if !reflect.DeepEqual(second.Results, first.Results) || !second.Next.Equal(first.Next) {
				t.Errorf("second plan results/next: got %s / %v, want %s / %v",
					dump(second.Results), second.Next, dump(first.Results), first.Next)
			}
			// Foreign rules are the same, in the same relative order.
			if got, want := foreign(after), foreign(tt.rules); !reflect.DeepEqual(got, want) {
				t.Errorf("foreign rules after applying:\ngot  %s\nwant %s", dump(got), dump(want))
			}
		})
	}
}

// TestComputeExpiryClock runs one forward through its life on the agent's
// clock, with the set never changing: added, kept, then removed at expiry.
func TestComputeExpiryClock(t *testing.T) {
	t.Parallel()
	d := set(fwd(id1, 49159, "192.168.88.43", 22, later))
	var rules []Rule
	steps := []struct {
		at       time.Time
		state    string
		adds     int
		removes  int
		wantNext time.Time
	}{
		{now, syncproto.StateApplied, 1, 0, later},
		{later.Add(-time.Second), syncproto.StateApplied, 0, 0, later},
		{later, syncproto.StateExpired, 0, 1, time.Time{}},
		{later.Add(time.Hour), syncproto.StateExpired, 0, 0, time.Time{}},
	}
	for _, s := range steps {
		p := Compute(d, rules, s.at)
		if got := p.Results[0].State; got != s.state {
			t.Errorf("at %v: state got %s, want %s", s.at, got, s.state)
		}
		if len(p.Add) != s.adds || len(p.Remove) != s.removes {
			t.Errorf("at %v: got %d adds, %d removes; want %d, %d", s.at, len(p.Add), len(p.Remove), s.adds, s.removes)
		}
		if !p.Next.Equal(s.wantNext) {
			t.Errorf("at %v: next got %v, want %v", s.at, p.Next, s.wantNext)
		}
		rules = apply(t, rules, p)
	}
	// A restarted agent without a set enforces the same expiry.
	rules = apply(t, nil, Compute(d, nil, now))
	if p := Compute(nil, rules, later.Add(-time.Second)); !p.Empty() || !p.Next.Equal(later) {
		t.Errorf("no set, before expiry: got %s, want no changes and next %v", dump(p), later)
	}
	if p := Compute(nil, rules, later); len(p.Remove) != 1 || len(p.Flush) != 1 {
		t.Errorf("no set, at expiry: got %s, want the rule removed and flushed", dump(p))
	}
}

func TestProperties(t *testing.T) {
	t.Parallel()
	got := Properties()
	got[0] = "mutated"
	if Properties()[0] != "chain" {
		t.Fatalf("Properties shares its slice with callers")
	}
	for _, p := range []string{"chain", "action", "protocol", "src-address", "dst-address",
		"dst-port", "to-addresses", "to-ports", "comment", "disabled"} {
		if !slices.Contains(Properties(), p) {
			t.Errorf("Properties(): missing %q", p)
		}
	}
}

func TestPlanEmpty(t *testing.T) {
	t.Parallel()
	if !(Plan{Results: []syncproto.Result{applied(id1)}, Next: later}).Empty() {
		t.Errorf("a plan with results only: got Empty false, want true")
	}
	for _, p := range []Plan{{Remove: []string{"*1"}}, {Set: []Set{{}}}, {Add: []Add{{}}}, {Flush: []string{"x"}}} {
		if p.Empty() {
			t.Errorf("%s: got Empty true, want false", dump(p))
		}
	}
}

// FuzzCompute builds rule tables from random bytes and checks that Compute
// never panics, never removes or sets a rule that is not tpf's, places
// additions before an existing foreign rule of the right chain, and that
// applying its plan leaves nothing more to do.
func FuzzCompute(f *testing.F) {
	f.Add([]byte{}, int64(0), false)
	f.Add([]byte{2, 0, 0, 1, 2, 3, 2, 1, 1, 0, 3, 7, 1, 2, 2, 9}, int64(3600), false)
	f.Add([]byte{1, 1, 5, 2, 0, 2, 0, 4, 3, 1, 1, 2, 2, 2, 2}, int64(-60), true)
	f.Add([]byte("tpf:garbage\x00\x01\x02dstnat"), int64(7200), false)
	f.Fuzz(func(t *testing.T, data []byte, offset int64, noSet bool) {
		rules := fuzzRules(data)
		d := set(
			masq(fwd(id1, 49159, "192.168.88.43", 22, later)),
			fwd(id2, 49160, "192.168.88.44", 80, latest),
			fwd(id3, 49161, "127.0.0.1", 22, later), // refused
		)
		if noSet {
			d = nil
		}
		at := now.Add(time.Duration(offset%(4*3600)) * time.Second)
		before := cloneRules(rules)
		p := Compute(d, rules, at)
		if !reflect.DeepEqual(rules, before) {
			t.Fatalf("Compute changed its input rules")
		}
		checkPlan(t, p, rules)
		if d != nil && len(p.Results) != len(d.Forwards) {
			t.Fatalf("got %d results, want %d", len(p.Results), len(d.Forwards))
		}
		after := apply(t, rules, p)
		if again := Compute(d, after, at); !again.Empty() {
			t.Fatalf("second plan: got %s, want no changes (first %s on %s)", dump(again), dump(p), dump(rules))
		}
	})
}

// fuzzRules turns bytes into a rule table: each rule takes a few bytes that
// pick its comment, chain and a property to disturb.
func fuzzRules(data []byte) []Rule {
	chains := []string{"dstnat", "srcnat", "input", ""}
	ids := []string{id1, id2, id3, "4c1a2f4e-0d6b-4f55-9d1b-5d2f0a9a7c11"}
	expiries := []time.Time{past, now, later, latest}
	props := []string{"action", "protocol", "src-address", "dst-address", "dst-port", "to-addresses", "to-ports", "disabled", "comment", "chain"}
	values := []string{"", "tcp", "udp", "dst-nat", "masquerade", edge, tunnel, "49159", "22", "192.168.88.43", "true", "no", "1000-2000", "tpf:", "tpf:x", "x"}
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	var rules []Rule
	for len(data) > 0 && len(rules) < 40 {
		kind, a, b, c := next(), next(), next(), next()
		var p map[string]string
		id, exp := ids[int(a)%len(ids)], expiries[int(b)%len(expiries)]
		switch kind % 6 {
		case 0:
			p = dnat(id, 49159+int(b%3), "192.168.88.43", 22, exp)
		case 1:
			p = snat(id, "192.168.88.43", 22, exp)
		case 2:
			p = maps.Clone([]map[string]string{defconfMasq, webServer, camera, lookalike}[int(a)%4])
		case 3:
			p = with(dnat(id, 49160, "192.168.88.44", 80, exp), "comment", "tpf:"+string(data[:min(len(data), int(c%8))]))
		case 4:
			p = with(dnat(id, 49160, "192.168.88.44", 80, exp), "comment", string(data[:min(len(data), int(c%12))]))
		default:
			p = map[string]string{}
		}
		p["chain"] = chains[int(c)%len(chains)]
		if kind%6 < 2 && c%3 == 0 {
			p["chain"] = map[int]string{0: "dstnat", 1: "srcnat"}[int(kind%6)]
		}
		if n := next(); n%2 == 1 {
			p[props[int(n/2)%len(props)]] = values[int(next())%len(values)]
		}
		rules = append(rules, Rule{ID: fmt.Sprintf("*%X", len(rules)+1), Props: p})
	}
	return rules
}

// checkPlan checks the invariants every plan must hold against its input.
func checkPlan(t testing.TB, p Plan, rules []Rule) {
	t.Helper()
	byID := map[string]Rule{}
	for _, r := range rules {
		byID[r.ID] = r
	}
	removed := map[string]bool{}
	for _, id := range p.Remove {
		r, ok := byID[id]
		if !ok {
			t.Fatalf("Remove %s: no such rule", id)
		}
		if !forward.IsTPF(r.Props["comment"]) {
			t.Fatalf("Remove %s: rule %v is not tpf's", id, r.Props)
		}
		if removed[id] {
			t.Fatalf("Remove %s twice", id)
		}
		removed[id] = true
	}
	for _, s := range p.Set {
		r, ok := byID[s.ID]
		if !ok || !forward.IsTPF(r.Props["comment"]) || removed[s.ID] {
			t.Fatalf("Set %s: rule %v is missing, not tpf's or removed", s.ID, r.Props)
		}
		if len(s.Props) == 0 {
			t.Fatalf("Set %s changes nothing", s.ID)
		}
	}
	for _, a := range p.Add {
		if !forward.IsTPF(a.Props["comment"]) {
			t.Fatalf("Add without a tpf tag: %v", a.Props)
		}
		if a.PlaceBefore == "" {
			continue
		}
		r, ok := byID[a.PlaceBefore]
		if !ok || forward.IsTPF(r.Props["comment"]) || r.Props["chain"] != a.Props["chain"] {
			t.Fatalf("Add place-before %s: want an existing foreign %s rule, got %v", a.PlaceBefore, a.Props["chain"], r.Props)
		}
	}
}

// apply is the router, in miniature: it applies p to a copy of rules the
// way package routeros does, numbering new rules after the highest id.
func apply(t testing.TB, rules []Rule, p Plan) []Rule {
	t.Helper()
	out := cloneRules(rules)
	last := 0
	for _, r := range out {
		n, _ := strconv.ParseInt(r.ID[1:], 16, 64)
		last = max(last, int(n))
	}
	index := func(id string) int {
		return slices.IndexFunc(out, func(r Rule) bool { return r.ID == id })
	}
	for _, id := range p.Remove {
		i := index(id)
		if i < 0 {
			t.Fatalf("apply: remove %s: no such item", id)
		}
		out = slices.Delete(out, i, i+1)
	}
	for _, s := range p.Set {
		i := index(s.ID)
		if i < 0 {
			t.Fatalf("apply: set %s: no such item", s.ID)
		}
		for k, v := range s.Props {
			if k == "disabled" { // the router prints booleans as true/false
				v = map[string]string{"no": "false", "yes": "true"}[v]
			}
			out[i].Props[k] = v
		}
	}
	for _, a := range p.Add {
		last++
		r := Rule{ID: fmt.Sprintf("*%X", last), Props: maps.Clone(a.Props)}
		r.Props["disabled"] = "false"
		at := len(out)
		if a.PlaceBefore != "" {
			if at = index(a.PlaceBefore); at < 0 {
				t.Fatalf("apply: add before %s: no such item", a.PlaceBefore)
			}
		}
		out = slices.Insert(out, at, r)
	}
	return out
}

func cloneRules(rules []Rule) []Rule {
	if rules == nil {
		return nil
	}
	out := make([]Rule, len(rules))
	for i, r := range rules {
		out[i] = Rule{ID: r.ID, Props: maps.Clone(r.Props)}
	}
	return out
}

func foreign(rules []Rule) []Rule {
	var out []Rule
	for _, r := range rules {
		if !forward.IsTPF(r.Props["comment"]) {
			out = append(out, r)
		}
	}
	return out
}

func dump(v any) string {
	b, err := json.MarshalIndent(v, "     ", "  ")
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}
