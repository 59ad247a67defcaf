package tunnel_test

import (
	"runtime"
	"slices"
	"testing"

	"github.com/tpf-dev/tpf/controller/edge/tunnel"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// BenchmarkApply1000Peers measures Apply on a device holding 1,000 routers:
// the same set again (the periodic resync), a set with one router replaced
// (a router joins, another leaves) and a set with every router replaced
// (the worst change). dev-B/peer is what the device holds per peer (heap
// and goroutine stacks of this process: the userspace device lives here; a
// kernel device's memory is the kernel's and does not show).
func BenchmarkApply1000Peers(b *testing.B) {
	needNamespace(b)
	tn := newTunnel(b, tunnel.Config{})
	base := peerSet(b, 1000)
	other := peerSet(b, 1000)
	oneChanged := *base
	oneChanged.Peers = append(slices.Clone(base.Peers[:999]), syncproto.EdgePeer{
		PublicKey: other.Peers[0].PublicKey, Address: base.Peers[999].Address,
	})

	apply(b, tn, &syncproto.EdgeTunnel{Address: base.Address, ListenPort: base.ListenPort})
	before := inUse()
	apply(b, tn, base)
	perPeer := float64(inUse()-before) / 1000

	run := func(name string, sets ...*syncproto.EdgeTunnel) {
		b.Run(name, func(b *testing.B) {
			apply(b, tn, sets[0])
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				if err := tn.Apply(sets[i%len(sets)]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(perPeer, "dev-B/peer")
		})
	}
	run("unchanged", base)
	run("one-changed", base, &oneChanged)
	run("all-changed", base, other)
}

func inUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}
