package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sys/unix"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/controller/store/storetest"
)

// TestNamespaces runs the real thing across network namespaces: a client
// host, the edge host (controller and a standalone edge), a router host whose
// NAT is the kernel's (nftables, driven from the emulated router's NAT
// table by its agent's rules), and a LAN device running OpenSSH. It needs
// root; CI runs it, and without root it fails there rather than skip.
func TestNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test needs root (network namespaces); CI runs as root")
		}
		t.Skip("needs root for network namespaces; TestLoopback* cover the same flows without")
	}
	for _, tool := range []string{"ip", "nft", "/usr/sbin/sshd", "ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: install iproute2, nftables, openssh-server and openssh-client", tool)
		}
	}
	n := newNetwork(t)
	bin := buildBinaries(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)

	// The LAN device: sshd on 192.168.88.43:22.
	key := sshKeys(t, dir)
	n.start(t, "lan", "sshd", nil, "/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))

	// The database, an account, the region with its edge token, the router.
	ctx := context.Background()
	dbURL := storetest.NewURL(t)
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	st := store.New(pool)
	now := time.Now().UTC().Truncate(time.Second)
	if _, err := st.CreateRegion(ctx, fleet.Region{ID: "lab", EntryPoint: "10.10.1.1", Ports: fleet.PortRange{Min: 40000, Max: 40999},
		EdgeTunnelAddress: netip.MustParseAddr("10.99.0.1"), CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	edgeToken, err := forwards.New(st).IssueEdgeToken(ctx, "lab")
	if err != nil {
		t.Fatal(err)
	}
	_, apiToken, err := st.CreateAccount(ctx, "acme", now)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := st.Authenticate(ctx, apiToken)
	router, agentToken, err := forwards.New(st).CreateRouter(ctx, p, forwards.NewRouter{Name: "r1", Region: "lab", TunnelAddress: netip.MustParseAddr("10.99.0.2")}, now)
	if err != nil {
		t.Fatal(err)
	}

	// The router: its API (emulated, NAT applied to the kernel) and its agent.
	n.start(t, "router", "routeros", nil, bin("tpf-routeros-emulator"), "-listen", "127.0.0.1:8728", "-user", "tpf", "-password", "pw", "-nft-table", "tpf_router")
	// The edge host: the controller and a standalone edge.
	serveEnv := []string{"DATABASE_URL=" + dbURL, "TPF_LISTEN=10.99.0.1:8080", "TPF_ALLOW_SOURCES=10.10.1.0/24", "TPF_RATE_LIMIT_PER_MINUTE=0"}
	startController := func() { n.start(t, "edge", "controller", serveEnv, bin("tpf-controller"), "serve") }
	startController()
	edgeEnv := []string{"TPF_CONTROLLER_URL=http://10.99.0.1:8080", "TPF_EDGE_TOKEN=" + edgeToken, "TPF_EDGE_BIND=10.10.1.1"}
	startEdge := func() { n.start(t, "edge", "edge", edgeEnv, bin("tpf-controller"), "edge") }
	startEdge()
	n.start(t, "router", "agent", []string{"TPF_CONTROLLER_URL=http://10.99.0.1:8080", "TPF_AGENT_TOKEN=" + agentToken,
		"TPF_ROUTEROS_ADDRESS=127.0.0.1:8728", "TPF_ROUTEROS_USER=tpf", "TPF_ROUTEROS_PASSWORD=pw"}, bin("tpf-agent"))

	api := &apiClient{t: t, token: apiToken, base: "http://10.99.0.1:8080", hc: n.httpClient("edge")}
	api.waitUp()
	forwardsPath := "/api/routers/" + router.ID.String() + "/transient-forwarding"
	created := api.post(forwardsPath, `{"expire_after_minutes":60,"dst_port":22,"dst_address":"192.168.88.43","allow_from":"10.10.1.2"}`)
	fid, port := created["id"].(string), int(created["port"].(float64))
	api.waitStatus(forwardsPath+"/"+fid, "active")

	ssh := func(extra ...string) *exec.Cmd {
		args := append([]string{"netns", "exec", n.name("client"), "ssh", "-i", key, "-p", fmt.Sprint(port),
			"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"}, extra...)
		return exec.Command("ip", args...)
	}
	t.Run("allowed source", func(t *testing.T) {
		out, err := ssh("-o", "ConnectTimeout=10", "root@10.10.1.1", "echo", "hello from the device").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "hello from the device" {
			t.Fatalf("ssh through the forward: %v\n%s", err, out)
		}
	})
	t.Run("disallowed source gets no answer", func(t *testing.T) {
		out, err := ssh("-b", "10.10.1.3", "-o", "ConnectTimeout=2", "root@10.10.1.1", "true").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "timed out") {
			t.Fatalf("ssh from 10.10.1.3: got %v %q, want a connect timeout (no SYN-ACK)", err, out)
		}
	})
	t.Run("revoke cuts a live session", func(t *testing.T) {
		s := startSession(t, ssh("-o", "ConnectTimeout=10", "root@10.10.1.1", "echo ready; sleep 60"))
		api.delete(forwardsPath + "/" + fid)
		s.endsWithin(t, 1500*time.Millisecond)
	})

	// A forward that expires 15 seconds from now (created through the
	// store to backdate it), while the controller is down.
	short, err := forwards.New(st).CreateForward(ctx, p, router.ID, fleet.NewForward{DstAddress: netip.MustParseAddr("192.168.88.43"), DstPort: 22,
		AllowFrom: netip.MustParsePrefix("10.10.1.2/32"), Duration: 10 * time.Minute}, time.Now().UTC().Truncate(time.Second).Add(-10*time.Minute+15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	api.waitStatus(forwardsPath+"/"+short.ID.String(), "active")
	port = int(short.Port)
	t.Run("controller down: serving on, expiry on time", func(t *testing.T) {
		s := startSession(t, ssh("-o", "ConnectTimeout=10", "root@10.10.1.1", "echo ready; sleep 60"))
		n.stop(t, "controller")
		out, err := ssh("-o", "ConnectTimeout=5", "root@10.10.1.1", "echo", "still").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "still" {
			t.Errorf("new connection while the controller is down: %v %s", err, out)
		}
		s.endsWithin(t, time.Until(short.ExpiresAt)+1500*time.Millisecond)
	})
	startController()
	api.waitUp()

	long := api.post(forwardsPath, `{"expire_after_minutes":60,"dst_port":22,"dst_address":"192.168.88.43","allow_from":"10.10.1.2"}`)
	api.waitStatus(forwardsPath+"/"+long["id"].(string), "active")
	port = int(long["port"].(float64))
	t.Run("edge restart", func(t *testing.T) {
		n.stop(t, "edge")
		startEdge()
		deadline := time.Now().Add(20 * time.Second)
		for {
			out, err := ssh("-o", "ConnectTimeout=2", "root@10.10.1.1", "echo", "back").CombinedOutput()
			if err == nil && strings.TrimSpace(string(out)) == "back" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("ssh after the edge restarted: %v %s", err, out)
			}
		}
	})
}

// network is the test's namespaces, named uniquely per run.
type network struct {
	prefix string
	procs  map[string]*exec.Cmd
	logs   string
}

func (n *network) name(host string) string { return n.prefix + host }

func newNetwork(t *testing.T) *network {
	n := &network{prefix: fmt.Sprintf("tpf%d", os.Getpid()%100000), procs: map[string]*exec.Cmd{}, logs: t.TempDir()}
	hosts := []string{"client", "edge", "router", "lan"}
	for _, h := range hosts {
		run(t, "ip", "netns", "add", n.name(h))
		t.Cleanup(func() { exec.Command("ip", "netns", "del", n.name(h)).Run() })
		n.ip(t, h, "link", "set", "lo", "up")
	}
	// name, host A, address A, host B, address B
	links := []struct{ a, aAddr, b, bAddr string }{
		{"client", "10.10.1.2/24", "edge", "10.10.1.1/24"},
		{"edge", "10.99.0.1/24", "router", "10.99.0.2/24"},
		{"router", "192.168.88.1/24", "lan", "192.168.88.43/24"},
	}
	for i, l := range links {
		va, vb := fmt.Sprintf("%sa%d", n.prefix, i), fmt.Sprintf("%sb%d", n.prefix, i)
		run(t, "ip", "link", "add", va, "netns", n.name(l.a), "type", "veth", "peer", "name", vb, "netns", n.name(l.b))
		n.ip(t, l.a, "addr", "add", l.aAddr, "dev", va)
		n.ip(t, l.b, "addr", "add", l.bAddr, "dev", vb)
		n.ip(t, l.a, "link", "set", va, "up")
		n.ip(t, l.b, "link", "set", vb, "up")
	}
	n.ip(t, "client", "addr", "add", "10.10.1.3/24", "dev", n.prefix+"a0") // a source outside allow_from
	n.ip(t, "lan", "route", "add", "default", "via", "192.168.88.1")       // the device's gateway is the router
	run(t, "ip", "netns", "exec", n.name("router"), "sysctl", "-qw", "net.ipv4.ip_forward=1")
	return n
}

func (n *network) ip(t *testing.T, host string, args ...string) {
	t.Helper()
	run(t, "ip", append([]string{"-n", n.name(host)}, args...)...)
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// start runs a program in host's namespace until stop or the test's end.
func (n *network) start(t *testing.T, host, name string, env []string, prog string, args ...string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(n.logs, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.name(host), prog}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.procs[name] = cmd
	t.Cleanup(func() {
		n.stop(t, name)
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("--- %s log:\n%s", name, lastLines(b, 30))
		}
	})
}

func (n *network) stop(t *testing.T, name string) {
	cmd := n.procs[name]
	if cmd == nil || cmd.ProcessState != nil {
		return
	}
	cmd.Process.Signal(unix.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// httpClient dials from inside host's namespace: the socket is made there.
func (n *network) httpClient(host string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialIn(ctx, n.name(host), network, addr)
		},
	}}
}

// dialIn makes a TCP connection from inside a network namespace.
func dialIn(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, err
	}
	defer self.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, err
	}
	defer unix.Setns(int(self.Fd()), unix.CLONE_NEWNET)
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// buildBinaries builds the programs the test runs and returns their paths.
func buildBinaries(t *testing.T) func(string) string {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	cmd := exec.Command("go", "build", "-o", dir+"/", "../controller/cmd/tpf-controller", "../agent/cmd/tpf-agent", "../agent/cmd/tpf-routeros-emulator")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return func(name string) string { return filepath.Join(dir, name) }
}

// sshKeys writes sshd's configuration and keys into dir and returns the
// client's private key.
func sshKeys(t *testing.T, dir string) string {
	t.Helper()
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "host_key"))
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "client_key"))
	pub, err := os.ReadFile(filepath.Join(dir, "client_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600)
	os.MkdirAll("/run/sshd", 0o755)
	cfg := fmt.Sprintf(`Port 22
ListenAddress 192.168.88.43
HostKey %[1]s/host_key
PidFile %[1]s/sshd.pid
AuthorizedKeysFile %[1]s/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
`, dir)
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "client_key")
}

// liveSession is an ssh session that printed "ready" and then idles.
type liveSession struct {
	cmd  *exec.Cmd
	done chan error
}

func startSession(t *testing.T, cmd *exec.Cmd) *liveSession {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &liveSession{cmd: cmd, done: make(chan error, 1)}
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line
		io.Copy(io.Discard, out)
		s.done <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	select {
	case line := <-ready:
		if strings.TrimSpace(line) != "ready" {
			t.Fatalf("session: got %q (%s), want ready", line, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("session did not start: %s", stderr.String())
	}
	return s
}

func (s *liveSession) endsWithin(t *testing.T, d time.Duration) {
	t.Helper()
	start := time.Now()
	select {
	case <-s.done:
		if took := time.Since(start); took > d {
			t.Errorf("the session ended after %v, want within %v", took, d)
		}
	case <-time.After(d + 5*time.Second):
		t.Fatalf("the session was not cut within %v", d+5*time.Second)
	}
}

// apiClient calls the controller's API from the edge host's namespace.
type apiClient struct {
	t     *testing.T
	token string
	base  string
	hc    *http.Client
}

func (a *apiClient) do(method, path, body string) (int, []byte) {
	a.t.Helper()
	req, _ := http.NewRequest(method, a.base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+a.token)
	res, err := a.hc.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func (a *apiClient) waitUp() {
	a.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _ := a.do("GET", "/api/regions", ""); code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			a.t.Fatal("the controller did not come up")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (a *apiClient) post(path, body string) map[string]any {
	a.t.Helper()
	code, b := a.do("POST", path, body)
	if code != http.StatusCreated {
		a.t.Fatalf("POST %s: %d %s", path, code, b)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

func (a *apiClient) delete(path string) {
	a.t.Helper()
	if code, b := a.do("DELETE", path, ""); code != http.StatusNoContent {
		a.t.Fatalf("DELETE %s: %d %s", path, code, b)
	}
}

func (a *apiClient) waitStatus(path, want string) {
	a.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, b := a.do("GET", path, "")
		var m map[string]any
		json.Unmarshal(b, &m)
		if code == http.StatusOK && m["status"] == want {
			return
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("%s: last %d %s, want status %s", path, code, b, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
