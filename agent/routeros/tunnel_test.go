package routeros_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/agent/reconcile"
	"github.com/tpf-dev/tpf/agent/routeros"
	"github.com/tpf-dev/tpf/agent/routerostest"
	"github.com/tpf-dev/tpf/shared/rosschema"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// The RouterOS 7 eras the tunnel meets: 7.12 (no peer name), 7.15–7.16
// (name, is-responder) and 7.17+ (responder).
var tunnelVersions = []string{"7.12.2", "7.15.3", "7.20.8"}

// Edge keys: the first the edge reports, and the one after a key change.
const (
	edgeKey  = "sgDnwBNdPaC5/dXC8J/EISRsrJribEklhgHfBpGSmWc="
	edgeKey2 = "HhbyDzvO6PpPKwVbFODLXEyfk3yeDdFHyRn9AL5ePxo="
	otherKey = "gLP3qHzYbGCTbO9y3oa27RNRHwOYGNLX2eQ2d8Xa2n0="
)

func tun(key string) *syncproto.Tunnel {
	return &syncproto.Tunnel{
		Address:          netip.MustParseAddr(tunnel),
		EdgeAddress:      netip.MustParseAddr(edge),
		EdgePublicKey:    key,
		Endpoint:         "edge.example.net:51820",
		KeepaliveSeconds: 25,
	}
}

// forTunnelVersions runs test once per RouterOS 7 era, in parallel, on an
// emulator whose commands are recorded.
func forTunnelVersions(t *testing.T, test func(t *testing.T, srv *routerostest.Server, log *commandLog)) {
	t.Helper()
	for _, v := range tunnelVersions {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			srv, log := startRecordedRouter(t, v)
			test(t, srv, log)
		})
	}
}

// commandLog records every command the emulator receives, with its
// arguments, as "command =a=b ?q=c -> result".
type commandLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *commandLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *commandLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *commandLog) WithGroup(string) slog.Handler            { return l }

func (l *commandLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "api command" {
		return nil
	}
	var b strings.Builder
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "command":
			b.WriteString(a.Value.String())
		case "args":
			if args, ok := a.Value.Any().([]string); ok {
				b.WriteString(" " + strings.Join(args, " "))
			}
		case "result":
			b.WriteString(" -> " + a.Value.String())
		}
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, b.String())
	return nil
}

// since returns the lines logged from position n on.
func (l *commandLog) since(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines[min(n, len(l.lines)):])
}

func (l *commandLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

func startRecordedRouter(t testing.TB, version string) (*routerostest.Server, *commandLog) {
	t.Helper()
	log := &commandLog{}
	srv := routerostest.New(routerostest.Config{
		Version: version,
		Users:   map[string]string{user: password},
		Logger:  slog.New(log),
	})
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("start emulator: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close emulator: %v", err)
		}
		// Whatever a test did: tpf never sends or asks for a private key,
		// and never a peer name, which 7.12 lacks.
		for _, line := range log.since(0) {
			if strings.Contains(line, "private-key") || strings.Contains(line, "preshared-key") {
				t.Errorf("a command touches a secret: %s", line)
			}
			if strings.HasPrefix(line, "/interface/wireguard/peers/") && strings.Contains(line, "=name=") {
				t.Errorf("a command names a peer: %s", line)
			}
		}
	})
	return srv, log
}

// operator adds the operator's own WireGuard interface, peer and address,
// and an address on the LAN, and returns a function that checks they are
// as they were.
func operator(t testing.TB, srv *routerostest.Server) func() {
	t.Helper()
	srv.AddRow(routerostest.MenuWireGuard, map[string]string{"name": "wg1", "comment": "site-to-site"})
	srv.AddRow(routerostest.MenuWireGuardPeers, map[string]string{"interface": "wg1", "public-key": otherKey,
		"allowed-address": "10.0.0.2/32", "comment": "branch"})
	srv.AddRow(routerostest.MenuIPAddress, map[string]string{"address": "10.0.0.1/24", "interface": "wg1"})
	srv.AddRow(routerostest.MenuIPAddress, map[string]string{"address": "192.168.88.1/24", "interface": "bridge", "comment": "defconf"})
	before := foreignTunnelRows(srv)
	return func() {
		t.Helper()
		if got := foreignTunnelRows(srv); !reflect.DeepEqual(got, before) {
			t.Errorf("the operator's objects changed:\ngot  %v\nwant %v", got, before)
		}
	}
}

// foreignTunnelRows returns the rows of the tunnel's menus that are not
// tpf's, by menu.
func foreignTunnelRows(srv *routerostest.Server) map[string][]map[string]string {
	out := map[string][]map[string]string{}
	for _, m := range []string{routerostest.MenuWireGuard, routerostest.MenuWireGuardPeers, routerostest.MenuIPAddress} {
		for _, r := range srv.Rows(m) {
			if r["comment"] != "tpf:tunnel" {
				out[m] = append(out[m], r)
			}
		}
	}
	return out
}

// tpfRows returns the rows of a menu commented tpf:tunnel.
func tpfRows(srv *routerostest.Server, menu string) []map[string]string {
	var out []map[string]string
	for _, r := range srv.Rows(menu) {
		if r["comment"] == "tpf:tunnel" {
			out = append(out, r)
		}
	}
	return out
}

// only returns the single tpf row of a menu, failing the test otherwise.
func only(t testing.TB, srv *routerostest.Server, menu string) map[string]string {
	t.Helper()
	rs := tpfRows(srv, menu)
	if len(rs) != 1 {
		t.Fatalf("%s: got %d tpf rows %v, want 1", menu, len(rs), rs)
	}
	return rs[0]
}

// applyTunnel runs one pass that must not stop, and returns its state.
func applyTunnel(t testing.TB, c *routeros.Client, d *syncproto.Tunnel, haveSet bool) *syncproto.TunnelState {
	t.Helper()
	st, err := c.ApplyTunnel(context.Background(), d, haveSet, time.Now())
	if err != nil {
		t.Fatalf("ApplyTunnel: %v", err)
	}
	return st
}

// wantPeer checks the tpf peer's properties as the router prints them.
func wantPeer(t testing.TB, peer map[string]string, key string) {
	t.Helper()
	want := map[string]string{
		"interface": "tpf", "public-key": key, "endpoint-address": "edge.example.net", "endpoint-port": "51820",
		"allowed-address": edge + "/32", "persistent-keepalive": "25s", "disabled": "false",
	}
	for k, v := range want {
		if peer[k] != v {
			t.Errorf("peer %s: got %q, want %q (peer %v)", k, peer[k], v, peer)
		}
	}
}

func TestTunnelBuild(t *testing.T) {
	t.Parallel()
	forTunnelVersions(t, func(t *testing.T, srv *routerostest.Server, log *commandLog) {
		untouched := operator(t, srv)
		c := dial(t, config(srv))

		// Before the edge reported its key: interface and address.
		st := applyTunnel(t, c, tun(""), true)
		iface := only(t, srv, routerostest.MenuWireGuard)
		if iface["name"] != "tpf" || iface["disabled"] != "false" {
			t.Errorf("interface: got %v, want name tpf, enabled", iface)
		}
		if iface["listen-port"] == "13231" {
			t.Errorf("interface listen-port: got 13231, which wg1 uses; want another")
		}
		if st == nil || st.PublicKey != iface["public-key"] || st.PublicKey == "" || len(st.Peers) != 0 || st.Error != "" {
			t.Fatalf("state: got %+v, want the public key %q, no peers, no error", st, iface["public-key"])
		}
		if n := len(tpfRows(srv, routerostest.MenuWireGuardPeers)); n != 0 {
			t.Errorf("tpf peers without an edge key: got %d, want 0", n)
		}
		addr := only(t, srv, routerostest.MenuIPAddress)
		if addr["address"] != tunnel+"/32" || addr["network"] != edge || addr["interface"] != "tpf" || addr["invalid"] != "false" {
			t.Errorf("address: got %v, want %s/32 network %s on tpf", addr, tunnel, edge)
		}

		// The edge's key arrives: the peer is added.
		st = applyTunnel(t, c, tun(edgeKey), true)
		wantPeer(t, only(t, srv, routerostest.MenuWireGuardPeers), edgeKey)
		want := &syncproto.TunnelState{PublicKey: iface["public-key"], Peers: []syncproto.PeerState{{PublicKey: edgeKey}}}
		if !reflect.DeepEqual(st, want) {
			t.Errorf("state: got %+v, want %+v", st, want)
		}

		// Applying again changes nothing.
		writes, n := srv.Writes(), log.len()
		st2 := applyTunnel(t, c, tun(edgeKey), true)
		if srv.Writes() != writes {
			t.Errorf("second pass wrote: %v", log.since(n))
		}
		if !reflect.DeepEqual(st2, st) {
			t.Errorf("second pass state: got %+v, want %+v", st2, st)
		}
		if got := only(t, srv, routerostest.MenuWireGuard)["public-key"]; got != iface["public-key"] {
			t.Errorf("public key changed from %s to %s", iface["public-key"], got)
		}
		untouched()
	})
}

func TestTunnelCommands(t *testing.T) {
	t.Parallel()
	// The exact conversation of a first build, the same on every era.
	forTunnelVersions(t, func(t *testing.T, srv *routerostest.Server, log *commandLog) {
		c := dial(t, config(srv))
		n := log.len()
		applyTunnel(t, c, tun(edgeKey), true)
		got := log.since(n)
		want := []string{
			"/system/resource/print =.proplist=version -> !done",
			"/interface/wireguard/print =.proplist=.id,name,comment,disabled,listen-port,public-key -> !done",
			"/interface/wireguard/peers/print =.proplist=.id,interface,comment,disabled,dynamic,public-key,endpoint-address,endpoint-port,allowed-address,persistent-keepalive,last-handshake,rx,tx,current-endpoint-address,current-endpoint-port ?comment=tpf:tunnel -> !done",
			"/ip/address/print =.proplist=.id,address,network,interface,comment,disabled,dynamic ?comment=tpf:tunnel -> !done",
			"/interface/wireguard/add =comment=tpf:tunnel =name=tpf -> !done",
			"/interface/wireguard/peers/add =allowed-address=" + edge + "/32 =comment=tpf:tunnel =endpoint-address=edge.example.net =endpoint-port=51820 =interface=tpf =persistent-keepalive=25 =public-key=" + edgeKey + " -> !done",
			"/ip/address/add =address=" + tunnel + "/32 =comment=tpf:tunnel =interface=tpf =network=" + edge + " -> !done",
			"/interface/wireguard/print =.proplist=.id,name,comment,disabled,listen-port,public-key -> !done",
			"/interface/wireguard/peers/print =.proplist=.id,interface,comment,disabled,dynamic,public-key,endpoint-address,endpoint-port,allowed-address,persistent-keepalive,last-handshake,rx,tx,current-endpoint-address,current-endpoint-port ?comment=tpf:tunnel -> !done",
			"/ip/firewall/filter/print =.proplist=" + strings.Join(reconcile.FirewallProperties(), ",") + " ?chain=forward -> !done",
		}
		if !slices.Equal(got, want) {
			t.Errorf("commands:\ngot  %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
		}
	})
}

func TestTunnelRepair(t *testing.T) {
	t.Parallel()
	forTunnelVersions(t, func(t *testing.T, srv *routerostest.Server, log *commandLog) {
		untouched := operator(t, srv)
		c := dial(t, config(srv))
		applyTunnel(t, c, tun(edgeKey), true)
		iface := only(t, srv, routerostest.MenuWireGuard)
		peer := only(t, srv, routerostest.MenuWireGuardPeers)
		addr := only(t, srv, routerostest.MenuIPAddress)

		// Someone at the console edits the peer, deletes the address,
		// disables the interface and adds a second tpf peer.
		srv.SetRow(routerostest.MenuWireGuardPeers, peer[".id"], map[string]string{
			"endpoint-address": "203.0.113.9", "endpoint-port": "1", "allowed-address": "0.0.0.0/0",
			"persistent-keepalive": "0s",
		})
		srv.RemoveRow(routerostest.MenuIPAddress, addr[".id"])
		srv.SetRow(routerostest.MenuWireGuard, iface[".id"], map[string]string{"disabled": "true"})
		extra := srv.AddRow(routerostest.MenuWireGuardPeers, map[string]string{"interface": "tpf", "public-key": edgeKey2,
			"allowed-address": "10.99.0.253/32", "comment": "tpf:tunnel"})

		n := log.len()
		st := applyTunnel(t, c, tun(edgeKey), true)
		fixed := only(t, srv, routerostest.MenuWireGuardPeers)
		wantPeer(t, fixed, edgeKey)
		if fixed[".id"] != peer[".id"] {
			t.Errorf("peer id: got %s, want %s (set in place, not remove and add)", fixed[".id"], peer[".id"])
		}
		if slices.ContainsFunc(srv.Rows(routerostest.MenuWireGuardPeers), func(r map[string]string) bool { return r[".id"] == extra }) {
			t.Errorf("extra tpf peer %s not removed", extra)
		}
		if got := only(t, srv, routerostest.MenuIPAddress); got["address"] != tunnel+"/32" || got["network"] != edge {
			t.Errorf("address after repair: got %v", got)
		}
		gotIface := only(t, srv, routerostest.MenuWireGuard)
		if gotIface["disabled"] != "false" || gotIface["public-key"] != iface["public-key"] {
			t.Errorf("interface after repair: got %v, want enabled with key %s", gotIface, iface["public-key"])
		}
		if st.Error != "" || st.PublicKey != iface["public-key"] || len(st.Peers) != 1 {
			t.Errorf("state: got %+v", st)
		}
		for _, line := range log.since(n) {
			if strings.HasPrefix(line, "/interface/wireguard/add") || strings.HasPrefix(line, "/interface/wireguard/peers/add") {
				t.Errorf("repair re-created something: %s", line)
			}
		}

		// A new edge key and endpoint are a set too.
		d := tun(edgeKey2)
		d.Endpoint = "198.51.100.1:51999"
		applyTunnel(t, c, d, true)
		moved := only(t, srv, routerostest.MenuWireGuardPeers)
		if moved[".id"] != peer[".id"] || moved["public-key"] != edgeKey2 || moved["endpoint-address"] != "198.51.100.1" || moved["endpoint-port"] != "51999" {
			t.Errorf("peer after a key and endpoint change: got %v", moved)
		}

		// A hand-edited address is set back; a renamed interface renamed back.
		a := only(t, srv, routerostest.MenuIPAddress)
		srv.SetRow(routerostest.MenuIPAddress, a[".id"], map[string]string{"address": "10.99.0.9/24"})
		srv.SetRow(routerostest.MenuWireGuard, iface[".id"], map[string]string{"name": "wg-old"})
		applyTunnel(t, c, d, true)
		if got := only(t, srv, routerostest.MenuIPAddress); got[".id"] != a[".id"] || got["address"] != tunnel+"/32" || got["network"] != edge {
			t.Errorf("address after repair: got %v, want %s set back", got, a[".id"])
		}
		if got := only(t, srv, routerostest.MenuWireGuard); got["name"] != "tpf" || got["public-key"] != iface["public-key"] {
			t.Errorf("interface after rename: got %v, want tpf with its key", got)
		}
		if got := only(t, srv, routerostest.MenuWireGuardPeers); got["interface"] != "tpf" {
			t.Errorf("peer after rename: got %v", got)
		}
		untouched()
	})
}

func TestTunnelEdgeKeyWithdrawn(t *testing.T) {
	t.Parallel()
	forTunnelVersions(t, func(t *testing.T, srv *routerostest.Server, _ *commandLog) {
		c := dial(t, config(srv))
		applyTunnel(t, c, tun(edgeKey), true)
		st := applyTunnel(t, c, tun(""), true)
		if n := len(tpfRows(srv, routerostest.MenuWireGuardPeers)); n != 0 || len(st.Peers) != 0 {
			t.Errorf("peers after the key was withdrawn: got %d on the router, %d in the state; want 0", n, len(st.Peers))
		}
		only(t, srv, routerostest.MenuWireGuard)
		only(t, srv, routerostest.MenuIPAddress)
	})
}

func TestTunnelRemoved(t *testing.T) {
	t.Parallel()
	forTunnelVersions(t, func(t *testing.T, srv *routerostest.Server, _ *commandLog) {
		untouched := operator(t, srv)
		c := dial(t, config(srv))
		applyTunnel(t, c, tun(edgeKey), true)
		// A stray tpf peer left on the operator's interface goes too.
		srv.AddRow(routerostest.MenuWireGuardPeers, map[string]string{"interface": "wg1", "public-key": edgeKey2,
			"allowed-address": "10.99.0.250/32", "comment": "tpf:tunnel"})

		st := applyTunnel(t, c, nil, true)
		if st != nil {
			t.Errorf("state without a tunnel: got %+v, want nil", st)
		}
		for _, m := range []string{routerostest.MenuWireGuard, routerostest.MenuWireGuardPeers, routerostest.MenuIPAddress} {
			if rs := tpfRows(srv, m); len(rs) != 0 {
				t.Errorf("%s: tpf rows left: %v", m, rs)
			}
		}
		// The removed interface left no orphan behind.
		for _, a := range srv.Rows(routerostest.MenuIPAddress) {
			if a["invalid"] == "true" {
				t.Errorf("an address was left invalid: %v", a)
			}
		}
		untouched()
	})
}

func TestTunnelBeforeFirstSet(t *testing.T) {
	t.Parallel()
	forTunnelVersions(t, func(t *testing.T, srv *routerostest.Server, log *commandLog) {
		// A tunnel an earlier agent built, since hand-edited.
		built := dial(t, config(srv))
		applyTunnel(t, built, tun(edgeKey), true)
		peer := only(t, srv, routerostest.MenuWireGuardPeers)
		srv.SetRow(routerostest.MenuWireGuardPeers, peer[".id"], map[string]string{"endpoint-port": "1"})
		srv.AddRow(routerostest.MenuWireGuardPeers, map[string]string{"interface": "tpf", "public-key": edgeKey2,
			"allowed-address": "10.99.0.250/32", "comment": "tpf:tunnel"})
		before := srv.Rows(routerostest.MenuWireGuardPeers)

		// A restarted agent without a set: reads, writes nothing.
		c := dial(t, config(srv))
		writes, n := srv.Writes(), log.len()
		for _, d := range []*syncproto.Tunnel{nil, tun(edgeKey2)} {
			st := applyTunnel(t, c, d, false)
			if st == nil || st.PublicKey != only(t, srv, routerostest.MenuWireGuard)["public-key"] {
				t.Errorf("state before the first set: got %+v, want the interface's public key", st)
			}
		}
		if srv.Writes() != writes {
			t.Errorf("wrote before the first set: %v", log.since(n))
		}
		if got := srv.Rows(routerostest.MenuWireGuardPeers); !reflect.DeepEqual(got, before) {
			t.Errorf("peers changed before the first set:\ngot  %v\nwant %v", got, before)
		}
	})
}

func TestTunnelState(t *testing.T) {
	t.Parallel()
	forTunnelVersions(t, func(t *testing.T, srv *routerostest.Server, _ *commandLog) {
		c := dial(t, config(srv))
		applyTunnel(t, c, tun(edgeKey), true)
		peer := only(t, srv, routerostest.MenuWireGuardPeers)
		shook := time.Now().Add(-66 * time.Second)
		srv.SetPeerStatus(peer[".id"], routerostest.PeerStatus{
			LastHandshake:   shook,
			Rx:              2536747860,
			Tx:              148,
			CurrentEndpoint: netip.MustParseAddrPort("198.51.100.7:51820"),
		})
		now := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC) // the caller's clock, not the router's
		st, err := c.ApplyTunnel(context.Background(), tun(edgeKey), true, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Peers) != 1 {
			t.Fatalf("state: got %+v, want one peer", st)
		}
		p := st.Peers[0]
		if ago := now.Sub(p.LastHandshake); ago < 65*time.Second || ago > 68*time.Second {
			t.Errorf("last handshake: got %v (%v before now), want about 66s before now", p.LastHandshake, ago)
		}
		want := syncproto.PeerState{PublicKey: edgeKey, LastHandshake: p.LastHandshake, Endpoint: "198.51.100.7:51820", RxBytes: 2536747860, TxBytes: 148}
		if p != want {
			t.Errorf("peer state: got %+v, want %+v", p, want)
		}
	})
}

func TestTunnelConflict(t *testing.T) {
	t.Parallel()
	forTunnelVersions(t, func(t *testing.T, srv *routerostest.Server, log *commandLog) {
		// The operator's own interface named tpf, with a peer and an address.
		srv.AddRow(routerostest.MenuWireGuard, map[string]string{"name": "tpf"})
		srv.AddRow(routerostest.MenuWireGuardPeers, map[string]string{"interface": "tpf", "public-key": otherKey, "allowed-address": "10.1.0.2/32"})
		srv.AddRow(routerostest.MenuIPAddress, map[string]string{"address": "10.1.0.1/24", "interface": "tpf"})
		before := foreignTunnelRows(srv)
		c := dial(t, config(srv))
		writes, n := srv.Writes(), log.len()
		st := applyTunnel(t, c, tun(edgeKey), true)
		if st == nil || st.PublicKey != "" || !strings.Contains(st.Error, `WireGuard interface named "tpf" (*1) that tpf did not make`) {
			t.Errorf("state: got %+v, want the conflict in Error and no key", st)
		}
		if srv.Writes() != writes {
			t.Errorf("wrote despite the conflict: %v", log.since(n))
		}
		if got := foreignTunnelRows(srv); !reflect.DeepEqual(got, before) {
			t.Errorf("the operator's objects changed:\ngot  %v\nwant %v", got, before)
		}
		// Without a tunnel wanted, it is no conflict: nothing to say.
		if st := applyTunnel(t, c, nil, true); st != nil {
			t.Errorf("state without a tunnel: got %+v, want nil", st)
		}
	})
}

func TestTunnelRouterRefuses(t *testing.T) {
	t.Parallel()
	forTunnelVersions(t, func(t *testing.T, srv *routerostest.Server, _ *commandLog) {
		// Someone replaced tpf's address with their own holding the same
		// IP on the tpf interface: RouterOS refuses a second one.
		c := dial(t, config(srv))
		applyTunnel(t, c, tun(edgeKey), true)
		addr := only(t, srv, routerostest.MenuIPAddress)
		srv.RemoveRow(routerostest.MenuIPAddress, addr[".id"])
		srv.AddRow(routerostest.MenuIPAddress, map[string]string{"address": tunnel + "/24", "interface": "tpf"})

		st := applyTunnel(t, c, tun(edgeKey), true)
		want := "add address " + tunnel + "/32 on tpf: /ip/address/add: router says: failure: already have such address"
		if st == nil || st.Error != want || st.PublicKey == "" || len(st.Peers) != 1 {
			t.Errorf("state: got %+v, want error %q with the rest of the state", st, want)
		}
	})
}

func TestTunnelBrokenConnection(t *testing.T) {
	t.Parallel()
	srv, _ := startRecordedRouter(t, "7.20.8")
	c := dial(t, config(srv))
	if _, err := c.System(context.Background()); err != nil { // caches the version
		t.Fatal(err)
	}
	srv.SetFault(routerostest.Fault{DropNext: 1})
	st, err := c.ApplyTunnel(context.Background(), tun(edgeKey), true, time.Now())
	if !errors.Is(err, routeros.ErrBroken) || st != nil {
		t.Errorf("ApplyTunnel on a dropped connection: got %+v, %v; want nil, ErrBroken", st, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c2 := dial(t, config(srv))
	srv.SetFault(routerostest.Fault{})
	if _, err := c2.ApplyTunnel(ctx, tun(edgeKey), true, time.Now()); !errors.Is(err, context.Canceled) {
		t.Errorf("ApplyTunnel with a cancelled context: got %v, want context.Canceled", err)
	}
}

func TestTunnelRouterOS6(t *testing.T) {
	t.Parallel()
	srv, log := startRecordedRouter(t, "6.49.10")
	c := dial(t, config(srv))
	n := log.len()
	st := applyTunnel(t, c, tun(edgeKey), true)
	want := &syncproto.TunnelState{Error: "RouterOS 6 has no WireGuard: mark the region manual and bring your own VPN"}
	if !reflect.DeepEqual(st, want) || routeros.NoWireGuard != want.Error {
		t.Errorf("state: got %+v, want %+v", st, want)
	}
	for _, tt := range []struct {
		d       *syncproto.Tunnel
		haveSet bool
	}{{nil, true}, {nil, false}, {tun(edgeKey), false}} {
		if st := applyTunnel(t, c, tt.d, tt.haveSet); st != nil {
			t.Errorf("state for tunnel %v, haveSet %v: got %+v, want nil", tt.d, tt.haveSet, st)
		}
	}
	if got, want := log.since(n), []string{"/system/resource/print =.proplist=version -> !done"}; !slices.Equal(got, want) {
		t.Errorf("commands: got %v, want only %v", got, want)
	}
}

func TestTunnelOrphansAfterInterfaceRemoved(t *testing.T) {
	t.Parallel()
	forTunnelVersions(t, func(t *testing.T, srv *routerostest.Server, _ *commandLog) {
		c := dial(t, config(srv))
		applyTunnel(t, c, tun(edgeKey), true)
		old := only(t, srv, routerostest.MenuWireGuard)
		// The interface removed at the console: its peer and address stay,
		// pointing at its id.
		srv.RemoveRow(routerostest.MenuWireGuard, old[".id"])
		st := applyTunnel(t, c, tun(edgeKey), true)
		iface := only(t, srv, routerostest.MenuWireGuard)
		if iface[".id"] == old[".id"] || iface["public-key"] == old["public-key"] || st.PublicKey != iface["public-key"] {
			t.Errorf("interface: got %v (state key %s), want a new one with a new key", iface, st.PublicKey)
		}
		wantPeer(t, only(t, srv, routerostest.MenuWireGuardPeers), edgeKey)
		if a := only(t, srv, routerostest.MenuIPAddress); a["interface"] != "tpf" || a["invalid"] != "false" {
			t.Errorf("address: got %v", a)
		}
	})
}

// TestTunnelStateJSON checks the state as the controller receives it.
func TestTunnelStateJSON(t *testing.T) {
	t.Parallel()
	srv, _ := startRecordedRouter(t, "7.20.8")
	c := dial(t, config(srv))
	st := applyTunnel(t, c, tun(edgeKey), true)
	rep := syncproto.Report{Tunnel: st}
	b, err := syncproto.Encode(&rep)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), fmt.Sprintf(`"tunnel":{"public_key":%q,"peers":[{"public_key":%q,"rx_bytes":0,"tx_bytes":0}]}`, st.PublicKey, edgeKey)) {
		t.Errorf("report: got %s", b)
	}
}

// TestTunnelEveryKnownVersion runs a tunnel's life (built, repaired,
// rebuilt after its interface was deleted, removed) on every RouterOS
// version with a command tree: the emulator refuses any command or
// parameter the version lacks, and every step must pass.
func TestTunnelEveryKnownVersion(t *testing.T) {
	t.Parallel()
	for _, v := range rosschema.Versions() {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			srv, _ := startRecordedRouter(t, v)
			c := dial(t, config(srv))
			steps := []struct {
				name    string
				disturb func()
				desired *syncproto.Tunnel
			}{
				{"build", func() {}, tun("")},
				{"peer", func() {}, tun(edgeKey)},
				{"repair", func() {
					peer := only(t, srv, routerostest.MenuWireGuardPeers)
					srv.SetRow(routerostest.MenuWireGuardPeers, peer[".id"], map[string]string{"endpoint-port": "1", "disabled": "true"})
					addr := only(t, srv, routerostest.MenuIPAddress)
					srv.SetRow(routerostest.MenuIPAddress, addr[".id"], map[string]string{"network": tunnel, "disabled": "true"})
				}, tun(edgeKey)},
				{"rebuild", func() {
					srv.RemoveRow(routerostest.MenuWireGuard, "tpf")
				}, tun(edgeKey2)},
				{"remove", func() {}, nil},
			}
			for _, s := range steps {
				s.disturb()
				st := applyTunnel(t, c, s.desired, true)
				if st != nil && st.Error != "" {
					t.Fatalf("%s: %s", s.name, st.Error)
				}
				if s.desired == nil {
					continue
				}
				wantPeers := 0
				if s.desired.EdgePublicKey != "" {
					wantPeers = 1
					wantPeer(t, only(t, srv, routerostest.MenuWireGuardPeers), s.desired.EdgePublicKey)
				}
				if st == nil || len(st.Peers) != wantPeers || st.PublicKey == "" {
					t.Fatalf("%s: state %+v, want a key and %d peers", s.name, st, wantPeers)
				}
				if a := only(t, srv, routerostest.MenuIPAddress); a["network"] != edge || a["disabled"] != "false" || a["invalid"] != "false" {
					t.Errorf("%s: address %v", s.name, a)
				}
			}
			for _, m := range []string{routerostest.MenuWireGuard, routerostest.MenuWireGuardPeers, routerostest.MenuIPAddress} {
				if rs := tpfRows(srv, m); len(rs) != 0 {
					t.Errorf("%s: tpf rows left: %v", m, rs)
				}
			}
		})
	}
}
