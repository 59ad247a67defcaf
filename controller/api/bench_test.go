package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/api"
	"github.com/tpf-dev/tpf/controller/forwards"
)

// benchClients is the concurrency of the -c16 benchmarks.
const benchClients = 16

// The API's create and get, end to end over loopback HTTP (auth, rate-limit
// bookkeeping, validation, the one-statement create with port allocation,
// audit and notify), beside a bare pgx insert and select of a similar row on
// the same database, so the figures can be read as ratios on a noisy
// machine; beside the insert of a forward's row alone into the forwards
// table too (pgx-insert-forward: its indexes, keys and checks, but no locks,
// audit, revisions or notification); and creates with 16 clients at once
// (each on a router of its own, all in one region) beside 16 clients' bare
// inserts, reported as creates/s.
// A change listener runs on the store, as the hub's does in serve, so API
// tokens are remembered (see store.Authenticate).
func BenchmarkForwards(b *testing.B) {
	e := newEnv(b, api.Config{})
	listenForChanges(b, e.store)
	big := e.addRegion("big", "big.example.net", 1024, 65535)
	ctx := context.Background()
	p, err := e.store.Authenticate(ctx, e.token)
	if err != nil {
		b.Fatal(err)
	}
	svc := forwards.New(e.store)
	routers := make([]uuid.UUID, benchClients)
	for i := range routers {
		r, _, err := svc.CreateRouter(ctx, p, newRouter(fmt.Sprintf("bench%d", i), big.ID), seedNow)
		if err != nil {
			b.Fatal(err)
		}
		routers[i] = r.ID
	}
	body := seedRequest()
	created := e.create(routers[0], e.token, body)

	b.Run("api-create", func(b *testing.B) {
		for b.Loop() {
			if res := e.do("POST", e.forwardsPath(routers[0]), e.token, body); res.status != http.StatusCreated {
				b.Fatalf("got %d %s", res.status, res.body)
			}
		}
	})
	b.Run("api-get", func(b *testing.B) {
		path := e.forwardsPath(routers[0]) + "/" + created.ID
		for b.Loop() {
			if res := e.do("GET", path, e.token, nil); res.status != http.StatusOK {
				b.Fatalf("got %d %s", res.status, res.body)
			}
		}
	})
	// Each client keeps its connection, as clients with keep-alive do (the
	// default keeps 2 idle per host: the rest would reconnect every time).
	e.srv.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = benchClients
	b.Run("api-create-c16", func(b *testing.B) {
		var next atomic.Int64
		parallel(b, func(pb *testing.PB) {
			path := e.forwardsPath(routers[next.Add(1)-1])
			for pb.Next() {
				if res := e.do("POST", path, e.token, body); res.status != http.StatusCreated {
					b.Errorf("got %d %s", res.status, res.body)
					return
				}
			}
		})
	})

	pool := e.store.Pool()
	if _, err := pool.Exec(ctx, `create table bench_rows (
		id uuid primary key default gen_random_uuid(), router_id uuid not null, port int not null,
		dst_address inet not null, dst_port int not null, allow_cidr cidr not null,
		created_at timestamptz not null, expires_at timestamptz not null)`); err != nil {
		b.Fatal(err)
	}
	const insert = `insert into bench_rows (router_id, port, dst_address, dst_port, allow_cidr, created_at, expires_at)
		values ($1, 50000, $2, 22, $3, now(), now() + interval '2 hours') returning id`
	dst, allow := netip.MustParseAddr("192.168.88.43"), netip.MustParsePrefix("81.2.69.0/24")
	var id uuid.UUID
	b.Run("pgx-insert", func(b *testing.B) {
		for b.Loop() {
			if err := pool.QueryRow(ctx, insert, routers[0], dst, allow).Scan(&id); err != nil {
				b.Fatal(err)
			}
		}
	})
	floor := e.addRegion("floor", "floor.example.net", 1024, 65535)
	p0, err := e.store.Authenticate(ctx, e.token)
	if err != nil {
		b.Fatal(err)
	}
	var port int
	b.Run("pgx-insert-forward", func(b *testing.B) {
		var id uuid.UUID
		for b.Loop() {
			port = 1024 + (port+1)%64512
			if err := pool.QueryRow(ctx, `insert into forwards (router_id, region_id, port, dst_address, dst_port, allow_cidr,
				masquerade, status, created_at, expires_at, created_by)
				values ($1, $2, $3, $4, 22, $5, false, 'pending', now(), now() + interval '2 hours', $6) returning id`,
				routers[0], floor.ID, port, dst, allow, p0.TokenID).Scan(&id); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pgx-select", func(b *testing.B) {
		var port int32
		for b.Loop() {
			if err := pool.QueryRow(ctx, `select port from bench_rows where id = $1`, id).Scan(&port); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pgx-insert-c16", func(b *testing.B) {
		parallel(b, func(pb *testing.PB) {
			var id uuid.UUID
			for pb.Next() {
				if err := pool.QueryRow(ctx, insert, routers[0], dst, allow).Scan(&id); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// parallel runs body on benchClients goroutines and reports ops/s.
func parallel(b *testing.B, body func(pb *testing.PB)) {
	b.SetParallelism((benchClients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	start := time.Now()
	b.RunParallel(body)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}
