package hub_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/hub"
	"github.com/tpf-dev/tpf/controller/store/storetest"
)

// TestMain lets the benchmark re-run this binary as a crowd of agents in a
// process of its own, so their memory is not counted as the controller's.
func TestMain(m *testing.M) {
	if url := os.Getenv("TPF_HUB_BENCH_AGENTS_URL"); url != "" {
		runAgents(url, os.Getenv("TPF_HUB_BENCH_AGENTS_TOKENS"))
		return
	}
	os.Exit(m.Run())
}

// runAgents connects one websocket per token in the file, a few at a time,
// and reads from each (which also answers the hub's pings) until stdin
// closes.
func runAgents(url, tokenFile string) {
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx := context.Background()
	tokens := strings.Fields(string(b))
	dials := make(chan struct{}, 16)
	for _, token := range tokens {
		dials <- struct{}{}
		go func() {
			ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
			<-dials
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			for {
				if _, _, err := ws.Read(ctx); err != nil {
					return
				}
			}
		}()
	}
	bufio.NewReader(os.Stdin).ReadString('\n') // until the benchmark ends
}

// BenchmarkMemoryPerAgent connects 10,000 agents (TPF_BENCH_AGENTS) over
// websockets from a process of their own to one hub, each router holding
// one live forward, and reports the controller's heap and goroutine-stack
// growth per connected agent once every agent has its set.
func BenchmarkMemoryPerAgent(b *testing.B) {
	agents := benchAgents(b)
	f := newFixture(b)
	if _, err := f.st.CreateRegion(context.Background(), fleet.Region{
		ID: "big", EntryPoint: "big.example.net", Ports: fleet.PortRange{Min: 20000, Max: 65535},
		EdgeTunnelAddress: netip.MustParseAddr("10.99.0.1"), CreatedAt: t0,
	}); err != nil {
		b.Fatal(err)
	}
	tokens := storetest.AddCrowd(b, f.st.Pool(), f.p.AccountID, "big", agents, 20000, 24*time.Hour, t0).Tokens
	tokenFile := filepath.Join(b.TempDir(), "tokens")
	if err := os.WriteFile(tokenFile, []byte(strings.Join(tokens, "\n")), 0o600); err != nil {
		b.Fatal(err)
	}
	h, url := startHub(b, f.st, hub.Config{})

	for b.Loop() {
		before, stacksBefore, goroutinesBefore := memInUse(), stackInUse(), runtime.NumGoroutine()
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "TPF_HUB_BENCH_AGENTS_URL="+url, "TPF_HUB_BENCH_AGENTS_TOKENS="+tokenFile)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Minute)
		for h.Count() < agents {
			if time.Now().After(deadline) {
				b.Fatalf("only %d agents connected", h.Count())
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(2 * time.Second) // first sets sent, connections settled
		after, stacks, goroutines := memInUse(), stackInUse(), runtime.NumGoroutine()
		stdin.Close()
		cmd.Wait()
		b.ReportMetric(float64(after-before)/float64(agents)/1024, "KiB/agent")
		b.ReportMetric(float64(agents), "agents")
		b.ReportMetric(float64(stacks-stacksBefore)/float64(agents)/1024, "stack-KiB/agent")
		b.ReportMetric(float64(goroutines-goroutinesBefore)/float64(agents), "goroutines/agent")
	}
}

// stackInUse is the goroutine stacks in use.
func stackInUse() int64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.StackInuse)
}

// memInUse is the heap and goroutine stacks in use after a collection.
func memInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}
