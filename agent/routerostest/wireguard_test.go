package routerostest_test

import (
	"crypto/ecdh"
	"encoding/base64"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/go-routeros/routeros/v3"

	"github.com/tpf-dev/tpf/agent/routerostest"
)

// These tests drive /interface/wireguard, its peers and /ip/address with
// the real go-routeros client, the calls the tpf agent makes to keep its
// management tunnel, against several RouterOS versions.

// trapMessage runs a command that should fail and returns its !trap
// message ("" and a test error if it succeeded).
func trapMessage(t testing.TB, c *routeros.Client, words ...string) string {
	t.Helper()
	_, err := c.RunArgs(words)
	var devErr *routeros.DeviceError
	if !errors.As(err, &devErr) {
		t.Errorf("%s: got %v, want a !trap", strings.Join(words, " "), err)
		return ""
	}
	return devErr.Sentence.Map["message"]
}

// wantTrap checks that a command fails with exactly the message want.
func wantTrap(t testing.TB, c *routeros.Client, want string, words ...string) {
	t.Helper()
	if got := trapMessage(t, c, words...); got != want {
		t.Errorf("%s: got trap %q, want %q", strings.Join(words, " "), got, want)
	}
}

// printOne prints a menu with a query and returns the single row.
func printOne(t testing.TB, c *routeros.Client, words ...string) map[string]string {
	t.Helper()
	r := run(t, c, words...)
	if len(r.Re) != 1 {
		t.Fatalf("%s: got %d rows, want 1", strings.Join(words, " "), len(r.Re))
	}
	return r.Re[0].Map
}

// publicKeyOf is what `wg pubkey` prints for a base64 private key.
func publicKeyOf(t testing.TB, private string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(private)
	if err != nil {
		t.Fatalf("private key %q: %v", private, err)
	}
	k, err := ecdh.X25519().NewPrivateKey(b)
	if err != nil {
		t.Fatalf("private key %q: %v", private, err)
	}
	return base64.StdEncoding.EncodeToString(k.PublicKey().Bytes())
}

// A fixed key pair (the private key clamped, as `wg genkey` makes them)
// and an edge's public key.
const (
	fixedPrivate = "EJ88h0Qy44Gi9JhLqlmv/NPosdKvhtbEo2pImqWI/ns="
	fixedPublic  = "y4bDGpF+nKSzgoPHCf2BolGLmObdxqktfbeQstM74GQ="
	edgePublic   = "sgDnwBNdPaC5/dXC8J/EISRsrJribEklhgHfBpGSmWc="
)

func TestClientWireGuardLifecycle(t *testing.T) {
	t.Parallel()
	srv := startServer(t, routerostest.Config{})
	c := mustClient(t, srv)

	// The interface: a key pair is generated, the id comes back in !done.
	r := run(t, c, "/interface/wireguard/add", "=name=wg-tpf", "=listen-port=13231", "=comment=tpf")
	wgID := r.Done.Map["ret"]
	if wgID != "*1" {
		t.Errorf("add ret: got %q, want *1", wgID)
	}
	wg := printOne(t, c, "/interface/wireguard/print", "=.proplist=.id,name,public-key,private-key,listen-port,mtu,running,disabled", "?name=wg-tpf")
	if wg[".id"] != wgID || wg["listen-port"] != "13231" || wg["mtu"] != "1420" || wg["running"] != "true" || wg["disabled"] != "false" {
		t.Errorf("interface: got %v, want .id=%s listen-port=13231 mtu=1420 running=true disabled=false", wg, wgID)
	}
	if len(wg["public-key"]) != 44 || wg["public-key"] != publicKeyOf(t, wg["private-key"]) {
		t.Errorf("public-key %q is not the X25519 public key of private-key %q", wg["public-key"], wg["private-key"])
	}
	wantTrap(t, c, "failure: already have interface with such name", "/interface/wireguard/add", "=name=wg-tpf")
	wantTrap(t, c, "failure: already have interface with such name", "/interface/wireguard/add", "=name=ether1")
	wantTrap(t, c, "unknown parameter public-key", "/interface/wireguard/add", "=name=wg2", "=public-key="+edgePublic)
	wantTrap(t, c, "value of listen-port out of range (1..65535)", "/interface/wireguard/set", "=.id="+wgID, "=listen-port=0")
	// Without a name it is wireguard1; getall is print.
	r = run(t, c, "/interface/wireguard/add", "=private-key="+fixedPrivate)
	other := r.Done.Map["ret"]
	got := printOne(t, c, "/interface/wireguard/getall", "?.id="+other)
	if got["name"] != "wireguard1" || got["public-key"] != fixedPublic {
		t.Errorf("second interface: got %v, want name wireguard1 and the public key of the given private key", got)
	}

	// The peer: keepalive written in seconds reads back as a duration.
	r = run(t, c, "/interface/wireguard/peers/add", "=interface=wg-tpf", "=public-key="+edgePublic,
		"=endpoint-address=edge.example.net", "=endpoint-port=51820", "=allowed-address=10.99.0.1/32,10.99.1.0/24",
		"=persistent-keepalive=25", "=comment=tpf")
	peerID := r.Done.Map["ret"]
	peer := printOne(t, c, "/interface/wireguard/peers/print", "?comment=tpf")
	want := map[string]string{".id": peerID, "interface": "wg-tpf", "public-key": edgePublic,
		"endpoint-address": "edge.example.net", "endpoint-port": "51820", "allowed-address": "10.99.0.1/32,10.99.1.0/24",
		"persistent-keepalive": "25s", "rx": "0", "tx": "0", "disabled": "false", "dynamic": "false", "comment": "tpf"}
	for k, v := range want {
		if peer[k] != v {
			t.Errorf("peer %s: got %q, want %q", k, peer[k], v)
		}
	}
	for _, k := range []string{"last-handshake", "current-endpoint-address", "current-endpoint-port"} {
		if _, ok := peer[k]; ok {
			t.Errorf("peer that never shook hands has %s=%q, want none", k, peer[k])
		}
	}

	// The device reports a handshake.
	if !srv.SetPeerStatus(peerID, routerostest.PeerStatus{LastHandshake: time.Now().Add(-66 * time.Second),
		Rx: 2536747860, Tx: 1234, CurrentEndpoint: netip.MustParseAddrPort("198.51.100.7:51820")}) {
		t.Fatal("SetPeerStatus: peer not found")
	}
	peer = printOne(t, c, "/interface/wireguard/peers/print", "=.proplist=last-handshake,rx,tx,current-endpoint-address,current-endpoint-port")
	if hs := peer["last-handshake"]; hs != "1m6s" && hs != "1m7s" {
		t.Errorf("last-handshake: got %q, want 1m6s", hs)
	}
	if peer["rx"] != "2536747860" || peer["tx"] != "1234" || peer["current-endpoint-address"] != "198.51.100.7" || peer["current-endpoint-port"] != "51820" {
		t.Errorf("peer status: got %v", peer)
	}

	run(t, c, "/interface/wireguard/peers/set", "=.id="+peerID, "=persistent-keepalive=1m30s", "=endpoint-port=13231")
	if p := srv.Rows(routerostest.MenuWireGuardPeers)[0]; p["persistent-keepalive"] != "1m30s" || p["endpoint-port"] != "13231" {
		t.Errorf("after set: got keepalive %q port %q, want 1m30s and 13231", p["persistent-keepalive"], p["endpoint-port"])
	}
	wantTrap(t, c, "value of endpoint-port out of range (0..65535)", "/interface/wireguard/peers/set", "=.id="+peerID, "=endpoint-port=70000")
	wantTrap(t, c, "value of persistent-keepalive out of range (0s..18h12m15s)", "/interface/wireguard/peers/set", "=.id="+peerID, "=persistent-keepalive=1d")
	wantTrap(t, c, "invalid value for argument allowed-address", "/interface/wireguard/peers/set", "=.id="+peerID, "=allowed-address=10.99.0.1/33")
	wantTrap(t, c, "input does not match any value of interface", "/interface/wireguard/peers/add", "=interface=wg-nope",
		"=public-key="+fixedPublic, "=allowed-address=10.99.0.0/24")
	wantTrap(t, c, "failure: already have peer with such public key", "/interface/wireguard/peers/add", "=interface=wg-tpf",
		"=public-key="+edgePublic, "=allowed-address=10.99.2.0/24")
	wantTrap(t, c, "failure: allowed-address not specified", "/interface/wireguard/peers/add", "=interface=wg-tpf",
		"=public-key="+fixedPublic)
	wantTrap(t, c, "unknown parameter rx", "/interface/wireguard/peers/set", "=.id="+peerID, "=rx=0")

	// The tunnel address: network derived, read-only flags printed.
	r = run(t, c, "/ip/address/add", "=address=100.64.0.2/32", "=interface=wg-tpf", "=comment=tpf")
	addrID := r.Done.Map["ret"]
	addr := printOne(t, c, "/ip/address/print", "?comment=tpf")
	want = map[string]string{".id": addrID, "address": "100.64.0.2/32", "network": "100.64.0.2", "interface": "wg-tpf",
		"actual-interface": "wg-tpf", "invalid": "false", "dynamic": "false", "disabled": "false"}
	for k, v := range want {
		if addr[k] != v {
			t.Errorf("address %s: got %q, want %q", k, addr[k], v)
		}
	}
	run(t, c, "/ip/address/set", "=.id="+addrID, "=address=10.99.0.2/24")
	if a := srv.Rows(routerostest.MenuIPAddress)[0]; a["network"] != "10.99.0.0" {
		t.Errorf("network of 10.99.0.2/24: got %q, want 10.99.0.0", a["network"])
	}
	wantTrap(t, c, "failure: already have such address", "/ip/address/add", "=address=10.99.0.2/24", "=interface=wg-tpf")
	wantTrap(t, c, "input does not match any value of interface", "/ip/address/add", "=address=10.99.0.3/24", "=interface=wg-nope")
	wantTrap(t, c, "invalid value for argument address", "/ip/address/add", "=address=fd00::1/64", "=interface=wg-tpf")
	run(t, c, "/ip/address/add", "=address=192.168.88.1/24", "=interface=bridge")

	// A rename carries over; a new private key gives a new public key.
	run(t, c, "/interface/wireguard/set", "=.id=wg-tpf", "=name=wg-mgmt", "=private-key="+fixedPrivate)
	wg = printOne(t, c, "/interface/wireguard/print", "?.id="+wgID)
	if wg["name"] != "wg-mgmt" || wg["public-key"] != fixedPublic {
		t.Errorf("after set: got %v, want name wg-mgmt and the new public key", wg)
	}
	if p := srv.Rows(routerostest.MenuWireGuardPeers)[0]; p["interface"] != "wg-mgmt" {
		t.Errorf("peer interface after rename: got %q, want wg-mgmt", p["interface"])
	}
	if a := srv.Rows(routerostest.MenuIPAddress)[0]; a["interface"] != "wg-mgmt" || a["actual-interface"] != "wg-mgmt" {
		t.Errorf("address after rename: got %v, want interface wg-mgmt", a)
	}

	// Removing the interface leaves the peer and address pointing at its id.
	run(t, c, "/interface/wireguard/remove", "=.id="+wgID)
	if p := srv.Rows(routerostest.MenuWireGuardPeers)[0]; p["interface"] != wgID {
		t.Errorf("peer of a removed interface: got interface %q, want %s", p["interface"], wgID)
	}
	addr = printOne(t, c, "/ip/address/print", "?.id="+addrID)
	if addr["interface"] != wgID || addr["invalid"] != "true" {
		t.Errorf("address of a removed interface: got %v, want interface %s invalid=true", addr, wgID)
	}
	run(t, c, "/interface/wireguard/peers/remove", "=.id="+peerID)
	run(t, c, "/ip/address/remove", "=.id="+addrID)
	wantTrap(t, c, "no such item", "/ip/address/remove", "=.id="+addrID)
	if n := len(srv.Rows(routerostest.MenuWireGuardPeers)); n != 0 {
		t.Errorf("peers left: %d, want 0", n)
	}
	if srv.SetPeerStatus(peerID, routerostest.PeerStatus{}) {
		t.Error("SetPeerStatus on a removed peer: got true, want false")
	}
}

// TestClientWireGuardVersions makes the same calls against a 7.12-, a
// 7.15- and a 7.20-era router: peer name= and the responder flag come and
// go with the version, as on real routers.
func TestClientWireGuardVersions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		version     string
		name        bool   // peers take name=
		responder   string // the responder field, "" for none
		noResponder string // the other spelling, refused
	}{
		{"7.12.2", false, "", "responder"},
		{"7.15.3", true, "is-responder", "responder"},
		{"7.16.1", true, "is-responder", "responder"}, // no dump of its own: 7.15.3's tree
		{"7.20.8", true, "responder", "is-responder"},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, routerostest.Config{Version: tt.version})
			c := mustClient(t, srv)
			run(t, c, "/interface/wireguard/add", "=name=wg-tpf")
			add := []string{"/interface/wireguard/peers/add", "=interface=wg-tpf", "=public-key=" + edgePublic,
				"=allowed-address=10.99.0.1/32", "=persistent-keepalive=25"}

			named := append(add, "=name=edge")
			if !tt.name {
				wantTrap(t, c, "unknown parameter name", named...)
				run(t, c, add...)
			} else {
				run(t, c, named...)
			}
			peer := srv.Rows(routerostest.MenuWireGuardPeers)[0]
			if name, ok := peer["name"]; ok != tt.name || (tt.name && name != "edge") {
				t.Errorf("peer name: got %q (present %v), want present %v", name, ok, tt.name)
			}

			id := peer[".id"]
			wantTrap(t, c, "unknown parameter "+tt.noResponder, "/interface/wireguard/peers/set", "=.id="+id, "="+tt.noResponder+"=yes")
			if tt.responder != "" {
				if peer[tt.responder] != "false" {
					t.Errorf("%s: got %q, want false", tt.responder, peer[tt.responder])
				}
				run(t, c, "/interface/wireguard/peers/set", "=.id="+id, "="+tt.responder+"=yes")
				if got := srv.Rows(routerostest.MenuWireGuardPeers)[0][tt.responder]; got != "true" {
					t.Errorf("%s after set: got %q, want true", tt.responder, got)
				}
			}

			// A second peer gets peerN where peers have names.
			run(t, c, "/interface/wireguard/peers/add", "=interface=wg-tpf", "=public-key="+fixedPublic, "=allowed-address=10.99.0.9/32")
			second := srv.Rows(routerostest.MenuWireGuardPeers)[1]
			if name, ok := second["name"]; ok != tt.name || (tt.name && name != "peer1") {
				t.Errorf("unnamed peer: got name %q (present %v), want peer1 where names exist", name, ok)
			}
		})
	}
}

// TestClientNoWireGuardOnV6 checks that RouterOS 6 has no WireGuard but
// does have /ip/address.
func TestClientNoWireGuardOnV6(t *testing.T) {
	t.Parallel()
	c := mustClient(t, startServer(t, routerostest.Config{Version: "6.49.10"}))
	wantTrap(t, c, "no such command prefix", "/interface/wireguard/print")
	run(t, c, "/ip/address/add", "=address=192.168.88.1/24", "=interface=bridge")
}

// TestClientSchemaRefusals checks what the version's command tree refuses
// before the emulator looks at a command, and that 6.x has no tree.
func TestClientSchemaRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		version string
		words   []string
		want    string // the trap; "" for success
	}{
		// /system/resource/print takes no count-only in any dumped 7.x.
		{"7.18.2", []string{"/system/resource/print", "=count-only="}, "unknown parameter count-only"},
		{"6.49.10", []string{"/system/resource/print", "=count-only="}, ""},
		// The emulator has no /container, but the tree still refuses what
		// the version lacks: envs take list= from 7.20 and name= before.
		{"7.20.8", []string{"/container/envs/add", "=name=tpf", "=key=A", "=value=1"}, "unknown parameter name"},
		{"7.19.6", []string{"/container/envs/add", "=list=tpf", "=key=A", "=value=1"}, "unknown parameter list"},
		{"7.20.8", []string{"/interface/wireguard/frob"}, "no such command prefix"},
		{"7.20.8", []string{"/interface/wireguard/print", "=.proplist=name", "?name=x"}, ""},
		{"7.20.8", []string{"/ip/firewall/nat/getall", "=count-only="}, ""},
	}
	for _, tt := range tests {
		c := mustClient(t, startServer(t, routerostest.Config{Version: tt.version}))
		if tt.want == "" {
			run(t, c, tt.words...)
			continue
		}
		if got := trapMessage(t, c, tt.words...); got != tt.want {
			t.Errorf("%s %v: got trap %q, want %q", tt.version, tt.words, got, tt.want)
		}
	}
}

// TestClientRowHooks edits the new menus behind the client's back.
func TestClientRowHooks(t *testing.T) {
	t.Parallel()
	srv := startServer(t, routerostest.Config{})
	c := mustClient(t, srv)
	wg := srv.AddRow(routerostest.MenuWireGuard, map[string]string{"name": "wg-admin", "comment": "admin's"})
	row := srv.Rows(routerostest.MenuWireGuard)[0]
	if row[".id"] != wg || row["public-key"] != publicKeyOf(t, row["private-key"]) || row["mtu"] != "1420" {
		t.Errorf("AddRow interface: got %v, want a key pair and defaults", row)
	}
	peer := srv.AddRow(routerostest.MenuWireGuardPeers, map[string]string{"interface": "wg-admin", "public-key": edgePublic, "dynamic": "true"})
	addr := srv.AddRow(routerostest.MenuIPAddress, map[string]string{"address": "10.0.0.1/8", "interface": "wg-admin"})
	if a := srv.Rows(routerostest.MenuIPAddress)[0]; a["network"] != "10.0.0.0" || a["invalid"] != "false" {
		t.Errorf("AddRow address: got %v, want network 10.0.0.0, valid", a)
	}

	if !srv.SetRow(routerostest.MenuWireGuard, "wg-admin", map[string]string{"name": "wg-x", "comment": ""}) {
		t.Fatal("SetRow by name: not found")
	}
	r := run(t, c, "/interface/wireguard/print", "=.proplist=name,comment")
	if len(r.Re) != 1 || r.Re[0].Map["name"] != "wg-x" || r.Re[0].Map["comment"] != "" {
		t.Errorf("after SetRow: got %v, want name wg-x and no comment", r.Re)
	}
	p := printOne(t, c, "/interface/wireguard/peers/print", "?.id="+peer)
	if p["interface"] != "wg-x" || p["dynamic"] != "true" {
		t.Errorf("peer after the rename: got %v, want interface wg-x dynamic=true", p)
	}
	if !srv.SetRow(routerostest.MenuIPAddress, addr, map[string]string{"address": "10.1.0.1/16"}) {
		t.Fatal("SetRow address: not found")
	}
	if a := srv.Rows(routerostest.MenuIPAddress)[0]; a["network"] != "10.1.0.0" || a["interface"] != "wg-x" {
		t.Errorf("after SetRow address: got %v, want network 10.1.0.0 on wg-x", a)
	}
	if !srv.RemoveRow(routerostest.MenuWireGuard, wg) || srv.RemoveRow(routerostest.MenuWireGuard, wg) {
		t.Error("RemoveRow: want true, then false")
	}
	if a := srv.Rows(routerostest.MenuIPAddress)[0]; a["invalid"] != "true" {
		t.Errorf("address of a removed interface: got %v, want invalid", a)
	}
	if !srv.RemoveRow(routerostest.MenuWireGuardPeers, peer) || len(srv.Rows(routerostest.MenuWireGuardPeers)) != 0 {
		t.Error("RemoveRow peer: not removed")
	}
	if got := srv.Writes(); got != 0 {
		t.Errorf("Writes: got %d, want 0 (hooks do not count)", got)
	}
}
