package tunnel

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/tpf-dev/tpf/shared/syncproto"
)

// peer is one router as the device must hold it.
type peer struct {
	key     wgtypes.Key
	allowed netip.Prefix // the router's tunnel address, /32 (or /128)
}

// edgeAddress returns want's address (IPv4-mapped addresses unmapped), or
// what is wrong with want as a whole.
func edgeAddress(want *syncproto.EdgeTunnel) (netip.Prefix, error) {
	a, bits := want.Address.Addr(), want.Address.Bits()
	if a.Is4In6() {
		a, bits = a.Unmap(), bits-96
	}
	if !want.Address.IsValid() || bits < 0 || !a.IsGlobalUnicast() {
		return netip.Prefix{}, fmt.Errorf("tunnel address %q is not a unicast address with a prefix length", want.Address)
	}
	if want.ListenPort == 0 {
		return netip.Prefix{}, fmt.Errorf("tunnel listen port is 0; the routers need a fixed port to dial")
	}
	return netip.PrefixFrom(a, bits), nil
}

// desired returns the peers of want the device can hold, in want's order,
// and an error naming each one left out: a key that does not parse, the
// device's own key (WireGuard ignores it), an address that is invalid, is
// the edge's own or lies outside the tunnel's prefix (nothing would route
// to it), and the second of two peers sharing a key or an address (an
// address can belong to one peer only; the second would take it from the
// first).
func desired(address netip.Prefix, want []syncproto.EdgePeer, own wgtypes.Key) ([]peer, error) {
	prefix, edge := address.Masked(), address.Addr()
	out := make([]peer, 0, len(want))
	keys := make(map[wgtypes.Key]struct{}, len(want))
	addrs := make(map[netip.Addr]struct{}, len(want))
	var skipped skipList
	for _, p := range want {
		k, err := wgtypes.ParseKey(p.PublicKey)
		if err != nil {
			skipped.add("peer %q: not a WireGuard public key", p.PublicKey)
			continue
		}
		a := p.Address.Unmap()
		switch {
		case k == own:
			skipped.add("peer %s: the edge's own key", p.PublicKey)
		case !a.IsValid():
			skipped.add("peer %s: no tunnel address", p.PublicKey)
		case a == edge:
			skipped.add("peer %s: address %s is the edge's own", p.PublicKey, a)
		case !prefix.Contains(a):
			skipped.add("peer %s: address %s is outside the tunnel's %s", p.PublicKey, a, prefix)
		default:
			if _, dup := keys[k]; dup {
				skipped.add("peer %s: listed twice", p.PublicKey)
				continue
			}
			if _, dup := addrs[a]; dup {
				skipped.add("peer %s: address %s already belongs to another peer", p.PublicKey, a)
				continue
			}
			keys[k], addrs[a] = struct{}{}, struct{}{}
			out = append(out, peer{key: k, allowed: netip.PrefixFrom(a, a.BitLen())})
		}
	}
	return out, skipped.err()
}

// skipList collects why peers were left out, keeping the error short.
type skipList struct {
	n     int
	first []string
}

func (s *skipList) add(format string, args ...any) {
	s.n++
	if len(s.first) < 5 {
		s.first = append(s.first, fmt.Sprintf(format, args...))
	}
}

func (s *skipList) err() error {
	if s.n == 0 {
		return nil
	}
	msg := strings.Join(s.first, "; ")
	if s.n > len(s.first) {
		msg += fmt.Sprintf("; and %d more", s.n-len(s.first))
	}
	return fmt.Errorf("left out %d of the region's peers: %s", s.n, msg)
}

// plan returns the change that makes cur hold exactly key, port and peers
// (no endpoints: routers dial in; no keepalive, preshared key or firewall
// mark), and whether there is any. It changes only what differs, never
// replacing the whole peer list: that would drop every router's session.
func plan(cur *wgtypes.Device, key wgtypes.Key, port int, peers []peer) (wgtypes.Config, bool) {
	var cfg wgtypes.Config
	changed := false
	if cur.PrivateKey != key {
		cfg.PrivateKey, changed = &key, true
	}
	if cur.ListenPort != port {
		cfg.ListenPort, changed = &port, true
	}
	if cur.FirewallMark != 0 {
		zero := 0
		cfg.FirewallMark, changed = &zero, true
	}
	want := make(map[wgtypes.Key]netip.Prefix, len(peers))
	for _, p := range peers {
		want[p.key] = p.allowed
	}
	have := make(map[wgtypes.Key]struct{}, len(cur.Peers))
	var noKeepalive time.Duration
	var noPSK wgtypes.Key
	for i := range cur.Peers {
		c := &cur.Peers[i]
		have[c.PublicKey] = struct{}{}
		allowed, ok := want[c.PublicKey]
		if !ok {
			cfg.Peers = append(cfg.Peers, wgtypes.PeerConfig{PublicKey: c.PublicKey, Remove: true})
			continue
		}
		pc := wgtypes.PeerConfig{PublicKey: c.PublicKey, UpdateOnly: true}
		dirty := false
		if len(c.AllowedIPs) != 1 || prefixOf(c.AllowedIPs[0]) != allowed {
			pc.ReplaceAllowedIPs, pc.AllowedIPs, dirty = true, []net.IPNet{ipNet(allowed)}, true
		}
		if c.PersistentKeepaliveInterval != 0 {
			pc.PersistentKeepaliveInterval, dirty = &noKeepalive, true
		}
		if c.PresharedKey != noPSK {
			pc.PresharedKey, dirty = &noPSK, true
		}
		if dirty {
			cfg.Peers = append(cfg.Peers, pc)
		}
	}
	for _, p := range peers {
		if _, ok := have[p.key]; ok {
			continue
		}
		cfg.Peers = append(cfg.Peers, wgtypes.PeerConfig{
			PublicKey:         p.key,
			ReplaceAllowedIPs: true,
			AllowedIPs:        []net.IPNet{ipNet(p.allowed)},
		})
	}
	return cfg, changed || len(cfg.Peers) > 0
}

func ipNet(p netip.Prefix) net.IPNet {
	return net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// prefixOf converts n, or returns the zero Prefix when n is malformed.
func prefixOf(n net.IPNet) netip.Prefix {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}
	}
	ones, bits := n.Mask.Size()
	a = a.Unmap()
	if bits == 128 && a.Is4() {
		ones -= 96
	}
	return netip.PrefixFrom(a, ones)
}
