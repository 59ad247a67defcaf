package routerostest_test

import (
	"testing"
	"time"

	"github.com/tpf-dev/tpf/agent/routerostest"
)

// wgChange is one OnWireGuardChange call.
type wgChange struct{ interfaces, peers, addresses []map[string]string }

// TestOnWireGuardChange checks that every change to the WireGuard menus and
// /ip/address, through the API or the hooks, reaches OnWireGuardChange once
// and in order, with the tables as stored (the private key included, the
// peers' status not), and that prints, refused commands and other menus do
// not.
func TestOnWireGuardChange(t *testing.T) {
	t.Parallel()
	changes := make(chan wgChange, 64)
	var srv *routerostest.Server
	srv = startServer(t, routerostest.Config{
		OnWireGuardChange: func(interfaces, peers, addresses []map[string]string) {
			// The hook may call the server: here, as a device driver
			// would, it reports a handshake for every peer it sees.
			for _, p := range peers {
				srv.SetPeerStatus(p[".id"], routerostest.PeerStatus{LastHandshake: time.Now(), Rx: 1, Tx: 2})
			}
			changes <- wgChange{interfaces, peers, addresses}
		},
	})
	c := mustClient(t, srv)
	next := func(what string) wgChange {
		t.Helper()
		select {
		case ch := <-changes:
			return ch
		case <-time.After(testTimeout):
			t.Fatalf("no OnWireGuardChange call after %s", what)
			return wgChange{}
		}
	}
	// none checks that what was done since the last call caused none: calls
	// come in order, so the next one must be that of a marker added now.
	none := func(what string) {
		t.Helper()
		marker := srv.AddRow(routerostest.MenuIPAddress, map[string]string{"address": "192.0.2.1/24", "interface": "ether1"})
		for {
			ch := next("a marker")
			if n := len(ch.addresses); n > 0 && ch.addresses[n-1][".id"] == marker {
				break
			}
			t.Errorf("%s caused a call: %+v", what, ch)
		}
		srv.RemoveRow(routerostest.MenuIPAddress, marker)
		next("removing a marker")
	}

	id := run(t, c, "/interface/wireguard/add", "=name=tpf", "=comment=tpf:tunnel").Done.Map["ret"]
	ch := next("the interface's add")
	if len(ch.interfaces) != 1 || ch.interfaces[0][".id"] != id || ch.interfaces[0]["name"] != "tpf" ||
		ch.interfaces[0]["private-key"] == "" || ch.interfaces[0]["public-key"] != publicKeyOf(t, ch.interfaces[0]["private-key"]) {
		t.Errorf("after the interface's add: got interfaces %v, want tpf with its key pair", ch.interfaces)
	}

	run(t, c, "/interface/wireguard/peers/add", "=interface=tpf", "=public-key="+edgePublic, "=endpoint-address=192.0.2.9",
		"=endpoint-port=51820", "=allowed-address=100.64.0.1/32", "=persistent-keepalive=25", "=comment=tpf:tunnel")
	ch = next("the peer's add")
	if len(ch.peers) != 1 || ch.peers[0]["public-key"] != edgePublic || ch.peers[0]["endpoint-address"] != "192.0.2.9" ||
		ch.peers[0]["persistent-keepalive"] != "25s" || ch.peers[0]["allowed-address"] != "100.64.0.1/32" {
		t.Errorf("after the peer's add: got peers %v", ch.peers)
	}
	peerID := ch.peers[0][".id"]

	run(t, c, "/ip/address/add", "=address=100.64.0.2/32", "=network=100.64.0.1", "=interface=tpf", "=comment=tpf:tunnel")
	ch = next("the address's add")
	if len(ch.addresses) != 1 || ch.addresses[0]["address"] != "100.64.0.2/32" || ch.addresses[0]["network"] != "100.64.0.1" {
		t.Errorf("after the address's add: got addresses %v", ch.addresses)
	}
	// The status the hook set shows in print, but never in the hook's
	// tables: they hold what was configured.
	if p := srv.Rows(routerostest.MenuWireGuardPeers)[0]; p["rx"] != "1" || p["last-handshake"] == "" {
		t.Errorf("peer as printed: got %v, want the status the hook set", p)
	}
	for _, p := range ch.peers {
		for _, k := range []string{"rx", "tx", "last-handshake", "current-endpoint-address"} {
			if _, ok := p[k]; ok {
				t.Errorf("the hook's peer has the status field %s: %v", k, p)
			}
		}
	}

	run(t, c, "/interface/wireguard/peers/set", "=.id="+peerID, "=endpoint-port=51821")
	if ch = next("the peer's set"); ch.peers[0]["endpoint-port"] != "51821" {
		t.Errorf("after the peer's set: got %v", ch.peers)
	}

	run(t, c, "/interface/wireguard/peers/print")
	run(t, c, "/ip/address/print")
	none("prints")
	trapMessage(t, c, "/interface/wireguard/add", "=name=tpf") // the name is taken
	trapMessage(t, c, "/ip/address/add", "=address=bad", "=interface=tpf")
	none("refused commands")
	run(t, c, "/ip/firewall/nat/add", "=chain=dstnat", "=action=accept")
	none("a NAT rule")

	// The hooks count too.
	srv.SetRow(routerostest.MenuWireGuard, "tpf", map[string]string{"listen-port": "13232"})
	if ch = next("SetRow"); ch.interfaces[0]["listen-port"] != "13232" {
		t.Errorf("after SetRow: got %v", ch.interfaces)
	}
	// Removing the interface leaves its peer and address pointing at its
	// id, and the address invalid.
	run(t, c, "/interface/wireguard/remove", "=.id="+id)
	ch = next("the interface's remove")
	if len(ch.interfaces) != 0 || len(ch.peers) != 1 || ch.peers[0]["interface"] != id ||
		ch.addresses[0]["interface"] != id || ch.addresses[0]["invalid"] != "true" {
		t.Errorf("after the interface's remove: got %+v", ch)
	}
	run(t, c, "/interface/wireguard/peers/remove", "=.id="+peerID)
	if ch = next("the peer's remove"); len(ch.peers) != 0 {
		t.Errorf("after the peer's remove: got %v", ch.peers)
	}
	srv.RemoveRow(routerostest.MenuIPAddress, ch.addresses[0][".id"])
	if ch = next("RemoveRow"); len(ch.addresses) != 0 {
		t.Errorf("after RemoveRow: got %v", ch.addresses)
	}
}

// TestOnWireGuardChangeAfterClose checks that the hook is not called, and
// nothing panics, when hooks change the tables after Close.
func TestOnWireGuardChangeAfterClose(t *testing.T) {
	t.Parallel()
	calls := make(chan struct{}, 8)
	srv := routerostest.New(routerostest.Config{OnWireGuardChange: func(_, _, _ []map[string]string) { calls <- struct{}{} }})
	srv.AddRow(routerostest.MenuWireGuard, map[string]string{"name": "tpf"})
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	srv.AddRow(routerostest.MenuWireGuard, map[string]string{"name": "tpf2"})
	if got := len(calls); got != 1 {
		t.Errorf("calls: got %d, want 1 (before Close only)", got)
	}
}
