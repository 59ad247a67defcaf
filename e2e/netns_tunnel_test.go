package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-routeros/routeros/v3"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/tpf-dev/tpf/controller/edge/tunnel"
	"github.com/tpf-dev/tpf/controller/fleet"
)

// tunnelTopology is TestNamespacesTunnel's: the edge host and the router
// meet only on an "internet" link (link 1) that carries UDP and nothing
// else, so the forwards' TCP can reach the router only through the
// WireGuard tunnel the agent and the edge build. The controller runs on a
// host of its own, which the edge's and the agent's websockets reach over
// links of their own, and which forwards nothing.
var tunnelTopology = topology{
	hosts: []string{"client", "edge", "router", "lan", "ctl"},
	links: []vethLink{
		{"client", "10.10.1.2/24", "edge", "10.10.1.1/24"},
		{"edge", "172.16.0.1/24", "router", "172.16.0.2/24"},
		{"router", "192.168.88.1/24", "lan", "192.168.88.43/24"},
		{"ctl", "10.20.0.1/24", "edge", "10.20.0.2/24"},
		{"ctl", "10.30.0.1/24", "router", "10.30.0.2/24"},
	},
}

// The managed region's addresses in tunnelTopology.
const (
	internetLink = 1
	edgeInternet = "172.16.0.1"
	// routerAPI is where the emulated router's API listens in the router's
	// namespace: on every address, so that the internet link's filter has
	// a TCP port to keep closed.
	routerAPI      = "0.0.0.0:8728"
	tunnelEdge     = "100.64.0.1"
	tunnelEndpoint = edgeInternet + ":51820"
)

// tunnelLab is a managed region across namespaces (tunnelTopology): the
// controller, a standalone edge that holds the tunnel's edge end
// (userspace WireGuard), the router host (tpf-router-host: the emulated
// RouterOS API, its NAT as nftables and its WireGuard as real devices) and
// a LAN device running OpenSSH. Routers and their agents are added by the
// test.
type tunnelLab struct {
	tb  testing.TB
	n   *network
	bin func(string) string
	db  labDB
	api *apiClient
	key string // the LAN device's ssh key
}

// newTunnelLab starts a tunnelLab; serveEnv adds controller settings.
func newTunnelLab(tb testing.TB, serveEnv ...string) *tunnelLab {
	needNamespaces(tb, true)
	n := newNetwork(tb, tunnelTopology)
	n.onlyUDP(tb, "edge", internetLink)
	l := &tunnelLab{tb: tb, n: n, bin: buildBinaries(tb)}
	l.key = n.startLAN(tb)

	// The region is managed: its prefix (100.64.0.0/16 in a fresh
	// database) and edge address are the store's choice; routers dial the
	// edge's internet address.
	l.db = newLabDB(tb, fleet.Region{ID: "lab", EntryPoint: "10.10.1.1", Ports: fleet.PortRange{Min: 40000, Max: 40999},
		Tunnel: fleet.RegionTunnel{Managed: true, Endpoint: tunnelEndpoint}}, time.Now().UTC().Truncate(time.Second))

	// The router host also serves the router's SSH service (the
	// emulator's stand-in, which logs its /user users in) for transient
	// accesses.
	n.start(tb, "router", "routeros", nil, l.bin("tpf-router-host"), "-listen", routerAPI, "-user", "tpf", "-password", "pw", "-ssh", "0.0.0.0")
	n.start(tb, "ctl", "controller", append([]string{"DATABASE_URL=" + l.db.dbURL, "TPF_LISTEN=0.0.0.0:8080",
		"TPF_ALLOW_SOURCES=10.10.1.0/24", "TPF_RATE_LIMIT_PER_MINUTE=0"}, serveEnv...), l.bin("tpf-controller"), "serve")
	n.start(tb, "edge", "edge", []string{"TPF_CONTROLLER_URL=http://10.20.0.1:8080", "TPF_EDGE_TOKEN=" + l.db.edgeToken,
		"TPF_EDGE_BIND=10.10.1.1", "TPF_EDGE_KEY_FILE=" + filepath.Join(tb.TempDir(), "edge", tunnel.KeyFileName)},
		l.bin("tpf-controller"), "edge")
	l.api = &apiClient{t: tb, token: l.db.apiToken, base: "http://127.0.0.1:8080", hc: n.httpClient("ctl")}
	l.api.waitUp()
	// The edge dials the controller with backoff; once connected it opens
	// its end of the tunnel and reports its key. Routers come after.
	var regions []struct {
		Edge   *struct{ Connected bool }
		Tunnel struct {
			EdgePublicKey *string `json:"edge_public_key"`
		}
	}
	waitUntil(tb, "the edge to hold its end of the tunnel", time.Minute, 50*time.Millisecond, func() bool {
		code, b := l.api.do("GET", "/api/regions", "")
		return code == http.StatusOK && json.Unmarshal(b, &regions) == nil && len(regions) == 1 &&
			regions[0].Edge != nil && regions[0].Edge.Connected && regions[0].Tunnel.EdgePublicKey != nil
	}, nil)
	return l
}

// onlyUDP makes link i carry UDP and nothing else, with nftables in host.
func (n *network) onlyUDP(tb testing.TB, host string, i int) {
	tb.Helper()
	veth := n.veth(i, host)
	cmd := exec.Command("ip", "netns", "exec", n.name(host), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(fmt.Sprintf(`table inet tpf_internet {
	chain input { type filter hook input priority 0; policy accept; iifname %[1]q meta l4proto != udp drop; }
	chain output { type filter hook output priority 0; policy accept; oifname %[1]q meta l4proto != udp drop; }
	chain forward { type filter hook forward priority 0; policy accept; iifname %[1]q meta l4proto != udp drop; oifname %[1]q meta l4proto != udp drop; }
}
`, veth))
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("nft: %v: %s", err, out)
	}
}

// labRouter is a router of the lab as POST /api/routers answered.
type labRouter struct {
	ID            string `json:"id"`
	AgentToken    string `json:"agent_token"`
	TunnelAddress string `json:"tunnel_address"`
}

// addRouter creates a router with only its name and region, as a user of
// the API would.
func (l *tunnelLab) addRouter(name string) labRouter {
	l.tb.Helper()
	var r labRouter
	b, _ := json.Marshal(l.api.post("/api/routers", fmt.Sprintf(`{"name":%q,"region":"lab"}`, name)))
	json.Unmarshal(b, &r)
	if r.ID == "" || r.AgentToken == "" {
		l.tb.Fatalf("POST /api/routers: got %s, want an id and an agent token", b)
	}
	return r
}

// startAgent runs an agent for r in the router's namespace, as proc.
func (l *tunnelLab) startAgent(proc string, r labRouter) {
	l.tb.Helper()
	l.n.start(l.tb, "router", proc, []string{"TPF_CONTROLLER_URL=http://10.30.0.1:8080", "TPF_AGENT_TOKEN=" + r.AgentToken,
		"TPF_ROUTEROS_ADDRESS=127.0.0.1:8728", "TPF_ROUTEROS_USER=tpf", "TPF_ROUTEROS_PASSWORD=pw"}, l.bin("tpf-agent"))
}

// routerTunnel is a router's tunnel as GET /api/routers/{id} shows it.
type routerTunnel struct {
	State           string  `json:"state"`
	LastHandshakeAt *string `json:"last_handshake_at"`
	Endpoint        string  `json:"endpoint"`
	RxBytes         int64   `json:"rx_bytes"`
	TxBytes         int64   `json:"tx_bytes"`
	PublicKey       string  `json:"public_key"`
	Error           string  `json:"error"`
}

// tunnel returns the router's tunnel as the API shows it (zero when the
// API does not answer, or shows none).
func (l *tunnelLab) tunnel(id string) routerTunnel {
	code, b := l.api.do("GET", "/api/routers/"+id, "")
	var r struct{ Tunnel *routerTunnel }
	if code != http.StatusOK || json.Unmarshal(b, &r) != nil || r.Tunnel == nil {
		return routerTunnel{}
	}
	return *r.Tunnel
}

// edgeDevice reads the edge's WireGuard device through its UAPI socket
// (in /var/run/wireguard, which every namespace shares).
func edgeDevice() (*wgtypes.Device, error) {
	c, err := wgctrl.New()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Device(tunnel.DefaultDevice)
}

// edgePeers returns the edge device's peers, nil while it has none or no
// device.
func edgePeers() []wgtypes.Peer {
	d, err := edgeDevice()
	if err != nil {
		return nil
	}
	return d.Peers
}

// routerRows returns the emulated router's rows of a WireGuard menu that
// carry the agent's comment, read through the RouterOS API from inside the
// router's namespace.
func (l *tunnelLab) routerRows(menu string) ([]map[string]string, error) {
	return l.routerRun(menu+"/print", "?comment=tpf:tunnel")
}

// routerRun runs one command on the emulated router through the RouterOS
// API, from inside the router's namespace, and returns the rows it answered.
func (l *tunnelLab) routerRun(words ...string) ([]map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := dialIn(ctx, l.n.name("router"), "tcp", "127.0.0.1:8728")
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	c, err := routeros.NewClient(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	defer c.Close()
	if err := c.Login("tpf", "pw"); err != nil {
		return nil, err
	}
	r, err := c.Run(words...)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]string, len(r.Re))
	for i, s := range r.Re {
		out[i] = s.Map
	}
	return out, nil
}

// ipOutput runs ip in host's namespace and returns its output.
func (n *network) ipOutput(host string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"-n", n.name(host)}, args...)...).CombinedOutput()
	return string(out), err
}

// TestNamespacesTunnel runs a managed region end to end across network
// namespaces (tunnelTopology): the router is created with only its name
// and region, nobody wires a route, and the edge host and the router share
// only a link that drops everything but UDP. The agent builds the router's
// end of the WireGuard tunnel on the emulated router, tpf-router-host makes
// it a real device, the edge adds the router as a peer, they shake hands,
// and a forward carries ssh through the tunnel until it is revoked.
// Deleting the router takes its tunnel down at both ends. It needs root and
// /dev/net/tun; CI runs it, and without them it fails there rather than
// skip.
func TestNamespacesTunnel(t *testing.T) {
	l := newTunnelLab(t)
	n := l.n

	t.Run("the internet link carries no TCP", func(t *testing.T) {
		// The router's API listens on every address, the internet
		// link's too; across that link TCP gets nowhere.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := dialIn(ctx, n.name("edge"), "tcp", "172.16.0.2:8728")
		if err == nil {
			c.Close()
			t.Fatal("the edge host reached the router's API over TCP across the internet link")
		}
		if !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
			t.Fatalf("TCP across the internet link: got %v, want a timeout (dropped)", err)
		}
	})

	r := l.addRouter("r1")
	if r.TunnelAddress != "100.64.0.2" {
		t.Fatalf("the router's tunnel address: got %q, want 100.64.0.2 (the lowest free one of 100.64.0.0/16)", r.TunnelAddress)
	}
	l.startAgent("agent", r)
	started := time.Now()

	var tun routerTunnel
	waitUntil(t, "the router's tunnel to be up", 90*time.Second, 100*time.Millisecond, func() bool {
		tun = l.tunnel(r.ID)
		return tun.State == "up"
	}, func() string { return fmt.Sprintf("tunnel %+v, edge peers %v", l.tunnel(r.ID), edgePeers()) })

	// A forward created right after becomes active: its rule, its listener
	// and the tunnel's handshake are in place.
	path := "/api/routers/" + r.ID + "/transient-forwarding"
	created := l.api.post(path, `{"expire_after_minutes":60,"dst_port":22,"dst_address":"192.168.88.43","allow_from":"10.10.1.2"}`)
	fid, port := created["id"].(string), int(created["port"].(float64))
	up := time.Since(started)
	l.api.waitStatusWithin(path+"/"+fid, "active", 60*time.Second)
	t.Logf("the tunnel was up %v after the agent started; the forward was active %v after that", up.Round(time.Millisecond), (time.Since(started) - up).Round(time.Millisecond))

	t.Run("the tunnel stands at both ends", func(t *testing.T) {
		ifaces, err := l.routerRows("/interface/wireguard")
		if err != nil || len(ifaces) != 1 {
			t.Fatalf("the router's tpf interfaces: got %v, %v; want one", ifaces, err)
		}
		routerKey := ifaces[0]["public-key"]
		// What the agent reported is what the device did.
		if tun.PublicKey != routerKey || tun.Endpoint != tunnelEndpoint || tun.RxBytes == 0 || tun.TxBytes == 0 || tun.Error != "" || tun.LastHandshakeAt == nil {
			t.Errorf("the API's tunnel: got %+v, want key %s, endpoint %s, a handshake, bytes both ways, no error", tun, routerKey, tunnelEndpoint)
		}
		peers := edgePeers()
		if len(peers) != 1 {
			t.Fatalf("the edge's peers: got %v, want the router only", peers)
		}
		p := peers[0]
		if p.PublicKey.String() != routerKey || len(p.AllowedIPs) != 1 || p.AllowedIPs[0].String() != "100.64.0.2/32" ||
			p.LastHandshakeTime.IsZero() || p.Endpoint == nil || !p.Endpoint.IP.Equal(net.ParseIP("172.16.0.2")) {
			t.Errorf("the edge's peer: got key %s, allowed %v, handshake %v, endpoint %v; want the router's key, 100.64.0.2/32, a handshake, 172.16.0.2",
				p.PublicKey, p.AllowedIPs, p.LastHandshakeTime, p.Endpoint)
		}
		// Each end routes the other's tunnel address into its device;
		// nobody added a route.
		for _, c := range []struct{ host, dst, dev string }{{"edge", r.TunnelAddress, tunnel.DefaultDevice}, {"router", tunnelEdge, "tpf"}} {
			out, err := n.ipOutput(c.host, "route", "get", c.dst)
			if err != nil || !strings.Contains(out, "dev "+c.dev+" ") {
				t.Errorf("%s: ip route get %s: got %q, %v; want dev %s", c.host, c.dst, out, err, c.dev)
			}
		}
		if out, err := n.ipOutput("router", "-4", "addr", "show", "dev", "tpf"); err != nil || !strings.Contains(out, "inet 100.64.0.2 peer 100.64.0.1/32") {
			t.Errorf("the router's tpf device: got %q, %v; want 100.64.0.2 peer 100.64.0.1/32", out, err)
		}
	})

	ssh := func(extra ...string) *exec.Cmd { return n.ssh(l.key, port, extra...) }
	t.Run("ssh through the forward and the tunnel", func(t *testing.T) {
		out, err := ssh("-o", "ConnectTimeout=10", "root@10.10.1.1", "echo", "hello through the tunnel").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "hello through the tunnel" {
			t.Fatalf("ssh through the forward: %v\n%s", err, out)
		}
	})
	t.Run("revoke cuts a live session", func(t *testing.T) {
		s := startSession(t, ssh("-o", "ConnectTimeout=10", "root@10.10.1.1", "echo ready; sleep 60"))
		l.api.delete(path + "/" + fid)
		s.endsWithin(t, 1500*time.Millisecond)
	})
	t.Run("deleting the router takes its tunnel down", func(t *testing.T) {
		l.api.delete("/api/routers/" + r.ID)
		waitUntil(t, "the router's tpf:tunnel objects to go", 30*time.Second, 100*time.Millisecond, func() bool {
			for _, menu := range []string{"/interface/wireguard", "/interface/wireguard/peers", "/ip/address"} {
				if rows, err := l.routerRows(menu); err != nil || len(rows) > 0 {
					return false
				}
			}
			return true
		}, nil)
		waitUntil(t, "the router's WireGuard device to go", 10*time.Second, 50*time.Millisecond, func() bool {
			_, err := n.ipOutput("router", "link", "show", "dev", "tpf")
			return err != nil
		}, nil)
		waitUntil(t, "the edge to drop the router's peer", 30*time.Second, 50*time.Millisecond, func() bool {
			d, err := edgeDevice()
			return err == nil && len(d.Peers) == 0
		}, func() string { return fmt.Sprintf("peers %v", edgePeers()) })
	})
}
