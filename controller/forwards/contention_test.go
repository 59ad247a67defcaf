package forwards_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tpf-dev/tpf/controller/fleet"
	"github.com/tpf-dev/tpf/controller/forwards"
	"github.com/tpf-dev/tpf/controller/store"
	"github.com/tpf-dev/tpf/controller/store/storetest"
	"github.com/tpf-dev/tpf/shared/syncproto"
)

// Contention parameters: two replicas, ten routers in two regions, every
// writer kind at once for contentionRun, then a quiet final round.
const (
	contentionRun     = 4 * time.Second
	contentionRouters = 10
	// apiWritersPerReplica API goroutines run on each replica.
	apiWritersPerReplica = 3
	// maxLivePerRouter keeps the sets small: above it, writers revoke.
	maxLivePerRouter = 15
	// opTimeout bounds one store call; nothing should ever take this long.
	opTimeout = 30 * time.Second
)

// createForward creates nf on router for p the way the API does.
//
// Written against today's store, which takes a router read beforehand
// (outside its transaction). When CreateForward takes the router's id and
// checks ownership inside its transaction, this body becomes the one line
//
//	return st.CreateForward(ctx, p, router, nf, now)
func createForward(ctx context.Context, st *forwards.Service, p fleet.Principal, router uuid.UUID, nf fleet.NewForward, now time.Time) (fleet.Forward, error) {
	return st.CreateForward(ctx, p, router, nf, now)
}

// TestContention runs every kind of writer the controller has — API writes
// (forwards and transient accesses), agent reports, edge reports and
// connection records, the expiry clock and the port grace — at once on two
// replicas (two pools, two Stores) of one
// database, as production does (DESIGN.md invariant 7: concurrent writers
// never fail each other). It fails on any error a writer gets (a deadlock or
// a serialization failure surfaces as one), and, after a final quiet round
// of reports, on any router whose rules differ from its live forwards, any
// live forward that is not active, any ended forward whose removal was
// reported but that is not removed, and any live forward left on a deleted
// router. Accesses are forwards of another kind and are held to the same; on
// top, an agent never gets an access's password after it confirmed the user
// (nor misses it before), and every live access relays to the service port
// its router last reported.
//
// It is not parallel: it loads both cores on purpose and should not share
// them with other tests, nor they with it.
func TestContention(t *testing.T) {
	ctx := context.Background()
	h := &contention{t: t, start: time.Now()}
	// Two replicas: two pools on one database, each set up as the
	// controller sets up its own, and a Store over each.
	pool := storetest.New(t)
	h.stores = [2]*store.Store{store.New(pool), store.New(storetest.Reopen(t, pool))}
	h.replicas = [2]*forwards.Service{forwards.New(h.stores[0]), forwards.New(h.stores[1])}
	h.setup(ctx)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range apiWritersPerReplica * len(h.replicas) {
		wg.Go(func() { h.apiWriter(stop, i%len(h.replicas), int64(i)) })
	}
	for _, r := range h.routers {
		wg.Go(func() { h.agent(stop, r) })
	}
	for i, region := range h.regions {
		wg.Go(func() { h.edge(stop, region, (i+1)%len(h.replicas)) })
	}
	for i := range h.replicas {
		wg.Go(func() { h.expiry(stop, i) })
	}
	wg.Go(func() { h.deleteRouters(stop) })
	time.Sleep(contentionRun) // the load's length, not synchronisation
	close(stop)
	wg.Wait()

	h.finalRound(ctx)
	h.report()
}

// contention is the test's world: the replicas, the fleet, the model of what
// the API did, and the failures seen.
type contention struct {
	t        *testing.T
	start    time.Time
	replicas [2]*forwards.Service
	stores   [2]*store.Store
	p        fleet.Principal
	regions  []string
	routers  []*routerModel

	mu     sync.Mutex
	ops    map[string]int            // successful calls by operation
	worst  map[string]time.Duration  // the slowest call by operation
	fails  map[string]map[string]int // failures by operation and kind
	sample map[string]string         // the first failure of each operation
	ended  int                       // forwards the expiry clocks ended

	endAt time.Time // the final round's clock reading
}

// routerModel is what the test knows of one router: the forwards the API
// writers created and revoked, and (its agent's state) the rules it holds.
type routerModel struct {
	id      uuid.UUID
	region  string
	replica int // the replica its agent is connected to
	// portShift moves the router's services off their default ports
	// (SSH on 2222, WinBox on 8292), as its agent reports them.
	portShift bool

	deleting atomic.Bool // DeleteRouter was called
	deleted  atomic.Bool // DeleteRouter returned

	mu       sync.Mutex
	forwards map[uuid.UUID]*modelForward

	// held is what the router holds, by forward id; only its agent
	// goroutine touches it until the final round, after wg.Wait.
	held map[uuid.UUID]bool
	// seen and confirmed are the accesses the agent was sent, and those
	// whose user it confirmed in a report that was recorded; only its agent
	// goroutine touches them.
	seen, confirmed map[uuid.UUID]bool
}

type modelForward struct {
	expiresAt time.Time
	revoked   bool
	access    bool
}

// servicePort is the port the router's service listens on, as its agent
// reports it; now and then (shift) one more, as if the operator had just
// moved it.
func (r *routerModel) servicePort(service string, shift bool) uint16 {
	port := fleet.DefaultServicePort(service)
	if r.portShift {
		port = map[string]uint16{fleet.ServiceSSH: 2222, fleet.ServiceWinbox: 8292}[service]
	}
	if shift {
		port++
	}
	return port
}

// now is the clock every writer reads: the wall clock in whole UTC seconds,
// like the API's.
func now() time.Time { return time.Now().UTC().Truncate(time.Second) }

func opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}

func (h *contention) setup(ctx context.Context) {
	t := h.t
	st := h.stores[0]
	at := now()
	for i, id := range []string{"eu1", "us1"} {
		if _, err := st.CreateRegion(ctx, fleet.Region{
			ID: id, EntryPoint: id + ".example.net", Ports: fleet.PortRange{Min: 20000, Max: 59999},
			EdgeTunnelAddress: netip.AddrFrom4([4]byte{10, 99, byte(i), 1}), CreatedAt: at,
		}); err != nil {
			t.Fatal(err)
		}
		// Served by a tpf edge: forwards are active once router and edge
		// both confirmed them, so edge reports matter.
		if err := st.SetEdgeManaged(ctx, id); err != nil {
			t.Fatal(err)
		}
		h.regions = append(h.regions, id)
	}
	_, token, err := st.CreateAccount(ctx, "acme", at)
	if err != nil {
		t.Fatal(err)
	}
	if h.p, err = st.Authenticate(ctx, token); err != nil {
		t.Fatal(err)
	}
	for i := range contentionRouters {
		region := h.regions[i%len(h.regions)]
		r, _, err := h.replicas[0].CreateRouter(ctx, h.p, forwards.NewRouter{
			Name: fmt.Sprintf("r%d", i), Region: region,
			TunnelAddress: netip.AddrFrom4([4]byte{10, 99, byte(i % len(h.regions)), byte(10 + i)}),
		}, at)
		if err != nil {
			t.Fatal(err)
		}
		h.routers = append(h.routers, &routerModel{
			id: r.ID, region: region, replica: i % len(h.replicas), portShift: i%3 == 1,
			forwards: map[uuid.UUID]*modelForward{}, held: map[uuid.UUID]bool{},
			seen: map[uuid.UUID]bool{}, confirmed: map[uuid.UUID]bool{},
		})
	}
	h.ops = map[string]int{}
	h.worst = map[string]time.Duration{}
	h.fails = map[string]map[string]int{}
	h.sample = map[string]string{}
}

// done counts a successful call of op that began at start.
func (h *contention) done(op string, start time.Time) {
	took := time.Since(start)
	h.mu.Lock()
	h.ops[op]++
	h.worst[op] = max(h.worst[op], took)
	h.mu.Unlock()
}

// fail records a failed call of op.
func (h *contention) fail(op string, err error) {
	kind := "other"
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "40P01":
			kind = "deadlock detected (40P01)"
		case "40001":
			kind = "serialization failure (40001)"
		default:
			kind = "SQLSTATE " + pgErr.Code
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fails[op] == nil {
		h.fails[op] = map[string]int{}
		h.sample[op] = err.Error()
	}
	h.fails[op][kind]++
}

func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// pickRouter returns a random router that is not being deleted, or nil.
func (h *contention) pickRouter(rng *rand.Rand) *routerModel {
	var live []*routerModel
	for _, r := range h.routers {
		if !r.deleting.Load() {
			live = append(live, r)
		}
	}
	if len(live) == 0 {
		return nil
	}
	return live[rng.IntN(len(live))]
}

// liveIDs and endedIDs are the router's forwards the model counts as live,
// and as ended, at at.
func (r *routerModel) liveIDs(at time.Time) []uuid.UUID {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uuid.UUID
	for id, f := range r.forwards {
		if !f.revoked && f.expiresAt.After(at) {
			out = append(out, id)
		}
	}
	slices.SortFunc(out, compareIDs)
	return out
}

func (r *routerModel) endedIDs(at time.Time) []uuid.UUID {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uuid.UUID
	for id, f := range r.forwards {
		if f.revoked || !f.expiresAt.After(at) {
			out = append(out, id)
		}
	}
	return out
}

// tolerated reports whether err is the not-found a call on a router being
// deleted may meet; anything else is a failure.
func tolerated(r *routerModel, err error) bool {
	return errors.Is(err, fleet.ErrNotFound) && r.deleting.Load()
}

// apiWriter creates, revokes (and revokes again) forwards and accesses and
// rotates agent tokens on random routers through one replica, as API
// requests do.
func (h *contention) apiWriter(stop <-chan struct{}, replica int, seed int64) {
	st := h.replicas[replica]
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	for k := 0; !stopped(stop); k++ {
		r := h.pickRouter(rng)
		if r == nil {
			return
		}
		live := r.liveIDs(now())
		switch {
		case k%10 == 3:
			start := time.Now()
			ctx, cancel := opContext()
			_, err := st.RotateAgentToken(ctx, h.p, r.id, now())
			cancel()
			switch {
			case err == nil:
				h.done("RotateAgentToken", start)
			case !tolerated(r, err):
				h.fail("RotateAgentToken", err)
			}
		case k%5 == 1:
			// Short-lived: created "ten minutes ago" for ten minutes, so
			// it is due one to three seconds from now and the expiry
			// clock ends it during the run.
			left := time.Duration(1+rng.IntN(3)) * time.Second
			if rng.IntN(3) == 0 {
				h.createAccess(st, r, rng, now().Add(-10*time.Minute+left), 10*time.Minute)
			} else {
				h.create(st, r, now().Add(-10*time.Minute+left), 10*time.Minute)
			}
		case k%5 == 2 && len(live) < maxLivePerRouter:
			h.createAccess(st, r, rng, now(), time.Hour)
		case len(live) > 0 && (len(live) >= maxLivePerRouter || rng.IntN(5) < 2):
			id := live[rng.IntN(len(live))]
			h.revoke(st, r, id)
			if rng.IntN(2) == 0 {
				h.revoke(st, r, id) // a repeated DELETE
			}
		case rng.IntN(10) == 0:
			if ended := r.endedIDs(now()); len(ended) > 0 {
				h.revoke(st, r, ended[rng.IntN(len(ended))]) // long gone: harmless
			}
		default:
			h.create(st, r, now(), time.Hour)
		}
	}
}

func (h *contention) create(st *forwards.Service, r *routerModel, created time.Time, d time.Duration) {
	start := time.Now()
	ctx, cancel := opContext()
	defer cancel()
	f, err := createForward(ctx, st, h.p, r.id, fleet.NewForward{
		DstAddress: netip.MustParseAddr("192.168.88.43"), DstPort: 22,
		AllowFrom: netip.MustParsePrefix("81.2.69.0/24"), Duration: d,
	}, created)
	switch {
	case err == nil:
		h.done("CreateForward", start)
		r.mu.Lock()
		r.forwards[f.ID] = &modelForward{expiresAt: f.ExpiresAt}
		r.mu.Unlock()
	case !tolerated(r, err):
		h.fail("CreateForward", err)
	}
}

// createAccess creates an SSH or WinBox access on r, as the API does.
func (h *contention) createAccess(st *forwards.Service, r *routerModel, rng *rand.Rand, created time.Time, d time.Duration) {
	start := time.Now()
	ctx, cancel := opContext()
	defer cancel()
	a, err := st.CreateAccess(ctx, h.p, r.id, fleet.NewAccess{
		Service: fleet.Services[rng.IntN(len(fleet.Services))], AllowFrom: netip.MustParsePrefix("81.2.69.0/24"),
		ReadOnly: rng.IntN(2) == 0, Duration: d,
	}, created)
	switch {
	case err == nil && a.Password == "":
		h.fail("CreateAccess", errors.New("the new access has no password"))
	case err == nil:
		h.done("CreateAccess", start)
		r.mu.Lock()
		r.forwards[a.ID] = &modelForward{expiresAt: a.ExpiresAt, access: true}
		r.mu.Unlock()
	case !tolerated(r, err):
		h.fail("CreateAccess", err)
	}
}

func (h *contention) revoke(st *forwards.Service, r *routerModel, id uuid.UUID) {
	r.mu.Lock()
	access := r.forwards[id].access
	r.mu.Unlock()
	op, revoke := "RevokeForward", st.RevokeForward
	if access {
		op, revoke = "RevokeAccess", st.RevokeAccess
	}
	start := time.Now()
	ctx, cancel := opContext()
	defer cancel()
	err := revoke(ctx, h.p, r.id, id, now())
	switch {
	case err == nil:
		h.done(op, start)
		r.mu.Lock()
		r.forwards[id].revoked = true
		r.mu.Unlock()
	case !tolerated(r, err):
		h.fail(op, err)
	}
}

// deleteRouters deletes the last three routers late in the run, on
// alternating replicas.
func (h *contention) deleteRouters(stop <-chan struct{}) {
	for i, at := range []float64{0.55, 0.65, 0.75} {
		select {
		case <-stop:
			return
		case <-time.After(time.Until(h.start.Add(time.Duration(at * float64(contentionRun))))):
		}
		r := h.routers[len(h.routers)-1-i]
		r.deleting.Store(true)
		start := time.Now()
		ctx, cancel := opContext()
		err := h.replicas[i%len(h.replicas)].DeleteRouter(ctx, h.p, r.id, now())
		cancel()
		if err != nil {
			h.fail("DeleteRouter", err)
			continue
		}
		h.done("DeleteRouter", start)
		r.deleted.Store(true)
	}
}

// agent is router r's agent: it reads its desired set, applies it to its
// (modelled) router and reports what it holds, over and over. Now and then a
// forward fails or is refused, a whole pass fails, or a rule the set no
// longer has is still there at this report and gone at a later one, as a
// real agent's removal would be.
func (h *contention) agent(stop <-chan struct{}, r *routerModel) {
	st := h.replicas[r.replica]
	rng := rand.New(rand.NewPCG(uint64(r.id.ID()), 11))
	for !stopped(stop) {
		ctx, cancel := opContext()
		set, err := st.DesiredSet(ctx, r.id, now())
		cancel()
		if err != nil {
			if tolerated(r, err) {
				return // the router is gone; so is its agent
			}
			h.fail("DesiredSet", err)
			continue
		}
		for _, a := range set.Accesses {
			id := uuid.MustParse(a.ID)
			switch {
			case r.confirmed[id] && a.Password != "":
				h.fail("DesiredSet", fmt.Errorf("access %s: the password was sent after the agent confirmed the user", id))
			case !r.seen[id] && a.Password == "":
				h.fail("DesiredSet", fmt.Errorf("access %s: sent the first time without its password", id))
			}
			r.seen[id] = true
		}
		rep, held := agentReport(set, r.held, rng, func(service string) uint16 { return r.servicePort(service, rng.IntN(10) == 0) })
		start := time.Now()
		ctx, cancel = opContext()
		_, err = st.ApplyReport(ctx, r.id, rep, now())
		cancel()
		if err != nil {
			if tolerated(r, err) {
				return
			}
			h.fail("ApplyReport", err) // a lost report
			continue
		}
		h.done("ApplyReport", start)
		r.held = held
		if rep.Error == "" {
			for _, res := range rep.Results {
				if res.State == syncproto.StateApplied {
					r.confirmed[uuid.MustParse(res.ID)] = true
				}
			}
		}
		// An agent reports after each set and pass, not in a tight loop.
		time.Sleep(time.Duration(1+rng.IntN(5)) * time.Millisecond)
	}
}

// agentReport is the report an agent that applied set to a router holding
// held would send, and what the router holds afterwards; port says where an
// access's service listens.
func agentReport(set *syncproto.Desired, held map[uuid.UUID]bool, rng *rand.Rand, port func(service string) uint16) (syncproto.Report, map[uuid.UUID]bool) {
	rep := syncproto.Report{Revision: set.Revision, AgentVersion: "test", Results: []syncproto.Result{}, Present: []string{}}
	if rng.IntN(50) == 0 {
		rep.Error = "dial 192.168.88.1:8728: connection refused"
		return rep, held
	}
	after := map[uuid.UUID]bool{}
	inSet := map[uuid.UUID]bool{}
	type item struct {
		id      string
		service string // an access's
	}
	var items []item
	for _, f := range set.Forwards {
		items = append(items, item{id: f.ID})
	}
	for _, a := range set.Accesses {
		items = append(items, item{id: a.ID, service: a.Service})
	}
	for _, f := range items {
		id := uuid.MustParse(f.id)
		inSet[id] = true
		res := syncproto.Result{ID: f.id, State: syncproto.StateApplied}
		if f.service != "" {
			res.ServicePort = port(f.service)
		}
		if !held[id] {
			switch rng.IntN(40) {
			case 0:
				res.State, res.Error = syncproto.StateFailed, "failure: already have such rule"
			case 1:
				res.State, res.Error = syncproto.StateRefused, "dst-address is not allowed"
			}
			if res.State != syncproto.StateApplied {
				res.ServicePort = 0
			}
		}
		if res.State == syncproto.StateApplied {
			after[id] = true
		}
		rep.Results = append(rep.Results, res)
	}
	// Rules the set no longer has: removed now, or still there at this
	// report and removed by a later pass.
	for id := range held {
		if !inSet[id] && rng.IntN(2) == 0 {
			after[id] = true
		}
	}
	for id := range after {
		rep.Present = append(rep.Present, id.String())
	}
	rng.Shuffle(len(rep.Results), func(i, j int) { rep.Results[i], rep.Results[j] = rep.Results[j], rep.Results[i] })
	return rep, after
}

// edge is region's edge: it reads its listener set, reports it applied
// (now and then failing one), and records connections opening and closing
// on its forwards, all in one batch in random order.
func (h *contention) edge(stop <-chan struct{}, region string, replica int) {
	st := h.replicas[replica]
	rng := rand.New(rand.NewPCG(uint64(len(region)), 13))
	open := map[string]syncproto.Connection{}
	for !stopped(stop) {
		ctx, cancel := opContext()
		l, err := st.Listeners(ctx, region, syncproto.Limits{}, now())
		cancel()
		if err != nil {
			h.fail("EdgeListeners", err)
			continue
		}
		rep := edgeReport(l, rng)
		start := time.Now()
		ctx, cancel = opContext()
		_, err = st.ApplyEdgeReport(ctx, region, rep, now())
		cancel()
		if err != nil {
			h.fail("ApplyEdgeReport", err) // a lost report
		} else {
			h.done("ApplyEdgeReport", start)
		}

		var recs []syncproto.Connection
		for id, c := range open {
			if rng.IntN(2) == 0 {
				c.End, c.Reason, c.BytesUp, c.BytesDown = now(), "client closed", 1200, 34000
				recs = append(recs, c)
				delete(open, id)
			}
		}
		for range min(len(l.Listeners), 1+rng.IntN(4)) {
			li := l.Listeners[rng.IntN(len(l.Listeners))]
			c := syncproto.Connection{
				ID: uuid.NewString(), ForwardID: li.ID, Start: now(),
				Source: netip.AddrPortFrom(netip.AddrFrom4([4]byte{81, 2, 69, byte(rng.IntN(256))}), uint16(30000+rng.IntN(30000))),
			}
			open[c.ID] = c
			recs = append(recs, c)
		}
		rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
		start = time.Now()
		ctx, cancel = opContext()
		err = st.RecordConnections(ctx, region, recs)
		cancel()
		if err != nil {
			h.fail("RecordConnections", err)
		} else {
			h.done("RecordConnections", start)
		}
	}
}

// edgeReport is the report of an edge that applied l, failing a listener
// now and then when fail is set.
func edgeReport(l *syncproto.Listeners, rng *rand.Rand) syncproto.Report {
	rep := syncproto.Report{Revision: l.Revision, AgentVersion: "test", Results: []syncproto.Result{}, Present: []string{}}
	for _, li := range l.Listeners {
		res := syncproto.Result{ID: li.ID, State: syncproto.StateApplied}
		if rng != nil && rng.IntN(30) == 0 {
			res.State, res.Error = syncproto.StateFailed, "listen tcp :"+fmt.Sprint(li.Port)+": address already in use"
		} else {
			rep.Present = append(rep.Present, li.ID)
		}
		rep.Results = append(rep.Results, res)
	}
	if rng != nil {
		rng.Shuffle(len(rep.Results), func(i, j int) { rep.Results[i], rep.Results[j] = rep.Results[j], rep.Results[i] })
	}
	return rep
}

// expiry is one replica's expiry clock: small batches, then the port grace
// (one second here, so it overlaps the routers' removal reports).
func (h *contention) expiry(stop <-chan struct{}, replica int) {
	st := h.replicas[replica]
	const batch = 25
	for !stopped(stop) {
		at := now()
		for {
			start := time.Now()
			ctx, cancel := opContext()
			n, err := st.ExpireDue(ctx, at, batch)
			cancel()
			if err != nil {
				h.fail("ExpireDue", err)
				break
			}
			h.done("ExpireDue", start)
			h.mu.Lock()
			h.ended += n
			h.mu.Unlock()
			if n < batch {
				break
			}
		}
		start := time.Now()
		ctx, cancel := opContext()
		_, err := st.ReleasePorts(ctx, at.Add(-time.Second), at)
		cancel()
		if err != nil {
			h.fail("ReleasePorts", err)
		} else {
			h.done("ReleasePorts", start)
		}
		time.Sleep(10 * time.Millisecond) // a clock's pace, not synchronisation
	}
}

// finalRound, with every writer stopped, runs the expiry clock once more
// and has every agent and edge report the set it then applies in full.
func (h *contention) finalRound(ctx context.Context) {
	t := h.t
	end := now()
	h.endAt = end
	for i := range h.replicas {
		for {
			n, err := h.replicas[i].ExpireDue(ctx, end, 500)
			if err != nil {
				t.Fatalf("final expiry: %v", err)
			}
			if n == 0 {
				break
			}
		}
	}
	for _, r := range h.routers {
		if r.deleting.Load() {
			continue
		}
		st := h.replicas[r.replica]
		set, err := st.DesiredSet(ctx, r.id, end)
		if err != nil {
			t.Fatalf("final desired set of %s: %v", r.id, err)
		}
		rep := syncproto.Report{Revision: set.Revision, AgentVersion: "test", Results: []syncproto.Result{}, Present: []string{}}
		held := map[uuid.UUID]bool{}
		for _, f := range set.Forwards {
			rep.Results = append(rep.Results, syncproto.Result{ID: f.ID, State: syncproto.StateApplied})
			rep.Present = append(rep.Present, f.ID)
			held[uuid.MustParse(f.ID)] = true
		}
		for _, a := range set.Accesses {
			rep.Results = append(rep.Results, syncproto.Result{ID: a.ID, State: syncproto.StateApplied, ServicePort: r.servicePort(a.Service, false)})
			rep.Present = append(rep.Present, a.ID)
			held[uuid.MustParse(a.ID)] = true
		}
		if _, err := st.ApplyReport(ctx, r.id, rep, end); err != nil {
			t.Fatalf("final report of %s: %v", r.id, err)
		}
		r.held = held
	}
	for i, region := range h.regions {
		st := h.replicas[(i+1)%len(h.replicas)]
		l, err := st.Listeners(ctx, region, syncproto.Limits{}, end)
		if err != nil {
			t.Fatalf("final listeners of %s: %v", region, err)
		}
		if _, err := st.ApplyEdgeReport(ctx, region, edgeReport(l, nil), end); err != nil {
			t.Fatalf("final edge report of %s: %v", region, err)
		}
	}
}

// report fails the test on every failed call and every broken invariant,
// and logs what the run did.
func (h *contention) report() {
	t := h.t
	pool := h.stores[0].Pool()

	ops := slices.Sorted(mapKeys(h.ops))
	var did []string
	for _, op := range ops {
		did = append(did, fmt.Sprintf("%s %d (slowest %v)", op, h.ops[op], h.worst[op].Round(time.Millisecond)))
	}
	t.Logf("in %v: %s; %d forwards and accesses expired", contentionRun, strings.Join(did, ", "), h.ended)
	for _, op := range slices.Sorted(mapKeys(h.fails)) {
		var kinds []string
		total := 0
		for _, k := range slices.Sorted(mapKeys(h.fails[op])) {
			kinds = append(kinds, fmt.Sprintf("%d %s", h.fails[op][k], k))
			total += h.fails[op][k]
		}
		t.Errorf("%s: %d calls failed (%s), want none; first: %s", op, total, strings.Join(kinds, ", "), h.sample[op])
	}
	// A run in which some writer never got through proves nothing.
	for _, op := range []string{"CreateForward", "RevokeForward", "CreateAccess", "RevokeAccess", "RotateAgentToken", "DeleteRouter",
		"ApplyReport", "ApplyEdgeReport", "RecordConnections", "ExpireDue", "ReleasePorts"} {
		if h.ops[op] == 0 {
			t.Errorf("%s never succeeded; the run tested nothing of it", op)
		}
	}
	if h.ended == 0 {
		t.Error("the expiry clocks ended no forward during the run")
	}

	var deleted []uuid.UUID
	for _, r := range h.routers {
		if r.deleting.Load() {
			deleted = append(deleted, r.id)
			continue
		}
		want := r.liveIDs(h.endAt)
		db := queryIDs(t, pool, `select id from forwards where router_id = $1 and ended_at is null and expires_at > $2`, r.id, h.endAt)
		held := slices.SortedFunc(mapKeys(r.held), compareIDs)
		if !slices.Equal(db, want) {
			t.Errorf("router %s: live forwards in the database %v, want the ones created and not revoked nor expired %v", r.id, db, want)
		}
		if !slices.Equal(held, db) {
			t.Errorf("router %s: holds rules %v, want its live forwards %v", r.id, held, db)
		}
		for _, s := range queryStrings(t, pool, `select id::text || ' ' || status from forwards
			where router_id = $1 and ended_at is null and expires_at > $2 and status <> 'active'`, r.id, h.endAt) {
			t.Errorf("router %s: live forward %s after its router and edge confirmed it, want active", r.id, s)
		}
		for _, s := range queryStrings(t, pool, `select id::text || ' ' || status from forwards
			where router_id = $1 and ended_at is not null and status <> 'removed'`, r.id) {
			t.Errorf("router %s: ended forward %s after its router reported the rule gone, want removed", r.id, s)
		}
		// Every live access relays to the port its router last reported.
		for _, s := range queryStrings(t, pool, `select id::text || ' ' || kind || ' on ' || dst_port from forwards
			where router_id = $1 and kind <> 'forward' and ended_at is null and expires_at > $2
			  and dst_port <> case kind when 'ssh' then $3::integer else $4::integer end`,
			r.id, h.endAt, r.servicePort(fleet.ServiceSSH, false), r.servicePort(fleet.ServiceWinbox, false)) {
			t.Errorf("router %s: live access %s, want the service port its agent reported last", r.id, s)
		}
	}
	for i, region := range h.regions {
		l, err := h.replicas[i%len(h.replicas)].Listeners(context.Background(), region, syncproto.Limits{}, h.endAt)
		if err != nil {
			t.Fatal(err)
		}
		ports := map[string]uint16{}
		for _, s := range queryStrings(t, pool, `select id::text || ' ' || (case kind when 'forward' then port else dst_port end)::text
			from forwards where region_id = $1 and ended_at is null and expires_at > $2`, region, h.endAt) {
			id, port, _ := strings.Cut(s, " ")
			n, _ := strconv.Atoi(port)
			ports[id] = uint16(n)
		}
		for _, li := range l.Listeners {
			if li.Target.Port() != ports[li.ID] {
				t.Errorf("region %s: listener %s relays to %s, want port %d", region, li.ID, li.Target, ports[li.ID])
			}
		}
	}
	// The password goes once the user is confirmed: after the final round,
	// no live access holds one.
	for _, s := range queryStrings(t, pool, `select id::text from forwards where access_password is not null`) {
		t.Errorf("access %s still holds its password after its router confirmed the user", s)
	}
	for _, s := range queryStrings(t, pool, `select router_id::text || ': ' || id::text from forwards
		where router_id = any($1) and ended_at is null`, deleted) {
		t.Errorf("forward on a deleted router was never ended (a create raced the delete): %s", s)
	}
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func compareIDs(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) }

func queryIDs(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) []uuid.UUID {
	t.Helper()
	rows, err := pool.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(ids, compareIDs)
	return ids
}

func queryStrings(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}
