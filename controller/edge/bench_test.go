package edge_test

import (
	"bufio"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/edge"
)

// BenchmarkTimeToConnect measures, on loopback, the time from a forward's
// creation in the controller to the first successful end-to-end exchange
// through it: the change is announced, the agent puts the rule on the
// (emulated) router, the edge opens the listener, and an echo comes back
// from the device. Run with -benchtime=100x; it reports the median and p99.
func BenchmarkTimeToConnect(b *testing.B) {
	l := newLoopback(b, edge.Config{})
	var took []time.Duration
	for b.Loop() {
		start := time.Now()
		f := l.create(time.Now().UTC().Truncate(time.Second), 60)
		for !l.echoes(f.Port) {
			if time.Since(start) > 30*time.Second {
				b.Fatal("the forward never carried traffic")
			}
			time.Sleep(time.Millisecond)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(took[(len(took)*99)/100].Microseconds())/1000, "ms-p99")
}

// echoes reports whether a line comes back through port right now.
func (l *loopback) echoes(port uint16) bool {
	c, err := l.dial(port, "127.0.0.1", 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	fmt.Fprintln(c, "ping")
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line == "ping\n"
}
