package tunnel

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/wgctrl"
)

// wgDevice is the region's WireGuard device while it stands: a kernel link,
// or a userspace device on a TUN interface run by this process. Either way
// wg manages it, through generic netlink or the device's UAPI socket.
type wgDevice struct {
	name  string
	index int32          // the link's index, to notice it was replaced
	user  *userspaceWG   // nil for a kernel device
	wg    *wgctrl.Client // closed with the device
}

func (d *wgDevice) kind() string {
	if d.user != nil {
		return "userspace"
	}
	return "kernel"
}

// createDevice makes the device named name (down, MTU mtu): a kernel
// WireGuard link when the kernel has WireGuard, else a userspace device on a
// TUN interface made through tunPath. Where neither can be had it fails with
// an error wrapping ErrUnavailable.
func createDevice(r *rtnl, name, tunPath string, kernel bool, log *slog.Logger) (*wgDevice, error) {
	kerr := errNotTried
	if kernel {
		kerr = r.addWireGuard(name, mtu)
		if errors.Is(kerr, unix.EEXIST) {
			l, err := r.link(name)
			if err != nil {
				return nil, err
			}
			if l == nil || l.kind != "wireguard" {
				return nil, fmt.Errorf("a network interface named %s already exists and is not a WireGuard device "+
					"(another edge process, or something else, holds the name); remove it or choose another device name", name)
			}
			kerr = nil // a kernel device left by an earlier run: adopt it
		}
		if kerr == nil {
			return openDevice(r, name, nil)
		}
		if errors.Is(kerr, unix.EOPNOTSUPP) {
			kerr = fmt.Errorf("the kernel has none: %w", kerr)
		}
	}
	u, uerr := startUserspace(name, tunPath, log)
	if uerr == nil {
		d, err := openDevice(r, name, u)
		if err != nil {
			u.close()
		}
		return d, err
	}
	if noDevice(kerr) && noDevice(uerr) {
		return nil, unavailable(kerr, uerr)
	}
	return nil, uerr
}

func openDevice(r *rtnl, name string, u *userspaceWG) (*wgDevice, error) {
	l, err := r.link(name)
	if err == nil && l == nil {
		err = fmt.Errorf("link %s vanished", name)
	}
	if err != nil {
		return nil, err
	}
	// A client made now sees kernel WireGuard even if creating the link
	// just loaded the module.
	wg, err := wgctrl.New()
	if err != nil {
		return nil, fmt.Errorf("wgctrl: %w", err)
	}
	return &wgDevice{name: name, index: l.index, user: u, wg: wg}, nil
}

// noDevice reports whether err means this host cannot make that kind of
// device at all, as opposed to a passing or configuration failure.
func noDevice(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || // "Unknown device type": no kernel WireGuard
		errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) || // no CAP_NET_ADMIN
		errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO) || // no TUN device
		errors.Is(err, errNotTried)
}

var errNotTried = errors.New("not tried")

func unavailable(kernel, userspace error) error {
	return fmt.Errorf("%w (kernel WireGuard: %v; TUN device: %v)", ErrUnavailable, kernel, userspace)
}

// close removes the device: deletes the kernel link, or stops the userspace
// device (which removes its TUN interface and UAPI socket). It waits until
// the link is gone, so a new device can take the name at once. Without r
// it can only stop a userspace device.
func (d *wgDevice) close(r *rtnl) error {
	d.wg.Close()
	var err error
	if d.user != nil {
		d.user.close()
	}
	if r == nil {
		return nil
	}
	if d.user == nil {
		err = r.del(d.index)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, lerr := r.link(d.name)
		if lerr != nil || l == nil || l.index != d.index {
			return err
		}
		if time.Now().After(deadline) {
			return errors.Join(err, fmt.Errorf("link %s still exists after removal", d.name))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// userspaceWG is an in-process wireguard-go device on a TUN interface,
// answering wgctrl on its UAPI socket (/var/run/wireguard/<name>.sock). It
// owns the device's goroutines and the socket's accept loop; close stops
// them all.
type userspaceWG struct {
	dev  *device.Device
	uapi net.Listener
	done chan struct{} // closed when the accept loop returns
}

// startUserspace creates the TUN interface name through tunPath (the
// kernel's clone device, /dev/net/tun), runs wireguard-go on it and opens
// its UAPI socket.
func startUserspace(name, tunPath string, log *slog.Logger) (*userspaceWG, error) {
	tdev, err := createTUN(name, tunPath)
	if err != nil {
		return nil, err
	}
	logger := &device.Logger{
		Verbosef: func(format string, args ...any) {
			log.Debug("wireguard: "+fmt.Sprintf(format, args...), "device", name)
		},
		// wireguard-go's error level carries routine events too (a
		// router not connected yet, junk from the Internet).
		Errorf: func(format string, args ...any) {
			log.Info("wireguard: "+fmt.Sprintf(format, args...), "device", name)
		},
	}
	dev := device.NewDevice(tdev, conn.NewDefaultBind(), logger)
	f, err := ipc.UAPIOpen(name)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("open UAPI socket for %s: %w", name, err)
	}
	l, err := ipc.UAPIListen(name, f)
	f.Close() // the listener holds its own descriptor
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("listen on UAPI socket for %s: %w", name, err)
	}
	u := &userspaceWG{dev: dev, uapi: l, done: make(chan struct{})}
	go func() {
		defer close(u.done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go dev.IpcHandle(c) // closes c
		}
	}()
	return u, nil
}

func (u *userspaceWG) close() {
	u.uapi.Close() // unlinks the socket
	<-u.done
	u.dev.Close()
}

// createTUN is tun.CreateTUN with the clone device's path as a parameter.
func createTUN(name, tunPath string) (tun.Device, error) {
	fd, err := unix.Open(tunPath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: tunPath, Err: err}
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUN device name %q: %w", name, err)
	}
	// IFF_VNET_HDR as wireguard-go's own CreateTUN sets it: its offloads
	// and its link-state detection rely on it.
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("create TUN interface %s: the name is held by another process's device", name)
		}
		return nil, fmt.Errorf("create TUN interface %s: %w", name, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), tunPath)
	tdev, err := tun.CreateTUNFromFile(f, mtu)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("TUN interface %s: %w", name, err)
	}
	return tdev, nil
}
