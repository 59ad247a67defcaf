package api_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/tpf-dev/tpf/controller/api"
	"github.com/tpf-dev/tpf/controller/apijson"
	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// In a region whose tunnel tpf manages, a router needs only a name and a
// region: its tunnel address is allocated, and its tunnel shows up.
func TestRoutersOfManagedRegions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Config{})
	if _, err := e.store.CreateRegion(context.Background(), fleet.Region{
		ID: "eu-west1", EntryPoint: "eu-west1.example.net", Ports: fleet.PortRange{Min: 49152, Max: 65535}, CreatedAt: seedNow,
		Tunnel: fleet.RegionTunnel{Managed: true, Endpoint: "eu-west1.example.net:51820"},
	}); err != nil {
		t.Fatal(err)
	}
	res := e.do("POST", "/api/routers", e.token, map[string]any{"name": "branch-7", "region": "eu-west1"})
	if res.status != 201 {
		t.Fatalf("create: got %d %s, want 201", res.status, res.body)
	}
	r := decode[apijson.Router](t, res.body)
	if r.TunnelAddress != "100.64.0.2" || r.Tunnel == nil || r.Tunnel.State != "never" {
		t.Errorf("created router: got tunnel address %s, tunnel %+v, want 100.64.0.2 and state never", r.TunnelAddress, r.Tunnel)
	}
	res = e.do("POST", "/api/routers", e.token, map[string]any{"name": "branch-8", "region": "eu-west1", "tunnel_address": "10.99.0.9"})
	if want := unprocessable("tunnel_address", "The tunnel address field must be left out: tpf allocates it in a region whose tunnel it manages."); res.status != 422 || strings.TrimSpace(string(res.body)) != want {
		t.Errorf("address given in a managed region: got %d %s, want 422 %s", res.status, res.body, want)
	}
	// The manual region keeps asking for it.
	res = e.do("POST", "/api/routers", e.token, map[string]any{"name": "branch-9", "region": e.region.ID})
	if want := unprocessable("tunnel_address", "The tunnel address field is required."); res.status != 422 || strings.TrimSpace(string(res.body)) != want {
		t.Errorf("no address in a manual region: got %d %s, want 422 %s", res.status, res.body, want)
	}

	var regions []apijson.Region
	if err := json.Unmarshal(e.do("GET", "/api/regions", e.token, nil).body, &regions); err != nil {
		t.Fatal(err)
	}
	for _, rg := range regions {
		switch rg.ID {
		case "eu-west1":
			if rg.Tunnel.Mode != "managed" || rg.Tunnel.Prefix == nil || *rg.Tunnel.Prefix != "100.64.0.0/16" ||
				rg.Tunnel.EdgeAddress != "100.64.0.1" || *rg.Tunnel.Endpoint != "eu-west1.example.net:51820" {
				t.Errorf("managed region: got %+v", rg.Tunnel)
			}
		case e.region.ID:
			if rg.Tunnel.Mode != "manual" || rg.Tunnel.Prefix != nil {
				t.Errorf("manual region: got %+v", rg.Tunnel)
			}
		}
	}
	got := decode[apijson.Router](t, e.do("GET", "/api/routers/"+r.ID, e.token, nil).body)
	if got.Tunnel == nil || got.Tunnel.State != "never" {
		t.Errorf("router read back: got tunnel %+v", got.Tunnel)
	}

	// A forward says why it cannot be reached while the tunnel never shook
	// hands, and stops saying it once it has.
	routerID := uuid.MustParse(r.ID)
	fw := e.create(routerID, e.token, map[string]any{"expire_after_minutes": 60, "dst_port": 22, "dst_address": "192.168.88.43", "allow_from": "81.2.69.0/24"})
	if fw.TunnelError == nil || !strings.Contains(*fw.TunnelError, "has not shaken hands") {
		t.Errorf("tunnel error before any handshake: got %v", fw.TunnelError)
	}
	if _, err := e.svc().ApplyReport(context.Background(), routerID, syncproto.Report{Tunnel: &syncproto.TunnelState{
		PublicKey: "routerKEY", Peers: []syncproto.PeerState{{PublicKey: "edgeKEY", LastHandshake: seedNow}}}}, seedNow); err != nil {
		t.Fatal(err)
	}
	fw = decode[apijson.Forward](t, e.do("GET", e.forwardsPath(routerID)+"/"+fw.ID, e.token, nil).body)
	if fw.TunnelError != nil {
		t.Errorf("tunnel error after a handshake: got %q, want null", *fw.TunnelError)
	}
	e.clock.Advance(5 * time.Minute)
	fw = decode[apijson.Forward](t, e.do("GET", e.forwardsPath(routerID)+"/"+fw.ID, e.token, nil).body)
	if fw.TunnelError == nil || !strings.Contains(*fw.TunnelError, "is down") {
		t.Errorf("tunnel error five minutes later: got %v", fw.TunnelError)
	}
}
