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

	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/hub"
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

// runAgents connects one websocket per token in the file and reads from each
// (which also answers the hub's pings) until stdin closes.
func runAgents(url, tokenFile string) {
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx := context.Background()
	for _, token := range strings.Fields(string(b)) {
		ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go func() {
			for {
				if _, _, err := ws.Read(ctx); err != nil {
					return
				}
			}
		}()
	}
	bufio.NewReader(os.Stdin).ReadString('\n') // until the benchmark ends
}

// BenchmarkMemoryPerAgent connects 1,000 agents to one hub and reports the
// controller's heap and goroutine-stack growth per connected agent.
func BenchmarkMemoryPerAgent(b *testing.B) {
	const agents = 1000
	ctx := context.Background()
	f := newFixture(b)
	var tokens []string
	for i := range agents {
		_, token, err := forwards.New(f.st).CreateRouter(ctx, f.p, forwards.NewRouter{Name: fmt.Sprintf("r%d", i), Region: "eu1", TunnelAddress: netip.MustParseAddr("10.99.0.2")}, t0)
		if err != nil {
			b.Fatal(err)
		}
		tokens = append(tokens, token)
	}
	tokenFile := filepath.Join(b.TempDir(), "tokens")
	if err := os.WriteFile(tokenFile, []byte(strings.Join(tokens, "\n")), 0o600); err != nil {
		b.Fatal(err)
	}
	h, url := startHub(b, f.st, hub.Config{})

	for b.Loop() {
		before := memInUse()
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
		deadline := time.Now().Add(2 * time.Minute)
		for h.Count() < agents {
			if time.Now().After(deadline) {
				b.Fatalf("only %d agents connected", h.Count())
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(2 * time.Second) // first sets sent, connections settled
		after := memInUse()
		stdin.Close()
		cmd.Wait()
		b.ReportMetric(float64(after-before)/agents/1024, "KiB/agent")
	}
}

// memInUse is the heap and goroutine stacks in use after a collection.
func memInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}
