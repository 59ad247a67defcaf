package tunnel

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/tpf-dev/tpf/shared/syncproto"
)

func testKey(t testing.TB) wgtypes.Key {
	t.Helper()
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey()
}

func TestEdgeAddress(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		addr string
		port uint16
		want string // prefix, or part of the error
	}{
		{"100.64.0.1/16", 51820, "100.64.0.1/16"},
		{"::ffff:100.64.0.1/112", 51820, "100.64.0.1/16"},
		{"fd00:7470:66::1/64", 51820, "fd00:7470:66::1/64"},
		{"100.64.0.1/16", 0, "listen port is 0"},
		{"0.0.0.0/16", 51820, "not a unicast address"},
		{"127.0.0.1/8", 51820, "not a unicast address"},
		{"", 51820, "not a unicast address"},
	} {
		var p netip.Prefix
		if tt.addr != "" {
			p = netip.MustParsePrefix(tt.addr)
		}
		got, err := edgeAddress(&syncproto.EdgeTunnel{Address: p, ListenPort: tt.port})
		if err != nil {
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s port %d: got error %v, want %q", tt.addr, tt.port, err, tt.want)
			}
			continue
		}
		if got.String() != tt.want {
			t.Errorf("%s port %d: got %s, want %s", tt.addr, tt.port, got, tt.want)
		}
	}
}

func TestDesired(t *testing.T) {
	t.Parallel()
	own, a, b, c := testKey(t), testKey(t), testKey(t), testKey(t)
	addr := netip.MustParsePrefix("100.64.0.1/16")
	ip := netip.MustParseAddr
	got, err := desired(addr, []syncproto.EdgePeer{
		{PublicKey: a.String(), Address: ip("100.64.0.2")},
		{PublicKey: "bogus", Address: ip("100.64.0.3")},
		{PublicKey: own.String(), Address: ip("100.64.0.4")},
		{PublicKey: b.String(), Address: ip("::ffff:100.64.1.5")},
		{PublicKey: c.String(), Address: ip("100.65.0.6")}, // outside the /16
		{PublicKey: c.String(), Address: ip("100.64.0.2")}, // a's address
		{PublicKey: a.String(), Address: ip("100.64.0.7")}, // a again
		{PublicKey: c.String(), Address: ip("100.64.0.1")}, // the edge's
		{PublicKey: c.String()},                            // none
	}, own)
	want := []peer{
		{key: a, allowed: netip.MustParsePrefix("100.64.0.2/32")},
		{key: b, allowed: netip.MustParsePrefix("100.64.1.5/32")},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got peers %v, want %v", got, want)
	}
	for _, s := range []string{"left out 7 of", `"bogus"`, "own key", "outside the tunnel's 100.64.0.0/16",
		"already belongs", "and 2 more"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("got error %v, want it to say %q", err, s)
		}
	}
	if _, err := desired(addr, want2edge(want), own); err != nil {
		t.Errorf("valid peers: got %v, want nil", err)
	}
}

func want2edge(ps []peer) []syncproto.EdgePeer {
	var out []syncproto.EdgePeer
	for _, p := range ps {
		out = append(out, syncproto.EdgePeer{PublicKey: p.key.String(), Address: p.allowed.Addr()})
	}
	return out
}

func TestPlan(t *testing.T) {
	t.Parallel()
	priv, _ := wgtypes.GeneratePrivateKey()
	otherPriv, _ := wgtypes.GeneratePrivateKey()
	a, b, c := testKey(t), testKey(t), testKey(t)
	n := func(s string) net.IPNet { _, n, _ := net.ParseCIDR(s); return *n }
	pa := peer{key: a, allowed: netip.MustParsePrefix("100.64.0.2/32")}
	pb := peer{key: b, allowed: netip.MustParsePrefix("100.64.0.3/32")}
	current := func(peers ...wgtypes.Peer) *wgtypes.Device {
		return &wgtypes.Device{PrivateKey: priv, ListenPort: 51820, Peers: peers}
	}
	held := wgtypes.Peer{PublicKey: a, AllowedIPs: []net.IPNet{n("100.64.0.2/32")},
		LastHandshakeTime: time.Now(), ReceiveBytes: 1} // live state does not matter
	keepalive := 25 * time.Second
	var zero time.Duration
	var noPSK wgtypes.Key

	tests := []struct {
		name string
		cur  *wgtypes.Device
		want []peer
		cfg  string // summary of the expected config; "" for no change
	}{
		{"unchanged", current(held), []peer{pa}, ""},
		{"fresh device", &wgtypes.Device{}, []peer{pa},
			"key port 51820 | add " + a.String() + " 100.64.0.2/32"},
		{"new peer", current(held), []peer{pa, pb}, "add " + b.String() + " 100.64.0.3/32"},
		{"peer gone", current(held, wgtypes.Peer{PublicKey: c}), []peer{pa}, "remove " + c.String()},
		{"all gone", current(held), nil, "remove " + a.String()},
		{"other key", &wgtypes.Device{PrivateKey: otherPriv, ListenPort: 51820, Peers: []wgtypes.Peer{held}},
			[]peer{pa}, "key"},
		{"other port", &wgtypes.Device{PrivateKey: priv, ListenPort: 1, FirewallMark: 7, Peers: []wgtypes.Peer{held}},
			[]peer{pa}, "port 51820 fwmark 0"},
		{"address moved", current(wgtypes.Peer{PublicKey: a, AllowedIPs: []net.IPNet{n("100.64.0.9/32")}}), []peer{pa},
			"update " + a.String() + " 100.64.0.2/32"},
		{"extra allowed IP", current(wgtypes.Peer{PublicKey: a, AllowedIPs: []net.IPNet{n("100.64.0.2/32"), n("10.0.0.0/8")}}),
			[]peer{pa}, "update " + a.String() + " 100.64.0.2/32"},
		{"hand-set keepalive and psk", current(wgtypes.Peer{PublicKey: a, AllowedIPs: []net.IPNet{n("100.64.0.2/32")},
			PersistentKeepaliveInterval: keepalive, PresharedKey: c}), []peer{pa},
			"update " + a.String() + " keepalive 0 psk 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, changed := plan(tt.cur, priv, 51820, tt.want)
			got := summary(cfg, priv, zero, noPSK)
			if got != tt.cfg || changed != (tt.cfg != "") {
				t.Errorf("got %q (changed %v), want %q", got, changed, tt.cfg)
			}
			if cfg.ReplacePeers {
				t.Errorf("ReplacePeers set: that drops every router's session")
			}
		})
	}
}

// summary writes cfg short, to compare against expectations.
func summary(cfg wgtypes.Config, priv wgtypes.Key, zero time.Duration, noPSK wgtypes.Key) string {
	var parts []string
	var dev []string
	if cfg.PrivateKey != nil && *cfg.PrivateKey == priv {
		dev = append(dev, "key")
	}
	if cfg.ListenPort != nil {
		dev = append(dev, "port "+strconv.Itoa(*cfg.ListenPort))
	}
	if cfg.FirewallMark != nil {
		dev = append(dev, "fwmark "+strconv.Itoa(*cfg.FirewallMark))
	}
	if len(dev) > 0 {
		parts = append(parts, strings.Join(dev, " "))
	}
	for _, p := range cfg.Peers {
		s := ""
		switch {
		case p.Remove:
			s = "remove " + p.PublicKey.String()
		case p.UpdateOnly:
			s = "update " + p.PublicKey.String()
		default:
			s = "add " + p.PublicKey.String()
		}
		if p.Endpoint != nil {
			s += " endpoint!"
		}
		for _, n := range p.AllowedIPs {
			s += " " + n.String()
		}
		if p.PersistentKeepaliveInterval != nil && *p.PersistentKeepaliveInterval == zero {
			s += " keepalive 0"
		}
		if p.PresharedKey != nil && *p.PresharedKey == noPSK {
			s += " psk 0"
		}
		if len(p.AllowedIPs) > 0 && !p.ReplaceAllowedIPs {
			s += " (appending allowed IPs!)"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " | ")
}
