package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/store/storetest"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// BenchmarkTimeToRuleFleet is BenchmarkTimeToRule on a controller with the
// hub's defaults (a heartbeat every 20 s), first with the emulated router's
// agent alone, then with 10,000 more agents (TPF_BENCH_AGENTS) connected
// over websockets from another process, each of their routers holding one
// live forward:
// POST answered → dst-nat rule on the emulated router, 200 forwards each
// time. Run it with -benchtime 1x.
func BenchmarkTimeToRuleFleet(b *testing.B) {
	n := 10_000
	if v := os.Getenv("TPF_BENCH_AGENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("TPF_BENCH_AGENTS=%q: want a positive number", v)
		}
	}
	w := newWorld(b, "7.18.2")
	w.stopController()
	w.ctl = startReplica(b, nil, w.st, replicaConfig{addr: w.ctrl.Listener.Addr().String()})
	w.ctrl, w.hub = w.ctl.srv, w.ctl.hub
	w.startAgent(w.ctrl.URL)
	ctx := context.Background()
	if _, err := w.st.CreateRegion(ctx, fleet.Region{
		ID: "crowd", EntryPoint: "crowd.example.net", Ports: fleet.PortRange{Min: 20000, Max: 65535},
		EdgeTunnelAddress: netip.MustParseAddr(edgeAddr), CreatedAt: time.Now(),
	}); err != nil {
		b.Fatal(err)
	}

	// The crowd's routers are there from the start; only their agents
	// connect between the two measurements.
	c := storetest.AddCrowd(b, w.st.Pool(), w.p.AccountID, "crowd", n, 20000, 24*time.Hour, time.Now().UTC())
	connected := false
	for b.Loop() {
		alone := timeToRules(b, w, 200)
		clearRules(b, w)
		if !connected {
			connectCrowd(b, w, c)
			connected = true
			// Steady state: the garbage of 10,000 connections made at once
			// is collected now, not in the middle of the measurement.
			runtime.GC()
		}
		crowd := timeToRules(b, w, 200)
		b.ReportMetric(ms(alone[len(alone)/2]), "alone-ms-p50")
		b.ReportMetric(ms(alone[len(alone)*99/100]), "alone-ms-p99")
		b.ReportMetric(ms(crowd[len(crowd)/2]), "fleet-ms-p50")
		b.ReportMetric(ms(crowd[len(crowd)*99/100]), "fleet-ms-p99")
		b.ReportMetric(float64(n), "agents")
	}
}

// clearRules revokes the world's router's forwards and waits until its
// agent has removed their rules: the agent's passes take longer with more
// rules, so each measurement starts from none.
func clearRules(b *testing.B, w *world) {
	b.Helper()
	ctx := context.Background()
	live, err := forwards.New(w.st).LiveForwards(ctx, w.p.AccountID, w.router.ID, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range live {
		if err := forwards.New(w.st).RevokeForward(ctx, w.p, w.router.ID, f.ID, time.Now().UTC().Truncate(time.Second)); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for len(w.tpfRules()) > 0 {
		if time.Now().After(deadline) {
			b.Fatalf("%d rules left on the router", len(w.tpfRules()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// timeToRules creates count forwards on the world's router through the
// API, one after another, and returns how long each took from the POST to
// its dst-nat rule on the emulated router, sorted.
func timeToRules(b *testing.B, w *world, count int) []time.Duration {
	b.Helper()
	body := createBody(60)
	url := w.ctrl.URL + forwardsPath(w.router)
	var took []time.Duration
	for range count {
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+w.apiToken)
		start := time.Now()
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var f struct{ ID string }
		err = json.NewDecoder(res.Body).Decode(&f)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusCreated {
			b.Fatalf("create: %d %v", res.StatusCode, err)
		}
		// The router's rules are read again only after it was written to:
		// reading them makes garbage, which a controller holding 10,000
		// agents in this process pays for in collections.
		for writes := -1; ; {
			if n := w.ros.Writes(); n != writes {
				writes = n
				if w.tpfRules()[f.ID+"/dstnat"] != nil {
					break
				}
			}
			if time.Since(start) > 30*time.Second {
				b.Fatal("the rule never arrived")
			}
			time.Sleep(500 * time.Microsecond)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	return took
}

// connectCrowd connects the crowd's agents to the world's controller over
// websockets from a process of their own (this test binary again, see
// TestMain), so that the controller holds them as it would in production;
// it returns once every one has its first set. The agents go away when the
// benchmark ends.
func connectCrowd(b *testing.B, w *world, c storetest.Crowd) {
	b.Helper()
	tokens := filepath.Join(b.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte(strings.Join(c.Tokens, "\n")), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), crowdURLEnv+"=ws"+strings.TrimPrefix(w.ctrl.URL, "http")+syncproto.AgentPath, crowdTokensEnv+"="+tokens)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("the crowd said %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			b.Fatal(err)
		}
	case <-time.After(5 * time.Minute):
		b.Fatal("the crowd's agents did not all get their first set")
	}
}

// The crowd process's settings (see connectCrowd).
const (
	crowdURLEnv    = "TPF_E2E_CROWD_URL"
	crowdTokensEnv = "TPF_E2E_CROWD_TOKENS"
)

// TestMain lets connectCrowd run this binary as a crowd of agents.
func TestMain(m *testing.M) {
	if url := os.Getenv(crowdURLEnv); url != "" {
		if err := runCrowd(url, os.Getenv(crowdTokensEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "crowd:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(m.Run())
}

// runCrowd connects one websocket per agent token in tokenFile, a few at a
// time, reads from each (which also answers the hub's pings), prints
// "ready" once each has had its first message, and returns when stdin
// closes.
func runCrowd(url, tokenFile string) error {
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		return err
	}
	ctx := context.Background()
	tokens := strings.Fields(string(b))
	var first sync.WaitGroup
	first.Add(len(tokens))
	dials := make(chan struct{}, 16)
	failed := make(chan error, 1)
	for _, token := range tokens {
		dials <- struct{}{}
		go func() {
			ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
			<-dials
			if err != nil {
				select {
				case failed <- err:
				default:
				}
				return
			}
			ws.SetReadLimit(syncproto.MaxMessageBytes)
			for seen := false; ; seen = true {
				if _, _, err := ws.Read(ctx); err != nil {
					return
				}
				if !seen {
					first.Done()
				}
			}
		}()
	}
	all := make(chan struct{})
	go func() { first.Wait(); close(all) }()
	select {
	case err := <-failed:
		return err
	case <-all:
	}
	fmt.Println("ready")
	bufio.NewReader(os.Stdin).ReadString('\n') // until the benchmark ends
	return nil
}
