package tunnel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// rtnl is the little of rtnetlink the tunnel needs: find, create, raise and
// delete one link, and keep one address on it. It works in the network
// namespace of the thread that dials it (the process's, outside tests'
// helpers). Not safe for concurrent use; Close it when done.
type rtnl struct {
	c *netlink.Conn
}

// link is what the tunnel reads of a network interface.
type link struct {
	index int32
	flags uint32
	mtu   uint32
	kind  string // IFLA_INFO_KIND: "wireguard", "tun", …; empty when the kernel gives none
}

func (l *link) up() bool { return l.flags&unix.IFF_UP != 0 }

// ifAddr is one address on a link.
type ifAddr struct {
	prefix netip.Prefix // the local address with its prefix length
	scope  uint8
}

func dialRTNL() (*rtnl, error) {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		return nil, fmt.Errorf("rtnetlink: %w", err)
	}
	return &rtnl{c: c}, nil
}

func (r *rtnl) Close() error { return r.c.Close() }

const (
	requestAck = netlink.Request | netlink.Acknowledge
)

// ifinfomsg encodes struct ifinfomsg followed by attrs.
func ifinfomsg(index int32, flags, change uint32, attrs []byte) []byte {
	b := make([]byte, unix.SizeofIfInfomsg, unix.SizeofIfInfomsg+len(attrs))
	b[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(b[4:8], uint32(index))
	binary.NativeEndian.PutUint32(b[8:12], flags)
	binary.NativeEndian.PutUint32(b[12:16], change)
	return append(b, attrs...)
}

// link returns the link named name, or nil when there is none.
func (r *rtnl) link(name string) (*link, error) {
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, name)
	attrs, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	msgs, err := r.c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETLINK, Flags: netlink.Request},
		Data:   ifinfomsg(0, 0, 0, attrs),
	})
	if errors.Is(err, unix.ENODEV) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read link %s: %w", name, err)
	}
	if len(msgs) != 1 || len(msgs[0].Data) < unix.SizeofIfInfomsg {
		return nil, fmt.Errorf("read link %s: unexpected reply", name)
	}
	d := msgs[0].Data
	l := &link{
		index: int32(binary.NativeEndian.Uint32(d[4:8])),
		flags: binary.NativeEndian.Uint32(d[8:12]),
	}
	ad, err := netlink.NewAttributeDecoder(d[unix.SizeofIfInfomsg:])
	if err != nil {
		return nil, fmt.Errorf("read link %s: %w", name, err)
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.IFLA_MTU:
			l.mtu = ad.Uint32()
		case unix.IFLA_LINKINFO:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					if nad.Type() == unix.IFLA_INFO_KIND {
						l.kind = nad.String()
					}
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		return nil, fmt.Errorf("read link %s: %w", name, err)
	}
	return l, nil
}

// addWireGuard creates a kernel WireGuard link (down). It fails with
// EOPNOTSUPP where the kernel has no WireGuard, EEXIST where the name is
// taken and EPERM without CAP_NET_ADMIN.
func (r *rtnl) addWireGuard(name string, mtu uint32) error {
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, name)
	ae.Uint32(unix.IFLA_MTU, mtu)
	ae.Nested(unix.IFLA_LINKINFO, func(nae *netlink.AttributeEncoder) error {
		nae.String(unix.IFLA_INFO_KIND, "wireguard")
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		return err
	}
	_, err = r.c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_NEWLINK, Flags: requestAck | netlink.Create | netlink.Excl},
		Data:   ifinfomsg(0, 0, 0, attrs),
	})
	return err
}

// setUp raises the link and sets its MTU.
func (r *rtnl) setUp(index int32, mtu uint32) error {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(unix.IFLA_MTU, mtu)
	attrs, err := ae.Encode()
	if err != nil {
		return err
	}
	_, err = r.c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_NEWLINK, Flags: requestAck},
		Data:   ifinfomsg(index, unix.IFF_UP, unix.IFF_UP, attrs),
	})
	if err != nil {
		return fmt.Errorf("bring link up: %w", err)
	}
	return nil
}

// del deletes the link.
func (r *rtnl) del(index int32) error {
	_, err := r.c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_DELLINK, Flags: requestAck},
		Data:   ifinfomsg(index, 0, 0, nil),
	})
	if errors.Is(err, unix.ENODEV) {
		return nil
	}
	return err
}

// addrs returns the addresses on the link.
func (r *rtnl) addrs(index int32) ([]ifAddr, error) {
	msgs, err := r.c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETADDR, Flags: netlink.Request | netlink.Dump},
		Data:   make([]byte, unix.SizeofIfAddrmsg), // AF_UNSPEC: every family
	})
	if err != nil {
		return nil, fmt.Errorf("read addresses: %w", err)
	}
	var out []ifAddr
	for _, m := range msgs {
		d := m.Data
		if m.Header.Type != unix.RTM_NEWADDR || len(d) < unix.SizeofIfAddrmsg {
			continue
		}
		if int32(binary.NativeEndian.Uint32(d[4:8])) != index {
			continue
		}
		bits, scope := int(d[1]), d[3]
		ad, err := netlink.NewAttributeDecoder(d[unix.SizeofIfAddrmsg:])
		if err != nil {
			return nil, fmt.Errorf("read addresses: %w", err)
		}
		var local, address netip.Addr
		for ad.Next() {
			switch ad.Type() {
			case unix.IFA_LOCAL:
				local, _ = netip.AddrFromSlice(ad.Bytes())
			case unix.IFA_ADDRESS:
				address, _ = netip.AddrFromSlice(ad.Bytes())
			}
		}
		if !local.IsValid() {
			local = address
		}
		if local.IsValid() {
			out = append(out, ifAddr{prefix: netip.PrefixFrom(local, bits), scope: scope})
		}
	}
	return out, nil
}

// ifaddrmsg encodes struct ifaddrmsg and the address attributes for p.
func ifaddrmsg(index int32, p netip.Prefix, scope uint8) ([]byte, error) {
	family := byte(unix.AF_INET6)
	if p.Addr().Is4() {
		family = unix.AF_INET
	}
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(unix.IFA_LOCAL, p.Addr().AsSlice())
	ae.Bytes(unix.IFA_ADDRESS, p.Addr().AsSlice())
	attrs, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	b := make([]byte, unix.SizeofIfAddrmsg, unix.SizeofIfAddrmsg+len(attrs))
	b[0], b[1], b[3] = family, byte(p.Bits()), scope
	binary.NativeEndian.PutUint32(b[4:8], uint32(index))
	return append(b, attrs...), nil
}

func (r *rtnl) addrAdd(index int32, p netip.Prefix) error {
	data, err := ifaddrmsg(index, p, unix.RT_SCOPE_UNIVERSE)
	if err != nil {
		return err
	}
	_, err = r.c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_NEWADDR, Flags: requestAck | netlink.Create | netlink.Replace},
		Data:   data,
	})
	if err != nil {
		return fmt.Errorf("add address %s: %w", p, err)
	}
	return nil
}

func (r *rtnl) addrDel(index int32, a ifAddr) error {
	data, err := ifaddrmsg(index, a.prefix, a.scope)
	if err != nil {
		return err
	}
	_, err = r.c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_DELADDR, Flags: requestAck},
		Data:   data,
	})
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("remove address %s: %w", a.prefix, err)
	}
	return nil
}
