package storetest

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/store"
)

// Fleet is the fixture most tests start from: a fresh database holding one
// region (eu1: ports 50000–50999, edge tunnel address 10.99.0.1), one
// account (acme) and one router (r1 at tunnel address 10.99.0.2).
type Fleet struct {
	Pool       *pgxpool.Pool
	Store      *store.Store
	Service    *forwards.Service
	Principal  fleet.Principal
	Region     fleet.Region
	Router     fleet.Router
	APIToken   string
	AgentToken string
}

// NewFleet creates the fixture with everything created at at.
func NewFleet(t testing.TB, at time.Time) *Fleet {
	t.Helper()
	ctx := context.Background()
	f := &Fleet{Pool: New(t)}
	f.Store = store.New(f.Pool)
	f.Service = forwards.New(f.Store)
	var err error
	f.Region, err = f.Store.CreateRegion(ctx, fleet.Region{
		ID: "eu1", EntryPoint: "eu1.example.net", Ports: fleet.PortRange{Min: 50000, Max: 50999},
		EdgeTunnelAddress: netip.MustParseAddr("10.99.0.1"), CreatedAt: at,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, f.APIToken, err = f.Store.CreateAccount(ctx, "acme", at); err != nil {
		t.Fatal(err)
	}
	if f.Principal, err = f.Store.Authenticate(ctx, f.APIToken); err != nil {
		t.Fatal(err)
	}
	f.Router, f.AgentToken, err = f.Service.CreateRouter(ctx, f.Principal, forwards.NewRouter{
		Name: "r1", Region: "eu1", TunnelAddress: netip.MustParseAddr("10.99.0.2"),
	}, at)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Forward creates a forward on the router to 192.168.88.43:22 from
// 81.2.69.0/24, lasting d from at.
func (f *Fleet) Forward(t testing.TB, d time.Duration, at time.Time) fleet.Forward {
	t.Helper()
	fw, err := f.Service.CreateForward(context.Background(), f.Principal, f.Router.ID, fleet.NewForward{
		DstAddress: netip.MustParseAddr("192.168.88.43"), DstPort: 22,
		AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: d,
	}, at)
	if err != nil {
		t.Fatal(err)
	}
	return fw
}
