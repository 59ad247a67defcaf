// Command tpf-demo shows the whole path of a transient forward on one
// machine, without root: the controller with its embedded edge on
// 127.0.0.1, an emulated MikroTik router doing its NAT in user space on
// 127.0.0.2, the router's agent, and a small web server standing in for the
// LAN device 192.168.88.43:80. It creates a forward through the API and
// prints the command that connects through it. `make demo` runs it.
//
// Its region is manual: loopback stands in for the WireGuard management
// tunnel. It says so first, and why: without root it could not hold a
// tunnel's end, and with root both ends would share one network namespace,
// whose kernel routes the tunnel's addresses locally, around WireGuard.
// TestNamespacesTunnel runs a managed region across namespaces.
//
// It lives in e2e because it composes both trees in one process (the
// controller's cli with the agent's daemon and the RouterOS emulator); only
// e2e may import both.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tpf-dev/tpf/agent/daemon"
	"github.com/tpf-dev/tpf/agent/routeros"
	"github.com/tpf-dev/tpf/agent/routerostest"
	"github.com/tpf-dev/tpf/controller/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tpf-demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tpf-demo", flag.ContinueOnError)
	state := fs.String("state", ".data", "the quickstart's state directory")
	listen := fs.String("listen", "127.0.0.1:8080", "the controller's address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if getenv("DATABASE_URL") == "" {
		return errors.New("DATABASE_URL is not set (make demo starts a private PostgreSQL and sets it)")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	say := func(format string, a ...any) { fmt.Fprintf(stdout, "• "+format+"\n", a...) }
	say("%s", tunnelNote(tunnelCapable()))

	// The LAN device: a web server on loopback.
	dev, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go http.Serve(dev, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "Hello from 192.168.88.43:80, the demo device behind the router (you came from %s).\n", r.RemoteAddr)
	}))
	devAddr := netip.MustParseAddrPort(dev.Addr().String())
	say("LAN device 192.168.88.43:80 is a web server on %s", devAddr)

	// The router: RouterOS API emulator whose NAT runs in user space.
	ros := routerostest.New(routerostest.Config{
		Users: map[string]string{"tpf": "demo"},
		UserNAT: &routerostest.UserNAT{Map: func(a netip.AddrPort) netip.AddrPort {
			if a == netip.MustParseAddrPort("192.168.88.43:80") {
				return devAddr
			}
			return a
		}},
	})
	if err := ros.Start("127.0.0.1:0"); err != nil {
		return err
	}
	defer ros.Close()
	say("router (emulated RouterOS 7.18 API) on %s, tunnel address 127.0.0.2 (manual region: loopback stands in for the tunnel)", ros.Addr())

	// The controller with its embedded edge.
	// The demo polls its own API, so it lifts the per-token rate limit.
	env := map[string]string{"TPF_LISTEN": *listen, "TPF_LOG_LEVEL": "warn", "TPF_RATE_LIMIT_PER_MINUTE": "0"}
	ctrlErr := make(chan error, 1)
	go func() {
		ctrlErr <- cli.Run(ctx, []string{"quickstart", "--state", *state}, func(k string) string {
			if v, ok := env[k]; ok && getenv(k) == "" {
				return v
			}
			return getenv(k)
		}, io.Discard, stderr)
	}()
	base := "http://" + *listen
	token, err := waitFile(ctx, filepath.Join(*state, "api-token"), ctrlErr)
	if err != nil {
		return err
	}
	api := client{base: base, token: token}
	var routers []struct{ ID, Name string }
	if err := waitFor(ctx, ctrlErr, func() bool { return api.get("/api/routers", &routers) == nil }); err != nil {
		return err
	}
	var routerID string
	for _, r := range routers {
		if r.Name == "demo" {
			routerID = r.ID
		}
	}
	say("controller on %s with its edge on 127.0.0.1 (region local)", base)

	// The router's agent.
	agentToken, err := os.ReadFile(filepath.Join(*state, "agent-token"))
	if err != nil {
		return fmt.Errorf("the demo router's agent token: %w (remove %s to start afresh)", err, *state)
	}
	d, err := daemon.New(daemon.Config{
		ControllerURL: base, Token: strings.TrimSpace(string(agentToken)), Version: "demo", Logger: log,
		Router: routeros.Config{Address: ros.Addr(), User: "tpf", Password: "demo"},
	})
	if err != nil {
		return err
	}
	go d.Run(ctx)
	say("agent connected to the router's API and the controller")

	// The forward, through the API.
	path := "/api/routers/" + routerID + "/transient-forwarding"
	body := `{"expire_after_minutes":120,"dst_port":80,"dst_address":"192.168.88.43","allow_from":"127.0.0.1"}`
	var f forwardJSON
	for attempt := 1; ; attempt++ {
		say("POST %s\n    %s", path, body)
		start := time.Now()
		if err := api.post(path, body, &f); err != nil {
			return err
		}
		err := waitFor(ctx, ctrlErr, func() bool {
			return api.get(path+"/"+f.ID, &f) == nil && (f.Status == "active" || f.portTaken())
		})
		if err != nil {
			return fmt.Errorf("forward %s did not become active: %w (status %s, router error %s, edge error %s)",
				f.ID, err, f.Status, orNone(f.RouterError), orNone(f.EdgeError))
		}
		if f.Status == "active" {
			say("forward %s is active after %v: rule on the router, listener on the edge", f.ID, time.Since(start).Round(time.Millisecond))
			break
		}
		// The region's ports (49152–65535) overlap the ones Linux gives
		// outgoing connections (32768–60999): one may hold this port.
		if attempt == 3 {
			return fmt.Errorf("forward %s: the edge cannot listen: %s", f.ID, orNone(f.EdgeError))
		}
		say("port %d is held by another program on this host (%s); revoking the forward and asking for another port", f.Port, orNone(f.EdgeError))
		if err := api.do("DELETE", path+"/"+f.ID, "", nil); err != nil {
			return err
		}
	}

	url := fmt.Sprintf("http://%s:%d/", f.EntryPoint, f.Port)
	res, err := http.Get(url)
	if err != nil {
		return fmt.Errorf("through the forward: %w", err)
	}
	reply, _ := io.ReadAll(res.Body)
	res.Body.Close()
	say("GET %s answered: %s", url, strings.TrimSpace(string(reply)))
	fmt.Fprintf(stdout, `
Try it yourself (it expires %s; Ctrl-C stops the demo):

  curl %s

The demo holds a connection open through the forward. Revoke it and watch the
connection go:

  curl -X DELETE %s%s/%s -H 'Authorization: Bearer %s'

`, f.TimeToExpire, url, base, path, f.ID, token)
	cut := holdOpen(ctx, fmt.Sprintf("%s:%d", f.EntryPoint, f.Port))
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-ctrlErr:
			return err
		case d, ok := <-cut:
			if !ok {
				cut = nil // the connection could not be held; nothing to watch
				continue
			}
			var now forwardJSON
			api.get(path+"/"+f.ID, &now)
			say("the connection the demo held open through the forward (for %v) was cut; the forward is now %s, and nothing reaches the device any more",
				d.Round(time.Second), now.Status)
			cut = nil
		}
	}
}

// holdOpen opens a connection through the forward at addr and keeps it,
// idle, until the edge cuts it; it then sends how long it lasted. The
// channel closes without a value when the connection cannot be opened or
// ctx ends first.
func holdOpen(ctx context.Context, addr string) <-chan time.Duration {
	out := make(chan time.Duration, 1)
	go func() {
		defer close(out)
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return
		}
		defer c.Close()
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		start := time.Now()
		// An HTTP request without its end keeps the device's server
		// waiting: the connection stays open until the edge cuts it.
		c.Write([]byte("GET / HTTP/1.1\r\nHost: demo\r\n"))
		io.Copy(io.Discard, c)
		if ctx.Err() == nil {
			out <- time.Since(start)
		}
	}()
	return out
}

// tunnelCapable says why this process could not hold a WireGuard
// management tunnel's end (nil when it could): the edge's userspace device
// needs CAP_NET_ADMIN and /dev/net/tun, as the edge's own check does.
func tunnelCapable() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("cannot read its capabilities: %w", err)
	}
	if data[0].Effective&(1<<unix.CAP_NET_ADMIN) == 0 {
		return errors.New("it runs without root (CAP_NET_ADMIN)")
	}
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("it cannot open /dev/net/tun: %w", err)
	}
	f.Close()
	return nil
}

// tunnelNote is the demo's first line: whether it can show the management
// tunnel, and why its region uses a manual one on loopback either way.
func tunnelNote(capable error) string {
	if capable != nil {
		return "management tunnel: not shown; the demo region is manual, with loopback standing in for the tunnel, " +
			"because a WireGuard tunnel needs root (CAP_NET_ADMIN) and /dev/net/tun and " + capable.Error()
	}
	return "management tunnel: this host could hold one (root, /dev/net/tun), but both ends in one network namespace would " +
		"route the tunnel's addresses around WireGuard, so the demo region stays manual on loopback; " +
		"`go test ./e2e/ -run TestNamespacesTunnel -v` (root) runs a managed one across network namespaces"
}

// forwardJSON is what the demo reads of a forward.
type forwardJSON struct {
	ID           string  `json:"id"`
	Port         int     `json:"port"`
	EntryPoint   string  `json:"entry_point"`
	Status       string  `json:"status"`
	TimeToExpire string  `json:"time_to_expire"`
	RouterError  *string `json:"router_error"`
	EdgeError    *string `json:"edge_error"`
}

// portTaken reports whether the edge could not listen on the forward's
// port because something else on the host holds it.
func (f *forwardJSON) portTaken() bool {
	return f.EdgeError != nil && strings.Contains(*f.EdgeError, "address already in use")
}

func orNone(s *string) string {
	if s == nil {
		return "none"
	}
	return *s
}

type client struct{ base, token string }

func (c client) do(method, path, body string, out any) error {
	req, err := http.NewRequest(method, c.base+path, bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

func (c client) get(path string, out any) error { return c.do("GET", path, "", out) }

func (c client) post(path, body string, out any) error { return c.do("POST", path, body, out) }

// waitFor polls cond until it holds, the controller fails or 30 s pass.
func waitFor(ctx context.Context, ctrlErr <-chan error, cond func() bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		select {
		case err := <-ctrlErr:
			return fmt.Errorf("the controller stopped: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
	}
	return nil
}

func waitFile(ctx context.Context, name string, ctrlErr <-chan error) (string, error) {
	var s string
	err := waitFor(ctx, ctrlErr, func() bool {
		b, err := os.ReadFile(name)
		s = strings.TrimSpace(string(b))
		return err == nil && s != ""
	})
	return s, err
}
