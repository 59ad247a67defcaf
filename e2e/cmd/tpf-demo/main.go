// Command tpf-demo shows the whole path of a transient forward on one
// machine, without root: the controller with its embedded edge on
// 127.0.0.1, an emulated MikroTik router doing its NAT in user space on
// 127.0.0.2, the router's agent, and a small web server standing in for the
// LAN device 192.168.88.43:80. It creates a forward through the API and
// prints the command that connects through it. `make demo` runs it.
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
	say("router (emulated RouterOS 7.18 API) on %s, tunnel address 127.0.0.2", ros.Addr())

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
	say("POST %s\n    %s", path, body)
	start := time.Now()
	var f struct {
		ID           string `json:"id"`
		Port         int    `json:"port"`
		EntryPoint   string `json:"entry_point"`
		Status       string `json:"status"`
		TimeToExpire string `json:"time_to_expire"`
	}
	if err := api.post(path, body, &f); err != nil {
		return err
	}
	if err := waitFor(ctx, ctrlErr, func() bool { return api.get(path+"/"+f.ID, &f) == nil && f.Status == "active" }); err != nil {
		return err
	}
	say("forward %s is active after %v: rule on the router, listener on the edge", f.ID, time.Since(start).Round(time.Millisecond))

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

Revoke it and watch the connection go:

  curl -X DELETE %s%s/%s -H 'Authorization: Bearer %s'

`, f.TimeToExpire, url, base, path, f.ID, token)
	select {
	case <-ctx.Done():
		return nil
	case err := <-ctrlErr:
		return err
	}
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
