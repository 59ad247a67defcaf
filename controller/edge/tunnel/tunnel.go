// Package tunnel holds the edge's end of its region's WireGuard management
// tunnel: one WireGuard device with the edge's tunnel address on it and one
// peer per router, so that the edge's relay reaches each router's tunnel
// address with plain kernel sockets.
//
// The device is the kernel's WireGuard where the kernel has it, otherwise a
// userspace wireguard-go device on a TUN interface, run inside this process
// and listening on its UAPI socket (/var/run/wireguard/<device>.sock). Both
// are configured through the same wgctrl calls, and both need
// CAP_NET_ADMIN; where neither can be made, New or Apply fail with
// ErrUnavailable and the region works as manual (the operator's own VPN).
//
// The edge's private key is born and kept in one file on the edge host;
// only its public key leaves this package.
//
// It imports shared/syncproto for the messages and no other tpf package.
package tunnel

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/tpf-dev/tpf/shared/syncproto"
)

// Defaults for Config's zero values.
const (
	// DefaultDevice is the device's name; one device per region, so edges
	// of several regions on one host need one name each.
	DefaultDevice = "tpf-wg"
	// DefaultTUNPath is the kernel's TUN clone device.
	DefaultTUNPath = "/dev/net/tun"
	// KeyFileName is the private key file's name in a state directory.
	KeyFileName = "wireguard.key"
)

// mtu is the device's MTU: WireGuard's default, which fits its overhead
// into a 1500-byte path over IPv4 or IPv6.
const mtu = 1420

// ErrUnavailable means this host can make no WireGuard device at all. The
// error New or Apply return wraps it with the causes; it is meant to be
// shown in the region's state as it is.
var ErrUnavailable = errors.New("this edge cannot hold the region's WireGuard management tunnel: " +
	"neither kernel WireGuard nor a TUN device for the userspace one is available " +
	"(both need CAP_NET_ADMIN; the userspace device also needs /dev/net/tun), " +
	"so the region works as manual: routers reach the edge only through the operator's own VPN")

// ErrClosed is returned by Apply after Close.
var ErrClosed = errors.New("tunnel: closed")

// Config configures a Tunnel.
type Config struct {
	// KeyFile is the private key's file (TPF_EDGE_KEY_FILE, or KeyFileName
	// in the edge's state directory); required. A missing file is created
	// with a new key (mode 0600, its directory 0700 if missing); a file
	// others may read, or one that holds no key, is refused.
	KeyFile string
	// Device names the WireGuard device; empty means DefaultDevice. The
	// name must be unique on the host, not just in the network namespace:
	// a userspace device's UAPI socket lives in /var/run/wireguard.
	Device string
	// TUNPath is the TUN clone device for the userspace device; empty
	// means DefaultTUNPath.
	TUNPath string
	// Logger receives device changes; nil discards.
	Logger *slog.Logger

	userspaceOnly bool // tests: never try kernel WireGuard
}

func (c Config) withDefaults() Config {
	if c.Device == "" {
		c.Device = DefaultDevice
	}
	if c.TUNPath == "" {
		c.TUNPath = DefaultTUNPath
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) validate() error {
	if c.KeyFile == "" {
		return errors.New("tunnel: no key file: set TPF_EDGE_KEY_FILE or a state directory")
	}
	if len(c.Device) >= unix.IFNAMSIZ || c.Device == "." || c.Device == ".." ||
		strings.ContainsAny(c.Device, "/: \t\n") {
		return fmt.Errorf("tunnel: device name %q is not a valid interface name (at most %d characters, no '/', ':' or spaces)",
			c.Device, unix.IFNAMSIZ-1)
	}
	return nil
}

// Tunnel is the edge's end of one region's management tunnel. Create it
// with New, give it the region's tunnel with Apply, and Close it when done.
// Its methods are safe for concurrent use; each blocks while another runs.
type Tunnel struct {
	cfg Config
	log *slog.Logger
	key wgtypes.Key // private; never leaves the package
	pub wgtypes.Key

	mu         sync.Mutex
	dev        *wgDevice // nil while the region has no tunnel
	err        error     // from the last Apply
	configures int       // wgctrl configure calls, for tests
	closed     bool
}

// New reads the edge's private key from cfg.KeyFile, creating the file with
// a new key on first start. It makes no device (Apply does), but fails with
// an error wrapping ErrUnavailable when this host certainly cannot make one
// (the process lacks CAP_NET_ADMIN).
func New(cfg Config) (*Tunnel, error) { return newTunnel(cfg, true) }

func newTunnel(cfg Config, probeHost bool) (*Tunnel, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	key, created, err := loadOrCreateKey(cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tunnel: %w", err)
	}
	t := &Tunnel{cfg: cfg, log: cfg.Logger, key: key, pub: key.PublicKey()}
	if created {
		t.log.Info("tunnel: generated the edge's WireGuard key", "file", cfg.KeyFile, "public_key", t.pub.String())
	}
	if probeHost {
		if err := probe(cfg); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// probe fails when the host certainly cannot make a device. Short of
// making one, it cannot tell whether a kernel without a TUN device would
// load WireGuard on demand; Apply finds that out.
func probe(cfg Config) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err == nil && data[0].Effective&(1<<unix.CAP_NET_ADMIN) == 0 {
		return fmt.Errorf("%w (this process lacks CAP_NET_ADMIN)", ErrUnavailable)
	}
	fd, err := unix.Open(cfg.TUNPath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err == nil {
		unix.Close(fd)
		return nil
	}
	if cfg.userspaceOnly {
		return unavailable(errNotTried, &os.PathError{Op: "open", Path: cfg.TUNPath, Err: err})
	}
	return nil
}

// PublicKey returns the edge's public key, base64.
func (t *Tunnel) PublicKey() string { return t.pub.String() }

// Apply makes the device hold exactly want: its address (with the region's
// prefix length, so every router's address routes into the device), the
// listen port, and one peer per router, whose only allowed IP is the
// router's address and which has no endpoint (routers dial in). It creates
// the device if there is none (or it vanished), changes only what differs
// (no peer's session is dropped unless the peer is), and does nothing but
// read when nothing does. A nil want removes the device, also one an
// earlier run of the edge left behind.
//
// Peers that cannot be held (bad key, address outside the prefix,
// duplicates) are left out, the rest applied, and the error names them.
// Where no device can be made at all the error wraps ErrUnavailable.
// State reports the last Apply's error.
func (t *Tunnel) Apply(want *syncproto.EdgeTunnel) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	err := t.applyLocked(want)
	if err != nil {
		err = fmt.Errorf("tunnel %s: %w", t.cfg.Device, err)
	}
	t.err = err
	return err
}

func (t *Tunnel) applyLocked(want *syncproto.EdgeTunnel) error {
	r, err := dialRTNL()
	if err != nil {
		return err
	}
	defer r.Close()
	if want == nil {
		return t.removeLocked(r)
	}
	addr, err := edgeAddress(want)
	if err != nil {
		return err
	}
	peers, skipped := desired(addr, want.Peers, t.pub)

	name := t.cfg.Device
	l, err := r.link(name)
	if err != nil {
		return err
	}
	if t.dev != nil && (l == nil || l.index != t.dev.index) {
		t.log.Warn("tunnel: device vanished; making it again", "device", name)
		if err := t.dev.close(r); err != nil {
			t.log.Warn("tunnel: remove what is left of the device", "device", name, "err", err)
		}
		t.dev = nil
	}
	if t.dev == nil {
		d, err := createDevice(r, name, t.cfg.TUNPath, !t.cfg.userspaceOnly, t.log)
		if err != nil {
			return err
		}
		t.dev = d
		t.log.Info("tunnel: device created", "device", name, "kind", d.kind(), "public_key", t.pub.String())
		if l, err = r.link(name); err != nil || l == nil {
			return errors.Join(err, fmt.Errorf("link %s vanished", name))
		}
	}
	if !l.up() || l.mtu != mtu {
		if err := r.setUp(l.index, mtu); err != nil {
			return err
		}
	}
	if err := setAddress(r, l.index, addr); err != nil {
		return err
	}
	cur, err := t.dev.wg.Device(name)
	if err != nil {
		return fmt.Errorf("read device: %w", err)
	}
	port := int(want.ListenPort)
	cfg, changed := plan(cur, t.key, port, peers)
	if changed {
		t.configures++
		if err := t.dev.wg.ConfigureDevice(name, cfg); err != nil {
			return portError(port, "configure device", errnoOf(err))
		}
		t.log.Info("tunnel: device configured", "device", name, "listen_port", port,
			"peers", len(peers), "peer_changes", len(cfg.Peers))
	}
	if u := t.dev.user; u != nil {
		// wireguard-go follows the link's state on its own time, and a
		// port it cannot bind then only takes it down again. Bringing it
		// up here (a no-op when it is) makes that this Apply's error.
		if err := u.dev.Up(); err != nil {
			return portError(port, "bring device up", err)
		}
	}
	return skipped
}

// setAddress leaves exactly one address of the link's own on it: want.
// Addresses the kernel gives links by itself (IPv6 link-local) stay.
func setAddress(r *rtnl, index int32, want netip.Prefix) error {
	have, err := r.addrs(index)
	if err != nil {
		return err
	}
	found := false
	for _, a := range have {
		switch {
		case a.prefix == want:
			found = true
		case a.scope != unix.RT_SCOPE_UNIVERSE:
		default:
			if err := r.addrDel(index, a); err != nil {
				return err
			}
		}
	}
	if found {
		return nil
	}
	return r.addrAdd(index, want)
}

func (t *Tunnel) removeLocked(r *rtnl) error {
	if t.dev != nil {
		err := t.dev.close(r)
		t.dev = nil
		t.log.Info("tunnel: device removed", "device", t.cfg.Device)
		return err
	}
	l, err := r.link(t.cfg.Device)
	if err != nil || l == nil || l.kind != "wireguard" {
		return err
	}
	t.log.Info("tunnel: removing a kernel device left by an earlier run", "device", t.cfg.Device)
	return r.del(l.index)
}

// State returns what the device holds: the edge's public key, each peer's
// last handshake (zero if none), endpoint and byte counts (sorted by public
// key), and the last Apply's error. Without a device it has only the
// public key and that error.
func (t *Tunnel) State() syncproto.TunnelState {
	st := syncproto.TunnelState{PublicKey: t.pub.String()}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err != nil {
		st.Error = t.err.Error()
	}
	if t.dev == nil {
		return st
	}
	d, err := t.dev.wg.Device(t.dev.name)
	if err != nil {
		if st.Error == "" {
			st.Error = fmt.Sprintf("tunnel %s: read device: %v", t.dev.name, err)
		}
		return st
	}
	st.Peers = make([]syncproto.PeerState, 0, len(d.Peers))
	for _, p := range d.Peers {
		ps := syncproto.PeerState{
			PublicKey: p.PublicKey.String(),
			RxBytes:   p.ReceiveBytes,
			TxBytes:   p.TransmitBytes,
		}
		if !p.LastHandshakeTime.IsZero() {
			ps.LastHandshake = p.LastHandshakeTime.UTC()
		}
		if p.Endpoint != nil {
			ps.Endpoint = p.Endpoint.String()
		}
		st.Peers = append(st.Peers, ps)
	}
	slices.SortFunc(st.Peers, func(a, b syncproto.PeerState) int { return cmp.Compare(a.PublicKey, b.PublicKey) })
	return st
}

// Close removes the device (stopping a userspace one) and makes later
// Applies fail with ErrClosed. Safe twice.
func (t *Tunnel) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	if t.dev == nil {
		return nil
	}
	r, rerr := dialRTNL()
	if rerr == nil {
		defer r.Close()
	}
	err := t.dev.close(r) // without rtnetlink, a kernel device stays
	t.dev = nil
	return errors.Join(rerr, err)
}

func portError(port int, what string, err error) error {
	if errors.Is(err, unix.EADDRINUSE) {
		return fmt.Errorf("listen port %d: %w", port, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// errnoOf turns wgctrl's "wguser: errno=-98" (a userspace device's answer)
// into the errno it names, so that it reads and matches like a kernel
// device's error.
func errnoOf(err error) error {
	msg := err.Error()
	i := strings.LastIndex(msg, "errno=-")
	if i < 0 {
		return err
	}
	n, perr := strconv.Atoi(strings.TrimSpace(msg[i+len("errno=-"):]))
	if perr != nil || n <= 0 {
		return err
	}
	return unix.Errno(n)
}
