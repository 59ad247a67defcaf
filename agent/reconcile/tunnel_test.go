package reconcile

import (
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/shared/syncproto"
)

// Keys: the router's own (its tpf interface's), the edge's, and the edge's
// after a change.
const (
	routerKey = "y4bDGpF+nKSzgoPHCf2BolGLmObdxqktfbeQstM74GQ="
	edgeKey   = "sgDnwBNdPaC5/dXC8J/EISRsrJribEklhgHfBpGSmWc="
	edgeKey2  = "HhbyDzvO6PpPKwVbFODLXEyfk3yeDdFHyRn9AL5ePxo="
	otherKey  = "gLP3qHzYbGCTbO9y3oa27RNRHwOYGNLX2eQ2d8Xa2n0="
)

// tun is the desired tunnel with the edge's key (empty: not reported yet).
func tun(key string) *syncproto.Tunnel {
	return &syncproto.Tunnel{
		Address:          netip.MustParseAddr(tunnel),
		EdgeAddress:      netip.MustParseAddr(edge),
		EdgePublicKey:    key,
		Endpoint:         "edge.example.net:51820",
		KeepaliveSeconds: 25,
	}
}

// The tpf objects as the router prints them when all is in place.
var (
	tpfIface = map[string]string{"name": "tpf", "comment": "tpf:tunnel", "disabled": "false",
		"listen-port": "13231", "public-key": routerKey}
	tpfPeer = map[string]string{"interface": "tpf", "comment": "tpf:tunnel", "disabled": "false",
		"public-key": edgeKey, "endpoint-address": "edge.example.net", "endpoint-port": "51820",
		"allowed-address": edge + "/32", "persistent-keepalive": "25s"}
	tpfAddr = map[string]string{"address": tunnel + "/32", "network": edge, "interface": "tpf",
		"comment": "tpf:tunnel", "disabled": "false"}
)

// The operator's own WireGuard: never to be touched.
var (
	opIface = map[string]string{"name": "wg1", "disabled": "false", "listen-port": "13231", "public-key": otherKey}
	opPeer  = map[string]string{"interface": "wg1", "disabled": "false", "public-key": edgeKey2,
		"allowed-address": "10.0.0.2/32", "persistent-keepalive": "0s", "endpoint-port": "0"}
	opAddr = map[string]string{"address": "10.0.0.1/24", "network": "10.0.0.0", "interface": "wg1", "disabled": "false"}
	lanIP  = map[string]string{"address": "192.168.88.1/24", "network": "192.168.88.0", "interface": "bridge",
		"comment": "defconf", "disabled": "false"}
)

// rows numbers items *1, *2, ... in order.
func rows(props ...map[string]string) []Row {
	out := make([]Row, len(props))
	for i, p := range props {
		out[i] = Row{ID: fmt.Sprintf("*%X", i+1), Props: p}
	}
	return out
}

// wantPeerAdd and wantAddrAdd are the adds of a complete tunnel.
func wantPeerAdd(key string) TunnelStep {
	return TunnelStep{Menu: MenuPeers, Props: map[string]string{
		"interface": "tpf", "comment": "tpf:tunnel", "public-key": key,
		"endpoint-address": "edge.example.net", "endpoint-port": "51820",
		"allowed-address": edge + "/32", "persistent-keepalive": "25",
	}}
}

var (
	wantIfaceAdd = TunnelStep{Menu: MenuWireGuard, Props: map[string]string{"name": "tpf", "comment": "tpf:tunnel"}}
	wantAddrAdd  = TunnelStep{Menu: MenuAddress, Props: map[string]string{
		"interface": "tpf", "comment": "tpf:tunnel", "address": tunnel + "/32", "network": edge,
	}}
)

func remove(menu, id string) TunnelStep { return TunnelStep{Menu: menu, ID: id} }

var planTunnelTests = []struct {
	name    string
	desired *syncproto.Tunnel
	noSet   bool // no desired set received yet
	cur     TunnelRows
	want    TunnelPlan
}{
	{
		name:  "no set yet: the tunnel is left alone",
		noSet: true,
		cur: TunnelRows{Interfaces: rows(tpfIface), Peers: rows(with(tpfPeer, "endpoint-port", "1")),
			Addresses: rows(tpfAddr)},
	},
	{
		name:  "no set yet, even for stray objects",
		noSet: true,
		cur:   TunnelRows{Interfaces: rows(tpfIface, with(tpfIface, "name", "tpf2")), Peers: rows(tpfPeer, tpfPeer)},
	},
	{
		name: "no tunnel, empty router",
	},
	{
		name: "no tunnel: every tpf object goes, peers and addresses before the interface",
		cur: TunnelRows{
			Interfaces: rows(opIface, tpfIface),
			Peers:      rows(opPeer, tpfPeer),
			Addresses:  rows(lanIP, tpfAddr, opAddr),
		},
		want: TunnelPlan{Remove: []TunnelStep{
			remove(MenuPeers, "*2"), remove(MenuAddress, "*2"), remove(MenuWireGuard, "*2"),
		}},
	},
	{
		name: "no tunnel: an operator's interface named tpf is not ours",
		cur:  TunnelRows{Interfaces: rows(without(tpfIface, "comment"))},
	},
	{
		name:    "build from nothing before the edge key is known: interface and address",
		desired: tun(""),
		cur:     TunnelRows{Addresses: rows(lanIP)},
		want:    TunnelPlan{Add: []TunnelStep{wantIfaceAdd, wantAddrAdd}},
	},
	{
		name:    "build from nothing with the edge key",
		desired: tun(edgeKey),
		want:    TunnelPlan{Add: []TunnelStep{wantIfaceAdd, wantPeerAdd(edgeKey), wantAddrAdd}},
	},
	{
		name:    "all in place: nothing to do",
		desired: tun(edgeKey),
		cur: TunnelRows{
			Interfaces: rows(opIface, tpfIface),
			Peers:      rows(opPeer, tpfPeer),
			Addresses:  rows(lanIP, opAddr, tpfAddr),
		},
	},
	{
		name:    "values read back in other spellings are in place",
		desired: tun(edgeKey),
		cur: TunnelRows{
			Interfaces: rows(with(tpfIface, "disabled", "no")),
			Peers:      rows(with(tpfPeer, "persistent-keepalive", "25", "endpoint-address", "EDGE.example.net", "allowed-address", edge)),
			Addresses:  rows(without(tpfAddr, "disabled")),
		},
	},
	{
		name:    "the edge key arrives: the peer is added",
		desired: tun(edgeKey),
		cur:     TunnelRows{Interfaces: rows(tpfIface), Addresses: rows(tpfAddr)},
		want:    TunnelPlan{Add: []TunnelStep{wantPeerAdd(edgeKey)}},
	},
	{
		name:    "the edge key is withdrawn: the peer goes",
		desired: tun(""),
		cur:     TunnelRows{Interfaces: rows(tpfIface), Peers: rows(tpfPeer), Addresses: rows(tpfAddr)},
		want:    TunnelPlan{Remove: []TunnelStep{remove(MenuPeers, "*1")}},
	},
	{
		name:    "hand-edited peer is fixed in place, only what drifted",
		desired: tun(edgeKey),
		cur: TunnelRows{
			Interfaces: rows(tpfIface),
			Peers: rows(with(tpfPeer, "endpoint-address", "203.0.113.9", "allowed-address", "0.0.0.0/0",
				"persistent-keepalive", "0s", "disabled", "true")),
			Addresses: rows(tpfAddr),
		},
		want: TunnelPlan{Set: []TunnelStep{{Menu: MenuPeers, ID: "*1", Props: map[string]string{
			"endpoint-address": "edge.example.net", "allowed-address": edge + "/32",
			"persistent-keepalive": "25", "disabled": "no",
		}}}},
	},
	{
		name:    "a new edge key and endpoint are a set, not remove and add",
		desired: &syncproto.Tunnel{Address: netip.MustParseAddr(tunnel), EdgeAddress: netip.MustParseAddr(edge), EdgePublicKey: edgeKey2, Endpoint: "[2001:db8::1]:51821", KeepaliveSeconds: 25},
		cur:     TunnelRows{Interfaces: rows(tpfIface), Peers: rows(tpfPeer), Addresses: rows(tpfAddr)},
		want: TunnelPlan{Set: []TunnelStep{{Menu: MenuPeers, ID: "*1", Props: map[string]string{
			"public-key": edgeKey2, "endpoint-address": "2001:db8::1", "endpoint-port": "51821",
		}}}},
	},
	{
		name:    "a peer missing a property gets it",
		desired: tun(edgeKey),
		cur:     TunnelRows{Interfaces: rows(tpfIface), Peers: rows(without(tpfPeer, "endpoint-address")), Addresses: rows(tpfAddr)},
		want: TunnelPlan{Set: []TunnelStep{{Menu: MenuPeers, ID: "*1", Props: map[string]string{
			"endpoint-address": "edge.example.net",
		}}}},
	},
	{
		name:    "hand-deleted address is added again",
		desired: tun(edgeKey),
		cur:     TunnelRows{Interfaces: rows(tpfIface), Peers: rows(tpfPeer), Addresses: rows(lanIP)},
		want:    TunnelPlan{Add: []TunnelStep{wantAddrAdd}},
	},
	{
		name:    "hand-edited address: address and network are set together",
		desired: tun(edgeKey),
		cur: TunnelRows{Interfaces: rows(tpfIface), Peers: rows(tpfPeer),
			Addresses: rows(with(tpfAddr, "network", tunnel))},
		want: TunnelPlan{Set: []TunnelStep{{Menu: MenuAddress, ID: "*1", Props: map[string]string{
			"address": tunnel + "/32", "network": edge,
		}}}},
	},
	{
		name:    "a new tunnel address is a set",
		desired: &syncproto.Tunnel{Address: netip.MustParseAddr("10.99.0.7"), EdgeAddress: netip.MustParseAddr(edge), EdgePublicKey: edgeKey, Endpoint: "edge.example.net:51820", KeepaliveSeconds: 25},
		cur:     TunnelRows{Interfaces: rows(tpfIface), Peers: rows(tpfPeer), Addresses: rows(with(tpfAddr, "disabled", "true"))},
		want: TunnelPlan{Set: []TunnelStep{{Menu: MenuAddress, ID: "*1", Props: map[string]string{
			"address": "10.99.0.7/32", "network": edge, "disabled": "no",
		}}}},
	},
	{
		name:    "extra tpf peers go; the one in place stays even when not first",
		desired: tun(edgeKey),
		cur: TunnelRows{
			Interfaces: rows(tpfIface),
			Peers:      rows(with(tpfPeer, "public-key", edgeKey2), opPeer, tpfPeer, with(tpfPeer, "endpoint-port", "9")),
			Addresses:  rows(tpfAddr, tpfAddr),
		},
		want: TunnelPlan{Remove: []TunnelStep{
			remove(MenuPeers, "*1"), remove(MenuPeers, "*4"), remove(MenuAddress, "*2"),
		}},
	},
	{
		name:    "duplicates that all drifted: the first is kept and fixed",
		desired: tun(edgeKey),
		cur: TunnelRows{
			Interfaces: rows(tpfIface),
			Peers:      rows(with(tpfPeer, "endpoint-port", "1"), with(tpfPeer, "endpoint-port", "2")),
			Addresses:  rows(tpfAddr),
		},
		want: TunnelPlan{
			Remove: []TunnelStep{remove(MenuPeers, "*2")},
			Set:    []TunnelStep{{Menu: MenuPeers, ID: "*1", Props: map[string]string{"endpoint-port": "51820"}}},
		},
	},
	{
		name:    "tpf items on the operator's interface or on a removed one go",
		desired: tun(edgeKey),
		cur: TunnelRows{
			Interfaces: rows(opIface, tpfIface),
			Peers:      rows(with(tpfPeer, "interface", "wg1"), with(tpfPeer, "interface", "*7"), tpfPeer),
			Addresses:  rows(with(tpfAddr, "interface", "*7"), tpfAddr),
		},
		want: TunnelPlan{Remove: []TunnelStep{
			remove(MenuPeers, "*1"), remove(MenuPeers, "*2"), remove(MenuAddress, "*1"),
		}},
	},
	{
		name:    "orphans of a removed interface go; everything is built anew",
		desired: tun(edgeKey),
		cur: TunnelRows{
			Peers:     rows(with(tpfPeer, "interface", "*3")),
			Addresses: rows(with(tpfAddr, "interface", "*3")),
		},
		want: TunnelPlan{
			Remove: []TunnelStep{remove(MenuPeers, "*1"), remove(MenuAddress, "*1")},
			Add:    []TunnelStep{wantIfaceAdd, wantPeerAdd(edgeKey), wantAddrAdd},
		},
	},
	{
		name:    "operator's objects on and beside the tpf interface are untouched",
		desired: tun(edgeKey),
		cur: TunnelRows{
			Interfaces: rows(tpfIface, opIface),
			Peers:      rows(with(opPeer, "interface", "tpf", "public-key", otherKey), tpfPeer),
			Addresses:  rows(with(opAddr, "interface", "tpf"), tpfAddr),
		},
	},
	{
		name:    "the operator's interface named tpf is a conflict: nothing is touched",
		desired: tun(edgeKey),
		cur: TunnelRows{
			Interfaces: rows(with(tpfIface, "comment", "mine")),
			Peers:      rows(with(tpfPeer, "endpoint-port", "1")),
			Addresses:  rows(tpfAddr),
		},
		want: TunnelPlan{Error: `the router has a WireGuard interface named "tpf" (*1) that tpf did not make (its comment is not "tpf:tunnel"): tpf leaves it alone and builds no tunnel; rename or remove it`},
	},
	{
		name:    "a renamed tpf interface is renamed back, keeping its key and items",
		desired: tun(edgeKey),
		cur: TunnelRows{
			Interfaces: rows(opIface, with(tpfIface, "name", "wg-old")),
			Peers:      rows(with(tpfPeer, "interface", "wg-old")),
			Addresses:  rows(with(tpfAddr, "interface", "wg-old")),
		},
		want: TunnelPlan{Set: []TunnelStep{{Menu: MenuWireGuard, ID: "*2", Props: map[string]string{"name": "tpf"}}}},
	},
	{
		name:    "a second tpf interface goes after its items; the one named tpf stays",
		desired: tun(edgeKey),
		cur: TunnelRows{
			Interfaces: rows(with(tpfIface, "name", "tpf-copy", "public-key", otherKey), tpfIface),
			Peers:      rows(with(tpfPeer, "interface", "tpf-copy"), tpfPeer),
			Addresses:  rows(tpfAddr),
		},
		want: TunnelPlan{Remove: []TunnelStep{remove(MenuPeers, "*1"), remove(MenuWireGuard, "*1")}},
	},
	{
		name:    "a disabled interface is enabled",
		desired: tun(edgeKey),
		cur:     TunnelRows{Interfaces: rows(with(tpfIface, "disabled", "true")), Peers: rows(tpfPeer), Addresses: rows(tpfAddr)},
		want:    TunnelPlan{Set: []TunnelStep{{Menu: MenuWireGuard, ID: "*1", Props: map[string]string{"disabled": "no"}}}},
	},
	{
		name:    "the default listen port is taken: the next free one",
		desired: tun(""),
		cur:     TunnelRows{Interfaces: rows(opIface, with(opIface, "name", "wg2", "listen-port", "13232"))},
		want: TunnelPlan{Add: []TunnelStep{
			{Menu: MenuWireGuard, Props: map[string]string{"name": "tpf", "comment": "tpf:tunnel", "listen-port": "13233"}},
			wantAddrAdd,
		}},
	},
	{
		name:    "the edge's key is the router's own: no peer, the one there stays",
		desired: tun(routerKey),
		cur: TunnelRows{
			Interfaces: rows(tpfIface),
			Peers:      rows(with(tpfPeer, "interface", "wg1"), tpfPeer),
			Addresses:  rows(with(tpfAddr, "disabled", "true")),
		},
		want: TunnelPlan{
			Remove: []TunnelStep{remove(MenuPeers, "*1")},
			Set:    []TunnelStep{{Menu: MenuAddress, ID: "*1", Props: map[string]string{"disabled": "no"}}},
			Error:  "the edge's public key is the router's own: tpf does not make it the peer (a configuration mix-up)",
		},
	},
	{
		name:    "an invalid tunnel changes nothing",
		desired: tun("not-a-key"),
		cur:     TunnelRows{Interfaces: rows(tpfIface), Peers: rows(tpfPeer)},
		want:    TunnelPlan{Error: `tunnel: edge public key "not-a-key" is not a WireGuard key (base64 of 32 bytes)`},
	},
}

func TestPlanTunnel(t *testing.T) {
	t.Parallel()
	for _, tt := range planTunnelTests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			before := cloneTunnelRows(tt.cur)
			got := PlanTunnel(tt.desired, !tt.noSet, tt.cur)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("PlanTunnel:\ngot  %s\nwant %s", dump(got), dump(tt.want))
			}
			if !reflect.DeepEqual(tt.cur, before) {
				t.Errorf("PlanTunnel changed its input:\ngot  %s\nwant %s", dump(tt.cur), dump(before))
			}
			checkTunnelPlan(t, got, tt.cur)
		})
	}
}

// TestPlanTunnelIdempotent applies each plan and plans again: the second
// plan must change nothing, and the operator's objects must be as before.
func TestPlanTunnelIdempotent(t *testing.T) {
	t.Parallel()
	for _, tt := range planTunnelTests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			first := PlanTunnel(tt.desired, !tt.noSet, tt.cur)
			after := applyTunnelPlan(t, tt.cur, first)
			second := PlanTunnel(tt.desired, !tt.noSet, after)
			if !second.Empty() {
				t.Errorf("second plan: got %s, want no changes", dump(second))
			}
			if second.Error != first.Error {
				t.Errorf("second plan error: got %q, want %q", second.Error, first.Error)
			}
			for _, m := range []struct {
				name          string
				before, after []Row
			}{
				{"interfaces", tt.cur.Interfaces, after.Interfaces},
				{"peers", tt.cur.Peers, after.Peers},
				{"addresses", tt.cur.Addresses, after.Addresses},
			} {
				if got, want := notOwned(m.after), notOwned(m.before); !reflect.DeepEqual(got, want) {
					t.Errorf("operator's %s after applying:\ngot  %s\nwant %s", m.name, dump(got), dump(want))
				}
			}
			// A desired tunnel that is valid and conflict-free stands.
			if tt.desired != nil && !tt.noSet && first.Error == "" {
				st := TunnelStatus(after, now)
				if st == nil {
					t.Fatalf("no tunnel after applying %s", dump(first))
				}
				wantPeers := 0
				if tt.desired.EdgePublicKey != "" {
					wantPeers = 1
				}
				if len(st.Peers) != wantPeers {
					t.Errorf("peers after applying: got %d, want %d", len(st.Peers), wantPeers)
				}
				if len(owned(after.Addresses)) != 1 {
					t.Errorf("tpf addresses after applying: got %s, want one", dump(owned(after.Addresses)))
				}
			}
			if tt.desired == nil && !tt.noSet {
				if len(owned(after.Interfaces))+len(owned(after.Peers))+len(owned(after.Addresses)) != 0 {
					t.Errorf("tpf objects left without a tunnel: %s", dump(after))
				}
			}
		})
	}
}

// checkTunnelPlan checks what every plan must satisfy: only tpf objects
// are set or removed, each at most once, never private-key, and adds are
// commented.
func checkTunnelPlan(t testing.TB, p TunnelPlan, cur TunnelRows) {
	t.Helper()
	menus := map[string][]Row{MenuWireGuard: cur.Interfaces, MenuPeers: cur.Peers, MenuAddress: cur.Addresses}
	seen := map[string]bool{}
	for _, s := range slices.Concat(p.Remove, p.Set) {
		i := slices.IndexFunc(menus[s.Menu], func(r Row) bool { return r.ID == s.ID })
		if i < 0 {
			t.Errorf("step %s names an unknown item", dump(s))
			continue
		}
		if c := menus[s.Menu][i].Props["comment"]; c != TunnelComment {
			t.Errorf("step %s touches an item commented %q", dump(s), c)
		}
		if seen[s.Menu+s.ID] {
			t.Errorf("item %s %s in two steps", s.Menu, s.ID)
		}
		seen[s.Menu+s.ID] = true
	}
	for _, s := range slices.Concat(p.Remove, p.Set, p.Add) {
		if _, ok := s.Props["private-key"]; ok {
			t.Errorf("step %s writes a private key", dump(s))
		}
	}
	for _, s := range p.Add {
		if s.Props["comment"] != TunnelComment || s.ID != "" {
			t.Errorf("add %s: want comment %q and no id", dump(s), TunnelComment)
		}
	}
}

// applyTunnelPlan applies p to a copy of cur as RouterOS would: a removed
// item goes, a set overwrites properties (a renamed interface carries its
// peers and addresses along), an add appends an item with the next id and
// the router's defaults (an interface gets a key and port 13231).
func applyTunnelPlan(t testing.TB, cur TunnelRows, p TunnelPlan) TunnelRows {
	t.Helper()
	out := cloneTunnelRows(cur)
	menu := func(m string) *[]Row {
		switch m {
		case MenuWireGuard:
			return &out.Interfaces
		case MenuPeers:
			return &out.Peers
		case MenuAddress:
			return &out.Addresses
		}
		t.Fatalf("step on unknown menu %q", m)
		return nil
	}
	for _, s := range p.Remove {
		rs := menu(s.Menu)
		*rs = slices.DeleteFunc(*rs, func(r Row) bool { return r.ID == s.ID })
	}
	for _, s := range p.Set {
		rs := menu(s.Menu)
		i := slices.IndexFunc(*rs, func(r Row) bool { return r.ID == s.ID })
		if i < 0 {
			t.Fatalf("set of a missing item %s", dump(s))
		}
		if name, ok := s.Props["name"]; ok && s.Menu == MenuWireGuard {
			old := (*rs)[i].Props["name"]
			for _, refs := range [][]Row{out.Peers, out.Addresses} {
				for _, r := range refs {
					if r.Props["interface"] == old {
						r.Props["interface"] = name
					}
				}
			}
		}
		maps.Copy((*rs)[i].Props, s.Props)
	}
	for _, s := range p.Add {
		rs := menu(s.Menu)
		props := maps.Clone(s.Props)
		props["disabled"] = "false"
		if s.Menu == MenuWireGuard {
			if _, ok := props["listen-port"]; !ok {
				props["listen-port"] = "13231"
			}
			props["public-key"] = otherKey
		}
		*rs = append(*rs, Row{ID: fmt.Sprintf("*%X", 100+len(*rs)), Props: props})
	}
	return out
}

func cloneTunnelRows(cur TunnelRows) TunnelRows {
	clone := func(rs []Row) []Row {
		if rs == nil {
			return nil
		}
		out := make([]Row, len(rs))
		for i, r := range rs {
			out[i] = Row{ID: r.ID, Props: maps.Clone(r.Props)}
		}
		return out
	}
	return TunnelRows{Interfaces: clone(cur.Interfaces), Peers: clone(cur.Peers), Addresses: clone(cur.Addresses)}
}

func notOwned(rs []Row) []Row {
	var out []Row
	for _, r := range rs {
		if r.Props["comment"] != TunnelComment {
			out = append(out, r)
		}
	}
	return out
}

func TestPlanTunnelChecksTunnel(t *testing.T) {
	t.Parallel()
	cur := TunnelRows{Interfaces: rows(tpfIface), Peers: rows(tpfPeer), Addresses: rows(tpfAddr)}
	tests := []struct {
		name   string
		change func(*syncproto.Tunnel)
		want   string
	}{
		{"no address", func(t *syncproto.Tunnel) { t.Address = netip.Addr{} }, "tunnel: address invalid IP is not a usable IPv4 address"},
		{"IPv6 edge address", func(t *syncproto.Tunnel) { t.EdgeAddress = netip.MustParseAddr("fd00::1") }, "tunnel: edge address fd00::1 is not a usable IPv4 address"},
		{"same addresses", func(t *syncproto.Tunnel) { t.EdgeAddress = t.Address }, "tunnel: router and edge address are both " + tunnel},
		{"endpoint without port", func(t *syncproto.Tunnel) { t.Endpoint = "edge.example.net" }, `tunnel: endpoint "edge.example.net" is not HOST:PORT`},
		{"endpoint port 0", func(t *syncproto.Tunnel) { t.Endpoint = "edge.example.net:0" }, `tunnel: endpoint "edge.example.net:0": port must be 1..65535`},
		{"endpoint port with a sign", func(t *syncproto.Tunnel) { t.Endpoint = "edge.example.net:+51820" }, `tunnel: endpoint "edge.example.net:+51820": port must be 1..65535`},
		{"empty host", func(t *syncproto.Tunnel) { t.Endpoint = ":51820" }, `tunnel: endpoint ":51820": bad host`},
		{"host with a comma", func(t *syncproto.Tunnel) { t.Endpoint = "a,b:51820" }, `tunnel: endpoint "a,b:51820": bad host`},
		{"short key", func(t *syncproto.Tunnel) { t.EdgePublicKey = "AAAA" }, `tunnel: edge public key "AAAA" is not a WireGuard key (base64 of 32 bytes)`},
		{"keepalive too long", func(t *syncproto.Tunnel) { t.KeepaliveSeconds = 65536 }, "tunnel: keepalive 65536 s is outside 0..65535"},
	}
	for _, tt := range tests {
		d := tun(edgeKey)
		tt.change(d)
		got := PlanTunnel(d, true, cur)
		if !got.Empty() || got.Error != tt.want {
			t.Errorf("%s: got %s, want no changes and error %q", tt.name, dump(got), tt.want)
		}
	}
}

func TestTunnelProperties(t *testing.T) {
	t.Parallel()
	for menu, props := range TunnelProperties() {
		if !slices.Contains(props, ".id") {
			t.Errorf("%s: properties %v lack .id", menu, props)
		}
		for _, p := range props {
			if strings.Contains(p, "private-key") || strings.Contains(p, "preshared-key") {
				t.Errorf("%s: properties ask for the secret %s", menu, p)
			}
		}
	}
	a, b := TunnelProperties(), TunnelProperties()
	a[MenuPeers][0] = "changed"
	if b[MenuPeers][0] != ".id" {
		t.Error("TunnelProperties shares its slices between calls")
	}
}

func TestTunnelStatus(t *testing.T) {
	t.Parallel()
	peer := with(tpfPeer, "last-handshake", "1m6s", "rx", "2536747860", "tx", "1024",
		"current-endpoint-address", "198.51.100.7", "current-endpoint-port", "51820")
	tests := []struct {
		name string
		cur  TunnelRows
		want *syncproto.TunnelState
	}{
		{"no interface", TunnelRows{Peers: rows(peer)}, nil},
		{"the operator's interface named tpf", TunnelRows{Interfaces: rows(without(tpfIface, "comment"))}, nil},
		{"interface only", TunnelRows{Interfaces: rows(opIface, tpfIface)}, &syncproto.TunnelState{PublicKey: routerKey}},
		{
			"peer with a handshake",
			TunnelRows{Interfaces: rows(tpfIface), Peers: rows(with(opPeer, "interface", "tpf"), with(peer, "interface", "wg1"), peer)},
			&syncproto.TunnelState{PublicKey: routerKey, Peers: []syncproto.PeerState{{
				PublicKey: edgeKey, LastHandshake: now.Add(-66 * time.Second), Endpoint: "198.51.100.7:51820",
				RxBytes: 2536747860, TxBytes: 1024,
			}}},
		},
		{
			"peer that never shook hands",
			TunnelRows{Interfaces: rows(tpfIface), Peers: rows(with(tpfPeer, "rx", "0", "tx", "148"))},
			&syncproto.TunnelState{PublicKey: routerKey, Peers: []syncproto.PeerState{{PublicKey: edgeKey, TxBytes: 148}}},
		},
		{
			"never, odd counters, IPv6 endpoint",
			TunnelRows{Interfaces: rows(tpfIface), Peers: rows(with(tpfPeer, "last-handshake", "never", "rx", "5.3KiB",
				"current-endpoint-address", "2001:db8::7", "current-endpoint-port", "13231"))},
			&syncproto.TunnelState{PublicKey: routerKey, Peers: []syncproto.PeerState{{PublicKey: edgeKey, Endpoint: "[2001:db8::7]:13231"}}},
		},
		{
			"bare seconds, no endpoint port",
			TunnelRows{Interfaces: rows(tpfIface), Peers: rows(with(tpfPeer, "last-handshake", "20",
				"current-endpoint-address", "198.51.100.7", "current-endpoint-port", "0"))},
			&syncproto.TunnelState{PublicKey: routerKey, Peers: []syncproto.PeerState{{PublicKey: edgeKey, LastHandshake: now.Add(-20 * time.Second)}}},
		},
		{
			"unreadable handshake is never",
			TunnelRows{Interfaces: rows(tpfIface), Peers: rows(with(tpfPeer, "last-handshake", "yesterday"))},
			&syncproto.TunnelState{PublicKey: routerKey, Peers: []syncproto.PeerState{{PublicKey: edgeKey}}},
		},
	}
	for _, tt := range tests {
		got := TunnelStatus(tt.cur, now)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\ngot  %s\nwant %s", tt.name, dump(got), dump(tt.want))
		}
	}
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"25", 25 * time.Second, true},
		{"0", 0, true},
		{"25s", 25 * time.Second, true},
		{"1m6s", 66 * time.Second, true},
		{"1h21m", 81 * time.Minute, true},
		{"1w2d3h4m5s", (9*24+3)*time.Hour + 4*time.Minute + 5*time.Second, true},
		{"1s500ms", 1500 * time.Millisecond, true},
		{"00:01:06", 66 * time.Second, true},
		{"1d02:03:04", 26*time.Hour + 3*time.Minute + 4*time.Second, true},
		{"", 0, false},
		{"never", 0, false},
		{"s", 0, false},
		{"5", 5 * time.Second, true},
		{"5x", 0, false},
		{"-5s", 0, false},
		{"1m6", 0, false},
		{"00:61:00", 0, false},
		{"1234567890s", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseDuration(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseDuration(%q): got %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestTunnelFirewallWarning(t *testing.T) {
	t.Parallel()
	// defconf's forward chain (ROUTEROS-WIREGUARD.md §4) and its input
	// chain, which the check skips.
	defconf := []map[string]string{
		{"chain": "input", "action": "accept", "connection-state": "established,related,untracked"},
		{"chain": "input", "action": "drop", "in-interface-list": "!LAN"},
		{"chain": "forward", "action": "accept", "ipsec-policy": "in,ipsec"},
		{"chain": "forward", "action": "accept", "ipsec-policy": "out,ipsec"},
		{"chain": "forward", "action": "fasttrack-connection", "connection-state": "established,related"},
		{"chain": "forward", "action": "accept", "connection-state": "established,related,untracked"},
		{"chain": "forward", "action": "drop", "connection-state": "invalid"},
		{"chain": "forward", "action": "drop", "connection-state": "new", "connection-nat-state": "!dstnat", "in-interface-list": "WAN"},
	}
	dropTPF := map[string]string{"chain": "forward", "action": "drop", "in-interface": "tpf"}
	tests := []struct {
		name  string
		rules []map[string]string
		want  string // "" or the rule id warned about
	}{
		{"empty", nil, ""},
		{"defconf", defconf, ""},
		{"defconf, then a drop on tpf", append(slices.Clone(defconf), dropTPF), "*9"},
		{"drop everything new", []map[string]string{{"chain": "forward", "action": "drop", "connection-state": "new"}}, "*1"},
		{"reject everything", []map[string]string{{"chain": "forward", "action": "reject"}}, "*1"},
		{"drop all but LAN: membership unknown", []map[string]string{{"chain": "forward", "action": "drop", "in-interface-list": "!LAN"}}, ""},
		{"drop on another interface", []map[string]string{{"chain": "forward", "action": "drop", "in-interface": "ether1"}}, ""},
		{"drop on all but tpf", []map[string]string{{"chain": "forward", "action": "drop", "in-interface": "!tpf"}}, ""},
		{"drop on all but ether1", []map[string]string{{"chain": "forward", "action": "drop", "in-interface": "!ether1"}}, "*1"},
		{"narrowed drop", []map[string]string{with(dropTPF, "protocol", "udp")}, ""},
		{"disabled drop", []map[string]string{with(dropTPF, "disabled", "true")}, ""},
		{"drop of non-dstnat only", []map[string]string{with(dropTPF, "connection-nat-state", "!dstnat")}, ""},
		{"accept dstnat first", []map[string]string{{"chain": "forward", "action": "accept", "connection-nat-state": "dstnat"}, dropTPF}, ""},
		{"accept from LAN first: maybe", []map[string]string{{"chain": "forward", "action": "accept", "in-interface-list": "LAN"}, dropTPF}, ""},
		{"jump first", []map[string]string{{"chain": "forward", "action": "jump", "jump-target": "mine"}, dropTPF}, ""},
		{"narrow accept first", []map[string]string{with(dropTPF, "action", "accept", "dst-port", "22", "protocol", "tcp"), dropTPF}, ""},
		{"log first", []map[string]string{with(dropTPF, "action", "log"), dropTPF}, "*2"},
		{"drop in another chain", []map[string]string{with(dropTPF, "chain", "input")}, ""},
	}
	for _, tt := range tests {
		got := TunnelFirewallWarning(rows(tt.rules...))
		switch {
		case tt.want == "" && got != "":
			t.Errorf("%s: got warning %q, want none", tt.name, got)
		case tt.want != "" && !strings.HasPrefix(got, "firewall filter rule "+tt.want+" "):
			t.Errorf("%s: got warning %q, want one about %s", tt.name, got, tt.want)
		}
	}
	want := "firewall filter rule *1 (chain=forward action=drop in-interface=tpf) drops the connections the edge forwards over the tunnel; " +
		"tpf adds no forward-chain rules: accept them before it, e.g. chain=forward in-interface=tpf connection-nat-state=dstnat action=accept"
	if got := TunnelFirewallWarning(rows(dropTPF)); got != want {
		t.Errorf("warning text:\ngot  %q\nwant %q", got, want)
	}
	if !slices.Contains(FirewallProperties(), "in-interface") || !slices.Contains(FirewallProperties(), ".id") {
		t.Errorf("FirewallProperties %v lack in-interface or .id", FirewallProperties())
	}
}
