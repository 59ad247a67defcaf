package web_test

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// addManagedRegion adds region us1, whose tunnel tpf manages.
func addManagedRegion(t testing.TB, st *store.Store, at time.Time) {
	t.Helper()
	_, err := st.CreateRegion(context.Background(), fleet.Region{
		ID: "us1", EntryPoint: "us1.example.net", Ports: fleet.PortRange{Min: 51000, Max: 51999}, CreatedAt: at,
		Tunnel: fleet.RegionTunnel{Managed: true, Endpoint: "us1.example.net:51820"},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// addManagedRouter registers a router of region us1 (tpf allocates its
// tunnel address).
func addManagedRouter(t testing.TB, st *store.Store, p fleet.Principal, name string, at time.Time) fleet.Router {
	t.Helper()
	r, _, err := forwards.New(st).CreateRouter(context.Background(), p, forwards.NewRouter{Name: name, Region: "us1"}, at)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// reportTunnel is router's agent reporting its end of the tunnel at at.
func reportTunnel(t testing.TB, st *store.Store, router fleet.Router, tun syncproto.TunnelState, at time.Time) {
	t.Helper()
	ctx := context.Background()
	// A new key changes the router's set (and so its revision): the agent
	// applies that one too, and says so.
	for range 2 {
		rt, err := st.Router(ctx, router.AccountID, router.ID)
		if err != nil {
			t.Fatal(err)
		}
		rep := syncproto.Report{Revision: rt.Revision, AgentVersion: "1.4.2", Present: []string{}, Tunnel: &tun}
		if _, err := forwards.New(st).ApplyReport(ctx, router.ID, rep, at); err != nil {
			t.Fatal(err)
		}
	}
}

// Public keys of the routers' ends (WireGuard keys are 32 bytes, base64).
const (
	keyUp    = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
	keyDown  = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
	keyNever = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="
)

// tunnelFleet is the fixture's fleet (r1, in manual region eu1) and four
// routers of managed region us1, their agents connected: tun-up shook hands
// 40 s ago, tun-down 12 minutes ago, tun-never has a key but no handshake,
// tun-error could not build its tunnel. tun-down has a pending forward.
type tunnelFleet struct {
	up, down, never, failed fleet.Router
	waiting                 fleet.Forward
}

func newTunnelFleet(t testing.TB, e *env) tunnelFleet {
	t.Helper()
	st, p := e.fleet.Store, e.fleet.Principal
	now := e.clock.Now()
	addManagedRegion(t, st, t0)
	var f tunnelFleet
	f.up = addManagedRouter(t, st, p, "tun-up", t0)
	f.down = addManagedRouter(t, st, p, "tun-down", t0)
	f.never = addManagedRouter(t, st, p, "tun-never", t0)
	f.failed = addManagedRouter(t, st, p, "tun-error", t0)
	for _, r := range []fleet.Router{f.up, f.down, f.never, f.failed} {
		connectAgent(t, st, r, now)
	}
	reportTunnel(t, st, f.up, syncproto.TunnelState{PublicKey: keyUp, Peers: []syncproto.PeerState{{
		LastHandshake: now.Add(-40 * time.Second), Endpoint: "81.2.69.100:51820", RxBytes: 3 << 20, TxBytes: 2048}}}, now)
	reportTunnel(t, st, f.down, syncproto.TunnelState{PublicKey: keyDown, Peers: []syncproto.PeerState{{
		LastHandshake: now.Add(-12 * time.Minute), Endpoint: "81.2.69.100:51820", RxBytes: 1500, TxBytes: 900}}}, now)
	reportTunnel(t, st, f.never, syncproto.TunnelState{PublicKey: keyNever, Peers: []syncproto.PeerState{{}}}, now)
	reportTunnel(t, st, f.failed, syncproto.TunnelState{Error: "RouterOS 6 has no WireGuard (it needs RouterOS 7)"}, now)
	var err error
	f.waiting, err = forwards.New(st).CreateForward(context.Background(), p, f.down.ID, fleet.NewForward{
		DstAddress: netip.MustParseAddr("192.168.88.43"), DstPort: 22, AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: time.Hour,
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// fleetRows is the names of the routers the fleet page at path lists.
func fleetRows(t testing.TB, e *env, path string) string {
	t.Helper()
	res := e.get(path)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: got %d, want 200", path, res.StatusCode)
	}
	var names []string
	for _, part := range strings.Split(res.body, `<td class="name"><a href="/routers/`)[1:] {
		_, rest, _ := strings.Cut(part, `">`)
		name, _, _ := strings.Cut(rest, "</a>")
		names = append(names, name)
	}
	return strings.Join(names, " ")
}

func TestFleetTunnels(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.signIn()

	// Without a managed region every router's tunnel is the operator's, and
	// there is no tunnel tile or chip.
	res := e.get("/")
	contains(t, res.body, `<th>Tunnel</th>`, `<span class="tunnel manual" title="the region's tunnel is the operator's own VPN">manual</span>`)
	lacks(t, res.body, "tunnels down", "state=tunnel-down")

	newTunnelFleet(t, e)
	res = e.get("/")
	contains(t, res.body,
		`<span class="tunnel up">up</span>`,
		`<span class="tunnel down">down</span><div class="sub" title="`+e.clock.Now().Add(-12*time.Minute).Format(time.RFC3339)+`">last handshake 12 min ago</div>`,
		`<span class="tunnel never">never up</span>`,
		`<div class="sub error-text" title="RouterOS 6 has no WireGuard (it needs RouterOS 7)">RouterOS 6 has no WireGuard (it needs RouterOS 7)</div>`,
		`<span class="n">3</span><span class="l">tunnels down</span>`,
		`Tunnel down <span class="count">3</span>`,
		// tun-error counts among the routers with errors.
		`<span class="n">1</span><span class="l">with errors</span>`,
	)
	for path, want := range map[string]string{
		"/?state=tunnel-down":          "tun-down tun-error tun-never",
		"/?state=errors":               "tun-error",
		"/?q=tunnel+up":                "tun-up",
		"/?q=tunnel+down":              "tun-down",
		"/?q=tunnel+manual":            "r1",
		"/?q=wireguard":                "tun-error",
		"/?q=tun&state=tunnel-down":    "tun-down tun-error tun-never",
		"/?q=tun-up&state=tunnel-down": "",
		// Errors first, then connected routers whose tunnel is down.
		"/?sort=status": "tun-error tun-down tun-never r1 tun-up",
	} {
		if got := fleetRows(t, e, path); got != want {
			t.Errorf("GET %s: got rows %q, want %q", path, got, want)
		}
	}
	// The chip counts what the search leaves.
	contains(t, e.get("/?q=tun-down").body, `Tunnel down <span class="count">1</span>`)

	// A tunnel shaking hands again is up again.
	e.clock.Advance(4 * time.Minute)
	if got := fleetRows(t, e, "/?state=tunnel-down"); got != "tun-down tun-error tun-never tun-up" {
		t.Errorf("4 minutes later: got tunnels down %q, want tun-up among them", got)
	}
}

func TestRouterPageTunnel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := newTunnelFleet(t, e)
	e.signIn()
	now := e.clock.Now()

	page := func(r fleet.Router) string {
		t.Helper()
		res := e.get(routerPath(r))
		if res.StatusCode != http.StatusOK {
			t.Fatalf("router page of %s: got %d, want 200", r.Name, res.StatusCode)
		}
		return res.body
	}

	up := page(f.up)
	contains(t, up, `<span class="tunnel up">up</span>`,
		`<span title="`+now.Add(-40*time.Second).Format(time.RFC3339)+`">last handshake under a minute ago</span>`,
		`edge <span class="mono">81.2.69.100:51820</span>`, "received 3.0 MiB, sent 2.0 KiB",
		`key <span class="mono" title="`+htmlEscape(keyUp)+`">`+htmlEscape("yAnz5TF+lX…")+`</span>`)
	lacks(t, up, "Tunnel error", "waiting for the management tunnel", "(as configured)")

	down := page(f.down)
	contains(t, down, `<span class="tunnel down">down</span>`, "last handshake 12 min ago", "received 1.5 KiB, sent 900 B",
		`data-forward="`+f.waiting.ID.String()+`" data-status="pending"`)
	// The pending forward says what it waits for.
	row := down[strings.Index(down, `data-forward="`+f.waiting.ID.String()+`"`):]
	row = row[:strings.Index(row, "</tr>")]
	contains(t, row, `<div class="wait-text">waiting for the management tunnel</div>`)

	never := page(f.never)
	contains(t, never, `<span class="tunnel never">never up</span>`, `title="`+htmlEscape(keyNever)+`"`,
		// Before the agent names the edge's address, the region's is shown.
		`edge <span class="mono">us1.example.net:51820</span> <span class="sub">(as configured)</span>`)
	lacks(t, never, "last handshake")

	failed := page(f.failed)
	contains(t, failed, `<span class="tunnel never">never up</span>`,
		`<span class="k">Tunnel error</span><span class="v error-text">RouterOS 6 has no WireGuard (it needs RouterOS 7)</span>`)

	manual := page(e.fleet.Router)
	contains(t, manual, `<span class="tunnel manual">your own VPN (manual region)</span></span>`)
	lacks(t, manual, "last handshake", "Tunnel error")

	// A forward made through the form while the tunnel is down says it
	// waits for it; in a manual region it waits for the router only.
	csrf := csrfOf(t, down)
	form := map[string][]string{"csrf": {csrf}, "dst_address": {"192.168.88.50"}, "dst_port": {"443"},
		"allow_from": {"81.2.69.0/24"}, "expire_after_minutes": {"60"}}
	res := e.post(routerPath(f.down)+"/forwards", form)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create on tun-down: got %d, want 303\n%s", res.StatusCode, res.body)
	}
	contains(t, e.get(res.Header.Get("Location")).body, "It turns active once the router confirms it and its management tunnel is up.")
	res = e.post(routerPath(e.fleet.Router)+"/forwards", form)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create on r1: got %d, want 303\n%s", res.StatusCode, res.body)
	}
	created := e.get(res.Header.Get("Location")).body
	contains(t, created, "It turns active once the router confirms it.")
	lacks(t, created, "waiting for the management tunnel")
}
