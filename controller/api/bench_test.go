package api_test

import (
	"context"
	"net/http"
	"net/netip"
	"testing"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/api"
	"github.com/tpf-dev/tpf/controller/forwards"
)

// The API's create and get, end to end over loopback HTTP (auth, rate-limit
// bookkeeping, validation, the transaction with port allocation, audit and
// notify), beside a bare pgx insert and select of a similar row on the same
// database, so the figures can be read as ratios on a noisy machine.
func BenchmarkForwards(b *testing.B) {
	e := newEnv(b, api.Config{})
	big := e.addRegion("big", "big.example.net", 1024, 65535)
	ctx := context.Background()
	p, err := e.store.Authenticate(ctx, e.token)
	if err != nil {
		b.Fatal(err)
	}
	r, _, err := forwards.New(e.store).CreateRouter(ctx, p, newRouter("bench", big.ID), seedNow)
	if err != nil {
		b.Fatal(err)
	}
	body := seedRequest()
	created := e.create(r.ID, e.token, body)

	b.Run("api-create", func(b *testing.B) {
		for b.Loop() {
			if res := e.do("POST", e.forwardsPath(r.ID), e.token, body); res.status != http.StatusCreated {
				b.Fatalf("got %d %s", res.status, res.body)
			}
		}
	})
	b.Run("api-get", func(b *testing.B) {
		path := e.forwardsPath(r.ID) + "/" + created.ID
		for b.Loop() {
			if res := e.do("GET", path, e.token, nil); res.status != http.StatusOK {
				b.Fatalf("got %d %s", res.status, res.body)
			}
		}
	})

	pool := e.store.Pool()
	if _, err := pool.Exec(ctx, `create table bench_rows (
		id uuid primary key default gen_random_uuid(), router_id uuid not null, port int not null,
		dst_address inet not null, dst_port int not null, allow_cidr cidr not null,
		created_at timestamptz not null, expires_at timestamptz not null)`); err != nil {
		b.Fatal(err)
	}
	dst, allow := netip.MustParseAddr("192.168.88.43"), netip.MustParsePrefix("81.2.69.0/24")
	var id uuid.UUID
	b.Run("pgx-insert", func(b *testing.B) {
		for b.Loop() {
			err := pool.QueryRow(ctx, `insert into bench_rows (router_id, port, dst_address, dst_port, allow_cidr, created_at, expires_at)
				values ($1, 50000, $2, 22, $3, now(), now() + interval '2 hours') returning id`, r.ID, dst, allow).Scan(&id)
			if err != nil {
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
}
