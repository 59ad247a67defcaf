// Package routerwg makes an emulated RouterOS router's WireGuard real: it
// turns the /interface/wireguard interfaces, their peers and the
// /ip/address rows of a routerostest.Server into userspace WireGuard
// devices (wireguard-go on TUN interfaces) in the caller's network
// namespace, and feeds each peer's real handshake, byte counts and endpoint
// back into the emulator, so that an agent reading the router sees the
// truth. It is the router's data plane in the end-to-end tests across
// network namespaces, as nftables is for its NAT table.
//
// Each enabled interface becomes a TUN device of the same name, holding the
// private key the emulator generated (an agent never reads it), its
// listen-port and MTU, and one WireGuard peer per enabled peer row
// (public-key, endpoint-address and -port, allowed-address,
// persistent-keepalive, preshared-key). Each enabled, valid address on it
// becomes a kernel address; a /32 whose network is another address is a
// point-to-point address with that peer, which routes the peer's address
// into the device, as RouterOS does. Removing or disabling the objects
// removes what they made.
//
// It needs CAP_NET_ADMIN and /dev/net/tun, and the `ip` command. Run it in
// a process that lives in the router's network namespace (`ip netns exec`):
// wireguard-go opens its UDP sockets from its own goroutines, so every
// thread of the process must be in that namespace. It is test code: it
// lives under e2e, which alone may import both the agent's tree and
// wireguard-go besides the controller's.
package routerwg

import (
	"crypto/ecdh"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/tpf-dev/tpf/agent/routerostest"
)

// DefaultStatusInterval is how often device state is read back when
// Config.StatusInterval is zero.
const DefaultStatusInterval = 50 * time.Millisecond

// Config configures a Driver. The zero value logs nothing and reads the
// devices back every DefaultStatusInterval.
type Config struct {
	// Logger receives what the driver does to the devices; nil discards.
	Logger *slog.Logger
	// StatusInterval is how often each device's peers are read back into
	// the emulator (and a failed change tried again).
	StatusInterval time.Duration
}

// Driver keeps the WireGuard devices in line with an emulator's tables. Give
// its Apply to routerostest.Config.OnWireGuardChange, Start it with the
// Server made from that Config, and Close it when done. Safe for concurrent
// use.
type Driver struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	want    tables             // the newest tables from the emulator
	dirty   bool               // want is not (fully) applied yet
	devices map[string]*wgDev  // by interface name
	peerIDs map[string]peerRef // each emulator peer's interface and key, by its .id
	closed  bool
	started bool

	stop chan struct{}
	done chan struct{}
}

type tables struct{ interfaces, peers, addresses []map[string]string }

// peerRef names a peer row of the emulator.
type peerRef struct{ iface, publicKey string }

// New returns a Driver that holds no device yet.
func New(cfg Config) *Driver {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = DefaultStatusInterval
	}
	return &Driver{cfg: cfg, log: cfg.Logger, devices: map[string]*wgDev{}, peerIDs: map[string]peerRef{},
		stop: make(chan struct{}), done: make(chan struct{})}
}

// Apply makes the devices match the emulator's tables; it has the
// signature of routerostest.Config.OnWireGuardChange. What it cannot do is
// logged and tried again every StatusInterval.
func (d *Driver) Apply(interfaces, peers, addresses []map[string]string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.want = tables{interfaces, peers, addresses}
	d.dirty = !d.reconcileLocked()
}

// Start reads the devices back into srv (SetPeerStatus) every
// StatusInterval until Close, on a goroutine of its own. Call it once.
func (d *Driver) Start(srv *routerostest.Server) {
	d.mu.Lock()
	d.started = true
	d.mu.Unlock()
	go func() {
		defer close(d.done)
		t := time.NewTicker(d.cfg.StatusInterval)
		defer t.Stop()
		for {
			select {
			case <-d.stop:
				return
			case <-t.C:
			}
			d.mu.Lock()
			if d.dirty && !d.closed {
				d.dirty = !d.reconcileLocked()
			}
			st := d.statusLocked()
			d.mu.Unlock()
			// Outside mu: the emulator may be calling Apply meanwhile.
			for id, s := range st {
				srv.SetPeerStatus(id, s)
			}
		}
	}()
}

// Close removes every device and stops the goroutine Start began. Safe
// twice.
func (d *Driver) Close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	for name, dev := range d.devices {
		dev.close()
		delete(d.devices, name)
	}
	started := d.started
	d.mu.Unlock()
	close(d.stop)
	if started {
		<-d.done
	}
}

// wgDev is one interface made real: a TUN interface with wireguard-go on it,
// and what was last applied to it.
type wgDev struct {
	name string
	dev  *device.Device
	up   bool // the link was raised
	mtu  int
	key  string // private, base64
	port int
	// peers and addrs are what the device holds, by public key (base64)
	// and as `ip addr add` arguments.
	peers map[string]peer
	addrs []string
}

func (w *wgDev) close() { w.dev.Close() } // closes the TUN interface, which removes it

// iface is an interface row as the driver reads it.
type iface struct {
	name string
	key  string
	port int
	mtu  int
}

// peer is a peer row as the driver reads it.
type peer struct {
	id        string // the emulator's .id, to report status to
	endpoint  string // IP:port, empty for none
	allowed   []netip.Prefix
	keepalive int // seconds
	psk       string
}

// reconcileLocked brings the devices in line with d.want and reports
// whether everything could be done.
func (d *Driver) reconcileLocked() bool {
	ok := true
	want := map[string]iface{}
	for _, r := range d.want.interfaces {
		i, err := parseInterface(r)
		if err != nil {
			d.log.Warn("wireguard interface left out", "name", r["name"], "err", err)
			continue
		}
		if r["disabled"] != "true" {
			want[i.name] = i
		}
	}
	for name, dev := range d.devices {
		if w, found := want[name]; !found || w.key != dev.key {
			dev.close()
			delete(d.devices, name)
			d.log.Info("wireguard device removed", "device", name)
		}
	}
	d.peerIDs = map[string]peerRef{}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if err := d.applyInterfaceLocked(want[name]); err != nil {
			d.log.Warn("wireguard device", "device", name, "err", err)
			ok = false
		}
	}
	return ok
}

func (d *Driver) applyInterfaceLocked(i iface) error {
	dev := d.devices[i.name]
	if dev == nil {
		tdev, err := tun.CreateTUN(i.name, i.mtu)
		if err != nil {
			return fmt.Errorf("create TUN interface: %w", err)
		}
		name := i.name
		dev = &wgDev{name: name, mtu: i.mtu, peers: map[string]peer{}, dev: device.NewDevice(tdev, conn.NewDefaultBind(), &device.Logger{
			Verbosef: device.DiscardLogf,
			Errorf:   func(f string, a ...any) { d.log.Info("wireguard: "+fmt.Sprintf(f, a...), "device", name) },
		})}
		if err := dev.dev.IpcSet("private_key=" + keyHex(i.key) + "\n"); err != nil {
			dev.close()
			return fmt.Errorf("set private key: %w", err)
		}
		dev.key = i.key
		d.devices[i.name] = dev
		d.log.Info("wireguard device created", "device", i.name, "public_key", publicKey(i.key))
	}
	if dev.port != i.port {
		if err := dev.dev.IpcSet(fmt.Sprintf("listen_port=%d\n", i.port)); err != nil {
			return fmt.Errorf("listen port %d: %w", i.port, err)
		}
		dev.port = i.port
	}
	if !dev.up || dev.mtu != i.mtu {
		// Without exec: a RouterOS interface runs the moment it is added,
		// and a peer added to it starts shaking hands at once; the device
		// should not lag far behind.
		if err := setLink(i.name, i.mtu); err != nil {
			return err
		}
		// wireguard-go comes up when it hears that its TUN interface did;
		// up now instead, not a moment later.
		if err := dev.dev.Up(); err != nil {
			return fmt.Errorf("bring the device up: %w", err)
		}
		dev.up, dev.mtu = true, i.mtu
	}

	peers := map[string]peer{}
	for _, r := range d.want.peers {
		if r["interface"] != i.name || r["disabled"] == "true" {
			continue
		}
		key, p, err := parsePeer(r)
		if err != nil {
			d.log.Warn("wireguard peer left out", "device", i.name, "peer", r[".id"], "err", err)
			continue
		}
		peers[key] = p
		d.peerIDs[p.id] = peerRef{iface: i.name, publicKey: key}
	}
	if uapi := peerChanges(dev.peers, peers); uapi != "" {
		if err := dev.dev.IpcSet(uapi); err != nil {
			return fmt.Errorf("configure peers: %w", err)
		}
		d.log.Info("wireguard peers configured", "device", i.name, "peers", len(peers))
	}
	dev.peers = peers

	var addrs []string
	for _, r := range d.want.addresses {
		if r["interface"] != i.name || r["disabled"] == "true" || r["invalid"] == "true" {
			continue
		}
		a, err := addressArgs(r)
		if err != nil {
			d.log.Warn("address left out", "device", i.name, "address", r["address"], "err", err)
			continue
		}
		addrs = append(addrs, a)
	}
	if !slices.Equal(addrs, dev.addrs) {
		if err := ip("-4", "addr", "flush", "dev", i.name); err != nil {
			return err
		}
		dev.addrs = nil
		for _, a := range addrs {
			if err := ip(append([]string{"addr", "add"}, append(strings.Fields(a), "dev", i.name)...)...); err != nil {
				return err
			}
		}
		dev.addrs = addrs
		d.log.Info("addresses set", "device", i.name, "addresses", addrs)
	}
	return nil
}

// peerChanges returns the UAPI set that turns the peers have into want
// ("" for none): removed peers go, new and changed ones are written whole.
// A peer whose endpoint went is removed and added again, as the UAPI cannot
// clear an endpoint.
func peerChanges(have, want map[string]peer) string {
	var b strings.Builder
	for _, key := range slices.Sorted(maps.Keys(have)) {
		w, found := want[key]
		if !found || (w.endpoint == "" && have[key].endpoint != "") {
			fmt.Fprintf(&b, "public_key=%s\nremove=true\n", keyHex(key))
			delete(have, key)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(want)) {
		w := want[key]
		if h, found := have[key]; found && samePeer(h, w) {
			continue
		}
		fmt.Fprintf(&b, "public_key=%s\n", keyHex(key))
		if w.psk != "" {
			fmt.Fprintf(&b, "preshared_key=%s\n", keyHex(w.psk))
		}
		if w.endpoint != "" {
			fmt.Fprintf(&b, "endpoint=%s\n", w.endpoint)
		}
		fmt.Fprintf(&b, "persistent_keepalive_interval=%d\nreplace_allowed_ips=true\n", w.keepalive)
		for _, p := range w.allowed {
			fmt.Fprintf(&b, "allowed_ip=%s\n", p)
		}
	}
	return b.String()
}

func samePeer(a, b peer) bool {
	return a.endpoint == b.endpoint && a.keepalive == b.keepalive && a.psk == b.psk && slices.Equal(a.allowed, b.allowed)
}

// statusLocked reads every device's peers: what SetPeerStatus wants, by
// the emulator's peer id.
func (d *Driver) statusLocked() map[string]routerostest.PeerStatus {
	byKey := map[peerRef]string{}
	for id, ref := range d.peerIDs {
		byKey[ref] = id
	}
	out := map[string]routerostest.PeerStatus{}
	for name, dev := range d.devices {
		text, err := dev.dev.IpcGet()
		if err != nil {
			d.log.Warn("read wireguard device", "device", name, "err", err)
			continue
		}
		for key, st := range parseStatus(text) {
			if id, ok := byKey[peerRef{iface: name, publicKey: key}]; ok {
				out[id] = st
			}
		}
	}
	return out
}

// parseStatus reads the peers of a UAPI get: each peer's status by its
// public key (base64). The endpoint counts only once the peer shook hands:
// before that it is just the configured one.
func parseStatus(text string) map[string]routerostest.PeerStatus {
	out := map[string]routerostest.PeerStatus{}
	var key string
	var st routerostest.PeerStatus
	var sec, nsec int64
	var endpoint netip.AddrPort
	flush := func() {
		if key == "" {
			return
		}
		if sec != 0 || nsec != 0 {
			st.LastHandshake = time.Unix(sec, nsec)
			st.CurrentEndpoint = endpoint
		}
		out[key] = st
	}
	for line := range strings.Lines(text) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch k {
		case "public_key":
			flush()
			b, _ := hex.DecodeString(v)
			key, st, sec, nsec, endpoint = base64.StdEncoding.EncodeToString(b), routerostest.PeerStatus{}, 0, 0, netip.AddrPort{}
		case "endpoint":
			endpoint, _ = netip.ParseAddrPort(v)
		case "last_handshake_time_sec":
			sec, _ = strconv.ParseInt(v, 10, 64)
		case "last_handshake_time_nsec":
			nsec, _ = strconv.ParseInt(v, 10, 64)
		case "rx_bytes":
			st.Rx, _ = strconv.ParseUint(v, 10, 64)
		case "tx_bytes":
			st.Tx, _ = strconv.ParseUint(v, 10, 64)
		}
	}
	flush()
	return out
}

// parseInterface reads an interface row: a name Linux takes, the private
// key, listen-port and MTU.
func parseInterface(r map[string]string) (iface, error) {
	i := iface{name: r["name"], key: r["private-key"]}
	if len(i.name) == 0 || len(i.name) >= unix.IFNAMSIZ || strings.ContainsAny(i.name, "/: \t") {
		return iface{}, fmt.Errorf("%q is no Linux interface name", i.name)
	}
	if _, err := decodeKey(i.key); err != nil {
		return iface{}, fmt.Errorf("private key: %w", err)
	}
	var err error
	if i.port, err = strconv.Atoi(r["listen-port"]); err != nil || i.port < 1 || i.port > 65535 {
		return iface{}, fmt.Errorf("listen-port %q", r["listen-port"])
	}
	i.mtu = device.DefaultMTU
	if m, err := strconv.Atoi(r["mtu"]); err == nil && m >= 576 {
		i.mtu = m
	}
	return i, nil
}

// parsePeer reads a peer row; its public key (base64) comes first.
func parsePeer(r map[string]string) (string, peer, error) {
	key := r["public-key"]
	if _, err := decodeKey(key); err != nil {
		return "", peer{}, fmt.Errorf("public key: %w", err)
	}
	p := peer{id: r[".id"]}
	if psk := r["preshared-key"]; psk != "" {
		if _, err := decodeKey(psk); err != nil {
			return "", peer{}, fmt.Errorf("preshared key: %w", err)
		}
		p.psk = psk
	}
	if host, port := r["endpoint-address"], r["endpoint-port"]; host != "" && port != "" && port != "0" {
		a, err := net.ResolveUDPAddr("udp", net.JoinHostPort(host, port))
		if err != nil {
			return "", peer{}, fmt.Errorf("endpoint: %w", err)
		}
		ap := a.AddrPort() // an IPv4 address comes back mapped into IPv6
		p.endpoint = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
	}
	for s := range strings.SplitSeq(r["allowed-address"], ",") {
		if s == "" {
			continue
		}
		pre, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return "", peer{}, fmt.Errorf("allowed-address %q: %w", s, err)
			}
			pre = netip.PrefixFrom(a, a.BitLen())
		}
		p.allowed = append(p.allowed, pre.Masked())
	}
	ka, err := parseDuration(r["persistent-keepalive"])
	if err != nil {
		return "", peer{}, fmt.Errorf("persistent-keepalive: %w", err)
	}
	p.keepalive = int(ka / time.Second)
	return key, p, nil
}

// addressArgs renders an address row as `ip addr add` arguments: a /32
// whose network is another address is point to point with that peer.
func addressArgs(r map[string]string) (string, error) {
	p, err := netip.ParsePrefix(r["address"])
	if err != nil || !p.Addr().Is4() {
		return "", fmt.Errorf("not an IPv4 address with a prefix length: %q", r["address"])
	}
	if n, err := netip.ParseAddr(r["network"]); err == nil && p.Bits() == 32 && n != p.Addr() {
		return fmt.Sprintf("%s peer %s/32", p, n), nil
	}
	return p.String(), nil
}

// parseDuration reads a RouterOS duration: "25s", "1m30s", "1d2h", "1w",
// or bare seconds; "" is zero.
func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	units := map[byte]time.Duration{'w': 7 * 24 * time.Hour, 'd': 24 * time.Hour, 'h': time.Hour, 'm': time.Minute, 's': time.Second}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i == len(s) || units[s[i]] == 0 {
			return 0, fmt.Errorf("%q is not a duration", s)
		}
		n, _ := strconv.Atoi(s[:i])
		total += time.Duration(n) * units[s[i]]
		s = s[i+1:]
	}
	return total, nil
}

func decodeKey(k string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(k)
	if err == nil && len(b) != 32 {
		err = errors.New("not 32 bytes")
	}
	return b, err
}

// keyHex turns a base64 key into the UAPI's hex.
func keyHex(k string) string {
	b, _ := decodeKey(k)
	return hex.EncodeToString(b)
}

// publicKey derives a base64 private key's public key, for the log.
func publicKey(private string) string {
	b, err := decodeKey(private)
	if err != nil {
		return ""
	}
	k, err := ecdh.X25519().NewPrivateKey(b)
	if err != nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(k.PublicKey().Bytes())
}

// setLink sets the link's MTU and raises it, in this thread's network
// namespace.
func setLink(name string, mtu int) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	ifr.SetUint32(uint32(mtu))
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFMTU, ifr); err != nil {
		return fmt.Errorf("set MTU of %s: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("read flags of %s: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("raise %s: %w", name, err)
	}
	return nil
}

// ip runs the ip command in this process's network namespace.
func ip(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
