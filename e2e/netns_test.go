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
	needNamespaces(t, false)
	n := newNetwork(t, manualTopology)
	bin := buildBinaries(t)
	key := n.startLAN(t)

	// The database, an account, the region with its edge token, the router.
	now := time.Now().UTC().Truncate(time.Second)
	lab := newLabDB(t, fleet.Region{ID: "lab", EntryPoint: "10.10.1.1", Ports: fleet.PortRange{Min: 40000, Max: 40999},
		EdgeTunnelAddress: netip.MustParseAddr("10.99.0.1")}, now)
	st, p := lab.st, lab.p
	ctx := context.Background()
	router, agentToken, err := forwards.New(st).CreateRouter(ctx, p, forwards.NewRouter{Name: "r1", Region: "lab", TunnelAddress: netip.MustParseAddr("10.99.0.2")}, now)
	if err != nil {
		t.Fatal(err)
	}

	// The router: its API (emulated, NAT applied to the kernel) and its agent.
	n.start(t, "router", "routeros", nil, bin("tpf-routeros-emulator"), "-listen", "127.0.0.1:8728", "-user", "tpf", "-password", "pw", "-nft-table", "tpf_router")
	// The edge host: the controller and a standalone edge.
	serveEnv := []string{"DATABASE_URL=" + lab.dbURL, "TPF_LISTEN=10.99.0.1:8080", "TPF_ALLOW_SOURCES=10.10.1.0/24", "TPF_RATE_LIMIT_PER_MINUTE=0"}
	startController := func() { n.start(t, "edge", "controller", serveEnv, bin("tpf-controller"), "serve") }
	startController()
	edgeEnv := []string{"TPF_CONTROLLER_URL=http://10.99.0.1:8080", "TPF_EDGE_TOKEN=" + lab.edgeToken, "TPF_EDGE_BIND=10.10.1.1"}
	startEdge := func() { n.start(t, "edge", "edge", edgeEnv, bin("tpf-controller"), "edge") }
	startEdge()
	n.start(t, "router", "agent", []string{"TPF_CONTROLLER_URL=http://10.99.0.1:8080", "TPF_AGENT_TOKEN=" + agentToken,
		"TPF_ROUTEROS_ADDRESS=127.0.0.1:8728", "TPF_ROUTEROS_USER=tpf", "TPF_ROUTEROS_PASSWORD=pw"}, bin("tpf-agent"))

	api := &apiClient{t: t, token: lab.apiToken, base: "http://10.99.0.1:8080", hc: n.httpClient("edge")}
	api.waitUp()
	forwardsPath := "/api/routers/" + router.ID.String() + "/transient-forwarding"
	created := api.post(forwardsPath, `{"expire_after_minutes":60,"dst_port":22,"dst_address":"192.168.88.43","allow_from":"10.10.1.2"}`)
	fid, port := created["id"].(string), int(created["port"].(float64))
	api.waitStatus(forwardsPath+"/"+fid, "active")

	ssh := func(extra ...string) *exec.Cmd { return n.ssh(key, port, extra...) }
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
		n.stop("controller")
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
		n.stop("edge")
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

// needNamespaces checks what the namespace tests need: root, the tools
// they run and, with tunnel, the TUN device userspace WireGuard needs. It
// skips without root, and fails instead under CI=true (CI runs as root and
// skips nothing), as it fails for anything else missing.
func needNamespaces(tb testing.TB, tunnel bool) {
	tb.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			tb.Fatal("this test needs root (network namespaces); CI runs as root")
		}
		tb.Skip("needs root for network namespaces; TestLoopback* cover the same flows without")
	}
	for _, tool := range []string{"ip", "nft", "/usr/sbin/sshd", "ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			tb.Fatalf("%s is missing: install iproute2, nftables, openssh-server and openssh-client", tool)
		}
	}
	if tunnel {
		f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
		if err != nil {
			tb.Fatalf("userspace WireGuard needs a TUN device: %v (in a container: --cap-add=NET_ADMIN --device /dev/net/tun)", err)
		}
		f.Close()
	}
}

// vethLink is a veth pair between two hosts, with each end's address.
type vethLink struct{ a, aAddr, b, bAddr string }

// topology is the hosts of a namespace test and the links between them.
// Every topology has the hosts client, edge, router and lan; its first
// link joins client and edge, and one joins router and lan.
type topology struct {
	hosts []string
	links []vethLink
}

// manualTopology is TestNamespaces': the edge host (controller and edge)
// reaches the router's tunnel address over a plain link, standing in for
// the operator's own VPN.
var manualTopology = topology{
	hosts: []string{"client", "edge", "router", "lan"},
	links: []vethLink{
		{"client", "10.10.1.2/24", "edge", "10.10.1.1/24"},
		{"edge", "10.99.0.1/24", "router", "10.99.0.2/24"},
		{"router", "192.168.88.1/24", "lan", "192.168.88.43/24"},
	},
}

// network is the test's namespaces, named uniquely per run.
type network struct {
	prefix string
	topo   topology
	procs  map[string]*exec.Cmd
	logs   string
}

func (n *network) name(host string) string { return n.prefix + host }

// veth returns the name of link i's end in host (a or b).
func (n *network) veth(i int, host string) string {
	if n.topo.links[i].a == host {
		return fmt.Sprintf("%sa%d", n.prefix, i)
	}
	return fmt.Sprintf("%sb%d", n.prefix, i)
}

func newNetwork(tb testing.TB, topo topology) *network {
	n := &network{prefix: fmt.Sprintf("tpf%d", os.Getpid()%100000), topo: topo, procs: map[string]*exec.Cmd{}, logs: tb.TempDir()}
	for _, h := range topo.hosts {
		run(tb, "ip", "netns", "add", n.name(h))
		tb.Cleanup(func() { exec.Command("ip", "netns", "del", n.name(h)).Run() })
		n.ip(tb, h, "link", "set", "lo", "up")
	}
	for i, l := range topo.links {
		va, vb := n.veth(i, l.a), n.veth(i, l.b)
		run(tb, "ip", "link", "add", va, "netns", n.name(l.a), "type", "veth", "peer", "name", vb, "netns", n.name(l.b))
		n.ip(tb, l.a, "addr", "add", l.aAddr, "dev", va)
		n.ip(tb, l.b, "addr", "add", l.bAddr, "dev", vb)
		n.ip(tb, l.a, "link", "set", va, "up")
		n.ip(tb, l.b, "link", "set", vb, "up")
	}
	n.ip(tb, "client", "addr", "add", "10.10.1.3/24", "dev", n.veth(0, "client")) // a source outside allow_from
	n.ip(tb, "lan", "route", "add", "default", "via", "192.168.88.1")             // the device's gateway is the router
	run(tb, "ip", "netns", "exec", n.name("router"), "sysctl", "-qw", "net.ipv4.ip_forward=1")
	return n
}

func (n *network) ip(tb testing.TB, host string, args ...string) {
	tb.Helper()
	run(tb, "ip", append([]string{"-n", n.name(host)}, args...)...)
}

func run(tb testing.TB, name string, args ...string) {
	tb.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// start runs a program in host's namespace until stop or the test's end.
func (n *network) start(tb testing.TB, host, name string, env []string, prog string, args ...string) {
	tb.Helper()
	logf, err := os.Create(filepath.Join(n.logs, name+".log"))
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.name(host), prog}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	n.procs[name] = cmd
	tb.Cleanup(func() {
		n.stop(name)
		if tb.Failed() {
			b, _ := os.ReadFile(logf.Name())
			tb.Logf("--- %s log:\n%s", name, lastLines(b, 30))
		}
	})
}

// stop ends the program started as name (SIGTERM, then SIGKILL after 5
// seconds) and waits for it.
func (n *network) stop(name string) {
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
	var c net.Conn
	err := inNamespace(ns, func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// listenIn listens on a TCP address inside a network namespace; the
// listener stays there whichever thread accepts.
func listenIn(ns, addr string) (net.Listener, error) {
	var l net.Listener
	err := inNamespace(ns, func() (err error) {
		l, err = net.Listen("tcp", addr)
		return err
	})
	return l, err
}

// inNamespace runs fn on a thread moved into the network namespace ns, so
// that the sockets fn makes are made there, and moves the thread back.
func inNamespace(ns string, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return err
	}
	defer self.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return err
	}
	defer unix.Setns(int(self.Fd()), unix.CLONE_NEWNET)
	return fn()
}

// buildBinaries builds the programs the namespace tests run and returns
// their paths: the shipped ones and tpf-router-host.
func buildBinaries(tb testing.TB) func(string) string {
	tb.Helper()
	dir := tb.TempDir()
	os.Chmod(dir, 0o755)
	cmd := exec.Command("go", "build", "-o", dir+"/", "../controller/cmd/tpf-controller", "../agent/cmd/tpf-agent",
		"../agent/cmd/tpf-routeros-emulator", "./internal/cmd/tpf-router-host")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build: %v\n%s", err, out)
	}
	return func(name string) string { return filepath.Join(dir, name) }
}

// labDB is a namespace test's database: a region, its edge token and the
// account "acme", signed in.
type labDB struct {
	dbURL     string
	st        *store.Store
	p         fleet.Principal
	apiToken  string
	edgeToken string
}

// newLabDB creates region (at now) and the account in a fresh database.
func newLabDB(tb testing.TB, region fleet.Region, now time.Time) labDB {
	tb.Helper()
	ctx := context.Background()
	l := labDB{dbURL: storetest.NewURL(tb)}
	pool, err := pgxpool.New(ctx, l.dbURL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	tn := newTenant(tb, store.New(pool), region, now)
	l.st, l.p, l.apiToken = tn.st, tn.p, tn.apiToken
	if l.edgeToken, err = forwards.New(l.st).IssueEdgeToken(ctx, region.ID); err != nil {
		tb.Fatal(err)
	}
	return l
}

// startLAN runs the LAN device's sshd on 192.168.88.43:22 and returns the
// private key it accepts.
func (n *network) startLAN(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	os.Chmod(dir, 0o755)
	key := sshKeys(tb, dir)
	n.start(tb, "lan", "sshd", nil, "/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	return key
}

// ssh returns an ssh command run from the client host with key, to port on
// the host named in extra (root@10.10.1.1, the entry point).
func (n *network) ssh(key string, port int, extra ...string) *exec.Cmd {
	args := append([]string{"netns", "exec", n.name("client"), "ssh", "-i", key, "-p", fmt.Sprint(port),
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"}, extra...)
	return exec.Command("ip", args...)
}

// sshKeys writes sshd's configuration and keys into dir and returns the
// client's private key.
func sshKeys(t testing.TB, dir string) string {
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
	t     testing.TB
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

func (a *apiClient) waitStatus(path, want string) { a.waitStatusWithin(path, want, 30*time.Second) }

// waitStatusWithin polls the forward at path until its status is want.
func (a *apiClient) waitStatusWithin(path, want string, within time.Duration) {
	a.t.Helper()
	deadline := time.Now().Add(within)
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
