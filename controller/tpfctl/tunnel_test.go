package tpfctl_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/tpfctl"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// addManagedRouter registers a router of region us1, whose tunnel tpf
// manages, and has its agent report tun (nil: nothing).
func (h *harness) addManagedRouter(name string, tun *syncproto.TunnelState) fleet.Router {
	h.t.Helper()
	ctx := context.Background()
	rt, _, err := forwards.New(h.fleet.Store).CreateRouter(ctx, h.fleet.Principal, forwards.NewRouter{Name: name, Region: "us1"}, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	if tun != nil {
		rep := syncproto.Report{Revision: rt.Revision, AgentVersion: "v1.4.2", Present: []string{}, Tunnel: tun}
		if _, err := h.fleet.Service.ApplyReport(ctx, rt.ID, rep, time.Now()); err != nil {
			h.t.Fatal(err)
		}
	}
	return rt
}

func TestRouterTunnels(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	_, err := h.fleet.Store.CreateRegion(ctx, fleet.Region{
		ID: "us1", EntryPoint: "us1.example.net", Ports: fleet.PortRange{Min: 51000, Max: 51999}, CreatedAt: time.Now(),
		Tunnel: fleet.RegionTunnel{Managed: true, Endpoint: "us1.example.net:51820"},
	})
	if err != nil {
		t.Fatal(err)
	}
	const key = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
	now := time.Now()
	h.addManagedRouter("tun-up", &syncproto.TunnelState{PublicKey: key, Peers: []syncproto.PeerState{{
		LastHandshake: now.Add(-40 * time.Second), Endpoint: "81.2.69.100:51820", RxBytes: 3 << 20, TxBytes: 2048}}})
	h.addManagedRouter("tun-down", &syncproto.TunnelState{PublicKey: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
		Peers: []syncproto.PeerState{{LastHandshake: now.Add(-12 * time.Minute), RxBytes: 1500, TxBytes: 900}}})
	h.addManagedRouter("tun-error", &syncproto.TunnelState{Error: "RouterOS 6 has no WireGuard"})

	r := h.run(t, "routers", "list").want(t, 0)
	r.wantOut(t, "TUNNEL")
	for name, want := range map[string][]string{
		"r1 ":        {"  manual  "},
		"tun-up ":    {"  up  "},
		"tun-down ":  {"  down  "},
		"tun-error ": {"  never  ", "tunnel: RouterOS 6 has no WireGuard"},
	} {
		line := lineOf(t, r.stdout, name)
		for _, w := range want {
			if !strings.Contains(line, w) {
				t.Errorf("routers list: the line of %s lacks %q:\n%s", name, w, line)
			}
		}
	}

	h.run(t, "routers", "get", "tun-up").want(t, 0).wantOut(t,
		"tunnel           up, last handshake ", " seconds ago)\n",
		"tunnel endpoint  81.2.69.100:51820\n",
		"tunnel traffic   received 3.0 MiB, sent 2.0 KiB\n",
		"tunnel key       "+key+"\n",
		"tunnel error     -\n")
	h.run(t, "routers", "get", "tun-down").want(t, 0).wantOut(t,
		"tunnel           down, last handshake ", " (12 minutes ago)\n", "received 1.5 KiB, sent 900 B")
	h.run(t, "routers", "get", "tun-error").want(t, 0).wantOut(t,
		"tunnel           never up: no handshake with the edge yet\n", "tunnel error     RouterOS 6 has no WireGuard\n")
	r = h.run(t, "routers", "get", "r1").want(t, 0)
	r.wantOut(t, "tunnel          manual: the region's tunnel is the operator's own VPN\n")
	if strings.Contains(r.stdout, "tunnel key") {
		t.Errorf("routers get of a manual region's router shows tunnel details:\n%s", r.stdout)
	}

	// -o json is the API's own router object.
	got := decode[tpfctl.Router](t, h.run(t, "routers", "get", "tun-up", "-o", "json").want(t, 0).stdout)
	if got.Tunnel == nil || got.Tunnel.State != "up" || got.Tunnel.PublicKey != key || got.Tunnel.RxBytes != 3<<20 {
		t.Errorf("got tunnel %+v, want up with the router's key and bytes", got.Tunnel)
	}
	if got := decode[tpfctl.Router](t, h.run(t, "routers", "get", "r1", "-o", "json").want(t, 0).stdout); got.Tunnel != nil {
		t.Errorf("r1 (manual region): got tunnel %+v, want null", got.Tunnel)
	}
}

// lineOf is the line of out that starts with prefix.
func lineOf(t testing.TB, out, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	t.Fatalf("no line starts with %q in:\n%s", prefix, out)
	return ""
}
