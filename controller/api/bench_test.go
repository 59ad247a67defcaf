package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tpf-dev/tpf/controller/api"
	"github.com/tpf-dev/tpf/controller/fleet"
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
// inserts, reported as creates/s. Beside them their parts: the service's
// create and get without HTTP, and an HTTP round trip to a handler that
// answers a constant.
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
	body, err := json.Marshal(seedRequest())
	if err != nil {
		b.Fatal(err)
	}
	created := e.create(routers[0], e.token, body)

	// Each figure is one client on one keep-alive connection that writes a
	// request and reads its answer on the calling goroutine, as a load
	// generator (wrk) does, and as the pgx floors below do: what is
	// measured is the server's work, not a client's goroutines.
	client := dialRaw(b, e.srv.URL, e.token)
	b.Run("api-create", func(b *testing.B) {
		path := e.forwardsPath(routers[0])
		for b.Loop() {
			if err := client.expect("POST", path, body, http.StatusCreated); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("api-get", func(b *testing.B) {
		path := e.forwardsPath(routers[0]) + "/" + created.ID
		for b.Loop() {
			if err := client.expect("GET", path, nil, http.StatusOK); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The parts of those: the service's calls without HTTP, and HTTP
	// without the service (a handler that answers a constant).
	nf := fleet.NewForward{DstAddress: netip.MustParseAddr("192.168.88.43"), DstPort: 22,
		AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: 2 * time.Hour}
	b.Run("service-create", func(b *testing.B) {
		for b.Loop() {
			if _, err := svc.CreateForward(ctx, p, routers[1], nf, seedNow); err != nil {
				b.Fatal(err)
			}
		}
	})
	createdID := uuid.MustParse(created.ID)
	b.Run("service-get", func(b *testing.B) {
		for b.Loop() {
			if _, err := svc.Forward(ctx, p.AccountID, routers[0], createdID); err != nil {
				b.Fatal(err)
			}
		}
	})
	empty := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{}`)
	}))
	b.Cleanup(empty.Close)
	b.Run("http-empty", func(b *testing.B) {
		client := dialRaw(b, empty.URL, e.token)
		for b.Loop() {
			if err := client.expect("POST", "/x", body, http.StatusOK); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("api-create-c16", func(b *testing.B) {
		var next atomic.Int64
		parallel(b, func(pb *testing.PB) {
			path := e.forwardsPath(routers[next.Add(1)-1])
			client := dialRaw(b, e.srv.URL, e.token)
			for pb.Next() {
				if err := client.expect("POST", path, body, http.StatusCreated); err != nil {
					b.Error(err)
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

// rawClient is one keep-alive HTTP/1.1 connection: do writes a request and
// reads its answer on the calling goroutine.
type rawClient struct {
	conn net.Conn
	r    *bufio.Reader
	head string // Host and Authorization lines
	req  bytes.Buffer
}

func dialRaw(b *testing.B, serverURL, token string) *rawClient {
	u, err := url.Parse(serverURL)
	if err != nil {
		b.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return &rawClient{conn: conn, r: bufio.NewReader(conn), head: "Host: " + u.Host + "\r\nAuthorization: Bearer " + token + "\r\n"}
}

// expect sends one request and returns an error unless the answer has
// status want; the body is read and dropped.
func (c *rawClient) expect(method, path string, body []byte, want int) error {
	c.req.Reset()
	fmt.Fprintf(&c.req, "%s %s HTTP/1.1\r\n%s", method, path, c.head)
	if body != nil {
		fmt.Fprintf(&c.req, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(body))
	}
	c.req.WriteString("\r\n")
	c.req.Write(body)
	if _, err := c.conn.Write(c.req.Bytes()); err != nil {
		return err
	}
	res, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return err
	}
	got, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return err
	}
	if res.StatusCode != want {
		return fmt.Errorf("%s %s: got %d %s, want %d", method, path, res.StatusCode, got, want)
	}
	return nil
}
