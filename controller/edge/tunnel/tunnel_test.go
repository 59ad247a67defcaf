package tunnel_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/tpf-dev/tpf/controller/edge/tunnel"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

const listenPort = 51820

var (
	edgeAddr = netip.MustParsePrefix("100.64.0.1/16")
	// The veth link between the edge's and the router's namespaces.
	edgeVeth   = netip.MustParseAddr("192.0.2.1")
	routerVeth = netip.MustParseAddr("192.0.2.2")
)

func newTunnel(t testing.TB, cfg tunnel.Config) *tunnel.Tunnel {
	t.Helper()
	if cfg.KeyFile == "" {
		cfg.KeyFile = filepath.Join(t.TempDir(), tunnel.KeyFileName)
	}
	if cfg.Device == "" {
		cfg.Device = deviceName("e")
	}
	tn, err := tunnel.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { tn.Close() })
	return tn
}

func generateKey(t testing.TB) wgtypes.Key {
	t.Helper()
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func apply(t testing.TB, tn *tunnel.Tunnel, want *syncproto.EdgeTunnel) {
	t.Helper()
	if err := tn.Apply(want); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// checkLink checks the device is up with MTU 1420 and exactly addr (besides
// link-local ones).
func checkLink(t testing.TB, name string, addr netip.Prefix) {
	t.Helper()
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		t.Fatalf("device %s: %v", name, err)
	}
	if ifi.Flags&net.FlagUp == 0 || ifi.MTU != 1420 {
		t.Errorf("device %s: flags %v, MTU %d; want up, 1420", name, ifi.Flags, ifi.MTU)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLinkLocalUnicast() {
			got = append(got, n.String())
		}
	}
	if want := []string{addr.String()}; !slices.Equal(got, want) {
		t.Errorf("device %s addresses %v, want %v", name, got, want)
	}
}

func linkGone(name string) func() bool {
	return func() bool { _, err := net.InterfaceByName(name); return err != nil }
}

func TestNewReusesKeyFile(t *testing.T) {
	needNamespace(t)
	path := filepath.Join(t.TempDir(), "state", tunnel.KeyFileName)
	first := newTunnel(t, tunnel.Config{KeyFile: path})
	second := newTunnel(t, tunnel.Config{KeyFile: path})
	if first.PublicKey() != second.PublicKey() {
		t.Fatalf("second New got public key %s, want the first's %s", second.PublicKey(), first.PublicKey())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := wgtypes.ParseKey(strings.TrimSpace(string(b)))
	if err != nil || priv.PublicKey().String() != first.PublicKey() {
		t.Fatalf("key file's key does not match the public key %s (%v)", first.PublicKey(), err)
	}
	if st := first.State(); st.PublicKey != first.PublicKey() || len(st.Peers) != 0 || st.Error != "" {
		t.Errorf("State without a device: %+v; want only the public key", st)
	}
}

// TestEndToEnd: the edge's device and a router's userspace device in
// another namespace handshake, and a plain kernel socket on the edge
// reaches a TCP server on the router's tunnel address through them.
func TestEndToEnd(t *testing.T) {
	needNamespace(t)
	routerNS := fmt.Sprintf("tpf-tunnel-router-%d", os.Getpid())
	vethE, vethR := deviceName("ve"), deviceName("vr")
	run(t, "ip", "netns", "add", routerNS)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", vethE).Run() // at once; the namespace goes in the background
		exec.Command("ip", "netns", "del", routerNS).Run()
	})
	run(t, "ip", "link", "add", vethE, "type", "veth", "peer", "name", vethR, "netns", routerNS)
	run(t, "ip", "addr", "add", edgeVeth.String()+"/24", "dev", vethE)
	run(t, "ip", "link", "set", vethE, "up")
	run(t, "ip", "-n", routerNS, "addr", "add", routerVeth.String()+"/24", "dev", vethR)
	run(t, "ip", "-n", routerNS, "link", "set", vethR, "up")
	run(t, "ip", "-n", routerNS, "link", "set", "lo", "up")

	name := deviceName("e")
	tn := newTunnel(t, tunnel.Config{Device: name})
	routerKey := generateKey(t)
	routerAddr := netip.MustParseAddr("100.64.0.2")
	want := &syncproto.EdgeTunnel{
		Address:    edgeAddr,
		ListenPort: listenPort,
		Peers:      []syncproto.EdgePeer{{PublicKey: routerKey.PublicKey().String(), Address: routerAddr}},
	}
	start := time.Now()
	apply(t, tn, want)
	t.Logf("first Apply (creates the device) took %v", time.Since(start))
	checkLink(t, name, edgeAddr)

	wg, err := wgctrl.New()
	if err != nil {
		t.Fatal(err)
	}
	defer wg.Close()
	dev, err := wg.Device(name)
	if err != nil {
		t.Fatalf("wgctrl cannot see device %s: %v", name, err)
	}
	t.Logf("device %s: %s", name, dev.Type)
	if dev.PublicKey.String() != tn.PublicKey() || dev.ListenPort != listenPort || len(dev.Peers) != 1 ||
		dev.Peers[0].Endpoint != nil || len(dev.Peers[0].AllowedIPs) != 1 ||
		dev.Peers[0].AllowedIPs[0].String() != "100.64.0.2/32" {
		t.Fatalf("device holds key %s port %d peers %+v; want key %s, port %d, one peer 100.64.0.2/32 with no endpoint",
			dev.PublicKey, dev.ListenPort, dev.Peers, tn.PublicKey(), listenPort)
	}

	// The same set again changes nothing.
	configures := tunnel.Configures(tn)
	apply(t, tn, want)
	if got := tunnel.Configures(tn); got != configures {
		t.Errorf("the same set reconfigured the device (%d configure calls, want %d)", got, configures)
	}

	const echoPort = 7000
	startHelper(t, "router", routerConfig{
		Device:        deviceName("r"),
		PrivateKey:    routerKey.String(),
		EdgePublicKey: tn.PublicKey(),
		EdgeEndpoint:  netip.AddrPortFrom(edgeVeth, listenPort).String(),
		Address:       routerAddr.String(),
		EdgeAddress:   edgeAddr.Addr().String(),
		EchoPort:      echoPort,
	}, "ip", "netns", "exec", routerNS)

	var st syncproto.TunnelState
	waitFor(t, "the router's handshake", 15*time.Second, func() bool {
		st = tn.State()
		return len(st.Peers) == 1 && !st.Peers[0].LastHandshake.IsZero()
	})

	target := netip.AddrPortFrom(routerAddr, echoPort).String()
	c, err := net.DialTimeout("tcp", target, 5*time.Second) // a plain kernel socket
	if err != nil {
		t.Fatalf("dial %s through the tunnel: %v", target, err)
	}
	defer c.Close()
	echo := func(msg string, d time.Duration) error {
		c.SetDeadline(time.Now().Add(d))
		if _, err := c.Write([]byte(msg)); err != nil {
			return err
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if string(buf) != msg {
			return fmt.Errorf("echo %q, want %q", buf, msg)
		}
		return nil
	}
	if err := echo("hello through the tunnel\n", 5*time.Second); err != nil {
		t.Fatalf("echo through the tunnel: %v", err)
	}

	st = tn.State()
	if len(st.Peers) != 1 {
		t.Fatalf("State peers %+v, want one", st.Peers)
	}
	p := st.Peers[0]
	if p.PublicKey != routerKey.PublicKey().String() || p.LastHandshake.IsZero() ||
		time.Since(p.LastHandshake) > time.Minute || p.RxBytes <= 0 || p.TxBytes <= 0 ||
		!strings.HasPrefix(p.Endpoint, routerVeth.String()+":") || st.Error != "" {
		t.Errorf("State %+v; want the router's handshake, its endpoint %s:*, bytes both ways, no error", st, routerVeth)
	}
	if b, err := json.Marshal(st); err == nil {
		t.Logf("state: %s", b)
	}

	// Without the peer, traffic stops: the open connection and new ones.
	apply(t, tn, &syncproto.EdgeTunnel{Address: edgeAddr, ListenPort: listenPort})
	if st := tn.State(); len(st.Peers) != 0 || st.Error != "" {
		t.Fatalf("State after removing the peer: %+v; want no peers", st)
	}
	if err := echo("still there?\n", 1500*time.Millisecond); err == nil {
		t.Errorf("the open connection still works after the peer's removal")
	}
	if c2, err := net.DialTimeout("tcp", target, 1500*time.Millisecond); err == nil {
		c2.Close()
		t.Errorf("a new connection to %s works after the peer's removal", target)
	}

	// nil removes the device.
	apply(t, tn, nil)
	waitFor(t, "the device's removal", 5*time.Second, linkGone(name))
	if _, err := os.Stat("/var/run/wireguard/" + name + ".sock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("UAPI socket still there after removal: %v", err)
	}
	if _, err := wg.Device(name); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("wgctrl still sees the device: %v", err)
	}
	if st := tn.State(); len(st.Peers) != 0 || st.Error != "" || st.PublicKey != tn.PublicKey() {
		t.Errorf("State without a device: %+v; want only the public key", st)
	}
	if err := tn.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestRepair: Apply puts back what was changed behind its back, and follows
// changes of the set.
func TestRepair(t *testing.T) {
	needNamespace(t)
	name := deviceName("e")
	tn := newTunnel(t, tunnel.Config{Device: name})
	a, b := generateKey(t).PublicKey(), generateKey(t).PublicKey()
	want := &syncproto.EdgeTunnel{
		Address:    edgeAddr,
		ListenPort: listenPort,
		Peers: []syncproto.EdgePeer{
			{PublicKey: a.String(), Address: netip.MustParseAddr("100.64.0.2")},
			{PublicKey: b.String(), Address: netip.MustParseAddr("100.64.0.3")},
		},
	}
	apply(t, tn, want)
	wg, err := wgctrl.New()
	if err != nil {
		t.Fatal(err)
	}
	defer wg.Close()
	checkDevice := func(port int, peers map[wgtypes.Key]string) {
		t.Helper()
		dev, err := wg.Device(name)
		if err != nil {
			t.Fatal(err)
		}
		got := map[wgtypes.Key]string{}
		for _, p := range dev.Peers {
			var ips []string
			for _, n := range p.AllowedIPs {
				ips = append(ips, n.String())
			}
			if p.PersistentKeepaliveInterval != 0 {
				ips = append(ips, "keepalive")
			}
			got[p.PublicKey] = strings.Join(ips, ",")
		}
		if dev.ListenPort != port || fmt.Sprint(got) != fmt.Sprint(peers) {
			t.Errorf("device: port %d peers %v; want port %d peers %v", dev.ListenPort, got, port, peers)
		}
	}
	both := map[wgtypes.Key]string{a: "100.64.0.2/32", b: "100.64.0.3/32"}
	checkDevice(listenPort, both)

	// Hand changes to the link.
	run(t, "ip", "link", "set", name, "down")
	run(t, "ip", "addr", "flush", "dev", name)
	run(t, "ip", "addr", "add", "10.9.9.9/24", "dev", name)
	apply(t, tn, want)
	checkLink(t, name, edgeAddr)

	// Hand changes to WireGuard.
	keepalive := 5 * time.Second
	err = wg.ConfigureDevice(name, wgtypes.Config{Peers: []wgtypes.PeerConfig{
		{PublicKey: a, Remove: true},
		{PublicKey: b, PersistentKeepaliveInterval: &keepalive},
		{PublicKey: generateKey(t).PublicKey()},
	}})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, tn, want)
	checkDevice(listenPort, both)

	// The device deleted by hand: made again, whole.
	run(t, "ip", "link", "del", name)
	apply(t, tn, want)
	checkLink(t, name, edgeAddr)
	checkDevice(listenPort, both)

	// A changed set: address, port, one peer gone, one bad peer left out.
	moved := netip.MustParsePrefix("100.65.0.1/16")
	err = tn.Apply(&syncproto.EdgeTunnel{
		Address:    moved,
		ListenPort: listenPort + 1,
		Peers: []syncproto.EdgePeer{
			{PublicKey: b.String(), Address: netip.MustParseAddr("100.65.0.3")},
			{PublicKey: "not-a-key", Address: netip.MustParseAddr("100.65.0.4")},
		},
	})
	if err == nil || !strings.Contains(err.Error(), "not-a-key") {
		t.Errorf("Apply with a bad peer: got %v, want an error naming it", err)
	}
	if st := tn.State(); !strings.Contains(st.Error, "not-a-key") {
		t.Errorf("State error %q, want it to name the bad peer", st.Error)
	}
	checkLink(t, name, moved)
	checkDevice(listenPort+1, map[wgtypes.Key]string{b: "100.65.0.3/32"})

	if err := tn.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitFor(t, "the device's removal", 5*time.Second, linkGone(name))
	if err := tn.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := tn.Apply(want); !errors.Is(err, tunnel.ErrClosed) {
		t.Errorf("Apply after Close: got %v, want ErrClosed", err)
	}
}

// TestApply1000PeersQuickly checks the budget the benchmark measures: a
// changed set of 1,000 peers applies well within a second.
func TestApply1000PeersQuickly(t *testing.T) {
	needNamespace(t)
	tn := newTunnel(t, tunnel.Config{})
	sets := [2]*syncproto.EdgeTunnel{peerSet(t, 1000), peerSet(t, 1000)}
	apply(t, tn, sets[0])
	limit := time.Second
	if raceEnabled {
		limit *= 10
	}
	start := time.Now()
	apply(t, tn, sets[1]) // every peer replaced: the worst change
	if d := time.Since(start); d > limit {
		t.Errorf("replacing 1,000 peers took %v, want well under %v", d, limit)
	}
	if n := len(tn.State().Peers); n != 1000 {
		t.Errorf("device holds %d peers, want 1000", n)
	}
}

// peerSet returns a tunnel with n routers with new keys.
func peerSet(t testing.TB, n int) *syncproto.EdgeTunnel {
	t.Helper()
	set := &syncproto.EdgeTunnel{Address: edgeAddr, ListenPort: listenPort}
	for i := range n {
		set.Peers = append(set.Peers, syncproto.EdgePeer{
			PublicKey: generateKey(t).PublicKey().String(),
			Address:   netip.AddrFrom4([4]byte{100, 64, byte((i + 2) >> 8), byte(i + 2)}),
		})
	}
	return set
}

// TestUnavailable: where no device can be made, New and Apply say so in
// one error, and that the region then works as manual.
func TestUnavailable(t *testing.T) {
	needNamespace(t)
	checkErr := func(err error, path string) {
		t.Helper()
		if !errors.Is(err, tunnel.ErrUnavailable) {
			t.Fatalf("got %v, want ErrUnavailable", err)
		}
		for _, s := range []string{"manual", "operator's own VPN", path} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not say %q", err, s)
			}
		}
	}
	missing := filepath.Join(t.TempDir(), "no-tun-here")
	cfg := tunnel.Config{KeyFile: filepath.Join(t.TempDir(), tunnel.KeyFileName), Device: deviceName("e"), TUNPath: missing}
	tunnel.UserspaceOnly(&cfg)
	_, err := tunnel.New(cfg)
	checkErr(err, missing)
	t.Logf("New: %v", err)

	tn, err := tunnel.NewUnprobed(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tn.Close()
	err = tn.Apply(&syncproto.EdgeTunnel{Address: edgeAddr, ListenPort: listenPort})
	checkErr(err, missing)
	if st := tn.State(); st.Error != err.Error() || st.PublicKey == "" {
		t.Errorf("State %+v, want the public key and the error", st)
	}
	if err := tn.Apply(nil); err != nil {
		t.Errorf("Apply(nil) without a device: %v", err)
	}
	if st := tn.State(); st.Error != "" {
		t.Errorf("State error %q after Apply(nil), want none", st.Error)
	}
}

// TestNoCapNetAdmin: a process without CAP_NET_ADMIN gets ErrUnavailable
// from New.
func TestNoCapNetAdmin(t *testing.T) {
	needNamespace(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("setpriv (util-linux) is missing")
		}
		t.Skip("setpriv (util-linux) is missing")
	}
	cfg, _ := json.Marshal(noCapConfig{KeyFile: filepath.Join(t.TempDir(), tunnel.KeyFileName), Device: deviceName("e")})
	cmd := exec.Command("setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin", os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envRole+"=nocap", envHelper+"="+string(cfg))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("without CAP_NET_ADMIN: %v: %s", err, out)
	}
	t.Logf("without CAP_NET_ADMIN: %s", out)
}

type noCapConfig struct{ KeyFile, Device string }

func noCapMain(b []byte, ready func()) error {
	var c noCapConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	_, err := tunnel.New(tunnel.Config{KeyFile: c.KeyFile, Device: c.Device})
	if !errors.Is(err, tunnel.ErrUnavailable) || !strings.Contains(err.Error(), "CAP_NET_ADMIN") {
		return fmt.Errorf("New: got %v, want ErrUnavailable naming CAP_NET_ADMIN", err)
	}
	fmt.Println(err)
	return nil
}

// TestPortInUse: a listen port taken by another socket fails Apply, and the
// next Apply once it is free binds it.
func TestPortInUse(t *testing.T) {
	needNamespace(t)
	const port = listenPort + 10
	taken, err := net.ListenPacket("udp", fmt.Sprintf(":%d", port))
	if err != nil {
		t.Fatal(err)
	}
	tn := newTunnel(t, tunnel.Config{})
	want := &syncproto.EdgeTunnel{Address: edgeAddr, ListenPort: port}
	err = tn.Apply(want)
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("Apply on a taken port: got %v, want an error saying it is in use", err)
	}
	t.Logf("Apply on a taken port: %v", err)
	if st := tn.State(); st.Error != err.Error() {
		t.Errorf("State error %q, want %q", st.Error, err)
	}
	taken.Close()
	apply(t, tn, want)
	if st := tn.State(); st.Error != "" {
		t.Errorf("State error %q after the port came free, want none", st.Error)
	}
	if c, err := net.ListenPacket("udp", fmt.Sprintf(":%d", port)); err == nil {
		c.Close()
		t.Errorf("port %d is free: the device does not listen on it", port)
	}
}
