package reconcile

import (
	"encoding/base64"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tpf-dev/tpf/shared/syncproto"
)

// This file plans the router's end of the WireGuard management tunnel, the
// way Compute plans the NAT rules: desired state plus what the router holds
// gives the steps that make the router hold exactly what is desired.
//
// On the router tpf keeps, and owns by name and comment:
//
//	/interface/wireguard        name=tpf comment=tpf:tunnel
//	/interface/wireguard/peers  interface=tpf comment=tpf:tunnel public-key=<edge>
//	                            endpoint-address=<host> endpoint-port=<port>
//	                            allowed-address=<edge address>/32 persistent-keepalive=<s>
//	/ip/address                 interface=tpf comment=tpf:tunnel
//	                            address=<router address>/32 network=<edge address>
//
// RouterOS generates the interface's private key on add; tpf never sets or
// reads it (keys stay where they are born). The peer is the edge, absent
// while the edge has not reported its key. The address is point-to-point:
// its network is the edge's address, which gives the router a connected
// route to the edge through the tunnel, so replies to dst-nat'ed
// connections go back into it (ROUTEROS-WIREGUARD.md §3, §4d).

// Names and menus of the tunnel's objects.
const (
	// TunnelInterface is the name of the WireGuard interface tpf keeps.
	TunnelInterface = "tpf"
	// TunnelComment marks every tunnel object tpf made. Objects without
	// it are never changed or removed.
	TunnelComment = "tpf:tunnel"

	MenuWireGuard = "/interface/wireguard"
	MenuPeers     = "/interface/wireguard/peers"
	MenuAddress   = "/ip/address"
)

// defaultListenPort is RouterOS's listen-port for a new WireGuard
// interface (ROUTEROS-WIREGUARD.md §1, §8.13).
const defaultListenPort = 13231

// Properties of the tunnel's objects that PlanTunnel and TunnelStatus read.
const (
	propName            = "name"
	propListenPort      = "listen-port"
	propPublicKey       = "public-key"
	propInterface       = "interface"
	propEndpointAddress = "endpoint-address"
	propEndpointPort    = "endpoint-port"
	propAllowedAddress  = "allowed-address"
	propKeepalive       = "persistent-keepalive"
	propAddress         = "address"
	propNetwork         = "network"
	propLastHandshake   = "last-handshake"
	propRx              = "rx"
	propTx              = "tx"
	propCurrentAddress  = "current-endpoint-address"
	propCurrentPort     = "current-endpoint-port"
)

// TunnelProperties returns, per menu, the properties the reader must ask
// for (print =.proplist=), .id included; dynamic rows must be left out of
// TunnelRows. Never private-key: tpf does not read it. A fresh map on
// every call.
func TunnelProperties() map[string][]string {
	return map[string][]string{
		MenuWireGuard: {".id", propName, propComment, propDisabled, propListenPort, propPublicKey},
		MenuPeers: {".id", propInterface, propComment, propDisabled, "dynamic", propPublicKey,
			propEndpointAddress, propEndpointPort, propAllowedAddress, propKeepalive,
			propLastHandshake, propRx, propTx, propCurrentAddress, propCurrentPort},
		MenuAddress: {".id", propAddress, propNetwork, propInterface, propComment, propDisabled, "dynamic"},
	}
}

// Row is one item of a RouterOS menu as read from the router: its ".id"
// ("*1A") and every other property read, with the router's spelling of
// values ("false", not "no"; "25s").
type Row struct {
	ID    string
	Props map[string]string
}

// TunnelRows is what the router holds in the tunnel's menus, dynamic rows
// excluded. Interfaces must hold every WireGuard interface (names clash,
// and listen ports are chosen among them); Peers and Addresses must hold
// at least every row commented TunnelComment, and may hold others, which
// are ignored.
type TunnelRows struct {
	Interfaces []Row
	Peers      []Row
	Addresses  []Row
}

// TunnelStep is one command on one of the tunnel's menus.
type TunnelStep struct {
	Menu string // MenuWireGuard, MenuPeers or MenuAddress
	// ID is the .id of the item to set or remove; empty for an add.
	ID string
	// Props holds, for an add, every property of the new item; for a set,
	// only those to change, with their new values. Nil for a remove.
	Props map[string]string
}

// TunnelPlan is what PlanTunnel decides. Apply it in this order: Remove,
// then Set, then Add, each in its order. Removals go first so that a kept
// peer may take the public key a removed one had; within each list the
// interface is renamed or added before the peer and address that name it,
// and removed after them.
//
// The zero TunnelPlan changes nothing.
type TunnelPlan struct {
	// Remove lists stale tpf objects: extra peers, then addresses, then
	// interfaces; all of them when the set has no tunnel.
	Remove []TunnelStep
	// Set fixes tpf objects in place: the interface, then the peer, then
	// the address.
	Set []TunnelStep
	// Add creates what is missing: the interface, then the peer, then the
	// address. They name the interface TunnelInterface, so no add needs
	// the .id of another.
	Add []TunnelStep
	// Error says why the tunnel cannot be (fully) built: the desired tunnel
	// is invalid, or an interface named TunnelInterface is not tpf's, or
	// the edge's key is the router's own. Empty when the plan builds it all.
	Error string
}

// Empty reports whether applying p would change nothing on the router.
func (p TunnelPlan) Empty() bool {
	return len(p.Remove) == 0 && len(p.Set) == 0 && len(p.Add) == 0
}

// PlanTunnel plans the changes that make the router's WireGuard interfaces,
// peers and addresses hold exactly the desired tunnel. It is deterministic
// and does no I/O.
//
// haveSet false means no desired set was received yet (a restarted agent
// that cannot reach the controller): the tunnel, the agent's lifeline, is
// left alone, and the plan is empty. Otherwise desired nil means "no
// managed tunnel": every tpf object is removed.
//
// For a desired tunnel, the interface named TunnelInterface with comment
// TunnelComment is kept; when there is none, the first interface with the
// comment is renamed (which keeps its key, so the edge needs no new one),
// and when there is no such either, one is added. Extra commented
// interfaces are removed, as are commented peers and addresses that are
// not on the kept interface, or are duplicates. The kept peer and address
// are fixed in place when edited (a new edge key or endpoint is a set), and
// added when missing; there is no peer while the edge key is empty.
//
// Items without the comment are never set or removed. An interface named
// TunnelInterface without the comment is the operator's: the plan then
// changes nothing and says why in Error. A desired tunnel that is invalid
// also changes nothing (the tunnel standing may be the agent's only way
// back), and says why.
func PlanTunnel(desired *syncproto.Tunnel, haveSet bool, cur TunnelRows) TunnelPlan {
	var p TunnelPlan
	if !haveSet {
		return p
	}
	if desired == nil {
		for _, r := range owned(cur.Peers) {
			p.Remove = append(p.Remove, TunnelStep{Menu: MenuPeers, ID: r.ID})
		}
		for _, r := range owned(cur.Addresses) {
			p.Remove = append(p.Remove, TunnelStep{Menu: MenuAddress, ID: r.ID})
		}
		for _, r := range owned(cur.Interfaces) {
			p.Remove = append(p.Remove, TunnelStep{Menu: MenuWireGuard, ID: r.ID})
		}
		return p
	}
	if err := checkTunnel(desired); err != nil {
		p.Error = err.Error()
		return p
	}
	for _, r := range cur.Interfaces {
		if r.Props[propName] == TunnelInterface && r.Props[propComment] != TunnelComment {
			p.Error = fmt.Sprintf("the router has a WireGuard interface named %q (%s) that tpf did not make (its comment is not %q): "+
				"tpf leaves it alone and builds no tunnel; rename or remove it", TunnelInterface, r.ID, TunnelComment)
			return p
		}
	}

	// The interface: keep the one named TunnelInterface, else rename the
	// first commented one, else add one. The others go, after their items.
	ifaces := owned(cur.Interfaces)
	keep := slices.IndexFunc(ifaces, func(r Row) bool { return r.Props[propName] == TunnelInterface })
	if keep < 0 && len(ifaces) > 0 {
		keep = 0
	}
	var kept *Row
	var removeIfaces []TunnelStep
	for i, r := range ifaces {
		if i == keep {
			kept = &ifaces[i]
			continue
		}
		removeIfaces = append(removeIfaces, TunnelStep{Menu: MenuWireGuard, ID: r.ID})
	}
	keptName := "" // the kept interface's name as the router shows it now
	if kept == nil {
		add := map[string]string{propName: TunnelInterface, propComment: TunnelComment}
		if port := freeListenPort(cur.Interfaces); port != defaultListenPort {
			add[propListenPort] = strconv.Itoa(port)
		}
		p.Add = append(p.Add, TunnelStep{Menu: MenuWireGuard, Props: add})
	} else {
		keptName = kept.Props[propName]
		want := map[string]string{propName: TunnelInterface, propDisabled: "false"}
		if d := driftTunnel(want, kept.Props); d != nil {
			p.Set = append(p.Set, TunnelStep{Menu: MenuWireGuard, ID: kept.ID, Props: d})
		}
	}

	// The peer: the edge, once its key is known. A key that is the
	// router's own is a mix-up: the peer on the interface is then left as
	// it is rather than a working tunnel cut on an inconsistent set
	// (wireguard-go ignores such a peer, ROUTEROS-WIREGUARD.md §8.12).
	peers := owned(cur.Peers)
	var wantPeer map[string]string
	switch {
	case desired.EdgePublicKey == "":
	case kept != nil && kept.Props[propPublicKey] == desired.EdgePublicKey:
		p.Error = "the edge's public key is the router's own: tpf does not make it the peer (a configuration mix-up)"
		peers = slices.DeleteFunc(peers, func(r Row) bool { return r.Props[propInterface] == keptName })
	default:
		wantPeer = expectedPeer(desired)
	}
	set, add, remove := keepOne(MenuPeers, peers, keptName, wantPeer, peerDrift)
	p.Remove = append(p.Remove, remove...)
	p.Set = append(p.Set, set...)
	p.Add = append(p.Add, add...)

	// The address: point-to-point, its network the edge's address.
	wantAddr := map[string]string{
		propAddress:  netip.PrefixFrom(desired.Address, 32).String(),
		propNetwork:  desired.EdgeAddress.String(),
		propDisabled: "false",
	}
	set, add, remove = keepOne(MenuAddress, owned(cur.Addresses), keptName, wantAddr, addressDrift)
	p.Remove = append(p.Remove, remove...)
	p.Set = append(p.Set, set...)
	p.Add = append(p.Add, add...)

	p.Remove = append(p.Remove, removeIfaces...)
	return p
}

// keepOne plans one tpf item of a menu on the kept interface (named
// iface now; "" when it is to be added): rows commented TunnelComment on
// another interface, and all but one on it, are removed; the one kept is
// the first that needs no fix, else the first; it is fixed in place when
// it drifted from want, and added (on TunnelInterface) when there is none.
// want nil means the item must not exist.
func keepOne(menu string, rows []Row, iface string, want map[string]string,
	diff func(want, got map[string]string) map[string]string,
) (set, add, remove []TunnelStep) {
	var on []Row
	for _, r := range rows {
		if iface != "" && r.Props[propInterface] == iface && want != nil {
			on = append(on, r)
			continue
		}
		remove = append(remove, TunnelStep{Menu: menu, ID: r.ID})
	}
	if want == nil {
		return nil, nil, remove
	}
	keep := 0
	for i, r := range on {
		if diff(want, r.Props) == nil {
			keep = i
			break
		}
	}
	for i, r := range on {
		if i != keep {
			remove = append(remove, TunnelStep{Menu: menu, ID: r.ID})
		}
	}
	if len(on) == 0 {
		props := maps.Clone(want)
		delete(props, propDisabled) // a new item is enabled by default
		props[propInterface] = TunnelInterface
		props[propComment] = TunnelComment
		return nil, []TunnelStep{{Menu: menu, Props: props}}, remove
	}
	if d := diff(want, on[keep].Props); d != nil {
		set = []TunnelStep{{Menu: menu, ID: on[keep].ID, Props: d}}
	}
	return set, nil, remove
}

// owned returns the rows commented TunnelComment, in order.
func owned(rows []Row) []Row {
	var out []Row
	for _, r := range rows {
		if r.Props[propComment] == TunnelComment {
			out = append(out, r)
		}
	}
	return out
}

// expectedPeer returns the properties the edge's peer must have, in the
// form they are written (the keepalive in seconds, which RouterOS accepts
// and reads back as "25s", ROUTEROS-WIREGUARD.md §2, §8.5).
func expectedPeer(t *syncproto.Tunnel) map[string]string {
	host, port, _ := splitEndpoint(t.Endpoint) // checked by checkTunnel
	return map[string]string{
		propPublicKey:       t.EdgePublicKey,
		propEndpointAddress: host,
		propEndpointPort:    strconv.Itoa(port),
		propAllowedAddress:  netip.PrefixFrom(t.EdgeAddress, 32).String(),
		propKeepalive:       strconv.Itoa(t.KeepaliveSeconds),
		propDisabled:        "false",
	}
}

// peerDrift returns the properties of want that the peer got differs in,
// with the values to set; nil when none. Values compare by meaning: a
// keepalive of "25" is "25s", an endpoint host name in any case, an
// allowed-address "10.0.0.1" is "10.0.0.1/32".
func peerDrift(want, got map[string]string) map[string]string {
	eq := map[string]func(w, g string) bool{
		propPublicKey:       func(w, g string) bool { return w == g },
		propEndpointAddress: strings.EqualFold,
		propEndpointPort:    sameInt,
		propAllowedAddress:  samePrefixes,
		propKeepalive:       sameDuration,
	}
	d := driftTunnel(map[string]string{propDisabled: want[propDisabled]}, got)
	for _, k := range slices.Sorted(maps.Keys(eq)) {
		if g, ok := got[k]; ok && eq[k](want[k], g) {
			continue
		}
		if d == nil {
			d = map[string]string{}
		}
		d[k] = want[k]
	}
	return d
}

// addressDrift returns the properties of want that the address got differs
// in; nil when none. Address and network are always set together: a new
// address alone would make RouterOS compute the network from it.
func addressDrift(want, got map[string]string) map[string]string {
	d := driftTunnel(map[string]string{propDisabled: want[propDisabled]}, got)
	if !samePrefixes(want[propAddress], got[propAddress]) || !sameAddr(want[propNetwork], got[propNetwork]) {
		if d == nil {
			d = map[string]string{}
		}
		d[propAddress], d[propNetwork] = want[propAddress], want[propNetwork]
	}
	return d
}

// driftTunnel compares exact values, and disabled as drift does.
func driftTunnel(want, got map[string]string) map[string]string {
	return diffProps(slices.Sorted(maps.Keys(want)), want, got)
}

func sameInt(w, g string) bool {
	a, err1 := strconv.Atoi(w)
	b, err2 := strconv.Atoi(g)
	return err1 == nil && err2 == nil && a == b
}

func sameDuration(w, g string) bool {
	a, ok1 := ParseDuration(w)
	b, ok2 := ParseDuration(g)
	return ok1 && ok2 && a == b
}

func sameAddr(w, g string) bool {
	a, err1 := netip.ParseAddr(w)
	b, err2 := netip.ParseAddr(g)
	return err1 == nil && err2 == nil && a == b
}

// samePrefixes compares comma-separated prefix lists as sets; a bare
// address is its whole-length prefix.
func samePrefixes(w, g string) bool {
	a, ok1 := prefixSet(w)
	b, ok2 := prefixSet(g)
	return ok1 && ok2 && maps.Equal(a, b)
}

func prefixSet(s string) (map[netip.Prefix]bool, bool) {
	out := map[netip.Prefix]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		var p netip.Prefix
		var err error
		if strings.Contains(item, "/") {
			p, err = netip.ParsePrefix(item)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(item)
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if err != nil {
			return nil, false
		}
		out[p] = true
	}
	return out, true
}

// freeListenPort returns RouterOS's default listen port unless another
// WireGuard interface uses it, else the next port up that none uses.
// Whether RouterOS refuses a second interface on one port is unverified
// (ROUTEROS-WIREGUARD.md §8.13); not trying avoids the question.
func freeListenPort(ifaces []Row) int {
	used := map[int]bool{}
	for _, r := range ifaces {
		port := defaultListenPort
		if v, ok := r.Props[propListenPort]; ok {
			port, _ = strconv.Atoi(v)
		}
		used[port] = true
	}
	port := defaultListenPort
	for used[port] && port < 65535 {
		port++
	}
	return port
}

// checkTunnel checks a desired tunnel the way the agent checks forwards:
// usable and distinct IPv4 tunnel addresses, an endpoint HOST:PORT with a
// port in 1..65535 and a host RouterOS can take, an edge key that is
// empty or a WireGuard key (standard base64 of 32 bytes,
// ROUTEROS-WIREGUARD.md §8.1), and a keepalive in 0..65535 seconds (§2).
func checkTunnel(t *syncproto.Tunnel) error {
	if !usableEndpoint(t.Address) {
		return fmt.Errorf("tunnel: address %v is not a usable IPv4 address", t.Address)
	}
	if !usableEndpoint(t.EdgeAddress) {
		return fmt.Errorf("tunnel: edge address %v is not a usable IPv4 address", t.EdgeAddress)
	}
	if t.Address == t.EdgeAddress {
		return fmt.Errorf("tunnel: router and edge address are both %v", t.Address)
	}
	if _, _, err := splitEndpoint(t.Endpoint); err != nil {
		return fmt.Errorf("tunnel: %w", err)
	}
	if t.EdgePublicKey != "" {
		if b, err := base64.StdEncoding.DecodeString(t.EdgePublicKey); err != nil || len(b) != 32 {
			return fmt.Errorf("tunnel: edge public key %q is not a WireGuard key (base64 of 32 bytes)", t.EdgePublicKey)
		}
	}
	if t.KeepaliveSeconds < 0 || t.KeepaliveSeconds > 65535 {
		return fmt.Errorf("tunnel: keepalive %d s is outside 0..65535", t.KeepaliveSeconds)
	}
	return nil
}

// splitEndpoint splits "HOST:PORT" ("[v6]:PORT" for IPv6). The host may
// be a name; it must not be empty nor hold spaces, commas, quotes or
// control characters, which no host name or address has.
func splitEndpoint(s string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("endpoint %q is not HOST:PORT", s)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 || strconv.Itoa(port) != portStr {
		return "", 0, fmt.Errorf("endpoint %q: port must be 1..65535", s)
	}
	if host == "" || strings.ContainsFunc(host, func(r rune) bool {
		return r <= ' ' || r == ',' || r == '"' || r == '\'' || r == '\\' || r == 0x7f
	}) {
		return "", 0, fmt.Errorf("endpoint %q: bad host", s)
	}
	return host, port, nil
}

// TunnelStatus reads the tunnel's state off the rows: the public key of
// the interface named TunnelInterface with comment TunnelComment, and its
// tpf peer's handshake, traffic and current endpoint. now is the caller's
// clock: RouterOS reports last-handshake as a duration ago ("1m6s"), which
// becomes now minus that, in whole seconds. It returns nil when the router
// holds no tpf interface.
//
// last-handshake is parsed defensively (ROUTEROS-WIREGUARD.md §2, §8.2):
// absent, "" or "never" (or unreadable) mean never; a RouterOS duration
// or a bare number of seconds are read. rx and tx are byte counts; an
// unreadable one counts as 0.
func TunnelStatus(cur TunnelRows, now time.Time) *syncproto.TunnelState {
	i := slices.IndexFunc(cur.Interfaces, func(r Row) bool {
		return r.Props[propName] == TunnelInterface && r.Props[propComment] == TunnelComment
	})
	if i < 0 {
		return nil
	}
	st := &syncproto.TunnelState{PublicKey: cur.Interfaces[i].Props[propPublicKey]}
	for _, r := range owned(cur.Peers) {
		if r.Props[propInterface] != TunnelInterface {
			continue
		}
		ps := syncproto.PeerState{
			PublicKey: r.Props[propPublicKey],
			RxBytes:   counter(r.Props[propRx]),
			TxBytes:   counter(r.Props[propTx]),
		}
		if v := r.Props[propLastHandshake]; v != "" && v != "never" {
			if d, ok := ParseDuration(v); ok {
				ps.LastHandshake = now.Add(-d).Truncate(time.Second).UTC()
			}
		}
		host, port := r.Props[propCurrentAddress], r.Props[propCurrentPort]
		if host != "" && port != "" && port != "0" {
			ps.Endpoint = net.JoinHostPort(host, port)
		}
		st.Peers = append(st.Peers, ps)
		break
	}
	return st
}

// counter reads a byte counter; RouterOS's API gives plain integers.
func counter(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// ParseDuration reads a RouterOS duration: a bare number of seconds
// ("25"), or numbers with units w, d, h, m, s and ms ("1w2d3h4m5s",
// "1m6s", "500ms"), or the clock form [Nd]HH:MM:SS ("00:01:06",
// "1d02:03:04") some versions print. It reports false for anything else.
func ParseDuration(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return time.Duration(n) * time.Second, true
	}
	if strings.Contains(s, ":") {
		return parseClock(s)
	}
	units := map[string]time.Duration{"w": 7 * 24 * time.Hour, "d": 24 * time.Hour, "h": time.Hour, "m": time.Minute, "s": time.Second, "ms": time.Millisecond}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		j := i
		for j < len(s) && s[j] >= 'a' && s[j] <= 'z' {
			j++
		}
		unit, ok := units[s[i:j]]
		if i == 0 || i > 9 || !ok {
			return 0, false
		}
		n, _ := strconv.Atoi(s[:i])
		total += time.Duration(n) * unit
		s = s[j:]
	}
	return total, true
}

// parseClock reads [Nd]HH:MM:SS.
func parseClock(s string) (time.Duration, bool) {
	var days int
	if d, rest, ok := strings.Cut(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return 0, false
		}
		days, s = n, rest
	}
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, false
	}
	var v [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || (i > 0 && n > 59) {
			return 0, false
		}
		v[i] = n
	}
	return time.Duration(days)*24*time.Hour + time.Duration(v[0])*time.Hour +
		time.Duration(v[1])*time.Minute + time.Duration(v[2])*time.Second, true
}
