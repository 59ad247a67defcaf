package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
	"time"
)

// The managed tunnel's benchmarks run in a tunnelLab (root, namespaces,
// userspace WireGuard at both ends); the edge's 1,000-peer device is
// BenchmarkApply1000Peers in controller/edge/tunnel.

// BenchmarkTunnelHandshake measures, per router, the time from its agent's
// start to the first completed WireGuard handshake with the edge (as the
// edge's device records it) and to the controller showing the tunnel up
// (the agent's report): the agent connects, gets its set, builds the
// router's end, reports the router's key; the controller gives it to the
// edge, which adds the peer; the router's device shakes hands. Each
// iteration is a new router (the previous one deleted, its tunnel gone at
// both ends). Run with -benchtime=10x; it reports medians and 99th
// percentiles, and how many handshakes needed no retry: the router's
// device starts shaking hands as soon as the agent adds the edge as its
// peer, which may be before the edge holds the router's key; WireGuard then
// tries again after 5 s.
func BenchmarkTunnelHandshake(b *testing.B) {
	l := newTunnelLab(b)
	var handshake, up []time.Duration
	i := 0
	for b.Loop() {
		i++
		r := l.addRouter(fmt.Sprintf("r%d", i))
		agent := fmt.Sprintf("agent%d", i)
		start := time.Now()
		l.startAgent(agent, r)
		var at time.Time
		waitUntil(b, "a handshake at the edge", time.Minute, 5*time.Millisecond, func() bool {
			for _, p := range edgePeers() {
				if !p.LastHandshakeTime.IsZero() {
					at = p.LastHandshakeTime
					return true
				}
			}
			return false
		}, nil)
		waitUntil(b, "the controller to show the tunnel up", time.Minute, 10*time.Millisecond, func() bool {
			return l.tunnel(r.ID).State == "up"
		}, nil)
		up = append(up, time.Since(start))
		handshake = append(handshake, at.Sub(start))

		l.api.delete("/api/routers/" + r.ID)
		waitUntil(b, "the router's tunnel to go at both ends", time.Minute, 20*time.Millisecond, func() bool {
			_, err := l.n.ipOutput("router", "link", "show", "dev", "tpf")
			return err != nil && len(edgePeers()) == 0
		}, nil)
		l.n.stop(agent)
	}
	first := 0 // handshakes that needed no retry (WireGuard retries after 5 s)
	for _, d := range handshake {
		if d < 4*time.Second {
			first++
		}
	}
	b.ReportMetric(float64(first)/float64(len(handshake))*100, "first-try-%")
	slices.Sort(handshake)
	slices.Sort(up)
	b.ReportMetric(ms(handshake[len(handshake)/2]), "handshake-ms-p50")
	b.ReportMetric(ms(handshake[(len(handshake)*99)/100]), "handshake-ms-p99")
	b.ReportMetric(ms(up[len(up)/2]), "up-ms-p50")
	b.ReportMetric(ms(up[(len(up)*99)/100]), "up-ms-p99")
}

// BenchmarkTunnelThroughput measures a bulk TCP transfer to the LAN device
// through a forward (client → edge relay → tunnel → router's dst-nat →
// device) against the same transfer from the edge host straight into the
// tunnel (edge host → tunnel → router's dst-nat → device), with no rate
// cap on the edge: what the relay costs on the tunnel's path. Three rounds
// of 3 s each way, alternating; it reports the medians in MB/s and their
// ratio. Run with -benchtime=1x.
func BenchmarkTunnelThroughput(b *testing.B) {
	l := newTunnelLab(b, "TPF_EDGE_RATE=0")
	sink, err := listenIn(l.n.name("lan"), "192.168.88.43:5001")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sink.Close() })
	go serveSink(sink)
	r := l.addRouter("r1")
	l.startAgent("agent", r)
	path := "/api/routers/" + r.ID + "/transient-forwarding"
	f := l.api.post(path, `{"expire_after_minutes":60,"dst_port":5001,"dst_address":"192.168.88.43","allow_from":"10.10.1.2"}`)
	l.api.waitStatusWithin(path+"/"+f["id"].(string), "active", 90*time.Second)
	port := int(f["port"].(float64))

	const rounds, each = 3, 3 * time.Second
	var relay, direct []float64
	for b.Loop() {
		relay, direct = nil, nil
		for range rounds {
			relay = append(relay, bulk(b, l.n.name("client"), fmt.Sprintf("10.10.1.1:%d", port), each))
			direct = append(direct, bulk(b, l.n.name("edge"), fmt.Sprintf("%s:%d", r.TunnelAddress, port), each))
		}
	}
	slices.Sort(relay)
	slices.Sort(direct)
	b.ReportMetric(relay[rounds/2]/1e6, "relay-MB/s")
	b.ReportMetric(direct[rounds/2]/1e6, "direct-MB/s")
	b.ReportMetric(relay[rounds/2]/direct[rounds/2], "relay/direct")
}

// serveSink reads each connection to its end and answers with the number
// of bytes it read (8 bytes, big endian), until l closes.
func serveSink(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			n, _ := io.Copy(io.Discard, c)
			binary.Write(c, binary.BigEndian, uint64(n))
		}()
	}
}

// bulk sends to a sink at addr from namespace ns for d and returns the
// bytes per second the sink received, counted until its answer arrived.
func bulk(tb testing.TB, ns, addr string, d time.Duration) float64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dialIn(ctx, ns, "tcp", addr)
	if err != nil {
		tb.Fatalf("dial %s from %s: %v", addr, ns, err)
	}
	defer c.Close()
	buf := make([]byte, 256<<10)
	start := time.Now()
	c.SetDeadline(start.Add(d + 30*time.Second))
	for time.Since(start) < d {
		if _, err := c.Write(buf); err != nil {
			tb.Fatalf("send to %s: %v", addr, err)
		}
	}
	c.(*net.TCPConn).CloseWrite()
	var n uint64
	if err := binary.Read(c, binary.BigEndian, &n); err != nil {
		tb.Fatalf("the sink's count through %s: %v", addr, err)
	}
	return float64(n) / time.Since(start).Seconds()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
