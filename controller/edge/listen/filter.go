package listen

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// skfNetOff is SKF_NET_OFF: classic BPF loads at negative offsets from it read
// the network header instead of the transport payload.
const skfNetOff = 0xfff00000

// Filter assembles the classic BPF socket filter that admits only IPv4
// packets whose source address lies inside allow. It reads the IP version
// nibble first, so on a dual-stack (AF_INET6) socket IPv4 clients — which
// reach it as IPv4-mapped addresses but are IPv4 at the network layer — are
// filtered by their IPv4 source, and pure IPv6 packets are dropped. allow
// must be an IPv4 prefix (an IPv4-mapped IPv6 prefix of length ≥ 96 is
// unmapped first); 0.0.0.0/0 admits every IPv4 source.
//
// Attached to a listening socket, the filter runs on the SYN: a dropped SYN
// is never answered, so to a disallowed client the port looks filtered.
func Filter(allow netip.Prefix) ([]bpf.RawInstruction, error) {
	p, err := ipv4Prefix(allow)
	if err != nil {
		return nil, err
	}
	a4 := p.Addr().As4()
	var mask uint32
	if p.Bits() > 0 {
		mask = ^uint32(0) << (32 - p.Bits())
	}
	return bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: skfNetOff, Size: 1}, // version/IHL byte
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0x40, SkipTrue: 4}, // not IPv4: drop
		bpf.LoadAbsolute{Off: skfNetOff + 12, Size: 4},             // source address
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: binary.BigEndian.Uint32(a4[:]), SkipFalse: 1},
		bpf.RetConstant{Val: 0xffffffff}, // keep the whole packet
		bpf.RetConstant{Val: 0},          // drop
	})
}

// ipv4Prefix returns allow as a masked IPv4 prefix, unmapping an
// IPv4-mapped IPv6 prefix, or an error saying what is wrong with it.
func ipv4Prefix(allow netip.Prefix) (netip.Prefix, error) {
	if !allow.IsValid() {
		return netip.Prefix{}, fmt.Errorf("allowed source %v: not a valid CIDR", allow)
	}
	a := allow.Addr()
	if a.Is4In6() {
		if allow.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("allowed source %v: an IPv4-mapped prefix needs at least 96 bits", allow)
		}
		allow = netip.PrefixFrom(a.Unmap(), allow.Bits()-96)
	} else if !a.Is4() {
		return netip.Prefix{}, fmt.Errorf("allowed source %v: must be an IPv4 CIDR", allow)
	}
	return allow.Masked(), nil
}

// admits reports whether a connection from src may be handed over: src,
// unmapped if it is an IPv4-mapped IPv6 address, lies inside allow (an IPv4
// prefix as returned by ipv4Prefix). It is the check after accept, the second
// line behind the socket filter.
func admits(allow netip.Prefix, src netip.Addr) bool {
	return allow.Contains(src.Unmap())
}

// sockFprog converts an assembled program for SO_ATTACH_FILTER.
func sockFprog(prog []bpf.RawInstruction) *unix.SockFprog {
	f := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		f[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	return &unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
}
