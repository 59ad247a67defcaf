package hub_test

import (
	"context"
	"crypto/sha256"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/hub"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/controller/store/storetest"
	"github.com/tpf-dev/tpf/shared/peerlink"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// benchAgents is how many agents the fan-out benchmarks connect:
// TPF_BENCH_AGENTS, else 10,000.
func benchAgents(b *testing.B) int {
	if v := os.Getenv("TPF_BENCH_AGENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("TPF_BENCH_AGENTS=%q: want a positive number", v)
		}
		return n
	}
	return 10_000
}

// crowdAgent is the far end of one in-process agent link: it reads every
// set the hub sends and notes it.
type crowdAgent struct {
	router uuid.UUID
	// round is the last resync round this agent got a set in.
	round atomic.Int64
	// sets, when not nil, receives every set decoded (the probes).
	sets chan *syncproto.Desired
}

// fanout is one hub on real PostgreSQL with a crowd of routers, each with
// one live forward, and their agents connected over in-process links.
type fanout struct {
	st     *store.Store
	svc    *forwards.Service
	p      fleet.Principal
	h      *hub.Hub
	crowd  storetest.Crowd
	agents []*crowdAgent
	// round and got count a resync: agents bump got once per round.
	round atomic.Int64
	got   atomic.Int64
}

func newFanout(b *testing.B, n, probes int) *fanout {
	b.Helper()
	ctx := context.Background()
	f := newFixture(b)
	fo := &fanout{st: f.st, svc: forwards.New(f.st), p: f.p}
	if _, err := f.st.CreateRegion(ctx, fleet.Region{
		ID: "big", EntryPoint: "big.example.net", Ports: fleet.PortRange{Min: 20000, Max: 65535},
		EdgeTunnelAddress: netip.MustParseAddr("10.99.0.1"), CreatedAt: t0,
	}); err != nil {
		b.Fatal(err)
	}
	fo.crowd = storetest.AddCrowd(b, f.st.Pool(), f.p.AccountID, "big", n, 20000, 24*time.Hour, t0)
	// Sets are sent when they change, and at connect; the periodic resync
	// is measured on its own (resync).
	fo.h = hub.New(fo.svc, hub.Config{Resync: time.Hour})
	fo.h.Start(ctx)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	b.Cleanup(func() { cancel(); fo.h.Stop(); wg.Wait() })

	fo.round.Store(1) // the first sets
	fo.agents = make([]*crowdAgent, n)
	for i, router := range fo.crowd.Routers {
		a := &crowdAgent{router: router}
		if i < probes {
			a.sets = make(chan *syncproto.Desired, 16)
		}
		fo.agents[i] = a
		hubEnd, agentEnd := peerlink.Pipe()
		token := fo.crowd.Tokens[i]
		wg.Go(func() {
			if err := fo.h.ServeAgent(ctx, token, hubEnd); err != nil {
				b.Error(err)
			}
		})
		wg.Go(func() { fo.read(ctx, a, agentEnd) })
	}
	deadline := time.Now().Add(5 * time.Minute)
	for fo.got.Load() < int64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d agents got their first set", fo.got.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fo
}

func (fo *fanout) read(ctx context.Context, a *crowdAgent, conn peerlink.Conn) {
	defer conn.Close("bye")
	for {
		data, err := conn.Read(ctx)
		if err != nil {
			return
		}
		if r := fo.round.Load(); a.round.Load() < r {
			a.round.Store(r)
			fo.got.Add(1)
		}
		if a.sets != nil {
			if msg, err := syncproto.Decode(data); err == nil && msg.Desired != nil {
				a.sets <- msg.Desired
			}
		}
	}
}

// resync resends every agent its set, as the periodic resync and a
// restarted change listener do, and returns how long until every agent
// had it.
func (fo *fanout) resync(b *testing.B) time.Duration {
	b.Helper()
	fo.got.Store(0)
	fo.round.Add(1)
	start := time.Now()
	fo.h.Resync()
	deadline := start.Add(time.Minute)
	for fo.got.Load() < int64(len(fo.agents)) {
		if time.Now().After(deadline) {
			b.Fatalf("resync: only %d of %d agents got their set", fo.got.Load(), len(fo.agents))
		}
		time.Sleep(200 * time.Microsecond)
	}
	return time.Since(start)
}

// BenchmarkFanout connects 10,000 agents (TPF_BENCH_AGENTS) over in-process
// links to one hub on real PostgreSQL, each router holding one live
// forward, and reports, in one sitting:
//
//   - resync-ms: every agent resent its set (the periodic resync) until the
//     last one has it;
//   - resync-floor-ms: the queries that resync makes, alone (batches of
//     hub.DefaultSetBatch, hub.DefaultSetBuilders at a time), nothing sent;
//   - resync-old-ms: the database work the hub did for that before sets were
//     built in batches: per agent, a token check and a snapshot of three
//     queries, all agents at once over the same pool (oldPath below);
//   - create-set-p50-ms, create-set-p99-ms: a forward created (the service
//     call, without HTTP) until its router's agent received a set holding
//     it, 200 creates one after another on different routers while all
//     agents are connected.
func BenchmarkFanout(b *testing.B) {
	n := benchAgents(b)
	const creates = 200
	probes := min(creates, n)
	fo := newFanout(b, n, probes)
	ctx := context.Background()

	var resync, floor, old []time.Duration
	for b.Loop() {
		resync = append(resync, fo.resync(b))
		floor = append(floor, setsFloor(b, fo.svc, fo.crowd))
		old = append(old, oldPath(b, fo.st.Pool(), fo.crowd, t0))
	}
	b.ReportMetric(float64(median(resync).Microseconds())/1000, "resync-ms")
	b.ReportMetric(float64(median(floor).Microseconds())/1000, "resync-floor-ms")
	b.ReportMetric(float64(median(old).Microseconds())/1000, "resync-old-ms")
	b.ReportMetric(float64(n), "agents")

	var took []time.Duration
	for i := range creates {
		a := fo.agents[i%probes]
		for len(a.sets) > 0 {
			<-a.sets
		}
		start := time.Now()
		fw, err := fo.svc.CreateForward(ctx, fo.p, a.router, fleet.NewForward{
			DstAddress: netip.MustParseAddr("192.168.88.44"), DstPort: 22,
			AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: time.Hour,
		}, t0)
		if err != nil {
			b.Fatal(err)
		}
		for held := false; !held; {
			select {
			case d := <-a.sets:
				held = slices.ContainsFunc(d.Forwards, func(f syncproto.Forward) bool { return f.ID == fw.ID.String() })
			case <-time.After(30 * time.Second):
				b.Fatal("the set never arrived")
			}
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "create-set-p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "create-set-p99-ms")
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// setsFloor reads the sets of the whole crowd as the hub's set builders do
// (hub.DefaultSetBatch routers a query, hub.DefaultSetBuilders queries at
// a time), sending nothing, and returns how long that took.
func setsFloor(b *testing.B, svc *forwards.Service, c storetest.Crowd) time.Duration {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Value
	slots := make(chan struct{}, hub.DefaultSetBuilders)
	for i := 0; i < len(c.Routers); i += hub.DefaultSetBatch {
		secrets := map[uuid.UUID]string{}
		for j := i; j < min(i+hub.DefaultSetBatch, len(c.Routers)); j++ {
			secrets[c.Routers[j]] = c.Tokens[j]
		}
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			if _, err := svc.AgentSets(ctx, secrets, t0); err != nil {
				failed.Store(err)
			}
		})
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
	return time.Since(start)
}

// The statements the hub ran per agent and set before sets were built in
// batches (commit b9d7827): RouterByAgentToken, then AgentTarget,
// ListLiveForwards and ListDesiredAccesses in one read-only snapshot.
const (
	oldTokenCheck = `select * from routers where agent_token_hash = $1 and deleted_at is null`
	oldTarget     = `select ro.id, ro.revision, ro.tunnel_address, ro.deleted_at, rg.edge_tunnel_address,
       rg.tunnel_mode, rg.tunnel_endpoint, rg.edge_public_key
from routers ro join regions rg on rg.id = ro.region_id where ro.id = $1`
	oldForwards = `select f.*, r.entry_point,
       (r.tunnel_mode = 'managed')::boolean as tunnel_managed, ro.tunnel_handshake_at, ro.tunnel_error,
       (select count(*) from connections c where c.forward_id = f.id and c.ended_at is null)::integer as connections_active
from forwards f
join regions r on r.id = f.region_id
join routers ro on ro.id = f.router_id
where f.router_id = $1 and f.kind = 'forward' and f.ended_at is null and f.expires_at > $2
order by f.created_at, f.id`
	oldAccesses = `select f.id, f.kind, f.access_username, coalesce(f.access_password, '')::text as access_password,
       f.access_read_only, f.expires_at
from forwards f
where f.router_id = $1 and f.kind <> 'forward' and f.ended_at is null and f.expires_at > $2
order by f.created_at, f.id`
)

// oldPath runs the old per-agent statements for every router of the crowd,
// one goroutine per agent as the hub's writers did, and returns how long
// the database took for all of them.
func oldPath(b *testing.B, pool *pgxpool.Pool, c storetest.Crowd, now time.Time) time.Duration {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Value
	for i, router := range c.Routers {
		hash := sha256.Sum256([]byte(c.Tokens[i]))
		wg.Go(func() {
			err := func() error {
				rows, err := pool.Query(ctx, oldTokenCheck, hash[:])
				if err != nil {
					return err
				}
				rows.Close()
				tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
				if err != nil {
					return err
				}
				defer tx.Rollback(ctx)
				for _, q := range []struct {
					sql  string
					args []any
				}{{oldTarget, []any{router}}, {oldForwards, []any{router, now}}, {oldAccesses, []any{router, now}}} {
					rows, err := tx.Query(ctx, q.sql, q.args...)
					if err != nil {
						return err
					}
					for rows.Next() {
					}
					rows.Close()
					if err := rows.Err(); err != nil {
						return err
					}
				}
				return tx.Commit(ctx)
			}()
			if err != nil {
				failed.Store(err)
			}
		})
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
	return time.Since(start)
}
