package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
)

// topologies are the two ways the load meets the controller: everything on
// one replica, or the agents on replica A and the API writes on replica B
// of the same database (the change reaches A by NOTIFY).
var topologies = []struct {
	name     string
	replicas int
}{
	{"one-replica", 1},
	{"two-replicas", 2},
}

// BenchmarkMixedLoad is the acceptance load of DESIGN.md invariant 7 through
// the real API, hub, agents and emulated routers: 4 HTTP workers each doing
// create → DELETE → repeated DELETE cycles over 20 routers whose 20 agents
// report every set they apply (and resync every second), while the expiry
// clock runs on each replica. It reports the DELETE latency (of every
// answered DELETE, first and repeated, failed or not), the create p99 and
// the count of 5xx answers, and fails on any 5xx, any unexpected answer and
// any error or deadlock in the controller's log.
//
// Each worker runs b.N cycles, or 500 when b.N is 1 (the default
// -benchtime runs it once):
//
//	go test ./e2e/ -run '^$' -bench MixedLoad -benchtime=1x
func BenchmarkMixedLoad(b *testing.B) {
	for _, top := range topologies {
		b.Run(top.name, func(b *testing.B) {
			const workers, routers = 4, 20
			cycles := b.N
			if b.N == 1 {
				cycles = 500
			}
			c := newCluster(b, clusterConfig{replicas: top.replicas, routers: routers})
			c.startAgents(time.Second)
			b.ResetTimer()
			res := c.mixedLoad(workers, cycles)
			b.StopTimer()
			requests := len(res.creates) + len(res.deletes)
			b.ReportMetric(0, "ns/op") // one op is a whole load; the figures are below
			b.ReportMetric(percentile(res.deletes, 0.50), "delete-p50-ms")
			b.ReportMetric(percentile(res.deletes, 0.99), "delete-p99-ms")
			b.ReportMetric(percentile(res.creates, 0.99), "create-p99-ms")
			b.ReportMetric(float64(res.fiveXX), "5xx")
			b.ReportMetric(float64(requests)/res.took.Seconds(), "req/s")
			b.Logf("%s: %d workers × %d cycles over %d routers in %v: delete p50 %.1f ms, p99 %.1f ms, max %.1f ms; create p99 %.1f ms; %d 5xx; %d deadlocks logged",
				top.name, workers, cycles, routers, res.took.Round(time.Millisecond),
				percentile(res.deletes, 0.50), percentile(res.deletes, 0.99), percentile(res.deletes, 1),
				percentile(res.creates, 0.99), res.fiveXX, c.logs.count("deadlock detected"))
			c.checkAnswers(res)
			c.checkLog()
			if b.Failed() {
				b.FailNow()
			}
		})
	}
}

// TestMixedLoad is a short BenchmarkMixedLoad without timing: 2 workers ×
// 50 cycles over 5 routers, in both topologies. It fails on any 5xx, any
// unexpected answer, any error or deadlock in the controller's log, and,
// after a clean load, when the fleet does not settle (every forward
// removed, no tpf rule left on any router, every agent's newest set
// reported).
//
// It is not parallel, nor are the tests below: each loads both cores on
// purpose, which would skew the timing other tests of the package check.
func TestMixedLoad(t *testing.T) {
	for _, top := range topologies {
		t.Run(top.name, func(t *testing.T) {
			c := newCluster(t, clusterConfig{replicas: top.replicas, routers: 5})
			c.startAgents(200 * time.Millisecond)
			res := c.mixedLoad(2, 50)
			c.checkAnswers(res)
			if !t.Failed() {
				// A forward whose DELETEs failed is rightly still live, so
				// the fleet settles only after a clean load.
				c.settled(30 * time.Second)
			}
			c.checkLog()
		})
	}
}

// TestExpiryBurst: 400 one-minute forwards over 10 routers come due in the
// same instant (the controller's clock jumps past their expiry) while the
// agents keep reporting them applied until the new sets reach them; the
// expiry clocks of both replicas end them. Then the same again with 400
// two-minute forwards (two bursts make a lock-order bug likelier to show).
// Nothing may fail: no error in the controller's log, every forward of the
// burst ends removed and its rules gone from the routers, and every agent's
// report of its newest set arrived.
func TestExpiryBurst(t *testing.T) {
	const routers, perBurst, bursts, workers = 10, 400, 2, 4
	c := newCluster(t, clusterConfig{replicas: 2, routers: routers, minExpireMinutes: 1})

	// Burst k is of (k+1)-minute forwards. All are created before the
	// agents start, so that the bursts are the only contention this test
	// looks at.
	latest := make([]time.Time, bursts) // the last expiry of each burst
	var mu sync.Mutex
	var wg sync.WaitGroup
	for k := range bursts {
		for w := range workers {
			wg.Go(func() {
				for i := w; i < perBurst; i += workers {
					s := c.sites[i%routers]
					status, b, _, err := c.do(c.api(), "POST", forwardsPath(s.router), createBody(k+1))
					if err != nil || status != http.StatusCreated {
						t.Errorf("create: %d %s %v", status, b, err)
						return
					}
					var f struct {
						ExpiresAt time.Time `json:"expires_at"`
					}
					if err := json.Unmarshal(b, &f); err != nil {
						t.Errorf("create: %v in %s", err, b)
						return
					}
					mu.Lock()
					if f.ExpiresAt.After(latest[k]) {
						latest[k] = f.ExpiresAt
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	if t.Failed() {
		t.FailNow()
	}
	c.startAgents(100 * time.Millisecond) // frequent reports: the burst meets many
	c.waitFor("every forward active with its rule on its router", time.Minute, func() bool {
		return c.forwardsNotIn(fleet.StatusActive) == 0 && c.tpfRules() == bursts*perBurst
	})

	for k := range bursts {
		c.clock.Advance(latest[k].Sub(c.clock.Now()) + time.Second)
		start := time.Now()
		removed, rules := (k+1)*perBurst, (bursts-k-1)*perBurst
		c.waitFor(fmt.Sprintf("burst %d removed from the routers and confirmed, and every newest set reported", k+1), time.Minute, func() bool {
			return c.forwardsIn(fleet.StatusRemoved) == removed && c.tpfRules() == rules && len(c.staleRouters()) == 0
		})
		t.Logf("burst %d: %d forwards over %d routers ended and removed %v after they came due",
			k+1, perBurst, routers, time.Since(start).Round(time.Millisecond))
	}
	c.checkLog()
}
