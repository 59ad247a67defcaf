package tunnel_test

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// The tests that make devices run as root inside a network namespace of
// their own: TestMain makes one (`ip netns add`) and runs this test binary
// again inside it, so that every thread of the process, and every socket and
// TUN device wireguard-go makes from any of them, lives there. A test that
// needs a second host (the router) starts this binary once more in a second
// namespace as a helper process.
const (
	envNetns  = "TPF_TUNNEL_TEST_NETNS"  // set in the binary run inside the namespace
	envRole   = "TPF_TUNNEL_TEST_ROLE"   // "router" or "nocap": run a helper, not the tests
	envHelper = "TPF_TUNNEL_TEST_HELPER" // the helper's configuration, JSON
)

// nsErr says why the tests could not be moved into a namespace.
var nsErr error

func TestMain(m *testing.M) {
	switch os.Getenv(envRole) {
	case "router":
		os.Exit(helperMain(routerMain))
	case "nocap":
		os.Exit(helperMain(noCapMain))
	}
	if os.Geteuid() == 0 && os.Getenv(envNetns) == "" {
		code, err := runInNamespace()
		if err == nil {
			os.Exit(code)
		}
		nsErr = err
	}
	if os.Getenv(envNetns) != "" {
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "ip link set lo up: %v: %s\n", err, out)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// runInNamespace runs this binary with the same arguments in a new network
// namespace and returns its exit code. It fails only when it cannot make
// the namespace.
func runInNamespace() (int, error) {
	ns := fmt.Sprintf("tpf-tunnel-test-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("ip netns add %s: %v: %s", ns, err, strings.TrimSpace(string(out)))
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	// ^C reaches the child too (same process group): outlive it, to clean up.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, os.Args[0]}, os.Args[1:]...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envNetns+"="+ns)
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		if exit.ExitCode() < 0 {
			return 1, nil
		}
		return exit.ExitCode(), nil
	case err != nil:
		fmt.Fprintf(os.Stderr, "run the tests in namespace %s: %v\n", ns, err)
		return 1, nil
	}
	return 0, nil
}

// needNamespace skips (fails, under CI=true) a test that makes devices when
// it does not run in the namespace TestMain made.
func needNamespace(t testing.TB) {
	t.Helper()
	if os.Getenv(envNetns) != "" {
		return
	}
	why := "needs root, to make network namespaces and TUN devices"
	if nsErr != nil {
		why = "cannot make a network namespace: " + nsErr.Error()
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s; CI runs as root and skips nothing", why)
	}
	t.Skip(why)
}

var devices atomic.Int32

// deviceName returns a device name unique on the host: userspace devices'
// UAPI sockets share /var/run/wireguard across namespaces.
func deviceName(role string) string {
	return fmt.Sprintf("tpf%d%s%d", os.Getpid()%100000, role, devices.Add(1))
}

func run(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// helperMain runs a helper process's main: its error goes to stderr, and
// "ready" to stdout once it stands.
func helperMain(fn func(cfg []byte, ready func()) error) int {
	ready := func() { fmt.Println("ready") }
	if err := fn([]byte(os.Getenv(envHelper)), ready); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startHelper runs this binary as the helper role with cfg, under the
// command prefix wrap (`ip netns exec NS`, `setpriv …`), and waits for it to
// say ready. The helper runs until the test ends (its stdin closes).
func startHelper(t testing.TB, role string, cfg any, wrap ...string) {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	args := append(wrap, os.Args[0], "-test.run=^$")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), envRole+"="+role, envHelper+"="+string(b))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	ready := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line == "ready\n"
		io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	select {
	case ok := <-ready:
		if !ok {
			err := <-exited
			t.Fatalf("%s helper failed: %v: %s", role, err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s helper not ready after 20s: %s", role, stderr.String())
	}
}

// routerConfig is the router helper's: a userspace WireGuard device with
// the edge as its only peer, and a TCP echo server on its tunnel address.
type routerConfig struct {
	Device        string
	PrivateKey    string // base64
	EdgePublicKey string // base64
	EdgeEndpoint  string // the edge's UDP address on the veth link
	Address       string // the router's tunnel address
	EdgeAddress   string // the edge's tunnel address
	EchoPort      int
}

// routerMain plays a router like RouterOS does it: a /32 whose network is
// the edge's address, the edge as peer with a fixed endpoint and a
// keepalive (so it dials in at once), allowed address the edge's /32.
func routerMain(b []byte, ready func()) error {
	var c routerConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	priv, err := wgtypes.ParseKey(c.PrivateKey)
	if err != nil {
		return err
	}
	edge, err := wgtypes.ParseKey(c.EdgePublicKey)
	if err != nil {
		return err
	}
	tdev, err := tun.CreateTUN(c.Device, 1420)
	if err != nil {
		return fmt.Errorf("router TUN: %w", err)
	}
	dev := device.NewDevice(tdev, conn.NewDefaultBind(), &device.Logger{
		Verbosef: device.DiscardLogf,
		Errorf:   func(f string, a ...any) { fmt.Fprintf(os.Stderr, "router wireguard: "+f+"\n", a...) },
	})
	defer dev.Close()
	err = dev.IpcSet(fmt.Sprintf("private_key=%s\nlisten_port=0\nreplace_peers=true\n"+
		"public_key=%s\nendpoint=%s\npersistent_keepalive_interval=1\nreplace_allowed_ips=true\nallowed_ip=%s/32\n",
		hex.EncodeToString(priv[:]), hex.EncodeToString(edge[:]), c.EdgeEndpoint, c.EdgeAddress))
	if err != nil {
		return fmt.Errorf("router IpcSet: %w", err)
	}
	for _, args := range [][]string{
		{"addr", "add", c.Address + "/32", "peer", c.EdgeAddress + "/32", "dev", c.Device},
		{"link", "set", c.Device, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %v: %v: %s", args, err, out)
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(c.Address, fmt.Sprint(c.EchoPort)))
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	ready()
	io.Copy(io.Discard, os.Stdin) // until the test ends
	return nil
}
