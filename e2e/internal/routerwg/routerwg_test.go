package routerwg

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/agent/routerostest"
)

// The devices themselves are exercised by TestNamespacesTunnel (root); these
// tests cover how rows are read and what is written to a device.

const (
	keyA = "y4bDGpF+nKSzgoPHCf2BolGLmObdxqktfbeQstM74GQ="
	keyB = "sgDnwBNdPaC5/dXC8J/EISRsrJribEklhgHfBpGSmWc="
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{
		"": 0, "0s": 0, "25": 25 * time.Second, "25s": 25 * time.Second, "1m30s": 90 * time.Second,
		"1d2h": 26 * time.Hour, "1w": 7 * 24 * time.Hour,
	} {
		if got, err := parseDuration(in); err != nil || got != want {
			t.Errorf("parseDuration(%q): got %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"s", "25x", "1m3", "-1s"} {
		if got, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q): got %v, want an error", in, got)
		}
	}
}

func TestParsePeer(t *testing.T) {
	t.Parallel()
	key, p, err := parsePeer(map[string]string{".id": "*3", "public-key": keyA, "endpoint-address": "172.16.0.1", "endpoint-port": "51820",
		"allowed-address": "100.64.0.1/32,10.0.0.0/8", "persistent-keepalive": "25s"})
	if err != nil {
		t.Fatal(err)
	}
	// An IPv4 endpoint stays IPv4: wireguard-go sends a mapped one from
	// its IPv6 socket, which has no route.
	want := peer{id: "*3", endpoint: "172.16.0.1:51820", keepalive: 25,
		allowed: []netip.Prefix{netip.MustParsePrefix("100.64.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}}
	if key != keyA || !samePeer(p, want) || p.id != want.id {
		t.Errorf("got %s %+v, want %s %+v", key, p, keyA, want)
	}
	// No port, or port 0: no endpoint (the peer waits to be dialled).
	if _, p, err := parsePeer(map[string]string{"public-key": keyA, "endpoint-address": "172.16.0.1", "endpoint-port": "0"}); err != nil || p.endpoint != "" {
		t.Errorf("endpoint port 0: got %q, %v; want none", p.endpoint, err)
	}
	for _, bad := range []map[string]string{
		{"public-key": "short"},
		{"public-key": keyA, "allowed-address": "100.64.0.300/32"},
		{"public-key": keyA, "persistent-keepalive": "soon"},
	} {
		if _, _, err := parsePeer(bad); err == nil {
			t.Errorf("parsePeer(%v): got no error", bad)
		}
	}
}

func TestAddressArgs(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		row  map[string]string
		want string
	}{
		{map[string]string{"address": "100.64.0.2/32", "network": "100.64.0.1"}, "100.64.0.2/32 peer 100.64.0.1/32"},
		{map[string]string{"address": "100.64.0.2/32", "network": "100.64.0.2"}, "100.64.0.2/32"},
		{map[string]string{"address": "10.99.0.2/24", "network": "10.99.0.0"}, "10.99.0.2/24"},
	} {
		if got, err := addressArgs(c.row); err != nil || got != c.want {
			t.Errorf("addressArgs(%v): got %q, %v; want %q", c.row, got, err, c.want)
		}
	}
}

func TestPeerChanges(t *testing.T) {
	t.Parallel()
	edge := peer{endpoint: "172.16.0.1:51820", keepalive: 25, allowed: []netip.Prefix{netip.MustParsePrefix("100.64.0.1/32")}}
	if got := peerChanges(map[string]peer{keyA: edge}, map[string]peer{keyA: edge}); got != "" {
		t.Errorf("unchanged peers: got %q, want nothing written", got)
	}
	got := peerChanges(map[string]peer{keyB: edge}, map[string]peer{keyA: edge})
	want := "public_key=" + keyHex(keyB) + "\nremove=true\n" +
		"public_key=" + keyHex(keyA) + "\nendpoint=172.16.0.1:51820\npersistent_keepalive_interval=25\nreplace_allowed_ips=true\nallowed_ip=100.64.0.1/32\n"
	if got != want {
		t.Errorf("a peer replaced:\ngot  %q\nwant %q", got, want)
	}
	// An endpoint that went can only be cleared by making the peer anew.
	noEndpoint := edge
	noEndpoint.endpoint = ""
	got = peerChanges(map[string]peer{keyA: edge}, map[string]peer{keyA: noEndpoint})
	if !strings.HasPrefix(got, "public_key="+keyHex(keyA)+"\nremove=true\npublic_key="+keyHex(keyA)+"\npersistent_keepalive_interval=25\n") {
		t.Errorf("endpoint removed: got %q", got)
	}
}

func TestParseStatus(t *testing.T) {
	t.Parallel()
	text := "private_key=00\nlisten_port=13231\n" +
		"public_key=" + keyHex(keyA) + "\nendpoint=172.16.0.1:51820\nlast_handshake_time_sec=1700000000\nlast_handshake_time_nsec=5\nrx_bytes=92\ntx_bytes=180\n" +
		"public_key=" + keyHex(keyB) + "\nendpoint=172.16.0.9:51820\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=0\nrx_bytes=0\ntx_bytes=148\n"
	got := parseStatus(text)
	want := map[string]routerostest.PeerStatus{
		keyA: {LastHandshake: time.Unix(1700000000, 5), Rx: 92, Tx: 180, CurrentEndpoint: netip.MustParseAddrPort("172.16.0.1:51820")},
		keyB: {Tx: 148}, // no handshake: the endpoint is only the configured one
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, w := range want {
		if g := got[k]; !g.LastHandshake.Equal(w.LastHandshake) || g.Rx != w.Rx || g.Tx != w.Tx || g.CurrentEndpoint != w.CurrentEndpoint {
			t.Errorf("peer %s: got %+v, want %+v", k, g, w)
		}
	}
}
