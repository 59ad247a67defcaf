package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/edge"
)

// BenchmarkTimeToRule measures the time from the API's answer to a POST to
// the forward's dst-nat rule being present on the (emulated) router: the
// controller's notify, the hub's push, the agent's pass. Run it with
// -benchtime=100x for the figure in the README; it reports the median and
// 99th percentile.
func BenchmarkTimeToRule(b *testing.B) {
	w := newWorld(b, "7.18.2")
	w.startAgent(w.ctrl.URL)
	body := createBody(60)
	url := w.ctrl.URL + forwardsPath(w.router)
	var took []time.Duration
	for b.Loop() {
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
		for w.tpfRules()[f.ID+"/dstnat"] == nil {
			if time.Since(start) > 30*time.Second {
				b.Fatal("the rule never arrived")
			}
			time.Sleep(500 * time.Microsecond)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(took[(len(took)*99)/100].Microseconds())/1000, "ms-p99")
}

// BenchmarkAgentMemory runs the real tpf-agent binary against the controller
// and the emulated router with 100 forwards and reports its resident memory
// once it has held them for a few passes.
func BenchmarkAgentMemory(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "tpf-agent")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "../agent/cmd/tpf-agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	w := newWorld(b, "7.18.2")
	now := time.Now().UTC().Truncate(time.Second)
	for range 100 {
		w.create(now, 60, false)
	}
	for b.Loop() {
		cmd := exec.Command(bin)
		cmd.Env = []string{
			"TPF_CONTROLLER_URL=" + w.ctrl.URL, "TPF_AGENT_TOKEN=" + w.agentToken,
			"TPF_ROUTEROS_ADDRESS=" + w.ros.Addr(), "TPF_ROUTEROS_USER=tpf", "TPF_ROUTEROS_PASSWORD=s3cret",
			"TPF_LOG_LEVEL=warn",
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for len(w.tpfRules()) < 100 {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				b.Fatalf("only %d rules arrived", len(w.tpfRules()))
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(3 * time.Second) // a few steady-state passes and heartbeats
		rss, err := residentKB(cmd.Process.Pid)
		cmd.Process.Kill()
		cmd.Wait()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(rss)/1024, "MiB-RSS")
	}
}

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

func residentKB(pid int) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.Fields(rest)[0])
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}
