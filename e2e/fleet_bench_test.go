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
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tpf-dev/tpf/agent/daemon"
	"github.com/tpf-dev/tpf/agent/routeros"
	"github.com/tpf-dev/tpf/agent/routerostest"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/store/storetest"
	"github.com/tpf-dev/tpf/shared/forward"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// BenchmarkTimeToRuleFleet is BenchmarkTimeToRule on a controller with the
// hub's defaults (a heartbeat every 20 s), first with the emulated router's
// agent alone, then with 10,000 more agents (TPF_BENCH_AGENTS) connected
// over websockets from another process, each of their routers holding one
// live forward:
// POST sent → dst-nat rule on the emulated router, 200 forwards each time.
// The emulated router and its agent run in a process of their own (see
// startRouter), as a router does: this process holds only the controller,
// whose collections their garbage would otherwise slow. Run it with
// -benchtime 1x.
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
	rt := startRouter(b, w.ctrl.URL, w.agentToken)
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
		alone := timeToRules(b, w, rt, 200)
		clearRules(b, w, rt)
		if !connected {
			connectCrowd(b, w, c)
			connected = true
			// Steady state: the garbage of 10,000 connections made at once
			// is collected now, not in the middle of the measurement.
			runtime.GC()
		}
		crowd := timeToRules(b, w, rt, 200)
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
func clearRules(b *testing.B, w *world, rt *remoteRouter) {
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
	for n := rt.rules.Load(); n > 0; n = rt.rules.Load() {
		if time.Now().After(deadline) {
			b.Fatalf("%d rules left on the router", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// timeToRules creates count forwards on the world's router through the
// API, one after another, and returns how long each took from the POST to
// its dst-nat rule on the emulated router, sorted.
func timeToRules(b *testing.B, w *world, rt *remoteRouter, count int) []time.Duration {
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
		at, ok := rt.added(f.ID, 30*time.Second)
		if !ok {
			b.Fatal("the rule never arrived")
		}
		took = append(took, at.Sub(start))
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

// The crowd's and the router's process settings (see connectCrowd and
// startRouter).
const (
	crowdURLEnv    = "TPF_E2E_CROWD_URL"
	crowdTokensEnv = "TPF_E2E_CROWD_TOKENS"
	routerURLEnv   = "TPF_E2E_ROUTER_URL"
	routerTokenEnv = "TPF_E2E_ROUTER_TOKEN"
)

// TestMain lets connectCrowd run this binary as a crowd of agents, and
// startRouter as a router with its agent.
func TestMain(m *testing.M) {
	if url := os.Getenv(crowdURLEnv); url != "" {
		if err := runCrowd(url, os.Getenv(crowdTokensEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "crowd:", err)
			os.Exit(1)
		}
		return
	}
	if url := os.Getenv(routerURLEnv); url != "" {
		if err := runRouter(url, os.Getenv(routerTokenEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "router:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(m.Run())
}

// remoteRouter is an emulated router with its agent in a process of its own
// (runRouter), which says on its standard output when a forward's dst-nat
// rule arrives and how many tpf rules it holds.
type remoteRouter struct {
	rules atomic.Int64 // tpf rules on the router

	mu      sync.Mutex
	arrived map[string]time.Time // forward id → when its rule was seen
	waiting map[string]chan struct{}
}

// startRouter runs this binary as a router (emulated RouterOS 7.18 and its
// agent, as the world's startAgent configures it) whose agent connects to
// controllerURL with token; it goes away when the benchmark ends.
func startRouter(b *testing.B, controllerURL, token string) *remoteRouter {
	b.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), routerURLEnv+"="+controllerURL, routerTokenEnv+"="+token)
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
	rt := &remoteRouter{arrived: map[string]time.Time{}, waiting: map[string]chan struct{}{}}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			now := time.Now()
			kind, arg, _ := strings.Cut(sc.Text(), " ")
			switch kind {
			case "added":
				rt.mu.Lock()
				rt.arrived[arg] = now
				if ch, ok := rt.waiting[arg]; ok {
					close(ch)
					delete(rt.waiting, arg)
				}
				rt.mu.Unlock()
			case "rules":
				n, _ := strconv.ParseInt(arg, 10, 64)
				rt.rules.Store(n)
			}
		}
	}()
	return rt
}

// added returns when the dst-nat rule of forward id arrived on the router;
// ok is false when it did not within wait.
func (rt *remoteRouter) added(id string, wait time.Duration) (at time.Time, ok bool) {
	rt.mu.Lock()
	if at, ok := rt.arrived[id]; ok {
		rt.mu.Unlock()
		return at, true
	}
	ch, ok := rt.waiting[id]
	if !ok {
		ch = make(chan struct{})
		rt.waiting[id] = ch
	}
	rt.mu.Unlock()
	select {
	case <-ch:
	case <-time.After(wait):
		return time.Time{}, false
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.arrived[id], true
}

// runRouter is the router's process: an emulated RouterOS 7.18 and the tpf
// agent for it, connected to controllerURL. After every change to the NAT
// table it prints "added ID" for each forward whose dst-nat rule is new and
// "rules N" with the count of tpf rules; it returns when stdin closes.
func runRouter(controllerURL, token string) error {
	out := bufio.NewWriter(os.Stdout)
	held := map[string]bool{}
	ros := routerostest.New(routerostest.Config{
		Version: "7.18.2", Users: map[string]string{"tpf": "s3cret"},
		OnNATChange: func(rules []map[string]string) {
			now, n := map[string]bool{}, 0
			for _, r := range rules {
				tag, err := forward.ParseTag(r["comment"])
				if err != nil {
					continue
				}
				n++
				if r["chain"] == "dstnat" {
					now[tag.ID] = true
					if !held[tag.ID] {
						fmt.Fprintln(out, "added", tag.ID)
					}
				}
			}
			held = now
			fmt.Fprintln(out, "rules", n)
			out.Flush()
		},
	})
	if err := ros.Start("127.0.0.1:0"); err != nil {
		return err
	}
	defer ros.Close()
	d, err := daemon.New(daemon.Config{
		ControllerURL: controllerURL,
		Token:         token,
		Router:        routeros.Config{Address: ros.Addr(), User: "tpf", Password: "s3cret", Timeout: 2 * time.Second},
		Version:       "test",
		Resync:        200 * time.Millisecond,
		Heartbeat:     time.Second,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	bufio.NewReader(os.Stdin).ReadString('\n') // until the benchmark ends
	cancel()
	<-done
	return nil
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
